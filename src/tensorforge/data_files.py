"""Users' data files: read a .npz, .npy or .csv, check it, and turn its labels into class numbers.

``read_file`` reads a file as it is (features and labels, numbers or words) and refuses what
would break training later (non-finite features, ragged rows, a damaged file) with a
:class:`DataError` naming the file, the row and the column. Rows are numbered as a user counts
them: sample i of a .npz/.npy is "row i+1"; a CSV row is named by its line in the file (what an
editor shows, header and blank lines counted) and its data row (header left out), because both
ways of counting are common and one alone is off by one for half of the readers.

``encode_labels`` maps labels to the class numbers 0..C-1 a classifier needs, keeping the
original values so that predictions can be mapped back: words ("cat", "dog") and numbers that
are not already 0..C-1 (1-based labels, codes with gaps) are encoded with scikit-learn's
``LabelEncoder``, with a note saying so; numbers with gaps must still pass ``check_labels``
(a stray 10**12 among 0, 1, 2 is a typo more often than a class). ``load_file`` (the old entry
point) accepts only labels that already are class numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["DataError", "MAX_CLASSES", "Table", "Labels", "read_file", "load_file", "encode_labels",
           "check_features", "check_labels", "sniff_delimiter"]

# more classes than this (or than 10 per sample) is a mistake in the labels, not a data set:
# the output layer would have one row per class
MAX_CLASSES = 100_000


class DataError(ValueError):
    """A data file cannot be read or holds data that cannot be trained on; the message names
    the file and, where there is one, the row and column."""


@dataclass
class Table:
    """A data file as read: features (N, ...) as numbers, labels (N,) as numbers or words (None when
    the file has none), and ``row(i)``: how the file names sample i ("row 3", "line 4 (data row 3)")."""
    x: np.ndarray
    y: np.ndarray | None
    row: Callable[[int], str]


@dataclass
class Labels:
    """Class numbers 0..C-1 (int64), the original label of each class (``classes[k]``), and a note
    for the user when the labels were re-numbered (None when they already were 0..C-1)."""
    y: np.ndarray
    classes: np.ndarray
    note: str | None = None


def _sample_row(i: int) -> str:
    return f"row {int(i) + 1}"


# ---- reading -------------------------------------------------------------------------------

def read_file(path, delimiter: str | None = None, labels: bool = True) -> Table:
    """The features and labels of a .npz (arrays "x" and "y"), .npy (2-D, last column the label)
    or .csv (last column the label, an optional header line; ``delimiter`` None: "," unless the
    first line has only ";" or tabs). ``labels=False``: the file may hold features only (a .npz
    without "y"; a .npy/.csv whose columns are all features). Features are checked (finite
    numbers); labels are returned as read."""
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
    if path.suffix.lower() == ".csv":
        x, y, row = _read_csv(path, delimiter, labels)
    else:
        x, y, row = kinds[path.suffix.lower()](path, labels)
    if x.ndim < 1 or (y is not None and len(x) != len(y)) or len(x) < (2 if labels else 1):
        raise DataError(f"{path}: x has {len(x) if x.ndim else 0} rows and y has {0 if y is None else len(y)}; "
                        f"need as many, at least 2")
    return Table(check_features(x, path, row), y, row)


def load_file(path, delimiter: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int64) from a data file whose labels are class numbers 0, 1, 2, ...
    (see :func:`read_file`; other labels: :func:`encode_labels`)."""
    table = read_file(path, delimiter)
    return table.x, check_labels(table.y, path, table.row)


def check_features(x, where, row=None) -> np.ndarray:
    """``x`` as float32, refusing non-numbers and NaN/inf (named by row and column, 1-based;
    ``row(i)`` names sample i as the file shows it)."""
    row = row or _sample_row
    x = np.asarray(x)
    if x.dtype.kind not in "biuf" or x.ndim == 0:
        raise DataError(f"{where}: features must be rows of numbers, not {x.dtype} of shape {x.shape}")
    with np.errstate(over="ignore"):
        x32 = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(x32.reshape(len(x32), -1)))
    if len(bad):
        r, col = bad[0]
        value = x.reshape(len(x), -1)[r, col]
        what = value if not np.isfinite(value) else f"{value} (too large for float32)"
        raise DataError(f"{where}: {row(r)}, column {col + 1}: the feature is {what}; "
                        f"features must be finite numbers")
    return x32


def check_labels(y, where, row=None) -> np.ndarray:
    """``y`` as int64 class labels 0..C-1, refusing non-integers, negatives and absurd class counts
    (more than MAX_CLASSES or than 10 per sample) before anything is sized by them."""
    row = row or _sample_row
    y = _numeric_labels(y, where, row)
    limit = min(MAX_CLASSES, 10 * len(y))
    top = int(np.argmax(y)) if len(y) else 0
    if len(y) and y[top] + 1 > limit:
        raise DataError(f"{where}: {row(top)}: the label {y[top]:.0f} would make "
                        f"{y[top] + 1:.0f} classes for {len(y)} samples (at most {limit}); labels are "
                        f"class numbers 0, 1, 2, ...")
    return y.astype(np.int64)


def _numeric_labels(y, where, row) -> np.ndarray:
    """Numeric labels that are non-negative integers (refused with the row otherwise)."""
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        raise DataError(f"{where}: labels must be one integer class per row (got {y.dtype} of shape {y.shape})")
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)) | (y < 0)) if y.dtype.kind == "f" \
        else np.flatnonzero(y < 0)
    if len(bad):
        raise DataError(f"{where}: {row(bad[0])}: the label {y[bad[0]]} is not a "
                        f"non-negative integer class or a word (labels are class numbers 0, 1, 2, ... "
                        f"or names such as 'cat')")
    return y


# ---- labels to class numbers -------------------------------------------------------------------

def encode_labels(y, where, row=None) -> Labels:
    """Class numbers 0..C-1 for labels that are words or numbers (see the module docstring)."""
    from sklearn.preprocessing import LabelEncoder
    row = row or _sample_row
    y = np.asarray(y)
    if y.ndim == 1 and y.dtype.kind in "USO":
        y = y.astype(str)
        blank = np.flatnonzero(np.char.str_len(np.char.strip(y)) == 0)
        if len(blank):
            raise DataError(f"{where}: {row(blank[0])}: the label is empty")
        _check_class_count(len(np.unique(y)), len(y), where)
        enc = LabelEncoder().fit(y)
        classes = enc.classes_
        shown = ", ".join(map(str, classes[:6])) + (", ..." if len(classes) > 6 else "")
        return Labels(enc.transform(y).astype(np.int64), classes,
                      f"labels are words: {len(classes)} classes ({shown})")
    y = _numeric_labels(y, where, row).astype(np.int64)
    values = np.unique(y)
    if len(values) and values[0] == 0 and values[-1] == len(values) - 1:
        return Labels(y, values)
    contiguous = len(values) and values[-1] - values[0] == len(values) - 1
    if contiguous:          # 1-based labels, or any run of consecutive numbers
        note = f"labels {values[0]}..{values[-1]} are taken as classes 0..{len(values) - 1}"
    else:                   # gaps: codes are fine, but a stray 10**12 is a typo (check_labels says so)
        check_labels(y, where, row)
        note = (f"the {len(values)} label values ({', '.join(map(str, values[:6]))}"
                f"{', ...' if len(values) > 6 else ''}) are taken as classes 0..{len(values) - 1}")
    _check_class_count(len(values), len(y), where)
    return Labels(LabelEncoder().fit_transform(y).astype(np.int64), values, note)


def _check_class_count(classes: int, samples: int, where) -> None:
    limit = min(MAX_CLASSES, 10 * samples)
    if classes > limit:
        raise DataError(f"{where}: {classes} different labels for {samples} samples (at most {limit})")


# ---- file kinds ----------------------------------------------------------------------------------

def _read_npz(path: Path, labels: bool):
    try:
        f = np.load(path, allow_pickle=False)
    except Exception as e:      # zip, zlib, header and I/O errors of a damaged file all end here
        raise DataError(f"cannot read {path} as a .npz: {_reason(e)}") from None
    if not isinstance(f, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds one array, not the arrays 'x' and 'y' of a .npz")
    try:
        with f:
            if "x" not in f or ("y" not in f and labels):
                has = ", ".join(f.files) or "no arrays"
                raise DataError(f"{path} must hold arrays 'x' and 'y' (has {has})")
            return f["x"], (f["y"] if "y" in f else None), _sample_row
    except DataError:
        raise
    except Exception as e:      # zip, zlib, header and I/O errors of a damaged file all end here
        raise DataError(f"cannot read {path} as a .npz: {_reason(e)}") from None


def _read_npy(path: Path, labels: bool):
    try:
        table = np.load(path, allow_pickle=False)
    except Exception as e:
        raise DataError(f"cannot read {path} as a .npy: {_reason(e)}") from None
    if not isinstance(table, np.ndarray) or table.ndim != 2 or table.shape[1] < (2 if labels else 1):
        raise DataError(f"{path} needs a 2-D array of at least two columns (features, then the label), "
                        f"got shape {getattr(table, 'shape', '?')}")
    if not labels:
        return table, None, _sample_row
    return table[:, :-1], table[:, -1], _sample_row


def sniff_delimiter(first_line: str) -> str:
    """"," unless the line has no comma but semicolons (or tabs): the usual CSV dialects."""
    if "," in first_line:
        return ","
    for candidate in (";", "\t"):
        if candidate in first_line:
            return candidate
    return ","


def _read_csv(path: Path, delimiter: str | None, labels: bool):
    """Numbers (the label may be a word) separated by ``delimiter``; the first line may be a header."""
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise DataError(f"cannot read {path}: it is not a text file") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {_reason(e)}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"{path} has no rows of numbers")
    sep = delimiter or sniff_delimiter(lines[0][1])
    header = not _all_numbers(lines[0][1].split(sep)[:-1] if labels else lines[0][1].split(sep))
    if header:
        lines = lines[1:]                       # a header: its feature cells are not numbers
    if not lines:
        raise DataError(f"{path} has no rows of numbers")
    first_data = lines[0][0]

    def row(i: int) -> str:
        line = lines[i][0]
        return f"row {line}" if line == i + 1 else f"line {line} (data row {i + 1})"

    cells = [[c.strip() for c in line.split(sep)] for _, line in lines]
    width = len(cells[0])
    for i, row_cells in enumerate(cells):
        if len(row_cells) != width:
            raise DataError(f"{path}: {row(i)} has {len(row_cells)} columns, line {first_data} has {width}")
    if width < (2 if labels else 1):
        hint = "" if delimiter else f"; if its columns are separated by something else than {sep!r}, " \
                                     f"give --delimiter"
        raise DataError(f"{path} needs at least two columns (features, then the label){hint}")
    n_features = width - 1 if labels else width
    x = np.empty((len(cells), n_features), np.float64)
    for i, row_cells in enumerate(cells):
        for j in range(n_features):
            try:
                x[i, j] = float(row_cells[j])
            except ValueError:
                raise DataError(f"cannot read {path}: {row(i)}, column {j + 1}: {row_cells[j]!r} is not a "
                                f"number") from None
    if not labels:
        return x, None, row
    y_text = [row_cells[-1] for row_cells in cells]
    return x, _label_column(y_text), row


def _label_column(cells: list[str]) -> np.ndarray:
    """The label column as numbers if every cell is one, else as words."""
    try:
        return np.array([float(c) for c in cells], np.float64)
    except ValueError:
        return np.array(cells, dtype=str)


def _all_numbers(cells) -> bool:
    try:
        [float(cell) for cell in cells]
        return True
    except ValueError:
        return False


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split()) or "the file is damaged"
    return f"{type(e).__name__}: {text}" if not isinstance(e, (OSError, ValueError)) else text
