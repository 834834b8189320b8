"""``clone``: rebuild part of a graph with some tensors replaced (Theano's clone_replace).

Every node between the replaced tensors and the outputs is re-applied through the
op registry on its new inputs, so it gets fresh type inference and is interned:
cloning twice with the same replacements returns the same nodes, and nodes that do
not depend on a replaced tensor are shared with the original graph, not copied.

SVRG uses it to build the loss at a parameter snapshot. Note that only the op nodes
are rebuilt: implicit state updates that an op's public wrapper registers (batch
norm's running statistics) are not duplicated for the clone.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from .graph import Graph, Tensor, as_tensor, format_shape
from .ops.registry import ShapeError, apply

__all__ = ["clone"]

#: What ``clone`` replaces: a dict from old to new tensor, or (old, new) pairs
Replacements = Mapping[Tensor, Tensor] | Iterable[tuple[Tensor, Tensor]]


def _shapes_compatible(a: tuple[int | None, ...], b: tuple[int | None, ...]) -> bool:
    """Same rank, and equal sizes wherever both are known (None binds at call time)."""
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _replacement_pairs(replace: Replacements, graph: Graph) -> dict[int, Tensor]:
    pairs = list(replace.items()) if isinstance(replace, Mapping) else list(replace)
    out: dict[int, Tensor] = {}
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError(f"clone: replace must be a dict or (old, new) pairs, got {pair!r}")
        old, new = pair
        if not isinstance(old, Tensor) or old.graph is not graph:
            raise ValueError(f"clone: {old!r} is not a tensor of the outputs' graph")
        new = as_tensor(new, like=old) if not isinstance(new, Tensor) else new
        if new.graph is not graph:
            raise ValueError(f"clone: the replacement for {old.name!r} comes from another graph "
                             f"({new.graph.name!r}, expected {graph.name!r})")
        if new.dtype != old.dtype:
            raise TypeError(f"clone: the replacement for {old.name!r} has dtype {new.dtype}, expected {old.dtype}")
        if not _shapes_compatible(old.shape, new.shape):
            raise ShapeError(f"clone: the replacement for {old.name!r} has shape {format_shape(new.shape)}, "
                             f"incompatible with {format_shape(old.shape)}")
        if old.id in out and out[old.id].id != new.id:
            raise ValueError(f"clone: {old.name!r} is given two different replacements")
        out[old.id] = new
    return out


def clone(outputs: Tensor | Sequence[Tensor],
          replace: Replacements) -> list[Tensor]:
    """The tensors ``outputs`` recomputed with each key of ``replace`` swapped for its value.

    A replacement must come from the same graph, have the same dtype and a compatible
    shape (same rank; known sizes equal). Returns a list, one tensor per output (an output
    that depends on no replaced tensor is returned unchanged).
    """
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    if not outs:
        return []
    graph = outs[0].graph
    for o in outs:
        if not isinstance(o, Tensor) or o.graph is not graph:
            raise ValueError(f"clone: outputs must be tensors of one graph, got {o!r}")
    new_of = _replacement_pairs(replace, graph)
    if not new_of:
        return list(outs)
    replaced = set(new_of)
    for nid in graph.topological_order([o.id for o in outs]):
        if nid in replaced:
            continue
        d = graph.node(nid)
        if not any(i in new_of for i in d["inputs"]):
            continue  # untouched by the replacements: shared with the original graph
        inputs = [new_of[i] if i in new_of else graph.tensor(i) for i in d["inputs"]]
        new_of[nid] = apply(d["op"], inputs, **dict(d["attrs"]))
    return [new_of[o.id] if o.id in new_of else o for o in outs]
