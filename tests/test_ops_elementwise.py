"""Elementwise ops: values and gradients against torch (float64), check_grad, and
each op's scalar expression against its NumPy reference.

Every op is one row of ``CASES``; the tests are parametrised over the table, so
adding an op means adding a row (``test_every_elementwise_op_is_covered`` fails
until one is added).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tensorforge as tg
from tensorforge.ops import OPS, apply
from tensorforge.ops.scalar import NUMPY, PRIMITIVES, SYMBOLIC, Expr
from tensorforge.testing import check_grad

# ---- the table -------------------------------------------------------------------------

# input domains: how random inputs are drawn (kept away from kinks and poles so that
# finite differences are meaningful)
DOMAINS = {
    "any": lambda r, s: r.standard_normal(s) * 1.5,
    "pos": lambda r, s: r.uniform(0.5, 2.0, s),
    "nonzero": lambda r, s: r.choice([-1.0, 1.0], s) * r.uniform(0.3, 2.0, s),
    "ints": lambda r, s: r.integers(-2, 3, s).astype(np.float64),   # ties for eq/ne/max
    "bool": lambda r, s: r.random(s) < 0.5,
}


@dataclass
class Case:
    name: str                       # the registered op this row tests
    tg_fn: Callable                 # builds it from graph tensors
    torch_fn: Callable              # the oracle on torch tensors
    domains: tuple = ("any",)
    grad: bool = True               # differentiable (else: tg.grad must give zeros)
    attrs: dict = field(default_factory=dict)  # op attributes (for the scalar-expression tests)
    id: str | None = None


def _torch_heaviside(x):
    return torch.heaviside(x, torch.zeros_like(x))


CASES = [
    # arithmetic
    Case("add", lambda a, b: a + b, torch.add, ("any", "any")),
    Case("sub", lambda a, b: a - b, torch.sub, ("any", "any")),
    Case("mul", lambda a, b: a * b, torch.mul, ("any", "any")),
    Case("div", lambda a, b: a / b, torch.div, ("any", "nonzero")),
    Case("pow", lambda a, b: a ** b, torch.pow, ("pos", "any")),
    Case("maximum", tg.maximum, torch.maximum, ("any", "any")),
    Case("minimum", tg.minimum, torch.minimum, ("any", "any")),
    Case("neg", lambda x: -x, torch.neg),
    Case("exp", tg.exp, torch.exp),
    Case("log", tg.log, torch.log, ("pos",)),
    Case("sqrt", tg.sqrt, torch.sqrt, ("pos",)),
    Case("abs", tg.abs, torch.abs, ("nonzero",)),
    Case("sign", tg.sign, torch.sign, ("ints",), grad=False),
    # comparisons
    Case("lt", lambda a, b: a < b, torch.lt, ("ints", "ints"), grad=False),
    Case("le", lambda a, b: a <= b, torch.le, ("ints", "ints"), grad=False),
    Case("gt", lambda a, b: a > b, torch.gt, ("ints", "ints"), grad=False),
    Case("ge", lambda a, b: a >= b, torch.ge, ("ints", "ints"), grad=False),
    Case("eq", tg.equal, torch.eq, ("ints", "ints"), grad=False),
    Case("ne", tg.not_equal, torch.ne, ("ints", "ints"), grad=False),
    Case("where", tg.where, torch.where, ("bool", "any", "any")),
    Case("cast", lambda x: tg.cast(x, "float64"), lambda x: x.to(torch.float64), attrs={"dtype": "float64"}),
    # activations
    Case("sigmoid", tg.sigmoid, torch.sigmoid),
    Case("tanh", tg.tanh, torch.tanh),
    Case("relu", tg.relu, torch.relu, ("nonzero",)),
    Case("heaviside", tg.heaviside, _torch_heaviside, ("ints",), grad=False),
    Case("leaky_relu", lambda x: tg.leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1), ("nonzero",),
         attrs={"alpha": 0.1}),
    Case("leaky_relu", tg.leaky_relu, F.leaky_relu, ("nonzero",), id="leaky_relu-default"),
    Case("elu", lambda x: tg.elu(x, 1.5), lambda x: F.elu(x, 1.5), ("nonzero",), attrs={"alpha": 1.5}),
    Case("elu", tg.elu, F.elu, ("nonzero",), id="elu-default"),
    Case("softplus", tg.softplus, F.softplus),
]
CASE_IDS = [c.id or c.name for c in CASES]

# operand shapes: same shape, broadcasting (3,1)+(4,), 0-d scalars
SHAPES = {
    1: {"matrix": [(3, 4)], "scalar": [()]},
    2: {"same": [(3, 4), (3, 4)], "bcast": [(3, 1), (4,)], "scalar-left": [(), (2, 3)],
        "scalar-right": [(2, 3), ()]},
    3: {"same": [(3, 4)] * 3, "bcast": [(3, 1), (4,), (3, 4)], "scalar": [(), (2, 3), ()]},
}
DTYPES = ["float32", "float64"]
TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-10, atol=1e-12)}


def shape_params():
    for case, cid in zip(CASES, CASE_IDS):
        for sid, shapes in SHAPES[len(case.domains)].items():
            yield pytest.param(case, shapes, id=f"{cid}-{sid}")


def make_inputs(case: Case, shapes, dtype: str, rng) -> list[np.ndarray]:
    arrays = []
    for dom, shape in zip(case.domains, shapes):
        a = np.asarray(DOMAINS[dom](rng, shape))
        arrays.append(a if a.dtype == bool else a.astype(dtype))
    return arrays


# ---- running both sides ----------------------------------------------------------------

def tg_value_and_grads(fn, arrays, weights=None):
    """Forward value of ``fn`` and the gradient of sum(weights * fn) w.r.t. every float input."""
    g = tg.Graph()
    with g:
        xs = [tg.placeholder(f"x{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays)]
        y = fn(*xs)
        floats = [x for x, a in zip(xs, arrays) if a.dtype.kind == "f"]
        outputs = [y]
        if weights is not None:
            loss = tg.sum(y * tg.constant(weights.astype(y.dtype if y.dtype != "bool" else "float32")))
            outputs += tg.grad(loss, floats)
    results = tg.compile(xs, outputs)(*arrays)
    return results[0], results[1:]


def torch_value_and_grads(fn, arrays, weights, with_grads=True):
    """The same in torch, in float64, as the oracle."""
    ts = [torch.tensor(a) if a.dtype == bool else torch.tensor(a, dtype=torch.float64, requires_grad=True)
          for a in arrays]
    y = fn(*ts)
    floats = [t for t in ts if t.dtype != torch.bool]
    loss = (y.to(torch.float64) * torch.tensor(weights, dtype=torch.float64)).sum()
    differentiable = with_grads and loss.requires_grad  # (torch has no pullback for heaviside)
    grads = torch.autograd.grad(loss, floats, allow_unused=True) if differentiable else [None] * len(floats)
    grads = [np.zeros(t.shape) if gi is None else gi.numpy() for t, gi in zip(floats, grads)]
    return y.detach().numpy(), grads


# ---- forward and backward against torch ------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case,shapes", list(shape_params()))
def test_value_and_gradient_match_torch(case, shapes, dtype, rng):
    arrays = make_inputs(case, shapes, dtype, rng)
    out_shape = np.broadcast_shapes(*shapes)
    weights = rng.standard_normal(out_shape)
    value, grads = tg_value_and_grads(case.tg_fn, arrays, weights)
    want_value, want_grads = torch_value_and_grads(case.torch_fn, arrays, weights, case.grad)

    assert value.shape == out_shape
    want_dtype = {"lt", "le", "gt", "ge", "eq", "ne"}
    if case.name in want_dtype:
        assert value.dtype == np.bool_
    elif case.name != "cast":
        assert value.dtype == np.dtype(dtype)
    np.testing.assert_allclose(value.astype(np.float64), want_value.astype(np.float64), **TOL[dtype])

    float_shapes = [a.shape for a in arrays if a.dtype.kind == "f"]
    for gi, want, shape in zip(grads, want_grads, float_shapes):
        assert gi.shape == shape  # broadcast gradients are summed back to the input's shape
        if case.grad:
            np.testing.assert_allclose(gi, want, rtol=10 * TOL[dtype]["rtol"], atol=10 * TOL[dtype]["atol"])
        else:
            assert np.all(gi == 0)


@pytest.mark.parametrize("case,shapes", [p for p in shape_params() if p.values[0].grad])
def test_gradient_matches_finite_differences(case, shapes, rng):
    arrays = make_inputs(case, shapes, "float64", rng)
    check_grad(case.tg_fn, arrays)


# ---- conventions at the kinks (documented choices, matching torch) ----------------------

@pytest.mark.parametrize("tg_fn,torch_fn", [
    (tg.relu, torch.relu), (tg.abs, torch.abs), (lambda x: tg.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2)),
    (tg.elu, F.elu)])
def test_gradient_at_zero_matches_torch(tg_fn, torch_fn):
    x = np.array([-1.0, 0.0, 1.0])
    _, (gx,) = tg_value_and_grads(tg_fn, [x], np.ones(3))
    _, (want,) = torch_value_and_grads(torch_fn, [x], np.ones(3))
    np.testing.assert_allclose(gx, want)
    if tg_fn is tg.relu:
        assert gx[1] == 0.0  # relu'(0) = 0 (the torch convention; the slides take 1)


@pytest.mark.parametrize("fn,torch_fn", [(tg.maximum, torch.maximum), (tg.minimum, torch.minimum)])
def test_maximum_minimum_ties_split_the_gradient(fn, torch_fn):
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 4.0])
    _, grads = tg_value_and_grads(fn, [a, b], np.ones(3))
    _, want = torch_value_and_grads(torch_fn, [a, b], np.ones(3))
    for gi, w in zip(grads, want):
        np.testing.assert_allclose(gi, w)
    assert grads[0][0] == grads[1][0] == 0.5


def test_python_scalar_operands_keep_the_tensor_dtype():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,))
        exprs = [x + 2, 2 - x, x * 0.5, 1.0 / x, x ** 2, 2.0 ** x, tg.maximum(x, 0.0)]
    assert all(e.dtype == "float32" for e in exprs)
    xv = np.array([0.5, 1.0, 2.0], np.float32)
    got = tg.compile([x], exprs)(xv)
    want = [xv + 2, 2 - xv, xv * 0.5, 1.0 / xv, xv ** 2, 2.0 ** xv, np.maximum(xv, 0)]
    for a, b in zip(got, want):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_float_input_is_required_for_transcendental_ops():
    g = tg.Graph()
    with g:
        n = tg.placeholder("n", (3,), dtype="int64")
        with pytest.raises(tg.ShapeError, match="exp.*floating-point"):
            tg.exp(n)
        with pytest.raises(tg.ShapeError, match="where.*condition must be bool"):
            tg.where(n, n, n)
        with pytest.raises(tg.ShapeError, match="cannot be broadcast"):
            tg.placeholder("a", (3, 2)) + tg.placeholder("b", (4,))


def test_broadcast_shape_rule_handles_unknown_dims():
    g = tg.Graph()
    with g:
        a = tg.placeholder("a", (None, 1))
        b = tg.placeholder("b", (5,))
        c = tg.placeholder("c", (None, None))
    assert (a + b).shape == (None, 5)
    assert (a * c).shape == (None, None)
    assert (c - b).shape == (None, 5)


# ---- scalar expressions ----------------------------------------------------------------

# one row per elementwise op (the table above has a row for each, plus the stability points)
SCALAR_CASES = {}
for _c in CASES:
    SCALAR_CASES.setdefault(_c.name, _c)
LARGE = np.array([-50.0, -30.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 30.0, 50.0])


def scalar_inputs(case: Case, dtype: str, rng) -> list[np.ndarray]:
    shapes = [(64,)] * len(case.domains)
    arrays = make_inputs(case, shapes, dtype, rng)
    if case.domains == ("any",):  # add the large-|x| points where naive formulas overflow
        arrays = [np.concatenate([arrays[0], LARGE.astype(dtype)])]
    return arrays


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(SCALAR_CASES))
def test_scalar_expression_matches_numpy_reference(name, dtype, rng):
    case, opdef = SCALAR_CASES[name], OPS[name]
    arrays = scalar_inputs(case, dtype, rng)
    with np.errstate(all="ignore"):  # the expression evaluates both sides of its selects
        got = np.asarray(opdef.scalar(NUMPY, *arrays, **case.attrs))
    want = opdef.impl(*arrays, **case.attrs)
    assert np.all(np.isfinite(got.astype(np.float64)))
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), **TOL[dtype])


# exact values at ±50, computed by hand: σ(-50) = e^-50/(1+e^-50), softplus(-50) = log1p(e^-50), ...
E50 = np.exp(-50.0)
STABILITY = {
    "sigmoid": ({}, [1.0 / (1.0 + E50), E50 / (1.0 + E50)]),
    "softplus": ({}, [50.0 + np.log1p(E50), np.log1p(E50)]),
    "elu": ({"alpha": 1.0}, [50.0, np.expm1(-50.0)]),
    "tanh": ({}, [1.0, -1.0]),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(STABILITY))
def test_scalar_expression_is_stable_at_large_inputs(name, dtype):
    attrs, want = STABILITY[name]
    x = np.array([50.0, -50.0], dtype)
    with np.errstate(all="ignore"):  # (an untaken select branch may overflow)
        got = np.asarray(OPS[name].scalar(NUMPY, x, **attrs))
    ref = OPS[name].impl(x, **attrs)
    for value in (got, ref):
        assert value.dtype == np.dtype(dtype)
        np.testing.assert_allclose(value.astype(np.float64), want, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", sorted(SCALAR_CASES))
def test_symbolic_scalar_expression_builds_an_expr(name):
    case, opdef = SCALAR_CASES[name], OPS[name]
    args = [SYMBOLIC.arg(i, "bool" if d == "bool" else "float32") for i, d in enumerate(case.domains)]
    expr = opdef.scalar(SYMBOLIC, *args, **case.attrs)
    assert isinstance(expr, Expr)
    nodes = expr.walk()
    assert all(e.op in PRIMITIVES for e in nodes)
    used = {e.value for e in nodes if e.op == "arg"}
    assert used == set(range(len(args)))  # every operand is read


def test_every_elementwise_op_is_covered():
    core = {n for n, d in OPS.items() if d.infer.__module__ == "tensorforge.ops.elementwise"}
    assert core, "no elementwise ops found"
    assert core <= set(SCALAR_CASES), f"elementwise ops without a test row: {sorted(core - set(SCALAR_CASES))}"
    assert all(OPS[n].elementwise for n in core)


def test_apply_by_name_builds_the_same_node_as_the_function():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (2,))
    assert apply("sigmoid", [x]).same(tg.sigmoid(x))
    assert apply("leaky_relu", [x], alpha=0.1).same(tg.leaky_relu(x, 0.1))
