"""Op-info entries for the scan, sorting and reduction family (ops/scan.py, ops/sort.py,
ops/reductions.py) and the integer/bool cases of tg.min."""
from __future__ import annotations

import numpy as np
import torch

import tensorforge as tg

from .spec import OpInfo, Sample, bools, ints, randn, uniform

NAN, INF = np.nan, np.inf


def _distinct(rng, *shape):
    """Floats without ties (torch leaves the order of ties unspecified for topk and the
    gradient split of max-like norms depends on them)."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) * 0.37 - n * 0.15 + rng.uniform(0, 0.01, shape)).astype(np.float64)


# ---- scans -------------------------------------------------------------------------------

def _cumsum_samples(r):
    return [Sample((randn(r, 3, 5),), dict(axis=1), name="3x5"),
            Sample((randn(r, 2, 1, 4),), dict(axis=0), name="axis0"),
            Sample((np.array([[1.0, INF, -1.0, NAN, 2.0], [-INF, 1e30, -1e30, 0.0, INF]]),), dict(axis=1),
                   grad=False, name="edge"),
            Sample((ints(r, -50, 50, 3, 4, dtype=np.int32), ), dict(axis=1), name="int32"),
            Sample((np.array([[200, 255, 0, 128], [1, 2, 254, 3]], np.uint8),), dict(axis=1), name="uint8_int64"),
            Sample((bools(r, 0, 3),), dict(axis=1), name="bool_0x3")]


def _cumprod_samples(r):
    zeros = uniform(r, 0.5, 1.5, 3, 6) * np.sign(randn(r, 3, 6))
    zeros[0, 2] = 0.0
    zeros[1, 1] = zeros[1, 4] = 0.0          # two zeros in a row: gradient 0 before the second
    return [Sample((zeros,), dict(axis=1), name="zeros"),
            Sample((uniform(r, 0.5, 1.5, 4, 1, 2),), dict(axis=0), name="axis0"),
            Sample((uniform(r, 0.5, 1.5, 2, 1),), dict(axis=1), name="len1"),
            Sample((ints(r, -3, 4, 2, 5, dtype=np.int64),), dict(axis=1), name="int64"),
            Sample((np.array([[2.0, INF, 0.0, 3.0], [NAN, 1.0, -INF, 1e30]]),), dict(axis=1), grad=False,
                   name="edge")]


def _cum_extreme_samples(r):
    return [Sample((_distinct(r, 3, 6),), dict(axis=1), name="3x6"),
            Sample((_distinct(r, 5, 2),), dict(axis=0), name="axis0"),
            Sample((np.array([[1.0, NAN, 3.0, NAN, -INF], [-INF, INF, 2.0, INF, 1e30]]),), dict(axis=1),
                   grad=False, name="edge"),
            Sample((ints(r, -3, 3, 2, 7, dtype=np.int32),), dict(axis=1), name="int32_ties"),
            Sample((bools(r, 2, 5),), dict(axis=1), name="bool")]


def _logcumsumexp_samples(r):
    return [Sample((randn(r, 3, 5),), dict(axis=1), name="3x5"),
            Sample((randn(r, 4, 2, scale=30.0),), dict(axis=0), name="large"),
            Sample((np.array([[-INF, -INF, 0.0, INF, 1.0], [NAN, 1.0, -INF, 2.0, 700.0]]),), dict(axis=1),
                   grad=False, name="edge"),
            Sample((randn(r, 0, 3),), dict(axis=0), name="0x3"),
            Sample((randn(r, 2, 1),), dict(axis=1), name="len1")]


# ---- sorting -----------------------------------------------------------------------------

def _torch_sort(x, axis, descending):
    return torch.sort(x, dim=axis, descending=descending, stable=True)


def _sort_samples(r):
    ties = np.round(randn(r, 2, 9), 0)                      # ties: the stable order is defined
    return [Sample((ties,), dict(axis=1, descending=False), fd=False, name="ties_asc"),
            Sample((_distinct(r, 3, 4, 2),), dict(axis=1, descending=True), name="3d_desc"),
            Sample((np.array([[NAN, 1.0, -INF, INF, NAN, 0.0, -0.5], [1e30, -1e30, 2.0, NAN, 2.0, INF, -INF]]),),
                   dict(axis=1, descending=True), grad=False, name="edge_desc"),
            Sample((ints(r, -4, 4, 3, 6, dtype=np.int32),), dict(axis=0, descending=False), name="int32"),
            Sample((bools(r, 2, 5),), dict(axis=-1, descending=True), name="bool")]


def _argsort_samples(r):
    return [Sample((np.array([[NAN, 1.0, -INF, INF, NAN, 1.0], [3.0, 3.0, -1.0, 0.0, -1.0, 2.0]]),),
                   dict(axis=1, descending=False), name="edge_asc"),
            Sample((ints(r, -3, 3, 2, 5, dtype=np.int64),), dict(axis=1, descending=True), name="int_desc"),
            Sample((randn(r, 0, 4),), dict(axis=1, descending=False), name="0x4"),
            Sample((randn(r, 3, 1),), dict(axis=1, descending=False), name="len1")]


def _topk_samples(r):
    return [Sample((_distinct(r, 3, 7),), dict(k=3, axis=1, largest=True), name="3x7_k3"),
            Sample((_distinct(r, 5, 2, 2),), dict(k=2, axis=0, largest=False), name="axis0_small"),
            Sample((np.array([[NAN, 1.0, -INF, INF, 0.5], [2.0, -1.0, 1e30, -3.0, 0.0]]),),
                   dict(k=2, axis=1, largest=True), grad=False, name="edge"),
            Sample((ints(r, -100, 100, 2, 33, dtype=np.int64) * 0 + np.arange(33)[::-1] * 3 - 40,),
                   dict(k=5, axis=1, largest=True), name="int_33"),
            Sample((_distinct(r, 2, 4),), dict(k=0, axis=1, largest=True), name="k0")]


# ---- reductions --------------------------------------------------------------------------

def _arg_samples(r):
    big = np.iinfo(np.int64)
    return [Sample((_distinct(r, 3, 5),), dict(axis=1, keepdims=False), name="3x5"),
            Sample((_distinct(r, 2, 3, 4),), dict(axis=None, keepdims=True), name="flat_keep"),
            Sample((np.array([[1.0, NAN, 3.0, NAN], [-INF, INF, 2.0, -INF]]),), dict(axis=1, keepdims=True),
                   name="edge"),
            Sample((np.array([[3, big.min, big.max, big.min], [0, big.max, -1, big.max]], dtype=np.int64),),
                   dict(axis=1, keepdims=False), name="int_extremes"),
            Sample((ints(r, -5, 5, 4, 3, dtype=np.int32),), dict(axis=0, keepdims=False), name="int32_ties"),
            Sample((np.array([[3, 200, 255, 0], [128, 127, 0, 255]], np.uint8),), dict(axis=1, keepdims=False),
                   name="uint8_above_127"),
            Sample((np.array([[-128, 127, 5], [0, -1, -128]], np.int8),), dict(axis=None, keepdims=False),
                   name="int8_ends")]


def _torch_prod(x, axis, keepdims):
    if axis is None:
        out = torch.prod(x)
        return out.reshape((1,) * x.dim()) if keepdims else out
    for a in sorted(axis if isinstance(axis, tuple) else (axis,), reverse=True):
        x = torch.prod(x, dim=a, keepdim=keepdims)
    return x


def _prod_samples(r):
    zeros = uniform(r, 0.5, 1.5, 3, 5) * np.sign(randn(r, 3, 5))
    zeros[0, 1] = 0.0
    zeros[2, 0] = zeros[2, 3] = 0.0          # two zeros: gradient 0 everywhere in that row
    return [Sample((zeros,), dict(axis=1, keepdims=False), name="zeros"),
            Sample((uniform(r, 0.5, 1.5, 2, 3, 3),), dict(axis=(0, 2), keepdims=True), name="axes02"),
            Sample((uniform(r, 0.8, 1.2, 7),), dict(axis=None, keepdims=False), name="all7"),
            Sample((ints(r, -3, 4, 3, 4, dtype=np.int32),), dict(axis=0, keepdims=False), name="int32"),
            Sample((randn(r, 2, 0),), dict(axis=1, keepdims=False), name="empty")]


def _truth_samples(r):
    return [Sample((np.array([[0.0, NAN, 0.0], [0.0, 0.0, 0.0], [1.0, -INF, 2.0]]),), dict(axis=1, keepdims=False),
                   name="edge"),
            Sample((ints(r, 0, 2, 2, 3, 2, dtype=np.int32),), dict(axis=(0, 2), keepdims=True), name="int_axes"),
            Sample((bools(r, 3, 4),), dict(axis=None, keepdims=False), name="bool_all"),
            Sample((bools(r, 2, 0),), dict(axis=1, keepdims=False), name="empty")]


def _var_samples(r):
    return [Sample((randn(r, 3, 5),), dict(axis=1, keepdims=False, correction=1), name="unbiased"),
            Sample((randn(r, 2, 3, 4),), dict(axis=(0, 2), keepdims=True, correction=0), name="axes_biased"),
            Sample((randn(r, 6),), dict(axis=None, keepdims=False, correction=2), name="corr2"),
            Sample((randn(r, 3, 1),), dict(axis=1, keepdims=False, correction=1), grad=False, name="len1_nan"),
            Sample((np.array([[1.0, INF, 2.0], [NAN, 1.0, 0.0], [1e15, -1e15, 0.0]]),),
                   dict(axis=1, keepdims=False, correction=1), grad=False, name="edge")]


def _norm_samples(r):
    x = _distinct(r, 3, 4)
    zero_row = randn(r, 3, 4)
    zero_row[1] = 0.0
    return [Sample((zero_row,), dict(p=2, axis=1, keepdims=False), name="p2_zero_row"),
            Sample((x,), dict(p=1, axis=None, keepdims=False), name="p1_all"),
            Sample((_distinct(r, 2, 3, 2),), dict(p=float("inf"), axis=(0, 2), keepdims=True), name="pinf"),
            Sample((_distinct(r, 3, 4),), dict(p=float("-inf"), axis=0, keepdims=False), name="pninf"),
            Sample((np.array([[1e30, -1e30, 3.0], [0.0, 0.0, 0.0], [INF, 1.0, NAN], [1e-30, 0.0, -2e-30]]),),
                   dict(p=2, axis=1, keepdims=False), grad=False, name="p2_edge")]


def _norm0_samples(r):
    return [Sample((np.array([[0.0, 1.0, -0.0, NAN], [INF, 0.0, 2.0, 3.0]]),), dict(p=0, axis=1, keepdims=False),
                   grad=False, name="p0"),
            Sample((randn(r, 0, 3),), dict(p=2, axis=0, keepdims=False), name="p2_empty"),
            Sample((np.array(2.5),), dict(p=3, axis=None, keepdims=False), fd=False, name="p3_scalar"),
            Sample((uniform(r, 0.5, 2.0, 2, 3),), dict(p=3, axis=1, keepdims=True), name="p3")]


def _lse_samples(r):
    row = randn(r, 2, 3, 4)
    row[1] = -INF
    return [Sample((randn(r, 2, 3, 4),), dict(axis=(0, 2), keepdims=False), name="axes02"),
            Sample((randn(r, 3, 4, scale=50.0),), dict(axis=None, keepdims=True), name="all_large"),
            Sample((row,), dict(axis=(1, 2), keepdims=True), grad=False, name="neginf_block"),
            Sample((randn(r, 2, 0, 3),), dict(axis=(1, 2), keepdims=False), name="empty"),
            Sample((randn(r, 3, 4),), dict(axis=-1, keepdims=False), name="one_axis")]


def _min_int_samples(r):
    i32 = np.iinfo(np.int32)
    return [Sample((np.array([[3, i32.min, i32.max], [i32.max, 0, -1]], dtype=np.int32),), dict(axis=1),
                   name="int32_extremes"),
            Sample((ints(r, -9, 9, 2, 3, 4, dtype=np.int64),), dict(axis=(0, 2)), name="int64_axes"),
            Sample((ints(r, -99, 99, 3, 4, dtype=np.int32),), dict(axis=None), name="int32_all"),
            Sample((bools(r, 3, 4),), dict(axis=0), name="bool"),
            Sample((np.array([[200, 3, 255], [128, 0, 127]], np.uint8),), dict(axis=1), name="uint8_above_127"),
            Sample((np.array([[-128, 127, 0], [5, -1, 100]], np.int8),), dict(axis=0), name="int8_ends"),
            Sample((np.array([True, True]),), dict(axis=0), name="bool_all_true")]


def _torch_amin(x, axis):
    return torch.amin(x) if axis is None else torch.amin(x, dim=axis)


# ---- the table ---------------------------------------------------------------------------

OPS = [
    OpInfo("cumsum", lambda x, axis: tg.cumsum(x, axis), lambda x, axis: torch.cumsum(x, dim=axis),
           _cumsum_samples),
    OpInfo("cumprod", lambda x, axis: tg.cumprod(x, axis), lambda x, axis: torch.cumprod(x, dim=axis),
           _cumprod_samples, rtol=1e-5, atol=1e-6),
    OpInfo("cummax", lambda x, axis: tg.cummax(x, axis), lambda x, axis: tuple(torch.cummax(x, dim=axis)),
           _cum_extreme_samples, grad_outputs=(0,)),
    OpInfo("cummin", lambda x, axis: tg.cummin(x, axis), lambda x, axis: tuple(torch.cummin(x, dim=axis)),
           _cum_extreme_samples, grad_outputs=(0,)),
    OpInfo("logcumsumexp", lambda x, axis: tg.logcumsumexp(x, axis),
           lambda x, axis: torch.logcumsumexp(x, dim=axis), _logcumsumexp_samples),
    OpInfo("sort", lambda x, axis, descending: tg.sort(x, axis, descending), lambda x, axis, descending:
           tuple(_torch_sort(x, axis, descending)), _sort_samples, grad_outputs=(0,)),
    OpInfo("argsort", lambda x, axis, descending: tg.argsort(x, axis, descending),
           lambda x, axis, descending: torch.argsort(x, dim=axis, descending=descending, stable=True),
           _argsort_samples, grad=False),
    OpInfo("topk", lambda x, k, axis, largest: tg.topk(x, k, axis, largest),
           lambda x, k, axis, largest: tuple(torch.topk(x, k, dim=axis, largest=largest)), _topk_samples,
           grad_outputs=(0,)),
    OpInfo("argmax", lambda x, axis, keepdims: tg.argmax(x, axis, keepdims),
           lambda x, axis, keepdims: torch.argmax(x, dim=axis, keepdim=keepdims), _arg_samples, grad=False),
    OpInfo("argmin", lambda x, axis, keepdims: tg.argmin(x, axis, keepdims),
           lambda x, axis, keepdims: torch.argmin(x, dim=axis, keepdim=keepdims), _arg_samples, grad=False),
    OpInfo("prod", lambda x, axis, keepdims: tg.prod(x, axis, keepdims), _torch_prod, _prod_samples),
    OpInfo("any", lambda x, axis, keepdims: tg.any(x, axis, keepdims),
           lambda x, axis, keepdims: torch.any(x) if axis is None else torch.any(x, dim=axis, keepdim=keepdims),
           _truth_samples, grad=False),
    OpInfo("all", lambda x, axis, keepdims: tg.all(x, axis, keepdims),
           lambda x, axis, keepdims: torch.all(x) if axis is None else torch.all(x, dim=axis, keepdim=keepdims),
           _truth_samples, grad=False),
    OpInfo("var", lambda x, axis, keepdims, correction: tg.var(x, axis, keepdims, correction=correction),
           lambda x, axis, keepdims, correction: torch.var(x, dim=axis, keepdim=keepdims, correction=correction),
           _var_samples),
    OpInfo("std", lambda x, axis, keepdims, correction: tg.std(x, axis, keepdims, correction=correction),
           lambda x, axis, keepdims, correction: torch.std(x, dim=axis, keepdim=keepdims, correction=correction),
           _var_samples),
    OpInfo("norm", lambda x, p, axis, keepdims: tg.norm(x, p, axis, keepdims),
           lambda x, p, axis, keepdims: torch.linalg.vector_norm(x, ord=p, dim=axis, keepdim=keepdims),
           _norm_samples),
    OpInfo("norm_p0_p3", lambda x, p, axis, keepdims: tg.norm(x, p, axis, keepdims),
           lambda x, p, axis, keepdims: torch.linalg.vector_norm(x, ord=p, dim=axis, keepdim=keepdims),
           _norm0_samples),
    OpInfo("logsumexp_axes", lambda x, axis, keepdims: tg.logsumexp(x, axis, keepdims),
           lambda x, axis, keepdims: torch.logsumexp(x, dim=tuple(range(x.dim())) if axis is None else axis,
                                                     keepdim=keepdims), _lse_samples),
    OpInfo("min_int_bool", lambda x, axis: tg.min(x, axis), _torch_amin, _min_int_samples, grad=False),
]
