"""Counter-based random numbers that every backend reproduces bit for bit.

Random ops draw from a *stateless* hash of (seed, counter, element index), so the
NumPy interpreter, the LLVM and the Triton back ends produce identical numbers
without sharing any generator state. The counter is an int64 scalar state
variable of the graph (``rng_counter(graph)``); every compiled function that uses
it increments it once per call, so each call of a training step draws fresh
numbers, and two backends called the same number of times draw the same ones.

The specification (code generators implement exactly this text). All arithmetic is
on unsigned 32-bit integers: ``*`` and ``+`` wrap modulo 2**32, ``>>`` is a logical
shift, ``^`` is xor.

    lowbias32(x):                        # Chris Wellons' "lowbias32" integer mixer
        x = x ^ (x >> 16)
        x = x * 0x7feb352d
        x = x ^ (x >> 15)
        x = x * 0x846ca68b
        x = x ^ (x >> 16)
        return x

    key(seed, counter):                  # once per op call; seed in [0, 2**32),
        k = lowbias32(seed ^ 0x9e3779b9) # counter the int64 counter's two's-complement
        k = lowbias32(k ^ lo32(counter)) # bits: lo32 = bits 0..31, hi32 = bits 32..63
        k = lowbias32(k ^ hi32(counter))
        return k

    bits(seed, counter, i) = lowbias32(key(seed, counter) ^ lo32(i))
    u(seed, counter, i)    = (bits(seed, counter, i) >> 8) * 2**-24     # in [0, 1)

``i`` is the element's flat C-order index in the op's output. ``u`` has 24
significant bits, so it is exact in float32 and float64 alike.

Ops built on it:

    random_uniform(counter; shape, seed, dtype)   u for every element, cast to dtype
    dropout(x, counter; p, seed)                  (in ops/nn.py) keeps element i iff
        (bits >> 8) >= ceil(p * 2**24)   (the same as u >= p, but decided on integers
        so no backend can round differently); a kept element is x * s where
        s = 1/(1-p) computed in float64 and rounded once to x's dtype; a dropped one is 0.

Two random ops with the same seed, shape and counter draw the same numbers: give
distinct layers distinct seeds.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .._typing import Array, DTypeLike

from ..graph import Graph, Tensor, get_default_graph, parameter
from .registry import ShapeError, apply, register

if TYPE_CHECKING:
    from ._types import InferredType, InputTypes
    from .registry import TensorType

__all__ = ["lowbias32", "rng_key", "random_bits", "uniform_from_bits", "keep_threshold",
           "rng_counter", "random_uniform"]

MASK32 = 0xFFFFFFFF
SEED_SALT = 0x9E3779B9          # golden-ratio constant: seed 0 does not start from state 0
COUNTER_NAME = "rng_counter"


def lowbias32(x: np.ndarray) -> np.ndarray:
    """The lowbias32 mixer on a uint32 array (wrapping arithmetic)."""
    x = np.asarray(x, dtype=np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        x = x ^ (x >> np.uint32(16))
    return x


def _mix(x: int) -> int:
    """lowbias32 on one Python int (used for the per-call key)."""
    return int(lowbias32(np.array([x & MASK32], dtype=np.uint32))[0])


def rng_key(seed: int, counter: int) -> int:
    """The per-call key: depends on the seed and on both 32-bit halves of the counter."""
    counter = int(counter) & 0xFFFFFFFFFFFFFFFF     # the int64's two's-complement bits
    k = _mix((int(seed) & MASK32) ^ SEED_SALT)
    k = _mix(k ^ (counter & MASK32))
    return _mix(k ^ (counter >> 32))


def random_bits(seed: int, counter: int, n: int) -> np.ndarray:
    """bits(seed, counter, i) for i = 0 .. n-1, as uint32."""
    index = np.arange(n, dtype=np.uint64).astype(np.uint32)  # lo32(i): wraps past 2**32 elements
    return lowbias32(index ^ np.uint32(rng_key(seed, counter)))


def uniform_from_bits(bits: Array, dtype: DTypeLike = "float32") -> Array:
    """(bits >> 8) * 2**-24: exact in float32."""
    values: Array = ((bits >> np.uint32(8)).astype(np.float64) * 2.0 ** -24).astype(dtype)
    return values


def keep_threshold(p: float) -> int:
    """Dropout keeps element i iff (bits >> 8) >= this; equivalent to u >= p exactly."""
    return math.ceil(float(p) * 2 ** 24)   # p * 2**24 is exact in float64


def check_seed(seed: int) -> int:
    value = int(seed)
    if not 0 <= value <= MASK32:
        raise ValueError(f"seed must be in [0, 2**32), got {value}")
    return value


def check_counter_type(t: Tensor | TensorType, op: str) -> None:
    if tuple(t.shape) != () or np.dtype(t.dtype).kind not in "iu":
        raise ShapeError(f"{op}: the counter must be an integer scalar, got shape {t.shape} {t.dtype}")


# ---- the counter state variable ---------------------------------------------------------

def rng_counter(graph: Graph | None = None) -> Tensor:
    """The graph's random-number counter (created once): an int64 scalar parameter named
    "rng_counter", not trainable, that every compiled function using it increments by one
    per call (a default update with no trigger, so tg.compile adds it whenever it is used)."""
    g = graph or get_default_graph()
    try:
        counter = g.by_name(COUNTER_NAME)
    except KeyError:
        counter = parameter(COUNTER_NAME, np.array(0, dtype=np.int64), trainable=False, graph=g)
        g.default_updates[counter.id] = apply("add", [counter, 1]).id
        return counter
    if counter.op != "parameter" or counter.shape != () or counter.dtype != "int64":
        raise ValueError(f"graph {g.name!r} has a node named {COUNTER_NAME!r} that is not the int64 "
                         f"scalar random counter: {counter!r}")
    return counter


# ---- random_uniform ---------------------------------------------------------------------

def _uniform_type(types: InputTypes, shape: Sequence[int], seed: int, dtype: str = "float32") -> InferredType:
    (counter,) = types
    check_counter_type(counter, "random_uniform")
    if any(d is None or int(d) < 0 for d in shape):
        raise ShapeError(f"random_uniform needs a fully known shape, got {shape}")
    if np.dtype(dtype).kind != "f":
        raise ShapeError(f"random_uniform draws floats, not {dtype}")
    return tuple(int(d) for d in shape), dtype


def _uniform_ref(counter: Array, shape: Sequence[int], seed: int, dtype: str = "float32") -> Array:
    bits = random_bits(seed, int(counter), math.prod(shape))
    return uniform_from_bits(bits, dtype).reshape(shape)


register("random_uniform", infer=_uniform_type, impl=_uniform_ref, n_inputs=1, differentiable=False,
         random=True, family="random",
         doc="u(seed, counter, i) in [0, 1) for each element (see the ops.random docstring)")


def random_uniform(shape: int | Sequence[int], seed: int = 0, graph: Graph | None = None,
                   dtype: DTypeLike = "float32") -> Tensor:
    """Uniform [0, 1) numbers of a fixed ``shape``, fresh on every call of a compiled function."""
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    counter = rng_counter(graph)
    return apply("random_uniform", [counter], shape=shape, seed=check_seed(seed), dtype=np.dtype(dtype).name)
