"""Gradient clipping by global norm, as graph expressions (or on NumPy arrays).

Same semantics as ``torch.nn.utils.clip_grad_norm_`` with the 2-norm: the total norm
is taken over all gradients together, and every gradient is multiplied by
``min(1, max_norm / (total_norm + 1e-6))``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..graph import Tensor
from ..ops import cast, minimum, sqrt
from ..ops import sum as tsum

__all__ = ["clip_by_global_norm", "global_norm"]

_EPS = 1e-6  # torch adds it to the norm so that a zero gradient does not divide by zero


def _is_symbolic(grads) -> bool:
    kinds = {isinstance(g, Tensor) for g in grads}
    if len(kinds) > 1:
        raise TypeError("clip_by_global_norm: mix of graph tensors and arrays; pass one kind")
    return kinds == {True}


def global_norm(grads: Sequence) -> Tensor | float:
    """sqrt(sum of every squared entry of every gradient)."""
    grads = list(grads)
    if not grads:
        raise ValueError("global_norm: no gradients given")
    if not _is_symbolic(grads):
        return float(np.sqrt(sum(np.sum(np.square(np.asarray(g, dtype=np.float64))) for g in grads)))
    dtype = grads[0].dtype
    total = None
    for g in grads:
        sq = tsum(g * g)
        sq = sq if sq.dtype == dtype else cast(sq, dtype)
        total = sq if total is None else total + sq
    return sqrt(total)


def clip_by_global_norm(grads: Sequence, max_norm: float) -> list:
    """Scale ``grads`` so that their global norm is at most ``max_norm``.

    Graph tensors in, graph tensors out (the scale is computed in the graph); NumPy
    arrays in, NumPy arrays out.
    """
    grads = list(grads)
    max_norm = float(max_norm)
    if max_norm < 0:
        raise ValueError(f"clip_by_global_norm: max_norm must be >= 0, got {max_norm}")
    if not grads:
        return []
    if not _is_symbolic(grads):
        scale = min(1.0, max_norm / (global_norm(grads) + _EPS))
        return [np.asarray(g) * np.asarray(scale, dtype=np.asarray(g).dtype) for g in grads]
    norm = global_norm(grads)
    scale = minimum(max_norm / (norm + _EPS), 1.0)
    return [g * (scale if scale.dtype == g.dtype else cast(scale, g.dtype)) for g in grads]
