"""Lower scalar expression DAGs (ops/scalar.py ``Expr``) to llvmlite IR instructions.

``lower(builder, expr, args, ...)`` emits one element's computation inside whatever
loop the caller built; ``args[i]`` is the already-loaded value of ``arg(i)``. Types:
float32 -> float, float64 -> double, int64/int32 -> i64/i32, bool -> i1 in registers
(i8 in memory). Untyped constants take the type of the operand they meet (NumPy's
"weak scalar" rule), or the context type when a whole subtree is constant.

Every float instruction carries the fast-math flag ``contract`` only, never ``arcp``/``afn``
(LLVM copies an instruction's flags onto the ones it folds it into: ``-(a / sqrt(x))`` became an
``fdiv arcp afn`` of ``-a``, then an approximate reciprocal square root that gives NaN at x = 0)
nor ``nnan``/``ninf``/``nsz``, so NaN, Inf and signed zeros behave as in NumPy (with ``nsz``,
LLVM folds x + 0.0 to x, and 1/(x + 0.0) at x = -0.0 gave -inf). exp/log/tanh/pow come from
``vecmath`` (inline polynomials, so the loop vectoriser can use ymm/zmm registers).
Structurally equal subexpressions are emitted once.

``ElementwiseLoops`` JITs 1-D loops ``out[i] = expr(in0[i], in1[i], ...)`` over
contiguous arrays: the test harness for every elementwise op of the registry.
"""
from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir

from ...ops.registry import TensorType
from ...ops.scalar import SYMBOLIC, Expr, LOGICAL as _LOGICAL, emission_key, emit_bottom_up, expr_dtype
from ...ops.scalar import is_float_dtype as _is_float, promote as _promote
from ...ops.scalar import INTEGER_PRIMITIVES as _INTEGER_PRIMITIVES
from . import jit, vecmath
from . import vecmath_trig  # transcendental primitives (ops/math.py)

FASTMATH = ("contract",)     # see the module docstring: arcp/afn travel into divisions
# Divisions carry no arcp/afn: with them LLVM may turn y / sqrt(x) into an approximate reciprocal
# square root, which gives nan instead of inf at x = 0 (docs/numerics.md: sqrt and div are exact).
DIV_FLAGS = ("contract",)
# Unsigned integers share the signless LLVM integer types; the instructions that read the sign
# (compares, division, shifts, widening, float conversion) are chosen from the dtype instead.
_IR_TYPES = {
    "float32": ir.FloatType(), "float64": ir.DoubleType(), "int64": ir.IntType(64),
    "int32": ir.IntType(32), "int16": ir.IntType(16), "int8": ir.IntType(8),
    "uint64": ir.IntType(64), "uint32": ir.IntType(32), "uint16": ir.IntType(16), "uint8": ir.IntType(8),
    "bool": ir.IntType(1),
}
_MEMORY_TYPES = dict(_IR_TYPES, bool=ir.IntType(8))
_ARITH = ("add", "sub", "mul", "div", "pow", "maximum", "minimum")
_SAME_TYPE_UNARY = ("neg", "abs", "floor")
_CMP_SYMBOLS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}


def ir_type(dtype: str, in_memory: bool = False):
    table = _MEMORY_TYPES if in_memory else _IR_TYPES
    try:
        return table[str(np.dtype(dtype))]
    except KeyError:
        raise TypeError(f"the LLVM backend does not support dtype {dtype}; it supports "
                        f"{', '.join(sorted(_IR_TYPES))}") from None


def _is_unsigned(dtype: str) -> bool:
    return np.dtype(dtype).kind == "u"


class _Lowering:
    """State of one lowering: the builder, loaded args, and the CSE table."""

    def __init__(self, builder: ir.IRBuilder, args, default_float: str, arg_dtypes=None):
        self.b = builder
        self.args = args
        self.arg_dtypes = arg_dtypes
        self.default_float = default_float
        self.types: dict = {}
        self.emitted: dict = {}

    # ---- types ----------------------------------------------------------------------
    def dtype_of(self, e: Expr):
        """Static dtype of e, or None for a subtree made of untyped constants only."""
        key = id(e)
        if key not in self.types:
            self.types[key] = expr_dtype(e, self.dtype_of)
        return self.types[key]

    # ---- emission -------------------------------------------------------------------
    def emit(self, e: Expr, want: str):
        """IR value of e with dtype dtype_of(e), or ``want`` when e is an untyped subtree."""
        dtype = self.dtype_of(e) or want
        key = emission_key(e, dtype)
        if key not in self.emitted:
            self.emitted[key] = self._emit(e, dtype)
        return self.emitted[key]

    def prime(self, expr: Expr) -> None:
        """Emit every typed subexpression first (ops.scalar.emit_bottom_up): no recursion on depth."""
        emit_bottom_up(expr, self.dtype_of, self.emit)

    def operand(self, e: Expr, dtype: str):
        """e emitted and converted to dtype (untyped constants are born in dtype)."""
        return convert(self.b, self.emit(e, dtype), self.dtype_of(e) or dtype, dtype)

    def _emit(self, e: Expr, dtype: str):
        op = e.op
        if op == "arg":
            return convert(self.b, self.args[e.value], self._arg_dtype(e), dtype)
        if op == "const":
            return _constant(e.value, dtype)
        if op == "cast":
            inner = self.dtype_of(e.args[0]) or self.default_float
            return convert(self.b, self.emit(e.args[0], inner), inner, dtype)
        if op in _CMP_SYMBOLS:
            t = _promote(*[self.dtype_of(a) for a in e.args]) or self.default_float
            a, b = (self.operand(x, t) for x in e.args)
            return compare(self.b, _CMP_SYMBOLS[op], a, b, t)
        if op in _LOGICAL:
            vals = [self.operand(x, "bool") for x in e.args]
            if op == "logical_not":
                return self.b.not_(vals[0])
            return (self.b.and_ if op == "logical_and" else self.b.or_)(*vals)
        if op == "where":
            cond = self.operand(e.args[0], "bool")
            a, b = (self.operand(x, dtype) for x in e.args[1:])
            return self.b.select(cond, a, b)
        vals = [self.operand(x, dtype) for x in e.args]
        if op in _INTEGER_PRIMITIVES:
            return integer_primitive(self.b, op, vals, dtype)
        return arithmetic(self.b, op, vals, dtype, e)

    def _arg_dtype(self, e: Expr):
        """The loaded value's dtype (from the caller when given, else the one the Expr records)."""
        if self.arg_dtypes is not None:
            return str(np.dtype(self.arg_dtypes[e.value]))
        return str(np.dtype(e.dtype)) if e.dtype is not None else self.default_float


def _constant(value, dtype):
    ty = ir_type(dtype)
    if _is_float(dtype):
        return ir.Constant(ty, float(value))
    if dtype == "bool":
        return ir.Constant(ty, int(bool(value)))
    # the two's complement bit pattern, written signed (uint8 255 is i8 -1): same bits, and always
    # inside the range the IR parser accepts
    bits = ty.width
    wrapped = int(value) & ((1 << bits) - 1)
    return ir.Constant(ty, wrapped - (1 << bits) if wrapped >> (bits - 1) else wrapped)


def convert(builder: ir.IRBuilder, value, src: str, dst: str):
    """NumPy ``astype`` between the supported dtypes (float->bool is != 0, so nan -> True)."""
    src, dst = str(np.dtype(src)), str(np.dtype(dst))
    if src == dst:
        return value
    ty = ir_type(dst)
    if dst == "bool":
        if _is_float(src):
            return builder.fcmp_unordered("!=", value, ir.Constant(value.type, 0.0))
        return builder.icmp_unsigned("!=", value, ir.Constant(value.type, 0))
    if _is_float(dst):
        if _is_float(src):
            wider = np.dtype(dst).itemsize > np.dtype(src).itemsize
            return (builder.fpext if wider else builder.fptrunc)(value, ty)
        return (builder.uitofp if src == "bool" or _is_unsigned(src) else builder.sitofp)(value, ty)
    if _is_float(src):
        return _float_to_int(builder, value, dst, ty)
    if src == "bool":
        return builder.zext(value, ty)
    if ty.width == value.type.width:
        return value
    if ty.width < value.type.width:
        return builder.trunc(value, ty)
    return (builder.zext if _is_unsigned(src) else builder.sext)(value, ty)


def _float_to_int(builder, value, dst: str, ty):
    """float -> integer as NumPy and torch do on x86: narrower targets convert through int64 and
    wrap (-1.0 -> uint8 255), so out-of-range values give the same bits there (a direct fptoui
    to i8 would be poison); uint64 needs fptoui for values above 2**63."""
    if dst == "uint64":
        return builder.fptoui(value, ty)
    if dst in ("int64", "int32"):           # unchanged: the direct conversion, as before
        return builder.fptosi(value, ty)
    wide = builder.fptosi(value, ir.IntType(64))
    return wide if ty.width == 64 else builder.trunc(wide, ty)


def compare(builder: ir.IRBuilder, symbol: str, a, b, dtype: str):
    if _is_float(dtype):
        # NumPy: every comparison with nan is False except !=, which is True
        if symbol == "!=":
            return builder.fcmp_unordered(symbol, a, b, flags=FASTMATH)
        return builder.fcmp_ordered(symbol, a, b, flags=FASTMATH)
    if dtype == "bool" or _is_unsigned(dtype):
        return builder.icmp_unsigned(symbol, a, b)
    return builder.icmp_signed(symbol, a, b)


def _intrinsic(builder, name, ty, *args, fastmath=FASTMATH):
    fn = builder.module.declare_intrinsic(name, [ty])
    return builder.call(fn, list(args), fastmath=fastmath)


def _float_minmax(builder, op, a, b):
    """IEEE 754-2019 maximum/minimum (ops/signed_zero.py): nan in either operand gives nan, as in
    NumPy, and +0 > -0 whatever the operand order (a compare-and-select picked by order)."""
    name = "llvm.maximum" if op == "maximum" else "llvm.minimum"
    fn = builder.module.declare_intrinsic(name, [a.type], ir.FunctionType(a.type, [a.type] * 2))
    return builder.call(fn, [a, b])


def _pow_const_exponent(builder, a, exponent):
    """Exact shortcuts for the exponents ops write most (x**2 ...); None when not applicable."""
    if exponent == 1.0:
        return a
    if exponent == 2.0:
        return builder.fmul(a, a, flags=FASTMATH)
    if exponent == 3.0:
        return builder.fmul(builder.fmul(a, a, flags=FASTMATH), a, flags=FASTMATH)
    if exponent == -1.0:
        return builder.fdiv(ir.Constant(a.type, 1.0), a, flags=DIV_FLAGS)
    return None


def arithmetic(builder: ir.IRBuilder, op: str, vals, dtype: str, e: Expr | None = None):
    """The arithmetic and math primitives on values already converted to ``dtype``."""
    if dtype == "bool":
        return _bool_arithmetic(builder, op, vals)
    if _is_float(dtype):
        return _float_arithmetic(builder, op, vals, e)
    if op == "pow":
        return _int_pow(builder, vals, dtype, e)
    return _int_arithmetic(builder, op, vals, dtype)


def _bool_arithmetic(builder, op, vals):
    """bool op bool stays bool (as in torch): + and max are or, * and min are and, a ** b is a or not b."""
    b = builder
    if op in ("add", "maximum"):
        return b.or_(*vals)
    if op in ("mul", "minimum"):
        return b.and_(*vals)
    if op == "pow":
        return b.or_(vals[0], b.not_(vals[1]))
    raise NotImplementedError(f"scalar primitive {op!r} on bool operands: cast them first")


def _int_pow(builder, vals, dtype, e):
    """Exact integer power by repeated squaring (wrapping on overflow, as NumPy): a constant
    exponent is unrolled to its bits; otherwise every bit of a non-negative exponent is
    visited, straight-line (negative exponents are refused by the graph and the interpreter)."""
    b = builder
    x, y = vals
    result, base = ir.Constant(x.type, 1), x
    exponent = e.args[1] if e is not None else None
    if exponent is not None and exponent.op == "const":
        n = int(exponent.value)
        while n > 0:
            if n & 1:
                result = b.mul(result, base)
            n >>= 1
            if n:
                base = b.mul(base, base)
        return result
    one, zero = ir.Constant(y.type, 1), ir.Constant(y.type, 0)
    for bit in range(np.dtype(dtype).itemsize * 8 - 1):
        odd = b.icmp_unsigned("!=", b.and_(b.lshr(y, ir.Constant(y.type, bit)), one), zero)
        result = b.select(odd, b.mul(result, base), result)
        base = b.mul(base, base)
    return result


def _float_arithmetic(builder, op, vals, e):
    b, fm = builder, FASTMATH
    if op in ("add", "sub", "mul", "div"):
        fn = {"add": b.fadd, "sub": b.fsub, "mul": b.fmul, "div": b.fdiv}[op]
        return fn(vals[0], vals[1], flags=DIV_FLAGS if op == "div" else fm)
    if op in ("maximum", "minimum"):
        return _float_minmax(b, op, *vals)
    if op == "pow":
        exponent = e.args[1] if e is not None else None
        if exponent is not None and exponent.op == "const":
            quick = _pow_const_exponent(b, vals[0], exponent.value)
            if quick is not None:
                return quick
        return vecmath.pow(b, *vals)
    (x,) = vals
    if op == "neg":
        return b.fneg(x, flags=fm)
    if op == "abs":
        return _intrinsic(b, "llvm.fabs", x.type, x)
    if op == "floor":
        return _intrinsic(b, "llvm.floor", x.type, x)
    if op == "sqrt":
        # no afn here: it would allow a reciprocal-sqrt estimate, which is off by ~1e-4
        return _intrinsic(b, "llvm.sqrt", x.type, x, fastmath=("contract",))
    if op in ("exp", "log", "tanh"):
        return getattr(vecmath, op)(b, x)
    # -- transcendental primitives (ops/math.py): inline polynomials, see vecmath_trig
    if op in vecmath_trig.__all__:
        return getattr(vecmath_trig, op)(b, x)
    raise NotImplementedError(f"scalar primitive {op!r} is not lowered for floats")


def _int_arithmetic(builder, op, vals, dtype):
    b = builder
    if op in ("add", "sub", "mul"):
        return {"add": b.add, "sub": b.sub, "mul": b.mul}[op](*vals)
    if op in ("maximum", "minimum"):
        symbol = ">" if op == "maximum" else "<"
        return b.select(compare(b, symbol, *vals, dtype), *vals)
    x = vals[0]
    if op == "neg":
        return b.neg(x)
    if op == "abs" and _is_unsigned(dtype):
        return x
    if op == "abs":
        return b.select(b.icmp_signed("<", x, ir.Constant(x.type, 0)), b.neg(x), x)
    if op == "floor":
        return x
    raise NotImplementedError(f"scalar primitive {op!r} is not lowered for {dtype}")


# -- integer and rounding primitives (ops/rounding.py) ------------------------------------------
# Integer division is guarded with selects (sdiv/srem by 0, or INT_MIN by -1, is undefined and traps
# with SIGFPE on x86); shifts are guarded the same way (poison at >= the bit width). Selects keep
# the loops vectorisable.

def integer_primitive(builder: ir.IRBuilder, op: str, vals, dtype: str):
    """fmod, trunc_div, bitwise_* and shifts on values already converted to ``dtype``."""
    b = builder
    if op == "fmod" and _is_float(dtype):
        return b.frem(*vals)
    if _is_float(dtype):
        raise NotImplementedError(f"scalar primitive {op!r} is not defined for {dtype}")
    if op == "bitwise_not":
        return b.not_(vals[0])
    if op in ("bitwise_and", "bitwise_or", "bitwise_xor"):
        return {"bitwise_and": b.and_, "bitwise_or": b.or_, "bitwise_xor": b.xor}[op](*vals)
    if dtype == "bool":
        raise NotImplementedError(f"scalar primitive {op!r} on bool operands: cast them first")
    unsigned = np.dtype(dtype).kind == "u"
    if op in ("fmod", "trunc_div"):
        return _safe_int_division(b, op, *vals, unsigned)
    return _safe_shift(b, op, *vals, np.dtype(dtype).itemsize * 8, unsigned)


def _safe_int_division(b, op, x, y, unsigned):
    ty = x.type
    zero, one = ir.Constant(ty, 0), ir.Constant(ty, 1)
    by_zero = b.icmp_unsigned("==", y, zero)
    by_minus_one = ir.Constant(ir.IntType(1), 0) if unsigned else b.icmp_signed("==", y, ir.Constant(ty, -1))
    safe_y = b.select(b.or_(by_zero, by_minus_one), one, y)
    if op == "fmod":
        r = (b.urem if unsigned else b.srem)(x, safe_y)
        return b.select(b.or_(by_zero, by_minus_one), zero, r)
    q = (b.udiv if unsigned else b.sdiv)(x, safe_y)
    return b.select(by_zero, zero, b.select(by_minus_one, b.neg(x), q))


def _safe_shift(b, op, x, y, bits, unsigned):
    ty = x.type
    over = b.icmp_unsigned(">=", y, ir.Constant(ty, bits))   # unsigned: a negative amount is huge
    if op == "shift_left":
        return b.select(over, ir.Constant(ty, 0), b.shl(x, b.select(over, ir.Constant(ty, 0), y)))
    shifted = (b.lshr if unsigned else b.ashr)(x, b.select(over, ir.Constant(ty, bits - 1), y))
    return b.select(over, ir.Constant(ty, 0), shifted) if unsigned else shifted


def lower(builder: ir.IRBuilder, expr: Expr, args, arg_dtypes=None, default_float: str = "float32",
          out_dtype: str | None = None):
    """Emit ``expr`` at the builder's position; return (value, dtype).

    ``args[i]`` is the IR value of ``arg(i)`` (bool as i1). ``default_float`` types the
    constants of a subtree that meets no typed operand; ``out_dtype`` converts the result.
    """
    return lower_all(builder, [expr], args, arg_dtypes, default_float, out_dtype)[0]


def lower_all(builder: ir.IRBuilder, exprs, args, arg_dtypes=None, default_float: str = "float32",
              out_dtype: str | None = None) -> list:
    """``lower`` for several expressions over the same ``args`` (a multi-output kernel): a
    subexpression they share is emitted once. Returns [(value, dtype), ...]."""
    state = _Lowering(builder, list(args), default_float, arg_dtypes)
    results = []
    for expr in exprs:
        state.prime(expr)
        dtype = state.dtype_of(expr) or out_dtype or default_float
        value = state.emit(expr, dtype)
        if out_dtype is not None:
            value, dtype = convert(builder, value, dtype, out_dtype), str(np.dtype(out_dtype))
        results.append((value, dtype))
    return results


# ---- 1-D elementwise loops: out[i] = expr(in0[i], ...) ---------------------------------------

def define_elementwise_loop(module: ir.Module, name: str, expr: Expr, in_dtypes, out_dtype):
    """Add ``void name(i64 n, ptr in0, ..., ptr out)`` to module (noalias, contiguous buffers)."""
    ptr = ir.PointerType()
    i64 = ir.IntType(64)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64] + [ptr] * (len(in_dtypes) + 1)), name)
    for a in fn.args[1:]:
        a.add_attribute("noalias")
    n, *bufs = fn.args
    entry, loop, done = (fn.append_basic_block(s) for s in ("entry", "loop", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    b.position_at_end(loop)
    i = b.phi(i64, name="i")
    i.add_incoming(ir.Constant(i64, 0), entry)
    loaded = []
    for buf, dt in zip(bufs, in_dtypes):
        mem_ty = ir_type(dt, in_memory=True)
        v = b.load(b.gep(buf, [i], inbounds=True, source_etype=mem_ty), typ=mem_ty)
        loaded.append(b.trunc(v, ir.IntType(1)) if dt == "bool" else v)
    default = out_dtype if _is_float(out_dtype) else "float64"
    value, _ = lower(b, expr, loaded, in_dtypes, default_float=default, out_dtype=out_dtype)
    if out_dtype == "bool":
        value = b.zext(value, ir.IntType(8))
    b.store(value, b.gep(bufs[-1], [i], inbounds=True, source_etype=ir_type(out_dtype, in_memory=True)))
    nxt = b.add(i, ir.Constant(i64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    b.position_at_end(done)
    b.ret_void()
    return fn


def op_expression(opdef, in_dtypes, **attrs):
    """(expr, out_dtype) of a registered elementwise op applied to 0-d inputs of ``in_dtypes``."""
    args = [SYMBOLIC.arg(i, str(np.dtype(dt))) for i, dt in enumerate(in_dtypes)]
    expr = opdef.scalar(SYMBOLIC, *args, **attrs)
    if not isinstance(expr, Expr):      # an op whose value is a plain number
        expr = SYMBOLIC.const(expr)
    _, out_dtype = opdef.infer([TensorType((), str(np.dtype(dt))) for dt in in_dtypes], **attrs)
    return expr, str(np.dtype(out_dtype))


class ElementwiseLoops:
    """Several 1-D elementwise loops compiled together in one module (one JIT, many kernels).

    ``specs``: {name: (expr, in_dtypes, out_dtype)}. ``loops(name, *arrays)`` returns a new
    output array; inputs must be 1-D, contiguous, of the declared dtypes and equal length.
    """

    def __init__(self, specs: dict, key: str | None = None):
        module = ir.Module(name="elementwise_loops")
        for name, (expr, in_dtypes, out_dtype) in specs.items():
            define_elementwise_loop(module, name, expr, [str(np.dtype(d)) for d in in_dtypes],
                                    str(np.dtype(out_dtype)))
        self.specs = specs
        self.ir_text = str(module)
        self.compiled = jit.compile_module(self.ir_text, key=key)

    def __call__(self, name: str, *arrays):
        expr, in_dtypes, out_dtype = self.specs[name]
        arrays = [np.asarray(a) for a in arrays]
        n = arrays[0].shape[0] if arrays else 0
        for a, dt in zip(arrays, in_dtypes, strict=True):
            if a.ndim != 1 or a.shape[0] != n or a.dtype != np.dtype(dt) or not a.flags.c_contiguous:
                raise ValueError(f"{name}: expected contiguous 1-D {dt} arrays of length {n}, "
                                 f"got {a.dtype} {a.shape}")
        out = np.empty(n, dtype=out_dtype)
        fn = self.compiled.function(name, None, [ctypes.c_int64] + [ctypes.c_void_p] * (len(arrays) + 1))
        fn(n, *[a.ctypes.data for a in arrays], out.ctypes.data)
        return out
