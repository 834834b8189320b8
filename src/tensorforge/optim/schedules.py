"""Learning-rate schedules with torch.optim.lr_scheduler's semantics, acting on ``opt.lr``.

The optimizer's learning rate is a graph input, so a schedule changes it between
steps without recompiling anything. Each schedule reproduces torch's sequence
exactly, including its *recursive* forms (most schedules multiply the current
``opt.lr`` rather than recomputing from the base value, so they compose with other
changes to the learning rate, as in torch):

    sched = tg.optim.schedules.CosineAnnealingLR(opt, T_max=50)   # sets the initial lr
    for epoch in range(epochs):
        train_one_epoch()
        sched.step()                  # ReduceLROnPlateau: sched.step(val_loss)
    sched.get_last_lr()               # [lr], a list like torch's

``state_dict()`` is a plain dict of the schedule's attributes (no optimizer, no
functions), ``load_state_dict`` restores it.
"""
from __future__ import annotations

import copy
import math
import warnings
from typing import Any, Callable, Protocol, SupportsFloat, TypedDict

__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "LinearLR", "CosineAnnealingLR",
           "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR", "ReduceLROnPlateau"]


class _HasLR(Protocol):
    """What a schedule drives: an optimizer's settable ``lr`` and torch's ``initial_lr``."""
    lr: float
    initial_lr: float | None


def _check_optimizer(optimizer: object) -> None:
    if not hasattr(optimizer, "lr"):
        raise TypeError(f"{type(optimizer).__name__} is not an optimizer (it has no 'lr')")


def _single(name: str, value: float | list[float] | tuple[float, ...]) -> float:
    """tensorforge optimizers have one parameter group: accept a scalar or a 1-list."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"{name} must have the same length as the optimizer's parameter groups (1), "
                             f"got {len(value)} values")
        value = value[0]
    return float(value)


class _Phase(TypedDict):
    """One phase of OneCycleLR: anneal from ``start_lr`` to ``end_lr`` (keys of its lrs) until ``end_step``."""
    end_step: float
    start_lr: str
    end_lr: str


class LRScheduler:
    """Base class: ``step()`` advances ``last_epoch`` and sets ``opt.lr = get_lr()[0]``."""

    _is_initial = False

    def __init__(self, optimizer: _HasLR, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        self.optimizer = optimizer
        if last_epoch == -1:
            if getattr(optimizer, "initial_lr", None) is None:  # torch: group.setdefault("initial_lr", lr)
                optimizer.initial_lr = optimizer.lr
        elif getattr(optimizer, "initial_lr", None) is None:
            raise KeyError("the optimizer has no 'initial_lr' to resume from (last_epoch >= 0): create the "
                           "schedule with last_epoch=-1 or load the optimizer's state first")
        assert optimizer.initial_lr is not None  # set above, or checked
        self.base_lrs: list[float] = [optimizer.initial_lr]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The learning rate set by the last step, as a one-element list (torch's format)."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Advance one step (or jump to ``epoch``, using the closed form where there is one)."""
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form: Callable[[], list[float]] | None = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        self._set_lr(values[0])

    def _set_lr(self, lr: float) -> None:
        self.optimizer.lr = lr
        self._last_lr = [self.optimizer.lr]

    @property
    def _lr(self) -> float:
        return self.optimizer.lr

    def state_dict(self) -> dict[str, Any]:
        """Every attribute except the optimizer (and functions), as a plain dict."""
        return {k: copy.deepcopy(v) for k, v in self.__dict__.items()
                if k != "optimizer" and not callable(v)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.__dict__.update(copy.deepcopy(state_dict))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self.optimizer.lr!r})"


class StepLR(LRScheduler):
    """Multiply the lr by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer: _HasLR, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [self._lr]
        return [self._lr * self.gamma]

    def _get_closed_form_lr(self) -> list[float]:
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class ExponentialLR(LRScheduler):
    """Multiply the lr by ``gamma`` every epoch."""

    def __init__(self, optimizer: _HasLR, gamma: float, last_epoch: int = -1) -> None:
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return [self._lr]
        return [self._lr * self.gamma]

    def _get_closed_form_lr(self) -> list[float]:
        return [b * self.gamma ** self.last_epoch for b in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the lr by a factor going linearly from ``start_factor`` to ``end_factor``
    over ``total_iters`` epochs."""

    def __init__(self, optimizer: _HasLR, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5,
                 last_epoch: int = -1) -> None:
        if start_factor > 1.0 or start_factor <= 0:
            raise ValueError("Starting multiplicative factor expected to be greater than 0 and less or equal to 1.")
        if end_factor > 1.0 or end_factor < 0:
            raise ValueError("Ending multiplicative factor expected to be between 0 and 1.")
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return [self._lr * self.start_factor]
        if self._is_initial or self.last_epoch > self.total_iters:
            return [self._lr]
        ratio = (self.end_factor - self.start_factor) / (
            self.total_iters * self.start_factor + (self.last_epoch - 1) * (self.end_factor - self.start_factor))
        return [self._lr * (1.0 + ratio)]

    def _get_closed_form_lr(self) -> list[float]:
        return [b * (self.start_factor + (self.end_factor - self.start_factor)
                     * min(self.total_iters, self.last_epoch) / self.total_iters) for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """eta_min + (base - eta_min)(1 + cos(pi t / T_max)) / 2, in torch's recursive form
    (which keeps going past T_max: the lr rises again, period 2 T_max)."""

    def __init__(self, optimizer: _HasLR, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        base, lr, t, T = self.base_lrs[0], self._lr, self.last_epoch, self.T_max
        if self._is_initial:
            return [lr]
        if self._step_count == 1 and t > 0:
            return [self.eta_min + (base - self.eta_min) * (1 + math.cos(t * math.pi / T)) / 2]
        if (t - 1 - T) % (2 * T) == 0:
            return [lr + (base - self.eta_min) * (1 - math.cos(math.pi / T)) / 2]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (lr - self.eta_min)
                + self.eta_min]

    def _get_closed_form_lr(self) -> list[float]:
        return [self.eta_min + (b - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for b in self.base_lrs]


class CosineAnnealingWarmRestarts(LRScheduler):
    """SGDR: cosine annealing from the base lr to ``eta_min`` over T_i epochs, then a
    restart; T_i starts at ``T_0`` and is multiplied by ``T_mult`` at each restart."""

    def __init__(self, optimizer: _HasLR, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                 last_epoch: int = -1) -> None:
        if T_0 <= 0 or not isinstance(T_0, int):
            raise ValueError(f"Expected positive integer T_0, but got {T_0}")
        if T_mult < 1 or not isinstance(T_mult, int):
            raise ValueError(f"Expected integer T_mult >= 1, but got {T_mult}")
        if not isinstance(eta_min, (float, int)):
            raise ValueError(f"Expected float or int eta_min, but got {eta_min} of type {type(eta_min)}")
        self.T_0 = T_0
        self.T_i = T_0
        self.T_mult = T_mult
        self.eta_min = eta_min
        self.T_cur: float = last_epoch
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [self.eta_min + (b - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                for b in self.base_lrs]

    def step(self, epoch: float | None = None) -> None:
        """Advance one step, or jump to a (possibly fractional) ``epoch``."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.T_mult
        else:
            if epoch < 0:
                raise ValueError(f"Expected non-negative epoch, but got {epoch}")
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log((epoch / self.T_0 * (self.T_mult - 1) + 1), self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        self._set_lr(self.get_lr()[0])


class CyclicLR(LRScheduler):
    """Cyclical learning rates (Smith 2017): triangular, triangular2 (amplitude halved
    each cycle), exp_range (amplitude scaled by gamma**iterations), or a custom
    ``scale_fn``. Meant to be stepped after every batch.

    Only the learning rate is cycled: momentum and betas are compiled into the step, so
    ``cycle_momentum=True`` (torch's default) warns and is otherwise ignored.
    """

    def __init__(self, optimizer: _HasLR, base_lr: float | list[float], max_lr: float | list[float],
                 step_size_up: int = 2000, step_size_down: int | None = None,
                 mode: str = "triangular", gamma: float = 1.0, scale_fn: Callable[[float], float] | None = None,
                 scale_mode: str = "cycle", cycle_momentum: bool = True, base_momentum: float = 0.8,
                 max_momentum: float = 0.9, last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        base = _single("base_lr", base_lr)
        if last_epoch == -1:
            optimizer.lr = base
        self.max_lrs = [_single("max_lr", max_lr)]
        up = float(step_size_up)
        down = float(step_size_down) if step_size_down is not None else up
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise ValueError("mode is invalid and scale_fn is None")
        self.mode = mode
        self.gamma = gamma
        self._scale_fn_custom = scale_fn
        self.scale_mode = scale_mode
        self._init_scale_mode()
        self.cycle_momentum = cycle_momentum
        self.base_momentum, self.max_momentum = base_momentum, max_momentum
        if cycle_momentum:
            warnings.warn("CyclicLR: tensorforge cycles the learning rate only (momentum and betas are "
                          "compiled into the step); pass cycle_momentum=False to silence this warning",
                          UserWarning, stacklevel=2)
        super().__init__(optimizer, last_epoch)
        self.base_lrs = [base]

    def _init_scale_mode(self) -> None:
        if self._scale_fn_custom is None:
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"

    def scale_fn(self, x: float) -> float:
        """The amplitude scale for cycle number (or iteration) x."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        # float ** float is typed Any (a negative base gives a complex): these are real
        if self.mode == "triangular2":
            halving: float = 2.0 ** (x - 1)
            return 1 / halving
        scale: float = self.gamma ** x
        return scale

    def get_lr(self) -> list[float]:
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        base_height = (self.max_lrs[0] - self.base_lrs[0]) * scale_factor
        arg = cycle if self.scale_mode == "cycle" else self.last_epoch
        return [self.base_lrs[0] + base_height * self.scale_fn(arg)]

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.pop("_scale_fn_custom", None)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        state.pop("_scale_fn_custom", None)  # functions are not saved; keep this one's
        super().load_state_dict(state)
        self._init_scale_mode()


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin): warm up from max_lr/div_factor to max_lr over
    ``pct_start`` of the steps, then anneal (cos or linear) down to
    initial_lr/final_div_factor; ``three_phase`` comes back to the initial lr before the
    final annealing. Stepped after every batch, ``total_steps`` times in all.
    Only the learning rate is cycled (see CyclicLR about ``cycle_momentum``)."""

    def __init__(self, optimizer: _HasLR, max_lr: float | list[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        _check_optimizer(optimizer)
        if total_steps is not None:
            if total_steps <= 0 or not isinstance(total_steps, int):
                raise ValueError(f"Expected positive integer total_steps, but got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if not isinstance(epochs, int) or epochs <= 0:
                raise ValueError(f"Expected positive integer epochs, but got {epochs}")
            if not isinstance(steps_per_epoch, int) or steps_per_epoch <= 0:
                raise ValueError(f"Expected positive integer steps_per_epoch, but got {steps_per_epoch}")
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        self._schedule_phases: list[_Phase]
        if three_phase:
            self._schedule_phases = [
                {"end_step": float(pct_start * self.total_steps) - 1, "start_lr": "initial_lr", "end_lr": "max_lr"},
                {"end_step": float(2 * pct_start * self.total_steps) - 2, "start_lr": "max_lr",
                 "end_lr": "initial_lr"},
                {"end_step": self.total_steps - 1, "start_lr": "initial_lr", "end_lr": "min_lr"},
            ]
        else:
            self._schedule_phases = [
                {"end_step": float(pct_start * self.total_steps) - 1, "start_lr": "initial_lr", "end_lr": "max_lr"},
                {"end_step": self.total_steps - 1, "start_lr": "max_lr", "end_lr": "min_lr"},
            ]
        if pct_start < 0 or pct_start > 1 or not isinstance(pct_start, float):
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        self.anneal_strategy = anneal_strategy
        peak = _single("max_lr", max_lr)
        if last_epoch == -1:
            optimizer.initial_lr = peak / div_factor   # torch overwrites group["initial_lr"]
        elif getattr(optimizer, "initial_lr", None) is None:
            raise KeyError("OneCycleLR: the optimizer has no 'initial_lr' to resume from (last_epoch >= 0)")
        initial_lr = optimizer.initial_lr
        assert initial_lr is not None  # set above, or checked
        self._lrs = {"initial_lr": initial_lr, "max_lr": peak, "min_lr": initial_lr / final_div_factor}
        self.cycle_momentum = cycle_momentum
        self.base_momentum, self.max_momentum = base_momentum, max_momentum
        if cycle_momentum:
            warnings.warn("OneCycleLR: tensorforge cycles the learning rate only (momentum and betas are "
                          "compiled into the step); pass cycle_momentum=False to silence this warning",
                          UserWarning, stacklevel=2)
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _annealing_cos(start: float, end: float, pct: float) -> float:
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)

    @staticmethod
    def _annealing_linear(start: float, end: float, pct: float) -> float:
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step_num = self.last_epoch
        if step_num > self.total_steps:
            raise ValueError(f"Tried to step {step_num} times. The specified number of total steps is "
                             f"{self.total_steps}")
        anneal = self._annealing_cos if self.anneal_strategy == "cos" else self._annealing_linear
        start_step = 0.0
        for i, phase in enumerate(self._schedule_phases):
            end_step = phase["end_step"]
            if step_num <= end_step or i == len(self._schedule_phases) - 1:
                pct = (step_num - start_step) / (end_step - start_step)
                return [anneal(self._lrs[phase["start_lr"]], self._lrs[phase["end_lr"]], pct)]
            start_step = phase["end_step"]
        raise AssertionError("unreachable: the last phase always matches")


class ReduceLROnPlateau(LRScheduler):
    """Multiply the lr by ``factor`` once the metric passed to ``step(metric)`` has not
    improved for more than ``patience`` epochs (then wait ``cooldown`` epochs)."""

    def __init__(self, optimizer: _HasLR, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | list[float] = 0, eps: float = 1e-8) -> None:
        if factor >= 1.0:
            raise ValueError("Factor should be < 1.0.")
        _check_optimizer(optimizer)
        self.factor = factor
        self.optimizer = optimizer
        self.min_lrs = [_single("min_lr", min_lr)]
        self.patience = patience
        self.cooldown = cooldown
        self.eps = eps
        self.last_epoch = 0
        self._last_lr = [optimizer.lr]
        self._init_is_better(mode, threshold, threshold_mode)
        self._reset()

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    # torch's step(metrics): the metric is required, unlike the other schedules' step(epoch=None)
    def step(self, metrics: SupportsFloat, epoch: int | None = None) -> None:  # type: ignore[override]
        """Record this epoch's metric (e.g. the validation loss) and reduce the lr if needed."""
        current = float(metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs during the cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [self.optimizer.lr]

    def _reduce_lr(self) -> None:
        old_lr = float(self.optimizer.lr)
        new_lr = max(old_lr * self.factor, self.min_lrs[0])
        if old_lr - new_lr > self.eps:  # changes smaller than eps are ignored
            self.optimizer.lr = new_lr

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _is_better(self, a: float, best: float) -> bool:
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min" and self.threshold_mode == "abs":
            return a < best - self.threshold
        if self.mode == "max" and self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _init_is_better(self, mode: str, threshold: float, threshold_mode: str) -> None:
        if mode not in ("min", "max"):
            raise ValueError("mode " + mode + " is unknown!")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError("threshold mode " + threshold_mode + " is unknown!")
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.mode = mode
        self.threshold = threshold
        self.threshold_mode = threshold_mode

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._init_is_better(self.mode, self.threshold, self.threshold_mode)
