"""Regression tests for the numerics contract (docs/numerics.md): one type-promotion rule checked
against torch, min as a reduction of its own, exact integer pow, torch's gradient conventions at
the edges of pow, and exact sqrt/div at 0, on every backend (interp, llvm, triton)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tensorforge as tg

BACKENDS = ("interp", "llvm", "triton")
ALL_DTYPES = ("bool", "uint8", "int8", "int32", "int64", "float32", "float64")
NATIVE_DTYPES = ALL_DTYPES   # every backend compiles all of them (tests/test_narrow_ints.py)
SCALARS = (True, 3, 2.5)
TORCH_DTYPE = {d: getattr(torch, d) for d in ALL_DTYPES}


def _tg_ops():
    """(name, tg function, torch function) of the binary ops whose result dtype is compared."""
    return [
        ("add", lambda a, b: a + b, lambda a, b: a + b),
        ("sub", lambda a, b: a - b, lambda a, b: a - b),
        ("mul", lambda a, b: a * b, lambda a, b: a * b),
        ("div", lambda a, b: a / b, lambda a, b: a / b),
        ("pow", lambda a, b: a ** b, lambda a, b: a ** b),
        ("maximum", tg.maximum, torch.maximum),
        ("minimum", tg.minimum, torch.minimum),
        ("lt", lambda a, b: a < b, lambda a, b: a < b),
        ("eq", tg.equal, torch.eq),
    ]


OPS = _tg_ops()


def _sample(dtype, n=4, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random(n) < 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(1, 4, n).astype(dtype)   # small and positive: pow and div stay defined
    return rng.uniform(0.5, 3.0, n).astype(dtype)


def _torch_result(fn, a, b):
    """torch's result, or None when torch refuses the combination (bool - bool, ...)."""
    try:
        if fn in (torch.maximum, torch.minimum):
            a = a if isinstance(a, torch.Tensor) else torch.tensor(a)
            b = b if isinstance(b, torch.Tensor) else torch.tensor(b)
        return fn(a, b)
    except (RuntimeError, TypeError):
        return None


# ---- the promotion table: tensor op Python scalar, both sides --------------------------------

@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("scalar", SCALARS, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("name,op,top", OPS, ids=[o[0] for o in OPS])
@pytest.mark.parametrize("side", ("left", "right"))
def test_scalar_promotion_matches_torch(dtype, scalar, name, op, top, side):
    ref = _torch_result(top, *((torch.tensor(_sample(dtype)), scalar) if side == "left"
                               else (scalar, torch.tensor(_sample(dtype)))))
    if ref is None:
        pytest.skip("torch refuses this combination")
    with tg.Graph():
        x = tg.placeholder("x", (4,), dtype=dtype)
        got = op(x, scalar) if side == "left" else op(scalar, x)
    assert got.dtype == str(ref.dtype).removeprefix("torch."), (name, dtype, scalar, side)


@pytest.mark.parametrize("a_dtype", ALL_DTYPES)
@pytest.mark.parametrize("b_dtype", ALL_DTYPES)
@pytest.mark.parametrize("name,op,top", OPS, ids=[o[0] for o in OPS])
def test_tensor_promotion_matches_torch(a_dtype, b_dtype, name, op, top):
    ref = _torch_result(top, torch.tensor(_sample(a_dtype)), torch.tensor(_sample(b_dtype)))
    if ref is None:
        pytest.skip("torch refuses this combination")
    with tg.Graph():
        a = tg.placeholder("a", (4,), dtype=a_dtype)
        b = tg.placeholder("b", (4,), dtype=b_dtype)
        got = op(a, b)
    assert got.dtype == str(ref.dtype).removeprefix("torch."), (name, a_dtype, b_dtype)


@pytest.mark.parametrize("a,b", [(4, 2), (4.0, 2.0), (True, False), (4, 2.5)])
def test_where_of_python_scalars_matches_torch(a, b):
    cond = np.array([True, False, True])
    ref = torch.where(torch.tensor(cond), a, b)
    with tg.Graph():
        c = tg.placeholder("c", (3,), dtype="bool")
        got = tg.where(c, a, b)
    assert got.dtype == str(ref.dtype).removeprefix("torch.")


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("scalar", SCALARS, ids=lambda s: type(s).__name__)
def test_where_scalar_takes_the_other_branch_dtype(dtype, scalar):
    ref = torch.where(torch.tensor([True, False]), torch.tensor(_sample(dtype, 2)), scalar)
    with tg.Graph():
        c = tg.placeholder("c", (2,), dtype="bool")
        x = tg.placeholder("x", (2,), dtype=dtype)
        assert tg.where(c, x, scalar).dtype == str(ref.dtype).removeprefix("torch.")
        assert tg.where(c, scalar, x).dtype == str(ref.dtype).removeprefix("torch.")


# ---- values of the same table on every backend -------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", NATIVE_DTYPES)
def test_promoted_values_match_torch_on_every_backend(backend, dtype):
    xv = _sample(dtype, seed=1)
    cases, outs = [], []
    with tg.Graph():
        x = tg.placeholder("x", (4,), dtype=dtype)
        c = tg.placeholder("c", (4,), dtype="bool")
        for name, op, top in OPS:
            for scalar in SCALARS:
                ref = _torch_result(top, torch.tensor(xv), scalar)
                if ref is not None:
                    cases.append((name, scalar, ref.numpy()))
                    outs.append(op(x, scalar))
        cases.append(("where", (4, 2), torch.where(torch.tensor(xv != 0), 4, 2).numpy()))
        outs.append(tg.where(c, 4, 2))
        fn = tg.compile([x, c], outs, backend=backend)
    got = fn(xv, xv != 0)
    for (name, scalar, ref), g in zip(cases, got):
        assert g.dtype == ref.dtype, (name, scalar)
        np.testing.assert_allclose(g, ref, rtol=1e-6, err_msg=f"{name} {scalar!r}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_true_division_and_float_scalar_give_float32(backend):
    with tg.Graph():
        n = tg.placeholder("n", (3,), dtype="int32")
        m = tg.placeholder("m", (3,), dtype="int64")
        fn = tg.compile([n, m], [n / m, n / 2, n * 1.5, m + 0.5], backend=backend)
    nv, mv = np.array([7, -3, 1], np.int32), np.array([2, 4, 3], np.int64)
    got = fn(nv, mv)
    want = [(torch.tensor(nv) / torch.tensor(mv)), torch.tensor(nv) / 2, torch.tensor(nv) * 1.5,
            torch.tensor(mv) + 0.5]
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-6)


# ---- min is a reduction of its own ---------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype,values", [
    ("int32", [5, np.iinfo(np.int32).min, 7, 0]),
    ("int64", [5, np.iinfo(np.int64).min, -7, 0]),
    ("bool", [True, False, True, True]),
    ("float32", [1.5, -np.inf, 2.0, 0.0]),
    ("float64", [1.5, np.nan, -2.0, 0.0]),
])
def test_min_is_exact_at_the_edges(backend, dtype, values):
    v = np.array(values + values[::-1], dtype=dtype).reshape(2, 4)
    with tg.Graph():
        x = tg.placeholder("x", (2, 4), dtype=dtype)
        fn = tg.compile([x], [tg.min(x), tg.min(x, axis=1), tg.min(x, axis=0, keepdims=True)],
                        backend=backend)
    got = fn(v)
    for g, w in zip(got, [np.min(v), np.min(v, axis=1), np.min(v, axis=0, keepdims=True)]):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def test_min_on_uint8_interp():
    v = np.array([3, 0, 255], np.uint8)
    with tg.Graph():
        x = tg.placeholder("x", (3,), dtype="uint8")
        (got,) = tg.compile([x], [tg.min(x)], backend="interp")(v)
    assert got.dtype == np.uint8 and got == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_min_gradient_routes_to_the_minimal_entries_like_torch(backend):
    v = np.array([[3.0, 1.0, 1.0, 2.0], [0.5, 4.0, -1.0, 9.0]], np.float32)
    with tg.Graph():
        x = tg.placeholder("x", (2, 4))
        loss = tg.sum(tg.min(x, axis=1) * np.array([1.0, 2.0], np.float32)) + tg.min(x) * 3.0
        (gx,) = tg.grad(loss, [x])
        (got,) = tg.compile([x], [gx], backend=backend)(v)
    t = torch.tensor(v, requires_grad=True)
    (torch.sum(torch.amin(t, 1) * torch.tensor([1.0, 2.0])) + torch.amin(t) * 3.0).backward()
    np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-6)


# ---- integer pow is exact; negative integer exponents are refused --------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ("int32", "int64"))
def test_integer_pow_is_exact(backend, dtype):
    xv = np.array([3, -2, 5, 7, 0, 1, -1, 11], dtype)
    ev = np.array([7, 7, 7, 5, 0, 9, 3, 9], dtype)
    with tg.Graph():
        x = tg.placeholder("x", (8,), dtype=dtype)
        e = tg.placeholder("e", (8,), dtype=dtype)
        outs = [x ** 7, x ** e, x ** 0, 2 ** e]
        got = tg.compile([x, e], outs, backend=backend)(xv, ev)
    want = [xv ** 7, xv ** ev, xv ** 0, np.asarray(2, dtype) ** ev]
    for g, w in zip(got, want):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("exponent", (-2, np.int64(-1), "tensor"))
def test_integer_to_negative_constant_power_is_refused_at_build(exponent):
    with tg.Graph():
        x = tg.placeholder("x", (3,), dtype="int32")
        e = tg.constant(np.array([1, -2, 3])) if exponent == "tensor" else exponent
        with pytest.raises(ValueError, match="Integers to negative integer powers are not allowed"):
            x ** e
        with pytest.raises(ValueError, match="Integers to negative integer powers are not allowed"):
            tg.pow(x, e)


def test_integer_to_negative_runtime_power_raises_in_interp():
    with tg.Graph():
        x = tg.placeholder("x", (3,), dtype="int32")
        e = tg.placeholder("e", (3,), dtype="int32")
        fn = tg.compile([x, e], [x ** e], backend="interp")
    with pytest.raises(Exception, match="Integers to negative integer powers"):   # NodeError names the node
        fn(np.array([1, 2, 3], np.int32), np.array([1, -2, 3], np.int32))


# ---- pow with a scalar base or a 0-d exponent (Triton's generated code failed) ----------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_pow_with_scalar_base_and_0d_exponent(backend):
    xv = np.array([-1.5, -0.0, 0.0, 1.0, 2.0, -np.inf, np.nan, 3.0], np.float32)
    with tg.Graph():
        x = tg.placeholder("x", (8,))
        e = tg.placeholder("e", ())
        outs = [2.0 ** x, x ** e, e ** x, 0.5 ** x]
        fn = tg.compile([x, e], outs, backend=backend)
    for ev in (3.0, 2.5, 0.0, -1.0):
        e32 = np.float32(ev)
        got = fn(xv, np.array(ev, np.float32))
        with np.errstate(all="ignore"):
            want = [np.float32(2.0) ** xv, xv ** e32, e32 ** xv, np.float32(0.5) ** xv]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=2e-6, equal_nan=True, err_msg=f"e={ev}")


# ---- gradient edge values as in torch ------------------------------------------------------------

def _torch_pow_grads(xv, yv):
    x = torch.tensor(xv, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(yv, dtype=torch.float64, requires_grad=True)
    torch.sum(x ** y).backward()
    return x.grad.numpy(), y.grad.numpy()


@pytest.mark.parametrize("backend", BACKENDS)
def test_pow_gradients_at_zero_match_torch(backend):
    xv = np.array([0.0, 0.0, 0.0, 2.0, 0.0, 1.5, -2.0, 0.0], np.float32)
    yv = np.array([0.0, 2.0, 0.5, 0.0, -1.0, 1.0, 3.0, 1.0], np.float32)
    with tg.Graph():
        x = tg.placeholder("x", (8,))
        y = tg.parameter("y", yv)
        gx, gy = tg.grad(tg.sum(x ** y), [x, y])
        (g0,) = tg.grad(tg.sum(x ** 0.0), [x])
        (gc,) = tg.grad(tg.sum(0.0 ** y), [y])
        got = tg.compile([x], [gx, gy, g0, gc], backend=backend)(xv)
    wx, wy = _torch_pow_grads(xv, yv)
    w0, _ = _torch_pow_grads(xv, np.zeros_like(yv))
    _, wc = _torch_pow_grads(np.zeros_like(xv), yv)
    for g, w, what in zip(got, [wx, wy, w0, wc], ["d/dx x**y", "d/dy x**y", "d/dx x**0", "d/dy 0**y"]):
        np.testing.assert_allclose(g, w.astype(np.float32), rtol=1e-5, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("backend", BACKENDS)
def test_division_by_sqrt_is_exact_at_zero(backend):
    """y / sqrt(x) at x = 0 is ±inf, also in vectorised loops and reductions (llvm's arcp/afn
    flags allowed an approximate reciprocal square root there, which gave nan)."""
    rng = np.random.default_rng(3)
    xv = rng.uniform(0.5, 4.0, (4, 64)).astype(np.float32)
    xv[:, ::7] = 0.0
    yv = rng.uniform(-2.0, 2.0, (4, 64)).astype(np.float32)
    with tg.Graph():
        x = tg.placeholder("x", (4, 64))
        y = tg.placeholder("y", (4, 64))
        outs = [y / tg.sqrt(x), 1.0 / tg.sqrt(x), tg.sqrt(x), tg.sum(1.0 / tg.sqrt(x), axis=1),
                tg.sum(1.0 / tg.sqrt(x))]
        (gs,) = tg.grad(tg.sum(tg.sqrt(x)), [x])
        got = tg.compile([x, y], outs + [gs], backend=backend)(xv, yv)
    with np.errstate(all="ignore"):
        r = 1 / np.sqrt(xv)
        want = [yv / np.sqrt(xv), r, np.sqrt(xv), r.sum(axis=1), r.sum(), 0.5 / np.sqrt(xv)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, equal_nan=False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("which", ("y/sqrt(x)", "sum(y/sqrt(x))", "sum(1/sqrt(x))"))
def test_division_by_sqrt_alone_is_exact_at_zero(backend, which):
    """The kernel of one small expression, the shape in which llvm gave nan and 0.99999994."""
    xv, yv = np.array([0.0, 1.0, 2.0], np.float32), np.array([1.0, 1.0, -1.0], np.float32)
    with tg.Graph():
        x = tg.placeholder("x", (3,))
        y = tg.placeholder("y", (3,))
        out = {"y/sqrt(x)": lambda: y / tg.sqrt(x), "sum(y/sqrt(x))": lambda: tg.sum(y / tg.sqrt(x)),
               "sum(1/sqrt(x))": lambda: tg.sum(1.0 / tg.sqrt(x))}[which]()
        (got,) = tg.compile([x, y], [out], backend=backend)(xv, yv)
    with np.errstate(all="ignore"):
        q = {"y/sqrt(x)": yv / np.sqrt(xv), "sum(y/sqrt(x))": np.sum(yv / np.sqrt(xv)),
             "sum(1/sqrt(x))": np.sum(1 / np.sqrt(xv))}[which]
    np.testing.assert_array_equal(got, q)


# ---- docs/numerics.md states the rule the code follows ----------------------------------------

def test_numerics_page_is_linked_and_its_scalar_table_matches_the_code():
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    assert "docs/numerics.md" in (root / "README.md").read_text()
    assert "numerics.md" in (root / "docs" / "ops.md").read_text()
    text = (root / "docs" / "numerics.md").read_text()
    rows = [line.split("|")[1:-1] for line in text.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in ALL_DTYPES and line.count("|") == 9]
    assert len(rows) == len(ALL_DTYPES)
    for cells in rows:
        dtype, *want = (c.strip() for c in cells)
        with tg.Graph():
            x = tg.placeholder("x", (2,), dtype=dtype)
            c = tg.placeholder("c", (2,), dtype="bool")
            got = [x + True, x + 3, x + 2.5, x / 3, x ** 2, x < 3, tg.where(c, x, 3)]
        assert [t.dtype for t in got] == want, dtype


def test_min_reduction_exports_to_onnx(tmp_path):
    """min is its own op now: the ONNX export writes ReduceMin (it exported neg/max/neg before)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from tensorforge.export import to_onnx
    g = tg.Graph("min")
    x = tg.placeholder("x", (None, 3), graph=g)
    outs = [tg.min(x, axis=1), tg.min(x)]
    path = tmp_path / "m.onnx"
    model = to_onnx([x], outs, path)
    assert "ReduceMin" in {n.op_type for n in model.graph.node}
    xv = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": xv})
    np.testing.assert_array_equal(got[0], xv.min(axis=1))
    np.testing.assert_array_equal(got[1], xv.min())


@pytest.mark.parametrize("backend", BACKENDS)
def test_sum_of_bools_and_ints_counts_in_int64_like_torch(backend):
    bv = np.array([[True, True, False], [True, False, False]])
    iv = np.array([[2**30, 2**30, 5], [1, 2, 3]], np.int32)
    with tg.Graph():
        b = tg.placeholder("b", (2, 3), dtype="bool")
        i = tg.placeholder("i", (2, 3), dtype="int32")
        outs = [tg.sum(b), tg.sum(b, axis=1), tg.sum(i), tg.sum(i, axis=0)]
        got = tg.compile([b, i], outs, backend=backend)(bv, iv)
    tb, ti = torch.tensor(bv), torch.tensor(iv)
    for g, w in zip(got, [tb.sum(), tb.sum(1), ti.sum(), ti.sum(0)]):
        assert g.dtype == np.int64
        np.testing.assert_array_equal(g, w.numpy())


def test_gradients_of_float64_graphs_stay_float64():
    """The zeros that pow's and where's pullbacks select take the gradient's dtype, not the
    default float of their bool condition (a float64 graph had float32 constants)."""
    g = tg.Graph()
    with g:
        a = tg.placeholder("a", (3,), dtype="float64")
        b = tg.placeholder("b", (3,), dtype="float64")
        loss = tg.sum(tg.where(a > 0, a ** b, b))
        grads = tg.grad(loss, [a, b])
    dtypes = {g.node(n)["dtype"] for n in g.topological_order([t.id for t in grads])}
    assert "float32" not in dtypes
    f = tg.compile([a, b], grads, backend="interp")
    av, bv = np.array([0.0, 2.0, -1.0]), np.array([0.0, 3.0, 1.0])
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (av, bv))
    torch.where(ta > 0, ta ** tb, tb).sum().backward()
    for got, want in zip(f(av, bv), (ta.grad.numpy(), tb.grad.numpy())):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12)
