"""Pictures of graphs: SVG or PNG, with Graphviz ``dot`` when it is installed, otherwise a
pure-Python layered drawing (networkx topological generations, drawn with matplotlib).

Files are written atomically (``_fileio.atomic_write``: a temporary file in the same folder,
then ``os.replace``), so a failed drawing keeps the old picture.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Hashable, Iterable, Mapping

import networkx as nx

from .._fileio import atomic_write
from .._typing import PathLike
from .dot import COLORS, Drawable, graph_view, to_dot

if TYPE_CHECKING:
    from matplotlib.font_manager import FontProperties

__all__ = ["draw", "dot_available"]

FORMATS = {".svg": "svg", ".png": "png"}


def dot_available() -> bool:
    return shutil.which("dot") is not None


def draw(obj: Drawable, path: PathLike, engine: str = "auto", **to_dot_kwargs: Any) -> Path:
    """Draw ``obj`` (anything ``to_dot`` takes) to ``path`` (.svg or .png) and return the path.

    engine: "auto" (Graphviz if ``dot`` is on PATH, else matplotlib), "graphviz" or "matplotlib".
    """
    target = Path(path)
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ValueError(f"draw: unsupported picture format {target.suffix!r}; use .svg or .png")
    if engine not in ("auto", "graphviz", "matplotlib"):
        raise ValueError(f"draw: engine must be 'auto', 'graphviz' or 'matplotlib', got {engine!r}")
    if engine == "graphviz" and not dot_available():
        raise RuntimeError("draw: Graphviz 'dot' is not on PATH (install graphviz, or use engine='matplotlib')")
    use_dot = engine == "graphviz" or (engine == "auto" and dot_available())
    render = _render_graphviz if use_dot else _render_matplotlib
    atomic_write(target, lambda f: render(obj, f, fmt, to_dot_kwargs))
    return target


def _render_graphviz(obj: Drawable, out: IO[bytes], fmt: str, kwargs: dict[str, Any]) -> None:
    text = to_dot(obj, **kwargs)
    done = subprocess.run(["dot", f"-T{fmt}"], input=text.encode(), capture_output=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"draw: Graphviz dot failed: {done.stderr.decode(errors='replace').strip()}")
    out.write(done.stdout)


def layered_positions(nodes: Iterable[Hashable],
                      edges: Iterable[tuple[Hashable, Hashable]]) -> dict[Hashable, tuple[float, int]]:
    """x, y of each node: ops on rows by longest path from the sources, each leaf (no inputs)
    one row above its first consumer (not all on the top row), rows ordered by the mean x of
    each node's inputs (one barycentre sweep keeps edges short)."""
    g: nx.DiGraph[Hashable] = nx.DiGraph()
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    depth: dict[Hashable, int] = {}
    for n in nx.topological_sort(g):
        preds = [depth[p] + 1 for p in g.predecessors(n)]
        depth[n] = max(preds, default=0)
    for n in g.nodes:
        if g.in_degree(n) == 0 and g.out_degree(n) > 0:
            depth[n] = max(0, min(depth[s] for s in g.successors(n)) - 1)
    rows: dict[int, list[Hashable]] = {}
    for n in g.nodes:
        rows.setdefault(depth[n], []).append(n)
    pos: dict[Hashable, tuple[float, int]] = {}
    prev_x: dict[Hashable, float] = {}
    for level in sorted(rows):
        def key(n: Hashable) -> float:
            xs = [prev_x[p] for p in g.predecessors(n) if p in prev_x]
            return sum(xs) / len(xs) if xs else 0.0
        layer = sorted(rows[level], key=key)
        width = len(layer)
        for k, n in enumerate(layer):
            x = k - (width - 1) / 2
            pos[n] = (x, -level)
            prev_x[n] = x
    return pos


# the matplotlib drawing: sizes in inches, text in points
FONT_PT = 7
PAD_IN, GAP_X_IN, GAP_Y_IN, MARGIN_IN = 0.08, 0.22, 0.32, 0.2
LINE_SPACING = 1.3


def _text_width_in(line: str, prop: FontProperties) -> float:
    """The drawn width of one line of text, in inches (the font's own glyph extents)."""
    from matplotlib.textpath import TextPath
    if not line.strip():
        return 0.0
    width: float = TextPath((0, 0), line, size=FONT_PT, prop=prop).get_extents().width
    return width / 72.0


def box_sizes(labels: Mapping[Hashable, str], prop: FontProperties) -> dict[Hashable, tuple[float, float]]:
    """(width, height) in inches of each node's box: its label's lines plus padding."""
    sizes: dict[Hashable, tuple[float, float]] = {}
    for n, label in labels.items():
        lines = str(label).split("\n")
        width = max(_text_width_in(line, prop) for line in lines)
        height = len(lines) * FONT_PT * LINE_SPACING / 72.0
        sizes[n] = (width + 2 * PAD_IN, height + 2 * PAD_IN)
    return sizes


def sized_layout(nodes: Iterable[Hashable], edges: Iterable[tuple[Hashable, Hashable]],
                 sizes: Mapping[Hashable, tuple[float, float]]
                 ) -> tuple[dict[Hashable, tuple[float, float]], tuple[float, float]]:
    """Centres (inches) of the boxes, rows from ``layered_positions``, each row as wide as its boxes
    and gaps (so no two boxes overlap) and as tall as its tallest box; and the picture's size."""
    layered = layered_positions(nodes, edges)
    rows: dict[int, list[Hashable]] = {}
    for n, (x, y) in layered.items():
        rows.setdefault(y, []).append(n)
    row_width = {y: sum(sizes[n][0] for n in row) + GAP_X_IN * (len(row) - 1) for y, row in rows.items()}
    width = max(row_width.values(), default=1.0) + 2 * MARGIN_IN
    pos: dict[Hashable, tuple[float, float]] = {}
    top = MARGIN_IN
    for y in sorted(rows, reverse=True):                       # row 0 (y = 0) first, downwards
        row = sorted(rows[y], key=lambda n: layered[n][0])
        height = max(sizes[n][1] for n in row)
        x = (width - row_width[y]) / 2
        for n in row:
            pos[n] = (x + sizes[n][0] / 2, top + height / 2)
            x += sizes[n][0] + GAP_X_IN
        top += height + GAP_Y_IN
    total_height = top - GAP_Y_IN + MARGIN_IN
    # matplotlib's y grows upwards
    return {n: (x, total_height - y) for n, (x, y) in pos.items()}, (width, total_height)


def _render_matplotlib(obj: Drawable, out: IO[bytes], fmt: str, kwargs: dict[str, Any]) -> None:
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import FancyBboxPatch

    view = graph_view(obj, **kwargs)
    # the summary node joins the int node ids
    nodes: list[Hashable] = list(view["nodes"])
    edges: list[tuple[Hashable, Hashable]] = list(view["edges"])
    labels: dict[Hashable, str] = {n: text for n, text in view["labels"].items()}
    kinds: dict[Hashable, str] = {n: kind for n, kind in view["kinds"].items()}
    if view["dropped"]:
        nodes.insert(0, "summary")
        edges += [("summary", n) for n in view["summary_targets"]]
        labels["summary"] = f"... {view['dropped']} more nodes"
        kinds["summary"] = "summary"
    title = view["graph"].name
    # svg.fonttype "none": SVG text stays text (searchable, selectable, sharp), not glyph paths
    with matplotlib.rc_context({"svg.fonttype": "none", "font.family": "DejaVu Sans"}):
        prop = FontProperties(family="DejaVu Sans", size=FONT_PT)
        sizes = box_sizes(labels, prop)
        pos, (width, height) = sized_layout(nodes, edges, sizes)
        height += 0.3                                           # the title's line
        fig = plt.figure(figsize=(min(width, 200), min(height, 200)))
        ax = fig.add_axes((0, 0, 1, 1))
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        ax.axis("off")
        for a, b in edges:
            (x0, y0), (x1, y1) = pos[a], pos[b]
            ax.annotate("", xy=(x1, y1 + sizes[b][1] / 2), xytext=(x0, y0 - sizes[a][1] / 2),
                        arrowprops=dict(arrowstyle="->", color="#777777", lw=0.6, shrinkA=0, shrinkB=0))
        outputs = set(view["outputs"])
        for n in nodes:
            (x, y), (w, h), kind = pos[n], sizes[n], kinds[n]
            rounded = kind in ("parameter", "state", "summary", "fused")
            ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h,
                                        boxstyle=f"round,pad=0,rounding_size={0.06 if rounded else 0.02}",
                                        fc=COLORS[kind], ec="black" if n in outputs else "#999999",
                                        lw=1.8 if n in outputs else 0.6))
            ax.text(x, y, labels[n], ha="center", va="center", fontsize=FONT_PT, linespacing=LINE_SPACING,
                    color="#555555" if kind == "constant" else "black")
        ax.text(width / 2, height - 0.15, title, ha="center", va="center", fontsize=9)
        fig.savefig(out, format=fmt, dpi=110)
        plt.close(fig)
