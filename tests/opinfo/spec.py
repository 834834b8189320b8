"""The format of an op-info entry, and the sample helpers every family module uses.

An ``OpInfo`` names a tensorforge function and its torch counterpart, both called the
same way: ``fn(*tensors, **kwargs)``. Each ``Sample`` holds NumPy arrays (the tensor
arguments) and keyword arguments (plain Python values). The runner (tests/test_opinfo.py)
builds a graph of placeholders for the arrays, compiles ``tg_fn`` on each backend, and
compares with ``torch_fn`` on ``torch.tensor`` copies:

- values: float64 samples on interp (tight tolerance), the sample cast to float32 on
  llvm and triton (``rtol``/``atol`` of the entry);
- gradients (``grad=True``): of ``sum(w * out)`` for a fixed random ``w``, with respect to
  every floating-point array listed in ``Sample.wrt`` (default: all float arrays), against
  torch autograd, and against central finite differences on interp in float64 (skipped for
  a sample with ``fd=False``, e.g. at kinks or edge values).

Integer/bool samples keep their dtype on every backend. A sample whose arrays hold
±inf/NaN sets ``grad=False`` where torch's gradient there is not meaningful.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

BACKENDS = ("interp", "llvm", "triton")


@dataclass
class Sample:
    arrays: tuple                          # NumPy arrays: the tensor arguments, in order
    kwargs: dict = field(default_factory=dict)
    grad: bool = True                      # compare gradients for this sample
    fd: bool = True                        # also check gradients by finite differences (interp)
    wrt: tuple | None = None               # indices of arrays to differentiate (None: all float)
    name: str = ""                         # shown in the test id

    def float_wrt(self) -> tuple:
        if self.wrt is not None:
            return tuple(self.wrt)
        return tuple(i for i, a in enumerate(self.arrays) if np.asarray(a).dtype.kind == "f")


@dataclass
class OpInfo:
    name: str                              # test id, usually the tg function name
    tg_fn: Callable                        # fn(*tg tensors, **kwargs) -> tg tensor (or tuple of them)
    torch_fn: Callable                     # fn(*torch tensors, **kwargs) -> torch tensor (or tuple)
    samples: Callable[[np.random.Generator], list]   # rng -> list[Sample] (float64 arrays)
    grad: bool = True                      # the op is differentiable (per-sample override in Sample)
    rtol: float = 1e-5                     # float32 tolerance on the compiled backends
    atol: float = 1e-6
    backends: tuple = BACKENDS
    outputs: Any = None                    # for tuple results: indices of the outputs to compare
    grad_outputs: Any = None               # for tuple results: indices that carry gradients
    skip: dict = field(default_factory=dict)   # backend -> reason (must be empty when done)


# ---- sample helpers ------------------------------------------------------------------

def randn(rng, *shape, scale=1.0, dtype=np.float64):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def uniform(rng, lo, hi, *shape, dtype=np.float64):
    return rng.uniform(lo, hi, shape).astype(dtype)


def ints(rng, lo, hi, *shape, dtype=np.int64):
    return rng.integers(lo, hi, shape).astype(dtype)


def bools(rng, *shape):
    return rng.random(shape) < 0.5


EDGE = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 1e-30])


def edge(dtype=np.float64):
    """The edge values every elementwise op meets: zeros, ±1, ±inf, NaN, huge and tiny."""
    return EDGE.astype(dtype)


def unary_samples(rng, lo=-3.0, hi=3.0, edges=True, fd=True):
    """The standard samples of a unary float op: a 2-d tensor, a size-1 dim, a size-0 dim,
    a scalar, and (if ``edges``) the edge values without gradient."""
    out = [Sample((uniform(rng, lo, hi, 3, 4),), fd=fd, name="3x4"),
           Sample((uniform(rng, lo, hi, 1, 5),), fd=fd, name="1x5"),
           Sample((uniform(rng, lo, hi, 0, 3),), name="0x3"),
           Sample((np.asarray(uniform(rng, lo, hi)),), fd=fd, name="scalar")]
    if edges:
        out.append(Sample((edge(),), grad=False, name="edge"))
    return out


def binary_samples(rng, lo=-3.0, hi=3.0, lo_b=None, hi_b=None, fd=True):
    """Broadcasting samples of a binary float op: equal shapes, (3,1) with (1,4), a scalar
    operand, a size-0 dim."""
    lo_b = lo if lo_b is None else lo_b
    hi_b = hi if hi_b is None else hi_b
    return [Sample((uniform(rng, lo, hi, 3, 4), uniform(rng, lo_b, hi_b, 3, 4)), fd=fd, name="same"),
            Sample((uniform(rng, lo, hi, 3, 1), uniform(rng, lo_b, hi_b, 1, 4)), fd=fd, name="bcast"),
            Sample((uniform(rng, lo, hi, 2, 3), np.asarray(uniform(rng, lo_b, hi_b))), fd=fd, name="scalar"),
            Sample((uniform(rng, lo, hi, 0, 4), uniform(rng, lo_b, hi_b, 1, 4)), name="empty")]
