"""Triton convolution library kernels (conv2d and its two gradients) as im2col + the matmul
kernel of linalg.py; layout NCHW, weights (O, C, kh, kw)."""
from __future__ import annotations

from ...common import Operand, contiguous_strides
from ..source import ident
from . import register
from .common import (INT32_LIMIT, KernelLaunch, Scratch, _convert, _flat_kernel, _flat_launch,
                     _require_float, _single, _size, _span, _strided_copy_kernel, _tl)
from .linalg import matmul_kernel

# ---- convolution: im2col + matmul ---------------------------------------------------------

def _conv_geometry(x_shape, w_shape, stride, padding):
    n, c, h, wd = (int(d) for d in x_shape)
    o, _, kh, kw = (int(d) for d in w_shape)
    sh, sw = (int(s) for s in stride)
    ph, pw = (int(p) for p in padding)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    return n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo


def _im2col_kernel(kname, x: Operand, geo, rows_first: bool, dtype):
    """col = im2col(x), zero padding: with rows_first the layout is (N, C*kh*kw, Ho*Wo) (for
    conv2d), else (N*Ho*Wo, C*kh*kw) (for the weight gradient). Flat index i over that layout."""
    n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo = geo
    ckk, p = c * kh * kw, ho * wo
    total = n * ckk * p
    if rows_first:
        decomp = [f"s = i // {ckk * p}", f"q = (i // {p}) % {ckk}", f"pix = i % {p}"]
    else:
        decomp = [f"s = i // {p * ckk}", f"pix = (i // {ckk}) % {p}", f"q = i % {ckk}"]
    sn, sc, shh, sww = x.strides
    body = decomp + [f"ch = q // {kh * kw}", f"ti = (q // {kw}) % {kh}", f"tj = q % {kw}",
                     f"hh = (pix // {wo}) * {sh} - {ph} + ti", f"ww = (pix % {wo}) * {sw} - {pw} + tj",
                     f"ok = mask & (hh >= 0) & (hh < {h}) & (ww >= 0) & (ww < {wd})",
                     f"v = tl.load(in0_ptr + {x.offset} + s * {sn} + ch * {sc} + hh * {shh} + ww * {sww}, "
                     "mask=ok, other=0.0)",
                     f"tl.store(out_ptr + i, {_convert('v', x.dtype, dtype)}, mask=mask)"]
    wide = max(total, _span(x)) > INT32_LIMIT
    return _flat_kernel(kname, 2, total, body, wide), total


def _matrix_view(op: Operand, split: int) -> Operand | None:
    """``op`` seen as a matrix (prod(shape[:split]), prod(shape[split:])) without a copy, or None
    when the axes on one side do not merge into a single stride."""
    def merged(shape, strides):
        dims = [(int(d), int(s)) for d, s in zip(shape, strides) if int(d) != 1]
        if not dims:
            return _size(shape), 0
        for (d0, s0), (d1, s1) in zip(dims, dims[1:]):
            if s0 != s1 * d1:
                return None
        return _size(shape), dims[-1][1]
    rows = merged(op.shape[:split], op.strides[:split])
    cols = merged(op.shape[split:], op.strides[split:])
    if rows is None or cols is None:
        return None
    return Operand((rows[0], cols[0]), (rows[1], cols[1]), op.offset, op.dtype)


class _Plan:
    """Builds a multi-launch op: kernel texts, launches and scratch buffers."""

    def __init__(self, name):
        self.base = ident(name)
        self.text, self.launches, self.scratch = "", [], []

    def new_scratch(self, shape, dtype) -> str:
        self.scratch.append(Scratch(tuple(int(d) for d in shape), dtype))
        return f"scratch{len(self.scratch) - 1}"

    def add_flat(self, suffix, text_total, buffers):
        text, total = text_total
        self.text += text
        self.launches.append(_flat_launch(f"{self.base}_{suffix}", total, buffers))

    def contiguous(self, suffix, op: Operand, buffer: str) -> str:
        """A contiguous scratch copy of ``op`` (when its axes do not merge into a matrix)."""
        dst = self.new_scratch(op.shape, op.dtype)
        kname = f"{self.base}_{suffix}"
        self.add_flat(suffix, _strided_copy_kernel(kname, op.shape, op, op.strides, op.offset,
                                                   contiguous_strides(op.shape), 0, op.dtype), [dst, buffer])
        return dst

    def matrix(self, suffix, op: Operand, buffer: str, split: int):
        """(buffer, matrix Operand) for ``op`` viewed as a matrix, copying only if needed."""
        view = _matrix_view(op, split)
        if view is not None:
            return buffer, view
        buf = self.contiguous(suffix, op, buffer)
        return buf, _matrix_view(Operand(op.shape, contiguous_strides(op.shape), 0, op.dtype), split)

    def matmul(self, suffix, out_buf, a_buf, a: Operand, b_buf, b: Operand, out_dtype, batch,
               a_bstrides, b_bstrides):
        kname = f"{self.base}_{suffix}"
        text, grid, meta, tune = matmul_kernel(kname, a, b, out_dtype, batch, a_bstrides, b_bstrides)
        self.text += text
        self.launches.append(KernelLaunch(kname, grid, (out_buf, a_buf, b_buf), (), meta, tune))

    def result(self):
        return _single(self.text, self.launches, self.scratch)

@register("conv2d")
def emit_conv2d(name, inputs, out, attrs):
    """out[n] (O, Ho*Wo) = W (O, C*kh*kw) @ col[n] (C*kh*kw, Ho*Wo): im2col, then one batched
    matmul whose output layout is exactly NCHW."""
    x, w = inputs
    _require_float(out.dtype, "conv2d")
    geo = _conv_geometry(x.shape, w.shape, attrs["stride"], attrs["padding"])
    n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo = geo
    ckk, p = c * kh * kw, ho * wo
    plan = _Plan(name)
    col = plan.new_scratch((n, ckk, p), out.dtype)
    plan.add_flat("im2col", _im2col_kernel(f"{plan.base}_im2col", x, geo, True, out.dtype), [col, "in0"])
    w_buf, wmat = plan.matrix("wcopy", w, "in1", 1)
    colm = Operand((ckk, p), (p, 1), 0, out.dtype)
    plan.matmul("gemm", "out", w_buf, wmat, col, colm, out.dtype, (n,), (0,), (ckk * p,))
    return plan.result()


@register("conv2d_grad_weight")
def emit_conv2d_grad_weight(name, inputs, out, attrs):
    """gw (O, C*kh*kw) = gT (O, N*Ho*Wo) @ col (N*Ho*Wo, C*kh*kw): g is copied to (O, N, P)."""
    g, x, w_ref = inputs
    _require_float(out.dtype, "conv2d_grad_weight")
    geo = _conv_geometry(x.shape, out.shape, attrs["stride"], attrs["padding"])
    n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo = geo
    ckk, p = c * kh * kw, ho * wo
    plan = _Plan(name)
    col = plan.new_scratch((n * p, ckk), out.dtype)
    plan.add_flat("im2col", _im2col_kernel(f"{plan.base}_im2col", x, geo, False, out.dtype), [col, "in1"])
    # g as (O, N, Ho, Wo): its (N, Ho, Wo) axes merge into one K axis only after a copy in general
    g_t = Operand((o, n, ho, wo), (g.strides[1], g.strides[0], g.strides[2], g.strides[3]), g.offset, g.dtype)
    g_buf, gmat = plan.matrix("gcopy", g_t, "in0", 1)
    colm = Operand((n * p, ckk), (ckk, 1), 0, out.dtype)
    plan.matmul("gemm", "out", g_buf, gmat, col, colm, out.dtype, (), (), ())
    return plan.result()


def _col2im_kernel(kname, geo, dtype):
    """dx[n, c, h, w] = sum over the taps (i, j) whose output pixel (oh, ow) lands on (h, w)
    of colg[n, c*kh*kw + i*kw + j, oh*Wo + ow] (a gather: no atomics, deterministic)."""
    n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo = geo
    ckk, p = c * kh * kw, ho * wo
    total = n * c * h * wd
    body = [f"s = i // {c * h * wd}", f"ch = (i // {h * wd}) % {c}", f"hh = (i // {wd}) % {h}",
            f"ww = i % {wd}", f"acc = tl.zeros([BLOCK], {_tl(dtype)})",
            f"for ti in tl.static_range({kh}):",
            f"    th = hh + {ph} - ti",
            f"    oh = th // {sh}",
            f"    okh = (th >= 0) & (th % {sh} == 0) & (oh < {ho})",
            f"    for tj in tl.static_range({kw}):",
            f"        tw = ww + {pw} - tj",
            f"        ow = tw // {sw}",
            f"        ok = mask & okh & (tw >= 0) & (tw % {sw} == 0) & (ow < {wo})",
            f"        src = s * {ckk * p} + (ch * {kh * kw} + ti * {kw} + tj) * {p} + oh * {wo} + ow",
            "        acc += tl.load(in0_ptr + src, mask=ok, other=0.0)",
            "tl.store(out_ptr + i, acc, mask=mask)"]
    return _flat_kernel(kname, 2, total, body, n * ckk * p > INT32_LIMIT), total


@register("conv2d_grad_input")
def emit_conv2d_grad_input(name, inputs, out, attrs):
    """colg[n] (C*kh*kw, Ho*Wo) = W^T @ g[n] (a transposed view of W, no copy), then col2im."""
    g, w, x_ref = inputs
    _require_float(out.dtype, "conv2d_grad_input")
    geo = _conv_geometry(out.shape, w.shape, attrs["stride"], attrs["padding"])
    n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo = geo
    ckk, p = c * kh * kw, ho * wo
    plan = _Plan(name)
    w_buf, wmat = plan.matrix("wcopy", w, "in1", 1)
    wt = Operand((ckk, o), (wmat.strides[1], wmat.strides[0]), wmat.offset, wmat.dtype)
    g_flat = Operand((n, o, ho, wo), tuple(g.strides), g.offset, g.dtype)
    view = _matrix_view(Operand((o, ho, wo), tuple(g.strides[1:]), g.offset, g.dtype), 1)
    if view is None:
        g_buf = plan.contiguous("gcopy", g_flat, "in0")
        gm, g_bstride = Operand((o, p), (p, 1), 0, g.dtype), o * p
    else:
        g_buf, gm, g_bstride = "in0", view, g.strides[0]
    colg = plan.new_scratch((n, ckk, p), out.dtype)
    plan.matmul("gemm", colg, w_buf, wt, g_buf, gm, out.dtype, (n,), (0,), (g_bstride,))
    plan.add_flat("col2im", _col2im_kernel(f"{plan.base}_col2im", geo, out.dtype), ["out", colg])
    return plan.result()
