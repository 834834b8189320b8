"""Lower scalar expression DAGs (ops/scalar.py ``Expr``) to Triton source statements.

An ``Emitter`` turns an expression into lines ``t7 = <triton expression>`` over
block-shaped values (the leaves are names the caller defines: loaded blocks and
reduction results) and returns the name holding the result. The typing rules are
``expr_dtype`` of ops/scalar.py, which the LLVM lowering uses too: NumPy promotion of the typed
operands; untyped constants take the type of the operand they meet, or the context
type when a whole subtree is constant; div/pow/exp/log/tanh/sqrt of integers give
float64; comparisons and logical ops give bool (``tl.int1``).

Every constant is written with its dtype (``tl.full([], v, tl.float64)``): a bare
Python float in Triton is an fp32 constant, which would round float64 arithmetic.
NaN and Inf behave as in NumPy: ordered comparisons are False on nan and != is True,
maximum/minimum propagate nan, pow follows C's special cases for the exponents the
tests use. Structurally equal subexpressions are emitted once.
"""
from __future__ import annotations

import math

import numpy as np

from ...ops.scalar import Expr, LOGICAL as _LOGICAL, emission_key, emit_bottom_up, expr_dtype
from ...ops.scalar import is_float_dtype as is_float, promote  # the typing rule both generators share
from ...ops.scalar import INTEGER_PRIMITIVES as _INTEGER_PRIMITIVES

__all__ = ["TL_TYPES", "tl_type", "Emitter", "convert", "constant", "is_float", "promote"]

TL_TYPES = {
    "float32": "tl.float32", "float64": "tl.float64", "int64": "tl.int64", "int32": "tl.int32",
    "int16": "tl.int16", "int8": "tl.int8", "uint64": "tl.uint64", "uint32": "tl.uint32",
    "uint16": "tl.uint16", "uint8": "tl.uint8", "bool": "tl.int1",
}
_CMP_SYMBOLS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
_ARITH_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
# tanh(x) ~ x * (1 + x^2 * (c1 + x^2 * (c2 + ...))) below this |x|: 1 - exp(-2|x|) cancels there
_TANH_SERIES_LIMIT = 0.125
_TANH_SERIES = (-1.0 / 3.0, 2.0 / 15.0, -17.0 / 315.0, 62.0 / 2835.0, -1382.0 / 155925.0)


def tl_type(dtype: str) -> str:
    try:
        return TL_TYPES[str(np.dtype(dtype))]
    except KeyError:
        raise TypeError(f"the Triton backend does not support dtype {dtype}; it supports "
                        f"{', '.join(sorted(TL_TYPES))}") from None


def constant(value, dtype: str) -> str:
    """Source text of a 0-d constant of ``dtype`` (inf and nan spelled with float(...))."""
    dtype = str(np.dtype(dtype))
    if is_float(dtype):
        v = float(value)
        text = repr(v) if math.isfinite(v) else f'float("{v!r}")'
    elif dtype == "bool":
        text = str(int(bool(value)))
    else:
        text = str(_wrap_integer(int(value), dtype))
    return f"tl.full([], {text}, {tl_type(dtype)})"


def _wrap_integer(value: int, dtype: str) -> int:
    """value wrapped into dtype's range, as NumPy's astype does (uint8 -1 is 255)."""
    info = np.iinfo(np.dtype(dtype))
    span = int(info.max) - int(info.min) + 1
    return (value - int(info.min)) % span + int(info.min)


def convert(text: str, src: str, dst: str) -> str:
    """NumPy ``astype`` between the supported dtypes as source text (float->bool is != 0, so nan -> True)."""
    src, dst = str(np.dtype(src)), str(np.dtype(dst))
    if src == dst:
        return text
    if dst == "bool":
        return f"({text} != 0)"
    if is_float(src) and np.dtype(dst).kind in "iu" and np.dtype(dst).itemsize < 8 and dst != "int32":
        # through int64 and wrap, as NumPy and torch do on x86 (-1.0 -> uint8 255): a direct
        # conversion to a narrow type is undefined out of range
        return f"{text}.to(tl.int64).to({tl_type(dst)})"
    return f"{text}.to({tl_type(dst)})"


class Emitter:
    """Emits expressions as statements into ``lines``; one instance is one CSE scope.

    ``leaf(e)`` gives (name, dtype) of an ``arg`` or ``stage`` leaf (it may append the lines that
    define it, e.g. a load, to ``lines`` first). ``names`` is a shared counter (a list with one int)
    so that temporaries of different scopes in one kernel never clash."""

    def __init__(self, leaf, lines: list, default_float: str = "float32", names=None, prefix: str = "t"):
        self.leaf = leaf
        self.lines = lines
        self.default_float = default_float
        self.names = names if names is not None else [0]
        self.prefix = prefix
        self.types: dict = {}
        self.emitted: dict = {}

    # ---- types ----------------------------------------------------------------------
    def dtype_of(self, e: Expr):
        """Static dtype of e, or None for a subtree made of untyped constants only."""
        if e not in self.types:
            self.types[e] = self._infer(e)
        return self.types[e]

    def _infer(self, e: Expr):
        if e.op in ("arg", "stage"):          # the caller's leaves: typed by what it loaded
            return self.leaf_dtype(e)
        return expr_dtype(e, self.dtype_of)

    def leaf_dtype(self, e: Expr) -> str:
        return str(np.dtype(self.leaf(e)[1]))

    # ---- emission -------------------------------------------------------------------
    def tmp(self, text: str) -> str:
        """Assign ``text`` to a fresh temporary; return its name."""
        name = f"{self.prefix}{self.names[0]}"
        self.names[0] += 1
        self.lines.append(f"{name} = {text}")
        return name

    def value(self, expr: Expr, out_dtype: str | None = None):
        """(name, dtype) of expr, converted to ``out_dtype`` when given."""
        self.prime(expr)
        dtype = self.dtype_of(expr) or out_dtype or self.default_float
        name = self.emit(expr, dtype)
        if out_dtype is not None and str(np.dtype(out_dtype)) != dtype:
            name, dtype = self.tmp(convert(name, dtype, out_dtype)), str(np.dtype(out_dtype))
        return name, dtype

    def prime(self, expr: Expr) -> None:
        """Emit every typed subexpression first (ops.scalar.emit_bottom_up): no recursion on depth."""
        emit_bottom_up(expr, self.dtype_of, self.emit)

    def emit(self, e: Expr, want: str) -> str:
        """Name of e's value with dtype dtype_of(e), or ``want`` when e is an untyped subtree."""
        dtype = self.dtype_of(e) or want
        key = emission_key(e, dtype)
        if key not in self.emitted:
            self.emitted[key] = self._emit(e, dtype)
        return self.emitted[key]

    def operand(self, e: Expr, dtype: str) -> str:
        """e emitted and converted to dtype (untyped constants are born in dtype)."""
        src = self.dtype_of(e) or dtype
        name = self.emit(e, dtype)
        return name if src == dtype else self.tmp(convert(name, src, dtype))

    def _emit(self, e: Expr, dtype: str) -> str:
        op = e.op
        if op in ("arg", "stage"):
            name, src = self.leaf(e)
            return name if str(np.dtype(src)) == dtype else self.tmp(convert(name, src, dtype))
        if op == "const":
            return self.tmp(constant(e.value, dtype))
        if op == "cast":
            inner = self.dtype_of(e.args[0]) or self.default_float
            return self.tmp(convert(self.emit(e.args[0], inner), inner, dtype))
        if op in _CMP_SYMBOLS:
            return self._compare(e)
        if op in _LOGICAL:
            vals = [self.operand(x, "bool") for x in e.args]
            if op == "logical_not":
                return self.tmp(f"{vals[0]} == 0")
            # selected with tl.where, not & and |: a 0-d boolean (a scalar operand) does not
            # combine with a block of booleans through bitwise operators in the interpreter
            a, b = vals
            if op == "logical_and":
                return self.tmp(f"tl.where({a}, {b}, {a})")
            return self.tmp(f"tl.where({a}, {a}, {b})")
        if op == "where":
            cond = self.operand(e.args[0], "bool")
            a, b = (self.operand(x, dtype) for x in e.args[1:])
            return self.tmp(f"tl.where({cond}, {a}, {b})")
        if op in _INTEGER_PRIMITIVES:
            return self._integer_primitive(op, [self.operand(x, dtype) for x in e.args], dtype)
        if dtype == "bool":
            return self._bool_op(op, [self.operand(x, dtype) for x in e.args])
        if op == "pow" and is_float(dtype):
            return self._pow(e, dtype)
        vals = [self.operand(x, dtype) for x in e.args]
        if is_float(dtype):
            return self._float_op(op, vals, dtype)
        if op == "pow":
            return self._int_pow(e, vals, dtype)
        return self._int_op(op, vals, dtype)

    def _compare(self, e: Expr) -> str:
        t = promote(*[self.dtype_of(a) for a in e.args]) or self.default_float
        a, b = (self.operand(x, t) for x in e.args)
        if t == "bool":   # compare 0/1 as integers (i1 order is ambiguous)
            a, b = self.tmp(f"{a}.to(tl.int32)"), self.tmp(f"{b}.to(tl.int32)")
        return self.tmp(f"{a} {_CMP_SYMBOLS[e.op]} {b}")

    def _float_op(self, op: str, vals, dtype: str) -> str:
        if op in _ARITH_SYMBOLS:
            return self.tmp(f"{vals[0]} {_ARITH_SYMBOLS[op]} {vals[1]}")
        if op in ("maximum", "minimum"):
            # NumPy: nan in either operand gives nan
            picked = f"tl.{op}({vals[0]}, {vals[1]}, propagate_nan=tl.PropagateNan.ALL)"
            return self.tmp(signed_zero_pick(op, vals[0], vals[1], picked))   # +0 > -0, any order
        (x,) = vals
        if op == "neg":
            return self.tmp(f"-{x}")
        if op in ("abs", "floor", "exp", "log"):
            return self.tmp(f"tl.{op}({x})")
        if op == "sqrt":
            # fp32 tl.sqrt may be an approximation on GPUs; sqrt_rn is IEEE (fp32 only, fp64 sqrt is exact)
            return self.tmp(f"tl.sqrt_rn({x})" if dtype == "float32" else f"tl.sqrt({x})")
        if op == "tanh":
            return self._tanh(x, dtype)
        # -- transcendental primitives (ops/math.py)
        if op in ("sin", "cos", "erf"):
            return self.tmp(f"tl.{op}({x})")
        raise NotImplementedError(f"scalar primitive {op!r} is not lowered for floats")

    def _int_op(self, op: str, vals, dtype: str) -> str:
        if op in ("add", "sub", "mul"):
            return self.tmp(f"{vals[0]} {_ARITH_SYMBOLS[op]} {vals[1]}")
        if op in ("maximum", "minimum"):
            return self.tmp(f"tl.{op}({vals[0]}, {vals[1]})")
        (x,) = vals
        if op == "neg":
            return self.tmp(f"-{x}")
        if op == "abs" and np.dtype(dtype).kind == "u":
            return x
        if op == "abs":
            return self.tmp(f"tl.where({x} < 0, -{x}, {x})")
        if op == "floor":
            return x
        raise NotImplementedError(f"scalar primitive {op!r} is not lowered for {dtype}")

    def _bool_op(self, op: str, vals) -> str:
        """bool op bool stays bool (as in torch): + and max are or, * and min are and, a ** b is
        a or not b; selected with tl.where (0-d booleans do not combine with & and |)."""
        if op in ("add", "maximum"):
            return self.tmp(f"tl.where({vals[0]}, {vals[0]}, {vals[1]})")
        if op in ("mul", "minimum"):
            return self.tmp(f"tl.where({vals[0]}, {vals[1]}, {vals[0]})")
        if op == "pow":
            return self.tmp(f"tl.where({vals[1]}, {vals[0]}, {vals[1]} == 0)")
        raise NotImplementedError(f"scalar primitive {op!r} on bool operands: cast them first")

    def _int_pow(self, e: Expr, vals, dtype: str) -> str:
        """Exact integer power by repeated squaring (wrapping on overflow, as NumPy): a constant
        exponent is unrolled to its bits, otherwise every bit of a non-negative exponent is
        visited (negative exponents are refused by the graph and the interpreter)."""
        x, y = vals
        result, base = self._const(1, dtype), x
        if e.args[1].op == "const":
            n = int(e.args[1].value)
            while n > 0:
                if n & 1:
                    result = self.tmp(f"{result} * {base}")
                n >>= 1
                if n:
                    base = self.tmp(f"{base} * {base}")
            return result
        for bit in range(np.dtype(dtype).itemsize * 8 - 1):
            odd = self.tmp(f"(({y} >> {bit}) & 1) != 0")
            result = self.tmp(f"tl.where({odd}, {result} * {base}, {result})")
            base = self.tmp(f"{base} * {base}")
        return result

    def _const(self, value, dtype: str) -> str:
        return self.emit(Expr("const", (), float(value), None), dtype)

    def _tanh(self, x: str, dtype: str) -> str:
        """tanh from exp: sign(x) (1 - e) / (1 + e) with e = exp(-2|x|) (saturates to ±1, nan stays
        nan), and an odd series below |x| = 0.125, where 1 - e would cancel."""
        c = lambda v: self._const(v, dtype)  # noqa: E731
        ax = self.tmp(f"tl.abs({x})")
        e = self.tmp(f"tl.exp({ax} * {c(-2.0)})")
        big = self.tmp(f"({c(1.0)} - {e}) / ({c(1.0)} + {e})")
        big = self.tmp(f"tl.where({x} < {c(0.0)}, -{big}, {big})")
        x2 = self.tmp(f"{x} * {x}")
        poly = c(_TANH_SERIES[-1])
        for coef in reversed(_TANH_SERIES[:-1]):
            poly = self.tmp(f"{c(coef)} + {x2} * {poly}")
        small = self.tmp(f"{x} + {x} * ({x2} * {poly})")
        # tanh is odd: tanh(-0.0) is -0.0, but -0.0 + (+0.0) above gives +0.0
        small = self.tmp(f"tl.where({x} == {c(0.0)}, {x}, {small})")
        return self.tmp(f"tl.where({ax} < {c(_TANH_SERIES_LIMIT)}, {small}, {big})")

    def _pow(self, e: Expr, dtype: str) -> str:
        base, exponent = e.args
        x = self.operand(base, dtype)
        if exponent.op == "const":  # exact shortcuts for the exponents ops write most
            quick = {1.0: "{x}", 2.0: "{x} * {x}", 3.0: "{x} * {x} * {x}"}.get(exponent.value)
            if quick is not None:
                return self.tmp(quick.format(x=x))
            if exponent.value == -1.0:
                return self.tmp(f"{self._const(1.0, dtype)} / {x}")
            return self._const_pow(x, float(exponent.value), dtype)
        y = self.operand(exponent, dtype)
        return self._general_pow(x, y, dtype)

    def _const_pow(self, x: str, v: float, dtype: str) -> str:
        """C pow with a constant exponent: the integer/odd tests are decided here, not in the kernel
        (scalar boolean tensors do not combine with ``&`` in every Triton version)."""
        w = "float64"
        c = lambda val, t=dtype: self._const(val, t)  # noqa: E731
        if v == 0.0:
            return self.tmp(f"tl.where({x} == {x}, {c(1.0)}, {c(1.0)})")   # 1 everywhere, nan included
        xw = self.tmp(convert(x, dtype, w))
        ax = self.tmp(f"tl.abs({xw})")
        t = self.tmp(f"tl.where({ax} == {c(1.0, w)}, {c(0.0, w)}, {c(v, w)} * tl.log({ax}))")
        r = self.tmp(convert(self.tmp(f"tl.exp({t})"), w, dtype))
        is_int = math.isfinite(v) and float(v).is_integer()
        if is_int and int(v) % 2 == 1:
            r = self.tmp(f"tl.where({self._negative(x, dtype)}, -{r}, {r})")
        if not is_int:
            r = self._nan_below_zero(x, r, dtype)
        return r

    # The sign tests below select values with nested tl.where instead of combining booleans with
    # & and |: a 0-d operand (a scalar base such as 2.0 ** x, or a 0-d exponent tensor) gives
    # scalar booleans, which the Triton interpreter cannot combine with bitwise operators.
    def _negative(self, x: str, dtype: str) -> str:
        """x < 0, or x is -0.0 (the sign of an odd power of -0.0 is negative)."""
        c = lambda val: self._const(val, dtype)  # noqa: E731
        return self.tmp(f"tl.where({x} == {c(0.0)}, {c(1.0)} / {x} < {c(0.0)}, {x} < {c(0.0)})")

    def _nan_below_zero(self, x: str, r: str, dtype: str) -> str:
        """nan where x is negative and finite (a non-integer power of it is not real), else r."""
        c = lambda val: self._const(val, dtype)  # noqa: E731
        finite_negative = self.tmp(f"tl.where({x} > {c(-math.inf)}, {c(math.nan)}, {r})")
        return self.tmp(f"tl.where({x} < {c(0.0)}, {finite_negative}, {r})")

    def _general_pow(self, x: str, y: str, dtype: str) -> str:
        """C pow: exp(y log|x|) (in float64, so float32 results stay exact to rounding), then the
        sign of negative bases with odd integer exponents, nan for negative finite bases with
        non-integer exponents, pow(±1 / anything, 0) = 1 and pow(1, y) = 1."""
        w = "float64"
        c = lambda v, t=dtype: self._const(v, t)  # noqa: E731
        xw, yw = self.tmp(convert(x, dtype, w)), self.tmp(convert(y, dtype, w))
        ax = self.tmp(f"tl.abs({xw})")
        t = self.tmp(f"tl.where({ax} == {c(1.0, w)}, {c(0.0, w)}, {yw} * tl.log({ax}))")
        r = self.tmp(convert(self.tmp(f"tl.exp({t})"), w, dtype))
        fy = self.tmp(f"tl.floor({y})")
        is_int = self.tmp(f"{fy} == {y}")
        half = self.tmp(f"tl.floor({y} * {c(0.5)})")
        parity = self.tmp(f"tl.where({is_int}, {y} - {half} * {c(2.0)}, {c(0.0)})")
        flipped = self.tmp(f"tl.where({parity} == {c(1.0)}, -{r}, {r})")
        r = self.tmp(f"tl.where({self._negative(x, dtype)}, {flipped}, {r})")
        r = self.tmp(f"tl.where({is_int}, {r}, {self._nan_below_zero(x, r, dtype)})")
        return self.tmp(f"tl.where({y} == {c(0.0)}, {c(1.0)}, {r})")

    # -- integer and rounding primitives (ops/rounding.py) -------------------------------------
    # Divisors 0 and -1 and shift amounts outside [0, bits) are replaced before the operation and
    # their results selected after it, so every backend gives the same value and none traps.
    # Booleans are selected with tl.where: 0-d booleans do not combine with & | ^ everywhere.
    def _integer_primitive(self, op: str, vals, dtype: str) -> str:
        if op == "fmod" and is_float(dtype):
            return self.tmp(f"{vals[0]} % {vals[1]}")      # frem: C fmod
        if is_float(dtype):
            raise NotImplementedError(f"scalar primitive {op!r} is not defined for {dtype}")
        if dtype == "bool":
            return self._bool_bitwise(op, vals)
        if op == "bitwise_not":
            return self.tmp(f"~{vals[0]}")
        if op in ("bitwise_and", "bitwise_or", "bitwise_xor"):
            symbol = {"bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^"}[op]
            return self.tmp(f"{vals[0]} {symbol} {vals[1]}")
        if op in ("fmod", "trunc_div"):
            return self._safe_int_division(op, *vals, dtype)
        return self._safe_shift(op, *vals, dtype)

    def _bool_bitwise(self, op: str, vals) -> str:
        if op == "bitwise_not":
            return self.tmp(f"{vals[0]} == 0")
        a, b = vals
        if op == "bitwise_and":
            return self.tmp(f"tl.where({a}, {b}, {a})")
        if op == "bitwise_or":
            return self.tmp(f"tl.where({a}, {a}, {b})")
        if op == "bitwise_xor":
            return self.tmp(f"{a}.to(tl.int32) != {b}.to(tl.int32)")
        raise NotImplementedError(f"scalar primitive {op!r} on bool operands: cast them first")

    def _safe_int_division(self, op: str, x: str, y: str, dtype: str) -> str:
        c = lambda v: self._const(v, dtype)  # noqa: E731
        signed = np.dtype(dtype).kind == "i"
        minus_one = self.tmp(f"{y} == {c(-1)}") if signed else None
        safe = self.tmp(f"tl.where({y} == {c(0)}, {c(1)}, {y})")
        if signed:
            safe = self.tmp(f"tl.where({minus_one}, {c(1)}, {safe})")
        if op == "fmod":
            r = self.tmp(f"tl.where({y} == {c(0)}, {c(0)}, {x} % {safe})")
            return self.tmp(f"tl.where({minus_one}, {c(0)}, {r})") if signed else r
        q = self.tmp(f"tl.where({y} == {c(0)}, {c(0)}, {x} // {safe})")   # // truncates on integers
        return self.tmp(f"tl.where({minus_one}, -{x}, {q})") if signed else q

    def _safe_shift(self, op: str, x: str, y: str, dtype: str) -> str:
        c = lambda v: self._const(v, dtype)  # noqa: E731
        bits = np.dtype(dtype).itemsize * 8
        unsigned = np.dtype(dtype).kind == "u"
        # over: the amount is negative or >= bits (nested selects, not | of 0-d booleans)
        over = self.tmp(f"tl.where({y} < {c(0)}, {y} == {y}, {y} >= {c(bits)})") if not unsigned \
            else self.tmp(f"{y} >= {c(bits)}")
        if op == "shift_left":
            amount = self.tmp(f"tl.where({over}, {c(0)}, {y})")
            return self.tmp(f"tl.where({over}, {c(0)}, {x} << {amount})")
        amount = self.tmp(f"tl.where({over}, {c(bits - 1)}, {y})")
        shifted = self.tmp(f"{x} >> {amount}")
        return self.tmp(f"tl.where({over}, {c(0)}, {shifted})") if unsigned else shifted


def signed_zero_pick(op: str, a: str, b: str, picked: str) -> str:
    """``picked`` with IEEE 754-2019 zeros (ops/signed_zero.py): on two zeros a + b is the
    maximum, -(-a + -b) the minimum, whichever operand comes first."""
    tie = f"({a}) + ({b})" if op in ("max", "maximum") else f"-((-({a})) + (-({b})))"
    # nested wheres, not &: an operand may be a Python float literal (relu's 0.0)
    return f"tl.where(({a}) == 0, tl.where(({b}) == 0, {tie}, {picked}), {picked})"
