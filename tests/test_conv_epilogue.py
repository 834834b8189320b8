"""Convolution epilogues (passes/fusion_conv_epilogue.py): the bias + ReLU after a conv2d, and
the ReLU mask after a conv2d_grad_input, are applied by the convolution kernel, sample by
sample. Every fused program is checked against the unfused interpreter on the interpreter
itself (which runs the convolution with NumPy and evaluates the kernel IR), the LLVM backend
(the fused kernel, split over 1, 2 and 3 threads) and the Triton backend (the unfused form,
on the CPU interpreter); gradients included."""
import numpy as np
import pytest

import tensorforge as tg
from tensorforge.backends.llvm import parallel
from tensorforge.passes.pipeline import COMPILER_PASSES

BACKENDS = [("interp", list(COMPILER_PASSES)), ("llvm", None), ("triton", None)]


@pytest.fixture(autouse=True)
def _fresh_disk_cache(tmp_path, monkeypatch):
    """Each test builds its steps (a disk-cache hit would skip the passes whose result is checked)."""
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path / "cache"))


def _ops(step) -> list[str]:
    program = next(iter(step._cache.values())).program
    return [program.graph.node(n)["op"] for n in program.order]


def _check_against_unfused(ins, outs, feeds, rtol=1e-4, atol=1e-4, backends=BACKENDS):
    """Every backend's fused run equals the unfused interpreter; returns the fused programs' ops."""
    ref = tg.compile(ins, outs, passes=[])(*feeds)
    ops = {}
    for backend, passes in backends:
        if backend == "triton":
            pytest.importorskip("triton")
        step = tg.compile(ins, outs, backend=backend, passes=passes)
        got = step(*feeds)
        for g_, r_ in zip(got, ref):
            np.testing.assert_allclose(g_, r_, rtol=rtol, atol=atol * max(1.0, float(np.abs(r_).max())),
                                       err_msg=backend)
        ops[backend] = _ops(step)
    return ops


# (N, C, O, H, W, (kh, kw), stride, padding)
SIZES = [
    (3, 1, 8, 12, 12, (3, 3), 1, 0),           # one input channel
    (2, 5, 7, 11, 13, (3, 5), (2, 1), (1, 2)),  # odd sizes, stride, padding
    (2, 16, 24, 9, 9, (3, 3), 1, 1),
    (2, 3, 4, 6, 1, (3, 1), 1, (1, 0)),          # a one-column image: positions (Ho, 1)
]


def _conv_bias_relu(size, rng, pool=False):
    """(inputs, outputs, feeds): relu(conv2d(x, w) + b) (max-pooled), and the gradients of x, w, b."""
    n, c, o, h, w, k, stride, padding = size
    x, wt, b = tg.placeholder("x", (n, c, h, w)), tg.placeholder("w", (o, c) + k), tg.placeholder("b", (o,))
    y = tg.relu(tg.conv2d(x, wt, b, stride=stride, padding=padding))
    if pool:
        y = tg.max_pool2d(y, 2)
    probe = tg.constant(rng.standard_normal(tuple(y.shape)).astype("float32"))
    grads = tg.grad(tg.sum(y * probe), [x, wt, b])
    feeds = [rng.standard_normal(t.shape).astype("float32") for t in (x, wt, b)]
    return [x, wt, b], [y] + list(grads), feeds


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s[:5])) + f"-k{s[5]}-s{s[6]}-p{s[7]}")
def test_bias_relu_folds_into_the_convolution_on_every_backend(size, rng):
    with tg.Graph():
        ins, outs, feeds = _conv_bias_relu(size, rng)
        ops = _check_against_unfused(ins, outs, feeds)
    assert all("conv2d_epilogue" in listed and "conv2d" not in listed for listed in ops.values()), ops


def test_the_mnist_net_layer_with_pooling_matches(rng):
    with tg.Graph():
        ins, outs, feeds = _conv_bias_relu((4, 32, 64, 26, 26, (3, 3), 1, 0), rng, pool=True)
        ops = _check_against_unfused(ins, outs, feeds, backends=BACKENDS[:2])
    assert "conv2d_epilogue" in ops["llvm"], ops


def _two_layers(rng, n=3, c=2, h=11, stride2=1, padding2=1):
    """conv -> bias -> relu -> conv -> relu: in the backward pass the second convolution's
    input gradient is read only by the first ReLU's mask (a conv2d_grad_input epilogue)."""
    x, w1, b1 = tg.placeholder("x", (n, c, h, h)), tg.placeholder("w1", (6, c, 3, 3)), tg.placeholder("b1", (6,))
    w2 = tg.placeholder("w2", (5, 6, 3, 3))
    h1 = tg.relu(tg.conv2d(x, w1, b1))
    y = tg.relu(tg.conv2d(h1, w2, stride=stride2, padding=padding2))
    probe = tg.constant(rng.standard_normal(tuple(y.shape)).astype("float32"))
    ins = [x, w1, b1, w2]
    grads = tg.grad(tg.sum(y * probe), ins)
    return ins, [y] + list(grads), [rng.standard_normal(t.shape).astype("float32") for t in ins]


@pytest.mark.parametrize("geometry", [(1, 1), (2, 0), (1, 2)], ids=["s1p1", "s2p0", "s1p2"])
def test_a_relu_mask_folds_into_the_input_gradient_on_every_backend(geometry, rng):
    with tg.Graph():
        ins, outs, feeds = _two_layers(rng, stride2=geometry[0], padding2=geometry[1])
        ops = _check_against_unfused(ins, outs, feeds)
    # (x's own gradient, read by nothing elementwise, stays a plain conv2d_grad_input)
    assert all("conv2d_grad_input_epilogue" in listed for listed in ops.values()), ops


def test_a_convolution_read_twice_keeps_its_own_kernel(rng):
    with tg.Graph():
        x, w = tg.placeholder("x", (2, 3, 8, 8)), tg.placeholder("w", (4, 3, 3, 3))
        y = tg.conv2d(x, w)
        z = tg.relu(y) + tg.sum(y)
        feeds = [rng.standard_normal(t.shape).astype("float32") for t in (x, w)]
        ops = _check_against_unfused([x, w], [z], feeds, backends=BACKENDS[:2])
    assert all("conv2d_epilogue" not in listed for listed in ops.values()), ops


def test_a_convolution_that_is_an_output_is_not_folded(rng):
    with tg.Graph():
        x, w = tg.placeholder("x", (2, 3, 8, 8)), tg.placeholder("w", (4, 3, 3, 3))
        y = tg.conv2d(x, w)
        feeds = [rng.standard_normal(t.shape).astype("float32") for t in (x, w)]
        ops = _check_against_unfused([x, w], [y, tg.relu(y)], feeds, backends=BACKENDS[:2])
    assert all("conv2d_epilogue" not in listed for listed in ops.values()), ops


def test_nan_and_inf_in_the_bias_reach_the_output(rng):
    with tg.Graph():
        x, w, b = tg.placeholder("x", (2, 2, 6, 6)), tg.placeholder("w", (4, 2, 3, 3)), tg.placeholder("b", (4,))
        y = tg.maximum(tg.conv2d(x, w, b, padding=1), 0.0) * 1.5
        feeds = [rng.standard_normal((2, 2, 6, 6)).astype("float32"),
                 rng.standard_normal((4, 2, 3, 3)).astype("float32"),
                 np.array([np.nan, np.inf, -np.inf, 0.5], np.float32)]
        ops = _check_against_unfused([x, w, b], [y], feeds)
    assert all("conv2d_epilogue" in listed for listed in ops.values()), ops


def test_the_split_epilogue_is_identical_for_every_thread_count(rng, monkeypatch, tmp_path):
    """The fused kernels run split over samples (threshold lowered), their results (the ReLU
    and the pre-activation its backward reads, the masked input gradient) identical for 1, 2
    and 3 threads."""
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
            monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path / f"t{threads}"))
            with tg.Graph():
                ins, outs, feeds = _two_layers(np.random.default_rng(2), n=5, c=3, h=10)
                step = tg.compile(ins, outs, backend="llvm")
                results[threads] = step(*feeds)
                assert "fused_output" in _ops(step)         # relu and the pre-activation
    finally:
        tg.set_num_threads(saved)
    for op in ("conv2d_epilogue", "conv2d_grad_input_epilogue"):
        assert any(name.endswith(f"_{op}_mt") for name in split), (op, split)
    for threads in (2, 3):
        for a, b in zip(results[threads], results[1]):
            np.testing.assert_array_equal(a, b)
    with tg.Graph():
        ins, outs, feeds = _two_layers(np.random.default_rng(2), n=5, c=3, h=10)
        want = tg.compile(ins, outs, backend="interp")(*feeds)
    for a, b in zip(results[2], want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))


def test_the_mnist_net_training_step_matches_the_interpreter():
    """Three SGD-momentum steps of the benchmark's Net (batch 8): the losses (the later ones
    depend on every parameter's update)."""
    from tensorforge import bench_models as bm
    x, y = bm.random_batch(bm.input_shape(bm.MNIST_NET, 8))
    results = {}
    for backend in ("interp", "llvm"):
        step = bm.tensorforge_training_step(bm.MNIST_NET, x, y, backend, name="net")
        results[backend] = [float(step(x, y)) for _ in range(3)]
        if backend == "llvm":
            assert {"conv2d_epilogue", "conv2d_grad_input_epilogue"} <= set(_ops(step))
    np.testing.assert_allclose(results["llvm"], results["interp"], rtol=1e-4)


def test_the_graph_viewer_shows_conv_epilogues_as_fused_kernels(rng):
    from tensorforge.export.html import graph_data
    with tg.Graph():
        ins, outs, feeds = _two_layers(rng)
        step = tg.compile(ins, outs, backend="llvm")
        step(*feeds)
        nodes = graph_data(step, profile=step.profile(*feeds, steps=1, warmup=0))["nodes"]
    shown = {n["op"]: n for n in nodes if n["op"].endswith("_epilogue")}
    assert set(shown) == {"conv2d_epilogue", "conv2d_grad_input_epilogue"}, [n["op"] for n in nodes]
    for node in shown.values():
        assert node["kind"] == "fused" and node["members"] and "seconds" in node, node
