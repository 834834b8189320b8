"""The elementwise math family (ops/math.py) beyond the op-info table: accuracy bounds on the
LLVM backend (tools/ulp_sweep.py, docs/numerics.md), inline code without libm calls, fusion,
Tensor methods, dtypes and the errors for bad input."""
from __future__ import annotations

import importlib.util
import pathlib
import re

import numpy as np
import pytest

import tensorforge as tg

_TOOL = pathlib.Path(__file__).resolve().parents[1] / "tools" / "ulp_sweep.py"
_spec = importlib.util.spec_from_file_location("ulp_sweep", _TOOL)
ulp_sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ulp_sweep)


@pytest.mark.parametrize("name", sorted(ulp_sweep.BOUNDS))
def test_llvm_accuracy_within_the_documented_ulp_bound(name):
    res = ulp_sweep.sweep(name, n=2000, backend="llvm", seed=1)
    b32, b64 = ulp_sweep.BOUNDS[name]
    assert res["float32"][0] <= b32, f"{name} float32: {res['float32']}"
    assert res["float64"][0] <= b64, f"{name} float64: {res['float64']}"


def _graph_io(build, dtype):
    with tg.Graph("ir"):
        x = tg.placeholder("x", (64,), dtype=dtype)
        return [x], [build(x)]


def _compiled_ir(build, dtype):
    f = tg.compile(*_graph_io(build, dtype), backend="llvm")
    a = np.linspace(-3, 3, 64).astype(dtype)
    exe = f.executable_for([a])
    return f, exe, a


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_sin_cos_erf_kernel_calls_no_math_function(dtype):
    build = lambda x: tg.sin(x) * tg.cos(x) + tg.erf(x) + tg.gelu(x) + tg.atan2(x, tg.exp2(x))  # noqa: E731
    f, exe, a = _compiled_ir(build, dtype)
    assert len(exe.manifest["kernels"]) == 1, exe.manifest["kernels"]          # one fused kernel
    calls = re.findall(r"call [^@]*@([\w.$]+)", exe.ir)
    # intrinsics that are single instructions (fabs, floor, copysign, sqrt) are fine; no libm
    # function and no llvm.sin/cos/exp/log/pow (they become libm calls and block vectorisation)
    libm = r"(a?(sin|cos|tan)h?|atan2|erfc?|exp(2|10|m1)?|log(2|10|1p)?|pow|cbrt|ldexp)f?"
    math_calls = [c for c in calls if re.fullmatch(libm, c) or re.fullmatch(r"llvm\.(" + libm + r"|powi)\..*", c)]
    assert not math_calls, math_calls
    (got,) = f(a)
    ref = tg.compile(*_graph_io(build, dtype), backend="interp")(a)[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


def test_fused_math_chain_matches_interp_on_every_backend():
    xv = np.linspace(-0.9, 0.9, 37)
    outs = {}
    for backend in ("interp", "llvm", "triton"):
        g = tg.Graph(backend)
        with g:
            x = tg.placeholder("x", (37,), dtype="float32")
            y = tg.asin(x) + tg.atanh(x) * tg.tan(x) - tg.log1p(x) / tg.cosh(x) + tg.square(tg.rsqrt(x + 2.0))
        outs[backend] = tg.compile([x], [y], backend=backend)(xv.astype(np.float32))[0]
    np.testing.assert_allclose(outs["llvm"], outs["interp"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs["triton"], outs["interp"], rtol=1e-5, atol=1e-6)


def test_tensor_methods_and_dtypes():
    g = tg.Graph("m")
    with g:
        x = tg.placeholder("x", (3,), dtype="float32")
        i = tg.placeholder("i", (3,), dtype="int64")
        b = tg.placeholder("b", (3,), dtype="bool")
        assert x.sin().op == "sin" and x.atan2(x).op == "atan2" and x.lerp(x, 0.5).op == "lerp"
        assert x.copysign(x).op == "copysign" and x.logaddexp(x).op == "logaddexp"
        assert tg.sin(i).dtype == "float32" and tg.exp2(i).dtype == "float32"
        assert tg.atan2(i, i).dtype == "float32" and tg.reciprocal(i).dtype == "float32"
        assert tg.square(i).dtype == "int64" and tg.square(b).dtype == "int64"
        assert tg.sin(tg.cast(x, "float64")).dtype == "float64"


def test_bad_input_raises_a_clear_error_when_the_graph_is_built():
    g = tg.Graph("bad")
    with g:
        x = tg.placeholder("x", (3,), dtype="float32")
        y = tg.placeholder("y", (4,), dtype="float32")
        with pytest.raises(ValueError, match="approximate"):
            tg.gelu(x, approximate="erf")
        with pytest.raises(tg.ShapeError):
            tg.atan2(x, y)
        with pytest.raises(tg.ShapeError):
            tg.lerp(x, x, y)
