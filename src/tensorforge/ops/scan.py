"""Scans along one axis: cumsum, cumprod, cummax, cummin, logcumsumexp.

Every scan is a *composition* of existing graph ops, not a registered op: a log-step
(Hillis-Steele) prefix scan in which step ``s = 1, 2, 4, ...`` combines each element with
the partial result ``s`` places before it, built from two slices of the running result
and one ``concat``. An axis of length ``n`` costs ``ceil(log2 n)`` steps of elementwise
work, so the scan runs on every backend, its combining steps fuse, and autodiff derives
exact gradients from the ops it is made of (``cumprod`` with zeros included, where a
division-based formula would fail). The length of the scanned axis must be known when the
graph is built (the number of steps depends on it); the other axes may be ``None``.

The small axis helpers at the top are shared by the sorting module (ops/sort.py).
"""
from __future__ import annotations

from typing import Callable, SupportsIndex, cast

import numpy as np

from .._typing import Axis, DTypeLike, TensorLike
from ..graph import Tensor, as_tensor
from .registry import ShapeError, apply, normalize_axis

#: How a scan combines the partial results ``earlier`` and ``later`` (lists of tensors scanned
#: together, e.g. values and indices) into one.
Combine = Callable[[list[Tensor], list[Tensor]], list[Tensor]]


# ---- axis helpers ------------------------------------------------------------------------

def pick_axis(axis: Axis, dim: Axis, default: Axis = -1) -> Axis:
    """The axis a caller asked for through ``axis`` or torch's ``dim`` keyword."""
    if axis is not None and dim is not None and axis != dim:
        raise TypeError(f"pass the axis once: got axis={axis!r} and dim={dim!r}")
    if axis is None:
        axis = dim
    return default if axis is None else axis


def one_axis(x: Tensor, axis: Axis, what: str) -> int:
    """``axis`` normalised for ``x``; a 0-d tensor is scanned as if it had one element."""
    if isinstance(axis, (tuple, list)) or axis is None:
        raise TypeError(f"{what}: axis must be one int, got {axis!r}")
    try:
        # what is left is one axis: an int or a NumPy integer
        (a,) = normalize_axis(int(cast(SupportsIndex, axis)), max(len(x.shape), 1))
    except ShapeError as e:
        raise ShapeError(f"{what}: {e} (tensor of shape {x.shape})") from None
    return a


def static_length(x: Tensor, axis: int, what: str) -> int:
    n = x.shape[axis]
    if n is None:
        raise ShapeError(f"{what}: the length of axis {axis} of a {x.shape} tensor must be known when the "
                         f"graph is built (the number of steps depends on it); it is None")
    return n


def take(x: Tensor, axis: int, start: int | None, stop: int | None, step: int = 1) -> Tensor:
    """``x[start:stop:step]`` along ``axis`` (every other axis whole)."""
    index = tuple(("slice", None, None, 1) if a != axis else ("slice", start, stop, step)
                  for a in range(len(x.shape)))
    return apply("getitem", [x], index=index)


def full_like_const(x: Tensor, value: float, dtype: DTypeLike | None = None) -> Tensor:
    """A scalar constant of ``x``'s dtype (or ``dtype``), in x's graph."""
    from ..graph import constant
    return constant(np.asarray(value, dtype=dtype or x.dtype), graph=x.graph)


def logical_and(a: Tensor, b: TensorLike) -> Tensor:
    return apply("where", [a, b, full_like_const(a, False)])


def logical_or(a: Tensor, b: TensorLike) -> Tensor:
    return apply("where", [a, full_like_const(a, True), b])


def is_nan(x: TensorLike) -> Tensor:
    """x != x: true exactly at NaN (always false for integers and bools)."""
    return apply("ne", [x, x])


def extreme_value(dtype: str, largest: bool) -> float:
    """The largest (or smallest) value of ``dtype``: +-inf for floats."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return np.inf if largest else -np.inf
    if dt.kind == "b":
        return bool(largest)
    info = np.iinfo(dt)
    return info.max if largest else info.min


# ---- the log-step scan -----------------------------------------------------------------

def _prefix_scan(parts: list[Tensor], axis: int, n: int, combine: Combine) -> list[Tensor]:
    """Inclusive prefix scan of a tuple of tensors (scanned together, e.g. values and
    indices) with ``combine(earlier, later) -> combined``, which must be associative.

    Hillis-Steele: after the step with shift ``s`` element ``i`` holds the combination of
    elements ``max(0, i - 2s + 1) .. i``; the first ``s`` elements are already complete and
    are carried over unchanged, so no identity element is needed.
    """
    s = 1
    while s < n:
        earlier = [take(p, axis, 0, n - s) for p in parts]
        later = [take(p, axis, s, n) for p in parts]
        merged = combine(earlier, later)
        parts = [apply("concat", [take(p, axis, 0, s), m], axis=axis) for p, m in zip(parts, merged)]
        s *= 2
    return parts


def _scan(x: TensorLike, axis: Axis, dim: Axis, what: str, combine: Callable[[Tensor, Tensor], Tensor],
          prepare: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    x = as_tensor(x)
    scalar = len(x.shape) == 0
    if scalar:                        # torch scans a 0-d tensor as one element
        x = apply("reshape", [x], shape=(1,))
    a = one_axis(x, pick_axis(axis, dim), what)
    if prepare is not None:
        x = prepare(x)
    n = static_length(x, a, what)
    out = _prefix_scan([x], a, n, lambda e, l: [combine(e[0], l[0])])[0]
    return apply("reshape", [out], shape=()) if scalar else out


def _count_dtype(x: Tensor) -> Tensor:
    """torch accumulates integer and bool scans in int64."""
    if np.dtype(x.dtype).kind != "f" and x.dtype != "int64":
        return apply("cast", [x], dtype="int64")
    return x


def cumsum(x: TensorLike, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Cumulative sum along ``axis`` (default the last; torch.cumsum's ``dim`` is accepted).

    Integer and bool inputs are summed in int64, as torch does. The gradient is the reversed
    cumulative sum of the incoming gradient (derived by autodiff from the scan's additions).
    """
    return _scan(x, axis, dim, "cumsum", lambda e, l: apply("add", [e, l]), prepare=_count_dtype)


def cumprod(x: TensorLike, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """Cumulative product along ``axis`` (torch.cumprod). Integer and bool inputs multiply in
    int64. Gradients are exact with zeros in the input: the scan is a tree of
    multiplications, differentiated by the product rule (no division by the input)."""
    return _scan(x, axis, dim, "cumprod", lambda e, l: apply("mul", [e, l]), prepare=_count_dtype)


def _later_wins(earlier: Tensor, later: Tensor, largest: bool) -> Tensor:
    """Whether the later running extremum replaces the earlier one: it is at least as large
    (max) or small (min), or it is NaN (NaN wins, as torch propagates it); an earlier NaN is
    kept. Ties go to the later element, so the index is the last occurrence (torch's rule)."""
    better = apply("ge" if largest else "le", [later, earlier])
    if np.dtype(later.dtype).kind != "f":
        return better
    return logical_or(is_nan(later), logical_and(apply("eq", [earlier, earlier]), better))


def _cum_extreme(x: TensorLike, axis: Axis, dim: Axis, what: str, largest: bool) -> tuple[Tensor, Tensor]:
    x = as_tensor(x)
    scalar = len(x.shape) == 0
    if scalar:
        x = apply("reshape", [x], shape=(1,))
    a = one_axis(x, pick_axis(axis, dim), what)
    n = static_length(x, a, what)
    index_shape = [1] * len(x.shape)
    index_shape[a] = n
    from ..graph import constant
    idx = constant(np.arange(n, dtype=np.int64).reshape(index_shape), graph=x.graph)
    idx = apply("broadcast_like", [idx, x])

    def combine(earlier: list[Tensor], later: list[Tensor]) -> list[Tensor]:
        wins = _later_wins(earlier[0], later[0], largest)
        return [apply("where", [wins, later[0], earlier[0]]), apply("where", [wins, later[1], earlier[1]])]

    values, indices = _prefix_scan([x, idx], a, n, combine)
    if scalar:
        values, indices = (apply("reshape", [t], shape=()) for t in (values, indices))
    return values, indices


def cummax(x: TensorLike, axis: int | None = None, *, dim: int | None = None) -> tuple[Tensor, Tensor]:
    """Running maximum along ``axis`` and the int64 index where it was attained
    (torch.cummax): ``(values, indices)``. Ties give the last index; a NaN propagates from
    where it appears (its index is reported). The gradient flows to the selected elements."""
    return _cum_extreme(x, axis, dim, "cummax", largest=True)


def cummin(x: TensorLike, axis: int | None = None, *, dim: int | None = None) -> tuple[Tensor, Tensor]:
    """Running minimum along ``axis`` and its int64 index (torch.cummin), with cummax's rules
    for ties and NaN."""
    return _cum_extreme(x, axis, dim, "cummin", largest=False)


def logaddexp(a: Tensor, b: Tensor) -> Tensor:
    """log(exp(a) + exp(b)) computed stably: max + log(1 + exp(-|a - b|)). Equal arguments
    (which include two equal infinities, where a - b is NaN) give (a + b)/2 + log 2, which
    also splits the gradient evenly between them."""
    hi = apply("maximum", [a, b])
    gap = apply("neg", [apply("abs", [apply("sub", [a, b])])])
    same = apply("eq", [a, b])
    safe_gap = apply("where", [same, full_like_const(a, 0.0), gap])
    tail = apply("softplus", [safe_gap])      # log(1 + e^gap), stable for gap -> -inf
    mid = apply("mul", [apply("add", [a, b]), full_like_const(a, 0.5)])
    return apply("where", [same, apply("add", [mid, full_like_const(a, np.log(2.0))]), apply("add", [hi, tail])])


def logcumsumexp(x: TensorLike, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    """log(cumsum(exp(x))) along ``axis`` computed stably (torch.logcumsumexp): a scan of
    pairwise log-add-exp, so no running maximum is needed and nothing overflows. The
    gradient is derived by autodiff (softmax-weighted, as torch's)."""
    x = as_tensor(x)
    if np.dtype(x.dtype).kind != "f":
        raise TypeError(f"logcumsumexp: expects a floating-point tensor, got {x.dtype}")
    return _scan(x, axis, dim, "logcumsumexp", logaddexp)
