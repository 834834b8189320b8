"""Op-info entries for the elementwise math family (ops/math.py).

Samples respect each op's domain (asin/acos/atanh inside (-1, 1), acosh >= 1, logs > 0), and
every op has an edge sample (zeros of both signs, ±1, ±inf, nan, huge and tiny values, the
domain boundaries) without gradients. sin/cos/tan keep |x| <= 1e6: past 2^29 pi/2 ~ 8.4e8 the
LLVM argument reduction is not accurate (docs/numerics.md).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import tensorforge as tg

from .spec import EDGE, OpInfo, Sample, binary_samples, bools, ints, uniform, unary_samples

_SPECIALS = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan])


def _edge(*values):
    return Sample((np.array(values, dtype=np.float64),), grad=False, name="edge")


def _with(samples, *extra):
    return samples + list(extra)


def _int_sample(lo=-5, hi=6):
    return Sample((np.arange(lo, hi, dtype=np.int64),), grad=False, name="int64")


def _unary(name, lo, hi, edge=None, extra=(), rtol=1e-5, atol=1e-6):
    """An entry for tg.<name> vs torch.<name>: unary_samples on [lo, hi] plus an edge sample
    (the standard EDGE values unless ``edge`` is given) and ``extra`` samples."""
    def samples(rng):
        out = unary_samples(rng, lo, hi, edges=edge is None)
        if edge is not None:
            out.append(_edge(*edge))
        return out + [s(rng) if callable(s) else s for s in extra]
    return OpInfo(name, getattr(tg, name), getattr(torch, name), samples, rtol=rtol, atol=atol)


_TRIG_EDGE = (0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e6, -1e6, 1e-30, 100.5, 1e-8)
_UNIT_EDGE = (0.0, -0.0, 1.0, -1.0, 1.5, -1.5, np.inf, -np.inf, np.nan, 1e-30, 0.999999, -0.999999)


def _pairs(values=_SPECIALS):
    """Every (a, b) combination of the special values, by broadcasting a column with a row."""
    v = np.asarray(values, dtype=np.float64)
    return (v.reshape(-1, 1), v.reshape(1, -1))


OPS = [
    _unary("sin", -4.0, 4.0, edge=_TRIG_EDGE, extra=[_int_sample()]),
    _unary("cos", -4.0, 4.0, edge=_TRIG_EDGE),
    _unary("tan", -1.4, 1.4, edge=_TRIG_EDGE, rtol=2e-5),
    _unary("asin", -0.95, 0.95, edge=_UNIT_EDGE),
    _unary("acos", -0.95, 0.95, edge=_UNIT_EDGE),
    _unary("atan", -6.0, 6.0),
    _unary("sinh", -3.0, 3.0, extra=[Sample((np.array([-89.0, -60.0, 40.0, 88.5, 89.4, 1000.0]),),
                                            fd=False, grad=False, name="large")]),
    _unary("cosh", -3.0, 3.0, extra=[Sample((np.array([-89.0, -60.0, 40.0, 88.5, 89.4, 1000.0]),),
                                            fd=False, grad=False, name="large")]),
    _unary("asinh", -6.0, 6.0),
    _unary("acosh", 1.05, 6.0, edge=(1.0, 0.5, 0.0, -1.0, -3.0, np.inf, -np.inf, np.nan, 1e30, 1.0000001)),
    _unary("atanh", -0.95, 0.95, edge=_UNIT_EDGE),
    _unary("log2", 0.1, 6.0, extra=[_int_sample(1, 9)]),
    _unary("log10", 0.1, 6.0),
    _unary("log1p", -0.9, 6.0),
    _unary("expm1", -3.0, 3.0),
    _unary("exp2", -4.0, 4.0, extra=[_int_sample(0, 8)]),
    _unary("rsqrt", 0.1, 6.0),   # no int64 sample: torch's float32 rsqrt is 1 ulp off where ours is correctly rounded
    _unary("reciprocal", 0.5, 3.0, extra=[Sample((-uniform(np.random.default_rng(1), 0.5, 3.0, 4),), name="neg")]),
    _unary("square", -3.0, 3.0, edge=(0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e15, -1e15, 1e-30), extra=[_int_sample(), Sample((bools(np.random.default_rng(2), 5),),
                                                             grad=False, name="bool")]),
    _unary("erf", -4.0, 4.0),
    OpInfo("gelu", lambda x: tg.gelu(x), lambda x: F.gelu(x),
           lambda r: unary_samples(r, -4.0, 4.0)),
    OpInfo("gelu_tanh", lambda x: tg.gelu(x, approximate="tanh"), lambda x: F.gelu(x, approximate="tanh"),
           lambda r: unary_samples(r, -4.0, 4.0)),
    OpInfo("atan2", tg.atan2, torch.atan2,
           lambda r: binary_samples(r, -3.0, 3.0)[:3] + [
               Sample(_pairs(), grad=False, name="specials"),
               Sample((ints(r, -3, 4, 5), ints(r, -3, 4, 5)), grad=False, name="int64")]),
    OpInfo("copysign", tg.copysign, torch.copysign,
           lambda r: binary_samples(r, 0.5, 3.0, -3.0, 3.0)[:3] + [
               Sample(_pairs(), grad=False, name="specials"),
               Sample((ints(r, -3, 4, 5), ints(r, -3, 4, 5)), grad=False, name="int64")]),
    OpInfo("logaddexp", tg.logaddexp, torch.logaddexp,
           lambda r: binary_samples(r, -5.0, 5.0) + [
               Sample(_pairs(np.r_[_SPECIALS, 1e30, -1e30]), grad=False, name="specials")]),
    OpInfo("lerp", tg.lerp, torch.lerp,
           lambda r: [Sample((uniform(r, -3, 3, 3, 4), uniform(r, -3, 3, 3, 4), uniform(r, -0.5, 1.5, 3, 4)),
                             name="same"),
                      Sample((uniform(r, -3, 3, 3, 1), uniform(r, -3, 3, 1, 4), uniform(r, 0, 1, 4)), name="bcast"),
                      Sample((uniform(r, -3, 3, 0, 4), uniform(r, -3, 3, 1, 4), uniform(r, 0, 1, 1, 1)), name="empty"),
                      Sample((EDGE.reshape(-1, 1), EDGE.reshape(1, -1), np.array([0.0, 0.3, 1.0, 1.7]).reshape(4, 1, 1)),
                             grad=False, name="edge")]),
    OpInfo("lerp_scalar_weight", lambda a, b, weight: tg.lerp(a, b, weight),
           lambda a, b, weight: torch.lerp(a, b, weight),
           lambda r: [Sample((uniform(r, -3, 3, 3, 4), uniform(r, -3, 3, 1, 4)), dict(weight=0.3), name="w0.3"),
                      Sample((uniform(r, -3, 3, 3, 4), uniform(r, -3, 3, 3, 4)), dict(weight=1.0), name="w1")]),
]
