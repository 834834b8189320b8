"""Pictures of graphs: SVG or PNG, with Graphviz ``dot`` when it is installed, otherwise a
pure-Python layered drawing (networkx topological generations, drawn with matplotlib).

Files are written atomically (``_fileio.atomic_write``: a temporary file in the same folder,
then ``os.replace``), so a failed drawing keeps the old picture.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import networkx as nx

from .._fileio import atomic_write
from .dot import COLORS, graph_view, to_dot

__all__ = ["draw", "dot_available"]

FORMATS = {".svg": "svg", ".png": "png"}


def dot_available() -> bool:
    return shutil.which("dot") is not None


def draw(obj, path, engine: str = "auto", **to_dot_kwargs) -> Path:
    """Draw ``obj`` (anything ``to_dot`` takes) to ``path`` (.svg or .png) and return the path.

    engine: "auto" (Graphviz if ``dot`` is on PATH, else matplotlib), "graphviz" or "matplotlib".
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"draw: unsupported picture format {path.suffix!r}; use .svg or .png")
    if engine not in ("auto", "graphviz", "matplotlib"):
        raise ValueError(f"draw: engine must be 'auto', 'graphviz' or 'matplotlib', got {engine!r}")
    if engine == "graphviz" and not dot_available():
        raise RuntimeError("draw: Graphviz 'dot' is not on PATH (install graphviz, or use engine='matplotlib')")
    use_dot = engine == "graphviz" or (engine == "auto" and dot_available())
    render = _render_graphviz if use_dot else _render_matplotlib
    atomic_write(path, lambda f: render(obj, f, fmt, to_dot_kwargs))
    return path


def _render_graphviz(obj, out, fmt: str, kwargs: dict) -> None:
    text = to_dot(obj, **kwargs)
    done = subprocess.run(["dot", f"-T{fmt}"], input=text.encode(), capture_output=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"draw: Graphviz dot failed: {done.stderr.decode(errors='replace').strip()}")
    out.write(done.stdout)


def layered_positions(nodes, edges) -> dict:
    """x, y of each node: ops on rows by longest path from the sources, each leaf (no inputs)
    one row above its first consumer (not all on the top row), rows ordered by the mean x of
    each node's inputs (one barycentre sweep keeps edges short)."""
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    depth = {}
    for n in nx.topological_sort(g):
        preds = [depth[p] + 1 for p in g.predecessors(n)]
        depth[n] = max(preds, default=0)
    for n in g.nodes:
        if g.in_degree(n) == 0 and g.out_degree(n) > 0:
            depth[n] = max(0, min(depth[s] for s in g.successors(n)) - 1)
    rows: dict[int, list] = {}
    for n in g.nodes:
        rows.setdefault(depth[n], []).append(n)
    pos, prev_x = {}, {}
    for level in sorted(rows):
        def key(n):
            xs = [prev_x[p] for p in g.predecessors(n) if p in prev_x]
            return sum(xs) / len(xs) if xs else 0.0
        layer = sorted(rows[level], key=key)
        width = len(layer)
        for k, n in enumerate(layer):
            x = k - (width - 1) / 2
            pos[n] = (x, -level)
            prev_x[n] = x
    return pos


def _render_matplotlib(obj, out, fmt: str, kwargs: dict) -> None:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    view = graph_view(obj, **kwargs)
    nodes, edges = list(view["nodes"]), list(view["edges"])
    labels, kinds = dict(view["labels"]), dict(view["kinds"])
    if view["dropped"]:
        nodes.insert(0, "summary")
        edges += [("summary", n) for n in view["summary_targets"]]
        labels["summary"] = f"... {view['dropped']} more nodes"
        kinds["summary"] = "summary"
    pos = layered_positions(nodes, edges)
    widest = max((sum(1 for p in pos.values() if p[1] == y) for y in {p[1] for p in pos.values()}), default=1)
    depth = max((-p[1] for p in pos.values()), default=0) + 1
    fig, ax = plt.subplots(figsize=(min(max(4, 1.5 * widest), 60), min(max(3, 0.9 * depth), 80)))
    for a, b in edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        ax.annotate("", xy=(x1, y1 + 0.18), xytext=(x0, y0 - 0.18),
                    arrowprops=dict(arrowstyle="->", color="#777777", lw=0.6, shrinkA=0, shrinkB=0))
    outputs = set(view["outputs"])
    for n in nodes:
        x, y = pos[n]
        kind = kinds[n]
        box = "round,pad=0.25" if kind in ("parameter", "state", "summary", "fused") else "round4,pad=0.25"
        ax.text(x, y, labels[n], ha="center", va="center", fontsize=6 if kind == "constant" else 7,
                color="#777777" if kind == "constant" else "black",
                bbox=dict(boxstyle=box, fc=COLORS[kind], ec="black" if n in outputs else "#999999",
                          lw=1.8 if n in outputs else 0.6))
    xs = [p[0] for p in pos.values()] or [0]
    ax.set_xlim(min(xs) - 1, max(xs) + 1)
    ax.set_ylim(-depth, 1)
    ax.axis("off")
    ax.set_title(view["graph"].name, fontsize=9)
    fig.tight_layout()
    fig.savefig(out, format=fmt, dpi=110)
    plt.close(fig)
