"""Type aliases for the op callbacks of the nn, loss, pooling, reduction, convolution, scan and
sort families: what a shape rule receives and returns, what a pullback returns.

The first four have the names and meanings of ops/_types.py's (the other op families'), so the
two modules merge into one; ``IntOrTuple`` is the alias _typing.py gives the layers. Names for
annotations only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, TypeAlias, Union

from .._typing import DTypeLike

if TYPE_CHECKING:
    from ..graph import Tensor
    from .registry import TensorType

#: A shape as a type rule gives it: ``None`` marks a dimension known only at run time.
InferredShape: TypeAlias = tuple[Union[int, None], ...]
#: What a type rule returns: the output's shape and dtype (a dtype name or anything np.dtype takes).
InferredType: TypeAlias = tuple[Sequence[Union[int, None]], DTypeLike]
#: The input types a type rule receives, one per operand.
InputTypes: TypeAlias = Sequence["TensorType"]
#: What a pullback returns: one gradient per input, None where there is none (or it is not needed).
Gradients: TypeAlias = list[Union["Tensor", None]]
#: A (height, width) pair: kernel size, stride, padding or dilation of a 2-d window.
Pair: TypeAlias = tuple[int, int]
#: A per-spatial-axis size (kernel, stride, padding, dilation): one int for every axis, or one each.
IntOrTuple: TypeAlias = Union[int, Sequence[int]]
