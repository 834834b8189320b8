"""Max ulp error of the elementwise math ops (ops/math.py) on a backend, float32 and float64.

    PYTHONPATH=src python tools/ulp_sweep.py [--n 20000] [--backend llvm] [--ops sin,erf]

Each op is compiled as a one-node graph and run on a dense sweep of its domain (uniform
points, points spread log-uniformly from 1e-30 to the largest useful magnitude, both signs,
and the neighbourhoods of the interesting points). The truth is NumPy in ``np.longdouble``
(x87 80-bit on x86-64: 11 more bits than float64), so no mpmath is needed; erf, which NumPy
lacks, is summed in longdouble from its series erf(x) = 2/sqrt(pi) e^{-x^2} sum 2^n x^{2n+1} /
(2n+1)!!, whose terms are all positive (no cancellation).

The error of a result y against the truth t is |y - t| / ulp(t), ulp(t) the spacing of the
output dtype at t rounded to that dtype; non-finite truths must be matched exactly (counted as
0 or inf). docs/numerics.md holds the table this prints; tests/test_ops_math.py asserts
``BOUNDS`` on a smaller sweep.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

LD = np.longdouble
# documented bounds (ulp), float32 and float64: docs/numerics.md, asserted by tests/test_ops_math.py
BOUNDS = {
    "sin": (1, 2), "cos": (1, 2), "tan": (2, 3.5), "asin": (3.5, 3.5), "acos": (3.5, 3), "atan": (3, 2),
    "sinh": (3, 4.5), "cosh": (3, 4), "asinh": (3, 3), "acosh": (3, 3), "atanh": (3, 3),
    "log2": (2, 2), "log10": (2.5, 3), "log1p": (2.5, 2.5), "expm1": (3, 3), "exp2": (1, 2),
    "rsqrt": (2, 2), "reciprocal": (0.5, 0.5), "square": (0.5, 0.5), "erf": (1, 2),
    "gelu": (2, 2), "gelu_tanh": (2, 2), "atan2": (3, 3), "copysign": (0, 0), "logaddexp": (2.5, 2.5),
    "lerp": (1.5, 1),
}
TRIG_LIMIT = 8.0e8       # |x| beyond which sin/cos/tan lose accuracy (vecmath_trig)


def _erf_ld(x):
    """erf in longdouble: the positive series for |x| < 6.5, ±1 beyond."""
    x = np.asarray(x, LD)
    ax = np.minimum(np.abs(x), LD(6.5))
    term = ax.copy()
    total = ax.copy()
    for n in range(1, 400):
        term = term * (2 * ax * ax) / (2 * n + 1)
        total = total + term
    r = 2 / np.sqrt(np.arccos(LD(-1))) * np.exp(-ax * ax) * total
    r = np.where(np.abs(x) >= 6.5, LD(1), r)
    return np.where(np.isnan(x), x, np.copysign(r, x))


_SQRT1_2 = np.sqrt(LD(0.5))
_K = np.sqrt(2 / np.arccos(LD(-1)))

TRUTH = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "log2": np.log2, "log10": np.log10, "log1p": np.log1p, "expm1": np.expm1, "exp2": np.exp2,
    "rsqrt": lambda x: 1 / np.sqrt(x), "reciprocal": lambda x: 1 / x, "square": lambda x: x * x,
    "erf": _erf_ld,
    "gelu": lambda x: x * LD(0.5) * (1 + _erf_ld(x * _SQRT1_2)),
    "gelu_tanh": lambda x: LD(0.5) * x * (1 + np.tanh(_K * (x + LD(0.044715) * x * x * x))),
    "atan2": np.arctan2, "copysign": np.copysign, "logaddexp": np.logaddexp,
    "lerp": lambda a, b: a + LD(0.3) * (b - a),          # exact lerp at weight 0.3
}


# Ops whose formula cancels (as torch's does): their error is counted in ulps of a scale of the
# inputs rather than of a result near zero.
SCALE = {
    "logaddexp": lambda a, b: np.maximum(np.abs(a), np.abs(b)),     # m + log1p(...) cancels near 0
    "lerp": lambda a, b: np.maximum(np.abs(a), np.abs(b)),          # start + w (end - start)
    "gelu": lambda x: np.abs(x) / 2,                                # 1 + erf(x/sqrt 2) in the left tail
    "gelu_tanh": lambda x: np.abs(x) / 2,                           # 1 + tanh(...) in the left tail
}


def _logspace(rng, n, lo_exp, hi_exp, signed=True):
    v = 10.0 ** rng.uniform(lo_exp, hi_exp, n)
    return v * rng.choice([-1.0, 1.0], n) if signed else v


def _domain(name, rng, n, dtype):
    """Sweep points of one op (a tuple of arrays for binary ops), in dtype."""
    big = 38.0 if dtype == np.float32 else 300.0
    u = lambda lo, hi, k=n: rng.uniform(lo, hi, k)  # noqa: E731
    q = n // 4
    if name in ("sin", "cos", "tan"):
        x = np.r_[u(-10, 10, 2 * q), u(-1e4, 1e4, q), _logspace(rng, q, -30, np.log10(TRIG_LIMIT))]
    elif name in ("asin", "acos", "atanh"):
        x = np.r_[u(-1, 1, 2 * q), 1 - _logspace(rng, q, -15, 0, False), _logspace(rng, q, -30, 0)]
    elif name == "acosh":
        x = np.r_[u(1, 10, 2 * q), 1 + _logspace(rng, q, -15, 0, False), _logspace(rng, q, 0, big, False)]
    elif name in ("log2", "log10", "rsqrt"):
        x = np.r_[u(0, 10, 2 * q), _logspace(rng, 2 * q, -30, big, False)]
    elif name == "log1p":
        x = np.r_[u(-1, 10, 2 * q), _logspace(rng, q, -30, 0), _logspace(rng, q, 0, big, False)]
    elif name in ("sinh", "cosh", "expm1", "exp2"):
        lim = 88.0 if dtype == np.float32 else 709.0
        x = np.r_[u(-3, 3, 2 * q), u(-lim, lim, q), _logspace(rng, q, -30, 0)]
    elif name in ("erf", "gelu", "gelu_tanh"):
        x = np.r_[u(-7, 7, 3 * q), _logspace(rng, q, -30, 0)]
    elif name in ("atan2", "copysign", "logaddexp", "lerp"):
        a = np.r_[u(-10, 10, 2 * q), _logspace(rng, 2 * q, -30, big / 2)]
        b = np.r_[u(-10, 10, 2 * q), _logspace(rng, 2 * q, -30, big / 2)]
        return a.astype(dtype), rng.permutation(b).astype(dtype)
    else:   # atan, asinh, reciprocal, square
        x = np.r_[u(-10, 10, 2 * q), _logspace(rng, 2 * q, -30, big / 2)]
    return (x.astype(dtype),)


def _tg_fn(name):
    import tensorforge as tg
    if name == "gelu_tanh":
        return lambda x: tg.gelu(x, approximate="tanh")
    if name == "lerp":
        return lambda a, b: tg.lerp(a, b, 0.3)
    return getattr(tg, name)


def run_op(name, arrays, backend="llvm"):
    import tensorforge as tg
    g = tg.Graph(f"ulp_{name}")
    with g:
        xs = [tg.placeholder(f"x{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays)]
        out = _tg_fn(name)(*xs)
    return tg.compile(xs, [out], backend=backend)(*arrays)[0]


def ulp_errors(y, truth, dtype, scale=None):
    """|y - t| / ulp(t) in ``dtype`` (ulp of max(|t|, scale) if a scale is given); a non-finite
    truth must be matched exactly."""
    t = np.asarray(truth, LD)
    finite = np.isfinite(t)
    ref = t if scale is None else np.maximum(np.abs(t), np.asarray(scale, LD))
    t_round = np.where(finite & np.isfinite(ref), ref, 0).astype(dtype)
    ulp = np.spacing(np.abs(t_round)).astype(LD)
    with np.errstate(all="ignore"):
        err = np.abs(np.asarray(y, LD) - t) / ulp
    # results that underflow to subnormals: measure against the smallest normal's spacing
    exact = (np.asarray(y, LD) == t) | (np.isnan(t) & np.isnan(np.asarray(y, LD)))
    return np.where(exact, 0, np.where(finite, err, np.inf)).astype(np.float64)


def sweep(name, n=20000, backend="llvm", seed=0):
    """{dtype: (max ulp, the worst arguments)} for one op."""
    out = {}
    for dtype in (np.float32, np.float64):
        arrays = _domain(name, np.random.default_rng(seed), n, dtype)
        with np.errstate(all="ignore"):
            truth = TRUTH[name](*(a.astype(LD) for a in arrays))
        y = run_op(name, arrays, backend)
        scale = SCALE[name](*(a.astype(LD) for a in arrays)) if name in SCALE else None
        err = ulp_errors(y, truth, dtype, scale)
        i = int(np.argmax(err))
        out[np.dtype(dtype).name] = (float(err[i]), tuple(float(a[i]) for a in arrays))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="points per op and dtype")
    p.add_argument("--backend", default="llvm")
    p.add_argument("--ops", default=",".join(BOUNDS))
    args = p.parse_args(argv)
    print("| op | float32 max ulp | float64 max ulp | bound (f32 / f64) |\n|---|---|---|---|")
    worst_ok = True
    for name in args.ops.split(","):
        res = sweep(name, args.n, args.backend)
        b32, b64 = BOUNDS[name]
        e32, e64 = res["float32"][0], res["float64"][0]
        worst_ok &= e32 <= b32 and e64 <= b64
        print(f"| {name} | {e32:.2f} | {e64:.2f} | {b32} / {b64} |   worst at f32 {res['float32'][1]}, "
              f"f64 {res['float64'][1]}", flush=True)
    return 0 if worst_ok else 1


if __name__ == "__main__":
    sys.exit(main())
