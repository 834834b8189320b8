"""The scan / sort / reduction family outside the op-info table: errors for bad input (raised
when the graph is built, naming the argument), torch's ``dim`` keyword, Tensor methods,
axes of size call-time None, and the classic var signature still working."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tensorforge as tg


def _run(build, *arrays, backend="interp"):
    g = tg.Graph()
    with g:
        xs = [tg.placeholder(f"x{i}", a.shape if not isinstance(a, tuple) else a[0],
                             dtype=(a if not isinstance(a, tuple) else a[1]).dtype.name)
              for i, a in enumerate(arrays)]
        outs = build(*xs)
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    return tg.compile(xs, outs, backend=backend)(*[a if not isinstance(a, tuple) else a[1] for a in arrays])


def test_errors_name_the_culprit():
    with tg.Graph():
        x = tg.placeholder("x", (3, 4))
        with pytest.raises(tg.ShapeError, match="topk: k=5 is out of range for an axis of length 4"):
            tg.topk(x, 5)
        with pytest.raises(TypeError, match="topk: k must be an int"):
            tg.topk(x, 1.5)
        with pytest.raises(tg.ShapeError, match="cumsum"):
            tg.cumsum(x, 2)
        with pytest.raises(TypeError, match="axis must be one int"):
            tg.sort(x, (0, 1))
        with pytest.raises(TypeError, match="pass the axis once"):
            tg.cumsum(x, 0, dim=1)
        with pytest.raises(TypeError, match="var: expects a floating-point tensor"):
            tg.var(tg.placeholder("i", (3,), dtype="int64"))
        with pytest.raises(TypeError, match="norm: p must be a number"):
            tg.norm(x, p="fro")
        with pytest.raises(ValueError, match="norm: p=-1.0 is not supported"):
            tg.norm(x, p=-1)
        with pytest.raises(tg.ShapeError, match="argmax: axis 0 .* has size 0"):
            tg.argmax(tg.placeholder("e", (0, 2)), 0)
        with pytest.raises(TypeError, match="logcumsumexp: expects a floating-point tensor"):
            tg.logcumsumexp(tg.placeholder("j", (3,), dtype="int32"))


def test_unknown_scan_length_is_an_error_at_build_time():
    with tg.Graph():
        x = tg.placeholder("x", (2, None))
        with pytest.raises(tg.ShapeError, match="sort: the length of axis 1 .* must be known"):
            tg.sort(x, 1)


def test_batch_axis_may_be_unknown():
    """Only the scanned/sorted axis needs a static length; the batch stays symbolic."""
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    g = tg.Graph()
    with g:
        p = tg.placeholder("x", (None, 5))
        outs = [tg.cumsum(p, 1), *tg.sort(p, 1, descending=True), tg.prod(p, 1), tg.logsumexp(p, (0, 1))]
    fn = tg.compile([p], outs, backend="llvm")
    for rows in (x, x[:2]):
        got = fn(rows)
        t = torch.tensor(rows)
        want = [torch.cumsum(t, 1), *torch.sort(t, dim=1, descending=True, stable=True), torch.prod(t, 1),
                torch.logsumexp(t, (0, 1))]
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)


def test_dim_keyword_and_tensor_methods():
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    outs = _run(lambda p: [p.cumsum(dim=1), p.sort(dim=0)[0], p.topk(2, dim=2)[1], p.argmin(dim=1),
                           p.prod(dim=2), p.std(dim=(0, 2), correction=1), p.norm(ord=1), p.min(1),
                           p.logsumexp(dim=(1, 2)), p.any(dim=0)], x)
    t = torch.tensor(x)
    want = [t.cumsum(1), t.sort(0)[0], t.topk(2, 2)[1], t.argmin(1), t.prod(2), t.std((0, 2), correction=1),
            torch.linalg.vector_norm(t, 1), t.amin(1), t.logsumexp((1, 2)), t.any(0)]
    for a, b in zip(outs, want):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10)


def test_classic_var_signature_is_unchanged():
    """tg.var(x, axis, keepdims) stays the biased variance the normalisation layers use."""
    x = np.random.default_rng(2).standard_normal((4, 3))
    (got,) = _run(lambda p: tg.var(p, 0, True), x)
    np.testing.assert_allclose(got, x.var(axis=0, keepdims=True), rtol=1e-12)


def test_cumprod_gradient_with_zeros_matches_torch():
    x = np.array([2.0, 0.0, 3.0, 0.0, 5.0])
    g = tg.Graph()
    with g:
        p = tg.placeholder("x", (5,), dtype="float64")
        (dx,) = tg.grad(tg.sum(tg.cumprod(p, 0)), [p])
    (got,) = tg.compile([p], [dx], backend="interp")(x)
    t = torch.tensor(x, requires_grad=True)
    torch.cumprod(t, 0).sum().backward()
    np.testing.assert_allclose(got, t.grad.numpy())
