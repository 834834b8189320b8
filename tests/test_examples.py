"""The course examples: import each, run its main(), and check the numbers it returns
against closed forms or torch.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_perceptron_learns_and_or_but_not_xor_and_the_mlp_learns_xor(capsys):
    results = load("perceptron_xor").main()
    per_epoch = results["perceptron"]
    assert per_epoch["AND"][-1] == 4 and per_epoch["OR"][-1] == 4
    assert max(per_epoch["XOR"]) < 4  # not linearly separable: never 4/4
    mlp = results["mlp"]
    assert mlp["correct"] == 4
    np.testing.assert_allclose(mlp["prob"], [0, 1, 1, 0], atol=0.05)
    assert mlp["loss"] < 0.05
    out = capsys.readouterr().out
    assert "XOR" in out and "4/4 correct" in out


def test_perceptron_rule_is_the_course_rule():
    """One step from θ = 0, b = 0 on a positive example: ŷ = 0, so θ <- θ + αx and b <- b + α."""
    module = load("perceptron_xor")
    step, predict, theta, b = module.perceptron(alpha=0.5)
    (y_hat,) = step(np.array([1.0, 2.0], np.float32), np.float32(1.0))
    assert y_hat == 0.0
    np.testing.assert_allclose(theta.value, [0.5, 1.0])
    np.testing.assert_allclose(b.value, 0.5)
    (y_hat,) = step(np.array([1.0, 2.0], np.float32), np.float32(1.0))  # now correct: no change
    assert y_hat == 1.0
    np.testing.assert_allclose(theta.value, [0.5, 1.0])


def test_backprop_graph_gradients_match_the_hand_derived_ones(capsys):
    records = load("backprop_graph").main()
    assert len(records) >= 3
    for r in records:
        x1, x2, x3 = r["point"]
        assert r["z"] == pytest.approx((x1 + x2) * (x2 - x3))
        np.testing.assert_allclose(r["grads"], [x2 - x3, x1 + 2 * x2 - x3, -x1 - x2])
        np.testing.assert_allclose(r["grads"], r["hand"])
    out = capsys.readouterr().out
    assert "placeholder 'x1'" in out and "mul(" in out and "True" in out


def test_pytorch_snippet_gradients_match_torch():
    r = load("pytorch_snippet_grad").main(verbose=False)
    w1, w2, x = (torch.tensor(r[k], requires_grad=True) for k in ("w1", "w2", "x"))
    x1 = w1 @ x
    x2 = x + w2 @ x1
    x3 = w1 @ (x1 + x2)
    q = x3.norm()
    g_w1, g_w2, g_x = torch.autograd.grad(q, [w1, w2, x])
    np.testing.assert_allclose(r["q"], q.item(), rtol=1e-12)
    np.testing.assert_allclose(r["grad_w1"], g_w1.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r["grad_w2"], g_w2.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r["grad_x"], g_x.numpy(), rtol=1e-10, atol=1e-12)


def test_sgd_fixed_step_variance_floor_and_decreasing_step_convergence():
    runs = 20000
    r = load("sgd_variance").main(eps_values=(0.5, 0.1), runs=runs, checkpoints=(10, 300), verbose=False)
    for eps, (mean, meansq, theory) in r["fixed"].items():
        assert theory == pytest.approx(eps / (2 - eps))
        assert abs(mean) < 5 * math.sqrt(theory / runs)  # E[θ_k] -> 0 (within 5 standard errors)
        assert meansq == pytest.approx(theory, rel=0.05)   # E[θ_k²] -> ε/(2-ε), not 0
    for k, (meansq, theory) in r["decreasing"].items():
        assert meansq == pytest.approx(1.0 / k, rel=0.05)  # the running mean: E[θ_k²] = 1/k -> 0
    assert r["decreasing"][300][0] < r["fixed"][0.1][1] / 10  # far below the fixed-step floor


def test_sgd_dataset_has_the_course_moments():
    data = load("sgd_variance").dataset()
    assert data.mean() == pytest.approx(0.0, abs=1e-12)
    assert np.mean(data ** 2) == pytest.approx(1.0)


def test_momentum_needs_about_sqrt_lambda_iterations_and_gd_about_lambda(capsys):
    lams = (10, 100, 1000)
    r = load("momentum_condition").main(lams=lams)
    gd, hb = r["gd"], r["momentum"]
    assert gd == r["gd_theory"]  # GD with step 2/(1+λ) follows the closed form exactly
    for lam, n_gd, n_hb in zip(lams, gd, hb):
        assert 6 < n_gd / lam < 8          # linear in λ: (1/2) ln(√2/tol) ≈ 7.08
        assert 5 < n_hb / math.sqrt(lam) < 15  # ~ √λ
        assert n_hb < n_gd
    assert gd[2] / gd[0] > 90          # λ x100 -> ~x100 iterations
    assert hb[2] / hb[0] < 15          # λ x100 -> ~x10 iterations
    assert "momentum" in capsys.readouterr().out
