"""Type aliases shared by the public API's annotations.

One place, so that every op, layer and optimizer says "tensor-like" or "axis" the same way and a
user's `mypy --strict` sees the same names in every signature.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, TypeAlias, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from types import EllipsisType

    from .graph import Tensor

#: A NumPy array of any dtype (the values the interpreter and the executables pass around).
Array: TypeAlias = npt.NDArray[Any]
#: What an op accepts as an input: a Tensor, or anything `tg.as_tensor` turns into a constant
#: (a Python number, a NumPy array or scalar, a nested list).
TensorLike: TypeAlias = Union["Tensor", npt.ArrayLike]
#: A concrete shape.
Shape: TypeAlias = tuple[int, ...]
#: A placeholder's declared shape: `None` marks a dimension (the batch) known only at run time.
ShapeSpec: TypeAlias = Sequence[Union[int, None]]
#: Which axes a reduction or a normalisation works over (None: all of them).
Axis: TypeAlias = Union[int, Sequence[int], None]
#: A dtype as users write it: "float32", np.float32 or np.dtype("float32").
DTypeLike: TypeAlias = Union[str, "np.dtype[Any]", type]
#: One item of a subscript: ``x[0]``, ``x[1:3]``, ``x[None]``, ``x[...]``, or an integer array
#: (a Tensor, a NumPy array or a list) that gathers.
IndexItem: TypeAlias = Union[int, "np.integer[Any]", slice, None, "EllipsisType", "Tensor", Array, Sequence[int]]
#: What ``Tensor.__getitem__`` takes: one item or a tuple of them.
Index: TypeAlias = Union[IndexItem, tuple[IndexItem, ...]]
#: Parameter updates as ``tg.compile`` and ``fit`` take them: (parameter, new value) pairs (what
#: ``optimizer.updates`` returns) or a dict from parameter to new value.
Updates: TypeAlias = Union[Mapping["Tensor", TensorLike], Iterable[tuple["Tensor", TensorLike]]]
#: A shape as initialisers and layers take it: one int (a vector's length) or a sequence of ints.
ShapeLike: TypeAlias = Union[int, Sequence[int]]

# -- nn / optim / export (helper types-nn) --------------------------------------------------------
#: A file path as the export and checkpoint functions take it.
PathLike: TypeAlias = Union[str, "os.PathLike[str]"]
#: A layer's weight initialiser: a name from `tg.init` ("he_normal", "torch", ...) or a function
#: (shape, seed=...) -> array.
InitLike: TypeAlias = Union[str, Callable[..., Array]]
#: A per-spatial-axis size (kernel, stride, padding, dilation): one int for every axis, or one each.
IntOrTuple: TypeAlias = Union[int, Sequence[int]]
