"""Op-info entries for the activations of issue 10 (src/tensorforge/ops/activations.py)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import tensorforge as tg

from .spec import OpInfo, Sample, randn, unary_samples, uniform

F64 = np.float64


def kinks(*points):
    """Samples exactly at the kinks (gradient compared with torch, no finite differences)."""
    return Sample((np.array(points, F64),), fd=False, name="kinks")


def act(name, tg_fn, torch_fn, kink_points=(), lo=-4.0, hi=4.0, fd=True, **kw):
    def samples(r):
        out = unary_samples(r, lo, hi, fd=fd)
        if kink_points:
            out.insert(0, kinks(*kink_points))
        return out[:5] if kink_points else out
    return OpInfo(name, tg_fn, torch_fn, samples, **kw)


def _large(r):
    """softplus/logsigmoid must stay exact for large |x| (no overflow of exp)."""
    return Sample((np.array([-200.0, -50.0, -20.5, 19.5, 20.5, 50.0, 200.0]),), name="large")


def _torch_hardsigmoid(x):
    """F.hardsigmoid's float64 backward multiplies by a float32 1/6 (off by 3e-8 relative), so
    the reference is the same piecewise function written with torch ops; forward values and
    the kink rule (gradient 0 at ±3) are F.hardsigmoid's."""
    mid = x / 6.0 + 0.5
    return torch.where(x <= -3.0, torch.zeros_like(x), torch.where(x >= 3.0, torch.ones_like(x), mid))


OPS = [
    # relu6/hardtanh/hardsigmoid/hardswish: the kink sample replaces the scalar one (<= 5 samples)
    act("silu", tg.silu, F.silu),
    act("swish", tg.swish, F.silu),
    act("mish", tg.mish, F.mish),
    act("selu", tg.selu, F.selu, kink_points=(0.0, -1.0, 1.0)),
    OpInfo("celu", lambda x, alpha: tg.celu(x, alpha), lambda x, alpha: F.celu(x, alpha),
           lambda r: [Sample((uniform(r, -4, 4, 3, 4),), dict(alpha=0.5), name="a0.5"),
                      Sample((uniform(r, -4, 4, 1, 5),), dict(alpha=2.0), name="a2"),
                      Sample((np.array([0.0, -1.0, 1.0]),), dict(alpha=1.0), fd=False, name="kinks"),
                      Sample((uniform(r, -4, 4, 0, 3),), dict(alpha=1.5), name="0x3"),
                      Sample((np.array([0.0, np.inf, -np.inf, np.nan, 1e30, -1e30]),), dict(alpha=1.0),
                             grad=False, name="edge")]),
    act("relu6", tg.relu6, F.relu6, kink_points=(0.0, 6.0, -1.0, 7.0, 3.0)),
    OpInfo("hardtanh", lambda x, lo, hi: tg.hardtanh(x, lo, hi), lambda x, lo, hi: F.hardtanh(x, lo, hi),
           lambda r: [Sample((uniform(r, -3, 3, 3, 4),), dict(lo=-1.0, hi=1.0), name="3x4"),
                      Sample((np.array([-2.0, -0.5, 0.5, 2.0, 0.0]),), dict(lo=-0.5, hi=2.0), fd=False,
                             name="kinks"),
                      Sample((uniform(r, -3, 3, 1, 5),), dict(lo=-2.0, hi=0.5), name="1x5"),
                      Sample((uniform(r, -3, 3, 0, 3),), dict(lo=-1.0, hi=1.0), name="0x3"),
                      Sample((np.array([np.inf, -np.inf, np.nan, 1e30, -1e30, 0.0]),), dict(lo=-1.0, hi=1.0),
                             grad=False, name="edge")]),
    act("hardswish", tg.hardswish, F.hardswish, kink_points=(-3.0, 3.0, 0.0, -4.0, 4.0)),
    act("hardsigmoid", tg.hardsigmoid, _torch_hardsigmoid, kink_points=(-3.0, 3.0, 0.0, -4.0, 4.0)),
    act("softsign", tg.softsign, F.softsign),
    OpInfo("logsigmoid", tg.logsigmoid, F.logsigmoid,
           lambda r: unary_samples(r, -4, 4)[:2] + [_large(r)] + unary_samples(r, -4, 4)[2:3]
           + [Sample((np.array([0.0, np.inf, -np.inf, np.nan, 1e30, -1e30]),), grad=False, name="edge")]),
    OpInfo("softplus", lambda x, **kw: tg.softplus(x, **kw), lambda x, **kw: F.softplus(x, **kw),
           lambda r: [Sample((uniform(r, -4, 4, 3, 4),), name="3x4"),
                      _large(r),
                      Sample((uniform(r, -4, 4, 2, 5),), dict(beta=2.0, threshold=3.0), name="beta2_thr3"),
                      Sample((uniform(r, -4, 4, 0, 3),), dict(beta=0.5), name="0x3"),
                      Sample((np.array([0.0, np.inf, -np.inf, np.nan, 1e30, -1e30]),), grad=False,
                             name="edge")]),
    OpInfo("softmin", lambda x, axis: tg.softmin(x, axis), lambda x, axis: F.softmin(x, dim=axis),
           lambda r: [Sample((randn(r, 3, 5),), dict(axis=-1), name="3x5"),
                      Sample((randn(r, 2, 3, 4),), dict(axis=1), name="2x3x4"),
                      Sample((randn(r, 1, 1),), dict(axis=0), name="1x1"),
                      Sample((randn(r, 0, 4),), dict(axis=1), name="0x4")]),
    OpInfo("glu", lambda x, axis: tg.glu(x, axis), lambda x, axis: F.glu(x, dim=axis),
           lambda r: [Sample((randn(r, 3, 4),), dict(axis=-1), name="3x4"),
                      Sample((randn(r, 2, 6, 3),), dict(axis=1), name="2x6x3"),
                      Sample((randn(r, 1, 2),), dict(axis=-1), name="1x2"),
                      Sample((randn(r, 0, 4),), dict(axis=1), name="0x4"),
                      Sample((np.array([[0.0, np.inf, -np.inf, np.nan], [1e30, -1e30, 1.0, -1.0]]),),
                             dict(axis=0), grad=False, name="edge")]),
]
