"""Pooling and resizing beyond the native kernels: max/avg pooling with dilation, ceil_mode,
count_include_pad=False and divisor_override (1-d and 2-d), adaptive average pooling and
``interpolate`` (nearest, linear, bilinear), with torch's output sizes and coordinate rules.

The registered ``max_pool2d``/``avg_pool2d`` ops (ops/nn.py, native kernels) still run the
cases they cover; the rest are compositions of strided slices:

- max pooling keeps a running maximum over the window taps with ``where(tap > m or tap is
  NaN, tap, m)``, so the gradient goes to ONE element per window, the first maximum in
  row-major order (torch's rule; ties are common after a relu) and NaN wins like in torch;
- average pooling sums the taps of the zero-padded input and divides by a constant divisor
  per output position, computed at build time with torch's window clipping rules;
- adaptive average pooling uses torch's bins [floor(i*N/M), ceil((i+1)*N/M)): the native
  kernel when the sizes divide, otherwise separable means of slices per axis (a matmul with
  a constant averaging matrix for many bins);
- interpolate gathers source rows/columns with slices (a constant index pattern) and, for the
  linear modes, blends two gathers with constant weights (separably, width then height);
  a pattern that would need many slices becomes a matmul with a constant resize matrix.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator, Sequence, SupportsIndex, cast

import numpy as np

from .._typing import Array, TensorLike
from ..graph import Tensor, as_tensor, constant
from . import nn
from .._typing import IntOrTuple
from .indexing import concat
from .padding import narrow, pad
from .reduce import mean
from .registry import ShapeError, apply
from .shape import expand_dims, reshape, squeeze, transpose
from .convolution import LAYOUTS, _known_sizes, _tuple


# with more slices than this per axis, a resize or an adaptive pooling becomes a matmul with a
# constant matrix (a few nodes instead of hundreds; an inf/NaN then spreads along its row)
MAX_SLICES = 16

#: One int per spatial axis.
Ints = tuple[int, ...]


def _apply_matrix(x: Tensor, axis: int, m: Array) -> Tensor:
    """Contract ``axis`` (the last or second-to-last) of x with the constant (n_out, n_in) m."""
    mat = constant(m.astype(x.dtype), graph=x.graph)
    if axis == len(x.shape) - 1:
        return x @ transpose(mat, (1, 0))
    return mat @ x


# ---- window geometry ---------------------------------------------------------------------

def _pool_len(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool, fn: str, axis_name: str) -> int:
    """torch's pooling output size (a last window that starts in the right padding is dropped)."""
    span = d * (k - 1) + 1
    if n + 2 * p < span:
        raise ShapeError(f"{fn}: the {axis_name} {n} plus padding 2*{p} is smaller than the window {span}")
    num = n + 2 * p - span
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _check_pool_input(x: Tensor, rank: int, fn: str) -> None:
    if len(x.shape) != rank + 2:
        raise ShapeError(f"{fn}: needs x {LAYOUTS[rank]}, got x of shape {x.shape}")
    if np.dtype(x.dtype).kind != "f":
        raise ShapeError(f"{fn}: x must be floating point, got {x.dtype}")
    if None in x.shape[2:]:
        raise ShapeError(f"{fn}: the spatial size of x must be known, got {x.shape}")


def _geometry(x: Tensor, kernel_size: IntOrTuple, stride: IntOrTuple | None, padding: IntOrTuple, dilation: IntOrTuple,
              ceil_mode: bool, fn: str) -> tuple[Ints, Ints, Ints, Ints, Ints]:
    """(kernel, stride, padding, dilation, output size) of a 2-d pooling of x (spatial size known)."""
    kernel = _tuple(kernel_size, 2, "kernel_size", fn)
    strides = kernel if stride is None or stride == () else _tuple(stride, 2, "stride", fn)
    pads = _tuple(padding, 2, "padding", fn, low=0)
    dilations = _tuple(dilation, 2, "dilation", fn)
    if any(p > k // 2 for p, k in zip(pads, kernel)):
        raise ShapeError(f"{fn}: padding {pads} must be at most half the kernel size {kernel}")
    size = _known_sizes(x.shape[2:], fn)
    out = tuple(_pool_len(size[a], kernel[a], strides[a], pads[a], dilations[a], ceil_mode, fn,
                          ("height", "width")[a]) for a in range(2))
    return kernel, strides, pads, dilations, out


def _padded_taps(x: Tensor, kernel: Ints, stride: Ints, padding: Ints, dilation: Ints, out: Ints,
                 fill: float) -> Iterator[Tensor]:
    """Pad x with ``fill`` (enough after for the last window) and yield each window cell's
    (N, C, Ho, Wo) strided slice, row-major over the window."""
    size = _known_sizes(x.shape[2:], "pooling")
    extra = [max(0, (o - 1) * s + d * (k - 1) + 1 - (n + 2 * p))
             for o, s, d, k, n, p in zip(out, stride, dilation, kernel, size, padding)]
    if any(padding) or any(extra):
        x = pad(x, (padding[1], padding[1] + extra[1], padding[0], padding[0] + extra[0]), value=fill)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            r, c = i * dilation[0], j * dilation[1]
            yield x[:, :, r:r + stride[0] * (out[0] - 1) + 1:stride[0], c:c + stride[1] * (out[1] - 1) + 1:stride[1]]


def _native_size(x: Tensor, kernel: Ints, stride: Ints, padding: Ints) -> Ints:
    size = _known_sizes(x.shape[2:], "pooling")
    return tuple((size[a] + 2 * padding[a] - kernel[a]) // stride[a] + 1 for a in range(2))


# ---- max / avg pooling ---------------------------------------------------------------------

def max_pool2d(x: TensorLike, kernel_size: IntOrTuple, stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
               dilation: IntOrTuple = 1, ceil_mode: bool = False) -> Tensor:
    """Max pooling over NCHW ``x`` with padding, dilation and ceil_mode (torch's max_pool2d).

    ``stride`` defaults to the kernel size, implicit -inf padding (at most half the kernel), ``dilation`` spaces the window
    taps, ``ceil_mode`` rounds the output size up. The gradient goes to the first maximum of
    each window (row-major), or to its NaN."""
    x = as_tensor(x)
    if _tuple(dilation, 2, "dilation", "max_pool2d") == (1, 1) and not ceil_mode:
        return nn.max_pool2d(x, kernel_size, stride, padding)     # the native kernel's case
    _check_pool_input(x, 2, "max_pool2d")
    kernel, strides, pads, dilations, out = _geometry(x, kernel_size, stride, padding, dilation, ceil_mode,
                                                      "max_pool2d")
    if dilations == (1, 1) and out == _native_size(x, kernel, strides, pads):
        return nn.max_pool2d(x, kernel, strides, pads)
    best: Tensor | None = None
    for tap in _padded_taps(x, kernel, strides, pads, dilations, out, -math.inf):
        # strictly greater: an equal later tap does not take the gradient; NaN always wins
        best = tap if best is None else apply("where", [tap != tap, tap, apply("where", [tap > best, tap, best])])
    assert best is not None     # a window has at least one tap
    return best


def _avg_divisor(x: Tensor, kernel: Ints, stride: Ints, padding: Ints, out: Ints,
                 count_include_pad: bool) -> Array:
    """torch's divisor per output position: the window clipped to the padded input (ceil_mode
    windows overhang it), or to the input itself when padding is not counted."""
    per_axis = []
    spatial = _known_sizes(x.shape[2:], "avg_pool2d")
    for a in range(2):
        n, k, s, p = spatial[a], kernel[a], stride[a], padding[a]
        start = np.arange(out[a]) * s - p
        end = np.minimum(start + k, n + p)
        size = end - start
        if not count_include_pad:
            size = np.minimum(end, n) - np.maximum(start, 0)
        per_axis.append(size)
    return np.outer(per_axis[0], per_axis[1])


def avg_pool2d(x: TensorLike, kernel_size: IntOrTuple, stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
               ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """Average pooling over NCHW ``x`` with ceil_mode, count_include_pad, divisor_override (torch's).

    Zero padding, counted in the divisor unless ``count_include_pad=False``; ``divisor_override`` replaces the divisor.
    The gradient spreads g / divisor over each window."""
    x = as_tensor(x)
    if not ceil_mode and count_include_pad and divisor_override is None:
        return nn.avg_pool2d(x, kernel_size, stride, padding)     # the native kernel's case
    _check_pool_input(x, 2, "avg_pool2d")
    kernel, strides, pads, _, out = _geometry(x, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    if divisor_override is not None and (isinstance(divisor_override, bool) or int(divisor_override) < 1):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got {divisor_override!r}")
    native = out == _native_size(x, kernel, strides, pads)
    if native and divisor_override is None and (count_include_pad or pads == (0, 0)):
        return nn.avg_pool2d(x, kernel, strides, pads)
    total: Tensor | None = None
    for tap in _padded_taps(x, kernel, strides, pads, (1, 1), out, 0.0):
        total = tap if total is None else total + tap
    assert total is not None    # a window has at least one tap
    if divisor_override is not None:
        return total / float(int(divisor_override))
    divisor = _avg_divisor(x, kernel, strides, pads, out, count_include_pad)
    return total / constant(divisor.astype(x.dtype), graph=x.graph)


def _one_d(pool: Callable[..., Tensor], x: TensorLike, kernel_size: IntOrTuple, stride: IntOrTuple | None,
           padding: IntOrTuple, fn: str, **kw: Any) -> Tensor:
    x = as_tensor(x)
    if len(x.shape) != 3:
        raise ShapeError(f"{fn}: x must have rank 3 (N, C, L), got {x.shape}")
    k = _tuple(kernel_size, 1, "kernel_size", fn)[0]
    s = k if stride is None or stride == () else _tuple(stride, 1, "stride", fn)[0]
    p = _tuple(padding, 1, "padding", fn, low=0)[0]
    return squeeze(pool(expand_dims(x, 2), (1, k), (1, s), (0, p), **kw), 2)


def max_pool1d(x: TensorLike, kernel_size: IntOrTuple, stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
               dilation: IntOrTuple = 1, ceil_mode: bool = False) -> Tensor:
    """Max pooling over (N, C, L) ``x`` (torch's max_pool1d); see max_pool2d."""
    d = _tuple(dilation, 1, "dilation", "max_pool1d")[0]
    return _one_d(max_pool2d, x, kernel_size, stride, padding, "max_pool1d", dilation=(1, d), ceil_mode=ceil_mode)


def avg_pool1d(x: TensorLike, kernel_size: IntOrTuple, stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Average pooling over (N, C, L) ``x`` (torch's avg_pool1d); see avg_pool2d."""
    return _one_d(avg_pool2d, x, kernel_size, stride, padding, "avg_pool1d", ceil_mode=ceil_mode,
                  count_include_pad=count_include_pad)


# ---- adaptive average pooling ----------------------------------------------------------------

def _adaptive_axis(x: Tensor, axis: int, m: int) -> Tensor:
    """Mean over torch's adaptive bins along ``axis``: bin i is [floor(i*n/m), ceil((i+1)*n/m))."""
    (n,) = _known_sizes(x.shape[axis:axis + 1], "adaptive_avg_pool2d")
    if n == m:
        return x
    bins = [((i * n) // m, -(-((i + 1) * n) // m)) for i in range(m)]
    if m > MAX_SLICES:                      # many bins: one matmul with the averaging matrix
        avg = np.zeros((m, n))
        for i, (a, b) in enumerate(bins):
            avg[i, a:b] = 1.0 / (b - a)
        return _apply_matrix(x, axis, avg)
    parts = [mean(narrow(x, axis, a, b), axis, keepdims=True) for a, b in bins]
    return parts[0] if m == 1 else concat(parts, axis=axis)


def adaptive_avg_pool2d(x: TensorLike, output_size: int | None | Sequence[int | None]) -> Tensor:
    """Average pooling of NCHW ``x`` to a fixed output size with torch's bins (adaptive_avg_pool2d).

    ``output_size`` is an int or a pair (None keeps that input size); ``output_size=1`` is global average pooling."""
    x = as_tensor(x)
    _check_pool_input(x, 2, "adaptive_avg_pool2d")
    if isinstance(output_size, (int, np.integer)) or output_size is None:
        output_size = (output_size, output_size)
    spatial = _known_sizes(x.shape[2:], "adaptive_avg_pool2d")
    size = tuple(spatial[a] if o is None else int(o) for a, o in enumerate(output_size))
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive ints, got {output_size!r}")
    h, w = spatial
    if h % size[0] == 0 and w % size[1] == 0 and h and w:
        k = (h // size[0], w // size[1])
        return nn.avg_pool2d(x, k, k, 0)
    return _adaptive_axis(_adaptive_axis(x, 3, size[1]), 2, size[0])


def adaptive_avg_pool1d(x: TensorLike, output_size: int | Sequence[int]) -> Tensor:
    """Average pooling of (N, C, L) ``x`` to ``output_size`` positions (torch's bins)."""
    x = as_tensor(x)
    if len(x.shape) != 3:
        raise ShapeError(f"adaptive_avg_pool1d: x must have rank 3 (N, C, L), got {x.shape}")
    o = output_size[0] if isinstance(output_size, (tuple, list)) else output_size
    # o is one size: an int or a NumPy integer
    return squeeze(adaptive_avg_pool2d(expand_dims(x, 2), (1, int(cast(SupportsIndex, o)))), 2)


# ---- interpolate -----------------------------------------------------------------------------

def _slice_runs(idx: Array) -> list[tuple[int, int]]:
    """Runs of consecutive indices as [start, stop) pairs."""
    runs, k = [], 0
    while k < len(idx):
        j = k
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        runs.append((int(idx[k]), int(idx[j]) + 1))
        k = j + 1
    return runs


def _gather(x: Tensor, axis: int, idx: Array) -> Tensor | None:
    """x[..., idx, ...] along ``axis`` for a constant, non-decreasing index list, built from
    slices: one strided slice (a downsampling), a repeat of each element (an upsampling
    by an integer factor), or runs of consecutive indices concatenated. None when that
    would take more than MAX_SLICES slices."""
    idx = np.asarray(idx, dtype=np.int64)
    n = len(idx)
    step = int(idx[1] - idx[0]) if n > 1 else 1
    if step >= 1 and np.array_equal(idx, idx[0] + step * np.arange(n)):
        return narrow(x, axis, int(idx[0]), int(idx[-1]) + 1, step)
    reps = int(np.sum(idx == idx[0]))
    if n % reps == 0 and np.array_equal(idx, idx[0] + np.arange(n) // reps) \
            and sum(d is None for d in x.shape) <= 1:
        part = expand_dims(narrow(x, axis, int(idx[0]), int(idx[-1]) + 1), axis + 1)
        shape = [-1 if d is None else d for d in x.shape]
        shape[axis] = n
        return reshape(concat([part] * reps, axis=axis + 1), tuple(shape))
    runs = _slice_runs(idx)
    if len(runs) > MAX_SLICES:
        return None
    parts = [narrow(x, axis, a, b) for a, b in runs]
    return parts[0] if len(parts) == 1 else concat(parts, axis=axis)


def _nearest_index(n_in: int, n_out: int, scale: float | None) -> Array:
    """torch's nearest source index, in float32 arithmetic like its kernel."""
    if n_out == n_in:
        return np.arange(n_out)
    if n_out == 2 * n_in:
        return np.arange(n_out) >> 1
    ratio = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(n_in) / np.float32(n_out)
    src = np.floor(np.arange(n_out, dtype=np.float32) * ratio).astype(np.int64)
    out: Array = np.minimum(src, n_in - 1)
    return out


def _linear_weights(n_in: int, n_out: int, scale: float | None, align_corners: bool) -> tuple[Array, Array, Array]:
    """torch's linear source coordinates: (i0, i1, lambda1) per output position."""
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    else:
        ratio = 1.0 / scale if scale is not None and scale > 0 else n_in / n_out
        src = np.maximum(ratio * (dst + 0.5) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    return i0, i1, src - i0


def _resize_axis(x: Tensor, axis: int, n_out: int, scale: float | None, mode: str, align_corners: bool) -> Tensor:
    (n_in,) = _known_sizes(x.shape[axis:axis + 1], "interpolate")
    rows = np.arange(n_out)
    if mode == "nearest":
        idx = _nearest_index(n_in, n_out, scale)
        picked = _gather(x, axis, idx)
        if picked is None:
            picked = _apply_matrix(x, axis, (idx[:, None] == np.arange(n_in)).astype(np.float64))
        return picked
    i0, i1, lam = _linear_weights(n_in, n_out, scale, align_corners)
    x0, x1 = _gather(x, axis, i0), _gather(x, axis, i1)
    if x0 is None or x1 is None:
        m = np.zeros((n_out, n_in))
        np.add.at(m, (rows, i0), 1.0 - lam)
        np.add.at(m, (rows, i1), lam)
        return _apply_matrix(x, axis, m)
    view = (n_out,) + (1,) * (len(x.shape) - axis - 1)
    w1 = constant(lam.reshape(view).astype(x.dtype), graph=x.graph)
    w0 = constant((1.0 - lam).reshape(view).astype(x.dtype), graph=x.graph)
    return w0 * x0 + w1 * x1


_MODES = {"nearest": (3, 4), "linear": (3,), "bilinear": (4,)}


def _output_sizes(x: Tensor, size: IntOrTuple | None, scale_factor: float | Sequence[float] | None,
                  rank: int) -> tuple[Ints, tuple[float | None, ...]]:
    if size is not None and scale_factor is None:
        return _tuple(size, rank, "size", "interpolate"), (None,) * rank
    if size is not None or scale_factor is None:
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    scales = (scale_factor,) * rank if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
    if len(scales) != rank or min(scales) <= 0:
        raise ValueError(f"interpolate: scale_factor must be a positive number or {rank} of them, "
                         f"got {scale_factor!r}")
    sizes = tuple(int(math.floor(n * float(s))) for n, s in zip(_known_sizes(x.shape[2:], "interpolate"), scales))
    if min(sizes) < 1:
        raise ValueError(f"interpolate: scale_factor {scale_factor!r} gives an empty output {sizes}")
    return sizes, tuple(float(s) for s in scales)


def interpolate(x: TensorLike, size: IntOrTuple | None = None, scale_factor: float | Sequence[float] | None = None,
                mode: str = "nearest", align_corners: bool | None = None) -> Tensor:
    """Resize (N, C, L) or (N, C, H, W) ``x``: nearest, linear, bilinear (torch's interpolate).

    ``mode`` 'nearest' (3-d, 4-d), 'linear' (3-d) or 'bilinear' (4-d); exactly one of
    ``size`` (int or tuple) and ``scale_factor`` (number or tuple; the output size is
    floor(n * scale) and the coordinates use 1/scale, as torch does by default).
    ``align_corners`` (linear modes only, default False) maps the corner pixels onto each
    other. Gradients sum over every output position an input element contributes to."""
    x = as_tensor(x)
    if mode not in _MODES:
        raise ValueError(f"interpolate: mode must be one of {tuple(_MODES)}, got {mode!r}")
    if len(x.shape) not in _MODES[mode]:
        raise ShapeError(f"interpolate: mode {mode!r} needs an input of rank {' or '.join(map(str, _MODES[mode]))}"
                         f" (N, C, spatial...), got {x.shape}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("interpolate: align_corners only applies to the linear modes, not 'nearest'")
    if np.dtype(x.dtype).kind != "f":
        raise ShapeError(f"interpolate: x must be floating point, got {x.dtype}")
    rank = len(x.shape) - 2
    if None in x.shape[2:]:
        raise ShapeError(f"interpolate: the spatial size of x must be known, got {x.shape}")
    if 0 in x.shape[2:]:
        raise ShapeError(f"interpolate: cannot resize an empty spatial axis, got {x.shape}")
    sizes, scales = _output_sizes(x, size, scale_factor, rank)
    for axis in reversed(range(rank)):          # width first, then height (torch's order of blending)
        x = _resize_axis(x, 2 + axis, sizes[axis], scales[axis], mode, bool(align_corners))
    return x
