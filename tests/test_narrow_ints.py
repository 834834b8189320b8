"""Narrow and unsigned integer dtypes (int8, int16, uint8, uint16/32/64) on the compiled backends.

The LLVM and Triton backends must give what the interpreter gives, and what torch gives where
torch has the dtype: wraparound arithmetic, unsigned comparisons of values above the signed
range, zero vs sign extension in casts, reductions that compare unsigned values and sum into
int64, integer division/bitwise/shift ops, and indices of int32 next to uint8 data.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tensorforge as tg

BACKENDS = ("interp", "llvm", "triton")
COMPILED = ("llvm", "triton")


def run_all(build, arrays, backend):
    """Compile ``build(*placeholders) -> list of tensors`` as ONE graph (one compile per test
    keeps the Triton interpreter affordable) and return the outputs."""
    with tg.Graph():
        xs = [tg.placeholder(f"x{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays)]
        outs = build(*xs)
    return tg.compile(xs, list(outs), backend=backend)(*arrays)


def check_against_torch(got, want):
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        w = w.numpy()
        assert g.dtype == w.dtype, (k, g.dtype, w.dtype)
        np.testing.assert_array_equal(g, w, err_msg=f"output {k}")


def check_against_interp(build, arrays, backend):
    want = run_all(build, arrays, "interp")
    got = run_all(build, arrays, backend)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.dtype == w.dtype, (k, g.dtype, w.dtype)
        np.testing.assert_array_equal(g, w, err_msg=f"output {k}")


U8 = np.array([200, 255, 0, 128, 127, 1], np.uint8)
V8 = np.array([100, 1, 3, 129, 200, 255], np.uint8)
I8 = np.array([-128, 127, 0, -1, 5, 100], np.int8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_arithmetic_wraps_around_and_promotes_like_torch(backend):
    def ops(u, v, i):
        return [u + v, u * v, u - v, -u, i + 1, i * i, u + i, u * -1, u + 300, tg.abs(i)]

    got = run_all(ops, [U8, V8, I8], backend)
    u, v, i = torch.tensor(U8), torch.tensor(V8), torch.tensor(I8)
    check_against_torch(got, [u + v, u * v, u - v, -u, i + 1, i * i, u + i, u * -1, u + 300, torch.abs(i)])
    assert got[0][0] == 44 and got[6].dtype == np.int16        # 200 + 100 wraps; int8 + uint8 -> int16


@pytest.mark.parametrize("backend", BACKENDS)
def test_comparisons_and_where_read_uint8_as_unsigned(backend):
    def ops(u, v):
        return [u > v, u <= v, u == v, u > 127, tg.maximum(u, v), tg.minimum(u, v), tg.where(u > v, u, v),
                tg.clamp(u, 10, 150)]

    got = run_all(ops, [U8, V8], backend)
    u, v = torch.tensor(U8), torch.tensor(V8)
    check_against_torch(got, [u > v, u <= v, u == v, u > 127, torch.maximum(u, v), torch.minimum(u, v),
                              torch.where(u > v, u, v), torch.clamp(u, 10, 150)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_casts_extend_by_sign_or_zero_and_convert_unsigned_to_float(backend):
    f = np.array([0.0, 1.9, 127.0, 200.5, 255.0, 3.2], np.float32)
    i16 = np.array([-32768, 32767, 255, 256, -129, 128], np.int16)

    def ops(u, i, fl, w):
        c = tg.cast
        return [c(u, "float32"), c(u, "int64"), c(u, "int8"), c(i, "int32"), c(i, "uint8"), c(i, "float64"),
                c(fl, "uint8"), c(fl, "int16"), c(w, "int8"), c(w, "uint8"), c(c(u, "float32") / 2, "uint8")]

    got = run_all(ops, [U8, I8, f, i16], backend)
    u, i, fl, w = (torch.tensor(a) for a in (U8, I8, f, i16))
    check_against_torch(got, [u.float(), u.long(), u.to(torch.int8), i.int(), i.to(torch.uint8), i.double(),
                              fl.to(torch.uint8), fl.to(torch.int16), w.to(torch.int8), w.to(torch.uint8),
                              (u.float() / 2).to(torch.uint8)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_float_to_narrow_int_out_of_range_agrees_with_the_interpreter(backend):
    f = np.array([-1.0, -3.7, 256.0, 1000.0, -129.0, 3.7], np.float32)
    check_against_interp(lambda x: [tg.cast(x, "uint8"), tg.cast(x, "int8"), tg.cast(x, "uint16")], [f], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_reductions_compare_unsigned_and_sum_into_int64(backend):
    u = np.array([[200, 3, 255, 0], [128, 127, 1, 129]], np.uint8)
    i = np.array([[-128, 127, 0, 5], [-1, -128, 127, 100]], np.int8)
    w = np.array([[30000, -32768], [32767, 5]], np.int16)

    def ops(a, b, c):
        return [tg.sum(a), tg.sum(a, 1), tg.sum(b, 0), tg.sum(c), tg.max(a), tg.min(a, 1), tg.max(b, 0),
                tg.min(b), tg.argmax(a, 1), tg.argmin(a, 1), tg.argmax(b, None), tg.argmin(b, 0), tg.cumsum(a, 1)]

    got = run_all(ops, [u, i, w], backend)
    a, b, c = (torch.tensor(x) for x in (u, i, w))
    check_against_torch(got, [a.sum(), a.sum(1), b.sum(0), c.sum(), a.amax(), a.amin(1), b.amax(0), b.amin(),
                              a.argmax(1), a.argmin(1), b.argmax(), b.argmin(0), a.cumsum(1)])
    assert got[0].dtype == np.int64 and got[4] == 255 and got[5].tolist() == [0, 1]


def _int_op_samples(dtype):
    info = np.iinfo(dtype)
    a = np.array([info.min, info.max, 7, 100, 3, 1, info.min, 9], dtype)
    b = np.array([3, 7, 2, 9, 1, 5, 11, 2], dtype)
    if info.min < 0:
        b[-2:] = [-1, -3]
    shifts = np.array([0, 1, 7, 8, 9, 3, 15, 16], dtype)
    return a, b, shifts


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16"])
def test_division_bitwise_and_shifts_match_torch(backend, dtype):
    a, b, s = _int_op_samples(dtype)

    def ops(x, y, k):
        return [x // y, x % y, tg.fmod(x, y), x & y, x | y, x ^ y, ~x, x << k, x >> k]

    got = run_all(ops, [a, b, s], backend)
    x, y, k = (torch.tensor(v) for v in (a, b, s))
    check_against_torch(got, [torch.floor_divide(x, y), torch.remainder(x, y), torch.fmod(x, y), x & y, x | y,
                              x ^ y, ~x, torch.bitwise_left_shift(x, k), torch.bitwise_right_shift(x, k)])


@pytest.mark.parametrize("backend", COMPILED)
def test_division_by_zero_and_int8_min_by_minus_one_never_trap(backend):
    a = np.array([-128, -128, 7, -7, 0], np.int8)
    b = np.array([-1, 0, 0, 0, 0], np.int8)
    ua = np.array([255, 7, 0], np.uint8)
    ub = np.array([0, 0, 0], np.uint8)
    check_against_interp(lambda x, y, p, q: [x // y, x % y, tg.fmod(x, y), p // q, p % q], [a, b, ua, ub], backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_hot_and_gather_with_int32_indices_on_uint8_data(backend):
    idx = np.array([2, 0, 3], np.int32)
    data = np.array([[200, 255, 0], [128, 7, 100]], np.uint8)
    where = np.array([[2, 0], [1, 1]], np.int32)
    got = run_all(lambda i, d, w: [tg.one_hot(i, 4, dtype="int64"), tg.gather(d, 1, w)], [idx, data, where], backend)
    check_against_torch(got, [torch.nn.functional.one_hot(torch.tensor(idx).long(), 4),
                              torch.gather(torch.tensor(data), 1, torch.tensor(where).long())])


@pytest.mark.parametrize("backend", COMPILED)
def test_wide_unsigned_dtypes_agree_with_the_interpreter(backend):
    u16 = np.array([65535, 40000, 0, 1], np.uint16)
    u32 = np.array([4294967295, 3000000000, 0, 1], np.uint32)
    u64 = np.array([2 ** 64 - 1, 2 ** 63 + 5, 0, 1], np.uint64)

    def ops(a, b, c):
        return [a > 30000, tg.max(a), tg.cast(a, "float32"), b > 5, tg.cast(b, "float64"), tg.argmax(b, None), b // 3,
                tg.cast(c, "float64"), tg.argmax(c, None), c // 3, c >> 60, tg.min(c)]

    check_against_interp(ops, [u16, u32, u64], backend)


@pytest.mark.parametrize("backend", COMPILED)
def test_an_unsupported_dtype_is_refused_by_name(backend):
    with tg.Graph():
        x = tg.placeholder("x", (3,), dtype="float16")
        y = x + x
    with pytest.raises(TypeError, match="float16.*supports.*uint8"):
        tg.compile([x], [y], backend=backend)(np.ones(3, np.float16))
