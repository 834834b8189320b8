"""Reductions, the softmax family, shape ops and matmul: values and gradients
against torch (float64) and check_grad, over every axis form, plus shape rules
with unknown (None) dimensions and their errors.

Each op form is one row of a table; the tests are parametrised over the tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch

import tensorforge as tg
from tensorforge.ops import OPS, apply
from tensorforge.testing import check_grad

DTYPES = ["float32", "float64"]
TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-10, atol=1e-12)}


@dataclass
class Case:
    op: str                     # the registered op this row exercises
    tg_fn: Callable
    torch_fn: Callable
    shapes: tuple               # input shapes
    id: str
    grad: bool = True
    ints: bool = False          # draw small integers (ties for max)


def _dims(axis, ndim):
    """torch wants an explicit tuple where tensorforge takes axis=None."""
    return tuple(range(ndim)) if axis is None else axis


# every axis form: all, int, negative int, tuple (with a negative), and keepdims
AXES = [None, 0, 1, -1, (0, 2), (-1, 0)]
X3 = (2, 3, 4)


def _axis_id(axis, keepdims):
    return f"axis={axis}".replace(" ", "") + ("-keep" if keepdims else "")


def reduction_cases():
    for axis in AXES:
        for keep in (False, True):
            aid = _axis_id(axis, keep)
            yield Case("sum", lambda x, a=axis, k=keep: tg.sum(x, a, k),
                       lambda x, a=axis, k=keep: torch.sum(x, _dims(a, 3), keepdim=k), (X3,), f"sum-{aid}")
            yield Case("max", lambda x, a=axis, k=keep: tg.max(x, a, k),
                       lambda x, a=axis, k=keep: torch.amax(x, _dims(a, 3), keepdim=k), (X3,), f"max-{aid}")
            yield Case("numel", lambda x, a=axis, k=keep: tg.mean(x, a, k),
                       lambda x, a=axis, k=keep: torch.mean(x, _dims(a, 3), keepdim=k), (X3,), f"mean-{aid}")
            yield Case("min", lambda x, a=axis, k=keep: tg.min(x, a, k),
                       lambda x, a=axis, k=keep: torch.amin(x, _dims(a, 3), keepdim=k), (X3,), f"min-{aid}")
            yield Case("sum", lambda x, a=axis, k=keep: tg.var(x, a, k),
                       lambda x, a=axis, k=keep: torch.var(x, _dims(a, 3), correction=0, keepdim=k), (X3,),
                       f"var-{aid}")
            yield Case("max", lambda x, a=axis, k=keep: tg.max(x, a, k),
                       lambda x, a=axis, k=keep: torch.amax(x, _dims(a, 3), keepdim=k), (X3,),
                       f"max-ties-{aid}", ints=True)
    for axis in (0, 1, -1):
        for keep in (False, True):
            aid = _axis_id(axis, keep)
            yield Case("argmax", lambda x, a=axis, k=keep: tg.argmax(x, a, k),
                       lambda x, a=axis, k=keep: torch.argmax(x, a, keepdim=k), (X3,), f"argmax-{aid}", grad=False)
            yield Case("logsumexp", lambda x, a=axis, k=keep: tg.logsumexp(x, a, k),
                       lambda x, a=axis, k=keep: torch.logsumexp(x, a, keepdim=k), (X3,), f"logsumexp-{aid}")
        yield Case("softmax", lambda x, a=axis: tg.softmax(x, a), lambda x, a=axis: torch.softmax(x, a), (X3,),
                   f"softmax-axis={axis}")
        yield Case("log_softmax", lambda x, a=axis: tg.log_softmax(x, a),
                   lambda x, a=axis: torch.log_softmax(x, a), (X3,), f"log_softmax-axis={axis}")
    # reductions of a 0-d and of a vector
    yield Case("sum", tg.sum, torch.sum, ((),), "sum-0d")
    yield Case("max", lambda x: tg.max(x, 0), lambda x: torch.amax(x, 0), ((5,),), "max-vector")
    yield Case("softmax", tg.softmax, lambda x: torch.softmax(x, -1), ((5,),), "softmax-vector")


def shape_cases():
    yield Case("reshape", lambda x: tg.reshape(x, (4, 6)), lambda x: x.reshape(4, 6), (X3,), "reshape")
    yield Case("reshape", lambda x: tg.reshape(x, (-1, 4)), lambda x: x.reshape(-1, 4), (X3,), "reshape-infer")
    yield Case("reshape", lambda x: x.reshape(6, None), lambda x: x.reshape(6, -1), (X3,), "reshape-method-None")
    yield Case("reshape", lambda x: tg.reshape(x, ()), lambda x: x.reshape(()), ((1, 1),), "reshape-to-0d")
    yield Case("transpose", tg.transpose, lambda x: x.permute(2, 1, 0), (X3,), "transpose-reverse")
    yield Case("transpose", lambda x: tg.transpose(x, (1, -1, 0)), lambda x: x.permute(1, 2, 0), (X3,),
               "transpose-axes")
    yield Case("transpose", lambda x: x.T, lambda x: x.T, ((3, 4),), "transpose-T")
    yield Case("expand_dims", lambda x: tg.expand_dims(x, 1), lambda x: x.unsqueeze(1), ((3, 4),), "expand_dims")
    yield Case("expand_dims", lambda x: tg.expand_dims(x, (0, -1)), lambda x: x[None, :, :, None], ((3, 4),),
               "expand_dims-two")
    yield Case("squeeze", lambda x: tg.squeeze(x, (0, 2)), lambda x: x.reshape(3, 4), ((1, 3, 1, 4),), "squeeze")
    yield Case("squeeze", lambda x: tg.squeeze(x, -1), lambda x: x.squeeze(-1), ((3, 1),), "squeeze-negative")
    yield Case("broadcast_to", lambda x: tg.broadcast_to(x, (2, 3, 4)), lambda x: x.expand(2, 3, 4), ((3, 1),),
               "broadcast_to")
    yield Case("broadcast_to", lambda x: tg.broadcast_to(x, (3, 2)), lambda x: x.expand(3, 2), ((),),
               "broadcast_to-from-0d")
    # the *_like forms: the second input is read for its shape only (no gradient flows into it)
    yield Case("reshape_like", lambda x, r: apply("reshape_like", [x, r]), lambda x, r: x.reshape(r.shape),
               ((4, 6), X3), "reshape_like")
    yield Case("broadcast_like", lambda x, r: apply("broadcast_like", [x, r]), lambda x, r: x.expand(r.shape),
               ((3, 1), X3), "broadcast_like")
    yield Case("sum_to_like", lambda x, r: apply("sum_to_like", [x, r]), lambda x, r: x.sum_to_size(r.shape),
               (X3, (3, 1)), "sum_to_like")
    yield Case("sum_to_like", lambda x, r: apply("sum_to_like", [x, r]), lambda x, r: x.sum_to_size(r.shape),
               (X3, (4,)), "sum_to_like-lower-rank")
    yield Case("sum_to_like", lambda x, r: apply("sum_to_like", [x, r]), lambda x, r: x.sum(),
               (X3, ()), "sum_to_like-0d")


def matmul_cases():
    forms = {"2d": ((3, 4), (4, 5)), "batched": ((2, 3, 4), (2, 4, 5)), "batch-bcast-rhs": ((2, 3, 4), (4, 5)),
             "batch-bcast-both": ((2, 1, 3, 4), (5, 4, 2)), "vec-mat": ((4,), (4, 5)), "mat-vec": ((3, 4), (4,)),
             "vec-vec": ((4,), (4,)), "batched-vec": ((2, 3, 4), (4,))}
    for fid, shapes in forms.items():
        yield Case("matmul", lambda a, b: a @ b, torch.matmul, shapes, f"matmul-{fid}")
    yield Case("matmul", tg.matmul, lambda a, b: (b.T @ a.T).T, ((3, 4), (4, 5)), "matmul-function")
    m = (np.arange(8.0).reshape(2, 4) / 8).astype(np.float32)  # ndarray @ Tensor: Tensor.__rmatmul__
    yield Case("matmul", lambda a: m @ a, lambda a: torch.tensor(m, dtype=a.dtype) @ a, ((4, 3),), "rmatmul-ndarray")


CASES = list(reduction_cases()) + list(shape_cases()) + list(matmul_cases())


def make_inputs(case: Case, dtype: str, rng) -> list[np.ndarray]:
    if case.ints:
        return [rng.integers(0, 3, s).astype(dtype) for s in case.shapes]
    return [rng.standard_normal(s).astype(dtype) for s in case.shapes]


def tg_value_and_grads(fn, arrays, weights):
    g = tg.Graph()
    with g:
        xs = [tg.placeholder(f"x{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays)]
        y = fn(*xs)
        w = tg.constant(weights.astype("float64" if y.dtype == "int64" else y.dtype))
        loss = tg.sum(y * w) if y.dtype != "int64" else tg.sum(tg.cast(y, "float64") * w)
        grads = tg.grad(loss, xs)
    results = tg.compile(xs, [y] + grads)(*arrays)
    return results[0], results[1:]


def torch_value_and_grads(fn, arrays, weights, with_grads=True):
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    y = fn(*ts)
    if not with_grads:
        return y.detach().numpy(), [np.zeros(a.shape) for a in arrays]
    loss = (y * torch.tensor(weights, dtype=torch.float64)).sum()
    grads = torch.autograd.grad(loss, ts, allow_unused=True)
    return y.detach().numpy(), [np.zeros(a.shape) if gi is None else gi.numpy() for a, gi in zip(arrays, grads)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_value_and_gradient_match_torch(case, dtype, rng):
    arrays = make_inputs(case, dtype, rng)
    want_value, _ = torch_value_and_grads(case.torch_fn, arrays, None, with_grads=False)
    weights = rng.standard_normal(want_value.shape)
    value, grads = tg_value_and_grads(case.tg_fn, arrays, weights)
    _, want_grads = torch_value_and_grads(case.torch_fn, arrays, weights, case.grad)

    assert value.shape == want_value.shape  # exactly the shape the type rule says (0-d stays 0-d)
    assert value.dtype == (np.int64 if case.op == "argmax" else np.dtype(dtype))
    np.testing.assert_allclose(value, want_value, **TOL[dtype])
    for gi, want, a in zip(grads, want_grads, arrays):
        assert gi.shape == a.shape
        np.testing.assert_allclose(gi, want, rtol=10 * TOL[dtype]["rtol"], atol=10 * TOL[dtype]["atol"])


@pytest.mark.parametrize("case", [c for c in CASES if c.grad and not c.ints], ids=lambda c: c.id)
def test_gradient_matches_finite_differences(case, rng):
    arrays = make_inputs(case, "float64", rng)
    wrt = [0] if case.op.endswith("_like") else None  # the reference input is shape-only
    check_grad(case.tg_fn, arrays, wrt=wrt)


def test_max_ties_share_the_gradient_like_torch():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    _, (gx,) = tg_value_and_grads(lambda t: tg.max(t, 1), [x], np.ones(2))
    np.testing.assert_allclose(gx, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    _, (gall,) = tg_value_and_grads(tg.max, [x], np.ones(()))
    np.testing.assert_allclose(gall, [[0, 0.5, 0.5], [0, 0, 0]])


def test_softmax_family_is_stable_for_large_logits():
    x = np.array([[1000.0, 0.0, -1000.0], [-5e3, -5e3, -5e3]], np.float32)
    value, _ = tg_value_and_grads(lambda t: tg.softmax(t), [x], np.ones((2, 3)))
    np.testing.assert_allclose(value, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-7)
    lsm, _ = tg_value_and_grads(lambda t: tg.log_softmax(t), [x], np.ones((2, 3)))
    np.testing.assert_allclose(lsm, [[0, -1000, -2000], [-np.log(3)] * 3], rtol=1e-6)
    lse, _ = tg_value_and_grads(lambda t: tg.logsumexp(t), [x], np.ones(2))
    np.testing.assert_allclose(lse, [1000.0, -5e3 + np.log(3)], rtol=1e-6)


# ---- shape rules with unknown dims, and their errors ------------------------------------

def test_shape_rules_with_unknown_dims():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3, 4))
        v = tg.placeholder("v", (4,))
        assert tg.sum(x, 0).shape == (3, 4)
        assert tg.sum(x, -1, keepdims=True).shape == (None, 3, 1)
        assert tg.mean(x, (1, 2)).shape == (None,)
        assert tg.max(x).shape == ()
        assert tg.argmax(x, 0).shape == (3, 4) and tg.argmax(x).dtype == "int64"
        assert tg.softmax(x, 0).shape == (None, 3, 4)
        assert tg.reshape(x, (-1, 2)).shape == (None, 2)
        assert tg.reshape(x, (-1, 12)).shape == (None, 12)
        assert tg.transpose(x).shape == (4, 3, None)
        assert tg.expand_dims(x, -1).shape == (None, 3, 4, 1)
        assert tg.broadcast_to(v, (2, 3, 4)).shape == (2, 3, 4)
        assert (x @ tg.placeholder("w", (4, 7))).shape == (None, 3, 7)
        assert (x @ v).shape == (None, 3)


@pytest.mark.parametrize("build,match", [
    (lambda x: tg.sum(x, 3), "sum: axis 3 is out of range"),
    (lambda x: tg.max(x, (0, -3)), "max: repeated axis"),
    (lambda x: tg.reshape(x, (5, 5)), "reshape: cannot reshape"),
    (lambda x: tg.reshape(x, (-1, -1)), "reshape: at most one -1"),
    (lambda x: tg.reshape(x, (-1, 5)), "reshape: cannot reshape 24 elements"),
    (lambda x: tg.transpose(x, (0, 0, 1)), "transpose: axes"),
    (lambda x: tg.squeeze(x, 1), "squeeze: cannot squeeze axis 1 of size 3"),
    (lambda x: tg.broadcast_to(x, (3, 4)), "broadcast_to"),
    (lambda x: tg.broadcast_to(x, (2, 5, 4)), "broadcast_to"),
    (lambda x: tg.broadcast_to(x, (None, 3, 4)), "broadcast_to: target shape .* unknown"),
    (lambda x: x @ tg.placeholder("w", (3, 4)), r"matmul: inner dimensions differ"),
    (lambda x: tg.matmul(x, tg.constant(2.0)), "matmul: operands must not be scalars"),
    (lambda x: tg.softmax(tg.cast(x, "int64")), "softmax: expects a floating-point"),
])
def test_bad_shapes_raise_shape_error_naming_the_op(build, match):
    with tg.Graph():
        x = tg.placeholder("x", X3)
        with pytest.raises(tg.ShapeError, match=match):
            build(x)


def test_matmul_with_unknown_inner_dim_is_checked_at_call_time():
    g = tg.Graph()
    with g:
        a = tg.placeholder("a", (2, None))
        b = tg.placeholder("b", (None, 3))
        f = tg.compile([a, b], [a @ b])
    np.testing.assert_allclose(f(np.ones((2, 4)), np.ones((4, 3)))[0], np.full((2, 3), 4.0))
    with pytest.raises(tg.ShapeError, match="matmul.*inner dimensions differ"):
        f(np.ones((2, 4)), np.ones((5, 3)))


def test_mean_over_unknown_batch_dim_divides_by_the_bound_size():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 2))
        m = tg.mean(x, 0)
        gx = tg.grad(tg.sum(m), x)
        f = tg.compile([x], [m, gx])
    for n in (1, 3, 5):
        xv = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
        got_m, got_g = f(xv)
        np.testing.assert_allclose(got_m, xv.mean(0), rtol=1e-6)
        np.testing.assert_allclose(got_g, np.full((n, 2), 1.0 / n), rtol=1e-6)


def test_mean_of_ints_and_bools_is_a_float():
    g = tg.Graph()
    with g:
        n = tg.placeholder("n", (None,), dtype="int64")
        accuracy = tg.mean(n > 1)
        avg = tg.mean(n)
        f = tg.compile([n], [avg, accuracy])
    assert avg.dtype == accuracy.dtype == "float32"
    got_avg, got_acc = f([1, 2, 4])
    np.testing.assert_allclose([got_avg, got_acc], [7 / 3, 2 / 3], rtol=1e-6)


CORE_MODULES = {"tensorforge.ops.reduce", "tensorforge.ops.shape", "tensorforge.ops.linalg"}


def test_every_reduce_shape_and_linalg_op_is_covered():
    core = {n for n, d in OPS.items() if d.infer.__module__ in CORE_MODULES}
    covered = {c.op for c in CASES}
    assert core and core <= covered, f"ops without a test row: {sorted(core - covered)}"
