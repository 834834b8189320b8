"""Signed zeros in max, min, maximum and minimum: the contract of every backend.

+0.0 and -0.0 compare equal, so which one a max or min returns is a matter of convention, and
NumPy has none: ``np.minimum(a, b)`` returns ``b`` on a tie, ``np.min`` returns whatever its SIMD
lanes meet last (it changes with the length of the array). A later ``copysign`` or ``1 / x``
makes the difference visible (the fuzzer found it, seed 5332). tensorforge follows IEEE 754-2019
``minimum``/``maximum`` instead, on every backend: -0.0 is smaller than +0.0, so

    max / maximum of zeros of both signs is +0.0, min / minimum is -0.0,

whatever the order of the operands (so fusion, reassociation and vector lanes cannot change it),
as ``llvm.maximum``/``llvm.minimum`` compute it. The interpreter (the reference) gets there from
NumPy's result with a fix-up that costs one comparison over the result unless a result is a zero.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _is_float(a: np.ndarray) -> bool:
    return a.dtype.kind == "f"


def maximum(a: Any, b: Any) -> np.ndarray:
    """np.maximum with max(+0, -0) = +0 in either order (nan still propagates)."""
    r = np.asarray(np.maximum(a, b))
    if not _is_float(r):
        return r
    both = (np.asarray(a) == 0) & (np.asarray(b) == 0)
    if not np.any(both):
        return r
    # on two zeros a + b is +0 unless both are -0: exactly IEEE maximum
    return np.asarray(np.where(both, np.add(a, b), r), dtype=r.dtype)


def minimum(a: Any, b: Any) -> np.ndarray:
    """np.minimum with min(+0, -0) = -0 in either order (nan still propagates)."""
    r = np.asarray(np.minimum(a, b))
    if not _is_float(r):
        return r
    both = (np.asarray(a) == 0) & (np.asarray(b) == 0)
    if not np.any(both):
        return r
    # on two zeros -(-a + -b) is -0 unless both are +0: exactly IEEE minimum
    return np.asarray(np.where(both, np.negative(np.add(np.negative(a), np.negative(b))), r), dtype=r.dtype)


def _fix_zero_extremum(x: np.ndarray, r: np.ndarray, axis: Any, keepdims: bool, want_negative: bool) -> np.ndarray:
    """Where the reduction gave a zero, the zero of the sign the contract picks: min gives -0 if
    any -0 was reduced, max gives +0 if any +0 was."""
    if not _is_float(r):
        return r
    zero = r == 0
    if not np.any(zero):
        return r
    x_zero = x == 0
    hit = np.any(x_zero & (np.signbit(x) == want_negative), axis=axis, keepdims=keepdims)
    signed = np.where(hit, -0.0 if want_negative else 0.0, 0.0 if want_negative else -0.0)
    return np.asarray(np.where(zero, signed, r), dtype=r.dtype)


def reduce_max(x: Any, axis: Any = None, keepdims: bool = False, **kw: Any) -> np.ndarray:
    """np.max whose zero results follow IEEE maximum (+0 beats -0)."""
    x = np.asarray(x)
    r = np.asarray(np.max(x, axis=axis, keepdims=keepdims, **kw))
    return _fix_zero_extremum(x, r, axis, keepdims, want_negative=False)


def reduce_min(x: Any, axis: Any = None, keepdims: bool = False, **kw: Any) -> np.ndarray:
    """np.min whose zero results follow IEEE minimum (-0 beats +0)."""
    x = np.asarray(x)
    r = np.asarray(np.min(x, axis=axis, keepdims=keepdims, **kw))
    return _fix_zero_extremum(x, r, axis, keepdims, want_negative=True)
