"""Data-parallel updates: the gradients every rank computes are averaged before the update.

``optimizer.updates(loss, params, data_parallel=True)`` builds the usual update rule,
but on *averaged* gradients that enter the graph through one flat placeholder
(``data_parallel/grads``) instead of on the local gradients. The result is a
``DataParallelUpdates``: the (parameter, new value) pairs as before, plus

    local_grads   every local gradient flattened and joined into one vector (a graph tensor)
    grad_input    the placeholder the averaged vector is fed through

``tg.compile`` sees it and builds a two-stage step (``tensorforge.distributed_step``):
stage 1 (one native call) computes the outputs and ``local_grads``; one MPI
allreduce averages that single contiguous buffer across ranks; stage 2 (one native
call) applies the update. Clipping, weight decay, every optimizer and every schedule
act in stage 2 on the averaged gradients, exactly as a single process would on the
gradient of the whole (global) batch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import numpy as np

from ..autodiff import grad
from ..graph import Graph, Tensor, placeholder
from ..ops import concat, reshape
from ..nn.module import _known_dims

if TYPE_CHECKING:
    from .base import Optimizer

__all__ = ["DataParallelUpdates", "data_parallel_updates", "GRAD_INPUT_NAME"]

GRAD_INPUT_NAME = "data_parallel/grads"


class DataParallelUpdates(list[tuple[Tensor, Tensor]]):
    """(parameter, new value) pairs computed from averaged gradients; ``tg.compile`` turns
    them into a step that averages ``local_grads`` over the ranks and feeds the result to
    ``grad_input``. Concatenating it with other updates (``+``) keeps the marker."""

    def __init__(self, pairs: Iterable[tuple[Tensor, Tensor]], local_grads: Tensor, grad_input: Tensor,
                 params: Iterable[Tensor], bucket_bytes: int | None = None, sync_batch_norm: bool = False) -> None:
        super().__init__(pairs)
        self.sync_batch_norm = bool(sync_batch_norm)
        self.local_grads = local_grads
        self.grad_input = grad_input
        self.params = list(params)
        self.bucket_bytes = bucket_bytes

    def _like(self, pairs: Iterable[tuple[Tensor, Tensor]]) -> "DataParallelUpdates":
        return DataParallelUpdates(pairs, self.local_grads, self.grad_input, self.params, self.bucket_bytes,
                                   self.sync_batch_norm)

    # list's + gives a plain list; this keeps the marker (the pairs of both sides, in order)
    def __add__(self, other: Iterable[tuple[Tensor, Tensor]]) -> "DataParallelUpdates":  # type: ignore[override]
        return self._like(list(self) + list(other))

    def __radd__(self, other: Iterable[tuple[Tensor, Tensor]]) -> "DataParallelUpdates":
        return self._like(list(other) + list(self))

    def __repr__(self) -> str:
        return (f"DataParallelUpdates({len(self)} updates, {len(self.params)} parameters, "
                f"{self.grad_input.shape[0]} gradient elements of {self.grad_input.dtype})")


def _free_name(graph: Graph, stem: str) -> str:
    name, k = stem, 0
    while name in graph._names:
        k += 1
        name = f"{stem}{k}"
    return name


def data_parallel_updates(optimizer: Optimizer, loss: Tensor, params: Iterable[Tensor] | None,
                          clip_norm: float | None = None, bucket_bytes: int | None = None,
                          sync_batch_norm: bool = False) -> DataParallelUpdates:
    """``optimizer``'s updates on gradients averaged over the ranks (see the module doc)."""
    params = optimizer._check_params(loss, params)
    dtypes = sorted({p.dtype for p in params})
    if len(dtypes) > 1:
        raise TypeError(f"{type(optimizer).__name__}.updates(data_parallel=True): all parameters must "
                        f"share one dtype (the gradients travel in one buffer), got {dtypes}")
    if any(d is None for p in params for d in p.shape):
        raise ValueError("data_parallel: parameters must have fixed shapes")
    grads = grad(loss, params)
    flat = [reshape(g, (-1,)) for g in grads]
    local = flat[0] if len(flat) == 1 else concat(flat, axis=0)
    sizes = [int(np.prod(_known_dims(p.shape), dtype=np.int64)) for p in params]
    total = int(sum(sizes))
    graph = loss.graph
    grad_input = placeholder(_free_name(graph, GRAD_INPUT_NAME), (total,), dtypes[0], graph=graph)
    averaged: list[Tensor] = []
    start = 0
    for p, n in zip(params, sizes):
        averaged.append(reshape(grad_input[start:start + n], _known_dims(p.shape)))
        start += n
    pairs = optimizer._build(params, averaged, clip_norm)
    if bucket_bytes is not None and int(bucket_bytes) < 1:
        raise ValueError(f"data_parallel: bucket_bytes must be >= 1, got {bucket_bytes!r}")
    return DataParallelUpdates(pairs, local, grad_input, params, bucket_bytes, sync_batch_norm)
