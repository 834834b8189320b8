"""Convolution layers with torch's constructors and weight layouts: Conv1d, Conv3d, ConvTranspose2d.

Weights (``W``, torch's ``weight``) and biases (``b``, torch's ``bias``):

* Conv1d: (out_channels, in_channels/groups, k), input (N, C, L)
* Conv3d: (out_channels, in_channels/groups, kd, kh, kw), input (N, C, D, H, W)
* ConvTranspose2d: (in_channels, out_channels/groups, kh, kw), input (N, C, H, W)

so ``tg.nn.from_torch_state_dict`` copies torch's tensors as they are. The default
``init="torch"`` draws torch's defaults (kaiming_uniform with a=√5 for the weight,
U(±1/√fan_in) for the bias); any ``tg.init`` name or callable works for the weight
(the bias is then zero). Each layer calls the functional op (``tg.conv1d``, ...).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import init as initializers
from .._typing import InitLike, IntOrTuple
from ..graph import Tensor, format_shape
from ..ops.registry import ShapeError
from .. import ops
from .layers import _initial, _initial_bias, _param_dtype
from .module import Module, ParamSpec

__all__ = ["Conv1d", "Conv3d", "ConvTranspose2d"]


def _tuple(v: IntOrTuple, n: int, what: str) -> tuple[int, ...]:
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    out = tuple(int(a) for a in v)
    if len(out) != n:
        raise ValueError(f"{what} must be an int or {n} ints, got {out}")
    return out


class _ConvNd(Module):
    """Shared constructor, checks and parameters of the convolution layers."""

    spatial = 2
    op = ""
    transposed = False
    torch_names = {"weight": "W", "bias": "b"}

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1, groups: int = 1, bias: bool = True,
                 init: InitLike = "torch", seed: int = 0, name: str | None = None) -> None:
        super().__init__(name)
        label = f"{type(self).__name__}({in_channels}, {out_channels})"
        initializers.check(init, label)
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        if self.groups < 1 or self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{label}: in_channels and out_channels must be divisible by groups={groups}")
        n = self.spatial
        self.kernel_size = _tuple(kernel_size, n, f"{label}: kernel_size")
        self.stride = _tuple(stride, n, f"{label}: stride")
        self.padding: tuple[int, ...] | str = (padding if isinstance(padding, str)
                                               else _tuple(padding, n, f"{label}: padding"))
        self.dilation = _tuple(dilation, n, f"{label}: dilation")
        self.bias, self.init, self.seed = bool(bias), init, seed

    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups) + self.kernel_size

    def fan_in(self) -> int:
        # torch's fan_in: dim 1 of the weight times the receptive field (for the transposed
        # convolution that is out_channels/groups, torch's own convention)
        return self.weight_shape()[1] * math.prod(self.kernel_size)

    def _check_input(self, x: Tensor) -> None:
        rank = 2 + self.spatial
        if len(x.shape) != rank or x.shape[1] not in (None, self.in_channels):
            raise ShapeError(f"{self!r}: expects inputs of rank {rank} (N, {self.in_channels}, ...), got "
                             f"{format_shape(x.shape)}")

    def _weights(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        dtype, shape = _param_dtype(x), self.weight_shape()
        W = self.param(x.graph, "W", ParamSpec(shape, _initial(self.init, shape, self.seed), decay=True), dtype)
        b: Tensor | None = None
        if self.bias:
            n = self.out_channels
            b = self.param(x.graph, "b", ParamSpec((n,), _initial_bias(self.init, n, self.fan_in(), self.seed)),
                           dtype)
        return W, b

    def forward(self, x: Tensor, training: bool) -> Tensor:
        self._check_input(x)
        W, b = self._weights(x)
        out: Tensor = getattr(ops, self.op)(x, W, b, **self.options())
        return out

    def options(self) -> dict[str, Any]:
        return {"stride": self._scalar(self.stride), "padding": self._scalar(self.padding),
                "dilation": self._scalar(self.dilation), "groups": self.groups}

    @staticmethod
    def _scalar(t: tuple[int, ...] | str) -> int | tuple[int, ...] | str:
        # ints when all equal, so the stand-in compositions (which take ints) accept them
        return t[0] if isinstance(t, tuple) and len(set(t)) == 1 else t

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}")
        if self.dilation != (1,) * self.spatial:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias else ", bias=False")


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L) inputs, as torch.nn.Conv1d; output length
    (L + 2P - dilation·(k-1) - 1) // stride + 1."""

    kind, op, spatial = "conv1d", "conv1d", 1


class Conv3d(_ConvNd):
    """3-D convolution over (N, C, D, H, W) inputs, as torch.nn.Conv3d."""

    kind, op, spatial = "conv3d", "conv3d", 3


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution (the gradient of conv2d w.r.t. its input), as torch.nn.ConvTranspose2d:
    output size (H - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1."""

    kind, op, spatial = "convtranspose2d", "conv_transpose2d", 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                 padding: IntOrTuple | str = 0, output_padding: IntOrTuple = 0, groups: int = 1, bias: bool = True,
                 dilation: IntOrTuple = 1, init: InitLike = "torch", seed: int = 0,
                 name: str | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, init,
                         seed, name)
        self.output_padding = _tuple(output_padding, 2, "ConvTranspose2d: output_padding")
        if any(o >= max(s, d) for o, s, d in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be smaller than the "
                             f"stride {self.stride} or the dilation {self.dilation}")

    def weight_shape(self) -> tuple[int, ...]:
        return (self.in_channels, self.out_channels // self.groups) + self.kernel_size

    def options(self) -> dict[str, Any]:
        opts = super().options()
        opts["output_padding"] = self._scalar(self.output_padding)
        return opts
