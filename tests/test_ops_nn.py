"""Neural-network ops against torch (float64): convolution, pooling, dropout,
batch/layer/group/instance norm, maxout, PReLU and the losses.

Each op: forward values and gradients against torch autograd, gradients against
finite differences (check_grad) on small shapes, gradients of gradients where the
op provides them, and the error messages for bad shapes.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tensorforge as tg
from tensorforge.ops import apply
from tensorforge.ops.random import keep_threshold, random_bits, rng_counter
from tensorforge.testing import check_grad

TOL = dict(rtol=1e-9, atol=1e-11)


def tg_value_and_grads(fn, arrays, weights, wrt=None):
    """fn(*arrays) and the gradients of sum(weights * fn) w.r.t. the inputs ``wrt``
    (default: every float input), through tg.compile."""
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else wrt
    g = tg.Graph()
    with g:
        xs = [tg.placeholder(f"x{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays)]
        y = fn(*xs)
        loss = tg.sum(y * tg.constant(np.asarray(weights, dtype=y.dtype)))
        grads = tg.grad(loss, [xs[i] for i in wrt])
    value, *grads = tg.compile(xs, [y] + grads)(*arrays)
    return value, grads


def torch_value_and_grads(fn, arrays, weights, wrt=None):
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else wrt
    ts = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    y = fn(*ts)
    grads = torch.autograd.grad((y * torch.tensor(weights)).sum(), [ts[i] for i in wrt])
    return y.detach().numpy(), [gi.numpy() for gi in grads]


def assert_matches_torch(tg_fn, torch_fn, arrays, rng, wrt=None, tol=TOL):
    want_value, _ = torch_value_and_grads(torch_fn, arrays, 0.0, wrt)
    weights = rng.standard_normal(want_value.shape)
    value, grads = tg_value_and_grads(tg_fn, arrays, weights, wrt)
    want_value, want_grads = torch_value_and_grads(torch_fn, arrays, weights, wrt)
    assert value.shape == want_value.shape
    np.testing.assert_allclose(value, want_value, **tol)
    for gi, want in zip(grads, want_grads):
        assert gi.shape == want.shape
        np.testing.assert_allclose(gi, want, **tol)


# ---- conv2d -----------------------------------------------------------------------------

CONV_CASES = [
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), 1, 0, id="s1-p0"),
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), 2, 0, id="s2-p0"),
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), 1, 1, id="s1-p1"),
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), 2, 1, id="s2-p1"),
    pytest.param((2, 3, 5, 5), (4, 3, 3, 3), 1, "same", id="same"),
    pytest.param((2, 3, 5, 5), (4, 3, 5, 5), 1, "same", id="same-5x5"),
    pytest.param((2, 3, 6, 5), (2, 3, 2, 3), (2, 1), (0, 1), id="rect-kernel-uneven-stride"),
    pytest.param((1, 2, 7, 6), (3, 2, 3, 2), 3, 2, id="s3-p2-uncovered-rows"),
]


def _torch_padding(padding):
    return "same" if padding == "same" else padding


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", CONV_CASES)
def test_conv2d_matches_torch(x_shape, w_shape, stride, padding, rng):
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
    assert_matches_torch(lambda x, w, b: tg.conv2d(x, w, b, stride=stride, padding=padding),
                         lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=_torch_padding(padding)),
                         arrays, rng)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", [CONV_CASES[i] for i in (0, 3, 4)])
def test_conv2d_check_grad(x_shape, w_shape, stride, padding, rng):
    check_grad(lambda x, w: tg.conv2d(x, w, stride=stride, padding=padding),
               [rng.standard_normal(x_shape), rng.standard_normal(w_shape)])


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1)])
def test_conv2d_gradient_of_gradient(stride, padding, rng):
    # second derivatives go through the pullbacks of conv2d_grad_input/_weight
    x, w = rng.standard_normal((1, 2, 4, 4)), rng.standard_normal((2, 2, 3, 3))

    def grad_of(i):
        def fn(x, w):
            y = tg.conv2d(x, w, stride=stride, padding=padding)
            return tg.grad(tg.sum(y * y), [x, w])[i]
        return fn
    check_grad(grad_of(0), [x, w])
    check_grad(grad_of(1), [x, w])


def test_conv2d_float32_and_unknown_batch(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3, 6, 6))
        w = tg.parameter("w", rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
        b = tg.parameter("b", np.zeros(4, np.float32))
        y = tg.conv2d(x, w, b, padding="same")
        (gw,) = tg.grad(tg.mean(y * y), [w])
    assert y.shape == (None, 4, 6, 6) and y.dtype == "float32"
    f = tg.compile([x], [y, gw])
    for n in (1, 3):
        xv = rng.standard_normal((n, 3, 6, 6)).astype(np.float32)
        yv, gwv = f(xv)
        want = F.conv2d(torch.tensor(xv), torch.tensor(w.value), padding="same").numpy()
        assert yv.dtype == np.float32 and gwv.dtype == np.float32
        np.testing.assert_allclose(yv, want, rtol=1e-5, atol=1e-5)


def test_conv2d_shape_errors():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (2, 3, 5, 5))
        with pytest.raises(tg.ShapeError, match=r"channel mismatch.*\(2, 3, 5, 5\).*\(4, 2, 3, 3\)"):
            tg.conv2d(x, tg.placeholder("w", (4, 2, 3, 3)))
        w = tg.placeholder("w2", (4, 3, 3, 3))
        with pytest.raises(tg.ShapeError, match="smaller than the kernel"):
            tg.conv2d(tg.placeholder("tiny", (1, 3, 2, 2)), w)
        with pytest.raises(tg.ShapeError, match=r"x \(N, C, H, W\)"):
            tg.conv2d(tg.placeholder("flat", (3, 5, 5)), w)
        # an even kernel pads the odd extra row/column after, as torch does
        assert tg.conv2d(x, tg.placeholder("even", (4, 3, 2, 2)), padding="same").shape == (2, 4, 5, 5)
        with pytest.raises(ValueError, match="stride 1"):
            tg.conv2d(x, w, stride=2, padding="same")
        assert tg.conv2d(x, w, stride=2, padding=1).shape == (2, 4, 3, 3)   # (5 + 2 - 3)//2 + 1


def test_conv2d_channel_mismatch_at_call_time():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, None, 5, 5))
        y = tg.conv2d(x, tg.parameter("w", np.ones((1, 3, 3, 3), np.float32)))
    f = tg.compile([x], y)
    assert f(np.ones((1, 3, 5, 5), np.float32)).shape == (1, 1, 3, 3)
    with pytest.raises(tg.ShapeError, match="channel mismatch"):
        f(np.ones((1, 2, 5, 5), np.float32))


# ---- pooling ----------------------------------------------------------------------------

POOL_CASES = [
    pytest.param(2, None, 0, id="k2"),
    pytest.param(3, 2, 1, id="k3-s2-p1"),
    pytest.param(2, 1, 0, id="k2-s1-overlapping"),
    pytest.param((3, 2), (1, 2), (1, 0), id="rect"),
]


@pytest.mark.parametrize("kernel,stride,padding", POOL_CASES)
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pooling_matches_torch(pool, kernel, stride, padding, rng):
    tg_fn, torch_fn = (tg.max_pool2d, F.max_pool2d) if pool == "max" else (tg.avg_pool2d, F.avg_pool2d)
    x = rng.standard_normal((2, 3, 5, 6))
    assert_matches_torch(lambda t: tg_fn(t, kernel, stride, padding),
                         lambda t: torch_fn(t, kernel, stride, padding), [x], rng)


@pytest.mark.parametrize("kernel,stride,padding", [(2, 1, 0), (3, 2, 1), (2, None, 1)])
def test_max_pool_ties_go_to_the_first_maximum_like_torch(kernel, stride, padding, rng):
    x = rng.integers(0, 3, (2, 2, 5, 5)).astype(np.float64)    # many ties, overlapping windows
    assert_matches_torch(lambda t: tg.max_pool2d(t, kernel, stride, padding),
                         lambda t: F.max_pool2d(t, kernel, stride, padding), [x], rng)


@pytest.mark.parametrize("pool", [tg.max_pool2d, tg.avg_pool2d])
def test_pooling_check_grad(pool, rng):
    x = rng.permutation(2 * 2 * 5 * 5).reshape(2, 2, 5, 5) / 10.0   # distinct: no kinks at ties
    check_grad(lambda t: pool(t, 3, 2, 1), [x])
    check_grad(lambda t: pool(t, 2, 1), [x])


def test_avg_pool_gradient_of_gradient(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    check_grad(lambda t: tg.grad(tg.sum(tg.avg_pool2d(t, 3, 2, 1) ** 3.0), t), [x])


def test_pooling_shape_rules_and_errors():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3, 7, None))
        assert tg.max_pool2d(x, 2).shape == (None, 3, 3, None)
        assert tg.avg_pool2d(x, 3, 1, 1).shape == (None, 3, 7, None)
        with pytest.raises(tg.ShapeError, match="at most half the kernel"):
            tg.max_pool2d(x, 2, padding=2)
        with pytest.raises(tg.ShapeError, match=r"\(N, C, H, W\)"):
            tg.avg_pool2d(tg.placeholder("v", (3, 4)), 2)
        with pytest.raises(tg.ShapeError, match="smaller than the kernel"):
            tg.max_pool2d(tg.placeholder("tiny", (1, 1, 1, 4)), 2)


# ---- dropout ----------------------------------------------------------------------------

def dropout_graph(shape, p, seed=0, dtype="float64"):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", shape, dtype=dtype)
        y = tg.dropout(x, p, seed=seed)
        w = tg.placeholder("w", shape, dtype=dtype)
        (gx,) = tg.grad(tg.sum(y * w), [x])
    return g, x, w, y, gx


def test_dropout_mask_rate_scale_and_gradient(rng):
    p, n = 0.3, 100_000
    g, x, w, y, gx = dropout_graph((n,), p, seed=4)
    f = tg.compile([x, w], [y, gx])
    xv, wv = rng.uniform(0.5, 1.5, n), rng.standard_normal(n)
    yv, gv = f(xv, wv)
    kept = yv != 0
    assert abs(kept.mean() - (1 - p)) < 0.01                 # keep rate 1-p (std ≈ 0.0015)
    scale = 1.0 / (1.0 - p)                                   # the spec: one rounded scale factor
    np.testing.assert_array_equal(yv[kept], xv[kept] * scale)
    np.testing.assert_array_equal(gv, np.where(kept, wv * scale, 0.0))   # gradient = mask/(1-p)
    # the mask is the documented one: keep iff (bits >> 8) >= ceil(p * 2**24), counter 0
    bits = random_bits(4, 0, n)
    np.testing.assert_array_equal(kept, (bits >> 8) >= keep_threshold(p))


def test_dropout_same_counter_same_mask_next_call_new_mask(rng):
    g, x, w, y, gx = dropout_graph((64,), 0.5, seed=1)
    f = tg.compile([x], [y])
    ones = np.ones(64)
    first, second = f(ones)[0], f(ones)[0]
    assert rng_counter(g).value == 2
    assert not np.array_equal(first, second)                  # the counter advanced
    rng_counter(g).value = 0                                 # rewind: the first mask again
    np.testing.assert_array_equal(f(ones)[0], first)
    g2, x2, _, y2, _ = dropout_graph((64,), 0.5, seed=1)     # another graph, same seed and count
    np.testing.assert_array_equal(tg.compile([x2], [y2])(ones)[0], first)
    g3, x3, _, y3, _ = dropout_graph((64,), 0.5, seed=2)     # another seed
    assert not np.array_equal(tg.compile([x3], [y3])(ones)[0], first)


def test_dropout_statistics_match_torch(rng):
    p, n = 0.25, 100_000
    x = np.ones(n)
    g, xt, _, y, _ = dropout_graph((n,), p, seed=7)
    ours = tg.compile([xt], [y])(x)[0]
    torch.manual_seed(0)
    theirs = F.dropout(torch.tensor(x), p, training=True).numpy()
    for out in (ours, theirs):
        assert set(np.unique(out)) == {0.0, 1 / (1 - p)}
    assert abs((ours != 0).mean() - (theirs != 0).mean()) < 0.01
    assert abs(ours.mean() - 1.0) < 0.01 and abs(theirs.mean() - 1.0) < 0.01   # expectation kept


def test_dropout_check_grad_with_a_fixed_counter(rng):
    fn = lambda x, c: apply("dropout", [x, c], p=0.4, seed=3)  # noqa: E731
    check_grad(fn, [rng.standard_normal((4, 5)), np.array(11)])
    check_grad(lambda x, c: tg.grad(tg.sum(fn(x, c) ** 3.0), x), [rng.standard_normal((3, 3)), np.array(2)])


def test_dropout_float32_keeps_dtype_and_scale(rng):
    g, x, w, y, gx = dropout_graph((1000,), 0.1, dtype="float32")
    xv = rng.standard_normal(1000).astype(np.float32)
    yv = tg.compile([x], [y])(xv)[0]
    assert yv.dtype == np.float32
    kept = yv != 0
    np.testing.assert_array_equal(yv[kept], xv[kept] * np.float32(1 / 0.9))


def test_dropout_identity_cases_and_errors():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,))
        assert tg.dropout(x, 0.5, training=False).same(x)
        assert tg.dropout(x, 0.0).same(x)
        assert "rng_counter" not in [p.name for p in g.parameters()]   # no counter needed yet
        zero = tg.dropout(x, 1.0)
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
            tg.dropout(x, 1.5)
        with pytest.raises(ValueError, match="seed must be in"):
            tg.dropout(x, 0.5, seed=-3)
        with pytest.raises(tg.ShapeError, match="floating point"):
            tg.dropout(tg.placeholder("n", (3,), dtype="int64"), 0.5)
    np.testing.assert_array_equal(tg.compile([x], zero)(np.ones(3, np.float32)), np.zeros(3))


# ---- batch norm -----------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 3)], ids=["NC", "NCHW"])
def test_batch_norm_training_matches_torch(shape, rng):
    arrays = [rng.standard_normal(shape) * 2 + 1, rng.standard_normal(3), rng.standard_normal(3)]
    assert_matches_torch(lambda x, gm, bt: tg.batch_norm(x, gm, bt),
                         lambda x, gm, bt: F.batch_norm(x, None, None, gm, bt, training=True), arrays, rng,
                         tol=dict(rtol=1e-8, atol=1e-10))
    check_grad(lambda x, gm, bt: tg.batch_norm(x, gm, bt), [a[..., :2] if a.ndim == 4 else a for a in arrays])


@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2, 2)], ids=["NC", "NCHW"])
def test_batch_norm_running_stats_follow_torch(shape, rng):
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None,) + shape[1:], dtype="float64")
        gm, bt = tg.parameter("gamma", gamma), tg.parameter("beta", beta)
        rm = tg.parameter("running_mean", np.zeros(3), trainable=False)
        rv = tg.parameter("running_var", np.ones(3), trainable=False)
        y_train = tg.batch_norm(x, gm, bt, rm, rv, training=True, momentum=0.1)
        y_eval = tg.batch_norm(x, gm, bt, rm, rv, training=False)
    train, evaluate = tg.compile([x], y_train), tg.compile([x], y_eval)
    assert {p.name for p, _ in train.updates} == {"running_mean", "running_var"}
    assert evaluate.updates == []

    bn = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(3, momentum=0.1).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    bn.train()
    for _ in range(3):
        xb = rng.standard_normal(shape) * 3 + 2
        np.testing.assert_allclose(train(xb), bn(torch.tensor(xb)).detach().numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(rm.value, bn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv.value, bn.running_var.numpy(), rtol=1e-12)

    bn.eval()
    xt = rng.standard_normal((2,) + shape[1:])
    before = rm.value.copy()
    np.testing.assert_allclose(evaluate(xt), bn(torch.tensor(xt)).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(rm.value, before)           # eval does not touch the stats


def test_batch_norm_argument_errors():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3, 4, 4))
        with pytest.raises(tg.ShapeError, match=r"gamma must have shape \(3,\)"):
            tg.batch_norm(x, tg.placeholder("gm", (4,)), None)
        with pytest.raises(ValueError, match="eval mode.*needs running_mean"):
            tg.batch_norm(x, None, None, training=False)
        with pytest.raises(TypeError, match="must be parameters"):
            tg.batch_norm(x, None, None, tg.placeholder("rm", (3,)), None)
        with pytest.raises(TypeError, match="'rv' must be created with trainable=False"):
            tg.batch_norm(x, None, None, None, tg.parameter("rv", np.ones(3, np.float32)))
        with pytest.raises(tg.ShapeError, match=r"\(N, C\) or \(N, C, H, W\)"):
            tg.batch_norm(tg.placeholder("v", (3, 4, 5)), None, None)


# ---- layer, group and instance norm ------------------------------------------------------

def test_layer_norm_matches_torch(rng):
    x = rng.standard_normal((3, 4, 5)) * 2 + 1
    gamma, beta = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    assert_matches_torch(lambda x, gm, bt: tg.layer_norm(x, gm, bt, normalized_ndim=2),
                         lambda x, gm, bt: F.layer_norm(x, (4, 5), gm, bt), [x, gamma, beta], rng)
    assert_matches_torch(lambda x: tg.layer_norm(x), lambda x: F.layer_norm(x, (5,)), [x], rng)
    check_grad(lambda x, gm, bt: tg.layer_norm(x, gm, bt), [x[:2, :2], gamma[0], beta[0]])


@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 2), 3), ((2, 6, 3, 2), 1), ((2, 6, 3, 2), 6), ((4, 6), 2)])
def test_group_norm_matches_torch(shape, groups, rng):
    arrays = [rng.standard_normal(shape) * 2 + 1, rng.standard_normal(6), rng.standard_normal(6)]
    assert_matches_torch(lambda x, gm, bt: tg.group_norm(x, groups, gm, bt),
                         lambda x, gm, bt: F.group_norm(x, groups, gm, bt), arrays, rng)


def test_group_norm_check_grad_and_unknown_batch(rng):
    check_grad(lambda x, gm, bt: tg.group_norm(x, 2, gm, bt),
               [rng.standard_normal((2, 4, 2, 2)), rng.standard_normal(4), rng.standard_normal(4)])
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 4, 3, 3), dtype="float64")
        y = tg.group_norm(x, 2)
    assert y.shape == (None, 4, 3, 3)
    xv = rng.standard_normal((3, 4, 3, 3))
    np.testing.assert_allclose(tg.compile([x], y)(xv), F.group_norm(torch.tensor(xv), 2).numpy(), **TOL)
    with g:
        with pytest.raises(tg.ShapeError, match="cannot be split into 3 groups"):
            tg.group_norm(x, 3)


def test_instance_norm_matches_torch(rng):
    arrays = [rng.standard_normal((2, 3, 4, 3)) * 2 + 1, rng.standard_normal(3), rng.standard_normal(3)]
    assert_matches_torch(lambda x, gm, bt: tg.instance_norm(x, gm, bt),
                         lambda x, gm, bt: F.instance_norm(x, weight=gm, bias=bt), arrays, rng)
    check_grad(lambda x: tg.instance_norm(x), [arrays[0][:, :2, :2]])


def test_norms_work_with_an_unknown_batch(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 2, 3, 3), dtype="float64")
        outs = [tg.layer_norm(x, normalized_ndim=3), tg.instance_norm(x), tg.batch_norm(x, None, None)]
    f = tg.compile([x], outs)
    xv = rng.standard_normal((5, 2, 3, 3))
    ln, inorm, bn = f(xv)
    xt = torch.tensor(xv)
    np.testing.assert_allclose(ln, F.layer_norm(xt, (2, 3, 3)).numpy(), **TOL)
    np.testing.assert_allclose(inorm, F.instance_norm(xt).numpy(), **TOL)
    np.testing.assert_allclose(bn, F.batch_norm(xt, None, None, training=True).numpy(), **TOL)


# ---- maxout, PReLU ---------------------------------------------------------------------------

def test_maxout_takes_the_max_of_contiguous_pieces(rng):
    x = rng.standard_normal((3, 8))
    w = rng.standard_normal((3, 4))
    value, (gx,) = tg_value_and_grads(lambda t: tg.maxout(t, 2), [x], w)
    np.testing.assert_array_equal(value, np.maximum(x[:, 0::2], x[:, 1::2]))   # unit u: entries 2u, 2u+1
    want = np.zeros_like(x)
    first_wins = x[:, 0::2] > x[:, 1::2]
    want[:, 0::2], want[:, 1::2] = np.where(first_wins, w, 0), np.where(first_wins, 0, w)
    np.testing.assert_array_equal(gx, want)
    check_grad(lambda t: tg.maxout(t, 3, axis=1), [rng.standard_normal((2, 6, 2))])


def test_maxout_shape_rules():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 12))
        assert tg.maxout(x, 3).shape == (None, 4)
        assert tg.maxout(tg.placeholder("c", (None, 6, 5, 5)), 2, axis=1).shape == (None, 3, 5, 5)
        with pytest.raises(tg.ShapeError, match="cannot be split into pieces of 5"):
            tg.maxout(x, 5)


def test_prelu_matches_torch(rng):
    x = rng.choice([-1.0, 1.0], (2, 3, 4, 4)) * rng.uniform(0.1, 2.0, (2, 3, 4, 4))
    alpha = rng.uniform(0.0, 0.5, 3)
    assert_matches_torch(lambda x, a: tg.prelu(x, tg.reshape(a, (3, 1, 1))), F.prelu, [x, alpha], rng)
    assert_matches_torch(lambda x, a: tg.prelu(x, a), F.prelu, [x[:, :1, 0, 0], alpha[:1]], rng)  # one shared α
    check_grad(lambda x, a: tg.prelu(x, a), [x[0, :, 0].T.copy(), alpha])   # (4, 3), α per column


# ---- losses ----------------------------------------------------------------------------

REDUCTIONS = ["none", "mean", "sum"]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_matches_torch(reduction, rng):
    arrays = [rng.standard_normal((4, 3)), rng.standard_normal((4, 3))]
    assert_matches_torch(lambda a, b: tg.mse(a, b, reduction), lambda a, b: F.mse_loss(a, b, reduction=reduction),
                         arrays, rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_matches_torch(reduction, rng):
    z = np.concatenate([rng.standard_normal(6) * 3, [0.0, 40.0, -40.0, 800.0, -800.0]])
    y = np.concatenate([rng.uniform(0, 1, 6), [1.0, 0.0, 1.0, 1.0, 0.0]])
    assert_matches_torch(lambda a, b: tg.binary_cross_entropy(a, b, reduction),
                         lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction), [z, y], rng)
    check_grad(lambda a, b: tg.binary_cross_entropy(a, b), [z[:6], y[:6]])


def test_binary_cross_entropy_is_finite_and_right_at_zero_and_extremes():
    z, y = np.array([0.0, 800.0, -800.0]), np.array([0.25, 0.0, 1.0])
    value, (gz,) = tg_value_and_grads(lambda a, b: tg.binary_cross_entropy(a, b), [z, y], np.ones(3), wrt=[0])
    np.testing.assert_allclose(value, [np.log(2.0), 800.0, 800.0])
    np.testing.assert_allclose(gz, [0.5 - 0.25, 1.0, -1.0])       # sigmoid(z) - y, also at z = 0


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_softmax_cross_entropy_matches_torch(reduction, rng):
    logits, labels = rng.standard_normal((5, 4)) * 3, rng.integers(0, 4, 5)
    assert_matches_torch(lambda z, y: tg.softmax_cross_entropy(z, y, reduction=reduction),
                         lambda z, y: F.cross_entropy(z, y, reduction=reduction), [logits, labels], rng, wrt=[0])


def test_softmax_cross_entropy_class_axis_1_and_check_grad(rng):
    logits, labels = rng.standard_normal((2, 3, 4)), rng.integers(0, 3, (2, 4))   # torch: classes on axis 1
    assert_matches_torch(lambda z, y: tg.softmax_cross_entropy(z, y, axis=1),
                         lambda z, y: F.cross_entropy(z, y, reduction="none"), [logits, labels], rng, wrt=[0])
    check_grad(lambda z, y: tg.softmax_cross_entropy(z, y, axis=1), [logits, labels])
    big = np.array([[1000.0, 0.0, -1000.0]])                       # stable for huge logits
    value, _ = tg_value_and_grads(lambda z, y: tg.softmax_cross_entropy(z, y), [big, np.array([2])], np.ones(1),
                                  wrt=[0])
    np.testing.assert_allclose(value, [2000.0])


def test_loss_errors():
    g = tg.Graph()
    with g:
        z = tg.placeholder("z", (3, 4))
        with pytest.raises(ValueError, match="reduction must be"):
            tg.mse(z, z, reduction="avg")
        with pytest.raises(tg.ShapeError, match="cannot be broadcast"):
            tg.mse(z, tg.placeholder("t", (3, 5)))
        with pytest.raises(tg.ShapeError, match="class axis 1"):
            tg.softmax_cross_entropy(tg.placeholder("u", (3, None)), tg.placeholder("y", (3,), dtype="int64"))
