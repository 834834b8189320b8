"""Structural checks of a saved graph document (the JSON of ``tg.export.save``), before anything
is built from it.

Every field is checked for its type, every node for a known op, known attributes of plain JSON
types, a supported dtype, a shape of non-negative ints, and inputs that name other nodes of
the file without a cycle; the graph's inputs must be placeholders and its outputs a non-empty
list of nodes. Each problem raises the caller's error class with the file and node named, so a
damaged file never surfaces as a KeyError or TypeError from deep inside the loader.
"""
from __future__ import annotations

import functools
import inspect
import re
from typing import Any, Callable

import networkx as nx

from ..ops.registry import OPS
from ._npz import SUPPORTED_DTYPES

LEAF_ATTRS = {"placeholder": (), "parameter": ("trainable",), "constant": ()}
_NODE_FIELDS = {"id": int, "op": str, "inputs": list, "attrs": list, "shape": list, "dtype": str, "name": str}


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _keyword_names(fn: Callable[..., Any], skip: int) -> tuple[dict[str, Any], bool]:
    """{name: default} of ``fn``'s parameters after the first ``skip``, and whether it takes **kwargs."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return {}, True
    names = {p.name: p.default for p in params[skip:] if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


@functools.lru_cache(maxsize=None)
def known_attrs(op: str) -> dict[str, Any] | None:
    """{attribute name: its default} for the attributes ``op`` reads (from its type rule and
    scalar expression), or None when it accepts any keyword (then only the values' JSON types
    are checked). A bool or float default says what kind of value the attribute takes."""
    if op in LEAF_ATTRS:
        return {name: inspect.Parameter.empty for name in LEAF_ATTRS[op]}
    opdef = OPS[op]
    names, open_ended = _keyword_names(opdef.infer, 1)
    if opdef.scalar is not None:
        names.update(_keyword_names(opdef.scalar, 1 + (opdef.n_inputs or 0))[0])
        open_ended = False      # elementwise type rules take **_ only to ignore the attributes
    return None if open_ended else names


def _kind_fits(default: object, value: object) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):      # int defaults (axis=-1) may also take tuples: not checked
        return isinstance(value, (int, float)) and not isinstance(value, bool) or (
            isinstance(value, dict) and set(value) == {"float"})
    return True


def _plain_json(value: object, depth: int = 0) -> bool:
    if depth > 32:
        return False
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_plain_json(v, depth + 1) for v in value)
    if isinstance(value, dict):          # how save writes inf and nan
        return set(value) == {"float"} and value["float"] in ("inf", "-inf", "nan")
    return False


def _check_attrs(nid: int, d: dict[str, Any], where: str, error: type[Exception]) -> None:
    known = known_attrs(d["op"])
    seen: set[str] = set()
    for pair in d["attrs"]:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
            raise error(f"{where}: node %{nid} ({d['op']}) has a malformed attribute entry {pair!r:.80}")
        name, value = pair
        if name in seen:
            raise error(f"{where}: node %{nid} ({d['op']}) repeats attribute {name!r}")
        seen.add(name)
        if known is not None and name not in known:
            raise error(f"{where}: node %{nid} ({d['op']}) has unknown attribute {name!r} "
                        f"(known: {sorted(known)})")
        if not _plain_json(value) or (known is not None and not _kind_fits(known[name], value)):
            raise error(f"{where}: node %{nid} ({d['op']}) attribute {name!r} has a value of an "
                        f"unsupported type ({value!r:.80})")
        if name == "dtype" and value not in SUPPORTED_DTYPES:
            raise error(f"{where}: node %{nid} ({d['op']}) attribute 'dtype' is {value!r} "
                        f"(supported: {', '.join(SUPPORTED_DTYPES)})")
        if name == "trainable" and not isinstance(value, bool):
            raise error(f"{where}: node %{nid} (parameter) attribute 'trainable' must be true or false")


def _check_node(d: object, where: str, error: type[Exception]) -> int:
    if not isinstance(d, dict):
        raise error(f"{where}: a node entry is {type(d).__name__}, not an object")
    nid = d.get("id", "?")
    for key, typ in _NODE_FIELDS.items():
        if key not in d:
            raise error(f"{where}: node %{nid} has no {key!r}")
        ok = _is_int(d[key]) if typ is int else isinstance(d[key], typ)
        if not ok:
            raise error(f"{where}: node %{nid} field {key!r} is {type(d[key]).__name__}, "
                        f"expected {typ.__name__}")
    op = d["op"]
    if op not in LEAF_ATTRS and op not in OPS:
        raise error(f"{where}: node %{nid} ({d['name']!r}) uses unknown op {op!r}")
    shape = d["shape"]
    fixed = op in ("parameter", "constant")
    if not all((s is None and not fixed) or (_is_int(s) and s >= 0) for s in shape):
        raise error(f"{where}: node %{nid} ({d['name']!r}) has an invalid shape {shape!r:.80}")
    if d["dtype"] not in SUPPORTED_DTYPES:
        raise error(f"{where}: node %{nid} ({d['name']!r}) has an unsupported dtype {d['dtype']!r:.40} "
                    f"(supported: {', '.join(SUPPORTED_DTYPES)})")
    if op in LEAF_ATTRS and d["inputs"]:
        raise error(f"{where}: node %{nid} ({op}) is a leaf but lists inputs")
    _check_attrs(nid, d, where, error)
    return int(nid)  # an int: checked above


def _int_list(doc: dict[str, Any], key: str, where: str, error: type[Exception]) -> list[int]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(_is_int(v) for v in value):
        raise error(f"{where}: {key!r} must be a list of node ids, got {value!r:.80}")
    return value


def _check_top_level(doc: dict[str, Any], where: str, error: type[Exception]) -> None:
    if "graph_name" in doc and not isinstance(doc["graph_name"], str):
        raise error(f"{where}: 'graph_name' must be a string")
    if doc["version"] >= 2:
        digest = doc.get("arrays_sha256")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise error(f"{where}: 'arrays_sha256' must be the sha256 (hex) of the arrays file")
    graph = doc.get("graph")
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        raise error(f"{where}: malformed graph table: 'graph' must hold a list of 'nodes'")


def check_document(doc: dict[str, Any], path: object,
                   error: type[Exception]) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """Validate a saved graph document; return its nodes by id and a topological order."""
    where = str(path)
    _check_top_level(doc, where, error)
    inputs, outputs = _int_list(doc, "inputs", where, error), _int_list(doc, "outputs", where, error)
    nodes: dict[int, dict[str, Any]] = {}
    for d in doc["graph"]["nodes"]:
        nid = _check_node(d, where, error)
        if nid in nodes:
            raise error(f"{where}: node id %{nid} appears twice")
        nodes[nid] = d
    dep: nx.DiGraph[int] = nx.DiGraph()
    for nid, d in nodes.items():
        dep.add_node(nid)
        for i in d["inputs"]:
            if not _is_int(i) or i not in nodes:
                raise error(f"{where}: node %{nid} ({d['name']!r}) refers to missing node {i!r:.40}")
            dep.add_edge(i, nid)
    if not outputs:
        raise error(f"{where}: the file lists no outputs")
    for i in inputs:
        if i not in nodes or nodes[i]["op"] != "placeholder":
            raise error(f"{where}: input %{i} is not a placeholder of the file")
    for o in outputs:
        if o not in nodes:
            raise error(f"{where}: output %{o} is not a node of the file")
    if not nx.is_directed_acyclic_graph(dep):
        cycle = nx.find_cycle(dep)
        raise error(f"{where}: the graph has a cycle through nodes {[a for a, _ in cycle]}")
    return nodes, list(nx.lexicographical_topological_sort(dep))
