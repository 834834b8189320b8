"""``tg.compile``: turn (inputs, outputs, updates) into a callable.

The callable validates every call in Python (names, dtypes, shapes) before any
backend code runs, specialises the graph once per combination of input shapes
(cached), and hands the resulting Program to a backend. A backend with ``build_symbolic``
(LLVM) instead gets one build generic in the batch size for every call whose placeholder
dims declared None share one size: see tensorforge.compile_generic and tensorforge.symbolic. Backends implement

    backend.build(program) -> executable;  executable(list_of_arrays) -> list_of_arrays

and apply the updates to the parameter buffers in place. An executable that can time its
kernels also has ``timed_call(arrays) -> (arrays, [(kernel, seconds), ...])`` (or the backend
builds one with ``build(program, profile=True)``): ``CompiledFunction.profile`` uses it. Between specialisation and
``build``, the graph passes named by ``passes`` run on a private copy of the program
(None: the backend's ``default_passes``, none for the interpreter; see tensorforge.passes).
"""
from __future__ import annotations

import logging
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Iterator, Mapping, Sequence, TypeVar, cast, overload

import numpy as np

from ._typing import Array, Updates
from .compile_generic import BuildKey, Executable, GenericBatchBuilds
from .graph import Graph, Tensor, format_shape
from .program import Program, label_checks, needed_nodes, specialise

if TYPE_CHECKING:
    from .profiler import Profile

log = logging.getLogger("tensorforge.compile")
compile_log = log             # builds, recompilations and why (TENSORFORGE_LOG=compile)
kernel_log = logging.getLogger("tensorforge.kernels")

__all__ = ["compile", "CompiledFunction", "InputError"]


class InputError(ValueError):
    """A call's inputs do not match the compiled function's placeholders."""


#: What a call returns: one array for ``outputs=tensor``, a list of arrays for a list of tensors.
R = TypeVar("R", Array, list[Array])


def _normalise_updates(updates: Updates | None) -> list[tuple[Tensor, Tensor]]:
    if updates is None:
        return []
    pairs = list(updates.items()) if isinstance(updates, Mapping) else list(updates)
    out: list[tuple[Tensor, Tensor]] = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"updates must be (parameter, new_value) pairs or a dict, got {pair!r}")
        target, new = pair
        if not isinstance(target, Tensor) or target.op != "parameter":
            raise TypeError(f"update target {target!r} is not a parameter")
        from .graph import as_tensor
        new_t = as_tensor(new, like=target)
        if len(new_t.shape) != len(target.shape) or any(
                a is not None and a != b for a, b in zip(new_t.shape, target.shape)):
            raise ValueError(f"update of parameter {target.name!r}: new value has shape "
                             f"{format_shape(new_t.shape)}, expected {format_shape(target.shape)}")
        out.append((target, new_t))
    seen: set[int] = set()
    for target, _ in out:
        if target.id in seen:
            raise ValueError(f"parameter {target.name!r} is updated twice")
        seen.add(target.id)
    return out


def _with_default_updates(graph: Graph, outputs: Sequence[Tensor],
                          updates: Sequence[tuple[Tensor, Tensor]]) -> list[tuple[Tensor, Tensor]]:
    """Add implicit state updates (batch-norm running stats, the random counter)
    whose trigger node is used by the function, unless the user updates that state."""
    updates = list(updates)
    while True:
        targets = {t.id for t, _ in updates}
        needed = set(needed_nodes(graph, [o.id for o in outputs], [(t.id, n.id) for t, n in updates]))
        extra = [(graph.tensor(state), graph.tensor(upd)) for state, upd in graph.default_updates.items()
                 if state not in targets and graph.update_triggers.get(state, state) in needed]
        if not extra:
            return updates
        updates += extra


def _memory_owner(a: Array) -> Array | None:
    """The array that owns ``a``'s memory (``a`` itself, or the root of its ``.base`` chain), or
    None when the memory belongs to something other than an ndarray (a buffer, mmap, ...)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a if a.base is None else None


class CompiledFunction(GenericBatchBuilds, Generic[R]):
    """The callable returned by ``tg.compile``."""

    def __init__(self, inputs: Sequence[Tensor], outputs: Tensor | Sequence[Tensor], updates: Updates | None = None,
                 backend: str = "interp", passes: Sequence[str] | None = None, name: str | None = None,
                 check: bool = False) -> None:
        from .backends import get_backend

        self.inputs = list(inputs)
        single = isinstance(outputs, Tensor)
        self.outputs: list[Tensor] = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        self._single = single
        for t in self.inputs:
            if not isinstance(t, Tensor) or t.op != "placeholder":
                raise TypeError(f"compile: inputs must be placeholders, got {t!r}")
        for t in self.outputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"compile: outputs must be Tensors, got {t!r}")
        user_updates = _normalise_updates(updates)
        # a function may have only updates (no inputs, no outputs): its graph is theirs
        anchors = self.outputs + self.inputs + [t for pair in user_updates for t in pair]
        graphs = {id(t.graph) for t in anchors}
        if len(graphs) > 1:
            raise ValueError("compile: inputs, outputs and updates come from different graphs")
        self.graph: Graph | None = anchors[0].graph if anchors else None
        self.updates = _with_default_updates(self.graph, self.outputs, user_updates) if self.graph else []
        names = [t.name for t in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"compile: an input is listed twice in {names}")
        self.backend = get_backend(backend)
        from .passes import resolve_passes
        # resolved now, so that a bad pass name fails at tg.compile, not at the first call
        self.passes = resolve_passes(passes, getattr(self.backend, "default_passes", ()))
        self.pass_logs: dict[BuildKey, list[tuple[Any, ...]]] = {}   # input shapes -> (pass, nodes before, after, seconds)
        self.name = name or "step"
        self._cache: dict[BuildKey, Executable] = {}       # build key -> executable (one entry per build)
        self.compile_times: dict[BuildKey, float] = {}  # build key -> seconds (one entry per build)
        # batch sizes: a build generic in the batch (its key has None for the batch dims) serves
        # every batch size it was checked for; see _generic_executable and tensorforge.symbolic
        self._by_shapes: dict[BuildKey, Executable] = {}   # input shapes of a call -> its executable
        self._batch_axes = [(i, ax) for i, t in enumerate(self.inputs) for ax, d in enumerate(t.shape) if d is None]
        self._generic_failed: dict[BuildKey, str] = {}  # generic key -> why it is specialised
        self._generic_shapes: dict[BuildKey, dict[int, Any]] = {}  # generic key -> node shapes, generalised
        self._batch_checked: set[tuple[BuildKey, int]] = set()             # (generic key, n) found to fit the generic build
        self._timing_cache: dict[BuildKey, Executable] = {}   # input shapes -> a build that times its kernels
        self._by_name = {t.name: i for i, t in enumerate(self.inputs)}
        # concurrency: one build per input-shape key, and one call at a time (a step updates
        # the parameters in place, so two at once would race on them)
        self._build_lock = threading.RLock()
        self._call_lock = threading.RLock()
        self._labels: list[tuple[int | None, str, Any]] | None = None      # label checks, found on the first call (see _check_labels)
        self._owners: tuple[list[Array], set[int], bool] | None = None      # (updated buffers, ids of their memory owners, any unowned?), lazily
        # check=True: the interpreter runs beside the backend on every call (see tensorforge.debug)
        self._checker: Any = None
        if check:
            from .debug import Checker
            self._checker = Checker(self)

    @property
    def _graph(self) -> Graph:
        """The graph, for the code that runs a call: a function with no inputs, outputs or
        updates has none, and cannot be called."""
        if self.graph is None:
            raise ValueError(f"{self.name}: a function with no inputs, outputs or updates computes nothing")
        return self.graph

    # -- input validation --------------------------------------------------------------
    def _bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
        if len(args) > len(self.inputs):
            raise InputError(f"{self.name}() takes {len(self.inputs)} inputs "
                             f"({', '.join(self._by_name)}), got {len(args)} positional")
        bound = list(args) + [None] * (len(self.inputs) - len(args))
        given = [True] * len(args) + [False] * (len(self.inputs) - len(args))
        for key, value in kwargs.items():
            if key not in self._by_name:
                raise InputError(f"{self.name}() got an unknown input {key!r}; inputs are "
                                 f"{', '.join(self._by_name)}")
            i = self._by_name[key]
            if given[i]:
                raise InputError(f"{self.name}() got input {key!r} twice")
            bound[i], given[i] = value, True
        missing = [t.name for t, ok in zip(self.inputs, given) if not ok]
        if missing:
            raise InputError(f"{self.name}() is missing input(s) {', '.join(map(repr, missing))}")
        return bound

    def _check(self, t: Tensor, value: Any) -> Array:
        want = np.dtype(t.dtype)
        try:
            arr = np.asarray(value)
        except Exception as e:  # noqa: BLE001 - report any conversion failure the same way
            raise InputError(f"input {t.name!r}: cannot convert {type(value).__name__} to an array: {e}") from None
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise InputError(f"input {t.name!r}: expected numeric data of dtype {want}, got {arr.dtype}")
        if want.kind in "iu" and arr.dtype.kind not in "iu":
            raise InputError(f"input {t.name!r}: expected integer dtype {want}, got {arr.dtype}")
        if want.kind == "b" and arr.dtype.kind != "b":
            raise InputError(f"input {t.name!r}: expected bool, got {arr.dtype}")
        if want.kind in "iu" and arr.dtype != want and arr.size and not np.can_cast(arr.dtype, want):
            _check_fits(t, arr, want)
        if arr.ndim != len(t.shape) or any(d is not None and d != s for d, s in zip(t.shape, arr.shape)):
            raise InputError(f"input {t.name!r}: expected shape {format_shape(t.shape)}, got "
                             f"{format_shape(arr.shape)}")
        # (a big-endian array has a dtype != want too: the copy makes it native, as compiled code needs)
        if arr.dtype != want or not arr.flags.c_contiguous or not arr.flags.aligned:
            arr = np.array(arr, dtype=want, order="C")  # (ascontiguousarray would make 0-d 1-d)
        return arr

    # -- compile & call ----------------------------------------------------------------
    def _program(self, arrays: Sequence[Array]) -> Program:
        return self._program_for([a.shape for a in arrays])

    def _program_for(self, shapes: Sequence[Sequence[int]]) -> Program:
        types = {t.id: (tuple(s), t.dtype) for t, s in zip(self.inputs, shapes)}
        return specialise(self._graph, [t.id for t in self.inputs], [t.id for t in self.outputs],
                          [(p.id, n.id) for p, n in self.updates], types)

    def _check_labels(self, arrays: Sequence[Array]) -> None:
        """Class labels and indices that reach one_hot / index_in_range straight from a leaf must
        lie in their range (program.LabelCheck): the interpreter would raise, compiled code would give a NaN row (and so a
        NaN loss) without naming the input. One min and max per label array, before anything runs."""
        if self._labels is None:
            self._labels = self._label_sources()
        for position, what, check in self._labels:
            arr = arrays[position] if position is not None else self._graph.values[check.node]
            if arr.size and (arr.min() < check.low or arr.max() >= check.depth):
                bad = check.bad(arr)
                if bad.any():
                    first = tuple(int(i) for i in np.argwhere(bad)[0])
                    where = f"row {first[0]}" if len(first) == 1 else f"index {first}"
                    raise InputError(f"{what}: {check.op}: label {arr[bad].flat[0]} is out of range "
                                     f"{check.describe()} ({int(bad.sum())} bad label(s); the first at {where})")

    def _label_sources(self) -> list[tuple[int | None, str, Any]]:
        """(input position or None, description, program.LabelCheck) per label check, found once."""
        if not self.graph:
            return []
        checks = label_checks(self.graph, [o.id for o in self.outputs],
                              [(p.id, n.id) for p, n in self.updates])
        position = {t.id: i for i, t in enumerate(self.inputs)}
        out = []
        for check in checks:
            d = self.graph.node(check.node)
            what = f"input {d['name']!r}" if check.node in position else f"{d['op']} {d['name']!r}"
            out.append((position.get(check.node), what, check))
        return out

    def _unshare_parameters(self, arrays: list[Array]) -> list[Array]:
        """Copy an input that shares memory with a parameter this function updates (e.g.
        ``step(W.value)``): updates are simultaneous, so every read must see the old value,
        and compiled code may already have written the parameter when it reads the input.

        Two arrays can share memory only if they view memory of the same owner, so per call
        this is one owner lookup per input against the owners of the updated buffers (found
        once); memory that no ndarray owns is compared with numpy."""
        if not self.updates:
            return arrays
        if self._owners is None:
            # the buffers are fixed: compiled code holds their addresses, and parameters are
            # only ever written in place
            buffers = [self._graph.values[p.id] for p, _ in self.updates]
            owners = [_memory_owner(b) for b in buffers]
            self._owners = (buffers, {id(o) for o in owners if o is not None},
                            any(o is None for o in owners))   # holds the buffers: ids stay valid
        cached = self._owners
        buffers = cached[0]
        out = []
        for a in arrays:
            owner = _memory_owner(a)
            if (id(owner) in cached[1] if owner is not None and not cached[2]
                    else any(np.may_share_memory(a, b) for b in buffers)):
                a = np.array(a)
            out.append(a)
        return out

    def executable_for(self, arrays: Sequence[Array]) -> Executable:
        key = tuple(a.shape for a in arrays)
        exe = self._by_shapes.get(key)
        if exe is not None:
            return exe
        with self._build_lock:          # threads calling with new shapes at once build once
            exe = self._by_shapes.get(key)
            if exe is None:
                exe = self._generic_executable(arrays) or self._cached_or_built(key, arrays)
                self._by_shapes[key] = exe
            return exe

    def _cached_or_built(self, key: BuildKey, arrays: Sequence[Array]) -> Executable:
        exe = self._cache.get(key)
        if exe is None:
            if self._cache:
                log.info("%s: compiling again for new input shapes %s (cached: %s)", self.name,
                         self._describe_key(key), ", ".join(self._describe_key(k) for k in self._cache))
            t0 = time.perf_counter()
            from .passes import run_passes
            program = self._program(arrays)
            # backends with a disk cache of whole steps skip the passes and code generation on a hit
            cache_key = self.backend.cache_key(program, self.passes) if hasattr(self.backend, "cache_key") else None
            exe = self.backend.load_cached(cache_key, program) if cache_key else None
            if exe is not None:
                self.pass_logs[key] = [tuple(entry) for entry in getattr(exe, "pass_log", [])]
            else:
                program = run_passes(program, self.passes)
                self.pass_logs[key] = list(program.pass_log)
                # the graph passes have already run: ``passes`` tells the backend which, not to rerun them
                exe = self.backend.build(program, passes=self.passes, **({"cache_key": cache_key} if cache_key else {}))
            self.compile_times[key] = time.perf_counter() - t0
            self._log_build(key, exe)
            self._cache[key] = exe
            self._dump(key, exe)
        return exe

    @property
    def ir(self) -> str:
        """The generated code of the most recent specialisation: LLVM IR for backend="llvm",
        Triton source for "triton" (set TENSORFORGE_DUMP_IR=<folder> to have every build written there)."""
        if not self._cache:
            raise RuntimeError(f"{self.name} has not been called yet: code is generated per input shapes")
        exe = list(self._cache.values())[-1]
        if not hasattr(exe, "ir"):
            raise AttributeError(f"backend {self.backend.name!r} generates no code (it runs the graph node by node)")
        ir: str = exe.ir
        return ir

    def _log_build(self, key: BuildKey, exe: Executable) -> None:
        """One INFO line per build (TENSORFORGE_LOG=compile) and its kernel list (=kernels)."""
        kernels = list(getattr(exe, "kernels", None) or getattr(exe, "manifest", {}).get("kernels", []))
        cached = getattr(getattr(exe, "_compiled", None), "from_cache", False)
        source = "loaded from the disk cache" if cached else "built"
        log.info("%s: %s for %s on %s in %.3f s (%d kernels)", self.name, source, self._describe_key(key),
                 self.backend.name, self.compile_times[key], len(kernels))
        if kernels and kernel_log.isEnabledFor(logging.INFO):
            kernel_log.info("%s:\n  %s", self.name, "\n  ".join(kernels))

    def _dump(self, key: BuildKey, exe: Executable) -> None:
        """Write the generated code to TENSORFORGE_DUMP_IR (a debugging aid: a failure to write
        is logged, never raised, and the file name cannot leave the folder)."""
        from . import config
        folder = config.get("dump_ir")
        if not (folder and hasattr(exe, "ir") and exe.ir):
            return
        shapes = "_".join("x".join(map(str, s)) or "scalar" for s in key)
        filename = dump_file_name(f"{self.name}_{self.backend.name}_{shapes}")
        try:
            path = Path(folder)
            path.mkdir(parents=True, exist_ok=True)
            (path / filename).write_text(exe.ir)
        except (OSError, ValueError) as e:
            log.warning("%s: could not write the IR dump %r to TENSORFORGE_DUMP_IR=%r: %s",
                        self.name, filename, folder, e)

    def _describe_key(self, key: BuildKey) -> str:
        return " ".join(f"{t.name}={format_shape(s)}" for t, s in zip(self.inputs, key))

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        arrays = [self._check(t, v) for t, v in zip(self.inputs, self._bind(args, kwargs))]
        self._check_labels(arrays)
        # (a bool, not the dict itself: the build below may fill the graph's device mirrors)
        mirrored = bool(self.graph is not None and self.graph.device_mirrors
                        and not getattr(self.backend, "on_device", False))
        exe = self.executable_for(arrays)
        with self._call_lock:
            arrays = self._unshare_parameters(arrays)
            if mirrored:          # a host backend on a graph whose parameters also live on a GPU
                self._graph.sync_host()
            results = self._checker(arrays, exe) if self._checker is not None else exe(arrays)
            if mirrored:
                self._graph.host_changed([p.id for p, _ in self.updates])
        # R is Array exactly when outputs was one Tensor (see compile's overloads)
        return cast(R, results[0] if self._single else list(results))

    # -- profiling ---------------------------------------------------------------------
    def profile(self, *args: Any, steps: int = 20, warmup: int = 2, **kwargs: Any) -> Profile:
        """Time every kernel of the specialisation for these inputs: a ``tensorforge.profiler.Profile``
        (``print`` it for a table of the slowest kernels).

        Runs ``warmup`` + ``steps`` real steps, but the parameters and optimizer state they
        update get their old values back afterwards, so profiling never changes training.
        LLVM steps are timed by a separate build that reads the cycle counter around each
        kernel; see tensorforge.profiler for the other backends."""
        from .profiler import Profile
        if not isinstance(steps, int) or steps < 1 or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"profile: steps must be an int >= 1 and warmup an int >= 0, got {steps!r}, {warmup!r}")
        arrays = [self._check(t, v) for t, v in zip(self.inputs, self._bind(args, kwargs))]
        exe = self._timing_executable(arrays)
        with self._call_lock, self._parameters_restored():
            for _ in range(warmup):
                exe.timed_call(arrays)
            start = time.perf_counter()
            runs = [exe.timed_call(arrays)[1] for _ in range(steps)]
            wall = time.perf_counter() - start
        return Profile.from_runs(self.name, self.backend.name, runs, wall)

    def _timing_executable(self, arrays: Sequence[Array]) -> Executable:
        exe = self.executable_for(arrays)          # compiled as a call would (and cached)
        if getattr(exe, "can_time_kernels", False):
            return exe
        generic = getattr(exe, "manifest", {}).get("symbolic") and self._generic_key(arrays)
        key = generic[0] if generic else tuple(a.shape for a in arrays)
        if key not in self._timing_cache:
            if generic:                             # time the code that runs: a generic build too
                self._timing_cache[key] = self._build_generic(key, arrays, profile=True)
            else:
                from .passes import run_passes
                program = run_passes(self._program(arrays), self.passes)
                self._timing_cache[key] = self.backend.build(program, passes=self.passes, profile=True)
        return self._timing_cache[key]

    @contextmanager
    def _parameters_restored(self) -> Iterator[None]:
        """The parameters this function updates have their current values again afterwards
        (device copies included: they are refreshed from the host at the next call)."""
        ids = [p.id for p, _ in self.updates]
        if self.graph is None or not ids:
            yield
            return
        g = self.graph
        g.sync_host()
        saved = {i: np.array(g.values[i]) for i in ids}
        try:
            yield
        finally:
            g.sync_host()
            for i, value in saved.items():
                np.copyto(g.values[i], value)
            g.host_changed(ids)

    def __repr__(self) -> str:
        lines = [f"<CompiledFunction {self.name} backend={self.backend.name} "
                 f"inputs=[{', '.join(t.name + format_shape(t.shape) for t in self.inputs)}] "
                 f"outputs={len(self.outputs)} updates={len(self.updates)}>"]
        for key, exe in self._cache.items():
            what = "generic in the batch size" if any(None in shape for shape in key) else "specialised"
            lines.append(f"  {what} for {self._describe_key(key)}:")
            log_ = self.pass_logs.get(key)
            if log_:
                lines.append(f"    passes: {log_[0][1]} -> {log_[-1][2]} nodes ("
                             + ", ".join(f"{name} {before}->{after}" for name, before, after, _ in log_) + ")")
            else:
                lines.append("    passes: none")
            lines += ["    " + ln for ln in str(exe).splitlines()]
        return "\n".join(lines)

    def _repr_html_(self) -> str | None:
        """Jupyter shows the interactive viewer: the fused program once the function has run."""
        from .export.html import repr_html
        return repr_html(self)


def _check_fits(t: Tensor, arr: Array, want: np.dtype[Any]) -> None:
    """Integer data must fit the placeholder's integer dtype: a cast would wrap silently."""
    lo, hi = arr.min(), arr.max()
    info = np.iinfo(want)
    if lo < info.min or hi > info.max:
        raise InputError(f"input {t.name!r}: values in [{lo}, {hi}] ({arr.dtype}) do not fit its dtype "
                         f"{want} (range [{info.min}, {info.max}])")


_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9_.-]")


def dump_file_name(stem: str) -> str:
    """``stem`` made a plain file name: only [A-Za-z0-9_.-], no leading dot (so no path
    separators, no "..", no hidden files, no NUL)."""
    safe = _UNSAFE_IN_FILE_NAMES.sub("_", stem).lstrip(".")
    return (safe or "step") + ".txt"


@overload
def compile(inputs: Sequence[Tensor], outputs: Tensor, updates: Updates | None = None, backend: str = "interp",
            passes: Sequence[str] | None = None, name: str | None = None,
            check: bool = False) -> CompiledFunction[Array]: ...
@overload
def compile(inputs: Sequence[Tensor], outputs: Sequence[Tensor], updates: Updates | None = None,
            backend: str = "interp", passes: Sequence[str] | None = None, name: str | None = None,
            check: bool = False) -> CompiledFunction[list[Array]]: ...
def compile(inputs: Sequence[Tensor], outputs: Tensor | Sequence[Tensor], updates: Updates | None = None,
            backend: str = "interp", passes: Sequence[str] | None = None, name: str | None = None,
            check: bool = False) -> CompiledFunction[Any]:  # noqa: A001 - tg.compile is the API name
    """Compile a function from placeholders ``inputs`` to ``outputs``.

    ``updates``: (parameter, new_value) pairs or a dict, applied in place after the outputs
    are computed (all new values are computed from the old ones first).
    ``backend``: "interp" (NumPy reference), "llvm" or "triton".
    ``passes``: graph passes to run before the backend, by name (see ``tensorforge.passes.PASSES``);
    None: the backend's default (none for the interpreter, the honest reference); []: none.
    ``check``: debug mode: run the interpreter beside the backend on every call and raise
    ``tensorforge.debug.CheckError`` naming the first node whose value differs (slow).
    Updates from ``optimizer.updates(..., data_parallel=True)`` give a data-parallel step
    (``tensorforge.distributed_step.DataParallelFunction``): local gradients, one MPI
    allreduce, then the update.

    Calling the result returns one array when ``outputs`` is one tensor, else a list of arrays.
    """
    from .optim.data_parallel import DataParallelUpdates
    if isinstance(updates, DataParallelUpdates):
        from .distributed_step import DataParallelFunction
        # called like a CompiledFunction, but not one (distributed_step is internal and untyped)
        return DataParallelFunction(inputs, outputs, updates, backend, passes, name, check)  # type: ignore[return-value]
    return CompiledFunction(inputs, outputs, updates, backend, passes, name, check)
