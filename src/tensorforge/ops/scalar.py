"""Scalar expressions: how an elementwise op computes one output element.

Every elementwise op declares ``scalar(s, *args, **attrs)`` written against a
small namespace ``s`` of primitives (exp, log, where, ...). Called with
``SYMBOLIC`` it records an expression DAG that the LLVM and Triton code
generators lower; called with ``NUMPY`` it evaluates on arrays, which is how the
tests check each declaration against the op's NumPy reference.

The primitive set is deliberately small; every backend must implement each one:

    arith   add sub mul div neg pow maximum minimum
    math    exp log tanh sqrt abs floor
    logic   lt le gt ge eq ne where (select) logical_and logical_or logical_not
    other   const(value, dtype) cast(x, dtype)
    integer fmod trunc_div bitwise_and bitwise_or bitwise_xor bitwise_not shift_left shift_right
            (INTEGER_PRIMITIVES below: defined at every operand, see docs/numerics.md)
    leaves  arg (value = argument position), stage (value = index of a reduction result
            inside a fused loop kernel, see kernel_ir.py)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, cast

import numpy as np

from .._typing import Array, DTypeLike
from . import signed_zero as _signed_zero

PRIMITIVES: tuple[str, ...] = (
    "arg", "const", "cast", "add", "sub", "mul", "div", "neg", "pow", "maximum", "minimum",
    "exp", "log", "tanh", "sqrt", "abs", "floor", "lt", "le", "gt", "ge", "eq", "ne", "where",
    "logical_and", "logical_or", "logical_not",
)
# -- integer and rounding primitives (ops/rounding.py) -------------------------------------
# fmod: C fmod on floats; on integers the truncated remainder, 0 where b is 0 or -1.
# trunc_div: integers only, the truncated quotient; 0 where b is 0, -a (wrapping) where b is -1.
# Defined at every divisor, so no backend ever executes an integer division that traps.
# bitwise_*: integers and bool; shift_left/shift_right: torch's result for any shift amount
# (>= the bit width or negative: 0, or the sign fill for a signed right shift).
INTEGER_PRIMITIVES = ("fmod", "trunc_div", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
                      "shift_left", "shift_right")
PRIMITIVES = PRIMITIVES + INTEGER_PRIMITIVES
COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")


@dataclass(frozen=True, eq=False)
class Expr:
    """A node of a scalar expression DAG (hash-consed by value)."""
    op: str
    args: tuple[Expr, ...] = ()
    value: object = None   # const: the Python number; arg: the input position; cast: the dtype
    dtype: DTypeLike | None = None  # only set on const/cast/arg
    if TYPE_CHECKING:
        # set in __post_init__; declared for the checker only (a real field would change the class)
        _hash: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # hashed at birth: arguments are older, so their hashes are cached and a deep chain never
        # recurses (a lazy recursive hash overflows the stack on a few hundred nested ops)
        object.__setattr__(self, "_hash", hash((self.op, self.args, self.value, self.dtype)))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        """Structural equality, compared with an explicit stack (deep chains must not recurse)."""
        if self is other:
            return True
        if not isinstance(other, Expr):
            return NotImplemented
        stack, seen = [(self, other)], set()
        while stack:
            a, b = stack.pop()
            if a is b or (id(a), id(b)) in seen:
                continue
            if (a._hash != b._hash or a.op != b.op or a.value != b.value or a.dtype != b.dtype
                    or len(a.args) != len(b.args)):
                return False
            seen.add((id(a), id(b)))
            stack.extend(zip(a.args, b.args))
        return True

    def _bin(self, op: str, other: Expr | float, swap: bool = False) -> Expr:
        other = other if isinstance(other, Expr) else Expr("const", (), float(other))
        return Expr(op, (other, self) if swap else (self, other))

    __add__ = lambda a, b: a._bin("add", b)
    __radd__ = lambda a, b: a._bin("add", b, True)
    __sub__ = lambda a, b: a._bin("sub", b)
    __rsub__ = lambda a, b: a._bin("sub", b, True)
    __mul__ = lambda a, b: a._bin("mul", b)
    __rmul__ = lambda a, b: a._bin("mul", b, True)
    __truediv__ = lambda a, b: a._bin("div", b)
    __rtruediv__ = lambda a, b: a._bin("div", b, True)
    __pow__ = lambda a, b: a._bin("pow", b)
    __neg__ = lambda a: Expr("neg", (a,))
    __lt__ = lambda a, b: a._bin("lt", b)
    __le__ = lambda a, b: a._bin("le", b)
    __gt__ = lambda a, b: a._bin("gt", b)
    __ge__ = lambda a, b: a._bin("ge", b)

    def __repr__(self) -> str:
        text: dict[int, str] = {}
        for e in self.walk():            # post-order: every argument's text is ready
            if e.op == "arg":
                t = f"x{e.value}"
            elif e.op == "stage":
                t = f"s{e.value}"
            elif e.op == "const":
                t = repr(e.value)
            elif e.op == "cast":
                t = f"cast({text[id(e.args[0])]}, {e.value})"
            else:
                t = f"{e.op}({', '.join(text[id(a)] for a in e.args)})"
            text[id(e)] = t
        return text[id(self)]

    def walk(self) -> list[Expr]:
        """Post-order traversal without repeats (an explicit stack: chains may be thousands deep)."""
        seen, order = {id(self)}, list[Expr]()
        stack = [(self, 0)]
        while stack:
            e, i = stack[-1]
            if i < len(e.args):
                stack[-1] = (e, i + 1)
                a = e.args[i]
                if id(a) not in seen:
                    seen.add(id(a))
                    stack.append((a, 0))
            else:
                stack.pop()
                order.append(e)
        return order


def is_float_dtype(dtype: DTypeLike | None) -> bool:
    return dtype is not None and np.dtype(dtype).kind == "f"


DEFAULT_FLOAT = "float32"
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}   # bool < integer < floating point


def promote_types(*dtypes: DTypeLike) -> str:
    """THE promotion rule of tensorforge (docs/numerics.md), as in PyTorch: the operands of the
    highest category (bool < integer < float) decide, promoted among themselves as NumPy does
    (int8 + uint8 -> int16, float32 + float64 -> float64); a lower category never widens a
    higher one (int64 + float32 -> float32, where NumPy would give float64)."""
    dts = [np.dtype(d) for d in dtypes]
    top = max(_CATEGORY[d.kind] for d in dts)
    return np.result_type(*[d for d in dts if _CATEGORY[d.kind] == top]).name


def weak_scalar_dtype(value: object, like_dtype: DTypeLike | None = None) -> str:
    """The dtype a Python scalar takes next to a tensor of ``like_dtype`` ("weak" scalars, as in
    PyTorch): the tensor's dtype when the scalar's category is not higher, else the default type
    of the scalar's category (bool tensor + 2 -> int64, int tensor * 1.5 -> float32)."""
    kind = "b" if isinstance(value, (bool, np.bool_)) else "i" if isinstance(value, (int, np.integer)) else "f"
    default = {"b": "bool", "i": "int64", "f": DEFAULT_FLOAT}[kind]
    if like_dtype is None:
        return default
    like = np.dtype(like_dtype)
    return like.name if _CATEGORY[like.kind] >= _CATEGORY[kind] else default


def true_divide_dtype(dtype: DTypeLike) -> str:
    """True division (and the float-only math) of integers or bools gives the default float."""
    return np.dtype(dtype).name if is_float_dtype(dtype) else DEFAULT_FLOAT


def promote(*dtypes: DTypeLike | None) -> str | None:
    """``promote_types`` of the typed operands of an expression; None when every operand is an
    untyped constant (which then takes the type of whatever it meets). Both code generators
    type expressions with this rule."""
    typed = [d for d in dtypes if d is not None]
    if not typed:
        return None
    return promote_types(*typed)


LOGICAL = ("logical_and", "logical_or", "logical_not")
# of integers: float32 (pow of integers is exact)
FLOAT_RESULT: tuple[str, ...] = ("div", "exp", "log", "tanh", "sqrt")


# -- transcendental primitives (ops/math.py) --------------------------------------------------
# sin, cos and erf of a float; of integers or bools: float32 (true_divide_dtype), like exp.
TRANSCENDENTAL = ("sin", "cos", "erf")
PRIMITIVES = PRIMITIVES + TRANSCENDENTAL
FLOAT_RESULT = FLOAT_RESULT + TRANSCENDENTAL
# -- end of transcendental primitives -----------------------------------------------------------


def expr_dtype(e: Expr, dtype_of: Callable[[Expr], str | None]) -> str | None:
    """Static dtype of node ``e``, given ``dtype_of(sub)`` for its arguments; None for a subtree of
    untyped constants only. Both code generators type expressions with this rule: arg and const
    carry their dtype (a leaf typed by its caller is the caller's to look up first), cast gives
    its target, comparisons and logical ops give bool, where promotes its two branches, the
    FLOAT_RESULT ops give float64 for integers, and every other op promotes its operands."""
    op = e.op
    if op in ("arg", "const"):
        return None if e.dtype is None else str(np.dtype(e.dtype))
    if op == "cast":
        return str(np.dtype(cast(DTypeLike, e.value)))
    if op in COMPARISONS or op in LOGICAL:
        return "bool"
    sub = [dtype_of(a) for a in e.args]
    if op == "where":
        return promote(*sub[1:])
    t = promote(*sub)
    if op in FLOAT_RESULT:
        return t if t is None else true_divide_dtype(t)
    return t


def emission_key(e: Expr, dtype: str) -> tuple[Expr, str, float | None]:
    """The key under which a lowering emits ``e`` as ``dtype`` once: structurally equal
    subexpressions share it, but 0.0 and -0.0 (equal, with one hash) stay apart."""
    return e, dtype, math.copysign(1.0, cast(float, e.value)) if e.op == "const" else None


def _lift(x: Expr | float) -> Expr:
    return x if isinstance(x, Expr) else Expr("const", (), float(x))


class _Symbolic:
    """Namespace that builds Expr DAGs."""

    @staticmethod
    def arg(i: int, dtype: str) -> Expr:
        return Expr("arg", (), i, dtype)

    @staticmethod
    def const(v: float, dtype: DTypeLike | None = None) -> Expr:
        return Expr("const", (), float(v), dtype)

    @staticmethod
    def cast(x: Expr | float, dtype: DTypeLike) -> Expr:
        return Expr("cast", (_lift(x),), str(np.dtype(dtype)))

    def __getattr__(self, name: str) -> Callable[..., Expr]:
        if name not in PRIMITIVES:
            raise AttributeError(f"{name!r} is not a scalar primitive; use one of {PRIMITIVES}")
        return lambda *args: Expr(name, tuple(_lift(a) for a in args))


class _Numpy:
    """Namespace that evaluates the same expressions on NumPy arrays."""
    add, sub, mul, div, neg = np.add, np.subtract, np.multiply, np.divide, np.negative
    pow = np.power
    maximum, minimum = staticmethod(_signed_zero.maximum), staticmethod(_signed_zero.minimum)   # +0 > -0
    exp, log, tanh, sqrt, abs, floor = np.exp, np.log, np.tanh, np.sqrt, np.abs, np.floor
    lt, le, gt, ge, eq, ne = np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal
    where = staticmethod(np.where)
    logical_and, logical_or, logical_not = np.logical_and, np.logical_or, np.logical_not

    # -- transcendental primitives (ops/math.py)
    sin, cos = np.sin, np.cos

    @staticmethod
    def erf(x: Any) -> Array:
        from math import erf as _erf   # NumPy has no erf; math.erf is accurate to ~1 ulp
        x = np.asarray(x)
        result: Array = np.vectorize(_erf, otypes=[x.dtype if x.dtype.kind == "f" else np.float64])(x)
        return result
    # -- end of transcendental primitives

    @staticmethod
    def const(v: float, dtype: DTypeLike | None = None) -> float:
        return v

    # -- integer and rounding primitives (ops/rounding.py) ---------------------------------
    @staticmethod
    def fmod(a: Any, b: Any) -> Array:
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype.kind in "f" or b.dtype.kind in "f":
            floats: Array = np.fmod(a, b)
            return floats
        safe = (b == 0) | (b == -1) if np.dtype(np.result_type(a, b)).kind == "i" else (b == 0)
        return np.where(safe, 0, np.fmod(a, np.where(safe, 1, b))).astype(np.result_type(a, b))

    @staticmethod
    def trunc_div(a: Any, b: Any) -> Array:
        a, b = np.asarray(a), np.asarray(b)
        dt = np.result_type(a, b)
        minus_one = (b == -1) if dt.kind == "i" else np.zeros(np.shape(b), bool)
        safe = (b == 0) | minus_one
        bs = np.where(safe, 1, b).astype(dt)
        q = (a - np.fmod(a, bs)) // bs        # exact: a - fmod(a, b) is a multiple of b
        return np.where(b == 0, 0, np.where(minus_one, np.negative(a.astype(dt)), q)).astype(dt)

    bitwise_and, bitwise_or, bitwise_xor = np.bitwise_and, np.bitwise_or, np.bitwise_xor

    @staticmethod
    def bitwise_not(x: Any) -> Array:
        x = np.asarray(x)
        flipped: Array = np.logical_not(x) if x.dtype == np.bool_ else np.invert(x)
        return flipped

    @staticmethod
    def shift_left(a: Any, b: Any) -> Array:
        a, b = np.asarray(a), np.asarray(b)
        dt = np.result_type(a, b)
        a, b = a.astype(dt), b.astype(dt)
        bits = dt.itemsize * 8
        over = (b < 0) | (b >= bits)
        return np.where(over, 0, np.left_shift(a, np.where(over, 0, b))).astype(dt)

    @staticmethod
    def shift_right(a: Any, b: Any) -> Array:
        a, b = np.asarray(a), np.asarray(b)
        dt = np.result_type(a, b)
        a, b = a.astype(dt), b.astype(dt)
        bits = dt.itemsize * 8
        over = (b < 0) | (b >= bits)
        shifted = np.right_shift(a, np.where(over, bits - 1, b))
        return (np.where(over, 0, shifted) if dt.kind == "u" else shifted).astype(dt)

    @staticmethod
    def cast(x: Any, dtype: DTypeLike) -> Array:
        return np.asarray(x).astype(dtype)


SYMBOLIC = _Symbolic()
NUMPY = _Numpy()


def emit_bottom_up(expr: Expr, dtype_of: Callable[[Expr], str | None],
                   emit: Callable[[Expr, str], object]) -> None:
    """Type and emit every typed subexpression of ``expr`` bottom-up (an explicit post-order
    walk), so a code generator's recursive ``emit`` that follows only meets emitted operands: a
    chain of thousands of ops never recurses on its depth. Untyped subtrees (constants only) are
    left to their parent. Both code generators call this."""
    for e in expr.walk():
        dtype = dtype_of(e)
        if dtype is not None and e.op != "const":
            emit(e, dtype)
