"""Helpers shared by several test modules (imported as ``helpers``: tests/ is on sys.path)."""
from __future__ import annotations

import tensorforge as tg


def apply_program(x, b, program):
    """The last value of a random elementwise ``program`` run on ``x`` and ``b``: each step,
    ("u", op, i) or ("b", op, i, j), applies the tg function ``op`` to earlier values (indices
    taken modulo the values so far) and appends the result."""
    vals = [x, b]
    for step in program:
        if step[0] == "u":
            vals.append(getattr(tg, step[1])(vals[step[2] % len(vals)]))
        else:
            vals.append(getattr(tg, step[1])(vals[step[2] % len(vals)], vals[step[3] % len(vals)]))
    return vals[-1]
