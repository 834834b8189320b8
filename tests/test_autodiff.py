"""Symbolic reverse-mode autodiff (tg.grad): fan-out accumulation, broadcasting,
unused inputs, gradients of gradients, the course's worked example, and errors.
Values are checked against closed forms and torch autograd in float64.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tensorforge as tg
from tensorforge.testing import check_grad


def run(inputs, outputs, *arrays):
    return tg.compile(inputs, outputs)(*arrays)


def test_fan_out_x_times_x_accumulates_both_uses():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4,), dtype="float64")
        y = tg.sum(x * x)
        gx = tg.grad(y, x)
    xv = np.array([-2.0, -0.5, 1.0, 3.0])
    (got,) = run([x], [gx], xv)
    np.testing.assert_allclose(got, 2 * xv)


def test_fan_out_to_three_consumers_sums_their_gradients():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,), dtype="float64")
        y = tg.sum(tg.exp(x)) + tg.sum(3.0 * x) + tg.sum(tg.tanh(x))
        gx = tg.grad(y, x)
    xv = np.array([-1.0, 0.2, 0.7])
    (got,) = run([x], [gx], xv)
    np.testing.assert_allclose(got, np.exp(xv) + 3.0 + (1 - np.tanh(xv) ** 2), rtol=1e-12)


def test_broadcast_gradients_are_summed_back_to_each_input_shape():
    g = tg.Graph()
    with g:
        a = tg.placeholder("a", (3, 1), dtype="float64")
        b = tg.placeholder("b", (4,), dtype="float64")
        s = tg.placeholder("s", (), dtype="float64")
        y = tg.sum((a + b) * s)
        ga, gb, gs = tg.grad(y, [a, b, s])
    assert ga.shape == (3, 1) and gb.shape == (4,) and gs.shape == ()
    av, bv, sv = np.array([[1.0], [2.0], [3.0]]), np.array([0.1, 0.2, 0.3, 0.4]), np.array(2.0)
    got = run([a, b, s], [ga, gb, gs], av, bv, sv)
    np.testing.assert_allclose(got[0], np.full((3, 1), 4 * 2.0))
    np.testing.assert_allclose(got[1], np.full(4, 3 * 2.0))
    np.testing.assert_allclose(got[2], np.sum(av + bv))


def test_broadcast_gradient_with_unknown_batch_dim():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3))
        b = tg.parameter("b", np.zeros(3, np.float32))
        gb = tg.grad(tg.sum(tg.relu(x + b)), b)
    assert gb.shape == (3,)
    f = tg.compile([x], [gb])
    for n in (1, 4):
        xv = np.ones((n, 3), np.float32)
        np.testing.assert_allclose(f(xv)[0], np.full(3, float(n)))


def test_unused_inputs_get_zero_gradients_of_their_shape():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (2,))
        unused = tg.placeholder("u", (None, 3))
        w = tg.parameter("w", np.ones((2, 2), np.float32))
        gx, gu, gw = tg.grad(tg.sum(x * 2.0), [x, unused, w])
    got = run([x, unused], [gx, gu, gw], np.ones(2, np.float32), np.ones((5, 3), np.float32))
    np.testing.assert_allclose(got[0], [2.0, 2.0])
    assert got[1].shape == (5, 3) and not got[1].any()
    assert got[2].shape == (2, 2) and not got[2].any()


def test_gradient_through_non_differentiable_ops_is_zero():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,), dtype="float64")
        y = tg.sum(tg.heaviside(x) + tg.cast(x > 0, "float64") * 2.0 + tg.sign(x))
        gx = tg.grad(y, x)
    (got,) = run([x], [gx], np.array([-1.0, 0.5, 2.0]))
    np.testing.assert_array_equal(got, np.zeros(3))


def test_second_derivative_of_x_cubed():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (), dtype="float64")
        y = x ** 3
        dy = tg.grad(y, x)
        d2y = tg.grad(dy, x)
        d3y = tg.grad(d2y, x)
    for xv in (-2.0, 0.5, 3.0):
        got = run([x], [dy, d2y, d3y], np.array(xv))
        np.testing.assert_allclose(got, [3 * xv ** 2, 6 * xv, 6.0], rtol=1e-12)


def test_hessian_vector_product_matches_torch(rng):
    """f(x) = sum(softplus(A x)) + sum(x^3) / 3; Hv = ∇(∇f · v), summed, against torch double backward."""
    A = rng.standard_normal((5, 4))
    xv, vv = rng.standard_normal(4), rng.standard_normal(4)
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4,), dtype="float64")
        v = tg.placeholder("v", (4,), dtype="float64")
        f = tg.sum(tg.softplus(tg.constant(A) @ x)) + tg.sum(x ** 3) / 3.0
        gx = tg.grad(f, x)
        hv = tg.grad(tg.sum(gx * v), x)
        total = tg.sum(hv)
    got_hv, got_total = run([x, v], [hv, total], xv, vv)

    xt = torch.tensor(xv, requires_grad=True)
    ft = torch.nn.functional.softplus(torch.tensor(A) @ xt).sum() + (xt ** 3).sum() / 3
    (gt,) = torch.autograd.grad(ft, xt, create_graph=True)
    (hvt,) = torch.autograd.grad((gt * torch.tensor(vv)).sum(), xt)
    np.testing.assert_allclose(got_hv, hvt.numpy(), rtol=1e-10)
    np.testing.assert_allclose(got_total, hvt.sum().item(), rtol=1e-10)


def test_gradient_of_gradient_passes_check_grad(rng):
    """The gradient graph is itself differentiable: check it against finite differences."""
    def grad_norm(x):
        y = tg.sum(tg.tanh(x) * tg.sigmoid(x) + tg.exp(x * 0.3))
        gx = tg.grad(y, x)
        return gx * gx

    check_grad(grad_norm, [rng.standard_normal((2, 3))])


def test_gradient_with_respect_to_a_placeholder_and_an_intermediate():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,), dtype="float64")
        h = tg.exp(x)
        y = tg.sum(h * h)
        gx, gh = tg.grad(y, [x, h])
    xv = np.array([0.0, 0.5, -1.0])
    got_x, got_h = run([x], [gx, gh], xv)
    np.testing.assert_allclose(got_h, 2 * np.exp(xv))
    np.testing.assert_allclose(got_x, 2 * np.exp(2 * xv))


@pytest.mark.parametrize("point", [(1.0, 2.0, 3.0), (-1.5, 0.5, 4.0), (0.0, 0.0, 0.0)])
def test_course_worked_example(point):
    """z = (x1 + x2)(x2 − x3): ∂z/∂x1 = x2 − x3, ∂z/∂x2 = x1 + 2x2 − x3, ∂z/∂x3 = −x1 − x2."""
    g = tg.Graph()
    with g:
        x1, x2, x3 = (tg.placeholder(n, (), dtype="float64") for n in ("x1", "x2", "x3"))
        z = (x1 + x2) * (x2 - x3)
        grads = tg.grad(z, [x1, x2, x3])
    a, b, c = point
    got = run([x1, x2, x3], [z] + grads, *map(np.array, point))
    np.testing.assert_allclose(got, [(a + b) * (b - c), b - c, a + 2 * b - c, -a - b])


def test_grad_of_single_tensor_returns_a_tensor_and_grad_y_seeds():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,), dtype="float64")
        y = x * x
        seed = tg.placeholder("seed", (3,), dtype="float64")
        vjp = tg.grad(y, x, grad_y=seed)
        single = tg.grad(tg.sum(y), x)
    assert isinstance(single, tg.Tensor)
    (got,) = run([x, seed], [vjp], np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(got, [2.0, 0.0, -6.0])


def test_grad_of_a_mean_is_correct_for_batched_parameters():
    """A small MLP loss: gradients of every parameter against torch."""
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    W1, b1, W2 = rng.standard_normal((3, 4)), rng.standard_normal(4), rng.standard_normal((4, 2))
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3), dtype="float64")
        y = tg.placeholder("y", (None, 2), dtype="float64")
        p = [tg.parameter("W1", W1), tg.parameter("b1", b1), tg.parameter("W2", W2)]
        loss = tg.mean((tg.tanh(x @ p[0] + p[1]) @ p[2] - y) ** 2)
        grads = tg.grad(loss, p)
    got = run([x, y], grads, X, Y)
    pt = [torch.tensor(a, requires_grad=True) for a in (W1, b1, W2)]
    lt = ((torch.tanh(torch.tensor(X) @ pt[0] + pt[1]) @ pt[2] - torch.tensor(Y)) ** 2).mean()
    for a, b in zip(got, torch.autograd.grad(lt, pt)):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-10)


def test_grad_errors():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,))
        n = tg.placeholder("n", (), dtype="int64")
        with pytest.raises(ValueError, match=r"y must be a scalar, got shape \(3,\)"):
            tg.grad(x * 2.0, x)
        with pytest.raises(TypeError, match="y must be floating point, got int64"):
            tg.grad(n * 2, n)
    other = tg.Graph()
    with other:
        z = tg.placeholder("z", ())
    with pytest.raises(ValueError, match="not a tensor of the same graph"):
        tg.grad(tg.sum(x), z)


def test_grad_adds_nodes_to_the_same_graph_and_is_interned():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,))
        y = tg.sum(tg.sigmoid(x))
        before = len(g)
        gx = tg.grad(y, x)
        after = len(g)
        gx_again = tg.grad(y, x)
    assert gx.graph is g and after > before
    assert gx_again.same(gx) and len(g) == after  # building the same gradient twice adds nothing
