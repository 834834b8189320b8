"""``Embedding``: a lookup table of ``num_embeddings`` vectors, as torch.nn.Embedding.

Its parameter is ``weight`` of shape (num_embeddings, embedding_dim), torch's name
and layout, initialised N(0, 1) like torch. The layer calls ``tg.embedding``.
"""
from __future__ import annotations

import numpy as np

from .. import init as initializers
from .._typing import Array, InitLike
from ..graph import Tensor, constant
from .. import ops
from .module import Module, ParamSpec

__all__ = ["Embedding"]


class Embedding(Module):
    """``weight[indices]``: integer indices of any shape (...) give (..., embedding_dim).

    ``init``: N(0, 1) as torch by default, or a ``tg.init`` name/callable; ``dtype``: the weight's
    (indices carry no float dtype to follow).
    ``padding_idx``: that row starts at zero and is kept out of training: its lookups give zeros and
    it receives no gradient (torch keeps the row's value, zero unless loaded otherwise, and gives it
    no gradient; the two agree as long as the row is zero). The gradient of ``weight`` is dense.
    """

    kind = "embedding"

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, seed: int = 0,
                 init: InitLike = "normal_1", dtype: str = "float32", name: str | None = None) -> None:
        super().__init__(name)
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} is out of range for "
                                 f"{num_embeddings} embeddings")
            padding_idx = padding_idx % self.num_embeddings
        if init != "normal_1":
            initializers.check(init, f"Embedding({num_embeddings}, {embedding_dim})")
        self.padding_idx, self.seed, self.init, self.dtype = padding_idx, seed, init, str(np.dtype(dtype))

    def _initial(self) -> Array:
        shape = (self.num_embeddings, self.embedding_dim)
        if self.init == "normal_1":
            value = initializers.normal(shape, std=1.0, seed=self.seed)
        else:
            value = initializers.get(self.init)(shape, seed=self.seed)
        if self.padding_idx is not None:
            value[self.padding_idx] = 0
        return value

    def forward(self, indices: Tensor, training: bool) -> Tensor:
        if np.dtype(indices.dtype).kind not in "iu":
            raise TypeError(f"{self!r}: indices must be integers, got {indices.dtype}")
        shape = (self.num_embeddings, self.embedding_dim)
        weight = self.param(indices.graph, "weight", ParamSpec(shape, self._initial, decay=True), self.dtype)
        if self.padding_idx is not None:
            keep = np.ones((self.num_embeddings, 1), self.dtype)
            keep[self.padding_idx] = 0
            weight = weight * constant(keep, graph=indices.graph)
        return ops.embedding(indices, weight)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
