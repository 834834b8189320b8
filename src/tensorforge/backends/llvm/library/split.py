"""Library kernels whose outer loop may be split across the thread pool.

Such a kernel is emitted as ``name_range(out, in..., i64 begin, i64 end)`` running its outer
loop over [begin, end) (batch-and-channel planes for pooling, flat elements for the random ops,
kept rows for argmax), plus the usual one-thread entry ``name(out, in...)`` calling it over
everything. ``splittable`` records the outer extent and the kernel's work so that the backend
(``_maybe_parallel``), which knows the thread count, can add a parallel entry when the work is
worth it. Each outer index is computed by exactly one thread with the same code, so results
are bit-identical whatever the split.
"""
from __future__ import annotations

from llvmlite import ir

from .common import I64, new_function


def begin_range_kernel(module: ir.Module, name: str, n_inputs: int):
    """``name_range(out, in..., begin, end)``: (function, builder, begin, end)."""
    fn = new_function(module, f"{name}_range", 1 + n_inputs, [I64, I64])
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    begin, end = fn.args[-2:]
    return fn, builder, begin, end


def finish_range_kernel(module: ir.Module, name: str, range_fn: ir.Function, n_inputs: int, extent: int,
                        work: int) -> ir.Function:
    """Add the one-thread entry ``name`` and record that ``name`` may be split."""
    from .. import parallel          # parallel imports this package's common module
    entry = parallel.emit_entry(module, name, range_fn, 1 + n_inputs, int(extent), 1)
    module.__dict__.setdefault("_tf_splittable", {})[name] = (int(extent), int(work))
    return entry


def splittable(module: ir.Module, name: str):
    """(outer extent, work) of a library kernel that has a range function, else None."""
    return module.__dict__.get("_tf_splittable", {}).get(name)
