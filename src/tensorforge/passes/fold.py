"""Constant folding: evaluate, at compile time, what depends on constants and shapes only.

A node whose data inputs are all constants is run through its op's NumPy reference
and becomes a constant. Inputs that an op reads for their shape only (``numel``,
the ``*_like`` ops) need not be constant: with a Program's concrete shapes their
results are already decided. Random ops, placeholders and parameters are never
folded. Folded constants stay small: a result is folded only if it has at most
``FOLD_MAX_ELEMENTS`` elements or is no bigger than its largest constant input, so
a scalar broadcast to a large shape is never materialised. Instead,
``broadcast_like(x, ref)`` becomes ``broadcast_to(x, shape)`` and
``reshape_like(x, ref)`` becomes ``reshape(x, shape)``, which frees ``ref``.
"""
from __future__ import annotations

import numpy as np

from ..ops.registry import get_op
from ..program import Program
from .rewrite import Builder, rebuild

__all__ = ["fold_constants", "FOLD_MAX_ELEMENTS"]

FOLD_MAX_ELEMENTS = 64   # bigger results only when no bigger than an input: folding never grows data


def fold_constants(program: Program) -> Program:
    """The program with constant sub-expressions replaced by their values."""
    return rebuild(program, _fold_rule)[0]


def _fold_rule(b: Builder, old: int, ins: list) -> int | None:
    d = b.src.graph.node(old)
    op = d["op"]
    if op == "constant":
        return None
    opdef = get_op(op)
    if opdef.random:
        return None                       # fresh numbers on every call: never a constant
    shape, dtype = tuple(b.src.shapes[old]), b.src.dtypes[old]
    data = [i for k, i in enumerate(ins) if k not in opdef.shape_only_inputs]
    if all(b.op(i) == "constant" for i in data):
        value = _evaluate(b, opdef, ins, dict(d["attrs"]), shape, dtype)
        largest_input = max((b.value(i).size for i in data), default=0)
        if value is not None and (value.size <= FOLD_MAX_ELEMENTS or value.size <= largest_input):
            return b.constant(value)
    splat = _fold_splats(b, opdef, ins, data, dict(d["attrs"]), shape, dtype)
    if splat is not None:
        return splat
    if op == "broadcast_like":
        return b.apply("broadcast_to", [ins[0]], shape=shape)
    if op == "reshape_like":
        return b.apply("reshape", [ins[0]], shape=shape)
    return None


SHAPE_OPS = ("reshape", "reshape_like", "expand_dims", "squeeze", "broadcast_to", "broadcast_like", "transpose")


def splat_of(b: Builder, nid: int) -> np.ndarray | None:
    """The 0-d value if ``nid`` is a one-element constant or a broadcast of one, else None."""
    if b.op(nid) == "broadcast_to":
        nid = b.inputs(nid)[0]
    v = b.value(nid)
    return v.reshape(()) if v is not None and v.size == 1 else None


def _fold_splats(b: Builder, opdef, ins, data, attrs, shape, dtype) -> int | None:
    """A too-big result whose elements are all one value (an elementwise op or a shape op on
    broadcast scalars, e.g. the neg of a broadcast gradient seed) becomes a broadcast scalar."""
    if not data or not (opdef.elementwise or opdef.name in SHAPE_OPS):
        return None
    scalars = [splat_of(b, i) for i in data]
    if any(v is None for v in scalars):
        return None
    if opdef.name in SHAPE_OPS:
        value = scalars[0]
    else:
        try:
            with np.errstate(all="ignore"):
                value = np.asarray(opdef.impl(*scalars, **attrs))
        except Exception:  # noqa: BLE001 - not foldable; it fails (and is named) at run time
            return None
    value = value.astype(dtype)
    if value.shape != ():
        return None
    c = b.constant(value)
    return c if shape == () else b.apply("broadcast_to", [c], shape=shape)


def _evaluate(b: Builder, opdef, ins, attrs, shape, dtype) -> np.ndarray | None:
    """Run the op's NumPy reference as the interpreter would, or None if it fails."""
    args = []
    for k, i in enumerate(ins):
        if k in opdef.shape_only_inputs:   # only its shape is read: a zero-strided stand-in costs nothing
            args.append(np.broadcast_to(np.zeros((), dtype=b.dtype(i)), b.shape(i)))
        else:
            args.append(b.value(i))
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(opdef.impl(*args, **attrs))
    except Exception:  # noqa: BLE001 - leave the node to fail at run time, where its error is named
        return None
    if out.dtype != np.dtype(dtype):
        out = out.astype(dtype)            # the interpreter casts every result to its node's dtype
    return out if out.shape == shape else None
