"""Small data sets, a checked loader for users' data files, minibatching and seeded image augmentation.

Everything here is NumPy and deterministic for a given seed; nothing is downloaded
(the digits come bundled with scikit-learn). ``load_file`` reads a user's .npz/.npy/.csv
and refuses what would break training later (non-finite features, labels that are not
small non-negative integers) with a :class:`DataError` naming the file, row and column.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

__all__ = ["digits", "xor", "two_spirals", "load_file", "check_labels", "check_features", "DataError",
           "MAX_CLASSES", "minibatches", "add_gaussian_noise", "random_horizontal_flip", "random_shift",
           "augment"]

# more classes than this (or than 10 per sample) is a mistake in the labels, not a data set:
# the output layer would have one row per class
MAX_CLASSES = 100_000


# ---- data sets ---------------------------------------------------------------------------

def digits(flat: bool = True, test_size: float = 0.25, seed: int = 0):
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


def xor():
    """The four XOR points (float32, (4, 2)) and their labels (int64, (4,)): not linearly separable."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
    y = np.array([0, 1, 1, 0], np.int64)
    return x, y


def two_spirals(n: int = 200, noise: float = 0.0, seed: int = 0):
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


# ---- users' data files ---------------------------------------------------------------------

class DataError(ValueError):
    """A data file cannot be read or holds data that cannot be trained on; the message names
    the file and, where there is one, the row (1-based, as in the file) and column."""


def load_file(path) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int64) from a .npz (arrays "x" and "y"), a .npy (2-D, last column the label)
    or a .csv (numbers, last column the label, an optional header line); checked by
    :func:`check_features` and :func:`check_labels`."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a directory, not a data file")
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    kinds = {".npz": _read_npz, ".npy": _read_npy, ".csv": _read_csv}
    if path.suffix.lower() not in kinds:
        raise DataError(f"{path}: expected a .npz, .npy or .csv file")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty")
    x, y, row_of = kinds[path.suffix.lower()](path)
    if x.ndim < 1 or len(x) != len(y) or len(x) < 2:
        raise DataError(f"{path}: x has {len(x) if x.ndim else 0} rows and y has {len(y)}; need as many, "
                        f"at least 2")
    return check_features(x, path, row_of), check_labels(y, path, row_of)


def check_features(x, where, row_of=None) -> np.ndarray:
    """``x`` as float32, refusing non-numbers and NaN/inf (named by row and column, 1-based;
    ``row_of(i)`` gives the row number the file shows for sample i)."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf" or x.ndim == 0:
        raise DataError(f"{where}: features must be rows of numbers, not {x.dtype} of shape {x.shape}")
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(x32.reshape(len(x32), -1)))
    if len(bad):
        row, col = bad[0]
        value = x.reshape(len(x), -1)[row, col]
        what = value if not np.isfinite(value) else f"{value} (too large for float32)"
        raise DataError(f"{where}: row {_row_number(row, row_of)}, column {col + 1}: the feature is {what}; "
                        f"features must be finite numbers")
    return x32


def check_labels(y, where, row_of=None) -> np.ndarray:
    """``y`` as int64 class labels 0..C-1, refusing non-integers, negatives and absurd class counts
    (more than MAX_CLASSES or than 10 per sample) before anything is sized by them."""
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        raise DataError(f"{where}: labels must be one integer class per row (got {y.dtype} of shape {y.shape})")
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)) | (y < 0)) if y.dtype.kind == "f" \
        else np.flatnonzero(y < 0)
    if len(bad):
        raise DataError(f"{where}: row {_row_number(bad[0], row_of)}: the label {y[bad[0]]} is not a "
                        f"non-negative integer class (labels are class numbers 0, 1, 2, ...)")
    limit = min(MAX_CLASSES, 10 * len(y))
    top = int(np.argmax(y)) if len(y) else 0
    if len(y) and y[top] + 1 > limit:
        raise DataError(f"{where}: row {_row_number(top, row_of)}: the label {y[top]:.0f} would make "
                        f"{y[top] + 1:.0f} classes for {len(y)} samples (at most {limit}); labels are "
                        f"class numbers 0, 1, 2, ...")
    return y.astype(np.int64)


def _row_number(i, row_of) -> int:
    return int(row_of(int(i))) if row_of is not None else int(i) + 1


def _read_npz(path: Path):
    try:
        f = np.load(path, allow_pickle=False)
    except Exception as e:      # zip, zlib, header and I/O errors of a damaged file all end here
        raise DataError(f"cannot read {path} as a .npz: {_reason(e)}") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds one array, not the arrays 'x' and 'y' of a .npz")
    try:
        with f:
            if "x" not in f or "y" not in f:
                has = ", ".join(f.files) or "no arrays"
                raise DataError(f"{path} must hold arrays 'x' and 'y' (has {has})")
            return f["x"], f["y"], None
    except DataError:
        raise
    except Exception as e:      # zip, zlib, header and I/O errors of a damaged file all end here
        raise DataError(f"cannot read {path} as a .npz: {_reason(e)}") from None


def _read_npy(path: Path):
    try:
        table = np.load(path, allow_pickle=False)
    except Exception as e:
        raise DataError(f"cannot read {path} as a .npy: {_reason(e)}") from None
    if not isinstance(table, np.ndarray) or table.ndim != 2 or table.shape[1] < 2:
        raise DataError(f"{path} needs a 2-D array of at least two columns (features, then the label), "
                        f"got shape {getattr(table, 'shape', '?')}")
    return table[:, :-1], table[:, -1], None


def _read_csv(path: Path):
    """Numbers separated by commas; the first line may be a header. Rows are numbered as the
    file's lines (1-based, header and blank lines counted) so they match what an editor shows."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataError(f"cannot read {path}: it is not a text file") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {_reason(e)}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if lines and not _all_numbers(lines[0][1]):
        lines = lines[1:]                       # a header: the one line that is not numbers
    if not lines:
        raise DataError(f"{path} has no rows of numbers")
    width = lines[0][1].count(",") + 1
    for n, line in lines:
        if line.count(",") + 1 != width:
            raise DataError(f"{path}: row {n} has {line.count(',') + 1} columns, row {lines[0][0]} has {width}")
    if width < 2:
        raise DataError(f"{path} needs at least two columns (features, then the label)")
    try:
        table = np.loadtxt([line for _, line in lines], delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError:
        n, col, cell = _first_non_number(lines)
        raise DataError(f"cannot read {path}: row {n}, column {col}: {cell!r} is not a number") from None
    numbers = [n for n, _ in lines]
    return table[:, :-1], table[:, -1], lambda i: numbers[i]


def _all_numbers(line: str) -> bool:
    try:
        [float(cell) for cell in line.split(",")]
        return True
    except ValueError:
        return False


def _first_non_number(lines):
    for n, line in lines:
        for col, cell in enumerate(line.split(","), start=1):
            try:
                float(cell)
            except ValueError:
                return n, col, cell.strip()
    return lines[0][0], 1, lines[0][1]


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split()) or "the file is damaged"
    return f"{type(e).__name__}: {text}" if not isinstance(e, (OSError, ValueError)) else text


# ---- minibatches -------------------------------------------------------------------------

def minibatches(arrays: Sequence[np.ndarray], batch_size: int, shuffle: bool = True, seed: int = 0,
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

def add_gaussian_noise(x: np.ndarray, std: float = 0.05, seed: int = 0, clip: tuple | None = None) -> np.ndarray:
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
