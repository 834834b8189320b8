"""Reductions (sum, max, min, argmax, numel) and the row-wise softmax family.

softmax, log_softmax and logsumexp are primitives (not compositions) so that
they are computed stably in one place and become one row-wise kernel later.
"""
from __future__ import annotations

import math

import numpy as np

from . import signed_zero   # max/min of +-0: IEEE 754-2019 (+0 > -0) on every backend
from .._typing import Array, Axis, DTypeLike, TensorLike
from ..graph import Tensor
from ._types import Gradients, InferredShape, InferredType, InputTypes
from .registry import ShapeError, VJPContext, apply, normalize_axis, register


def _reduced_shape(shape: InferredShape, axis: Axis, keepdims: bool) -> InferredShape:
    axes = normalize_axis(axis, len(shape))
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_type(types: InputTypes, axis: Axis = None, keepdims: bool = False) -> InferredType:
    (t,) = types
    return _reduced_shape(t.shape, axis, keepdims), t.dtype


def _max_type(types: InputTypes, axis: Axis = None, keepdims: bool = False) -> InferredType:
    """max has no identity: over an axis of size 0 it is an error (as torch.amax), raised when the
    shape is known, before anything runs, the same on every backend."""
    (t,) = types
    for a in normalize_axis(axis, len(t.shape)):
        if t.shape[a] == 0:
            raise ShapeError(f"max over axis {a} of a {t.shape} tensor: that axis has size 0, and the maximum "
                             f"of nothing is undefined (as in torch.amax; logsumexp gives -inf there)")
    return _reduce_type(types, axis, keepdims)


def _keep(g: Tensor, c: VJPContext) -> Tensor:
    """Bring a reduced gradient back to the input's rank (size-1 reduced axes)."""
    if c.attrs.get("keepdims", False):
        return g
    axes = normalize_axis(c.attrs.get("axis"), len(c.x.shape))
    return apply("expand_dims", [g], axes=axes) if axes else g


def _sum_type(types: InputTypes, axis: Axis = None, keepdims: bool = False) -> InferredType:
    """Sums of bools and integers count in int64 (as torch.sum and np.sum do): a sum of bools is a
    count, not a logical or."""
    shape, dtype = _reduce_type(types, axis, keepdims)
    return shape, dtype if np.dtype(dtype).kind == "f" else "int64"


def _sum_impl(x: Array, axis: Axis = None, keepdims: bool = False) -> Array:
    x = np.asarray(x)
    return np.asarray(np.sum(x, axis=axis, keepdims=keepdims, dtype=None if x.dtype.kind == "f" else np.int64))


register("sum", infer=_sum_type, impl=_sum_impl, n_inputs=1, family="reduce",
         vjp=lambda c, g: [apply("broadcast_like", [_keep(g, c), c.x])],
         doc="sum over axis (None: all), keepdims")


def _extremum_vjp(c: VJPContext, g: Tensor) -> Gradients:
    """max and min route the gradient to the selected entries; ties share it evenly (as
    torch.amax/amin do)."""
    x = c.x
    out = _keep(c.output, c)
    mask = apply("cast", [apply("eq", [x, apply("broadcast_like", [out, x])])], dtype=x.dtype)
    count = apply("sum", [mask], axis=c.attrs.get("axis"), keepdims=True)
    return [apply("mul", [apply("broadcast_like", [apply("div", [_keep(g, c), count]), x]), mask])]


register("max", infer=_max_type, n_inputs=1, family="reduce",
         impl=lambda x, axis=None, keepdims=False: signed_zero.reduce_max(x, axis=axis, keepdims=keepdims),
         vjp=_extremum_vjp, doc="maximum over axis; gradient routed to the maximal entries")
register("min", infer=_reduce_type, n_inputs=1, family="reduce",
         impl=lambda x, axis=None, keepdims=False: signed_zero.reduce_min(x, axis=axis, keepdims=keepdims),
         vjp=_extremum_vjp, doc="minimum over axis (a reduction of its own: exact at INT_MIN, on "
                                "unsigned and bool); gradient routed to the minimal entries")


def _argmax_type(types: InputTypes, axis: int = -1, keepdims: bool = False) -> InferredType:
    (t,) = types
    return _reduced_shape(t.shape, axis, keepdims), "int64"


register("argmax", infer=_argmax_type, n_inputs=1, family="reduce", differentiable=False,
         impl=lambda x, axis=-1, keepdims=False: np.asarray(np.argmax(x, axis=axis, keepdims=keepdims)).astype(np.int64),
         doc="index of the maximum along one axis")


def _numel_type(types: InputTypes, axis: Axis = None, dtype: DTypeLike = "float32") -> InferredType:
    (t,) = types
    normalize_axis(axis, len(t.shape))
    return (), dtype


def _numel_impl(x: Array, axis: Axis = None, dtype: DTypeLike = "float32") -> Array:
    axes = normalize_axis(axis, x.ndim)
    return np.asarray(math.prod(x.shape[a] for a in axes), dtype=dtype)


register("numel", infer=_numel_type, impl=_numel_impl, n_inputs=1, shape_only_inputs=(0,),
         differentiable=False, family="reduce",
         doc="number of elements over axis, as a scalar (x read for its shape only; folds to a constant)")


# ---- softmax family (along one axis, default the last) ---------------------------------

def _row_type(types: InputTypes, axis: int = -1) -> InferredType:
    (t,) = types
    if np.dtype(t.dtype).kind != "f":
        raise ShapeError(f"expects a floating-point tensor, got {t.dtype}")
    normalize_axis(axis, len(t.shape))
    return t.shape, t.dtype


def _row_max(x: Array, axis: int) -> Array:
    """Row maxima, -inf for a row of length 0 (as torch: softmax of nothing is empty, logsumexp -inf)."""
    out: Array = np.max(x, axis=axis, keepdims=True, initial=-np.inf)
    return out


def _softmax_ref(x: Array, axis: int = -1) -> Array:
    e = np.exp(x - _row_max(x, axis))
    out: Array = e / np.sum(e, axis=axis, keepdims=True)
    return out


def _log_softmax_ref(x: Array, axis: int = -1) -> Array:
    z = x - _row_max(x, axis)
    with np.errstate(divide="ignore"):      # log(0) = -inf over an empty row
        out: Array = z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    return out


def _logsumexp_ref(x: Array, axis: int = -1, keepdims: bool = False) -> Array:
    m = _row_max(x, axis)
    m = np.where(np.isfinite(m), m, 0.0).astype(x.dtype)   # rows of -inf (or with +inf): -inf (+inf), not NaN
    with np.errstate(divide="ignore"):      # log(0) = -inf over an empty row
        out: Array = m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax_vjp(c: VJPContext, g: Tensor) -> Gradients:
    axis = c.attrs.get("axis", -1)
    y = c.output
    dot = apply("sum", [apply("mul", [g, y])], axis=axis, keepdims=True)
    return [apply("mul", [y, apply("sub", [g, dot])])]


def _log_softmax_vjp(c: VJPContext, g: Tensor) -> Gradients:
    axis = c.attrs.get("axis", -1)
    p = apply("exp", [c.output])
    total = apply("sum", [g], axis=axis, keepdims=True)
    return [apply("sub", [g, apply("mul", [p, total])])]


def _logsumexp_vjp(c: VJPContext, g: Tensor) -> Gradients:
    axis = c.attrs.get("axis", -1)
    p = apply("softmax", [c.x], axis=axis)
    return [apply("mul", [p, _keep(g, c)])]


register("softmax", infer=_row_type, impl=_softmax_ref, vjp=_softmax_vjp, n_inputs=1, family="reduce",
         doc="exp(x - max) / sum(exp(x - max)) along axis")
register("log_softmax", infer=_row_type, impl=_log_softmax_ref, vjp=_log_softmax_vjp, n_inputs=1,
         family="reduce", doc="x - logsumexp(x) along axis, computed stably")
register("logsumexp", infer=_reduce_type, impl=_logsumexp_ref, vjp=_logsumexp_vjp, n_inputs=1,
         family="reduce", doc="log(sum(exp(x))) along axis, computed stably")


# ---- public functions ------------------------------------------------------------------

def _axis(axis: Axis) -> int | tuple[int, ...] | None:
    return axis if axis is None or isinstance(axis, int) else tuple(int(a) for a in axis)


def sum(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (None: every axis)."""
    return apply("sum", [x], axis=_axis(axis), keepdims=bool(keepdims))


def max(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis``."""
    return apply("max", [x], axis=_axis(axis), keepdims=bool(keepdims))


def min(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Minimum over ``axis``."""
    return apply("min", [x], axis=_axis(axis), keepdims=bool(keepdims))


def mean(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis``: sum / number of elements (bound at call time)."""
    from ..graph import as_tensor
    x = as_tensor(x)
    if np.dtype(x.dtype).kind != "f":  # a mean of ints or bools (an accuracy) is a float, not truncated
        x = apply("cast", [x], dtype="float32")
    return apply("div", [sum(x, axis, keepdims), apply("numel", [x], axis=_axis(axis), dtype=x.dtype)])


def var(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Biased variance (divides by N), as normalisation layers use."""
    mu = mean(x, axis, keepdims=True)
    d = apply("sub", [x, mu])
    return mean(apply("mul", [d, d]), axis, keepdims)


def argmax(x: TensorLike, axis: int = -1, keepdims: bool = False) -> Tensor:
    return apply("argmax", [x], axis=int(axis), keepdims=bool(keepdims))


def softmax(x: TensorLike, axis: int = -1) -> Tensor:
    return apply("softmax", [x], axis=int(axis))


def log_softmax(x: TensorLike, axis: int = -1) -> Tensor:
    return apply("log_softmax", [x], axis=int(axis))


def logsumexp(x: TensorLike, axis: int = -1, keepdims: bool = False) -> Tensor:
    return apply("logsumexp", [x], axis=int(axis), keepdims=bool(keepdims))
