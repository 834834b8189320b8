"""The fusion pass and the kernel IR: groups are formed as designed, and the fused
program (run by the interpreter, which evaluates each LoopSpec with NumPy through the
same strided index arithmetic as compiled code) agrees with the unfused one."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tensorforge as tg
from tensorforge.kernel_ir import Load, LoopSpec, collapse, evaluate
from tensorforge.ops.scalar import SYMBOLIC
from tensorforge.passes.pipeline import COMPILER_PASSES, stats

from helpers import apply_program

RTOL = dict(rtol=1e-5, atol=1e-6)


def fused_and_reference(ins, outs, feeds, updates=None, steps=1):
    """Run unfused and fused on copies of the parameters; return both results and the fused program."""
    ref = tg.compile(ins, outs, passes=[])
    fused = tg.compile(ins, outs, passes=list(COMPILER_PASSES))
    a, b = ref(*feeds), fused(*feeds)
    program = next(iter(fused._cache.values())).program
    return a, b, program


def assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_allclose(y, x, **RTOL)


def kernels(program):
    return [n for n in program.order if program.graph.node(n)["op"] == "fused"]


def test_a_chain_of_ten_elementwise_ops_is_one_kernel(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 33))
        y = x
        for i in range(10):
            y = tg.tanh(y) * 1.5 + 0.1 if i % 2 else tg.sigmoid(y) - 0.25
    a, b, prog = fused_and_reference([x], [y], [rng.standard_normal((7, 33)).astype("float32")])
    assert_same(a, b)
    assert len(kernels(prog)) == 1
    assert set(stats(prog)) == {"placeholder", "fused"}


def test_the_course_chain_with_broadcast_parameters_is_one_kernel(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 16))
        a = tg.parameter("a", rng.standard_normal(16).astype("float32"))
        b = tg.parameter("b", np.float32(0.3))
        y = tg.sigmoid(a * x + b) * tg.tanh(x) + tg.maximum(x - 1.0, 0.0) * 0.5
    a_, b_, prog = fused_and_reference([x], [y], [rng.standard_normal((8, 16)).astype("float32")])
    assert_same(a_, b_)
    (k,) = kernels(prog)
    spec = dict(prog.graph.node(k)["attrs"])["spec"]
    # x read contiguously, a broadcast along rows (stride 0), b a scalar (strides 0)
    assert {ld.strides for ld in spec.loads} == {(16, 1), (0, 1), (0, 0)}


@pytest.mark.parametrize("axis, keepdims", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)])
@pytest.mark.parametrize("op", ["sum", "max", "mean"])
def test_reductions_absorb_their_elementwise_prologue(rng, op, axis, keepdims):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3, 4, 5))
        y = getattr(tg, op)(tg.exp(x) * 2.0 - x, axis=axis, keepdims=keepdims)
    a, b, prog = fused_and_reference([x], [y], [rng.standard_normal((3, 4, 5)).astype("float32")])
    assert_same(a, b)
    assert len(kernels(prog)) == 1


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_family_is_one_row_kernel(rng, op, axis):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4, 6))
        b = tg.parameter("b", rng.standard_normal(6).astype("float32"))
        y = getattr(tg, op)(x * 3.0 + b, axis=axis)
    feeds = [rng.standard_normal((4, 6)).astype("float32") * 20]
    a, c, prog = fused_and_reference([x], [y], feeds)
    assert_same(a, c)
    assert len(kernels(prog)) == 1


def test_views_are_composed_into_loads(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4, 6))
        v = tg.placeholder("v", (6,))
        t = tg.transpose(x)                       # (6, 4)
        s = t[1:5:2, ::-1]                        # (2, 4), reversed columns
        e = tg.expand_dims(v[:2], 1)              # (2, 1)
        y = tg.relu(s * e + tg.broadcast_to(tg.squeeze(tg.expand_dims(v[2:4], 0), 0)[:, None], (2, 4)))
    feeds = [rng.standard_normal((4, 6)).astype("float32"), rng.standard_normal(6).astype("float32")]
    a, b, prog = fused_and_reference([x, v], [y], feeds)
    assert_same(a, b)
    assert len(kernels(prog)) == 1
    assert {"transpose", "getitem", "broadcast_to"}.isdisjoint(stats(prog))


def test_reshape_of_a_buffer_is_read_in_place_and_of_a_view_is_materialised(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4, 6))
        y = tg.reshape(x, (3, 8)) * 2.0                     # contiguous buffer: strides only
        z = tg.reshape(tg.transpose(x), (8, 3)) + 1.0        # a view: copied to a buffer first
    feeds = [rng.standard_normal((4, 6)).astype("float32")]
    a, b, prog = fused_and_reference([x], [y, z], feeds)
    assert_same(a, b)


def test_multi_use_values_are_materialised_once(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (5, 5))
        h = tg.exp(x) + 1.0                                  # used twice: stored once
        y = h * 2.0
        z = tg.sum(h, axis=0)
    a, b, prog = fused_and_reference([x], [y, z], [rng.standard_normal((5, 5)).astype("float32")])
    assert_same(a, b)
    # y's kernel computes h and stores it as its second output (fusion_multi), the sum reads it
    assert len(kernels(prog)) == 2


@pytest.mark.parametrize("opt", [lambda: tg.optim.Adam(lr=1e-2), lambda: tg.optim.SGD(lr=0.1, momentum=0.9),
                                 lambda: tg.optim.RMSprop(lr=1e-2, centered=True)])
def test_training_steps_with_fusion_match_the_unfused_interpreter(rng, opt):
    results = []
    for passes in ([], list(COMPILER_PASSES)):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (None, 1, 8, 8))
            y = tg.placeholder("y", (None,), dtype="int64")
            net = tg.nn.Sequential(tg.nn.Conv2d(1, 4, 3, padding=1, seed=1), tg.nn.ReLU(), tg.nn.MaxPool2d(2),
                                   tg.nn.Flatten(), tg.nn.Dense(64, 10, seed=2))
            loss = tg.mean(tg.softmax_cross_entropy(net(x), y))
            updates = opt().updates(loss, net.parameters())
        step = tg.compile([x, y], [loss], updates=updates, passes=passes)
        data = np.random.default_rng(3)
        losses = [step(data.standard_normal((6, 1, 8, 8)).astype("float32"), data.integers(0, 10, 6))
                  for _ in range(4)]
        results.append((losses, [p.value.copy() for p in net.parameters()]))
    (l0, p0), (l1, p1) = results
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    for a, b in zip(p0, p1):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_collapse_merges_contiguous_axes():
    x = SYMBOLIC.arg(0, "float32")
    spec = LoopSpec((4, 5, 6), 0, (Load(0, (30, 6, 1)),), (), x * 2.0, True, (30, 6, 1), (4, 5, 6), "float32")
    c = collapse(spec)
    assert c.space == (120,)
    a = np.arange(120, dtype=np.float32).reshape(4, 5, 6)
    np.testing.assert_array_equal(evaluate(c, a), evaluate(spec, a))
    bspec = LoopSpec((4, 5, 6), 0, (Load(0, (0, 6, 1)),), (), x, True, (30, 6, 1), (4, 5, 6), "float32")
    assert collapse(bspec).space == (4, 30)       # the broadcast axis stays apart


UNARY = ["exp", "tanh", "sigmoid", "relu", "softplus", "abs", "neg"]
BINARY = ["add", "sub", "mul", "maximum", "minimum"]


@st.composite
def elementwise_graphs(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    n_ops = draw(st.integers(1, 8))
    program = []
    for _ in range(n_ops):
        if draw(st.booleans()):
            program.append(("u", draw(st.sampled_from(UNARY)), draw(st.integers(0, 10))))
        else:
            program.append(("b", draw(st.sampled_from(BINARY)), draw(st.integers(0, 10)), draw(st.integers(0, 10))))
    reduce_axis = draw(st.one_of(st.none(), st.integers(0, len(shape) - 1)))
    bshape = tuple(1 if draw(st.booleans()) else d for d in shape[-draw(st.integers(0, len(shape))):]) \
        if shape else ()
    return shape, bshape, program, reduce_axis


@settings(max_examples=40, deadline=None)
@given(elementwise_graphs())
def test_random_elementwise_broadcast_reduction_graphs(case):
    shape, bshape, program, reduce_axis = case
    rng = np.random.default_rng(0)
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", shape)
        b = tg.placeholder("b", bshape)
        out = apply_program(x, b, program)
        outs = [out, tg.sum(out * out, axis=reduce_axis if reduce_axis is None or reduce_axis < len(out.shape)
                            else None)]
    feeds = [rng.standard_normal(shape).astype("float32"), rng.standard_normal(bshape).astype("float32")]
    a, c, _ = fused_and_reference([x, b], outs, feeds)
    for u, v in zip(a, c):
        np.testing.assert_allclose(v, u, rtol=1e-4, atol=1e-5)
