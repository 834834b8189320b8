"""One build for every batch size: the part of ``CompiledFunction`` that decides whether a call
can use a build generic in the batch size, and makes that build.

A placeholder dimension declared ``None`` is the batch. When the backend can build generically
(``build_symbolic``: the LLVM backend), the first call lowers the program at the probe batch sizes
of ``tensorforge.symbolic``, the backend checks that the lowerings differ only in polynomials of
the batch size, and that one build serves every size whose shape inference follows the same
polynomials. Anything else (a backend without it, dims declared None with different sizes in one
call, an op whose sizes do not generalise) is specialised per shape by ``CompiledFunction``, and
the reason is logged once (``TENSORFORGE_LOG=compile``).
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Sequence

from ._typing import Array
from .program import Program

compile_log = logging.getLogger("tensorforge.compile")

#: A backend's executable (backends are internal and duck-typed: see tensorforge.compile)
Executable = Any
#: A build's key: the input shapes, with None for the batch dims of a build generic in the batch
BuildKey = tuple[tuple[int | None, ...], ...]


class GenericBatchBuilds:
    """Mixin of ``CompiledFunction``: its builds generic in the batch size."""

    # state owned by CompiledFunction.__init__
    name: str
    backend: Any
    passes: tuple[str, ...]
    pass_logs: dict[BuildKey, list[tuple[Any, ...]]]
    compile_times: dict[BuildKey, float]
    _cache: dict[BuildKey, Executable]
    _batch_axes: list[tuple[int, int]]
    _generic_failed: dict[BuildKey, str]               # generic key -> why it is specialised
    _generic_shapes: dict[BuildKey, dict[int, Any]]    # generic key -> node shapes, generalised
    _batch_checked: set[tuple[BuildKey, int]]          # (generic key, n) found to fit its build

    # provided by CompiledFunction
    def _program(self, arrays: Sequence[Array]) -> Program:
        raise NotImplementedError

    def _program_for(self, shapes: Sequence[Sequence[int]]) -> Program:
        raise NotImplementedError

    def _describe_key(self, key: BuildKey) -> str:
        raise NotImplementedError

    def _dump(self, key: BuildKey, exe: Executable) -> None:
        raise NotImplementedError

    def _generic_key(self, arrays: Sequence[Array]) -> tuple[BuildKey, int] | None:
        """(the input shapes with None for the batch dims, the batch size n) when this call may
        use a build generic in the batch size: the backend makes them, every dim declared None
        has the same size n >= 1 in this call (one size symbol), and they are not switched off."""
        from .runtime import dynamic_batch
        if not self._batch_axes or not hasattr(self.backend, "build_symbolic") or not dynamic_batch():
            return None
        sizes = {arrays[i].shape[ax] for i, ax in self._batch_axes}
        if len(sizes) != 1:
            return None
        (n,) = sizes
        if n < 1:
            return None
        batch = set(self._batch_axes)
        key = tuple(tuple(None if (i, ax) in batch else d for ax, d in enumerate(a.shape))
                    for i, a in enumerate(arrays))
        return key, n

    def _generic_executable(self, arrays: Sequence[Array]) -> Executable:
        """The build generic in the batch size for this call (built on first use), or None
        when this call must be specialised (the reason is logged once per build key)."""
        from .symbolic import SymbolicUnsupported
        found = self._generic_key(arrays)
        if found is None:
            return None
        key, n = found
        if key in self._generic_failed:
            return None
        exe = self._cache.get(key)
        if exe is None:
            try:
                exe = self._build_generic(key, arrays)
            except SymbolicUnsupported as e:
                self._generic_failed[key] = str(e)
                compile_log.info("%s: specialised for batch %d: %s", self.name, n, e)
                return None
        if (key, n) not in self._batch_checked:
            if not self._fits_generic(key, n, arrays):
                compile_log.info("%s: specialised for batch %d: shape inference at that size does not follow "
                                 "the generic build's sizes", self.name, n)
                return None
            self._batch_checked.add((key, n))
        return exe

    def _probe_programs(self, arrays: Sequence[Array]) -> list[Program]:
        """The program specialised at each probe batch size (symbolic.PROBES)."""
        from .symbolic import PROBES, SymbolicUnsupported
        from .ops.registry import ShapeError
        batch = set(self._batch_axes)
        programs = []
        try:
            for m in PROBES:
                programs.append(self._program_for([tuple(m if (i, ax) in batch else d for ax, d in enumerate(a.shape))
                                                   for i, a in enumerate(arrays)]))
                if len(programs) == 1 and hasattr(self.backend, "check_symbolic"):
                    self.backend.check_symbolic(programs[0])     # fail fast, before the passes
        except ShapeError as e:
            raise SymbolicUnsupported(f"shape inference fails at batch size {PROBES[len(programs)]}: {e}") from None
        return programs

    def _build_generic(self, key: BuildKey, arrays: Sequence[Array], profile: bool = False) -> Executable:
        """The build generic in the batch size (registered under ``key``); ``profile=True``: one
        that times its kernels, for ``profile`` (not registered, not cached on disk)."""
        from .passes import run_passes
        from .symbolic import PROBES, generalise
        t0 = time.perf_counter()
        programs = self._probe_programs(arrays)
        if profile:
            return self.backend.build_symbolic([run_passes(p, self.passes) for p in programs], PROBES,
                                               self._batch_axes, passes=self.passes, profile=True)
        self._generic_shapes[key] = generalise(
            PROBES, [{nid: tuple(p.shapes[nid]) for nid in p.order} for p in programs], "node shapes")
        cache_key = None
        if hasattr(self.backend, "cache_key"):
            text = f"{self.backend.cache_key(programs[0], self.passes)}|generic in {self._batch_axes} at {PROBES}"
            cache_key = hashlib.sha256(text.encode()).hexdigest()
        exe = self.backend.load_cached(cache_key, programs[0]) if cache_key else None
        if exe is not None:
            self.pass_logs[key] = [tuple(entry) for entry in getattr(exe, "pass_log", [])]
            # a disk-cache hit keeps this call's program from before the passes, as a specialised
            # hit does (to_dot runs them when asked): running them here took half a warm load
            exe.program = self._program(arrays)
        else:
            passed = [run_passes(p, self.passes) for p in programs]
            self.pass_logs[key] = list(passed[0].pass_log)
            exe = self.backend.build_symbolic(passed, PROBES, self._batch_axes, passes=self.passes,
                                              cache_key=cache_key)
            # what to_dot, the HTML viewer and tests inspect: the passed program at this call's
            # sizes (a probe's would show the probe's batch size)
            exe.program = run_passes(self._program(arrays), self.passes)
        self.compile_times[key] = time.perf_counter() - t0
        self._cache[key] = exe
        compile_log.info("%s: one build for every batch size (%s, %.2f s)", self.name,
                         self._describe_key(key), self.compile_times[key])
        self._dump(key, exe)
        return exe

    def _fits_generic(self, key: BuildKey, n: int, arrays: Sequence[Array]) -> bool:
        """Whether shape inference at batch size ``n`` gives every node the generic build's
        sizes at n (a rule that treats some size specially, e.g. squeeze at 1, does not)."""
        from .symbolic import evaluate
        program = self._program(arrays)
        want = evaluate(self._generic_shapes[key], n)
        return all(tuple(program.shapes.get(nid, ())) == tuple(shape) for nid, shape in want.items()) \
            and set(program.order) == set(want)
