"""Common-subexpression elimination.

Graph interning already merges nodes built twice with the same (op, inputs, attrs);
this pass catches what interning cannot see: equal constants that were created
separately (large constants are not interned by value), operands of commutative ops
in different orders (``a + b`` and ``b + a``), and duplicates that earlier rewrites
created. Rebuilding interns every node, so merging the leaves merges everything
computed from them. Parameters and placeholders are never merged, even with equal
values: they are distinct state and distinct inputs.
"""
from __future__ import annotations

from ..program import Program
from .rewrite import Builder, rebuild

__all__ = ["cse", "COMMUTATIVE"]

# exactly commutative in IEEE arithmetic (maximum/minimum are left out: their choice
# between +0.0 and -0.0 can depend on the order)
COMMUTATIVE = ("add", "mul", "eq", "ne")


def cse(program: Program) -> Program:
    """The program with equal sub-expressions computed once."""
    by_value: dict[tuple, int] = {}

    def rule(b: Builder, old: int, ins: list) -> int | None:
        d = b.src.graph.node(old)
        if d["op"] == "constant":
            arr = b.src.graph.values[old]
            key = (arr.dtype.name, arr.shape, arr.tobytes())
            if key not in by_value:          # the first of its value: copied, and the one kept
                by_value[key] = b.copy(old, ins)
            return by_value[key]
        if d["op"] in COMMUTATIVE and list(ins) != sorted(ins):
            return b.raw(d["op"], sorted(ins), dict(d["attrs"]), b.src.shapes[old], b.src.dtypes[old],
                         name=d["name"])
        return None

    program, _ = rebuild(program, rule)
    return program
