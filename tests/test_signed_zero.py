"""Signed zeros: sign(-0.0) is +0.0 on every backend, as in NumPy and torch, so 1/sign(x)
cannot turn into -inf where the reference gives +inf (found by the fuzzer with trunc)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tensorforge as tg


@pytest.mark.parametrize("backend", ["interp", "llvm", "triton"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sign_of_negative_zero_is_positive_zero_and_nan_stays_nan(backend, dtype):
    x = np.array([-0.0285, -0.0, 0.0, np.nan, -2.5, 3.0], dtype=dtype)
    g = tg.Graph()
    with g:
        p = tg.placeholder("x", x.shape, dtype=dtype)
        s = tg.sign(tg.trunc(p))
        f = tg.compile([p], [s, tg.reciprocal(s)], backend=backend)
    sign, inv = f(x)
    want = np.sign(np.trunc(x))       # torch agrees except at NaN, where it gives 0 (we keep the NaN)
    zeros = np.isfinite(x)
    np.testing.assert_array_equal(want[zeros], torch.sign(torch.trunc(torch.tensor(x))).numpy()[zeros])
    np.testing.assert_array_equal(sign, want)
    np.testing.assert_array_equal(np.signbit(sign), np.signbit(want))
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(inv, 1.0 / want)
