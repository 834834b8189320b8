"""``tensorforge train``'s data: built-in sets and users' files, ready for a model.

The steps, in order (each one a function below):

1. read: a built-in set (digits, digits-images, xor, spirals) or a user's .npz/.npy/.csv
   (``--delimiter``), whose labels become class numbers 0..C-1 (words and 1-based labels are
   encoded, with a note; ``Prepared.classes`` keeps the original labels for ``predict``);
2. split: a seeded, stratified train/test split (every class keeps its share in both parts);
3. scale: ``--scale standard`` fits a StandardScaler on the training part only (the test part
   and later predictions reuse its mean and scale); ``auto`` scales users' files and leaves the
   built-in sets, which are already in [0, 1] or [-1, 1], as they are;
4. shape: rows for the MLP, (N, 1, H, W) images for the CNN ((N, H, W) arrays get their channel;
   rows become images only with ``--image-shape HxW`` or, when their length is a square of at
   least 4x4, with a note), or the saved graph's input shape.

Everything a trained model needs to treat new data the same way (classes, scaler, sample shape)
is in :class:`Prepared` and is saved with the model (``cli_model``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

DATASETS = ("digits", "digits-images", "xor", "spirals")
SCALES = ("auto", "standard", "none")
MIN_IMAGE_SIDE = 4       # below this a "square" row is more likely a few features than a picture


@dataclass
class Prepared:
    """The data of one run, ready for the model, and how it was prepared."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    classes: np.ndarray
    is_file: bool = False
    scaler: dict | None = None                  # {"mean": [...], "scale": [...]} per feature
    notes: list[str] = field(default_factory=list)
    image_hw: tuple[int, int] | None = None     # the picture size of a built-in image set

    @property
    def n_classes(self) -> int:
        return len(self.classes)


# ---- 1. read ------------------------------------------------------------------------------------

def load(name: str, seed: int, delimiter: str | None) -> Prepared:
    """A built-in set (already split) or a user's file split by :func:`stratified_split`."""
    from . import data, data_files
    if name in ("digits", "digits-images"):
        x_train, y_train, x_test, y_test = data.digits(flat=True, seed=seed)
        return Prepared(x_train, y_train, x_test, y_test, "digits", np.arange(10), image_hw=(8, 8))
    if name == "xor":
        x, y = data.xor()
        return Prepared(x, y, x, y, "xor", np.arange(2))
    if name == "spirals":
        x, y = data.two_spirals(n=200, noise=0.0, seed=seed)
        return Prepared(*stratified_split(x, y, seed), "two spirals", np.arange(2))
    path = Path(name)
    if path.suffix.lower() not in (".npz", ".npy", ".csv") and not path.exists():
        raise click.BadParameter(f"{name!r} is neither a data set ({', '.join(DATASETS)}) nor a file",
                                 param_hint="--data")
    try:
        table = data_files.read_file(path, delimiter)
        labels = data.encode_labels(table.y, path, table.row)
    except data.DataError as e:
        raise click.BadParameter(str(e), param_hint="--data") from None
    prepared = Prepared(*stratified_split(table.x, labels.y, seed), path.name, labels.classes, is_file=True)
    if labels.note:
        prepared.notes.append(labels.note)
    return prepared


# ---- 2. split ------------------------------------------------------------------------------------

def stratified_split(x, y, seed: int, test_fraction: float = 0.25):
    """(x_train, y_train, x_test, y_test): a seeded split keeping each class's share in both parts
    (plain random when some class has a single sample); sets too small to split are used for both."""
    from sklearn.model_selection import train_test_split
    n = len(x)
    n_test = int(round(n * test_fraction))
    if n_test < 1 or n - n_test < 1 or n < 8:
        return x, y, x, y
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and n_test >= np.count_nonzero(counts) else None
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=n_test, random_state=seed,
                                                        stratify=stratify)
    return x_train, y_train, x_test, y_test


def validation_split(x, y, seed: int):
    """(x_train, y_train, x_val, y_val): a sixth of the training set, stratified, for monitoring and
    early stopping; sets too small for that (xor) validate on the training set itself."""
    if len(x) // 6 < 1 or len(x) < 8:
        return x, y, x, y
    return stratified_split(x, y, seed + 1, test_fraction=1 / 6)


# ---- 3. scale -------------------------------------------------------------------------------------

def scale(prepared: Prepared, how: str) -> Prepared:
    """Standardise the features with the training part's mean and scale (see the module docstring)."""
    if how == "none" or (how == "auto" and not prepared.is_file):
        return prepared
    from sklearn.preprocessing import StandardScaler
    shape = prepared.x_train.shape[1:]
    scaler = StandardScaler().fit(prepared.x_train.reshape(len(prepared.x_train), -1))
    prepared.scaler = {"mean": scaler.mean_.tolist(), "scale": scaler.scale_.tolist()}
    prepared.x_train = apply_scaler(prepared.scaler, prepared.x_train).reshape((-1,) + shape)
    prepared.x_test = apply_scaler(prepared.scaler, prepared.x_test).reshape((-1,) + shape)
    return prepared


def apply_scaler(scaler: dict | None, x: np.ndarray) -> np.ndarray:
    """(x - mean) / scale per feature (features flattened), as float32; x itself when no scaler."""
    if scaler is None:
        return x
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    mean, std = np.asarray(scaler["mean"]), np.asarray(scaler["scale"])
    if flat.shape[1] != len(mean):
        raise click.BadParameter(f"the data has {flat.shape[1]} features per sample, the model was trained "
                                 f"on {len(mean)}", param_hint="--data")
    return ((flat - mean) / np.where(std > 0, std, 1.0)).astype(np.float32).reshape(x.shape)


# ---- 4. shape -------------------------------------------------------------------------------------

def parse_image_shape(text: str | None) -> tuple[int, int] | None:
    """"8x8" -> (8, 8)."""
    if text is None:
        return None
    parts = text.lower().replace("*", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not HxW (for example 8x8)", param_hint="--image-shape") from None
    if h < 1 or w < 1:
        raise click.BadParameter(f"{text!r}: both sides must be at least 1", param_hint="--image-shape")
    return h, w


def sample_shape(model: str, in_shape, features_shape: tuple, image_shape, notes: list) -> tuple:
    """The shape of one sample as the model takes it (see the module docstring)."""
    features = int(np.prod(features_shape))
    if model == "mlp":
        return (features,)
    if model == "cnn":
        return _image_shape(features_shape, image_shape, notes)
    want = tuple(in_shape)
    if None not in want and int(np.prod(want)) == features:
        return want
    raise click.BadParameter(f"the saved graph takes samples of shape {want}, the data has {features_shape}",
                             param_hint="--data")


def _image_shape(features_shape: tuple, image_shape, notes: list) -> tuple:
    features = int(np.prod(features_shape))
    if image_shape is not None:
        h, w = image_shape
        if h * w != features:
            raise click.BadParameter(f"--image-shape {h}x{w} holds {h * w} values, a sample has {features}",
                                     param_hint="--image-shape")
        return (1, h, w)
    if len(features_shape) == 3 and features_shape[0] == 1:
        return features_shape                      # (N, 1, H, W) already
    if len(features_shape) == 2:
        return (1,) + tuple(features_shape)       # (N, H, W): one channel
    if len(features_shape) == 1:
        side = int(round(math.sqrt(features)))
        if side * side == features and side >= MIN_IMAGE_SIDE:
            notes.append(f"the cnn reads each row of {features} features as a {side}x{side} image "
                         f"(--image-shape to choose another)")
            return (1, side, side)
        raise click.BadParameter(f"the cnn needs images; rows of {features} features are not square images "
                                 f"of at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}: give --image-shape HxW, or "
                                 f"use --model mlp", param_hint="--data")
    raise click.BadParameter(f"the cnn needs (N, 1, H, W) or (N, H, W) images, got samples of shape "
                             f"{features_shape}", param_hint="--data")


def reshape(x: np.ndarray, shape: tuple) -> np.ndarray:
    return np.ascontiguousarray(x.reshape((len(x),) + tuple(shape)))
