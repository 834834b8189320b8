"""A Program: the slice of a graph that one compiled function runs, with every
shape made concrete for one combination of input shapes.

It is what ``tg.compile`` hands to a backend (and, later, to the passes): the
graph, the input/output/update node ids, a topological order of the nodes
needed, and the concrete shape and dtype of each of them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .graph import Graph, format_shape
from .ops.registry import ShapeError, TensorType, get_op, infer_type


@dataclass
class Program:
    graph: Graph
    inputs: list[int]                       # placeholder ids, in call order
    outputs: list[int]
    updates: list[tuple[int, int]]          # (parameter id, id of its new value)
    order: list[int]                        # every needed node, dependencies first
    shapes: dict[int, tuple] = field(default_factory=dict)
    dtypes: dict[int, str] = field(default_factory=dict)

    def node(self, nid: int) -> dict:
        return self.graph.node(nid)

    def describe_node(self, nid: int) -> str:
        d = self.node(nid)
        ins = ", ".join(f"%{i} {format_shape(self.shapes.get(i, self.graph.node(i)['shape']))}"
                        for i in d["inputs"])
        return f"node %{nid} ({d['name']!r}, op {d['op']}) with inputs [{ins}]"


def needed_nodes(graph: Graph, outputs, updates) -> list[int]:
    roots = list(outputs) + [n for pair in updates for n in pair]
    return graph.topological_order(roots)


def specialise(graph: Graph, inputs, outputs, updates, input_types: dict[int, tuple]) -> Program:
    """Infer concrete shapes for every needed node, given the shapes of the placeholders.

    Shape errors are raised here, before anything runs, naming the node and its inputs.
    """
    order = needed_nodes(graph, outputs, updates)
    prog = Program(graph, list(inputs), list(outputs), list(updates), order)
    for nid in order:
        d = graph.node(nid)
        op = d["op"]
        if op == "placeholder":
            if nid not in input_types:
                raise ValueError(f"the outputs depend on placeholder {d['name']!r}, which is not among "
                                 f"the compiled function's inputs")
            shape, dtype = input_types[nid]
        elif op in ("parameter", "constant"):
            arr = graph.values[nid]
            shape, dtype = arr.shape, arr.dtype.name
        else:
            types = [TensorType(prog.shapes[i], prog.dtypes[i]) for i in d["inputs"]]
            try:
                shape, dtype = infer_type(get_op(op), types, dict(d["attrs"]))
            except ShapeError as e:
                raise ShapeError(f"with the given input shapes, {prog.describe_node(nid)} fails: {e}") from None
        prog.shapes[nid] = tuple(int(s) for s in shape)
        prog.dtypes[nid] = str(np.dtype(dtype))
    return prog
