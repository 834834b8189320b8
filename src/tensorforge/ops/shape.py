"""Shape ops: reshape, transpose, expand_dims, broadcasting, and their *_like forms.

The ``*_like`` ops take a reference tensor whose *shape only* is read. Pullbacks
use them so that gradients get their primal's shape even when that shape holds
dimensions (``None``) that are bound only at call time.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .._typing import Array, ShapeSpec, TensorLike
from ._types import Gradients, InferredType, InputTypes
from .registry import ShapeError, apply, broadcast_shapes, normalize_axis, register

if TYPE_CHECKING:
    from ..graph import Tensor
    from .registry import VJPContext


def _known_size(shape: Sequence[int | None]) -> int | None:
    if any(d is None for d in shape):
        return None
    return math.prod(d for d in shape if d is not None)


# ---- reshape ---------------------------------------------------------------------------

def _reshape_type(types: InputTypes, shape: Sequence[int]) -> InferredType:
    (t,) = types
    shape = tuple(int(d) for d in shape)
    if sum(d == -1 for d in shape) > 1:
        raise ShapeError(f"at most one -1 allowed in target shape {shape}")
    if any(d < -1 for d in shape):
        raise ShapeError(f"invalid target shape {shape}")
    size = _known_size(t.shape)
    out: tuple[int | None, ...]
    if -1 in shape:
        rest = math.prod(d for d in shape if d != -1)
        if size is None:
            out = tuple(None if d == -1 else d for d in shape)
        else:
            if rest == 0 or size % rest:
                raise ShapeError(f"cannot reshape {size} elements into {shape}")
            out = tuple(size // rest if d == -1 else d for d in shape)
    else:
        out = shape
        if size is not None and size != math.prod(shape):
            raise ShapeError(f"cannot reshape {t.shape} ({size} elements) into {shape}")
    return out, t.dtype


register("reshape", infer=_reshape_type, n_inputs=1, family="shape",
         impl=lambda x, shape: np.reshape(x, shape),
         vjp=lambda c, g: [apply("reshape_like", [g, c.x])],
         doc="reshape(x, shape); one -1 may be inferred")


def _like_type(types: InputTypes) -> InferredType:
    g, ref = types
    return ref.shape, g.dtype


def _reshape_like_type(types: InputTypes) -> InferredType:
    g, ref = types
    a, b = _known_size(g.shape), _known_size(ref.shape)
    if a is not None and b is not None and a != b:
        raise ShapeError(f"cannot reshape {g.shape} into {ref.shape}")
    return ref.shape, g.dtype


register("reshape_like", infer=_reshape_like_type, n_inputs=2, shape_only_inputs=(1,), family="shape",
         impl=lambda x, ref: np.reshape(x, ref.shape),
         vjp=lambda c, g: [apply("reshape_like", [g, c.inputs[0]]), None],
         doc="reshape x to the shape of ref (ref is read for its shape only)")


# ---- transpose -------------------------------------------------------------------------

def _transpose_type(types: InputTypes, axes: Sequence[int] | None = None) -> InferredType:
    (t,) = types
    axes = tuple(reversed(range(len(t.shape)))) if axes is None else tuple(axes)
    if sorted(a % max(len(t.shape), 1) for a in axes) != list(range(len(t.shape))):
        raise ShapeError(f"axes {axes} are not a permutation of {len(t.shape)} dimensions")
    return tuple(t.shape[a] for a in axes), t.dtype


def _transpose_vjp(c: VJPContext, g: Tensor) -> Gradients:
    axes = c.attrs.get("axes")
    nd = len(c.x.shape)
    axes = tuple(reversed(range(nd))) if axes is None else tuple(a % nd for a in axes)
    return [apply("transpose", [g], axes=tuple(int(i) for i in np.argsort(axes)))]


register("transpose", infer=_transpose_type, n_inputs=1, family="shape",
         impl=lambda x, axes=None: np.asarray(np.transpose(x, axes), order="C"), vjp=_transpose_vjp,
         doc="permute dimensions (default: reverse them)")


# ---- expand_dims / squeeze -------------------------------------------------------------

def _expand_type(types: InputTypes, axes: Sequence[int]) -> InferredType:
    (t,) = types
    nd = len(t.shape) + len(axes)
    axes = normalize_axis(axes, nd)
    it = iter(t.shape)
    return tuple(1 if i in axes else next(it) for i in range(nd)), t.dtype


register("expand_dims", infer=_expand_type, n_inputs=1, family="shape",
         impl=lambda x, axes: np.expand_dims(x, tuple(axes)),
         vjp=lambda c, g: [apply("reshape_like", [g, c.x])],
         doc="insert size-1 axes")


def _squeeze_type(types: InputTypes, axes: Sequence[int]) -> InferredType:
    (t,) = types
    axes = normalize_axis(axes, len(t.shape))
    for a in axes:
        if t.shape[a] not in (1, None):
            raise ShapeError(f"cannot squeeze axis {a} of size {t.shape[a]}")
    return tuple(d for i, d in enumerate(t.shape) if i not in axes), t.dtype


register("squeeze", infer=_squeeze_type, n_inputs=1, family="shape",
         impl=lambda x, axes: np.squeeze(x, tuple(axes)),
         vjp=lambda c, g: [apply("reshape_like", [g, c.x])], doc="remove size-1 axes")


# ---- broadcasting ----------------------------------------------------------------------

def _broadcast_to_type(types: InputTypes, shape: Sequence[int | None]) -> InferredType:
    (t,) = types
    shape = tuple(shape)
    if any(d is None for d in shape):  # the run would have no size for it
        raise ShapeError(f"target shape {shape} has an unknown (None) dimension; broadcast against a "
                         "tensor of that shape instead (x + zeros, or the broadcast_like op)")
    out = broadcast_shapes(t.shape, shape)
    if len(t.shape) > len(shape) or any(o != s and s is not None for o, s in zip(out, shape)):
        raise ShapeError(f"cannot broadcast {t.shape} to {shape}")
    return shape, t.dtype


register("broadcast_to", infer=_broadcast_to_type, n_inputs=1, family="shape",
         impl=lambda x, shape: np.broadcast_to(x, shape),
         vjp=lambda c, g: [apply("sum_to_like", [g, c.x])], doc="broadcast to a shape")


def _broadcast_like_type(types: InputTypes) -> InferredType:
    x, ref = types
    broadcast_shapes(x.shape, ref.shape)
    if len(x.shape) > len(ref.shape):
        raise ShapeError(f"cannot broadcast {x.shape} to the lower-rank {ref.shape}")
    return ref.shape, x.dtype


register("broadcast_like", infer=_broadcast_like_type, n_inputs=2, shape_only_inputs=(1,), family="shape",
         impl=lambda x, ref: np.broadcast_to(x, ref.shape),
         vjp=lambda c, g: [apply("sum_to_like", [g, c.inputs[0]]), None],
         doc="broadcast x to the shape of ref (ref read for its shape only)")


def sum_to_shape(x: Array, shape: Sequence[int]) -> Array:
    """Sum the broadcast dimensions of ``x`` away so that it has ``shape``."""
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and x.shape[lead + i] != 1)
    out = x.sum(axis=axes, keepdims=True) if axes else x
    return out.reshape(shape)


def _sum_to_like_type(types: InputTypes) -> InferredType:
    g, ref = types
    if len(ref.shape) > len(g.shape):
        raise ShapeError(f"cannot sum {g.shape} down to the higher-rank {ref.shape}")
    return ref.shape, g.dtype


register("sum_to_like", infer=_sum_to_like_type, n_inputs=2, shape_only_inputs=(1,), family="shape",
         impl=lambda g, ref: np.asarray(sum_to_shape(g, ref.shape), order="C"),
         vjp=lambda c, g: [apply("broadcast_like", [g, c.inputs[0]]), None],
         doc="sum the broadcast axes of g so that it has the shape of ref (the unbroadcast of autodiff)")


# ---- public functions ------------------------------------------------------------------

def reshape(x: TensorLike, shape: int | ShapeSpec) -> Tensor:
    """Reshape; one dimension may be -1. ``None`` in ``shape`` also means "infer"."""
    shape = (shape,) if isinstance(shape, int) else tuple(-1 if d is None else int(d) for d in shape)
    return apply("reshape", [x], shape=shape)


def transpose(x: TensorLike, axes: Sequence[int] | None = None) -> Tensor:
    """Permute dimensions (default: reverse them)."""
    return apply("transpose", [x], axes=None if axes is None else tuple(int(a) for a in axes))


def expand_dims(x: TensorLike, axis: int | Sequence[int]) -> Tensor:
    return apply("expand_dims", [x], axes=(axis,) if isinstance(axis, int) else tuple(axis))


def squeeze(x: TensorLike, axis: int | Sequence[int]) -> Tensor:
    return apply("squeeze", [x], axes=(axis,) if isinstance(axis, int) else tuple(axis))


def broadcast_to(x: TensorLike, shape: Sequence[int]) -> Tensor:
    return apply("broadcast_to", [x], shape=tuple(shape))
