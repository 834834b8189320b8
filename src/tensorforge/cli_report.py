"""``tensorforge train``'s run and report: fit with its failures as one line, then the summary.

A run that diverges or is interrupted (Ctrl-C) still gets its summary (epochs run, the best
validation epoch, train and test loss/accuracy of the parameters the model ended with: the
best finite ones after a divergence, the ones so far after Ctrl-C); then the command fails
with one line saying what happened (exit code 2, or 130 for Ctrl-C).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import click
import numpy as np

from .cli_errors import INTERRUPTED, CliError


@dataclass
class Run:
    """What fit left: its history (the epochs completed so far if it was interrupted)."""
    history: object
    interrupted: bool = False


def run_fit(fit, net, x_train, y_train, fit_kwargs: dict, checkpoint_dir) -> Run:
    """fit(net, x_train, y_train, **fit_kwargs) with its errors as one line and Ctrl-C as a stop."""
    from .export import LoadError
    from .export.checkpoint import CheckpointError
    from .train import History
    seen = {}

    def keep_history(epoch, history):     # Ctrl-C leaves no return value: keep a hold of the history
        seen["history"] = history

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # a divergence is reported once, by fail_if_stopped, not as a warning as well
            warnings.filterwarnings("ignore", message="fit: training diverged", category=RuntimeWarning)
            return Run(fit(net, x_train, y_train, on_epoch_end=keep_history, **fit_kwargs))
    except KeyboardInterrupt:
        history = seen.get("history") or History()
        return Run(_completed_epochs(history), interrupted=True)
    except (LoadError, CheckpointError) as e:
        raise CliError(f"Invalid value for '--checkpoint-dir': cannot resume from {checkpoint_dir}: {e}") from None
    except OSError as e:
        if checkpoint_dir is None:
            raise
        raise CliError(f"Invalid value for '--checkpoint-dir': cannot save a checkpoint in {checkpoint_dir}: "
                       f"{e}") from None
    except ValueError as e:       # ShapeError and InputError: the data does not fit the model
        raise CliError(f"the data does not fit the model: {e}") from None


def _completed_epochs(history):
    """The history of the completed epochs: Ctrl-C during an epoch's bookkeeping can leave its first
    records (loss, accuracy) appended without the rest (val_loss), which no table or plot could line
    up. "time" is the last record fit appends for an epoch, so its length counts complete ones."""
    epochs = len(history.get("time", []))
    for key, values in history.items():
        if isinstance(values, list) and len(values) > epochs:
            history[key] = values[:epochs]
    if history.best_epoch is not None and history.best_epoch >= epochs:     # set by the cut-off epoch
        watched = history.get(history.monitor, [])
        finite = [i for i, v in enumerate(watched) if math.isfinite(v)]
        history.best_epoch = min(finite, key=lambda i: watched[i]) if finite else None
    return history


def check_resumable(checkpoint_dir, optimizer=None, optimizer_name: str | None = None) -> None:
    """Read the checkpoint ``--resume`` would continue from now, so that a damaged one is one clear
    line whatever the loader raises (fit reads it again: checkpoints are small next to a run), and
    one written with another optimizer is named as such (not as missing state variables)."""
    from .export import checkpoint as ckpt
    arrays = None
    try:
        if ckpt.latest_checkpoint(checkpoint_dir) is not None:
            _, arrays = ckpt.load_checkpoint(checkpoint_dir)
    except Exception as e:
        text = str(e) if isinstance(e, (ValueError, OSError)) else f"{type(e).__name__}: {e}"
        raise CliError(f"Invalid value for '--checkpoint-dir': cannot resume from {checkpoint_dir}: "
                       f"{text}") from None
    if arrays is not None and optimizer is not None:
        _check_same_optimizer(checkpoint_dir, arrays, optimizer, optimizer_name)


def _check_same_optimizer(checkpoint_dir, arrays: dict, optimizer, name: str | None) -> None:
    """The optimizer state a checkpoint holds ("<tag>/step", "<param>/<tag>_<slot>") must be the one
    this run's optimizer keeps: resuming Adam's run with SGD cannot continue it."""
    tags = sorted({k.split("/")[0] for k in arrays if k.count("/") == 1 and k.endswith("/step")})
    tag = getattr(optimizer, "tag", None)
    slots = set(optimizer._slots()) if hasattr(optimizer, "_slots") else None
    saved_slots = {k.rsplit("/", 1)[1][len(tag) + 1:] for k in arrays
                   if tag and "/" in k and k.rsplit("/", 1)[1].startswith(tag + "_")}
    if tag is None or (tag in tags and (slots is None or saved_slots == slots)):
        return
    was = ", ".join(tags) or "another optimizer"
    if tag in tags:
        was = f"{tag} with other settings (state {', '.join(sorted(saved_slots)) or 'none'})"
    raise CliError(f"Invalid value for '--checkpoint-dir': the checkpoint in {checkpoint_dir} was written by "
                   f"{was}, this run uses {name or tag}: resume with the optimizer options of that run, "
                   f"or start a new --checkpoint-dir")


def final_results(evaluate, net, train_set, test_set, backend) -> tuple[dict, dict]:
    """evaluate() on the training and the test set (loss and accuracy)."""
    with np.errstate(all="ignore"):
        return (evaluate(net, *train_set, backend=backend), evaluate(net, *test_set, backend=backend))


def print_summary(hist, train_result: dict, test_result: dict) -> None:
    line = f"epochs run: {hist.epochs}"
    if hist.epochs:
        line += f", final train loss {hist['loss'][-1]:.4f}"
    if getattr(hist, "diverged", False):
        kept = f"epoch {hist.best_epoch + 1}" if hist.best_epoch is not None else "the start of the run"
        line += f" (diverged; the parameters of {kept} are kept)"
    click.echo(line)
    click.echo(summary_table(hist, train_result, test_result))


def fail_if_stopped(run: Run) -> None:
    """After the summary: the one line (and exit code) of a run that did not finish."""
    hist = run.history
    if run.interrupted:
        raise CliError(f"interrupted during epoch {hist.epochs + 1}; the summary is of the parameters so far",
                       exit_code=INTERRUPTED)
    if getattr(hist, "diverged", False):
        raise CliError(f"training diverged at {hist.divergence()}; try a smaller --lr")


def summary_table(hist, train_result, test_result) -> str:
    """The final table: loss and accuracy on train / validation (best epoch) / test."""
    rows = [("train", train_result["loss"], train_result["accuracy"])]
    best = _best_finite_epoch(hist)
    if best is not None:
        rows.append((f"validation (epoch {best + 1})", hist["val_loss"][best], hist["val_accuracy"][best]))
    rows.append(("test", test_result["loss"], test_result["accuracy"]))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'set':<{width}}  {'loss':>8}  {'accuracy':>8}", f"{'-' * width}  {'-' * 8}  {'-' * 8}"]
    lines += [f"{name:<{width}}  {loss:8.4f}  {acc:8.4f}" for name, loss, acc in rows]
    return "\n".join(lines)


def _best_finite_epoch(hist) -> int | None:
    if not hist.get("val_loss"):
        return None
    best = hist.best_epoch if hist.best_epoch is not None else len(hist["val_loss"]) - 1
    return best if math.isfinite(hist["val_loss"][best]) else None


def plot_history(hist, path: str) -> None:
    """Loss (train, validation) and accuracy curves per epoch, side by side, in one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .bench import _save_figure
    epochs = np.arange(1, len(hist["loss"]) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, ax in (("loss", ax_loss), ("accuracy", ax_acc)):
        ax.plot(epochs, hist[key], marker="o", label="train")
        if "val_" + key in hist:
            ax.plot(epochs, hist["val_" + key], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        _save_figure(fig, path)
    except OSError as e:
        raise CliError(f"cannot write {path}: {e}") from None
    finally:
        plt.close(fig)
