"""Triton library kernels for the counter-based random ops: random_uniform and dropout
(the specification is in the ``tensorforge.ops.random`` docstring)."""
from __future__ import annotations

import numpy as np

from ....ops import random as rnd
from ...common import Operand
from ..source import ident
from . import register
from .common import (INT32_LIMIT, _addr, _convert, _flat_launch, _lit, _require_float, _single, _size,
                     _span, _tl)

# ---- random_uniform / dropout -----------------------------------------------------------

def _key_lines(seed: int, counter: Operand) -> list[str]:
    """Statements computing ``key`` (uint32) from the seed (folded here) and the counter
    read at run time from in<k>_ptr named ``cptr``."""
    if tuple(counter.shape) != ():
        raise ValueError(f"the random counter must be a scalar, got shape {counter.shape}")
    salted = np.array([(int(seed) & rnd.MASK32) ^ rnd.SEED_SALT], dtype=np.uint32)
    k0 = int(rnd.lowbias32(salted)[0])
    return [f"c = tl.load(cptr + {int(counter.offset)}).to(tl.int64)",
            "lo = (c & 0xFFFFFFFF).to(tl.uint32)",
            "hi = ((c >> 32) & 0xFFFFFFFF).to(tl.uint32)",
            f"key = _lowbias32(tl.full([], {k0}, tl.uint32) ^ lo)",
            "key = _lowbias32(key ^ hi)"]


# uint32 arithmetic: constants are made uint32 tensors so * wraps modulo 2**32 and >> is logical
_LOWBIAS = '''
@triton.jit
def _lowbias32(x):
    x = x ^ (x >> 16)
    x = x * tl.full([], 0x7FEB352D, tl.uint32)
    x = x ^ (x >> 15)
    x = x * tl.full([], 0x846CA68B, tl.uint32)
    x = x ^ (x >> 16)
    return x
'''


@register("random_uniform")
def emit_random_uniform(name, inputs, out, attrs):
    """out[i] = (bits(seed, counter, i) >> 8) * 2**-24 (exact in float32 and float64)."""
    (counter,) = inputs
    _require_float(out.dtype, "random_uniform")
    total = _size(out.shape)
    kname = ident(name)
    pid = "tl.program_id(0).to(tl.int64)" if total > INT32_LIMIT else "tl.program_id(0)"
    lines = ["", "@triton.jit", f"def {kname}(out_ptr, cptr, BLOCK: tl.constexpr):"]
    lines += ["    " + s for s in _key_lines(attrs["seed"], counter)]
    lines += [f"    i = {pid} * BLOCK + tl.arange(0, BLOCK)",
              f"    mask = i < {total}",
              "    bits = _lowbias32(key ^ i.to(tl.uint32))",
              f"    u = (bits >> 8).to({_tl(out.dtype)}) * {2.0 ** -24!r}",
              "    tl.store(out_ptr + i, u, mask=mask)"]
    text = _LOWBIAS.replace("_lowbias32", f"{kname}_lowbias32") + "\n".join(lines).replace(
        "_lowbias32(", f"{kname}_lowbias32(") + "\n"
    return _single(text, [_flat_launch(kname, total, ["out", "in0"])])


@register("dropout")
def emit_dropout(name, inputs, out, attrs):
    """out[i] = x[i] * s if (bits >> 8) >= ceil(p * 2**24) else 0; s = 1/(1-p) rounded once to
    x's dtype; i is the output's flat C-order index (x read through strides)."""
    x, counter = inputs
    _require_float(out.dtype, "dropout")
    if tuple(x.shape) != tuple(out.shape):
        raise ValueError(f"dropout: x shape {x.shape} differs from the output shape {out.shape}")
    p = float(attrs["p"])
    scale = float(np.asarray(1.0 / (1.0 - p), dtype=out.dtype))
    total = _size(out.shape)
    kname = ident(name)
    wide = max(total, _span(x)) > INT32_LIMIT
    pid = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    load = f"tl.load(in0_ptr + {_addr('i', x.shape, x.strides, x.offset)}, mask=mask, other=0)"
    lines = ["", "@triton.jit", f"def {kname}(out_ptr, in0_ptr, cptr, BLOCK: tl.constexpr):"]
    lines += ["    " + s for s in _key_lines(attrs["seed"], counter)]
    lines += [f"    i = {pid} * BLOCK + tl.arange(0, BLOCK)",
              f"    mask = i < {total}",
              f"    v = {_convert(load, x.dtype, out.dtype)}",
              "    bits = _lowbias32(key ^ i.to(tl.uint32))",
              f"    keep = (bits >> 8) >= tl.full([], {rnd.keep_threshold(p)}, tl.uint32)",
              f"    y = tl.where(keep, v * {_lit(scale)}, 0.0).to({_tl(out.dtype)})",
              "    tl.store(out_ptr + i, y, mask=mask)"]
    text = _LOWBIAS.replace("_lowbias32", f"{kname}_lowbias32") + "\n".join(lines).replace(
        "_lowbias32(", f"{kname}_lowbias32(") + "\n"
    return _single(text, [_flat_launch(kname, total, ["out", "in0", "in1"])])
