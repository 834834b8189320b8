"""A step generic in the batch size: built once from probe lowerings, run at any batch size.

``build_symbolic`` lowers the same program specialised at each probe batch size
(``symbolic.PROBES``), on one thread and with one memory plan (the block of every buffer is
probe 0's: lifetimes do not depend on sizes), generalises the module text
(``generalise.generalise_ir``) and the manifest (``symbolic.generalise``: slot and output
shapes, strides and offsets become ``{"sym": coefficients}``), and compiles once.

At run time ``SymbolicSizes`` (held by the ``LLVMFunction``) reads the batch size from the
inputs, puts it in the "dim" slot that ``tf_step`` stores into ``@tf_batch``, evaluates the
output shapes for it (cached per size), and sizes the arena for the largest batch seen so
far: a larger batch re-allocates the arena (logged), it never recompiles.

Kernels split across threads are generic when ``parallel.emit_entry`` computes the thread
bounds in the IR from the extent (a literal, like any size; a matmul's row panels are
computed in the IR too: ``linalg.matmul_units_extent``); otherwise, or where the probes
disagree on which kernels to split, the step is lowered on one thread (``generic_module``).
Not generic: library kernels outside ``SYMBOLIC_LIBRARY_OPS`` (convolution,
pooling, sort, scans...): their programs specialise per batch size, as before.
"""
from __future__ import annotations

import logging
import math
import re

import numpy as np

from ...symbolic import SymbolicUnsupported, UnsupportedOp, evaluate, fit, generalise, is_symbolic
from .. import memory

log = logging.getLogger("tensorforge.compile")

# library ops whose kernels were reviewed for sizes given at run time: every size-dependent
# value they emit is a polynomial of the operand sizes (clamps and roundings are computed in
# the IR), so the probes see all of them
SYMBOLIC_LIBRARY_OPS = frozenset({"matmul", "matmul_epilogue", "copy", "one_hot", "dropout", "random_uniform", "argmax",
                                  "getitem", "getitem_grad", "concat", "concat_grad"})


def check_ops(program) -> None:
    """Raise UnsupportedOp for the first library op of ``program`` not in SYMBOLIC_LIBRARY_OPS
    (its Python code might clamp or round a size in a way the probes cannot see)."""
    from .library import LIBRARY
    for nid in program.order:
        op = program.node(nid)["op"]
        if op in LIBRARY and op not in SYMBOLIC_LIBRARY_OPS:
            raise UnsupportedOp(f"{op} needs fixed sizes")

_MAY_VARY = ("shape", "strides", "offset")


def generic_module(programs, ns, batch_axes, lowering_cls, user_graph, threads: int, profile: bool = False):
    """(module text, manifest, constants) of the build generic in the batch size.

    Kernels split across threads need their thread bounds computed at run time: where
    ``parallel.emit_entry`` computes them in Python from a fixed extent, the probes disagree
    and the step is lowered again on one thread (logged)."""
    if threads > 1 and not runtime_extents():
        log.info("generic step on one thread (parallel.emit_entry needs fixed extents)")
        threads = 1
    try:
        return _generic_module(programs, ns, batch_axes, lowering_cls, user_graph, threads, profile)
    except UnsupportedOp:
        raise
    except SymbolicUnsupported as e:
        if threads <= 1:
            raise
        log.info("generic step on one thread: with %d threads, %s", threads, e)
        return _generic_module(programs, ns, batch_axes, lowering_cls, user_graph, 1, profile)


def runtime_extents() -> bool:
    """Whether ``parallel.emit_entry`` computes thread bounds in the IR and takes an extent known
    only at run time (helper pool's version, recognised by its ``grain`` parameter). Without it
    the bounds are Python divisions of the extent, which a generic build cannot use (a division
    by many threads may even look constant at every probe), so generic steps run on one thread."""
    import inspect
    from . import parallel
    return "grain" in inspect.signature(parallel.emit_entry).parameters


def _generic_module(programs, ns, batch_axes, lowering_cls, user_graph, threads: int, profile: bool):
    from .generalise import generalise_ir
    lowerings = lower_probes(programs, lowering_cls, threads, profile)
    text = generalise_ir([str(lowering.module) for lowering in lowerings], ns)
    parts = [lowering.manifest(user_graph) for lowering in lowerings]
    manifest, consts = symbolic_manifest(ns, [m for m, _ in parts], [c for _, c in parts], batch_axes)
    return text, manifest, consts


def lower_probes(programs, lowering_cls, threads: int = 1, profile: bool = False) -> list:
    """One lowering per probe program, all with probe 0's memory plan."""
    lowerings = []
    for p in programs:
        plan = lowerings[0].memory.block_of if lowerings else None
        lowering = lowering_cls(p, threads=threads, profile=profile, symbolic=True, plan=plan)
        try:
            lowering.lower()
        except KeyError as e:               # memory.plan_with: other buffers at this size
            raise SymbolicUnsupported(f"the buffers differ between batch sizes ({e})") from None
        lowerings.append(lowering)
    # kernels optimised for size: the same at every probe, and only those that do not grow
    # with the batch (kernel_opt.py); the lowering leaves that choice to us in a generic build
    from . import kernel_opt
    small = kernel_opt.small_kernels_of_probes([kernel_opt.kernel_work(lw) for lw in lowerings],
                                               kernel_opt.small_limit())
    for lowering in lowerings:
        kernel_opt.mark_small(lowering.module, small)
    return lowerings


def symbolic_manifest(ns, manifests, consts, batch_axes) -> tuple[dict, dict]:
    """One manifest for every batch size from the probes' manifests (see the module doc)."""
    first = consts[0]
    for other in consts[1:]:
        if other.keys() != first.keys() or any(
                other[k].shape != first[k].shape or not np.array_equal(other[k], first[k], equal_nan=True)
                for k in first):
            raise SymbolicUnsupported("a constant made by the passes depends on the batch size")
    slots = generalise(ns, [m["slots"] for m in manifests], "slots")
    outputs = generalise(ns, [m["outputs"] for m in manifests], "outputs")
    for what, entries in (("slot", slots), ("output", outputs)):
        for entry in entries:
            for key, value in entry.items():
                if key not in _MAY_VARY and _varies(value):
                    raise SymbolicUnsupported(f"the {what} field {key!r} depends on the batch size")
    base = manifests[0]
    summary = f"{base['summary']}; generic in the batch size n (one build for every n)"
    kernels = _generic_descriptions(ns, [m["kernels"] for m in manifests])
    manifest = {**base, "slots": slots, "outputs": outputs, "blocks": [], "summary": summary, "kernels": kernels,
                "symbolic": {"batch_axes": [list(a) for a in batch_axes], "probes": list(ns)}}
    return manifest, first


def _generic_descriptions(ns, versions) -> list[str]:
    """The kernels' one-line descriptions with the sizes that follow the batch written as
    polynomials in n ("matmul((n, 784), (784, 256)) -> (n, 256)")."""
    out = []
    for lines in zip(*versions):
        parts = [re.split(r"(\d+)", line) for line in lines]
        if any(len(p) != len(parts[0]) for p in parts):
            out.append(lines[0])
            continue
        pieces = []
        for column in zip(*parts):
            poly = None if len(set(column)) == 1 or not column[0].isdigit() else fit(ns, [int(c) for c in column])
            pieces.append(str(poly).replace(" ", "") if poly is not None else column[0])
        out.append("".join(pieces))
    return out


def _varies(value) -> bool:
    if is_symbolic(value):
        return True
    if isinstance(value, (list, tuple)):
        return any(_varies(v) for v in value)
    return False


class SymbolicSizes:
    """The per-batch-size state of a generic ``LLVMFunction`` (see the module doc)."""

    def __init__(self, manifest: dict):
        sym = manifest["symbolic"]
        self.batch_axes = [tuple(a) for a in sym["batch_axes"]]
        slots = manifest["slots"]
        self.dim_slot = next(i for i, sl in enumerate(slots) if sl["kind"] == "dim")
        self.block_slots = [(i, sl) for i, sl in enumerate(slots) if sl["kind"] == "block"]
        self.n_blocks = max((sl["block"] for _, sl in self.block_slots), default=-1) + 1
        self.fresh = [(i, sl) for i, sl in enumerate(slots) if sl["kind"] == "output"]
        self.outputs = manifest["outputs"]
        self.capacity = 0
        self.blocks: list[np.ndarray] = []
        self.current = None                    # the batch size the table is set up for
        self.per_size: dict[int, tuple] = {}   # n -> (fresh slots, outputs) at n

    def batch_size(self, arrays) -> int:
        pos, axis = self.batch_axes[0]
        return arrays[pos].shape[axis]

    def bind(self, fn, arrays) -> None:
        """Set ``fn``'s table, fresh output slots and output descriptions for this call's batch size."""
        n = self.batch_size(arrays)
        if n == self.current:
            return
        if n > self.capacity:
            self._grow(fn, n)
        fn._table[self.dim_slot] = n
        if n not in self.per_size:
            fresh = [(i, tuple(evaluate(sl["shape"], n)), np.dtype(sl["dtype"])) for i, sl in self.fresh]
            self.per_size[n] = (fresh, evaluate(self.outputs, n))
        fn._fresh_slots, fn._outputs = self.per_size[n]
        self.current = n

    def _grow(self, fn, n: int) -> None:
        """An arena for batches up to ``n`` (each block as large as its largest buffer at n)."""
        from .executable import _aligned_empty
        if self.capacity:
            log.info("llvm step: batch %d is larger than the %d the arena was sized for: arena re-allocated "
                     "(no recompilation)", n, self.capacity)
        sizes = [memory.ALIGN] * self.n_blocks
        shapes = {}
        for i, sl in self.block_slots:
            shape = tuple(evaluate(sl["shape"], n))
            shapes[i] = shape
            nbytes = math.prod(shape) * np.dtype(sl["dtype"]).itemsize
            sizes[sl["block"]] = max(sizes[sl["block"]], -(-nbytes // memory.ALIGN) * memory.ALIGN)
        self.blocks = [_aligned_empty((size,), np.uint8) for size in sizes]
        for i, sl in self.block_slots:
            nbytes = math.prod(shapes[i]) * np.dtype(sl["dtype"]).itemsize
            arr = self.blocks[sl["block"]][:nbytes].view(sl["dtype"]).reshape(shapes[i])
            fn._arrays[i] = arr
            fn._table[i] = arr.ctypes.data
        self.capacity = n
