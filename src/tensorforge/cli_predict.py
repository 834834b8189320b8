"""``tensorforge predict MODEL --data FILE``: run a model saved by ``train --save`` on new data.

The data goes through what the model was trained with (``cli_model``): the same columns (a file
may also hold the label column: then the accuracy on those labels is reported too), the same
scaling, the same sample shape; the predictions come back as the original labels (words stay
words, 1-based labels stay 1-based). Output: one line per row, "label" (with ``--proba``, then
one probability column per class), to stdout or to ``--out FILE`` (CSV, written atomically).
"""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from . import cli_data
from ._fileio import atomic_write
from .cli_errors import CliError

PREDICT_BATCH = 4096        # rows per call: at most two compiled batch shapes (full and last)


def predict(model_path: str, data_path: str, out: str | None, proba: bool, backend: str,
            delimiter: str | None) -> None:
    from .cli_model import ModelError, load_model
    try:
        model = load_model(model_path)
    except ModelError as e:
        raise click.BadParameter(str(e), param_hint="MODEL") from None
    x, labels = _read_rows(data_path, model.features, delimiter)
    x = cli_data.reshape(cli_data.apply_scaler(model.scaler, x.reshape(len(x), -1)), model.sample_shape)
    probabilities = _probabilities(model, x, backend)
    predicted = model.classes[np.argmax(probabilities, axis=1)]
    text = _csv(predicted, probabilities if proba else None, model.classes)
    if out is None:
        click.echo(text, nl=False)
    else:
        try:
            atomic_write(out, text.encode())
        except OSError as e:
            raise CliError(f"cannot write {out}: {e}") from None
        click.echo(f"wrote {out} ({len(predicted)} predictions)")
    if labels is not None:
        right = np.array([_same(p, t) for p, t in zip(predicted, labels)])
        click.echo(f"accuracy on the {len(labels)} labels in {Path(data_path).name}: {right.mean():.4f}",
                   err=out is None)


def _read_rows(path: str, features: int, delimiter: str | None):
    """(x, labels or None): the file's rows; a column beyond the model's features is the label."""
    from . import data_files
    try:
        table = data_files.read_file(path, delimiter, labels=False)
        if int(np.prod(table.x.shape[1:])) == features and table.y is None:
            return table.x, None
    except data_files.DataError as first:
        error = first
    else:
        error = None
    try:
        table = data_files.read_file(path, delimiter, labels=True)
    except data_files.DataError as e:
        raise click.BadParameter(str(error or e), param_hint="--data") from None
    if int(np.prod(table.x.shape[1:])) != features:
        raise click.BadParameter(f"{path}: rows of {int(np.prod(table.x.shape[1:])) + 1} values; the model takes "
                                 f"{features} features (and a label column may follow)", param_hint="--data")
    return table.x, table.y


def _probabilities(model, x: np.ndarray, backend: str) -> np.ndarray:
    from .compile import compile as tg_compile
    fn = tg_compile(list(model.graph.inputs), list(model.graph.outputs), backend=backend, name="predict")
    logits = np.concatenate([np.asarray(fn(x[i:i + PREDICT_BATCH])[0], np.float64)
                             for i in range(0, len(x), PREDICT_BATCH)])
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _label_text(value) -> str:
    """A label as the file would write it: 2.0 and 2 are both "2"."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _same(predicted, truth) -> bool:
    return _label_text(predicted) == _label_text(truth)


def _csv(predicted, probabilities, classes) -> str:
    header = ["label"] + ([f"p_{_label_text(c)}" for c in classes] if probabilities is not None else [])
    lines = [",".join(header)]
    for i, label in enumerate(predicted):
        cells = [_label_text(label)]
        if probabilities is not None:
            cells += [f"{p:.6f}" for p in probabilities[i]]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"
