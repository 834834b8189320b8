"""Convolution library kernels (conv2d and its two gradients): im2col + the shared generic GEMM.

Layout NCHW, weights (O, C, kh, kw); K = C*kh*kw, P = Ho*Wo. Per sample n:

    conv2d             col (K x P) = im2col(x[n]);    out[n] (O x P) = W (O x K) @ col
    conv2d_grad_input  colg (K x P) = W^T @ g[n];     gx[n] = col2im(colg)
    conv2d_grad_weight col = im2col(x[n], channels of this range);  gw[:, range] += g[n] @ col^T

Every kernel is ``<name>_range(out, inputs..., i64 begin, i64 end)`` over independent work
units, plus ``<name>(out, inputs...)`` running all of them; the backend splits the range
across threads (``range_units``). The units are samples for conv2d and conv2d_grad_input,
and input channels for conv2d_grad_weight: a thread then im2cols only its channels and
owns a block of gw's columns, summing samples in the same order whatever the split, so
results are bit-identical for every thread count (the GEMM's depth blocking does not
depend on the column range either). With fewer than four input channels (an image's one or
three) conv2d_grad_weight splits over panels of output channels instead
(``grad_weight_row_panels``): each unit owns whole rows of gw.

``conv2d_epilogue`` (passes/fusion_conv_epilogue.py) is conv2d whose elementwise epilogue
(bias, ReLU) runs over each sample right after that sample's GEMM, while it is in cache;
``conv2d_grad_input_epilogue`` likewise after each sample's col2im (a ReLU's backward mask).
Without padding every cell of im2col's col is written, so col is zeroed only with padding.

One sample at a time keeps its col matrix (K*P elements) in L2 while the GEMM packs it.
When K*P is small, conv2d_grad_weight puts a chunk of samples side by side in col's rows
(and copies their g rows the same way) for one product of depth chunk*P, and with few
outputs (O*K <= 256) runs it as dot products (``grad_weight_chunk``): a 64x1x8x8 batch is
then one product of depth 4096 rather than 64 GEMMs whose tiles are mostly padding.
im2col/col2im (conv_im2col.py) and the GEMM (linalg.generic_gemm) are run-time-sized
functions shared by every convolution of a module, so each kernel here is a small loop of
calls: a CNN step pays LLVM's optimisation of the heavy code once. The kernels allocate
their scratch (col, packing panels) once per range call. Operands whose flattened axes
have no single stride (a permuted weight view, a g whose (Ho, Wo) do not flatten) are
copied to contiguous scratch first; x is always read in place through its strides.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from llvmlite import ir

from . import Operand, register
from .common import (I1, I8, I64, PTR, convert_float, declare, elem_ptr, float_type, i64, imax, imin, load_elem,
                     new_function, store_elem)
from .conv_im2col import col2im, dot_rows, geometry_args, im2col, vector_add
from .linalg import GemmSpec, MatrixView, choose_tiling, gemm_kind, generic_gemm, plain_loop

# the GEMM's column block: a B block of kc x nc must stay in L2 (n = P can be thousands here)
_CONV_NC_MAX = 512


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


def _round_up(x: int, to: int) -> int:
    return -(-x // to) * to


RANGED_OPS = ("conv2d", "conv2d_epilogue", "conv2d_grad_input", "conv2d_grad_input_epilogue", "conv2d_grad_weight")


def range_units(op: str, inputs: list[Operand], out: Operand) -> int:
    """How many independent work units ``<name>_range`` of a convolution kernel splits into."""
    if op == "conv2d_grad_weight":
        panels = grad_weight_row_panels(inputs[1].shape, out.shape, out.dtype)
        return inputs[1].shape[1] if panels is None else len(panels)
    return out.shape[0]                    # samples


# conv2d_grad_weight splits over input channels from this many on; with fewer (an image's 1 or
# 3 channels) over panels of output channels, every unit then reading all the input channels
_GW_MIN_CHANNEL_UNITS = 4


def grad_weight_row_panels(x_shape, w_shape, dtype) -> list[tuple[int, int]] | None:
    """The output-channel rows [r0, r1) of each work unit of conv2d_grad_weight when it splits
    over output channels (few input channels), else None (units are input channels). Panels
    are whole GEMM register tiles (MR rows), so a row's sum never depends on the split."""
    c, o = x_shape[1], w_shape[0]
    if c >= _GW_MIN_CHANNEL_UNITS or o < 2:
        return None
    k = c * w_shape[2] * w_shape[3]
    # the tile of the kernel's GEMM (m = O, n = K: its register tile depends on n alone)
    mr = choose_tiling(GemmSpec((), o, k, 1, MatrixView(0, (), 1, 1, dtype), MatrixView(0, (), k, 1, dtype),
                                dtype)).mr
    step = max(mr, -(-o // _GW_ROW_UNITS // mr) * mr)
    return [(r, min(r + step, o)) for r in range(0, o, step)]


_GW_ROW_UNITS = 8      # at most this many output-channel panels: enough for the pool's threads


def range_work(op: str, inputs: list[Operand], out: Operand) -> int:
    """Multiply-adds of one call (N * O * P * K), to decide whether threads pay off."""
    forward = op in ("conv2d", "conv2d_epilogue")
    g_shape = out.shape if forward else inputs[0].shape                      # (N, O, Ho, Wo)
    w_shape = out.shape if op == "conv2d_grad_weight" else inputs[1].shape   # (O, C, kh, kw)
    return math.prod(g_shape) * math.prod(w_shape[1:])


class _Conv:
    """Sizes of one convolution instance and the IR helpers its kernels share."""

    def __init__(self, module, x_shape, w_shape, dtype, attrs):
        self.module = module
        self.stride, self.padding = tuple(attrs["stride"]), tuple(attrs["padding"])
        self.n, self.c, self.h, self.w = x_shape
        self.o, _, self.kh, self.kw = w_shape
        self.ho, self.wo = _out_hw(x_shape, w_shape, self.stride, self.padding)
        self.taps = self.kh * self.kw
        self.k = self.c * self.taps
        self.p = self.ho * self.wo
        self.dtype = dtype
        # without padding every im2col cell is written, so col needs no zeroing
        self.pads = any(self.padding)
        self.T = float_type(dtype)
        self.elem_bytes = np.dtype(dtype).itemsize
        self.malloc = declare(module, "aligned_alloc", PTR, [I64, I64])
        self.free = declare(module, "free", ir.VoidType(), [PTR])
        self.memset = module.declare_intrinsic("llvm.memset", [PTR, I64])
        self._owned = []

    # -- scratch
    def alloc(self, b, elements, name, zero=False):
        """64-byte aligned scratch of ``elements`` (int or i64) kernel-dtype elements, freed by ``free_all``."""
        # aligned_alloc wants a multiple of the alignment; at least 64 bytes so it is never 0
        size = b.and_(b.add(b.mul(imax(b, elements, 1), i64(self.elem_bytes)), i64(63)), i64(~63))
        ptr = b.call(self.malloc, [i64(64), size], name=name)
        if zero:
            self.zero(b, ptr, elements)
        self._owned.append(ptr)
        return ptr

    def zero(self, b, ptr, elements):
        b.call(self.memset, [ptr, ir.Constant(I8, 0), b.mul(i64(elements), i64(self.elem_bytes)),
                             ir.Constant(I1, 0)])

    def free_all(self, b):
        for ptr in self._owned:
            b.call(self.free, [ptr])
        self._owned = []

    # -- operands as matrices
    def weight_matrix(self, b, w_ptr, w: Operand):
        """(pointer, row stride over O, column stride over K, dtype) of W as an O x K matrix."""
        ks = _flat_stride(w.shape[1:], w.strides[1:])
        if ks is not None:
            return elem_ptr(b, w_ptr, i64(w.offset), float_type(w.dtype)), w.strides[0], ks, w.dtype
        copy = self.alloc(b, math.prod(w.shape), "wcopy")
        self._copy(b, copy, w_ptr, w.offset, w.strides, w.shape, w.dtype)
        return copy, self.k, 1, self.dtype

    def sample_matrix(self, b, ptr, op: Operand, sample, scratch):
        """(pointer, row stride, column stride, dtype) of op[sample] (rows: axis 1, columns: the
        flattened last two axes); copied into ``scratch`` when those axes have no single stride."""
        cs = _flat_stride(op.shape[2:], op.strides[2:])
        base = b.add(i64(op.offset), b.mul(sample, i64(op.strides[0])))
        if cs is not None:
            return elem_ptr(b, ptr, base, float_type(op.dtype)), op.strides[1], cs, op.dtype
        self._copy(b, scratch, ptr, base, op.strides[1:], op.shape[1:], op.dtype)
        return scratch, math.prod(op.shape[2:]), 1, self.dtype

    def _copy(self, b, dst, src, offset, strides, shape, src_dtype):
        """dst (C order, kernel dtype) = src[offset + index . strides] over ``shape``."""
        idx = []

        def nest(axis):
            if axis == len(shape):
                s_index, d_index = i64(offset), i64(0)
                for a, v in enumerate(idx):
                    s_index = b.add(s_index, b.mul(v, i64(strides[a])))
                    d_index = b.add(b.mul(d_index, i64(shape[a])), v)
                store_elem(b, convert_float(b, load_elem(b, src, s_index, float_type(src_dtype)), self.T), dst, d_index)
                return
            with plain_loop(b, 0, shape[axis], name=f"cp{axis}") as v:
                idx.append(v)
                nest(axis + 1)
                idx.pop()

        nest(0)

    # -- shared routines
    def im2col(self, b, col, x_ptr, x: Operand, sample, c0, c1, col_rs=None):
        fn = im2col(self.module, self.dtype, x.dtype)
        base = elem_ptr(b, x_ptr, b.add(i64(x.offset), b.mul(sample, i64(x.strides[0]))), float_type(x.dtype))
        b.call(fn, [col, base] + geometry_args(c0, c1, self.h, self.w, self.kh, self.kw, self.stride, self.padding,
                                               self.ho, self.wo, x.strides[1:], col_rs))

    def col2im(self, b, out_sample, col):
        fn = col2im(self.module, self.dtype)
        b.call(fn, [out_sample, col] + geometry_args(0, self.c, self.h, self.w, self.kh, self.kw, self.stride,
                                                     self.padding, self.ho, self.wo, (self.h * self.w, self.w, 1)))


class _Gemm:
    """Calls of the module's generic GEMM for products of up to (m, n, k) with A, B of given
    dtypes; the packing scratch is allocated once by ``alloc`` and reused by every call."""

    def __init__(self, conv: _Conv, m, n, k, a_dtype, b_dtype):
        spec = GemmSpec((), m, n, k, MatrixView(0, (), k, 1, a_dtype), MatrixView(0, (), n, 1, b_dtype), conv.dtype)
        t = choose_tiling(spec)
        self.conv, self.t = conv, t
        self.fn = generic_gemm(conv.module, gemm_kind(spec, t))
        self.direct_a = gemm_kind(spec, t).direct_a
        # equal depth blocks (288 -> 2 x 144, not 256 + 32): a short last block costs a C pass
        self.kc = -(-k // -(-k // t.kc)) if k else 1
        self.mc = min(t.mc, _round_up(m, t.mr))
        self.nc = min(t.nc, _CONV_NC_MAX, _round_up(n, t.nr))

    def alloc(self, b):
        c = self.conv
        self.ap = ir.Constant(PTR, None) if self.direct_a else c.alloc(b, self.mc * self.kc, "ap")
        self.bp = c.alloc(b, _round_up(self.nc, self.t.nr) * self.kc, "bp")

    def __call__(self, b, c_ptr, c_rs, a, a_rs, a_cs, bm, b_rs, b_cs, m, n, k, rows=None):
        """C = A @ B, or only C's rows [row0, row1) (row0 a multiple of MR) given ``rows``."""
        row0, row1 = (0, m) if rows is None else rows
        args = [m, n, k, a_rs, a_cs, b_rs, b_cs, c_rs, row0, row1, self.kc, self.mc, self.nc]
        b.call(self.fn, [c_ptr, a, bm] + [i64(v) for v in args] + [self.ap, self.bp])


def _range_kernel(module, name, n_ptrs, units, noalias=True):
    """``name_range(ptr * n_ptrs, i64 begin, i64 end)`` (returned with a builder at its entry)
    and ``name(ptr * n_ptrs)`` calling it over [0, units)."""
    ranged = new_function(module, f"{name}_range", n_ptrs, [I64, I64], noalias=noalias)
    whole = new_function(module, name, n_ptrs, noalias=noalias)
    wb = ir.IRBuilder(whole.append_basic_block("entry"))
    wb.call(ranged, list(whole.args) + [i64(0), i64(units)])
    wb.ret_void()
    return ranged, ir.IRBuilder(ranged.append_basic_block("entry"))


def _fill_rows(b, conv, out_ptr, first, count, row_elements):
    """out[first*row : (first+count)*row] = 0 (rows of ``row_elements``)."""
    start = elem_ptr(b, out_ptr, b.mul(first, i64(row_elements)), conv.T)
    conv.zero(b, start, b.mul(count, i64(row_elements)))


# ---- conv2d ------------------------------------------------------------------------------------

@register("conv2d")
def emit_conv2d(module, name, inputs, out, attrs) -> ir.Function:
    """out[n] = W @ im2col(x[n]) for the samples [begin, end) of the range."""
    return _emit_conv2d(module, name, inputs, out, attrs)


@register("conv2d_epilogue")
def emit_conv2d_epilogue(module, name, inputs, out, attrs) -> ir.Function:
    """conv2d, then its elementwise epilogue (passes/fusion_conv_epilogue.py) over each sample
    as soon as the sample's GEMM has written it, in place (input 0 of the spec is the output):

        void name(ptr out, ptr x, ptr w, ptr in1, ..., ptr out1, ...)   (and name_range)

    The further inputs are contiguous buffers read through the spec's loads, like a fused
    kernel's; the further outputs follow them."""
    epilogue, n_more = _sample_epilogue(module, name, inputs[2:], out, attrs)
    return _emit_conv2d(module, name, inputs[:2], out, attrs, epilogue, n_more)


@register("conv2d_grad_input_epilogue")
def emit_conv2d_grad_input_epilogue(module, name, inputs, out, attrs) -> ir.Function:
    """conv2d_grad_input, then its elementwise epilogue (a ReLU's backward mask) over each sample
    after the sample's col2im, as ``conv2d_epilogue`` does (pointers: out, g, w, x_ref, more...)."""
    epilogue, n_more = _sample_epilogue(module, name, inputs[3:], out, attrs)
    return _emit_conv2d_grad_input(module, name, inputs[:3], out, attrs, epilogue, n_more)


def _sample_epilogue(module, name, more: list[Operand], out: Operand, attrs):
    """(``epi(out, more..., extra outs..., i64 first, i64 last)`` over samples, how many pointers
    follow the convolution's own) for the epilogue spec of ``attrs``."""
    from ..loops import emit_epilogue_range     # loops imports this package: import when used
    spec = _per_sample_spec(attrs["spec"])
    epilogue = emit_epilogue_range(module, f"{name}_epi_range", spec, [out.dtype] + [o.dtype for o in more])
    return epilogue, len(more) + len(spec.extra_outs)


def _per_sample_spec(spec):
    """The epilogue spec over (N, O, Ho * Wo) (positions as one axis, for longer vector loops;
    the fusion pass folds only epilogues whose loads allow it), its first axis the samples."""
    n, o, ho, wo = spec.space

    def merged(strides):
        return (strides[0], strides[1], strides[3] if wo != 1 else strides[2])

    loads = tuple(replace(ld, strides=merged(ld.strides)) for ld in spec.loads)
    return replace(spec, space=(n, o, ho * wo), loads=loads, out_strides=merged(spec.out_strides),
                   out_shape=(n, o, ho * wo))


def _emit_conv2d(module, name, inputs, out, attrs, epilogue=None, n_more=0) -> ir.Function:
    """conv2d's kernel; with ``epilogue`` (``epi(out, more..., begin, end)`` over samples) applied
    to each sample after its GEMM, the kernel taking ``n_more`` further pointers for it."""
    x, w = inputs[:2]
    e = _Conv(module, x.shape, w.shape, out.dtype, attrs)
    fn, b = _range_kernel(module, name, 3 + n_more, e.n, noalias=epilogue is None)
    out_ptr, x_ptr, w_ptr = fn.args[:3]
    more = list(fn.args[3:3 + n_more])
    begin, end = fn.args[-2:]
    if e.o * e.p > 0:
        with b.if_then(b.icmp_signed("<", begin, end)):
            if e.k == 0:
                _fill_rows(b, e, out_ptr, begin, b.sub(end, begin), e.o * e.p)
                if epilogue is not None:
                    b.call(epilogue, [out_ptr] + more + [begin, end])
            else:
                gemm = _Gemm(e, e.o, e.p, e.k, w.dtype, e.dtype)
                wm, w_rs, w_cs, _ = e.weight_matrix(b, w_ptr, w)
                col = e.alloc(b, e.k * e.p, "col", zero=e.pads)
                gemm.alloc(b)
                with plain_loop(b, begin, end, name="n") as n:
                    e.im2col(b, col, x_ptr, x, n, 0, e.c)
                    out_n = elem_ptr(b, out_ptr, b.mul(n, i64(e.o * e.p)), e.T)
                    gemm(b, out_n, e.p, wm, w_rs, w_cs, col, e.p, 1, e.o, e.p, e.k)
                    if epilogue is not None:            # while the sample's output is in cache
                        b.call(epilogue, [out_ptr] + more + [n, b.add(n, i64(1))])
                e.free_all(b)
    b.ret_void()
    return module.globals[name]


# ---- conv2d_grad_input -------------------------------------------------------------------------

@register("conv2d_grad_input")
def emit_conv2d_grad_input(module, name, inputs, out, attrs) -> ir.Function:
    """gx[n] = col2im(W^T @ g[n]) for the samples [begin, end) of the range."""
    return _emit_conv2d_grad_input(module, name, inputs, out, attrs)


def _emit_conv2d_grad_input(module, name, inputs, out, attrs, epilogue=None, n_more=0) -> ir.Function:
    """conv2d_grad_input's kernel; with ``epilogue`` applied to each sample after its col2im
    (see ``_emit_conv2d``)."""
    g, w, _x_ref = inputs
    e = _Conv(module, out.shape, w.shape, out.dtype, attrs)
    fn, b = _range_kernel(module, name, 4 + n_more, e.n, noalias=epilogue is None)
    out_ptr, g_ptr, w_ptr = fn.args[:3]
    more = list(fn.args[4:4 + n_more])
    begin, end = fn.args[-2:]
    plane = e.c * e.h * e.w
    if plane > 0:
        with b.if_then(b.icmp_signed("<", begin, end)):
            _fill_rows(b, e, out_ptr, begin, b.sub(end, begin), plane)
            if e.o * e.p * e.k > 0:
                gemm = _Gemm(e, e.k, e.p, e.o, w.dtype, g.dtype)
                wm, w_rs, w_cs, _ = e.weight_matrix(b, w_ptr, w)
                colg = e.alloc(b, e.k * e.p, "colg")
                g_scratch = e.alloc(b, e.o * e.p, "gcopy") if _flat_stride(g.shape[2:], g.strides[2:]) is None \
                    else None
                gemm.alloc(b)
                with plain_loop(b, begin, end, name="n") as n:
                    gm, g_rs, g_cs, _ = e.sample_matrix(b, g_ptr, g, n, g_scratch)
                    gemm(b, colg, e.p, wm, w_cs, w_rs, gm, g_rs, g_cs, e.k, e.p, e.o)
                    e.col2im(b, elem_ptr(b, out_ptr, b.mul(n, i64(plane)), e.T), colg)
                    if epilogue is not None:            # while the sample's gradient is in cache
                        b.call(epilogue, [out_ptr] + more + [n, b.add(n, i64(1))])
                e.free_all(b)
            elif epilogue is not None:
                b.call(epilogue, [out_ptr] + more + [begin, end])
    b.ret_void()
    return module.globals[name]


# ---- conv2d_grad_weight ------------------------------------------------------------------------

@register("conv2d_grad_weight")
def emit_conv2d_grad_weight(module, name, inputs, out, attrs) -> ir.Function:
    """gw[rows, channels] = sum over samples, in order, of g[n] @ im2col(x[n])^T, for the input
    channels [begin, end) of the range (all rows), or with few input channels for the output
    rows of the panels [begin, end) (all channels; ``grad_weight_row_panels``).

    Sample 0 writes its product straight into gw; every later sample's goes to a partial
    tile that is then added, so the sum order is the same whatever the split."""
    g, x, _w_ref = inputs
    e = _Conv(module, x.shape, out.shape, out.dtype, attrs)
    panels = grad_weight_row_panels(x.shape, out.shape, out.dtype)
    fn, b = _range_kernel(module, name, 4, e.c if panels is None else len(panels))
    out_ptr, g_ptr, x_ptr, _, begin, end = fn.args
    if e.o * e.taps > 0:
        with b.if_then(b.icmp_signed("<", begin, end)):
            if panels is None:
                c0, c1, r0, r1 = begin, end, i64(0), i64(e.o)
            else:
                step = panels[0][1] - panels[0][0]
                c0, c1 = i64(0), i64(e.c)
                r0, r1 = b.mul(begin, i64(step)), imin(b, b.mul(end, i64(step)), e.o)
            kt = b.mul(b.sub(c1, c0), i64(e.taps))              # this range's columns of gw
            out_cols = elem_ptr(b, out_ptr, b.mul(c0, i64(e.taps)), e.T)
            if e.n * e.p == 0:
                with plain_loop(b, r0, r1, name="o") as o:
                    e.zero(b, elem_ptr(b, out_cols, b.mul(o, i64(e.k)), e.T), kt)
            else:
                _grad_weight_samples(b, e, g, x, out_cols, g_ptr, x_ptr, (c0, c1), (r0, r1), kt)
    b.ret_void()
    return module.globals[name]


def grad_weight_chunk(n, k, p, elem_bytes) -> int:
    """Samples per GEMM of conv2d_grad_weight: one, unless K x P is small, when several
    samples side by side in col's rows make one long-depth product (a 64x1x8x8 batch: one
    GEMM of depth 4096 instead of 64 of depth 64). Fixed by the shapes alone, never by the
    thread split, so the sum order does not depend on the thread count."""
    return max(1, min(n, _GW_CHUNK_BYTES // max(k * p * elem_bytes, 1)))


_GW_CHUNK_BYTES = 256 << 10      # col of a chunk (all channels) stays well inside L2
_DOT_MAX_OUTPUTS = 256           # as linalg.dot_products: m * n at most ...
_DOT_MIN_DEPTH = 256             # ... and a depth of at least


def _grad_weight_samples(b, e, g, x, out_cols, g_ptr, x_ptr, channels, rows, kt):
    """out_cols[rows, :kt] = the sum over samples of g[n][rows] @ col(x[n], channels)^T."""
    (begin, end), (r0, r1) = channels, rows
    m = b.sub(r1, r0)
    nb = grad_weight_chunk(e.n, e.k, e.p, e.elem_bytes)
    width = nb * e.p                                     # col's and gT's row stride
    # few outputs, long depth: dot products (decided on the full K, never on the thread split)
    dots = nb > 1 and e.o * e.k <= _DOT_MAX_OUTPUTS and width >= _DOT_MIN_DEPTH
    gemm = None if dots else _Gemm(e, e.o, e.k, width, g.dtype if nb == 1 else e.dtype, e.dtype)
    col = e.alloc(b, b.mul(kt, i64(width)), "col", zero=e.pads)
    part = e.alloc(b, b.mul(kt, i64(e.o)), "part")           # row o of the partial at o * kt
    g_flat = _flat_stride(g.shape[2:], g.strides[2:]) is not None
    g_scratch = e.alloc(b, e.o * width, "gT") if nb > 1 or not g_flat else None
    if gemm is not None:
        gemm.alloc(b)

    def product(n0, c_ptr, c_rs):
        """c = g[n0 : n0+count] @ col^T over the chunk of samples starting at n0."""
        if nb == 1:
            e.im2col(b, col, x_ptr, x, n0, begin, end)
            gm, g_rs, g_cs, _ = e.sample_matrix(b, g_ptr, g, n0, g_scratch)
            gemm(b, c_ptr, c_rs, gm, g_rs, g_cs, col, 1, e.p, e.o, kt, e.p, rows)
            return
        count = imin(b, nb, b.sub(i64(e.n), n0))
        with plain_loop(b, 0, count, name="s") as s:
            sample = b.add(n0, s)
            e.im2col(b, elem_ptr(b, col, b.mul(s, i64(e.p)), e.T), x_ptr, x, sample, begin, end, width)
            _copy_g_rows(b, e, g, g_ptr, sample, elem_ptr(b, g_scratch, b.mul(s, i64(e.p)), e.T), width, rows)
        depth = b.mul(count, i64(e.p))
        if dots:
            b.call(dot_rows(e.module, e.T), [elem_ptr(b, c_ptr, b.mul(r0, i64(c_rs)), e.T),
                                             elem_ptr(b, g_scratch, b.mul(r0, i64(width)), e.T), col, m, kt, depth,
                                             i64(width), i64(width), i64(c_rs)])
        else:
            gemm(b, c_ptr, c_rs, g_scratch, width, 1, col, 1, width, e.o, kt, depth, rows)

    product(i64(0), out_cols, e.k)
    with plain_loop(b, nb, e.n, nb, name="n") as n0:
        product(n0, part, kt)
        with plain_loop(b, r0, r1, name="o") as o:
            b.call(vector_add(e.module, e.T), [elem_ptr(b, out_cols, b.mul(o, i64(e.k)), e.T),
                                               elem_ptr(b, part, b.mul(o, kt), e.T), kt])
    e.free_all(b)


def _copy_g_rows(b, e, g: Operand, g_ptr, sample, dst, row_stride, rows):
    """dst[o * row_stride + q] = g[sample, o] flattened over (Ho, Wo), in the kernel dtype, for
    the output channels o in ``rows``."""
    gs = g.strides
    base = b.add(i64(g.offset), b.mul(sample, i64(gs[0])))
    with plain_loop(b, rows[0], rows[1], name="go") as o:
        row = b.add(base, b.mul(o, i64(gs[1])))
        with plain_loop(b, 0, e.ho, name="gh") as oh:
            src = b.add(row, b.mul(oh, i64(gs[2])))
            to = b.add(b.mul(o, i64(row_stride)), b.mul(oh, i64(e.wo)))
            with plain_loop(b, 0, e.wo, name="gw") as ow:
                val = load_elem(b, g_ptr, b.add(src, b.mul(ow, i64(gs[3]))), float_type(g.dtype))
                store_elem(b, convert_float(b, val, e.T), dst, b.add(to, ow))
