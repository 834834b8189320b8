"""Regression tests for bugs the differential fuzzer (tensorforge.fuzz) found: outputs that
are views of other outputs, NaN lost by algebraic rewrites of x - x, the sign of tanh(-0.0),
the interpreter running fused reductions under the compiler passes, and the gradient of
concat with call-time and size-0 axes. Each is checked on every backend it applies to,
against NumPy (float64 where it matters)."""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.passes import COMPILER_PASSES

BACKENDS = ["interp", "llvm", "triton"]


# ---- 1. every output comes back with its own shape, as an array of its own ------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_output_that_reshapes_another_output_has_its_own_shape(backend):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (6,))
        c = x * 2.0
        r = tg.reshape(c, (2, 3))
        t = tg.transpose(r)
        f = tg.compile([x], [r, c, t], backend=backend)
    xv = np.arange(6, dtype=np.float32)
    r_out, c_out, t_out = f(xv)
    np.testing.assert_array_equal(r_out, (xv * 2).reshape(2, 3))
    np.testing.assert_array_equal(c_out, xv * 2)
    np.testing.assert_array_equal(t_out, (xv * 2).reshape(2, 3).T)
    c_out[:] = -1.0                       # the outputs do not share memory
    np.testing.assert_array_equal(r_out, (xv * 2).reshape(2, 3))
    np.testing.assert_array_equal(t_out, (xv * 2).reshape(2, 3).T)


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_viewing_an_updated_parameter_keep_the_value_from_before_the_update(backend):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (6,))
        w = tg.parameter("w", np.arange(6, dtype=np.float32))
        new_w = w + x
        f = tg.compile([x], [tg.reshape(w, (3, 2)), new_w, tg.reshape(new_w, (2, 3))],
                       updates=[(w, new_w)], backend=backend)
    ones = np.ones(6, np.float32)
    first = f(ones)
    second = f(ones)
    base = np.arange(6, dtype=np.float32)
    np.testing.assert_array_equal(first[0], base.reshape(3, 2))
    np.testing.assert_array_equal(first[1], base + 1)
    np.testing.assert_array_equal(first[2], (base + 1).reshape(2, 3))
    np.testing.assert_array_equal(second[0], (base + 1).reshape(3, 2))
    np.testing.assert_array_equal(second[2], (base + 2).reshape(2, 3))


# ---- 2. no rewrite (graph pass or LLVM flag) turns inf - inf into 0 -------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ["sum_sub", "sum_add_neg", "mean_sub", "sum_axis_sub"])
def test_reductions_of_x_minus_x_keep_the_nan_of_inf_minus_inf(backend, which):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (2, 3))
        y = {"sum_sub": lambda: tg.sum(x - x), "sum_add_neg": lambda: tg.sum(x + (-x)),
             "mean_sub": lambda: tg.mean(x - x), "sum_axis_sub": lambda: tg.sum(x - x, axis=1)}[which]()
        f = tg.compile([x], [y], backend=backend)
    xv = np.array([[np.inf, 1, 2], [3, 4, 5]], np.float32)
    with np.errstate(invalid="ignore"):                 # inf - inf on purpose
        want = {"sum_sub": np.sum(xv - xv), "sum_add_neg": np.sum(xv + (-xv)), "mean_sub": np.mean(xv - xv),
                "sum_axis_sub": np.sum(xv - xv, axis=1)}[which]
    (out,) = f(xv)
    np.testing.assert_array_equal(out, want)          # NaN where NumPy has NaN, 0 elsewhere


@pytest.mark.parametrize("backend", BACKENDS)
def test_simplification_never_changes_inf_nan_or_the_sign_of_zero(backend):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4,))
        outs = [1.0 / (x + 0.0), 1.0 / (0.0 - x), tg.log(tg.exp(x)), tg.abs(x) ** 0.5,
                x * 0.0, x / x]
        f = tg.compile([x], outs, backend=backend)
    xv = np.array([-0.0, 100.0, -np.inf, np.nan], np.float32)
    with np.errstate(all="ignore"):
        wants = [1.0 / (xv + 0.0), 1.0 / (0.0 - xv), np.log(np.exp(xv)), np.abs(xv) ** 0.5,
                 xv * 0.0, xv / xv]
    for got, want in zip(f(xv), wants):
        np.testing.assert_array_equal(got, want.astype(np.float32))


# ---- 3. tanh keeps the sign of zero (tanh is odd) --------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tanh_of_negative_zero_is_negative_zero(backend, dtype):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (6,), dtype=dtype)
        f = tg.compile([x], [tg.tanh(x), 1.0 / tg.tanh(x)], backend=backend)
    xv = np.array([-0.0, 0.0, -1e-30, 1e-30, -0.3, 2.0], dtype)
    t, inv = f(xv)
    with np.errstate(divide="ignore"):
        want_inv = 1.0 / np.tanh(xv)
    np.testing.assert_array_equal(np.signbit(t), np.signbit(np.tanh(xv)))
    np.testing.assert_allclose(t, np.tanh(xv), rtol=1e-6)
    np.testing.assert_array_equal(inv[:2], want_inv[:2])            # -inf, +inf
    np.testing.assert_allclose(inv[2:], want_inv[2:], rtol=1e-5)


# ---- 4. the interpreter runs fused reductions (kernel IR) as compiled code does -------------

REDUCE_THEN_BROADCAST = {
    "sum_plus_scalar": lambda x, s: tg.sum(x, axis=0) + s,
    "min_keepdims_gt_scalar": lambda x, s: tg.min(x, keepdims=True) > s,
    "max_times_scalar": lambda x, s: tg.max(x) * s - 1.0,
    "mean_keepdims_lt_scalar": lambda x, s: tg.mean(x, keepdims=True) < s,
}


@pytest.mark.parametrize("backend", ["interp+passes", "llvm", "triton"])
@pytest.mark.parametrize("which", sorted(REDUCE_THEN_BROADCAST))
def test_reduction_followed_by_a_broadcast_op_runs_fused(backend, which):
    build = REDUCE_THEN_BROADCAST[which]
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None,))
        s = tg.placeholder("s", ())
        y = build(x, s)
        reference = tg.compile([x, s], [y], backend="interp", passes=[])
        if backend == "interp+passes":
            f = tg.compile([x, s], [y], backend="interp", passes=COMPILER_PASSES)
        else:
            f = tg.compile([x, s], [y], backend=backend)
    xv, sv = np.array([3.0, -1.0, 2.0], np.float32), np.array(0.5, np.float32)
    (want,) = reference(xv, sv)
    (got,) = f(xv, sv)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)


# ---- 5. the gradient of concat with call-time offsets and size-0 axes ------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cols", [0, 3])
def test_concat_gradient_with_call_time_axis_and_size_zero_other_axis(backend, cols):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, None))
        y = tg.placeholder("y", (2, cols))
        z = tg.placeholder("z", (3, cols))
        w = tg.placeholder("w", (None, None))
        loss = tg.sum(tg.concat([x, y, z], 0) * w)
        f = tg.compile([x, y, z, w], tg.grad(loss, [x, y, z]), backend=backend)
    rng = np.random.default_rng(0)
    xv, yv, zv = (rng.standard_normal((n, cols)).astype(np.float32) for n in (4, 2, 3))
    wv = rng.standard_normal((9, cols)).astype(np.float32)
    gx, gy, gz = f(xv, yv, zv, wv)
    np.testing.assert_array_equal(gx, wv[:4])             # d/dpart sum(concat * w) = w's slab
    np.testing.assert_array_equal(gy, wv[4:6])
    np.testing.assert_array_equal(gz, wv[6:])


# ---- 6. fused integer and bool max/min (the interpreter's kernel IR had only float identities) -

@pytest.mark.parametrize("backend", ["interp+passes", "llvm", "triton"])
def test_fused_integer_and_bool_extrema_use_their_dtypes_identity(backend):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3, 4), dtype="int64")
        b = tg.placeholder("b", (3, 4), dtype="bool")
        outs = [tg.min(x * 2, axis=1), tg.max(x + 1, axis=0), tg.min(b, axis=1), tg.max(b, axis=1)]
        if backend == "interp+passes":
            f = tg.compile([x, b], outs, backend="interp", passes=COMPILER_PASSES)
        else:
            f = tg.compile([x, b], outs, backend=backend)
    xv = np.arange(12).reshape(3, 4) - 5
    bv = xv % 3 == 0
    want = [(xv * 2).min(1), (xv + 1).max(0), bv.min(1), bv.max(1)]
    for got, ref in zip(f(xv, bv), want):
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)
