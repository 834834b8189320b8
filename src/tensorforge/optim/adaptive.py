"""Adaptive-rate optimizers, with torch.optim's update rules, defaults and buffer names:
Adagrad, Adadelta, RMSprop, Adam, AdamW, Adamax and NAdam.

Each ``_rule`` is one step for one parameter written with graph ops; ``k.t`` is the
step count after this step (1 on the first), a graph scalar, so bias corrections such
as ``1 - beta1 ** t`` are computed in the graph and nothing recompiles between steps.
Every optimizer also takes torch's ``maximize`` flag (ascend instead of descend).
"""
from __future__ import annotations

import numpy as np

from .._typing import Array
from ..graph import Tensor
from ..ops import abs as tabs
from ..ops import maximum, pow, sqrt
from .base import Optimizer, StepContext, _check_hyper, _decay, _decay_grad

__all__ = ["Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam"]


def _lerp(a: Tensor, b: Tensor, w: float) -> Tensor:
    """a + w (b - a), the moving average torch writes as ``a.lerp_(b, w)``."""
    return a + w * (b - a)


def _check_betas(betas: tuple[float, float]) -> tuple[float, float]:
    b1, b2 = (float(b) for b in betas)
    _check_hyper("beta parameter at index 0", b1, 0.0, 1.0, open_high=True)
    _check_hyper("beta parameter at index 1", b2, 0.0, 1.0, open_high=True)
    return b1, b2


class Adagrad(Optimizer):
    """sum <- sum + g²;  p <- p - lr / (1 + (t-1) lr_decay) * g / (sqrt(sum) + eps)."""
    tag = "adagrad"

    def __init__(self, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        super().__init__(lr)
        _check_hyper("lr_decay", lr_decay)
        _check_hyper("weight_decay", weight_decay)
        _check_hyper("initial_accumulator_value", initial_accumulator_value)
        _check_hyper("epsilon", eps)
        self.lr_decay, self.weight_decay = float(lr_decay), float(weight_decay)
        self.initial_accumulator_value, self.eps = float(initial_accumulator_value), float(eps)
        self.maximize = bool(maximize)

    def _hyper_repr(self) -> dict[str, object]:
        return dict(lr_decay=self.lr_decay, weight_decay=self.weight_decay,
                    initial_accumulator_value=self.initial_accumulator_value, eps=self.eps)

    def _slots(self) -> tuple[str, ...]:
        return ("sum",)

    def _slot_init(self, slot: str, value: Array) -> Array:
        return np.full_like(value, self.initial_accumulator_value)

    def _rule(self, p: Tensor, g: Tensor, slots: dict[str, Tensor], k: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        g = _decay_grad(self, p, g)
        clr = k.lr if self.lr_decay == 0 else k.lr / (1.0 + (k.t - 1.0) * self.lr_decay)
        acc = slots["sum"] + g * g
        return p - clr * (g / (sqrt(acc) + self.eps)), {"sum": acc}


class Adadelta(Optimizer):
    """sq <- rho sq + (1-rho) g²;  d = sqrt(acc + eps) / sqrt(sq + eps) g;
    acc <- rho acc + (1-rho) d²;  p <- p - lr d."""
    tag = "adadelta"

    def __init__(self, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0, *,
                 maximize: bool = False) -> None:
        super().__init__(lr)
        _check_hyper("rho", rho, 0.0, 1.0)
        _check_hyper("epsilon", eps)
        _check_hyper("weight_decay", weight_decay)
        self.rho, self.eps, self.weight_decay = float(rho), float(eps), float(weight_decay)
        self.maximize = bool(maximize)

    def _hyper_repr(self) -> dict[str, object]:
        return dict(rho=self.rho, eps=self.eps, weight_decay=self.weight_decay)

    def _slots(self) -> tuple[str, ...]:
        return ("square_avg", "acc_delta")

    def _rule(self, p: Tensor, g: Tensor, slots: dict[str, Tensor], k: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        g = _decay_grad(self, p, g)
        rho = self.rho
        sq = rho * slots["square_avg"] + (1.0 - rho) * (g * g)
        delta = sqrt(slots["acc_delta"] + self.eps) / sqrt(sq + self.eps) * g
        acc = rho * slots["acc_delta"] + (1.0 - rho) * (delta * delta)
        return p - k.lr * delta, {"square_avg": sq, "acc_delta": acc}


class RMSprop(Optimizer):
    """sq <- alpha sq + (1-alpha) g²;  avg = sqrt(sq - ḡ²) + eps (centered, ḡ the running
    mean gradient) or sqrt(sq) + eps;  with momentum: buf <- momentum buf + g/avg,
    p <- p - lr buf;  else p <- p - lr g/avg."""
    tag = "rmsprop"

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0,
                 momentum: float = 0, centered: bool = False, *, maximize: bool = False) -> None:
        super().__init__(lr)
        _check_hyper("epsilon", eps)
        _check_hyper("momentum", momentum)
        _check_hyper("weight_decay", weight_decay)
        _check_hyper("alpha", alpha)
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered, self.maximize = float(momentum), bool(centered), bool(maximize)

    def _hyper_repr(self) -> dict[str, object]:
        return dict(alpha=self.alpha, eps=self.eps, weight_decay=self.weight_decay, momentum=self.momentum,
                    centered=self.centered)

    def _slots(self) -> tuple[str, ...]:
        return ("square_avg",) + (("momentum_buffer",) if self.momentum > 0 else ()) \
            + (("grad_avg",) if self.centered else ())

    def _rule(self, p: Tensor, g: Tensor, slots: dict[str, Tensor], k: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        g = _decay_grad(self, p, g)
        a = self.alpha
        sq = a * slots["square_avg"] + (1.0 - a) * (g * g)
        new: dict[str, Tensor] = {"square_avg": sq}
        if self.centered:
            gavg = _lerp(slots["grad_avg"], g, 1.0 - a)
            new["grad_avg"] = gavg
            avg = sqrt(sq - gavg * gavg) + self.eps
        else:
            avg = sqrt(sq) + self.eps
        if self.momentum > 0:
            buf = self.momentum * slots["momentum_buffer"] + g / avg
            new["momentum_buffer"] = buf
            return p - k.lr * buf, new
        return p - k.lr * (g / avg), new


class Adam(Optimizer):
    """m <- lerp(m, g, 1-b1);  v <- b2 v + (1-b2) g²;  (amsgrad: vmax <- max(vmax, v));
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    ``decoupled_weight_decay=True`` (AdamW) shrinks p by (1 - lr wd) instead of adding wd p to g."""
    tag = "adam"

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False) -> None:
        super().__init__(lr)
        _check_hyper("epsilon", eps)
        _check_hyper("weight_decay", weight_decay)
        self.betas = _check_betas(betas)
        self.eps, self.weight_decay, self.amsgrad = float(eps), float(weight_decay), bool(amsgrad)
        self.maximize, self.decoupled_weight_decay = bool(maximize), bool(decoupled_weight_decay)

    def _hyper_repr(self) -> dict[str, object]:
        return dict(betas=self.betas, eps=self.eps, weight_decay=self.weight_decay, amsgrad=self.amsgrad)

    def _slots(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if self.amsgrad else ())

    def _rule(self, p: Tensor, g: Tensor, slots: dict[str, Tensor], k: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        b1, b2 = self.betas
        p, g = _decay(self, p, g, k.lr, decoupled=self.decoupled_weight_decay)
        m = _lerp(slots["exp_avg"], g, 1.0 - b1)
        v = b2 * slots["exp_avg_sq"] + (1.0 - b2) * (g * g)
        new: dict[str, Tensor] = {"exp_avg": m, "exp_avg_sq": v}
        step_size = k.lr / (1.0 - pow(b1, k.t))
        bc2_sqrt = sqrt(1.0 - pow(b2, k.t))
        if self.amsgrad:
            v = maximum(slots["max_exp_avg_sq"], v)
            new["max_exp_avg_sq"] = v
        denom = sqrt(v) / bc2_sqrt + self.eps
        return p - step_size * (m / denom), new


class AdamW(Adam):
    """Adam with decoupled weight decay (default 1e-2): p <- p (1 - lr wd) before the Adam step."""
    tag = "adamw"

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False) -> None:
        super().__init__(lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)


class Adamax(Optimizer):
    """m <- lerp(m, g, 1-b1);  u <- max(b2 u, |g| + eps);  p <- p - lr / (1 - b1^t) * m / u."""
    tag = "adamax"

    def __init__(self, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, *, maximize: bool = False) -> None:
        super().__init__(lr)
        _check_hyper("epsilon", eps)
        _check_hyper("weight_decay", weight_decay)
        self.betas = _check_betas(betas)
        self.eps, self.weight_decay, self.maximize = float(eps), float(weight_decay), bool(maximize)

    def _hyper_repr(self) -> dict[str, object]:
        return dict(betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)

    def _slots(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_inf")

    def _rule(self, p: Tensor, g: Tensor, slots: dict[str, Tensor], k: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        b1, b2 = self.betas
        g = _decay_grad(self, p, g)
        m = _lerp(slots["exp_avg"], g, 1.0 - b1)
        u = maximum(b2 * slots["exp_inf"], tabs(g) + self.eps)
        clr = k.lr / (1.0 - pow(b1, k.t))
        return p - clr * (m / u), {"exp_avg": m, "exp_inf": u}


class NAdam(Optimizer):
    """Adam with Nesterov momentum and torch's momentum schedule
    mu_t = b1 (1 - 0.5 * 0.96^(t * momentum_decay)), and the running product of the mu_t:
    p <- p - lr (1 - mu_t) / (1 - prod mu) g / d - lr mu_{t+1} / (1 - prod mu * mu_{t+1}) m / d,
    d = sqrt(v / (1 - b2^t)) + eps."""
    tag = "nadam"

    def __init__(self, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(lr)
        _check_hyper("epsilon", eps)
        _check_hyper("weight_decay", weight_decay)
        _check_hyper("momentum_decay", momentum_decay)
        self.betas = _check_betas(betas)
        self.eps, self.weight_decay, self.momentum_decay = float(eps), float(weight_decay), float(momentum_decay)
        self.decoupled_weight_decay, self.maximize = bool(decoupled_weight_decay), bool(maximize)

    def _hyper_repr(self) -> dict[str, object]:
        return dict(betas=self.betas, eps=self.eps, weight_decay=self.weight_decay,
                    momentum_decay=self.momentum_decay, decoupled_weight_decay=self.decoupled_weight_decay)

    def _slots(self) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def _scalar_init(self) -> dict[str, float]:
        return {"mu_product": 1.0}

    def _mu(self, t: Tensor) -> Tensor:
        return self.betas[0] * (1.0 - 0.5 * pow(0.96, t * self.momentum_decay))

    def _scalar_rule(self, scalars: dict[str, Tensor], t: Tensor) -> dict[str, Tensor]:
        # torch keeps one mu_product per parameter; they are all equal, so one scalar suffices
        return {"mu_product": scalars["mu_product"] * self._mu(t)}

    def _rule(self, p: Tensor, g: Tensor, slots: dict[str, Tensor], k: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        b1, b2 = self.betas
        p, g = _decay(self, p, g, k.lr, decoupled=self.decoupled_weight_decay)
        mu, mu_next = self._mu(k.t), self._mu(k.t + 1.0)
        mu_product = k.new_scalars["mu_product"]
        m = _lerp(slots["exp_avg"], g, 1.0 - b1)
        v = b2 * slots["exp_avg_sq"] + (1.0 - b2) * (g * g)
        denom = sqrt(v / (1.0 - pow(b2, k.t))) + self.eps
        p = p - k.lr * (1.0 - mu) / (1.0 - mu_product) * (g / denom)
        p = p - k.lr * mu_next / (1.0 - mu_product * mu_next) * (m / denom)
        return p, {"exp_avg": m, "exp_avg_sq": v}
