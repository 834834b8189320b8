"""Sorting along one axis: sort, argsort and topk, as a composition of graph ops.

The sort is a bitonic sorting network: the axis is padded to a power of two ``N`` and
``log2(N) * (log2(N) + 1) / 2`` compare-exchange stages follow. In a stage every element
meets exactly one partner at distance ``j``; reshaping the rows to ``(blocks, 2, j)`` puts
the two partners in two slices, and a compare-exchange is a few elementwise ops plus
``where`` on both slices. So the sort needs no op of its own: it runs on every backend,
each stage fuses into elementwise work, and autodiff routes the gradient of the sorted
values back to the elements they came from (as torch does).

Every comparison is on the pair (key, original index), a total order, so the result is
stable (equal keys keep their input order, in both directions) and deterministic. NaN
sorts as larger than every number, as in torch: last ascending, first descending.
Indices are int64. The sorted axis must have a length known when the graph is built; the
other axes may be ``None``.
"""
from __future__ import annotations

import numpy as np

from .._typing import Array, Axis, TensorLike
from ..graph import Tensor, as_tensor, constant
from .registry import ShapeError, apply
from .scan import (extreme_value, is_nan, logical_and, logical_or, one_axis, pick_axis, static_length,
                   take)


# ---- the comparison -------------------------------------------------------------------

def _precedes(kp: Tensor, ip: Tensor, kq: Tensor, iq: Tensor, descending: bool, floating: bool) -> Tensor:
    """Whether (key kp, index ip) comes strictly before (kq, iq) in the target order: keys
    ascending (or descending) with NaN largest, then original index ascending."""
    strictly = apply("gt" if descending else "lt", [kp, kq])
    tie = apply("eq", [kp, kq])
    if floating:
        nan_p, nan_q = is_nan(kp), is_nan(kq)
        nan_order = logical_and(nan_p, apply("eq", [kq, kq])) if descending else \
            logical_and(nan_q, apply("eq", [kp, kp]))
        strictly = logical_or(strictly, nan_order)
        tie = logical_or(tie, logical_and(nan_p, nan_q))
    return logical_or(strictly, logical_and(tie, apply("lt", [ip, iq])))


# ---- the network ----------------------------------------------------------------------

def _row_constant(values: Array, like_rows: Tensor) -> Tensor:
    """A (rows, len(values)) tensor repeating ``values`` on every row; the number of rows is
    read from ``like_rows`` (a (rows, 1) bool tensor), so it may be known only at call time."""
    row = constant(values.reshape(1, -1), graph=like_rows.graph)
    return apply("where", [like_rows, row, row])


def _stage(keys: Tensor, idx: Tensor, n_pow2: int, k: int, j: int, descending: bool,
           floating: bool) -> tuple[Tensor, Tensor]:
    """One compare-exchange stage of the bitonic network: partners are j apart; blocks of
    size k alternate direction (the last merge, k = N, is all in the target order).

    Rows are viewed as (blocks, 2, j): an element's partner is the same position in the
    other half, i.e. the view reversed along its size-2 axis. Each element then decides
    alone, elementwise and in place, whether to take its partner's value: no slicing into
    halves and no concat, so a stage is one fused elementwise kernel.
    """
    blocks = n_pow2 // (2 * j)
    kb = apply("reshape", [keys], shape=(-1, blocks, 2, j))
    ib = apply("reshape", [idx], shape=(-1, blocks, 2, j))
    kp, ip = take(kb, 2, None, None, -1), take(ib, 2, None, None, -1)
    lower = constant(np.array([True, False]).reshape(1, 1, 2, 1), graph=keys.graph)
    # the pair's (upper, lower) elements, seen from either of them
    ku, iu = apply("where", [lower, kp, kb]), apply("where", [lower, ip, ib])
    kl, il = apply("where", [lower, kb, kp]), apply("where", [lower, ib, ip])
    # (key, index) is a total order without equal pairs, so "lower precedes upper" is exactly
    # "not (upper precedes lower)": one comparison serves both directions
    swap = _precedes(ku, iu, kl, il, descending, floating)
    forward = (np.arange(blocks) & (k // (2 * j))) == 0
    if not forward.all():
        swap = apply("eq", [swap, constant(forward.reshape(1, blocks, 1, 1), graph=keys.graph)])
    keys = apply("reshape", [apply("where", [swap, kp, kb])], shape=(-1, n_pow2))
    idx = apply("reshape", [apply("where", [swap, ip, ib])], shape=(-1, n_pow2))
    return keys, idx


def _sort_rows(rows: Tensor, n: int, descending: bool) -> tuple[Tensor, Tensor]:
    """Sort a (R, n) tensor along its last axis, n >= 2: (values, int64 indices)."""
    floating = np.dtype(rows.dtype).kind == "f"
    n_pow2 = 1 << (n - 1).bit_length()
    has_rows = apply("eq", [take(rows, 1, 0, 1), take(rows, 1, 0, 1)])     # (R, 1), only its shape matters
    has_rows = logical_or(has_rows, apply("ne", [take(rows, 1, 0, 1), take(rows, 1, 0, 1)]))
    idx = _row_constant(np.arange(n, dtype=np.int64), has_rows)
    keys = rows
    if n_pow2 > n:
        # padding goes last in either direction: NaN (or the dtype's maximum) ascending, -inf
        # (or its minimum) descending, and its indices are larger than every real one
        pad = np.nan if floating and not descending else extreme_value(rows.dtype, not descending)
        pad_keys = _row_constant(np.full(n_pow2 - n, pad, dtype=rows.dtype), has_rows)
        keys = apply("concat", [keys, pad_keys], axis=1)
        idx = apply("concat", [idx, _row_constant(np.arange(n, n_pow2, dtype=np.int64), has_rows)], axis=1)
    k = 2
    while k <= n_pow2:
        j = k // 2
        while j >= 1:
            keys, idx = _stage(keys, idx, n_pow2, k, j, descending, floating)
            j //= 2
        k *= 2
    return take(keys, 1, 0, n), take(idx, 1, 0, n)


def _sort(x: TensorLike, axis: Axis, dim: Axis, descending: bool, what: str) -> tuple[Tensor, Tensor]:
    x = as_tensor(x)
    if len(x.shape) == 0:                 # torch sorts a 0-d tensor as itself, index 0
        return x, constant(np.int64(0), graph=x.graph)
    a = one_axis(x, pick_axis(axis, dim), what)
    n = static_length(x, a, what)
    ndim = len(x.shape)
    perm = [d for d in range(ndim) if d != a] + [a]
    moved = apply("transpose", [x], axes=tuple(perm)) if a != ndim - 1 else x
    if n <= 1:
        zero = constant(np.zeros((1,) * ndim, dtype=np.int64), graph=x.graph)
        return x, apply("broadcast_like", [zero, x])
    keys = apply("cast", [moved], dtype="int64") if moved.dtype == "bool" else moved
    values, indices = _sort_rows(apply("reshape", [keys], shape=(-1, n)), n, descending)
    if moved.dtype == "bool":
        values = apply("cast", [values], dtype="bool")
    values, indices = (apply("reshape_like", [t, moved]) for t in (values, indices))
    if a != ndim - 1:
        inverse = tuple(int(i) for i in np.argsort(perm))
        values, indices = (apply("transpose", [t], axes=inverse) for t in (values, indices))
    return values, indices


# ---- public functions -----------------------------------------------------------------

def sort(x: TensorLike, axis: int | None = None, descending: bool = False, stable: bool = True, *,
         dim: int | None = None) -> tuple[Tensor, Tensor]:
    """Sort along ``axis`` (default the last; torch's ``dim`` is accepted): ``(values,
    indices)`` with int64 indices, as torch.sort. Always stable (``stable`` is accepted for
    torch's signature): equal keys keep their input order in both directions. NaN is the
    largest value (last ascending, first descending). The gradient of ``values`` goes to
    the elements each value came from; ``indices`` has none."""
    if not isinstance(stable, bool):
        raise TypeError(f"sort: stable must be a bool, got {stable!r}")
    return _sort(x, axis, dim, bool(descending), "sort")


def argsort(x: TensorLike, axis: int | None = None, descending: bool = False, stable: bool = True, *,
            dim: int | None = None) -> Tensor:
    """The int64 indices that sort ``x`` along ``axis`` (torch.argsort); always stable, NaN
    largest."""
    return sort(x, axis, descending, stable, dim=dim)[1]


def topk(x: TensorLike, k: int, axis: int | None = None, largest: bool = True, sorted: bool = True, *,  # noqa: A002
         dim: int | None = None) -> tuple[Tensor, Tensor]:
    """The ``k`` largest (or smallest) elements along ``axis`` and their int64 indices
    (torch.topk). The result is always in sorted order (``sorted=False`` gives the same);
    among equal elements the earlier index comes first (torch leaves ties unspecified). NaN
    counts as the largest value, as in torch. Gradients go to the selected elements."""
    x = as_tensor(x)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"topk: k must be an int, got {type(k).__name__}")
    a = one_axis(x, pick_axis(axis, dim), "topk")
    n = 1 if len(x.shape) == 0 else static_length(x, a, "topk")
    if not 0 <= int(k) <= n:
        raise ShapeError(f"topk: k={k} is out of range for an axis of length {n} (shape {x.shape})")
    values, indices = _sort(x, a, None, bool(largest), "topk")
    if len(x.shape) == 0:
        return values, indices
    return take(values, a, 0, int(k)), take(indices, a, 0, int(k))
