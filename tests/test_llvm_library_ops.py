"""LLVM library kernels (pooling, indexing, copy, random, argmax, one_hot, concat) against the
ops' NumPy references, on contiguous, transposed, sliced and broadcast (stride-0) operands.

Each case builds one kernel with the op's emitter, compiles it with jit.compile_module and
calls it through ctypes with the *base* arrays' pointers plus the offset/strides that the
``Operand`` describes. Exact ops (copies, max pooling and its gradient, argmax, the random
ops) must match bit for bit; summing ones to rtol 1e-5 (float32) / 1e-12 (float64).
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest
from llvmlite import ir

from tensorforge.backends.llvm import jit
from tensorforge.backends.llvm.library import LIBRARY, Operand
from tensorforge.ops import OPS
from tensorforge.ops import random as rnd
from tensorforge.ops.indexing import normalize_index

RTOL = {"float32": 1e-5, "float64": 1e-12}
FLOATS = ["float32", "float64"]


# ---- harness ---------------------------------------------------------------------------

class Arg:
    """A NumPy view of a base array: the kernel gets the base's pointer and the view's
    offset/strides (in elements) through its Operand."""

    def __init__(self, view: np.ndarray, base: np.ndarray):
        self.view, self.base = view, base
        item = view.itemsize
        self.operand = Operand(tuple(view.shape), tuple(s // item for s in view.strides),
                               (view.__array_interface__["data"][0] - base.ctypes.data) // item,
                               view.dtype.name)


def arg(view: np.ndarray) -> Arg:
    """``view`` whose base is found by walking .base (or the array itself)."""
    base = view
    while isinstance(base.base, np.ndarray):
        base = base.base
    return Arg(view, base)


class Kernel:
    """One emitted and compiled kernel; call it with Args, get the output array."""

    def __init__(self, op, args, out_shape, out_dtype, attrs):
        self.out_shape, self.out_dtype = tuple(out_shape), np.dtype(out_dtype)
        out = Operand(self.out_shape, tuple(s // self.out_dtype.itemsize
                                            for s in np.empty(self.out_shape, self.out_dtype).strides),
                      0, self.out_dtype.name)
        module = ir.Module(name=op)
        LIBRARY[op](module, "kernel", [a.operand for a in args], out, dict(attrs))
        self.compiled = jit.compile_module(str(module))
        self.fn = self.compiled.function("kernel", None, [ctypes.c_void_p] * (1 + len(args)))

    def __call__(self, args):
        out = np.full(self.out_shape, 123, dtype=self.out_dtype)   # garbage: every element must be written
        self.fn(out.ctypes.data, *[a.base.ctypes.data for a in args])
        return out


def run(op, args, attrs, reference=None):
    """Kernel output and the NumPy reference (OPS[op].impl on the views)."""
    ref = OPS[op].impl(*[a.view for a in args], **attrs) if reference is None else reference
    ref = np.asarray(ref)
    got = Kernel(op, args, ref.shape, ref.dtype, attrs)(args)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    return got, ref


def assert_close(got, ref, scale=0.0):
    """rtol per dtype; sums may cancel and NumPy adds in memory order (which depends on the
    layout), so an absolute slack of rtol * ``scale`` (the operands' magnitude) is allowed."""
    rtol = RTOL[got.dtype.name]
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * scale)


def views(rng, shape, dtype):
    """The same logical array as several layouts: contiguous, transposed (a permuted
    base), sliced with steps (an offset and non-unit strides) and reversed (negative stride)."""
    data = (rng.standard_normal(shape) * 4).astype(dtype)
    out = {"contiguous": arg(data.copy())}
    perm = tuple(reversed(range(len(shape))))
    out["transposed"] = arg(np.array(data.transpose(perm), order="C").transpose(perm))
    big = np.zeros(tuple(2 * d + 1 for d in shape), dtype)
    sl = tuple(slice(1, 1 + 2 * d, 2) for d in shape)
    big[sl] = data
    out["strided"] = arg(big[sl])
    flipped = np.array(data[..., ::-1], order="C")
    out["reversed"] = arg(flipped[..., ::-1])
    for a in out.values():
        np.testing.assert_array_equal(a.view, data)
    return out


LAYOUTS = ["contiguous", "transposed", "strided", "reversed"]


# ---- copy ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS + ["int64", "bool"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_copy_materialises_views(rng, dtype, layout):
    a = views(rng, (3, 4, 5), dtype)[layout]
    got, ref = run("copy", [a], {}, reference=np.array(a.view, order="C"))
    np.testing.assert_array_equal(got, ref)


def test_copy_broadcasts_stride_zero_operands(rng):
    row = rng.standard_normal(4).astype(np.float32)
    col = rng.standard_normal((3, 1)).astype(np.float64)
    for src, shape in [(row, (3, 4)), (row, (2, 3, 4)), (col, (3, 5)), (np.broadcast_to(row, (3, 4)), (3, 4))]:
        a = arg(src)
        got, ref = run("copy", [a], {}, reference=np.broadcast_to(src, shape).copy())
        np.testing.assert_array_equal(got, ref)


def test_copy_reshapes_a_strided_view_in_c_order(rng):
    data = rng.standard_normal((4, 6))
    for view, shape in [(data.T, (3, 8)), (data[::2, ::-1], (12,)), (data.T[1:], (5, 4))]:
        a = arg(view)
        got, ref = run("copy", [a], {}, reference=view.reshape(shape))
        np.testing.assert_array_equal(got, ref)


def test_copy_converts_dtype_like_astype():
    src = np.array([[-2.7, 0.0, 3.5], [1.0, -0.0, 7.9]])
    for dtype in ["float32", "int64", "bool"]:
        a = arg(src.T)
        got, ref = run("copy", [a], {}, reference=src.T.astype(dtype))
        np.testing.assert_array_equal(got, ref)


# ---- getitem / getitem_grad ------------------------------------------------------------

INDICES = [
    (slice(None), 2),
    (slice(1, None, 2), None, slice(None, None, -1)),
    (-1,),
    (Ellipsis, slice(4, 0, -3)),
    (1, slice(None), -2),
    (None, Ellipsis, None),
    (slice(2, 2),),                       # empty result
    (slice(-2, None), slice(None, -1), slice(None, None, 2)),
    (1, -2, 3),                           # a 0-d result
]


@pytest.mark.parametrize("index", INDICES, ids=[str(i) for i in range(len(INDICES))])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "reversed"])
def test_getitem(rng, index, layout):
    a = views(rng, (3, 4, 5), "float32")[layout]
    attrs = {"index": normalize_index(index, 3)}
    got, ref = run("getitem", [a], attrs)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("index", INDICES, ids=[str(i) for i in range(len(INDICES))])
@pytest.mark.parametrize("dtype", FLOATS)
def test_getitem_grad_scatters_into_zeros(rng, index, dtype):
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    attrs = {"index": normalize_index(index, 3)}
    gshape = x[index].shape
    g = rng.standard_normal(gshape[::-1]).astype(dtype).T      # a transposed gradient operand
    got, ref = run("getitem_grad", [arg(g), arg(x)], attrs)
    np.testing.assert_array_equal(got, ref)


# ---- concat / concat_grad --------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("dtype", FLOATS)
def test_concat_of_mixed_layouts(rng, axis, dtype):
    shapes = [[2, 3, 4], [2, 3, 4], [2, 3, 4]]
    for k, s in enumerate(shapes):
        s[axis] = k + 1
    a = rng.standard_normal(shapes[0]).astype(dtype)
    b = np.array(rng.standard_normal(shapes[1][::-1]).astype(dtype)).T        # transposed
    c = np.broadcast_to(rng.standard_normal((1,) + tuple(shapes[2][1:])).astype(dtype), shapes[2])
    got, ref = run("concat", [arg(a), arg(b), arg(c)], {"axis": axis})
    np.testing.assert_array_equal(got, ref)


def test_concat_promotes_dtypes_like_numpy(rng):
    a = rng.integers(-5, 5, (2, 3)).astype(np.int64)
    b = rng.standard_normal((2, 2)).astype(np.float32)
    got, ref = run("concat", [arg(a), arg(b)], {"axis": 1})
    assert ref.dtype == np.float64
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("axis", [0, 1])
def test_concat_grad_takes_its_part(rng, axis):
    g = rng.standard_normal((6, 7)).T.copy().T                     # a transposed g
    before_shape = [6, 7]
    before_shape[axis] = 2
    ref_shape = [6, 7]
    ref_shape[axis] = 3
    before, part = np.zeros(before_shape), np.zeros(ref_shape)
    got, ref = run("concat_grad", [arg(g), arg(before), arg(part)], {"axis": axis})
    np.testing.assert_array_equal(got, ref)


# ---- one_hot ---------------------------------------------------------------------------

@pytest.mark.parametrize("label_dtype", ["int64", "int32"])
@pytest.mark.parametrize("dtype", FLOATS + ["int64"])
def test_one_hot(rng, label_dtype, dtype):
    labels = rng.integers(0, 5, (4, 3)).astype(label_dtype).T                # transposed labels
    got, ref = run("one_hot", [arg(labels)], {"depth": 5, "dtype": dtype})
    np.testing.assert_array_equal(got, ref)


def test_one_hot_out_of_range_labels_give_nan_rows():
    # the interpreter raises; native code cannot, so out-of-range rows are NaN (a loss on them
    # is NaN, not quietly wrong); integer one-hot rows are zero
    labels = np.array([0, -1, 3, 7, 2], dtype=np.int64)
    want = np.zeros((5, 4), np.float32)
    want[[0, 2, 4], [0, 3, 2]] = 1
    want[[1, 3]] = np.nan
    got, _ = run("one_hot", [arg(labels)], {"depth": 4, "dtype": "float32"}, reference=want)
    np.testing.assert_array_equal(got, want)
    want_int = np.nan_to_num(want).astype(np.int32)
    got, _ = run("one_hot", [arg(labels)], {"depth": 4, "dtype": "int32"}, reference=want_int)
    np.testing.assert_array_equal(got, want_int)
    with pytest.raises(ValueError):
        OPS["one_hot"].impl(labels, depth=4)


# ---- argmax ----------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1, None])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "reversed"])
def test_argmax_first_of_ties(rng, axis, keepdims, layout):
    a = views(rng, (4, 5, 6), "float64")[layout]
    # few distinct values, so most rows have ties; the first index must win
    a = arg(_rebased(np.round(a.view * 0.7), layout))
    got, ref = run("argmax", [a], {"axis": axis, "keepdims": keepdims})
    np.testing.assert_array_equal(got, ref)


def _rebased(values, layout):
    """``values`` stored with the named layout (a fresh base)."""
    if layout == "transposed":
        return np.array(values.transpose(2, 1, 0), order="C").transpose(2, 1, 0)
    if layout == "reversed":
        return np.array(values[..., ::-1], order="C")[..., ::-1]
    return values.copy()


@pytest.mark.parametrize("dtype", FLOATS)
def test_argmax_nan_and_inf_like_numpy(dtype):
    x = np.array([[1.0, np.nan, 5.0, np.nan], [-np.inf, -np.inf, -np.inf, -np.inf],
                  [2.0, np.inf, np.inf, 3.0], [np.nan, 1.0, 2.0, 3.0]], dtype=dtype)
    for axis in (0, 1):
        got, ref = run("argmax", [arg(x)], {"axis": axis, "keepdims": False})
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_argmax_integers(rng, dtype):
    x = rng.integers(-3, 3, (5, 7)).astype(dtype)
    got, ref = run("argmax", [arg(x.T)], {"axis": 1, "keepdims": False})
    np.testing.assert_array_equal(got, ref)


def test_argmax_of_a_broadcast_operand(rng):
    x = np.broadcast_to(rng.standard_normal((1, 6)), (4, 6))
    got, ref = run("argmax", [arg(x)], {"axis": 0, "keepdims": True})
    np.testing.assert_array_equal(got, ref)                       # all-equal columns: index 0


# ---- pooling ---------------------------------------------------------------------------

POOLS = [  # (input shape, kernel, stride, padding)
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0)),
    ((1, 2, 7, 9), (3, 3), (1, 1), (1, 1)),
    ((2, 2, 9, 7), (3, 2), (2, 1), (1, 0)),
    ((1, 3, 6, 10), (3, 5), (3, 2), (1, 2)),
    ((2, 1, 5, 5), (4, 4), (1, 3), (2, 2)),
    # windows of more than 64 cells take the row-wise (not unrolled) kernels
    ((1, 2, 12, 11), (9, 9), (2, 1), (4, 3)),
    ((1, 2, 18, 18), (9, 9), (9, 9), (0, 0)),
]


def _pool_attrs(kernel, stride, padding):
    return {"kernel": kernel, "stride": stride, "padding": padding}


@pytest.mark.parametrize("case", POOLS, ids=[str(i) for i in range(len(POOLS))])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
def test_max_pool2d_and_grad_exact(rng, case, dtype, layout):
    shape, kernel, stride, padding = case
    attrs = _pool_attrs(kernel, stride, padding)
    x = views(rng, shape, dtype)[layout]
    got, ref = run("max_pool2d", [x], attrs)
    np.testing.assert_array_equal(got, ref)
    g = rng.standard_normal(ref.shape[::-1]).astype(dtype).T             # a transposed gradient
    got, ref = run("max_pool2d_grad", [arg(g), x], attrs)
    np.testing.assert_array_equal(got, ref)            # float64 accumulation, like bincount


@pytest.mark.parametrize("case", POOLS, ids=[str(i) for i in range(len(POOLS))])
@pytest.mark.parametrize("dtype", FLOATS)
def test_max_pool2d_grad_ties_go_to_the_first_max(rng, case, dtype):
    shape, kernel, stride, padding = case
    attrs = _pool_attrs(kernel, stride, padding)
    x = rng.integers(0, 2, shape).astype(dtype)                          # many ties
    x[0, 0, :2, :] = -np.inf                                             # -inf rows next to padding
    x[-1, -1, :, -1] = np.nan
    g = rng.standard_normal(OPS["max_pool2d"].impl(x, **attrs).shape).astype(dtype)
    got, ref = run("max_pool2d", [arg(x)], attrs)
    np.testing.assert_array_equal(got, ref)
    got, ref = run("max_pool2d_grad", [arg(g), arg(x)], attrs)
    np.testing.assert_array_equal(got, ref)


def test_max_pool2d_all_minus_inf_windows_route_like_the_reference():
    # a window holding only -inf (inputs and padding): the first cell wins, which is
    # padding (gradient dropped) unless the window's top-left corner is inside the input
    x = np.full((1, 1, 4, 4), -np.inf)
    for stride, padding in [((1, 1), (1, 1)), ((2, 2), (1, 1)), ((1, 1), (0, 0))]:
        attrs = _pool_attrs((2, 2), stride, padding)
        out_shape = OPS["max_pool2d"].impl(x, **attrs).shape
        g = np.arange(1.0, 1.0 + np.prod(out_shape)).reshape(out_shape)
        got, ref = run("max_pool2d_grad", [arg(g), arg(x)], attrs)
        np.testing.assert_array_equal(got, ref)
        assert got.sum() < g.sum() or padding == (0, 0)       # padding-first windows were dropped


@pytest.mark.parametrize("stride", [(2, 2), (1, 1)])       # disjoint and overlapping windows
def test_max_pool2d_grad_signed_zeros_bit_identical(rng, stride):
    attrs = _pool_attrs((2, 2), stride, (0, 0))
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    g = -np.zeros(OPS["max_pool2d"].impl(x, **attrs).shape, np.float32)
    got, ref = run("max_pool2d_grad", [arg(g), arg(x)], attrs)
    np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32))


@pytest.mark.parametrize("case", POOLS, ids=[str(i) for i in range(len(POOLS))])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "reversed"])
def test_avg_pool2d_and_grad(rng, case, dtype, layout):
    shape, kernel, stride, padding = case
    attrs = _pool_attrs(kernel, stride, padding)
    x = views(rng, shape, dtype)[layout]
    got, ref = run("avg_pool2d", [x], attrs)
    assert_close(got, ref, scale=np.abs(x.view).max())
    g = views(rng, ref.shape, dtype)[layout]
    got, ref = run("avg_pool2d_grad", [g, x], attrs)
    assert_close(got, ref, scale=np.abs(g.view).max())


def test_avg_pool2d_grad_of_a_broadcast_gradient(rng):
    # the gradient of mean(avg_pool(x)) arrives as a broadcast scalar (all strides 0)
    attrs = _pool_attrs((3, 3), (2, 2), (1, 1))
    x = np.zeros((2, 2, 7, 7))
    g = np.broadcast_to(np.array(0.25), (2, 2, 4, 4))
    got, ref = run("avg_pool2d_grad", [arg(g), arg(x)], attrs)
    assert_close(got, ref)


# ---- random ----------------------------------------------------------------------------

COUNTERS = [0, 1, 7, 2**31, 2**32 + 5, -1, -(2**40) + 3]


def _counter(value):
    return arg(np.array(value, dtype=np.int64))


@pytest.mark.parametrize("dtype", FLOATS)
def test_random_uniform_bit_identical_for_every_counter(dtype):
    attrs = {"shape": (3, 5, 7), "seed": 12345, "dtype": dtype}
    kernel = Kernel("random_uniform", [_counter(0)], attrs["shape"], dtype, attrs)
    for value in COUNTERS:                  # one kernel: the counter is read at run time
        c = _counter(value)
        got = kernel([c])
        np.testing.assert_array_equal(got, OPS["random_uniform"].impl(c.view, **attrs))
    assert not np.array_equal(kernel([_counter(1)]), kernel([_counter(2)]))


def test_random_uniform_counter_inside_a_larger_buffer():
    # the counter operand may sit at an offset of its buffer (e.g. a planned state slab)
    slab = np.array([99, 5, -3], dtype=np.int64)
    c = Arg(slab[1:2].reshape(()), slab)
    attrs = {"shape": (10,), "seed": 0, "dtype": "float32"}
    got, ref = run("random_uniform", [c], attrs)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(ref, OPS["random_uniform"].impl(np.int64(5), **attrs))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9, 1 / 3])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["contiguous", "transposed", "strided"])
def test_dropout_masks_bit_identical(rng, p, dtype, layout):
    x = views(rng, (4, 6, 5), dtype)[layout]
    attrs = {"p": p, "seed": 7}
    kernel = Kernel("dropout", [x, _counter(0)], x.view.shape, dtype, attrs)
    for value in COUNTERS[:4]:
        c = _counter(value)
        got = kernel([x, c])
        ref = OPS["dropout"].impl(x.view, c.view, **attrs)
        np.testing.assert_array_equal(got, ref)
    kept = np.mean(kernel([x, _counter(3)]) != 0)
    assert abs(kept - (1 - p)) < 0.15


def test_dropout_random_and_uniform_share_the_stream():
    # dropout keeps i iff u(seed, counter, i) >= p: the two kernels agree element by element
    attrs = {"shape": (200,), "seed": 3, "dtype": "float64"}
    u, _ = run("random_uniform", [_counter(11)], attrs)
    x = np.ones(200)
    d, _ = run("dropout", [arg(x), _counter(11)], {"p": 0.3, "seed": 3})
    np.testing.assert_array_equal(d != 0, u >= 0.3)
    np.testing.assert_array_equal(d[d != 0], np.float64(1 / 0.7))


def test_the_ir_hash_matches_the_python_mixer():
    # lowbias32 itself, through random_uniform's bits at a counter whose key we can force
    bits = rnd.random_bits(5, 9, 16)
    u, _ = run("random_uniform", [_counter(9)], {"shape": (16,), "seed": 5, "dtype": "float64"})
    np.testing.assert_array_equal(u, (bits >> np.uint32(8)) * 2.0 ** -24)


# ---- registry --------------------------------------------------------------------------

def test_every_op_here_has_an_emitter():
    for op in ["max_pool2d", "max_pool2d_grad", "avg_pool2d", "avg_pool2d_grad", "dropout", "random_uniform",
               "argmax", "one_hot", "getitem", "getitem_grad", "concat", "concat_grad", "copy"]:
        assert op in LIBRARY, op
