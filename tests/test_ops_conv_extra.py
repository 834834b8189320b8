"""Padding, convolution, pooling and interpolation beyond the op-info table: the errors for
bad shapes and arguments (raised when the graph is built), unknown batch sizes, and the
one-element gradient routing of max pooling at ties."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tensorforge as tg


@pytest.fixture
def g():
    with tg.Graph() as graph:
        yield graph


def _run(fn, arrays, backend="interp"):
    """fn's value and the gradients of sum(fn**2) w.r.t. every input."""
    graph = tg.Graph()
    with graph:
        xs = [tg.placeholder(f"x{i}", [None] + list(a.shape[1:]), dtype=a.dtype.name) for i, a in enumerate(arrays[:1])]
        xs += [tg.placeholder(f"w{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays[1:])]
        y = fn(*xs)
        grads = tg.grad(tg.sum(y * y), xs)
    return tg.compile(xs, [y] + list(grads), backend=backend)(*arrays)


def _torch(fn, arrays):
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    (y * y).sum().backward()
    return [y.detach().numpy()] + [t.grad.numpy() for t in ts]


@pytest.mark.parametrize("backend", ["interp", "llvm"])
def test_unknown_batch_size(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 5, 4)).astype(np.float32)
    w = rng.standard_normal((2, 4, 3, 2)).astype(np.float32)
    got = _run(lambda x, w: tg.conv_transpose2d(tg.pad(x, (1, 0, 0, 1), mode="circular"), w, stride=2), [x, w],
               backend)
    want = _torch(lambda x, w: F.conv_transpose2d(F.pad(x, (1, 0, 0, 1), mode="circular"), w, stride=2),
                  [x.astype(np.float64), w.astype(np.float64)])
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_max_pool_gradient_goes_to_one_element_per_window():
    x = np.ones((1, 1, 4, 4))                 # every window is a tie
    graph = tg.Graph()
    with graph:
        t = tg.placeholder("x", x.shape, dtype="float64")
        (gx,) = tg.grad(tg.sum(tg.max_pool2d(t, 2, stride=2, dilation=1, ceil_mode=True)), [t])
        (gd,) = tg.grad(tg.sum(tg.max_pool2d(t, 2, stride=1, dilation=2)), [t])
    gx_v, gd_v = tg.compile([t], [gx, gd])(x)
    np.testing.assert_array_equal(gx_v[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(gd_v[0, 0], [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_pad_errors(g):
    x = tg.placeholder("x", (2, 3, 4))
    with pytest.raises(ValueError, match="even length"):
        tg.pad(x, (1, 2, 3))
    with pytest.raises(ValueError, match="addresses 4 axes"):
        tg.pad(x, (1,) * 8)
    with pytest.raises(ValueError, match="mode must be one of"):
        tg.pad(x, (1, 1), mode="wrap")
    with pytest.raises(TypeError, match="tuple of ints"):
        tg.pad(x, 1)
    with pytest.raises(tg.ShapeError, match="reflect padding .* smaller than the size 4"):
        tg.pad(x, (4, 0), mode="reflect")
    with pytest.raises(tg.ShapeError, match="circular padding .* at most the size 3"):
        tg.pad(x, (0, 0, 1, 4), mode="circular")
    with pytest.raises(tg.ShapeError, match="removes more than the 4 elements"):
        tg.pad(x, (-3, -2))
    assert tg.pad(x, (1, 1, -1, 0, 2, 2)).shape == (6, 2, 6)


def test_conv_errors(g):
    x = tg.placeholder("x", (2, 4, 5, 5))
    with pytest.raises(tg.ShapeError, match="4 input channels cannot be split into 3 groups"):
        tg.conv2d(x, tg.placeholder("w", (3, 1, 3, 3)), groups=3)
    with pytest.raises(tg.ShapeError, match="2 input channels per group .* got 4"):
        tg.conv2d(x, tg.placeholder("w2", (4, 4, 3, 3)), groups=2)
    with pytest.raises(tg.ShapeError, match="5 output channels of w cannot be split into 2 groups"):
        tg.conv2d(x, tg.placeholder("w3", (5, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match="groups must be an int >= 1"):
        tg.conv2d(x, tg.placeholder("w4", (4, 4, 3, 3)), groups=0)
    with pytest.raises(ValueError, match="dilation must be >= 1"):
        tg.conv2d(x, tg.placeholder("w5", (4, 4, 3, 3)), dilation=0)
    with pytest.raises(ValueError, match="padding must be an int, a tuple, 'same' or 'valid'"):
        tg.conv2d(x, tg.placeholder("w6", (4, 4, 3, 3)), padding="full", dilation=2)
    with pytest.raises(tg.ShapeError, match="smaller than the dilated kernel size 5"):
        tg.conv2d(tg.placeholder("small", (1, 4, 4, 4)), tg.placeholder("w7", (4, 4, 3, 3)), dilation=2)
    with pytest.raises(tg.ShapeError, match=r"conv1d: needs x \(N, C, L\)"):
        tg.conv1d(x, tg.placeholder("w8", (4, 4, 3)))
    with pytest.raises(tg.ShapeError, match=r"conv3d: needs x \(N, C, D, H, W\)"):
        tg.conv3d(x, tg.placeholder("w9", (4, 4, 3, 3, 3)))
    with pytest.raises(tg.ShapeError, match=r"w \(2, 4, 3, 3\) must have shape \(in=4"):
        tg.conv_transpose2d(x, tg.placeholder("wt", (2, 4, 3, 3)))
    with pytest.raises(ValueError, match="output_padding .* smaller than stride"):
        tg.conv_transpose2d(x, tg.placeholder("wt2", (4, 2, 3, 3)), stride=2, output_padding=2)
    with pytest.raises(tg.ShapeError, match="output height .* = -1 for input height 5"):
        tg.conv_transpose2d(x, tg.placeholder("wt3", (4, 2, 3, 3)), padding=(4, 0))
    with pytest.raises(ValueError, match="stride 1"):
        tg.conv1d(tg.placeholder("x1", (2, 4, 5)), tg.placeholder("w10", (4, 4, 2)), stride=2, padding="same")
    assert tg.conv2d(x, tg.placeholder("w11", (4, 4, 3, 3)), padding="valid", dilation=2).shape == (2, 4, 1, 1)


def test_pool_and_interpolate_errors(g):
    x = tg.placeholder("x", (2, 3, 6, 6))
    with pytest.raises(tg.ShapeError, match="at most half the kernel"):
        tg.max_pool2d(x, 2, padding=2, ceil_mode=True)
    with pytest.raises(ValueError, match="divisor_override must be a positive int"):
        tg.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(tg.ShapeError, match="spatial size of x must be known"):
        tg.max_pool2d(tg.placeholder("u", (2, 3, None, 6)), 2, dilation=2)
    with pytest.raises(tg.ShapeError, match="must be floating point"):
        tg.avg_pool2d(tg.placeholder("i", (2, 3, 6, 6), dtype="int64"), 2, ceil_mode=True)
    with pytest.raises(tg.ShapeError, match=r"max_pool1d: needs x|rank 3"):
        tg.max_pool1d(x, 2)
    with pytest.raises(ValueError, match="output_size must be positive"):
        tg.adaptive_avg_pool2d(x, (0, 2))
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        tg.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="mode must be one of"):
        tg.interpolate(x, size=3, mode="bicubic")
    with pytest.raises(tg.ShapeError, match="'bilinear' needs an input of rank 4"):
        tg.interpolate(tg.placeholder("v", (2, 3, 6)), size=3, mode="bilinear")
    with pytest.raises(ValueError, match="align_corners only applies"):
        tg.interpolate(x, size=3, align_corners=True)
    assert tg.interpolate(x, scale_factor=(0.5, 1.5)).shape == (2, 3, 3, 9)
    assert tg.adaptive_avg_pool2d(x, 1).shape == (2, 3, 1, 1)


def test_gradient_of_gradient_through_the_compositions():
    """The compositions need no pullback of their own, second order included."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 6, 6))
    w = rng.standard_normal((4, 2, 3, 3))
    graph = tg.Graph()
    with graph:
        tx = tg.placeholder("x", x.shape, dtype="float64")
        tw = tg.placeholder("w", w.shape, dtype="float64")
        y = tg.avg_pool2d(tg.conv2d(tx, tw, groups=2, dilation=(2, 1), padding="same"), 3, 2, 1, ceil_mode=True,
                          count_include_pad=False)
        (gx,) = tg.grad(tg.sum(tg.tanh(y)), [tx])
        (ggw,) = tg.grad(tg.sum(gx * gx), [tw])
    got = tg.compile([tx, tw], [ggw])(x, w)[0]
    px, pw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    py = F.avg_pool2d(F.conv2d(px, pw, groups=2, dilation=(2, 1), padding="same"), 3, 2, 1, ceil_mode=True,
                      count_include_pad=False)
    (pgx,) = torch.autograd.grad(torch.tanh(py).sum(), [px], create_graph=True)
    (want,) = torch.autograd.grad((pgx * pgx).sum(), [pw])
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-11)
