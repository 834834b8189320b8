"""tg.data: the digits split, toy sets, minibatches and seeded augmentation."""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg


def test_digits_split_scaling_and_stratification():
    x_train, y_train, x_test, y_test = tg.data.digits()
    assert x_train.shape == (1347, 64) and x_test.shape == (450, 64)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    # stratified: each class has (almost) the same share in both parts
    share_train = np.bincount(y_train, minlength=10) / len(y_train)
    share_test = np.bincount(y_test, minlength=10) / len(y_test)
    assert np.abs(share_train - share_test).max() < 0.005
    # the split is seeded
    again = tg.data.digits()
    np.testing.assert_array_equal(again[0], x_train)
    assert not np.array_equal(tg.data.digits(seed=1)[0], x_train)


def test_digits_images_are_nchw_views_of_the_same_data():
    flat = tg.data.digits()
    imgs = tg.data.digits(flat=False)
    assert imgs[0].shape == (1347, 1, 8, 8) and imgs[2].shape == (450, 1, 8, 8)
    np.testing.assert_array_equal(imgs[0].reshape(-1, 64), flat[0])
    np.testing.assert_array_equal(imgs[1], flat[1])


def test_xor_and_two_spirals():
    x, y = tg.data.xor()
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, (x[:, 0] != x[:, 1]).astype(np.int64))
    x, y = tg.data.two_spirals(n=50)
    assert x.shape == (100, 2) and x.dtype == np.float32 and y.tolist() == [0] * 50 + [1] * 50
    np.testing.assert_allclose(x[50:], -x[:50])               # the second arm is the first rotated by pi
    r = np.linalg.norm(x[:50], axis=1)
    assert np.all(np.diff(r) > 0) and r.max() <= 1.0 + 1e-6   # radius grows along the arm
    xn, _ = tg.data.two_spirals(n=50, noise=0.1, seed=3)
    assert 0.05 < np.std(xn - x) < 0.15
    np.testing.assert_array_equal(xn, tg.data.two_spirals(n=50, noise=0.1, seed=3)[0])


def test_minibatches_cover_every_sample_once():
    x = np.arange(10)[:, None] * np.ones((1, 3))
    y = np.arange(10)
    batches = list(tg.data.minibatches((x, y), 4, shuffle=True, seed=0))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    for bx, by in batches:
        np.testing.assert_array_equal(bx[:, 0], by)            # rows stay aligned
    again = np.concatenate([b[1] for b in tg.data.minibatches((x, y), 4, seed=0)])
    np.testing.assert_array_equal(seen, again)
    ordered = [b[1].tolist() for b in tg.data.minibatches((x, y), 4, shuffle=False, drop_last=True)]
    assert ordered == [[0, 1, 2, 3], [4, 5, 6, 7]]
    with pytest.raises(ValueError, match="different lengths"):
        list(tg.data.minibatches((x, y[:5]), 4))


def test_gaussian_noise():
    x = np.zeros((200, 8, 8), np.float32)
    noisy = tg.data.add_gaussian_noise(x, std=0.1, seed=0)
    assert noisy.dtype == np.float32 and abs(noisy.std() - 0.1) < 0.005
    np.testing.assert_array_equal(noisy, tg.data.add_gaussian_noise(x, std=0.1, seed=0))
    assert tg.data.add_gaussian_noise(x, 1.0, seed=0, clip=(0, 1)).min() == 0.0


def test_horizontal_flip():
    x = np.arange(2 * 1 * 2 * 3, dtype=np.float32).reshape(2, 1, 2, 3)
    np.testing.assert_array_equal(tg.data.random_horizontal_flip(x, p=1.0), x[..., ::-1])
    np.testing.assert_array_equal(tg.data.random_horizontal_flip(x, p=0.0), x)
    many = np.ones((1000, 2, 2)) * np.array([0.0, 1.0])
    flipped = tg.data.random_horizontal_flip(many, p=0.5, seed=0)
    assert 0.45 < np.mean(flipped[:, 0, 0] == 1.0) < 0.55


def test_shift_matches_a_loop_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 5, 4)).astype(np.float32)
    out = tg.data.random_shift(x, max_shift=2, seed=7)
    g = np.random.default_rng(7)
    dy, dx = g.integers(-2, 3, 6), g.integers(-2, 3, 6)
    want = np.zeros_like(x)
    for k in range(6):
        for i in range(5):
            for j in range(4):
                si, sj = i - dy[k], j - dx[k]
                if 0 <= si < 5 and 0 <= sj < 4:
                    want[k, :, i, j] = x[k, :, si, sj]
    np.testing.assert_array_equal(out, want)
    # (N, H, W) images too
    np.testing.assert_array_equal(tg.data.random_shift(x[:, 0], 2, seed=7), want[:, 0])


def test_augment_composes_and_is_seeded():
    x = tg.data.digits(flat=False)[0][:20]
    a = tg.data.augment(x, seed=5, noise=0.05, flip=0.5, shift=1)
    np.testing.assert_array_equal(a, tg.data.augment(x, seed=5, noise=0.05, flip=0.5, shift=1))
    assert a.shape == x.shape and a.dtype == x.dtype and not np.array_equal(a, x)
    np.testing.assert_array_equal(tg.data.augment(x, seed=5), x)
