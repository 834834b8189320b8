"""Elementwise ops: arithmetic, math, comparisons and activations.

Each op is declared once: type rule (NumPy broadcasting), NumPy reference,
pullback, and the scalar expression that the code generators fuse.
Broadcast gradients are summed back to the input's shape by autodiff, so the
pullbacks here are written as if no broadcasting happened.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .._typing import Array, TensorLike
from ._types import (BinaryOp, GraphOp, Gradients, InferredType, InputTypes, Pullback, Reference, ScalarExpr,
                     ScalarNamespace, ScalarRule, TypeRule, UnaryOp)
from .registry import ShapeError, TensorType, apply, broadcast_shapes, register
from . import signed_zero   # maximum/minimum of +-0: IEEE 754-2019 (+0 > -0) on every backend
from .scalar import promote_types, true_divide_dtype

if TYPE_CHECKING:
    from ..graph import Tensor
    from .registry import VJPContext

FLOAT_KINDS = "f"


def _float_type(types: InputTypes, **_: Any) -> InferredType:
    (t,) = types
    if np.dtype(t.dtype).kind not in FLOAT_KINDS:
        raise ShapeError(f"expects a floating-point tensor, got {t.dtype}")
    return t.shape, t.dtype


def _same_type(types: InputTypes, **_: Any) -> InferredType:
    (t,) = types
    return t.shape, t.dtype


def _binary_type(types: InputTypes, **_: Any) -> InferredType:
    a, b = types
    return broadcast_shapes(a.shape, b.shape), promote_types(a.dtype, b.dtype)


def _compare_type(types: InputTypes, **_: Any) -> InferredType:
    a, b = types
    return broadcast_shapes(a.shape, b.shape), "bool"


def _quiet(fn: Callable[..., Any]) -> Reference:
    """NumPy references must not warn on inf/nan: the compiled code does not either."""
    def run(*args: Any, **kw: Any) -> Array:
        with np.errstate(all="ignore"):
            return np.asarray(fn(*args, **kw))
    run.__name__ = getattr(fn, "__name__", "impl")
    return run


def unary(name: str, impl: Callable[..., Any], scalar: ScalarRule, vjp: Pullback | None = None,
          infer: TypeRule = _float_type, differentiable: bool = True, doc: str = "") -> None:
    register(name, infer=infer, impl=_quiet(impl), scalar=scalar, vjp=vjp, n_inputs=1,
             differentiable=differentiable, doc=doc, family="elementwise")


def binary(name: str, impl: Callable[..., Any], scalar: ScalarRule, vjp: Pullback | None = None,
           infer: TypeRule = _binary_type, differentiable: bool = True, doc: str = "") -> None:
    register(name, infer=infer, impl=_quiet(impl), scalar=scalar, vjp=vjp, n_inputs=2,
             differentiable=differentiable, doc=doc, family="elementwise")


# ---- small graph-building helpers used by pullbacks -----------------------------------

def _op(name: str) -> GraphOp:
    return lambda *xs, **kw: apply(name, list(xs), **kw)


add, sub, mul, div, neg, exp, log = (_op(n) for n in ("add", "sub", "mul", "div", "neg", "exp", "log"))
gt, lt, eq, where, sign, cast = (_op(n) for n in ("gt", "lt", "eq", "where", "sign", "cast"))


def _mask(cond: Tensor, like: Tensor) -> Tensor:
    return cast(cond, dtype=like.dtype)


# ---- arithmetic ------------------------------------------------------------------------

binary("add", np.add, lambda s, a, b: a + b, lambda c, g: [g, g], doc="a + b")
binary("sub", np.subtract, lambda s, a, b: a - b, lambda c, g: [g, neg(g)], doc="a - b")
binary("mul", np.multiply, lambda s, a, b: a * b,
       lambda c, g: [mul(g, c.inputs[1]), mul(g, c.inputs[0])], doc="a * b")


def _div_type(types: InputTypes, **_: Any) -> InferredType:
    shape, dtype = _binary_type(types)
    return shape, true_divide_dtype(dtype)   # of integers: float32, the default float


def _true_divide(a: Array, b: Array) -> Array:
    # NumPy would divide integers in float64; compute in the result type the graph declares
    if np.asarray(a).dtype.kind != "f" and np.asarray(b).dtype.kind != "f":
        a = np.asarray(a, dtype=np.float32)
    return np.true_divide(a, b)


binary("div", _true_divide, lambda s, a, b: a / b,
       lambda c, g: [div(g, c.inputs[1]), neg(div(mul(g, c.output), c.inputs[1]))], infer=_div_type, doc="a / b")


def _pow_vjp(c: VJPContext, g: Tensor) -> Gradients:
    """torch's conventions at the edges: d/da = b a^(b-1), taken as 0 where b == 0 (so
    d(x**0)/dx = 0 at x = 0); d/db = a^b log a, taken as 0 where a == 0 and b >= 0."""
    a, b = c.inputs
    ga = gb = None
    if c.needs[0]:
        ga = mul(g, where(eq(b, 0.0), 0.0, mul(b, apply("pow", [a, sub(b, 1.0)]))))
    if c.needs[1]:
        full = mul(c.output, log(a))
        gb = mul(g, where(eq(a, 0.0), where(apply("ge", [b, 0.0]), 0.0, full), full))
    return [ga, gb]


def _pow_impl(a: Array, b: Array) -> Array:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "biu" and b.dtype.kind in "iu" and b.size and (b < 0).any():
        raise ValueError("pow: Integers to negative integer powers are not allowed "
                         f"(base {a.dtype}, exponent {b.dtype} with a negative value)")
    return np.power(a, b)


def check_integer_pow(base: TensorLike, exponent: TensorLike) -> None:
    """Integer tensors to negative integer powers are an error (as in torch and NumPy): raised
    when the graph is built if the exponent is a known constant, else by the interpreter."""
    from ..graph import Tensor
    bdt = base.dtype if isinstance(base, Tensor) else ("int64" if isinstance(base, int) else "float32")
    if np.dtype(bdt).kind not in "biu":
        return
    if isinstance(exponent, Tensor):
        if exponent.op != "constant" or np.dtype(exponent.dtype).kind not in "iu":
            return
        value = exponent.graph.values[exponent.id]
    elif isinstance(exponent, (int, np.integer)) and not isinstance(exponent, bool):
        value = np.asarray(exponent)
    else:
        return
    if (np.asarray(value) < 0).any():
        raise ValueError(f"pow: Integers to negative integer powers are not allowed (a {bdt} base "
                         f"to the power {np.asarray(value).tolist()}); cast the base to a float first")


binary("pow", _pow_impl, lambda s, a, b: s.pow(a, b), _pow_vjp,
       doc="a ** b (integers: exact, negative exponents are an error)")


def _minmax_vjp(cmp: GraphOp) -> Pullback:
    def vjp(c: VJPContext, g: Tensor) -> Gradients:
        a, b = c.inputs
        # ties split the gradient evenly, as torch.maximum/minimum do
        m = add(_mask(cmp(a, b), g), mul(_mask(eq(a, b), g), 0.5))
        return [mul(g, m), sub(g, mul(g, m))]
    return vjp


binary("maximum", signed_zero.maximum, lambda s, a, b: s.maximum(a, b), _minmax_vjp(gt), doc="elementwise max")
binary("minimum", signed_zero.minimum, lambda s, a, b: s.minimum(a, b), _minmax_vjp(lt), doc="elementwise min")

unary("neg", np.negative, lambda s, x: -x, lambda c, g: [neg(g)], infer=_same_type, doc="-x")
unary("exp", np.exp, lambda s, x: s.exp(x), lambda c, g: [mul(g, c.output)], doc="e^x")
unary("log", np.log, lambda s, x: s.log(x), lambda c, g: [div(g, c.x)], doc="natural log")
unary("sqrt", np.sqrt, lambda s, x: s.sqrt(x), lambda c, g: [div(mul(g, 0.5), c.output)], doc="square root")
unary("abs", np.abs, lambda s, x: s.abs(x), lambda c, g: [mul(g, sign(c.x))], infer=_same_type,
      doc="|x| (gradient sign(x), 0 at 0)")
# ±0 -> +0 as NumPy and torch (x * 0.0 would keep -0, and 1/sign(x) would then flip to -inf);
# NaN -> NaN (x == x is false only for NaN)
unary("sign", np.sign, lambda s, x: s.where(x > 0, 1.0, s.where(x < 0, -1.0, s.where(s.eq(x, x), 0.0, x))),
      infer=_same_type, differentiable=False, doc="-1, 0 or 1")

# ---- comparisons (boolean results, no gradient) ---------------------------------------

for _name, _np, _sym in [("lt", np.less, "lt"), ("le", np.less_equal, "le"), ("gt", np.greater, "gt"),
                         ("ge", np.greater_equal, "ge"), ("eq", np.equal, "eq"), ("ne", np.not_equal, "ne")]:
    binary(_name, _np, (lambda sym: lambda s, a, b: getattr(s, sym)(a, b))(_sym), infer=_compare_type,
           differentiable=False, doc=f"comparison {_name} (bool result)")


def _where_type(types: InputTypes, **_: Any) -> InferredType:
    c, a, b = types
    if c.dtype != "bool":
        raise ShapeError(f"condition must be bool, got {c.dtype}")
    return broadcast_shapes(c.shape, a.shape, b.shape), promote_types(a.dtype, b.dtype)


register("where", infer=_where_type, impl=_quiet(np.where), n_inputs=3, family="elementwise",
         scalar=lambda s, c, a, b: s.where(c, a, b),
         vjp=lambda c, g: [None, where(c.inputs[0], g, 0.0), where(c.inputs[0], 0.0, g)],
         doc="where(cond, a, b): a where cond else b")


def _cast_type(types: InputTypes, dtype: str) -> InferredType:
    (t,) = types
    return t.shape, np.dtype(dtype).name


def _cast_vjp(c: VJPContext, g: Tensor) -> Gradients:
    src = c.inputs[0].dtype
    return [cast(g, dtype=src) if np.dtype(src).kind == "f" else None]


register("cast", infer=_cast_type, impl=lambda x, dtype: np.asarray(x).astype(dtype), n_inputs=1,
         scalar=lambda s, x, dtype: s.cast(x, dtype), vjp=_cast_vjp, family="elementwise",
         doc="convert to another dtype")

# ---- activations -----------------------------------------------------------------------


def _sigmoid_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    return 1.0 / (1.0 + s.exp(-x))


unary("sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x)), _sigmoid_scalar,
      lambda c, g: [mul(g, mul(c.output, sub(1.0, c.output)))], doc="1/(1+e^-x); σ' = σ(1-σ)")
unary("tanh", np.tanh, lambda s, x: s.tanh(x),
      lambda c, g: [mul(g, sub(1.0, mul(c.output, c.output)))], doc="tanh; f' = 1 - f²")
unary("relu", lambda x: np.maximum(x, 0), lambda s, x: s.maximum(x, 0.0),
      lambda c, g: [where(gt(c.x, 0.0), g, 0.0)], doc="max(x, 0); we take relu'(0) = 0, as torch does")
unary("heaviside", lambda x: (x > 0).astype(x.dtype), lambda s, x: s.where(x > 0, 1.0, 0.0),
      differentiable=False, doc="1 if x > 0 else 0 (the perceptron's step; gradient 0)")


def _leaky_relu_ref(x: Array, alpha: float = 0.01) -> Array:
    return np.where(x > 0, x, x * np.asarray(alpha, x.dtype))


register("leaky_relu", infer=_float_type, impl=_quiet(_leaky_relu_ref), n_inputs=1, family="elementwise",
         scalar=lambda s, x, alpha=0.01: s.where(x > 0, x, x * alpha),
         vjp=lambda c, g: [where(gt(c.x, 0.0), g, mul(g, c.attrs.get("alpha", 0.01)))],
         doc="max(αx, x) for 0 < α < 1")


def _elu_ref(x: Array, alpha: float = 1.0) -> Array:
    return np.where(x > 0, x, np.asarray(alpha, x.dtype) * (np.exp(np.minimum(x, 0)) - 1))


register("elu", infer=_float_type, impl=_quiet(_elu_ref), n_inputs=1, family="elementwise",
         scalar=lambda s, x, alpha=1.0: s.where(x > 0, x, alpha * (s.exp(s.minimum(x, 0.0)) - 1.0)),
         vjp=lambda c, g: [where(gt(c.x, 0.0), g, mul(g, add(c.output, c.attrs.get("alpha", 1.0))))],
         doc="x if x > 0 else α(e^x - 1); f' = f + α for x <= 0")


def _log1p_scalar(s: ScalarNamespace, u: ScalarExpr) -> ScalarExpr:
    # log(1+u) accurate for small u without a log1p primitive (the classic w-1 correction)
    w = 1.0 + u
    return s.where(s.eq(w, 1.0), u, s.log(w) * u / (w - 1.0))


def _softplus_scalar(s: ScalarNamespace, x: ScalarExpr) -> ScalarExpr:
    return s.maximum(x, 0.0) + _log1p_scalar(s, s.exp(-s.abs(x)))


unary("softplus", lambda x: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))), _softplus_scalar,
      lambda c, g: [mul(g, apply("sigmoid", [c.x]))], doc="ln(1+e^x), computed stably; f' = σ(x)")


# ---- public functions ------------------------------------------------------------------

def _public(name: str, doc: str | None = None) -> GraphOp:
    def fn(*xs: TensorLike, **attrs: Any) -> Tensor:
        return apply(name, list(xs), **attrs)
    fn.__name__ = name
    fn.__doc__ = doc or f"Elementwise {name}."
    return fn


# the public names carry their arity statically; at run time they are the shared wrappers
maximum: BinaryOp = _public("maximum", "Elementwise maximum (broadcasting).")
minimum: BinaryOp = _public("minimum", "Elementwise minimum (broadcasting).")
sqrt: UnaryOp = _public("sqrt")
abs: UnaryOp = _public("abs")  # noqa: A001 - mirrors numpy's name
sigmoid: UnaryOp = _public("sigmoid", "Logistic sigmoid 1/(1+e^-x).")
tanh: UnaryOp = _public("tanh")
relu: UnaryOp = _public("relu", "max(x, 0); relu'(0) is taken as 0 (the torch convention).")
heaviside: UnaryOp = _public("heaviside", "Step function: 1 if x > 0 else 0.")
softplus: UnaryOp = _public("softplus", "ln(1+e^x), computed stably.")
less: BinaryOp = lt
less_equal: BinaryOp = _public("le")
greater: BinaryOp = gt
greater_equal: BinaryOp = _public("ge")
equal: BinaryOp = eq
not_equal: BinaryOp = _public("ne")


def pow(a: TensorLike, b: TensorLike) -> Tensor:  # noqa: A001
    """a ** b; integer bases to negative integer powers are an error, as in torch."""
    check_integer_pow(a, b)
    return apply("pow", [a, b])


def leaky_relu(x: TensorLike, alpha: float = 0.01) -> Tensor:
    """max(αx, x)."""
    return apply("leaky_relu", [x], alpha=float(alpha))


def elu(x: TensorLike, alpha: float = 1.0) -> Tensor:
    """x if x > 0 else α(e^x − 1)."""
    return apply("elu", [x], alpha=float(alpha))
