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
