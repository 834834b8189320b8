"""Debug mode: tg.compile(..., check=True) runs the interpreter beside the backend and names the
first node whose compiled value differs (tensorforge/debug.py)."""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.debug import CheckError, difference


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A private disk cache: a broken kernel must be compiled, not served from an earlier build."""
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path))


@pytest.fixture
def broken_tanh(monkeypatch, fresh_cache):
    """LLVM lowers tanh(x) as 1.5 * x: a deliberately wrong scalar kernel."""
    from tensorforge.backends.llvm import scalar, vecmath
    monkeypatch.setattr(vecmath, "tanh", lambda b, x: b.fmul(x, x.type(1.5)))
    return scalar


def _model():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 4))
        W = tg.parameter("W", np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
        h = tg.exp(x @ W) * 0.5
        t = tg.tanh(h)                      # the node the broken kernel computes
        out = tg.sum(t + h, axis=1)
        loss = tg.mean(out * out)
        (gW,) = tg.grad(loss, [W])
    return x, W, h, t, out, loss, gW


def test_broken_kernel_names_first_differing_node(broken_tanh):
    x, W, h, t, out, loss, gW = _model()
    step = tg.compile([x], [out], backend="llvm", check=True)
    with pytest.raises(CheckError) as err:
        step(np.full((2, 4), 0.1, np.float32))
    msg = str(err.value)
    assert f"node %{t.id} {t.name!r} (op tanh" in msg, msg
    assert "output 0" in msg and "max abs diff" in msg and "(2, 3) float32" in msg


def test_broken_kernel_in_an_update_is_found_and_parameters_updated_once(broken_tanh):
    x, W, h, t, out, loss, gW = _model()
    w0 = W.value.copy()
    step = tg.compile([x], [], updates=[(W, W - 0.1 * gW)], backend="llvm", check=True)
    with pytest.raises(CheckError) as err:
        step(np.full((2, 4), 0.1, np.float32))
    assert "update of parameter 'W'" in str(err.value)
    assert f"node %{t.id} " in str(err.value)
    # the step itself ran once, on the backend: W holds the (wrong) compiled update, not the probes'
    unchecked = tg.compile([x], [], updates=[(W, W - 0.1 * gW)], backend="llvm")
    W.value = w0
    unchecked(np.full((2, 4), 0.1, np.float32))
    expected = W.value.copy()
    W.value = w0
    with pytest.raises(CheckError):
        step(np.full((2, 4), 0.1, np.float32))
    np.testing.assert_array_equal(W.value, expected)


@pytest.mark.parametrize("backend", ["interp", "llvm", "triton"])
def test_check_mode_on_a_correct_step_gives_the_same_results_and_updates(backend, fresh_cache):
    xs = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    results = {}
    for check in (False, True):
        x, W, h, t, out, loss, gW = _model()
        step = tg.compile([x], [loss, out], updates=[(W, W - 0.1 * gW)], backend=backend, check=check)
        got = [step(xs) for _ in range(3)]
        results[check] = (got, W.value.copy())
    (a, wa), (b, wb) = results[False], results[True]
    for ra, rb in zip(a, b):
        for u, v in zip(ra, rb):
            np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(wa, wb)


def test_difference_requires_nan_and_inf_at_the_same_places():
    assert difference(np.array([1.0, np.nan], np.float32), np.array([1.0, np.nan], np.float32))[0]
    assert not difference(np.array([1.0, np.inf], np.float32), np.array([1.0, np.nan], np.float32))[0]
    assert not difference(np.array([1.0, 2.0], np.float32), np.array([1.0, 2.1], np.float32))[0]
    assert difference(np.array([1000.0, 1e-3], np.float32), np.array([1000.0, 1.01e-3], np.float32))[0]


@pytest.mark.parametrize("backend", ["llvm", "triton"])
def test_check_mode_accepts_correct_random_graphs(backend, fresh_cache):
    """No false alarms: random graphs that agree with the reference pass check mode too."""
    from tensorforge.fuzz import check_case, features_for
    outcomes = [check_case(seed, [backend], features_for(backend), check_mode=True)[0] for seed in range(30)]
    assert all(o.status in ("ok", "imprecise", "explained") for o in outcomes), [
        o.describe() for o in outcomes if o.failed][:2]
