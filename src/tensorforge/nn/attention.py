"""MultiheadAttention and TransformerEncoderLayer, with torch's constructors and parameter names.

MultiheadAttention keeps torch's packed input projection: ``in_proj_weight``
(3·E, E) and ``in_proj_bias`` (3·E) hold the query, key and value projections in
that order, and ``out_proj`` is a Dense layer (torch's ``out_proj.weight`` (E, E) is
loaded transposed by ``from_torch_state_dict``). TransformerEncoderLayer holds
``self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2`` as torch does, so a
torch state_dict loads as is. Both take ``batch_first`` like torch (default False:
(L, N, E) inputs); with ``batch_first=True`` inputs are (N, L, E).

Masks follow torch: a boolean ``attn_mask`` (L, S) or ``key_padding_mask`` (N, S)
marks with True the positions that may NOT be attended to; a float mask is added
to the attention scores. Masks may be NumPy arrays or graph tensors.
"""
from __future__ import annotations

import math
import weakref
import zlib
from typing import Callable

import numpy as np

from .. import init as initializers
from .. import ops
from .._typing import TensorLike
from ..graph import Tensor, constant, format_shape
from ..ops.registry import ShapeError
from .layers import Dense, Dropout, LayerNorm, _param_dtype
from .module import Module, ParamSpec, _known_dims

__all__ = ["MultiheadAttention", "TransformerEncoderLayer"]


def _swap_last(t: Tensor) -> Tensor:
    axes = list(range(len(t.shape)))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return ops.transpose(t, tuple(axes))


def _additive(mask: TensorLike, like: Tensor) -> Tensor:
    """A torch-convention mask (bool: True = masked out; float: added) as an additive float tensor."""
    if not isinstance(mask, Tensor):
        array = np.asarray(mask)
        if array.dtype == np.bool_:
            array = np.where(array, -np.inf, 0.0)
        return constant(array.astype(like.dtype), graph=like.graph)
    if np.dtype(mask.dtype) == np.bool_:
        def scalar(v: float) -> Tensor:
            return constant(np.array(v, like.dtype), graph=like.graph)
        return ops.where(mask, scalar(-np.inf), scalar(0.0))
    return mask


class MultiheadAttention(Module):
    """Multi-head scaled dot-product attention, as torch.nn.MultiheadAttention.

    ``mha(query, key=None, value=None, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(output, weights)`` like torch: output
    (N, L, E) (batch_first) and the attention weights (N, L, S), averaged over heads (or
    (N, heads, L, S)), or None when ``need_weights=False``. key and value default to query.
    ``dropout`` drops attention weights in training mode.
    """

    kind = "multiheadattention"

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, seed: int = 0, name: str | None = None) -> None:
        super().__init__(name)
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        if self.num_heads < 1 or self.embed_dim % self.num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not supported")
        if kdim not in (None, embed_dim) or vdim not in (None, embed_dim):
            raise NotImplementedError("MultiheadAttention: kdim/vdim different from embed_dim are not supported")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1), got {dropout}")
        self.dropout, self.bias, self.batch_first, self.seed = float(dropout), bool(bias), bool(batch_first), seed
        # torch's out_proj: default Linear weight, zero bias
        self.out_proj = Dense(embed_dim, embed_dim, bias=bias, init=initializers.torch_default, seed=seed + 1)

    # torch's signature and (output, weights) result, unlike Module.__call__'s (x, training) -> Tensor
    def __call__(self, query: Tensor, key: Tensor | None = None,  # type: ignore[override]
                 value: Tensor | None = None, key_padding_mask: TensorLike | None = None,
                 need_weights: bool = True, attn_mask: TensorLike | None = None,
                 average_attn_weights: bool = True, is_causal: bool = False,
                 training: bool | None = None) -> tuple[Tensor, Tensor | None]:
        if not isinstance(query, Tensor):
            raise TypeError(f"MultiheadAttention expects graph Tensors, got {type(query).__name__}")
        key = query if key is None else key
        value = key if value is None else value
        training = self.training if training is None else bool(training)
        out = self._attend(query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights,
                           is_causal, training)
        self._latest = weakref.ref(query.graph)
        return out

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return self(x, need_weights=False, training=training)[0]

    def _check(self, t: Tensor, what: str) -> None:
        if len(t.shape) != 3 or t.shape[2] not in (None, self.embed_dim):
            layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
            raise ShapeError(f"{self!r}: {what} must be {layout} with E={self.embed_dim}, got "
                             f"{format_shape(t.shape)}")
        if t.shape[1 if self.batch_first else 0] is None:
            raise ShapeError(f"{self!r}: the sequence length of {what} must be known, got {format_shape(t.shape)}")

    def _heads(self, t: Tensor, length: int) -> Tensor:
        # (N, L, E) -> (N, heads, L, head_dim)
        d = self.embed_dim // self.num_heads
        return ops.transpose(ops.reshape(t, (-1, length, self.num_heads, d)), (0, 2, 1, 3))

    def _attend(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: TensorLike | None,
                need_weights: bool, attn_mask: TensorLike | None, average: bool, is_causal: bool,
                training: bool) -> tuple[Tensor, Tensor | None]:
        for t, what in ((query, "query"), (key, "key"), (value, "value")):
            self._check(t, what)
        if not self.batch_first:
            query, key, value = (ops.transpose(t, (1, 0, 2)) for t in (query, key, value))
        e, g, dtype = self.embed_dim, query.graph, _param_dtype(query)
        W = self.param(g, "in_proj_weight", ParamSpec((3 * e, e), lambda: initializers.xavier_uniform(
            (3 * e, e), seed=self.seed), decay=True), dtype)
        b = self.param(g, "in_proj_bias", ParamSpec((3 * e,), lambda: initializers.zeros(3 * e)), dtype) \
            if self.bias else None
        projected: list[Tensor] = []
        for i, t in enumerate((query, key, value)):
            p = ops.matmul(t, _swap_last(W[i * e:(i + 1) * e]))
            projected.append(p + b[i * e:(i + 1) * e] if b is not None else p)
        (lq,), (lk,) = _known_dims(query.shape[1:2]), _known_dims(key.shape[1:2])  # known: _check
        q, k, v = self._heads(projected[0], lq), self._heads(projected[1], lk), self._heads(projected[2], lk)
        mask = self._mask(attn_mask, key_padding_mask, is_causal, lq, lk, q)
        dropping = training and self.dropout > 0
        if not need_weights and not dropping:
            heads = ops.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            weights: Tensor | None = None
        else:
            scores = ops.matmul(q, _swap_last(k)) * (1.0 / math.sqrt(e // self.num_heads))
            weights = ops.softmax(scores if mask is None else scores + mask, -1)
            attn = weights
            if dropping:
                seed = zlib.crc32(self.scope(g).encode()) & 0x7FFFFFFF
                attn = ops.dropout(weights, p=self.dropout, seed=seed, training=True)
            heads = ops.matmul(attn, v)
            if average:
                weights = ops.mean(weights, axis=1)
        merged = ops.reshape(ops.transpose(heads, (0, 2, 1, 3)), (-1, lq, e))
        out = self.out_proj(merged, training=training)
        if not self.batch_first:
            out = ops.transpose(out, (1, 0, 2))
        return out, (weights if need_weights else None)

    def _mask(self, attn_mask: TensorLike | None, key_padding_mask: TensorLike | None, is_causal: bool, lq: int,
              lk: int, like: Tensor) -> Tensor | None:
        mask: Tensor | None = None
        if is_causal and attn_mask is None:
            attn_mask = np.triu(np.ones((lq, lk), bool), k=1)
        if attn_mask is not None:
            mask = _additive(attn_mask, like)
            if len(mask.shape) == 3:            # (N*heads, L, S) as torch -> (N, heads, L, S)
                mask = ops.reshape(mask, (-1, self.num_heads, lq, lk))
        if key_padding_mask is not None:
            pad = ops.reshape(_additive(key_padding_mask, like), (-1, 1, 1, lk))
            mask = pad if mask is None else mask + pad
        return mask

    def extra_repr(self) -> str:
        return f"{self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, batch_first={self.batch_first}"


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with a residual connection and layer norm, as
    torch.nn.TransformerEncoderLayer: post-norm ``x = norm1(x + sa(x)); x = norm2(x + ff(x))``, or
    pre-norm (``norm_first=True``) ``x = x + sa(norm1(x)); x = x + ff(norm2(x))``, where
    ff(x) = linear2(dropout(activation(linear1(x)))). ``activation``: "relu", "gelu" or a callable.

    ``layer(src, src_mask=None, src_key_padding_mask=None, is_causal=False)`` returns a tensor of
    src's shape.
    """

    kind = "transformerencoderlayer"

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str | Callable[[Tensor], Tensor] = "relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True, seed: int = 0,
                 name: str | None = None) -> None:
        super().__init__(name)
        if not (callable(activation) or activation in ("relu", "gelu")):
            raise ValueError(f"TransformerEncoderLayer: activation must be 'relu', 'gelu' or a callable, "
                             f"got {activation!r}")
        self.activation, self.norm_first, self.batch_first = activation, bool(norm_first), bool(batch_first)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            seed=seed)
        self.linear1 = Dense(d_model, dim_feedforward, bias=bias, init="torch", seed=seed + 2)
        self.dropout = Dropout(dropout)
        self.linear2 = Dense(dim_feedforward, d_model, bias=bias, init="torch", seed=seed + 3)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, elementwise_affine=True)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, elementwise_affine=True)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)

    # torch's signature (masks before training), unlike Module.__call__'s (x, training)
    def __call__(self, src: Tensor, src_mask: TensorLike | None = None,  # type: ignore[override]
                 src_key_padding_mask: TensorLike | None = None, is_causal: bool = False,
                 training: bool | None = None) -> Tensor:
        if not isinstance(src, Tensor):
            raise TypeError(f"TransformerEncoderLayer expects a graph Tensor, got {type(src).__name__}")
        training = self.training if training is None else bool(training)
        out = self._encode(src, src_mask, src_key_padding_mask, is_causal, training)
        self._latest = weakref.ref(src.graph)
        return out

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return self(x, training=training)

    def _act(self, x: Tensor) -> Tensor:
        if callable(self.activation):
            return self.activation(x)
        return ops.relu(x) if self.activation == "relu" else ops.gelu(x)

    def _sa(self, x: Tensor, mask: TensorLike | None, pad: TensorLike | None, is_causal: bool,
            training: bool) -> Tensor:
        y, _ = self.self_attn(x, x, x, key_padding_mask=pad, need_weights=False, attn_mask=mask,
                              is_causal=is_causal, training=training)
        return self.dropout1(y, training=training)

    def _ff(self, x: Tensor, training: bool) -> Tensor:
        h = self.dropout(self._act(self.linear1(x, training=training)), training=training)
        return self.dropout2(self.linear2(h, training=training), training=training)

    def _encode(self, x: Tensor, mask: TensorLike | None, pad: TensorLike | None, is_causal: bool,
                training: bool) -> Tensor:
        if self.norm_first:
            x = x + self._sa(self.norm1(x, training=training), mask, pad, is_causal, training)
            return x + self._ff(self.norm2(x, training=training), training)
        x = self.norm1(x + self._sa(x, mask, pad, is_causal, training), training=training)
        return self.norm2(x + self._ff(x, training), training=training)
