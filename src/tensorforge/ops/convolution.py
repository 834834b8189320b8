"""Convolutions beyond the native kernel: conv1d, conv2d with dilation, groups and
"same"/"valid"/asymmetric padding, conv3d and conv_transpose2d (torch.nn.functional
signatures and output sizes).

The registered ``conv2d`` op (ops/nn.py, native LLVM and Triton kernels) covers stride and
symmetric padding with groups=1 and dilation=1; everything here is a composition on top of
it, so gradients come from autodiff and every backend runs it unchanged:

- dilation: a sum over the kernel taps of a dilated axis of the native conv2d of strided
  slices of x with that tap (no zeros are inserted into the kernel, so an inf in x meets only
  real weights and gives inf, as in torch);
- groups: depthwise convolution (one input and one output channel per group) is a sum over
  kernel taps of shifted, strided slices of x times per-channel weights (it fuses into one
  elementwise kernel); other groupings split the channels, convolve each group, concat;
- conv1d is conv2d on a height-1 view; conv3d sums, over the kernel depth, the conv2d of
  strided depth slices with the depth folded into the batch;
- conv_transpose2d is the adjoint of conv2d: with groups=1 and dilation=1 the native
  conv2d_grad_input op; otherwise x with stride-1 zeros inserted, padded by
  dilation*(k-1) - padding (plus output_padding after), convolved with the flipped kernel
  whose in/out channels are swapped per group.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .._typing import TensorLike
from ..graph import Tensor, as_tensor, format_shape
from . import nn
from ._types import InferredShape, Pair
from .._typing import IntOrTuple
from .indexing import concat
from .padding import constant_block, narrow, pad
from .registry import ShapeError, apply
from .shape import expand_dims, reshape, squeeze, transpose


def _tuple(v: IntOrTuple, n: int, what: str, fn: str, low: int = 1) -> tuple[int, ...]:
    """An int or an n-tuple of ints, each >= ``low``."""
    try:
        if isinstance(v, bool):
            raise TypeError("a bool is not a size")
        out = (int(v),) * n if isinstance(v, (int, np.integer)) else tuple(int(a) for a in v)
    except TypeError:
        raise TypeError(f"{fn}: {what} must be an int or a tuple of {n} ints, got {v!r}") from None
    if len(out) != n:
        raise ValueError(f"{fn}: {what} must be an int or a tuple of {n} ints, got {out}")
    if min(out) < low:
        raise ValueError(f"{fn}: {what} must be >= {low}, got {out}")
    return out


def _known_sizes(dims: InferredShape, fn: str) -> tuple[int, ...]:
    """``dims`` as ints: sizes the caller has checked (or needs) to be known when the graph is built."""
    known = tuple(d for d in dims if d is not None)
    if len(known) != len(dims):
        raise ShapeError(f"{fn}: the sizes {format_shape(dims)} must be known when the graph is built")
    return known


def _padding_pairs(padding: IntOrTuple | str, kernel: tuple[int, ...], dilation: tuple[int, ...],
                   stride: tuple[int, ...], fn: str) -> list[Pair]:
    """(before, after) per spatial axis for an int/tuple padding or 'same'/'valid'."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return [(0, 0)] * n
        if padding != "same":
            raise ValueError(f"{fn}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
        if any(s != 1 for s in stride):
            raise ValueError(f"{fn}: padding='same' needs stride 1, got {stride}")
        # torch puts the odd extra element of an even total after
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in totals]
    return [(p, p) for p in _tuple(padding, n, "padding", fn, low=0)]


LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _check_ranks(x: Tensor, w: Tensor, rank: int, fn: str) -> tuple[int, ...]:
    """Checks the ranks of x and w; returns w's kernel size, which must be known."""
    if len(x.shape) != rank + 2:
        raise ShapeError(f"{fn}: needs x {LAYOUTS[rank]}, got x of shape {x.shape}")
    if len(w.shape) != rank + 2:
        raise ShapeError(f"{fn}: w must have rank {rank + 2} (out, in/groups, kernel...), got shape {w.shape}")
    kernel = tuple(k for k in w.shape[2:] if k is not None)
    if len(kernel) != rank:
        raise ShapeError(f"{fn}: the kernel size of w {w.shape} must be known")
    return kernel


def _check_groups(groups: int, fn: str) -> int:
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{fn}: groups must be an int >= 1, got {groups!r}")
    return int(groups)


def _check_conv_args(x: Tensor, w: Tensor, rank: int, groups: int, fn: str,
                     transposed: bool = False) -> tuple[int, ...]:
    """Checks x, w and groups for a convolution; returns w's shape, which must be known."""
    _check_ranks(x, w, rank, fn)
    if np.dtype(x.dtype).kind != "f":
        raise ShapeError(f"{fn}: x must be floating point, got {x.dtype}")
    groups = _check_groups(groups, fn)
    c = x.shape[1]
    w_shape = tuple(d for d in w.shape if d is not None)
    if c is None or len(w_shape) != len(w.shape):
        raise ShapeError(f"{fn}: the channels of x {x.shape} and the shape of w {w.shape} must be known")
    if c % groups:
        raise ShapeError(f"{fn}: the {c} input channels cannot be split into {groups} groups")
    if transposed:
        if w_shape[0] != c:
            raise ShapeError(f"{fn}: w {w.shape} must have shape (in={c}, out/groups, ...) for x {x.shape}")
        return w_shape
    if w_shape[0] % groups:
        raise ShapeError(f"{fn}: the {w_shape[0]} output channels of w cannot be split into {groups} groups")
    if w_shape[1] != c // groups:
        raise ShapeError(f"{fn}: w {w.shape} must have {c // groups} input channels per group "
                         f"(x has {c} channels, groups={groups}), got {w_shape[1]}")
    return w_shape


def _check_spatial(x: Tensor, w: Tensor, pairs: Sequence[Pair], stride: tuple[int, ...],
                   dilation: tuple[int, ...], fn: str) -> None:
    """The padded input must hold one dilated kernel along every known spatial axis."""
    names = ("depth", "height", "width")[3 - len(pairs):]
    for n, k, (lo, hi), s, d, name in zip(x.shape[2:], w.shape[2:], pairs, stride, dilation, names):
        if n is not None:
            _out_len(n + lo + hi, k, s, d, fn, name)


def _add_bias(out: Tensor, b: TensorLike | None, rank: int, fn: str) -> Tensor:
    if b is None:
        return out
    b = as_tensor(b, like=out)
    if len(b.shape) != 1 or b.shape[0] not in (None, out.shape[1]):
        raise ShapeError(f"{fn}: bias must have shape ({out.shape[1]},), got {b.shape}")
    return out + reshape(b, (-1,) + (1,) * rank)


# ---- conv2d --------------------------------------------------------------------------------

def _tap_slices(k: int, d: int, s: int) -> list[tuple[slice, slice, int]]:
    """Per kernel tap along one axis: (slice of the padded input, slice of the kernel, stride
    left to the native conv). A dilated axis is split into its k taps, each reading every
    s-th input from t*d (a negative stop keeps it right for unknown sizes); an undilated axis
    is one whole-kernel step with the native stride."""
    if d == 1 or k == 1:
        return [(slice(None), slice(None), s)]
    span = d * (k - 1) + 1
    out = []
    for t in range(k):
        start, tail = t * d, span - 1 - t * d
        out.append((slice(start, -tail if tail else None, s), slice(t, t + 1), 1))
    return out


def _dilated_conv2d(x: Tensor, w: Tensor, stride: Sequence[int], dilation: Sequence[int]) -> Tensor:
    """Dilated cross-correlation of padded NCHW x as a sum over kernel taps of the native
    conv2d of strided slices of x with those taps: only real taps multiply x, so an inf in x
    gives inf (torch's value), not inf * 0 = NaN as a kernel with inserted zeros would."""
    kh, kw = _known_sizes(w.shape[2:], "conv2d")
    out: Tensor | None = None
    for xs_h, ws_h, sh in _tap_slices(kh, dilation[0], stride[0]):
        for xs_w, ws_w, sw in _tap_slices(kw, dilation[1], stride[1]):
            xs = x[:, :, xs_h, xs_w]
            ws = w[:, :, ws_h, ws_w]
            term = apply("conv2d", [xs, ws], stride=(sh, sw), padding=(0, 0))
            out = term if out is None else out + term
    assert out is not None      # a kernel has at least one tap
    return out


def _out_len(n: int, k: int, s: int, d: int, fn: str, axis_name: str) -> int:
    span = d * (k - 1) + 1
    if n < span:
        raise ShapeError(f"{fn}: the padded {axis_name} {n} is smaller than the dilated kernel size {span}")
    return (n - span) // s + 1


def _depthwise(x: Tensor, w: Tensor, stride: Sequence[int], dilation: Sequence[int]) -> Tensor:
    """One output channel per input channel: sum over taps of shifted strided slices of x
    times the per-channel weight of that tap (elementwise work that fuses)."""
    kh, kw = _known_sizes(w.shape[2:], "conv2d")
    h, wd = _known_sizes(x.shape[2:], "conv2d")
    ho = _out_len(h, kh, stride[0], dilation[0], "conv2d", "height")
    wo = _out_len(wd, kw, stride[1], dilation[1], "conv2d", "width")
    out: Tensor | None = None
    for i in range(kh):
        for j in range(kw):
            r, c = i * dilation[0], j * dilation[1]
            tap = x[:, :, r:r + stride[0] * (ho - 1) + 1:stride[0], c:c + stride[1] * (wo - 1) + 1:stride[1]]
            term = tap * reshape(w[:, 0, i, j], (-1, 1, 1))
            out = term if out is None else out + term
    assert out is not None      # a kernel has at least one tap
    return out


def _conv2d_core(x: Tensor, w: Tensor, stride: Sequence[int], padding: Sequence[Pair], dilation: Sequence[int],
                 groups: int) -> Tensor:
    """Cross-correlation of NCHW x with (out, in/groups, kh, kw) w; padding is (before,
    after) per axis (negative crops)."""
    symmetric = all(a == b and a >= 0 for a, b in padding)
    if not symmetric:
        x = pad(x, (padding[1][0], padding[1][1], padding[0][0], padding[0][1]))
        padding = [(0, 0), (0, 0)]
    pads = (padding[0][0], padding[1][0])
    c, o = x.shape[1], w.shape[0]
    if groups == 1 and tuple(dilation) == (1, 1):
        return apply("conv2d", [x, w], stride=tuple(stride), padding=pads)
    if groups == 1:
        if pads != (0, 0):
            x = pad(x, (pads[1], pads[1], pads[0], pads[0]))
        return _dilated_conv2d(x, w, stride, dilation)
    if groups == c and o == c and None not in x.shape[2:]:
        if pads != (0, 0):
            x = pad(x, (pads[1], pads[1], pads[0], pads[0]))
        return _depthwise(x, w, stride, dilation)
    c, o = _known_sizes((c, o), "conv2d")       # checked by _check_conv_args for grouped convolutions
    cin, cout = c // groups, o // groups
    parts = [_conv2d_core(narrow(x, 1, g * cin, (g + 1) * cin), narrow(w, 0, g * cout, (g + 1) * cout),
                          stride, padding, dilation, 1) for g in range(groups)]
    return concat(parts, axis=1)


def conv2d(x: TensorLike, w: TensorLike, b: TensorLike | None = None, stride: IntOrTuple = 1,
           padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Tensor:
    """2-D convolution of NCHW ``x`` with stride, padding, dilation and groups (torch's conv2d).

    Cross-correlation with ``w`` of shape (out, in/groups, kh, kw), plus an optional bias (out,).

    ``stride``, ``padding`` and ``dilation`` are ints or pairs; ``padding`` may also be
    'valid' (none) or 'same' (stride 1; an odd total puts the extra row/column after).
    Output size per axis: (N + 2P - dilation*(F-1) - 1) // stride + 1. ``groups`` splits the
    channels into independent convolutions (groups == in channels: depthwise). Plain
    stride/padding cases run the native conv2d kernel; the others are compositions of it.
    """
    x = as_tensor(x)
    w = as_tensor(w, like=x)
    kernel = _check_ranks(x, w, 2, "conv2d")
    groups = _check_groups(groups, "conv2d")
    stride = _tuple(stride, 2, "stride", "conv2d")
    dilation = _tuple(dilation, 2, "dilation", "conv2d")
    pairs = _padding_pairs(padding, kernel, dilation, stride, "conv2d")
    if groups == 1 and dilation == (1, 1) and all(a == b >= 0 for a, b in pairs):
        # the native kernel's case (it also accepts channels known only at call time)
        return nn.conv2d(x, w, b, stride, (pairs[0][0], pairs[1][0]))
    _check_conv_args(x, w, 2, groups, "conv2d")
    _check_spatial(x, w, pairs, stride, dilation, "conv2d")
    return _add_bias(_conv2d_core(x, w, stride, pairs, dilation, groups), b, 2, "conv2d")


# ---- conv1d, conv3d ----------------------------------------------------------------------

def conv1d(x: TensorLike, w: TensorLike, b: TensorLike | None = None, stride: IntOrTuple = 1,
           padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Tensor:
    """1-D convolution of (N, C, L) ``x`` with stride, padding, dilation and groups (torch's conv1d).

    ``w`` has shape (out, in/groups, k); ``padding``: int, 1-tuple, 'same' or 'valid'. It is
    conv2d on a height-1 view."""
    x = as_tensor(x)
    w = as_tensor(w, like=x)
    w_shape = _check_conv_args(x, w, 1, groups, "conv1d")
    stride = _tuple(stride, 1, "stride", "conv1d")
    dilation = _tuple(dilation, 1, "dilation", "conv1d")
    pairs = [(0, 0)] + _padding_pairs(padding, w_shape[2:], dilation, stride, "conv1d")
    _check_spatial(x, w, pairs[1:], stride, dilation, "conv1d")
    out = _conv2d_core(expand_dims(x, 2), expand_dims(w, 2), (1,) + stride, pairs, (1,) + dilation, int(groups))
    return _add_bias(squeeze(out, 2), b, 1, "conv1d")


def conv3d(x: TensorLike, w: TensorLike, b: TensorLike | None = None, stride: IntOrTuple = 1,
           padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1) -> Tensor:
    """3-D convolution of (N, C, D, H, W) ``x`` with stride, padding, dilation and groups (torch's conv3d).

    ``w`` has shape (out, in/groups, kd, kh, kw). For each kernel depth tap, a conv2d of the strided depth slices with
    the output depth folded into the batch, summed over the taps."""
    x = as_tensor(x)
    w = as_tensor(w, like=x)
    w_shape = _check_conv_args(x, w, 3, groups, "conv3d")
    stride = _tuple(stride, 3, "stride", "conv3d")
    dilation = _tuple(dilation, 3, "dilation", "conv3d")
    pairs = _padding_pairs(padding, w_shape[2:], dilation, stride, "conv3d")
    _check_spatial(x, w, pairs, stride, dilation, "conv3d")
    if None in x.shape[1:]:
        raise ShapeError(f"conv3d: only the batch size of x may be unknown, got {x.shape}")
    if pairs[0] != (0, 0):
        x = pad(x, (0, 0, 0, 0) + pairs[0])
    c, d, h, wd = _known_sizes(x.shape[1:], "conv3d")
    kd = w_shape[2]
    do = _out_len(d, kd, stride[0], dilation[0], "conv3d", "depth")
    out: Tensor | None = None
    for i in range(kd):
        start = i * dilation[0]
        sl = narrow(x, 2, start, start + stride[0] * (do - 1) + 1, stride[0])       # (N, C, Do, H, W)
        flat = reshape(transpose(sl, (0, 2, 1, 3, 4)), (-1, c, h, wd))           # (N*Do, C, H, W)
        y = _conv2d_core(flat, w[:, :, i], stride[1:], pairs[1:], dilation[1:], int(groups))
        out = y if out is None else out + y
    assert out is not None      # a kernel has at least one depth tap
    o, ho, wo = out.shape[1:]
    out = transpose(reshape(out, (-1, do, o, ho, wo)), (0, 2, 1, 3, 4))
    return _add_bias(out, b, 3, "conv3d")


# ---- conv_transpose2d ------------------------------------------------------------------------

def _insert_zeros(x: Tensor, axis: int, s: int) -> Tensor:
    """s-1 zeros between consecutive elements along ``axis`` (the transposed stride)."""
    n = x.shape[axis]
    if s == 1 or n is None or n <= 1:
        return x
    e = expand_dims(x, axis + 1)
    spread = concat([e, constant_block(e, axis + 1, s - 1, 0.0)], axis=axis + 1)
    shape = [-1 if d is None else d for d in x.shape]
    shape[axis] = n * s
    return narrow(reshape(spread, tuple(shape)), axis, 0, (n - 1) * s + 1)


def _shape_reference(x: Tensor, tail: tuple[int, ...]) -> Tensor:
    """A tensor of shape (batch of x,) + tail, for ops that read an input for its shape only."""
    zero = as_tensor(0.0, like=x)
    if x.shape[0] is not None:
        return apply("broadcast_to", [zero], shape=(x.shape[0],) + tail)
    batch = apply("broadcast_like", [zero, x[(slice(None),) + (slice(0, 1),) * len(tail)]])     # (N, 1, 1, 1)
    return batch + apply("broadcast_to", [zero], shape=(1,) + tail)


def conv_transpose2d(x: TensorLike, w: TensorLike, b: TensorLike | None = None, stride: IntOrTuple = 1,
                     padding: IntOrTuple = 0, output_padding: IntOrTuple = 0, groups: int = 1,
                     dilation: IntOrTuple = 1) -> Tensor:
    """Transposed 2-D convolution, the adjoint of conv2d (torch's conv_transpose2d).

    ``w`` has shape (in, out/groups, kh, kw). Output size per axis:
    (N - 1)*stride - 2*padding + dilation*(F-1) + output_padding + 1, with
    output_padding < stride or < dilation."""
    x = as_tensor(x)
    w = as_tensor(w, like=x)
    fn = "conv_transpose2d"
    w_shape = _check_conv_args(x, w, 2, groups, fn, transposed=True)
    stride = _tuple(stride, 2, "stride", fn)
    dilation = _tuple(dilation, 2, "dilation", fn)
    padding = _tuple(padding, 2, "padding", fn, low=0)
    output_padding = _tuple(output_padding, 2, "output_padding", fn, low=0)
    for op, s, d in zip(output_padding, stride, dilation):
        if op >= s and op >= d:
            raise ValueError(f"{fn}: output_padding {output_padding} must be smaller than stride {stride} "
                             f"or dilation {dilation}")
    if None in x.shape[2:]:
        raise ShapeError(f"{fn}: the spatial size of x must be known, got {x.shape}")
    groups = int(groups)
    sizes = []
    for n, k, s, p, d, op, name in zip(_known_sizes(x.shape[2:], fn), w_shape[2:], stride, padding, dilation,
                                       output_padding, ("height", "width")):
        size = (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        if n < 1 or size < 1:
            raise ShapeError(f"{fn}: the output {name} (n-1)*stride - 2*padding + dilation*(k-1) + "
                             f"output_padding + 1 = {size} for input {name} {n} must be >= 1")
        sizes.append(size)
    if groups == 1 and dilation == (1, 1):
        # the native transposed convolution (conv2d's input gradient); its third input only
        # gives the output shape
        ref = _shape_reference(x, (w_shape[1],) + tuple(sizes))
        out = apply("conv2d_grad_input", [x, w, ref], stride=stride, padding=padding)
        return _add_bias(out, b, 2, fn)
    for axis, s in ((2, stride[0]), (3, stride[1])):
        x = _insert_zeros(x, axis, s)
    kh, kw = w_shape[2:]
    pairs = [(d * (k - 1) - p, d * (k - 1) - p + op)
             for k, d, p, op in zip((kh, kw), dilation, padding, output_padding)]
    cin, cout_g = w_shape[0], w_shape[1]
    # per group: (in/g, out/g) -> (out/g, in/g), and the taps flipped
    wt = reshape(transpose(reshape(w, (groups, cin // groups, cout_g, kh, kw)), (0, 2, 1, 3, 4)),
                 (groups * cout_g, cin // groups, kh, kw))[:, :, ::-1, ::-1]
    out = _conv2d_core(x, wt, (1, 1), pairs, dilation, groups)
    return _add_bias(out, b, 2, fn)
