"""Fewer kernels per step: multi-output kernels (an optimizer's update of one parameter is one
kernel that writes its state and the parameter) and matmul epilogues. Every fused program is
checked against the unfused interpreter, on the interpreter itself (which evaluates the
kernel IR with NumPy), the LLVM backend and the Triton backend (on the CPU interpreter)."""
import numpy as np
import pytest

import tensorforge as tg
from tensorforge.kernel_ir import Load, LoopSpec, evaluate, evaluate_all
from tensorforge.ops.scalar import SYMBOLIC
from tensorforge.passes.pipeline import COMPILER_PASSES

OPTIMIZERS = {
    "sgd": lambda: tg.optim.SGD(lr=0.1),
    "sgd_momentum": lambda: tg.optim.SGD(lr=0.1, momentum=0.9, weight_decay=1e-2),
    "sgd_nesterov": lambda: tg.optim.SGD(lr=0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda: tg.optim.Adagrad(lr=0.1),
    "adadelta": lambda: tg.optim.Adadelta(),
    "rmsprop": lambda: tg.optim.RMSprop(lr=1e-2, centered=True, momentum=0.5),
    "adam": lambda: tg.optim.Adam(lr=1e-2),
    "adam_amsgrad": lambda: tg.optim.Adam(lr=1e-2, amsgrad=True, weight_decay=1e-2),
    "adamw": lambda: tg.optim.AdamW(lr=1e-2),
    "adamax": lambda: tg.optim.Adamax(lr=1e-2),
    "nadam": lambda: tg.optim.NAdam(lr=1e-2),
}


@pytest.fixture(autouse=True)
def _fresh_disk_cache(tmp_path, monkeypatch):
    """Each test builds its steps (a disk-cache hit would skip the passes whose result is checked)."""
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path / "cache"))


def _ops(step) -> list[str]:
    program = next(iter(step._cache.values())).program
    return [program.graph.node(n)["op"] for n in program.order]


def _mlp_step(make_opt, backend: str, passes, seed: int = 0):
    """relu(x @ W + b) @ W2 with softmax cross-entropy and ``make_opt``'s updates."""
    init = np.random.default_rng(seed)
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 12))
        y = tg.placeholder("y", (None,), dtype="int64")
        W = tg.parameter("W", init.standard_normal((12, 8)).astype("float32") * 0.3)
        b = tg.parameter("b", init.standard_normal(8).astype("float32") * 0.1)
        W2 = tg.parameter("W2", init.standard_normal((8, 5)).astype("float32") * 0.3)
        loss = tg.mean(tg.softmax_cross_entropy(tg.relu(x @ W + b) @ W2, y))
        updates = make_opt().updates(loss, [W, b, W2])
    step = tg.compile([x, y], [loss], updates=updates, backend=backend, passes=passes)
    return step, [W, b, W2]


def _train(make_opt, backend, passes, steps=3):
    step, params = _mlp_step(make_opt, backend, passes)
    data = np.random.default_rng(7)
    losses = [float(step(data.standard_normal((6, 12)).astype("float32"), data.integers(0, 5, 6))[0])
              for _ in range(steps)]
    return losses, [np.array(p.value) for p in params], step


# ---- multi-output kernels ------------------------------------------------------------------

def test_evaluate_all_gives_every_output_of_a_multi_output_spec():
    a, b = SYMBOLIC.arg(0, "float32"), SYMBOLIC.arg(1, "float32")
    m = a * 0.5 + b
    spec = LoopSpec((3, 4), 0, (Load(0, (4, 1)), Load(1, (0, 1))), (), m * m, True, (4, 1), (3, 4), "float32",
                    extra_outs=(m,))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = np.arange(4, dtype=np.float32)
    first, second = evaluate_all(spec, x, y)
    np.testing.assert_array_equal(second, x * 0.5 + y)
    np.testing.assert_array_equal(first, (x * 0.5 + y) ** 2)
    np.testing.assert_array_equal(evaluate(spec, x, y), first)


def test_an_adam_update_of_one_parameter_is_one_kernel():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 16))
        W = tg.parameter("W", np.ones((16, 16), np.float32) * 0.1)
        loss = tg.sum(tg.tanh(x @ W))
        updates = tg.optim.Adam(lr=1e-2).updates(loss, [W])
    step = tg.compile([x], [loss], updates=updates, backend="interp", passes=list(COMPILER_PASSES))
    step(np.ones((4, 16), np.float32))
    program = next(iter(step._cache.values())).program
    shaped = [n for n in program.order if program.graph.node(n)["op"] == "fused"
              and program.shapes[n] == (16, 16)]
    assert len(shaped) == 1, [dict(program.graph.node(n)["attrs"])["spec"] for n in shaped]
    spec = dict(program.graph.node(shaped[0])["attrs"])["spec"]
    assert len(spec.extra_outs) == 2                     # m and v, beside the parameter itself


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_fused_matches_the_unfused_interpreter(name):
    ref_losses, ref_params, _ = _train(OPTIMIZERS[name], "interp", [])
    for backend, passes, rtol in (("interp", list(COMPILER_PASSES), 1e-6), ("llvm", None, 1e-5)):
        losses, params, _ = _train(OPTIMIZERS[name], backend, passes)
        np.testing.assert_allclose(losses, ref_losses, rtol=rtol, err_msg=backend)
        for got, want in zip(params, ref_params):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-7, err_msg=backend)


def test_llvm_writes_multi_output_updates_in_place():
    losses, params, step = _train(OPTIMIZERS["adam"], "llvm", None, steps=1)
    text = str(step)
    assert "updates: 10 written in place, 0 copied" in text, text


@pytest.mark.parametrize("name", ["adam", "sgd_momentum", "rmsprop"])
def test_triton_multi_output_kernels_match_the_unfused_interpreter(name):
    pytest.importorskip("triton")
    ref_losses, ref_params, _ = _train(OPTIMIZERS[name], "interp", [])
    losses, params, step = _train(OPTIMIZERS[name], "triton", None)
    assert "fused_output" in _ops(step)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
    for got, want in zip(params, ref_params):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_a_value_read_before_the_consumer_runs_is_not_merged(rng):
    """h feeds y's kernel, but a matmul reads h before y is computed: merging h into y's
    kernel would move h after its reader (the group would not be convex)."""
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4, 4))
        h = tg.exp(x) + 1.0
        y = (h @ x) + h              # y reads h elementwise, after the matmul that reads h
    feed = rng.standard_normal((4, 4)).astype("float32")
    ref = tg.compile([x], [y], passes=[])(feed)
    for backend, passes in (("interp", list(COMPILER_PASSES)), ("llvm", None)):
        got = tg.compile([x], [y], backend=backend, passes=passes)(feed)
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-5)


# ---- matmul epilogues --------------------------------------------------------------------------

BACKENDS = [("interp", list(COMPILER_PASSES)), ("llvm", None), ("triton", None)]


def _check_against_unfused(ins, outs, feeds, rtol=1e-5, atol=1e-5, backends=BACKENDS):
    """Every backend's fused run equals the unfused interpreter; returns the fused programs' ops."""
    ref = tg.compile(ins, outs, passes=[])(*feeds)
    ops = {}
    for backend, passes in backends:
        if backend == "triton":
            pytest.importorskip("triton")
        step = tg.compile(ins, outs, backend=backend, passes=passes)
        got = step(*feeds)
        for g_, r_ in zip(got, ref):
            np.testing.assert_allclose(g_, r_, rtol=rtol, atol=atol, err_msg=backend)
        ops[backend] = _ops(step)
    return ops


def test_relu_of_a_biased_matmul_is_one_kernel(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 12))
        W = tg.parameter("W", rng.standard_normal((12, 7)).astype("float32"))
        b = tg.parameter("b", rng.standard_normal(7).astype("float32"))
        y = tg.relu(x @ W + b)
    ops = _check_against_unfused([x], [y], [rng.standard_normal((9, 12)).astype("float32")])
    for backend, listed in ops.items():
        computed = [op for op in listed if op not in ("placeholder", "parameter", "constant")]
        assert computed == ["matmul_epilogue"], (backend, listed)


def _epilogue_case(name, rng):
    """(inputs, outputs, feeds) of one epilogue shape: values and gradients of every input."""
    f32 = lambda *shape: rng.standard_normal(shape).astype("float32")   # noqa: E731
    g = tg.Graph()
    with g:
        if name == "bias_rows":                      # bias along the rows: one value per column
            a, b, c = tg.placeholder("a", (6, 5)), tg.placeholder("b", (5, 9)), tg.placeholder("c", (9,))
            y = tg.tanh(a @ b + c) * 0.5
            feeds = [f32(6, 5), f32(5, 9), f32(9)]
        elif name == "bias_columns":                 # one value per row, broadcast along columns
            a, b, c = tg.placeholder("a", (6, 5)), tg.placeholder("b", (5, 9)), tg.placeholder("c", (6, 1))
            y = tg.sigmoid(a @ b - c)
            feeds = [f32(6, 5), f32(5, 9), f32(6, 1)]
        elif name == "transposed":
            a, b, c = tg.placeholder("a", (5, 6)), tg.placeholder("b", (9, 5)), tg.placeholder("c", (9,))
            y = tg.relu(tg.transpose(a) @ tg.transpose(b) + c)
            feeds = [f32(5, 6), f32(9, 5), f32(9)]
        elif name == "batched":
            a, b, c = tg.placeholder("a", (3, 4, 5)), tg.placeholder("b", (3, 5, 6)), tg.placeholder("c", (3, 4, 6))
            y = tg.relu(a @ b + c) * 2.0
            feeds = [f32(3, 4, 5), f32(3, 5, 6), f32(3, 4, 6)]
        elif name == "batched_broadcast":            # a 2-D weight under a batch, bias per column
            a, b, c = tg.placeholder("a", (2, 7, 5)), tg.placeholder("b", (5, 6)), tg.placeholder("c", (6,))
            y = tg.relu(a @ b + c)
            feeds = [f32(2, 7, 5), f32(5, 6), f32(6)]
        else:                                        # "deep": K above the GEMM's depth block
            a, b, c = tg.placeholder("a", (20, 600)), tg.placeholder("b", (600, 24)), tg.placeholder("c", (24,))
            y = tg.relu(a @ b + c)
            feeds = [f32(20, 600) * 0.1, f32(600, 24) * 0.1, f32(24)]
        probe = tg.constant(rng.standard_normal(tuple(y.shape)).astype("float32"))
        grads = tg.grad(tg.sum(y * probe), [a, b, c])
    return [a, b, c], [y] + list(grads), feeds


@pytest.mark.parametrize("name", ["bias_rows", "bias_columns", "transposed", "batched", "batched_broadcast",
                                  "deep"])
def test_matmul_epilogues_and_their_gradients_match_the_unfused_interpreter(name, rng):
    ins, outs, feeds = _epilogue_case(name, rng)
    ops = _check_against_unfused(ins, outs, feeds, rtol=2e-5, atol=2e-5)
    assert all("matmul_epilogue" in listed for listed in ops.values()), ops


def test_nan_and_inf_in_the_bias_reach_the_output(rng):
    g = tg.Graph()
    with g:
        a, b, c = tg.placeholder("a", (4, 3)), tg.placeholder("b", (3, 5)), tg.placeholder("c", (5,))
        y = tg.maximum(a @ b + c, 0.0) * 1.5
    bias = np.array([np.nan, np.inf, -np.inf, 0.0, 1.0], np.float32)
    feeds = [rng.standard_normal((4, 3)).astype("float32"), rng.standard_normal((3, 5)).astype("float32"), bias]
    ops = _check_against_unfused([a, b, c], [y], feeds)
    assert all("matmul_epilogue" in listed for listed in ops.values()), ops


def test_a_product_read_twice_keeps_its_own_kernel(rng):
    g = tg.Graph()
    with g:
        a, b = tg.placeholder("a", (4, 3)), tg.placeholder("b", (3, 5))
        p = a @ b
        y = tg.relu(p) + tg.sum(p)
    feeds = [rng.standard_normal((4, 3)).astype("float32"), rng.standard_normal((3, 5)).astype("float32")]
    ops = _check_against_unfused([a, b], [y], feeds, backends=BACKENDS[:2])
    assert all("matmul_epilogue" not in listed for listed in ops.values()), ops


def test_an_mlp_training_step_with_epilogues_matches_on_every_backend():
    ref_losses, ref_params, _ = _train(OPTIMIZERS["adam"], "interp", [])
    for backend, passes in BACKENDS:
        if backend == "triton":
            pytest.importorskip("triton")
        losses, params, step = _train(OPTIMIZERS["adam"], backend, passes)
        assert "matmul_epilogue" in _ops(step)
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, err_msg=backend)
        for got, want in zip(params, ref_params):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=backend)


def test_a_threaded_product_applies_its_epilogue_to_every_threads_rows(rng, monkeypatch):
    monkeypatch.setenv("TENSORFORGE_NUM_THREADS", "2")
    g = tg.Graph()
    with g:
        a, b, c = tg.placeholder("a", (300, 256)), tg.placeholder("b", (256, 272)), tg.placeholder("c", (272,))
        pre = a @ b + c
        y = tg.relu(pre)
        z = pre * 2.0                       # pre is read twice: a two-output epilogue
    feeds = [rng.standard_normal((300, 256)).astype("float32"), rng.standard_normal((256, 272)).astype("float32"),
             rng.standard_normal(272).astype("float32")]
    ops = _check_against_unfused([a, b, c], [y, z], feeds, rtol=1e-4, atol=1e-4, backends=BACKENDS[:2])
    assert "matmul_epilogue" in ops["llvm"] and "fused_output" in ops["llvm"], ops


def test_an_extra_output_can_be_an_output_of_the_step(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (5, 5))
        h = tg.exp(x) + 1.0                  # computed by y's kernel, stored as its second output
        y = h * 2.0
        z = tg.sum(h, axis=0)
    ops = _check_against_unfused([x], [y, z, h], [rng.standard_normal((5, 5)).astype("float32")], rtol=1e-6)
    assert all("fused_output" in listed for listed in ops.values()), ops


# ---- row reductions finished by their reader (passes/fusion_rows.py) ---------------------------

@pytest.mark.parametrize("axis", [-1, 0])
def test_a_row_reduction_read_by_one_kernel_is_finished_inside_it(rng, axis):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (6, 6))            # square: axis 0 has the same loop extents as axis -1
        gx = tg.placeholder("g", (6, 6))
        s = tg.sum(gx * x, axis=axis, keepdims=True)
        y = gx - tg.exp(x) * s                      # log_softmax's backward
    feeds = [rng.standard_normal((6, 6)).astype("float32"), rng.standard_normal((6, 6)).astype("float32")]
    ops = _check_against_unfused([x, gx], [y], feeds, rtol=1e-5)
    fused = ops["interp"].count("fused")
    assert fused == 1 if axis == -1 else fused == 2, ops


def test_softmax_cross_entropy_backward_is_one_kernel_after_the_log_softmax(rng):
    g = tg.Graph()
    with g:
        z = tg.placeholder("z", (7, 5))
        y = tg.placeholder("y", (7,), dtype="int64")
        loss = tg.mean(tg.softmax_cross_entropy(z, y))
        (dz,) = tg.grad(loss, [z])
    feeds = [rng.standard_normal((7, 5)).astype("float32"), rng.integers(0, 5, 7)]
    _check_against_unfused([z, y], [loss, dz], feeds, rtol=1e-5, atol=1e-6)


def test_a_merged_chain_that_reads_each_value_twice_prints_and_runs(rng):
    """Each value is an output (so its own kernel), and the next reads it twice: merged, the
    kernel's expression is a DAG whose tree has 2**40 nodes. Printing names the shared values."""
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3, 4))
        outs, h = [], x
        for _ in range(40):
            h = tg.tanh(h * h + 0.5)
            outs.append(h)
    feed = rng.standard_normal((3, 4)).astype("float32")
    ops = _check_against_unfused([x], outs, [feed], rtol=1e-5, backends=BACKENDS[:2])
    assert ops["llvm"].count("fused") < 5, ops
    step = tg.compile([x], outs, backend="llvm")
    step(feed)
    assert len(str(step)) < 200_000
