"""The course's PyTorch snippet, redone as a tensorforge graph.

    w1, w2 in R^{5x5}, x in R^5
    x1 = w1 x,   x2 = x + w2 x1,   x3 = w1 (x1 + x2),   q = ||x3||

w1 is used twice (in x1 and x3) and x1 twice (in x2 and x3), so the backward
pass must add up the gradients that reach them along several paths. tg.grad
does that on the graph; tests/test_examples.py compares the result with torch.

Run: python examples/pytorch_snippet_grad.py
"""
from __future__ import annotations

import numpy as np

import tensorforge as tg


def random_inputs(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w1": rng.standard_normal((5, 5)), "w2": rng.standard_normal((5, 5)), "x": rng.standard_normal(5)}


def build_q(w1, w2, x):
    """The snippet's forward computation, on graph tensors."""
    x1 = w1 @ x
    x2 = x + w2 @ x1
    x3 = w1 @ (x1 + x2)
    return tg.sqrt(tg.sum(x3 * x3))


def main(seed: int = 0, verbose: bool = True) -> dict[str, np.ndarray]:
    """Return the inputs, q, and the gradients dq/dw1, dq/dw2, dq/dx (float64)."""
    values = random_inputs(seed)
    g = tg.Graph("pytorch_snippet")
    with g:
        w1 = tg.parameter("w1", values["w1"])
        w2 = tg.parameter("w2", values["w2"])
        x = tg.placeholder("x", (5,), dtype="float64")
        q = build_q(w1, w2, x)
        grads = tg.grad(q, [w1, w2, x])
    q_value, g_w1, g_w2, g_x = tg.compile([x], [q] + grads)(values["x"])
    result = dict(values, q=q_value, grad_w1=g_w1, grad_w2=g_w2, grad_x=g_x)
    if verbose:
        print(f"q = ||x3|| = {float(q_value):.6f}")
        with np.printoptions(precision=4, suppress=True):
            for name in ("grad_w1", "grad_w2", "grad_x"):
                print(f"\n{name.replace('grad_', 'dq/d')} =\n{result[name]}")
        print(f"\nThe graph has {len(g)} nodes ({len(g.topological_order([q.id]))} forward).")
    return result


if __name__ == "__main__":
    main()
