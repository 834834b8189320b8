"""Draw docs/mlp_training_graph.svg and .png: the whole training graph of a small MLP
(forward pass, the backward pass built by tg.grad, and Adam's update rule).

Run: python tools/make_graph_picture.py [--engine auto|graphviz|matplotlib]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import tensorforge as tg
from tensorforge import nn, optim

DOCS = Path(__file__).resolve().parent.parent / "docs"


def mlp_training_graph() -> tg.Graph:
    """A 4-8-3 ReLU MLP with a cross-entropy loss and Adam updates, in a fresh graph."""
    g = tg.Graph("MLP training step: forward, backward (tg.grad), Adam")
    x = tg.placeholder("x", (None, 4), graph=g)
    y = tg.placeholder("y", (None,), dtype="int64", graph=g)
    model = nn.Sequential(nn.Dense(4, 8, seed=0), nn.ReLU(), nn.Dense(8, 3, seed=1))
    loss = tg.mean(tg.softmax_cross_entropy(model(x, training=True), y))
    optim.Adam(lr=1e-3).updates(loss, model.parameters(g))
    return g


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="auto", choices=("auto", "graphviz", "matplotlib"))
    args = parser.parse_args()
    graph = mlp_training_graph()
    for suffix in (".svg", ".png"):
        path = tg.export.draw(graph, DOCS / f"mlp_training_graph{suffix}", engine=args.engine)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
