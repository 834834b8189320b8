"""Triton library kernels for 2-D pooling (NCHW): max_pool2d, avg_pool2d and their gradients."""
from __future__ import annotations

from ...common import Operand
from ..source import ident
from . import register
from .common import INT32_LIMIT, _flat_kernel, _flat_launch, _require_float, _single, _span, _tl

# ---- pooling ------------------------------------------------------------------------------

def _pool_geometry(x_shape, attrs):
    n, c, h, wd = (int(d) for d in x_shape)
    kh, kw = (int(k) for k in attrs["kernel"])
    sh, sw = (int(s) for s in attrs["stride"])
    ph, pw = (int(p) for p in attrs["padding"])
    return n, c, h, wd, kh, kw, sh, sw, ph, pw, (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1


def _plane(var_n, var_c, op: Operand) -> str:
    return f"{op.offset} + {var_n} * {op.strides[0]} + {var_c} * {op.strides[1]}"


def _pool_forward(name, inputs, out, attrs, kind):
    (x,) = inputs
    _require_float(out.dtype, kind)
    n, c, h, wd, kh, kw, sh, sw, ph, pw, ho, wo = _pool_geometry(x.shape, attrs)
    total = n * c * ho * wo
    kname = ident(name)
    dt = _tl(out.dtype)
    init = '-float("inf")' if kind == "max_pool2d" else "0.0"
    other = '-float("inf")' if kind == "max_pool2d" else "0.0"
    body = [f"s = i // {c * ho * wo}", f"ch = (i // {ho * wo}) % {c}", f"oh = (i // {wo}) % {ho}",
            f"ow = i % {wo}", f"plane = {_plane('s', 'ch', x)}", f"acc = tl.full([BLOCK], {init}, {dt})",
            f"for ti in tl.static_range({kh}):",
            f"    hh = oh * {sh} - {ph} + ti",
            f"    for tj in tl.static_range({kw}):",
            f"        ww = ow * {sw} - {pw} + tj",
            f"        ok = mask & (hh >= 0) & (hh < {h}) & (ww >= 0) & (ww < {wd})",
            f"        v = tl.load(in0_ptr + plane + hh * {x.strides[2]} + ww * {x.strides[3]}, mask=ok, "
            f"other={other}).to({dt})"]
    if kind == "max_pool2d":   # NaN propagates: a NaN takes over and is never replaced
        # ... and +0 beats -0 in any order (ops/signed_zero.py): on two zeros acc + v is the max
        body += ["        acc = tl.where((v > acc) | ((v != v) & (acc == acc)), v, "
                 "tl.where((v == 0) & (acc == 0), acc + v, acc))"]
    else:
        body += ["        acc += v"]
    if kind == "avg_pool2d":
        body += [f"acc = acc / {float(kh * kw)!r}"]
    body += ["tl.store(out_ptr + i, acc, mask=mask)"]
    wide = max(total, _span(x)) > INT32_LIMIT
    return _single(_flat_kernel(kname, 2, total, body, wide), [_flat_launch(kname, total, ["out", "in0"])])


@register("max_pool2d")
def emit_max_pool2d(name, inputs, out, attrs):
    """max over each window, -inf padding, NaN propagating like NumPy's max."""
    return _pool_forward(name, inputs, out, attrs, "max_pool2d")


@register("avg_pool2d")
def emit_avg_pool2d(name, inputs, out, attrs):
    """sum over each window (zero padding) / (kh*kw): padding counts in the divisor."""
    return _pool_forward(name, inputs, out, attrs, "avg_pool2d")


def _covering_loops(geo, inner: list[str]) -> list[str]:
    """Loops over the windows (oh, ow) covering input (hh, ww): tap (ti, tj) with
    oh*sh - ph + ti == hh; ``inner`` runs with ``okw`` true for a real window."""
    n, c, h, wd, kh, kw, sh, sw, ph, pw, ho, wo = geo
    lines = [f"for ti in tl.static_range({kh}):",
             f"    th = hh + {ph} - ti",
             f"    oh = th // {sh}",
             f"    okh = (th >= 0) & (th % {sh} == 0) & (oh < {ho})",
             f"    for tj in tl.static_range({kw}):",
             f"        tw = ww + {pw} - tj",
             f"        ow = tw // {sw}",
             f"        okw = mask & okh & (tw >= 0) & (tw % {sw} == 0) & (ow < {wo})"]
    return lines + ["        " + s for s in inner]


@register("avg_pool2d_grad")
def emit_avg_pool2d_grad(name, inputs, out, attrs):
    """dx[h, w] = sum over the windows covering (h, w) of g / (kh*kw) (padding counted)."""
    g, _ref = inputs
    _require_float(out.dtype, "avg_pool2d_grad")
    geo = _pool_geometry(out.shape, attrs)
    n, c, h, wd, kh, kw, sh, sw, ph, pw, ho, wo = geo
    total = n * c * h * wd
    dt = _tl(out.dtype)
    kname = ident(name)
    body = [f"s = i // {c * h * wd}", f"ch = (i // {h * wd}) % {c}", f"hh = (i // {wd}) % {h}",
            f"ww = i % {wd}", f"gplane = {_plane('s', 'ch', g)}", f"acc = tl.zeros([BLOCK], {dt})"]
    body += _covering_loops(geo, [
        f"gv = tl.load(in0_ptr + gplane + oh * {g.strides[2]} + ow * {g.strides[3]}, mask=okw, other=0.0)",
        f"acc += gv.to({dt}) / {float(kh * kw)!r}"])
    body += ["tl.store(out_ptr + i, acc, mask=mask)"]
    wide = max(total, _span(g)) > INT32_LIMIT
    return _single(_flat_kernel(kname, 2, total, body, wide), [_flat_launch(kname, total, ["out", "in0"])])


@register("max_pool2d_grad")
def emit_max_pool2d_grad(name, inputs, out, attrs):
    """dx[h, w] = sum of g over the windows whose FIRST maximum (NumPy argmax order over the
    -inf padded window, a NaN counting as the maximum) is (h, w)."""
    g, x = inputs
    _require_float(out.dtype, "max_pool2d_grad")
    geo = _pool_geometry(x.shape, attrs)
    n, c, h, wd, kh, kw, sh, sw, ph, pw, ho, wo = geo
    total = n * c * h * wd
    xt = _tl(x.dtype)
    dt = _tl(out.dtype)
    kname = ident(name)
    argmax = [f"best = tl.full([BLOCK], -float(\"inf\"), {xt})", "best_t = tl.zeros([BLOCK], tl.int32)"]
    for ui in range(kh):
        for uj in range(kw):
            t = ui * kw + uj
            argmax += [f"xh = oh * {sh} - {ph} + {ui}", f"xw = ow * {sw} - {pw} + {uj}",
                       f"okx = okw & (xh >= 0) & (xh < {h}) & (xw >= 0) & (xw < {wd})",
                       f"xv = tl.load(in1_ptr + xplane + xh * {x.strides[2]} + xw * {x.strides[3]}, "
                       f"mask=okx, other=-float(\"inf\")).to({xt})"]
            if t == 0:
                argmax += ["best = xv"]
            else:
                argmax += ["take = (xv > best) | ((xv != xv) & (best == best))",
                           f"best_t = tl.where(take, {t}, best_t)", "best = tl.where(take, xv, best)"]
    body = [f"s = i // {c * h * wd}", f"ch = (i // {h * wd}) % {c}", f"hh = (i // {wd}) % {h}",
            f"ww = i % {wd}", f"gplane = {_plane('s', 'ch', g)}", f"xplane = {_plane('s', 'ch', x)}",
            f"acc = tl.zeros([BLOCK], {dt})"]
    body += _covering_loops(geo, argmax + [
        f"hit = okw & (best_t == ti * {kw} + tj)",
        f"gv = tl.load(in0_ptr + gplane + oh * {g.strides[2]} + ow * {g.strides[3]}, mask=hit, other=0.0)",
        f"acc += gv.to({dt})"])
    body += ["tl.store(out_ptr + i, acc, mask=mask)"]
    wide = max(total, _span(g), _span(x)) > INT32_LIMIT
    return _single(_flat_kernel(kname, 3, total, body, wide),
                   [_flat_launch(kname, total, ["out", "in0", "in1"])])
