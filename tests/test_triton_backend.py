"""Parity of the Triton backend with the NumPy interpreter.

In CI there is no GPU: the kernels run on the CPU under Triton's interpreter
(TRITON_INTERPRET=1, set by conftest.py before triton is imported), on CPU torch
tensors. On a machine with a GPU, ``TRITON_INTERPRET=0 pytest -m gpu`` runs the same
checks on the device (the ``gpu``-marked copies below).

The op table is the LLVM parity suite's (tests/test_llvm_backend.py): every registered op,
outputs and gradients, against the interpreter.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import tensorforge as tg
from test_llvm_backend import (CASES, _feeds, _ops_of, assert_same, build, check_random_graph,
                               elementwise_graphs)

gpu = pytest.mark.gpu


def run(name, dtype, backend, calls=1):
    g, phs, outs = build(name, dtype)
    f = tg.compile(phs, outs, backend=backend)
    feeds = _feeds(name, CASES[name][0], dtype)
    return [f(*feeds) for _ in range(calls)], g, f


# every row in float32; float64 for the rows that exercise float64-specific code paths
F64_ROWS = [n for n in CASES if any(k in n for k in ("matmul", "conv", "softmax", "exp", "tanh", "pow", "sum_axis"))]
PARAMS = [pytest.param(n, "float32", id=f"{n}-float32") for n, (_, _, dts) in CASES.items() if "float32" in dts]
PARAMS += [pytest.param(n, "float64", id=f"{n}-float64") for n in F64_ROWS if "float64" in CASES[n][2]]


def _check_row(name, dtype):
    (ref,), _, _ = run(name, dtype, "interp")
    (got,), _, f = run(name, dtype, "triton")
    assert type(next(iter(f._cache.values()))).__name__ == "TritonFunction"
    assert_same(ref, got)


@pytest.mark.parametrize("name, dtype", PARAMS)
def test_triton_matches_interp(name, dtype):
    _check_row(name, dtype)


@gpu
@pytest.mark.parametrize("name, dtype", PARAMS)
def test_triton_matches_interp_on_gpu(name, dtype):
    _check_row(name, dtype)


def test_every_registered_op_is_covered_by_a_row_that_runs_here():
    covered = set()
    for name, dtype in [(p.values[0], p.values[1]) for p in PARAMS]:
        covered |= _ops_of(build(name, dtype)[0])
    from test_llvm_backend import _ops_of_the_opinfo_table   # run on triton against torch too
    covered |= _ops_of_the_opinfo_table()
    made_by_the_compiler = {name for name, op in tg.OPS.items() if op.family == "kernel"}   # fused, ...
    missing = set(tg.OPS) - covered - made_by_the_compiler - {"dropout"}   # dropout: its own test below
    assert not missing, missing


def test_dropout_masks_are_those_of_the_interpreter_across_calls():
    outs = {}
    for backend in ("interp", "triton"):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (4, 33))
            y = tg.dropout(x, p=0.4, seed=7)
            gx = tg.grad(tg.sum(y * y), x)
        f = tg.compile([x], [y, gx], backend=backend)
        xv = np.random.default_rng(0).standard_normal((4, 33)).astype("float32")
        outs[backend] = [f(xv) for _ in range(3)]
        assert int(tg.rng_counter(g).value) == 3
    for a, b in zip(outs["interp"], outs["triton"]):
        np.testing.assert_array_equal(a[0] != 0, b[0] != 0)
        np.testing.assert_allclose(b[0], a[0], rtol=1e-6)
        np.testing.assert_allclose(b[1], a[1], rtol=1e-6)
    assert not np.array_equal(outs["triton"][0][0] != 0, outs["triton"][1][0] != 0)


def test_printing_lists_kernels_and_the_source_is_there():
    (_, _, f) = run("chain_of_ten", "float32", "triton")
    text = repr(f)
    assert "triton" in text and "fused" in text
    assert "@triton.jit" in f.ir


@settings(max_examples=15, deadline=None)
@given(elementwise_graphs())
def test_random_elementwise_broadcast_reduction_graphs(case):
    check_random_graph(case, "triton")


# ---- training steps with every optimizer ----------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda: tg.optim.SGD(lr=0.1),
    "momentum": lambda: tg.optim.SGD(lr=0.05, momentum=0.9),
    "nesterov": lambda: tg.optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adagrad": lambda: tg.optim.Adagrad(lr=0.05),
    "adadelta": lambda: tg.optim.Adadelta(lr=1.0),
    "rmsprop": lambda: tg.optim.RMSprop(lr=1e-3, momentum=0.5, centered=True),
    "adam": lambda: tg.optim.Adam(lr=1e-2),
    "amsgrad": lambda: tg.optim.Adam(lr=1e-2, amsgrad=True),
    "adamw": lambda: tg.optim.AdamW(lr=1e-2),
    "adamax": lambda: tg.optim.Adamax(lr=1e-2),
    "nadam": lambda: tg.optim.NAdam(lr=1e-2),
    "svrg": lambda: tg.optim.SVRG(lr=0.05),
}


def _train(backend, model, make_opt, steps=5):
    g = tg.Graph()
    with g:
        if model == "mlp":
            x = tg.placeholder("x", (None, 12))
            net = tg.nn.Sequential(tg.nn.Dense(12, 16, seed=1), tg.nn.ReLU(), tg.nn.Dense(16, 5, seed=2))
            shape = (8, 12)
        else:
            x = tg.placeholder("x", (None, 1, 6, 6))
            net = tg.nn.Sequential(tg.nn.Conv2d(1, 3, 3, padding=1, seed=1), tg.nn.ReLU(), tg.nn.MaxPool2d(2),
                                   tg.nn.Flatten(), tg.nn.Dense(27, 5, seed=2))
            shape = (8, 1, 6, 6)
        y = tg.placeholder("y", (None,), dtype="int64")
        loss = tg.mean(tg.softmax_cross_entropy(net(x), y))
        opt = make_opt()
        updates = opt.updates(loss, net.parameters())
    step = tg.compile([x, y], [loss], updates=updates, backend=backend)
    data = np.random.default_rng(5)
    xs = data.standard_normal((16,) + shape[1:]).astype("float32")
    ys = data.integers(0, 5, 16)
    if hasattr(opt, "take_snapshot"):
        opt.take_snapshot([x, y], [xs, ys], batch_size=8, backend=backend)
    losses = [step(xs[(i % 2) * 8:(i % 2) * 8 + 8], ys[(i % 2) * 8:(i % 2) * 8 + 8]) for i in range(steps)]
    return np.array(losses, dtype=np.float64).ravel(), [p.value.copy() for p in net.parameters()]


TRAIN = [pytest.param(m, o, id=f"{m}-{o}") for m in ("mlp", "cnn") for o in OPTIMIZERS]


def _check_training(model, opt):
    l0, p0 = _train("interp", model, OPTIMIZERS[opt])
    l1, p1 = _train("triton", model, OPTIMIZERS[opt])
    np.testing.assert_allclose(l1, l0, rtol=1e-4, atol=1e-5)
    for a, b in zip(p0, p1):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model, opt", TRAIN)
def test_training_steps_match_the_interpreter(model, opt):
    _check_training(model, opt)


@gpu
@pytest.mark.parametrize("model, opt", TRAIN)
def test_training_steps_match_the_interpreter_on_gpu(model, opt):
    _check_training(model, opt)


def test_parameters_read_back_through_value_and_shared_by_two_compiled_functions():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3))
        w = tg.parameter("w", np.ones((3, 2), np.float32))
        loss = tg.sum((x @ w) ** 2.0)
        step = tg.compile([x], [loss], updates=tg.optim.SGD(lr=0.01).updates(loss, [w]), backend="triton")
        predict = tg.compile([x], [x @ w], backend="triton")
        host = tg.compile([x], [x @ w], backend="interp")
    xv = np.arange(6, dtype=np.float32).reshape(2, 3)
    step(xv)
    after = w.value.copy()
    assert not np.allclose(after, 1.0)
    np.testing.assert_allclose(predict(xv)[0], xv @ after, rtol=1e-6)
    np.testing.assert_allclose(host(xv)[0], xv @ after, rtol=1e-6)
    w.value = np.zeros((3, 2), np.float32)        # a host write reaches the device copy
    np.testing.assert_array_equal(predict(xv)[0], 0.0)


def test_scratch_buffers_are_reused_across_steps():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (2, 1, 5, 5))
        w = tg.parameter("w", np.random.default_rng(0).standard_normal((3, 1, 3, 3)).astype("float32"))
        loss = tg.sum(tg.conv2d(x, w, padding=1) ** 2.0)
        step = tg.compile([x], [loss], updates=tg.optim.SGD(lr=1e-3).updates(loss, [w]), backend="triton")
    xv = np.random.default_rng(1).standard_normal((2, 1, 5, 5)).astype("float32")
    step(xv)
    exe = next(iter(step._cache.values()))
    held = len(exe._scratch)
    assert held > 0                       # im2col needs scratch
    for _ in range(3):
        step(xv)
    assert len(exe._scratch) == held      # no new buffers per step
