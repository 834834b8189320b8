"""LLVM library kernels for the counter-based random ops: random_uniform and dropout.

They implement the specification in the ``tensorforge.ops.random`` docstring with i32
arithmetic (LLVM's ``mul``/``add`` wrap modulo 2**32, ``lshr`` is the logical shift), so
the numbers are bit-identical to the interpreter's for the same seed and counter. The
counter is read at run time from its int64 scalar buffer (it changes every call); the
seed's part of the key is folded here in Python because the seed is an attribute.

Both have a ``_range`` function over their outer loop (library/split.py): every element's bits
depend only on its flat index, so a split across threads gives the same numbers.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ....ops import random as rnd
from . import Operand, register
from .split import begin_range_kernel, finish_range_kernel
from .common import (I32, I64, contiguous_strides, convert_float, float_type, for_range,
                     is_unsigned, load_elem, loop_nest, merge_axes, store_elem, strided_index, value_type)


def _u32(value: int) -> ir.Constant:
    return ir.Constant(I32, value & rnd.MASK32)


def lowbias32(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """The lowbias32 mixer on an i32 value (see ops/random.py)."""
    x = builder.xor(x, builder.lshr(x, _u32(16)))
    x = builder.mul(x, _u32(0x7FEB352D))
    x = builder.xor(x, builder.lshr(x, _u32(15)))
    x = builder.mul(x, _u32(0x846CA68B))
    return builder.xor(x, builder.lshr(x, _u32(16)))


def load_counter(builder: ir.IRBuilder, ptr, counter: Operand) -> ir.Value:
    """The counter as the i64 of its two's-complement bits (narrower ints are widened like
    Python's int() would: signed ones with sign extension)."""
    if counter.shape != ():
        raise ValueError(f"the random counter must be a scalar, got shape {counter.shape}")
    value = load_elem(builder, ptr, counter.offset, value_type(counter.dtype))
    if value.type.width < 64:
        value = builder.zext(value, I64) if is_unsigned(counter.dtype) else builder.sext(value, I64)
    return value


def emit_key(builder: ir.IRBuilder, seed: int, counter64: ir.Value) -> ir.Value:
    """key(seed, counter): the seed's mix is a constant, the two counter halves are mixed in."""
    salted = np.array([(int(seed) & rnd.MASK32) ^ rnd.SEED_SALT], dtype=np.uint32)
    k = _u32(int(rnd.lowbias32(salted)[0]))
    lo = builder.trunc(counter64, I32)
    hi = builder.trunc(builder.lshr(counter64, ir.Constant(I64, 32)), I32)
    k = lowbias32(builder, builder.xor(k, lo))
    return lowbias32(builder, builder.xor(k, hi))


def element_bits(builder: ir.IRBuilder, key: ir.Value, flat_index: ir.Value) -> ir.Value:
    """bits(seed, counter, i) = lowbias32(key ^ lo32(i))."""
    return lowbias32(builder, builder.xor(key, builder.trunc(flat_index, I32)))


@register("random_uniform")
def emit_random_uniform(module, name, inputs: list[Operand], out: Operand, attrs):
    """out[i] = (bits(seed, counter, i) >> 8) * 2**-24, exact in float32 and float64."""
    (counter,) = inputs
    ft = float_type(out.dtype)
    count = int(np.prod(out.shape, dtype=np.int64))
    fn, b, begin, end = begin_range_kernel(module, name, 1)
    key = emit_key(b, attrs["seed"], load_counter(b, fn.args[1], counter))
    with for_range(b, begin, end, name="i") as i:
        top24 = b.lshr(element_bits(b, key, i), _u32(8))
        # top24 < 2**24 converts exactly; the scaling by a power of two is exact too
        value = b.fmul(b.uitofp(top24, ft), ir.Constant(ft, 2.0 ** -24))
        store_elem(b, value, fn.args[0], i)
    b.ret_void()
    return finish_range_kernel(module, name, fn, 1, count, count)


@register("dropout")
def emit_dropout(module, name, inputs: list[Operand], out: Operand, attrs):
    """out[i] = x[i] * s if (bits >> 8) >= ceil(p * 2**24) else 0, with s = 1/(1-p) rounded
    once to x's dtype; i is the flat C-order index of the output (x read through strides)."""
    x, counter = inputs
    if tuple(x.shape) != tuple(out.shape):
        raise ValueError(f"dropout: x shape {x.shape} differs from the output shape {out.shape}")
    p = float(attrs["p"])
    ft = float_type(out.dtype)
    scale = ir.Constant(ft, float(np.asarray(1.0 / (1.0 - p), dtype=out.dtype)))
    threshold = _u32(rnd.keep_threshold(p))
    fn, b, begin, end = begin_range_kernel(module, name, 2)
    out_ptr, x_ptr, counter_ptr = fn.args[:3]
    key = emit_key(b, attrs["seed"], load_counter(b, counter_ptr, counter))
    # the output's flat index is its (contiguous) element offset; merging contiguous axes
    # of both sides keeps that true and gives one long loop for a contiguous x
    shape, (out_strides, x_strides) = merge_axes(out.shape, contiguous_strides(out.shape), x.strides)
    if not shape:                       # a scalar: one outer step
        shape, out_strides, x_strides = [1], [0], [0]
    with for_range(b, begin, end, name="i0") as first, loop_nest(b, shape[1:], name="i") as rest:
        idx = [first] + list(rest)
        flat = strided_index(b, 0, out_strides, idx)
        value = load_elem(b, x_ptr, strided_index(b, x.offset, x_strides, idx), value_type(x.dtype))
        value = convert_float(b, value, ft)
        keep = b.icmp_unsigned(">=", b.lshr(element_bits(b, key, flat), _u32(8)), threshold)
        store_elem(b, b.select(keep, b.fmul(value, scale), ir.Constant(ft, 0.0)), out_ptr, flat)
    b.ret_void()
    count = int(np.prod(out.shape, dtype=np.int64))
    return finish_range_kernel(module, name, fn, 2, shape[0], count)
