"""A typed user script: what a user of tensorforge writes, checked with ``mypy --strict``.

tests/test_typing.py type-checks it (no errors allowed) and compares every ``reveal_type``
below with the type written in its ``# expect:`` comment (a trailing ``...`` matches any rest),
so that an ``Any`` slipping into a public signature fails the test rather than passing silently.
It also runs the script with Python: the reveal_type calls are only seen by the checker.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import tensorforge as tg

if TYPE_CHECKING:
    from typing import reveal_type


def build_and_train() -> float:
    rng = np.random.default_rng(0)
    xb = rng.standard_normal((8, 4)).astype(np.float32)
    yb = rng.integers(0, 3, size=8)

    g = tg.Graph("typed")
    with g:
        x = tg.placeholder("x", (None, 4))
        y = tg.placeholder("y", (None,), dtype="int64")
        W = tg.parameter("W", tg.init.he_normal((4, 3), seed=0))
        b = tg.parameter("b", np.zeros(3, np.float32))
        logits = tg.relu(x @ W + b) * 2.0 - 1
        loss = tg.mean(tg.softmax_cross_entropy(logits, y))
        gW, gb = tg.grad(loss, [W, b])
        g_one = tg.grad(loss, W)
        updates = tg.optim.Adam(lr=1e-2).updates(loss, [W, b])
        if TYPE_CHECKING:
            reveal_type(x)  # expect: tensorforge.graph.Tensor
            reveal_type(x + 1)  # expect: tensorforge.graph.Tensor
            reveal_type(1 + x)  # expect: tensorforge.graph.Tensor
            reveal_type(x @ W)  # expect: tensorforge.graph.Tensor
            reveal_type(x == 0)  # expect: tensorforge.graph.Tensor
            reveal_type(x[0, 1:])  # expect: tensorforge.graph.Tensor
            reveal_type(x.sum(axis=1))  # expect: tensorforge.graph.Tensor
            reveal_type(x.reshape(-1, 2))  # expect: tensorforge.graph.Tensor
            reveal_type(x.T)  # expect: tensorforge.graph.Tensor
            reveal_type(x.shape)  # expect: tuple[int | None, ...]
            reveal_type(W.value)  # expect: numpy.ndarray[...
            reveal_type(loss)  # expect: tensorforge.graph.Tensor
            reveal_type(gW)  # expect: tensorforge.graph.Tensor
            reveal_type(g_one)  # expect: tensorforge.graph.Tensor
            reveal_type(tg.grad(loss, [W, b]))  # expect: list[tensorforge.graph.Tensor]
            reveal_type(updates)  # expect: list[tuple[tensorforge.graph.Tensor, tensorforge.graph.Tensor]]

    step = tg.compile([x, y], [loss, logits], updates=updates, name="step")
    scalar_loss = tg.compile([x, y], loss)
    loss_value, out = step(xb, yb)
    first = scalar_loss(x=xb, y=yb)
    if TYPE_CHECKING:
        reveal_type(step)  # expect: tensorforge.compile.CompiledFunction[list[numpy.ndarray[...
        reveal_type(scalar_loss)  # expect: tensorforge.compile.CompiledFunction[numpy.ndarray[...
        reveal_type(step(xb, yb))  # expect: list[numpy.ndarray[...
        reveal_type(first)  # expect: numpy.ndarray[...
    assert out.shape == (8, 3) and np.isfinite(float(loss_value)) and np.isfinite(float(first))
    return float(first)


def train_a_layer() -> float:
    x_train, y_train = tg.data.two_spirals(n=32, seed=0)
    model = tg.nn.Sequential(tg.nn.Dense(2, 8, seed=0), tg.nn.ReLU(), tg.nn.Dense(8, 2, seed=1))
    history = tg.train.fit(model, x_train, y_train, optimizer=tg.optim.SGD(lr=0.1, momentum=0.9), epochs=2,
                           batch_size=16, backend="interp", progress=False, verbose=False)
    predictions = tg.train.predict(model, x_train, backend="interp")
    with tg.Graph("layer"):
        h = tg.nn.Dense(2, 3)(tg.placeholder("h", (None, 2)))
        if TYPE_CHECKING:
            reveal_type(h)  # expect: tensorforge.graph.Tensor
    if TYPE_CHECKING:
        reveal_type(model)  # expect: tensorforge.nn.layers.Sequential
        reveal_type(history)  # expect: tensorforge.train.History
        reveal_type(history["loss"])  # expect: list[float]
        reveal_type(predictions)  # expect: numpy.ndarray[...
    assert predictions.shape == (64, 2) and len(history["loss"]) == 2
    return history["loss"][-1]


def export_a_graph() -> str:
    with tg.Graph("export") as g:
        x = tg.placeholder("x", (None, 3))
        w = tg.parameter("w", np.ones((3, 1), np.float32))
        y = tg.sigmoid(x @ w)
        dot = tg.export.to_dot(g)
        with tempfile.TemporaryDirectory() as folder:
            path = tg.export.save(Path(folder) / "model.json", y, [x])
            if TYPE_CHECKING:
                reveal_type(dot)  # expect: str
                reveal_type(path)  # expect: pathlib.Path
            assert path.exists()
    return dot


if __name__ == "__main__":
    print(build_and_train(), train_a_layer(), len(export_a_graph()))
