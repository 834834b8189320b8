"""Save a sub-graph to disk and load it back, without pickle and without running code.

``save(path, outputs, inputs)`` writes two files, each atomically (``_fileio.atomic_write``):

    <stem>.npz      the parameter and constant arrays, keyed "n<node id>" (np.savez), first
    <path>          JSON: format name and version, the sub-graph as networkx node-link data
                    (op, ordered inputs, attrs, shape, dtype, name per node), input names, output
                    ids, and the sha256 of the .npz it was written with, last

The pair is one unit: a save that dies between the two renames, or files of two saves put
side by side, fail the sha256 check and are refused, never loaded as one graph with another's
weights.

``load(path)`` checks everything before it builds anything: format and version, the type of
every field, known ops and attributes, supported dtypes, node references, no cycles, non-empty
outputs, every array a real ``.npy`` member (read with ``allow_pickle=False``, native byte order)
with the declared shape and dtype, the pair's sha256; then it re-runs each op's type rule
against the saved shape. Any problem is a :class:`LoadError` that says what and where.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import networkx as nx
import numpy as np

from .._typing import Array, PathLike
from ..graph import Graph, Tensor, constant, format_shape, parameter, placeholder
from .._fileio import atomic_write
from ..ops.registry import apply
from . import _npz
from ._validate import check_document

if TYPE_CHECKING:
    from ..compile import CompiledFunction

__all__ = ["save", "load", "Loaded", "LoadError", "FORMAT_NAME", "FORMAT_VERSION", "arrays_path"]

FORMAT_NAME = "tensorforge-graph"
FORMAT_VERSION = 2          # 2: the JSON holds the sha256 of its .npz
READABLE_VERSIONS = (1, 2)  # version 1 files (no sha256) are still read
LEAVES = ("placeholder", "parameter", "constant")
# attrs that only make interning work (constants are re-interned on load)
DROPPED_ATTRS = ("key", "uid")


class LoadError(ValueError):
    """A saved graph file is malformed, tampered with, or from an incompatible version."""


def arrays_path(path: PathLike) -> Path:
    """The .npz next to a graph file: ``model.json`` -> ``model.npz``."""
    p = Path(path)
    return p.with_suffix(".npz") if p.suffix else p.with_name(p.name + ".npz")


# ---- saving -------------------------------------------------------------------------------

def _jsonable(value: object, where: str) -> Any:
    """Attribute values as JSON (tuples become lists; the loader freezes them back)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"float": repr(value)}
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return _jsonable(value.item(), where)
    if isinstance(value, (tuple, list)):
        return [_jsonable(v, where) for v in value]
    raise TypeError(f"save: {where} has an attribute value of type {type(value).__name__} that cannot be "
                    f"saved as JSON ({value!r})")


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    if isinstance(value, dict):
        if set(value) == {"float"} and value["float"] in ("inf", "-inf", "nan"):
            return float(value["float"])
        raise LoadError(f"unexpected object {value!r} in an attribute")
    return value


def save(path: PathLike, outputs: Tensor | Sequence[Tensor],
         inputs: Tensor | Sequence[Tensor] | None = None) -> Path:
    """Save the sub-graph computing ``outputs`` (a Tensor or list). ``inputs``: the placeholders in
    call order (default: every placeholder the outputs depend on, in creation order)."""
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    if not outs:
        raise ValueError("save: no outputs given")
    graph = outs[0].graph
    if any(t.graph is not graph for t in outs):
        raise ValueError("save: the outputs come from different graphs")
    graph.sync_host()
    order = graph.topological_order([t.id for t in outs])
    if inputs is None:
        inputs = [graph.tensor(n) for n in sorted(order) if graph.node(n)["op"] == "placeholder"]
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    needed = set(order)
    for t in ins:
        if t.graph is not graph or t.op != "placeholder":
            raise ValueError(f"save: input {t!r} is not a placeholder of the outputs' graph")
    missing = [graph.node(n)["name"] for n in order
               if graph.node(n)["op"] == "placeholder" and n not in {t.id for t in ins}]
    if missing:
        raise ValueError(f"save: the outputs depend on placeholders {missing} that are not among the inputs")
    extra = [t.id for t in ins if t.id not in needed]
    sub: nx.DiGraph[int] = nx.DiGraph()
    arrays: dict[str, Array] = {}
    for n in order + extra:
        d = graph.node(n)
        attrs = [[k, _jsonable(v, f"node %{n} ({d['op']})")] for k, v in d["attrs"] if k not in DROPPED_ATTRS]
        sub.add_node(n, op=d["op"], inputs=list(d["inputs"]), attrs=attrs,
                     shape=[None if s is None else int(s) for s in d["shape"]], dtype=d["dtype"], name=d["name"])
        for i in d["inputs"]:
            sub.add_edge(i, n)
        if d["op"] in ("parameter", "constant"):
            arrays[f"n{n}"] = np.asarray(graph.values[n])
    blob = _npz.npz_bytes(arrays)
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "graph_name": graph.name,
           "inputs": [t.id for t in ins], "outputs": [t.id for t in outs],
           "arrays_sha256": _npz.sha256_hex(blob),
           "graph": nx.node_link_data(sub, edges="links")}
    target = Path(path)
    text = json.dumps(doc, indent=1, allow_nan=False).encode()
    atomic_write(arrays_path(target), blob)     # the graph file, written last, vouches for it
    atomic_write(target, text)
    return target


# ---- loading ------------------------------------------------------------------------------

class Loaded:
    """A loaded graph: ``.graph``, ``.inputs`` (placeholders in call order), ``.outputs``,
    ``.parameters`` (name -> Tensor), and ``loaded["name"]`` for any input, output or parameter."""

    def __init__(self, graph: Graph, inputs: list[Tensor], outputs: list[Tensor]) -> None:
        self.graph, self.inputs, self.outputs = graph, inputs, outputs
        self.parameters = {t.name: t for t in graph.parameters()}

    def __getitem__(self, name: str) -> Tensor:
        for t in self.outputs:
            if t.name == name:
                return t
        return self.graph.by_name(name)

    def compile(self, **kwargs: Any) -> CompiledFunction[list[Array]]:
        from ..compile import compile as _compile
        return _compile(self.inputs, self.outputs, **kwargs)

    def __repr__(self) -> str:
        return (f"<Loaded {self.graph.name!r}: inputs {[t.name for t in self.inputs]}, "
                f"{len(self.outputs)} outputs, {len(self.parameters)} parameters>")


def _read_json(path: Path) -> dict[str, Any]:
    data = _npz.read_file(path, "graph file", LoadError)
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LoadError(f"{path}: not a JSON graph file ({e})") from None
    except RecursionError:
        raise LoadError(f"{path}: not a JSON graph file (nested too deeply)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise LoadError(f"{path}: not a {FORMAT_NAME} file")
    if doc.get("version") not in READABLE_VERSIONS or isinstance(doc.get("version"), bool):
        raise LoadError(f"{path}: format version {doc.get('version')!r} is not supported "
                        f"(this tensorforge reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    return doc


def _read_arrays(path: Path) -> tuple[dict[str, Array], bytes]:
    npz = arrays_path(path)
    try:
        data = npz.read_bytes()
    except FileNotFoundError:
        raise LoadError(f"{path}: the arrays file {npz} is missing") from None
    except OSError as e:
        raise LoadError(f"{path}: the arrays file {npz} cannot be read ({e})") from None
    return _npz.read_npz(data, npz, LoadError), data


def _check_pair(doc: dict[str, Any], path: Path, data: bytes) -> None:
    """The .npz must be the one this graph file was written with."""
    if doc["version"] < 2:
        return
    if _npz.sha256_hex(data) != doc["arrays_sha256"]:
        raise LoadError(f"{path}: the arrays file {arrays_path(path).name} is not the one this graph file "
                        "was saved with (sha256 differs): an interrupted save, or files of two saves")


def _array_for(nid: int, d: dict[str, Any], arrays: dict[str, Array], path: Path) -> Array:
    key = f"n{nid}"
    if key not in arrays:
        raise LoadError(f"{path}: the array of {d['op']} %{nid} ({d['name']!r}) is missing from "
                        f"{arrays_path(path).name}")
    arr = arrays[key]
    if list(arr.shape) != d["shape"] or arr.dtype != np.dtype(d["dtype"]):
        raise LoadError(f"{path}: the array of %{nid} ({d['name']!r}) is {arr.shape} {arr.dtype}, but the "
                        f"graph declares {tuple(d['shape'])} {d['dtype']}")
    return arr


def load(path: PathLike) -> Loaded:
    """Load a graph written by :func:`save` into a new Graph (see the module docstring)."""
    path = Path(path)
    doc = _read_json(path)
    nodes, order = check_document(doc, path, LoadError)
    arrays, data = _read_arrays(path)
    for nid in order:
        if nodes[nid]["op"] in ("parameter", "constant"):
            _array_for(nid, nodes[nid], arrays, path)
    _check_pair(doc, path, data)
    graph = Graph(str(doc.get("graph_name", path.stem)))
    new: dict[int, Tensor] = {}
    for nid in order:
        d = nodes[nid]
        op, shape, name = d["op"], tuple(d["shape"]), str(d["name"])
        try:
            attrs = {str(k): _from_json(v) for k, v in d["attrs"]}
        except (TypeError, ValueError) as e:
            raise LoadError(f"{path}: node %{nid} has malformed attrs ({e})") from None
        try:
            if op == "placeholder":
                t = placeholder(name, shape, d["dtype"], graph=graph)
            elif op == "parameter":
                t = parameter(name, _array_for(nid, d, arrays, path), trainable=bool(attrs.get("trainable", True)),
                              dtype=d["dtype"], graph=graph)
            elif op == "constant":
                t = constant(_array_for(nid, d, arrays, path), dtype=d["dtype"], graph=graph)
            else:
                t = apply(op, [new[i] for i in d["inputs"]], **attrs)
        except LoadError:
            raise
        except Exception as e:    # type rules only (no code runs): any failure is the file's fault
            raise LoadError(f"{path}: node %{nid} ({op} {name!r}) cannot be rebuilt: {e}") from None
        if tuple(t.shape) != shape or t.dtype != np.dtype(d["dtype"]).name:
            raise LoadError(f"{path}: node %{nid} ({op} {name!r}) declares {format_shape(shape)} {d['dtype']}, "
                            f"but its inputs give {format_shape(t.shape)} {t.dtype}")
        new[nid] = t
    return Loaded(graph, [new[i] for i in doc["inputs"]], [new[o] for o in doc["outputs"]])
