"""Convolutions and pooling on the LLVM backend at CNN sizes (16-32 channels, 3x3 and 5x5,
12-20 px, stride 1 and 2, padding 0-2), against the interpreter: forward values and the
gradients through tg.grad, strided views as inputs, and the thread split of the kernels'
``_range`` entries (results bit-identical for 1, 2 and 3 threads). The Triton backend (on the
CPU under TRITON_INTERPRET=1) is checked at the same sizes."""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.backends.llvm import parallel
from tensorforge.ops.registry import apply

# (N, C, O, H, W, (kh, kw), stride, padding)
CONV_SIZES = [
    (3, 16, 32, 12, 12, (3, 3), 1, 1),
    (3, 16, 32, 15, 13, (5, 5), 2, 2),
    (2, 8, 16, 20, 20, (3, 3), 2, 0),
    (2, 5, 7, 17, 14, (3, 5), (1, 2), (2, 1)),
    (3, 32, 16, 12, 12, (5, 5), 1, 0),
    (4, 1, 8, 8, 8, (3, 3), 1, 1),            # the small CNN's layer: grad_weight as dot products
    (5, 2, 8, 35, 35, (3, 3), 1, 1),          # ... in chunks of 2 samples and a partial last one
]


def _conv_graph(size, views=False):
    """(inputs, outputs): conv2d and its gradients w.r.t. x and w of sum(conv * r)."""
    n, c, o, h, w, k, stride, padding = size
    if views:                      # x stored as (N, C, W, H), w as (C, O, kh, kw): permuted views
        xs = tg.placeholder("xt", (n, c, w, h))
        ws = tg.placeholder("wt", (c, o) + k)
        x, wt = tg.transpose(xs, (0, 1, 3, 2)), tg.transpose(ws, (1, 0, 2, 3))
    else:
        xs = x = tg.placeholder("x", (n, c, h, w))
        ws = wt = tg.placeholder("w", (o, c) + k)
    y = tg.conv2d(x, wt, stride=stride, padding=padding)
    r = tg.constant(np.random.default_rng(1).standard_normal(y.shape).astype(np.float32))
    gx, gw = tg.grad(tg.sum(y * r), [xs, ws])
    return [xs, ws], [y, gx, gw]


def _random_inputs(inputs, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(t.shape).astype(np.float32) for t in inputs]


def _run(build, backend, seed=0):
    with tg.Graph():
        inputs, outputs = build()
        step = tg.compile(inputs, outputs, backend=backend)
    return step(*_random_inputs(inputs, seed))


def _size_id(s):
    return "x".join(map(str, s[:5])) + f"-k{s[5]}-s{s[6]}-p{s[7]}"


@pytest.mark.parametrize("views", [False, True], ids=["contiguous", "views"])
@pytest.mark.parametrize("size", CONV_SIZES, ids=_size_id)
def test_conv_and_gradients_match_the_interpreter(size, views):
    want = _run(lambda: _conv_graph(size, views), "interp")
    got = _run(lambda: _conv_graph(size, views), "llvm")
    for name, a, b in zip(("conv2d", "grad x", "grad w"), got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()), err_msg=name)


@pytest.mark.parametrize("size", CONV_SIZES, ids=_size_id)
def test_conv_and_gradients_on_triton_match_the_interpreter(size):
    want = _run(lambda: _conv_graph(size, views=True), "interp")
    got = _run(lambda: _conv_graph(size, views=True), "triton")
    for name, a, b in zip(("conv2d", "grad x", "grad w"), got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()), err_msg=name)


def _grad_ops_graph():
    """conv2d_grad_input / conv2d_grad_weight called directly with a g whose (Ho, Wo) axes do
    not flatten to one stride (a column slice), and a float64 g (the kernels convert)."""
    n, c, o, h, k = 2, 6, 10, 11, 3
    ho = h - k + 1
    gwide = tg.placeholder("gwide", (n, o, ho, ho + 3))
    g = gwide[:, :, :, 1:ho + 1]
    x = tg.placeholder("x", (n, c, h, h))
    w = tg.placeholder("w", (o, c, k, k))
    attrs = dict(stride=(1, 1), padding=(0, 0))
    g64 = tg.cast(g, "float64")
    return [gwide, x, w], [apply("conv2d_grad_input", [g, w, x], **attrs),
                           apply("conv2d_grad_weight", [g, x, w], **attrs),
                           apply("conv2d_grad_weight", [g64, x, w], **attrs)]


def test_gradient_kernels_read_sliced_g():
    want = _run(_grad_ops_graph, "interp")
    got = _run(_grad_ops_graph, "llvm")
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))


POOL_CASES = [
    ("max", (3, 16, 13, 15), 3, 2, 1),
    ("max", (2, 8, 12, 12), 2, 2, 0),         # windows tile the plane: no zero fill needed
    ("max", (2, 4, 13, 13), 2, 2, 0),         # the last row and column are in no window
    ("max", (2, 4, 14, 14), 2, 3, 0),         # stride > kernel: gaps between windows
    ("max", (2, 4, 9, 11), 3, 1, 1),          # overlapping windows: the general gradient
    ("avg", (3, 16, 13, 15), 3, 2, 1),
    ("avg", (2, 8, 12, 12), 2, 2, 0),
]


def _pool_graph(case):
    kind, shape, k, s, p = case
    x = tg.placeholder("x", shape)
    pool = tg.max_pool2d if kind == "max" else tg.avg_pool2d
    y = pool(x, k, stride=s, padding=p)
    r = tg.constant(np.random.default_rng(2).standard_normal(y.shape).astype(np.float32))
    return [x], [y] + list(tg.grad(tg.sum(y * r), [x]))


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: f"{c[0]}-{'x'.join(map(str, c[1]))}-k{c[2]}s{c[3]}p{c[4]}")
@pytest.mark.parametrize("backend", ["llvm", "triton"])
def test_pooling_matches_the_interpreter(case, backend):
    want = _run(lambda: _pool_graph(case), "interp")
    got = _run(lambda: _pool_graph(case), backend)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _cnn_graph():
    """conv -> relu -> max pool -> conv -> avg pool, and every gradient."""
    x = tg.placeholder("x", (5, 6, 14, 14))
    w1 = tg.placeholder("w1", (12, 6, 3, 3))
    w2 = tg.placeholder("w2", (8, 12, 5, 5))
    h = tg.max_pool2d(tg.relu(tg.conv2d(x, w1, padding=1)), 2)
    y = tg.avg_pool2d(tg.conv2d(h, w2, stride=2, padding=2), 2, stride=1)
    r = tg.constant(np.random.default_rng(3).standard_normal(y.shape).astype(np.float32))
    return [x, w1, w2], [y] + list(tg.grad(tg.sum(y * r), [x, w1, w2]))


def test_kernels_split_across_threads_give_identical_results(monkeypatch, tmp_path):
    """Every convolution and pooling kernel runs split (threshold lowered), and the results do
    not depend on the thread count, even with slices of unequal size."""
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path))      # lower afresh, no cache hit
    monkeypatch.setattr(parallel, "MIN_WORK_PER_THREAD", 1)
    split = []
    emit_entry = parallel.emit_entry
    monkeypatch.setattr(parallel, "emit_entry",
                        lambda m, name, *a, **k: split.append(name) or emit_entry(m, name, *a, **k))
    saved = tg.get_num_threads()
    results = {}
    try:
        for threads in (1, 2, 3):
            tg.set_num_threads(threads)
            results[threads] = _run(_cnn_graph, "llvm")
    finally:
        tg.set_num_threads(saved)
    for op in ("conv2d", "conv2d_grad_input", "conv2d_grad_weight", "max_pool2d", "max_pool2d_grad",
               "avg_pool2d", "avg_pool2d_grad"):
        assert any(name.endswith(f"_{op}_mt") for name in split), (op, split)
    for threads in (2, 3):
        for a, b in zip(results[threads], results[1]):
            np.testing.assert_array_equal(a, b)
    want = _run(_cnn_graph, "interp")
    for a, b in zip(results[2], want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))
