"""``tg.export.to_html``: one self-contained HTML page that shows a graph interactively.

The page needs nothing but a browser: no server, no network. It inlines

    viewer/vendor/dagre.min.js  the layered DAG layout (dagre, MIT: see viewer/vendor/LICENSE.dagre)
    viewer/viewer.js, .css      our renderer: SVG, zoom and pan, search, tooltips, legend, heat colours
    the graph as JSON           in a ``<script type="application/json">`` block

What it shows (the same rules as ``to_dot``, see dot.py): node kinds and the phase of each node
(forward, backward, optimizer); for a compiled function that has run, its latest specialisation
after the passes, each fused kernel a box listing the ops of the user's graph it computes; with
``profile=`` (a ``tensorforge.profiler.Profile``) each kernel's time per step as a heat colour.

Names are user data: the JSON escapes ``<``, ``>`` and ``&`` (so no ``</script>`` can close the
block early) and the viewer builds its DOM with ``textContent`` only. After rendering, the page
fills ``#tf-status`` (``data-state="rendered"``, ``data-nodes``, ``data-errors``): the tests read
it from headless Chromium's ``--dump-dom``.
"""
from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, overload

from .._fileio import atomic_write
from .._typing import PathLike
from ..graph import Graph, format_shape
from .dot import COLORS, Drawable, _Shapes, gradient_nodes, limit_nodes, node_kinds, node_label, resolve

if TYPE_CHECKING:
    from ..profiler import Profile
    from ..program import Program

__all__ = ["to_html", "repr_html", "graph_data"]

# dagre (crossing minimisation, routed edges) lays out a few hundred nodes in about a second, but
# its cost grows with the long edges of training graphs (1,400 nodes: over a minute); past this
# many nodes the viewer uses its own layered layout (viewer/layers.js), which takes well under a second
DAGRE_MAX_NODES = 300
LAYOUTS = ("auto", "dagre", "layers")
MAX_LISTED_MEMBERS = 400          # a fused kernel holds at most passes.fusion.MAX_FUSED_OPS ops
# "k12_fused: loop[...]", "k3_matmul_epilogue_mt: matmul_epilogue(...)" (``_mt``: split across threads)
_KERNEL_LABEL = re.compile(r"^k\d+_(\w+?)(?:_mt)?: (.*)$", re.S)
# nodes that are kernels of their own and list the user's ops they compute
KERNEL_OPS = ("fused", "matmul_epilogue", "conv2d_epilogue", "conv2d_grad_input_epilogue")
_INTERP_LABEL = re.compile(r"^%(\d+) (\S+) ")


@overload
def to_html(obj: Drawable, path: None = None, *, profile: Profile | None = None, backward: bool = True,
            fused: bool | None = None, max_nodes: int = 1500, title: str | None = None,
            layout: str = "auto") -> str: ...
@overload
def to_html(obj: Drawable, path: PathLike, *, profile: Profile | None = None, backward: bool = True,
            fused: bool | None = None, max_nodes: int = 1500, title: str | None = None,
            layout: str = "auto") -> Path: ...
def to_html(obj: Drawable, path: PathLike | None = None, *, profile: Profile | None = None, backward: bool = True,
            fused: bool | None = None, max_nodes: int = 1500, title: str | None = None,
            layout: str = "auto") -> str | Path:
    """An interactive page for a Graph, a Tensor or list of Tensors (their sub-graph), or a
    CompiledFunction: the HTML text, or, with ``path``, the file written (atomically) and its Path.

    fused: draw a compiled function's latest specialisation after the passes (fused kernels as
    boxes listing their ops); None: when it has been called. profile: a ``Profile`` from
    ``fn.profile(...)``, shown as heat colours and a kernel table. backward=False hides the
    gradient and optimizer nodes; past ``max_nodes`` the nodes farthest from the outputs are
    summarised in one node. layout: "dagre" (routed edges, slow past a few hundred nodes),
    "layers" (fast) or "auto" (dagre up to DAGRE_MAX_NODES nodes)."""
    page = render_page(graph_data(obj, profile=profile, backward=backward, fused=fused,
                                  max_nodes=max_nodes, title=title, layout=layout))
    if path is None:
        return page
    return atomic_write(Path(path), page.encode("utf-8"))


def repr_html(obj: Drawable, max_nodes: int = 400, height: int = 560) -> str | None:
    """What ``_repr_html_`` of Graph, Tensor and CompiledFunction returns: the page in a sandboxed
    iframe (its own document, so several outputs in one notebook never share element ids).
    None (Jupyter then shows the plain repr) if the graph cannot be drawn."""
    try:
        page = to_html(obj, max_nodes=max_nodes)
    except Exception:  # noqa: BLE001 - a display hook must never raise into the notebook
        return None
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" sandbox="allow-scripts" '
            f'style="width:100%;height:{int(height)}px;border:1px solid #ccc" '
            f'title="tensorforge graph viewer"></iframe>')


# ---- the data the page draws ----------------------------------------------------------------

def graph_data(obj: Drawable, *, profile: Profile | None = None, backward: bool = True, fused: bool | None = None,
               max_nodes: int = 1500, title: str | None = None, layout: str = "auto") -> dict[str, Any]:
    """The JSON-ready description of everything the viewer draws."""
    if layout not in LAYOUTS:
        raise ValueError(f"to_html: layout must be one of {', '.join(map(repr, LAYOUTS))}, got {layout!r}")
    if not isinstance(max_nodes, int) or max_nodes < 1:
        raise ValueError(f"to_html: max_nodes must be an int >= 1, got {max_nodes!r}")
    if fused is None:
        fused = _has_run(obj)
    graph, nodes, outputs, shapes, program = _resolve(obj, backward, fused)
    user = (program.source or program.graph) if program is not None else graph
    # the node of the user's graph that each drawn node stands for (in a program: its origin)
    user_id: Callable[[int], int | None] = (program.origin or {}).get if program is not None else (lambda n: n)
    phases = _phases(user, [user_id(n) for n in nodes])
    if program is not None and not backward:      # (resolve filters only the user's graph)
        nodes = [n for n in nodes if phases.get(user_id(n), "forward") == "forward"]
        outputs = [n for n in outputs if n in set(nodes)]
    nodes, dropped = limit_nodes(graph, nodes, outputs, max_nodes)
    kinds = node_kinds(graph, nodes)
    times, unmatched = match_profile(profile, graph, nodes, program)
    out_set, kept = set(outputs), set(nodes)
    kernel_no = {n: k for k, n in enumerate(n for n in nodes if graph.node(n)["op"] in KERNEL_OPS)}
    items: list[dict[str, Any]] = []
    fused_context: dict[str, Any] = {}
    for n in nodes:
        d = graph.node(n)
        shape = (shapes or {}).get(n, d["shape"])
        item: dict[str, Any] = {
                "id": n, "op": d["op"], "name": d["name"], "shape": format_shape(shape), "dtype": d["dtype"],
                "kind": kinds[n], "phase": phases.get(user_id(n), "forward"),
                "label": node_label(graph, n, shapes).split("\n"), "output": n in out_set}
        if n in times:
            item["seconds"] = times[n]
        if d["op"] in KERNEL_OPS and program is not None:
            item.update(_fused_details(program, n, kernel_no[n], fused_context))
        items.append(item)
    edges = list(dict.fromkeys((i, n) for n in nodes for i in graph.node(n)["inputs"] if i in kept))
    summary_targets = list(dict.fromkeys(n for n in nodes for i in graph.node(n)["inputs"] if i not in kept))
    title = str(title or _default_title(obj, graph, program))
    title = title.encode("utf-8", "replace").decode("utf-8")      # a lone surrogate cannot be written out
    return {"title": title, "nodes": items, "edges": edges,
            "dropped": dropped, "summary_targets": summary_targets if dropped else [],
            "colors": COLORS, "fused_view": program is not None, "layout": layout,
            "dagre_max_nodes": DAGRE_MAX_NODES,
            "profile": _profile_summary(profile, unmatched) if profile is not None else None}


def _resolve(obj: Drawable, backward: bool,
             fused: bool) -> tuple[Graph, list[int], list[int], _Shapes | None, Program | None]:
    """dot.resolve, except that a compiled function drawn before the passes is drawn as the
    sub-graph of its outputs and new parameter values (its updates hold Tensors, not node ids)."""
    from ..compile import CompiledFunction
    if isinstance(obj, CompiledFunction) and fused and not obj._cache:
        raise ValueError("to_html(fused=True): the compiled function has not run yet, so it has no fused "
                         "program to draw; call it once first (or leave fused=None)")
    if isinstance(obj, CompiledFunction) and not fused:
        tensors = list(obj.outputs) + [new for _, new in obj.updates]
        if not tensors:
            raise ValueError("to_html: the compiled function has no outputs and no updates to draw")
        graph, nodes, _, shapes, program = resolve(tensors, backward, False)
        outputs = [t.id for t in obj.outputs if t.id in set(nodes)]
        return graph, nodes, outputs, shapes, program
    return resolve(obj, backward, fused)


def _phases(graph: Graph, nodes: Sequence[int | None]) -> dict[int | None, str]:
    """forward / backward / optimizer of each of ``nodes`` (of the user's graph): dot.py's rule for
    gradient and update nodes, applied to every node (a constant that tg.grad made is backward)."""
    grads = gradient_nodes(graph)
    after: set[int] = set()
    for n in graph.topological_order():
        if n in grads or any(i in grads or i in after for i in graph.node(n)["inputs"]):
            after.add(n)
    return {n: "backward" if n in grads else "optimizer" if n in after else "forward"
            for n in nodes if n is not None and n in graph.nx}


def _has_run(obj: Drawable) -> bool:
    from ..compile import CompiledFunction
    return isinstance(obj, CompiledFunction) and bool(obj._cache)


def _default_title(obj: Drawable, graph: Graph, program: Program | None) -> str:
    from ..compile import CompiledFunction
    if isinstance(obj, CompiledFunction):
        where = "after the passes" if program is not None else "before compiling"
        return f"{obj.name} ({obj.backend.name}, {where})"
    return graph.name


def fused_members(program: Program, nid: int, elsewhere: set[int] | None = None,
                  rank: dict[int, int] | None = None) -> list[int]:
    """The nodes of the user's graph that fused node ``nid`` computes, in dependency order:
    backwards from the node it stands for, up to (not including) the leaves and what other program
    nodes compute (``elsewhere``: the origins of all program nodes; ``rank``: the user's graph's
    topological index; both computed here when not given)."""
    user = program.source or program.graph
    origin = program.origin or {}
    root = origin.get(nid)
    if root is None or root not in user.nx:
        return []
    # a multi-output kernel also computes what its fused_output nodes stand for
    roots = [root] + [origin[m] for m in program.order if program.graph.node(m)["op"] == "fused_output"
                      and program.graph.node(m)["inputs"][0] == nid and origin.get(m) in user.nx]
    if elsewhere is None:
        elsewhere = {o for m in program.order if (o := origin.get(m)) is not None}
    if rank is None:
        rank = {n: k for k, n in enumerate(user.topological_order())}
    members: list[int] = []
    stack, seen = list(roots), set(roots)
    while stack and len(members) < MAX_LISTED_MEMBERS:
        n = stack.pop()
        d = user.node(n)
        if d["op"] in ("placeholder", "parameter", "constant") or (n not in roots and n in elsewhere):
            continue
        members.append(n)
        for i in d["inputs"]:
            if i not in seen:
                seen.add(i)
                stack.append(i)
    return sorted(members, key=rank.__getitem__)   # every member is a node of the user's graph


def _fused_details(program: Program, nid: int, number: int, context: dict[str, Any]) -> dict[str, Any]:
    user = program.source or program.graph
    if not context:         # shared by every kernel of one page: one pass over each graph
        context["elsewhere"] = {(program.origin or {}).get(m) for m in program.order} - {None}
        context["rank"] = {n: k for k, n in enumerate(user.topological_order())}
    members = fused_members(program, nid, context["elsewhere"], context["rank"])
    spec = dict(program.graph.node(nid)["attrs"]).get("spec")
    return {"kernel": number,
            "members": [{"id": m, "op": user.node(m)["op"], "name": user.node(m)["name"],
                         "shape": format_shape(user.node(m)["shape"]), "dtype": user.node(m)["dtype"]}
                        for m in members],
            "detail": repr(spec) if spec is not None else ""}


# ---- profiles -----------------------------------------------------------------------------

def match_profile(profile: Profile | None, graph: Graph, nodes: Sequence[int],
                  program: Program | None) -> tuple[dict[int, float], list[tuple[str, float]]]:
    """(seconds per shown node, [(kernel label, seconds), ...] that match no shown node).

    Kernel labels name their node: the interpreter's start with ``%<node id> <op>``; the llvm
    and triton ones are ``k<i>_<op>: ...`` in program order (a fused kernel's text is its
    LoopSpec's description), so each is matched to the first unmatched node of that op (and,
    for fused kernels, that description)."""
    if profile is None:
        return {}, []
    shown = set(nodes)
    order = [n for n in (program.order if program is not None else nodes) if n in shown]
    used: set[int] = set()
    times: dict[int, float] = {}
    unmatched: list[tuple[str, float]] = []
    for k in profile.kernels:
        nid = _kernel_node(k.kernel, graph, order, used)
        if nid is None:
            unmatched.append((k.kernel, k.seconds))
            continue
        used.add(nid)
        times[nid] = times.get(nid, 0.0) + k.seconds
    return times, unmatched


def _kernel_node(label: str, graph: Graph, order: Sequence[int], used: set[int]) -> int | None:
    m = _INTERP_LABEL.match(label)
    if m:
        nid = int(m.group(1))
        return nid if nid in graph.nx and graph.node(nid)["op"] == m.group(2) and nid in set(order) else None
    m = _KERNEL_LABEL.match(label)
    if not m:
        return None
    op, text = m.groups()
    candidates = [n for n in order if n not in used and graph.node(n)["op"] == op]
    if op == "fused":
        # the kernel whose LoopSpec reads the same; a build generic in the batch size prints its
        # sizes as "n", so then the next kernel of the program order (the same order as the build's)
        same = [n for n in candidates if repr(dict(graph.node(n)["attrs"]).get("spec")) == text]
        candidates = same or candidates
    return candidates[0] if candidates else None


def _profile_summary(profile: Profile, unmatched: Sequence[tuple[str, float]]) -> dict[str, Any]:
    return {"function": profile.function, "backend": profile.backend, "steps": profile.steps,
            "step_seconds": profile.step_seconds, "kernel_seconds": profile.kernel_seconds,
            "unmatched": [[label, seconds] for label, seconds in unmatched]}


# ---- the page -------------------------------------------------------------------------------

def _asset(*parts: str) -> str:
    return resources.files(__package__).joinpath("viewer", *parts).read_text(encoding="utf-8")


def script_safe_json(data: object) -> str:
    """JSON that can sit inside a <script> block: no '<', '>' or '&' (so no '</script>' or
    '<!--'), and non-ASCII escaped (U+2028/2029 included)."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _inline_script(code: str) -> str:
    # a vendored file could hold the text '</script' inside a string; HTML would end the block there
    return re.sub(r"</(script)", r"<\\/\1", code, flags=re.I)


def render_page(data: dict[str, Any]) -> str:
    title = html.escape(str(data["title"]))
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title} - tensorforge graph</title>",
        f"<style>\n{_asset('viewer.css')}\n</style>",
        "</head><body>",
        '<div id="tf-toolbar">',
        f'  <span id="tf-title">{title}</span>',
        '  <input id="tf-search" type="search" placeholder="search names and ops" autocomplete="off">',
        '  <span id="tf-matches"></span>',
        '  <button id="tf-fit" type="button" title="fit the graph to the window">fit</button>',
        '  <button id="tf-zoom-in" type="button">+</button><button id="tf-zoom-out" type="button">-</button>',
        '  <label id="tf-heat-toggle" hidden><input id="tf-heat" type="checkbox" checked> time as heat</label>',
        "</div>",
        '<div id="tf-main"><svg id="tf-svg" role="img" aria-label="graph"><g id="tf-viewport"></g></svg>',
        '<div id="tf-side"><div id="tf-legend"></div><div id="tf-profile"></div></div></div>',
        '<div id="tf-tooltip" hidden></div>',
        '<div id="tf-status" data-state="loading" data-errors="0"></div>',
        f'<script type="application/json" id="tf-data">{script_safe_json(data)}</script>',
        f"<script>\n{_inline_script(_asset('viewer.js'))}\n</script>",
        f"<script>\n{_inline_script(_asset('layers.js'))}\n</script>",
        f"<script>\n{_inline_script(_asset('vendor', 'dagre.min.js'))}\n</script>",
        "<script>tfViewer.start();</script>",
        "</body></html>",
        ""])
