"""``CompiledFunction.profile``: per-kernel timings that add up, name the real hot spot, and leave
the parameters as they were."""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.profiler import KernelTime, Profile

BACKENDS = ["interp", "llvm", "triton"]


def _train_step(backend, n_in=48, n_hidden=32, batch=16, seed=0):
    rng = np.random.default_rng(seed)
    with tg.Graph():
        x = tg.placeholder("x", (None, n_in))
        y = tg.placeholder("y", (None,), dtype="int64")
        w1 = tg.parameter("w1", (rng.standard_normal((n_in, n_hidden)) * 0.2).astype(np.float32))
        b1 = tg.parameter("b1", np.zeros(n_hidden, np.float32))
        w2 = tg.parameter("w2", (rng.standard_normal((n_hidden, 10)) * 0.2).astype(np.float32))
        loss = tg.mean(tg.softmax_cross_entropy(tg.relu(x @ w1 + b1) @ w2, y))
        params = [w1, b1, w2]
        updates = tg.optim.Adam(lr=0.01).updates(loss, params)
        fn = tg.compile([x, y], loss, updates=updates, backend=backend)
    feeds = (rng.standard_normal((batch, n_in)).astype(np.float32), rng.integers(0, 10, batch))
    return fn, params, feeds


@pytest.mark.parametrize("backend", BACKENDS)
def test_profile_restores_parameters_and_training_goes_on_unchanged(backend):
    fn, params, feeds = _train_step(backend)
    ref_fn, ref_params, _ = _train_step("interp")
    for f in (fn, ref_fn):
        f(*feeds)
    before = [p.value.copy() for p in params]
    profile = fn.profile(*feeds, steps=3, warmup=1)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.value, b)
    # the next real step continues from the restored state: it agrees with the interpreter's second step
    np.testing.assert_allclose(fn(*feeds), ref_fn(*feeds), rtol=1e-5)
    for p, r in zip(params, ref_params):
        np.testing.assert_allclose(p.value, r.value, rtol=1e-4, atol=1e-6)
    assert profile.steps == 3 and profile.backend == backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_profile_has_one_row_per_kernel_and_times_add_up(backend):
    fn, _, feeds = _train_step(backend)
    fn(*feeds)
    profile = fn.profile(*feeds, steps=5)
    exe = list(fn._cache.values())[0]
    if backend == "llvm":
        kernels = exe.manifest["kernels"]
    elif backend == "triton":
        kernels = exe._low.kernels
    else:
        kernels = [line for line, _ in exe.timed_call([np.asarray(f) for f in feeds])[1]]
    # llvm and triton add one row for the update copies after the kernels
    expected = len(kernels) + (1 if backend != "interp" else 0)
    assert len(profile.kernels) == expected
    assert [k.kernel for k in profile.kernels][:len(kernels)] == list(kernels)
    assert all(k.seconds >= 0 for k in profile.kernels)
    # the kernels run inside the timed step, so together they cannot take longer than it
    assert 0 < profile.kernel_seconds <= profile.step_seconds * 1.05


@pytest.mark.parametrize("backend", ["interp", "llvm"])
def test_profile_finds_the_dominant_kernel(backend):
    """A 192^3 matmul next to two tiny elementwise ops: the matmul must top the profile."""
    rng = np.random.default_rng(1)
    with tg.Graph():
        a = tg.placeholder("a", (192, 192))
        b = tg.placeholder("b", (192, 192))
        c = tg.placeholder("c", (4,))
        fn = tg.compile([a, b, c], [a @ b, tg.exp(c) * 2.0], backend=backend)
    feeds = [rng.standard_normal(s).astype(np.float32) for s in ((192, 192), (192, 192), (4,))]
    profile = fn.profile(*feeds, steps=5)
    top = profile.top(1)[0]
    assert "matmul" in top.kernel
    assert top.seconds > 0.5 * profile.kernel_seconds


def test_profile_table_and_bad_arguments():
    fn, _, feeds = _train_step("llvm")
    profile = fn.profile(*feeds, steps=2)
    text = str(profile)
    assert text.startswith("profile of step on llvm: 2 steps")
    assert "matmul" in text
    with pytest.raises(ValueError, match="steps"):
        fn.profile(*feeds, steps=0)
    with pytest.raises(tg.InputError, match="'x'"):
        fn.profile(np.zeros((3, 5), np.float32), feeds[1])


def test_profile_from_runs_averages_over_steps():
    runs = [[("k0", 1.0), ("k1", 3.0)], [("k0", 3.0), ("k1", 5.0)]]
    p = Profile.from_runs("f", "llvm", runs, wall_seconds=20.0)
    assert p.kernels == (KernelTime("k0", 2.0), KernelTime("k1", 4.0))
    assert p.step_seconds == 10.0 and p.kernel_seconds == 6.0
    assert [k.kernel for k in p.top(1)] == ["k1"]
