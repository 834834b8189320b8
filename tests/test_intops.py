"""Predicates, rounding, integer division, bitwise/logical ops and clamp beyond the op-info
table: bad input is refused when the graph is built, the ops fuse into one kernel, integer
division never traps, and the interpreter covers the narrow and unsigned integer dtypes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tensorforge as tg
from tensorforge.ops.scalar import NUMPY
from tensorforge.passes.pipeline import COMPILER_PASSES

BACKENDS = ("interp", "llvm", "triton")


def run(fn, arrays, backend, passes=None):
    g = tg.Graph()
    with g:
        xs = [tg.placeholder(f"x{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays)]
        out = fn(*xs)
    kw = {} if passes is None else dict(passes=passes)
    compiled = tg.compile(xs, [out], backend=backend, **kw)
    return compiled(*arrays)[0], compiled


# ---- bad input is refused at graph-build time, naming the culprit ---------------------------

@pytest.mark.parametrize("build, error, words", [
    (lambda f, i, b: f & i, TypeError, ["bitwise_and", "'input'", "float32"]),
    (lambda f, i, b: i | f, TypeError, ["bitwise_or", "'other'", "float32"]),
    (lambda f, i, b: ~f, TypeError, ["bitwise_not", "float32"]),
    (lambda f, i, b: b << b, TypeError, ["bitwise_left_shift", "bool"]),
    (lambda f, i, b: i >> 1.5, TypeError, ["bitwise_right_shift", "'other'", "float32"]),
    (lambda f, i, b: b // b, TypeError, ["floor_divide", "bool"]),
    (lambda f, i, b: tg.fmod(i, b), TypeError, ["fmod", "'other'", "bool"]),
    (lambda f, i, b: tg.floor(b), TypeError, ["floor", "bool"]),
    (lambda f, i, b: tg.round(f, decimals=1.5), TypeError, ["decimals"]),
    (lambda f, i, b: tg.clamp(f), ValueError, ["min", "max"]),
    (lambda f, i, b: tg.clamp(b, min=0), TypeError, ["clamp", "'input'", "bool"]),
    (lambda f, i, b: tg.clamp(f, min="0"), TypeError, ["clamp", "'min'", "str"]),
    (lambda f, i, b: tg.remainder(f, tg.placeholder("z", (4,))), tg.ShapeError, ["(3,)", "(4,)"]),
])
def test_bad_input_is_refused_when_the_graph_is_built(build, error, words):
    with tg.Graph():
        f = tg.placeholder("f", (3,))
        i = tg.placeholder("i", (3,), dtype="int32")
        b = tg.placeholder("b", (3,), dtype="bool")
        with pytest.raises(error) as info:
            build(f, i, b)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


# ---- integer division and shifts never trap, and agree everywhere -------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_division_at_zero_and_int_min_is_defined(backend, dtype):
    lo = np.iinfo(dtype).min
    a = np.array([lo, lo, 7, -7, 0, lo], dtype)
    b = np.array([-1, 0, 0, 0, 0, 1], dtype)
    fd, _ = run(lambda x, y: x // y, [a, b], backend)
    rem, _ = run(lambda x, y: x % y, [a, b], backend)
    fm, _ = run(tg.fmod, [a, b], backend)
    np.testing.assert_array_equal(fd, np.array([lo, 0, 0, 0, 0, lo], dtype))   # NumPy's choice
    np.testing.assert_array_equal(rem, np.zeros(6, dtype))
    np.testing.assert_array_equal(fm, np.zeros(6, dtype))


@pytest.mark.parametrize("backend", BACKENDS)
def test_scalar_operands_and_reflected_operators(backend):
    x = np.array([-7, -1, 0, 5, 12], np.int64)
    out, _ = run(lambda t: (17 // (t + 20)) + (100 % (t + 20)) + (1 << (t + 7)) + (256 >> (t + 7))
                 + (3 & t) + (3 | t) + (3 ^ t), [x], backend)
    tx = torch.tensor(x)
    want = (17 // (tx + 20)) + (100 % (tx + 20)) + (1 << (tx + 7)) + (256 >> (tx + 7)) + (3 & tx) \
        + (3 | tx) + (3 ^ tx)
    np.testing.assert_array_equal(out, want.numpy())


# ---- the ops fuse: one kernel for a chain of them --------------------------------------------

@pytest.mark.parametrize("backend", ["llvm", "triton"])
def test_a_chain_of_these_ops_is_one_kernel(backend):
    rng = np.random.default_rng(0)
    x = rng.uniform(-5, 5, (4, 6)).astype(np.float32)
    y = rng.uniform(0.5, 2, (4, 6)).astype(np.float32)

    def chain(a, b):
        c = tg.clamp(tg.round(a % b, decimals=1) + tg.fmod(a, b) - a // b, -2.0, 2.0)
        keep = tg.logical_and(tg.isfinite(a), tg.logical_not(tg.isnan(b)))
        return tg.where(keep, tg.ceil(tg.trunc(c) * 1.5), 0.0)

    want, _ = run(chain, [x, y], "interp", passes=[])
    got, _ = run(chain, [x, y], backend, passes=list(COMPILER_PASSES))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    _, compiled = run(chain, [x, y], "interp", passes=list(COMPILER_PASSES))
    program = next(iter(compiled._cache.values())).program
    ops = [program.graph.node(n)["op"] for n in program.order]
    assert ops.count("fused") == 1 and set(ops) <= {"placeholder", "constant", "fused"}, ops


# ---- gradients: zero through rounding, torch's routing for clamp -----------------------------

def test_rounding_gradients_are_zero_and_clamp_routes_to_the_max_bound_when_bounds_cross():
    with tg.Graph():
        x = tg.placeholder("x", (3,), dtype="float64")
        lo = tg.placeholder("lo", (3,), dtype="float64")
        hi = tg.placeholder("hi", (3,), dtype="float64")
        loss = tg.sum(tg.floor(x) + tg.ceil(x) + tg.round(x) + tg.trunc(x) + x.clamp(lo, hi))
        grads = tg.grad(loss, [x, lo, hi])
        f = tg.compile([x, lo, hi], grads, backend="interp")
    gx, glo, ghi = f(np.array([0.5, 3.0, -1.0]), np.array([0.0, 2.0, 1.0]), np.array([1.0, 2.5, 0.0]))
    # x=0.5 inside [0, 1]; x=3 above hi=2.5; lo=1 > hi=0 (crossed): hi wins
    np.testing.assert_array_equal(gx, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(glo, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(ghi, [0.0, 1.0, 1.0])


# ---- narrow and unsigned integers on the interpreter (tests/test_narrow_ints.py: compiled backends) --

NARROW = ["int8", "uint8", "int16"]


@pytest.mark.parametrize("dtype", NARROW)
@pytest.mark.parametrize("name, fn, tfn", [
    ("floor_divide", lambda a, b: a // b, torch.floor_divide),
    ("remainder", lambda a, b: a % b, torch.remainder),
    ("fmod", tg.fmod, torch.fmod),
    ("and", lambda a, b: a & b, torch.bitwise_and),
    ("xor", lambda a, b: a ^ b, torch.bitwise_xor),
    ("lshift", lambda a, b: a << b, torch.bitwise_left_shift),
    ("rshift", lambda a, b: a >> b, torch.bitwise_right_shift),
    ("clamp", lambda a, b: tg.clamp(a, b), lambda a, b: torch.clamp(a, b)),
])
def test_narrow_dtypes_match_torch_on_the_interpreter(dtype, name, fn, tfn):
    info = np.iinfo(dtype)
    a = np.array([info.min, info.max, 7, 100, 3, 1, info.min, 9], dtype)
    b = np.array([3, 7, 2, 9, 1, 5, 11, 2], dtype)
    if info.min < 0:
        b[-2:] = [-1, -3]
    shift_amounts = np.array([0, 1, 7, 8, 9, 3, 15, 16], dtype)
    if name in ("lshift", "rshift"):
        b = shift_amounts
    got, _ = run(fn, [a, b], "interp")
    want = tfn(torch.tensor(a), torch.tensor(b)).numpy()
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_numpy_primitives_agree_with_torch_on_mixed_widths():
    a = np.array([1, -1, 5], np.int32)
    b = np.array([40, 2, 1], np.int64)
    np.testing.assert_array_equal(NUMPY.shift_left(a, b), (torch.tensor(a) << torch.tensor(b)).numpy())
    np.testing.assert_array_equal(NUMPY.shift_right(a, b), (torch.tensor(a) >> torch.tensor(b)).numpy())


def test_tensor_methods_exist():
    for name in ("isnan", "isinf", "isfinite", "floor", "ceil", "round", "trunc", "floor_divide", "remainder",
                 "fmod", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "bitwise_left_shift",
                 "bitwise_right_shift", "logical_and", "logical_or", "logical_xor", "logical_not", "clamp", "clip"):
        assert callable(getattr(tg.Tensor, name)), name
