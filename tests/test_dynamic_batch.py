"""One LLVM build for every batch size (tensorforge.symbolic): a step whose placeholders have a
None dimension is built once, generic in that size, and gives the same results as the
interpreter and as builds specialised per size, whatever the batch; what cannot be generic
is specialised, with a log line saying why."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.compile import InputError

BATCHES = (64, 3, 17, 64, 1, 50)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TENSORFORGE_DYNAMIC_BATCH", raising=False)


def _mlp_step(backend, dropout: bool):
    g = tg.Graph()
    with g:
        layers = [tg.nn.Dense(20, 16, seed=1), tg.nn.ReLU()]
        layers += [tg.nn.Dropout(0.3, seed=5)] if dropout else []
        layers += [tg.nn.Dense(16, 16, seed=2), tg.nn.Tanh(), tg.nn.Dense(16, 10, seed=3)]
        net = tg.nn.Sequential(*layers)
        x = tg.placeholder("x", (None, 20))
        y = tg.placeholder("y", (None,), dtype="int64")
        logits = net(x, training=True) if dropout else net(x)
        loss = tg.mean(tg.softmax_cross_entropy(logits, y))
        updates = tg.optim.Adam(lr=1e-2).updates(loss, net.parameters())
    return tg.compile([x, y], [loss, logits], updates=updates, backend=backend), net


def _data(batches, n_in=20, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n, n_in)).astype("float32"), rng.integers(0, 10, n)) for n in batches]


def _run_steps(step, net, data):
    outs = [step(xb, yb) for xb, yb in data]
    return outs, [p.value.copy() for p in net.parameters()]


def _assert_close(got, want, rtol, atol):
    for a, b in zip(got, want):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dropout", [False, True])
def test_training_step_builds_once_for_every_batch_size_and_agrees(dropout, monkeypatch):
    data = _data(BATCHES)
    generic, net_g = _mlp_step("llvm", dropout)
    outs_g, params_g = _run_steps(generic, net_g, data)
    assert len(generic.compile_times) == 1 and "generic in the batch size" in repr(generic)
    reference, net_i = _mlp_step("interp", dropout)
    outs_i, params_i = _run_steps(reference, net_i, data)
    monkeypatch.setenv("TENSORFORGE_DYNAMIC_BATCH", "0")          # one build per batch size, as before
    special, net_s = _mlp_step("llvm", dropout)
    outs_s, params_s = _run_steps(special, net_s, data)
    assert len(special.compile_times) == len(set(BATCHES))
    for g, s, i in zip(outs_g, outs_s, outs_i):
        _assert_close(g, s, rtol=1e-5, atol=1e-6)
        _assert_close(g, i, rtol=1e-4, atol=1e-5)
    _assert_close(params_g, params_s, rtol=1e-5, atol=1e-6)
    _assert_close(params_g, params_i, rtol=1e-4, atol=1e-5)


def _compare_with_interp(build, batches, n_in, rtol=1e-5, atol=1e-5, builds=1):
    fns = {b: build(b) for b in ("llvm", "interp")}
    rng = np.random.default_rng(3)
    for n in batches:
        xv = rng.standard_normal((n, n_in)).astype("float32")
        _assert_close(fns["llvm"](xv), fns["interp"](xv), rtol, atol)
    assert len(fns["llvm"].compile_times) == builds
    return fns["llvm"]


def test_reductions_over_the_batch_mean_and_sum():
    def build(backend):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (None, 12))
            w = tg.parameter("w", np.linspace(-1, 1, 12 * 7).reshape(12, 7).astype("float32"))
            h = tg.tanh(x @ w)
            outs = [tg.mean(h, axis=0), tg.sum(h), tg.mean(h), h, tg.max(h, axis=0), tg.mean(x * x, axis=1)]
        return tg.compile([x], outs, backend=backend)
    _compare_with_interp(build, BATCHES, 12)


def test_batch_as_the_gemm_depth_and_both_sides():
    def build(backend):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (None, 9))
            y = tg.tanh(x) * 2.0
            outs = [tg.transpose(x) @ y, x @ tg.transpose(x), tg.transpose(y) @ (x @ tg.transpose(x))]
        return tg.compile([x], outs, backend=backend)
    _compare_with_interp(build, BATCHES, 9, rtol=1e-4, atol=1e-4)


def test_a_larger_batch_grows_the_arena_without_recompiling(caplog):
    def build(backend):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (None, 6))
            w = tg.parameter("w", np.linspace(-1, 1, 36).reshape(6, 6).astype("float32"))
            outs = [tg.relu(x @ w) @ w, tg.sum(x, axis=0)]
        return tg.compile([x], outs, backend=backend)
    with caplog.at_level(logging.INFO, logger="tensorforge.compile"):
        _compare_with_interp(build, (4, 300, 2, 1000, 7), 6, rtol=1e-4, atol=1e-4)
    assert "arena re-allocated" in caplog.text


def test_log_softmax_nll_loss_and_label_checks():
    def build(backend):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (None, 5))
            y = tg.placeholder("y", (None,), dtype="int64")
            logp = tg.log_softmax(x * 1.5)
            outs = [tg.nll_loss(logp, y), tg.nll_loss(logp, y, reduction="sum"), logp]
        return tg.compile([x, y], outs, backend=backend)
    fns = {b: build(b) for b in ("llvm", "interp")}
    rng = np.random.default_rng(1)
    for n in BATCHES:
        xv, yv = rng.standard_normal((n, 5)).astype("float32"), rng.integers(0, 5, n)
        _assert_close(fns["llvm"](xv, yv), fns["interp"](xv, yv), 1e-5, 1e-5)
    assert len(fns["llvm"].compile_times) == 1
    bad = np.array([0, 1, 7, 2])
    with pytest.raises(InputError, match=r"label 7 is out of range .*row 2"):
        fns["llvm"](rng.standard_normal((4, 5)).astype("float32"), bad)


def test_batch_dims_of_different_sizes_in_one_call_are_specialised():
    """x (n, 4) broadcast against z (1, 4): one call with equal sizes is generic, one with
    batch sizes 5 and 1 gets a specialised build (one size symbol per build)."""
    fns = {}
    for backend in ("llvm", "interp"):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (None, 4))
            z = tg.placeholder("z", (None, 4))
            fns[backend] = tg.compile([x, z], [tg.tanh(x) * z, tg.sum(x * z, axis=0)], backend=backend)
    rng = np.random.default_rng(6)
    for nx, nz in ((5, 5), (1, 5), (3, 3), (5, 1)):
        xv, zv = rng.standard_normal((nx, 4)).astype("float32"), rng.standard_normal((nz, 4)).astype("float32")
        _assert_close(fns["llvm"](xv, zv), fns["interp"](xv, zv), 1e-5, 1e-5)
    assert len(fns["llvm"].compile_times) == 3
    assert sum(None in k[0] for k in fns["llvm"].compile_times) == 1


def test_batch_of_zero_agrees_with_the_interpreter():
    def build(backend):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (None, 3))
            w = tg.parameter("w", np.ones((3, 2), "float32"))
            outs = [x @ w, tg.sum(x, axis=0), tg.transpose(x) @ x]
        return tg.compile([x], outs, backend=backend)
    _compare_with_interp(build, (4, 0, 2), 3, builds=2)    # the generic build, and one for the empty batch


def test_convolution_falls_back_to_specialised_builds_with_a_log_line(caplog):
    def build(backend):
        g = tg.Graph()
        with g:
            net = tg.nn.Sequential(tg.nn.Conv2d(1, 2, 3, padding=1, seed=1), tg.nn.ReLU(), tg.nn.Flatten(),
                                   tg.nn.Dense(32, 3, seed=2))
            x = tg.placeholder("x", (None, 1, 4, 4))
            outs = [net(x)]
        return tg.compile([x], outs, backend=backend)
    fns = {b: build(b) for b in ("llvm", "interp")}
    rng = np.random.default_rng(2)
    with caplog.at_level(logging.INFO, logger="tensorforge.compile"):
        for n in (5, 2, 5):
            xv = rng.standard_normal((n, 1, 4, 4)).astype("float32")
            _assert_close(fns["llvm"](xv), fns["interp"](xv), 1e-4, 1e-5)
    assert "step: specialised for batch 5: conv2d needs fixed sizes" in caplog.text
    assert len(fns["llvm"].compile_times) == 2


def test_fit_builds_one_train_step_and_one_eval_step():
    x_train, y_train, x_test, y_test = tg.data.digits()
    model = tg.nn.Sequential(tg.nn.Dense(64, 32, seed=0), tg.nn.ReLU(), tg.nn.Dense(32, 10, seed=1))
    n = 403                                            # 12 batches of 32 and one of 19
    h = tg.train.fit(model, x_train[:n], y_train[:n], optimizer=tg.optim.Adam(lr=1e-2), epochs=2, batch_size=32,
                     validation_data=(x_test[:300], y_test[:300]), backend="llvm", progress=False, verbose=False,
                     eval_batch_size=128)           # evaluation batches of 128, 128 and 44
    assert len(h.train_step.compile_times) == 1
    assert len(h.eval_step.compile_times) == 1
    assert h["loss"][-1] < h["loss"][0]


_CHILD = textwrap.dedent("""
    import sys, numpy as np, tensorforge as tg
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 6))
        w = tg.parameter("w", np.linspace(-1, 1, 18).reshape(6, 3).astype("float32"))
        y = tg.sum(tg.tanh(x @ w), axis=0)
    f = tg.compile([x], [y], backend="llvm")
    n = int(sys.argv[1])
    out = f(np.linspace(0, 1, n * 6).reshape(n, 6).astype("float32"))[0]
    ref = np.tanh(np.linspace(0, 1, n * 6).reshape(n, 6).astype("float32") @ w.value).sum(0)
    assert np.allclose(out, ref, rtol=1e-5, atol=1e-5), (out, ref)
    print(len(f.compile_times), "from the disk cache" in repr(f))
""")


def test_the_disk_cache_serves_a_generic_build_to_another_process_and_batch_size(tmp_path):
    env = {**os.environ, "TENSORFORGE_CACHE_DIR": str(tmp_path / "shared-cache"),
           "PYTHONPATH": str(Path(tg.__file__).resolve().parents[1])}
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    first = subprocess.run([sys.executable, str(script), "8"], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["1", "False"]
    second = subprocess.run([sys.executable, str(script), "5"], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["1", "True"]


# ---- the generalisation itself -----------------------------------------------------------------------

def test_fit_accepts_polynomials_and_rejects_steps_and_clamps():
    from tensorforge.symbolic import PROBES, fit, fit_float
    ns = list(PROBES)
    assert fit(ns, [3 * n * n - 2 * n + 5 for n in ns]).coeffs == (5, -2, 3)
    assert fit(ns, [7] * 4).coeffs == (7,)
    for divisor in range(2, 29):               # a Python division of the batch never passes for a constant
        assert fit(ns, [-(-n // divisor) for n in ns]) is None, divisor
        assert fit(ns, [n // divisor for n in ns]) is None, divisor
    assert fit(ns, [min(n, 96) for n in ns]) is None
    f32 = lambda v: float(np.float32(v))       # noqa: E731
    assert fit_float(ns, [f32(1 / (4 * n)) for n in ns], f32)[0] == "reciprocal"
    assert fit_float(ns, [float(2 * n) for n in ns], f32)[0] == "value"
    assert fit_float(ns, [f32(np.sqrt(n)) for n in ns], f32) is None


def test_generalise_ir_replaces_varying_literals_and_refuses_sizes_in_types():
    from tensorforge.backends.llvm.generalise import generalise_ir
    from tensorforge.symbolic import PROBES, SymbolicUnsupported

    def module(n, vector=False):
        body = (f"  %\"s\" = fadd <2 x float> %\"v\", <float {n}.0, float 1.0>\n" if vector else
                f"  %\"c\" = icmp slt i64 %\"i\", {n * 4}\n  %\"f\" = fmul float %\"x\", {float(n)}\n")
        return f"define internal void @\"k0_fused\"(ptr %\".1\")\n{{\nentry:\n{body}  ret void\n}}\n"
    text = generalise_ir([module(n) for n in PROBES], PROBES)
    assert "load i64, ptr @tf_batch" in text and "icmp slt i64 %\"i\", %tf." in text and "sitofp" in text
    with pytest.raises(SymbolicUnsupported, match="fused .*a size in a type or constant"):
        generalise_ir([module(n, vector=True) for n in PROBES], PROBES)
