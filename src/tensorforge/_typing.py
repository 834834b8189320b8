"""Type aliases shared by the public API's annotations.

One place, so that every op, layer and optimizer says "tensor-like" or "axis" the same way and a
user's `mypy --strict` sees the same names in every signature.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence, TypeAlias, Union

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
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

# -- nn / optim / export (helper types-nn) --------------------------------------------------------
import os  # noqa: E402  (kept with the aliases that use it)
from typing import Callable  # noqa: E402

#: A file path as the export and checkpoint functions take it.
PathLike: TypeAlias = Union[str, "os.PathLike[str]"]
#: A layer's weight initialiser: a name from `tg.init` ("he_normal", "torch", ...) or a function
#: (shape, seed=...) -> array.
InitLike: TypeAlias = Union[str, Callable[..., Array]]
#: A per-spatial-axis size (kernel, stride, padding, dilation): one int for every axis, or one each.
IntOrTuple: TypeAlias = Union[int, Sequence[int]]
