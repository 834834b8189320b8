"""Type aliases for the op callbacks of the nn, loss, pooling, reduction, convolution, scan and
sort families: what a shape rule receives and returns, what a pullback returns.

(ops/_types.py holds the same kind of aliases for the other families; the two are meant to
be merged.) Runtime-free: only names for annotations.
"""
from __future__ import annotations

from typing import Sequence, TypeAlias, Union

from .._typing import DTypeLike
from ..graph import Tensor
from .registry import TensorType

#: A shape while the graph is built: a dimension is None when known only at call time.
SymShape: TypeAlias = tuple[Union[int, None], ...]
#: What a shape rule (OpDef.infer) receives: the type of each input.
InTypes: TypeAlias = Sequence[TensorType]
#: What a shape rule returns: the output's shape and dtype (the registry turns it into a name).
InferResult: TypeAlias = tuple[SymShape, DTypeLike]
#: What a pullback (OpDef.vjp) returns: a gradient per input, None where there is none.
Grads: TypeAlias = list[Union[Tensor, None]]
#: A (height, width) pair: kernel size, stride, padding, dilation.
Pair: TypeAlias = tuple[int, int]
#: An int, or one int per spatial axis (a kernel size, stride, padding or dilation argument).
IntOrInts: TypeAlias = Union[int, Sequence[int]]
