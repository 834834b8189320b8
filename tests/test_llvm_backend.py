"""Parity of the LLVM backend with the NumPy interpreter, op by op.

Every row of ``CASES`` is a small graph; it is built twice (one fresh graph per
backend, so parameter updates and the random counter never interfere), compiled once
per backend with its forward outputs AND the gradients of sum(out * fixed random
weights) w.r.t. every float input, and run on the same feeds. The interpreter is the
oracle. A coverage test checks that every registered op appears in some row's graph.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tensorforge as tg
from tensorforge.ops import OPS

from helpers import apply_program

TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-12)}


# ---- the table --------------------------------------------------------------------------------
# A row: id -> (inputs, fn, dtypes). inputs: (shape, kind[, fed shape when shape has None]) with kind "f" (float, normal),
# "p" (float, positive), "i<depth>" (int64 labels in [0, depth)), "b" (bool). fn(dtype, *tensors)
# returns one tensor or a list of them.

F32_64 = ("float32", "float64")
CASES: dict = {}


def case(name, inputs, fn, dtypes=F32_64):
    assert name not in CASES, name
    CASES[name] = (inputs, fn, dtypes)


def _param(name, shape, dtype, seed, positive=False):
    v = np.random.default_rng(seed).standard_normal(shape)
    return tg.parameter(name, (np.abs(v) + 0.5 if positive else v).astype(dtype))


X34 = [((3, 4), "f")]
P34 = [((3, 4), "p")]
for _op in ["neg", "exp", "abs", "sign", "sigmoid", "tanh", "relu", "softplus", "heaviside"]:
    case(_op, X34, lambda dt, x, _op=_op: getattr(tg, _op)(x * 1.5))
case("log", P34, lambda dt, x: tg.log(x))
case("sqrt", P34, lambda dt, x: tg.sqrt(x))
case("leaky_relu", X34, lambda dt, x: tg.leaky_relu(x, 0.2))
case("elu", X34, lambda dt, x: tg.elu(x, 0.7))
for _op in ["add", "sub", "mul", "maximum", "minimum"]:
    case(_op, [((3, 4), "f"), ((3, 4), "f")], lambda dt, a, b, _op=_op: getattr(tg, _op)(a, b))
    case(_op + "_broadcast", [((3, 1), "f"), ((4,), "f")], lambda dt, a, b, _op=_op: getattr(tg, _op)(a, b))
case("div", [((3, 4), "f"), ((3, 4), "p")], lambda dt, a, b: a / b)
case("div_broadcast", [((3, 1), "f"), ((4,), "p")], lambda dt, a, b: a / b)
case("pow", [((3, 4), "p"), ((3, 4), "f")], lambda dt, a, b: a ** b)
case("pow_scalar_exponent", P34, lambda dt, a: a ** 3.0 + a ** 0.5)
case("scalar_inputs", [((), "f"), ((), "p")], lambda dt, a, b: [a * b + tg.exp(a), tg.log(b) - a])
case("scalar_with_tensor", [((), "f"), ((2, 3), "f")], lambda dt, a, b: tg.tanh(a * b + a))
case("python_constants", X34, lambda dt, x: 2.0 * x - 1.0 / (x * x + 1.0))
for _op, _fn in [("lt", lambda a, b: a < b), ("le", lambda a, b: a <= b), ("gt", lambda a, b: a > b),
                 ("ge", lambda a, b: a >= b), ("eq", lambda a, b: tg.equal(a, b)),
                 ("ne", lambda a, b: tg.not_equal(a, b))]:
    # b[:, :1] == a in column 0 on purpose (ties exercise <=, >=, ==, !=); results cast to float
    case("cmp_" + _op, [((3, 4), "f"), ((3, 4), "f")],
         lambda dt, a, b, _fn=_fn: [tg.cast(_fn(a, tg.concat([a[:, :1], b[:, 1:]], 1)), dt),
                                    tg.where(_fn(a, b), a, b * 2.0)])
case("where", [((3, 1), "b"), ((3, 4), "f"), ((4,), "f")], lambda dt, c, a, b: tg.where(c, a, b))
case("where_from_comparison", X34, lambda dt, x: tg.where(x > 0.2, x * x, -x))
case("cast_float_to_other", X34, lambda dt, x: tg.cast(x, "float64" if dt == "float32" else "float32") * 2.0)
case("cast_bool_int", X34, lambda dt, x: [tg.cast(x > 0, "int64") * 3, tg.cast(tg.cast(x * 3.0, "int64"), dt)])
case("chain_of_ten", X34, lambda dt, x: _chain(x, 10))

_AXES = [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2)]
for _red in ["sum", "mean", "max", "min"]:
    for _ax in _AXES:
        for _kd in (False, True):
            case(f"{_red}_axis{_ax}_keepdims{_kd}".replace(" ", ""), [((2, 3, 4), "f")],
                 lambda dt, x, _red=_red, _ax=_ax, _kd=_kd: getattr(tg, _red)(x * 2.0 + 1.0, axis=_ax, keepdims=_kd))
case("var", [((2, 3, 4), "f")], lambda dt, x: [tg.var(x, axis=1), tg.var(x, axis=(0, 2), keepdims=True)])
case("reduce_scalar", [((), "f")], lambda dt, x: [tg.sum(x), tg.max(x, axis=None)])
case("argmax", [((3, 5), "f")], lambda dt, x: [tg.cast(tg.argmax(x, axis=-1), dt) * x[:, 0],
                                                tg.cast(tg.argmax(x, axis=0, keepdims=True), dt)])
for _sm in ["softmax", "log_softmax", "logsumexp"]:
    for _ax in (0, 1, -1):
        case(f"{_sm}_axis{_ax}", [((4, 6), "f")], lambda dt, x, _sm=_sm, _ax=_ax: getattr(tg, _sm)(x * 3.0, axis=_ax))
case("logsumexp_keepdims", [((2, 3, 4), "f")], lambda dt, x: tg.logsumexp(x, axis=1, keepdims=True))
case("softmax_3d_middle", [((2, 3, 4), "f")], lambda dt, x: tg.softmax(x, axis=1))

case("matmul_2d", [((3, 4), "f"), ((4, 5), "f")], lambda dt, a, b: a @ b)
case("matmul_batched", [((2, 3, 4), "f"), ((2, 4, 5), "f")], lambda dt, a, b: a @ b)
case("matmul_broadcast", [((2, 1, 3, 4), "f"), ((3, 4, 5), "f")], lambda dt, a, b: a @ b)
case("matmul_batched_2d", [((2, 3, 4), "f"), ((4, 5), "f")], lambda dt, a, b: a @ b)
case("matmul_vector_right", [((3, 4), "f"), ((4,), "f")], lambda dt, a, b: a @ b)
case("matmul_vector_left", [((4,), "f"), ((4, 5), "f")], lambda dt, a, b: a @ b)
case("matmul_vector_vector", [((4,), "f"), ((4,), "f")], lambda dt, a, b: a @ b)
case("matmul_transposed", [((4, 3), "f"), ((5, 4), "f")], lambda dt, a, b: tg.transpose(a) @ tg.transpose(b))
case("matmul_large", [((17, 33), "f"), ((33, 19), "f")], lambda dt, a, b: tg.relu(a @ b))

case("conv2d", [((2, 3, 6, 6), "f"), ((4, 3, 3, 3), "f")], lambda dt, x, w: tg.conv2d(x, w))
case("conv2d_bias_stride_pad", [((2, 3, 7, 7), "f"), ((4, 3, 3, 3), "f"), ((4,), "f")],
     lambda dt, x, w, b: tg.conv2d(x, w, b, stride=2, padding=1))
case("conv2d_same", [((1, 2, 5, 6), "f"), ((3, 2, 3, 3), "f")], lambda dt, x, w: tg.conv2d(x, w, padding="same"))
case("conv2d_rect", [((2, 1, 6, 5), "f"), ((2, 1, 2, 3), "f")],
     lambda dt, x, w: tg.conv2d(x, w, stride=(2, 1), padding=(1, 0)))
case("max_pool2d", [((2, 3, 6, 6), "f")], lambda dt, x: tg.max_pool2d(x, 2))
case("max_pool2d_stride_pad", [((2, 2, 7, 7), "f")], lambda dt, x: tg.max_pool2d(x, 3, stride=2, padding=1))
case("avg_pool2d", [((2, 3, 6, 6), "f")], lambda dt, x: tg.avg_pool2d(x, 2))
case("avg_pool2d_stride_pad", [((2, 2, 7, 7), "f")], lambda dt, x: tg.avg_pool2d(x, 3, stride=2, padding=1))

case("batch_norm_train_2d", [((5, 4), "f")],
     lambda dt, x: tg.batch_norm(x, _param("g", (4,), dt, 1), _param("b", (4,), dt, 2)))
case("batch_norm_eval", [((3, 4, 2, 2), "f")],
     lambda dt, x: tg.batch_norm(x, _param("g", (4,), dt, 1), _param("b", (4,), dt, 2),
                                 tg.parameter("rm", np.linspace(-1, 1, 4).astype(dt), trainable=False),
                                 tg.parameter("rv", np.linspace(0.5, 2, 4).astype(dt), trainable=False),
                                 training=False))
case("layer_norm", [((3, 2, 5), "f")],
     lambda dt, x: [tg.layer_norm(x, _param("g", (5,), dt, 1), _param("b", (5,), dt, 2)),
                    tg.layer_norm(x, normalized_ndim=2)])
case("group_norm", [((2, 4, 3, 3), "f")],
     lambda dt, x: tg.group_norm(x, 2, _param("g", (4,), dt, 1), _param("b", (4,), dt, 2)))
case("instance_norm", [((2, 3, 4, 4), "f")],
     lambda dt, x: tg.instance_norm(x, _param("g", (3,), dt, 1), _param("b", (3,), dt, 2)))
case("mse", [((4, 3), "f"), ((4, 3), "f")], lambda dt, a, b: [tg.mse(a, b), tg.mse(a, b, reduction="mean")])
case("binary_cross_entropy", [((4, 3), "f"), ((4, 3), "p")],
     lambda dt, z, y: [tg.binary_cross_entropy(z * 3.0, y / (y + 1.0)),
                       tg.binary_cross_entropy(z, y / (y + 1.0), reduction="sum")])
case("softmax_cross_entropy", [((5, 4), "f"), ((5,), "i4")],
     lambda dt, z, y: [tg.softmax_cross_entropy(z * 2.0, y), tg.softmax_cross_entropy(z, y, reduction="mean")])
case("softmax_cross_entropy_axis0", [((4, 5), "f"), ((5,), "i4")],
     lambda dt, z, y: tg.softmax_cross_entropy(z, y, axis=0))
case("maxout", [((3, 6), "f")], lambda dt, x: [tg.maxout(x, 3), tg.maxout(x, 2, axis=-1)])
case("maxout_axis1_nchw", [((2, 4, 2, 2), "f")], lambda dt, x: tg.maxout(x, 2, axis=1))
case("prelu", [((2, 3, 2, 2), "f"), ((3, 1, 1), "f")], lambda dt, x, a: tg.prelu(x, a))

case("getitem_steps", [((6, 5), "f")], lambda dt, x: [x[1:5:2, ::2], x[::-1, 3:0:-2], x[-2:, :-1]])
case("getitem_ints_none", [((3, 4, 5), "f")], lambda dt, x: [x[1], x[-1, None, :, 2], x[:, 2, ::-3] * x[0, 1, 0]])
case("getitem_into_matmul", [((4, 6), "f"), ((3, 4), "f")], lambda dt, x, y: y @ x[:, ::-2])
case("concat", [((2, 3), "f"), ((2, 1), "f"), ((2, 2), "f")],
     lambda dt, a, b, c: [tg.concat([a, b, c], axis=1), tg.concat([a, tg.exp(a)], axis=0)])
# sizes along the axis unknown until call time: the gradient goes through concat_grad
case("concat_unknown_sizes", [((None, 3), "f", (2, 3)), ((None, 3), "f", (4, 3))],
     lambda dt, a, b: tg.concat([a, tg.tanh(b), a * 2.0], axis=0))
case("concat_negative_axis", [((2, 2, 3), "f"), ((2, 2, 1), "f")], lambda dt, a, b: tg.concat([a, b], axis=-1))
case("one_hot", [((3, 4), "f"), ((3,), "i4")], lambda dt, x, y: [x * tg.one_hot(y, 4, dtype=dt), tg.one_hot(y, 5)])
case("shape_ops", [((2, 3, 4), "f")],
     lambda dt, x: [tg.reshape(x, (6, 4)) * 2.0, tg.transpose(x, (2, 0, 1)) + 1.0,
                    tg.squeeze(tg.expand_dims(x, 0), 0) * tg.broadcast_to(x[:, :1, :], (2, 3, 4)),
                    tg.reshape(tg.transpose(x), (4, 6))])
case("random_uniform", [((2, 3), "f")],
     lambda dt, x: x * tg.random_uniform((2, 3), seed=5, dtype=dt) + tg.random_uniform((4,), seed=6, dtype=dt)[1])

# wider, odd sizes: vectorised loop bodies plus their scalar remainders
case("wide_elementwise_broadcast", [((5, 37), "f"), ((37,), "p")],
     lambda dt, x, b: tg.sigmoid(x * b + 0.5) * tg.tanh(x) + tg.maximum(x - 1.0, 0.0) * tg.log(b) / b)
case("wide_reductions", [((7, 9, 37), "f")],
     lambda dt, x: [tg.sum(tg.exp(x * 0.3), axis=0), tg.max(x, axis=1), tg.mean(x * x, axis=-1),
                    tg.sum(x, axis=(0, 2), keepdims=True), tg.max(x)])
case("wide_softmax", [((5, 37), "f")], lambda dt, x: [tg.softmax(x * 4.0), tg.log_softmax(x, axis=0)])
case("wide_conv_pool", [((2, 5, 11, 11), "f"), ((7, 5, 3, 3), "f")],
     lambda dt, x, w: [tg.max_pool2d(tg.relu(tg.conv2d(x, w, padding=1)), 2),
                       tg.avg_pool2d(tg.conv2d(x, w, stride=2), 2, stride=1)])

case("int_arithmetic", [((3, 4), "i7"), ((4,), "i5"), ((3, 4), "f")],
     lambda dt, a, b, x: [a + b, a * b - 3, -a, abs(a - 4), tg.maximum(a, b), tg.minimum(a, 2), a / (b + 1),
                          tg.cast(a > b, "int64") + tg.sum(a, axis=0), tg.max(a, axis=1), a * x, x + b],
     )
case("identity_outputs", [((3, 4), "f")], lambda dt, x: [x, x[:, ::-1], tg.transpose(x), x * 1.0])
# the shape/indexing family's registered ops: index_in_range (under gather) and stop_gradient
case("gather_stop_gradient", [((3, 4), "f"), ((3, 2), "i4")],
     lambda dt, x, i: [tg.gather(x, 1, i) + tg.stop_gradient(x[:, :2])])


def _chain(x, n):
    """n elementwise ops in a row (no shared subterms: one fused loop)."""
    y = x
    for i in range(n):
        y = tg.tanh(y) * 1.5 + 0.1 if i % 2 else tg.sigmoid(y) - 0.25
    return y


# ---- building and running ----------------------------------------------------------------------

def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


def _feeds(name, inputs, dtype):
    rng = np.random.default_rng(_seed(name))
    out = []
    for spec in inputs:
        shape, kind = spec[2] if len(spec) > 2 else spec[0], spec[1]
        if kind == "f":
            out.append(rng.standard_normal(shape).astype(dtype))
        elif kind == "p":
            out.append((np.abs(rng.standard_normal(shape)) + 0.5).astype(dtype))
        elif kind == "b":
            out.append(rng.standard_normal(shape) > 0)
        else:
            out.append(rng.integers(0, int(kind[1:]), shape).astype(np.int64))
    return out


def _placeholder_dtype(kind, dtype):
    return {"f": dtype, "p": dtype, "b": "bool"}.get(kind, "int64")


def build(name, dtype):
    """A fresh graph of row ``name``: placeholders, outputs and the gradients of a weighted sum."""
    inputs, fn, _ = CASES[name]
    g = tg.Graph()
    with g:
        phs = [tg.placeholder(f"in{i}", shape, dtype=_placeholder_dtype(kind, dtype))
               for i, (shape, kind, *_) in enumerate(inputs)]
        outs = fn(dtype, *phs)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        wrng = np.random.default_rng(_seed(name) + 1)
        floats = [o for o in outs if np.dtype(o.dtype).kind == "f"]
        grads = []
        wrt = [p for p, (_, kind, *_) in zip(phs, inputs) if kind in "fp"]
        if floats and wrt:
            loss = None
            for o in floats:
                shape = tuple(1 if d is None else d for d in o.shape)    # broadcast along unknown dims
                w = tg.constant(wrng.standard_normal(shape).astype(o.dtype))
                term = tg.sum(tg.cast(o * w, dtype))
                loss = term if loss is None else loss + term
            grads = tg.grad(loss, wrt)
    return g, phs, outs + list(grads)


def run_both(name, dtype, calls=1):
    results = {}
    for backend in ("interp", "llvm"):
        g, phs, outs = build(name, dtype)
        f = tg.compile(phs, outs, backend=backend)
        feeds = _feeds(name, CASES[name][0], dtype)
        results[backend] = [f(*feeds) for _ in range(calls)], g
    assert type(next(iter(f._cache.values()))).__name__ == "LLVMFunction"     # really native code
    return results


PARAMS = [pytest.param(name, dt, id=f"{name}-{dt}") for name, (_, _, dts) in CASES.items() for dt in dts]


def assert_same(ref, got):
    """Output by output: the same shape and dtype, equal integers, floats within TOL."""
    assert len(ref) == len(got)
    for k, (a, b) in enumerate(zip(ref, got)):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, (k, a.shape, b.shape, a.dtype, b.dtype)
        if a.dtype.kind in "biu":
            np.testing.assert_array_equal(b, a, err_msg=f"output {k}")
        else:
            np.testing.assert_allclose(b, a, **TOL[str(a.dtype)], err_msg=f"output {k}")


@pytest.mark.parametrize("name, dtype", PARAMS)
def test_llvm_matches_interp(name, dtype):
    res = run_both(name, dtype)
    (ref,), _ = res["interp"]
    (got,), _ = res["llvm"]
    assert_same(ref, got)


def _ops_of(graph) -> set:
    return {d["op"] for _, d in graph.nx.nodes(data=True)}


def _ops_of_the_opinfo_table() -> set:
    """The registered ops the graphs of the op-info table contain (values and gradients)."""
    from test_opinfo import _entries, _pick
    seen = set()
    for info in _entries():
        for sample in info.samples(np.random.default_rng(0)):
            g = tg.Graph()
            with g:
                xs = [tg.placeholder(f"x{i}", np.shape(a), dtype=np.asarray(a).dtype.name)
                      for i, a in enumerate(sample.arrays)]
                outs = _pick(info.tg_fn(*xs, **sample.kwargs), info.outputs)
                floats = [o for o in outs if np.dtype(o.dtype).kind == "f"]
                wrt = [xs[i] for i in sample.float_wrt()]
                if info.grad and sample.grad and floats and wrt:
                    tg.grad(sum(tg.sum(o) for o in floats), wrt)
            seen |= _ops_of(g)
    return seen


def test_every_registered_op_has_a_row():
    seen = set()
    for name in CASES:
        g, _, _ = build(name, "float32")
        seen |= _ops_of(g)
    seen |= {"dropout"}            # rows of their own below (the random counter needs several calls)
    seen |= _ops_of_the_opinfo_table()   # run on llvm (and triton) against torch by tests/test_opinfo.py
    made_by_the_compiler = {name for name, op in OPS.items() if op.family == "kernel"}   # fused, ...
    missing = set(OPS) - made_by_the_compiler - seen
    assert not missing, f"ops without a parity row: {sorted(missing)}"


# ---- stateful ops: dropout, batch_norm running statistics -------------------------------------

@pytest.mark.parametrize("dtype", F32_64)
def test_dropout_masks_are_bit_identical_across_calls(dtype):
    results = {}
    for backend in ("interp", "llvm"):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (4, 7), dtype=dtype)
            y = tg.dropout(x, p=0.3, seed=11) + tg.dropout(x * 2.0, p=0.6, seed=12)
            (gx,) = tg.grad(tg.sum(y * y), [x])
        f = tg.compile([x], [y, gx], backend=backend)
        xv = np.random.default_rng(1).standard_normal((4, 7)).astype(dtype)
        results[backend] = [f(xv) for _ in range(3)]
        results[backend + "_counter"] = int(g.by_name("rng_counter").value)
    assert results["llvm_counter"] == results["interp_counter"] == 3
    for ref, got in zip(results["interp"], results["llvm"]):
        for a, b in zip(ref, got):
            np.testing.assert_array_equal(b == 0, a == 0)       # the same masks
            np.testing.assert_allclose(b, a, **TOL[dtype])
    masks = [r[0] == 0 for r in results["llvm"]]
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])


@pytest.mark.parametrize("dtype", F32_64)
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 2, 2)])
def test_batch_norm_training_updates_running_stats_identically(dtype, shape):
    results = {}
    for backend in ("interp", "llvm"):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", shape, dtype=dtype)
            gamma, beta = _param("g", (3,), dtype, 1), _param("b", (3,), dtype, 2)
            rm = tg.parameter("rm", np.zeros(3, dtype), trainable=False)
            rv = tg.parameter("rv", np.ones(3, dtype), trainable=False)
            y = tg.batch_norm(x, gamma, beta, rm, rv, training=True, momentum=0.2)
            gx, gg, gb = tg.grad(tg.sum(y * tg.constant(np.linspace(-1, 1, np.prod(shape)).reshape(shape).astype(dtype))),
                                 [x, gamma, beta])
        f = tg.compile([x], [y, gx, gg, gb], backend=backend)
        data = np.random.default_rng(2)
        outs = [f((data.standard_normal(shape) * 2 + 1).astype(dtype)) for _ in range(3)]
        results[backend] = outs, rm.value.copy(), rv.value.copy()
    (o0, m0, v0), (o1, m1, v1) = results["interp"], results["llvm"]
    assert not np.allclose(m0, 0)
    np.testing.assert_allclose(m1, m0, **TOL[dtype])
    np.testing.assert_allclose(v1, v0, **TOL[dtype])
    for r0, r1 in zip(o0, o1):
        for a, b in zip(r0, r1):
            np.testing.assert_allclose(b, a, **TOL[dtype])


# ---- fusion, errors, inspection ------------------------------------------------------------------

def _compiled(name="chain_of_ten", dtype="float32"):
    g, phs, outs = build(name, dtype)
    f = tg.compile(phs, outs[:1], backend="llvm")
    f(*_feeds(name, CASES[name][0], dtype))
    return f, next(iter(f._cache.values()))


def test_a_chain_of_ten_elementwise_ops_is_one_kernel():
    f, ex = _compiled()
    assert len(ex.manifest["kernels"]) == 1
    assert "1 kernels" in str(f)


def test_printing_lists_the_kernels_and_the_ir_has_the_entry():
    f, ex = _compiled("matmul_large")
    text = str(f)
    assert "backend=llvm" in text
    # the relu is the product's epilogue (passes/fusion_epilogue.py): one kernel applies both
    assert "matmul_epilogue((17, 33), (33, 19))" in text and "then per row: loop[17, 19]" in text
    assert "define" in ex.ir and "tf_step" in ex.ir
    assert ex.program is not None


@pytest.mark.parametrize("bad", [
    lambda x: x[:, :3],                          # wrong shape
    lambda x: x.astype("U3"),                    # not numeric
    lambda x: x[None],                           # wrong rank
    lambda x: "not an array",
])
def test_bad_input_raises_the_interpreters_input_error(bad):
    messages = []
    for backend in ("interp", "llvm"):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (None, 4))
            y = tg.exp(x) * 2.0
        f = tg.compile([x], [y], backend=backend)
        with pytest.raises(tg.InputError) as err:
            f(bad(np.ones((3, 4), np.float32)))
        messages.append(str(err.value))
        assert not f._cache            # nothing was built, so native code never ran
    assert messages[0] == messages[1]


@pytest.mark.parametrize("threads", [1, 2])
def test_large_kernels_split_across_threads_match_the_interpreter(threads):
    """Big enough that the fused loops are split across threads (parallel.MIN_WORK_PER_THREAD)."""
    saved = tg.get_num_threads()
    tg.set_num_threads(threads)
    try:
        results = []
        xv = np.random.default_rng(3).standard_normal((300, 515)).astype("float32")
        for backend in ("interp", "llvm"):
            g = tg.Graph()
            with g:
                x = tg.placeholder("x", (300, 515))
                b = tg.constant(np.linspace(-1, 1, 515).astype("float32"))
                y = tg.sigmoid(x * b + 0.5) * tg.tanh(x) + tg.maximum(x - 1.0, 0.0) * 0.5
                outs = [y, tg.sum(y, axis=0), tg.max(y, axis=1), tg.softmax(y), tg.sum(y * y)]
                outs += tg.grad(tg.sum(outs[3] * b) + outs[4], [x])
            results.append(tg.compile([x], outs, backend=backend)(xv))
        for a, c in zip(*results):
            np.testing.assert_allclose(c, a, rtol=1e-4, atol=1e-5)
    finally:
        tg.set_num_threads(saved)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_column_reductions_run_with_swapped_loops_and_match_the_interpreter(dtype, tmp_path, monkeypatch):
    """sum/max/mean down the columns (bias gradients) take the loop-swapped kernel."""
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path))     # built here, so its program is the fused one
    from tensorforge.backends.llvm.loops import _is_column_reduce
    from tensorforge.kernel_ir import collapse
    rng = np.random.default_rng(5)
    xv = (rng.standard_normal((3, 130, 70)) * 10).astype(dtype)
    if dtype != "int64":
        xv[1, 7, 3] = np.nan                       # max and sum must propagate it
    results, fns = [], []
    for backend in ("interp", "llvm"):
        with tg.Graph():
            x = tg.placeholder("x", xv.shape, dtype=dtype)
            outs = [tg.sum(x, axis=(0, 1)), tg.max(x, axis=1)]
            if dtype != "int64":
                outs.append(tg.mean(x * 2.0, axis=0))
            fns.append(tg.compile([x], outs, backend=backend))
        results.append(fns[-1](xv))
    for a, c in zip(*results):
        if dtype == "int64":
            np.testing.assert_array_equal(c, a)
        else:
            np.testing.assert_allclose(c, a, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-3)
    specs = [collapse(dict(d["attrs"])["spec"]) for _, d in list(fns[1]._cache.values())[0].program.graph.nx.nodes(data=True)
             if d["op"] == "fused"]
    assert sum(_is_column_reduce(sp, sp.dtype) for sp in specs) == len(results[0])


def test_non_contiguous_inputs_outputs_are_fresh_and_shapes_respecialise():
    fs = {}
    for backend in ("interp", "llvm"):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (None, 5))
            w = tg.parameter("w", np.linspace(-1, 1, 15).reshape(5, 3).astype("float32"))
            y = tg.tanh(x @ w) + tg.sum(x, axis=1, keepdims=True)
        fs[backend] = tg.compile([x], [y, x * 2.0], backend=backend)
    base = np.random.default_rng(4).standard_normal((10, 12)).astype("float32")
    feeds = [base[::2, 1:6], base[:5, :5].T.copy().T, base[1:2, 2:7], np.asfortranarray(base[:7, :5])]
    for xv in feeds:
        assert not xv.flags.c_contiguous or xv.shape[0] == 1
        ref, got = fs["interp"](xv), fs["llvm"](xv)
        for a, b in zip(ref, got):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    first = fs["llvm"](feeds[0])
    kept = [a.copy() for a in first]
    fs["llvm"](feeds[0] + 1.0)                   # a later call must not overwrite earlier results
    for a, b in zip(first, kept):
        np.testing.assert_array_equal(a, b)
    assert len(fs["llvm"]._cache) == 1           # batch sizes 5, 5, 1, 7 -> one build generic in the batch


# ---- random differential tests ---------------------------------------------------------------------

UNARY = ["exp", "tanh", "sigmoid", "relu", "softplus", "abs", "neg", "sign", "leaky_relu", "elu"]
BINARY = ["add", "sub", "mul", "maximum", "minimum"]
REDUCE = ["sum", "max", "mean", "logsumexp"]


@st.composite
def elementwise_graphs(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=0, max_size=3)))
    program = []
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            program.append(("u", draw(st.sampled_from(UNARY)), draw(st.integers(0, 10))))
        else:
            program.append(("b", draw(st.sampled_from(BINARY)), draw(st.integers(0, 10)), draw(st.integers(0, 10))))
    k = draw(st.integers(0, len(shape)))
    bshape = tuple(1 if draw(st.booleans()) else d for d in shape[len(shape) - k:])
    reduction = draw(st.sampled_from(REDUCE))
    axis = draw(st.one_of(st.none(), st.integers(-3, 2), st.just((0, -1))))
    keepdims = draw(st.booleans())
    return shape, bshape, program, reduction, axis, keepdims


def _random_graph(case):
    shape, bshape, program, reduction, axis, keepdims = case
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", shape)
        b = tg.placeholder("b", bshape)
        out = apply_program(x, b, program)
        nd = len(out.shape)
        if reduction == "logsumexp":
            ax = -1 if axis is None or isinstance(axis, tuple) else axis
            red = tg.logsumexp(out, axis=ax, keepdims=keepdims) if nd and -nd <= ax < nd else tg.sum(out)
        else:
            ok = axis is None or (nd and all(-nd <= a < nd for a in np.atleast_1d(axis))
                                  and len({a % nd for a in np.atleast_1d(axis)}) == len(np.atleast_1d(axis)))
            red = getattr(tg, reduction)(out * out, axis=axis if ok else None, keepdims=keepdims)
        gx, gb = tg.grad(tg.sum(red * 0.5) + tg.sum(out), [x, b])
    return [x, b], [out, red, gx, gb]


def check_random_graph(case, backend):
    """The graph of ``case`` gives the interpreter's outputs when compiled for ``backend``."""
    shape, bshape = case[0], case[1]
    rng = np.random.default_rng(0)
    feeds = [rng.standard_normal(shape).astype("float32"), rng.standard_normal(bshape).astype("float32")]
    results = []
    for name in ("interp", backend):
        ins, outs = _random_graph(case)
        results.append(tg.compile(ins, outs, backend=name)(*feeds))
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(elementwise_graphs())
def test_random_elementwise_broadcast_reduction_graphs(case):
    check_random_graph(case, "llvm")
