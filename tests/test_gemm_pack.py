"""The GEMM's packing paths (library/gemm_pack.py) against a float64 NumPy oracle.

Row-major A and transposed B (``dy @ W^T``) run through the in-register transposing copy;
the sizes are chosen so that panels are partial, the depth is not a multiple of the 8 x 8
(4 x 4 for float64) blocks, and a product spans several depth blocks.
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

pytest.importorskip("llvmlite")

from llvmlite import ir  # noqa: E402

from tensorforge import config  # noqa: E402
from tensorforge.backends.llvm import jit  # noqa: E402
from tensorforge.backends.llvm.library import LIBRARY, Operand  # noqa: E402
from tensorforge.backends.llvm.library import linalg  # noqa: E402
from tensorforge.backends.llvm.library.gemm_pack import interleave_mask, transpose_network  # noqa: E402

rng = np.random.default_rng(11)


def rand(*shape, dtype="float32"):
    return rng.standard_normal(shape).astype(dtype)


def _base(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _operand(view: np.ndarray) -> Operand:
    offset = (view.__array_interface__["data"][0] - _base(view).__array_interface__["data"][0]) // view.itemsize
    return Operand(tuple(view.shape), tuple(s // view.itemsize for s in view.strides), offset, str(view.dtype))


def matmul(a: np.ndarray, b: np.ndarray, dtype: str, chunks: int = 1) -> np.ndarray:
    """The library matmul of the views a and b, its work units split into ``chunks`` range calls
    (as ``chunks`` threads would run them)."""
    out = np.full(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1]), np.nan, dtype)
    ops = [_operand(a), _operand(b)]
    out_op = Operand(out.shape, tuple(s // out.itemsize for s in out.strides), 0, dtype)
    module = ir.Module()
    LIBRARY["matmul"](module, "mm", ops, out_op, {})
    compiled = jit.compile_module(str(module))
    ranged = compiled.function("mm_range", None, [ctypes.c_void_p] * 3 + [ctypes.c_int64] * 2)
    units = linalg.matmul_units(ops, out_op)
    cuts = np.linspace(0, units, chunks + 1).astype(int)
    for begin, end in zip(cuts[:-1], cuts[1:]):
        if begin < end:
            ranged(out.ctypes.data, _base(a).ctypes.data, _base(b).ctypes.data, int(begin), int(end))
    return out


def check(got: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    tol = 2e-5 if got.dtype == np.float32 else 1e-12
    scale = max(float(np.abs(want).max()), 1.0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale * np.sqrt(a.shape[-1]))


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_transpose_network_transposes(n):
    rows = [np.arange(n) + 100 * i for i in range(n)]
    for stage in transpose_network(rows):
        rows = [np.concatenate([rows[i], rows[j]])[interleave_mask(n, half)] for i, j, half in stage]
    want = np.arange(n)[None, :] * 100 + np.arange(n)[:, None]      # row r holds element r of each row
    np.testing.assert_array_equal(np.array(rows), want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 13, 100), (13, 7, 33), (100, 257, 65), (257, 1023, 40),
                                   (64, 300, 1023), (9, 1, 48)])
def test_row_major_a_and_transposed_b(m, k, n, dtype):
    a, w = rand(m, k, dtype=dtype), rand(n, k, dtype=dtype)
    check(matmul(a, w.T, dtype), a, w.T)


@pytest.mark.parametrize("chunks", [1, 2, 3])
def test_transposed_operands_split_like_threads(chunks):
    x, g, w = rand(128, 200), rand(128, 96), rand(200, 96)
    check(matmul(x.T, g, "float32", chunks), x.T, g)       # dW = x^T @ dy
    check(matmul(g, w.T, "float32", chunks), g, w.T)       # dx = dy @ W^T


def test_transposed_b_with_an_offset_and_a_batch():
    big = rand(3, 70, 90)
    w = big[:, 5:69, 3:88]                                   # (3, 64, 85), offset, row stride 90
    a = rand(3, 17, 85)
    check(matmul(a, w.transpose(0, 2, 1), "float32", chunks=2), a, w.transpose(0, 2, 1))


def test_transposed_b_converts_float32_to_float64_while_packing():
    a, w = rand(11, 37, dtype="float64"), rand(50, 37, dtype="float32")
    check(matmul(a, w.T, "float64"), a, w.T.astype(np.float64))


@pytest.mark.parametrize("bits,mr", [(256, 6), (128, 6)])
def test_transposed_b_with_narrower_vector_tilings(bits, mr):
    """The AVX2 (and SSE) tiling, whatever this host has: MR = 6 is not a multiple of the
    8-lane blocks, so A falls back to the scalar copy (or is read in place when row-major);
    B (NR = 16 or 8) is transposed in blocks."""
    a, w, x = rand(37, 301), rand(45, 301), rand(301, 37)
    with config.override(vector_bits=bits):
        spec = linalg.matmul_spec([_operand(a), _operand(w.T)], Operand((37, 45), (45, 1), 0, "float32"))
        assert linalg.choose_tiling(spec).mr == mr
        check(matmul(a, w.T, "float32", chunks=3), a, w.T)      # row-major A, read in place
        check(matmul(x.T, w.T, "float32", chunks=2), x.T, w.T)  # transposed A, packed
