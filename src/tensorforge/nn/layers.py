"""The layers of ``tg.nn``: Dense, Conv2d, pooling, normalisation, dropout, activations, Sequential.

Each layer builds graph ops from ``tensorforge.ops`` when called; parameters
take the input's floating dtype (float32 by default, float64 for float64 inputs).
"""
from __future__ import annotations

import math
import zlib
from typing import Callable, Iterator, Sequence

import numpy as np

from .. import init as initializers
from .. import ops
from .._typing import Array, InitLike, IntOrTuple
from ..graph import Tensor, format_shape
from ..ops.registry import ShapeError
from .module import Module, ParamSpec, _known_dims

__all__ = ["Dense", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm", "LayerNorm", "Dropout", "Flatten",
           "Reshape", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "Softplus", "Softmax", "LogSoftmax",
           "PReLU", "Maxout", "Lambda", "Sequential"]


def _param_dtype(x: Tensor) -> str:
    return x.dtype if np.dtype(x.dtype).kind == "f" else "float32"


def _pair(v: IntOrTuple) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return (int(v), int(v))
    a, b = (int(d) for d in v)
    return (a, b)


def _initial(init: InitLike, shape: Sequence[int], seed: int | None) -> Callable[[], Array]:
    fn = initializers.get(init)
    return lambda: fn(shape, seed=seed)


def _is_torch_init(init: InitLike) -> bool:
    return isinstance(init, str) and init in ("torch", "torch_default")


def _initial_bias(init: InitLike, n: int, fan_in: int, seed: int | None) -> Callable[[], Array]:
    """Zeros, except with torch's initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as nn.Linear/ConvNd."""
    if _is_torch_init(init):
        # a different stream than the weight's: same seed, shifted
        return lambda: initializers.torch_bias((n,), fan_in, seed=(0 if seed is None else seed) + 0x5EED)
    return lambda: initializers.zeros(n)


class Dense(Module):
    """Fully connected layer: ``x @ W + b`` with ``W`` of shape (in_features, out_features)."""

    kind = "dense"
    torch_names, torch_transposed = {"weight": "W", "bias": "b"}, ("weight",)

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: InitLike = "he_normal",
                 seed: int = 0, name: str | None = None) -> None:
        super().__init__(name)
        initializers.check(init, f"Dense({in_features}, {out_features})")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.bias, self.init, self.seed = bool(bias), init, seed

    def forward(self, x: Tensor, training: bool) -> Tensor:
        if not x.shape or x.shape[-1] not in (None, self.in_features):
            raise ShapeError(f"{self!r}: expects inputs of shape (..., {self.in_features}), got "
                             f"{format_shape(x.shape)}")
        dtype, shape = _param_dtype(x), (self.in_features, self.out_features)
        W = self.param(x.graph, "W", ParamSpec(shape, _initial(self.init, shape, self.seed), decay=True), dtype)
        y = x @ W
        if self.bias:
            b = self.param(x.graph, "b", ParamSpec((self.out_features,), _initial_bias(
                self.init, self.out_features, self.in_features, self.seed)), dtype)
            y = y + b
        return y

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}" + ("" if self.bias else ", bias=False")


class Conv2d(Module):
    """2-D convolution over NCHW inputs; weight (out_channels, in_channels/groups, kh, kw), bias (out_channels,).
    Output size per spatial axis: (N + 2P - F) // stride + 1; ``padding="same"`` keeps it (odd F, stride 1).
    ``dilation`` and ``groups`` (keyword arguments, torch's meaning) go through compositions of conv2d."""

    kind = "conv2d"
    torch_names = {"weight": "W", "bias": "b"}

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: IntOrTuple | str = 0, bias: bool = True, init: InitLike = "he_normal", seed: int = 0,
                 name: str | None = None, dilation: IntOrTuple = 1, groups: int = 1) -> None:
        super().__init__(name)
        initializers.check(init, f"Conv2d({in_channels}, {out_channels})")
        self.dilation, self.groups = _pair(dilation), int(groups)
        if self.groups < 1 or in_channels % self.groups or out_channels % self.groups:
            raise ValueError(f"Conv2d({in_channels}, {out_channels}): in_channels and out_channels must be "
                             f"divisible by groups={groups}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding = stride, padding
        self.bias, self.init, self.seed = bool(bias), init, seed

    def forward(self, x: Tensor, training: bool) -> Tensor:
        if len(x.shape) != 4 or x.shape[1] not in (None, self.in_channels):
            raise ShapeError(f"{self!r}: expects NCHW inputs with {self.in_channels} channels, got "
                             f"{format_shape(x.shape)}")
        dtype = _param_dtype(x)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        W = self.param(x.graph, "W", ParamSpec(shape, _initial(self.init, shape, self.seed), decay=True), dtype)
        b: Tensor | None = None
        if self.bias:
            fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
            b = self.param(x.graph, "b", ParamSpec((self.out_channels,), _initial_bias(
                self.init, self.out_channels, fan_in, self.seed)), dtype)
        return ops.conv2d(x, W, b, stride=self.stride, padding=self.padding, dilation=self.dilation,
                          groups=self.groups)

    def num_parameters_per_filter(self) -> int:
        """F·F·C/groups (+1 for the bias): each filter spans every input channel of its group."""
        return self.in_channels // self.groups * math.prod(self.kernel_size) + int(self.bias)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}")
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        return s + (f", groups={self.groups}" if self.groups != 1 else "")


class MaxPool2d(Module):
    """Max pooling over NCHW windows (stride defaults to the kernel size)."""

    kind = "maxpool"

    def __init__(self, kernel_size: IntOrTuple, stride: IntOrTuple | None = None, padding: IntOrTuple = 0,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return ops.max_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(MaxPool2d):
    """Average pooling over NCHW windows (padding counts as zeros, like torch's default)."""

    kind = "avgpool"

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return ops.avg_pool2d(x, self.kernel_size, stride=self.stride, padding=self.padding)


class BatchNorm(Module):
    """Batch normalisation over axis 1 of (N, C) or (N, C, H, W) inputs.

    Training mode normalises with the batch statistics and (when the compiled step uses the
    output) updates the running statistics, torch style: new = (1 - momentum) * old + momentum * stat,
    with the unbiased batch variance for ``running_var``. Evaluation mode uses the running
    statistics. ``gamma``/``beta`` are trainable; the running statistics are ``trainable=False``
    parameters (see ``state()``).
    """

    kind = "batchnorm"
    torch_names, torch_ignored = {"weight": "gamma", "bias": "beta"}, ("num_batches_tracked",)

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5, affine: bool = True,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.num_features, self.momentum, self.eps, self.affine = int(num_features), momentum, eps, affine

    def forward(self, x: Tensor, training: bool) -> Tensor:
        if len(x.shape) not in (2, 4) or x.shape[1] not in (None, self.num_features):
            raise ShapeError(f"{self!r}: expects (N, {self.num_features}) or (N, {self.num_features}, H, W) "
                             f"inputs, got {format_shape(x.shape)}")
        g, dtype, c = x.graph, _param_dtype(x), (self.num_features,)
        gamma: Tensor | None = None
        beta: Tensor | None = None
        if self.affine:
            gamma = self.param(g, "gamma", ParamSpec(c, lambda: initializers.ones(c)), dtype)
            beta = self.param(g, "beta", ParamSpec(c, lambda: initializers.zeros(c)), dtype)
        mean = self.param(g, "running_mean", ParamSpec(c, lambda: initializers.zeros(c), trainable=False), dtype)
        var = self.param(g, "running_var", ParamSpec(c, lambda: initializers.ones(c), trainable=False), dtype)
        return ops.batch_norm(x, gamma, beta, mean, var, training=training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, momentum={self.momentum}, eps={self.eps}"


class LayerNorm(Module):
    """Layer normalisation over the trailing ``normalized_shape`` axes, with learnable gamma and beta."""

    kind = "layernorm"
    torch_names = {"weight": "gamma", "bias": "beta"}

    def __init__(self, normalized_shape: IntOrTuple, eps: float = 1e-5, elementwise_affine: bool = True,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.normalized_shape: tuple[int, ...] = (
            (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer))
            else tuple(int(d) for d in normalized_shape))
        self.eps, self.elementwise_affine = eps, elementwise_affine

    def forward(self, x: Tensor, training: bool) -> Tensor:
        n = len(self.normalized_shape)
        tail = tuple(x.shape[len(x.shape) - n:])
        if len(x.shape) < n or any(d is not None and d != e for d, e in zip(tail, self.normalized_shape)):
            raise ShapeError(f"{self!r}: expects inputs of shape (..., "
                             f"{', '.join(map(str, self.normalized_shape))}), got {format_shape(x.shape)}")
        gamma: Tensor | None = None
        beta: Tensor | None = None
        if self.elementwise_affine:
            s, dtype = self.normalized_shape, _param_dtype(x)
            gamma = self.param(x.graph, "gamma", ParamSpec(s, lambda: initializers.ones(s)), dtype)
            beta = self.param(x.graph, "beta", ParamSpec(s, lambda: initializers.zeros(s)), dtype)
        return ops.layer_norm(x, gamma, beta, normalized_ndim=n, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    """Zero each unit with probability ``p`` in training (scaling the rest by 1/(1-p)); identity in eval.

    ``seed=None`` derives the seed from the layer's scope name, so two dropout layers of one model
    draw different masks while every run stays reproducible. Masks change every step (the graph's
    random counter advances on each call of a compiled step).
    """

    kind = "dropout"

    def __init__(self, p: float = 0.5, seed: int | None = None, name: str | None = None) -> None:
        super().__init__(name)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p, self.seed = float(p), seed

    def forward(self, x: Tensor, training: bool) -> Tensor:
        if not training or self.p == 0.0:
            return x
        seed = self.seed if self.seed is not None else zlib.crc32(self.scope(x.graph).encode()) & 0x7FFFFFFF
        return ops.dropout(x, p=self.p, seed=seed, training=True)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...); the trailing dimensions must be known."""

    kind = "flatten"

    def forward(self, x: Tensor, training: bool) -> Tensor:
        rest = x.shape[1:]
        if any(d is None for d in rest):
            raise ShapeError(f"Flatten: the non-batch dimensions must be known, got {format_shape(x.shape)}")
        return ops.reshape(x, (-1, math.prod(_known_dims(rest))))


class Reshape(Module):
    """Reshape each sample: (N, ...) -> (N, *shape)."""

    kind = "reshape"

    def __init__(self, shape: Sequence[int], name: str | None = None) -> None:
        super().__init__(name)
        self.shape = tuple(int(d) for d in shape)

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return ops.reshape(x, (-1,) + self.shape)

    def extra_repr(self) -> str:
        return f"{self.shape}"


class _Activation(Module):
    fn: Callable[[Tensor], Tensor] | None = None
    kind = "activation"

    def forward(self, x: Tensor, training: bool) -> Tensor:
        fn = type(self).fn
        assert fn is not None, f"{type(self).__name__} sets no activation function"
        return fn(x)


class ReLU(_Activation):
    """max(x, 0)."""
    kind, fn = "relu", staticmethod(ops.relu)


class Sigmoid(_Activation):
    """1 / (1 + e^-x)."""
    kind, fn = "sigmoid", staticmethod(ops.sigmoid)


class Tanh(_Activation):
    """tanh(x)."""
    kind, fn = "tanh", staticmethod(ops.tanh)


class Softplus(_Activation):
    """ln(1 + e^x)."""
    kind, fn = "softplus", staticmethod(ops.softplus)


class LeakyReLU(Module):
    """max(alpha * x, x)."""

    kind = "leakyrelu"

    def __init__(self, alpha: float = 0.01, name: str | None = None) -> None:
        super().__init__(name)
        self.alpha = float(alpha)

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return ops.leaky_relu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class ELU(LeakyReLU):
    """x if x > 0 else alpha * (e^x - 1)."""

    kind = "elu"

    def __init__(self, alpha: float = 1.0, name: str | None = None) -> None:
        super().__init__(alpha, name)

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return ops.elu(x, self.alpha)


class Softmax(Module):
    """softmax along ``axis``."""

    kind = "softmax"

    def __init__(self, axis: int = -1, name: str | None = None) -> None:
        super().__init__(name)
        self.axis = axis

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return ops.softmax(x, self.axis)


class LogSoftmax(Softmax):
    """log_softmax along ``axis``."""

    kind = "logsoftmax"

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return ops.log_softmax(x, self.axis)


class PReLU(Module):
    """where(x > 0, x, alpha * x) with a learned alpha: one value, or one per channel (axis 1)."""

    kind = "prelu"
    torch_names = {"weight": "alpha"}
    # torch's name for the count; as an instance attribute it hides Module.num_parameters()
    num_parameters: int  # type: ignore[assignment]

    def __init__(self, num_parameters: int = 1, init: float = 0.25, name: str | None = None) -> None:
        super().__init__(name)
        self.num_parameters, self.init_value = int(num_parameters), float(init)

    def forward(self, x: Tensor, training: bool) -> Tensor:
        n = self.num_parameters
        alpha = self.param(x.graph, "alpha", ParamSpec((n,), lambda: initializers.constant(n, self.init_value)),
                           _param_dtype(x))
        if n > 1 and len(x.shape) > 2:  # per channel: broadcast over the spatial axes
            alpha = ops.reshape(alpha, (n,) + (1,) * (len(x.shape) - 2))
        return ops.prelu(x, alpha)


class Maxout(Module):
    """Max over ``pieces`` consecutive units of the last axis: (..., units*pieces) -> (..., units)."""

    kind = "maxout"

    def __init__(self, pieces: int, axis: int = -1, name: str | None = None) -> None:
        super().__init__(name)
        self.pieces, self.axis = int(pieces), int(axis)

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return ops.maxout(x, self.pieces, axis=self.axis)


class Lambda(Module):
    """Wrap a function of a tensor as a layer: ``Lambda(lambda x: x * 2)``."""

    kind = "lambda"

    def __init__(self, fn: Callable[[Tensor], Tensor], name: str | None = None) -> None:
        super().__init__(name)
        self.fn = fn

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return self.fn(x)


class Sequential(Module):
    """Layers applied in order. Unnamed, it is transparent (its layers are named dense0, relu0, ...);
    named, it prefixes them ("mlp/dense0/W")."""

    kind = "sequential"
    _attribute_names = False
    _transparent = True

    def _named_children(self) -> list[tuple[str, Module]]:
        return [(str(i), layer) for i, layer in enumerate(self.layers)]

    def __init__(self, *layers: Module | Sequence[Module], name: str | None = None) -> None:
        super().__init__(name)
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for layer in layers:
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: {layer!r} is not a tg.nn Module")
        self.layers: list[Module] = list(layers)  # type: ignore[arg-type]  # checked just above

    def append(self, layer: Module) -> "Sequential":
        object.__setattr__(layer, "_parent", self)
        self.layers.append(layer)
        return self

    def forward(self, x: Tensor, training: bool) -> Tensor:
        for layer in self.layers:
            x = layer(x, training=training)
        return x

    def __getitem__(self, i: int) -> Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)
