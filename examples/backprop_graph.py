"""Backpropagation on a computational graph: the course's worked example.

    z = (x1 + x2) (x2 - x3)

tensorforge records the forward computation as a graph, and ``tg.grad`` adds
the backward pass to the *same* graph as new nodes (each op contributes only
its local derivative: add passes the gradient through, mul swaps its operands,
and x2, used twice, adds up the two gradients that reach it). This example
prints both graphs and checks the gradients against the hand-derived ones:

    dz/dx1 = x2 - x3,   dz/dx2 = x1 + 2 x2 - x3,   dz/dx3 = -x1 - x2

Run: python examples/backprop_graph.py
"""
from __future__ import annotations

import numpy as np

import tensorforge as tg

POINTS = [(1.0, 2.0, 3.0), (-1.5, 0.5, 4.0), (2.0, -3.0, 0.25)]


def hand_derived_gradients(x1: float, x2: float, x3: float) -> tuple[float, float, float]:
    """The chain rule done on paper."""
    return x2 - x3, x1 + 2 * x2 - x3, -x1 - x2


def build():
    """The forward graph and its symbolic gradients."""
    g = tg.Graph("backprop")
    with g:
        x1, x2, x3 = (tg.placeholder(name, (), dtype="float64") for name in ("x1", "x2", "x3"))
        z = (x1 + x2) * (x2 - x3)
        grads = tg.grad(z, [x1, x2, x3])
    return g, (x1, x2, x3), z, grads


def main(points=POINTS, verbose: bool = True) -> list[dict]:
    """Print the graphs, evaluate z and its gradients at ``points``; return one record per point."""
    g, xs, z, grads = build()
    show = print if verbose else (lambda *a, **k: None)
    show("Forward graph of z = (x1 + x2)(x2 - x3):")
    if verbose:
        tg.dprint(z)
        print("\nBackward graph (the gradients, built from the forward nodes):")
        tg.dprint(grads)
    f = tg.compile(list(xs), [z] + grads)
    records = []
    show("\n   x1     x2     x3  |      z  | dz/dx1 (hand) | dz/dx2 (hand) | dz/dx3 (hand)")
    for point in points:
        z_value, *grad_values = (float(v) for v in f(*point))
        hand = hand_derived_gradients(*point)
        records.append({"point": point, "z": z_value, "grads": tuple(grad_values), "hand": hand})
        cells = " | ".join(f"{a:6.2f} ({b:6.2f})" for a, b in zip(grad_values, hand))
        show(f"{point[0]:5.2f}  {point[1]:5.2f}  {point[2]:5.2f}  | {z_value:6.2f}  | {cells}")
    agree = all(np.allclose(r["grads"], r["hand"]) for r in records)
    show(f"\ntg.grad agrees with the hand-derived gradients: {agree}")
    return records


if __name__ == "__main__":
    main()
