"""Weight initialisers: seeded functions that return float32 NumPy arrays.

Every initialiser takes a ``shape`` and a ``seed`` and is deterministic: the same
seed gives the same array. Use them for ``tg.parameter`` values, or name them
(``init="he_normal"``) in the ``tg.nn`` layers.

Fan-in and fan-out (what the scaled initialisers divide by):

* 2-D weights are *Dense* weights of shape ``(in, out)`` (tensorforge computes
  ``x @ W``): ``fan_in = shape[0]``, ``fan_out = shape[1]``. (torch's Linear
  stores ``(out, in)``; the numbers are the same, the axes are swapped.)
* weights of rank >= 3 are *convolution* weights ``(out, in, kh, kw, ...)``:
  with the receptive-field size ``rf = kh * kw * ...``, ``fan_in = in * rf`` and
  ``fan_out = out * rf``, exactly as torch computes them.
* 1-D and 0-D shapes (biases, scales): ``fan_in = fan_out = size`` (at least 1).

Why never all zeros: if every weight of a layer starts equal (zero, say), every
hidden unit computes the same function, receives the same gradient and gets the
same update, so the units stay identical forever: nothing breaks the symmetry and
the layer behaves like a single unit. (With ReLU and all-zero weights the
gradients of the hidden weights are even exactly zero.) Small *random* values
break the symmetry; the scaled variants (LeCun, Xavier/Glorot, He) also keep the
variance of activations and gradients roughly constant from layer to layer, so
deep stacks neither vanish nor explode at the start of training. ``zeros`` is
fine for biases, where the weights already break the symmetry.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ._typing import Array, ShapeLike

#: An initialiser: ``f(shape, seed=...) -> float32 array``
Initializer = Callable[..., Array]

__all__ = ["zeros", "ones", "constant", "normal", "uniform", "lecun_normal", "he_normal", "he_uniform",
           "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "torch_default",
           "torch_bias", "fans", "get", "check"]


def _shape(shape: ShapeLike) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)


def _rng(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(seed)


def fans(shape: ShapeLike) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape`` (see the module docstring for the conventions)."""
    shape = _shape(shape)
    if len(shape) < 2:
        size = max(math.prod(shape), 1)
        return size, size
    if len(shape) == 2:
        return max(shape[0], 1), max(shape[1], 1)
    receptive_field = math.prod(shape[2:])
    return max(shape[1] * receptive_field, 1), max(shape[0] * receptive_field, 1)


def _standard_normal(shape: ShapeLike, seed: int | None) -> Array:
    # draw in float64 then round: the same numbers whatever dtype the caller wants later
    return _rng(seed).standard_normal(_shape(shape))


def zeros(shape: ShapeLike, seed: int | None = None) -> Array:
    """All zeros. Fine for biases; never for weights (no symmetry breaking, see the module doc)."""
    return np.zeros(_shape(shape), np.float32)


def ones(shape: ShapeLike, seed: int | None = None) -> Array:
    """All ones (batch-norm and layer-norm scales)."""
    return np.ones(_shape(shape), np.float32)


def constant(shape: ShapeLike, value: float = 0.0, seed: int | None = None) -> Array:
    """Every entry equal to ``value``."""
    return np.full(_shape(shape), value, np.float32)


def normal(shape: ShapeLike, std: float = 0.01, seed: int = 0, mean: float = 0.0) -> Array:
    """``mean + std * N(0, 1)``; the default is the course's small random init N(0,1)*0.01."""
    return (mean + std * _standard_normal(shape, seed)).astype(np.float32)


def uniform(shape: ShapeLike, low: float = -0.05, high: float = 0.05, seed: int = 0) -> Array:
    """U(low, high)."""
    return _rng(seed).uniform(low, high, _shape(shape)).astype(np.float32)


def lecun_normal(shape: ShapeLike, seed: int = 0) -> Array:
    """N(0,1) / sqrt(fan_in): keeps the variance of a linear layer's output equal to its input's."""
    fan_in, _ = fans(shape)
    return (_standard_normal(shape, seed) / math.sqrt(fan_in)).astype(np.float32)


def he_normal(shape: ShapeLike, seed: int = 0) -> Array:
    """He/Kaiming: sqrt(2 / fan_in) * N(0,1). The factor 2 makes up for ReLU zeroing half the units."""
    fan_in, _ = fans(shape)
    return (math.sqrt(2.0 / fan_in) * _standard_normal(shape, seed)).astype(np.float32)


def he_uniform(shape: ShapeLike, seed: int = 0) -> Array:
    """U(-a, a) with a = sqrt(6 / fan_in): the same variance as ``he_normal``."""
    fan_in, _ = fans(shape)
    a = math.sqrt(6.0 / fan_in)
    return _rng(seed).uniform(-a, a, _shape(shape)).astype(np.float32)


def xavier_uniform(shape: ShapeLike, seed: int = 0) -> Array:
    """Xavier/Glorot uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); variance 2/(fan_in+fan_out),
    a compromise between keeping forward activations and backward gradients at constant scale."""
    fan_in, fan_out = fans(shape)
    a = math.sqrt(6.0 / (fan_in + fan_out))
    return _rng(seed).uniform(-a, a, _shape(shape)).astype(np.float32)


def xavier_normal(shape: ShapeLike, seed: int = 0) -> Array:
    """Xavier/Glorot normal: sqrt(2 / (fan_in + fan_out)) * N(0,1)."""
    fan_in, fan_out = fans(shape)
    return (math.sqrt(2.0 / (fan_in + fan_out)) * _standard_normal(shape, seed)).astype(np.float32)


def _gain(nonlinearity: str, a: float) -> float:
    # torch.nn.init.calculate_gain for the nonlinearities kaiming initialisers are used with
    if nonlinearity in ("linear", "sigmoid", "conv1d", "conv2d", "conv3d"):
        return 1.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1.0 + a * a))
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    raise ValueError(f"kaiming: unknown nonlinearity {nonlinearity!r}")


def _kaiming_fan(shape: ShapeLike, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(shape)
    return fan_in if mode == "fan_in" else fan_out


def kaiming_uniform(shape: ShapeLike, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    seed: int = 0) -> np.ndarray:
    """torch's kaiming_uniform_: U(-b, b) with b = gain * sqrt(3 / fan), gain = sqrt(2 / (1 + a²))
    for leaky_relu. Fans follow this module's conventions (Dense (in, out), conv (out, in, k...))."""
    bound = _gain(nonlinearity, a) * math.sqrt(3.0 / _kaiming_fan(shape, mode))
    return _rng(seed).uniform(-bound, bound, _shape(shape)).astype(np.float32)


def kaiming_normal(shape: ShapeLike, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                   seed: int = 0) -> np.ndarray:
    """torch's kaiming_normal_: N(0, std²) with std = gain / sqrt(fan)."""
    std = _gain(nonlinearity, a) / math.sqrt(_kaiming_fan(shape, mode))
    return (std * _standard_normal(shape, seed)).astype(np.float32)


def torch_default(shape: ShapeLike, seed: int = 0) -> Array:
    """The default weight of torch's nn.Linear / nn.ConvNd: kaiming_uniform with a = sqrt(5), i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (``init="torch"`` on Dense and Conv layers)."""
    return kaiming_uniform(shape, a=math.sqrt(5.0), seed=seed)


def torch_bias(shape: ShapeLike, fan_in: int, seed: int = 0) -> Array:
    """The default bias of torch's nn.Linear / nn.ConvNd: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with the
    fan_in of the layer's weight (0 gives zeros' bound 0, as torch does)."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return _rng(seed).uniform(-bound, bound, _shape(shape)).astype(np.float32)


_BY_NAME: dict[str, Initializer] = {
    "zeros": zeros, "ones": ones, "normal": normal, "uniform": uniform, "lecun_normal": lecun_normal,
    "he_normal": he_normal, "kaiming_normal": he_normal, "he_uniform": he_uniform,
    "kaiming_uniform": kaiming_uniform, "torch": torch_default, "torch_default": torch_default,
    "xavier_uniform": xavier_uniform, "glorot_uniform": xavier_uniform, "xavier_normal": xavier_normal,
    "glorot_normal": xavier_normal,
}


def get(init: str | Initializer) -> Initializer:
    """An initialiser from its name (``"he_normal"``) or a callable ``f(shape, seed=...)`` (returned as is)."""
    if callable(init):
        return init
    try:
        return _BY_NAME[init]
    except KeyError:
        raise ValueError(f"unknown initialiser {init!r}; known: {', '.join(sorted(_BY_NAME))}") from None


def check(init: object, what: str = "init") -> None:
    """Raise ValueError (naming ``what``) now if ``init`` is neither a known name nor a callable,
    so a layer with a bad initialiser fails when it is constructed, not at its first call."""
    if callable(init):
        return
    if not isinstance(init, str) or init not in _BY_NAME:
        raise ValueError(f"{what}: unknown initialiser {init!r}; known: {', '.join(sorted(_BY_NAME))}, "
                         f"or a callable f(shape, seed=...)")
