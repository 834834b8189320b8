"""Triton library kernel for argmax (NumPy semantics: the first maximum wins; a NaN counts as
the maximum, so the first NaN wins)."""
from __future__ import annotations

import numpy as np

from ...common import argmax_axes
from ..source import ident
from . import register
from .common import KernelLaunch, _addr, _is_float, _pow2, _single, _size, _tl

# ---- argmax -----------------------------------------------------------------------------

def _lowest(dtype: str) -> str:
    if _is_float(dtype):
        return '-float("inf")'
    if dtype == "bool":
        return "0"
    return str(int(np.iinfo(np.dtype(dtype)).min))


@register("argmax")
def emit_argmax(name, inputs, out, attrs):
    """One program per kept index; the reduced run (flat C order) is scanned in chunks of
    RBLOCK. NumPy's rule: the first maximum wins, a NaN is the maximum (the first NaN wins)."""
    (x,) = inputs
    axes, kept = argmax_axes(attrs.get("axis", -1), len(x.shape))
    kept_shape = [x.shape[a] for a in kept]
    red_shape = [x.shape[a] for a in axes]
    n_red, n_out = _size(red_shape), _size(kept_shape)
    if n_red == 0 and n_out:
        raise ValueError("argmax of an empty sequence")
    rblock = _pow2(n_red, 16, 1024)
    kname = ident(name)
    base = _addr("pid", kept_shape, [x.strides[a] for a in kept], x.offset)
    red = _addr("r", red_shape, [x.strides[a] for a in axes], 0)
    is_f = _is_float(x.dtype)
    vtype = "tl.int8" if x.dtype == "bool" else _tl(x.dtype)
    lines = ["", "@triton.jit", f"def {kname}(out_ptr, in0_ptr, RBLOCK: tl.constexpr):",
             "    pid = tl.program_id(0).to(tl.int64)",
             f"    base = {base}",
             f"    best = tl.full([], {_lowest(x.dtype)}, {vtype})",
             "    best_i = tl.full([], 0, tl.int64)",
             f"    for start in range(0, {n_red}, RBLOCK):",
             "        r = start + tl.arange(0, RBLOCK).to(tl.int64)",
             f"        m = r < {n_red}",
             f"        v = tl.load(in0_ptr + base + {red}, mask=m, other={_lowest(x.dtype)}).to({vtype})"]
    big = str(2 ** 62)
    if is_f:
        lines += ["        nan = (v != v) & m",
                  "        has_nan = tl.max(nan.to(tl.int32), axis=0) > 0",
                  f"        first_nan = tl.min(tl.where(nan, r, {big}), axis=0)",
                  f"        cmax = tl.max(tl.where(nan | (m == 0), {_lowest(x.dtype)}, v), axis=0)",
                  f"        first_max = tl.min(tl.where(m & (v == cmax), r, {big}), axis=0)",
                  "        cidx = tl.where(has_nan, first_nan, first_max)",
                  "        cval = tl.where(has_nan, float(\"nan\"), cmax)",
                  "        take = (cval > best) | ((cval != cval) & (best == best))"]
    else:
        lines += ["        cmax = tl.max(v, axis=0)",
                  f"        cidx = tl.min(tl.where(m & (v == cmax), r, {big}), axis=0)",
                  "        cval = cmax",
                  "        take = cval > best"]
    lines += ["        best_i = tl.where(take, cidx, best_i)",
              "        best = tl.where(take, cval, best)",
              "    tl.store(out_ptr + pid, best_i)"]
    text = "\n".join(lines) + "\n"
    return _single(text, [KernelLaunch(kname, (n_out,), ("out", "in0"), (), {"RBLOCK": rblock})])
