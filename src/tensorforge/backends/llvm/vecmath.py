"""Vectorisable exp, log, tanh and pow written as inline LLVM IR (no libm calls).

A call to libm's ``expf`` inside a loop blocks the loop vectoriser; the same loop with
an inline polynomial runs in ymm/zmm registers about 20x faster. The algorithms are
Cephes' (range reduction + minimax polynomial / Padé approximant; float64 log uses
fdlibm's atanh-series arrangement instead), all within ~1 ulp, written only with
branch-free arithmetic, integer bit tricks and selects, so every lane computes the
same instruction stream. Edge cases are fixed up with selects at the end:

    exp: overflow -> inf, underflow -> 0, nan -> nan
    log: 0 -> -inf, negative -> nan, inf -> inf, nan -> nan, subnormals handled
    tanh: |x| small uses an odd polynomial (no 1 - 2/(e^2x + 1) cancellation), ±large -> ±1
    pow: C ``pow`` rules (integer exponents of negative bases, 0, inf, nan, pow(x, 0) = 1);
         float32 pow is evaluated in float64 so exp(b*log|a|) stays accurate.

Every function takes an ``ir.IRBuilder`` and a float or double value and returns the
result value; instructions carry only ``contract`` (FMA formation), so polynomials are
evaluated as written and NaN/Inf behave.
"""
from __future__ import annotations

import math

from llvmlite import ir

F32, F64 = ir.FloatType(), ir.DoubleType()
FLAGS = ("contract",)


class _Emitter:
    """Small arithmetic helpers bound to one builder and one float type."""

    def __init__(self, builder: ir.IRBuilder, ty):
        if ty not in (F32, F64):
            raise TypeError(f"vecmath supports float and double, got {ty}")
        self.b, self.ty = builder, ty
        self.is32 = ty == F32
        self.ity = ir.IntType(32 if self.is32 else 64)
        self.mant_bits = 23 if self.is32 else 52
        self.bias = 127 if self.is32 else 1023

    def c(self, v):
        return ir.Constant(self.ty, v)

    def ic(self, v):
        return ir.Constant(self.ity, v)

    def add(self, a, b):
        return self.b.fadd(a, b, flags=FLAGS)

    def sub(self, a, b):
        return self.b.fsub(a, b, flags=FLAGS)

    def mul(self, a, b):
        return self.b.fmul(a, b, flags=FLAGS)

    def div(self, a, b):
        return self.b.fdiv(a, b, flags=FLAGS)

    def cmp(self, op, a, b):
        return self.b.fcmp_ordered(op, a, b)

    def sel(self, cond, a, b):
        return self.b.select(cond, a, b)

    def poly(self, x, coeffs):
        """Horner: coeffs[0]*x^(n-1) + ... + coeffs[-1]."""
        acc = self.c(coeffs[0])
        for k in coeffs[1:]:
            acc = self.add(self.mul(acc, x), self.c(k))
        return acc

    def intrinsic(self, name, *args):
        module = self.b.module
        fnty = ir.FunctionType(self.ty, [self.ty] * len(args))   # llvmlite guesses 2-arg ones wrong
        fn = module.declare_intrinsic(name, [self.ty], fnty)
        return self.b.call(fn, args)

    def bits(self, x):
        return self.b.bitcast(x, self.ity)

    def from_bits(self, i):
        return self.b.bitcast(i, self.ty)

    def pow2i(self, n):
        """2**n for integer n in the normal exponent range, built from the exponent bits."""
        e = self.b.shl(self.b.add(n, self.ic(self.bias)), self.ic(self.mant_bits))
        return self.from_bits(e)


# ---- exp ---------------------------------------------------------------------------------

_EXP_LIMITS = {  # largest x with finite exp(x); below lo the result rounds to 0
    "f32": (88.72283172607422, -103.97207641601562),
    "f64": (709.782712893384, -745.1332191019412),
}
_EXP_C1 = 0.693359375                 # ln 2 split in two: C1 has few bits, so n*C1 is exact
_EXP_C2_32 = -2.12194440e-4
_EXP_C2_64 = -2.121944400546905827679e-4
_EXPF_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
           5.0000001201e-1)
_EXP_P = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
_EXP_Q = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1,
          2.00000000000000000009e0)


def _round_to_int(m: _Emitter, t):
    """(n as float, n as int) = round(t), by the 1.5*2^mant magic-number addition (vectorises
    on AVX2 where a packed double->int64 conversion does not exist)."""
    magic = m.c(1.5 * 2.0 ** m.mant_bits)
    shifted = m.add(t, magic)
    n_float = m.sub(shifted, magic)
    n_int = m.b.sub(m.bits(shifted), m.bits(magic))
    return n_float, n_int


def _exp_mantissa(m: _Emitter, xc):
    """(e^r, n) with xc = n ln2 + r, |r| <= ln2 / 2: exp(xc) = e^r * 2^n."""
    n_float, n_int = _round_to_int(m, m.mul(xc, m.c(1.0 / math.log(2.0))))
    r = m.sub(xc, m.mul(n_float, m.c(_EXP_C1)))
    r = m.sub(r, m.mul(n_float, m.c(_EXP_C2_32 if m.is32 else _EXP_C2_64)))
    if m.is32:
        return m.add(m.add(m.mul(m.poly(r, _EXPF_P), m.mul(r, r)), r), m.c(1.0)), n_int
    rr = m.mul(r, r)
    px = m.mul(r, m.poly(rr, _EXP_P))
    return m.add(m.c(1.0), m.mul(m.c(2.0), m.div(px, m.sub(m.poly(rr, _EXP_Q), px)))), n_int


def exp(builder: ir.IRBuilder, x):
    m = _Emitter(builder, x.type)
    hi, lo = _EXP_LIMITS["f32" if m.is32 else "f64"]
    xc = m.sel(m.cmp("<=", x, m.c(hi)), x, m.c(hi))     # nan -> hi: keeps the lanes finite
    xc = m.sel(m.cmp(">=", xc, m.c(lo)), xc, m.c(lo))
    y, n_int = _exp_mantissa(m, xc)
    # scale by 2^n in two halves so subnormal results and n = max exponent + 1 both work
    n1 = m.b.ashr(n_int, m.ic(1))
    n2 = m.b.sub(n_int, n1)
    y = m.mul(m.mul(y, m.pow2i(n1)), m.pow2i(n2))
    y = m.sel(m.cmp(">", x, m.c(hi)), m.c(math.inf), y)
    y = m.sel(m.cmp("<", x, m.c(lo)), m.c(0.0), y)
    return m.sel(m.b.fcmp_unordered("uno", x, x), x, y)


# ---- log ---------------------------------------------------------------------------------

_SQRTH = 0.70710678118654752440
_LOGF_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
           -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)


def _frexp(m: _Emitter, x):
    """(mantissa in [0.5, 1), exponent as float) for positive finite x, subnormals included."""
    tiny = m.cmp("<", x, m.c(2.0 ** (1 - m.bias)))        # below the smallest normal number
    xs = m.sel(tiny, m.mul(x, m.c(2.0 ** m.mant_bits)), x)
    bits = m.bits(xs)
    exp_field = m.b.and_(m.b.lshr(bits, m.ic(m.mant_bits)), m.ic(2 * m.bias + 1))
    e = m.b.sub(exp_field, m.ic(m.bias - 1))
    e = m.b.sub(e, m.b.select(tiny, m.ic(m.mant_bits), m.ic(0)))
    mant_mask = (1 << m.mant_bits) - 1
    half_bits = (m.bias - 1) << m.mant_bits
    mant = m.from_bits(m.b.or_(m.b.and_(bits, m.ic(mant_mask)), m.ic(half_bits)))
    return mant, e


_LOG_ATANH_TERMS = tuple(1.0 / (2 * k + 1) for k in range(12, 0, -1))   # z^12/25 ... z/3


def _log1p_reduced_f64(m: _Emitter, f, ef):
    """log(1+f) + e*ln2 for f in [sqrt(1/2)-1, sqrt(2)-1], float64, via the atanh series
    log(1+f) = 2s(1 + s^2/3 + s^4/5 + ...), s = f/(2+f), |s| < 0.172 (fdlibm's arrangement:
    log(1+f) = f - (f^2/2 - s(f^2/2 + R)) keeps the big term f exact)."""
    sv = m.div(f, m.add(m.c(2.0), f))
    z = m.mul(sv, sv)
    r = m.mul(z, m.add(m.mul(m.poly(z, _LOG_ATANH_TERMS[:-1]), z), m.c(_LOG_ATANH_TERMS[-1])))
    r = m.mul(m.c(2.0), r)                               # 2(z/3 + z^2/5 + ...)
    hfsq = m.mul(m.c(0.5), m.mul(f, f))
    lo = m.add(m.mul(sv, m.add(hfsq, r)), m.mul(ef, m.c(_EXP_C2_64)))
    return m.add(m.mul(ef, m.c(_EXP_C1)), m.sub(f, m.sub(hfsq, lo)))


def log(builder: ir.IRBuilder, x):
    m = _Emitter(builder, x.type)
    mant, e = _frexp(m, x)
    small = m.cmp("<", mant, m.c(_SQRTH))
    e = m.b.sub(e, m.b.zext(small, m.ity))
    f = m.sub(m.sel(small, m.add(mant, mant), mant), m.c(1.0))    # log(1 + f), |f| < 0.415
    # the exponent is small: convert through i32 (packed int64 -> double needs AVX-512)
    e32 = e if m.is32 else m.b.trunc(e, ir.IntType(32))
    ef = m.b.sitofp(e32, m.ty)
    z = m.mul(f, f)
    if m.is32:
        y = m.mul(m.mul(f, z), m.poly(f, _LOGF_P))
        y = m.add(y, m.mul(ef, m.c(_EXP_C2_32)))
        y = m.sub(y, m.mul(z, m.c(0.5)))
        r = m.add(m.add(f, y), m.mul(ef, m.c(_EXP_C1)))
    else:
        r = _log1p_reduced_f64(m, f, ef)
    r = m.sel(m.cmp("==", x, m.c(math.inf)), x, r)
    r = m.sel(m.cmp("==", x, m.c(0.0)), m.c(-math.inf), r)
    r = m.sel(m.cmp("<", x, m.c(0.0)), m.c(math.nan), r)
    return m.sel(m.b.fcmp_unordered("uno", x, x), x, r)



# ---- tanh --------------------------------------------------------------------------------

_TANHF_P = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
            -3.33332819422e-1)
_TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TANH_Q = (1.0, 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)


_TANH_EXP_LIMIT = {"f32": 88.0, "f64": 708.0}    # 2^n stays a normal number (n <= 127 / 1022)


def tanh(builder: ir.IRBuilder, x):
    m = _Emitter(builder, x.type)
    ax = m.intrinsic("llvm.fabs", x)
    # |x| >= 0.625: 1 - 2/(e^{2|x|} + 1). e^{2|x|} needs none of exp's edge cases: 2|x| is
    # clamped below the largest exponent whose power of two is still normal, where the result
    # is already exactly ±1 (2/e^{2|x|} is far below half an ulp of 1), and NaN is fixed last
    limit = _TANH_EXP_LIMIT["f32" if m.is32 else "f64"]
    two_ax = m.add(ax, ax)
    e, n_int = _exp_mantissa(m, m.sel(m.cmp("<=", two_ax, m.c(limit)), two_ax, m.c(limit)))
    big = m.sub(m.c(1.0), m.div(m.c(2.0), m.add(m.mul(e, m.pow2i(n_int)), m.c(1.0))))
    big = m.intrinsic("llvm.copysign", big, x)
    # |x| < 0.625: odd polynomial / rational function, no cancellation near 0
    z = m.mul(x, x)
    if m.is32:
        tail = m.poly(z, _TANHF_P)
    else:
        tail = m.div(m.poly(z, _TANH_P), m.poly(z, _TANH_Q))
    small = m.add(x, m.mul(m.mul(x, z), tail))
    # tanh is odd: tanh(-0.0) is -0.0, but -0.0 + (+0.0) above gives +0.0; elsewhere in this
    # branch the sum already has x's sign (|x z tail| < |x|), so this changes only zeros
    small = m.intrinsic("llvm.copysign", small, x)
    y = m.sel(m.cmp("<", ax, m.c(0.625)), small, big)
    return m.sel(m.b.fcmp_unordered("uno", x, x), x, y)


# ---- pow ---------------------------------------------------------------------------------

def pow(builder: ir.IRBuilder, a, b):  # noqa: A001 - the primitive's name
    if a.type == F32:
        # exp(b*log|a|) amplifies log's rounding by |b log a|: evaluate float32 pow in float64
        r = pow(builder, builder.fpext(a, F64), builder.fpext(b, F64))
        return builder.fptrunc(r, F32)
    m = _Emitter(builder, a.type)
    y = exp(builder, m.mul(b, log(builder, m.intrinsic("llvm.fabs", a))))
    fb = m.intrinsic("llvm.floor", b)
    b_is_int = m.cmp("==", fb, b)                              # false for nan, true for ±inf
    half = m.mul(b, m.c(0.5))
    b_is_odd = builder.and_(b_is_int, m.cmp("!=", m.intrinsic("llvm.floor", half), half))
    a_sign = builder.icmp_signed("<", m.bits(a), m.ic(0))      # sign bit: pow(-0, 3) = -0
    y = m.sel(builder.and_(a_sign, b_is_odd), builder.fneg(y), y)
    a_negative = m.cmp("<", a, m.c(0.0))
    a_negative = builder.and_(a_negative, m.cmp("!=", a, m.c(-math.inf)))   # pow(-inf, 0.5) = inf
    y = m.sel(builder.and_(a_negative, builder.not_(b_is_int)), m.c(math.nan), y)
    abs_a_is_one = m.cmp("==", m.intrinsic("llvm.fabs", a), m.c(1.0))
    b_is_inf = m.cmp("==", m.intrinsic("llvm.fabs", b), m.c(math.inf))
    y = m.sel(builder.and_(abs_a_is_one, b_is_inf), m.c(1.0), y)   # pow(-1, ±inf) = 1
    y = m.sel(m.cmp("==", a, m.c(1.0)), m.c(1.0), y)               # pow(1, anything) = 1
    return m.sel(m.cmp("==", b, m.c(0.0)), m.c(1.0), y)           # pow(anything, 0) = 1
