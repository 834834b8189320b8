"""The functional ops the ``tg.nn`` layers call, looked up in ``tg`` at call time, with
compositions of existing graph ops as stand-ins while an op is not in ``tg`` yet.

The functional ops (``tg.gelu``, ``tg.conv1d``, ``tg.embedding``,
``tg.scaled_dot_product_attention``, ...) are written by their own families; a
layer calls ``call("gelu", x, approximate=...)``, which uses ``tg.gelu`` when it
exists and otherwise the composition below. The compositions differentiate
through autodiff and run on every backend; they only accept the arguments they
can honour (no attention dropout in the stand-in scaled_dot_product_attention) and say so otherwise.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..graph import Tensor, as_tensor, constant
from ..ops.registry import ShapeError

__all__ = ["call", "conv2d_general"]


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
# dilation: a convolution with dilation d is one with the kernel spread out, d-1 zeros between taps;
# groups: the channels split into independent convolutions whose outputs are concatenated.

def _dilate_kernel(w, dilations):
    """Spread the spatial taps of ``w`` (out, in, k...) by ``dilations`` (zeros in between)."""
    for i, d in enumerate(dilations):
        k = w.shape[2 + i]
        if d == 1 or k == 1:
            continue
        axis = 2 + i
        spread = ops.expand_dims(w, axis + 1)                               # (..., k, 1, ...)
        zeros = np.zeros(spread.shape[:axis + 1] + (d - 1,) + spread.shape[axis + 2:], np.dtype(w.dtype))
        spread = ops.concat([spread, constant(zeros, graph=w.graph)], axis=axis + 1)   # (..., k, d, ...)
        merged = ops.reshape(spread, w.shape[:axis] + (k * d,) + w.shape[axis + 1:])
        w = merged[(slice(None),) * axis + (slice(0, (k - 1) * d + 1),)]
    return w


def _grouped(x, w, b, groups: int, conv, w_in_axis0: bool = False):
    """``conv(x_g, w_g)`` per group, concatenated along the channels, plus the bias."""
    if groups == 1:
        y = conv(x, w)
    else:
        cin, wsplit = x.shape[1], w.shape[0]
        if cin is None or cin % groups or wsplit % groups:
            raise ShapeError(f"groups={groups} must divide the {cin} input channels and the weight's {wsplit}")
        ci, wo = cin // groups, wsplit // groups
        parts = [conv(x[:, g * ci:(g + 1) * ci], w[g * wo:(g + 1) * wo]) for g in range(groups)]
        y = ops.concat(parts, axis=1)
    if b is not None:
        y = y + ops.reshape(b, (-1,) + (1,) * (len(y.shape) - 2))
    return y


def conv2d_general(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """conv2d with torch's ``dilation`` and ``groups`` (tg.conv2d takes neither), by composition."""
    if len(x.shape) != 4 or len(w.shape) != 4:
        raise ShapeError(f"conv2d: needs x (N, C, H, W) and w (out, in/groups, kh, kw), got {x.shape} and {w.shape}")
    w = _dilate_kernel(w, _pair(dilation))
    return _grouped(x, w, b, int(groups), lambda xg, wg: ops.conv2d(xg, wg, None, stride=stride, padding=padding))


def _conv1d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    if len(x.shape) != 3 or len(w.shape) != 3:
        raise ShapeError(f"conv1d: needs x (N, C, L) and w (out, in, k), got {x.shape} and {w.shape}")
    w = _dilate_kernel(w, (int(dilation),))
    n, length = x.shape[0], x.shape[2]

    def conv(xg, wg):
        x4 = ops.reshape(xg, (-1 if n is None else n, xg.shape[1], 1, length))
        w4 = ops.reshape(wg, (wg.shape[0], wg.shape[1], 1, wg.shape[2]))
        y = ops.conv2d(x4, w4, None, stride=(1, int(stride)), padding=(0, int(padding)))
        return ops.reshape(y, (-1 if n is None else n, y.shape[1], y.shape[3]))

    return _grouped(x, w, b, int(groups), conv)


def _triple(v):
    return (int(v),) * 3 if isinstance(v, (int, np.integer)) else tuple(int(a) for a in v)


def _conv3d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    if len(x.shape) != 5 or len(w.shape) != 5:
        raise ShapeError(f"conv3d: needs x (N, C, D, H, W) and w (out, in, kd, kh, kw), got {x.shape} and {w.shape}")
    w = _dilate_kernel(w, _triple(dilation))
    return _grouped(x, w, b, int(groups), lambda xg, wg: _conv3d_dense(xg, wg, stride, padding))


def _conv3d_dense(x, w, stride, padding):
    # a sum over the kernel's depth taps of 2-D convolutions of depth slices
    (sd, sh, sw), (pd, ph, pw) = _triple(stride), _triple(padding)
    if pd:
        # a zero depth plane of x's (possibly unknown) batch size; where(), not x * 0, so an inf
        # or NaN in x does not leak into the padding
        plane = x[:, :, :1]
        zero = constant(np.zeros((), np.dtype(x.dtype)), graph=x.graph)
        zeros = ops.where(plane > 0, zero, zero)
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
    return planes[0] if len(planes) == 1 else ops.concat(planes, axis=2)


def _pair(v):
    return (int(v),) * 2 if isinstance(v, (int, np.integer)) else tuple(int(a) for a in v)


def _conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    # the transposed convolution is the input-gradient of a conv2d whose weight is this one
    # ((in, out, kh, kw) read as conv2d's (out', in', kh, kw)); the reference tensor only fixes its shape
    if len(x.shape) != 4 or len(w.shape) != 4:
        raise ShapeError(f"conv_transpose2d: needs x (N, C, H, W) and w (in, out, kh, kw), got {x.shape} "
                         f"and {w.shape}")
    (sh, sw), (ph, pw), (oh, ow), dil = _pair(stride), _pair(padding), _pair(output_padding), _pair(dilation)
    if oh >= max(sh, dil[0]) or ow >= max(sw, dil[1]):
        raise ValueError(f"conv_transpose2d: output_padding {(oh, ow)} must be smaller than the stride {(sh, sw)} "
                         f"or the dilation {dil}")
    w = _dilate_kernel(w, dil)
    _, _, h, wd = x.shape
    kh, kw = w.shape[2:]
    out_hw = ((h - 1) * sh - 2 * ph + kh + oh, (wd - 1) * sw - 2 * pw + kw + ow)

    def transposed(xg, wg):
        ref = xg[:, :1, :1, :1] * 0.0 + constant(np.zeros((1, wg.shape[1]) + out_hw, np.dtype(x.dtype)),
                                                 graph=x.graph)
        return ops.apply("conv2d_grad_input", [xg, wg, ref], stride=(sh, sw), padding=(ph, pw))

    return _grouped(x, w, b, int(groups), transposed)


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
