"""Algebraic simplification: identities that make nodes disappear, iterated to a fixed point.

Rules (each applied only when the result has exactly the original node's shape and
dtype, so an identity that would drop a broadcast or a type promotion is skipped):

    x*1, 1*x, x+0, 0+x, x-0, x/1, x**1      -> x          0-x -> neg(x)
    neg(neg(x))                              -> x
    x**2 -> x*x,  x**0.5 -> sqrt(x)
    transpose(transpose(x))                  -> one transpose, or x when they cancel
    reshape-like of reshape-like             -> one reshape (reshape, reshape_like, expand_dims, squeeze)
    reshape / broadcast / sum_to / transpose / cast to the same shape or dtype -> x
    broadcast_to(broadcast_to(x))            -> one broadcast_to
    log(exp(x))                              -> x
    exp(log(x))                              -> x only where x is known to be >= 0

"1" and "0" are constants whose elements are all equal to 1 or 0, possibly broadcast
or reshaped. Safety notes: log(exp(x)) -> x is always safe: it is exact wherever the
original is finite, and better where exp over- or underflows. exp(log(x)) is not:
for x < 0 the original gives NaN, so it is rewritten only when x is the output of an
op that is never negative (exp, sqrt, abs, relu, sigmoid, softplus, softmax, x*x,
non-negative constants ...). x*0 is NOT folded to 0: with x = inf or NaN the product
is NaN, and a training step must keep showing that.
"""
from __future__ import annotations

import numpy as np

from ..program import Program
from .rewrite import Builder, rebuild

__all__ = ["simplify", "MAX_ROUNDS"]

MAX_ROUNDS = 20
RESHAPES = ("reshape", "reshape_like", "expand_dims", "squeeze")
SAME_SHAPE_IDENTITIES = RESHAPES + ("broadcast_to", "broadcast_like", "sum_to_like")
NONNEGATIVE_OPS = ("exp", "sqrt", "abs", "relu", "sigmoid", "softplus", "softmax", "numel", "heaviside")


def simplify(program: Program) -> Program:
    """Apply the rules until none fires (at most MAX_ROUNDS sweeps)."""
    for _ in range(MAX_ROUNDS):
        program, fired = rebuild(program, _simplify_rule)
        if not fired:
            break
    return program


def fill_value(b: Builder, nid: int):
    """The value of every element if ``nid`` is a constant with all elements equal
    (possibly broadcast or reshaped), else None."""
    while b.op(nid) in RESHAPES + ("broadcast_to", "broadcast_like"):
        nid = b.inputs(nid)[0]
    v = b.value(nid)
    if v is None or v.size == 0 or v.dtype.kind not in "biuf":
        return None
    first = v.flat[0]
    return first.item() if bool(np.all(v == first)) else None


def known_nonnegative(b: Builder, nid: int, depth: int = 8) -> bool:
    """True when every element of ``nid`` is >= 0 or NaN whatever the inputs (conservative)."""
    if depth == 0:
        return False
    op = b.op(nid)
    if op in NONNEGATIVE_OPS:
        return True
    if op == "constant":
        return bool(np.all(b.value(nid) >= 0))
    ins = b.inputs(nid)
    if op == "mul" and ins[0] == ins[1]:
        return True
    if op in ("add", "mul", "div", "minimum") + RESHAPES + ("broadcast_to", "broadcast_like", "transpose"):
        data = ins[:1] if op in RESHAPES + ("broadcast_to", "broadcast_like", "transpose") else ins
        return all(known_nonnegative(b, i, depth - 1) for i in data)
    if op == "maximum":
        return any(known_nonnegative(b, i, depth - 1) for i in ins)
    return False


def _simplify_rule(b: Builder, old: int, ins: list) -> int | None:
    d = b.src.graph.node(old)
    op = d["op"]
    want = (tuple(b.src.shapes[old]), b.src.dtypes[old])

    def fits(nid):
        return nid is not None and (b.shape(nid), b.dtype(nid)) == want

    def first_fitting(*candidates):
        for c in candidates:
            if fits(c):
                return c
        return None

    if op == "constant":
        return None
    rule = _RULES.get(op)
    if rule is None:
        return None
    return rule(b, ins, dict(d["attrs"]), want, fits, first_fitting)


# ---- the rules, one function per op: each returns the replacement or None -----------------

def _add(b, ins, attrs, want, fits, first_fitting):
    x, y = ins
    return first_fitting(x if fill_value(b, y) == 0 else None, y if fill_value(b, x) == 0 else None)


def _sub(b, ins, attrs, want, fits, first_fitting):
    x, y = ins
    if fill_value(b, y) == 0 and fits(x):
        return x
    if fill_value(b, x) == 0 and fits(y):
        return b.apply("neg", [y])
    return None


def _mul(b, ins, attrs, want, fits, first_fitting):
    x, y = ins
    return first_fitting(x if fill_value(b, y) == 1 else None, y if fill_value(b, x) == 1 else None)


def _div(b, ins, attrs, want, fits, first_fitting):
    x, y = ins
    return x if fill_value(b, y) == 1 and fits(x) else None


def _neg(b, ins, attrs, want, fits, first_fitting):
    (x,) = ins
    return b.inputs(x)[0] if b.op(x) == "neg" and fits(b.inputs(x)[0]) else None


def _pow(b, ins, attrs, want, fits, first_fitting):
    x, e = ins
    e = fill_value(b, e)
    if e is None or not fits(x):
        return None
    if e == 1:
        return x
    if e == 2:
        return b.apply("mul", [x, x])
    if e == 0.5 and np.dtype(b.dtype(x)).kind == "f":
        return b.apply("sqrt", [x])
    return None


def _log(b, ins, attrs, want, fits, first_fitting):
    (x,) = ins
    return b.inputs(x)[0] if b.op(x) == "exp" and fits(b.inputs(x)[0]) else None


def _exp(b, ins, attrs, want, fits, first_fitting):
    (x,) = ins
    if b.op(x) == "log" and fits(b.inputs(x)[0]) and known_nonnegative(b, b.inputs(x)[0]):
        return b.inputs(x)[0]
    return None


def _axes(attrs, ndim):
    axes = attrs.get("axes")
    return tuple(reversed(range(ndim))) if axes is None else tuple(int(a) % max(ndim, 1) for a in axes)


def _transpose(b, ins, attrs, want, fits, first_fitting):
    (x,) = ins
    nd = len(b.shape(x))
    outer = _axes(attrs, nd)
    if outer == tuple(range(nd)):
        return x if fits(x) else None
    if b.op(x) != "transpose":
        return None
    inner_src = b.inputs(x)[0]
    inner = _axes(b.attrs(x), nd)
    composed = tuple(inner[a] for a in outer)       # out[j] = src axis inner[outer[j]]
    if composed == tuple(range(nd)):
        return inner_src if fits(inner_src) else None
    return b.apply("transpose", [inner_src], axes=composed)


def _reshape(b, ins, attrs, want, fits, first_fitting):
    x = ins[0]
    if fits(x):
        return x                                       # to its own shape: nothing to do
    if b.op(x) in RESHAPES:
        src = b.inputs(x)[0]
        return src if fits(src) else b.apply("reshape", [src], shape=want[0])
    return None


def _same_shape(b, ins, attrs, want, fits, first_fitting):
    return ins[0] if fits(ins[0]) else None


def _broadcast_to(b, ins, attrs, want, fits, first_fitting):
    x = ins[0]
    if fits(x):
        return x
    if b.op(x) == "broadcast_to":
        return b.apply("broadcast_to", [b.inputs(x)[0]], shape=want[0])
    return None


def _cast(b, ins, attrs, want, fits, first_fitting):
    return ins[0] if fits(ins[0]) else None


_RULES = {
    "add": _add, "sub": _sub, "mul": _mul, "div": _div, "neg": _neg, "pow": _pow,
    "log": _log, "exp": _exp, "transpose": _transpose, "cast": _cast,
    "reshape": _reshape, "reshape_like": _reshape, "expand_dims": _reshape, "squeeze": _reshape,
    "broadcast_to": _broadcast_to, "broadcast_like": _same_shape, "sum_to_like": _same_shape,
}
