"""More reductions, as compositions of existing graph ops: argmax/argmin over any axis,
prod, any, all, var/std with a correction, vector norms, and logsumexp over several axes.

None of these registers an op: each is built from ``sum``/``max``/``argmax``/
``logsumexp`` and elementwise math, so it runs on every backend, fuses, and
differentiates through autodiff. ``prod`` is a pairwise product tree (so its gradient is
exact where the input holds zeros, unlike prod/x).
"""
from __future__ import annotations

import builtins
import math
from typing import Callable, Sequence, SupportsIndex, cast

import numpy as np

from .._typing import Axis, TensorLike
from ..graph import Tensor, as_tensor
from .registry import ShapeError, apply, normalize_axis
from .scan import full_like_const, logical_or, pick_axis, take


# ---- axis helpers ------------------------------------------------------------------------

def _axes(x: Tensor, axis: Axis, what: str) -> tuple[int, ...]:
    """``axis`` (None: every axis; an int or a sequence) as sorted non-negative ints."""
    if isinstance(axis, (list, tuple)):
        axis = tuple(int(a) for a in axis)
    elif axis is not None:
        axis = int(cast(SupportsIndex, axis))      # one axis: an int or a NumPy integer
    try:
        return tuple(sorted(normalize_axis(axis, len(x.shape))))
    except ShapeError as e:
        raise ShapeError(f"{what}: {e} (tensor of shape {x.shape})") from None


def _known(dims: Sequence[int | None]) -> tuple[int, ...] | None:
    """``dims`` if every one is known when the graph is built, else None."""
    known = tuple(d for d in dims if d is not None)
    return known if len(known) == len(dims) else None


def _to_rows(x: Tensor, axes: tuple[int, ...], what: str) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """``x`` with the reduced ``axes`` moved last and merged: a (R, m) tensor, plus a
    function that brings a (R,) result back to the shape of the kept axes."""
    ndim = len(x.shape)
    kept = [d for d in range(ndim) if d not in axes]
    sizes = _known([x.shape[a] for a in axes])
    kept_shape = _known([x.shape[d] for d in kept])
    perm = tuple(kept + list(axes))
    moved = apply("transpose", [x], axes=perm) if perm != tuple(range(ndim)) else x
    # one of the two merged sizes may be known only at call time (reshape infers one -1)
    if kept_shape is not None:
        rows = apply("reshape", [moved], shape=(math.prod(kept_shape), -1 if sizes is None else math.prod(sizes)))
    elif sizes is not None and math.prod(sizes) > 0:
        rows = apply("reshape", [moved], shape=(-1, math.prod(sizes)))
    else:
        raise ShapeError(f"{what}: reducing axes {axes} of a {x.shape} tensor needs either the reduced sizes "
                         f"(not empty) or the kept sizes known when the graph is built")

    def restore(r: Tensor) -> Tensor:
        if kept_shape is not None:
            return apply("reshape", [r], shape=kept_shape)
        ref = apply("sum", [x], axis=axes)          # read for its shape only
        return apply("reshape_like", [r, ref])
    return rows, restore


def _keepdims(out: Tensor, axes: tuple[int, ...], keepdims: bool) -> Tensor:
    return apply("expand_dims", [out], axes=axes) if keepdims and axes else out


# ---- argmax / argmin ---------------------------------------------------------------------

def argmax(x: TensorLike, axis: int | None = -1, keepdims: bool = False, *, dim: int | None = None) -> Tensor:
    """Index (int64) of the first maximum along ``axis`` (torch.argmax); ``axis=None``
    indexes the flattened tensor (then ``keepdims`` gives all size-1 axes). NaN counts as
    the maximum. The default axis stays -1 (tensorforge's historical default; torch's is
    None). No gradient."""
    x = as_tensor(x)
    ax = axis if dim is None else pick_axis(None if axis == -1 else axis, dim)
    if x.dtype == "bool":                    # argmax over bools: first True
        x = apply("cast", [x], dtype="int64")
    if ax is None or len(x.shape) == 0:
        flat = apply("reshape", [x], shape=(-1,))
        out = apply("argmax", [flat], axis=0, keepdims=False)
        if keepdims and len(x.shape):
            out = apply("reshape", [out], shape=(1,) * len(x.shape))
        return out
    if isinstance(ax, (tuple, list)):
        raise TypeError(f"argmax: axis must be one int or None, got {ax!r}")
    (a,) = _axes(x, int(cast(SupportsIndex, ax)), "argmax")     # one axis: an int or a NumPy integer
    if x.shape[a] == 0:
        raise ShapeError(f"argmax: axis {a} of a {x.shape} tensor has size 0 (there is no maximum)")
    return apply("argmax", [x], axis=a, keepdims=bool(keepdims))


def _reversed_order(x: Tensor) -> Tensor:
    """A strictly decreasing map of x, so argmax of it is argmin of x (first index on ties,
    NaN still selected for floats). Integers use -1 - x (= ~x), which cannot overflow at
    the dtype's minimum as -x would."""
    kind = np.dtype(x.dtype).kind
    if kind == "f":
        return apply("neg", [x])
    if kind == "b":
        x = apply("cast", [x], dtype="int64")
        return apply("sub", [full_like_const(x, -1), x])
    if kind == "u":
        return apply("sub", [full_like_const(x, np.iinfo(np.dtype(x.dtype)).max), x])
    return apply("sub", [full_like_const(x, -1), x])


def argmin(x: TensorLike, axis: int | None = -1, keepdims: bool = False, *, dim: int | None = None) -> Tensor:
    """Index (int64) of the first minimum along ``axis`` (torch.argmin); ``axis=None``
    indexes the flattened tensor. NaN counts as the minimum, as in torch. No gradient."""
    x = as_tensor(x)
    return argmax(_reversed_order(x), axis, keepdims, dim=dim)


# ---- prod, any, all ----------------------------------------------------------------------

def _product_tree(rows: Tensor, m: int) -> Tensor:
    """Products of the rows of a (R, m) tensor: multiply the two halves pairwise until one
    column is left (an odd column is carried). Returns (R,)."""
    if m == 0:                   # the empty product: a sum of nothing (0) plus 1
        zero = apply("sum", [rows], axis=1)
        return apply("add", [zero, full_like_const(zero, 1)])
    while m > 1:
        half = m // 2
        paired = apply("mul", [take(rows, 1, 0, half), take(rows, 1, half, 2 * half)])
        rows = apply("concat", [paired, take(rows, 1, 2 * half, m)], axis=1) if m % 2 else paired
        m = half + m % 2
    return apply("reshape", [rows], shape=(-1,))


def prod(x: TensorLike, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None) -> Tensor:
    """Product over ``axis`` (None: every axis; several allowed), as torch.prod. Integers and
    bools multiply in int64. The gradient is exact with zeros in the input (a pairwise
    product tree differentiated by the product rule: one zero leaves the product of the
    others as its gradient, two zeros give 0)."""
    x = as_tensor(x)
    axis = axis if dim is None else pick_axis(axis, dim)
    if np.dtype(x.dtype).kind != "f" and x.dtype != "int64":
        x = apply("cast", [x], dtype="int64")
    axes = _axes(x, axis, "prod")
    if not axes:
        return x
    sizes = _known([x.shape[a] for a in axes])
    if sizes is None:
        raise ShapeError(f"prod: the reduced axes {axes} of a {x.shape} tensor must have sizes known when the "
                         f"graph is built (the product tree depends on them)")
    rows, restore = _to_rows(x, axes, "prod")
    out = restore(_product_tree(rows, math.prod(sizes)))
    return _keepdims(out, axes, keepdims)


def _count_true(x: TensorLike, axis: Axis, keepdims: bool, what: str, want: bool) -> Tensor:
    """How many elements along axis are nonzero (want=True) or zero (want=False), as int64."""
    x = as_tensor(x)
    axis_norm = _axes(x, axis, what)
    truth = x if x.dtype == "bool" else apply("ne", [x, full_like_const(x, 0)])   # NaN is true
    if not want:
        truth = apply("eq", [truth, full_like_const(truth, False)])
    return apply("sum", [apply("cast", [truth], dtype="int64")], axis=axis_norm, keepdims=bool(keepdims))


def any(x: TensorLike, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None) -> Tensor:  # noqa: A001
    """Whether any element along ``axis`` is nonzero (bool, as torch.any; NaN is nonzero,
    an empty axis gives False). No gradient."""
    axis = axis if dim is None else pick_axis(axis, dim)
    count = _count_true(x, axis, keepdims, "any", True)
    return apply("gt", [count, full_like_const(count, 0)])


def all(x: TensorLike, axis: Axis = None, keepdims: bool = False, *, dim: Axis = None) -> Tensor:  # noqa: A001
    """Whether every element along ``axis`` is nonzero (bool, as torch.all; an empty axis
    gives True). No gradient."""
    axis = axis if dim is None else pick_axis(axis, dim)
    count = _count_true(x, axis, keepdims, "all", False)
    return apply("eq", [count, full_like_const(count, 0)])


# ---- var, std ----------------------------------------------------------------------------

def var(x: TensorLike, axis: Axis = None, keepdims: bool = False, *, correction: float = 0,
        unbiased: bool | None = None, dim: Axis = None) -> Tensor:
    """Variance over ``axis``: sum((x - mean)^2) / max(N - correction, 0).

    ``correction=0`` (the default here, kept from tensorforge's original ``var`` that the
    normalisation layers use) is the biased estimate; ``correction=1`` is torch.var's
    default (Bessel). ``unbiased=True/False`` is torch's older spelling of 1/0. N -
    correction <= 0 gives inf or NaN, as in torch. Gradient: 2 (x - mean) / (N - correction).
    """
    from .reduce import mean, sum as sum_
    x = as_tensor(x)
    if np.dtype(x.dtype).kind != "f":
        raise TypeError(f"var: expects a floating-point tensor, got {x.dtype}")
    if unbiased is not None:
        correction = 1 if unbiased else 0
    axis = axis if dim is None else pick_axis(axis, dim)
    axes = _axes(x, axis, "var")
    d = apply("sub", [x, mean(x, axes, keepdims=True)])
    total = sum_(apply("mul", [d, d]), axes, keepdims)
    n = apply("numel", [x], axis=axes, dtype=x.dtype)
    dof = apply("maximum", [apply("sub", [n, full_like_const(n, float(correction))]), full_like_const(n, 0.0)])
    return apply("div", [total, dof])


def std(x: TensorLike, axis: Axis = None, keepdims: bool = False, *, correction: float = 0,
        unbiased: bool | None = None, dim: Axis = None) -> Tensor:
    """Standard deviation: sqrt(var(x, axis, keepdims, correction=...)); see ``var`` for the
    correction (biased by default here, torch's default is 1)."""
    return apply("sqrt", [var(x, axis, keepdims, correction=correction, unbiased=unbiased, dim=dim)])


# ---- norm --------------------------------------------------------------------------------

def _safe_sqrt(s: Tensor) -> Tensor:
    """sqrt with gradient 0 (not inf * 0 = NaN) at 0, matching torch's vector_norm at 0."""
    zero = apply("eq", [s, full_like_const(s, 0.0)])
    root = apply("sqrt", [apply("where", [zero, full_like_const(s, 1.0), s])])
    return apply("where", [zero, full_like_const(s, 0.0), root])


def _two_norm(x: Tensor, axes: tuple[int, ...], keepdims: bool) -> Tensor:
    """sqrt(sum x^2), scaled by the largest |x| so float32 squares neither overflow nor
    underflow (torch's float64 reference does not); the scale cancels, also in the gradient."""
    a = apply("abs", [x])
    if builtins.any(x.shape[ax] == 0 for ax in axes):     # no scale to take; the sum is 0
        return _safe_sqrt(apply("sum", [apply("mul", [x, x])], axis=axes, keepdims=keepdims))
    m = apply("max", [a], axis=axes, keepdims=True)
    bad = logical_or(logical_or(apply("eq", [m, full_like_const(m, 0.0)]),
                                apply("eq", [m, full_like_const(m, np.inf)])), apply("ne", [m, m]))
    scale = apply("where", [bad, full_like_const(m, 1.0), m])
    y = apply("div", [x, scale])
    s = _safe_sqrt(apply("sum", [apply("mul", [y, y])], axis=axes, keepdims=keepdims))
    scale = scale if keepdims else apply("squeeze", [scale], axes=axes) if axes else scale
    return apply("mul", [s, scale])


def norm(x: TensorLike, p: float = 2, axis: Axis = None, keepdims: bool = False, *,  # noqa: A002
         dim: Axis = None, ord: float | None = None) -> Tensor:
    """Vector p-norm over ``axis`` (None: every element), as torch.linalg.vector_norm
    (``ord`` is accepted for p): p=2 Euclidean (gradient x / norm, 0 at a zero vector),
    p=1 sum of |x| (gradient sign(x)), p=inf max |x| and p=-inf min |x| (gradient to the
    selected elements, shared on ties), p=0 the number of nonzeros (no gradient), any
    other p > 0 (sum |x|^p)^(1/p)."""
    x = as_tensor(x)
    if np.dtype(x.dtype).kind != "f":
        raise TypeError(f"norm: expects a floating-point tensor, got {x.dtype}")
    p = p if ord is None else ord
    axis = axis if dim is None else pick_axis(axis, dim)
    axes = _axes(x, axis, "norm")
    keepdims = bool(keepdims)
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"norm: p must be a number (1, 2, inf, -inf, 0, ...), got {p!r}") from None
    if p == 2:
        return _two_norm(x, axes, keepdims)
    if p == 1:
        return apply("sum", [apply("abs", [x])], axis=axes, keepdims=keepdims)
    if p in (np.inf, -np.inf):
        for ax in axes:
            if x.shape[ax] == 0:
                raise ShapeError(f"norm: p={p} over axis {ax} of a {x.shape} tensor, which has size 0 "
                                 f"(the max of nothing is undefined, as in torch)")
        return apply("max" if p > 0 else "min", [apply("abs", [x])], axis=axes, keepdims=keepdims)
    if p == 0:
        nonzero = apply("cast", [apply("ne", [x, full_like_const(x, 0.0)])], dtype=x.dtype)
        return apply("sum", [nonzero], axis=axes, keepdims=keepdims)
    if p < 0:
        raise ValueError(f"norm: p={p} is not supported (use 1, 2, inf, -inf, 0 or a positive p)")
    powered = apply("pow", [apply("abs", [x]), full_like_const(x, p)])
    return apply("pow", [apply("sum", [powered], axis=axes, keepdims=keepdims), full_like_const(x, 1.0 / p)])


# ---- logsumexp over several axes ----------------------------------------------------------

def logsumexp(x: TensorLike, axis: Axis = -1, keepdims: bool = False, *, dim: Axis = None) -> Tensor:
    """log(sum(exp(x))) over ``axis`` computed stably (torch.logsumexp): one axis, several
    (a tuple) or None (every axis); an empty axis gives -inf. Several axes are moved last
    and merged into one, so the stable row-wise kernel does the work. Gradient:
    softmax(x) over those axes times the incoming gradient."""
    x = as_tensor(x)
    axis = axis if dim is None else pick_axis(None if axis == -1 else axis, dim)
    if np.dtype(x.dtype).kind != "f":
        raise TypeError(f"logsumexp: expects a floating-point tensor, got {x.dtype}")
    if len(x.shape) == 0:                 # over the one element of a 0-d tensor: itself
        return x
    if isinstance(axis, (int, np.integer)):
        return apply("logsumexp", [x], axis=int(axis), keepdims=bool(keepdims))
    axes = _axes(x, axis, "logsumexp")
    if not axes:
        return x
    if len(axes) == 1:
        return apply("logsumexp", [x], axis=axes[0], keepdims=bool(keepdims))
    rows, restore = _to_rows(x, axes, "logsumexp")
    out = restore(apply("logsumexp", [rows], axis=1, keepdims=False))
    return _keepdims(out, axes, keepdims)
