"""Inputs that used to crash the compiler: very deep graphs and tensors with a size-0 axis.

Deep graphs: nothing in the compiler may recurse on graph depth (these tests run with Python's
default recursion limit of 1000); long elementwise chains compile into kernels of bounded size.
Size-0 tensors: every op, its gradient and a training step agree with NumPy (float64) and the
interpreter on every backend; no kernel reads or writes out of bounds (the Triton interpreter
segfaults when it does).
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.passes.fusion import MAX_FUSED_OPS
from tensorforge.passes.pipeline import COMPILER_PASSES

BACKENDS = ("interp", "llvm", "triton")


@pytest.fixture(autouse=True)
def default_recursion_limit():
    """Raising the limit is not a fix: every test here runs under Python's default."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(old)


# ---- deep graphs ---------------------------------------------------------------------------

def affine_chain(x, n: int):
    for _ in range(n):
        x = x * 1.0001 + 0.1
    return x


def affine_chain_reference(x: np.ndarray, n: int) -> np.ndarray:
    x = x.astype(np.float64)
    for _ in range(n):
        x = x * 1.0001 + 0.1
    return x


def _fused_ops(spec) -> int:
    exprs = [spec.out] + [r.expr for r in spec.reductions]
    return sum(len(e.walk()) for e in exprs)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n", [300, 3000, 10000])
def test_long_elementwise_chains_compile_and_run(backend, n):
    if backend == "triton" and n > 3000:
        pytest.skip("the Triton interpreter is slow; 3000 nodes already cut into many kernels")
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4,))
        y = affine_chain(x, n)
    f = tg.compile([x], [y], backend=backend)
    xv = np.linspace(-1, 1, 4, dtype=np.float32)
    (out,) = f(xv)
    np.testing.assert_allclose(out, affine_chain_reference(xv, n), rtol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_deep_transcendental_chain_compiles(backend):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4,))
        y = x
        for _ in range(1500):
            y = tg.exp(tg.tanh(y) * 0.5) - 1.0
    xv = np.linspace(-1, 1, 4, dtype=np.float32)
    ref = xv.astype(np.float64)
    for _ in range(1500):
        ref = np.exp(np.tanh(ref) * 0.5) - 1.0
    (out,) = tg.compile([x], [y], backend=backend)(xv)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_a_chain_within_the_bound_is_one_kernel_and_longer_ones_are_cut():
    def fused_program(n):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (8,))
            y = affine_chain(x, n)
        f = tg.compile([x], [y], passes=list(COMPILER_PASSES))
        (out,) = f(np.ones(8, np.float32))
        np.testing.assert_allclose(out, affine_chain_reference(np.ones(8), n), rtol=1e-4)
        program = next(iter(f._cache.values())).program
        return [program.graph.node(k)["attrs"] for k in program.order
                if program.graph.node(k)["op"] == "fused"]

    whole = fused_program(MAX_FUSED_OPS // 2 - 1)       # 2 ops per step
    assert len(whole) == 1
    cut = fused_program(5000)
    assert len(cut) >= 10000 // MAX_FUSED_OPS
    for attrs in cut:
        spec = dict(attrs)["spec"]
        assert _fused_ops(spec) <= 3 * MAX_FUSED_OPS


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_of_a_1000_deep_chain(backend):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4,))
        w = tg.parameter("w", np.full(4, 0.5, np.float32))
        loss = tg.sum(affine_chain(x * w, 1000))
        (gw,) = tg.grad(loss, [w])
    xv = np.linspace(-1, 1, 4, dtype=np.float32)
    value, grad = tg.compile([x], [loss, gw], backend=backend)(xv)
    np.testing.assert_allclose(value, affine_chain_reference(xv * 0.5, 1000).sum(), rtol=1e-3)
    np.testing.assert_allclose(grad, xv * 1.0001 ** 1000, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("backends", [("interp", "llvm"), ("triton",)])
def test_a_saved_3000_node_graph_loads_and_compiles(tmp_path, backends):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4,))
        y = affine_chain(x, 1500)
    path = os.path.join(tmp_path, "deep.json")
    tg.export.save(path, [y], [x])
    loaded = tg.export.load(path)
    xv = np.linspace(-1, 1, 4, dtype=np.float32)
    for backend in backends:
        (out,) = loaded.compile(backend=backend)(xv)
        np.testing.assert_allclose(out, affine_chain_reference(xv, 1500), rtol=1e-3)
    assert "digraph" in tg.export.to_dot([y], max_nodes=10000)


def test_deep_scalar_expressions_hash_compare_and_print():
    from tensorforge.ops.scalar import SYMBOLIC

    def chain():
        e = SYMBOLIC.arg(0, "float32")
        for _ in range(20000):
            e = SYMBOLIC.exp(e) * 0.5
        return e
    a, b = chain(), chain()
    assert a is not b and a == b and hash(a) == hash(b)
    assert len(a.walk()) == 60001        # arg, then exp, const, mul per step
    assert repr(a).startswith("mul(exp(mul(")


# ---- size-0 tensors ------------------------------------------------------------------------

def _np_softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True, initial=-np.inf))
    return e / e.sum(axis=axis, keepdims=True)


def _np_logsumexp(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(divide="ignore"):
        return np.squeeze(m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True)), axis)


# name: (input shapes, graph function, float64 NumPy reference)
ZERO_CASES = {
    "add": ([(0, 4), (0, 4)], lambda a, b: a + b, lambda a, b: a + b),
    "broadcast_row": ([(0, 4), (4,)], lambda a, b: a * b, lambda a, b: a * b),
    "broadcast_both": ([(0, 1), (1, 4)], lambda a, b: a - b, lambda a, b: a - b),
    "chain": ([(0, 3)], lambda a: tg.tanh(tg.exp(a) * 2.0 + 1.0), lambda a: np.tanh(np.exp(a) * 2 + 1)),
    "sum_all": ([(0, 4)], lambda a: tg.sum(a), lambda a: a.sum()),
    "sum_empty_axis": ([(0, 4)], lambda a: tg.sum(a, axis=0), lambda a: a.sum(0)),
    "sum_kept_axis": ([(0, 4)], lambda a: tg.sum(a, axis=1), lambda a: a.sum(1)),
    "sum_inner_empty": ([(4, 0)], lambda a: tg.sum(a * 2.0, axis=1), lambda a: (a * 2).sum(1)),
    "mean_all": ([(0, 4)], lambda a: tg.mean(a), lambda a: np.full((), np.nan)),
    "mean_empty_axis": ([(0, 4)], lambda a: tg.mean(a, axis=0), lambda a: np.full(4, np.nan)),
    "max_kept_axis": ([(0, 4)], lambda a: tg.max(a, axis=1), lambda a: a.max(1)),
    "matmul_k0": ([(3, 0), (0, 5)], lambda a, b: a @ b, lambda a, b: a @ b),
    "matmul_m0": ([(0, 3), (3, 5)], lambda a, b: a @ b, lambda a, b: a @ b),
    "matmul_n0": ([(2, 3), (3, 0)], lambda a, b: a @ b, lambda a, b: a @ b),
    "softmax_empty_axis": ([(3, 0)], lambda a: tg.softmax(a, axis=-1), _np_softmax),
    "softmax_no_rows": ([(0, 3)], lambda a: tg.softmax(a, axis=-1), _np_softmax),
    "log_softmax_empty_axis": ([(3, 0)], lambda a: tg.log_softmax(a, axis=-1),
                               lambda a: a - _np_logsumexp(a)[:, None]),
    "logsumexp_empty_axis": ([(3, 0)], lambda a: tg.logsumexp(a, axis=-1), _np_logsumexp),
    "logsumexp_no_rows": ([(0, 3)], lambda a: tg.logsumexp(a, axis=-1), _np_logsumexp),
    "concat_empty_piece": ([(0, 4), (2, 4)], lambda a, b: tg.concat([a, b], axis=0),
                           lambda a, b: np.concatenate([a, b], 0)),
    "slice_to_empty": ([(3, 4)], lambda a: a[1:1] * 2.0, lambda a: a[1:1] * 2),
    "transpose_empty": ([(0, 4)], lambda a: tg.transpose(a) + 1.0, lambda a: a.T + 1),
    "conv_batch0": ([(0, 1, 5, 5), (2, 1, 3, 3)], lambda a, w: tg.conv2d(a, w, padding=1),
                    lambda a, w: np.zeros((0, 2, 5, 5))),
    "max_pool_batch0": ([(0, 2, 4, 4)], lambda a: tg.max_pool2d(a, 2), lambda a: np.zeros((0, 2, 2, 2))),
    "avg_pool_batch0": ([(0, 2, 4, 4)], lambda a: tg.avg_pool2d(a, 2), lambda a: np.zeros((0, 2, 2, 2))),
    "conv_no_channels": ([(2, 0, 5, 5), (3, 0, 3, 3)], lambda a, w: tg.conv2d(a, w, padding=1),
                         lambda a, w: np.zeros((2, 3, 5, 5))),
    "reshape_of_a_transposed_empty": ([(0, 4)], lambda a: tg.reshape(tg.transpose(a), (2, 0, 2)) * 2.0,
                                      lambda a: a.T.reshape(2, 0, 2) * 2),
    "var_empty_axis": ([(0, 4)], lambda a: tg.var(a, axis=0), lambda a: np.full(4, np.nan)),
    "layer_norm_batch0": ([(0, 4)], lambda a: tg.layer_norm(a), lambda a: a),
    "dropout_batch0": ([(0, 4)], lambda a: tg.dropout(a, 0.5, seed=1), lambda a: a),
    "argmax_no_rows": ([(0, 4)], lambda a: tg.cast(tg.argmax(a, axis=1), "float32"),
                       lambda a: a.argmax(1).astype(np.float64)),
}
NOT_DIFFERENTIABLE = {"argmax_no_rows"}


def _zero_inputs(shapes):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(ZERO_CASES))
def test_size_zero_ops_agree_with_numpy(case, backend):
    shapes, build, reference = ZERO_CASES[case]
    g = tg.Graph()
    with g:
        xs = [tg.placeholder(f"x{i}", s) for i, s in enumerate(shapes)]
        y = build(*xs)
    feeds = _zero_inputs(shapes)
    (out,) = tg.compile(xs, [y], backend=backend)(*feeds)
    want = reference(*[f.astype(np.float64) for f in feeds])
    assert out.shape == want.shape
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(ZERO_CASES))
def test_size_zero_gradients_agree_with_the_interpreter(case, backend):
    """Gradients of sum(op(x) * r) for a fixed r: every backend gives the interpreter's values
    (the reference), in the shape of each input."""
    shapes, build, _ = ZERO_CASES[case]
    if case in NOT_DIFFERENTIABLE:
        pytest.skip("no gradient")
    g = tg.Graph()
    with g:
        xs = [tg.placeholder(f"x{i}", s) for i, s in enumerate(shapes)]
        y = build(*xs)
        loss = tg.sum(y * tg.constant(np.full(y.shape, 0.5, np.float32)))
        grads = tg.grad(loss, xs)
    feeds = _zero_inputs(shapes)
    ref = tg.compile(xs, [loss, *grads], backend="interp")(*feeds)
    got = tg.compile(xs, [loss, *grads], backend=backend)(*feeds)
    for r, o, f in zip(ref, got, [None] + feeds):
        assert o.shape == r.shape and (f is None or o.shape == f.shape)
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_over_an_empty_axis_is_a_clear_error(backend):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 4))
        y = tg.max(x, axis=0)
    f = tg.compile([x], [y], backend=backend)
    with pytest.raises(tg.ShapeError, match="axis 0 of a \\(0, 4\\) tensor: that axis has size 0"):
        f(np.zeros((0, 4), np.float32))
    np.testing.assert_allclose(f(np.ones((2, 4), np.float32))[0], np.ones(4))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_mlp_training_step_with_batch_zero_follows_torch(backend):
    """torch: the mean loss over an empty batch is nan, its gradients are zeros, so SGD and Adam
    leave the parameters unchanged. Every backend does the same; a later full batch still trains."""
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 4))
        labels = tg.placeholder("y", (None,), dtype="int64")
        w1 = tg.parameter("w1", tg.init.he_normal((4, 8), seed=0))
        b1 = tg.parameter("b1", np.zeros(8, np.float32))
        w2 = tg.parameter("w2", tg.init.he_normal((8, 3), seed=1))
        logits = tg.relu(x @ w1 + b1) @ w2
        loss = tg.mean(tg.softmax_cross_entropy(logits, labels))
        updates = tg.optim.Adam(lr=1e-2).updates(loss, [w1, b1, w2])
    step = tg.compile([x, labels], [loss], updates=updates, backend=backend)
    before = [p.value.copy() for p in (w1, b1, w2)]
    (value,) = step(np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    assert np.isnan(value)
    for p, old in zip((w1, b1, w2), before):
        np.testing.assert_array_equal(p.value, old)
    (value,) = step(np.ones((2, 4), np.float32), np.array([0, 2]))
    assert np.isfinite(value)
    assert not np.array_equal(w2.value, before[2])


def test_a_step_with_very_many_kernels_keeps_them_as_calls_and_agrees_with_the_interpreter():
    """Past INLINE_MAX_KERNELS, kernels are not inlined into tf_step (its O3 optimisation grew
    superlinearly: a 312-kernel fuzz graph took 48 s to compile); results stay the same."""
    from tensorforge.backends.llvm.backend import INLINE_MAX_KERNELS
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3, 3))
        outs, h = [], x
        for i in range(INLINE_MAX_KERNELS + 20):      # each output is materialised: one kernel each
            # read transposed: a kernel never reads its predecessor element for element, so no two
            # kernels merge into one multi-output kernel (passes/fusion_multi.py)
            h = tg.tanh(tg.transpose(h)) * 0.9 + 0.01 * i
            outs.append(h)
        fl = tg.compile([x], outs, backend="llvm")
        fi = tg.compile([x], outs, backend="interp")
    xv = np.linspace(-2, 2, 9, dtype=np.float32).reshape(3, 3)
    for got, want in zip(fl(xv), fi(xv)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert fl.ir.count("define internal") > INLINE_MAX_KERNELS
