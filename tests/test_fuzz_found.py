"""Bugs the differential fuzzer (tools/fuzz.py) found, each pinned by a test against the
interpreter and an explicit oracle, on every backend."""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg

BACKENDS = ["interp", "llvm", "triton"]


def _zeros(shape, seed):
    """Zeros of random signs (and a few ones, so not every result is a zero)."""
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(shape) < 0.5, 0.0, -0.0)
    return np.where(rng.random(shape) < 0.05, 1.0, x).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape,axis", [((3, 4), 0), ((3, 4), 1), ((5, 17), 1), ((33,), None), ((4, 33), 0)])
def test_max_and_min_of_signed_zeros_follow_ieee_754_2019(backend, shape, axis):
    """seed 5332: min over tied +0/-0 was -0 on llvm and +0 in NumPy, made visible by copysign.
    The contract (ops/signed_zero.py): -0 < +0, whatever the order of the elements."""
    x = _zeros(shape, seed=len(shape) * 100 + (axis or 0))
    g = tg.Graph()
    with g:
        p = tg.placeholder("x", shape)
        hi, lo = tg.max(p, axis=axis), tg.min(p, axis=axis)
        f = tg.compile([p], [hi, lo, tg.copysign(lo * 0.0 + 2.0, lo)], backend=backend)
    got_hi, got_lo, signed = (np.asarray(o) for o in f(x))
    want_hi, want_lo = np.max(x, axis=axis), np.min(x, axis=axis)       # values (signs below)
    np.testing.assert_array_equal(got_hi, want_hi)
    np.testing.assert_array_equal(got_lo, want_lo)
    neg = np.signbit(x)
    zero_hi_negative = np.all(neg | (x != 0), axis=axis)        # max is -0 only if no +0 was reduced
    zero_lo_negative = np.any(neg & (x == 0), axis=axis)        # min is -0 if any -0 was reduced
    np.testing.assert_array_equal(np.signbit(got_hi), np.where(want_hi == 0, zero_hi_negative, want_hi < 0))
    np.testing.assert_array_equal(np.signbit(got_lo), np.where(want_lo == 0, zero_lo_negative, want_lo < 0))
    np.testing.assert_array_equal(signed, np.where(np.signbit(got_lo), -2.0, 2.0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_elementwise_maximum_and_minimum_of_signed_zeros_do_not_depend_on_operand_order(backend):
    a = np.array([0.0, -0.0, 0.0, -0.0, np.nan, -0.0, 1.0, -1.0], np.float32)
    b = np.array([-0.0, 0.0, 0.0, -0.0, -0.0, np.nan, -0.0, 0.0], np.float32)
    g = tg.Graph()
    with g:
        pa, pb = tg.placeholder("a", a.shape), tg.placeholder("b", b.shape)
        outs = [tg.maximum(pa, pb), tg.maximum(pb, pa), tg.minimum(pa, pb), tg.minimum(pb, pa), tg.relu(pa)]
        f = tg.compile([pa, pb], outs, backend=backend)
    mx1, mx2, mn1, mn2, relu = (np.asarray(o) for o in f(a, b))
    want_max = np.array([0.0, 0.0, 0.0, -0.0, np.nan, np.nan, 1.0, 0.0], np.float32)
    want_min = np.array([-0.0, -0.0, 0.0, -0.0, np.nan, np.nan, -0.0, -1.0], np.float32)
    for got, want in [(mx1, want_max), (mx2, want_max), (mn1, want_min), (mn2, want_min)]:
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got[~np.isnan(want)]), np.signbit(want[~np.isnan(want)]))
    np.testing.assert_array_equal(np.signbit(relu), [False, False, False, False, False, False, False, False])


@pytest.mark.parametrize("backend", BACKENDS)
def test_negated_reciprocal_square_root_is_exact_at_zero_and_one(backend):
    """seed 5144: the gradient of acos, -(1 / sqrt(1 - x*x)), was NaN at x = +-1 on llvm (-inf in
    NumPy) and 0.99999994 at x = 0: the fneg's fast-math flags (arcp afn) went onto the division,
    which LLVM then computed with an approximate reciprocal square root."""
    x = np.array([-1.0, 1.0, 0.0, 0.5, -0.0, 2.0, 0.25, 0.75] * 2, np.float32)
    g = tg.Graph()
    with g:
        p = tg.placeholder("x", x.shape)
        y = -(1.0 / tg.sqrt(1.0 - p * p))
        dacos = tg.grad(tg.sum(tg.acos(p)), [p])[0]
        f = tg.compile([p], [y, dacos, 3.0 / tg.sqrt(p)], backend=backend)
    got_y, got_d, got_r = (np.asarray(o) for o in f(x))
    with np.errstate(all="ignore"):
        want = -(np.float32(1.0) / np.sqrt(np.float32(1.0) - x * x))
        want_r = np.float32(3.0) / np.sqrt(x)
    np.testing.assert_array_equal(got_y, want)          # -inf at +-1, exactly -1 at 0, nan at 2
    np.testing.assert_allclose(got_d, want, rtol=1e-6)
    np.testing.assert_array_equal(got_r[x == 0], want_r[x == 0])   # +inf and -inf at +0 and -0
    np.testing.assert_allclose(got_r, want_r, rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_pool_of_signed_zeros_is_positive_zero_when_any_tap_is(backend):
    """The pooling kernels kept whichever zero came first in the window (NumPy's the last)."""
    x = _zeros((1, 2, 6, 8), seed=7)
    g = tg.Graph()
    with g:
        p = tg.placeholder("x", x.shape)
        f = tg.compile([p], [tg.max_pool2d(p, 2)], backend=backend)
    (got,) = (np.asarray(o) for o in f(x))
    windows = x.reshape(1, 2, 3, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(1, 2, 3, 4, 4)
    want = windows.max(axis=-1)
    np.testing.assert_array_equal(got, want)
    positive_zero_seen = np.any((windows == 0) & ~np.signbit(windows), axis=-1)
    np.testing.assert_array_equal(np.signbit(got), np.where(want == 0, ~positive_zero_seen, want < 0))


@pytest.mark.parametrize("backend", ["interp+passes", "llvm"])
def test_integer_min_fused_into_a_float_kernel(backend):
    """seeds 7580, 8034 (interp+passes): the kernel-IR interpreter reduced an int64 min with the
    float32 kernel's identity, +inf, and raised OverflowError; compiled code reduces in float32."""
    from tensorforge.passes import COMPILER_PASSES
    x = np.array([[-3, 5, 2], [4, 7, 1]], np.int64)
    g = tg.Graph()
    with g:
        p = tg.placeholder("x", x.shape, dtype="int64")
        m = tg.cast(tg.min(p, axis=1, keepdims=True), "float32")
        out = tg.log(tg.abs(m) + 1.0)
        f = tg.compile([p], [out], backend="interp" if backend == "interp+passes" else backend,
                       passes=COMPILER_PASSES if backend == "interp+passes" else None)
    (got,) = (np.asarray(o) for o in f(x))
    np.testing.assert_allclose(got, np.log(np.abs(x.min(axis=1, keepdims=True)).astype(np.float32) + 1), rtol=1e-6)
