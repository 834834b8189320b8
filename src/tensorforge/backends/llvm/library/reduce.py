"""LLVM library kernel for argmax (NumPy semantics: the first maximum wins; a NaN counts as
the maximum, so the first NaN wins; axis=None gives the flat C-order index).

Its ``_range`` function covers a span of the first kept axis (library/split.py), so a large
argmax is split across the thread pool; each kept position is scanned by one thread."""
from __future__ import annotations

from llvmlite import ir

from ...common import argmax_axes
from . import Operand, register
from .common import (I64, contiguous_strides, for_range, i64, is_float, is_unsigned,
                     load_elem, loop_nest, store_elem, strided_index, value_type)
from .split import begin_range_kernel, finish_range_kernel


def takes_over(builder: ir.IRBuilder, value, best, dtype: str) -> ir.Value:
    """True when ``value`` replaces ``best`` as the running maximum in NumPy's scan order:
    strictly greater, or (floats) value is the first NaN (a NaN best is never replaced)."""
    if is_float(dtype):
        greater = builder.fcmp_ordered(">", value, best)
        first_nan = builder.and_(builder.fcmp_unordered("uno", value, value),
                                 builder.fcmp_ordered("ord", best, best))
        return builder.or_(greater, first_nan)
    if is_unsigned(dtype):
        return builder.icmp_unsigned(">", value, best)
    return builder.icmp_signed(">", value, best)


@register("argmax")
def emit_argmax(module, name, inputs: list[Operand], out: Operand, attrs):
    """out[kept...] = first index of the maximum of x over the reduced axis (or all axes)."""
    (x,) = inputs
    axes, kept = argmax_axes(attrs.get("axis", -1), len(x.shape))
    kept_shape = [x.shape[a] for a in kept]
    red_shape = [x.shape[a] for a in axes]
    red_count = 1
    for d in red_shape:
        red_count *= d
    n_out = 1
    for d in kept_shape:
        n_out *= d
    if red_count == 0 and n_out:
        raise ValueError("argmax of an empty sequence")
    xt = value_type(x.dtype)
    fn, b, begin, end = begin_range_kernel(module, name, 1)
    out_ptr, x_ptr = fn.args[:2]
    red_flat_strides = contiguous_strides(red_shape)
    best_slot = b.alloca(xt)          # in the entry block, so mem2reg makes them registers
    index_slot = b.alloca(I64)
    if not kept_shape:                  # one answer: a single outer step over a dummy axis
        kept_shape, kept = [1], []
    kept_strides = [x.strides[a] for a in kept] or [0]
    with for_range(b, begin, end, name="k0") as first, loop_nest(b, kept_shape[1:], name="k") as rest:
        kidx = [first] + list(rest)
        base = strided_index(b, x.offset, kept_strides, kidx)
        b.store(load_elem(b, x_ptr, base, xt), best_slot)   # element 0 of the reduced run
        b.store(i64(0), index_slot)
        # the reduced axes in C order; the flat position inside the run is the answer
        with loop_nest(b, red_shape, name="r") as ridx:
            where = strided_index(b, 0, red_flat_strides, ridx)
            value = load_elem(b, x_ptr, b.add(base, strided_index(b, 0, [x.strides[a] for a in axes],
                                                                  ridx)), xt)
            best = b.load(best_slot, typ=xt)
            take = takes_over(b, value, best, x.dtype)
            b.store(b.select(take, value, best), best_slot)
            b.store(b.select(take, where, b.load(index_slot, typ=I64)), index_slot)
        store_elem(b, b.load(index_slot, typ=I64), out_ptr,
                   strided_index(b, 0, contiguous_strides(kept_shape), kidx))
    b.ret_void()
    return finish_range_kernel(module, name, fn, 1, kept_shape[0], n_out * max(1, red_count))

