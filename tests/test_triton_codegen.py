"""Triton code generation for fused loop kernels: LoopSpecs made by the real fusion pass are
lowered to @triton.jit source, launched (Triton's interpreter on CPU tensors in CI; CUDA tensors
when TRITON_INTERPRET=0) and compared with ``kernel_ir.evaluate``, the NumPy reference of a spec.

Shapes are small and block sizes are sometimes forced small, so that multi-program grids and
looped (non-persistent) reductions are exercised without slow interpreter runs."""
from __future__ import annotations

import ast
import keyword
import os

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.backends.triton import scalar as S
from tensorforge.backends.triton.codegen import emit_loop_kernel, next_pow2
from tensorforge.backends.triton.source import ident, load_module, module_source
from tensorforge.kernel_ir import Load, LoopSpec, evaluate, evaluate_all
from tensorforge.ops import OPS
from tensorforge.ops.registry import apply
from tensorforge.ops.scalar import SYMBOLIC as s
from tensorforge.passes.pipeline import COMPILER_PASSES

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

# masked-off lanes compute on placeholder values (log(0) ...): NumPy warnings from the interpreter
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DEVICE = "cuda" if os.environ.get("TRITON_INTERPRET") == "0" else "cpu"
TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-12)}
SPECIALS = [0.0, -0.0, np.inf, -np.inf, np.nan, 50.0, -50.0, 100.0, -100.0, 1.0, -1.0, 0.5, 2.0, 3.0, 1e-6, -2.5]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path / "cache"))


# ---- harness -----------------------------------------------------------------------------

def fused_specs(ins, outs, feeds, updates=None):
    """[(spec, [(shape, dtype) of each input])] of the fused kernels of the compiled program."""
    step = tg.compile(ins, outs, updates=updates, passes=list(COMPILER_PASSES))
    prog = step.executable_for([np.asarray(f) for f in feeds]).program
    found = []
    for nid in prog.order:
        d = prog.graph.node(nid)
        if d["op"] == "fused":
            found.append((dict(d["attrs"])["spec"], [(prog.shapes[i], prog.dtypes[i]) for i in d["inputs"]]))
    assert found, "the fusion pass made no kernel"
    return found


def random_input(shape, dtype, rng):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind == "i":
        return rng.integers(0, 5, shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def run_kernel(spec, arrays, name="k", all_outputs=False, **blocks):
    """Generate, load and launch the kernel of ``spec`` on ``arrays``; return the output array
    (``all_outputs``: every output of a multi-output kernel, in order)."""
    text, info = emit_loop_kernel(name, spec, [str(a.dtype) for a in arrays], **blocks)
    module = load_module(module_source([text]), name)
    outs = [torch.zeros(spec.out_shape, dtype=getattr(torch, spec.dtype), device=DEVICE)
            for _ in range(1 + len(spec.extra_outs))]
    info.launch(module, outs[0], *[torch.from_numpy(np.ascontiguousarray(a)).to(DEVICE) for a in arrays], *outs[1:])
    results = [o.cpu().numpy() for o in outs]
    return results if all_outputs else results[0]


def assert_matches_reference(spec, arrays, **blocks):
    outputs = run_kernel(spec, arrays, all_outputs=True, **blocks)
    tol = TOL.get(spec.dtype, dict(rtol=0, atol=0))
    for got, ref in zip(outputs, evaluate_all(spec, *arrays)):
        assert got.dtype == ref.dtype and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, equal_nan=True, **tol)
    return outputs[0]


def check_graph(ins, outs, feeds, rng, blocks=({},), updates=None):
    """Every fused kernel of the graph, on random inputs of its input types, for each block choice."""
    specs = fused_specs(ins, outs, feeds, updates)
    for spec, types in specs:
        arrays = [random_input(shape, dt, rng) for shape, dt in types]
        for b in blocks:
            assert_matches_reference(spec, arrays, **b)
    return specs


# ---- elementwise ---------------------------------------------------------------------------

def test_elementwise_chain_with_broadcast_parameters(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (6, 10))
        a = tg.parameter("a", rng.standard_normal(10).astype("float32"))
        b = tg.parameter("b", np.float32(0.3))
        y = tg.sigmoid(a * x + b) * tg.tanh(x) + tg.maximum(x - 1.0, 0.0) * 0.5
    (spec, _), = check_graph([x], [y], [np.zeros((6, 10), "float32")], rng, blocks=({}, {"block": 16}))
    assert {ld.strides for ld in spec.loads} == {(10, 1), (0, 1), (0, 0)}


def test_views_transposes_and_negative_step_slices(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4, 6))
        v = tg.placeholder("v", (6,))
        t = tg.transpose(x)                       # (6, 4)
        s_ = t[1:5:2, ::-1]                       # (2, 4), reversed columns
        e = tg.expand_dims(v[::-2], 1)[:2]        # (2, 1), a negative-step slice
        y = tg.relu(s_ * e + tg.broadcast_to(v[2:4][:, None], (2, 4)))
    specs = check_graph([x, v], [y], [np.zeros((4, 6), "float32"), np.zeros(6, "float32")], rng,
                        blocks=({}, {"block": 4}))
    assert any(st < 0 for spec, _ in specs for ld in spec.loads for st in ld.strides)


def test_three_dimensional_broadcast_over_middle_axis(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3, 5, 4))
        w = tg.placeholder("w", (3, 1, 4))
        y = tg.exp(x * w) - tg.transpose(x, (0, 1, 2)) / (1.0 + w * w)
    check_graph([x, w], [y], [np.zeros((3, 5, 4), "float32"), np.zeros((3, 1, 4), "float32")], rng,
                blocks=({}, {"block": 8}))


def _elementwise_ops():
    """The elementwise ops whose type rule takes float inputs (integer-only ops, e.g. the bitwise
    ones, have their own tests: tests/test_intops.py and the op-info table)."""
    return sorted(name for name, op in OPS.items() if op.scalar is not None and name != "index_in_range"
                  and _takes_floats(name))


def _takes_floats(name):
    from tensorforge.ops.registry import ShapeError, TensorType
    op, ins, attrs = _op_case(name, "float32")
    try:
        op.infer([TensorType((), d) for d in ins], **attrs)
    except ShapeError:
        return False
    return True


def _op_case(name, dtype):
    op = OPS[name]
    ins = ["bool", dtype, dtype] if name == "where" else [dtype] * op.n_inputs
    attrs = {"cast": {"dtype": "float64" if dtype == "float32" else "float32"},
             "leaky_relu": {"alpha": 0.1}, "elu": {"alpha": 1.5}}.get(name, {})
    return op, ins, attrs


def _op_inputs(ins, rng, n=48):
    """Random values plus the special values, and every (special, special) pair for binary ops."""
    arrays = []
    for d in ins:
        if d == "bool":
            arrays.append(rng.random(n + len(SPECIALS)) < 0.5)
        else:
            body = np.concatenate([rng.normal(0, 3, n // 2), rng.uniform(-60, 60, n - n // 2)])
            arrays.append(np.concatenate([body, SPECIALS]).astype(d))
    if len(ins) >= 2 and ins[-1] != "bool":
        a, b = np.meshgrid(np.asarray(SPECIALS, ins[-2]), np.asarray(SPECIALS, ins[-1]))
        arrays[-2] = np.concatenate([arrays[-2], a.ravel()])
        arrays[-1] = np.concatenate([arrays[-1], b.ravel()])
        if len(ins) == 3:
            arrays[0] = np.concatenate([arrays[0], rng.random(a.size) < 0.5])
    return arrays


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", _elementwise_ops())
def test_every_elementwise_op_matches_its_numpy_reference(rng, name, dtype):
    op, ins, attrs = _op_case(name, dtype)
    arrays = _op_inputs(ins, rng)
    g = tg.Graph()
    with g:
        xs = [tg.placeholder(f"x{i}", a.shape, dtype=str(a.dtype)) for i, a in enumerate(arrays)]
        y = apply(name, xs, **attrs)
    (spec, _), = fused_specs(xs, [y], arrays)
    got = assert_matches_reference(spec, arrays, block=128)
    with np.errstate(all="ignore"):
        ref = np.asarray(op.impl(*arrays, **attrs))
    tol = TOL[str(ref.dtype)] if ref.dtype.kind == "f" else dict(rtol=0, atol=0)
    np.testing.assert_allclose(got, ref, equal_nan=True, **tol)


def test_bool_and_int64_inputs_and_outputs(rng):
    g = tg.Graph()
    with g:
        m = tg.placeholder("m", (5, 6), dtype="bool")
        lab = tg.placeholder("lab", (5, 1), dtype="int64")
        x = tg.placeholder("x", (5, 6))
        picked = tg.where(m, x, tg.cast(lab, "float32") * 0.5)       # int64 broadcast along rows
        flags = tg.where(m, x > 0.0, x < -1.0)                         # bool in, bool out
        big = tg.maximum(lab * 3, lab + 2)                             # int64 arithmetic
    feeds = [np.zeros((5, 6), bool), np.zeros((5, 1), "int64"), np.zeros((5, 6), "float32")]
    specs = check_graph([m, lab, x], [picked, flags, big], feeds, rng)
    dtypes = {spec.dtype for spec, _ in specs}
    assert {"float32", "bool", "int64"} <= dtypes


def test_float64_chain(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (7, 9), dtype="float64")
        y = tg.softplus(x) * 0.1 + tg.sqrt(tg.abs(x)) - tg.log(1.0 + x * x) / 3.0
    (spec, _), = check_graph([x], [y], [np.zeros((7, 9))], rng)
    assert spec.dtype == "float64"


# ---- reductions ----------------------------------------------------------------------------

@pytest.mark.parametrize("axis, keepdims", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, True)])
@pytest.mark.parametrize("op", ["sum", "max", "mean"])
def test_reductions_over_axes(rng, op, axis, keepdims):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3, 4, 5))
        y = getattr(tg, op)(tg.exp(x) * 2.0 - x, axis=axis, keepdims=keepdims)
    # default blocks (one persistent chunk) and tiny blocks (looped chunks, several programs)
    check_graph([x], [y], [np.zeros((3, 4, 5), "float32")], rng, blocks=({}, {"xblock": 2, "rblock": 4}))


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_family_on_both_axes(rng, op, axis):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (6, 9))
        b = tg.parameter("b", rng.standard_normal(9).astype("float32"))
        y = getattr(tg, op)(x * 3.0 + b, axis=axis)
    specs = check_graph([x], [y], [np.zeros((6, 9), "float32")], rng, blocks=({}, {"xblock": 4, "rblock": 2}))
    assert any(len(spec.reductions) >= 2 for spec, _ in specs)


def test_long_rows_need_several_chunks_with_default_blocks(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (2, 1500))
        y = tg.log_softmax(x, axis=-1)
    (spec, types), = fused_specs([x], [y], [np.zeros((2, 1500), "float32")])
    _, info = emit_loop_kernel("long", spec, ["float32"])
    assert info.constexprs["RBLOCK"] == 1024 and info.grid == (2,)
    assert_matches_reference(spec, [random_input((2, 1500), "float32", rng)])


def test_max_reduction_propagates_nan_and_handles_infinities(rng):
    x = rng.standard_normal((4, 10)).astype("float32")
    x[1, 3] = np.nan
    x[2, :] = -np.inf
    x[3, 7] = np.inf
    g = tg.Graph()
    with g:
        p = tg.placeholder("p", (4, 10))
        y = tg.max(p, axis=1)
    (spec, _), = fused_specs([p], [y], [x])
    for blocks in ({}, {"rblock": 4, "xblock": 1}):
        got = assert_matches_reference(spec, [x], **blocks)
        assert np.isnan(got[1]) and got[2] == -np.inf and got[3] == np.inf


def test_float64_reduction_with_epilogue(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (5, 8), dtype="float64")
        y = tg.sqrt(tg.mean(x * x, axis=0, keepdims=True) + 1e-3)
    (spec, _), = check_graph([x], [y], [np.zeros((5, 8))], rng, blocks=({}, {"rblock": 2, "xblock": 2}))
    assert spec.dtype == "float64" and spec.reductions


def test_every_kernel_of_a_training_step(rng):
    """An MLP with softmax cross-entropy on int64 labels and Adam: all its fused kernels."""
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 6))
        y = tg.placeholder("y", (None,), dtype="int64")
        net = tg.nn.Sequential(tg.nn.Dense(6, 8, seed=1), tg.nn.ReLU(), tg.nn.Dense(8, 3, seed=2))
        loss = tg.mean(tg.softmax_cross_entropy(net(x), y))
        updates = tg.optim.Adam(lr=1e-2).updates(loss, net.parameters())
    feeds = [np.zeros((5, 6), "float32"), np.zeros(5, "int64")]
    specs = check_graph([x, y], [loss], feeds, rng, updates=updates)
    assert len(specs) >= 4


# ---- scalar lowering details ---------------------------------------------------------------

def _expr_kernel(expr, arrays, out_dtype):
    spec = LoopSpec((arrays[0].size,), 0, tuple(Load(i, (1,)) for i in range(len(arrays))), (), expr, True,
                    (1,), (arrays[0].size,), out_dtype)
    return run_kernel(spec, arrays, name="expr", block=64), evaluate(spec, *arrays)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tanh_is_accurate_near_zero_and_saturates(rng, dtype):
    small = np.concatenate([10.0 ** rng.uniform(-30, -0.5, 60), [0.1249, 0.1251, 0.3, 1e-8]])
    big = np.array([20.0, 50.0, 1e4, 1e30, np.inf])
    x = np.concatenate([small, -small, big, -big, rng.uniform(-6, 6, 50), [9.0, np.nan, 0.0, -0.0]]).astype(dtype)
    got, _ = _expr_kernel(s.tanh(s.arg(0, dtype)), [x], dtype)
    np.testing.assert_allclose(got, np.tanh(x), rtol=1e-6 if dtype == "float32" else 1e-12, atol=0,
                               equal_nan=True)
    assert np.all(got[len(small) * 2:len(small) * 2 + len(big)] == 1.0)


def test_pow_special_cases_follow_c(rng):
    xs = np.array(SPECIALS + [-3.0, 4.0, 0.25, -0.5], "float64")
    ys = np.array(SPECIALS + [-3.0, -2.0, 0.25, 7.0], "float64")
    a, b = (v.ravel() for v in np.meshgrid(xs, ys))
    got, _ = _expr_kernel(s.pow(s.arg(0, "float64"), s.arg(1, "float64")), [a, b], "float64")
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(got, np.power(a, b), rtol=1e-12, equal_nan=True)


def test_constants_keep_float64_precision_and_take_the_operand_type(rng):
    x = rng.standard_normal(40)
    got, ref = _expr_kernel(s.arg(0, "float64") * 0.1 + 1e-9, [x], "float64")
    np.testing.assert_allclose(got, x * 0.1 + 1e-9, rtol=1e-15)
    i = rng.integers(-50, 50, 40)
    got, ref = _expr_kernel(s.where(s.arg(0, "int64") > 3.0, s.arg(0, "int64") * 2.0, s.const(-7, "int64")),
                            [i], "int64")
    np.testing.assert_array_equal(got, ref)


def test_common_subexpressions_are_emitted_once():
    lines = []
    x = s.arg(0, "float32")
    em = S.Emitter(lambda e: ("x0", "float32"), lines)
    em.value(s.exp(-x) * s.exp(-x) + s.exp(-x))
    assert sum("tl.exp" in ln for ln in lines) == 1


# ---- generated-source safety ---------------------------------------------------------------

NASTY = ['x"; import os; os.system("echo pwned") #', "a\nb'''\"\"\"\\", "class", "3d conv", "", "naïve",
         "__import__('os')", "def f():\n    pass", "None", "a b", "a_b"]


def test_identifiers_are_sanitised():
    ids = [ident(n) for n in NASTY]
    for i in ids:
        assert i.isidentifier() and not keyword.iskeyword(i) and i.isascii()
    assert len(set(ids)) == len(ids)      # distinct names stay distinct ("a b" vs "a_b")
    assert ident("k0_fused") == "tf_k0_fused"


def test_nasty_names_never_reach_the_source(rng):
    g = tg.Graph()
    with g:
        x = tg.placeholder(NASTY[0], (3, 4))
        y = tg.exp(x) + 1.0
    (spec, _), = fused_specs([x], [y], [np.zeros((3, 4), "float32")])
    texts = [emit_loop_kernel(n, spec, ["float32"])[0] for n in NASTY]
    source = module_source(texts, doc='doc with """ quotes \\ and ' + NASTY[0])
    tree = ast.parse(source)
    funcs = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert len(funcs) == len(NASTY)
    assert not any(isinstance(node, (ast.Import, ast.ImportFrom)) and node.names[0].name == "os"
                   for node in ast.walk(tree))
    assert funcs == [ident(n) for n in NASTY]
    # the module is: docstring, the two imports, the kernels; nothing else runs at import
    assert [type(node) for node in tree.body] == [ast.Expr, ast.Import, ast.Import] + [ast.FunctionDef] * len(NASTY)
    assert "os.system" not in source.split('"""', 2)[2]
    module = load_module(source, NASTY[1])
    assert os.path.dirname(module.__file__).endswith("triton")
    a = random_input((3, 4), "float32", rng)
    info = emit_loop_kernel(NASTY[0], spec, ["float32"])[1]
    out = torch.zeros((3, 4), device=DEVICE)
    info.launch(module, out, torch.from_numpy(a).to(DEVICE))
    np.testing.assert_allclose(out.cpu().numpy(), np.exp(a) + 1.0, rtol=1e-5)


def test_cached_module_is_rewritten_when_tampered():
    source = module_source(["X = 1\n"])
    m1 = load_module(source, "tamper")
    with open(m1.__file__, "w") as f:
        f.write("X = 2\n")
    from tensorforge.backends.triton import source as src_mod
    src_mod._loaded.clear()
    m2 = load_module(source, "tamper")
    assert m2.X == 1


def test_block_sizes_are_powers_of_two():
    assert [next_pow2(n) for n in (1, 2, 3, 17, 1024, 1025)] == [1, 2, 4, 32, 1024, 2048]
    spec = LoopSpec((3000,), 0, (Load(0, (1,)),), (), s.arg(0, "float32"), True, (1,), (3000,), "float32")
    _, info = emit_loop_kernel("k", spec, ["float32"])
    assert info.constexprs == {"BLOCK": 1024} and info.grid == (3,)
    with pytest.raises(ValueError):
        emit_loop_kernel("k", spec, ["float32"], block=100)


@pytest.mark.gpu
def test_softmax_and_chain_on_the_gpu(rng):
    """Run with TRITON_INTERPRET=0 on a CUDA machine: the same kernels, compiled for the device."""
    assert DEVICE == "cuda" and torch.cuda.is_available()
    test_softmax_family_on_both_axes(rng, "log_softmax", -1)
    test_reductions_over_axes(rng, "max", 0, False)
    test_every_elementwise_op_matches_its_numpy_reference(rng, "pow", "float32")
    test_tanh_is_accurate_near_zero_and_saturates(rng, "float32")
