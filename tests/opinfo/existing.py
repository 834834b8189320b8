"""Op-info entries for ops that predate the table (a few, to keep the runner honest)."""
from __future__ import annotations

import torch

import tensorforge as tg

from .spec import OpInfo, Sample, binary_samples, randn, unary_samples

OPS = [
    OpInfo("tanh", tg.tanh, torch.tanh, lambda r: unary_samples(r)),
    OpInfo("exp", tg.exp, torch.exp, lambda r: unary_samples(r)),
    OpInfo("maximum", tg.maximum, torch.maximum, lambda r: binary_samples(r)),
    OpInfo("softmax", lambda x, axis: tg.softmax(x, axis=axis), lambda x, axis: torch.softmax(x, dim=axis),
           lambda r: [Sample((randn(r, 3, 5),), dict(axis=-1), name="3x5"),
                      Sample((randn(r, 2, 3, 4),), dict(axis=1), name="2x3x4")]),
]
