"""Neural-network ops: convolution, pooling, dropout, normalisation, maxout, PReLU, losses.

Layout is NCHW throughout; convolution weights are (out, in, kh, kw).

Primitives (each with a NumPy reference built on ``sliding_window_view`` and one
tensordot, never a Python loop over elements or output pixels):

    conv2d(x, w)                    stride, padding pairs; bias is a separate add
    conv2d_grad_input(g, w, x_ref)  the transposed convolution (x_ref: shape only)
    conv2d_grad_weight(g, x, w_ref) the weight gradient (w_ref: shape only)
    max_pool2d(x) / max_pool2d_grad(g, x)     gradient to the first max of each window
    avg_pool2d(x) / avg_pool2d_grad(g, x_ref) padding counted in the divisor (torch default)
    dropout(x, counter)             counter-based mask, see ops/random.py

The normalisations, maxout, PReLU and the losses are compositions of existing ops,
so they need no gradient of their own.
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._typing import Array, TensorLike
from ..graph import Tensor, as_tensor
from . import random as rnd, signed_zero
from .elementwise import softplus
from .indexing import one_hot
from .reduce import log_softmax, max as reduce_max, mean, sum as reduce_sum, var
from ._types import Gradients, InferredShape, InferredType, InputTypes, Pair
from .._typing import IntOrTuple
from .registry import ShapeError, TensorType, VJPContext, apply, normalize_axis, register, result_dtype
from .shape import reshape, transpose

# ---- shared helpers ----------------------------------------------------------------------


def _pair(v: IntOrTuple, what: str) -> Pair:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    pair = tuple(int(a) for a in v)
    if len(pair) != 2:
        raise ValueError(f"{what} must be an int or a pair of ints, got {pair}")
    return pair[0], pair[1]


def _out_size(n: int | None, k: int, s: int, p: int, axis_name: str) -> int | None:
    """(N + 2P - F) // stride + 1, or None for an unknown input size."""
    if n is None:
        return None
    if n + 2 * p < k:
        raise ShapeError(f"the {axis_name} {n} plus padding 2*{p} is smaller than the kernel size {k}")
    return (n + 2 * p - k) // s + 1


def _check_window(kernel: Pair, stride: Pair, padding: Pair) -> None:
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise ShapeError(f"kernel {kernel} and stride {stride} must be >= 1 and padding {padding} >= 0")


def _check_float(t: TensorType, what: str) -> None:
    if np.dtype(t.dtype).kind != "f":
        raise ShapeError(f"{what} must be floating point, got {t.dtype}")


def _pad_hw(x: Array, padding: Pair, value: float = 0.0) -> Array:
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _windows(xp: Array, kernel: tuple[int, ...], stride: Pair) -> Array:
    """View (N, C, Ho, Wo, kh, kw) of every window of an already padded input."""
    sh, sw = stride
    return sliding_window_view(xp, kernel, axis=(2, 3))[:, :, ::sh, ::sw]


def _taps(xp: Array, kernel: Pair, stride: Pair, out_hw: tuple[int, ...]) -> Iterator[Array]:
    """For each window cell (i, j), row-major: the (N, C, Ho, Wo) view of that cell in every
    window. Reducing these one by one is one fast NumPy call per cell, where a reduction over
    the 6-D window view (``_windows``) walks memory element by element (~30x slower)."""
    (kh, kw), (sh, sw), (ho, wo) = kernel, stride, out_hw
    for i in range(kh):
        for j in range(kw):
            yield xp[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]


def _dilate(g: Array, stride: Pair) -> Array:
    """Insert stride-1 zeros between the output positions (the transposed stride)."""
    sh, sw = stride
    if sh == 1 and sw == 1:
        return g
    n, c, ho, wo = g.shape
    out = np.zeros((n, c, (ho - 1) * sh + 1, (wo - 1) * sw + 1), dtype=g.dtype)
    out[:, :, ::sh, ::sw] = g
    return out


def _place_and_crop(full: Array, x_shape: tuple[int, ...], padding: Pair) -> Array:
    """Put a gradient w.r.t. the padded input's top-left part into a padded frame and crop
    the padding off (rows/columns no window reached get zero)."""
    n, c, h, w = x_shape
    ph, pw = padding
    hp, wp = h + 2 * ph, w + 2 * pw
    if full.shape[2:] != (hp, wp):
        frame = np.zeros((n, c, hp, wp), dtype=full.dtype)
        frame[:, :, :full.shape[2], :full.shape[3]] = full
        full = frame
    return np.array(full[:, :, ph:ph + h, pw:pw + w], order="C")


# ---- conv2d ------------------------------------------------------------------------------

def _conv_shape(x_shape: InferredShape, w_shape: InferredShape, stride: Pair, padding: Pair) -> InferredShape:
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ShapeError(f"conv2d needs x (N, C, H, W) and w (out, in, kh, kw), got x {x_shape} "
                         f"and w {w_shape}")
    n, c, h, wd = x_shape
    o, ci, kh, kw = w_shape
    if c is not None and ci is not None and c != ci:
        raise ShapeError(f"channel mismatch: x {x_shape} has {c} channels but w {w_shape} expects {ci}")
    if kh is None or kw is None:
        raise ShapeError(f"the kernel size of w {w_shape} must be known")
    _check_window((kh, kw), stride, padding)
    return (n, o, _out_size(h, kh, stride[0], padding[0], "height"),
            _out_size(wd, kw, stride[1], padding[1], "width"))


def _conv_type(types: InputTypes, stride: Pair, padding: Pair) -> InferredType:
    x, w = types
    _check_float(x, "conv2d input")
    return _conv_shape(x.shape, w.shape, stride, padding), result_dtype(x.dtype, w.dtype)


def _conv_ref(x: Array, w: Array, stride: Pair, padding: Pair) -> Array:
    # im2col: the strided window view is copied into a matrix by tensordot, then one GEMM
    win = _windows(_pad_hw(x, padding), w.shape[2:], stride)             # (N, C, Ho, Wo, kh, kw)
    out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))               # (N, Ho, Wo, O)
    return np.asarray(out.transpose(0, 3, 1, 2), order="C")


def _conv_grad_input_ref(g: Array, w: Array, x_ref: Array, stride: Pair, padding: Pair) -> Array:
    # the transposed convolution: dilate g by the stride, then a full correlation with the
    # flipped kernel whose in/out channels are swapped
    kh, kw = w.shape[2:]
    w_t = np.asarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), order="C")  # (C, O, kh, kw)
    full = _conv_ref(_dilate(g, stride), w_t, (1, 1), (kh - 1, kw - 1))
    return _place_and_crop(full.astype(result_dtype(g.dtype, w.dtype), copy=False), x_ref.shape, padding)


def _conv_grad_weight_ref(g: Array, x: Array, w_ref: Array, stride: Pair, padding: Pair) -> Array:
    win = _windows(_pad_hw(x, padding), w_ref.shape[2:], stride)         # (N, C, Ho, Wo, kh, kw)
    return np.asarray(np.tensordot(g, win, axes=([0, 2, 3], [0, 2, 3])), order="C")  # (O, C, kh, kw)


def _conv_vjp(c: VJPContext, g: Tensor) -> Gradients:
    x, w = c.inputs
    a = c.attrs
    gx = apply("conv2d_grad_input", [g, w, x], **a) if c.needs[0] else None
    gw = apply("conv2d_grad_weight", [g, x, w], **a) if c.needs[1] else None
    return [gx, gw]


def _conv_grad_input_type(types: InputTypes, stride: Pair, padding: Pair) -> InferredType:
    g, w, x = types
    want = _conv_shape(x.shape, w.shape, stride, padding)
    _check_grad_shape(g.shape, want)
    return x.shape, result_dtype(g.dtype, w.dtype)


def _conv_grad_weight_type(types: InputTypes, stride: Pair, padding: Pair) -> InferredType:
    g, x, w = types
    want = _conv_shape(x.shape, w.shape, stride, padding)
    _check_grad_shape(g.shape, want)
    return w.shape, result_dtype(g.dtype, x.dtype)


def _check_grad_shape(got: Sequence[int | None], want: Sequence[int | None]) -> None:
    if len(got) != len(want) or any(a is not None and b is not None and a != b for a, b in zip(got, want)):
        raise ShapeError(f"gradient of shape {got} does not match the output shape {want}")


def _conv_grad_input_vjp(c: VJPContext, g: Tensor) -> Gradients:
    # dx = T(g, w) is bilinear and T is the adjoint of conv2d in x:
    #   d/dg <T(g, w), gg> = conv2d(gg, w);  d/dw = conv2d_grad_weight(g, gg)
    gy, w, x = c.inputs
    a = c.attrs
    return [apply("conv2d", [g, w], **a) if c.needs[0] else None,
            apply("conv2d_grad_weight", [gy, g, w], **a) if c.needs[1] else None, None]


def _conv_grad_weight_vjp(c: VJPContext, g: Tensor) -> Gradients:
    # dw = V(g, x) with <V(g, x), gw> = <g, conv2d(x, gw)>
    gy, x, w = c.inputs
    a = c.attrs
    return [apply("conv2d", [x, g], **a) if c.needs[0] else None,
            apply("conv2d_grad_input", [gy, g, x], **a) if c.needs[1] else None, None]


register("conv2d", infer=_conv_type, impl=_conv_ref, vjp=_conv_vjp, n_inputs=2, family="nn",
         doc="2-D cross-correlation, NCHW input, (out, in, kh, kw) weights; stride, padding pairs")
register("conv2d_grad_input", infer=_conv_grad_input_type, impl=_conv_grad_input_ref,
         vjp=_conv_grad_input_vjp, n_inputs=3, shape_only_inputs=(2,), family="nn",
         doc="gradient of conv2d w.r.t. its input: the transposed convolution of g (x_ref: shape only)")
register("conv2d_grad_weight", infer=_conv_grad_weight_type, impl=_conv_grad_weight_ref,
         vjp=_conv_grad_weight_vjp, n_inputs=3, shape_only_inputs=(2,), family="nn",
         doc="gradient of conv2d w.r.t. its weights (w_ref: shape only)")


def conv2d(x: TensorLike, w: TensorLike, b: TensorLike | None = None, stride: IntOrTuple = 1,
           padding: IntOrTuple | str = 0) -> Tensor:
    """2-D convolution (cross-correlation, as in every framework) of NCHW ``x`` with
    (out, in, kh, kw) ``w``, plus an optional bias of shape (out,).

    ``stride`` and ``padding`` are ints or pairs; ``padding="same"`` (odd kernels,
    stride 1) pads by (F-1)/2. Output size: (N + 2P - F) // stride + 1.
    """
    x = as_tensor(x)
    w = as_tensor(w, like=x)
    strides = _pair(stride, "stride")
    if isinstance(padding, str):
        padding = _same_padding(padding, w.shape, strides)
    out = apply("conv2d", [x, w], stride=strides, padding=_pair(padding, "padding"))
    if b is not None:
        b = as_tensor(b, like=x)
        out = apply("add", [out, reshape(b, (-1, 1, 1))])
    return out


def _same_padding(padding: str, w_shape: InferredShape, stride: Pair) -> Pair:
    if padding != "same":
        raise ValueError(f"conv2d: padding must be an int, a pair or 'same', got {padding!r}")
    kh, kw = w_shape[2:]
    if stride != (1, 1):
        raise ValueError(f"conv2d: padding='same' needs stride 1, got {stride}")
    if kh is None or kw is None or kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"conv2d: padding='same' needs an odd, known kernel size, got {(kh, kw)}")
    return ((kh - 1) // 2, (kw - 1) // 2)


# ---- pooling ------------------------------------------------------------------------------

def _pool_type(types: InputTypes, kernel: Pair, stride: Pair, padding: Pair) -> InferredType:
    x = types[0]
    if len(x.shape) != 4:
        raise ShapeError(f"pooling needs an (N, C, H, W) input, got {x.shape}")
    _check_float(x, "pooling input")
    _check_window(kernel, stride, padding)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ShapeError(f"padding {padding} must be at most half the kernel size {kernel}")
    n, c, h, w = x.shape
    return (n, c, _out_size(h, kernel[0], stride[0], padding[0], "height"),
            _out_size(w, kernel[1], stride[1], padding[1], "width")), x.dtype


def _pool_grad_type(types: InputTypes, kernel: Pair, stride: Pair, padding: Pair) -> InferredType:
    g, x = types
    want, _ = _pool_type([x], kernel, stride, padding)
    _check_grad_shape(g.shape, want)
    return x.shape, g.dtype


def _pool_out_hw(x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair) -> tuple[int, ...]:
    return tuple((x_shape[2 + a] + 2 * padding[a] - kernel[a]) // stride[a] + 1 for a in range(2))


def _max_pool_ref(x: Array, kernel: Pair, stride: Pair, padding: Pair) -> Array:
    taps = _taps(_pad_hw(x, padding, -np.inf), kernel, stride, _pool_out_hw(x.shape, kernel, stride, padding))
    out = np.array(next(taps))              # a window has at least one cell
    for tap in taps:
        # NaN propagates; +0 beats -0 whatever the tap order (ops/signed_zero.py)
        out = signed_zero.maximum(out, tap)
    return out


def _max_pool_grad_ref(g: Array, x: Array, kernel: Pair, stride: Pair, padding: Pair) -> Array:
    # route each output's gradient to the first maximum of its window (torch's rule), then
    # add up the contributions of overlapping windows with one bincount
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = stride
    xp = _pad_hw(x, padding, -np.inf)
    hp, wp = xp.shape[2:]
    win = _windows(xp, kernel, stride)
    ho, wo = win.shape[2:4]
    first = win.reshape(n, c, ho, wo, kh * kw).argmax(axis=-1)
    rows = np.arange(ho).reshape(1, 1, ho, 1) * sh + first // kw
    cols = np.arange(wo).reshape(1, 1, 1, wo) * sw + first % kw
    plane = np.arange(n * c).reshape(n, c, 1, 1) * (hp * wp)
    flat = (plane + rows * wp + cols).ravel()
    full = np.bincount(flat, weights=g.ravel(), minlength=n * c * hp * wp)
    return _place_and_crop(full.reshape(n, c, hp, wp).astype(g.dtype), x.shape, padding)


def _avg_pool_ref(x: Array, kernel: Pair, stride: Pair, padding: Pair) -> Array:
    # summed cell by cell, in row-major window order
    taps = _taps(_pad_hw(x, padding), kernel, stride, _pool_out_hw(x.shape, kernel, stride, padding))
    total = np.array(next(taps))            # a window has at least one cell
    for tap in taps:
        np.add(total, tap, out=total)
    out: Array = total / np.asarray(kernel[0] * kernel[1], x.dtype)
    return out


def _avg_pool_grad_ref(g: Array, x_ref: Array, kernel: Pair, stride: Pair, padding: Pair) -> Array:
    # every input position gets the sum of g / (kh*kw) over the windows that cover it:
    # a transposed convolution with a constant kernel (no flip needed)
    kh, kw = kernel
    gd = _pad_hw(_dilate(g / np.asarray(kh * kw, g.dtype), stride), (kh - 1, kw - 1))
    full = sliding_window_view(gd, kernel, axis=(2, 3)).sum(axis=(4, 5))
    return _place_and_crop(full, x_ref.shape, padding)


register("max_pool2d", infer=_pool_type, impl=_max_pool_ref, n_inputs=1, family="nn",
         vjp=lambda c, g: [apply("max_pool2d_grad", [g, c.x], **c.attrs)],
         doc="max over kh x kw windows (padding with -inf)")
register("max_pool2d_grad", infer=_pool_grad_type, impl=_max_pool_grad_ref, n_inputs=2, family="nn",
         doc="routes g to the first maximum of each window of x (no gradient of its own)")
register("avg_pool2d", infer=_pool_type, impl=_avg_pool_ref, n_inputs=1, family="nn",
         vjp=lambda c, g: [apply("avg_pool2d_grad", [g, c.x], **c.attrs)],
         doc="mean over kh x kw windows; zero padding counts in the divisor (count_include_pad)")
register("avg_pool2d_grad", infer=_pool_grad_type, impl=_avg_pool_grad_ref, n_inputs=2,
         shape_only_inputs=(1,), family="nn",
         vjp=lambda c, g: [apply("avg_pool2d", [g], **c.attrs), None],
         doc="spreads g / (kh*kw) over each window (x_ref read for its shape only)")


def _pool_attrs(kernel_size: IntOrTuple, stride: IntOrTuple | None, padding: IntOrTuple) -> dict[str, Pair]:
    kernel = _pair(kernel_size, "kernel_size")
    return {"kernel": kernel, "stride": kernel if stride is None else _pair(stride, "stride"),
            "padding": _pair(padding, "padding")}


def max_pool2d(x: TensorLike, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0) -> Tensor:
    """Max pooling over NCHW ``x``; ``stride`` defaults to ``kernel_size``; padding with -inf."""
    return apply("max_pool2d", [x], **_pool_attrs(kernel_size, stride, padding))


def avg_pool2d(x: TensorLike, kernel_size: IntOrTuple, stride: IntOrTuple | None = None,
               padding: IntOrTuple = 0) -> Tensor:
    """Average pooling; zero padding is counted in the divisor (torch's default)."""
    return apply("avg_pool2d", [x], **_pool_attrs(kernel_size, stride, padding))


# ---- dropout ------------------------------------------------------------------------------

def _dropout_type(types: InputTypes, p: float, seed: int) -> InferredType:
    x, counter = types
    _check_float(x, "dropout input")
    rnd.check_counter_type(counter, "dropout")
    if not 0.0 <= p < 1.0:
        raise ShapeError(f"p must be in [0, 1), got {p}")
    return x.shape, x.dtype


def _dropout_ref(x: Array, counter: Array, p: float, seed: int) -> Array:
    bits = rnd.random_bits(seed, int(counter), x.size).reshape(x.shape)
    keep = (bits >> np.uint32(8)) >= rnd.keep_threshold(p)
    scale = np.asarray(1.0 / (1.0 - p), dtype=x.dtype)   # rounded once to x's dtype (the spec)
    return np.where(keep, x * scale, np.zeros((), x.dtype))


register("dropout", infer=_dropout_type, impl=_dropout_ref, n_inputs=2, random=True, family="nn",
         # the same mask (same seed, counter and element indices) applied to the gradient
         vjp=lambda c, g: [apply("dropout", [g, c.inputs[1]], **c.attrs), None],
         doc="zero each element with probability p, scale the rest by 1/(1-p) (counter-based mask)")


def dropout(x: TensorLike, p: float = 0.5, seed: int = 0, training: bool = True) -> Tensor:
    """Inverted dropout: in training, zero each element with probability ``p`` and scale
    the others by 1/(1-p); the identity otherwise. Each call of a compiled function draws
    a fresh mask (the graph's random counter advances); use distinct seeds per layer."""
    x = as_tensor(x)
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:                           # everything dropped (x is read for its shape only)
        return apply("broadcast_like", [as_tensor(0.0, like=x), x])
    counter = rnd.rng_counter(x.graph)
    return apply("dropout", [x, counter], p=p, seed=rnd.check_seed(seed))


# ---- normalisation (compositions) ---------------------------------------------------------

def _normalise(x: Tensor, axes: tuple[int, ...], eps: float) -> Tensor:
    """(x - mean) / sqrt(var + eps) over ``axes`` (biased variance)."""
    mu = mean(x, axes, keepdims=True)
    sigma2 = var(x, axes, keepdims=True)
    return (x - mu) / apply("sqrt", [sigma2 + eps])


def _channel_view(t: TensorLike, ndim: int) -> Tensor:
    """A (C,) tensor reshaped to broadcast along axis 1 of a rank-``ndim`` NC... tensor."""
    t = as_tensor(t)
    return reshape(t, (-1,) + (1,) * (ndim - 2)) if ndim > 2 else t


def _affine(y: Tensor, gamma: TensorLike | None, beta: TensorLike | None,
            view: Callable[[Tensor], Tensor]) -> Tensor:
    if gamma is not None:
        y = y * view(as_tensor(gamma, like=y))
    if beta is not None:
        y = y + view(as_tensor(beta, like=y))
    return y


def _check_channels(t: TensorLike | None, c: int | None, what: str, name: str) -> None:
    if t is not None and isinstance(t, Tensor) and t.shape != (c,) and c is not None:
        raise ShapeError(f"{what}: {name} must have shape ({c},) for {c} channels, got {t.shape}")


def batch_norm(x: TensorLike, gamma: TensorLike | None, beta: TensorLike | None, running_mean: Tensor | None = None,
               running_var: Tensor | None = None, training: bool = True, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalisation over every axis but the channel axis 1 (x of rank 2 or 4).

    Training: batch statistics; if running stats (non-trainable parameters of shape (C,))
    are given, registers default updates new = (1-momentum)*old + momentum*stat (running_var
    from the unbiased batch variance), applied whenever a compiled function uses the output.
    Eval (training=False): the running statistics.
    """
    x = as_tensor(x)
    if len(x.shape) not in (2, 4):
        raise ShapeError(f"batch_norm: x must be (N, C) or (N, C, H, W), got {x.shape}")
    c = x.shape[1]
    for t, name in ((gamma, "gamma"), (beta, "beta"), (running_mean, "running_mean"),
                    (running_var, "running_var")):
        _check_channels(t, c, "batch_norm", name)
    axes = (0,) if len(x.shape) == 2 else (0, 2, 3)
    ndim = len(x.shape)

    def view(t: TensorLike) -> Tensor:
        return _channel_view(t, ndim)
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: eval mode (training=False) needs running_mean and running_var")
        y = (x - view(running_mean)) / apply("sqrt", [view(running_var) + eps])
        return _affine(y, gamma, beta, view)
    out = _affine(_normalise(x, axes, eps), gamma, beta, view)
    if running_mean is not None or running_var is not None:
        _register_running_updates(x, axes, out, running_mean, running_var, momentum)
    return out


def _register_running_updates(x: Tensor, axes: tuple[int, ...], out: Tensor, running_mean: Tensor | None,
                              running_var: Tensor | None, momentum: float) -> None:
    g = x.graph
    for t in (running_mean, running_var):
        if t is not None and not (isinstance(t, Tensor) and t.op == "parameter"):
            raise TypeError(f"batch_norm: running statistics must be parameters "
                            f"(tg.parameter(..., trainable=False)), got {t!r}")
        if t is not None and t.attrs.get("trainable"):
            # an optimizer's update would silently replace the moving-average update
            raise TypeError(f"batch_norm: running statistic {t.name!r} must be created with trainable=False")
    m = float(momentum)
    if running_mean is not None:
        new_mean = running_mean * (1.0 - m) + mean(x, axes) * m
        g.default_updates[running_mean.id] = new_mean.id
        g.update_triggers[running_mean.id] = out.id
    if running_var is not None:
        n = apply("numel", [x], axis=axes, dtype=x.dtype)
        unbiased = var(x, axes) * n / (n - 1.0)     # torch's running_var uses the unbiased estimate
        new_var = running_var * (1.0 - m) + unbiased * m
        g.default_updates[running_var.id] = new_var.id
        g.update_triggers[running_var.id] = out.id


def layer_norm(x: TensorLike, gamma: TensorLike | None = None, beta: TensorLike | None = None,
               normalized_ndim: int = 1, eps: float = 1e-5) -> Tensor:
    """Normalise over the last ``normalized_ndim`` axes; gamma/beta have those axes' shape."""
    x = as_tensor(x)
    k = int(normalized_ndim)
    if not 1 <= k <= len(x.shape):
        raise ShapeError(f"layer_norm: normalized_ndim={k} for x of rank {len(x.shape)}")
    axes = tuple(range(len(x.shape) - k, len(x.shape)))
    return _affine(_normalise(x, axes, eps), gamma, beta, lambda t: t)


def group_norm(x: TensorLike, num_groups: int, gamma: TensorLike | None = None, beta: TensorLike | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise each sample over groups of C/num_groups channels (x: (N, C, ...));
    gamma/beta of shape (C,)."""
    x = as_tensor(x)
    if len(x.shape) < 2:
        raise ShapeError(f"group_norm: x must be (N, C, ...), got {x.shape}")
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    groups = int(num_groups)
    if c is None or groups < 1 or c % groups:
        raise ShapeError(f"group_norm: {c} channels cannot be split into {groups} groups")
    for t, name in ((gamma, "gamma"), (beta, "beta")):
        _check_channels(t, c, "group_norm", name)
    known = [d for d in spatial if d is not None]
    per_group = (c // groups) * math.prod(known) if len(known) == len(spatial) else None
    if per_group is not None:
        grouped = reshape(x, (-1, groups, per_group))      # batch may be None
    elif n is not None:
        grouped = reshape(x, (n, groups, -1))
    else:
        raise ShapeError(f"group_norm: needs a known batch size or known spatial sizes, got {x.shape}")
    y = apply("reshape_like", [_normalise(grouped, (2,), eps), x])
    return _affine(y, gamma, beta, lambda t: _channel_view(t, len(x.shape)))


def instance_norm(x: TensorLike, gamma: TensorLike | None = None, beta: TensorLike | None = None,
                  eps: float = 1e-5) -> Tensor:
    """Normalise each sample and channel over its spatial axes (x: (N, C, ...spatial))."""
    x = as_tensor(x)
    if len(x.shape) < 3:
        raise ShapeError(f"instance_norm: x must be (N, C, spatial...), got {x.shape}")
    for t, name in ((gamma, "gamma"), (beta, "beta")):
        _check_channels(t, x.shape[1], "instance_norm", name)
    axes = tuple(range(2, len(x.shape)))
    return _affine(_normalise(x, axes, eps), gamma, beta, lambda t: _channel_view(t, len(x.shape)))


# ---- maxout, PReLU --------------------------------------------------------------------------

def maxout(x: TensorLike, pieces: int, axis: int = -1) -> Tensor:
    """Split ``axis`` (size units*pieces) into (units, pieces), unit u taking the contiguous
    entries u*pieces .. u*pieces+pieces-1, and take the max over the pieces."""
    x = as_tensor(x)
    (a,) = normalize_axis(int(axis), len(x.shape))
    size, pieces = x.shape[a], int(pieces)
    if size is None or pieces < 1 or size % pieces:
        raise ShapeError(f"maxout: axis {a} of size {size} cannot be split into pieces of {pieces}")
    shape = x.shape[:a] + (size // pieces, pieces) + x.shape[a + 1:]
    if sum(d is None for d in shape) > 1:
        raise ShapeError(f"maxout: at most one unknown dimension is supported, got {x.shape}")
    split = reshape(x, tuple(-1 if d is None else d for d in shape))
    return reduce_max(split, a + 1)


def prelu(x: TensorLike, alpha: TensorLike) -> Tensor:
    """x if x > 0 else alpha * x, with a (learned) ``alpha`` broadcast NumPy-style
    (for per-channel alpha on NCHW, give it shape (C, 1, 1))."""
    x = as_tensor(x)
    alpha = as_tensor(alpha, like=x)
    return apply("where", [x > 0, x, alpha * x])


# ---- losses -----------------------------------------------------------------------------------

def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return reduce_sum(loss)
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


def mse(pred: TensorLike, target: TensorLike, reduction: str = "none") -> Tensor:
    """Squared error (pred - target)**2, elementwise, then reduced."""
    pred = as_tensor(pred)
    d = pred - as_tensor(target, like=pred)
    return _reduce(d * d, reduction)


def binary_cross_entropy(logits: TensorLike, targets: TensorLike, reduction: str = "none") -> Tensor:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], from the logits:
    softplus(z) - z*y = max(z, 0) - z*y + log(1 + e^-|z|), which never saturates."""
    z = as_tensor(logits)
    y = as_tensor(targets, like=z)
    # tg.softplus is computed stably as max(z,0) + log1p(e^-|z|); its gradient sigmoid(z) is
    # also right at z = 0, where relu'(0) = sign(0) = 0 would lose the 1/2
    return _reduce(softplus(z) - z * y, reduction)


def softmax_cross_entropy(logits: TensorLike, labels: TensorLike, axis: int = -1, reduction: str = "none") -> Tensor:
    """-log_softmax(logits)[label] per sample; ``labels`` are integer class indices with the
    shape of ``logits`` without ``axis``."""
    z = as_tensor(logits)
    labels = as_tensor(labels, like=None, graph=z.graph)
    (a,) = normalize_axis(int(axis), len(z.shape))
    depth = z.shape[a]
    if depth is None:
        raise ShapeError(f"softmax_cross_entropy: the class axis {a} of logits {z.shape} must be known")
    hot = one_hot(labels, depth, dtype=z.dtype)                       # classes on the last axis
    if a != len(z.shape) - 1:
        last = len(z.shape) - 1
        hot = transpose(hot, tuple(range(a)) + (last,) + tuple(range(a, last)))
    return _reduce(-reduce_sum(hot * log_softmax(z, a), a), reduction)
