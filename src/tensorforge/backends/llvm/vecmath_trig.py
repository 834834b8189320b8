"""Vectorisable sin, cos and erf written as inline LLVM IR (no libm calls, no llvm.sin/llvm.cos).

The companions of ``vecmath`` for the transcendental primitives of ops/math.py. ``llvm.sin``
and friends become scalar libm calls that block the loop vectoriser, so these are branch-free
straight-line code like vecmath's: range reduction, polynomial, edge cases fixed with selects.

All three are evaluated in float64; float32 arguments are widened and the result rounded back
once (as vecmath's float32 pow). That costs half the vector width for float32 but leaves one
algorithm per function to get right, and float32 results are then correctly rounded except in
rare double-rounding cases.

    sin, cos  n = round(|x| 2/pi), r = |x| - n pi/2 with pi/2 split in three parts (24 + 24 +
              53 bits, so n pi/2 is exact for n < 2^29), then Cephes' minimax polynomials of
              sin and cos on |r| <= pi/4 chosen by the quadrant n mod 4. Accurate for
              |x| < 2^29 pi/2 ~ 8.4e8; beyond that the reduction loses bits (the result stays in
              [-1, 1]). sin keeps the sign of zero; ±inf and nan give nan.
    erf       |x| < 1: x P(x^2) (degree-12 fit); 1 <= |x| < 6: 1 - e^{-x^2} Q_k(|x| - c_k) with
              one of three degree-16 fits of erfc(x) e^{x^2} centred on [1, 2], [2, 3.5],
              [3.5, 6], the coefficients picked per lane by selects before one Horner pass;
              |x| >= 6: ±1. nan stays nan.

The polynomial coefficients of erf were fitted by weighted least squares on Chebyshev nodes
against 40-digit mpmath values (relative error of each fit below 2e-16).
"""
from __future__ import annotations

import math

from llvmlite import ir

from .vecmath import F32, F64, _Emitter, _round_to_int, exp

__all__ = ["sin", "cos", "erf"]


def _in_float64(fn):
    """Run ``fn(builder, x)`` in float64 for a float32 ``x`` and round the result back once."""
    def lowered(builder: ir.IRBuilder, x):
        if x.type == F32:
            return builder.fptrunc(fn(builder, builder.fpext(x, F64)), F32)
        if x.type != F64:
            raise TypeError(f"vecmath_trig supports float and double, got {x.type}")
        return fn(builder, x)
    lowered.__name__ = fn.__name__
    lowered.__doc__ = fn.__doc__
    return lowered


# ---- sin and cos -------------------------------------------------------------------------

_PIO2_PARTS = (1.570796251296997, 7.549789415861596e-08, 5.390302858158119e-15)   # sum = pi/2
_REDUCE_LIMIT = 2.0 ** 50        # the rounding trick needs |x 2/pi| < 2^51
# Cephes sin.c: sin r = r + r^3 S(r^2), cos r = 1 - r^2/2 + r^4 C(r^2) on |r| <= pi/4
_SIN_COEFFS = (1.58962301576546568060e-10, -2.50507477628578072866e-8, 2.75573136213857245213e-6,
               -1.98412698295895385996e-4, 8.33333333332211858878e-3, -1.66666666666666307295e-1)
_COS_COEFFS = (-1.13585365213876817300e-11, 2.08757008419747316778e-9, -2.75573141792967388112e-7,
               2.48015872888517045348e-5, -1.38888888888730564116e-3, 4.16666666666665929218e-2)


def _reduce_quadrant(m: _Emitter, ax):
    """(r, n mod 4 as i64) with |x| = n pi/2 + r, |r| <= pi/4, for finite |x| <= 2^50."""
    axc = m.sel(m.cmp("<=", ax, m.c(_REDUCE_LIMIT)), ax, m.c(0.0))   # inf/nan: any finite lane
    n_float, n_int = _round_to_int(m, m.mul(axc, m.c(2.0 / math.pi)))
    r = axc
    for part in _PIO2_PARTS:
        r = m.sub(r, m.mul(n_float, m.c(part)))
    return r, m.b.and_(n_int, m.ic(3))


def _sin_cos_reduced(m: _Emitter, r):
    """(sin r, cos r) for |r| <= pi/4."""
    z = m.mul(r, r)
    s = m.add(r, m.mul(m.mul(r, z), m.poly(z, _SIN_COEFFS)))
    c = m.add(m.sub(m.c(1.0), m.mul(m.c(0.5), z)), m.mul(m.mul(z, z), m.poly(z, _COS_COEFFS)))
    return s, c


def _quadrant_select(m: _Emitter, q, s, c, start):
    """The value in quadrant q of the cycle (s, c, -s, -c) rotated by ``start`` steps."""
    b = m.b
    cycle = [s, c, b.fneg(s), b.fneg(c)]
    out = cycle[start % 4]
    for k in (1, 2, 3):
        out = m.sel(b.icmp_signed("==", q, m.ic(k)), cycle[(start + k) % 4], out)
    return out


def _nan_unless_finite(m: _Emitter, x, y):
    return m.sel(m.cmp("<", m.intrinsic("llvm.fabs", x), m.c(math.inf)), y, m.c(math.nan))


@_in_float64
def sin(builder: ir.IRBuilder, x):
    """sin(x) = sign(x) sin|x|; the sign is xor-ed in as a bit so sin(-0.0) = -0.0."""
    m = _Emitter(builder, x.type)
    r, q = _reduce_quadrant(m, m.intrinsic("llvm.fabs", x))
    s, c = _sin_cos_reduced(m, r)
    y = _quadrant_select(m, q, s, c, 0)
    sign = builder.and_(m.bits(x), m.ic(-(1 << 63)))
    y = m.from_bits(builder.xor(m.bits(y), sign))
    return _nan_unless_finite(m, x, y)


@_in_float64
def cos(builder: ir.IRBuilder, x):
    """cos(x) = cos|x|."""
    m = _Emitter(builder, x.type)
    r, q = _reduce_quadrant(m, m.intrinsic("llvm.fabs", x))
    s, c = _sin_cos_reduced(m, r)
    return _nan_unless_finite(m, x, _quadrant_select(m, q, s, c, 1))


# ---- erf ---------------------------------------------------------------------------------

# erf(x) / x as a polynomial in x^2 on [0, 1]
_ERF_SMALL = (1.1283791670955126, -0.3761263890318375, 0.11283791670954854, -0.02686617064507231,
              0.0052239776247753195, -0.0008548326978430694, 0.00012055331025793798,
              -1.4925593245923501e-05, 1.6460968721975601e-06, -1.634998274189769e-07,
              1.4657600165778558e-08, -1.1364607520605601e-09, 5.943508233981784e-11)
# erfc(x) e^{x^2} as polynomials in (x - centre), lowest degree first: (lo, hi, centre, coeffs)
_ERFC_PIECES = (
    (1.0, 2.0, 1.5, (0.3215854164543175, -0.16362291773256005, 0.07615103985547744,
                     -0.032930905299565195, 0.013377340953064117, -0.00514595754784107,
                     0.0018861348770973722, -0.0006619300700456363, 0.00022330994363747457,
                     -7.265887363142722e-05, 2.2864313849315558e-05, -6.97535899799057e-06,
                     2.066998266390277e-06, -5.945047401764104e-07, 1.673095731688652e-07,
                     -4.953659051104815e-08, 1.3075524498057116e-08)),
    (2.0, 3.5, 2.75, (0.1936620962790687, -0.06323763756063479, 0.019758592987322934,
                      -0.005934337897002062, 0.0017195818852870522, -0.0004821950848789015,
                      0.00013118180055202595, -3.469861072247932e-05, 8.940155987285796e-06,
                      -2.2473666450475244e-06, 5.519755378474597e-07, -1.326482080602403e-07,
                      3.121169695747775e-08, -7.1566832425958e-09, 1.6234240083535878e-09,
                      -4.055728131708661e-10, 8.712058257272271e-11)),
    (3.5, 6.0, 4.75, (0.11630270721024731, -0.02350344859816291, 0.004661326368972527,
                      -0.0009080988970371067, 0.00017392830403879472, -3.2775781067916505e-05,
                      6.081114555374916e-06, -1.1115679888674168e-06, 2.0029197345549537e-07,
                      -3.559517466860173e-08, 6.242396715536857e-09, -1.0814500807275884e-09,
                      1.8487231667616695e-10, -3.075337612596699e-11, 5.155162533269484e-12,
                      -1.0273835677083662e-12, 1.645799201377223e-13)),
)
_ERF_ONE = 6.0       # erf(6) rounds to 1 in float64


def _erfc_scaled(m: _Emitter, ax):
    """erfc(|x|) e^{x^2} for 1 <= |x| < 6: each coefficient is selected per lane from the
    piece |x| falls in, then one Horner pass (cheaper than evaluating all three)."""
    first = m.cmp("<", ax, m.c(_ERFC_PIECES[0][1]))
    second = m.cmp("<", ax, m.c(_ERFC_PIECES[1][1]))

    def pick(a, b, c):
        return m.sel(first, m.c(a), m.sel(second, m.c(b), m.c(c)))

    centre = pick(*(p[2] for p in _ERFC_PIECES))
    u = m.sub(ax, centre)
    coeffs = [p[3] for p in _ERFC_PIECES]
    acc = pick(*(c[-1] for c in coeffs))
    for k in range(len(coeffs[0]) - 2, -1, -1):
        acc = m.add(m.mul(acc, u), pick(*(c[k] for c in coeffs)))
    return acc


@_in_float64
def erf(builder: ir.IRBuilder, x):
    """erf(x): odd polynomial near 0, 1 - e^{-x^2} (erfc e^{x^2}) further out, ±1 beyond 6."""
    m = _Emitter(builder, x.type)
    ax = m.intrinsic("llvm.fabs", x)
    small = m.mul(x, m.poly(m.mul(x, x), _ERF_SMALL[::-1]))
    axc = m.sel(m.cmp("<", ax, m.c(_ERF_ONE)), ax, m.c(_ERF_ONE))     # also maps nan to 6
    axc = m.sel(m.cmp(">=", axc, m.c(1.0)), axc, m.c(1.0))
    tail = m.mul(exp(builder, m.b.fneg(m.mul(axc, axc))), _erfc_scaled(m, axc))
    big = m.sub(m.c(1.0), tail)
    big = m.sel(m.cmp("<", ax, m.c(_ERF_ONE)), big, m.c(1.0))
    big = m.intrinsic("llvm.copysign", big, x)
    y = m.sel(m.cmp("<", ax, m.c(1.0)), small, big)
    return m.sel(m.b.fcmp_unordered("uno", x, x), x, y)
