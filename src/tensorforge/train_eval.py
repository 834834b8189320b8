"""Losses, metrics and evaluation for ``tg.train``: what ``fit`` minimises and reports, and
``predict`` / ``evaluate`` with their evaluation functions (compiled once per model, input shape
and backend, cached on the model). Split from train.py, which re-exports the public names.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, Union, cast

import numpy as np
import numpy.typing as npt

from . import ops
from ._typing import Array
from .compile import CompiledFunction
from .compile import compile as _compile
from .graph import Graph, Tensor, placeholder

if TYPE_CHECKING:
    from .nn.module import Module

__all__ = ["accuracy", "default_backend", "evaluate", "predict", "Loss", "Metric"]

#: A loss by name ("cross_entropy", "mse", "bce") or a callable(outputs, targets) -> tensor
Loss = Union[str, Callable[[Tensor, Tensor], Tensor]]
#: A metric by name ("accuracy", "mae", "mse") or a callable(predictions, targets) -> number
Metric = Union[str, Callable[[Array, Array], float]]
MetricFn = Callable[[Array, Array], float]

CLASSIFICATION_LOSSES = ("cross_entropy", "softmax_cross_entropy", "ce")
BCE_LOSSES = ("bce", "binary_cross_entropy")
MSE_LOSSES = ("mse",)


# ---- losses and metrics --------------------------------------------------------------------

def _loss_kind(loss: Loss | None) -> str:
    if callable(loss):
        return "callable"
    if not isinstance(loss, str):
        raise TypeError(f"loss must be a name or a callable, got {type(loss).__name__}")
    key = loss.lower()
    if key in CLASSIFICATION_LOSSES:
        return "cross_entropy"
    if key in BCE_LOSSES:
        return "bce"
    if key in MSE_LOSSES:
        return "mse"
    raise ValueError(f"unknown loss {loss!r}; use 'cross_entropy', 'mse', 'bce' or a callable(pred, y)")


def _loss_tensor(loss: Loss | None, out: Tensor, y: Tensor) -> Tensor:
    """The unreduced loss of a batch (per sample or per element; a callable may return a scalar)."""
    kind = _loss_kind(loss)
    if callable(loss):
        return loss(out, y)
    if kind == "cross_entropy":
        if np.dtype(y.dtype).kind in "iu":
            return ops.softmax_cross_entropy(out, y)
        # one-hot (or soft) float targets: -Σ y log softmax
        return -ops.sum(y * ops.log_softmax(out, axis=-1), axis=-1)
    if kind == "bce":
        return ops.binary_cross_entropy(out, y)
    return ops.mse(out, y)


def _per_sample(l: Tensor) -> Tensor:
    """Average every axis but the first away (a scalar stays a scalar)."""
    if len(l.shape) <= 1:
        return l
    return ops.mean(l, axis=tuple(range(1, len(l.shape))))


def accuracy(pred: npt.ArrayLike, y: npt.ArrayLike, loss: Loss = "cross_entropy") -> float:
    """Fraction of correct predictions: argmax for class scores (integer or one-hot targets),
    logits > 0 for "bce", outputs > 0.5 otherwise."""
    pred, y = np.asarray(pred), np.asarray(y)
    kind = _loss_kind(loss) if not callable(loss) else "callable"
    if kind == "bce":
        return float(np.mean((pred > 0) == (y > 0.5)))
    if y.dtype.kind in "iu" and pred.ndim == y.ndim + 1:
        return float(np.mean(np.argmax(pred, axis=-1) == y))
    if pred.shape == y.shape and pred.ndim >= 2 and pred.shape[-1] > 1:
        return float(np.mean(np.argmax(pred, axis=-1) == np.argmax(y, axis=-1)))
    return float(np.mean((pred > 0.5) == (y > 0.5)))


def _metric_fns(metrics: Iterable[Metric] | None, loss: Loss) -> dict[str, MetricFn]:
    fns: dict[str, MetricFn] = {}
    for m in metrics or ():
        if callable(m):
            fns[getattr(m, "__name__", "metric")] = m
        elif m in ("accuracy", "acc"):
            fns["accuracy"] = lambda p, y: accuracy(p, y, loss)
        elif m == "mae":
            fns["mae"] = lambda p, y: float(np.mean(np.abs(p - y)))
        elif m == "mse":
            fns["mse"] = lambda p, y: float(np.mean((p - y) ** 2))
        else:
            raise ValueError(f"unknown metric {m!r}; use 'accuracy', 'mae', 'mse' or a callable(pred, y)")
    return fns


# ---- the backend training uses ------------------------------------------------------------

def default_backend(backend: str | None = None) -> str:
    """``backend``, or when None the one training should use: "llvm" (native code, the command
    line's default too) when llvmlite works here, else "interp". ``tg.compile`` keeps "interp" as
    its default: the interpreter is the reference every backend is checked against."""
    if backend is not None:
        return backend
    if "llvm" not in _DEFAULT_BACKEND:
        try:
            from .backends import get_backend
            get_backend("llvm")
            _DEFAULT_BACKEND["llvm"] = "llvm"
        except (ImportError, ValueError, RuntimeError, OSError):
            _DEFAULT_BACKEND["llvm"] = "interp"
    return _DEFAULT_BACKEND["llvm"]


_DEFAULT_BACKEND: dict[str, str] = {}


# ---- array preparation -------------------------------------------------------------------

def _as_inputs(data: npt.ArrayLike, dtype: str | None = None) -> Array:
    x = np.asarray(data)
    if dtype is not None:     # asked for explicitly (integer token ids for an Embedding)
        return x.astype(dtype, copy=False)
    if x.dtype.kind != "f":
        x = x.astype(np.float32)
    return x


def _as_targets(targets: npt.ArrayLike, loss: Loss, out_shape: Sequence[int | None],
                x_dtype: np.dtype[Any]) -> Array:
    """Targets with the dtype and rank the loss expects (int64 class labels for cross-entropy,
    float of the inputs' dtype otherwise; a trailing axis added for (N,) targets of (N, 1) outputs)."""
    y = np.asarray(targets)
    kind = _loss_kind(loss)
    if kind == "cross_entropy" and y.dtype.kind in "iub":
        return y.astype(np.int64)
    if kind == "callable" and y.dtype.kind in "iu":
        return y.astype(np.int64)
    y = y.astype(x_dtype)
    if y.ndim == len(out_shape) - 1 and out_shape[-1] == 1:
        y = y[..., None]
    return y


# ---- evaluation functions (cached per model) ---------------------------------------------

class _Evaluator:
    """The model in evaluation mode on placeholders of one graph, compiled for one backend."""

    def __init__(self, model: Module, x_ph: Tensor, y_ph: Tensor | None, loss: Loss | None, backend: str,
                 out: Tensor | None = None) -> None:
        self.x_ph, self.y_ph, self.loss = x_ph, y_ph, loss
        self.out = out if out is not None else model(x_ph, training=False)
        self.predict_fn = _compile([x_ph], [self.out], backend=backend, name="predict")
        self.eval_fn: CompiledFunction[list[Array]] | None = None
        if y_ph is not None:
            per_sample = _per_sample(_loss_tensor(loss, self.out, y_ph))
            self.eval_fn = _compile([x_ph, y_ph], [self.out, per_sample], backend=backend, name="eval_step")

    def predict(self, x: Array, batch_size: int) -> Array:
        outs = [self.predict_fn(xb)[0] for (xb,) in _chunks([x], batch_size)]
        # (a model's output has known sizes past the batch axis)
        rest = cast(tuple[int, ...], tuple(self.out.shape[1:]))
        return np.concatenate(outs, axis=0) if outs else np.zeros((0,) + rest)

    def evaluate(self, x: Array, y: Array, batch_size: int, metric_fns: dict[str, MetricFn]) -> dict[str, float]:
        if self.eval_fn is None:
            raise ValueError("evaluate: this evaluator was built without targets")
        outs: list[Array] = []
        total, n = 0.0, 0
        for xb, yb in _chunks([x, y], batch_size):
            out, l = self.eval_fn(xb, yb)
            outs.append(out)
            total += float(np.sum(l)) if np.ndim(l) else float(l) * len(xb)
            n += len(xb)
        pred = np.concatenate(outs, axis=0)
        result = {"loss": total / max(n, 1)}
        for name, fn in metric_fns.items():
            result[name] = float(fn(pred, y))
        return result


def _chunks(arrays: Sequence[Array], batch_size: int) -> Iterator[tuple[Array, ...]]:
    n = len(arrays[0])
    for start in range(0, n, batch_size):
        yield tuple(a[start:start + batch_size] for a in arrays)


def _loss_key(loss: Loss | None) -> object:
    return ("callable", id(loss)) if callable(loss) else _loss_kind(loss)


def _evaluator(model: Module, x: Array, y: Array | None, loss: Loss | None, backend: str) -> _Evaluator:
    """A cached evaluator for inputs like ``x`` (and targets like ``y``), built in the graph that
    holds the model's current parameters (a new graph if the model was never built)."""
    graph = model.graph or Graph("predict")
    cache = _evaluator_cache(model, graph)
    base = (id(graph), x.shape[1:], x.dtype.name, str(backend))
    pred_ev = cache.get(base + (None, None))
    if pred_ev is None:
        x_ph = placeholder(_free_name(graph, "eval_x"), (None,) + x.shape[1:], dtype=x.dtype.name, graph=graph)
        pred_ev = cache[base + (None, None)] = _Evaluator(model, x_ph, None, None, backend)
    if y is None:
        return pred_ev
    key = base + ((y.shape[1:], y.dtype.name), _loss_key(loss))
    if key not in cache:
        y_ph = placeholder(_free_name(graph, "eval_y"), (None,) + y.shape[1:], dtype=y.dtype.name, graph=graph)
        cache[key] = _Evaluator(model, pred_ev.x_ph, y_ph, loss, backend, out=pred_ev.out)
    found: _Evaluator = cache[key]
    return found


def _evaluator_cache(model: Module, graph: Graph) -> dict[tuple[Any, ...], _Evaluator]:
    """The model's evaluators, keeping only those of ``graph`` (the one holding its current
    parameters): evaluators of older graphs would only keep those graphs alive."""
    cache: dict[tuple[Any, ...], _Evaluator] = model.__dict__.setdefault("_tf_evaluators", {})
    for key in [k for k in cache if k[0] != id(graph)]:
        del cache[key]
    return cache


def _free_name(graph: Graph, stem: str) -> str:
    k = 0
    while f"{stem}{k}" in graph._names:
        k += 1
    return f"{stem}{k}"


def predict(model: Module, x: npt.ArrayLike, batch_size: int = 256, backend: str | None = None,
            input_dtype: str | None = None) -> Array:
    """The model's outputs (evaluation mode) for every row of ``x``, computed in batches
    (``input_dtype``: as in ``fit``)."""
    backend = default_backend(backend)
    xa = _as_inputs(x, input_dtype)
    return _evaluator(model, xa, None, None, backend).predict(xa, batch_size)


def evaluate(model: Module, x: npt.ArrayLike, y: npt.ArrayLike, loss: Loss = "cross_entropy",
             metrics: Iterable[Metric] | None = ("accuracy",), batch_size: int = 256,
             backend: str | None = None, input_dtype: str | None = None) -> dict[str, float]:
    """{"loss": mean per-sample loss, <metric>: value, ...} of the model in evaluation mode
    (``input_dtype``: as in ``fit``)."""
    backend = default_backend(backend)
    xa = _as_inputs(x, input_dtype)
    ev0 = _evaluator(model, xa, None, None, backend)
    ya = _as_targets(y, loss, ev0.out.shape, xa.dtype)
    return _evaluator(model, xa, ya, loss, backend).evaluate(xa, ya, batch_size, _metric_fns(metrics, loss))
