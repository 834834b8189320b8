"""SGD with a fixed step does not converge; with ε_k = 1/(k+1) it does.

The risk R(θ) = (1/N) Σ_i ½ (θ - θ_i)² over a data set with mean θ_i = 0 and
mean θ_i² = 1 is minimised at θ* = 0. SGD picks one i at random per step,

    θ <- θ - ε (θ - θ_i)        (the gradient of ½(θ - θ_i)²)

so θ_{k+1} = (1-ε) θ_k + ε θ_i. Taking expectations:
    E[θ_{k+1}]  = (1-ε) E[θ_k]                 -> 0
    E[θ_{k+1}²] = (1-ε)² E[θ_k²] + ε²          -> ε / (2 - ε)    (not 0!)
With ε_k = 1/(k+1) (Σ ε = ∞, Σ ε² < ∞) θ_k is the running mean of the samples
drawn, and E[θ_k²] = 1/k -> 0.

Many independent SGD runs are simulated at once: θ is a vector with one entry
per run, and the compiled step (built once, learning rate as an input, gradient
from tg.grad) advances all of them by one step.

Run: python examples/sgd_variance.py
"""
from __future__ import annotations

import numpy as np

import tensorforge as tg


def dataset(n: int = 100, seed: int = 0) -> np.ndarray:
    """N points with mean exactly 0 and mean square exactly 1."""
    d = np.random.default_rng(seed).standard_normal(n)
    d -= d.mean()
    return d / np.sqrt(np.mean(d * d))


def sgd_step(runs: int, theta0: float = 1.0):
    """A compiled step over ``runs`` independent runs: (samples θ_i, lr) -> updated θ."""
    g = tg.Graph("sgd")
    with g:
        theta = tg.parameter("theta", np.full(runs, theta0))            # one SGD run per entry
        sample = tg.placeholder("theta_i", (runs,), dtype="float64")    # the point each run drew
        lr = tg.placeholder("lr", (), dtype="float64")
        # each run's loss only involves its own θ, so the gradient of the sum is per run
        loss = tg.sum(0.5 * (theta - sample) ** 2)
        step = tg.compile([sample, lr], [], updates={theta: theta - lr * tg.grad(loss, theta)})
    return step, theta


def run_fixed_step(eps: float, steps: int, runs: int, data: np.ndarray, rng) -> tuple[float, float]:
    """(E[θ_k], E[θ_k²]) over the runs after ``steps`` SGD steps with fixed ε."""
    step, theta = sgd_step(runs)
    for _ in range(steps):
        step(data[rng.integers(0, len(data), runs)], eps)
    return float(theta.value.mean()), float(np.mean(theta.value ** 2))


def run_decreasing_step(checkpoints, runs: int, data: np.ndarray, rng) -> dict[int, float]:
    """E[θ_k²] at each checkpoint k with ε_k = 1/(k+1)."""
    step, theta = sgd_step(runs)
    out = {}
    for k in range(max(checkpoints)):
        step(data[rng.integers(0, len(data), runs)], 1.0 / (k + 1))
        if k + 1 in checkpoints:
            out[k + 1] = float(np.mean(theta.value ** 2))
    return out


def main(eps_values=(0.5, 0.2, 0.05), runs: int = 20000, checkpoints=(10, 100, 1000), seed: int = 0,
         verbose: bool = True) -> dict:
    """Return {'fixed': {ε: (E[θ], E[θ²], ε/(2-ε))}, 'decreasing': {k: (E[θ_k²], 1/k)}}."""
    show = print if verbose else (lambda *a, **k: None)
    rng = np.random.default_rng(seed)
    data = dataset()
    results = {"fixed": {}, "decreasing": {}}
    show(f"SGD on R(θ) = (1/N) Σ ½(θ-θ_i)², {runs} independent runs from θ_0 = 1")
    show("\nfixed step ε:     E[θ_k]    E[θ_k²]   theory ε/(2-ε)")
    for eps in eps_values:
        steps = int(np.ceil(20 / eps))  # (1-ε)^(2k) has decayed to ~e^-40 by then
        mean, meansq = run_fixed_step(eps, steps, runs, data, rng)
        results["fixed"][eps] = (mean, meansq, eps / (2 - eps))
        show(f"  ε = {eps:<5}  {mean:+9.4f}  {meansq:9.4f}   {eps / (2 - eps):9.4f}")
    show("\ndecreasing step ε_k = 1/(k+1):   E[θ_k²]    theory 1/k")
    for k, meansq in run_decreasing_step(checkpoints, runs, data, rng).items():
        results["decreasing"][k] = (meansq, 1.0 / k)
        show(f"  k = {k:<5}                     {meansq:9.5f}   {1.0 / k:9.5f}")
    show("\nA fixed step leaves a variance floor ε/(2-ε); the decreasing step converges to θ* = 0.")
    return results


if __name__ == "__main__":
    main()
