"""LLVM library kernels for matmul and the convolutions, checked against the ops' NumPy references.

Each kernel is emitted into its own module, JIT-compiled, and called through ctypes with the
*base* arrays' pointers plus the offsets/strides of the views (transposed, broadcast with
stride 0, offset, reversed), exactly as the backend will call them.
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

pytest.importorskip("llvmlite")

from llvmlite import ir  # noqa: E402

from tensorforge.backends.llvm import jit  # noqa: E402
from tensorforge.backends.llvm.library import LIBRARY, Operand  # noqa: E402
from tensorforge.backends.llvm.library import linalg as linalg_lib  # noqa: E402
from tensorforge.ops import OPS  # noqa: E402

RTOL = {"float32": 1e-5, "float64": 1e-12}


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def operand_of(view: np.ndarray) -> tuple[Operand, np.ndarray]:
    """The Operand describing ``view`` relative to its base array, and that base array."""
    base = _root(view)
    offset_bytes = view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    item = view.itemsize
    op = Operand(tuple(view.shape), tuple(s // item for s in view.strides), offset_bytes // item, str(view.dtype))
    return op, base


def run_kernel(op_name, views, out_shape, out_dtype, attrs=None, emit=None):
    """Emit, compile and call the library kernel of ``op_name``; returns the output array."""
    attrs = attrs or {}
    pairs = [operand_of(v) for v in views]
    out = np.empty(out_shape, dtype=out_dtype)
    out_op = Operand(tuple(out_shape), tuple(s // out.itemsize for s in out.strides), 0, out_dtype)
    module = ir.Module(name=op_name)
    (emit or LIBRARY[op_name])(module, "kernel", [p[0] for p in pairs], out_op, attrs)
    compiled = jit.compile_module(str(module))
    fn = compiled.function("kernel", None, [ctypes.c_void_p] * (1 + len(views)))
    fn(out.ctypes.data, *[p[1].ctypes.data for p in pairs])
    return out


def reference(op_name, views, attrs=None):
    return OPS[op_name].impl(*[np.array(v) for v in views], **(attrs or {}))


def assert_matches(got, want, dtype):
    assert got.shape == want.shape
    scale = max(float(np.abs(want).max()), 1.0) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


rng = np.random.default_rng(0)


def rand(*shape, dtype="float32"):
    return rng.standard_normal(shape).astype(dtype)


# ---- matmul -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (5, 7, 3), (8, 16, 32), (33, 300, 70), (100, 513, 45),
                                   (128, 64, 10), (20, 5, 2100)])
def test_matmul_sizes(m, k, n, dtype):
    a, b = rand(m, k, dtype=dtype), rand(k, n, dtype=dtype)
    assert_matches(run_kernel("matmul", [a, b], (m, n), dtype), a @ b, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_transposed_and_offset_operands(dtype):
    big_a = rand(60, 50, dtype=dtype)
    a = big_a[3:40, 5:45].T                    # (40, 37), column-major with an offset
    b = rand(45, 37, dtype=dtype).T[::-1]      # (37, 45) transposed and reversed (negative stride)
    want = reference("matmul", [a, b])
    assert_matches(run_kernel("matmul", [a, b], want.shape, dtype), want, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_narrow_output_reads_a_in_place(dtype):
    """N <= one register tile: A is read through its strides, unpacked (here transposed, with
    a partial last row tile and K spanning several depth blocks)."""
    a = rand(600, 37, dtype=dtype).T
    b = rand(600, 7, dtype=dtype)
    assert_matches(run_kernel("matmul", [a, b], (37, 7), dtype), a @ b, dtype)


def test_matmul_mlp_backward_shapes():
    x, g = rand(128, 784), rand(128, 256)
    w = rand(784, 256)
    assert_matches(run_kernel("matmul", [x.T, g], (784, 256), "float32"), x.T @ g, "float32")
    assert_matches(run_kernel("matmul", [g, w.T], (128, 784), "float32"), g @ w.T, "float32")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_batched_broadcast(dtype):
    a = rand(2, 1, 9, 6, dtype=dtype)
    b = np.broadcast_to(rand(6, 11, dtype=dtype), (3, 6, 11))   # stride-0 batch axis
    want = reference("matmul", [a, b])
    assert_matches(run_kernel("matmul", [a, b], want.shape, dtype), want, dtype)
    c = rand(4, 7, 5, dtype=dtype)
    d = rand(5, 3, dtype=dtype)                                   # missing batch axis
    assert_matches(run_kernel("matmul", [c, d], (4, 7, 3), dtype), c @ d, dtype)


def test_matmul_mixed_dtypes_convert_while_packing():
    a, b = rand(7, 9, dtype="float32"), rand(9, 4, dtype="float64")
    want = reference("matmul", [a, b])
    assert want.dtype == np.float64
    assert_matches(run_kernel("matmul", [a, b], want.shape, "float64"), want, "float64")


def test_matmul_empty_inner_dimension_gives_zeros():
    a, b = np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)
    np.testing.assert_array_equal(run_kernel("matmul", [a, b], (3, 4), "float32"), np.zeros((3, 4)))


def test_matmul_avx2_tiling_is_correct_everywhere():
    """The 6 x 16 tile chosen on AVX2 hosts (CI) is checked here whatever this host has."""
    a, b = rand(2, 37, 300), rand(2, 300, 29)

    def emit(module, name, inputs, out, attrs):
        spec = linalg_lib.matmul_spec(inputs, out)
        return linalg_lib.emit_gemm(module, name, spec, linalg_lib.Tiling(8, 6, 16, 128, 18, 32))

    assert_matches(run_kernel("matmul", [a, b], (2, 37, 29), "float32", emit=emit), a @ b, "float32")


def test_matmul_range_entry_splits_the_work():
    a, b = rand(3, 50, 20), rand(3, 20, 30)
    (oa, ba), (ob, bb) = operand_of(a), operand_of(b)
    out = np.full((3, 50, 30), np.nan, np.float32)
    out_op = Operand(out.shape, (1500, 30, 1), 0, "float32")
    module = ir.Module()
    LIBRARY["matmul"](module, "mm", [oa, ob], out_op, {})
    compiled = jit.compile_module(str(module))
    ranged = compiled.function("mm_range", None, [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 2)
    units = linalg_lib.matmul_units([oa, ob], out_op)
    assert units >= 3
    cut = units // 2 + 1                      # not on a batch boundary
    ranged(out.ctypes.data, ba.ctypes.data, bb.ctypes.data, 0, cut)
    assert np.isnan(out).any()                # the second half is still unwritten
    ranged(out.ctypes.data, ba.ctypes.data, bb.ctypes.data, cut, units)
    assert_matches(out, a @ b, "float32")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matmul_with_few_outputs_and_a_long_depth_uses_dot_products(dtype):
    a = rand(5, 700, dtype=dtype)                   # rows contiguous along the depth
    b = rand(3, 700, dtype=dtype).T                 # columns contiguous along the depth
    spec = linalg_lib.matmul_spec([operand_of(a)[0], operand_of(b)[0]],
                                  Operand((5, 3), (3, 1), 0, dtype))
    assert linalg_lib.dot_products(spec)
    assert_matches(run_kernel("matmul", [a, b], (5, 3), dtype), a @ b, dtype)
    # batched, broadcast over a stride-0 batch axis, mixed dtypes
    c = rand(2, 4, 300, dtype="float32")
    d = np.broadcast_to(rand(6, 300, dtype=dtype).T, (2, 300, 6))
    want = reference("matmul", [c, d])
    assert_matches(run_kernel("matmul", [c, d], want.shape, str(want.dtype)), want, str(want.dtype))


def test_dot_product_matmul_range_entry_splits_the_work():
    a, b = rand(2, 33, 400), rand(2, 5, 400).transpose(0, 2, 1)
    (oa, ba), (ob, bb) = operand_of(a), operand_of(b)
    out = np.full((2, 33, 5), np.nan, np.float32)
    out_op = Operand(out.shape, (165, 5, 1), 0, "float32")
    assert linalg_lib.dot_products(linalg_lib.matmul_spec([oa, ob], out_op))
    module = ir.Module()
    LIBRARY["matmul"](module, "mm", [oa, ob], out_op, {})
    compiled = jit.compile_module(str(module))
    ranged = compiled.function("mm_range", None, [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 2)
    units = linalg_lib.matmul_units([oa, ob], out_op)
    cut = units // 2 + 1
    ranged(out.ctypes.data, ba.ctypes.data, bb.ctypes.data, 0, cut)
    assert np.isnan(out).any()
    ranged(out.ctypes.data, ba.ctypes.data, bb.ctypes.data, cut, units)
    assert_matches(out, a @ b, "float32")


# ---- convolutions -----------------------------------------------------------------------------

CONV_CASES = [  # x shape, w shape, stride, padding
    ((2, 1, 8, 8), (8, 1, 3, 3), (1, 1), (1, 1)),
    ((3, 2, 7, 9), (4, 2, 3, 2), (2, 1), (0, 1)),
    ((1, 3, 6, 5), (2, 3, 1, 1), (1, 2), (0, 0)),
    ((2, 2, 5, 5), (3, 2, 5, 5), (1, 1), (2, 2)),
    ((8, 1, 8, 8), (8, 1, 3, 3), (1, 1), (1, 1)),   # grad_weight: 8 x 9 outputs, depth 512 (dot products)
]


def _conv_inputs(x_shape, w_shape, stride, padding, dtype):
    attrs = {"stride": stride, "padding": padding}
    x, w = rand(*x_shape, dtype=dtype), rand(*w_shape, dtype=dtype)
    y = reference("conv2d", [x, w], attrs)
    return attrs, x, w, rand(*y.shape, dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("x_shape,w_shape,stride,padding", CONV_CASES)
def test_conv2d_and_gradients(x_shape, w_shape, stride, padding, dtype):
    attrs, x, w, g = _conv_inputs(x_shape, w_shape, stride, padding, dtype)
    want = reference("conv2d", [x, w], attrs)
    assert_matches(run_kernel("conv2d", [x, w], want.shape, dtype, attrs), want, dtype)
    want = reference("conv2d_grad_input", [g, w, x], attrs)
    assert_matches(run_kernel("conv2d_grad_input", [g, w, x], x.shape, dtype, attrs), want, dtype)
    want = reference("conv2d_grad_weight", [g, x, w], attrs)
    assert_matches(run_kernel("conv2d_grad_weight", [g, x, w], w.shape, dtype, attrs), want, dtype)


def test_conv_strided_views_are_read_in_place_or_copied():
    attrs = {"stride": (1, 1), "padding": (1, 1)}
    x = rand(3, 4, 6, 2).transpose(0, 3, 1, 2)            # (3, 2, 4, 6) non-contiguous
    w = rand(3, 3, 2, 5).transpose(3, 2, 0, 1)            # (5, 2, 3, 3): K axes not flattenable
    y = reference("conv2d", [x, w], attrs)
    g = rand(*y.shape[::-1]).T                             # reversed axis order: g copied for grad_input
    assert_matches(run_kernel("conv2d", [x, w], y.shape, "float32", attrs), y, "float32")
    want = reference("conv2d_grad_input", [g, w, x], attrs)
    assert_matches(run_kernel("conv2d_grad_input", [g, w, x], x.shape, "float32", attrs), want, "float32")
    want = reference("conv2d_grad_weight", [g, x, w], attrs)
    assert_matches(run_kernel("conv2d_grad_weight", [g, x, w], w.shape, "float32", attrs), want, "float32")


def test_conv_in_several_sample_chunks():
    """Five samples through one col buffer (reused per sample; its padding cells stay zero)."""
    attrs, x, w, g = _conv_inputs((5, 2, 5, 5), (3, 2, 3, 3), (1, 1), (1, 1), "float64")
    for op, ins, shape in (("conv2d", [x, w], g.shape), ("conv2d_grad_input", [g, w, x], x.shape),
                           ("conv2d_grad_weight", [g, x, w], w.shape)):
        assert_matches(run_kernel(op, ins, shape, "float64", attrs), reference(op, ins, attrs), "float64")


# ---- one generic GEMM per module -------------------------------------------------------------

def _defines(module: ir.Module) -> list[str]:
    return [line for line in str(module).splitlines() if line.startswith("define")]


def test_matmuls_of_different_shapes_share_one_generic_gemm():
    """Every instance is two small wrappers around the module's shared generic kernel (plus one
    packing routine): adding more shapes of the same kind adds only wrappers."""
    a1, b1 = rand(33, 70), rand(70, 50)
    a2, b2 = rand(128, 40).T, rand(128, 64)          # transposed A, other sizes
    a3, b3 = rand(2, 9, 20), rand(20, 40)            # batched, B broadcast
    module = ir.Module()
    cases = [("mm1", [a1, b1], (33, 50)), ("mm2", [a2, b2], (40, 64)), ("mm3", [a3, b3], (2, 9, 40))]
    for name, views, shape in cases:
        out_op = Operand(shape, tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape))), 0, "float32")
        LIBRARY["matmul"](module, name, [operand_of(v)[0] for v in views], out_op, {})
    defines = _defines(module)
    generic = [d for d in defines if "tf_gemm." in d and "ukernel" not in d]
    assert len(generic) == 1, defines
    # 3 x (name, name_range) + generic + its 2 microkernels (packed A, row-major A read in
    # place) + the packing routine
    assert len(defines) == 2 * len(cases) + 4, defines
    compiled = jit.compile_module(str(module))
    for name, views, shape in cases:
        pairs = [operand_of(v) for v in views]
        out = np.empty(shape, np.float32)
        compiled.function(name, None, [ctypes.c_void_p] * 3)(out.ctypes.data, *[p[1].ctypes.data for p in pairs])
        assert_matches(out, views[0] @ views[1], "float32")


def test_conv_and_its_gradients_reuse_the_module_gemms():
    """conv2d, conv2d_grad_input and conv2d_grad_weight in one module: at most one generic GEMM
    per register-tile kind (wide and narrow outputs) and one packing routine, not one per GEMM."""
    attrs, x, w, g = _conv_inputs((2, 2, 6, 6), (4, 2, 3, 3), (1, 1), (1, 1), "float32")
    module = ir.Module()
    for name, op, views, shape in (("c0", "conv2d", [x, w], g.shape), ("c1", "conv2d_grad_input", [g, w, x], x.shape),
                                   ("c2", "conv2d_grad_weight", [g, x, w], w.shape)):
        out_op = Operand(shape, tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape))), 0, "float32")
        LIBRARY[op](module, name, [operand_of(v)[0] for v in views], out_op, attrs)
    generic = [d for d in _defines(module) if "tf_gemm." in d and "ukernel" not in d]
    assert 1 <= len(generic) <= 2, generic
    assert sum("tf_gemm_pack" in d for d in _defines(module)) == 1


def test_gemm_range_out_of_memory_gives_nan_not_garbage():
    """A failed scratch allocation (simulated by an aligned_alloc that returns NULL) fills the
    units' output rows with NaN instead of leaving stale values."""
    a, b = rand(20, 30), rand(30, 40)
    (oa, ba), (ob, bb) = operand_of(a), operand_of(b)
    module = ir.Module()
    failing = ir.Function(module, ir.FunctionType(ir.PointerType(), [ir.IntType(64)] * 2), name="aligned_alloc")
    failing.linkage = "internal"
    builder = ir.IRBuilder(failing.append_basic_block())
    builder.ret(ir.Constant(ir.PointerType(), None))
    LIBRARY["matmul"](module, "mm", [oa, ob], Operand((20, 40), (40, 1), 0, "float32"), {})
    compiled = jit.compile_module(str(module))
    out = np.zeros((20, 40), np.float32)
    compiled.function("mm", None, [ctypes.c_void_p] * 3)(out.ctypes.data, ba.ctypes.data, bb.ctypes.data)
    assert np.isnan(out).all()
