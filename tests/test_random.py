"""Counter-based random numbers: the hash specification, the graph's random counter,
and random_uniform.

The specification in the ``tensorforge.ops.random`` docstring is re-implemented
here with plain Python integers (``& 0xffffffff``), independently of the NumPy
reference, and a few of its values are pinned as literals: any backend (LLVM,
Triton) can be checked against the same numbers.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.ops.random import rng_counter

M32 = 0xFFFFFFFF


# ---- the specification, in plain Python integers -----------------------------------------

def spec_lowbias32(x: int) -> int:
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def spec_key(seed: int, counter: int) -> int:
    counter &= 0xFFFFFFFFFFFFFFFF            # two's-complement bits of the int64
    k = spec_lowbias32(seed ^ 0x9E3779B9)
    k = spec_lowbias32(k ^ (counter & M32))
    return spec_lowbias32(k ^ (counter >> 32))


def spec_bits(seed: int, counter: int, i: int) -> int:
    return spec_lowbias32(spec_key(seed, counter) ^ (i & M32))


def spec_u(seed: int, counter: int, i: int) -> float:
    return (spec_bits(seed, counter, i) >> 8) * 2.0 ** -24


# (seed, counter, i) -> bits: pinned so that a change of the spec cannot go unnoticed
PINNED_BITS = {
    (0, 0, 0): 1106484830,
    (0, 0, 1): 726357435,
    (1, 0, 0): 191656671,
    (0, 1, 0): 335112171,
    (42, 7, 12345): 579484038,
}


def test_spec_reproduces_the_pinned_values():
    assert spec_lowbias32(0) == 0                      # why the seed is salted
    assert spec_lowbias32(1) == 0x688990C0
    assert spec_lowbias32(0xDEADBEEF) == 0xE628C683
    for (seed, counter, i), bits in PINNED_BITS.items():
        assert spec_bits(seed, counter, i) == bits
        assert spec_u(seed, counter, i) == (bits >> 8) / 2 ** 24


def uniform_after(counter_value: int, shape, seed: int, dtype="float32") -> np.ndarray:
    """Run tg.random_uniform once with the graph's counter set to ``counter_value``."""
    g = tg.Graph()
    with g:
        u = tg.random_uniform(shape, seed=seed, dtype=dtype)
    rng_counter(g).value = counter_value
    return tg.compile([], [u])()[0]


@pytest.mark.parametrize("seed,counter", [(0, 0), (1, 0), (42, 7), (0xFFFFFFFF, 2 ** 32 + 3), (5, 2 ** 63 - 1)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_uniform_follows_the_spec_bit_for_bit(seed, counter, dtype):
    shape = (3, 5)
    got = uniform_after(counter, shape, seed, dtype)
    assert got.dtype == np.dtype(dtype) and got.shape == shape
    want = np.array([spec_u(seed, counter, i) for i in range(15)]).reshape(shape)
    np.testing.assert_array_equal(got.astype(np.float64), want)   # exact: 24 significant bits


def test_random_uniform_pinned_values():
    got = uniform_after(7, (12346,), seed=42)
    assert got[12345] == np.float32((PINNED_BITS[(42, 7, 12345)] >> 8) * 2.0 ** -24)
    got = uniform_after(0, (2,), seed=0)
    assert got.tolist() == [(1106484830 >> 8) / 2 ** 24, (726357435 >> 8) / 2 ** 24]


def test_uniform_statistics():
    u = uniform_after(0, (100_000,), seed=3).astype(np.float64)
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005                # std of the mean ≈ 0.0009
    assert abs(u.var() - 1 / 12) < 0.002
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(counts - 10_000) < 500)      # ≈ 5 standard deviations
    assert np.all(u * 2 ** 24 == np.floor(u * 2 ** 24))   # multiples of 2**-24
    # neighbouring elements are not correlated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.02


# ---- the counter --------------------------------------------------------------------------

def test_rng_counter_is_created_once_as_a_non_trainable_int64_scalar():
    g = tg.Graph()
    c = rng_counter(g)
    assert c.same(rng_counter(g))
    assert c.name == "rng_counter" and c.op == "parameter"
    assert c.shape == () and c.dtype == "int64" and c.value == 0
    assert c.attrs["trainable"] is False
    assert c not in g.parameters(trainable=True)
    update = g.tensor(g.default_updates[c.id])       # counter + 1
    assert update.op == "add" and update.inputs[0].same(c)
    assert c.id not in g.update_triggers               # no trigger: used => updated


def test_rng_counter_refuses_a_foreign_node_of_that_name():
    g = tg.Graph()
    with g:
        tg.placeholder("rng_counter", (3,))
    with pytest.raises(ValueError, match="not the int64 scalar random counter"):
        rng_counter(g)


def test_every_call_of_a_compiled_function_advances_the_counter():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (4,))
        u = tg.random_uniform((4,), seed=9)
        y = x + u
        z = x * 2.0                                  # does not use the counter
    f = tg.compile([x], [y])
    h = tg.compile([x], [z])
    counter = rng_counter(g)
    assert len(f.updates) == 1 and len(h.updates) == 0
    xv = np.zeros(4, np.float32)
    first = f(xv)[0]
    assert counter.value == 1
    second = f(xv)[0]
    assert counter.value == 2
    h(xv)
    assert counter.value == 2
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, [spec_u(9, 0, i) for i in range(4)])
    np.testing.assert_array_equal(second, [spec_u(9, 1, i) for i in range(4)])


def test_same_seed_same_numbers_different_seed_different_numbers():
    g = tg.Graph()
    with g:
        a = tg.random_uniform((8,), seed=1)
        b = tg.random_uniform((8,), seed=1)
        c = tg.random_uniform((8,), seed=2)
    assert a.same(b)                                  # interned: one node
    va, vc = tg.compile([], [a, c])()
    assert not np.array_equal(va, vc)


def test_random_uniform_argument_errors():
    g = tg.Graph()
    with g:
        with pytest.raises(ValueError, match="seed must be in"):
            tg.random_uniform((2,), seed=-1)
        with pytest.raises(ValueError, match="seed must be in"):
            tg.random_uniform((2,), seed=2 ** 32)
        with pytest.raises(tg.ShapeError, match="draws floats"):
            tg.random_uniform((2,), dtype="int32")
    assert math.isclose(float(tg.compile([], [tg.random_uniform(3, seed=0, graph=g)])()[0][0]),
                        spec_u(0, 0, 0))
