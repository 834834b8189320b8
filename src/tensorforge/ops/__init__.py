"""All ops, and the Python operators on Tensor that build them.

Importing this package registers every op family in the registry. The public
functions (``tg.relu``, ``tg.conv2d``, ...) are defined next to their op in the
family module and re-exported here.
"""
from __future__ import annotations

from typing import Any, Callable

from .._typing import DTypeLike, TensorLike
from ..graph import Tensor
from . import elementwise, shape, reduce, linalg, indexing, nn, random  # noqa: F401  (registers ops)
from .elementwise import (abs, elu, equal, greater, greater_equal, heaviside, leaky_relu, less, less_equal,
                          maximum, minimum, not_equal, pow, relu, sigmoid, sqrt, tanh)
from .registry import OPS, OpDef, ShapeError, apply, get_op, register
from .reduce import log_softmax, max, mean, min, softmax, sum
from .shape import broadcast_to, expand_dims, reshape, squeeze, transpose
from .linalg import matmul
from .indexing import concat, getitem, one_hot
from .nn import (batch_norm, binary_cross_entropy, dropout, group_norm, instance_norm, layer_norm, maxout, mse,
                 prelu, softmax_cross_entropy)
from .random import random_uniform, rng_counter
# -- issue 10's families, one module each ---------------------------------------------
# elementwise math (ops/math.py)
from . import math as _math_ops  # noqa: E402  (registers ops)
from .math import (acos, acosh, asin, asinh, atan, atan2, atanh, copysign, cos, cosh, erf, exp2, expm1,
                   gelu, lerp, log10, log1p, log2, logaddexp, reciprocal, rsqrt, sin, sinh, square, tan)
# predicates, rounding, integer, bitwise and logical ops, clamp (ops/rounding.py)
from . import rounding  # noqa: F401  (registers ops)
from .rounding import (bitwise_and, bitwise_left_shift, bitwise_not, bitwise_or, bitwise_right_shift,
                       bitwise_xor, ceil, clamp, clip, floor, floor_divide, fmod, isfinite, isinf, isnan,
                       logical_and, logical_not, logical_or, logical_xor, remainder, round, trunc)
# shape manipulation and indexing family (issue 10)
from . import manipulation, gather as _gather_module, einsum as _einsum_module  # noqa: F401
from .manipulation import (chunk, diag, diagonal, flip, masked_fill, meshgrid, repeat, repeat_interleave, roll,
                           split, stack, tile, tril, triu, unfold)
from .gather import (detach, embedding, gather, index_add, index_select, scatter_add, stop_gradient, take,
                     take_along_axis)
from .einsum import einsum
# scans, sorting and more reductions (compositions); these argmax, logsumexp and var extend the
# ones in .reduce (axis None / several axes / correction) and replace them as the public names
from .scan import cummax, cummin, cumprod, cumsum, logcumsumexp
from .sort import argsort, sort, topk
from .reductions import all, any, argmax, argmin, logsumexp, norm, prod, std, var
# padding, convolution, pooling and resizing (compositions; they extend nn's conv2d and pools)
from .padding import pad
from .convolution import conv1d, conv2d, conv3d, conv_transpose2d
from .pooling import (adaptive_avg_pool1d, adaptive_avg_pool2d, avg_pool1d, avg_pool2d, interpolate,
                      max_pool1d, max_pool2d)
# issue 10: activations, losses and attention as torch.nn.functional names them (softplus
# here replaces the plain elementwise one with its torch-compatible beta/threshold form)
from .activations import (celu, glu, hardsigmoid, hardswish, hardtanh, logsigmoid, mish, relu6, selu, silu,
                          softmin, softplus, softsign, swish)
from .losses import (binary_cross_entropy_probs, binary_cross_entropy_with_logits, cosine_similarity,
                     cross_entropy, hinge_embedding_loss, huber_loss, kl_div, l1_loss, margin_ranking_loss,
                     mse_loss, nll_loss, smooth_l1_loss)
from .attention import scaled_dot_product_attention


def add(a: TensorLike, b: TensorLike) -> Tensor: return apply("add", [a, b])
def sub(a: TensorLike, b: TensorLike) -> Tensor: return apply("sub", [a, b])
def mul(a: TensorLike, b: TensorLike) -> Tensor: return apply("mul", [a, b])
def div(a: TensorLike, b: TensorLike) -> Tensor: return apply("div", [a, b])
def neg(x: TensorLike) -> Tensor: return apply("neg", [x])
def exp(x: TensorLike) -> Tensor: return apply("exp", [x])
def log(x: TensorLike) -> Tensor: return apply("log", [x])
def sign(x: TensorLike) -> Tensor: return apply("sign", [x])
def where(cond: TensorLike, a: TensorLike, b: TensorLike) -> Tensor:
    """a where cond else b. Python scalars among a and b take the other branch's dtype (weak
    scalars, docs/numerics.md), never the condition's: where(c, 4, 2) is int64."""
    from ..graph import as_tensor
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    graph = cond.graph if isinstance(cond, Tensor) else None
    a, b = (as_tensor(v, like=like, graph=graph) for v in (a, b))
    return apply("where", [cond, a, b])
def cast(x: TensorLike, dtype: DTypeLike) -> Tensor: return apply("cast", [x], dtype=str(dtype))


# Python's operators on Tensor, installed with setattr because Tensor (graph.py) cannot import
# the registry; _tensor_methods.TensorMethods declares them with their types for checkers.
_OPERATORS: dict[str, Callable[..., Any]] = {
    "__add__": lambda a, b: apply("add", [a, b]),
    "__radd__": lambda a, b: apply("add", [b, a]),
    "__sub__": lambda a, b: apply("sub", [a, b]),
    "__rsub__": lambda a, b: apply("sub", [b, a]),
    "__mul__": lambda a, b: apply("mul", [a, b]),
    "__rmul__": lambda a, b: apply("mul", [b, a]),
    "__truediv__": lambda a, b: apply("div", [a, b]),
    "__rtruediv__": lambda a, b: apply("div", [b, a]),
    "__pow__": lambda a, b: pow(a, b),
    "__rpow__": lambda a, b: pow(b, a),
    "__matmul__": lambda a, b: matmul(a, b),
    "__rmatmul__": lambda a, b: matmul(b, a),
    "__neg__": lambda a: apply("neg", [a]),
    "__pos__": lambda a: a,
    "__abs__": lambda a: apply("abs", [a]),
    "__lt__": lambda a, b: apply("lt", [a, b]),
    "__le__": lambda a, b: apply("le", [a, b]),
    "__gt__": lambda a, b: apply("gt", [a, b]),
    "__ge__": lambda a, b: apply("ge", [a, b]),
    "__eq__": lambda a, b: apply("eq", [a, b]),
    "__ne__": lambda a, b: apply("ne", [a, b]),
    "__getitem__": lambda a, idx: getitem(a, idx),
    "reshape": lambda a, *shape: reshape(a, shape[0] if len(shape) == 1 and not isinstance(shape[0], int)
                                         else shape),
    "transpose": lambda a, *axes: transpose(a, axes or None),
    "sum": lambda a, axis=None, keepdims=False: sum(a, axis, keepdims),
    "mean": lambda a, axis=None, keepdims=False: mean(a, axis, keepdims),
    "max": lambda a, axis=None, keepdims=False: max(a, axis, keepdims),
    "astype": lambda a, dtype: cast(a, dtype),
}

# Tensor methods of the shape/indexing family, with torch's signatures
_SHAPE_METHODS: dict[str, Callable[..., Any]] = {
    "split": lambda a, split_size_or_sections, axis=0: split(a, split_size_or_sections, axis),
    "chunk": lambda a, chunks, axis=0: chunk(a, chunks, axis),
    "repeat": lambda a, *sizes: repeat(a, *sizes),
    "tile": lambda a, *dims: tile(a, dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims),
    "repeat_interleave": lambda a, repeats, axis=None: repeat_interleave(a, repeats, axis),
    "roll": lambda a, shifts, axis=None: roll(a, shifts, axis),
    "flip": lambda a, *axis: flip(a, axis[0] if len(axis) == 1 and not isinstance(axis[0], int) else axis),
    "tril": lambda a, diagonal=0: tril(a, diagonal),
    "triu": lambda a, diagonal=0: triu(a, diagonal),
    "diagonal": lambda a, offset=0, axis1=0, axis2=1: diagonal(a, offset, axis1, axis2),
    "unfold": lambda a, axis, size, step: unfold(a, axis, size, step),
    "masked_fill": lambda a, mask, value: masked_fill(a, mask, value),
    "gather": lambda a, axis, index: gather(a, axis, index),
    "scatter_add": lambda a, axis, index, src: scatter_add(a, axis, index, src),
    "index_add": lambda a, axis, index, source, alpha=1: index_add(a, axis, index, source, alpha),
    "index_select": lambda a, axis, index: index_select(a, axis, index),
    "take_along_axis": lambda a, index, axis: take_along_axis(a, index, axis),
    "take": lambda a, indices, axis=None: take(a, indices, axis),
    "detach": lambda a: stop_gradient(a),
}


def _install_operators() -> None:
    for name, fn in _OPERATORS.items():
        setattr(Tensor, name, fn)
    _math_ops.install_tensor_methods(Tensor)   # x.sin(), x.atan2(y), x.lerp(end, w), ... (ops/math.py)
    rounding.install_tensor_methods(Tensor)
    for name, fn in _SHAPE_METHODS.items():
        setattr(Tensor, name, fn)
    _install_scan_methods()
    # __eq__ returns a Tensor, so keep identity hashing explicitly
    setattr(Tensor, "__hash__", _identity_hash)


def _identity_hash(a: Tensor) -> int:
    return hash((id(a.graph), a.id))


def _install_scan_methods() -> None:
    """Tensor methods of the scan/sort/reduction family (torch's names and arguments)."""
    setattr(Tensor, "min", lambda a, axis=None, keepdims=False: min(a, axis, keepdims))
    for fn in (cumsum, cumprod, cummax, cummin, logcumsumexp, sort, argsort, topk, argmax, argmin, prod,
               any, all, var, std, norm, logsumexp):
        setattr(Tensor, fn.__name__, fn)


_install_operators()


__all__ = [
    "OPS", "OpDef", "ShapeError", "abs", "acos", "acosh", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
    "add", "all", "any", "apply", "argmax", "argmin", "argsort", "asin", "asinh", "atan", "atan2", "atanh",
    "avg_pool1d", "avg_pool2d", "batch_norm", "binary_cross_entropy", "binary_cross_entropy_probs",
    "binary_cross_entropy_with_logits", "bitwise_and", "bitwise_left_shift", "bitwise_not", "bitwise_or",
    "bitwise_right_shift", "bitwise_xor", "broadcast_to", "cast", "ceil", "celu", "chunk", "clamp", "clip",
    "concat", "conv1d", "conv2d", "conv3d", "conv_transpose2d", "copysign", "cos", "cosh",
    "cosine_similarity", "cross_entropy", "cummax", "cummin", "cumprod", "cumsum", "detach", "diag",
    "diagonal", "div", "dropout", "einsum", "elu", "embedding", "equal", "erf", "exp", "exp2",
    "expand_dims", "expm1", "flip", "floor", "floor_divide", "fmod", "gather", "gelu", "get_op", "getitem",
    "glu", "greater", "greater_equal", "group_norm", "hardsigmoid", "hardswish", "hardtanh", "heaviside",
    "hinge_embedding_loss", "huber_loss", "index_add", "index_select", "instance_norm", "interpolate",
    "isfinite", "isinf", "isnan", "kl_div", "l1_loss", "layer_norm", "leaky_relu", "lerp", "less",
    "less_equal", "log", "log10", "log1p", "log2", "log_softmax", "logaddexp", "logcumsumexp",
    "logical_and", "logical_not", "logical_or", "logical_xor", "logsigmoid", "logsumexp",
    "margin_ranking_loss", "masked_fill", "matmul", "max", "max_pool1d", "max_pool2d", "maximum", "maxout",
    "mean", "meshgrid", "min", "minimum", "mish", "mse", "mse_loss", "mul", "neg", "nll_loss", "norm",
    "not_equal", "one_hot", "pad", "pow", "prelu", "prod", "random_uniform", "reciprocal", "register",
    "relu", "relu6", "remainder", "repeat", "repeat_interleave", "reshape", "rng_counter", "roll", "round",
    "rsqrt", "scaled_dot_product_attention", "scatter_add", "selu", "sigmoid", "sign", "silu", "sin",
    "sinh", "smooth_l1_loss", "softmax", "softmax_cross_entropy", "softmin", "softplus", "softsign", "sort",
    "split", "sqrt", "square", "squeeze", "stack", "std", "stop_gradient", "sub", "sum", "swish", "take",
    "take_along_axis", "tan", "tanh", "tile", "topk", "transpose", "tril", "triu", "trunc", "unfold", "var",
    "where",
]
