"""Triton library kernels (backends/triton/library/) against the ops' NumPy references.

Runs under Triton's interpreter (TRITON_INTERPRET=1, set by conftest.py) on CPU torch
tensors; inputs are given as strided views of a flat buffer (offsets, transposes, broadcast
strides) so the kernels are checked to read through their Operand strides.
"""
from __future__ import annotations

import ast
import inspect
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from tensorforge.backends.triton import library as L  # noqa: E402
from tensorforge.ops import indexing as ix  # noqa: E402
from tensorforge.ops.registry import get_op  # noqa: E402

TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-10)}
DEVICE = "cpu"


def _torch_dtype(dtype):
    return {"bool": torch.bool}.get(str(dtype)) or getattr(torch, str(dtype))


class Arg:
    """A NumPy view of a flat buffer, as a library kernel sees it (Operand + the buffer)."""

    def __init__(self, view: np.ndarray, buf: np.ndarray):
        item = buf.itemsize
        start = view.__array_interface__["data"][0] - buf.__array_interface__["data"][0]
        self.value = view
        self.buf = buf
        self.operand = L.Operand(tuple(view.shape), tuple(s // item for s in view.strides), start // item,
                                 view.dtype.name)


def plain(a) -> Arg:
    a = np.asarray(a)
    buf = np.array(a.ravel(), order="C")
    return Arg(buf.reshape(a.shape), buf)


def offset_view(a, pad=3) -> Arg:
    """``a`` stored at an element offset inside a bigger buffer."""
    a = np.asarray(a)
    buf = np.zeros(a.size + 2 * pad, a.dtype)
    buf[pad:pad + a.size] = a.ravel()
    return Arg(buf[pad:pad + a.size].reshape(a.shape), buf)


def transposed(a, axes) -> Arg:
    """A view whose value is ``a`` but whose memory holds ``a.transpose(inverse)``."""
    a = np.asarray(a)
    inv = np.argsort(axes)
    store = np.array(a.transpose(inv), order="C")
    buf = store.ravel()
    return Arg(buf.reshape(store.shape).transpose(axes), buf)


def reference(op, args, attrs):
    return get_op(op).impl(*[a.value for a in args], **attrs)


def run(op, args, attrs, out_shape=None, out_dtype=None, name="k"):
    """Emit the op's kernels, load them, launch on CPU tensors, return the output array."""
    ref = None
    if out_shape is None:
        ref = reference(op, args, attrs)
        out_shape, out_dtype = ref.shape, ref.dtype.name
    out_op = L.Operand(tuple(out_shape), L.contiguous_strides(out_shape), 0, out_dtype)
    source, info = L.LIBRARY[op](name, [a.operand for a in args], out_op, attrs)
    module = L.load_module(source, f"test_{op}")
    out = torch.full(tuple(out_shape), 7, dtype=_torch_dtype(out_dtype), device=DEVICE)  # never zero-filled
    ins = [torch.from_numpy(a.buf.copy()).to(DEVICE) for a in args]
    L.launch(module, info, out, ins, lambda shape, dtype: torch.empty(shape, dtype=_torch_dtype(dtype),
                                                                      device=DEVICE))
    return out.cpu().numpy()


def check(op, args, attrs, dtype="float32"):
    want = reference(op, args, attrs)
    got = run(op, args, attrs)
    assert got.shape == want.shape and got.dtype == want.dtype
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, **TOL[str(want.dtype)])
    else:
        np.testing.assert_array_equal(got, want)
    return got


# ---- matmul --------------------------------------------------------------------------------

def test_matmul_plain_float32_uneven_edges(rng):
    a = rng.standard_normal((19, 37)).astype(np.float32)
    b = rng.standard_normal((37, 21)).astype(np.float32)
    check("matmul", [plain(a), plain(b)], {})


def test_matmul_transposed_offset_operands_float64(rng):
    a = rng.standard_normal((17, 40))
    b = rng.standard_normal((40, 18))
    check("matmul", [transposed(a, (1, 0)), offset_view(b)], {})


def test_matmul_batched_broadcast(rng):
    a = rng.standard_normal((2, 1, 5, 20)).astype(np.float32)
    b = rng.standard_normal((3, 20, 6)).astype(np.float32)
    # a broadcast along axis 1 by a stride-0 view; b transposed in memory
    check("matmul", [offset_view(a), transposed(b, (0, 2, 1))], {})
    stride0 = np.broadcast_to(rng.standard_normal((1, 20, 6)).astype(np.float32), (3, 20, 6))
    buf = np.array(stride0[0].ravel())
    arg = Arg(np.lib.stride_tricks.as_strided(buf, (3, 20, 6), (0, 24, 4)), buf)
    check("matmul", [plain(a), arg], {})


def test_matmul_zero_k_gives_zeros():
    a, b = plain(np.zeros((3, 0), np.float32)), plain(np.zeros((0, 4), np.float32))
    np.testing.assert_array_equal(run("matmul", [a, b], {}), np.zeros((3, 4), np.float32))


# ---- convolution ---------------------------------------------------------------------------

CONV_CASES = [((1, 1), (0, 0)), ((2, 1), (1, 2))]


@pytest.mark.parametrize("stride,padding", CONV_CASES)
def test_conv2d_and_gradients(rng, stride, padding):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    attrs = dict(stride=stride, padding=padding)
    y = check("conv2d", [plain(x), transposed(w, (0, 1, 3, 2)) if stride == (1, 1) else plain(w)], attrs)
    g = rng.standard_normal(y.shape).astype(np.float32)
    check("conv2d_grad_input", [plain(g), transposed(w, (1, 0, 2, 3)), plain(np.empty_like(x))], attrs)
    check("conv2d_grad_weight", [transposed(g, (0, 1, 3, 2)), offset_view(x), plain(np.empty_like(w))],
          attrs)


def test_conv2d_float64(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    w = rng.standard_normal((3, 2, 2, 2))
    check("conv2d", [plain(x), plain(w)], dict(stride=(1, 2), padding=(1, 0)))


# ---- pooling -------------------------------------------------------------------------------

POOL = dict(kernel=(3, 2), stride=(2, 1), padding=(1, 1))


def test_max_pool_forward_and_grad_first_max(rng):
    # small integers make ties common: the gradient must go to the FIRST maximum of a window
    x = rng.integers(0, 3, (2, 2, 6, 5)).astype(np.float32)
    y = check("max_pool2d", [transposed(x, (0, 1, 3, 2))], POOL)
    g = rng.standard_normal(y.shape).astype(np.float32)
    check("max_pool2d_grad", [plain(g), transposed(x, (0, 1, 3, 2))], POOL)


def test_max_pool_nan_propagates(rng):
    x = rng.standard_normal((1, 1, 4, 4))
    x[0, 0, 1, 2] = np.nan
    attrs = dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0))
    got = run("max_pool2d", [plain(x)], attrs)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(reference("max_pool2d", [plain(x)], attrs)))
    g = rng.standard_normal((1, 1, 2, 2))
    check("max_pool2d_grad", [plain(g), plain(x)], attrs)


def test_avg_pool_forward_and_grad_count_include_pad(rng):
    x = rng.standard_normal((2, 2, 5, 6))
    y = check("avg_pool2d", [offset_view(x)], POOL)
    g = rng.standard_normal(y.shape)
    check("avg_pool2d_grad", [transposed(g, (1, 0, 2, 3)), plain(np.empty_like(x))], POOL)


# ---- indexing and copies -------------------------------------------------------------------

def test_getitem_and_grad(rng):
    x = rng.standard_normal((4, 5, 6)).astype(np.float32)
    index = ix.normalize_index((slice(None, None, -2), 1, None, slice(1, 5, 2)), 3)
    y = check("getitem", [transposed(x, (2, 0, 1))], dict(index=index))
    g = rng.standard_normal(y.shape).astype(np.float32)
    check("getitem_grad", [offset_view(g), plain(np.empty_like(x))], dict(index=index))


def test_concat_and_concat_grad(rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    b = rng.standard_normal((3, 2)).astype(np.float32)
    c = rng.standard_normal((2, 1))
    y = check("concat", [plain(a), transposed(b.T, (1, 0)), offset_view(c)], dict(axis=1))
    assert y.dtype == np.float64
    check("concat_grad", [transposed(y, (1, 0)), plain(np.empty((2, 3))), plain(np.empty((2, 2)))],
          dict(axis=1))


def test_copy_transpose_broadcast_reshape_and_cast(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    out = run("copy", [transposed(x, (1, 0))], {}, out_shape=(3, 4), out_dtype="float32")
    np.testing.assert_array_equal(out, x)
    row = offset_view(x[:1])
    np.testing.assert_array_equal(run("copy", [row], {}, out_shape=(2, 3, 4), out_dtype="float32"),
                                  np.broadcast_to(x[:1], (2, 3, 4)))
    np.testing.assert_array_equal(run("copy", [transposed(x, (1, 0))], {}, out_shape=(6, 2),
                                      out_dtype="float32"), x.reshape(6, 2))
    np.testing.assert_array_equal(run("copy", [plain(x * 3)], {}, out_shape=(3, 4), out_dtype="int64"),
                                  (x * 3).astype(np.int64))
    np.testing.assert_array_equal(run("copy", [plain(x > 0)], {}, out_shape=(3, 4), out_dtype="float64"),
                                  (x > 0).astype(np.float64))


def test_one_hot(rng):
    labels = rng.integers(0, 5, (3, 4)).astype(np.int64)
    check("one_hot", [transposed(labels, (1, 0))], dict(depth=5, dtype="float32"))


# ---- argmax --------------------------------------------------------------------------------

def test_argmax_ties_first_and_axes(rng):
    x = rng.integers(0, 3, (3, 40)).astype(np.float32)      # ties everywhere
    check("argmax", [plain(x)], dict(axis=-1))
    check("argmax", [transposed(x, (1, 0))], dict(axis=0))
    check("argmax", [plain(x)], dict(axis=None))
    y = x.copy()
    y[1, 7], y[1, 30] = np.nan, np.nan                        # the first NaN wins
    check("argmax", [plain(y)], dict(axis=1))
    check("argmax", [plain(rng.integers(-9, 9, (4, 5)))], dict(axis=0))


# ---- random --------------------------------------------------------------------------------

def _counter(value):
    return offset_view(np.array(value, dtype=np.int64), pad=1)


@pytest.mark.parametrize("counter", [0, 7, -3, 2 ** 40 + 5])
def test_dropout_bit_exact(rng, counter):
    x = rng.standard_normal((5, 13)).astype(np.float32)
    attrs = dict(p=0.3, seed=1234)
    want = reference("dropout", [transposed(x, (1, 0)), _counter(counter)], attrs)
    got = run("dropout", [transposed(x, (1, 0)), _counter(counter)], attrs)
    np.testing.assert_array_equal(got, want)       # bit-identical, mask and scale
    assert 0 < (got == 0).sum() < x.size


@pytest.mark.parametrize("counter", [0, 11, 2 ** 33 + 1])
def test_random_uniform_bit_exact(counter):
    for dtype in ("float32", "float64"):
        attrs = dict(shape=(7, 9), seed=99, dtype=dtype)
        want = reference("random_uniform", [_counter(counter)], attrs)
        np.testing.assert_array_equal(run("random_uniform", [_counter(counter)], attrs), want)


# ---- generated source ----------------------------------------------------------------------

def test_user_names_are_sanitised():
    name = 'x"); import os; os.system("echo pwned")\n#'
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    source, info = L.LIBRARY["copy"](name, [plain(x).operand], L.Operand((2, 3), (3, 1), 0, "float32"), {})
    tree = ast.parse(source)                       # the name never breaks out of an identifier
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    assert imported <= {"triton", "triton.language"}
    assert not any(isinstance(node, ast.Constant) and isinstance(node.value, str) for node in ast.walk(tree))
    assert all(launch.kernel.isidentifier() for launch in info.launches)
    np.testing.assert_array_equal(run("copy", [plain(x)], {}, out_shape=(2, 3), out_dtype="float32",
                                      name=name), x)


# ---- the same checks on a real GPU (pytest -m gpu, TRITON_INTERPRET=0) ----------------------

GPU_CASES = [
    (test_matmul_plain_float32_uneven_edges, {}), (test_matmul_transposed_offset_operands_float64, {}),
    (test_matmul_batched_broadcast, {}), (test_matmul_zero_k_gives_zeros, {}),
    (test_conv2d_and_gradients, dict(stride=(1, 1), padding=(0, 0))),
    (test_conv2d_and_gradients, dict(stride=(2, 1), padding=(1, 2))), (test_conv2d_float64, {}),
    (test_max_pool_forward_and_grad_first_max, {}), (test_max_pool_nan_propagates, {}),
    (test_avg_pool_forward_and_grad_count_include_pad, {}), (test_getitem_and_grad, {}),
    (test_concat_and_concat_grad, {}), (test_copy_transpose_broadcast_reshape_and_cast, {}),
    (test_one_hot, {}), (test_argmax_ties_first_and_axes, {}),
    (test_dropout_bit_exact, dict(counter=2 ** 40 + 5)), (test_random_uniform_bit_exact, dict(counter=11)),
]


def _on_gpu(monkeypatch):
    assert os.environ.get("TRITON_INTERPRET", "0") == "0", "run the gpu tests with TRITON_INTERPRET=0"
    assert torch.cuda.is_available(), "the gpu tests need a CUDA device"
    monkeypatch.setitem(globals(), "DEVICE", "cuda")     # restored after the test


@pytest.mark.gpu
@pytest.mark.parametrize("case,kwargs", GPU_CASES, ids=[f"{c.__name__}-{k}" for c, k in GPU_CASES])
def test_library_on_gpu(monkeypatch, case, kwargs):
    _on_gpu(monkeypatch)
    kwargs = dict(kwargs or {})
    if "rng" in inspect.signature(case).parameters:
        kwargs["rng"] = np.random.default_rng(0)
    case(**kwargs)


@pytest.mark.gpu
@pytest.mark.parametrize("allow_tf32", [False, True])
def test_matmul_large_on_gpu(monkeypatch, allow_tf32):
    _on_gpu(monkeypatch)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((2, 300, 257)).astype(np.float32)
    b = rng.standard_normal((257, 190)).astype(np.float32)
    got = run("matmul", [plain(a), transposed(b, (1, 0))], dict(allow_tf32=allow_tf32), out_shape=(2, 300, 190),
              out_dtype="float32")
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = dict(rtol=2e-2, atol=2e-2) if allow_tf32 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, want, **tol)
