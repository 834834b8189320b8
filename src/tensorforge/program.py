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
    # set by detach() and the passes: the node id in the user's graph that each node stands for
    origin: dict[int, int] = field(default_factory=dict)
    source: Graph | None = None             # the user's graph (None: ``graph`` is the user's graph)
    pass_log: list = field(default_factory=list)   # (pass name, nodes before, nodes after, seconds)

    def node(self, nid: int) -> dict:
        return self.graph.node(nid)

    def describe_node(self, nid: int) -> str:
        d = self.node(nid)
        ins = ", ".join(f"%{i} {format_shape(self.shapes.get(i, self.graph.node(i)['shape']))}"
                        for i in d["inputs"])
        where = f"; node %{self.origin[nid]} of the user's graph" if nid in self.origin else ""
        return f"node %{nid} ({d['name']!r}, op {d['op']}{where}) with inputs [{ins}]"


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
                raise ShapeError(f"with the given input shapes ({_inputs_feeding(graph, nid, input_types)}), "
                                 f"{prog.describe_node(nid)} fails: {e}") from None
        prog.shapes[nid] = tuple(int(s) for s in shape)
        prog.dtypes[nid] = str(np.dtype(dtype))
    return prog


def _inputs_feeding(graph: Graph, nid: int, input_types) -> str:
    """The placeholders a failing node depends on, with the shapes given in this call."""
    import networkx as nx
    feeding = [a for a in sorted(nx.ancestors(graph.nx, nid)) if a in input_types]
    return ", ".join(f"{graph.node(a)['name']}={format_shape(input_types[a][0])}" for a in feeding)


def detach(program: Program) -> Program:
    """A private copy of ``program`` that passes may rewrite without touching the user's graph.

    The copy is a fresh Graph holding only the program's nodes (and its input placeholders, in
    call order), each with the same op, attrs, dtype and name, and its concrete shape as its
    static shape. Parameters and constants share THE SAME numpy arrays as the user's graph:
    compiled updates write parameters in place, which is how they reach the user's tensors.
    ``origin`` maps each new node id to the user's node id.
    """
    g = Graph(program.graph.name)
    new_of: dict[int, int] = {}
    origin: dict[int, int] = {}
    user_origin = program.origin or {}
    shapes = {**program.shapes}
    dtypes = {**program.dtypes}
    for nid in list(program.inputs) + [n for n in program.order if n not in set(program.inputs)]:
        if nid in new_of:
            continue
        d = program.graph.node(nid)
        shape = tuple(shapes.get(nid, d["shape"]))
        dtype = dtypes.get(nid, d["dtype"])
        leaf = d["op"] in ("placeholder", "parameter")
        new = g.add_node(d["op"], tuple(new_of[i] for i in d["inputs"]), dict(d["attrs"]), shape, dtype,
                         name=d["name"], intern=not leaf)
        if leaf:
            g.register_name(d["name"], new)
        if d["op"] in ("parameter", "constant"):
            g.values[new] = program.graph.values[nid]     # the same array object, never a copy
        new_of[nid] = new
        origin[new] = user_origin.get(nid, nid)
    prog = Program(g, [new_of[i] for i in program.inputs], [new_of[o] for o in program.outputs],
                   [(new_of[p], new_of[n]) for p, n in program.updates],
                   [new_of[n] for n in program.order], origin=origin,
                   source=program.source or program.graph, pass_log=list(program.pass_log))
    order = list(dict.fromkeys(prog.order))          # interning may have merged equal nodes
    prog.order = order
    for nid in order:
        prog.shapes[nid] = g.node(nid)["shape"]
        prog.dtypes[nid] = g.node(nid)["dtype"]
    return prog


def fingerprint(program: Program) -> str:
    """A stable hash of everything a compiled step depends on: every node's op, attributes,
    inputs, concrete shape and dtype, constant values, and the inputs/outputs/updates.
    Parameter *values* are not part of it (they are read at run time)."""
    import hashlib
    h = hashlib.sha256()
    g = program.graph
    for nid in program.order:
        d = g.node(nid)
        h.update(repr((nid, d["op"], d["inputs"], d["attrs"] if d["op"] != "constant" else (),
                       tuple(program.shapes[nid]), program.dtypes[nid])).encode())
        if d["op"] == "constant":
            h.update(np.ascontiguousarray(g.values[nid]).tobytes())
        elif d["op"] in ("placeholder", "parameter"):
            h.update(d["name"].encode("utf-8", "surrogatepass"))
    h.update(repr((program.inputs, program.outputs, program.updates)).encode())
    return h.hexdigest()


# ops whose output elements are input elements, moved or repeated: a label that reaches an
# index-consuming op through them is one of the leaf's own values
VALUE_MOVING_OPS = ("reshape", "reshape_like", "expand_dims", "squeeze", "transpose",
                    "broadcast_to", "broadcast_like", "getitem", "concat")
# op -> (position of its index operand, attribute holding the number of classes)
INDEX_CONSUMING_OPS = {"one_hot": (0, "depth"), "index_in_range": (0, "depth")}


@dataclass(frozen=True)
class LabelCheck:
    """Leaf ``node`` feeds the index operand of ``op``, so its values must lie in [low, depth)
    or equal ``ignore`` (index_in_range's ``low`` and ``ignore`` attributes: negative indices
    that wrap, a loss's ignore_index)."""
    node: int
    depth: int
    op: str
    low: int = 0
    ignore: int | None = None

    def bad(self, arr: np.ndarray) -> np.ndarray:
        """Mask of the values of ``arr`` that fail this check."""
        bad = (arr < self.low) | (arr >= self.depth)
        if self.ignore is not None:
            bad &= arr != self.ignore
        return bad

    def describe(self) -> str:
        allowed = f" (or ignore_index {self.ignore})" if self.ignore is not None else ""
        return f"[{self.low}, {self.depth}){allowed}"


def label_checks(graph: Graph, outputs, updates) -> list[LabelCheck]:
    """The leaves (placeholders, parameters, constants) whose values are used as class
    indices by an index-consuming op, directly or through ops that only move values.

    Compiled code cannot raise (an out-of-range label gives a NaN one-hot row), so
    tg.compile checks these leaves in Python before each call, for the same clear error on
    every backend. Labels computed by other ops are not traced: the interpreter rejects
    those, compiled code poisons the row with NaN. A leaf checked with the same ``low`` and
    ``ignore`` by several ops keeps the strictest (smallest) depth."""
    strictest: dict[tuple, LabelCheck] = {}
    for nid in needed_nodes(graph, outputs, updates):
        d = graph.node(nid)
        if d["op"] not in INDEX_CONSUMING_OPS:
            continue
        pos, attr = INDEX_CONSUMING_OPS[d["op"]]
        attrs = dict(d["attrs"])
        depth, low, ignore = int(attrs[attr]), int(attrs.get("low", 0)), attrs.get("ignore")
        for leaf in _value_sources(graph, d["inputs"][pos]):
            key = (leaf, low, ignore)
            old = strictest.get(key)
            if old is None or depth < old.depth:
                strictest[key] = LabelCheck(leaf, depth, d["op"], low, ignore)
    return list(strictest.values())


def _value_sources(graph: Graph, nid: int) -> set[int]:
    """The leaves whose values ``nid`` consists of, if it only moves values; else empty."""
    out, todo = set(), [nid]
    while todo:
        cur = todo.pop()
        d = graph.node(cur)
        if d["op"] in ("placeholder", "parameter", "constant"):
            out.add(cur)
        elif d["op"] in VALUE_MOVING_OPS:
            data_inputs = d["inputs"] if d["op"] == "concat" else d["inputs"][:1]
            todo.extend(data_inputs)
    return out
