"""Gather-like ops built from comparisons and sums: take / gather / scatter_add / index_add /
embedding, integer-array indexing for getitem, and stop_gradient.

No op here reads memory at a computed address. Selecting element ``idx`` of an axis of
size n is written as ``sum_j where(idx == j, x[j], 0)`` over an arange constant ``j``:
the comparison, the select and the sum are ordinary graph ops, so the result runs on
every backend, fuses into one reduction kernel, and its gradient comes out of autodiff as
the matching scatter-add (and the gradient of a scatter-add is the gather).

Out-of-range indices never give a quietly wrong number. Index values pass through the
elementwise ``index_in_range`` op: when they come straight from a placeholder, parameter or
constant, tg.compile checks them before each call like one_hot's labels (program.py
``INDEX_CONSUMING_OPS``); computed ones raise on the interpreter and give NaN in float
results of compiled code (an integer result has no NaN: it reads 0 there).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeGuard, cast

import numpy as np

from .._typing import Array, Shape, TensorLike
from ..graph import Tensor, as_tensor, constant
from .registry import ShapeError, apply, normalize_axis, register

if TYPE_CHECKING:
    from .._typing import Index      # what x[...] takes (added to _typing.py by helper types-core)
    from ._types import InferredType, InputTypes

# ---- stop_gradient ----------------------------------------------------------------------

register("stop_gradient", infer=lambda types: (types[0].shape, types[0].dtype),
         impl=lambda x: np.array(x), scalar=lambda s, x: x, n_inputs=1, differentiable=False,
         family="elementwise", doc="identity whose gradient is zero (fuses like any elementwise op)")


def stop_gradient(x: TensorLike) -> Tensor:
    """``x`` unchanged, but treated as a constant by autodiff: its gradient is zero
    (torch's ``x.detach()``, jax's ``stop_gradient``)."""
    return apply("stop_gradient", [as_tensor(x)])


def detach(x: TensorLike) -> Tensor:
    """Alias of :func:`stop_gradient` (torch's name)."""
    return stop_gradient(x)


# ---- index_in_range: the range check every index passes through ------------------------

def _index_in_range_type(types: InputTypes, depth: int, low: int = 0, ignore: int | None = None) -> InferredType:
    (t,) = types
    if np.dtype(t.dtype).kind not in "iu":
        raise ShapeError(f"indices must be integers, got {t.dtype}")
    return t.shape, t.dtype


def _index_in_range_ref(idx: Array, depth: int, low: int = 0, ignore: int | None = None) -> Array:
    bad = (idx < low) | (idx >= depth)
    if ignore is not None:
        bad &= idx != ignore
    if bad.any():
        allowed = f" (or {ignore}, the ignored value)" if ignore is not None else ""
        raise ValueError(f"index {idx[bad].flat[0]} is out of range [{low}, {depth}){allowed} "
                         f"({int(bad.sum())} bad index(es))")
    return np.array(idx)


register("index_in_range", infer=_index_in_range_type, impl=_index_in_range_ref, n_inputs=1,
         scalar=lambda s, x, **_: x, differentiable=False, family="elementwise",
         doc="identity on integer indices that must lie in [low, depth) (low is 0 unless given) or "
             "equal ``ignore`` when given: the interpreter raises, tg.compile checks leaf indices "
             "before each call")


def _checked(idx: Tensor, n: int, low: int = 0, ignore: int | None = None) -> Tensor:
    """idx passed through index_in_range. ``low=-n`` admits the negative indices that wrap;
    ``ignore`` admits one value outside the range (a loss's ignore_index). Both are set before
    any arithmetic on idx so the before-call check of tg.compile still sees the leaf."""
    attrs = {"depth": int(n)}
    if low:
        attrs["low"] = int(low)
    if ignore is not None:
        attrs["ignore"] = int(ignore)
    return apply("index_in_range", [idx], **attrs)


def _nan_if_out_of_range(out: Tensor, idx: Tensor, n: int) -> Tensor:
    """``out`` with NaN where ``idx`` (broadcast against it) is outside [0, n): a computed bad
    index must show in a float result. Integer and bool results are returned unchanged."""
    if np.dtype(out.dtype).kind != "f":
        return out
    return apply("where", [_outside(idx, n), as_tensor(float("nan"), like=out), out])


def _outside(idx: Tensor, n: int) -> Tensor:
    """idx < 0 or idx >= n, as one comparison of two comparisons (both agree only outside)."""
    return apply("eq", [apply("ge", [idx, 0]), apply("ge", [idx, int(n)])])


def _index_tensor(index: TensorLike, graph_like: Tensor, what: str) -> Tensor:
    """An integer index as a graph tensor (NumPy arrays and lists become int64 constants)."""
    if isinstance(index, Tensor):
        t = index
    else:
        arr = np.asarray(index)
        if arr.dtype.kind == "b":
            raise TypeError(f"{what}: boolean index arrays are not supported; use tg.where or tg.masked_fill")
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{what}: indices must be integers, got dtype {arr.dtype}")
        t = constant(arr.astype(np.int64), graph=graph_like.graph)
    if np.dtype(t.dtype).kind not in "iu":
        raise TypeError(f"{what}: an index Tensor must hold integers, got {t.dtype} ({t.name!r})")
    return t


def _static_dim(x: Tensor, axis: int, what: str) -> int:
    n = x.shape[axis]
    if n is None:
        raise ShapeError(f"{what}: the size of axis {axis} of {x.name!r} must be known when the graph is "
                         f"built (shape {x.shape})")
    return int(n)


def _arange(n: int, ndim_after: int, like: Tensor) -> Tensor:
    """The constant 0..n-1 laid out along an axis followed by ``ndim_after`` size-1 axes."""
    return constant(np.arange(n, dtype=np.int64).reshape((n,) + (1,) * ndim_after), graph=like.graph)


def _select_sum(cond: Tensor, values: Tensor, axis: int, like: Tensor) -> Tensor:
    """sum over ``axis`` of where(cond, values, 0), in ``like``'s dtype (a sum of integers is
    int64 and of bools an integer; exactly one term is non-zero, so casting back is exact)."""
    zero = False if values.dtype == "bool" else 0
    picked = apply("where", [cond, values, as_tensor(zero, like=values)])
    if picked.dtype == "bool":
        picked = apply("cast", [picked], dtype="int32")
    out = apply("sum", [picked], axis=(axis,), keepdims=False)
    return out if out.dtype == like.dtype else apply("cast", [out], dtype=like.dtype)


# ---- take: index_select with an index of any shape -----------------------------------

def take(x: TensorLike, indices: TensorLike, axis: int | None = None) -> Tensor:
    """numpy.take: pick along ``axis`` with integer ``indices`` of any shape; the result has
    shape ``x.shape[:axis] + indices.shape + x.shape[axis+1:]`` (``x[:, indices]`` for axis 1;
    axis None indexes the flattened x). Indices must lie in [0, size). The gradient with
    respect to ``x`` scatter-adds the output gradient (repeated indices accumulate)."""
    x = as_tensor(x)
    if axis is None:
        x, axis = apply("reshape", [x], shape=(-1,)), 0
    return _take(x, int(axis), indices)


def _take(x: Tensor, axis: int, index: TensorLike) -> Tensor:
    x = as_tensor(x)
    (axis,) = normalize_axis(int(axis), len(x.shape))
    idx = _index_tensor(index, x, "take")
    n = _static_dim(x, axis, "take")
    r, after = len(idx.shape), len(x.shape) - axis - 1
    checked = _checked(idx, n)
    # x: P + (1,)*r + (n,) + S ; idx: (1,)*|P| + I + (1,) + (1,)*|S| ; j: (n,) + (1,)*|S|
    xe = apply("expand_dims", [x], axes=tuple(range(axis, axis + r))) if r else x
    ie = apply("expand_dims", [checked], axes=tuple(range(axis)) + tuple(range(axis + r, axis + r + after + 1)))
    cond = apply("eq", [ie, _arange(n, after, x)])
    out = _select_sum(cond, xe, axis + r, x)
    ir = apply("expand_dims", [idx], axes=tuple(range(axis)) + tuple(range(axis + r, axis + r + after))) \
        if (axis or after) else idx
    return _nan_if_out_of_range(out, ir, n)


def index_select(x: TensorLike, axis: int, index: TensorLike) -> Tensor:
    """torch.index_select: ``take`` with a 1-d index."""
    idx = _index_tensor(index, as_tensor(x), "index_select")
    if len(idx.shape) != 1:
        raise ShapeError(f"index_select: index must be 1-d, got shape {idx.shape}")
    return _take(as_tensor(x), axis, idx)


def embedding(indices: TensorLike, weight: TensorLike) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by integer ``indices`` of any shape:
    the result has shape ``indices.shape + (dim,)`` (torch.nn.functional.embedding). The
    gradient with respect to ``weight`` adds each output row's gradient into its row."""
    weight = as_tensor(weight)
    if len(weight.shape) != 2:
        raise ShapeError(f"embedding: weight must be 2-d (num_embeddings, dim), got shape {weight.shape}")
    return _take(weight, 0, _index_tensor(indices, weight, "embedding"))


# ---- gather / take_along_axis -----------------------------------------------------------

def _gather_core(x: Tensor, axis: int, idx: Tensor) -> Tensor:
    """out[..i..] = x[..idx[..i..]..] along ``axis``; x and idx have the same rank and
    broadcast against each other on every other axis."""
    n = _static_dim(x, axis, "gather")
    after = len(x.shape) - axis - 1
    xe = apply("expand_dims", [x], axes=(axis,))                   # (.., 1, n, ..)
    ie = apply("expand_dims", [_checked(idx, n)], axes=(axis + 1,))  # (.., m, 1, ..)
    cond = apply("eq", [ie, _arange(n, after, x)])
    return _nan_if_out_of_range(_select_sum(cond, xe, axis + 1, x), idx, n)


def gather(x: TensorLike, axis: int, index: TensorLike) -> Tensor:
    """torch.gather: ``out[i][j][k] = x[index[i][j][k]][j][k]`` for axis 0 (and so on).
    ``index`` has x's rank; on other axes its sizes may be smaller than x's (x is then cut
    to them). The result has index's shape. The gradient with respect to ``x`` is
    :func:`scatter_add` of the output gradient."""
    x = as_tensor(x)
    (axis,) = normalize_axis(int(axis), len(x.shape))
    idx = _index_tensor(index, x, "gather")
    if len(idx.shape) != len(x.shape):
        raise ShapeError(f"gather: index must have the rank of x ({len(x.shape)}), got shape {idx.shape}")
    cut = []
    for a, (dx, di) in enumerate(zip(x.shape, idx.shape)):
        if a != axis and dx is not None and di is not None and di > dx:
            raise ShapeError(f"gather: index size {di} exceeds x's size {dx} on axis {a} "
                             f"(index {idx.shape}, x {x.shape})")
        cut.append(("slice", 0, di, 1) if a != axis and di is not None and di != dx else ("slice", None, None, 1))
    if any(c[2] is not None for c in cut):
        x = apply("getitem", [x], index=tuple(cut))
    return _gather_core(x, axis, idx)


def take_along_axis(x: TensorLike, index: TensorLike, axis: int) -> Tensor:
    """numpy.take_along_axis / torch.take_along_dim: like gather, but x and index broadcast
    against each other on every axis other than ``axis``."""
    x = as_tensor(x)
    idx = _index_tensor(index, x, "take_along_axis")
    if len(idx.shape) != len(x.shape):
        raise ShapeError(f"take_along_axis: index must have the rank of x ({len(x.shape)}), "
                         f"got shape {idx.shape}")
    (axis,) = normalize_axis(int(axis), len(x.shape))
    return _gather_core(x, axis, idx)


# ---- scatter_add / index_add ----------------------------------------------------------

def _known_shape(t: Tensor, name: str, what: str) -> Shape:
    """The shape of ``t``, which must be known when the graph is built."""
    if None in t.shape:
        raise ShapeError(f"{what}: the shape of {name} must be known when the graph is built, got {t.shape}")
    return tuple(d for d in t.shape if d is not None)


def _zero_pad_to(t: Tensor, shape: Shape) -> Tensor:
    """``t`` with zeros appended on every axis where it is shorter than ``shape``."""
    for a, (have, want) in enumerate(zip(_known_shape(t, "the padded part", "scatter"), shape)):
        if have != want:
            pad_shape = tuple(want - have if b == a else d for b, d in enumerate(t.shape))
            zeros = constant(np.zeros(pad_shape, dtype=t.dtype), graph=t.graph)
            t = apply("concat", [t, zeros], axis=a)
    return t


def scatter_add(x: TensorLike, axis: int, index: TensorLike, src: TensorLike) -> Tensor:
    """torch.scatter_add: a copy of ``x`` with ``src[i][j]`` added at ``[index[i][j]][j]``
    (axis 0; and so on). ``index`` has x's rank and sizes no larger than x's (and src's);
    only the part of ``src`` that index covers is read. Repeated indices accumulate.
    Gradients: to ``x`` the identity, to ``src`` the gather of the output gradient."""
    x, src = as_tensor(x), as_tensor(src)
    (axis,) = normalize_axis(int(axis), len(x.shape))
    idx = _index_tensor(index, x, "scatter_add")
    if not len(idx.shape) == len(x.shape) == len(src.shape):
        raise ShapeError(f"scatter_add: x, index and src must have the same rank, got shapes "
                         f"{x.shape}, {idx.shape} and {src.shape}")
    x_shape, idx_shape, src_shape = (_known_shape(t, name, "scatter_add")
                                     for name, t in (("x", x), ("index", idx), ("src", src)))
    for a, (dx, di, ds) in enumerate(zip(x_shape, idx_shape, src_shape)):
        if di > ds or (a != axis and di > dx):
            raise ShapeError(f"scatter_add: index size {di} on axis {a} exceeds that of "
                             f"{'src' if di > ds else 'x'} (x {x.shape}, index {idx.shape}, src {src.shape})")
    if src.shape != idx.shape:
        src = apply("getitem", [src], index=tuple(("slice", 0, d, 1) for d in idx.shape))
    n = x_shape[axis]
    after = len(x.shape) - axis - 1
    se = apply("expand_dims", [src], axes=(axis + 1,))                # (.., m, 1, ..)
    ie = apply("expand_dims", [_checked(idx, n)], axes=(axis + 1,))
    cond = apply("eq", [ie, _arange(n, after, x)])                    # (.., m, n, ..)
    added = _select_sum(cond, se, axis, src)                         # (.., n, ..) on idx's other sizes
    added = _nan_if_out_of_range_sum(added, idx, axis, n)
    full = _zero_pad_to(added, x_shape)
    return _add_keep(x, full)


def _nan_if_out_of_range_sum(added: Tensor, idx: Tensor, axis: int, n: int) -> Tensor:
    """NaN in every slice of ``added`` that a computed out-of-range index would have hit."""
    if np.dtype(added.dtype).kind != "f":
        return added
    bad = _outside(idx, n)
    any_bad = apply("sum", [apply("cast", [bad], dtype="int32")], axis=(axis,), keepdims=True)
    return apply("where", [apply("gt", [any_bad, 0]), as_tensor(float("nan"), like=added), added])


def _add_keep(x: Tensor, y: Tensor) -> Tensor:
    """x + y in torch's in-place dtype: the result keeps x's dtype."""
    if x.dtype == "bool":
        return apply("gt", [apply("add", [apply("cast", [x], dtype="int64"), apply("cast", [y], dtype="int64")]), 0])
    out = apply("add", [x, y])
    return out if out.dtype == x.dtype else apply("cast", [out], dtype=x.dtype)


def index_add(x: TensorLike, axis: int, index: TensorLike, source: TensorLike, alpha: float = 1) -> Tensor:
    """torch.index_add: a copy of ``x`` with ``alpha * source[.., i, ..]`` added at position
    ``index[i]`` of ``axis``; ``index`` is 1-d and ``source`` has x's shape except
    len(index) on ``axis``. Repeated indices accumulate. Gradients: to ``x`` the identity,
    to ``source`` the index_select of the output gradient along ``axis``."""
    x, source = as_tensor(x), as_tensor(source)
    (axis,) = normalize_axis(int(axis), len(x.shape))
    idx = _index_tensor(index, x, "index_add")
    if len(idx.shape) != 1:
        raise ShapeError(f"index_add: index must be 1-d, got shape {idx.shape}")
    want = tuple(idx.shape[0] if a == axis else d for a, d in enumerate(x.shape))
    if len(source.shape) != len(x.shape) or any(
            s is not None and w is not None and s != w for s, w in zip(source.shape, want)):
        raise ShapeError(f"index_add: source must have shape {want} (x {x.shape} with len(index) on "
                         f"axis {axis}), got {source.shape}")
    n = _static_dim(x, axis, "index_add")
    after = len(x.shape) - axis - 1
    if alpha != 1:
        source = apply("mul", [source, alpha])
    se = apply("expand_dims", [source], axes=(axis + 1,))              # (.., k, 1, ..)
    ie = apply("reshape", [_checked(idx, n)], shape=(-1, 1) + (1,) * after)
    cond = apply("eq", [ie, _arange(n, after, x)])                     # (k, n, 1..)
    added = _select_sum(cond, se, axis, source)
    if np.dtype(added.dtype).kind == "f":
        bad = _outside(idx, n)
        any_bad = apply("sum", [apply("cast", [bad], dtype="int32")], axis=None, keepdims=False)
        added = apply("where", [apply("gt", [any_bad, 0]), as_tensor(float("nan"), like=added), added])
    return _add_keep(x, added)


# ---- integer-array indexing for getitem ----------------------------------------------

def is_array_index(item: object) -> TypeGuard[Tensor | Array | list[Any]]:
    """Whether an item of a getitem index is an integer tensor / array (advanced indexing)."""
    if isinstance(item, Tensor):
        return True
    return isinstance(item, (np.ndarray, list)) and not isinstance(item, (str, bytes))


def getitem_with_array(x: Tensor, index: Index, basic_getitem: Callable[[Tensor, Index], Tensor]) -> Tensor:
    """``x[index]`` where one item of ``index`` is an integer tensor / array: basic indexing
    for the other items, then :func:`take` along the axis the array item addresses.
    Negative indices wrap (NumPy), indices outside [-size, size) are errors."""
    items = index if isinstance(index, tuple) else (index,)
    arrays = [k for k, it in enumerate(items) if is_array_index(it)]
    if len(arrays) > 1:
        raise TypeError("getitem: at most one integer-array index is supported (got "
                        f"{len(arrays)}); index one axis at a time")
    k = arrays[0]
    array_item = cast("Tensor | Array | list[Any]", items[k])         # is_array_index picked it
    idx = _index_tensor(array_item, x, "getitem")
    consumed = sum(1 for it in items if it is not None and it is not Ellipsis)
    axis = 0
    for it in items[:k]:
        if it is Ellipsis:
            axis += len(x.shape) - consumed
        elif isinstance(it, (int, np.integer)):
            continue
        else:
            axis += 1
    basic = basic_getitem(x, items[:k] + (slice(None),) + items[k + 1:])
    n = _static_dim(basic, axis, "getitem")
    if not isinstance(array_item, Tensor):
        arr = np.asarray(array_item)
        if arr.size and (arr.min() < -n or arr.max() >= n):
            bad = arr[(arr < -n) | (arr >= n)].flat[0]
            raise IndexError(f"getitem: index {bad} is out of range for axis {axis} with size {n}")
        return _take(basic, axis, np.where(arr < 0, arr + n, arr).astype(np.int64))
    # checked before the wrap-around: the check on the wrapped value could not name the leaf
    idx = _checked(idx, n, low=-n)
    wrapped = apply("where", [apply("lt", [idx, 0]), apply("add", [idx, n]), idx])
    return _take(basic, axis, wrapped)
