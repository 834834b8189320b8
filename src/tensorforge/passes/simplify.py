"""Algebraic simplification: identities that make nodes disappear, iterated to a fixed point.

Every rule is exact under IEEE arithmetic for every input, NaN, inf and signed zeros
included: the rewritten graph computes bit for bit what the original does (up to NaN
payloads). Rules (each applied only when the result has exactly the original node's shape
and dtype, so an identity that would drop a broadcast or a type promotion is skipped):

    x*1, 1*x, x/1, x**1                      -> x
    x+(-0.0), (-0.0)+x, x-(+0.0)             -> x           (-0.0)-x -> neg(x)
    x+0, 0+x, x-0                            -> x           0-x -> neg(x)   (integers only)
    neg(neg(x))                              -> x
    x**2 -> x*x,  x**0.5 -> sqrt(x)          (as NumPy's power computes them)
    transpose(transpose(x))                  -> one transpose, or x when they cancel
    reshape-like of reshape-like             -> one reshape (reshape, reshape_like, expand_dims, squeeze)
    reshape / broadcast / sum_to / transpose / cast to the same shape or dtype -> x
    broadcast_to(broadcast_to(x))            -> one broadcast_to

"1" and "0" are constants whose elements are all equal to 1 or 0, possibly broadcast
or reshaped. Rewrites that are NOT made, because they change a result for some float
input (the rule: a rewrite never changes NaN, inf or the sign of a zero):

    x*0 -> 0, x-x -> 0, x+(-x) -> 0, x/x -> 1   (NaN for x = inf or NaN)
    x+(+0.0) -> x, 0.0-x -> neg(x)               (-0.0 + 0.0 is +0.0, neg(+0.0) is -0.0)
    log(exp(x)) -> x                             (exp overflows to inf for x > 88 in float32)
    exp(log(x)) -> x                             (rounds differently; may overflow near the max)
"""
from __future__ import annotations

import numpy as np

from ..program import Program
from .rewrite import Builder, rebuild

__all__ = ["simplify", "MAX_ROUNDS"]

MAX_ROUNDS = 20
RESHAPES = ("reshape", "reshape_like", "expand_dims", "squeeze")
SAME_SHAPE_IDENTITIES = RESHAPES + ("broadcast_to", "broadcast_like", "sum_to_like")


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

def zero_with_sign(b: Builder, nid: int, negative: bool) -> bool:
    """True when ``nid`` is a constant whose elements are all zero with the given sign bit
    (integer zeros count as +0), possibly broadcast or reshaped."""
    if fill_value(b, nid) != 0:
        return False
    while b.op(nid) in RESHAPES + ("broadcast_to", "broadcast_like"):
        nid = b.inputs(nid)[0]
    return bool(np.all(np.signbit(b.value(nid)) == negative))


def _is_integral(dtype) -> bool:
    return np.dtype(dtype).kind in "biu"


def _neutral_for_add(b: Builder, zero: int, result_dtype) -> bool:
    """``x + zero`` is exactly ``x``: any zero for integers, only -0.0 for floats
    (-0.0 + +0.0 is +0.0, so adding +0.0 is not the identity on -0.0)."""
    if _is_integral(result_dtype):
        return fill_value(b, zero) == 0
    return zero_with_sign(b, zero, negative=True)


def _add(b, ins, attrs, want, fits, first_fitting):
    x, y = ins
    return first_fitting(x if _neutral_for_add(b, y, want[1]) else None,
                         y if _neutral_for_add(b, x, want[1]) else None)


def _sub(b, ins, attrs, want, fits, first_fitting):
    x, y = ins
    integral = _is_integral(want[1])
    # x - (+0.0) is x exactly; x - (-0.0) = x + 0.0 is not (on -0.0)
    if fits(x) and (fill_value(b, y) == 0 if integral else zero_with_sign(b, y, negative=False)):
        return x
    # (-0.0) - x is neg(x) exactly; 0.0 - 0.0 is +0.0, but neg(0.0) is -0.0
    if fits(y) and (fill_value(b, x) == 0 if integral else zero_with_sign(b, x, negative=True)):
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
    # exact against the reference: NumPy's power computes x**0.5 as sqrt(x) (so -inf -> NaN
    # and -0.0 -> -0.0, where C's pow gives +inf and +0.0)
    if e == 0.5 and np.dtype(b.dtype(x)).kind == "f":
        return b.apply("sqrt", [x])
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
    "transpose": _transpose, "cast": _cast,
    "reshape": _reshape, "reshape_like": _reshape, "expand_dims": _reshape, "squeeze": _reshape,
    "broadcast_to": _broadcast_to, "broadcast_like": _same_shape, "sum_to_like": _same_shape,
}
