"""Small data sets, a checked loader for users' data files, minibatching and seeded image augmentation.

Everything here is NumPy and deterministic for a given seed; nothing is downloaded
(the digits come bundled with scikit-learn). Users' own .npz/.npy/.csv files are read by
``tensorforge.data_files`` (``load_file``, ``encode_labels``, re-exported here).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np

from ._typing import Array

__all__ = ["digits", "xor", "two_spirals", "load_file", "check_labels", "check_features", "DataError",
           "MAX_CLASSES", "encode_labels", "minibatches", "add_gaussian_noise", "random_horizontal_flip",
           "random_shift", "augment"]

# ---- data sets ---------------------------------------------------------------------------

def digits(flat: bool = True, test_size: float = 0.25, seed: int = 0) -> tuple[Array, Array, Array, Array]:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), as

        (x_train, y_train, x_test, y_test)

    with pixels scaled from 0..16 to [0, 1] (float32), labels int64, and a stratified
    split (every class keeps its proportion in both parts). ``flat=True`` gives
    (N, 64) rows; ``flat=False`` gives (N, 1, 8, 8) images (NCHW) for convolutions.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_size, random_state=seed,
                                                        stratify=y)
    if not flat:
        x_train, x_test = x_train.reshape(-1, 1, 8, 8), x_test.reshape(-1, 1, 8, 8)
    return (np.asarray(x_train, order="C"), np.asarray(y_train), np.asarray(x_test, order="C"),
            np.asarray(y_test))


def xor() -> tuple[Array, Array]:
    """The four XOR points (float32, (4, 2)) and their labels (int64, (4,)): not linearly separable."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([0, 1, 1, 0], np.int64)
    return x, y


def two_spirals(n: int = 200, noise: float = 0.0, seed: int = 0) -> tuple[Array, Array]:
    """Two interleaved spirals, ``n`` points each: x float32 (2n, 2), y int64 (2n,) (class 0 then 1).

    Point i of spiral 0 is at radius r = t and angle t, t in [0.25, 3π] growing with i
    (scaled so that |x| <= 1); spiral 1 is spiral 0 rotated by π. ``noise`` adds
    N(0, noise²) to each coordinate.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0.25, 3 * np.pi, n)
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm], axis=0)
    if noise:
        x = x + noise * rng.standard_normal(x.shape)
    y = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    return x.astype(np.float32), y


# ---- users' data files: see data_files.py (re-exported here, where they have always been) ----

from .data_files import (DataError, MAX_CLASSES, check_features, check_labels,  # noqa: E402,F401
                         encode_labels, load_file)

# ---- minibatches -------------------------------------------------------------------------

def minibatches(arrays: Sequence[np.ndarray], batch_size: int, shuffle: bool = True, seed: int | Sequence[int] = 0,
                drop_last: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield tuples of aligned chunks of ``arrays`` (all with the same first dimension).

    With ``shuffle``, one seeded permutation is drawn per call (one epoch): every sample
    appears exactly once. The last batch is smaller unless ``drop_last``.
    """
    arrays = [np.asarray(a) for a in arrays]
    if not arrays:
        return
    n = len(arrays[0])
    for a in arrays[1:]:
        if len(a) != n:
            raise ValueError(f"minibatches: arrays have different lengths ({n} and {len(a)})")
    if batch_size < 1:
        raise ValueError(f"minibatches: batch_size must be >= 1, got {batch_size}")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield tuple(a[idx] for a in arrays)


# ---- augmentation (images: (N, H, W) or (N, C, H, W)) --------------------------------------

def add_gaussian_noise(x: np.ndarray, std: float = 0.05, seed: int = 0, clip: tuple[float, float] | None = None) -> np.ndarray:
    """x + N(0, std²) noise, optionally clipped to ``clip=(low, high)``; same dtype as x."""
    x = np.asarray(x)
    out = x + std * np.random.default_rng(seed).standard_normal(x.shape)
    if clip is not None:
        out = np.clip(out, *clip)
    return out.astype(x.dtype)


def random_horizontal_flip(x: np.ndarray, p: float = 0.5, seed: int = 0) -> np.ndarray:
    """Mirror each image left-right (last axis) with probability ``p``."""
    x = np.asarray(x)
    flip = np.random.default_rng(seed).random(len(x)) < p
    out = x.copy()
    out[flip] = x[flip][..., ::-1]
    return out


def random_shift(x: np.ndarray, max_shift: int = 1, seed: int = 0, fill: float = 0.0) -> np.ndarray:
    """Translate each image by its own random (dy, dx) in [-max_shift, max_shift]², filling with ``fill``."""
    x = np.asarray(x)
    n, h, w = len(x), x.shape[-2], x.shape[-1]
    rng = np.random.default_rng(seed)
    dy = rng.integers(-max_shift, max_shift + 1, n)
    dx = rng.integers(-max_shift, max_shift + 1, n)
    # gather: output pixel (i, j) of image k reads input pixel (i - dy_k, j - dx_k), if inside
    rows = np.arange(h)[None, :] - dy[:, None]                     # (n, h)
    cols = np.arange(w)[None, :] - dx[:, None]                     # (n, w)
    inside = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])  # (n, h, w)
    r = np.clip(rows, 0, h - 1)[:, :, None]
    c = np.clip(cols, 0, w - 1)[:, None, :]
    k = np.arange(n)[:, None, None]
    flat = x.reshape(n, -1, h, w)                                  # channels (if any) in axis 1
    gathered = flat[k[:, None], np.arange(flat.shape[1])[None, :, None, None], r[:, None], c[:, None]]
    out = np.where(inside[:, None], gathered, np.asarray(fill, x.dtype))
    return out.reshape(x.shape).astype(x.dtype)


def augment(x: np.ndarray, seed: int = 0, noise: float = 0.0, flip: float = 0.0, shift: int = 0) -> np.ndarray:
    """Apply shift, flip and noise (in that order, each only if asked for), with seeds derived from ``seed``."""
    out = np.asarray(x)
    if shift:
        out = random_shift(out, shift, seed=seed)
    if flip:
        out = random_horizontal_flip(out, flip, seed=seed + 1)
    if noise:
        out = add_gaussian_noise(out, noise, seed=seed + 2)
    return out
