"""Stochastic gradient descent with momentum (Polyak or Nesterov), as torch.optim.SGD.

    g <- -g (maximize);  g <- g + weight_decay * p
    buf <- g on the first step, else momentum * buf + (1 - dampening) * g
    g <- g + momentum * buf (nesterov)  or  buf
    p <- p - lr * g
"""
from __future__ import annotations

from ..graph import Tensor
from ..ops import where
from .base import Optimizer, StepContext, _check_hyper, _decay_grad

__all__ = ["SGD"]


class SGD(Optimizer):
    tag = "sgd"

    def __init__(self, lr: float = 1e-3, momentum: float = 0, dampening: float = 0, weight_decay: float = 0,
                 nesterov: bool = False, *, maximize: bool = False) -> None:
        super().__init__(lr)
        _check_hyper("momentum", momentum)
        _check_hyper("weight_decay", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        self.momentum = float(momentum)
        self.dampening = float(dampening)
        self.weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)
        self.maximize = bool(maximize)

    def _hyper_repr(self) -> dict[str, object]:
        return dict(momentum=self.momentum, dampening=self.dampening, weight_decay=self.weight_decay,
                    nesterov=self.nesterov, maximize=self.maximize)

    def _slots(self) -> tuple[str, ...]:
        return ("momentum_buffer",) if self.momentum != 0 else ()

    def _rule(self, p: Tensor, g: Tensor, slots: dict[str, Tensor], k: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        g = _decay_grad(self, p, g)
        new: dict[str, Tensor] = {}
        if self.momentum != 0:
            buf = slots["momentum_buffer"]
            damped = g if self.dampening == 0 else (1.0 - self.dampening) * g
            # torch starts the buffer at the first gradient itself (no dampening)
            buf = where(k.t == 1.0, g, self.momentum * buf + damped)
            new["momentum_buffer"] = buf
            g = g + self.momentum * buf if self.nesterov else buf
        return p - k.lr * g, new
