"""Predicates, rounding, integer division, bitwise and logical ops, and clamp.

Every op here is elementwise and declared once with a scalar expression (ops/scalar.py), so
it fuses on both code generators; its NumPy reference evaluates that same expression. The
rounding ops need only the ``floor`` primitive; integer division and shifts use the integer
primitives of ops/scalar.py (``fmod``, ``trunc_div``, ``bitwise_*``, ``shift_*``), which are
defined at every operand (division by zero, INT_MIN // -1 and over-long shifts included), so
no backend ever traps and all agree. docs/numerics.md states the results at those edges.

Gradients follow torch: zero for predicates, rounding, floor_divide, bitwise and logical ops;
remainder: d/da = 1, d/db = -floor_divide(a, b); fmod: d/da = 1, d/db = -trunc(a / b); clamp
routes the gradient to x inside [min, max] and to a tensor bound where it is selected.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .._typing import Array, DTypeLike, TensorLike
from ..graph import Tensor, as_tensor
from ._types import (GraphOp, Gradients, InferredType, InputAttrsOp, InputOp, InputOtherOp, InputTypes, Pullback,
                     Reference, ScalarExpr, ScalarNamespace, ScalarRule, TypeRule)
from .registry import ShapeError, _graph_of, _weak_scalar_partner, apply, broadcast_shapes, register
from .scalar import NUMPY, promote_types

if TYPE_CHECKING:
    from .registry import VJPContext

#: The dtype a reference computes in, from its operands' dtypes.
ResultDtype = Callable[..., str]

FAMILY = "integer"


# ---- declaring ops -------------------------------------------------------------------------

def _kind(dtype: DTypeLike) -> str:
    return np.dtype(dtype).kind


def _reference(scalar: ScalarRule, result_dtype: ResultDtype) -> Reference:
    """The NumPy reference of an op: its scalar expression evaluated on arrays, in the result
    dtype the graph declares. Operands of a promoting op are converted to that dtype first, as the
    code generators do (NumPy alone would compute int64 with float32 in float64)."""
    def impl(*operands: Array, **attrs: Any) -> Array:
        arrays = [np.asarray(a) for a in operands]
        out_dtype = result_dtype(*[a.dtype for a in arrays])
        if result_dtype is _promoted:
            arrays = [a.astype(out_dtype, copy=False) for a in arrays]
        with np.errstate(all="ignore"):
            out = np.asarray(scalar(NUMPY, *arrays, **attrs))
        return out.astype(out_dtype, copy=False)
    return impl


def _declare(name: str, n_inputs: int, scalar: ScalarRule, infer: TypeRule, result_dtype: ResultDtype,
             vjp: Pullback | None = None, doc: str = "") -> None:
    register(name, infer=infer, impl=_reference(scalar, result_dtype), scalar=scalar, vjp=vjp,
             n_inputs=n_inputs, differentiable=vjp is not None, doc=doc, family=FAMILY)


def _check_kinds(types: InputTypes, allowed: str, what: str) -> None:
    for i, t in enumerate(types):
        if _kind(t.dtype) not in allowed:
            raise ShapeError(f"operand {i} is {t.dtype}; {what}")


def _unary_infer(allowed: str, what: str, out: str | None = None) -> TypeRule:
    def infer(types: InputTypes, **_: Any) -> InferredType:
        _check_kinds(types, allowed, what)
        (t,) = types
        return t.shape, out or t.dtype
    return infer


def _nary_infer(allowed: str, what: str, out: str | None = None) -> TypeRule:
    def infer(types: InputTypes, **_: Any) -> InferredType:
        _check_kinds(types, allowed, what)
        return broadcast_shapes(*[t.shape for t in types]), out or promote_types(*[t.dtype for t in types])
    return infer


def _promoted(*dtypes: DTypeLike) -> str:
    return promote_types(*dtypes)


def _boolean(*_: DTypeLike) -> str:
    return "bool"


# ---- predicates ----------------------------------------------------------------------------

_FLOAT_ONLY = "needs a floating-point tensor (integer and bool inputs are handled by the tg function)"

_declare("isnan", 1, lambda s, x: s.ne(x, x), _unary_infer("f", _FLOAT_ONLY, "bool"), _boolean,
         doc="x is NaN (bool)")
_declare("isinf", 1, lambda s, x: s.eq(s.abs(x), math.inf), _unary_infer("f", _FLOAT_ONLY, "bool"), _boolean,
         doc="x is +inf or -inf (bool)")
_declare("isfinite", 1, lambda s, x: s.lt(s.abs(x), math.inf), _unary_infer("f", _FLOAT_ONLY, "bool"),
         _boolean, doc="x is neither inf nor NaN (bool)")


# ---- rounding (floats; integers are already integral) ----------------------------------------

def _ceil_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    return -s.floor(-x)                  # exact, and ceil(-0.5) is -0.0 as in C


def _trunc_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    return s.where(x < 0.0, -s.floor(-x), s.floor(x))


def _rint_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    """Round half to even from floor alone: x - floor(x) is exact for every float, so the tie test
    is exact too (floor(x + 0.5) is not: it rounds 0.49999999999999994 up)."""
    f = s.floor(x)
    frac = x - f                         # nan for ±inf: every test below is False there
    up = f + 1.0
    tie = s.where(s.eq(s.floor(f * 0.5) * 2.0, f), f, up)
    r = s.where(frac > 0.5, up, s.where(frac < 0.5, f, tie))
    return s.where(s.eq(r, 0.0), x * 0.0, r)      # round(-0.3) is -0.0: keep the sign of zero


def _round_scalar(s: ScalarNamespace, x: ScalarExpr, decimals: int = 0) -> ScalarExpr:
    """torch.round(x, decimals): rint(x * 10^d) / 10^d, or rint(x / 10^-d) * 10^-d for d < 0,
    with 10^d in the tensor's dtype."""
    if decimals == 0:
        return _rint_scalar(s, x)
    scale = 10.0 ** abs(decimals)
    if decimals > 0:
        return _rint_scalar(s, x * scale) / scale
    return _rint_scalar(s, x / scale) * scale


_ROUND_INFER = _unary_infer("f", _FLOAT_ONLY)
_declare("floor", 1, lambda s, x: s.floor(x), _ROUND_INFER, _promoted, vjp=None,
         doc="largest integer <= x (gradient 0)")
_declare("ceil", 1, _ceil_scalar, _ROUND_INFER, _promoted, doc="smallest integer >= x (gradient 0)")
_declare("trunc", 1, _trunc_scalar, _ROUND_INFER, _promoted, doc="x rounded toward zero (gradient 0)")
_declare("round", 1, _round_scalar, _ROUND_INFER, _promoted,
         doc="x rounded half to even, optionally at `decimals` decimal places (gradient 0)")


# ---- division with Python (floor) and C (trunc) semantics -----------------------------------

def _opposite_signs(s: ScalarNamespace, m: ScalarExpr, b: ScalarExpr) -> ScalarExpr:
    """m != 0 and sign(m) != sign(b): where a truncated result needs the floor correction."""
    return s.logical_and(s.ne(m, 0.0), s.ne(s.lt(m, 0.0), s.lt(b, 0.0)))


def _remainder_scalar(s: ScalarNamespace, a: ScalarExpr, b: ScalarExpr) -> ScalarExpr:
    """Python's a % b (sign of b), torch's formula: fmod, then + b where the signs differ."""
    m = s.fmod(a, b)
    return s.where(_opposite_signs(s, m, b), m + b, m)


def _floor_divide_scalar(s: ScalarNamespace, a: ScalarExpr, b: ScalarExpr, floating: bool = True) -> ScalarExpr:
    """Python's a // b. Integers: the truncated quotient, less 1 where the remainder's sign
    differs from b's. Floats: torch's (and CPython's) formula, exact where floor(a / b) is not:
    (a - fmod(a, b)) / b, corrected, rounded to the nearest integer; a / b where b is 0."""
    m = s.fmod(a, b)
    if not floating:
        q = s.trunc_div(a, b)
        return s.where(_opposite_signs(s, m, b), q - 1, q)
    div = (a - m) / b
    div = s.where(_opposite_signs(s, m, b), div - 1.0, div)
    fl = s.floor(div)
    fl = s.where(div - fl > 0.5, fl + 1.0, fl)
    quotient = a / b
    result = s.where(s.ne(div, 0.0), fl, quotient * 0.0)     # a zero quotient keeps the sign of a / b
    return s.where(s.eq(b, 0.0), quotient, result)


def _floor_divide_infer(types: InputTypes, floating: bool = True) -> InferredType:
    shape, dtype = _nary_infer("iuf", "floor_divide needs integer or floating-point tensors")(types)
    if (_kind(dtype) == "f") != bool(floating):
        raise ShapeError(f"attribute floating={floating} does not match the result dtype {dtype}")
    return shape, dtype


def _graph_op(name: str) -> GraphOp:
    return lambda *xs, **kw: apply(name, list(xs), **kw)


_mul, _neg, _div = _graph_op("mul"), _graph_op("neg"), _graph_op("div")


def _remainder_vjp(c: VJPContext, g: Tensor) -> Gradients:
    a, b = c.inputs
    gb = _neg(_mul(g, floor_divide(a, b))) if c.needs[1] else None
    return [g if c.needs[0] else None, gb]


def _fmod_vjp(c: VJPContext, g: Tensor) -> Gradients:
    a, b = c.inputs
    gb = _neg(_mul(g, trunc(_div(a, b)))) if c.needs[1] else None
    return [g if c.needs[0] else None, gb]


_DIVISION_KINDS = "iuf"
_DIVISION_WHAT = "needs integer or floating-point tensors (bool is not divisible)"
_declare("floor_divide", 2, _floor_divide_scalar, _floor_divide_infer, _promoted,
         doc="a // b rounded toward -inf (Python); integer b = 0 gives 0 (gradient 0)")
_declare("remainder", 2, _remainder_scalar, _nary_infer(_DIVISION_KINDS, _DIVISION_WHAT), _promoted,
         vjp=_remainder_vjp, doc="a % b with the sign of b (Python); integer b = 0 gives 0; "
                                 "d/db = -floor_divide(a, b)")
_declare("fmod", 2, lambda s, a, b: s.fmod(a, b), _nary_infer(_DIVISION_KINDS, _DIVISION_WHAT), _promoted,
         vjp=_fmod_vjp, doc="C fmod: a % b with the sign of a; integer b = 0 gives 0; d/db = -trunc(a / b)")


# ---- bitwise and logical ops -----------------------------------------------------------------

_BITWISE_WHAT = "bitwise ops need integer or bool tensors"
_SHIFT_WHAT = "shifts need integer tensors"
for _name in ("bitwise_and", "bitwise_or", "bitwise_xor"):
    _declare(_name, 2, (lambda p: lambda s, a, b: getattr(s, p)(a, b))(_name),
             _nary_infer("biu", _BITWISE_WHAT), _promoted, doc=f"{_name.split('_')[1]} of the bits (bool: logical)")
_declare("bitwise_not", 1, lambda s, x: s.bitwise_not(x), _unary_infer("biu", _BITWISE_WHAT), _promoted,
         doc="~x: every bit flipped (bool: logical not)")
_declare("bitwise_left_shift", 2, lambda s, a, b: s.shift_left(a, b), _nary_infer("iu", _SHIFT_WHAT), _promoted,
         doc="a << b; 0 for b < 0 or b >= the bit width (as torch)")
_declare("bitwise_right_shift", 2, lambda s, a, b: s.shift_right(a, b), _nary_infer("iu", _SHIFT_WHAT),
         _promoted, doc="a >> b (arithmetic for signed types); b < 0 or b >= the bit width gives the "
                        "sign fill (0 or -1), as torch")


def _truth(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    return s.cast(x, "bool")             # nonzero is True, NaN included (as torch)


_ANY = "biuf"
_declare("logical_and", 2, lambda s, a, b: s.logical_and(_truth(s, a), _truth(s, b)),
         _nary_infer(_ANY, "", "bool"), _boolean, doc="a and b, on truth values (nonzero is True)")
_declare("logical_or", 2, lambda s, a, b: s.logical_or(_truth(s, a), _truth(s, b)),
         _nary_infer(_ANY, "", "bool"), _boolean, doc="a or b, on truth values (nonzero is True)")
_declare("logical_xor", 2, lambda s, a, b: s.ne(_truth(s, a), _truth(s, b)),
         _nary_infer(_ANY, "", "bool"), _boolean, doc="a xor b, on truth values (nonzero is True)")
_declare("logical_not", 1, lambda s, x: s.logical_not(_truth(s, x)), _unary_infer(_ANY, "", "bool"),
         _boolean, doc="not x (zero is False, NaN is True)")


# ---- clamp -----------------------------------------------------------------------------------

def _select(cond: Tensor, g: Tensor) -> Tensor:
    return apply("where", [cond, g, 0.0])


def _and(a: Tensor, b: Tensor) -> Tensor:
    return apply("logical_and", [a, b])


def _clamp_vjp(c: VJPContext, g: Tensor) -> Gradients:
    """torch's clamp_backward_min_max: x where min <= x <= max; min where x < min < max;
    max where x > max or max < min (max wins when the bounds cross)."""
    x, lo, hi = c.inputs
    ge, le, lt, gt = (_graph_op(n) for n in ("ge", "le", "lt", "gt"))
    gx = _select(_and(ge(x, lo), le(x, hi)), g) if c.needs[0] else None
    glo = _select(_and(lt(x, lo), lt(lo, hi)), g) if c.needs[1] else None
    ghi = _select(apply("logical_or", [gt(x, hi), lt(hi, lo)]), g) if c.needs[2] else None
    return [gx, glo, ghi]


def _clamp_min_vjp(c: VJPContext, g: Tensor) -> Gradients:
    x, lo = c.inputs
    return [_select(apply("ge", [x, lo]), g) if c.needs[0] else None,
            _select(apply("lt", [x, lo]), g) if c.needs[1] else None]


def _clamp_max_vjp(c: VJPContext, g: Tensor) -> Gradients:
    x, hi = c.inputs
    return [_select(apply("le", [x, hi]), g) if c.needs[0] else None,
            _select(apply("gt", [x, hi]), g) if c.needs[1] else None]


_CLAMP_WHAT = "clamp needs integer or floating-point tensors"
# NaN in x or in a bound propagates: maximum and minimum are NaN-propagating primitives
_declare("clamp", 3, lambda s, x, lo, hi: s.minimum(s.maximum(x, lo), hi), _nary_infer("iuf", _CLAMP_WHAT),
         _promoted, vjp=_clamp_vjp, doc="min(max(x, lo), hi): hi where lo > hi; NaN propagates")
_declare("clamp_min", 2, lambda s, x, lo: s.maximum(x, lo), _nary_infer("iuf", _CLAMP_WHAT), _promoted,
         vjp=_clamp_min_vjp, doc="max(x, lo); the gradient to x where x >= lo, to lo where x < lo")
_declare("clamp_max", 2, lambda s, x, hi: s.minimum(x, hi), _nary_infer("iuf", _CLAMP_WHAT), _promoted,
         vjp=_clamp_max_vjp, doc="min(x, hi); the gradient to x where x <= hi, to hi where x > hi")


# ---- public functions ------------------------------------------------------------------------

def _tensors(values: Sequence[TensorLike], fn: str, names: Sequence[str]) -> list[Tensor]:
    """The operands as graph tensors (Python scalars take their partner's dtype, as in ``apply``);
    a TypeError naming the argument for anything that is not a number or a tensor."""
    for v, n in zip(values, names):
        if not isinstance(v, (Tensor, bool, int, float, np.ndarray, np.number, np.bool_)):
            raise TypeError(f"{fn}: argument {n!r} must be a Tensor or a number, got {type(v).__name__}")
    graph = _graph_of(values)
    like = _weak_scalar_partner(values)
    return [as_tensor(v, like=like, graph=graph) for v in values]


def _require(fn: str, tensors: Sequence[Tensor], names: Sequence[str], kinds: str, what: str) -> None:
    for t, n in zip(tensors, names):
        if _kind(t.dtype) not in kinds:
            raise TypeError(f"{fn}: argument {n!r} is {t.dtype}; {what}")


def _float_predicate(name: str, constant_result: bool, doc: str) -> InputOp:
    def fn(input: TensorLike) -> Tensor:  # noqa: A002 - torch's argument name
        (x,) = _tensors([input], name, ["input"])
        if _kind(x.dtype) == "f":
            return apply(name, [x])
        # integers and bools are never NaN or inf: x == x is True everywhere, x != x False
        return apply("eq" if constant_result else "ne", [x, x])
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


isnan = _float_predicate("isnan", False, "True where ``input`` is NaN (bool; False for integer/bool inputs). "
                                         "No gradient.")
isinf = _float_predicate("isinf", False, "True where ``input`` is +inf or -inf (bool; False for integer/bool "
                                         "inputs). No gradient.")
isfinite = _float_predicate("isfinite", True, "True where ``input`` is neither inf nor NaN (bool; True for "
                                              "integer/bool inputs). No gradient.")


def _rounding(name: str, doc: str) -> InputAttrsOp:
    def fn(input: TensorLike, **attrs: Any) -> Tensor:  # noqa: A002
        (x,) = _tensors([input], name, ["input"])
        _require(name, [x], ["input"], "iuf", "rounding needs a number tensor (bool has no rounding in torch)")
        if _kind(x.dtype) != "f":
            return apply("cast", [x], dtype=x.dtype)     # integers are integral already (torch: a copy)
        return apply(name, [x], **attrs)
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


floor = _rounding("floor", "Largest integer <= ``input``, elementwise (integers unchanged). Gradient 0.")
ceil = _rounding("ceil", "Smallest integer >= ``input``, elementwise (integers unchanged). Gradient 0.")
trunc = _rounding("trunc", "``input`` rounded toward zero, elementwise (integers unchanged). Gradient 0.")
_round = _rounding("round", "")


def round(input: TensorLike, decimals: int = 0) -> Tensor:  # noqa: A001 - torch's name
    """``input`` rounded to the nearest integer, ties to even (as torch.round and NumPy), or with
    ``decimals`` to that many decimal places: rint(x * 10^decimals) / 10^decimals (negative
    ``decimals`` rounds to tens, hundreds...). Integers are unchanged. Gradient 0."""
    if isinstance(decimals, bool) or not isinstance(decimals, (int, np.integer)):
        raise TypeError(f"round: 'decimals' must be an int, got {decimals!r}")
    return _round(input, decimals=int(decimals)) if decimals else _round(input)


def _division(name: str) -> Callable[[TensorLike, TensorLike], tuple[Tensor, Tensor]]:
    def operands(input: TensorLike, other: TensorLike) -> tuple[Tensor, Tensor]:  # noqa: A002
        a, b = _tensors([input, other], name, ["input", "other"])
        _require(name, [a, b], ["input", "other"], _DIVISION_KINDS, _DIVISION_WHAT)
        return a, b
    return operands


def floor_divide(input: TensorLike, other: TensorLike) -> Tensor:  # noqa: A002
    """``input // other`` rounded toward -inf (Python's and torch.floor_divide's semantics) for
    integer and float tensors. Integer division by zero gives 0 (torch raises; docs/numerics.md)
    and INT_MIN // -1 wraps to INT_MIN. Gradient 0 (torch has none)."""
    a, b = _division("floor_divide")(input, other)
    floating = _kind(promote_types(a.dtype, b.dtype)) == "f"
    return apply("floor_divide", [a, b], floating=floating)


def remainder(input: TensorLike, other: TensorLike) -> Tensor:  # noqa: A002
    """``input % other`` with the sign of ``other`` (Python's and torch.remainder's semantics):
    input - floor_divide(input, other) * other, computed exactly through fmod. Integer remainder by
    zero gives 0 (docs/numerics.md). Gradient: 1 for input, -floor_divide(input, other) for other."""
    return apply("remainder", list(_division("remainder")(input, other)))


def fmod(input: TensorLike, other: TensorLike) -> Tensor:  # noqa: A002
    """C's fmod: the remainder of the truncated division, with the sign of ``input`` (torch.fmod).
    Integer fmod by zero gives 0. Gradient: 1 for input, -trunc(input / other) for other."""
    return apply("fmod", list(_division("fmod")(input, other)))


def _bitwise(name: str, kinds: str, what: str, doc: str) -> InputOtherOp:
    def fn(input: TensorLike, other: TensorLike) -> Tensor:  # noqa: A002
        a, b = _tensors([input, other], name, ["input", "other"])
        _require(name, [a, b], ["input", "other"], kinds, what)
        return apply(name, [a, b])
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


bitwise_and = _bitwise("bitwise_and", "biu", _BITWISE_WHAT, "Bitwise AND of integer or bool tensors (``&``).")
bitwise_or = _bitwise("bitwise_or", "biu", _BITWISE_WHAT, "Bitwise OR of integer or bool tensors (``|``).")
bitwise_xor = _bitwise("bitwise_xor", "biu", _BITWISE_WHAT, "Bitwise XOR of integer or bool tensors (``^``).")
bitwise_left_shift = _bitwise(
    "bitwise_left_shift", "iu", _SHIFT_WHAT,
    "``input << other`` on integer tensors; a shift by a negative amount or by the bit width or more "
    "gives 0 (torch's result, on every backend).")
bitwise_right_shift = _bitwise(
    "bitwise_right_shift", "iu", _SHIFT_WHAT,
    "``input >> other`` on integer tensors (arithmetic for signed types); a shift by a negative amount "
    "or by the bit width or more gives the sign fill, 0 or -1 (torch's result, on every backend).")


def bitwise_not(input: TensorLike) -> Tensor:  # noqa: A002
    """``~input``: every bit flipped (integers), logical not (bool)."""
    (x,) = _tensors([input], "bitwise_not", ["input"])
    _require("bitwise_not", [x], ["input"], "biu", _BITWISE_WHAT)
    return apply("bitwise_not", [x])


def _logical(name: str, doc: str) -> InputOtherOp:
    def fn(input: TensorLike, other: TensorLike) -> Tensor:  # noqa: A002
        return apply(name, _tensors([input, other], name, ["input", "other"]))
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


logical_and = _logical("logical_and", "Elementwise AND of truth values (nonzero, NaN included, is True); bool.")
logical_or = _logical("logical_or", "Elementwise OR of truth values (nonzero, NaN included, is True); bool.")
logical_xor = _logical("logical_xor", "Elementwise XOR of truth values (nonzero, NaN included, is True); bool.")


def logical_not(input: TensorLike) -> Tensor:  # noqa: A002
    """Elementwise NOT of truth values (zero is False, NaN is True); bool."""
    return apply("logical_not", _tensors([input], "logical_not", ["input"]))


def clamp(input: TensorLike, min: TensorLike | None = None,  # noqa: A002 - torch's names
          max: TensorLike | None = None) -> Tensor:
    """``input`` clamped into [min, max] (torch.clamp): min(max(input, min), max), so ``max``
    wins where min > max, and NaN in the input or a bound gives NaN. Bounds are Python numbers or
    tensors (broadcast). Gradient as torch: to ``input`` where min <= input <= max, to a tensor
    ``min`` where input < min < max, to a tensor ``max`` where input > max or max < min."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
    given = [(v, n) for v, n in ((input, "input"), (min, "min"), (max, "max")) if v is not None]
    tensors = _tensors([v for v, _ in given], "clamp", [n for _, n in given])
    _require("clamp", tensors, [n for _, n in given], "iuf", _CLAMP_WHAT)
    if min is None:
        return apply("clamp_max", tensors)
    if max is None:
        return apply("clamp_min", tensors)
    return apply("clamp", tensors)


def clip(input: TensorLike, min: TensorLike | None = None,  # noqa: A002
         max: TensorLike | None = None) -> Tensor:
    """Alias of :func:`clamp` (torch.clip)."""
    return clamp(input, min, max)


# ---- Tensor operators and methods ------------------------------------------------------------

def install_tensor_methods(T: type) -> None:
    """The Python operators // % & | ^ ~ << >> (and reflected forms) and the torch-like methods."""
    # setattr: the class declares these for the type checker; here they get their code
    operators: dict[str, Callable[..., Tensor]] = {
        "__floordiv__": lambda a, b: floor_divide(a, b),
        "__rfloordiv__": lambda a, b: floor_divide(b, a),
        "__mod__": lambda a, b: remainder(a, b),
        "__rmod__": lambda a, b: remainder(b, a),
        "__and__": lambda a, b: bitwise_and(a, b),
        "__rand__": lambda a, b: bitwise_and(b, a),
        "__or__": lambda a, b: bitwise_or(a, b),
        "__ror__": lambda a, b: bitwise_or(b, a),
        "__xor__": lambda a, b: bitwise_xor(a, b),
        "__rxor__": lambda a, b: bitwise_xor(b, a),
        "__invert__": lambda a: bitwise_not(a),
        "__lshift__": lambda a, b: bitwise_left_shift(a, b),
        "__rlshift__": lambda a, b: bitwise_left_shift(b, a),
        "__rshift__": lambda a, b: bitwise_right_shift(a, b),
        "__rrshift__": lambda a, b: bitwise_right_shift(b, a),
    }
    for name, method in operators.items():
        setattr(T, name, method)
    methods: tuple[Callable[..., Tensor], ...] = (
        isnan, isinf, isfinite, floor, ceil, trunc, round, floor_divide, remainder, fmod, bitwise_and, bitwise_or,
        bitwise_xor, bitwise_not, bitwise_left_shift, bitwise_right_shift, logical_and, logical_or, logical_xor,
        logical_not, clamp, clip)
    for fn in methods:
        setattr(T, fn.__name__, fn)
