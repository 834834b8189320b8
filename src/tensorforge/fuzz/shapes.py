"""Shape arithmetic of the fuzz generator (concrete, call-time shapes)."""
from __future__ import annotations

import numpy as np


def _shape_of(t, values) -> tuple:
    """The call-time shape of tensor ``t`` among the generator's values."""
    return next(v.shape for v in values if v.t.id == t.id)


def _broadcastable(a, b) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


def _reduced(shape, axis, keep) -> tuple:
    axes = _axes(axis, len(shape))
    return tuple(1 if i in axes else d for i, d in enumerate(shape) if keep or i not in axes)


def _factorise(size: int, rng) -> tuple:
    """A random shape with ``size`` elements (rank 1 to 3)."""
    if size == 0:
        return (0,) if rng.random() < 0.5 else (2, 0)
    divisors = [d for d in range(1, size + 1) if size % d == 0]
    a = int(divisors[int(rng.integers(len(divisors)))])
    rest = size // a
    if rng.random() < 0.3:
        return (size,)
    if rng.random() < 0.5:
        return (a, rest)
    ds = [d for d in range(1, rest + 1) if rest % d == 0]
    b = int(ds[int(rng.integers(len(ds)))])
    return (a, b, rest // b)
