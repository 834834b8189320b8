"""Convolution library kernels (conv2d and its two gradients) as im2col + the packed GEMM.

Layout NCHW, weights (O, C, kh, kw); K = C*kh*kw, P = Ho*Wo. Samples are processed in
chunks whose im2col scratch stays under ``_SCRATCH_BYTES`` (one chunk for small batches):

    conv2d             col[s] (K x P) from x;  out[n] (O x P) = W (O x K) @ col[s]
    conv2d_grad_weight colT (K x chunk*P), gT (O x chunk*P);  gw (O x K) += gT @ colT^T
    conv2d_grad_input  colg[s] (K x P) = W^T (K x O) @ g[n];  gx = col2im(colg)  (scatter-add)

The GEMMs are ``linalg.emit_gemm`` instances (same microkernel as matmul), called through
their ``_range`` entry so a partial last chunk runs fewer batch entries. Operands whose
flattened axes have no single stride (e.g. a permuted weight view) are first copied to a
contiguous scratch array; every other read goes through the operand's own strides.
Outer loops are ``plain_loop``s (no LLVM vectorisation or unrolling: compile time); the innermost
im2col and copy loops stay open to the vectoriser.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from . import Operand, register
from .common import (I64, PTR, convert_float, declare, elem_ptr, float_type, for_range, i64, imax, imin,
                     load_elem, new_function, store_elem)
from .linalg import GemmSpec, MatrixView, choose_tiling, emit_gemm, plain_loop

_SCRATCH_BYTES = 8 << 20      # im2col scratch per chunk of samples


def _flat_stride(shape, strides):
    """The single stride of the flattened axes ``shape`` (C order), or None if there is none."""
    axes = [(n, s) for n, s in zip(shape, strides) if n != 1]
    if not axes:
        return 1
    for (n_outer, s_outer), (n_inner, s_inner) in zip(axes, axes[1:]):
        if s_outer != n_inner * s_inner:
            return None
    return axes[-1][1]


def _out_hw(x_shape, w_shape, stride, padding):
    (h, w), (kh, kw) = x_shape[2:], w_shape[2:]
    return (h + 2 * padding[0] - kh) // stride[0] + 1, (w + 2 * padding[1] - kw) // stride[1] + 1


class _ConvEmitter:
    """State shared by the three kernels: sizes, scratch allocation, the im2col loop nest."""

    def __init__(self, module, name, x_shape, w_shape, dtype, attrs):
        self.module, self.name = module, name
        self.stride, self.padding = tuple(attrs["stride"]), tuple(attrs["padding"])
        self.n, self.c, self.h, self.w = x_shape
        self.o, _, self.kh, self.kw = w_shape
        self.ho, self.wo = _out_hw(x_shape, w_shape, self.stride, self.padding)
        self.k = self.c * self.kh * self.kw
        self.p = self.ho * self.wo
        self.dtype = dtype
        self.T = float_type(dtype)
        self.elem_bytes = np.dtype(dtype).itemsize
        per_sample = max(self.k * self.p * self.elem_bytes, 1)
        self.chunk = max(1, min(self.n, _SCRATCH_BYTES // per_sample))
        self.malloc = declare(module, "aligned_alloc", PTR, [I64, I64])
        self.free = declare(module, "free", ir.VoidType(), [PTR])

    def alloc(self, b, elements, name):
        size = -(-max(elements, 1) * self.elem_bytes // 64) * 64
        return b.call(self.malloc, [i64(64), i64(size)], name=name)

    def copy_contiguous(self, b, src, op: Operand, name):
        """A malloc'ed C-order copy of operand ``op`` in the kernel dtype (caller frees it)."""
        dst = self.alloc(b, math.prod(op.shape), name)
        shape, strides = op.shape, op.strides
        idx = []

        def nest(axis):
            if axis == len(shape):
                src_index = i64(op.offset)
                dst_index = i64(0)
                for a, v in enumerate(idx):
                    src_index = b.add(src_index, b.mul(v, i64(strides[a])))
                    dst_index = b.add(b.mul(dst_index, i64(shape[a])), v)
                val = convert_float(b, load_elem(b, src, src_index, float_type(op.dtype)), self.T)
                store_elem(b, val, dst, dst_index)
                return
            with plain_loop(b, 0, shape[axis], name=f"cp{axis}") as v:
                idx.append(v)
                nest(axis + 1)
                idx.pop()

        nest(0)
        return dst

    def weight_matrix(self, b, w_ptr, w: Operand):
        """(pointer, offset, row stride over O, column stride over K, dtype, owned) for W as O x K."""
        ks = _flat_stride(w.shape[1:], w.strides[1:])
        if ks is not None:
            return w_ptr, w.offset, w.strides[0], ks, w.dtype, False
        copy = self.copy_contiguous(b, w_ptr, w, "wcopy")
        return copy, 0, self.k, 1, self.dtype, True

    def source_index(self, b, oh, ow, i, j):
        """(clamped ih, clamped iw, in-bounds flag) of kernel tap (i, j) at output (oh, ow):
        out-of-range taps read a clamped (valid) address and are masked by the flag."""
        ih = b.add(b.mul(oh, i64(self.stride[0])), b.sub(i, i64(self.padding[0])))
        iw = b.add(b.mul(ow, i64(self.stride[1])), b.sub(j, i64(self.padding[1])))
        ok_h = b.and_(b.icmp_signed(">=", ih, i64(0)), b.icmp_signed("<", ih, i64(self.h)))
        ok_w = b.and_(b.icmp_signed(">=", iw, i64(0)), b.icmp_signed("<", iw, i64(self.w)))
        clamp = lambda v, hi: imin(b, imax(b, v, 0), hi - 1)  # noqa: E731
        return clamp(ih, self.h), clamp(iw, self.w), b.and_(ok_h, ok_w)

    def im2col_taps(self, b, body):
        """Calls body(c, i, j, oh, ow, kidx, pidx) inside the (c, i, j, oh, ow) loop nest."""
        with plain_loop(b, 0, self.c, name="c") as c:
            with plain_loop(b, 0, self.kh, name="i") as i:
                with plain_loop(b, 0, self.kw, name="j") as j:
                    kidx = b.add(b.mul(b.add(b.mul(c, i64(self.kh)), i), i64(self.kw)), j)
                    with plain_loop(b, 0, self.ho, name="oh") as oh:
                        with for_range(b, 0, self.wo, name="ow") as ow:
                            pidx = b.add(b.mul(oh, i64(self.wo)), ow)
                            body(c, i, j, oh, ow, kidx, pidx)

    def gather_x(self, b, x_ptr, x: Operand, sample, c, i, j, oh, ow):
        """x[sample, c, ih, iw] converted to the kernel dtype, 0 where the tap is padding."""
        ih, iw, ok = self.source_index(b, oh, ow, i, j)
        s = x.strides
        index = b.add(i64(x.offset), b.add(b.add(b.mul(sample, i64(s[0])), b.mul(c, i64(s[1]))),
                                          b.add(b.mul(ih, i64(s[2])), b.mul(iw, i64(s[3])))))
        val = convert_float(b, load_elem(b, x_ptr, index, float_type(x.dtype)), self.T)
        return b.select(ok, val, ir.Constant(self.T, 0.0))

    def chunks(self, b):
        """Loop over sample chunks; yields (first sample n0, samples in this chunk nb)."""
        return plain_loop(b, 0, self.n, self.chunk, name="n0")


def _gemm_units_per_entry(spec: GemmSpec) -> int:
    return -(-spec.m // choose_tiling(spec).mr)


# ---- conv2d ------------------------------------------------------------------------------------

@register("conv2d")
def emit_conv2d(module, name, inputs, out, attrs) -> ir.Function:
    x, w = inputs
    e = _ConvEmitter(module, name, x.shape, w.shape, out.dtype, attrs)
    fn = new_function(module, name, 3)
    out_ptr, x_ptr, w_ptr = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    if e.n * e.o * e.p == 0:
        b.ret_void()
        return fn
    wm, w_off, w_rs, w_cs, w_dtype, w_owned = e.weight_matrix(b, w_ptr, w)
    spec = GemmSpec((e.chunk,), e.o, e.p, e.k, MatrixView(w_off, (0,), w_rs, w_cs, w_dtype),
                    MatrixView(0, (e.k * e.p,), e.p, 1, e.dtype), e.dtype)
    emit_gemm(module, f"{name}.gemm", spec)
    gemm_range = module.globals[f"{name}.gemm_range"]
    col = e.alloc(b, e.chunk * e.k * e.p, "col")
    with e.chunks(b) as n0:
        nb = imin(b, e.chunk, b.sub(i64(e.n), n0))
        with plain_loop(b, 0, nb, name="s") as s:
            col_s = elem_ptr(b, col, b.mul(s, i64(e.k * e.p)), e.T)

            def write(c, i, j, oh, ow, kidx, pidx):
                val = e.gather_x(b, x_ptr, x, b.add(n0, s), c, i, j, oh, ow)
                store_elem(b, val, col_s, b.add(b.mul(kidx, i64(e.p)), pidx))

            e.im2col_taps(b, write)
        out_chunk = elem_ptr(b, out_ptr, b.mul(n0, i64(e.o * e.p)), e.T)
        units = b.mul(nb, i64(_gemm_units_per_entry(spec)))
        b.call(gemm_range, [out_chunk, wm, col, i64(0), units])
    b.call(e.free, [col])
    if w_owned:
        b.call(e.free, [wm])
    b.ret_void()
    return fn


# ---- conv2d_grad_weight ------------------------------------------------------------------------

@register("conv2d_grad_weight")
def emit_conv2d_grad_weight(module, name, inputs, out, attrs) -> ir.Function:
    g, x, _w_ref = inputs
    e = _ConvEmitter(module, name, x.shape, out.shape, out.dtype, attrs)
    fn = new_function(module, name, 4)
    out_ptr, g_ptr, x_ptr, _ = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    total = e.o * e.k
    if total == 0:
        b.ret_void()
        return fn
    width = e.chunk * e.p                               # the GEMM depth: samples x positions
    spec = GemmSpec((), e.o, e.k, width, MatrixView(0, (), width, 1, e.dtype),
                    MatrixView(0, (), 1, width, e.dtype), e.dtype)
    emit_gemm(module, f"{name}.gemm", spec)
    gemm = module.globals[f"{name}.gemm"]
    col_t = e.alloc(b, e.k * width, "colT")             # (K, chunk, P)
    g_t = e.alloc(b, e.o * width, "gT")                 # (O, chunk, P)
    part = e.alloc(b, total, "part") if e.n > e.chunk else None
    zero = ir.Constant(e.T, 0.0)
    with for_range(b, 0, total, name="z") as z:
        store_elem(b, zero, out_ptr, z)
    with e.chunks(b) as n0:
        nb = imin(b, e.chunk, b.sub(i64(e.n), n0))
        # a partial last chunk leaves stale columns in colT: zero gT's so they add nothing
        with plain_loop(b, 0, e.o, name="o") as o:
            with plain_loop(b, 0, e.chunk, name="s") as s:
                with for_range(b, 0, e.p, name="q") as q:
                    gs = g.strides
                    oh, ow = b.sdiv(q, i64(e.wo)), b.srem(q, i64(e.wo))
                    sample = imin(b, b.add(n0, s), e.n - 1)
                    index = b.add(i64(g.offset), b.add(b.add(b.mul(sample, i64(gs[0])), b.mul(o, i64(gs[1]))),
                                                      b.add(b.mul(oh, i64(gs[2])), b.mul(ow, i64(gs[3])))))
                    val = convert_float(b, load_elem(b, g_ptr, index, float_type(g.dtype)), e.T)
                    val = b.select(b.icmp_signed("<", s, nb), val, zero)
                    store_elem(b, val, g_t, b.add(b.mul(b.add(b.mul(o, i64(e.chunk)), s), i64(e.p)), q))
        with plain_loop(b, 0, nb, name="s") as s:

            def write(c, i, j, oh, ow, kidx, pidx):
                val = e.gather_x(b, x_ptr, x, b.add(n0, s), c, i, j, oh, ow)
                dst = b.add(b.mul(b.add(b.mul(kidx, i64(e.chunk)), s), i64(e.p)), pidx)
                store_elem(b, val, col_t, dst)

            e.im2col_taps(b, write)
        if part is None:
            b.call(gemm, [out_ptr, g_t, col_t])
        else:
            b.call(gemm, [part, g_t, col_t])
            with for_range(b, 0, total, name="acc") as z:
                store_elem(b, b.fadd(load_elem(b, out_ptr, z, e.T), load_elem(b, part, z, e.T)), out_ptr, z)
    for ptr in (col_t, g_t) + ((part,) if part is not None else ()):
        b.call(e.free, [ptr])
    b.ret_void()
    return fn


# ---- conv2d_grad_input -------------------------------------------------------------------------

@register("conv2d_grad_input")
def emit_conv2d_grad_input(module, name, inputs, out, attrs) -> ir.Function:
    g, w, _x_ref = inputs
    e = _ConvEmitter(module, name, out.shape, w.shape, out.dtype, attrs)
    fn = new_function(module, name, 4)
    out_ptr, g_ptr, w_ptr, _ = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    zero = ir.Constant(e.T, 0.0)
    with for_range(b, 0, math.prod(out.shape), name="z") as z:
        store_elem(b, zero, out_ptr, z)
    if e.n * e.o * e.p * e.k == 0:
        b.ret_void()
        return fn
    wm, w_off, w_rs, w_cs, w_dtype, w_owned = e.weight_matrix(b, w_ptr, w)
    # g[n] as an O x P matrix needs one stride over (Ho, Wo); else work on a contiguous copy
    g_ps = _flat_stride(g.shape[2:], g.strides[2:])
    if g_ps is None:
        gm, g_view = e.copy_contiguous(b, g_ptr, g, "gcopy"), (0, e.o * e.p, e.p, 1, e.dtype)
    else:
        gm, g_view = g_ptr, (g.offset, g.strides[0], g.strides[1], g_ps, g.dtype)
    g_off, g_bs, g_rs, g_cs, g_dtype = g_view
    # colg[s] (K x P) = W^T (K x O) @ g[n0 + s] (O x P); the chunk start moves the g pointer
    spec = GemmSpec((e.chunk,), e.k, e.p, e.o, MatrixView(w_off, (0,), w_cs, w_rs, w_dtype),
                    MatrixView(g_off, (g_bs,), g_rs, g_cs, g_dtype), e.dtype)
    emit_gemm(module, f"{name}.gemm", spec)
    gemm_range = module.globals[f"{name}.gemm_range"]
    colg = e.alloc(b, e.chunk * e.k * e.p, "colg")
    g_elem = float_type(g_dtype)
    with e.chunks(b) as n0:
        nb = imin(b, e.chunk, b.sub(i64(e.n), n0))
        g_chunk = elem_ptr(b, gm, b.mul(n0, i64(g_bs)), g_elem)
        units = b.mul(nb, i64(_gemm_units_per_entry(spec)))
        b.call(gemm_range, [colg, wm, g_chunk, i64(0), units])
        with plain_loop(b, 0, nb, name="s") as s:
            col_s = elem_ptr(b, colg, b.mul(s, i64(e.k * e.p)), e.T)
            plane = b.mul(b.add(n0, s), i64(e.c * e.h * e.w))

            def scatter(c, i, j, oh, ow, kidx, pidx):
                ih, iw, ok = e.source_index(b, oh, ow, i, j)
                val = load_elem(b, col_s, b.add(b.mul(kidx, i64(e.p)), pidx), e.T)
                dst = b.add(plane, b.add(b.mul(b.add(b.mul(c, i64(e.h)), ih), i64(e.w)), iw))
                with b.if_then(ok):
                    store_elem(b, b.fadd(load_elem(b, out_ptr, dst, e.T), val), out_ptr, dst)

            e.im2col_taps(b, scatter)
    b.call(e.free, [colg])
    if w_owned:
        b.call(e.free, [wm])
    if g_ps is None:
        b.call(e.free, [gm])
    b.ret_void()
    return fn
