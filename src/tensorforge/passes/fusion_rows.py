"""Row reductions finished by their reader: ``y = f(x, sum(g, axis=-1, keepdims=True))`` in one kernel.

After ``fusion.py``, a reduction kept as (rows, 1) and the elementwise kernel that reads it
broadcast along the row are two kernels: the second reads the first's result back from
memory. log_softmax's backward, ``g - exp(lsm) * sum(g)``, is such a pair in every
classifier's step. When the elementwise kernel is the reduction's only reader and walks the
same loop space (the reduced axes last), the two become one kernel of the softmax form: the
reduction's stages, then the elementwise expression stored at every element, with the
stage standing where the reduced value was loaded.

Only reductions whose stored value depends on the stages alone are absorbed (a value that
also reads inputs is read at the reduced index 0, which a per-element store would not do).
"""
from __future__ import annotations

from dataclasses import replace

from ..kernel_ir import Load, LoopSpec, substitute_args
from ..ops.scalar import Expr
from ..program import Program
from .rewrite import Builder

__all__ = ["absorb_row_reductions"]


def _stages_only(expr: Expr) -> bool:
    return not any(e.op == "arg" for e in expr.walk())


def _absorbable(program: Program, consumers, reader: int):
    """(position of the reduction among the reader's inputs, reduction node) or None."""
    g = program.graph
    spec = dict(g.node(reader)["attrs"])["spec"]
    if spec.n_reduce or not spec.per_element or spec.reductions or spec.extra_outs:
        return None
    ins = list(g.node(reader)["inputs"])
    for position, q in enumerate(ins):
        dq = g.node(q)
        if dq["op"] != "fused" or consumers.get(q) != [reader] or ins.count(q) != 1:
            continue
        if q in program.outputs or any(q == v for _, v in program.updates):
            continue
        red = dict(dq["attrs"])["spec"]
        if (not red.n_reduce or red.per_element or red.extra_outs or red.space != spec.space
                or red.dtype != spec.dtype or not _stages_only(red.out)):
            continue
        if all(ld.strides == red.out_strides and ld.offset == 0 for ld in spec.loads if ld.input == position):
            return position, q
    return None


def _merged(program: Program, reader: int, position: int, red_node: int, new_of) -> tuple[LoopSpec, list[int]]:
    """The reader's spec with the reduction's stages in front; its inputs (new ids)."""
    g = program.graph
    spec = dict(g.node(reader)["attrs"])["spec"]
    red = dict(g.node(red_node)["attrs"])["spec"]
    inputs: list[int] = []
    loads: dict[Load, int] = {}

    def remap(expr: Expr, node_spec: LoopSpec, node_inputs, reduced_value: Expr | None) -> Expr:
        def leaf_for(e: Expr) -> Expr:
            ld = node_spec.loads[e.value]
            if reduced_value is not None and ld.input == position:
                return reduced_value
            buf = new_of[node_inputs[ld.input]]
            if buf not in inputs:
                inputs.append(buf)
            key = Load(inputs.index(buf), ld.strides, ld.offset)
            return Expr("arg", (), loads.setdefault(key, len(loads)), e.dtype)
        return substitute_args(expr, leaf_for)

    red_inputs = g.node(red_node)["inputs"]
    reductions = tuple(replace(r, expr=remap(r.expr, red, red_inputs, None)) for r in red.reductions)
    out = remap(spec.out, spec, g.node(reader)["inputs"], red.out)
    merged = replace(spec, n_reduce=red.n_reduce, loads=tuple(sorted(loads, key=loads.get)),
                     reductions=reductions, out=out)
    return merged, inputs


def absorb_row_reductions(program: Program) -> Program:
    """Merge every (row reduction, its only elementwise reader) pair into one kernel."""
    g = program.graph
    consumers: dict[int, list[int]] = {}
    for n in program.order:
        for i in dict.fromkeys(g.node(n)["inputs"]):
            consumers.setdefault(i, []).append(n)
    pairs = {}
    for n in program.order:
        if g.node(n)["op"] == "fused":
            found = _absorbable(program, consumers, n)
            if found is not None:
                pairs[n] = found
    if not pairs:
        return program
    absorbed = {q for _, q in pairs.values()}
    b = Builder(program)
    new_of: dict[int, int] = {}
    user = program.origin or {}
    inputs = set(program.inputs)
    for nid in list(program.inputs) + [n for n in program.order if n not in inputs]:
        if nid in new_of or nid in absorbed:
            continue
        d = g.node(nid)
        with b.standing_for(user.get(nid, nid)):
            if nid in pairs:
                spec, bufs = _merged(program, nid, *pairs[nid], new_of)
                new_of[nid] = b.raw("fused", bufs, {"spec": spec}, spec.out_shape, spec.dtype, name=d["name"])
            else:
                new_of[nid] = b.copy(nid, [new_of[i] for i in d["inputs"]])
    return b.program(new_of, list(b.order))
