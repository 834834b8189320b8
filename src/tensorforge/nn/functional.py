"""The functional ops the ``tg.nn`` layers call, looked up in ``tg`` at call time, with
compositions of existing graph ops as stand-ins while an op is not in ``tg`` yet.

The functional ops (``tg.gelu``, ``tg.conv1d``, ``tg.embedding``,
``tg.scaled_dot_product_attention``, ...) are written by their own families; a
layer calls ``call("gelu", x, approximate=...)``, which uses ``tg.gelu`` when it
exists and otherwise the composition below. The compositions differentiate
through autodiff and run on every backend; they only accept the arguments they
can honour (e.g. no ``groups`` in the stand-in conv1d) and say so otherwise.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..graph import Tensor, as_tensor, constant
from ..ops.registry import ShapeError

__all__ = ["call"]


def call(name: str, *args, **kwargs) -> Tensor:
    """``tg.<name>(*args, **kwargs)`` if tg has it, else this module's stand-in composition."""
    import tensorforge
    fn = getattr(tensorforge, name, None)
    if fn is None:
        fn = _FALLBACKS[name]
    return fn(*args, **kwargs)


def _unsupported(op: str, what: str):
    return NotImplementedError(f"{op}: {what} needs tg.{op}, which this build does not have yet")


# ---- activations -----------------------------------------------------------------------------

def _erf(x):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7), odd extension; a stand-in until tg.erf/gelu exist
    t = 1.0 / (1.0 + 0.3275911 * ops.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return ops.sign(x) * (1.0 - poly * ops.exp(-(x * x)))


def _gelu(x, approximate: str = "none"):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + ops.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1.0 + _erf(x * (1.0 / math.sqrt(2.0))))


def _silu(x):
    return x * ops.sigmoid(x)


def _mish(x):
    return x * ops.tanh(ops.softplus(x))


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def _selu(x):
    return _SELU_SCALE * ops.elu(x, _SELU_ALPHA)


def _celu(x, alpha: float = 1.0):
    return ops.where(x > 0, x, alpha * (ops.exp(x * (1.0 / alpha)) - 1.0))


def _hardtanh(x, min_val: float = -1.0, max_val: float = 1.0):
    return ops.minimum(ops.maximum(x, float(min_val)), float(max_val))


def _relu6(x):
    return _hardtanh(x, 0.0, 6.0)


def _hardsigmoid(x):
    return _relu6(x + 3.0) * (1.0 / 6.0)


def _hardswish(x):
    return x * _hardsigmoid(x)


def _softsign(x):
    return x / (1.0 + ops.abs(x))


def _logsigmoid(x):
    return -ops.softplus(-x)


def _softmin(x, dim: int = -1):
    return ops.softmax(-x, dim)


def _glu(x, dim: int = -1):
    axis = dim % len(x.shape)
    size = x.shape[axis]
    if size is None or size % 2:
        raise ShapeError(f"glu: dimension {dim} must have an even, known size, got {size} in {x.shape}")
    half = size // 2
    lead = (slice(None),) * axis
    return x[lead + (slice(0, half),)] * ops.sigmoid(x[lead + (slice(half, size),)])


# ---- convolutions ------------------------------------------------------------------------------

def _conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    if dilation != 1 or groups != 1:
        raise _unsupported("conv1d", "dilation or groups")
    if len(x.shape) != 3 or len(w.shape) != 3:
        raise ShapeError(f"conv1d: needs x (N, C, L) and w (out, in, k), got {x.shape} and {w.shape}")
    n, c, length = x.shape
    x4 = ops.reshape(x, (-1 if n is None else n, c, 1, length))
    w4 = ops.reshape(w, (w.shape[0], w.shape[1], 1, w.shape[2]))
    y = ops.conv2d(x4, w4, b, stride=(1, int(stride)), padding=(0, int(padding)))
    return ops.reshape(y, (-1 if n is None else n, y.shape[1], y.shape[3]))


def _triple(v):
    return (int(v),) * 3 if isinstance(v, (int, np.integer)) else tuple(int(a) for a in v)


def _conv3d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    # a sum over the kernel's depth taps of 2-D convolutions of depth slices
    if _triple(dilation) != (1, 1, 1) or groups != 1:
        raise _unsupported("conv3d", "dilation or groups")
    if len(x.shape) != 5 or len(w.shape) != 5:
        raise ShapeError(f"conv3d: needs x (N, C, D, H, W) and w (out, in, kd, kh, kw), got {x.shape} and {w.shape}")
    (sd, sh, sw), (pd, ph, pw) = _triple(stride), _triple(padding)
    if pd:
        zeros = x[:, :, :1] * 0.0      # a zero depth plane of x's (possibly unknown) batch size
        pad = ops.concat([zeros] * pd, axis=2)
        x = ops.concat([pad, x, pad], axis=2)
    depth, kd = x.shape[2], w.shape[2]
    out_depth = (depth - kd) // sd + 1
    if out_depth < 1:
        raise ShapeError(f"conv3d: kernel depth {kd} exceeds the padded input depth {depth}")
    planes = []
    for d in range(out_depth):
        acc = None
        for k in range(kd):
            term = ops.conv2d(x[:, :, d * sd + k], w[:, :, k], None, stride=(sh, sw), padding=(ph, pw))
            acc = term if acc is None else acc + term
        planes.append(ops.expand_dims(acc, 2))
    y = planes[0] if len(planes) == 1 else ops.concat(planes, axis=2)
    if b is not None:
        y = y + ops.reshape(b, (-1, 1, 1, 1))
    return y


def _pair(v):
    return (int(v),) * 2 if isinstance(v, (int, np.integer)) else tuple(int(a) for a in v)


def _conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    # the transposed convolution is the input-gradient of a conv2d whose weight is this one
    # ((in, out, kh, kw) read as conv2d's (out', in', kh, kw)); the reference tensor only fixes its shape
    if groups != 1 or _pair(dilation) != (1, 1):
        raise _unsupported("conv_transpose2d", "groups or dilation")
    if len(x.shape) != 4 or len(w.shape) != 4:
        raise ShapeError(f"conv_transpose2d: needs x (N, C, H, W) and w (in, out, kh, kw), got {x.shape} "
                         f"and {w.shape}")
    (sh, sw), (ph, pw), (oh, ow) = _pair(stride), _pair(padding), _pair(output_padding)
    if oh >= max(sh, 1) or ow >= max(sw, 1):
        raise ValueError(f"conv_transpose2d: output_padding {(oh, ow)} must be smaller than the stride {(sh, sw)}")
    _, _, h, wd = x.shape
    kh, kw = w.shape[2:]
    out_hw = ((h - 1) * sh - 2 * ph + kh + oh, (wd - 1) * sw - 2 * pw + kw + ow)
    ref = x[:, :1, :1, :1] * 0.0 + constant(np.zeros((1, w.shape[1]) + out_hw, np.dtype(x.dtype)),
                                            graph=x.graph)
    y = ops.apply("conv2d_grad_input", [x, w, ref], stride=(sh, sw), padding=(ph, pw))
    if b is not None:
        y = y + ops.reshape(b, (-1, 1, 1))
    return y


# ---- embedding and attention ----------------------------------------------------------------------

def _embedding(indices, weight):
    return ops.matmul(ops.one_hot(indices, weight.shape[0], dtype=weight.dtype), weight)


def _swap_last(t):
    axes = list(range(len(t.shape)))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return ops.transpose(t, tuple(axes))


def _scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
    if dropout_p:
        raise _unsupported("scaled_dot_product_attention", "dropout_p > 0")
    scores = ops.matmul(q, _swap_last(k)) * (1.0 / math.sqrt(q.shape[-1]))
    lq, lk = q.shape[-2], k.shape[-2]
    if is_causal:
        keep = np.tril(np.ones((lq, lk), bool))
        scores = ops.where(constant(keep, graph=q.graph), scores, -math.inf)
    if attn_mask is not None:
        mask = as_tensor(attn_mask, graph=q.graph) if not isinstance(attn_mask, Tensor) else attn_mask
        if np.dtype(mask.dtype) == np.bool_:
            scores = ops.where(mask, scores, -math.inf)
        else:
            scores = scores + mask
    return ops.matmul(ops.softmax(scores, -1), v)


_FALLBACKS = {
    "gelu": _gelu, "silu": _silu, "mish": _mish, "selu": _selu, "celu": _celu, "relu6": _relu6,
    "hardtanh": _hardtanh, "hardswish": _hardswish, "hardsigmoid": _hardsigmoid, "softsign": _softsign,
    "logsigmoid": _logsigmoid, "softmin": _softmin, "glu": _glu, "conv1d": _conv1d, "conv3d": _conv3d,
    "conv_transpose2d": _conv_transpose2d, "embedding": _embedding,
    "scaled_dot_product_attention": _scaled_dot_product_attention,
}
