"""Gradient descent slows down with the condition number; momentum much less so.

On R(θ) = ½ θ₁² + (λ/2) θ₂² (Hessian eigenvalues 1 and λ, condition number
κ = λ), we count the iterations needed to reach ||θ|| < 1e-6 from θ = (1, 1):

* gradient descent θ <- θ - ε ∇R with its best fixed step ε = 2/(1+λ): both
  coordinates shrink by (λ-1)/(λ+1) per step, so the count grows ~ (λ/2) ln(1/tol);
* heavy-ball momentum v <- α v - ε ∇R, θ <- θ + v with Polyak's optimal
  ε = 4/(1+√λ)², α = ((√λ-1)/(√λ+1))²: the count grows ~ √λ.

All values of λ run at once: θ is a (len(λ), 2) parameter, one row per problem,
with its own step sizes; gradients come from tg.grad and each step is one call
of a tg.compile'd function whose updates change θ (and v) in place.

Run: python examples/momentum_condition.py
"""
from __future__ import annotations

import math

import numpy as np

import tensorforge as tg

TOL = 1e-6


def build_problem(lams):
    """θ (one row per λ), the risk summed over rows, and the row norms ||θ||."""
    lams = np.asarray(lams, dtype=np.float64)
    curvature = np.stack([np.ones_like(lams), lams], axis=1)        # rows (1, λ)
    theta = tg.parameter("theta", np.ones((len(lams), 2)))
    risk = tg.sum(0.5 * tg.constant(curvature) * theta * theta)     # rows are independent problems
    norms = tg.sqrt(tg.sum(theta * theta, axis=1))
    return theta, risk, norms


def gd_step_size(lam):
    return 2.0 / (1.0 + lam)


def momentum_parameters(lam):
    """Polyak's optimal heavy-ball (α, ε) for eigenvalues in [1, λ]."""
    root = math.sqrt(lam)
    return ((root - 1) / (root + 1)) ** 2, 4.0 / (1 + root) ** 2


def gd_iterations_closed_form(lam) -> int:
    """||θ_k|| = √2 r^k with r = (λ-1)/(λ+1): the smallest k with √2 r^k < tol."""
    r = (lam - 1) / (lam + 1)
    return math.floor(math.log(TOL / math.sqrt(2)) / math.log(r)) + 1


def count_iterations(step, lams, max_iter: int) -> list[int]:
    """Call ``step`` (which returns the row norms *before* its update) until every row is below tol."""
    counts = [None] * len(lams)
    for k in range(max_iter):
        (norms,) = step()
        for i in np.flatnonzero(norms < TOL):
            if counts[i] is None:
                counts[i] = k
        if all(c is not None for c in counts):
            break
    return counts


def gradient_descent(lams, max_iter: int = 200_000) -> list[int]:
    g = tg.Graph("gd")
    with g:
        theta, risk, norms = build_problem(lams)
        eps = tg.constant(np.array([[gd_step_size(lam)] for lam in lams]))
        step = tg.compile([], [norms], updates={theta: theta - eps * tg.grad(risk, theta)})
    return count_iterations(step, lams, max_iter)


def heavy_ball(lams, max_iter: int = 200_000) -> list[int]:
    g = tg.Graph("momentum")
    with g:
        theta, risk, norms = build_problem(lams)
        v = tg.parameter("v", np.zeros((len(lams), 2)))
        alpha, eps = (tg.constant(np.array([[p] for p in col])) for col in zip(*map(momentum_parameters, lams)))
        v_new = alpha * v - eps * tg.grad(risk, theta)
        # updates are simultaneous, so θ's update uses v_new (the node), not the old v
        step = tg.compile([], [norms], updates={v: v_new, theta: theta + v_new})
    return count_iterations(step, lams, max_iter)


def main(lams=(10, 100, 1000, 10000), verbose: bool = True) -> dict:
    """Return {'lams', 'gd', 'momentum', 'gd_theory'} (iteration counts per λ)."""
    gd = gradient_descent(lams)
    hb = heavy_ball(lams)
    theory = [gd_iterations_closed_form(lam) for lam in lams]
    if verbose:
        print(f"Iterations to reach ||θ|| < {TOL:g} on R = ½θ₁² + (λ/2)θ₂², from θ = (1, 1)\n")
        print(f"{'λ':>7} | {'GD':>7} {'(theory)':>9} {'GD/λ':>6} | {'momentum':>8} {'mom/√λ':>7} | speed-up")
        for lam, n_gd, n_th, n_hb in zip(lams, gd, theory, hb):
            print(f"{lam:>7} | {n_gd:>7} {n_th:>9} {n_gd / lam:>6.2f} | {n_hb:>8} {n_hb / math.sqrt(lam):>7.2f} |"
                  f" {n_gd / n_hb:7.1f}x")
        print("\nGD grows linearly with λ (GD/λ ~ constant); momentum grows like √λ.")
    return {"lams": list(lams), "gd": gd, "momentum": hb, "gd_theory": theory}


if __name__ == "__main__":
    main()
