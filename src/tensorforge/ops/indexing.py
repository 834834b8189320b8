"""Indexing ops: basic NumPy indexing (getitem), concat and one_hot.

``getitem`` supports what NumPy calls *basic* indexing: integers (negative too),
slices with any step, Ellipsis and None (a new axis). The index is normalised at
build time into a hashable ``index`` attribute with one entry per item, Ellipsis
expanded (the rank is always known) and trailing axes filled with full slices:

    ("int", k)                   pick position k (k < 0 counts from the end)
    ("slice", start, stop, step) start/stop may be None; step is a non-zero int
    ("new",)                     insert an axis of size 1

Its gradient is the primitive ``getitem_grad(g, x_ref)`` that scatters g into
zeros of x's shape (x read for its shape only).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence, TypeAlias

import numpy as np

from .._typing import Array, DTypeLike, TensorLike
from ..graph import Tensor, as_tensor
from ._types import Gradients, InferredType, InputTypes
from .registry import ShapeError, apply, normalize_axis, register, result_dtype

if TYPE_CHECKING:
    from .._typing import Index          # what x[...] takes (added to _typing.py by helper types-core)
    from .registry import VJPContext

#: One entry of the ``index`` attribute, a tuple tagged by its first item (module docstring):
#: ("int", k), ("slice", start, stop, step) or ("new",); the other items' types follow the tag.
IndexEntry: TypeAlias = tuple[Any, ...]
#: The normalised ``index`` attribute of getitem: one entry per item.
IndexAttr: TypeAlias = tuple[IndexEntry, ...]

# ---- index normalisation ----------------------------------------------------------------


def _as_int(v: object, what: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"getitem: {what} must be an int or None, got {v!r} (only basic indexing "
                        "with ints, slices, Ellipsis and None is supported)")
    return int(v)


def normalize_index(index: Index, ndim: int) -> IndexAttr:
    """Turn a Python index into the ``index`` attribute (see the module docstring)."""
    items = index if isinstance(index, tuple) else (index,)
    entries: list[Any] = []             # IndexEntry items, and Ellipsis until it is expanded
    n_ellipsis, consumed = 0, 0
    for item in items:
        if item is Ellipsis:
            n_ellipsis += 1
            entries.append(Ellipsis)
        elif item is None:
            entries.append(("new",))
        elif isinstance(item, slice):
            step = _as_int(item.step, "a slice step")
            if step == 0:
                raise ValueError("getitem: slice step cannot be zero")
            entries.append(("slice", _as_int(item.start, "a slice start"), _as_int(item.stop, "a slice stop"),
                            1 if step is None else step))
            consumed += 1
        elif isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
            entries.append(("int", int(item)))
            consumed += 1
        else:
            raise TypeError(f"getitem: unsupported index {item!r} of type {type(item).__name__}; only "
                            "basic indexing (ints, slices, Ellipsis, None) is supported")
    if n_ellipsis > 1:
        raise IndexError("getitem: an index can only have a single Ellipsis (...)")
    if consumed > ndim:
        raise ShapeError(f"too many indices: {consumed} for a tensor of rank {ndim}")
    fill = [("slice", None, None, 1)] * (ndim - consumed)
    if n_ellipsis:
        at = entries.index(Ellipsis)
        entries[at:at + 1] = fill
    else:
        entries += fill
    return tuple(entries)


def index_to_python(index: IndexAttr) -> tuple[int | slice | None, ...]:
    """The ``index`` attribute back as a NumPy index tuple."""
    out: list[int | slice | None] = []
    for e in index:
        kind = e[0]
        if kind == "int":
            out.append(e[1])
        elif kind == "slice":
            out.append(slice(e[1], e[2], e[3]))
        else:
            out.append(None)
    return tuple(out)


def _slice_length(start: int | None, stop: int | None, step: int, dim: int | None) -> int | None:
    """Length of a slice of an axis of size ``dim`` (None: unknown until call time).

    With an unknown dim the length is static only when both ends are known and
    non-negative (the axis is then assumed long enough; the true length is used at
    call time, when every shape is known)."""
    if dim is not None:
        return len(range(*slice(start, stop, step).indices(dim)))
    if step > 0:
        start = 0 if start is None else start
        if start >= 0 and stop is not None and stop >= 0:
            return max(0, math.ceil((stop - start) / step))
        return None
    if start is None or start < 0:
        return None
    if stop is None:                      # down to the first element
        return start // -step + 1
    if stop >= 0:
        return max(0, math.ceil((start - stop) / -step))
    return None


def getitem_shape(shape: Sequence[int | None], index: IndexAttr) -> tuple[int | None, ...]:
    out: list[int | None] = []
    axis = 0
    for e in index:
        if e[0] == "new":
            out.append(1)
            continue
        dim = shape[axis]
        if e[0] == "int":
            k = e[1]
            if dim is not None and not -dim <= k < dim:
                raise ShapeError(f"index {k} is out of range for axis {axis} with size {dim}")
        else:
            out.append(_slice_length(e[1], e[2], e[3], dim))
        axis += 1
    if axis != len(shape):
        raise ShapeError(f"index {index} addresses {axis} axes of a tensor of rank {len(shape)}")
    return tuple(out)


# ---- getitem / getitem_grad ------------------------------------------------------------

def _getitem_type(types: InputTypes, index: IndexAttr) -> InferredType:
    (x,) = types
    return getitem_shape(x.shape, index), x.dtype


def _getitem_ref(x: Array, index: IndexAttr) -> Array:
    return np.array(x[index_to_python(index)], order="C")  # a copy: never alias a parameter buffer


register("getitem", infer=_getitem_type, impl=_getitem_ref, n_inputs=1, family="indexing",
         vjp=lambda c, g: [apply("getitem_grad", [g, c.x], index=c.attrs["index"])],
         doc="basic NumPy indexing: ints, slices (any step), Ellipsis, None")


def _getitem_grad_type(types: InputTypes, index: IndexAttr) -> InferredType:
    g, ref = types
    want = getitem_shape(ref.shape, index)
    if len(want) != len(g.shape) or any(a is not None and b is not None and a != b
                                        for a, b in zip(want, g.shape)):
        raise ShapeError(f"gradient of shape {g.shape} does not match the indexed shape {want}")
    return ref.shape, g.dtype


def _getitem_grad_ref(g: Array, ref: Array, index: IndexAttr) -> Array:
    out = np.zeros(ref.shape, dtype=g.dtype)
    out[index_to_python(index)] = g       # basic indexing never repeats an element: plain assignment
    return out


register("getitem_grad", infer=_getitem_grad_type, impl=_getitem_grad_ref, n_inputs=2,
         shape_only_inputs=(1,), family="indexing",
         vjp=lambda c, g: [apply("getitem", [g], index=c.attrs["index"]), None],
         doc="scatter g into zeros of x_ref's shape at x_ref[index] (x_ref read for its shape only)")


def getitem(x: TensorLike, index: Index) -> Tensor:
    """``x[index]`` with basic NumPy indexing (also ``Tensor.__getitem__``), plus one
    integer-array item (a tg Tensor or NumPy int array: ``x[idx]``, ``x[:, idx]``; negative
    indices wrap) that picks along its axis via tg.take."""
    x = as_tensor(x)
    from .gather import getitem_with_array, is_array_index
    if any(is_array_index(it) for it in (index if isinstance(index, tuple) else (index,))):
        return getitem_with_array(x, index, getitem)
    try:
        attr = normalize_index(index, len(x.shape))
    except ShapeError as e:
        raise ShapeError(f"getitem: {e} (tensor {x.name!r} of shape {x.shape})") from None
    return apply("getitem", [x], index=attr)


# ---- concat ----------------------------------------------------------------------------

def _concat_type(types: InputTypes, axis: int) -> InferredType:
    if not types:
        raise ShapeError("needs at least one tensor")
    ndim = len(types[0].shape)
    if ndim == 0:
        raise ShapeError("cannot concatenate scalars (0-d tensors)")
    if any(len(t.shape) != ndim for t in types):
        raise ShapeError("all tensors must have the same rank")
    (axis,) = normalize_axis(axis, ndim)
    out: list[int | None] = []
    for a in range(ndim):
        dims = [t.shape[a] for t in types]
        if a == axis:
            out.append(None if None in dims else sum(d for d in dims if d is not None))
            continue
        known = {d for d in dims if d is not None}
        if len(known) > 1:
            raise ShapeError(f"sizes differ along axis {a} (only axis {axis} may differ): "
                             + ", ".join(map(str, dims)))
        out.append(known.pop() if known else None)
    return tuple(out), result_dtype(*[t.dtype for t in types])


def _concat_vjp(c: VJPContext, g: Tensor) -> Gradients:
    axis = c.attrs["axis"]
    sizes = [x.shape[axis] for x in c.inputs]
    if None not in sizes:                 # static offsets: plain slices of g
        out: Gradients = []
        start = 0
        for size, need in zip(sizes, c.needs):
            index = tuple(("slice", None, None, 1) if a != axis else ("slice", start, start + size, 1)
                          for a in range(len(g.shape)))
            out.append(apply("getitem", [g], index=index) if need else None)
            start += size
        return out
    # offsets known only at call time: concat_grad reads them from the inputs' shapes
    return [apply("concat_grad", [g, _prefix_ref(c.inputs[:k], c.inputs[k], axis), x], axis=axis)
            if need else None for k, (x, need) in enumerate(zip(c.inputs, c.needs))]


def _prefix_ref(before: Sequence[Tensor], first: Tensor, axis: int) -> Tensor:
    """An empty tensor whose size along ``axis`` is the summed size of ``before`` (the offset
    of the next part). Every other axis is sliced to size 0: the parts then agree there
    whatever their sizes (a call-time None, a 0), and no element is ever read."""
    def thin(x: Tensor, stop: int | None = None) -> Tensor:
        return apply("getitem", [x], index=tuple(
            ("slice", 0, stop, 1) if a == axis else ("slice", 0, 0, 1) for a in range(len(x.shape))))
    if not before:
        return thin(first, stop=0)        # offset 0
    parts = [thin(x) for x in before]
    return parts[0] if len(parts) == 1 else apply("concat", parts, axis=axis)


register("concat", infer=_concat_type, impl=lambda *xs, axis: np.concatenate(xs, axis=axis),
         vjp=_concat_vjp, n_inputs=None, family="indexing",
         doc="join tensors along an existing axis (all other sizes must agree)")


def _concat_grad_type(types: InputTypes, axis: int) -> InferredType:
    g, before, ref = types
    if len(g.shape) != len(ref.shape) or len(before.shape) != len(ref.shape):
        raise ShapeError("gradient and references must have the same rank")
    return ref.shape, g.dtype


def _concat_grad_ref(g: Array, before: Array, ref: Array, axis: int) -> Array:
    start = before.shape[axis]
    index = (slice(None),) * axis + (slice(start, start + ref.shape[axis]),)
    return np.array(g[index], order="C")


register("concat_grad", infer=_concat_grad_type, impl=_concat_grad_ref, n_inputs=3,
         shape_only_inputs=(1, 2), family="indexing",
         doc="the part of g that belongs to one concat input, when offsets are known only at call "
             "time: g[off : off + ref.shape[axis]] along axis with off = before.shape[axis] "
             "(before and ref are read for their shapes only; no gradient of its own)")


def concat(tensors: Sequence[TensorLike], axis: int = 0) -> Tensor:
    """Join ``tensors`` along ``axis``; every other dimension must agree."""
    given = list(tensors)
    if not given:
        raise ValueError("concat: needs at least one tensor")
    like = next((t for t in given if isinstance(t, Tensor)), None)
    parts = [as_tensor(t, like=like) for t in given]
    ndim = len(parts[0].shape)
    if ndim == 0:
        raise ShapeError("concat: cannot concatenate scalars (0-d tensors)")
    (axis,) = normalize_axis(int(axis), ndim)
    return apply("concat", parts, axis=axis)


# ---- one_hot ---------------------------------------------------------------------------

def _one_hot_type(types: InputTypes, depth: int, dtype: str = "float32") -> InferredType:
    (labels,) = types
    if np.dtype(labels.dtype).kind not in "iu":
        raise ShapeError(f"labels must be integers, got {labels.dtype}")
    if int(depth) < 1:
        raise ShapeError(f"depth must be >= 1, got {depth}")
    return tuple(labels.shape) + (int(depth),), dtype


def _one_hot_ref(labels: Array, depth: int, dtype: str = "float32") -> Array:
    bad = (labels < 0) | (labels >= depth)
    if bad.any():
        # all-zero rows would hide a data bug (e.g. labels numbered from 1)
        raise ValueError(f"one_hot: label {labels[bad].flat[0]} is out of range [0, {depth}) "
                         f"({int(bad.sum())} bad label(s))")
    rows: Array = (labels[..., None] == np.arange(depth)).astype(dtype)
    return rows


register("one_hot", infer=_one_hot_type, impl=_one_hot_ref, n_inputs=1, differentiable=False,
         family="indexing", doc="integer labels (...) -> (..., depth) one-hot rows")


def one_hot(labels: TensorLike, depth: int, dtype: DTypeLike = "float32") -> Tensor:
    """One-hot rows: ``labels`` of shape (...) become (..., depth). Labels outside
    [0, depth) raise ValueError: tg.compile checks labels that come from an input,
    parameter or constant before each call, on every backend; labels computed by
    other ops raise on the interpreter, and compiled code gives a NaN row for them (a zero
    row for integer ``dtype``), so a loss built on them is NaN, never quietly wrong."""
    labels = as_tensor(labels)
    return apply("one_hot", [labels], depth=int(depth), dtype=np.dtype(dtype).name)
