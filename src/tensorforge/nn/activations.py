"""Activation layers for the torch activations added in issue 10, plus ``Identity``.

Each is a parameter-free module calling the functional op of the same name in
``tg`` (``GELU`` -> ``tg.gelu``). Constructor arguments follow torch.
"""
from __future__ import annotations

from typing import Any

from .. import ops
from ..graph import Tensor
from .module import Module

__all__ = ["Identity", "GELU", "SiLU", "Mish", "SELU", "CELU", "ReLU6", "Hardtanh", "Hardswish", "Hardsigmoid",
           "Softsign", "LogSigmoid", "Softmin", "GLU"]


class Identity(Module):
    """Returns its input unchanged (a placeholder layer, as torch's nn.Identity); extra constructor
    arguments are accepted and ignored, as torch does."""

    kind = "identity"

    def __init__(self, *args: Any, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(name)

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return x


class _Elementwise(Module):
    """A parameter-free activation: ``forward`` calls ``tg.<op>`` with the layer's options."""

    op = ""

    def options(self) -> dict[str, Any]:
        return {}

    def forward(self, x: Tensor, training: bool) -> Tensor:
        out: Tensor = getattr(ops, self.op)(x, **self.options())
        return out

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options().items())


class GELU(_Elementwise):
    """x·Φ(x) (``approximate="tanh"``: 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))))."""
    kind, op = "gelu", "gelu"

    def __init__(self, approximate: str = "none", name: str | None = None) -> None:
        super().__init__(name)
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def options(self) -> dict[str, Any]:
        return {"approximate": self.approximate}


class SiLU(_Elementwise):
    """x·sigmoid(x) (swish)."""
    kind, op = "silu", "silu"


class Mish(_Elementwise):
    """x·tanh(softplus(x))."""
    kind, op = "mish", "mish"


class SELU(_Elementwise):
    """scale·(x if x > 0 else α(eˣ - 1)) with torch's fixed α and scale."""
    kind, op = "selu", "selu"


class CELU(_Elementwise):
    """x if x > 0 else α(e^(x/α) - 1)."""
    kind, op = "celu", "celu"

    def __init__(self, alpha: float = 1.0, name: str | None = None) -> None:
        super().__init__(name)
        if alpha == 0:
            raise ValueError("CELU: alpha must not be 0")
        self.alpha = float(alpha)

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha}


class ReLU6(_Elementwise):
    """min(max(x, 0), 6)."""
    kind, op = "relu6", "relu6"


class Hardtanh(_Elementwise):
    """min(max(x, min_val), max_val)."""
    kind, op = "hardtanh", "hardtanh"

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, name: str | None = None) -> None:
        super().__init__(name)
        if max_val <= min_val:
            raise ValueError(f"Hardtanh: max_val ({max_val}) must be greater than min_val ({min_val})")
        self.min_val, self.max_val = float(min_val), float(max_val)

    def options(self) -> dict[str, Any]:
        return {"min_val": self.min_val, "max_val": self.max_val}


class Hardswish(_Elementwise):
    """x·relu6(x + 3)/6."""
    kind, op = "hardswish", "hardswish"


class Hardsigmoid(_Elementwise):
    """relu6(x + 3)/6."""
    kind, op = "hardsigmoid", "hardsigmoid"


class Softsign(_Elementwise):
    """x / (1 + |x|)."""
    kind, op = "softsign", "softsign"


class LogSigmoid(_Elementwise):
    """log(sigmoid(x)) = -softplus(-x)."""
    kind, op = "logsigmoid", "logsigmoid"


class Softmin(_Elementwise):
    """softmax(-x) along ``dim`` (default: the last axis; torch requires it explicitly in practice)."""
    kind, op = "softmin", "softmin"

    def __init__(self, dim: int | None = None, name: str | None = None) -> None:
        super().__init__(name)
        self.dim = -1 if dim is None else int(dim)

    def options(self) -> dict[str, Any]:
        return {"axis": self.dim}


class GLU(_Elementwise):
    """a·sigmoid(b), where a and b are the two halves of ``dim``."""
    kind, op = "glu", "glu"

    def __init__(self, dim: int = -1, name: str | None = None) -> None:
        super().__init__(name)
        self.dim = int(dim)

    def options(self) -> dict[str, Any]:
        return {"axis": self.dim}
