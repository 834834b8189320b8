"""Scaled dot-product attention as in ``torch.nn.functional.scaled_dot_product_attention``.

A composition of matmul, where/add, softmax and dropout: it differentiates through
autodiff, runs on every backend, and the elementwise work around the two matmuls
(scaling, masking, the softmax epilogue) fuses.
"""
from __future__ import annotations

import math

import numpy as np

from .._typing import TensorLike
from ..graph import Tensor, as_tensor, constant
from .linalg import matmul
from .nn import dropout
from .reduce import softmax
from .registry import ShapeError, apply, broadcast_shapes
from .shape import transpose


def _swap_last(t: Tensor) -> Tensor:
    nd = len(t.shape)
    return transpose(t, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, t in (("query", q), ("key", k), ("value", v)):
        if len(t.shape) < 2:
            raise ShapeError(f"scaled_dot_product_attention: {name} must be (..., L, E), got {t.shape}")
        if np.dtype(t.dtype).kind != "f":
            raise TypeError(f"scaled_dot_product_attention: {name} must be floating point, got {t.dtype}")
    e_q, e_k = q.shape[-1], k.shape[-1]
    if e_q is not None and e_k is not None and e_q != e_k:
        raise ShapeError(f"scaled_dot_product_attention: query {q.shape} and key {k.shape} must share "
                         f"the embedding size (last axis)")
    s_k, s_v = k.shape[-2], v.shape[-2]
    if s_k is not None and s_v is not None and s_k != s_v:
        raise ShapeError(f"scaled_dot_product_attention: key {k.shape} and value {v.shape} must have the "
                         f"same source length (axis -2)")


def _apply_mask(scores: Tensor, mask: Tensor) -> Tensor:
    try:
        broadcast_shapes(mask.shape, scores.shape)
    except ShapeError:
        raise ShapeError(f"scaled_dot_product_attention: attn_mask {mask.shape} does not broadcast with "
                         f"the attention scores {scores.shape}") from None
    if mask.dtype == "bool":                       # keep where True
        return apply("where", [mask, scores, -math.inf])
    if np.dtype(mask.dtype).kind != "f":
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be bool or float, got {mask.dtype}")
    return scores + mask


def scaled_dot_product_attention(query: TensorLike, key: TensorLike, value: TensorLike,
                                 attn_mask: TensorLike | None = None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None, seed: int = 0) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value, as torch's scaled_dot_product_attention.

    query is (..., L, E), key (..., S, E) and value (..., S, Ev), with broadcasting batch/head
    axes; ``scale`` defaults to 1/sqrt(E).

    ``attn_mask``: bool (keep where True) or float (added to the scores), broadcasting to
    (..., L, S). ``is_causal`` keeps the lower triangle (query i sees keys j <= i); it cannot
    be combined with a mask, as in torch. ``dropout_p`` drops attention weights (inverted
    dropout, counter-based mask of ``seed``); pass 0 in evaluation. A row whose every key is
    masked gives NaN, as torch's reference math does."""
    q = as_tensor(query)
    k, v = as_tensor(key, like=q), as_tensor(value, like=q)
    _check_qkv(q, k, v)
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give either attn_mask or is_causal=True, not both")
    e = q.shape[-1]
    if scale is None:
        if e is None:
            raise ShapeError(f"scaled_dot_product_attention: the embedding size of query {q.shape} must be "
                             "known to derive the default scale (or pass scale=)")
        scale = 1.0 / math.sqrt(e)
    scores = matmul(q, _swap_last(k)) * float(scale)
    if is_causal:
        length, source = q.shape[-2], k.shape[-2]
        if length is None or source is None:
            raise ShapeError("scaled_dot_product_attention: is_causal needs known sequence lengths, "
                             f"got query {q.shape} and key {k.shape}")
        tril = np.tril(np.ones((length, source), dtype=bool))
        scores = apply("where", [constant(tril, graph=q.graph), scores, -math.inf])
    elif attn_mask is not None:
        if not isinstance(attn_mask, Tensor) and np.asarray(attn_mask).dtype.kind == "f":
            attn_mask = np.asarray(attn_mask, dtype=q.dtype)     # a NumPy mask must not promote q
        mask = as_tensor(attn_mask, graph=q.graph)
        scores = _apply_mask(scores, mask)
    weights = softmax(scores, -1)
    if dropout_p:
        weights = dropout(weights, float(dropout_p), seed=seed, training=True)
    return matmul(weights, v)

