"""Training checkpoints for ``tg.train.fit(checkpoint_dir=..., resume=True)``: JSON + npz, no pickle.

A checkpoint is two files in ``checkpoint_dir``:

    ckpt-epoch<NNNN>.npz   every parameter of the training graph by name: the model's weights,
                           batch-norm statistics, the optimizer's state variables (step count,
                           moments), the RNG counter ("rng_counter"); plus "opt:<key>" entries
                           of ``optimizer.state_dict()`` and "best:<name>" for early stopping
    checkpoint.json        epoch, history, schedule.state_dict(), shuffle RNG state, early-stopping
                           bookkeeping, and the name of the .npz it belongs with

The .npz is written first and checkpoint.json replaces the old one last (both atomically,
temp file + os.replace), so a run killed at any moment leaves a consistent checkpoint:
the previous one or the new one. Older .npz files are removed afterwards.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .serialize import _atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "CheckpointError", "MANIFEST"]

MANIFEST = "checkpoint.json"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or does not fit the model being trained."""


def _json_default(value):
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint: {value!r}")


def save_checkpoint(directory, epoch: int, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write the checkpoint of ``epoch`` (completed epochs, 1-based) and return the manifest path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    npz_name = f"ckpt-epoch{epoch:04d}.npz"
    for key, value in arrays.items():
        if np.asarray(value).dtype.kind not in "biuf":
            raise CheckpointError(f"checkpoint entry {key!r} has dtype {np.asarray(value).dtype}; only "
                                  "numeric arrays are stored (no pickle)")
    doc = {"version": CHECKPOINT_VERSION, "epoch": int(epoch), "arrays": npz_name, **meta}
    try:
        text = json.dumps(doc, default=_json_default, indent=1).encode()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"the training state cannot be written as JSON: {e}") from None
    _atomic_write(directory / npz_name, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()}))
    _atomic_write(directory / MANIFEST, lambda f: f.write(text))
    for old in directory.glob("ckpt-epoch*.npz"):
        if old.name != npz_name:
            old.unlink(missing_ok=True)
    return directory / MANIFEST


def latest_checkpoint(directory) -> Path | None:
    """The manifest of the checkpoint in ``directory``, or None if there is none."""
    path = Path(directory) / MANIFEST
    return path if path.exists() else None


def load_checkpoint(directory) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of the checkpoint in ``directory``; arrays read with allow_pickle=False."""
    path = latest_checkpoint(directory)
    if path is None:
        raise CheckpointError(f"no checkpoint in {directory}")
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a checkpoint manifest ({e})") from None
    if not isinstance(meta, dict) or meta.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint version {meta.get('version')!r}")
    npz = path.parent / str(meta.get("arrays", ""))
    if Path(meta.get("arrays", "")).name != meta.get("arrays") or not npz.is_file():
        raise CheckpointError(f"{path}: its arrays file {meta.get('arrays')!r} is missing")
    try:
        with np.load(npz, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:
        raise CheckpointError(f"{npz}: refused to load (allow_pickle=False): {e}") from None
    return meta, arrays


# ---- the pieces fit() stores ------------------------------------------------------------------

def training_state(graph, optimizer, schedule, history, epoch: int, seed: int, best, waited: int,
                   best_snap: dict | None, variables) -> tuple[dict, dict]:
    """(arrays, meta) describing a run after ``epoch`` completed epochs."""
    graph.sync_host()
    arrays = {p.name: np.array(p.value) for p in graph.parameters()}
    arrays.update({f"opt:{k}": np.asarray(v) for k, v in optimizer.state_dict().items()})
    if best_snap is not None:
        by_id = {t.id: t.name for t in variables}
        arrays.update({f"best:{by_id[i]}": v for i, v in best_snap.items()})
    meta = {
        "history": {k: list(v) for k, v in history.items()},
        "best_epoch": history.best_epoch,
        "best": None if not math.isfinite(best) else float(best),
        "waited": int(waited),
        "lr": float(optimizer.lr),
        "schedule": None if schedule is None else schedule.state_dict(),
        # minibatch order is drawn from np.random.default_rng([seed, epoch]): that pair is the
        # whole shuffle state, so the resumed run draws the same permutations
        "shuffle": {"seed": int(seed), "next_epoch": int(epoch)},
        "rng_counter": int(graph.by_name("rng_counter").value) if "rng_counter" in graph._names else None,
    }
    return arrays, meta


def restore_training_state(graph, optimizer, schedule, history, meta: dict, arrays: dict, seed: int,
                           variables):
    """Put a checkpoint back into a freshly built training graph; returns (start_epoch, best,
    waited, best_snap)."""
    if meta["shuffle"]["seed"] != int(seed):
        raise CheckpointError(f"the checkpoint was written with seed {meta['shuffle']['seed']}, this run "
                              f"uses seed {seed}")
    params = graph.parameters()
    missing = [p.name for p in params if p.name not in arrays]
    if missing:
        raise CheckpointError(f"the checkpoint does not match the model: no values for {missing}")
    for p in params:
        value = arrays[p.name]
        if value.shape != tuple(p.shape):
            raise CheckpointError(f"checkpoint value of {p.name!r} has shape {value.shape}, the model "
                                  f"expects {tuple(p.shape)}")
        p.value = value
    optimizer.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt:")})
    if schedule is not None and meta.get("schedule") is not None:
        schedule.load_state_dict(meta["schedule"])
    optimizer.lr = meta["lr"]
    for key, values in meta["history"].items():
        history[key] = list(values)
    history.best_epoch = meta["best_epoch"]
    best = math.inf if meta["best"] is None else meta["best"]
    by_name = {t.name: t.id for t in variables}
    snap = {by_name[k[5:]]: v for k, v in arrays.items() if k.startswith("best:") and k[5:] in by_name}
    return int(meta["epoch"]), best, int(meta["waited"]), (snap or None)
