"""Op-info entries: predicates, rounding, integer division, bitwise and logical ops, clamp.

torch raises ZeroDivisionError for integer division by zero; tensorforge gives NumPy's 0 on
every backend (docs/numerics.md), so the integer division references below substitute 0
where the divisor is 0 and ask torch everywhere else.
"""
from __future__ import annotations

import numpy as np
import torch

import tensorforge as tg

from .spec import OpInfo, Sample, bools, edge, ints, uniform, unary_samples

I64_MIN, I32_MIN = np.iinfo(np.int64).min, np.iinfo(np.int32).min


def _int_division_by_zero_is_zero(fn):
    """torch's integer division, with 0 where the divisor is 0 (torch would raise there)."""
    def reference(a, b):
        if a.is_floating_point() or b.is_floating_point():
            return fn(a, b)
        zero = b == 0
        out = fn(a, torch.where(zero, torch.ones_like(b), b))
        return torch.where(zero, torch.zeros_like(out), out)
    return reference


# ---- samples -------------------------------------------------------------------------------

def _predicate_samples(r):
    return [Sample((edge(),), name="edge"),
            Sample((uniform(r, -3, 3, 2, 0),), name="2x0"),
            Sample((ints(r, -5, 5, 3, 1, dtype=np.int32),), name="int32"),
            Sample((bools(r, 4),), name="bool")]


def _rounding_samples(r):
    ties = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, -0.3, 1e30, -1e30, 2.0 ** 52 + 1])
    return unary_samples(r, -4.0, 4.0) + [
        Sample((ties,), grad=False, name="ties"),
        Sample((np.array([I64_MIN, -3, 0, 7], np.int64),), name="int64")]


def _division_samples(r, grad=True):
    a = np.array([[-7.0, 7.0, -7.5, 7.5, 0.3, -0.3]])
    b = np.array([[2.0], [-2.0], [0.65]])
    return [Sample((uniform(r, -5, 5, 3, 4), uniform(r, 0.5, 2, 3, 4) * np.sign(uniform(r, -1, 1, 3, 4))),
                   grad=grad, name="same"),
            Sample((a, b), grad=grad, name="bcast-signs"),
            Sample((np.array([5.0, -5.0, 1.0, np.inf, np.nan, 3.0, -3.0, 1e30]),
                    np.array([0.0, 0.0, np.inf, 2.0, 1.0, -np.inf, np.inf, 7.0])), grad=False, name="edge"),
            Sample((np.array([-7, 7, -7, 7, I64_MIN, 5, 0, -1], np.int64),
                    np.array([2, 2, -2, -2, -1, 0, 0, 3], np.int64)), name="int64-zero"),
            Sample((ints(r, -20, 20, 2, 3, dtype=np.int32), np.array([[3], [-4]], np.int32)), name="int32-bcast"),
            Sample((np.array([255, 200, 7, 129, 0], np.uint8), np.array([[3], [200]], np.uint8)), name="uint8"),
            Sample((np.array([-128, 127, -7, 7, 0], np.int8), np.array([[3], [-2]], np.int8)), name="int8")]


def _bitwise_samples(r, with_bool=True):
    out = [Sample((ints(r, -100, 100, 3, 4), ints(r, -100, 100, 1, 4)), name="int64-bcast"),
           Sample((np.array([I32_MIN, -1, 0, 0x7fffffff], np.int32), np.array(12345, np.int32)), name="int32"),
           Sample((ints(r, 0, 9, 0, 2, dtype=np.int32), ints(r, 0, 9, 1, 2, dtype=np.int32)), name="empty"),
           Sample((np.array([255, 200, 15, 0], np.uint8), np.array([[170], [1]], np.uint8)), name="uint8")]
    if with_bool:
        out.append(Sample((bools(r, 2, 3), bools(r, 2, 3)), name="bool"))
    return out


def _shift_samples(r):
    return [Sample((np.array([1, -1, -128, 5, 3, -7], np.int64), np.array([63, 64, 100, -1, 2, 1], np.int64)),
                   name="int64-over"),
            Sample((np.array([[1], [-5], [I32_MIN]], np.int32), np.array([0, 1, 31, 32, -3], np.int32)),
                   name="int32-bcast"),
            Sample((np.array([3, -3], np.int32), np.array([2, 40], np.int64)), name="int32-int64"),
            Sample((np.array([[255], [129], [1]], np.uint8), np.array([0, 1, 7, 8, 9], np.uint8)), name="uint8"),
            Sample((np.array([[-128], [127], [-1]], np.int8), np.array([0, 1, 7, 8, -3], np.int8)), name="int8")]


def _logical_samples(r):
    return [Sample((edge(), np.array([1.0, 0.0, 0.0, 2.0, -0.0, np.nan, 0.0, 1.0, 0.0, 3.0])), name="edge"),
            Sample((ints(r, -2, 2, 3, 1), bools(r, 1, 4)), name="int-bool-bcast"),
            Sample((bools(r, 0, 3), bools(r, 1, 3)), name="empty")]


def _clamp_samples(r):
    x = uniform(r, -3, 3, 3, 4)
    return [Sample((x,), dict(min=-1.0, max=1.5), name="scalars"),
            Sample((x,), dict(min=0.5), name="min-only"),
            Sample((edge(),), dict(min=-2.0, max=2.0), grad=False, name="edge"),
            Sample((np.array([1, -5, 9, 3], np.int32),), dict(min=0, max=4), name="int32")]


def _clamp_tensor_samples(r):
    lo, hi = uniform(r, -2, 0, 3, 1), uniform(r, 0, 2, 1, 4)
    crossed_hi = np.array([[-1.5, 0.5, 1.0, -0.2]])       # some below lo: max wins there
    return [Sample((uniform(r, -3, 3, 3, 4), lo, hi), name="bcast"),
            Sample((uniform(r, -3, 3, 3, 4), uniform(r, -1, 1, 3, 1), crossed_hi), name="crossed"),
            Sample((np.array([1.0, np.nan, 5.0, -5.0]), np.array([0.0, 0.0, np.nan, -1.0]),
                    np.array([2.0, 2.0, 2.0, np.nan])), grad=False, name="nan")]


def _tensor_bound(which):
    def tg_fn(x, b):
        return tg.clamp(x, **{which: b})
    def torch_fn(x, b):
        return torch.clamp(x, **{which: b})
    return tg_fn, torch_fn


_min_tg, _min_torch = _tensor_bound("min")
_max_tg, _max_torch = _tensor_bound("max")


def _one_bound_samples(r):
    return [Sample((uniform(r, -3, 3, 3, 4), uniform(r, -1, 1, 1, 4)), name="bcast"),
            Sample((np.array([1.0, np.nan, -4.0]), np.array([np.nan, 0.0, 0.0])), grad=False, name="nan")]


OPS = [
    OpInfo("isnan", tg.isnan, torch.isnan, _predicate_samples, grad=False),
    OpInfo("isinf", tg.isinf, torch.isinf, _predicate_samples, grad=False),
    OpInfo("isfinite", tg.isfinite, torch.isfinite, _predicate_samples, grad=False),
    OpInfo("floor", tg.floor, torch.floor, _rounding_samples),
    OpInfo("ceil", tg.ceil, torch.ceil, _rounding_samples),
    OpInfo("trunc", tg.trunc, torch.trunc, _rounding_samples),
    OpInfo("round", tg.round, torch.round, _rounding_samples),
    OpInfo("round_decimals", lambda x, decimals: tg.round(x, decimals=decimals),
           lambda x, decimals: torch.round(x, decimals=decimals),
           lambda r: [Sample((uniform(r, -30, 30, 3, 4),), dict(decimals=2), name="2"),
                      Sample((np.array([1250.0, -1350.0, 49.0, 151.0]),), dict(decimals=-2), fd=False, name="-2")]),
    OpInfo("floor_divide", lambda a, b: a // b, _int_division_by_zero_is_zero(torch.floor_divide),
           lambda r: _division_samples(r, grad=False), grad=False),
    OpInfo("remainder", lambda a, b: a % b, _int_division_by_zero_is_zero(torch.remainder), _division_samples),
    OpInfo("fmod", tg.fmod, _int_division_by_zero_is_zero(torch.fmod), _division_samples),
    OpInfo("bitwise_and", lambda a, b: a & b, torch.bitwise_and, _bitwise_samples, grad=False),
    OpInfo("bitwise_or", lambda a, b: a | b, torch.bitwise_or, _bitwise_samples, grad=False),
    OpInfo("bitwise_xor", lambda a, b: a ^ b, torch.bitwise_xor, _bitwise_samples, grad=False),
    OpInfo("bitwise_not", lambda a: ~a, torch.bitwise_not,
           lambda r: [Sample((s.arrays[0],), name=s.name) for s in _bitwise_samples(r)], grad=False),
    OpInfo("bitwise_left_shift", lambda a, b: a << b, torch.bitwise_left_shift, _shift_samples, grad=False),
    OpInfo("bitwise_right_shift", lambda a, b: a >> b, torch.bitwise_right_shift, _shift_samples, grad=False),
    OpInfo("logical_and", tg.logical_and, torch.logical_and, _logical_samples, grad=False),
    OpInfo("logical_or", tg.logical_or, torch.logical_or, _logical_samples, grad=False),
    OpInfo("logical_xor", tg.logical_xor, torch.logical_xor, _logical_samples, grad=False),
    OpInfo("logical_not", tg.logical_not, torch.logical_not,
           lambda r: [Sample((s.arrays[0],), name=s.name) for s in _logical_samples(r)], grad=False),
    OpInfo("clamp", lambda x, **kw: tg.clamp(x, **kw), lambda x, **kw: torch.clamp(x, **kw), _clamp_samples),
    OpInfo("clamp_tensor", lambda x, lo, hi: x.clamp(lo, hi), torch.clamp, _clamp_tensor_samples),
    OpInfo("clamp_min_tensor", _min_tg, _min_torch, _one_bound_samples),
    OpInfo("clip_max_tensor", lambda x, b: tg.clip(x, max=b), lambda x, b: torch.clip(x, max=b),
           _one_bound_samples),
]
