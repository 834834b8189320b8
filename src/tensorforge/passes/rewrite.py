"""The machinery every graph pass shares: rebuild a Program node by node into a fresh graph.

A pass never edits a graph in place. ``rebuild(program, rule)`` walks the program's
nodes in order and copies each one into a new Graph; before copying, it offers the
node to ``rule(builder, nid, inputs)``, which may return the id of a replacement
built in the new graph (or None to keep the node as it is). Because the builder
interns nodes on (op, inputs, attrs), equal expressions that a rewrite creates are
merged on the spot.

Leaves are copied faithfully: placeholders keep their call order and names, and
parameters and constants keep THE SAME numpy arrays (compiled updates write
parameters in place). Nodes that a rewrite leaves unused stay in the program until
dead-code elimination removes them, so each pass's effect can be measured alone.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable

import numpy as np

from ..graph import Graph, constant_key, native_byte_order
from ..ops.registry import TensorType, get_op, infer_type
from ..program import Program

__all__ = ["Builder", "rebuild", "Rule"]

LEAF_OPS = ("placeholder", "parameter", "constant")


class Builder:
    """Builds the new graph of a pass, with concrete shapes and the origin of each node."""

    def __init__(self, src: Program):
        self.src = src
        self.graph = Graph(src.graph.name)
        self.shapes: dict[int, tuple] = {}
        self.dtypes: dict[int, str] = {}
        self.origin: dict[int, int] = {}
        self.order: dict[int, None] = {}        # insertion-ordered set: creation order is topological
        self._current: int | None = None        # user node that nodes created now stand for
        self.rewrites = 0                        # how many nodes a rule replaced

    # -- reading the new graph ------------------------------------------------------------
    def op(self, nid: int) -> str:
        return self.graph.node(nid)["op"]

    def inputs(self, nid: int) -> tuple:
        return self.graph.node(nid)["inputs"]

    def attrs(self, nid: int) -> dict:
        return dict(self.graph.node(nid)["attrs"])

    def shape(self, nid: int) -> tuple:
        return self.shapes[nid]

    def dtype(self, nid: int) -> str:
        return self.dtypes[nid]

    def value(self, nid: int) -> np.ndarray | None:
        """The array of a constant node, else None."""
        return self.graph.values[nid] if self.op(nid) == "constant" else None

    # -- adding nodes ---------------------------------------------------------------------
    @contextmanager
    def standing_for(self, user_nid: int):
        """Nodes created inside stand for (and are reported as) ``user_nid``."""
        saved, self._current = self._current, user_nid
        try:
            yield
        finally:
            self._current = saved

    def _record(self, nid: int, shape, dtype) -> int:
        if nid not in self.shapes:
            self.shapes[nid] = tuple(None if d is None else int(d) for d in shape)  # None: unused input
            self.dtypes[nid] = str(np.dtype(dtype))
            if self._current is not None:
                self.origin[nid] = self._current
            self.order[nid] = None
        return nid

    def raw(self, op: str, inputs, attrs: dict, shape, dtype, name=None) -> int:
        """Add a node with a known type (interned, except placeholders and parameters)."""
        leaf = op in ("placeholder", "parameter")
        nid = self.graph.add_node(op, tuple(inputs), attrs, tuple(shape), dtype, name=name, intern=not leaf)
        return self._record(nid, shape, dtype)

    def apply(self, op: str, inputs, **attrs) -> int:
        """Add an op node, inferring its concrete type with the op's own type rule."""
        types = [TensorType(self.shapes[i], self.dtypes[i]) for i in inputs]
        shape, dtype = infer_type(get_op(op), types, attrs)
        return self.raw(op, inputs, attrs, shape, dtype)

    def constant(self, array: np.ndarray) -> int:
        """A new constant node holding (a read-only copy of) ``array``, keyed by its content
        (see graph.constant_key), so it merges only with an equal constant."""
        arr = native_byte_order(np.array(array, order="C"))   # (ascontiguousarray would make 0-d arrays 1-d)
        arr.setflags(write=False)
        key = constant_key(arr)
        name = f"const_{arr.item():g}" if arr.size == 1 and arr.dtype.kind in "fiu" else None
        nid = self.graph.add_node("constant", (), key, arr.shape, arr.dtype.name, name=name)
        self.graph.values.setdefault(nid, arr)
        return self._record(nid, arr.shape, arr.dtype.name)

    def copy(self, old: int, inputs) -> int:
        """The source node ``old`` on new ``inputs``, unchanged otherwise."""
        src = self.src
        d = src.graph.node(old)
        shape = src.shapes.get(old, d["shape"])
        dtype = src.dtypes.get(old, d["dtype"])
        nid = self.raw(d["op"], inputs, dict(d["attrs"]), shape, dtype, name=d["name"])
        if d["op"] in ("placeholder", "parameter"):
            self.graph.register_name(d["name"], nid)
        if d["op"] in ("parameter", "constant"):
            self.graph.values.setdefault(nid, src.graph.values[old])   # the same array object
        return nid

    # -- finishing ------------------------------------------------------------------------
    def program(self, new_of: dict[int, int], order=None) -> Program:
        src = self.src
        prog = Program(self.graph, [new_of[i] for i in src.inputs], [new_of[o] for o in src.outputs],
                       [(new_of[p], new_of[n]) for p, n in src.updates],
                       list(order if order is not None else self.order),
                       origin=dict(self.origin), source=src.source or src.graph, pass_log=list(src.pass_log))
        prog.shapes = {n: self.shapes[n] for n in prog.order}
        prog.dtypes = {n: self.dtypes[n] for n in prog.order}
        return prog


Rule = Callable[[Builder, int, list], "int | None"]


def rebuild(program: Program, rule: Rule | None = None, keep: set | None = None) -> tuple[Program, int]:
    """Copy ``program`` into a fresh graph, offering every non-leaf node to ``rule``.

    ``keep``: if given, only these source nodes are copied (dead-code elimination).
    Returns the new program and the number of nodes that ``rule`` replaced.
    """
    b = Builder(program)
    new_of: dict[int, int] = {}
    user = program.origin or {}
    inputs = set(program.inputs)
    for nid in list(program.inputs) + [n for n in program.order if n not in inputs]:
        if nid in new_of or (keep is not None and nid not in keep and nid not in inputs):
            continue
        d = program.graph.node(nid)
        ins = [new_of[i] for i in d["inputs"]]
        with b.standing_for(user.get(nid, nid)):
            new = rule(b, nid, ins) if rule is not None and d["op"] not in ("placeholder", "parameter") else None
            if new is None:
                new = b.copy(nid, ins)
            else:
                b.rewrites += 1
                _check_same_type(program, nid, b, new)
        new_of[nid] = new
    # the input placeholders stay in the graph even when unused (the call binds them), but like
    # specialise(), the order lists only the nodes that the program runs through
    listed = set(program.order) if keep is None else set(program.order) & keep
    unused = {new_of[i] for i in program.inputs if i not in listed}
    return b.program(new_of, [n for n in b.order if n not in unused]), b.rewrites


def _check_same_type(program: Program, old: int, b: Builder, new: int) -> None:
    """A rewrite must keep a node's shape and dtype: anything else is a bug in a rule."""
    want = (tuple(program.shapes[old]), program.dtypes[old])
    got = (b.shapes[new], b.dtypes[new])
    if want != got:
        raise AssertionError(f"pass rewrote {program.describe_node(old)} of type {want} into a node of "
                             f"type {got}")


def size_of(shape) -> int:
    return math.prod(shape)
