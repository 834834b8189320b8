"""GroupNorm and InstanceNorm1d/2d layers with torch's constructors and parameter names.

The affine scale and shift are ``gamma``/``beta`` here and ``weight``/``bias`` in
torch (``from_torch_state_dict`` maps them). Gradients flow through the batch
statistics, as in torch (the normalisation is a composition of graph ops).
"""
from __future__ import annotations

from .. import init as initializers
from .. import ops
from ..graph import Tensor, format_shape
from ..ops.registry import ShapeError
from .layers import _param_dtype
from .module import Module, ParamSpec

__all__ = ["GroupNorm", "InstanceNorm1d", "InstanceNorm2d"]


class GroupNorm(Module):
    """Normalise each sample over groups of ``num_channels/num_groups`` channels (x: (N, C, ...)), then
    scale and shift per channel (``affine``), as torch.nn.GroupNorm."""

    kind = "groupnorm"
    torch_names = {"weight": "gamma", "bias": "beta"}

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        if self.num_groups < 1 or self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups "
                             f"({num_groups})")
        self.eps, self.affine = float(eps), bool(affine)

    def forward(self, x: Tensor, training: bool) -> Tensor:
        if len(x.shape) < 2 or x.shape[1] not in (None, self.num_channels):
            raise ShapeError(f"{self!r}: expects (N, {self.num_channels}, ...) inputs, got {format_shape(x.shape)}")
        gamma, beta = _affine_params(self, x, self.num_channels, self.affine)
        return ops.group_norm(x, self.num_groups, gamma, beta, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


def _affine_params(module: Module, x: Tensor, c: int, affine: bool) -> tuple[Tensor | None, Tensor | None]:
    if not affine:
        return None, None
    dtype, shape = _param_dtype(x), (c,)
    gamma = module.param(x.graph, "gamma", ParamSpec(shape, lambda: initializers.ones(shape)), dtype)
    beta = module.param(x.graph, "beta", ParamSpec(shape, lambda: initializers.zeros(shape)), dtype)
    return gamma, beta


class _InstanceNorm(Module):
    """Normalise each sample and channel over its spatial axes, as torch.nn.InstanceNormNd (which
    uses the instance statistics in training and evaluation alike when track_running_stats=False)."""

    kind = "instancenorm"
    spatial = 1
    torch_names = {"weight": "gamma", "bias": "beta"}

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = False,
                 track_running_stats: bool = False, name: str | None = None) -> None:
        super().__init__(name)
        if track_running_stats:
            raise NotImplementedError(f"{type(self).__name__}: track_running_stats=True is not supported "
                                      f"(torch's default is False)")
        self.num_features, self.eps, self.momentum, self.affine = int(num_features), float(eps), momentum, bool(
            affine)

    def forward(self, x: Tensor, training: bool) -> Tensor:
        rank = 2 + self.spatial
        if len(x.shape) != rank or x.shape[1] not in (None, self.num_features):
            raise ShapeError(f"{self!r}: expects inputs of rank {rank} (N, {self.num_features}, ...), got "
                             f"{format_shape(x.shape)}")
        gamma, beta = _affine_params(self, x, self.num_features, self.affine)
        return ops.instance_norm(x, gamma, beta, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) inputs."""

    kind, spatial = "instancenorm1d", 1


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) inputs."""

    kind, spatial = "instancenorm2d", 2
