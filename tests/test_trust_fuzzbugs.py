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
