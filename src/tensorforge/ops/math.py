"""Elementwise math: trigonometric, hyperbolic, logarithmic and exponential variants, erf, gelu.

Every op here is an elementwise op declared once (type rule, NumPy reference, pullback, scalar
expression), so it fuses with its neighbours on both code generators. Only sin, cos and erf are
new scalar primitives (ops/scalar.py, lowered in backends/llvm/vecmath_trig.py and
backends/triton/scalar.py); everything else is composed from primitives in its scalar
expression, with the edge cases (signed zeros, ±inf, nan, overflow) handled by selects:

    tan = sin / cos; atan by range reduction to |t| <= tan(pi/8) and an odd polynomial;
    asin, acos, atan2 from atan; log1p and expm1 by Kahan's correction tricks on log and exp;
    sinh, cosh from exp(|x|/2) (expm1 near 0 for sinh); asinh, acosh, atanh from log1p;
    log2, log10 as scaled log; exp2 as pow(2, x) (vecmath's pow is accurate to ~1 ulp).

Dtypes follow torch: integer and bool inputs give float32 (``true_divide_dtype``), except
``square`` which keeps integers (and, as torch, turns bool into int64). docs/numerics.md lists
the measured accuracy of each op (tools/ulp_sweep.py).
"""
from __future__ import annotations

import math as _m
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .._typing import Array, TensorLike
from ._types import (GraphOp, Gradients, InferredType, InputTypes, Pullback, Reference, ScalarExpr,
                     ScalarNamespace, ScalarRule, TypeRule, UnaryOp)
from .elementwise import _quiet
from .registry import apply, broadcast_shapes, register
from .scalar import promote_types, true_divide_dtype

if TYPE_CHECKING:
    from ..graph import Tensor
    from .registry import VJPContext

_LN2 = _m.log(2.0)
_PI = _m.pi
_PI_LO = 1.2246467991473532e-16          # pi - float(pi)
_PIO2_LO, _PIO4_LO = _PI_LO / 2, _PI_LO / 4
_TAN_PI_8 = 0.41421356237309503           # sqrt(2) - 1
_TAN_3PI_8 = 2.414213562373095            # sqrt(2) + 1
_BIG = 2.0 ** 26                          # past it, sqrt(x^2 + 1) == |x| in float64
# atan(t) = t + t z P(z), z = t^2 on |t| <= tan(pi/8): fitted against mpmath (rel. error 1.4e-16)
_ATAN_P = (-0.3333333333333333, 0.1999999999999548, -0.14285714284658702, 0.11111111014675351,
           -0.09090904556239807, 0.07692182716993239, -0.06664505197596049, 0.05858097866643959,
           -0.050851976770859765, 0.03922476493475609, -0.019168872538341205)


# ---- type rules ----------------------------------------------------------------------------

def _float_unary_type(types: InputTypes, **_: Any) -> InferredType:
    (t,) = types
    return t.shape, true_divide_dtype(t.dtype)


def _float_nary_type(types: InputTypes, **_: Any) -> InferredType:
    return broadcast_shapes(*(t.shape for t in types)), true_divide_dtype(promote_types(*(t.dtype for t in types)))


def _same_type(types: InputTypes, **_: Any) -> InferredType:
    (t,) = types
    return t.shape, t.dtype


def _float_ref(fn: Callable[..., Any]) -> Reference:
    """A NumPy reference evaluated in float64 and rounded once to the declared dtype: NumPy's
    float32 sin/cos/... are off by an ulp where torch's are correctly rounded."""
    def ref(*xs: Array) -> Array:
        dtype = true_divide_dtype(promote_types(*(np.asarray(x).dtype for x in xs)))
        return np.asarray(fn(*(np.asarray(x, dtype=np.float64) for x in xs))).astype(dtype)
    return ref


def _declare(name: str, n: int, ref: Reference, scalar: ScalarRule, vjp: Pullback, infer: TypeRule | None = None,
             doc: str = "") -> None:
    register(name, infer=infer or (_float_unary_type if n == 1 else _float_nary_type), impl=_quiet(ref),
             scalar=scalar, vjp=vjp, n_inputs=n, family="math", doc=doc)


# ---- scalar building blocks (work in both the SYMBOLIC and the NUMPY namespace) ------------

def _f(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    """x as a float: x / 1 is exact for floats and gives float32 for integers (FLOAT_RESULT)."""
    return s.div(x, 1.0)


def _poly(s: ScalarNamespace, z: ScalarExpr, coeffs: Sequence[float]) -> ScalarExpr:
    """Horner, lowest degree first."""
    acc = s.const(coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = s.add(s.mul(acc, z), c)
    return acc


def _keep_zero(s: ScalarNamespace, x: ScalarExpr, r: ScalarExpr) -> ScalarExpr:
    """r, but x itself where x is ±0 (odd functions keep the sign of zero)."""
    return s.where(s.eq(x, 0.0), x, r)


def _odd(s: ScalarNamespace, x: ScalarExpr, r_of_abs: ScalarExpr) -> ScalarExpr:
    return _keep_zero(s, x, s.where(s.lt(x, 0.0), s.neg(r_of_abs), r_of_abs))


def _or(s: ScalarNamespace, a: ScalarExpr, b: ScalarExpr) -> ScalarExpr:
    # a select, not logical_or: Triton's | is refused on 0-d booleans
    return s.where(a, a, b)


def _and(s: ScalarNamespace, a: ScalarExpr, b: ScalarExpr) -> ScalarExpr:
    return s.where(a, b, a)


def _sign_bit(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    """x < 0 or x is -0.0 (1/-0.0 = -inf)."""
    return _or(s, s.lt(x, 0.0), _and(s, s.eq(x, 0.0), s.lt(s.div(1.0, x), 0.0)))


def atan_abs(s: ScalarNamespace, ax: ScalarExpr) -> ScalarExpr:
    """atan(|x|) for ax = |x| >= 0 (nan stays nan, inf gives pi/2): reduce to |t| <= tan(pi/8)
    with atan(a) = pi/2 - atan(1/a) and atan(a) = pi/4 + atan((a-1)/(a+1))."""
    big = s.gt(ax, _TAN_3PI_8)
    mid = s.gt(ax, _TAN_PI_8)
    t = s.where(big, s.div(-1.0, ax), s.where(mid, s.div(s.sub(ax, 1.0), s.add(ax, 1.0)), ax))
    base = s.where(big, _PI / 2, s.where(mid, _PI / 4, 0.0))
    base_lo = s.where(big, _PIO2_LO, s.where(mid, _PIO4_LO, 0.0))
    z = s.mul(t, t)
    return s.add(base, s.add(base_lo, s.add(t, s.mul(s.mul(t, z), _poly(s, z, _ATAN_P)))))


def atan_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    x = _f(s, x)
    return _odd(s, x, atan_abs(s, s.abs(x)))


def log1p_scalar(s: ScalarNamespace, u: ScalarExpr) -> ScalarExpr:
    """log(1+u) without cancellation: log(w) u / (w - 1) with w = 1 + u corrects the rounding of
    w (Goldberg); w == 1 gives u (keeps -0.0), w == inf gives inf."""
    u = _f(s, u)
    w = s.add(u, 1.0)
    r = s.mul(s.log(w), s.div(u, s.sub(w, 1.0)))      # u/(w-1) ~ 1: no overflow for huge u
    return s.where(s.eq(w, 1.0), u, s.where(s.eq(w, _m.inf), w, r))


def expm1_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    """e^x - 1 without cancellation (Kahan): (u - 1) x / log(u) with u = e^x; u == 1 gives x,
    u - 1 == -1 gives -1, u == inf gives inf."""
    x = _f(s, x)
    u = s.exp(x)
    um1 = s.sub(u, 1.0)
    r = s.mul(um1, s.div(x, s.log(u)))                 # x/log(u) ~ 1: no overflow near the top
    r = s.where(s.eq(um1, -1.0), -1.0, s.where(s.eq(u, _m.inf), u, r))
    return s.where(s.eq(u, 1.0), x, r)


_EXP2_BITS = 11      # |round(x)| < 2^11 covers every finite non-trivial float64 result


def _exp2_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    """2^x = 2^n e^{f ln 2}, n = round(x), f = x - n exact: 2^n is a product of exact powers of
    two picked by the bits of |n| (pow(2, x) = exp(x log 2) would turn the rounding of x log 2
    into ~|x| ulp of error in float64)."""
    x = _f(s, x)
    xc = s.minimum(s.maximum(x, -1100.0), 1100.0)       # beyond: 0 or inf either way
    n = s.floor(s.add(xc, 0.5))
    y = s.exp(s.mul(s.sub(xc, n), _LN2))
    t = s.abs(n)
    negative = s.lt(n, 0.0)
    for k in range(_EXP2_BITS):
        half = s.floor(s.mul(t, 0.5))
        odd = s.gt(s.sub(t, s.mul(half, 2.0)), 0.0)
        scaled = y
        for _ in range(max(1, 2 ** k // 512)):           # 2^1024 is applied as 2^512 twice
            step = 2.0 ** min(2 ** k, 512)
            scaled = s.mul(scaled, s.where(negative, 1.0 / step, step))
        y = s.where(odd, scaled, y)
        t = half
    return s.where(s.ne(x, x), x, y)


def _sinh_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    x = _f(s, x)
    ax = s.abs(x)
    e = expm1_scalar(s, ax)
    small = s.mul(0.5, s.add(e, s.div(e, s.add(e, 1.0))))
    w = s.exp(s.mul(0.5, ax))                   # e^|x| = w^2 stays finite as long as sinh does
    big = s.sub(s.mul(s.mul(0.5, w), w), s.div(s.div(0.5, w), w))
    return _odd(s, x, s.where(s.lt(ax, 1.0), small, big))


def _cosh_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    w = s.exp(s.mul(0.5, s.abs(_f(s, x))))
    return s.add(s.mul(s.mul(0.5, w), w), s.div(s.div(0.5, w), w))


def _asinh_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    x = _f(s, x)
    ax = s.abs(x)
    x2 = s.mul(ax, ax)
    near = log1p_scalar(s, s.add(ax, s.div(x2, s.add(1.0, s.sqrt(s.add(1.0, x2))))))
    far = s.add(s.log(ax), _LN2)
    return _odd(s, x, s.where(s.gt(ax, _BIG), far, near))


def _acosh_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    x = _f(s, x)
    t = s.sub(x, 1.0)
    near = log1p_scalar(s, s.add(t, s.sqrt(s.add(s.mul(2.0, t), s.mul(t, t)))))
    return s.where(s.gt(x, _BIG), s.add(s.log(x), _LN2), near)


def _atanh_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    # on |x|: 2|x|/(1-|x|) >= 0, so log1p never meets the cancellation near -1
    x = _f(s, x)
    ax = s.abs(x)
    return _odd(s, x, s.mul(0.5, log1p_scalar(s, s.div(s.mul(2.0, ax), s.sub(1.0, ax)))))


def _asin_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    x = _f(s, x)
    return atan_scalar(s, s.div(x, s.sqrt(s.mul(s.sub(1.0, x), s.add(1.0, x)))))


def _acos_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    x = _f(s, x)
    return s.mul(2.0, atan_abs(s, s.sqrt(s.div(s.sub(1.0, x), s.add(1.0, x)))))


def _atan2_scalar(s: ScalarNamespace, y: ScalarExpr, x: ScalarExpr) -> ScalarExpr:
    """atan2 from atan(|y|/|x|) and the signs (sign bits, so ±0 picks the half-plane as C does);
    0/0 and inf/inf, where the ratio is nan, are the angles 0 and pi/4."""
    y, x = _f(s, y), _f(s, x)
    ay, ax = s.abs(y), s.abs(x)
    theta = atan_abs(s, s.div(ay, ax))
    theta = s.where(_and(s, s.eq(ay, 0.0), s.eq(ax, 0.0)), 0.0, theta)
    theta = s.where(_and(s, s.eq(ay, _m.inf), s.eq(ax, _m.inf)), _PI / 4, theta)
    theta = s.where(_sign_bit(s, x), s.add(s.sub(_PI, theta), _PI_LO), theta)
    r = s.where(_sign_bit(s, y), s.neg(theta), theta)
    return s.where(_or(s, s.ne(x, x), s.ne(y, y)), s.add(x, y), r)


def _copysign_scalar(s: ScalarNamespace, a: ScalarExpr, b: ScalarExpr) -> ScalarExpr:
    a, b = _f(s, a), _f(s, b)
    mag = s.abs(a)
    return s.where(_sign_bit(s, b), s.neg(mag), mag)


def _logaddexp_scalar(s: ScalarNamespace, a: ScalarExpr, b: ScalarExpr) -> ScalarExpr:
    a, b = _f(s, a), _f(s, b)
    r = s.add(s.maximum(a, b), log1p_scalar(s, s.exp(s.neg(s.abs(s.sub(a, b))))))
    return s.where(s.eq(a, b), s.add(a, _LN2), r)      # a == b (±inf too, where a - b is nan)


def _lerp_scalar(s: ScalarNamespace, start: ScalarExpr, end: ScalarExpr, weight: ScalarExpr) -> ScalarExpr:
    """torch's two-sided form: exact at weight 0 and at weight 1."""
    start, end, weight = _f(s, start), _f(s, end), _f(s, weight)
    diff = s.sub(end, start)
    return s.where(s.lt(s.abs(weight), 0.5), s.add(start, s.mul(weight, diff)),
                   s.sub(end, s.mul(diff, s.sub(1.0, weight))))


_SQRT1_2 = _m.sqrt(0.5)
_GELU_K = _m.sqrt(2.0 / _m.pi)
_GELU_C = 0.044715


def _gelu_scalar(s: ScalarNamespace, x: ScalarExpr, approximate: str = "none") -> ScalarExpr:
    x = _f(s, x)
    if approximate == "tanh":
        inner = s.mul(_GELU_K, s.add(x, s.mul(_GELU_C, s.mul(x, s.mul(x, x)))))
        return s.mul(s.mul(0.5, x), s.add(1.0, s.tanh(inner)))
    return s.mul(s.mul(x, 0.5), s.add(1.0, s.erf(s.mul(x, _SQRT1_2))))


# ---- NumPy references ------------------------------------------------------------------------

def _np_erf(x: Array) -> Array:
    from .scalar import NUMPY
    return NUMPY.erf(x)


def _np_lerp(a: Array, b: Array, w: Array) -> Array:
    diff = b - a
    out: Array = np.where(np.abs(w) < 0.5, a + w * diff, b - diff * (1 - w))
    return out


def _np_gelu(x: Array, approximate: str = "none") -> Array:
    dtype = true_divide_dtype(np.asarray(x).dtype)
    x = np.asarray(x, dtype=np.float64)
    if approximate == "tanh":
        y = 0.5 * x * (1 + np.tanh(_GELU_K * (x + _GELU_C * x * x * x)))
    else:
        y = x * 0.5 * (1 + _np_erf(x * _SQRT1_2))
    out: Array = y.astype(dtype)
    return out


# ---- pullbacks (graph ops) -------------------------------------------------------------------

def _g(name: str) -> GraphOp:
    return lambda *xs, **kw: apply(name, list(xs), **kw)


_add, _sub, _mul, _div, _neg, _exp, _sqrt = (_g(n) for n in ("add", "sub", "mul", "div", "neg", "exp", "sqrt"))
_where, _eq, _lt, _abs = _g("where"), _g("eq"), _g("lt"), _g("abs")


def _sq(x: TensorLike) -> Tensor:
    return _mul(x, x)


def _erf_grad(x: TensorLike) -> Tensor:
    return _mul(2.0 / _m.sqrt(_m.pi), _exp(_neg(_sq(x))))


def _gelu_vjp(c: VJPContext, g: Tensor) -> Gradients:
    x = c.x
    if c.attrs.get("approximate", "none") == "tanh":
        inner = _mul(_GELU_K, _add(x, _mul(_GELU_C, _mul(x, _sq(x)))))
        t = apply("tanh", [inner])
        dinner = _mul(_GELU_K, _add(1.0, _mul(3.0 * _GELU_C, _sq(x))))
        d = _add(_mul(0.5, _add(1.0, t)), _mul(_mul(0.5, x), _mul(_sub(1.0, _sq(t)), dinner)))
    else:
        cdf = _mul(0.5, _add(1.0, apply("erf", [_mul(x, _SQRT1_2)])))
        pdf = _mul(1.0 / _m.sqrt(2.0 * _m.pi), _exp(_mul(-0.5, _sq(x))))
        d = _add(cdf, _mul(x, pdf))
    return [_mul(g, d)]


def _atan2_vjp(c: VJPContext, g: Tensor) -> Gradients:
    y, x = c.inputs
    r2 = _add(_sq(x), _sq(y))
    return [_mul(g, _div(x, r2)), _mul(g, _div(_neg(y), r2))]


def _copysign_vjp(c: VJPContext, g: Tensor) -> Gradients:
    a = c.inputs[0]
    # d/da = sign(a) sign(out), 0 at a == 0 (torch); no gradient flows to the sign source
    return [_where(_eq(a, 0.0), 0.0, _mul(g, _div(c.output, a))), _mul(g, 0.0)]


def _logaddexp_vjp(c: VJPContext, g: Tensor) -> Gradients:
    a, b = c.inputs
    return [_mul(g, _exp(_sub(a, c.output))), _mul(g, _exp(_sub(b, c.output)))]


def _lerp_vjp(c: VJPContext, g: Tensor) -> Gradients:
    start, end, weight = c.inputs
    return [_mul(g, _sub(1.0, weight)), _mul(g, weight), _mul(g, _sub(end, start))]


# ---- declarations ----------------------------------------------------------------------------

def _unary(name: str, ref: Callable[..., Any], scalar: ScalarRule, vjp: Pullback, doc: str,
           infer: TypeRule | None = None) -> None:
    _declare(name, 1, _float_ref(ref), scalar, vjp, infer=infer, doc=doc)


_unary("sin", np.sin, lambda s, x: s.sin(x), lambda c, g: [_mul(g, apply("cos", [c.x]))], "sine")
_unary("cos", np.cos, lambda s, x: s.cos(x), lambda c, g: [_neg(_mul(g, apply("sin", [c.x])))], "cosine")
_unary("tan", np.tan, lambda s, x: s.div(s.sin(x), s.cos(x)),
       lambda c, g: [_mul(g, _add(1.0, _sq(c.output)))], "tangent; f' = 1 + f^2")
_unary("asin", np.arcsin, _asin_scalar, lambda c, g: [_div(g, _sqrt(_sub(1.0, _sq(c.x))))], "arcsine")
_unary("acos", np.arccos, _acos_scalar, lambda c, g: [_neg(_div(g, _sqrt(_sub(1.0, _sq(c.x)))))], "arccosine")
_unary("atan", np.arctan, atan_scalar, lambda c, g: [_div(g, _add(1.0, _sq(c.x)))], "arctangent")
_unary("sinh", np.sinh, _sinh_scalar, lambda c, g: [_mul(g, apply("cosh", [c.x]))], "hyperbolic sine")
_unary("cosh", np.cosh, _cosh_scalar, lambda c, g: [_mul(g, apply("sinh", [c.x]))], "hyperbolic cosine")
_unary("asinh", np.arcsinh, _asinh_scalar, lambda c, g: [_div(g, _sqrt(_add(_sq(c.x), 1.0)))],
       "inverse hyperbolic sine")
_unary("acosh", np.arccosh, _acosh_scalar, lambda c, g: [_div(g, _sqrt(_sub(_sq(c.x), 1.0)))],
       "inverse hyperbolic cosine")
_unary("atanh", np.arctanh, _atanh_scalar, lambda c, g: [_div(g, _sub(1.0, _sq(c.x)))],
       "inverse hyperbolic tangent")
_unary("log2", np.log2, lambda s, x: s.mul(s.log(x), 1.0 / _LN2), lambda c, g: [_div(g, _mul(c.x, _LN2))],
       "base-2 logarithm")
_unary("log10", np.log10, lambda s, x: s.mul(s.log(x), 1.0 / _m.log(10.0)),
       lambda c, g: [_div(g, _mul(c.x, _m.log(10.0)))], "base-10 logarithm")
_unary("log1p", np.log1p, log1p_scalar, lambda c, g: [_div(g, _add(c.x, 1.0))], "log(1 + x), accurate near 0")
_unary("expm1", np.expm1, expm1_scalar, lambda c, g: [_mul(g, _add(c.output, 1.0))], "e^x - 1, accurate near 0")
_unary("exp2", np.exp2, _exp2_scalar, lambda c, g: [_mul(g, _mul(c.output, _LN2))], "2^x")
_unary("rsqrt", lambda x: 1 / np.sqrt(x), lambda s, x: s.div(1.0, s.sqrt(x)),
       lambda c, g: [_mul(_mul(g, -0.5), _mul(c.output, _sq(c.output)))], "1 / sqrt(x)")
_unary("reciprocal", lambda x: 1 / x, lambda s, x: s.div(1.0, x),
       lambda c, g: [_neg(_mul(g, _sq(c.output)))], "1 / x")
_unary("erf", _np_erf, lambda s, x: s.erf(x), lambda c, g: [_mul(g, _erf_grad(c.x))], "the error function")
register("square", infer=_same_type, impl=_quiet(lambda x: x * x), scalar=lambda s, x: s.mul(x, x),
         vjp=lambda c, g: [_mul(g, _mul(c.x, 2.0))], n_inputs=1, family="math", doc="x * x")

_declare("atan2", 2, _float_ref(np.arctan2), _atan2_scalar, _atan2_vjp, doc="angle of the point (x, y)")
def _np_copysign(a: Array, b: Array) -> Array:
    # a nan sign source counts as positive: which nan (sign bit) an op returns differs between
    # NumPy, LLVM and libdevice, so reading its bit would make the backends disagree
    return np.copysign(a, np.where(np.isnan(b), 1.0, b))


_declare("copysign", 2, _float_ref(_np_copysign), _copysign_scalar, _copysign_vjp, doc="|a| with the sign of b")
_declare("logaddexp", 2, _float_ref(np.logaddexp), _logaddexp_scalar, _logaddexp_vjp, doc="log(e^a + e^b)")
_declare("lerp", 3, _float_ref(_np_lerp), _lerp_scalar, _lerp_vjp, doc="start + weight (end - start)")
register("gelu", infer=_float_unary_type, impl=_quiet(_np_gelu), scalar=_gelu_scalar, vjp=_gelu_vjp,
         n_inputs=1, family="math", doc="x Phi(x), exact (erf) or tanh approximation")


# ---- public functions ------------------------------------------------------------------------

def _public_unary(name: str, text: str) -> UnaryOp:
    def fn(x: TensorLike) -> Tensor:
        return apply(name, [x])
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = text
    return fn


sin = _public_unary("sin", "sin(x), elementwise; gradient cos(x). Integer inputs give float32.")
cos = _public_unary("cos", "cos(x), elementwise; gradient -sin(x).")
tan = _public_unary("tan", "tan(x) = sin(x)/cos(x); gradient 1 + tan(x)^2.")
asin = _public_unary("asin", "arcsin(x), nan outside [-1, 1]; gradient 1/sqrt(1 - x^2).")
acos = _public_unary("acos", "arccos(x), nan outside [-1, 1]; gradient -1/sqrt(1 - x^2).")
atan = _public_unary("atan", "arctan(x); gradient 1/(1 + x^2).")
sinh = _public_unary("sinh", "sinh(x); gradient cosh(x).")
cosh = _public_unary("cosh", "cosh(x); gradient sinh(x).")
asinh = _public_unary("asinh", "arsinh(x) = log(x + sqrt(x^2 + 1)); gradient 1/sqrt(x^2 + 1).")
acosh = _public_unary("acosh", "arcosh(x), nan below 1; gradient 1/sqrt(x^2 - 1).")
atanh = _public_unary("atanh", "artanh(x), ±inf at ±1, nan beyond; gradient 1/(1 - x^2).")
log2 = _public_unary("log2", "log base 2; gradient 1/(x ln 2).")
log10 = _public_unary("log10", "log base 10; gradient 1/(x ln 10).")
log1p = _public_unary("log1p", "log(1 + x), accurate for small x; gradient 1/(1 + x).")
expm1 = _public_unary("expm1", "e^x - 1, accurate for small x; gradient e^x.")
exp2 = _public_unary("exp2", "2^x; gradient 2^x ln 2.")
rsqrt = _public_unary("rsqrt", "1/sqrt(x); gradient -1/(2 x^1.5).")
reciprocal = _public_unary("reciprocal", "1/x; gradient -1/x^2.")
erf = _public_unary("erf", "The error function 2/sqrt(pi) int_0^x e^{-t^2} dt; gradient 2/sqrt(pi) e^{-x^2}.")


def square(x: TensorLike) -> Tensor:
    """x * x, elementwise; integers stay integers and bool becomes int64 (as torch); gradient 2x."""
    from ..graph import Tensor
    if isinstance(x, Tensor) and x.dtype == "bool":
        x = apply("cast", [x], dtype="int64")
    return apply("square", [x])


def atan2(input: TensorLike, other: TensorLike) -> Tensor:  # noqa: A002 - torch's argument names
    """The angle of the point (other, input), i.e. atan(input/other) in the right quadrant, in
    [-pi, pi]; signed zeros pick the half-plane as C's atan2. Gradients: other/r^2 w.r.t.
    input, -input/r^2 w.r.t. other, r^2 = input^2 + other^2."""
    return apply("atan2", [input, other])


def copysign(input: TensorLike, other: TensorLike) -> Tensor:  # noqa: A002
    """|input| with the sign (bit) of other; a nan ``other`` counts as positive (its sign bit is
    not reproducible across backends; torch reads it). Gradient sign(input) sign(out) w.r.t. input (0 where
    input is 0) and 0 w.r.t. other, as torch."""
    return apply("copysign", [input, other])


def logaddexp(input: TensorLike, other: TensorLike) -> Tensor:  # noqa: A002
    """log(e^input + e^other), without overflow; gradients e^(input - out) and e^(other - out)."""
    return apply("logaddexp", [input, other])


def lerp(start: TensorLike, end: TensorLike, weight: TensorLike) -> Tensor:
    """start + weight (end - start), elementwise with broadcasting (weight a tensor or a number),
    exact at weight 0 and 1 as torch. Gradients 1 - weight, weight and end - start."""
    return apply("lerp", [start, end, weight])


def gelu(x: TensorLike, approximate: str = "none") -> Tensor:
    """x Phi(x), Phi the standard normal CDF: ``approximate="none"`` uses erf,
    ``"tanh"`` the tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). The
    gradient is the exact derivative of the chosen form."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return apply("gelu", [x], approximate=approximate)


PUBLIC = ("sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh",
          "log2", "log10", "log1p", "expm1", "exp2", "rsqrt", "reciprocal", "square", "erf", "lerp",
          "copysign", "logaddexp", "gelu")
# Tensor methods torch has (x.sin(), x.lerp(end, weight), ...); gelu is torch.nn.functional only
TENSOR_METHODS = tuple(n for n in PUBLIC if n != "gelu")


def install_tensor_methods(tensor_cls: type) -> None:
    """x.sin(), x.atan2(other), x.lerp(end, weight), ... as in torch."""
    namespace = globals()
    for name in TENSOR_METHODS:
        setattr(tensor_cls, name, namespace[name])
