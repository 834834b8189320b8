"""Activation functions as in ``torch.nn.functional``, built from existing elementwise ops.

Every function here is a composition of registered elementwise ops (where, comparisons,
exp, sigmoid, tanh, softplus, elu ...), so it needs no pullback of its own, runs on every
backend and fuses into the surrounding kernel. Piecewise functions are written with
``where`` on explicit comparisons rather than with maximum/minimum: ``where`` routes the
whole gradient to the chosen branch, which gives torch's one-sided derivatives at the
kinks (maximum/minimum would split a tie in half).
"""
from __future__ import annotations

import numpy as np

from .._typing import TensorLike
from ..graph import Tensor, as_tensor
from .elementwise import elu as _elu, softplus as _softplus_op
from .indexing import getitem
from .reduce import softmax
from .registry import ShapeError, apply, normalize_axis


def _float_input(value: TensorLike, fn: str) -> Tensor:
    x = as_tensor(value)
    if np.dtype(x.dtype).kind != "f":
        raise TypeError(f"{fn}: expects a floating-point tensor, got {x.dtype} (cast it first)")
    return x


def _where(cond: TensorLike, a: TensorLike, b: TensorLike) -> Tensor:
    return apply("where", [cond, a, b])


def _clip_flat(x: Tensor, lo: float, hi: float) -> Tensor:
    """``x`` clipped to [lo, hi] with gradient 1 strictly inside and 0 at and beyond the bounds
    (torch's hardtanh rule); NaN passes through."""
    return _where(x <= lo, lo, _where(x >= hi, hi, x))


def silu(x: TensorLike) -> Tensor:
    """SiLU (swish): x * sigmoid(x); f' = σ(x)(1 + x(1 - σ(x)))."""
    x = _float_input(x, "silu")
    return x * apply("sigmoid", [x])


swish = silu


def mish(x: TensorLike) -> Tensor:
    """Mish: x * tanh(softplus(x)), with the stable softplus."""
    x = _float_input(x, "mish")
    return x * apply("tanh", [_softplus_op(x)])


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def selu(x: TensorLike) -> Tensor:
    """SELU: scale * elu(x, alpha) with the self-normalising constants of Klambauer et al.
    (alpha ≈ 1.6733, scale ≈ 1.0507); the gradient at 0 is scale*alpha, as torch's."""
    x = _float_input(x, "selu")
    return _elu(x, SELU_ALPHA) * SELU_SCALE


def celu(x: TensorLike, alpha: float = 1.0) -> Tensor:
    """CELU: max(0, x) + min(0, alpha*(exp(x/alpha) - 1)), i.e. alpha * elu(x/alpha, 1)."""
    x = _float_input(x, "celu")
    alpha = float(alpha)
    if alpha == 0.0:
        raise ValueError("celu: alpha must not be 0 (it divides x)")
    return _elu(x / alpha, 1.0) * alpha


def hardtanh(x: TensorLike, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """x clipped to [min_val, max_val]; gradient 1 strictly inside, else 0 (as torch).

    The gradient is 0 at the bounds themselves too, torch's convention."""
    x = _float_input(x, "hardtanh")
    min_val, max_val = float(min_val), float(max_val)
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} must not exceed max_val {max_val}")
    return _clip_flat(x, min_val, max_val)


def relu6(x: TensorLike) -> Tensor:
    """min(max(x, 0), 6); gradient 0 at 0 and at 6 (as torch)."""
    return _clip_flat(_float_input(x, "relu6"), 0.0, 6.0)


def hardsigmoid(x: TensorLike) -> Tensor:
    """0 for x <= -3, 1 for x >= 3, x/6 + 1/2 between; gradient 1/6 strictly inside, else 0."""
    x = _float_input(x, "hardsigmoid")
    return _where(x <= -3.0, 0.0, _where(x >= 3.0, 1.0, x / 6.0 + 0.5))


def hardswish(x: TensorLike) -> Tensor:
    """x * relu6(x + 3) / 6; gradient 0 for x <= -3, (2x + 3)/6 between, 1 for x >= 3 (as torch).

    The outer pieces own the kinks: the gradient is 0 at -3 and 1 at 3, as torch's."""
    x = _float_input(x, "hardswish")
    return _where(x <= -3.0, 0.0, _where(x >= 3.0, x, x * (x + 3.0) / 6.0))


def softsign(x: TensorLike) -> Tensor:
    """x / (1 + |x|)."""
    x = _float_input(x, "softsign")
    return x / (apply("abs", [x]) + 1.0)


def logsigmoid(x: TensorLike) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|; f' = 1 - σ(x)."""
    x = _float_input(x, "logsigmoid")
    return -_softplus_op(-x)


def softplus(x: TensorLike, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta*x)) / beta, computed stably; x itself where beta*x > threshold (as torch).

    Above the threshold the gradient is exactly 1. ``tg.softplus(x)`` keeps its meaning
    (beta=1; the threshold changes the value by less than e^-20)."""
    x = _float_input(x, "softplus")
    beta, threshold = float(beta), float(threshold)
    if beta == 0.0:
        raise ValueError("softplus: beta must not be 0 (it divides the result)")
    if beta == 1.0:
        return _where(x > threshold, x, _softplus_op(x))
    # the test is on x itself (not on beta*x), so beta*x has one use and fuses with the rest
    linear = x > threshold / beta if beta > 0 else x < threshold / beta
    return _where(linear, x, _softplus_op(x * beta) / beta)


def softmin(x: TensorLike, axis: int = -1) -> Tensor:
    """softmax(-x) along ``axis``."""
    return softmax(-_float_input(x, "softmin"), axis)


def glu(x: TensorLike, axis: int = -1) -> Tensor:
    """Gated linear unit: split ``axis`` into halves a, b and return a * sigmoid(b)."""
    x = _float_input(x, "glu")
    if len(x.shape) == 0:
        raise ShapeError("glu: x must have at least one dimension, got a scalar")
    (a,) = normalize_axis(int(axis), len(x.shape))
    size = x.shape[a]
    if size is None or size % 2:
        raise ShapeError(f"glu: axis {a} of x {x.shape} must have a known even size, got {size}")
    half = size // 2
    lead = (slice(None),) * a
    first = getitem(x, lead + (slice(0, half),))
    second = getitem(x, lead + (slice(half, size),))
    return first * apply("sigmoid", [second])
