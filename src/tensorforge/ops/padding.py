"""Padding (``tg.pad``) as a composition of slices and concat, plus the axis helpers that the
convolution and pooling compositions share.

No op is registered here: every mode is built from ``getitem`` (slices, reversed slices for
reflect), ``concat`` and a broadcast constant, so it differentiates through autodiff and runs
on every backend. The gradient of a padded tensor w.r.t. ``x`` is the sum of the gradient
over every place an element of ``x`` was copied to (torch's convention for reflect,
replicate and circular padding).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .._typing import TensorLike
from ..graph import Tensor, as_tensor
from .indexing import concat, getitem
from .registry import ShapeError, apply

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def narrow(x: Tensor, axis: int, start: int | None, stop: int | None, step: int = 1) -> Tensor:
    """``x[..., start:stop:step, ...]`` along ``axis`` (a basic slice on one axis)."""
    index = tuple(slice(start, stop, step) if a == axis else slice(None) for a in range(len(x.shape)))
    return getitem(x, index)


def constant_block(x: Tensor, axis: int, size: int, value: TensorLike) -> Tensor:
    """A tensor shaped like ``x`` except ``size`` along ``axis``, filled with ``value`` in x's dtype."""
    fill = as_tensor(value, like=x)
    if fill.dtype != x.dtype:
        fill = apply("cast", [fill], dtype=x.dtype)
    shape = tuple(size if a == axis else d for a, d in enumerate(x.shape))
    if None not in shape:
        return apply("broadcast_to", [fill], shape=shape)
    # a dimension known only at call time: broadcast against a reference of the block's shape
    # (read for its shape only), made of ``size`` copies of the first slice of x
    edge = narrow(x, axis, 0, 1)
    ref = edge if size == 1 else concat([edge] * size, axis=axis)
    return apply("broadcast_like", [fill, ref])


def _check_pad_arg(x: Tensor, pad: Sequence[int]) -> list[tuple[int, int]]:
    """torch's pad tuple (last axis first) as a list of (before, after) per axis of x."""
    if isinstance(pad, (int, np.integer)) or not hasattr(pad, "__len__"):
        raise TypeError(f"pad: pad must be a tuple of ints (last axis first), got {pad!r}")
    pad = tuple(pad)
    if any(isinstance(p, bool) or not isinstance(p, (int, np.integer)) for p in pad):
        raise TypeError(f"pad: pad must hold ints, got {pad!r}")
    if len(pad) % 2:
        raise ValueError(f"pad: the pad tuple must have an even length (pairs per axis), got {pad}")
    if len(pad) // 2 > len(x.shape):
        raise ValueError(f"pad: pad {pad} addresses {len(pad) // 2} axes of a tensor of rank {len(x.shape)}")
    pairs = [(0, 0)] * len(x.shape)
    for k in range(len(pad) // 2):
        pairs[len(x.shape) - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    return pairs


def _crop(x: Tensor, axis: int, before: int, after: int) -> Tensor:
    """Negative pads remove elements (torch's rule)."""
    if before >= 0 and after >= 0:
        return x
    n = x.shape[axis]
    cut_lo, cut_hi = max(-before, 0), max(-after, 0)
    if n is not None and cut_lo + cut_hi > n:
        raise ShapeError(f"pad: negative padding ({before}, {after}) removes more than the {n} elements "
                         f"of axis {axis}")
    return narrow(x, axis, cut_lo, -cut_hi if cut_hi else None)


def _mode_blocks(x: Tensor, axis: int, before: int, after: int, mode: str,
                 value: TensorLike) -> tuple[Tensor | None, Tensor | None]:
    """The (left, right) blocks that ``mode`` puts around x along ``axis`` (None: nothing)."""
    n = x.shape[axis]
    make: Callable[[int, int], Tensor]         # (pad size, side 0 left / 1 right) -> the block
    if mode == "constant":
        make = lambda p, side: constant_block(x, axis, p, value)  # noqa: E731
    elif mode == "reflect":
        if n is not None and max(before, after) >= n:
            raise ShapeError(f"pad: reflect padding ({before}, {after}) must be smaller than the size {n} "
                             f"of axis {axis}")
        # the mirror excludes the edge element: x[p], ..., x[1] on the left
        make = lambda p, side: (narrow(x, axis, p, 0, -1) if side == 0  # noqa: E731
                                else narrow(x, axis, -2, -2 - p, -1))
    elif mode == "replicate":
        if n == 0:
            raise ShapeError(f"pad: replicate padding needs a non-empty axis {axis}")
        make = lambda p, side: concat([narrow(x, axis, 0, 1) if side == 0  # noqa: E731
                                       else narrow(x, axis, -1, None)] * p, axis=axis)
    else:  # circular
        if n is not None and max(before, after) > n:
            raise ShapeError(f"pad: circular padding ({before}, {after}) must be at most the size {n} "
                             f"of axis {axis}")
        make = lambda p, side: (narrow(x, axis, -p, None) if side == 0  # noqa: E731
                                else narrow(x, axis, 0, p))
    return (make(before, 0) if before > 0 else None), (make(after, 1) if after > 0 else None)


def pad(x: TensorLike, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad ``x`` like torch.nn.functional.pad (modes constant, reflect, replicate, circular).

    ``pad`` = (before_last, after_last, before_2nd_last, after_2nd_last, ...) covers any
    number of axes, the last axes first.

    Modes: ``constant`` (fill with ``value``), ``reflect`` (mirror without the edge element,
    pad < size), ``replicate`` (repeat the edge element) and ``circular`` (wrap around,
    pad <= size). Negative pads crop. The gradient w.r.t. x sums the gradient over every
    copy of an element (a cropped element gets zero).
    """
    out = as_tensor(x)
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode must be one of {PAD_MODES}, got {mode!r}")
    pairs = _check_pad_arg(out, pad)
    for axis, (before, after) in enumerate(pairs):
        if before == 0 and after == 0:
            continue
        out = _crop(out, axis, before, after)
        left, right = _mode_blocks(out, axis, max(before, 0), max(after, 0), mode, value)
        parts = [p for p in (left, out, right) if p is not None]
        if len(parts) > 1:
            out = concat(parts, axis=axis)
    return out
