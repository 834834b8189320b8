"""``tg.train``: fit a ``tg.nn`` model with minibatch training, and evaluate or predict with it.

``fit`` builds ONE graph per call:

    x, y placeholders (None, ...)                      the batch dimension is bound per call
    model(x, training=True)  -> loss (+ penalty)       -> optimizer updates -> train_step (compiled)
    model(x, training=False) -> outputs, per-sample loss                   -> eval function (compiled)

Both compiled functions share the model's parameters (they live in the graph), and
both use the ``backend`` asked for (by default "llvm", native code, when llvmlite works
here, else the NumPy interpreter: see ``default_backend``; "interp" stays the reference).
Then it runs epochs of shuffled (seeded) minibatches,
validates after each epoch, steps the learning-rate schedule, stops early, and
returns a :class:`History`. Losses, metrics, ``predict`` and ``evaluate`` are in train_eval.py.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

from . import distributed as _distributed
from . import ops
from ._typing import Array
from .compile import CompiledFunction
from .compile import compile as _compile
from .graph import Graph, Tensor, placeholder
from .train_callbacks import Callback, CallbackList, StopTraining, TrainInfo, epoch_limit as _epoch_limit
# losses, metrics, predict and evaluate live in train_eval.py; these names stay importable from here
from .train_eval import (BCE_LOSSES, CLASSIFICATION_LOSSES, MSE_LOSSES, Loss, Metric,  # noqa: F401
                         _as_inputs, _as_targets, _Evaluator, _evaluator_cache, _loss_key, _loss_tensor,
                         _metric_fns, _per_sample, accuracy, default_backend, evaluate, predict)

if TYPE_CHECKING:
    from .nn.module import Module
    from .optim.base import Optimizer
    from .optim.schedules import LRScheduler

__all__ = ["fit", "evaluate", "predict", "default_backend", "History", "digits_mlp", "accuracy", "StopTraining",
           "TrainInfo"]


class History(dict[str, list[float]]):
    """Per-epoch records ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"), one entry per
    epoch completed, plus ``best_epoch`` (0-based, by the monitored loss), ``stopped_early``,
    ``diverged`` (a non-finite loss stopped the run; ``diverged_epoch`` and ``diverged_step``, both
    1-based, say where, the step being None when the validation loss was the first non-finite one,
    and ``diverged_loss`` the value), ``monitor`` (the key watched), and the ``graph`` and compiled
    ``train_step``/``eval_step`` for inspection. ``steps`` counts the optimizer steps taken,
    ``stop_reason`` says why training ended before ``epochs`` ("early_stopping", "steps",
    "callback", "diverged" or None), and ``evaluations`` lists the ``eval_every`` results
    (dicts with "step", "epoch" and "val_*" entries)."""

    model: Module     # set by digits_mlp only (the model it trained)

    def __init__(self) -> None:
        super().__init__()
        self.best_epoch: int | None = None
        self.stopped_early = False
        self.diverged = False
        self.diverged_epoch: int | None = None
        self.diverged_step: int | None = None
        self.diverged_loss: float | None = None
        self.monitor = "loss"
        self.steps = 0
        self.stop_reason: str | None = None
        self.evaluations: list[dict[str, Any]] = []
        self.graph: Graph | None = None
        self.train_step: CompiledFunction[list[Array]] | None = None
        self.eval_step: CompiledFunction[list[Array]] | None = None

    @property
    def epochs(self) -> int:
        return len(self.get("loss", []))

    def append(self, key: str, value: float) -> None:
        self.setdefault(key, []).append(float(value))

    def divergence(self) -> str | None:
        """Where the run diverged, in words ("epoch 3 step 7: loss is nan"), or None."""
        if not self.diverged:
            return None
        where = f"epoch {self.diverged_epoch}" + (f" step {self.diverged_step}" if self.diverged_step else "")
        what = "loss" if self.diverged_step else "validation loss"
        return f"{where}: {what} is {self.diverged_loss}"

    def _mark_diverged(self, epoch: int, step: int | None, value: float) -> None:
        self.diverged, self.diverged_epoch, self.diverged_step, self.diverged_loss = True, epoch, step, value

    def __repr__(self) -> str:
        last = {k: round(v[-1], 4) for k, v in self.items() if v}
        return (f"<History {self.epochs} epochs, best_epoch={self.best_epoch}, "
                f"stopped_early={self.stopped_early}, last={last}>")


# ---- fit ---------------------------------------------------------------------------------------

def _steps_on_metric(schedule: LRScheduler) -> bool:
    """ReduceLROnPlateau-like schedules take the monitored loss in step()."""
    try:
        from .optim.schedules import ReduceLROnPlateau
        if isinstance(schedule, ReduceLROnPlateau):
            return True
    except ImportError:
        pass
    return type(schedule).__name__ == "ReduceLROnPlateau"


def _step_on_metric(schedule: LRScheduler, value: float) -> None:
    """Step a ReduceLROnPlateau-like schedule, whose step() takes the monitored value first."""
    step: Callable[..., None] = schedule.step
    step(value)


def _default_optimizer() -> Optimizer:
    from .optim import Adam
    return Adam(lr=1e-3)


def _snapshot(variables: Sequence[Tensor]) -> dict[int, np.ndarray]:
    return {t.id: np.array(t.value) for t in variables}


def _restore(variables: Sequence[Tensor], snap: dict[int, np.ndarray]) -> None:
    for t in variables:
        t.value = snap[t.id]


def _progress_bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, leave=False, unit="batch", dynamic_ncols=True)


def fit(model: Module, x_train: npt.ArrayLike, y_train: npt.ArrayLike, loss: Loss = "cross_entropy",
        optimizer: Optimizer | None = None, epochs: int | None = None, batch_size: int = 32,
        validation_data: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
        metrics: Iterable[Metric] | None = ("accuracy",), schedule: LRScheduler | None = None,
        early_stopping: int | None = None, restore_best: bool = True,
        penalty: Callable[[list[Tensor]], Tensor] | None = None, clip_norm: float | None = None,
        backend: str | None = None, seed: int = 0, progress: bool = True, verbose: bool = True,
        schedule_interval: str = "epoch", augment: Callable[[Array, int], npt.ArrayLike] | None = None,
        eval_batch_size: int | None = None, on_epoch_end: Callable[[int, History], object] | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None, resume: bool = False,
        sync_batch_norm: bool = False, shuffle: bool = True, drop_last: bool = False, steps: int | None = None,
        eval_every: int | None = None, callbacks: Callback | Iterable[Callback] | None = None,
        input_dtype: str | None = None) -> History:
    """Train ``model`` (a ``tg.nn`` module) on (x_train, y_train) and return a :class:`History`.

    loss: "cross_entropy" (integer labels, or one-hot float targets), "mse", "bce" (on logits),
        or a callable(outputs, targets) -> per-sample/per-element tensor or scalar.
    backend: "llvm", "interp" or "triton"; default: ``default_backend()`` ("llvm" where llvmlite works).
    optimizer: a ``tg.optim`` optimizer (default ``Adam(lr=1e-3)``). If it has ``take_snapshot``
        (SVRG), it is called at the start of every epoch with the whole training set.
    schedule: a ``tg.optim.schedules`` object stepped once per epoch after validation
        (``schedule_interval="batch"``: after every batch); ReduceLROnPlateau gets the monitored
        loss (validation loss if there is validation data, else the training loss).
    early_stopping: patience in epochs without improvement of the monitored loss; the parameters
        (and batch-norm statistics) of the best epoch are restored at the end when ``restore_best``.
    penalty: callable(params) -> scalar tensor added to the training loss (e.g.
        ``lambda ps: tg.nn.l2(ps, 1e-4)``); "loss" in the history includes it, "val_loss" does not.
    clip_norm: clip gradients by global norm.  augment: callable(x_batch, seed) -> x_batch.
    on_epoch_end: callable(epoch, history) called after each epoch's bookkeeping (and checkpoint).
    checkpoint_dir: save a checkpoint there after every epoch (parameters, optimizer and schedule
        state, epoch, RNG counter, shuffle state; JSON + npz, atomic; see ``tg.export.checkpoint``).
    resume: continue from the checkpoint in ``checkpoint_dir`` if there is one (same model
        architecture, optimizer and seed); the run ends as an uninterrupted one would.
    sync_batch_norm: under MPI, average the batch-norm running statistics over the ranks after
        every step (default: each rank keeps its own). See ``tg.distributed`` for MPI training.
    epochs: the number of epochs (default 10; with ``steps`` and no ``epochs``: as many as the
        step budget needs).
    shuffle: draw a new seeded order every epoch (default); False keeps the data's order.
    drop_last: skip the last, smaller batch of each epoch.
    steps: a budget of optimizer steps for the whole run; training stops after that many (mid-epoch
        if need be; the partial epoch is recorded). ``history.steps`` counts the steps taken.
    eval_every: also evaluate on ``validation_data`` every N steps; the results go to
        ``history.evaluations`` and to the callbacks (event "eval").
    input_dtype: the dtype of the input placeholder (default: the data's float dtype, other data
        becomes float32); "int64" keeps token indices integer for a model starting with an Embedding.
    callbacks: a callable or a list of them, called with a :class:`TrainInfo` after every step, every
        ``eval_every`` evaluation and every epoch; returning True or raising :class:`StopTraining`
        stops training after the current step (``history.stop_reason == "callback"``).

    Divergence: training stops at the first non-finite training loss (or validation loss, since the
    last update of an epoch is only seen there); the model gets back the parameters of its best
    epoch (or those it started with if none finished), ``history.diverged`` is set and a
    RuntimeWarning says where. The history holds the epochs completed before.

    Each call builds a new graph; the model starts from its current parameter values (see
    ``tg.nn.Module``) and its train()/eval() flags are left as they are (fit passes the mode
    explicitly). Afterwards ``predict``/``evaluate`` reuse this graph's evaluation function.
    """
    backend = default_backend(backend)
    if schedule_interval not in ("epoch", "batch"):
        raise ValueError(f"schedule_interval must be 'epoch' or 'batch', got {schedule_interval!r}")
    epoch_limit = _epoch_limit(epochs, steps)
    if eval_every is not None and (int(eval_every) < 1 or validation_data is None):
        raise ValueError(f"fit: eval_every needs validation_data and a step count >= 1, got eval_every="
                         f"{eval_every!r}" + (" without validation_data" if validation_data is None else ""))
    callbacks = CallbackList(callbacks)
    optimizer = optimizer if optimizer is not None else _default_optimizer()
    distributed = _distributed.init() > 1      # under mpiexec: data-parallel, rank 0 reports
    progress, verbose = progress and _distributed.is_main(), verbose and _distributed.is_main()
    x_train = _as_inputs(x_train, input_dtype)
    if len(x_train) == 0:
        raise ValueError("fit: the training set is empty")
    if drop_last and len(x_train) < batch_size * _distributed.size():
        raise ValueError(f"fit: drop_last=True with batch_size={batch_size} and {len(x_train)} training samples "
                         f"leaves no batch")
    if distributed and (not shuffle or drop_last):
        raise NotImplementedError("fit: shuffle=False and drop_last=True are not supported under MPI")

    graph = Graph("fit")
    x_ph = placeholder("x", (None,) + x_train.shape[1:], dtype=x_train.dtype.name, graph=graph)
    out_train = model(x_ph, training=True)
    y_train = _as_targets(y_train, loss, out_train.shape, x_train.dtype)
    if len(y_train) != len(x_train):
        raise ValueError(f"fit: x_train has {len(x_train)} samples but y_train has {len(y_train)}")
    y_ph = placeholder("y", (None,) + y_train.shape[1:], dtype=y_train.dtype.name, graph=graph)

    data_loss = _per_sample(_loss_tensor(loss, out_train, y_ph))
    objective = ops.mean(data_loss) if data_loss.shape else data_loss
    params = model.parameters(graph)
    if penalty is not None:
        objective = objective + penalty(params)
    updates = optimizer.updates(objective, params, clip_norm=clip_norm,
                                **({"data_parallel": True, "sync_batch_norm": sync_batch_norm}
                                   if distributed else {}))
    train_step = _compile([x_ph, y_ph], [objective, out_train], updates=updates, backend=backend,
                          name="train_step")

    evaluator = _Evaluator(model, x_ph, y_ph, loss, backend)
    base = (id(graph), x_train.shape[1:], x_train.dtype.name, str(backend))
    cache = _evaluator_cache(model, graph)
    cache[base + (None, None)] = evaluator  # so predict/evaluate after fit reuse this graph's functions
    cache[base + ((y_train.shape[1:], y_train.dtype.name), _loss_key(loss))] = evaluator

    metric_fns = _metric_fns(metrics, loss)
    if validation_data is not None:
        x_val = _as_inputs(validation_data[0]).astype(x_train.dtype, copy=False)
        y_val = _as_targets(validation_data[1], loss, out_train.shape, x_train.dtype)
    eval_bs = eval_batch_size or max(batch_size, 256)
    variables = model.variables(graph)

    history = History()
    history.graph, history.train_step, history.eval_step = graph, train_step, evaluator.eval_fn
    history.monitor = "val_loss" if validation_data is not None else "loss"
    best, best_snap, waited = math.inf, None, 0
    per_epoch = len(x_train) / (batch_size * _distributed.size())
    n_batches = math.floor(per_epoch) if drop_last else math.ceil(per_epoch)
    start_epoch = 0
    if resume:
        if checkpoint_dir is None:
            raise ValueError("fit: resume=True needs a checkpoint_dir")
        from .export import checkpoint as ckpt
        if ckpt.latest_checkpoint(checkpoint_dir) is not None:
            meta, arrays = ckpt.load_checkpoint(checkpoint_dir)
            start_epoch, best, waited, best_snap = ckpt.restore_training_state(
                graph, optimizer, schedule, history, meta, arrays, seed, variables)
            if verbose:
                print(f"resumed from {checkpoint_dir} after epoch {start_epoch}")

    # the parameters to fall back on if the run diverges: the best epoch's, else the starting ones
    finite_snap = best_snap if best_snap is not None else _snapshot(variables)
    history.steps = step = start_epoch * n_batches
    epochs_label = "?" if math.isinf(epoch_limit) else epoch_limit
    epoch = start_epoch - 1
    while not history.stop_reason and (epoch := epoch + 1) < epoch_limit:
        t0 = time.perf_counter()
        if hasattr(optimizer, "take_snapshot"):
            optimizer.take_snapshot([x_ph, y_ph], [x_train, y_train], batch_size=eval_bs, backend=backend)
        lr = float(optimizer.lr)
        bar = _progress_bar(n_batches, f"epoch {epoch + 1}/{epochs_label}", progress)
        total, seen, metric_sums = 0.0, 0, {name: 0.0 for name in metric_fns}
        first_bad = 0          # under MPI: this rank's first step with a non-finite loss
        batches = (_distributed.shard_minibatches(x_train, y_train, batch_size, seed, epoch) if distributed
                   else _minibatches(x_train, y_train, batch_size, seed, epoch, shuffle, drop_last))
        for i, (xb, yb) in enumerate(batches):
            if augment is not None:
                xb = np.asarray(augment(xb, seed * 1_000_003 + epoch * 10_007 + i), dtype=x_train.dtype)
            loss_array, out = train_step(xb, yb)
            loss_value = float(loss_array)
            if not math.isfinite(loss_value) and not distributed:
                history._mark_diverged(epoch + 1, i + 1, loss_value)
                break
            if not math.isfinite(loss_value):   # under MPI every rank takes every step; they stop together
                first_bad = first_bad or i + 1
            total += loss_value * len(xb)
            seen += len(xb)
            for name, fn in metric_fns.items():
                metric_sums[name] += float(fn(out, yb)) * len(xb)
            if schedule is not None and schedule_interval == "batch" and not _steps_on_metric(schedule):
                schedule.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
            history.steps = step = step + 1
            if eval_every is not None and step % int(eval_every) == 0:
                logs = {"val_" + k: v for k, v in evaluator.evaluate(x_val, y_val, eval_bs, metric_fns).items()}
                history.evaluations.append({"step": step, "epoch": epoch, **logs})
                if callbacks(TrainInfo("eval", epoch, step, i, loss_value, lr, logs, history)):
                    history.stop_reason = "callback"
            if callbacks and callbacks(TrainInfo("step", epoch, step, i, loss_value, lr, {}, history)):
                history.stop_reason = "callback"
            if steps is not None and step >= steps and not history.stop_reason:
                history.stop_reason = "steps"
            if history.stop_reason:
                break
        if bar is not None:
            bar.close()
        if distributed:
            total, seen, metric_sums, bad_step = _epoch_totals_over_ranks(total, seen, metric_sums, first_bad)
            if bad_step:
                history._mark_diverged(epoch + 1, bad_step, total / max(seen, 1))
        if history.diverged:
            history.stop_reason = "diverged"
            break

        history.append("loss", total / seen)
        for name in metric_fns:
            history.append(name, metric_sums[name] / seen)
        if validation_data is not None:
            for name, value in evaluator.evaluate(x_val, y_val, eval_bs, metric_fns).items():
                history.append("val_" + name, value)
        history.append("lr", lr)
        history.append("time", time.perf_counter() - t0)      # last: an epoch with "time" is complete

        watched = history[history.monitor][-1]
        if not math.isfinite(watched):
            # the epoch's last update made the parameters non-finite, which only validation sees
            history._mark_diverged(epoch + 1, None, watched)
            history.stop_reason = "diverged"
            break
        if schedule is not None:
            if _steps_on_metric(schedule):
                _step_on_metric(schedule, watched)
            elif schedule_interval == "epoch":
                schedule.step()
        if watched < best:
            best, waited, history.best_epoch = watched, 0, epoch
            finite_snap = _snapshot(variables)
            if early_stopping is not None:
                best_snap = finite_snap
        else:
            waited += 1
        if verbose:
            print(_epoch_line(history, epoch, epochs_label))
        if checkpoint_dir is not None and _distributed.is_main():
            from .export import checkpoint as ckpt
            arrays, meta = ckpt.training_state(graph, optimizer, schedule, history, epoch + 1, seed, best,
                                               waited, best_snap, variables)
            ckpt.save_checkpoint(checkpoint_dir, epoch + 1, arrays, meta)
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
        if callbacks:
            logs = {k: v[-1] for k, v in history.items() if v}
            if callbacks(TrainInfo("epoch", epoch, step, None, history["loss"][-1], lr, logs, history)):
                history.stop_reason = history.stop_reason or "callback"
        if early_stopping is not None and waited >= early_stopping:
            history.stopped_early = True
            history.stop_reason = "early_stopping"
            break

    if history.diverged:
        _restore(variables, finite_snap)
        what = "the training loss" if history.diverged_step else "the parameters after the last update"
        warnings.warn(f"fit: training diverged at {history.divergence()} ({what} became "
                      f"non-finite); stopped and restored the parameters of "
                      f"{_restored_what(history)} (lower the learning rate or clip gradients)",
                      RuntimeWarning, stacklevel=2)
    elif early_stopping is not None and restore_best and best_snap is not None:
        _restore(variables, best_snap)
        if verbose:
            print(f"restored the parameters of {_restored_what(history)} "
                  f"({history.monitor} {best:.4f})")
    return history


def _restored_what(history: History) -> str:
    return f"epoch {history.best_epoch + 1}" if history.best_epoch is not None else "the start of the run"


def _epoch_totals_over_ranks(total: float, seen: int, metric_sums: dict[str, float],
                             first_bad: int) -> tuple[float, int, dict[str, float], int]:
    """The epoch's loss and metric sums over all ranks, and the first step at which any rank's
    loss was non-finite (0: none). Every rank must agree on stopping, or one would stop while
    the others wait in the next allreduce."""
    names = list(metric_sums)
    summed = _distributed.sum_over_ranks([total, seen] + [metric_sums[k] for k in names])
    total, seen = summed[0], int(summed[1])
    sentinel = np.iinfo(np.int64).max
    bad = int(_distributed.allreduce(np.array([first_bad or sentinel], dtype=np.int64), "min")[0])
    if bad == sentinel and not math.isfinite(total):
        bad = 1
    return total, seen, dict(zip(names, summed[2:])), 0 if bad == sentinel else bad


def _minibatches(x: Array, y: Array, batch_size: int, seed: int, epoch: int, shuffle: bool = True,
                 drop_last: bool = False) -> Iterator[tuple[Array, ...]]:
    from .data import minibatches
    # one seeded permutation per epoch, distinct across epochs and reproducible across runs
    return minibatches((x, y), batch_size, shuffle=shuffle, seed=[int(seed), int(epoch)], drop_last=drop_last)



def _epoch_line(history: History, epoch: int, epochs: int | float | str) -> str:
    parts = [f"epoch {epoch + 1}/{epochs}"]
    for key, values in history.items():
        if key in ("lr", "time"):
            continue
        parts.append(f"{key} {values[-1]:.4f}")
    parts.append(f"lr {history['lr'][-1]:.3g}")
    parts.append(f"{history['time'][-1]:.2f}s")
    return "  ".join(parts)


# ---- the digits MLP job (examples/mlp_digits.py and the command line's train job) -------------

def digits_mlp(epochs: int = 20, backend: str | None = None, seed: int = 0, progress: bool = False,
               verbose: bool = False, hidden: int = 128, batch_size: int = 32, lr: float = 1e-3,
               **fit_kwargs: Any) -> tuple[History, float]:
    """Train an MLP 64-hidden-10 (ReLU) with Adam on the digits and return (history, test_accuracy)."""
    from . import data, nn, optim

    x_train, y_train, x_test, y_test = data.digits(flat=True, seed=seed)
    model = nn.Sequential(nn.Dense(64, hidden, seed=seed), nn.ReLU(), nn.Dense(hidden, 10, seed=seed + 1))
    history = fit(model, x_train, y_train, loss="cross_entropy", optimizer=optim.Adam(lr=lr), epochs=epochs,
                  batch_size=batch_size, validation_data=(x_test, y_test), backend=backend, seed=seed,
                  progress=progress, verbose=verbose, **fit_kwargs)
    test_accuracy = evaluate(model, x_test, y_test, backend=backend)["accuracy"]
    history.model = model
    return history, test_accuracy
