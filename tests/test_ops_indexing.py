"""Indexing ops: getitem (basic NumPy indexing), concat and one_hot.

Values are checked against NumPy (the definition of the indexing semantics) and
torch; gradients against closed forms, torch and finite differences (check_grad),
including gradients of gradients; shape rules with unknown (None) dimensions and
the error messages for bad indices and shapes.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tensorforge as tg
from tensorforge.compile import InputError
from tensorforge.testing import check_grad


def run(fn, *arrays):
    """Build ``fn`` on placeholders shaped like ``arrays``, compile, run, return the outputs."""
    g = tg.Graph()
    with g:
        xs = [tg.placeholder(f"x{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays)]
        out = fn(*xs)
    outs = out if isinstance(out, (list, tuple)) else [out]
    return tg.compile(xs, list(outs))(*arrays)


def value_and_grad(fn, x, w):
    """fn(x) and the gradient of sum(w * fn(x)) w.r.t. x."""
    def build(t):
        y = fn(t)
        return [y, tg.grad(tg.sum(y * tg.constant(w)), t)]
    return run(build, x)


# ---- getitem ---------------------------------------------------------------------------

INDICES = [
    pytest.param(1, id="int"),
    pytest.param(-1, id="negative-int"),
    pytest.param((slice(1, 3), 2), id="slice-int"),
    pytest.param((slice(None), slice(None, None, 2)), id="step-2"),
    pytest.param((slice(None, None, -1),), id="reversed"),
    pytest.param((slice(3, 0, -2), slice(-1, None)), id="negative-step-and-start"),
    pytest.param((Ellipsis, 1), id="ellipsis-int"),
    pytest.param((None, Ellipsis, None), id="new-axes"),
    pytest.param((1, None, slice(None), -2), id="int-new-slice-int"),
    pytest.param((0, 1, 2), id="scalar-result"),
    pytest.param((slice(5, 9),), id="clamped-slice"),
    pytest.param((slice(2, 2),), id="empty-slice"),
]


@pytest.mark.parametrize("index", INDICES)
def test_getitem_values_and_gradient(index, rng):
    x = rng.standard_normal((4, 3, 5))
    want = x[index]
    w = rng.standard_normal(want.shape)
    value, gx = value_and_grad(lambda t: t[index], x, w)
    assert value.shape == want.shape
    np.testing.assert_array_equal(value, want)
    expected_grad = np.zeros_like(x)
    expected_grad[index] = w                     # scatter into zeros: the closed form
    np.testing.assert_array_equal(gx, expected_grad)


@pytest.mark.parametrize("index", [(slice(1, 3), 2), (Ellipsis, slice(0, 4, 2)), (-1, None, slice(1, None))])
def test_getitem_gradient_matches_torch(index, rng):
    x = rng.standard_normal((4, 3, 5))
    w = rng.standard_normal(x[index].shape)
    _, gx = value_and_grad(lambda t: t[index], x, w)
    xt = torch.tensor(x, requires_grad=True)
    (xt[index] * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(gx, xt.grad.numpy())


@pytest.mark.parametrize("index", [(slice(None, None, -2), 1), (Ellipsis, slice(1, 3)), (0,)])
def test_getitem_check_grad(index, rng):
    check_grad(lambda t: t[index] * t[index], [rng.standard_normal((3, 4))])


def test_getitem_gradient_of_gradient(rng):
    # d/dx of (grad of sum(x[1:, ::2]**3)) = 6 x[1:, ::2] on the selected entries
    x = rng.standard_normal((3, 4))
    check_grad(lambda t: tg.grad(tg.sum(t[1:, ::2] ** 3.0), t), [x])
    check_grad(lambda t: tg.grad(tg.sum(t[1:, ::2] ** 3.0), t)[::-1, 1:], [x])


def test_getitem_on_a_float32_tensor_keeps_the_dtype(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    (value,) = run(lambda t: t[1, 1:3], x)
    assert value.dtype == np.float32
    np.testing.assert_array_equal(value, x[1, 1:3])


def test_getitem_shape_rule_with_unknown_dims():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 6))
    assert x[2:5].shape == (3, 6)            # both ends known and non-negative
    assert x[:4:2].shape == (2, 6)
    assert x[1:].shape == (None, 6)          # open end on an unknown axis
    assert x[-3:].shape == (None, 6)         # counted from the unknown end
    assert x[::-1].shape == (None, 6)
    assert x[4::-2].shape == (3, 6)          # 4, 2, 0
    assert x[0].shape == (6,)
    assert x[:, 1::2].shape == (None, 3)
    assert x[..., None].shape == (None, 6, 1)
    assert x[-1, -1].shape == ()


def test_getitem_of_an_unknown_dim_uses_the_true_length_at_call_time(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 2), dtype="float64")
        y = x[1:]
        z = x[::-1]
    f = tg.compile([x], [y, z])
    for n in (2, 5):
        xv = rng.standard_normal((n, 2))
        a, b = f(xv)
        np.testing.assert_array_equal(a, xv[1:])
        np.testing.assert_array_equal(b, xv[::-1])


def test_getitem_out_of_range_index_names_the_axis():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3, 4))
        with pytest.raises(tg.ShapeError, match="index 4 is out of range for axis 1 with size 4"):
            x[0, 4]
        with pytest.raises(tg.ShapeError, match="index -4 is out of range for axis 0 with size 3"):
            x[-4]
        with pytest.raises(tg.ShapeError, match="too many indices: 3 for a tensor of rank 2"):
            x[0, 0, 0]


def test_getitem_out_of_range_on_an_unknown_dim_fails_before_running():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None,))
        y = x[3]
    f = tg.compile([x], y)
    assert f(np.arange(5, dtype=np.float32)) == 3.0
    with pytest.raises(tg.ShapeError, match="index 3 is out of range for axis 0 with size 2"):
        f(np.arange(2, dtype=np.float32))


def test_getitem_rejects_advanced_indexing():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3, 4))
        with pytest.raises(TypeError, match="at most one integer-array index"):
            x[[0, 1], [1, 2]]        # one integer array is supported (tg.take), two are not
        with pytest.raises(TypeError, match="Tensor"):
            x[x]
        with pytest.raises(TypeError, match="basic indexing"):
            x[True]
        with pytest.raises(IndexError, match="single Ellipsis"):
            x[..., 0, ...]
        with pytest.raises(ValueError, match="step cannot be zero"):
            x[::0]


def test_getitem_nodes_are_interned():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3, 4))
    assert x[1, ...].same(x[1])
    assert x[1:3].same(x[slice(1, 3), :])


# ---- concat ---------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat_values_and_gradients(axis, rng):
    shapes = {0: [(2, 3), (1, 3), (4, 3)], 1: [(2, 1), (2, 3), (2, 2)], -1: [(2, 1), (2, 3), (2, 2)]}[axis]
    arrays = [rng.standard_normal(s) for s in shapes]
    want = np.concatenate(arrays, axis=axis)
    w = rng.standard_normal(want.shape)

    def build(*ts):
        y = tg.concat(ts, axis=axis)
        return [y] + tg.grad(tg.sum(y * tg.constant(w)), list(ts))
    value, *grads = run(build, *arrays)
    np.testing.assert_array_equal(value, want)
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    (torch.cat(ts, dim=axis) * torch.tensor(w)).sum().backward()
    for gi, t in zip(grads, ts):
        np.testing.assert_array_equal(gi, t.grad.numpy())
    check_grad(lambda *ts: tg.concat(ts, axis=axis) ** 2.0, arrays)


def test_concat_along_unknown_sizes(rng):
    # offsets known only at call time: the gradient reads them from the inputs' shapes
    g = tg.Graph()
    with g:
        a = tg.placeholder("a", (None, 2), dtype="float64")
        b = tg.placeholder("b", (None, 2), dtype="float64")
        c = tg.placeholder("c", (1, 2), dtype="float64")
        y = tg.concat([a, b, c], axis=0)
        w = tg.placeholder("w", (None, 2), dtype="float64")
        grads = tg.grad(tg.sum(y * w), [a, b, c])
    assert y.shape == (None, 2)
    f = tg.compile([a, b, c, w], [y] + grads)
    for na, nb in ((1, 3), (4, 2)):
        av, bv, cv = rng.standard_normal((na, 2)), rng.standard_normal((nb, 2)), rng.standard_normal((1, 2))
        wv = rng.standard_normal((na + nb + 1, 2))
        value, ga, gb, gc = f(av, bv, cv, wv)
        np.testing.assert_array_equal(value, np.concatenate([av, bv, cv]))
        np.testing.assert_array_equal(ga, wv[:na])
        np.testing.assert_array_equal(gb, wv[na:na + nb])
        np.testing.assert_array_equal(gc, wv[na + nb:])


def test_concat_gradient_of_gradient(rng):
    arrays = [rng.standard_normal((2, 2)), rng.standard_normal((2, 1))]
    check_grad(lambda a, b: tg.grad(tg.sum(tg.concat([a, b], axis=1) ** 3.0), a), arrays)


def test_concat_shape_rules_and_errors():
    g = tg.Graph()
    with g:
        a = tg.placeholder("a", (None, 3))
        b = tg.placeholder("b", (2, None))
        assert tg.concat([a, b], axis=0).shape == (None, 3)
        assert tg.concat([b, b], axis=1).shape == (2, None)
        assert tg.concat([a, a], axis=1).shape == (None, 6)
        with pytest.raises(tg.ShapeError, match=r"sizes differ along axis 1.*3, 4"):
            tg.concat([a, tg.placeholder("c", (2, 4))], axis=0)
        with pytest.raises(tg.ShapeError, match="same rank"):
            tg.concat([a, tg.placeholder("d", (3,))], axis=0)
        with pytest.raises(tg.ShapeError, match="axis 2 is out of range"):
            tg.concat([a, a], axis=2)
        with pytest.raises(ValueError, match="at least one"):
            tg.concat([])


def test_concat_mismatch_at_call_time_is_caught_before_running(rng):
    g = tg.Graph()
    with g:
        a = tg.placeholder("a", (None, 3))
        b = tg.placeholder("b", (None, None))
        y = tg.concat([a, b], axis=0)
    f = tg.compile([a, b], y)
    assert f(np.ones((1, 3), np.float32), np.ones((2, 3), np.float32)).shape == (3, 3)
    with pytest.raises(tg.ShapeError, match="sizes differ along axis 1"):
        f(np.ones((1, 3), np.float32), np.ones((2, 4), np.float32))


# ---- one_hot ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_one_hot_matches_torch(dtype, rng):
    labels = rng.integers(0, 5, (3, 4))
    (value,) = run(lambda t: tg.one_hot(t, 5, dtype=dtype), labels)
    assert value.dtype == np.dtype(dtype)
    assert value.shape == (3, 4, 5)
    np.testing.assert_array_equal(value, F.one_hot(torch.tensor(labels), 5).numpy())


def test_one_hot_shape_rule_and_gradient(rng):
    g = tg.Graph()
    with g:
        y = tg.placeholder("y", (None,), dtype="int64")
        z = tg.placeholder("z", (None, 4), dtype="float64")
        hot = tg.one_hot(y, 4, dtype="float64")
        loss = tg.sum(hot * z)
        (gz,) = tg.grad(loss, [z])
    assert hot.shape == (None, 4)
    yv, zv = np.array([3, 0, 1]), rng.standard_normal((3, 4))
    value, grad_z = tg.compile([y, z], [loss, gz])(yv, zv)
    np.testing.assert_allclose(value, zv[np.arange(3), yv].sum())
    np.testing.assert_array_equal(grad_z, np.eye(4)[yv])   # the one-hot rows themselves


@pytest.mark.parametrize("bad", [5, -1])
def test_one_hot_out_of_range_label_raises(bad):
    # checked before the graph runs, with the input named (the same error on every backend)
    labels = np.array([0, 2, bad, 1])
    with pytest.raises(InputError, match=rf"one_hot.*label {bad} is out of range \[0, 5\)"):
        run(lambda t: tg.one_hot(t, 5), labels)


def test_one_hot_needs_integer_labels():
    g = tg.Graph()
    with g:
        with pytest.raises(tg.ShapeError, match="labels must be integers"):
            tg.one_hot(tg.placeholder("y", (3,)), 4)
