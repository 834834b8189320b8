"""Multi-output kernels: elementwise kernels of one loop space that feed each other become one.

After ``fusion.py`` every value with two uses is a kernel of its own. An optimizer's update
of one parameter is then several kernels over the parameter's shape that all read the
gradient again: Adam's m' = b1*m + (1-b1)*g, v' = b2*v + (1-b2)*g*g and p' = p - lr*m'/sqrt(v')
are three kernels, and the third re-reads what the first two just wrote. Here a kernel ``r``
absorbs an elementwise kernel ``q`` that it reads element for element (same loop space,
same output layout, load at the element being written): q's expression is substituted for
the load, and q's value is stored as an extra output of r's kernel (``LoopSpec.extra_outs``),
read by later nodes through ``fused_output(kernel, index)``.

The merged kernel runs where ``r`` ran, so ``q`` may only be absorbed when nothing outside
the group reads q's value before r's place in the order (the group stays convex: no path
leaves it and comes back). Merged expressions are bounded like fused trees (MAX_MERGED_EXPR).
"""
from __future__ import annotations

from dataclasses import replace

from ..kernel_ir import Load, LoopSpec, substitute_args
from ..ops.scalar import Expr
from ..program import Program
from .rewrite import Builder

__all__ = ["merge_multi_output", "MAX_MERGED_EXPR"]

# at most this many expression nodes in one merged kernel (bounds LLVM's and Triton's work per kernel)
MAX_MERGED_EXPR = 400


def _is_plain_elementwise(spec) -> bool:
    return isinstance(spec, LoopSpec) and spec.n_reduce == 0 and spec.per_element and not spec.reductions


def _expr_size(expr: Expr) -> int:
    return sum(1 for _ in expr.walk())


class _Groups:
    """Which kernels merge: ``members[root]`` lists a group's kernels, the root last."""

    def __init__(self, program: Program):
        self.p = program
        self.g = program.graph
        self.pos = {n: k for k, n in enumerate(program.order)}
        self.consumers: dict[int, list[int]] = {n: [] for n in program.order}
        for n in program.order:
            for i in self.g.node(n)["inputs"]:
                self.consumers.setdefault(i, []).append(n)
        self.spec = {n: dict(self.g.node(n)["attrs"])["spec"] for n in program.order
                     if self.g.node(n)["op"] == "fused"}
        self.group_of: dict[int, int] = {}           # member -> root of its group
        self.members: dict[int, list[int]] = {}
        self.size: dict[int, int] = {}               # root -> expression nodes of the group
        self._decide()

    def _compatible(self, r: int, q: int) -> bool:
        """Does kernel ``r`` read kernel ``q`` only at the element it writes, over the same space?"""
        sr, sq = self.spec.get(r), self.spec.get(q)
        if not (_is_plain_elementwise(sr) and _is_plain_elementwise(sq)):
            return False
        return (sr.space, sr.out_strides, sr.out_shape, sr.dtype) == (sq.space, sq.out_strides, sq.out_shape, sq.dtype)

    def _reads_aligned(self, r: int, bufs) -> bool:
        """Does kernel ``r`` read each of ``bufs`` (if at all) only at the element it writes?"""
        sr, ins = self.spec[r], self.g.node(r)["inputs"]
        return all(ld.offset == 0 and ld.strides == sr.out_strides for ld in sr.loads if ins[ld.input] in bufs)

    def _read_only_later(self, group: list[int], r: int) -> bool:
        """Is every reader of the group's values, outside the group and r, after r in the order?"""
        inside = set(group) | {r}
        return all(c in inside or self.pos[c] > self.pos[r] for m in group for c in self.consumers.get(m, []))

    def _decide(self) -> None:
        for r in self.p.order:
            if not _is_plain_elementwise(self.spec.get(r)):
                continue
            group, size = [], _expr_size(self.spec[r].out)
            for q in dict.fromkeys(self.g.node(r)["inputs"]):
                root = self.group_of.get(q, q)
                if root in group or q in group or not self._compatible(r, q):
                    continue
                candidate = self.members.get(root, [q])
                if q != root or not self._reads_aligned(r, set(candidate)) or not self._read_only_later(candidate, r):
                    continue
                extra = self.size.get(root, _expr_size(self.spec[q].out))
                if size + extra > MAX_MERGED_EXPR:
                    continue
                group += candidate
                size += extra
            if group:
                group = sorted(group, key=self.pos.get) + [r]
                for m in group:
                    self.group_of[m] = r
                self.members[r] = group
                self.size[r] = size

    def needs_output(self, m: int, group: list[int]) -> bool:
        """Is member ``m``'s value read outside its group (by a node, as an output or an update)?"""
        inside = set(group)
        return (any(c not in inside for c in self.consumers.get(m, [])) or m in self.p.outputs
                or any(m == v for _, v in self.p.updates))


def _merged_spec(groups: _Groups, members: list[int], new_of: dict[int, int], outputs: list[int]):
    """The group's LoopSpec (root's value as ``out``, ``outputs`` as extra outputs) and its inputs."""
    g = groups.g
    inputs: list[int] = []
    loads: dict[Load, int] = {}
    value_of: dict[int, Expr] = {}
    for m in members:
        spec = groups.spec[m]
        ins = g.node(m)["inputs"]

        def leaf_for(arg, spec=spec, ins=ins):
            ld = spec.loads[arg.value]
            buf = ins[ld.input]
            if buf in value_of:                      # another member's value, at this element
                return value_of[buf]
            new = new_of[buf]
            if new not in inputs:
                inputs.append(new)
            merged = Load(inputs.index(new), ld.strides, ld.offset)
            return Expr("arg", (), loads.setdefault(merged, len(loads)), arg.dtype)
        value_of[m] = substitute_args(groups.spec[m].out, leaf_for)
    root = groups.spec[members[-1]]
    spec = replace(root, loads=tuple(sorted(loads, key=loads.get)), out=value_of[members[-1]],
                   extra_outs=tuple(value_of[m] for m in outputs))
    return spec, inputs


def merge_multi_output(program: Program) -> Program:
    """Merge chains of same-space elementwise kernels into multi-output kernels (module doc)."""
    groups = _Groups(program)
    if not groups.members:
        return program
    b = Builder(program)
    new_of: dict[int, int] = {}
    user = program.origin or {}
    inputs = set(program.inputs)
    for nid in list(program.inputs) + [n for n in program.order if n not in inputs]:
        if nid in new_of:
            continue
        root = groups.group_of.get(nid)
        if root is not None and root != nid:
            continue                                  # made by its group's kernel, at the root
        d = program.graph.node(nid)
        with b.standing_for(user.get(nid, nid)):
            if root is None:
                new_of[nid] = b.copy(nid, [new_of[i] for i in d["inputs"]])
                continue
            members = groups.members[nid]
            outputs = [m for m in members[:-1] if groups.needs_output(m, members)]
            spec, bufs = _merged_spec(groups, members, new_of, outputs)
            kernel = b.raw("fused", bufs, {"spec": spec}, spec.out_shape, spec.dtype, name=d["name"])
            new_of[nid] = kernel
        for j, m in enumerate(outputs):
            with b.standing_for(user.get(m, m)):
                new_of[m] = b.raw("fused_output", [kernel], {"index": j}, spec.out_shape, spec.dtype,
                                  name=program.graph.node(m)["name"])
    return b.program(new_of, list(b.order))
