"""Gradient clipping by global norm, as graph expressions (or on NumPy arrays).

Same semantics as ``torch.nn.utils.clip_grad_norm_`` with the 2-norm: the total norm
is taken over all gradients together, and every gradient is multiplied by
``min(1, max_norm / (total_norm + 1e-6))``.
"""
from __future__ import annotations

from typing import Sequence, overload

import numpy as np
import numpy.typing as npt

from .._typing import Array
from ..graph import Tensor
from ..ops import cast, minimum, sqrt
from ..ops import sum as tsum

__all__ = ["clip_by_global_norm", "global_norm"]

_EPS = 1e-6  # torch adds it to the norm so that a zero gradient does not divide by zero


def _is_symbolic(grads: Sequence[object]) -> bool:
    kinds = {isinstance(g, Tensor) for g in grads}
    if len(kinds) > 1:
        raise TypeError("clip_by_global_norm: mix of graph tensors and arrays; pass one kind")
    return kinds == {True}


@overload
def global_norm(grads: Sequence[Tensor]) -> Tensor: ...
@overload
def global_norm(grads: Sequence[npt.ArrayLike]) -> float: ...
def global_norm(grads: Sequence[Tensor] | Sequence[npt.ArrayLike]) -> Tensor | float:
    """sqrt(sum of every squared entry of every gradient)."""
    given = list(grads)
    if not given:
        raise ValueError("global_norm: no gradients given")
    if not _is_symbolic(given):
        return float(np.sqrt(sum(np.sum(np.square(np.asarray(g, dtype=np.float64))) for g in given)))
    tensors = [g for g in given if isinstance(g, Tensor)]  # all of them (_is_symbolic)
    dtype = tensors[0].dtype
    total: Tensor | None = None
    for g in tensors:
        sq = tsum(g * g)
        sq = sq if sq.dtype == dtype else cast(sq, dtype)
        total = sq if total is None else total + sq
    assert total is not None
    return sqrt(total)


@overload
def clip_by_global_norm(grads: Sequence[Tensor], max_norm: float) -> list[Tensor]: ...
@overload
def clip_by_global_norm(grads: Sequence[npt.ArrayLike], max_norm: float) -> list[Array]: ...
def clip_by_global_norm(grads: Sequence[Tensor] | Sequence[npt.ArrayLike],
                        max_norm: float) -> list[Tensor] | list[Array]:
    """Scale ``grads`` so that their global norm is at most ``max_norm``.

    Graph tensors in, graph tensors out (the scale is computed in the graph); NumPy
    arrays in, NumPy arrays out.
    """
    given = list(grads)
    max_norm = float(max_norm)
    if max_norm < 0:
        raise ValueError(f"clip_by_global_norm: max_norm must be >= 0, got {max_norm}")
    if not given:
        return []
    if not _is_symbolic(given):
        arrays = [np.asarray(g) for g in given]
        factor = min(1.0, max_norm / (global_norm(arrays) + _EPS))
        return [a * np.asarray(factor, dtype=a.dtype) for a in arrays]
    tensors = [g for g in given if isinstance(g, Tensor)]  # all of them (_is_symbolic)
    norm = global_norm(tensors)
    scale = minimum(max_norm / (norm + _EPS), 1.0)
    return [g * (scale if scale.dtype == g.dtype else cast(scale, g.dtype)) for g in tensors]
