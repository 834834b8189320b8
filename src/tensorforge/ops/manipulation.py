"""Shape manipulation built from existing graph ops: stack, split, chunk, repeat, tile,
repeat_interleave, roll, flip, tril/triu, diagonal, diag, unfold, meshgrid, masked_fill.

Every function here is a composition (slices, concat, reshape, broadcast_to, where), so
it differentiates through autodiff with torch's gradients and runs on every backend with
no code of its own. Sizes that decide the structure of the result (split points, repeat
counts, window positions) must be known when the graph is built.
"""
from __future__ import annotations

import math
from typing import Any, Sequence, cast

import numpy as np

from .._typing import Shape, TensorLike
from ..graph import Tensor, as_tensor, constant
from .registry import ShapeError, apply, normalize_axis

FULL = ("slice", None, None, 1)


def _axis(x: Tensor, axis: int | np.integer[Any], what: str) -> int:
    try:
        (a,) = normalize_axis(int(axis), len(x.shape))
    except ShapeError as e:
        raise ShapeError(f"{what}: {e} (tensor {x.name!r} of shape {x.shape})") from None
    return a


def _known_dim(x: Tensor, axis: int, what: str) -> int:
    """The size of ``axis`` of ``x``, which must be known when the graph is built."""
    size = x.shape[axis]
    if size is None:
        raise ShapeError(f"{what}: the size of axis {axis} of {x.name!r} must be known when the graph "
                         f"is built (shape {x.shape})")
    return size


def _known(x: Tensor, what: str) -> Shape:
    """The shape of ``x``, every dimension of which must be known when the graph is built."""
    return tuple(_known_dim(x, a, what) for a in range(len(x.shape)))


def _slice(x: Tensor, axis: int, start: int | None, stop: int | None, step: int = 1) -> Tensor:
    index = tuple(("slice", start, stop, step) if a == axis else FULL for a in range(len(x.shape)))
    return apply("getitem", [x], index=index)


# ---- stack / split / chunk ----------------------------------------------------------

def stack(tensors: Sequence[TensorLike], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis ``axis`` (torch.stack)."""
    given = list(tensors)
    if not given:
        raise ValueError("stack: needs at least one tensor")
    like = next((t for t in given if isinstance(t, Tensor)), None)
    operands = [as_tensor(t, like=like) for t in given]
    shapes = {t.shape for t in operands}
    if len({len(s) for s in shapes}) > 1 or any(
            len({s[a] for s in shapes if s[a] is not None}) > 1 for a in range(len(operands[0].shape))):
        raise ShapeError("stack: all tensors must have the same shape, got "
                         + ", ".join(str(t.shape) for t in operands))
    (axis,) = normalize_axis(int(axis), len(operands[0].shape) + 1)
    parts = [apply("expand_dims", [t], axes=(axis,)) for t in operands]
    return apply("concat", parts, axis=axis)


def split(x: TensorLike, split_size_or_sections: int | Sequence[int], axis: int = 0) -> tuple[Tensor, ...]:
    """Split ``x`` along ``axis`` (torch.split): an int gives pieces of that size (the last
    may be smaller); a list gives the size of each piece (they must add up to the axis size)."""
    x = as_tensor(x)
    axis = _axis(x, axis, "split")
    n = _known_dim(x, axis, "split")
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0 and not (size == 0 and n == 0):
            raise ValueError(f"split: split_size must be positive, got {size}")
        sizes = [min(size, n - s) for s in range(0, n, size)] if n else [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} must be non-negative and add up to the size {n} "
                             f"of axis {axis}")
    out, start = list[Tensor](), 0
    for s in sizes:
        out.append(_slice(x, axis, start, start + s))
        start += s
    return tuple(out)


def chunk(x: TensorLike, chunks: int, axis: int = 0) -> tuple[Tensor, ...]:
    """Split ``x`` into at most ``chunks`` pieces of size ceil(n / chunks) along ``axis``
    (torch.chunk: fewer pieces when they do not divide evenly)."""
    x = as_tensor(x)
    if int(chunks) <= 0:
        raise ValueError(f"chunk: chunks must be positive, got {chunks}")
    axis = _axis(x, axis, "chunk")
    n = _known_dim(x, axis, "chunk")
    return split(x, max(1, math.ceil(n / int(chunks))) if n else 0, axis)


# ---- repeat / tile / repeat_interleave ------------------------------------------------

def _sizes(args: Sequence[int | Sequence[int]], what: str) -> Shape:
    items: Sequence[Any] = args             # the counts: ints or int-likes (np.int64, ...)
    if len(args) == 1 and not isinstance(args[0], (int, np.integer)):
        items = tuple(args[0])
    sizes = tuple(int(r) for r in items)
    if any(r < 0 for r in sizes):
        raise ValueError(f"{what}: repeat counts must be non-negative, got {sizes}")
    return sizes


def repeat(x: TensorLike, *sizes: int | Sequence[int]) -> Tensor:
    """torch.Tensor.repeat: tile ``x`` ``sizes[i]`` times along axis i. ``sizes`` may be longer
    than x's rank (x gets leading size-1 axes), never shorter. The gradient sums the copies."""
    x = as_tensor(x)
    reps = _sizes(sizes, "repeat")
    if len(reps) < len(x.shape):
        raise ShapeError(f"repeat: the number of repeat counts ({len(reps)}) cannot be smaller than "
                         f"the rank of x ({len(x.shape)})")
    shape = (1,) * (len(reps) - len(x.shape)) + _known(x, "repeat")
    # (r0, d0, r1, d1, ...) broadcast, then merged pairwise
    inter = tuple(v for r, d in zip(reps, shape) for v in (1, d))
    wide = tuple(v for r, d in zip(reps, shape) for v in (r, d))
    out = apply("broadcast_to", [apply("reshape", [x], shape=inter)], shape=wide)
    return apply("reshape", [out], shape=tuple(r * d for r, d in zip(reps, shape)))


def tile(x: TensorLike, dims: int | Sequence[int]) -> Tensor:
    """torch.tile / numpy.tile: like :func:`repeat`, but fewer counts than x's rank are padded
    with leading ones."""
    x = as_tensor(x)
    reps = _sizes((dims,) if isinstance(dims, (int, np.integer)) else (tuple(dims),), "tile")
    return repeat(x, (1,) * (len(x.shape) - len(reps)) + reps)


def repeat_interleave(x: TensorLike, repeats: int | Sequence[int], axis: int | None = None) -> Tensor:
    """torch.repeat_interleave: each element repeated ``repeats`` times along ``axis`` (an
    int, or one count per element); axis None flattens x first."""
    x = as_tensor(x)
    if axis is None:
        x = apply("reshape", [x], shape=(-1,))
        axis = 0
    axis = _axis(x, axis, "repeat_interleave")
    n = _known_dim(x, axis, "repeat_interleave")
    if isinstance(repeats, (int, np.integer)):
        r = int(repeats)
        if r < 0:
            raise ValueError(f"repeat_interleave: repeats must be non-negative, got {r}")
        shape = _known(x, "repeat_interleave")
        wide = shape[:axis + 1] + (r,) + shape[axis + 1:]
        out = apply("broadcast_to", [apply("expand_dims", [x], axes=(axis + 1,))], shape=wide)
        return apply("reshape", [out], shape=shape[:axis] + (n * r,) + shape[axis + 1:])
    if isinstance(repeats, Tensor):
        raise TypeError("repeat_interleave: repeats must be an int or a list of ints known when the graph is "
                        "built, not a Tensor (the output size depends on them)")
    counts = np.asarray(repeats)
    if counts.ndim != 1 or counts.dtype.kind not in "iu" and counts.size:
        raise TypeError(f"repeat_interleave: repeats must be an int or a 1-d list of ints, got {repeats!r}")
    if counts.shape[0] != n or (counts < 0).any():
        raise ValueError(f"repeat_interleave: repeats must hold {n} non-negative counts (one per element "
                         f"of axis {axis}), got {counts.tolist()}")
    from .gather import take
    return take(x, np.repeat(np.arange(n), counts.astype(np.int64)), axis)


# ---- roll / flip ------------------------------------------------------------------------

def roll(x: TensorLike, shifts: int | Sequence[int], axis: int | Sequence[int] | None = None) -> Tensor:
    """torch.roll: elements shifted by ``shifts`` along ``axis`` (an int or a tuple matching
    shifts), wrapping around; axis None rolls the flattened tensor."""
    x = as_tensor(x)
    if axis is None:
        if not isinstance(shifts, (int, np.integer)):
            raise ValueError("roll: with axis=None, shifts must be a single int")
        return apply("reshape_like", [roll(apply("reshape", [x], shape=(-1,)), shifts, 0), x])
    shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    if len(shifts) != len(axes):
        raise ValueError(f"roll: shifts {shifts} and axis {axes} must have the same length")
    for s, given_axis in zip(shifts, axes):
        a = _axis(x, given_axis, "roll")
        n = _known_dim(x, a, "roll")
        k = int(s) % n if n else 0
        if k:
            x = apply("concat", [_slice(x, a, n - k, None), _slice(x, a, 0, n - k)], axis=a)
    return x


def flip(x: TensorLike, axis: int | Sequence[int]) -> Tensor:
    """torch.flip: reverse the order of elements along each axis in ``axis``."""
    x = as_tensor(x)
    axes = {_axis(x, a, "flip") for a in ((axis,) if isinstance(axis, (int, np.integer)) else axis)}
    index = tuple(("slice", None, None, -1) if a in axes else FULL for a in range(len(x.shape)))
    return apply("getitem", [x], index=index)


# ---- triangles and diagonals -------------------------------------------------------

def _triangle(x: TensorLike, diagonal: int, lower: bool, what: str) -> Tensor:
    x = as_tensor(x)
    if len(x.shape) < 2:
        raise ShapeError(f"{what}: x must have at least 2 dimensions, got shape {x.shape}")
    n, m = _known_dim(x, len(x.shape) - 2, what), _known_dim(x, len(x.shape) - 1, what)
    rows, cols = np.arange(n)[:, None], np.arange(m)[None, :]
    keep = cols - rows <= diagonal if lower else cols - rows >= diagonal
    zero = False if x.dtype == "bool" else 0
    return apply("where", [constant(keep, graph=x.graph), x, as_tensor(zero, like=x)])


def tril(x: TensorLike, diagonal: int = 0) -> Tensor:
    """torch.tril: zero the elements above the ``diagonal``-th diagonal of the last two axes."""
    return _triangle(x, int(diagonal), True, "tril")


def triu(x: TensorLike, diagonal: int = 0) -> Tensor:
    """torch.triu: zero the elements below the ``diagonal``-th diagonal of the last two axes."""
    return _triangle(x, int(diagonal), False, "triu")


def diagonal(x: TensorLike, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """torch.diagonal: the elements ``x[.., i, .., i + offset, ..]`` of axes (axis1, axis2),
    which are removed, on a new last axis. Gradient: scattered back onto the diagonal.

    Computed without gathering: the two axes are moved last and merged, and the diagonal
    is then a strided slice (step m + 1) of that flat axis."""
    x = as_tensor(x)
    if len(x.shape) < 2:
        raise ShapeError(f"diagonal: x must have at least 2 dimensions, got shape {x.shape}")
    a1, a2 = _axis(x, axis1, "diagonal"), _axis(x, axis2, "diagonal")
    if a1 == a2:
        raise ShapeError(f"diagonal: axis1 and axis2 must differ, got {axis1} and {axis2}")
    shape = _known(x, "diagonal")
    rest = [a for a in range(len(shape)) if a not in (a1, a2)]
    moved = apply("transpose", [x], axes=tuple(rest) + (a1, a2))
    n, m, k = shape[a1], shape[a2], int(offset)
    count = max(0, min(n, m - k) if k >= 0 else min(n + k, m))
    flat = apply("reshape", [moved], shape=tuple(shape[a] for a in rest) + (n * m,))
    start = k if k >= 0 else -k * m
    if count == 0:
        return _slice(flat, len(rest), 0, 0)
    return _slice(flat, len(rest), start, start + (count - 1) * (m + 1) + 1, m + 1)


_diagonal = diagonal      # diag's argument ``diagonal`` hides the function


def diag(x: TensorLike, diagonal: int = 0) -> Tensor:
    """torch.diag: a 1-d ``x`` becomes the square matrix with x on its ``diagonal``-th
    diagonal; a 2-d ``x`` gives its ``diagonal``-th diagonal as a vector."""
    x = as_tensor(x)
    k = int(diagonal)
    if len(x.shape) == 2:
        return _diagonal(x, k, 0, 1)
    if len(x.shape) != 1:
        raise ShapeError(f"diag: x must be 1-d or 2-d, got shape {x.shape}")
    n = _known(x, "diag")[0]
    size = n + abs(k)
    line = x
    if k:                                  # x padded to the matrix side, as a column (k>0) or row
        padding = np.zeros(abs(k), dtype=x.dtype)
        line = apply("concat", [x, constant(padding, graph=x.graph)], axis=0)
    line = apply("reshape", [line], shape=(size, 1) if k >= 0 else (1, size))
    rows, cols = np.arange(size)[:, None], np.arange(size)[None, :]
    zero = False if x.dtype == "bool" else 0
    return apply("where", [constant(cols - rows == k, graph=x.graph), line, as_tensor(zero, like=x)])


# ---- unfold / meshgrid / masked_fill -------------------------------------------------

def unfold(x: TensorLike, axis: int, size: int, step: int) -> Tensor:
    """torch.Tensor.unfold: every window of ``size`` elements along ``axis``, ``step`` apart.
    The axis becomes the number of windows and a new last axis of length ``size`` holds
    each window. Gradient: overlapping windows add up."""
    x = as_tensor(x)
    axis = _axis(x, axis, "unfold") if len(x.shape) else 0
    size, step = int(size), int(step)
    if step <= 0:
        raise ValueError(f"unfold: step must be positive, got {step}")
    if len(x.shape) == 0:
        x = apply("reshape", [x], shape=(1,))
    n = _known_dim(x, axis, "unfold")
    if not 0 <= size <= n:
        raise ValueError(f"unfold: size {size} must lie in [0, {n}] (the size of axis {axis})")
    count = (n - size) // step + 1
    parts = [apply("expand_dims", [_slice(x, axis, w, w + (count - 1) * step + 1, step)], axes=(len(x.shape),))
             for w in range(size)]
    if not parts:
        shape = tuple(count if a == axis else d for a, d in enumerate(_known(x, "unfold"))) + (0,)
        return apply("reshape", [_slice(x, axis, 0, 0)], shape=shape)
    return parts[0] if len(parts) == 1 else apply("concat", parts, axis=len(x.shape))


def meshgrid(*xs: TensorLike | Sequence[TensorLike], indexing: str = "ij") -> tuple[Tensor, ...]:
    """torch.meshgrid: coordinate grids from 1-d tensors. ``indexing="ij"`` gives shape
    (len(x0), len(x1), ...); ``"xy"`` swaps the first two axes (Cartesian, as numpy)."""
    given: Sequence[TensorLike]
    if len(xs) == 1 and isinstance(xs[0], (list, tuple)):
        given = tuple(cast("Sequence[TensorLike]", xs[0]))     # the tensors passed as one list
    else:
        given = cast("tuple[TensorLike, ...]", xs)             # one tensor per argument
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    like = next((t for t in given if isinstance(t, Tensor)), None)
    tensors = [as_tensor(t, like=like) for t in given]
    for i, t in enumerate(tensors):
        if len(t.shape) > 1:
            raise ShapeError(f"meshgrid: tensor {i} must be 0-d or 1-d, got shape {t.shape}")
        _known(t, "meshgrid")
    vectors = [apply("reshape", [t], shape=(-1,)) for t in tensors]
    sizes = [t.shape[0] for t in vectors]
    order = list(range(len(vectors)))
    if indexing == "xy" and len(vectors) >= 2:
        order[0], order[1] = 1, 0
    shape = tuple(sizes[i] for i in order)
    out = []
    for i, t in enumerate(vectors):
        at = order.index(i)
        lifted = apply("reshape", [t], shape=tuple(sizes[i] if a == at else 1 for a in range(len(vectors))))
        out.append(apply("broadcast_to", [lifted], shape=shape))
    return tuple(out)


def masked_fill(x: TensorLike, mask: TensorLike, value: TensorLike) -> Tensor:
    """torch.masked_fill: ``value`` where the bool ``mask`` (broadcast to x) is true, x
    elsewhere; the result keeps x's dtype. Gradient to x is zero where masked."""
    x = as_tensor(x)
    mask = as_tensor(mask, like=x)
    if mask.dtype != "bool":
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {mask.dtype}")
    if isinstance(value, Tensor):
        if len(value.shape) != 0:
            raise ShapeError(f"masked_fill: value must be a scalar (0-d), got shape {value.shape}")
        if value.dtype != x.dtype:
            value = apply("cast", [value], dtype=x.dtype)
    else:
        value = constant(np.asarray(value).astype(x.dtype), graph=x.graph)
    out = apply("where", [mask, value, x])
    if out.shape != x.shape:
        raise ShapeError(f"masked_fill: mask of shape {mask.shape} does not broadcast to x's shape {x.shape}")
    return out
