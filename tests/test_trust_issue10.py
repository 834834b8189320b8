"""Regression tests for four trust fixes found while building issue 10 (ops breadth).

1. Triton: logical and/or of a 0-d boolean with a block (or two 0-d booleans) compile and run.
2. nll_loss / cross_entropy with ignore_index: out-of-range labels are refused before the call.
3. x[idx] / take with negative indices from a placeholder: out-of-range ones are refused before the call.
4. Dilated and transposed convolutions: an inf in x gives inf (torch's value), not NaN.
"""
import numpy as np
import pytest

import tensorforge as tg
from tensorforge.ops.registry import OPS, apply, broadcast_shapes, register

BACKENDS = ["interp", "llvm", "triton"]


def _run(build, inputs, backend):
    """Compile build(*placeholders) for inputs (numpy arrays) on backend and call it once."""
    with tg.Graph("trust"):
        phs = [tg.placeholder(f"p{i}", np.shape(v), dtype=str(np.asarray(v).dtype)) for i, v in enumerate(inputs)]
        out = build(*phs)
        f = tg.compile(phs, [out], backend=backend)
    return f(*inputs)[0]


# ---- 1. Triton logical / bitwise ops on 0-d operands -------------------------------------------

_OR_OP = "trust_issue10_or_of_negatives"


@pytest.fixture
def or_op():
    """A test-only elementwise op whose scalar ORs two comparisons, registered for one test and
    removed after it (a registered op would otherwise reach the registry-wide tests of the worker)."""
    register(_OR_OP, infer=lambda types, **_: (broadcast_shapes(*(t.shape for t in types)), "float32"),
             impl=lambda a, b: np.where((a < 0) | (b < 0), 1.0, 0.0).astype(np.float32), n_inputs=2,
             family="test", doc="1 where either operand is negative.",
             scalar=lambda s, a, b: s.where(s.logical_or(s.lt(a, 0.0), s.lt(b, 0.0)), 1.0, 0.0))
    yield _OR_OP
    OPS.pop(_OR_OP)


_SHAPE_PAIRS = [((2, 3), ()), ((), (2, 3)), ((), ())]


@pytest.mark.parametrize("shapes", _SHAPE_PAIRS)
def test_triton_scalar_logical_or_with_0d_operand(shapes, or_op):
    a = np.array([-1.0, 2.0, 3.0, -4.0, 5.0, 6.0], np.float32)[:int(np.prod(shapes[0]))].reshape(shapes[0])
    b = np.full(shapes[1], -1.0 if shapes[1] == () else 1.0, np.float32)
    got = _run(lambda x, y: apply(or_op, [x, y]), [a, b], "triton")
    np.testing.assert_array_equal(got, np.where((a < 0) | (b < 0), 1.0, 0.0).astype(np.float32))


_BINARY = {
    "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor,
    "bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or, "bitwise_xor": np.bitwise_xor,
    "bitwise_left_shift": np.left_shift, "bitwise_right_shift": np.right_shift,
}


@pytest.mark.parametrize("dtype", ["bool", "int32"])
@pytest.mark.parametrize("name", sorted(_BINARY))
@pytest.mark.parametrize("shapes", _SHAPE_PAIRS)
def test_triton_logical_and_bitwise_ops_with_0d_operand(name, dtype, shapes):
    if "shift" in name and dtype == "bool":
        pytest.skip("shifts take integers only")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, shapes[0]).astype(dtype)
    b = np.asarray(rng.integers(0, 4, shapes[1])).astype(dtype)
    got = _run(getattr(tg, name), [a, b], "triton")
    np.testing.assert_array_equal(got, _BINARY[name](a, b))


@pytest.mark.parametrize("name", ["logical_not", "bitwise_not"])
@pytest.mark.parametrize("dtype", ["bool", "int32"])
def test_triton_unary_not_on_0d(name, dtype):
    a = np.asarray(1).astype(dtype)
    got = _run(getattr(tg, name), [a], "triton")
    want = np.logical_not(a) if name == "logical_not" else np.invert(a)
    np.testing.assert_array_equal(got, want)


# ---- 2. nll_loss / cross_entropy: labels range-checked before the call, ignore_index allowed ----

def _class_loss(fn):
    return lambda x, t: getattr(tg, fn)(x, t, ignore_index=-100)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn", ["nll_loss", "cross_entropy"])
@pytest.mark.parametrize("bad", [4, -3])
def test_class_loss_refuses_out_of_range_labels_before_the_call(backend, fn, bad):
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(tg.InputError, match=rf"'p1'.*label {bad} is out of range \[0, 4\).*ignore_index -100"):
        _run(_class_loss(fn), [x, np.array([0, -100, bad])], backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn", ["nll_loss", "cross_entropy"])
def test_class_loss_ignored_labels_still_pass(backend, fn):
    x = np.log(np.full((3, 4), 0.25, np.float32))
    got = _run(_class_loss(fn), [x, np.array([0, -100, 3])], backend)
    np.testing.assert_allclose(got, np.log(4.0), rtol=1e-5)   # uniform over 4 classes either way


@pytest.mark.parametrize("backend", BACKENDS)
def test_class_loss_constant_labels_are_checked_too(backend):
    with tg.Graph("trust"):
        x = tg.placeholder("x", (2, 3), dtype="float32")
        loss = tg.cross_entropy(x, tg.constant(np.array([5, -100])), ignore_index=-100)
        f = tg.compile([x], [loss], backend=backend)
    with pytest.raises(tg.InputError, match="label 5 is out of range"):
        f(np.zeros((2, 3), np.float32))


# ---- 3. x[idx] with negative indices from a placeholder -----------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [-4, 3])
def test_getitem_refuses_out_of_range_indices_before_the_call(backend, bad):
    x = np.arange(3, dtype=np.float32)
    with pytest.raises(tg.InputError, match=rf"'p1'.*label {bad} is out of range \[-3, 3\)"):
        _run(lambda a, i: a[i], [x, np.array([1, bad])], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_getitem_negative_indices_still_wrap(backend):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = _run(lambda a, i: a[:, i], [x, np.array([0, -1, -3, 2])], backend)
    np.testing.assert_array_equal(got, x[:, [0, -1, -3, 2]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [-1, 3])
def test_take_refuses_out_of_range_indices_before_the_call(backend, bad):
    x = np.arange(3, dtype=np.float32)
    with pytest.raises(tg.InputError, match=rf"'p1'.*label {bad} is out of range \[0, 3\)"):
        _run(lambda a, i: tg.take(a, i), [x, np.array([1, bad])], backend)


# ---- 4. dilated convolutions: an inf in x meets only real taps --------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fn, kwargs, w_shape", [
    ("conv2d", dict(dilation=2, padding=1), (3, 2, 3, 2)),
    ("conv2d", dict(dilation=(1, 2), groups=2, padding=1), (4, 1, 2, 2)),
    ("conv_transpose2d", dict(dilation=2, stride=2), (2, 3, 2, 3)),
])
def test_dilated_convolution_keeps_inf(backend, fn, kwargs, w_shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 5, 6)).astype(np.float32)
    x[0, 0, 2, 3], x[0, 1, 1, 1] = np.inf, -np.inf
    w = rng.standard_normal(w_shape).astype(np.float32)
    want = getattr(torch.nn.functional, fn)(torch.tensor(x), torch.tensor(w), **kwargs).numpy()
    got = _run(lambda a, b: getattr(tg, fn)(a, b, **kwargs), [x, w], backend)
    assert np.isinf(want).any()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)   # inf, -inf and NaN where torch has them
