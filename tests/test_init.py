"""tg.init: statistics of every initialiser, fan conventions, seeding."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tensorforge as tg

DENSE = (400, 300)          # (in, out): fan_in 400, fan_out 300
CONV = (64, 32, 3, 3)       # (out, in, kh, kw): fan_in 32*9, fan_out 64*9


def test_fans_follow_dense_and_torch_conv_conventions():
    assert tg.init.fans(DENSE) == (400, 300)
    assert tg.init.fans(CONV) == (32 * 9, 64 * 9)
    assert tg.init.fans((7,)) == (7, 7)
    torch = pytest.importorskip("torch")
    w = torch.empty(CONV)
    assert torch.nn.init._calculate_fan_in_and_fan_out(w) == tg.init.fans(CONV)


@pytest.mark.parametrize("shape", [DENSE, CONV])
@pytest.mark.parametrize("name, std_of", [
    ("normal", lambda fi, fo: 0.01),
    ("lecun_normal", lambda fi, fo: 1 / math.sqrt(fi)),
    ("he_normal", lambda fi, fo: math.sqrt(2 / fi)),
    ("he_uniform", lambda fi, fo: math.sqrt(2 / fi)),
    ("xavier_uniform", lambda fi, fo: math.sqrt(2 / (fi + fo))),
    ("xavier_normal", lambda fi, fo: math.sqrt(2 / (fi + fo))),
])
def test_standard_deviation_matches_the_formula(name, std_of, shape):
    w = tg.init.get(name)(shape, seed=3)
    assert w.dtype == np.float32 and w.shape == shape
    want = std_of(*tg.init.fans(shape))
    assert abs(w.std() / want - 1) < 0.03          # 120k / 18k samples: within a few percent
    assert abs(w.mean()) < 0.05 * want


def test_uniform_bounds():
    fi, fo = tg.init.fans(DENSE)
    a = math.sqrt(6 / (fi + fo))
    w = tg.init.xavier_uniform(DENSE, seed=1)
    assert w.max() <= a and w.min() >= -a and w.max() > 0.99 * a and w.min() < -0.99 * a
    a = math.sqrt(6 / fi)
    w = tg.init.he_uniform(DENSE, seed=1)
    assert w.max() <= a and w.min() >= -a


def test_normal_is_the_course_small_random_init():
    w = tg.init.normal((1000, 100), seed=0)
    z = np.random.default_rng(0).standard_normal((1000, 100)) * 0.01
    np.testing.assert_allclose(w, z.astype(np.float32))


@pytest.mark.parametrize("name", ["normal", "lecun_normal", "he_normal", "he_uniform", "xavier_uniform",
                                  "xavier_normal", "uniform"])
def test_seeds_are_reproducible_and_distinct(name):
    fn = tg.init.get(name)
    np.testing.assert_array_equal(fn((5, 7), seed=11), fn((5, 7), seed=11))
    assert not np.array_equal(fn((5, 7), seed=11), fn((5, 7), seed=12))


def test_zeros_ones_constant_and_lookup():
    assert not tg.init.zeros((2, 3)).any() and tg.init.zeros(4).shape == (4,)
    assert (tg.init.ones((3,)) == 1).all()
    assert (tg.init.constant((2,), 0.25) == 0.25).all()
    assert tg.init.get("glorot_uniform") is tg.init.xavier_uniform
    f = lambda shape, seed=0: np.full(shape, 3.0)  # noqa: E731
    assert tg.init.get(f) is f
    with pytest.raises(ValueError, match="unknown initialiser"):
        tg.init.get("nope")


@pytest.mark.parametrize("value", [0.0, 0.1])
def test_constant_init_never_breaks_symmetry(value):
    """With equal initial weights (zeros or any constant) every hidden unit gets the same
    gradient and the same update: the hidden units stay identical forever."""
    rng = np.random.default_rng(0)
    x_val, y_val = rng.standard_normal((16, 3)).astype(np.float32), rng.integers(0, 2, 16)
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3))
        y = tg.placeholder("y", (None,), dtype="int64")
        W1 = tg.parameter("W1", tg.init.constant((3, 4), value))
        W2 = tg.parameter("W2", tg.init.constant((4, 2), value))
        h = tg.tanh(x @ W1)
        loss = tg.mean(-tg.sum(tg.one_hot(y, 2) * tg.log_softmax(h @ W2), axis=-1))
        gW1, gW2 = tg.grad(loss, [W1, W2])
        step = tg.compile([x, y], [loss], updates=[(W1, W1 - 0.5 * gW1), (W2, W2 - 0.5 * gW2)])
    for _ in range(20):
        step(x_val, y_val)
    # every hidden unit (a column of W1, a row of W2) is still equal to unit 0
    np.testing.assert_allclose(W1.value, np.repeat(W1.value[:, :1], 4, axis=1), rtol=1e-6)
    np.testing.assert_allclose(W2.value, np.repeat(W2.value[:1], 4, axis=0), rtol=1e-6)
    if value:
        assert not np.allclose(W1.value, value)   # it did train, just symmetrically
    else:
        assert not W1.value.any()                 # tanh(0) = 0: zero weights never move at all
