"""Weight penalties (regularisers) as graph scalars, to add to a loss.

    l1(params, scale) = scale * Σ_p Σ |p|
    l2(params, scale) = scale / 2 * Σ_p Σ p²     (the course's (λ/2)‖θ‖²; its gradient is scale * p)

``params`` is a list of parameter tensors or a Module (then its ``weights()``: weight
matrices and kernels, not biases or normalisation scales, which are usually left
unpenalised). For plain SGD, ``l2`` with scale λ equals ``weight_decay=λ``; for adaptive
optimizers it does not (that is what AdamW's decoupled weight decay is about).
"""
from __future__ import annotations

from .. import ops
from typing import Iterable

from ..graph import Tensor
from .module import Module

__all__ = ["l1", "l2"]


def _tensors(params: Module | Iterable[Tensor]) -> list[Tensor]:
    ts = params.weights() if isinstance(params, Module) else list(params)
    if not ts:
        raise ValueError("penalty: no parameters given")
    for t in ts:
        if not isinstance(t, Tensor):
            raise TypeError(f"penalty: expected graph tensors, got {type(t).__name__}")
    return ts


def _total(terms: list[Tensor]) -> Tensor:
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def l1(params: Module | Iterable[Tensor], scale: float) -> Tensor:
    """scale * Σ|p| over every entry of every parameter (a graph scalar)."""
    ts = _tensors(params)
    return _total([ops.sum(ops.abs(p)) for p in ts]) * float(scale)


def l2(params: Module | Iterable[Tensor], scale: float) -> Tensor:
    """scale / 2 * Σ p² over every entry of every parameter (a graph scalar); gradient scale * p."""
    ts = _tensors(params)
    return _total([ops.sum(p * p) for p in ts]) * (float(scale) / 2.0)
