"""Run-time-sized im2col and col2im routines shared by every convolution kernel of a module.

One sample's im2col matrix ``col`` has a row per (channel, kernel row i, kernel column j) and
a column per output position (oh, ow), row-major (K x P, P = Ho * Wo):

    col[((c - c0) * kh + i) * kw + j, oh * Wo + ow] = x[c, oh * sh + i - ph, ow * sw + j - pw]

for the channels [c0, c1). ``im2col`` writes only the cells whose tap lands inside the image:
which cells those are depends on (i, j, oh, ow) alone, never on the sample or the channel, so
a caller zeroes its col buffer once and reuses it for every sample; padding cells stay 0.
``col2im`` is the adjoint: out[c, ih, iw] += col[...] over the same cells, in row order.

For each (c, i, j, oh) the valid output columns are one interval [lo, hi) worked out from
(j, pad, stride, width), so the innermost loop is a straight copy (or add) of hi - lo
elements with no bounds test; with unit steps on both sides it is an inline (a
hand-vectorised copy or add, ``vector_rows``). Every size and stride is an argument (``_GEOMETRY``), so a module holds one
copy per dtype pair however many convolutions it has: that keeps a CNN step's compile time
down (cf. linalg's generic GEMM). The outer loops are ``plain_loop``s for the same reason.
"""
from __future__ import annotations

from llvmlite import ir

from .common import (F64, I64, convert_float, elem_ptr, float_type, for_range, host_vector_bits, i64, imax, imin,
                     load_elem, new_function, store_elem)
from .linalg import plain_loop

# i64 arguments after (ptr col_or_out, ptr x_or_col): channel range, geometry, the image's strides
_GEOMETRY = ("c0", "c1", "h", "w", "kh", "kw", "sh", "sw", "ph", "pw", "ho", "wo", "xs_c", "xs_h", "xs_w",
             "col_rs")
_SHORT = {"float32": "f32", "float64": "f64"}


def geometry_args(c0, c1, h, w, kh, kw, stride, padding, ho, wo, image_strides, col_rs=None) -> list:
    """The ``_GEOMETRY`` arguments (ints or i64 values) in call order; ``col_rs`` is the row
    stride of col (default Ho * Wo; larger when several samples share its rows)."""
    values = dict(c0=c0, c1=c1, h=h, w=w, kh=kh, kw=kw, sh=stride[0], sw=stride[1], ph=padding[0],
                  pw=padding[1], ho=ho, wo=wo, xs_c=image_strides[0], xs_h=image_strides[1], xs_w=image_strides[2],
                  col_rs=ho * wo if col_rs is None else col_rs)
    return [i64(values[key]) for key in _GEOMETRY]


def im2col(module: ir.Module, dtype: str, x_dtype: str) -> ir.Function:
    """``void tf_conv.im2col.<dtype><x_dtype>(ptr col, ptr x_sample, i64 geometry...)`` (see module doc)."""
    return _shared(module, f"tf_conv.im2col.{_SHORT[dtype]}{_SHORT[x_dtype]}", dtype, x_dtype, "gather")


def col2im(module: ir.Module, dtype: str) -> ir.Function:
    """``void tf_conv.col2im.<dtype>(ptr out_sample, ptr col, i64 geometry...)``: out += col's taps."""
    return _shared(module, f"tf_conv.col2im.{_SHORT[dtype]}", dtype, dtype, "scatter_add")


def _shared(module, name, dtype, x_dtype, mode):
    cache = module.__dict__.setdefault("_tf_conv_shared", {})
    if name not in cache:
        cache[name] = _emit(module, name, float_type(dtype), float_type(x_dtype), mode)
    return cache[name]


def valid_interval(b, tap, pad, stride, size, n_out):
    """[lo, hi) of the outputs o with 0 <= o * stride + tap - pad < size (i64 values)."""
    # lo = max(0, ceil((pad - tap) / stride)); a negative numerator truncates to <= 0, clamped to 0
    lo = imax(b, b.sdiv(b.add(b.sub(pad, tap), b.sub(stride, i64(1))), stride), 0)
    last = b.sub(b.add(b.sub(size, i64(1)), pad), tap)            # largest o * stride that fits
    hi = b.select(b.icmp_signed("<", last, i64(0)), i64(0), b.add(b.sdiv(last, stride), i64(1)))
    return lo, imax(b, imin(b, hi, n_out), lo)


def _emit(module, name, T, TX, mode):
    fn = new_function(module, name, 2, [I64] * len(_GEOMETRY), linkage="internal")
    fn.attributes.add("noinline")           # one copy shared by the module's convolutions
    first, second = fn.args[:2]
    g = dict(zip(_GEOMETRY, fn.args[2:]))
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    p = g["col_rs"]
    contiguous = b.icmp_signed("==", b.mul(g["sw"], g["xs_w"]), i64(1))
    with plain_loop(b, g["c0"], g["c1"], name="c") as c:
        plane = b.mul(c, g["xs_c"])
        with plain_loop(b, 0, g["kh"], name="i") as i:
            oh_lo, oh_hi = valid_interval(b, i, g["ph"], g["sh"], g["h"], g["ho"])
            with plain_loop(b, 0, g["kw"], name="j") as j:
                row = b.add(b.mul(b.add(b.mul(b.sub(c, g["c0"]), g["kh"]), i), g["kw"]), j)
                lo, hi = valid_interval(b, j, g["pw"], g["sw"], g["w"], g["wo"])
                count = b.sub(hi, lo)
                iw0 = b.sub(b.add(b.mul(lo, g["sw"]), j), g["pw"])       # image column of output lo
                with plain_loop(b, oh_lo, oh_hi, name="oh") as oh:
                    ih = b.sub(b.add(b.mul(oh, g["sh"]), i), g["ph"])
                    img = b.add(plane, b.add(b.mul(ih, g["xs_h"]), b.mul(iw0, g["xs_w"])))
                    cell = b.add(b.mul(row, p), b.add(b.mul(oh, g["wo"]), lo))
                    with b.if_else(contiguous) as (unit, strided):
                        with unit:
                            _row_loop(b, mode, first, second, T, TX, img, i64(1), cell, count)
                        with strided:
                            _row_loop(b, mode, first, second, T, TX, img, b.mul(g["sw"], g["xs_w"]), cell, count)
    b.ret_void()
    return fn


def _row_loop(b, mode, first, second, T, TX, img, img_step, cell, count):
    """The innermost run of ``count`` output columns: with unit steps (and one dtype) a
    hand-vectorised copy or add (``vector_rows``); otherwise a scalar loop. No loop here is
    left to LLVM's vectoriser, whose runtime checks and epilogues cost compile time."""
    unit_step = isinstance(img_step, ir.Constant) and img_step.constant == 1
    if unit_step and T == TX:
        if mode == "gather":          # col[cell...] = x[img...]
            vector_rows(b, "copy", elem_ptr(b, first, cell, T), elem_ptr(b, second, img, T), count, T)
        else:                         # out[img...] += col[cell...]
            vector_rows(b, "add", elem_ptr(b, first, img, T), elem_ptr(b, second, cell, T), count, T)
        return
    with plain_loop(b, 0, count, name="ow") as u:
        at = b.add(img, u if unit_step else b.mul(u, img_step))
        slot = b.add(cell, u)
        if mode == "gather":          # first = col, second = x
            store_elem(b, convert_float(b, load_elem(b, second, at, TX), T), first, slot)
        else:                         # first = out, second = col
            total = b.fadd(load_elem(b, first, at, T), load_elem(b, second, slot, T))
            store_elem(b, total, first, at)


def _bytes(T) -> int:
    return 8 if T == F64 else 4


def vector_rows(b, op, dst, src, count, T):
    """dst[0:count] = src[...] (op "copy") or += src[...] (op "add"), inline: host-width vector
    steps, one half-width step, then scalars (rows of small images are shorter than a
    vector; a memcpy call, or masked vector steps, per row measured slower there)."""
    lanes = max(host_vector_bits() // (8 * _bytes(T)), 1)
    align = _bytes(T)

    def step(at, width):
        typ = T if width == 1 else ir.VectorType(T, width)
        d, s = elem_ptr(b, dst, at, T), elem_ptr(b, src, at, T)
        val = b.load(s, typ=typ, align=align)
        if op == "add":
            val = b.fadd(b.load(d, typ=typ, align=align), val)
        b.store(val, d, align=align)

    full = b.and_(count, i64(-lanes))
    with plain_loop(b, 0, full, lanes, name="v") as i:
        step(i, lanes)
    done = full
    if lanes >= 4:
        half = lanes // 2
        take_half = b.icmp_signed(">=", b.sub(count, full), i64(half))
        with b.if_then(take_half):
            step(full, half)
        done = b.select(take_half, b.add(full, i64(half)), full)
    with plain_loop(b, done, count, name="t") as i:
        step(i, 1)


def vector_add(module: ir.Module, T) -> ir.Function:
    """``void tf_conv.add.<T>(ptr dst, ptr src, i64 count)``: dst[i] += src[i] (``vector_rows``),
    one copy per module."""
    name = f"tf_conv.add.{'f64' if T == F64 else 'f32'}"
    if name in module.globals:
        return module.globals[name]
    fn = new_function(module, name, 2, [I64], linkage="internal")
    fn.attributes.add("noinline")
    dst, src, count = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    vector_rows(b, "add", dst, src, count, T)
    b.ret_void()
    return fn


_DOT_SUM_FLAGS = ("reassoc", "contract")   # the depth sum splits into vector lanes (as linalg's)


def dot_rows(module: ir.Module, T) -> ir.Function:
    """``void tf_conv.dots.<T>(ptr c, ptr a, ptr b, i64 m, i64 n, i64 k, i64 a_rs, i64 b_rs, i64 c_rs)``:
    c[i*c_rs + j] = sum over d < k of a[i*a_rs + d] * b[j*b_rs + d]: one dot product per output,
    both operands contiguous along the depth, which LLVM vectorises. For a few outputs and a long
    depth (a small CNN's weight gradient: 8 x 9 outputs, depth 4096) where a GEMM tile would be
    mostly padding. One copy per module."""
    name = f"tf_conv.dots.{'f64' if T == F64 else 'f32'}"
    if name in module.globals:
        return module.globals[name]
    fn = new_function(module, name, 3, [I64] * 6, linkage="internal")
    fn.attributes.add("noinline")
    c, a, bm, m, n, k, a_rs, b_rs, c_rs = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    acc = b.alloca(T, name="acc")
    with plain_loop(b, 0, m, name="i") as i:
        a_row = elem_ptr(b, a, b.mul(i, a_rs), T)
        with plain_loop(b, 0, n, name="j") as j:
            b_row = elem_ptr(b, bm, b.mul(j, b_rs), T)
            b.store(ir.Constant(T, 0.0), acc)
            with for_range(b, 0, k, name="d") as d:
                product = b.fmul(load_elem(b, a_row, d, T), load_elem(b, b_row, d, T), flags=("contract",))
                b.store(b.fadd(b.load(acc, typ=T), product, flags=_DOT_SUM_FLAGS), acc)
            store_elem(b, b.load(acc, typ=T), c, b.add(b.mul(i, c_rs), j))
    b.ret_void()
    return fn
