"""Linear algebra: matrix multiplication (2-D and batched, NumPy semantics)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._typing import TensorLike
from .registry import ShapeError, apply, broadcast_shapes, register, result_dtype

if TYPE_CHECKING:
    from ..graph import Tensor
    from ._types import Gradients, InferredType, InputTypes
    from .registry import VJPContext


def _matmul_type(types: InputTypes) -> InferredType:
    a, b = types
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise ShapeError("the matmul primitive needs operands of rank >= 2 (tg.matmul lifts vectors)")
    k1, k2 = a.shape[-1], b.shape[-2]
    if k1 is not None and k2 is not None and k1 != k2:
        raise ShapeError(f"inner dimensions differ: {a.shape} @ {b.shape} ({k1} != {k2})")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return batch + (a.shape[-2], b.shape[-1]), result_dtype(a.dtype, b.dtype)


def _swap(t: Tensor) -> Tensor:
    """Transpose the last two axes."""
    nd = len(t.shape)
    return apply("transpose", [t], axes=tuple(range(nd - 2)) + (nd - 1, nd - 2))


def _matmul_vjp(c: VJPContext, g: Tensor) -> Gradients:
    a, b = c.inputs
    ga = apply("matmul", [g, _swap(b)]) if c.needs[0] else None
    gb = apply("matmul", [_swap(a), g]) if c.needs[1] else None
    return [ga, gb]  # autodiff sums broadcast batch dimensions away


register("matmul", infer=_matmul_type, impl=lambda a, b: np.asarray(np.matmul(a, b)), vjp=_matmul_vjp,
         n_inputs=2, family="linalg", doc="matrix product with NumPy semantics (batched, broadcasting)")


def matmul(a: TensorLike, b: TensorLike) -> Tensor:
    """a @ b with NumPy semantics: 2-D, batched with broadcasting, or with a vector
    operand (lifted to a matrix, multiplied, and squeezed back)."""
    from ..graph import as_tensor
    ta, tb = as_tensor(a), as_tensor(b)
    if len(ta.shape) == 0 or len(tb.shape) == 0:
        raise ShapeError("matmul: operands must not be scalars; use * for scaling")
    a_vec, b_vec = len(ta.shape) == 1, len(tb.shape) == 1
    a2 = apply("expand_dims", [ta], axes=(0,)) if a_vec else ta
    b2 = apply("expand_dims", [tb], axes=(1,)) if b_vec else tb
    out = apply("matmul", [a2, b2])
    squeeze = ((len(out.shape) - 2,) if a_vec else ()) + ((len(out.shape) - 1,) if b_vec else ())
    return apply("squeeze", [out], axes=squeeze) if squeeze else out
