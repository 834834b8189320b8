"""Callbacks of ``tg.train.fit``: the info a callback receives, and how it stops training
(plus the rule for how many epochs a step budget allows).

A callback is any callable ``cb(info)``; ``fit(callbacks=cb)`` or ``callbacks=[cb1, cb2]``.
It is called after every training step (``info.event == "step"``), after every
evaluation asked for by ``eval_every`` (``"eval"``) and at the end of every epoch
(``"epoch"``). Returning True, or raising ``StopTraining``, stops the run after the
current step: the partial epoch is recorded in the history as usual (its loss is the
mean over the batches seen) and ``history.stop_reason`` is ``"callback"``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

__all__ = ["StopTraining", "TrainInfo", "CallbackList", "epoch_limit", "Callback"]


class StopTraining(Exception):
    """Raise from a ``fit`` callback to stop training after the current step."""


@dataclass
class TrainInfo:
    """What a callback is told. ``epoch`` is 0-based (the epoch in progress), ``step`` counts optimizer
    steps from 1 over the whole run, ``batch`` is the 0-based batch index in the epoch (None for
    "epoch" events). ``loss`` is the step's training loss ("step"), or the epoch's mean ("epoch").
    ``logs`` holds the evaluation results ("eval": val_loss, val_accuracy, ...) or the epoch's
    records ("epoch": the last value of every history key). Readable as a dict too: ``info["loss"]``."""

    event: str
    epoch: int
    step: int
    batch: int | None = None
    loss: float | None = None
    lr: float | None = None
    logs: dict[str, Any] = field(default_factory=dict)
    history: Any = None       # the run's tg.train.History (typed loosely: train imports this module)

    def __getitem__(self, key: str) -> Any:
        if key in ("event", "epoch", "step", "batch", "loss", "lr", "logs", "history"):
            return getattr(self, key)
        return self.logs[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


#: A callback: called with a TrainInfo; returning True stops training
Callback = Callable[["TrainInfo"], object]


class CallbackList:
    """The callbacks of one run; ``__call__(info)`` is True when one of them asks to stop."""

    def __init__(self, callbacks: Callback | Iterable[Callback] | None) -> None:
        if callbacks is None:
            callbacks = []
        elif callable(callbacks):
            callbacks = [callbacks]
        else:
            callbacks = list(callbacks)
        for cb in callbacks:
            if not callable(cb):
                raise TypeError(f"fit: callbacks must be callables taking a TrainInfo, got {type(cb).__name__}")
        self.callbacks: list[Callback] = callbacks

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def __call__(self, info: TrainInfo) -> bool:
        stop = False
        for cb in self.callbacks:
            try:
                if cb(info) is True:
                    stop = True
            except StopTraining:
                stop = True
        return stop


def epoch_limit(epochs: int | None, steps: int | None) -> float:
    """How many epochs ``fit`` may run: ``epochs`` (default 10), unbounded when only a step budget is given."""
    if steps is not None and (isinstance(steps, bool) or int(steps) < 1):
        raise ValueError(f"fit: steps must be a positive step budget, got {steps!r}")
    if epochs is None:
        return math.inf if steps is not None else 10
    if int(epochs) < 0:
        raise ValueError(f"fit: epochs must be >= 0, got {epochs!r}")
    return int(epochs)
