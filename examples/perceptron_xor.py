"""The perceptron learns AND and OR but not XOR; a one-hidden-layer MLP learns XOR.

Perceptron: h(x) = heaviside(x·θ + b) (1 if the weighted sum is > 0, else 0),
trained one example at a time with the perceptron rule

    θ <- θ - α (ŷ - y) x,     b <- b - α (ŷ - y)

written as graph updates of a compiled step. The rule converges on linearly
separable data (AND, OR); XOR is not linearly separable, so no line gets all
four points right and the perceptron never reaches 4/4.

MLP: ŷ = σ(w·tanh(x W + c) + d), trained on binary cross-entropy (computed from
the logit z as softplus(z) - y z, which is stable) by plain gradient descent,
θ <- θ - ε ∇θ, with the gradients from tg.grad. It solves XOR (4/4).

Run: python examples/perceptron_xor.py
"""
from __future__ import annotations

import numpy as np

import tensorforge as tg

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
TARGETS = {
    "AND": np.array([0, 0, 0, 1], np.float32),
    "OR": np.array([0, 1, 1, 1], np.float32),
    "XOR": np.array([0, 1, 1, 0], np.float32),
}


# ---- the perceptron ----------------------------------------------------------------------

def perceptron(alpha: float = 0.1):
    """A compiled per-example training step and a compiled predictor, sharing θ and b."""
    g = tg.Graph("perceptron")
    with g:
        x = tg.placeholder("x", (2,))
        y = tg.placeholder("y", ())
        theta = tg.parameter("theta", np.zeros(2, np.float32))
        b = tg.parameter("b", np.zeros((), np.float32))
        y_hat = tg.heaviside(x @ theta + b)
        err = y_hat - y
        step = tg.compile([x, y], [y_hat], updates={theta: theta - alpha * err * x, b: b - alpha * err})
        xs = tg.placeholder("xs", (None, 2))
        predict = tg.compile([xs], [tg.heaviside(xs @ theta + b)])
    return step, predict, theta, b


def train_perceptron(target: np.ndarray, epochs: int = 25, alpha: float = 0.1) -> list[int]:
    """Train on the four points in order; return the number correct after each epoch."""
    step, predict, theta, b = perceptron(alpha)
    correct = []
    for _ in range(epochs):
        for xi, yi in zip(X, target):
            step(xi, yi)
        (pred,) = predict(X)
        correct.append(int(np.sum(pred == target)))
    return correct


# ---- the one-hidden-layer MLP ------------------------------------------------------------

def train_mlp(target: np.ndarray, hidden: int = 4, steps: int = 2000, lr: float = 1.0, seed: int = 0):
    """Full-batch gradient descent on BCE; return (predicted probabilities, final loss)."""
    rng = np.random.default_rng(seed)
    g = tg.Graph("mlp")
    with g:
        x = tg.placeholder("x", (None, 2))
        y = tg.placeholder("y", (None,))
        eps = tg.placeholder("lr", ())
        W = tg.parameter("W", rng.standard_normal((2, hidden)).astype(np.float32))
        c = tg.parameter("c", np.zeros(hidden, np.float32))
        w = tg.parameter("w", (rng.standard_normal(hidden) / np.sqrt(hidden)).astype(np.float32))
        d = tg.parameter("d", np.zeros((), np.float32))
        z = tg.tanh(x @ W + c) @ w + d
        loss = tg.mean(tg.softplus(z) - y * z)   # binary cross-entropy on the logit z
        params = [W, c, w, d]
        grads = tg.grad(loss, params)
        step = tg.compile([x, y, eps], [loss], updates={p: p - eps * gp for p, gp in zip(params, grads)})
        predict = tg.compile([x], [tg.sigmoid(z)])
    for _ in range(steps):
        (final_loss,) = step(X, target, lr)
    (prob,) = predict(X)
    return prob, float(final_loss)


def main(verbose: bool = True) -> dict:
    """Return {'perceptron': {task: correct per epoch}, 'mlp': {'prob', 'correct', 'loss'}}."""
    show = print if verbose else (lambda *a, **k: None)
    results = {"perceptron": {}}
    show("Perceptron (rule θ <- θ - α(ŷ - y)x), points correct out of 4 after each epoch:")
    for task, target in TARGETS.items():
        correct = train_perceptron(target)
        results["perceptron"][task] = correct
        show(f"  {task:3s}: best {max(correct)}/4, last {correct[-1]}/4   per epoch: {correct}")
    show("  XOR is not linearly separable: the perceptron never gets all four right.\n")

    prob, loss = train_mlp(TARGETS["XOR"])
    correct = int(np.sum((prob > 0.5) == TARGETS["XOR"]))
    results["mlp"] = {"prob": prob, "correct": correct, "loss": loss}
    show("One-hidden-layer MLP (tanh, sigmoid output, gradient descent) on XOR:")
    for xi, p, t in zip(X, prob, TARGETS["XOR"]):
        show(f"  x = {xi.astype(int)}  target {int(t)}  p(y=1) = {p:.3f}")
    show(f"  {correct}/4 correct, final cross-entropy {loss:.4f}")
    return results


if __name__ == "__main__":
    main()
