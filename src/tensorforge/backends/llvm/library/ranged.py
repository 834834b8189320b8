"""Which library kernels (besides matmul) have a ``<name>_range(ptrs..., i64 begin, i64 end)``
entry over independent work units, how many units, and how much work one call holds: what
the backend needs to decide whether to split a kernel across threads (``parallel.emit_entry``)."""
from __future__ import annotations

import math

from . import Operand
from . import conv, nn

_POOLING_OPS = ("max_pool2d", "max_pool2d_grad", "avg_pool2d", "avg_pool2d_grad")


def range_split(op: str, inputs: list[Operand], out: Operand) -> tuple[int, int] | None:
    """(work units, work in ``parallel.worth_splitting``'s units) of a ranged kernel, else None."""
    if op in conv.RANGED_OPS:
        # a multiply-add is far cheaper than a loop element's memory traffic: weigh it 1/32 (as matmul)
        return conv.range_units(op, inputs, out), conv.range_work(op, inputs, out) // 32
    if op in _POOLING_OPS:
        return nn.pool_units(inputs, out), math.prod(inputs[-1].shape)
    return None
