"""Graphviz DOT text for graphs, tensors and compiled functions.

Node kinds are styled apart so a training graph reads at a glance:

    placeholder   the graph's inputs: light-blue "input" houses
    parameter     trainable parameters: gold boxes (non-trainable state: khaki boxes)
    constant      small grey text
    gradient      nodes added by ``tg.grad`` (the backward pass): salmon
    update        nodes built *on* gradients that are not gradients themselves (the optimizer's
                  update rule, e.g. Adam's moments): light green
    op            every other (forward) op: white ellipses

A fused kernel (``fused=True``) is labelled with the ops it computes ("fused kernel:" then
"mul, add, exp" and "reduce: sum"), read off its loop spec.

Rule for gradient nodes: ``tg.grad`` records the ids of the nodes it creates in
``graph.grad_nodes``; nodes that existed before (interned, shared with the forward
pass) stay forward nodes. Graphs that carry no record (a loaded file) fall back to
ops whose name ends in ``_grad``. Labels show op (or name), shape and dtype and are
escaped, so any name is safe. Past ``max_nodes`` the nodes farthest from the
outputs are collapsed into one summary node.
"""
from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence, TypedDict, Union

from ..graph import Graph, Tensor, format_shape

if TYPE_CHECKING:
    from ..compile import CompiledFunction
    from ..program import Program

#: What the exporters draw: a Graph, a Tensor or list of Tensors (their sub-graph), or a compiled function.
Drawable = Union[Graph, Tensor, Sequence[Tensor], "CompiledFunction[Any]"]
#: Shapes a compiled specialisation bound, by node id (None: the graph's declared shapes).
_Shapes = Mapping[int, Sequence[Union[int, None]]]


class GraphView(TypedDict):
    """What ``graph_view`` hands a renderer."""
    graph: Graph
    nodes: list[int]
    outputs: list[int]
    kinds: dict[int, str]
    labels: dict[int, str]
    edges: list[tuple[int, int]]
    dropped: int
    summary_targets: list[int]
    program: Program | None

__all__ = ["to_dot", "gradient_nodes", "node_kinds", "resolve", "escape", "fused_ops", "fused_label"]

STYLES = {
    "placeholder": 'shape=invhouse, style=filled, fillcolor="#cfe8ff"',
    "parameter": 'shape=box, style="filled,rounded", fillcolor="#ffd966"',
    "state": 'shape=box, style="filled,rounded", fillcolor="#f0e6a8"',
    "constant": 'shape=plaintext, fontsize=9, fontcolor="#808080"',
    "gradient": 'shape=ellipse, style=filled, fillcolor="#f4a6a0"',
    "update": 'shape=ellipse, style=filled, fillcolor="#b6e3b0"',
    "fused": 'shape=box3d, style=filled, fillcolor="#d9c8f0"',
    "op": 'shape=ellipse',
}
# the same palette for the matplotlib drawing (draw.py)
COLORS = {"placeholder": "#cfe8ff", "parameter": "#ffd966", "state": "#f0e6a8", "constant": "#eeeeee",
          "gradient": "#f4a6a0", "update": "#b6e3b0", "fused": "#d9c8f0", "op": "#ffffff", "summary": "#dddddd"}


def escape(text: str) -> str:
    """Text for a double-quoted DOT string: backslashes and quotes escaped, newlines as \\n."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def gradient_nodes(graph: Graph) -> set[int]:
    """Ids of the nodes that belong to a backward pass (see the module docstring for the rule)."""
    recorded = set(getattr(graph, "grad_nodes", ()) or ())
    recorded &= set(graph.nx.nodes)
    if recorded:
        return recorded
    return {n for n, d in graph.nx.nodes(data=True) if str(d["op"]).endswith("_grad")}


def node_kinds(graph: Graph, nodes: Iterable[int]) -> dict[int, str]:
    """The style kind of each of ``nodes``."""
    grads = gradient_nodes(graph)
    after_grads: set[int] = set()
    for n in graph.topological_order():
        if n in grads or any(i in grads or i in after_grads for i in graph.node(n)["inputs"]):
            after_grads.add(n)
    kinds: dict[int, str] = {}
    for n in nodes:
        d = graph.node(n)
        op = d["op"]
        if op == "parameter":
            kinds[n] = "parameter" if dict(d["attrs"]).get("trainable", True) else "state"
        elif op in ("placeholder", "constant", "fused"):
            kinds[n] = op
        elif op in ("matmul_epilogue", "conv2d_epilogue", "conv2d_grad_input_epilogue"):
            # a product or a convolution and the elementwise kernel folded into it
            kinds[n] = "fused"
        elif n in grads:
            kinds[n] = "gradient"
        elif n in after_grads:
            kinds[n] = "update"
        else:
            kinds[n] = "op"
    return kinds


def node_label(graph: Graph, nid: int, shapes: _Shapes | None = None) -> str:
    """Plain (unescaped) multi-line label: op or name, then shape and dtype."""
    d = graph.node(nid)
    shape = (shapes or {}).get(nid, d["shape"])
    typ = f"{format_shape(shape)} {d['dtype']}"
    if d["op"] in ("placeholder", "parameter"):
        return f"{d['name']}\n{typ}"
    if d["op"] == "constant":
        val = graph.values.get(nid)
        if val is not None and val.size == 1:
            return f"{val.reshape(()).item():.4g}"
        return f"const\n{typ}"
    return f"{d['op']}\n{typ}"


def fused_ops(spec: Any) -> tuple[list[str], list[str]]:
    """(elementwise ops, reductions) a fused kernel computes, each in first-use order: read off its
    loop spec's scalar expressions (the kernel IR keeps no list of the graph nodes it replaced)."""
    ops: list[str] = []
    reductions: list[str] = []
    exprs = [r.expr for r in getattr(spec, "reductions", ())] + ([spec.out] if hasattr(spec, "out") else [])
    for expr in exprs:
        for e in expr.walk():
            if e.op not in ("arg", "stage", "const") and e.op not in ops:
                ops.append(e.op)
    for r in getattr(spec, "reductions", ()):
        if r.op not in reductions:
            reductions.append(r.op)
    return ops, reductions


def _wrap(words: list[str], width: int = 28) -> list[str]:
    lines: list[str] = []
    line = ""
    for w in words:
        if line and len(line) + 2 + len(w) > width:
            lines.append(line + ",")
            line = w
        else:
            line = f"{line}, {w}" if line else w
    return lines + ([line] if line else [])


def fused_label(graph: Graph, nid: int, shapes: _Shapes | None) -> str:
    """A fused kernel's label: the ops it holds (reductions named as such), then shape and dtype."""
    d = graph.node(nid)
    spec = dict(d["attrs"]).get("spec")
    ops, reductions = fused_ops(spec) if spec is not None else ([], [])
    lines = ["fused kernel:"] + _wrap(ops) if ops else ["fused kernel"]
    if reductions:
        lines.append("reduce: " + ", ".join(reductions))
    lines.append(f"{format_shape((shapes or {}).get(nid, d['shape']))} {d['dtype']}")
    return "\n".join(lines)


def resolve(obj: Drawable, backward: bool = True,
            fused: bool = False) -> tuple[Graph, list[int], list[int], _Shapes | None, Program | None]:
    """(graph, node ids to show, output ids, shapes or None, fused program or None) for ``obj``."""
    from ..compile import CompiledFunction
    if isinstance(obj, CompiledFunction):
        if fused:
            if not obj._cache:
                raise ValueError("to_dot(fused=True): the compiled function has not run yet, so it has "
                                 "no specialisation to draw; call it once first")
            program = list(obj._cache.values())[-1].program
            if not any(program.graph.node(n)["op"] == "fused" for n in program.order) and obj.passes:
                # a disk-cache hit keeps the program from before the passes: run them (on a copy) again
                from ..passes import run_passes
                program = run_passes(program, obj.passes)
            return program.graph, list(program.order), list(program.outputs), program.shapes, program
        if obj.graph is None:      # no inputs, outputs or updates
            raise ValueError("to_dot: the compiled function has no graph to draw")
        roots = [t.id for t in obj.outputs] + [t.id for pair in obj.updates for t in pair]
        return obj.graph, obj.graph.topological_order(roots), [t.id for t in obj.outputs], None, None
    if isinstance(obj, Graph):
        nodes = obj.topological_order()
        outputs = [n for n in nodes if obj.nx.out_degree(n) == 0]
    else:
        ts = [obj] if isinstance(obj, Tensor) else list(obj)
        if not ts or not all(isinstance(t, Tensor) for t in ts):
            raise TypeError("to_dot: expected a Graph, a Tensor, a list of Tensors or a CompiledFunction, "
                            f"got {type(obj).__name__}")
        graph = ts[0].graph
        if any(t.graph is not graph for t in ts):
            raise ValueError("to_dot: the tensors come from different graphs")
        obj, outputs = graph, [t.id for t in ts]
        nodes = graph.topological_order(outputs)
    if not backward:
        grads = gradient_nodes(obj)
        kinds = node_kinds(obj, nodes)
        nodes = [n for n in nodes if n not in grads and kinds[n] != "update"]
        keep = set(nodes)
        # leaves used only by the backward pass (e.g. its constants) are noise without it
        nodes = [n for n in nodes if obj.nx.out_degree(n) == 0 or any(s in keep for s in obj.nx.successors(n))
                 or obj.node(n)["op"] not in ("constant",)]
        outputs = [n for n in outputs if n in set(nodes)]
    return obj, nodes, outputs, None, None


def limit_nodes(graph: Graph, nodes: list[int], outputs: list[int],
                max_nodes: int | None) -> tuple[list[int], int]:
    """Keep the ``max_nodes`` nodes nearest the outputs (breadth-first backwards); returns
    (kept nodes in the original order, number dropped)."""
    if max_nodes is None or len(nodes) <= max_nodes:
        return nodes, 0
    allowed = set(nodes)
    seen: list[int] = []
    queue = deque(o for o in outputs if o in allowed)
    visited = set(queue)
    # sinks that are not outputs still deserve a place before deep ancestors
    for n in nodes[::-1]:
        if n not in visited and graph.nx.out_degree(n) == 0:
            visited.add(n)
            queue.append(n)
    while queue and len(seen) < max_nodes:
        n = queue.popleft()
        seen.append(n)
        for i in graph.node(n)["inputs"]:
            if i in allowed and i not in visited:
                visited.add(i)
                queue.append(i)
    kept = set(seen)
    return [n for n in nodes if n in kept], len(nodes) - len(kept)


def graph_view(obj: Drawable, backward: bool = True, fused: bool = False,
               max_nodes: int | None = 300) -> GraphView:
    """Everything a renderer needs: nodes, labels, kinds, edges, summary, fused clusters."""
    graph, nodes, outputs, shapes, program = resolve(obj, backward, fused)
    nodes, dropped = limit_nodes(graph, nodes, outputs, max_nodes)
    kept = set(nodes)
    kinds = node_kinds(graph, nodes)
    labels = {n: node_label(graph, n, shapes) for n in nodes}
    edges: list[tuple[int, int]] = []
    summary_edges: list[int] = []
    for n in nodes:
        for i in graph.node(n)["inputs"]:
            (edges.append((i, n)) if i in kept else summary_edges.append(n))
    if program is not None:
        for n in nodes:
            if graph.node(n)["op"] == "fused":
                labels[n] = fused_label(graph, n, shapes)
    return {"graph": graph, "nodes": nodes, "outputs": outputs, "kinds": kinds, "labels": labels,
            "edges": list(dict.fromkeys(edges)), "dropped": dropped,
            "summary_targets": list(dict.fromkeys(summary_edges)), "program": program}


def to_dot(obj: Drawable, backward: bool = True, fused: bool = False, max_nodes: int | None = 300) -> str:
    """DOT text for a Graph, a Tensor or list of Tensors (their sub-graph), or a CompiledFunction.

    backward=False hides gradient and update nodes; fused=True draws a compiled function's latest
    specialisation after the passes, one cluster per fused kernel; max_nodes bounds the picture.
    """
    view = graph_view(obj, backward, fused, max_nodes)
    graph = view["graph"]
    lines = [f'digraph "{escape(graph.name)}" {{',
             '  rankdir=TB; node [fontname="Helvetica", fontsize=10]; edge [color="#555555", arrowsize=0.6];']
    outputs = set(view["outputs"])
    for k, n in enumerate(view["nodes"]):
        style = STYLES[view["kinds"][n]]
        extra = ", penwidth=2.5" if n in outputs else ""
        label = escape(view["labels"][n])
        line = f'  n{n} [label="{label}", {style}{extra}];'
        if view["kinds"][n] == "fused":
            line = f'  subgraph cluster_{k} {{ label="kernel {k}"; style=dashed; color="#8e6bbf";\n  {line}\n  }}'
        lines.append(line)
    if view["dropped"]:
        summary = escape(f"... {view['dropped']} more nodes")
        lines.append(f'  summary [label="{summary}", shape=note, '
                     f'style=filled, fillcolor="#dddddd"];')
        lines += [f"  summary -> n{n} [style=dashed];" for n in view["summary_targets"]]
    lines += [f"  n{a} -> n{b};" for a, b in view["edges"]]
    lines.append("}")
    return "\n".join(lines) + "\n"
