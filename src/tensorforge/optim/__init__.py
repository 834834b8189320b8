"""tg.optim: optimizers that build their update rules into the graph, gradient
clipping, and (in ``tg.optim.schedules``) learning-rate schedules.

Same names, hyper-parameters, defaults and update rules as torch.optim::

    opt = tg.optim.Adam(lr=1e-3)
    updates = opt.updates(loss, params, clip_norm=None)   # (parameter, new value) pairs
    step = tg.compile([x, y], [loss], updates=updates)
    opt.lr = 1e-4                                         # no recompilation
"""
from __future__ import annotations

from .base import Optimizer, StepContext
from .clip import clip_by_global_norm, global_norm
from .sgd import SGD
from .adaptive import Adadelta, Adagrad, Adam, Adamax, AdamW, NAdam, RMSprop
from .svrg import SVRG
from . import schedules

__all__ = ["Optimizer", "StepContext", "SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "Adamax",
           "NAdam", "SVRG", "clip_by_global_norm", "global_norm", "schedules"]
