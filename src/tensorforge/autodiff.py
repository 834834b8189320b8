"""Reverse-mode automatic differentiation on the graph, symbolically.

``grad(y, xs)`` walks the nodes between ``xs`` and ``y`` from the deepest back
to the first, calls each op's pullback (which builds *new graph nodes*),
adds up the gradients of nodes used more than once, and sums broadcast
dimensions away. The result is graph tensors, so gradients of gradients work.
"""
from __future__ import annotations

from typing import Sequence, overload

import networkx as nx
import numpy as np

from .graph import Tensor, as_tensor, format_shape
from .ops.registry import VJPContext, apply, get_op


def _zeros_like(x: Tensor) -> Tensor:
    zero = as_tensor(0.0, like=x)
    return apply("broadcast_like", [zero, x])


def _match_shape(g: Tensor, x: Tensor) -> Tensor:
    """Sum a gradient down to its primal's shape when the forward op broadcast.

    Equal static shapes prove nothing when they hold a None: a dimension bound at call
    time may be 1 in ``x`` and 11 in ``g``. Such gradients keep a sum_to_like, which is
    decided once shapes are concrete (simplify folds it away where they match)."""
    if g.shape == x.shape and None not in x.shape:
        return g
    return apply("sum_to_like", [g, x])


@overload
def grad(y: Tensor, xs: Tensor, grad_y: Tensor | None = None) -> Tensor: ...
@overload
def grad(y: Tensor, xs: Sequence[Tensor], grad_y: Tensor | None = None) -> list[Tensor]: ...
def grad(y: Tensor, xs: Tensor | Sequence[Tensor], grad_y: Tensor | None = None) -> Tensor | list[Tensor]:
    """Gradients of a scalar ``y`` with respect to each of ``xs`` (as new graph tensors).

    Returns a list (or one tensor when ``xs`` is a single tensor). A tensor that ``y``
    does not depend on gets a zero gradient of its own shape.
    """
    single = isinstance(xs, Tensor)
    xs = [xs] if isinstance(xs, Tensor) else list(xs)
    if grad_y is None:
        if y.shape != ():
            raise ValueError(f"grad: y must be a scalar, got shape {format_shape(y.shape)} "
                             f"(reduce it first, e.g. tg.mean(y), or pass grad_y)")
        if np.dtype(y.dtype).kind != "f":
            raise TypeError(f"grad: y must be floating point, got {y.dtype}")
        grad_y = as_tensor(1.0, like=y)
    g = y.graph
    for x in xs:
        if not isinstance(x, Tensor) or x.graph is not g:
            raise ValueError(f"grad: {x!r} is not a tensor of the same graph as y")

    # Only nodes on a path from some x to y need a gradient.
    ancestors_of_y = nx.ancestors(g.nx, y.id) | {y.id}
    wanted = set()
    for x in xs:
        if x.id in ancestors_of_y:
            wanted |= (nx.descendants(g.nx, x.id) | {x.id}) & ancestors_of_y

    # remember which nodes this call adds (ids only grow), so tg.export can style them as gradients
    first_new = max(g.nx.nodes, default=-1) + 1
    grads: dict[int, Tensor] = {y.id: grad_y}
    for nid in reversed(g.topological_order([y.id])):
        if nid not in grads or nid not in wanted:
            continue
        d = g.node(nid)
        if not d["inputs"]:
            continue
        opdef = get_op(d["op"])
        needs = [i in wanted for i in d["inputs"]]
        if not any(needs) or not opdef.differentiable:
            continue
        if opdef.vjp is None:
            raise NotImplementedError(f"op {d['op']!r} (node %{nid}) has no gradient")
        ctx = VJPContext([g.tensor(i) for i in d["inputs"]], g.tensor(nid), dict(d["attrs"]), needs)
        input_grads = opdef.vjp(ctx, grads[nid])
        for i, (inp, gi) in enumerate(zip(d["inputs"], input_grads)):
            if gi is None or not needs[i]:
                continue
            gi = _match_shape(gi, g.tensor(inp))
            grads[inp] = apply("add", [grads[inp], gi]) if inp in grads else gi

    out = [grads[x.id] if x.id in grads else _zeros_like(x) for x in xs]
    g.grad_nodes.update(n for n in g.nx.nodes if n >= first_new)
    return out[0] if single else out
