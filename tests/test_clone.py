"""tensorforge.clone.clone (Theano's clone_replace): values of cloned graphs against
NumPy, sharing of untouched nodes, interning, gradients through clones, and errors.
"""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.clone import clone


@pytest.fixture
def net(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3), dtype="float64")
        W = tg.parameter("W", rng.standard_normal((3, 2)))
        V = tg.parameter("V", rng.standard_normal((3, 2)), trainable=False)
        xs = x * 2.0                      # does not depend on W
        h = tg.tanh(xs @ W)
        loss = tg.mean(h * h)
    return g, x, W, V, xs, h, loss


def _run(inputs, outputs, *arrays):
    return tg.compile(inputs, outputs)(*arrays)


def test_replacing_a_parameter_recomputes_with_the_other_value(net, rng):
    g, x, W, V, xs, h, loss = net
    h2, loss2 = clone([h, loss], {W: V})
    xv = rng.standard_normal((4, 3))
    out_h, out_l, out_h2, out_l2 = _run([x], [h, loss, h2, loss2], xv)
    np.testing.assert_allclose(out_h, np.tanh(2 * xv @ W.value), rtol=1e-12)
    np.testing.assert_allclose(out_h2, np.tanh(2 * xv @ V.value), rtol=1e-12)
    np.testing.assert_allclose(out_l2, np.mean(out_h2 ** 2), rtol=1e-12)
    assert not h2.same(h) and not np.allclose(out_l, out_l2)


def test_untouched_nodes_are_shared_and_clones_intern(net):
    g, x, W, V, xs, h, loss = net
    (h2,) = clone([h], {W: V})
    matmul = h2.inputs[0]
    assert matmul.op == "matmul" and matmul.inputs[0].same(xs) and matmul.inputs[1].same(V)
    n = len(g)
    (h3,) = clone([h], [(W, V)])           # (old, new) pairs work too
    assert h3.same(h2) and len(g) == n     # interned: nothing new was added
    # an output that depends on no replaced tensor comes back as it is
    (same,) = clone([xs], {W: V})
    assert same.same(xs)
    assert clone(xs, {})[0].same(xs)


def test_replacing_an_intermediate_node_and_a_placeholder(net, rng):
    g, x, W, V, xs, h, loss = net
    with g:
        z = tg.placeholder("z", (None, 3), dtype="float64")
    (h_z,) = clone([h], {xs: z})           # an intermediate node
    (h_x,) = clone([h], {x: z})            # a placeholder
    zv = rng.standard_normal((5, 3))
    a, b = _run([z], [h_z, h_x], zv)
    np.testing.assert_allclose(a, np.tanh(zv @ W.value), rtol=1e-12)
    np.testing.assert_allclose(b, np.tanh(2 * zv @ W.value), rtol=1e-12)


def test_gradients_flow_through_the_clone(net, rng):
    g, x, W, V, xs, h, loss = net
    (loss_v,) = clone([loss], {W: V})
    gV = tg.grad(loss_v, V)
    gW = tg.grad(loss, W)
    xv = rng.standard_normal((6, 3))
    gv, gw = _run([x], [gV, gW], xv)
    # the clone of loss at V has the gradient of loss at W, evaluated at V
    saved = W.value.copy()
    W.value = V.value
    (gw_at_v,) = _run([x], [gW], xv)
    W.value = saved
    np.testing.assert_allclose(gv, gw_at_v, rtol=1e-12)
    assert not np.allclose(gv, gw)


def test_bad_replacements_raise_clear_errors(net):
    g, x, W, V, xs, h, loss = net
    with g:
        W32 = tg.parameter("W32", np.zeros((3, 2), np.float32))
        W_wide = tg.parameter("W_wide", np.zeros((3, 4)))
        x_row = tg.placeholder("x_row", (None,), dtype="float64")
    with pytest.raises(TypeError, match="dtype"):
        clone([h], {W: W32})
    with pytest.raises(ValueError, match="shape"):
        clone([h], {W: W_wide})
    with pytest.raises(ValueError, match="shape"):
        clone([h], {x: x_row})
    other = tg.Graph("other")
    with other:
        W_other = tg.parameter("W", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="another graph"):
        clone([h], {W: W_other})
    with pytest.raises(TypeError, match="pairs"):
        clone([h], [W, V])


def test_unknown_dims_are_compatible(net, rng):
    g, x, W, V, xs, h, loss = net
    with g:
        x4 = tg.placeholder("x4", (4, 3), dtype="float64")
    (h4,) = clone([h], {x: x4})
    assert h4.shape == (4, 2)
    xv = rng.standard_normal((4, 3))
    np.testing.assert_allclose(_run([x4], [h4], xv)[0], np.tanh(2 * xv @ W.value), rtol=1e-12)
