"""Training checkpoints for ``tg.train.fit(checkpoint_dir=..., resume=True)``: JSON + npz, no pickle.

A checkpoint is two files in ``checkpoint_dir``:

    ckpt-epoch<NNNN>.npz   every parameter of the training graph by name: the model's weights,
                           batch-norm statistics, the optimizer's state variables (step count,
                           moments), the RNG counter ("rng_counter"); plus "opt:<key>" entries
                           of ``optimizer.state_dict()`` and "best:<name>" for early stopping
    checkpoint.json        epoch, history, schedule.state_dict(), shuffle RNG state, early-stopping
                           bookkeeping, and the name of the .npz it belongs with

The .npz is written first and checkpoint.json replaces the old one last (both atomically,
``_fileio.atomic_write``), so a run killed at any moment leaves a consistent checkpoint: the
previous one or the new one. The manifest records the sha256 of its .npz, and an .npz that the
current manifest names is never overwritten (a new one of the same epoch gets a digest in its
name), so the pair is one unit. Older .npz files are removed afterwards.

Loading trusts nothing: a damaged manifest or .npz, a field of the wrong type, an array that is
not a plain numeric ``.npy`` member, or a state that does not fit the model is a
:class:`CheckpointError` (a ``LoadError``) that names the file and the entry.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from .._fileio import atomic_write
from .._typing import Array, PathLike
from . import _npz
from .serialize import LoadError

if TYPE_CHECKING:
    from ..graph import Graph, Tensor
    from ..optim.base import Optimizer
    from ..optim.schedules import LRScheduler
    from ..train import History

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "CheckpointError", "MANIFEST"]

MANIFEST = "checkpoint.json"
CHECKPOINT_VERSION = 2          # 2: the manifest holds the sha256 of its .npz
READABLE_VERSIONS = (1, 2)


class CheckpointError(LoadError):
    """A checkpoint is missing, malformed, or does not fit the model being trained."""


def _json_default(value: object) -> Any:
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a checkpoint: {value!r}")


def _npz_name(directory: Path, epoch: int, digest: str) -> str:
    """``ckpt-epoch<NNNN>.npz``, unless the current manifest names that file: then a name with the
    digest, so a save that dies before its manifest is written leaves the old pair intact."""
    name = f"ckpt-epoch{epoch:04d}.npz"
    try:
        current = json.loads((directory / MANIFEST).read_text()).get("arrays")
    except Exception:            # no manifest, or a damaged one: nothing to protect
        current = None
    return f"ckpt-epoch{epoch:04d}-{digest[:12]}.npz" if current == name else name


def save_checkpoint(directory: PathLike, epoch: int, arrays: Mapping[str, npt.ArrayLike],
                    meta: Mapping[str, Any]) -> Path:
    """Write the checkpoint of ``epoch`` (completed epochs, 1-based) and return the manifest path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for key, value in arrays.items():
        if np.asarray(value).dtype.name not in _npz.SUPPORTED_DTYPES:
            raise CheckpointError(f"checkpoint entry {key!r} has dtype {np.asarray(value).dtype}; only "
                                  f"{', '.join(_npz.SUPPORTED_DTYPES)} arrays are stored (no pickle)")
    blob = _npz.npz_bytes(arrays)
    digest = _npz.sha256_hex(blob)
    npz_name = _npz_name(directory, int(epoch), digest)
    doc = {**meta, "version": CHECKPOINT_VERSION, "epoch": int(epoch), "arrays": npz_name,
           "arrays_sha256": digest}
    try:
        text = json.dumps(doc, default=_json_default, indent=1).encode()
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"the training state cannot be written as JSON: {e}") from None
    atomic_write(directory / npz_name, blob)
    atomic_write(directory / MANIFEST, text)
    for old in directory.glob("ckpt-epoch*.npz"):
        if old.name != npz_name:
            old.unlink(missing_ok=True)
    return directory / MANIFEST


def latest_checkpoint(directory: PathLike) -> Path | None:
    """The manifest of the checkpoint in ``directory``, or None if there is none."""
    path = Path(directory) / MANIFEST
    return path if path.exists() else None


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _read_manifest(path: Path) -> dict[str, Any]:
    data = _npz.read_file(path, "checkpoint manifest", CheckpointError)
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a checkpoint manifest ({e})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not a checkpoint manifest (nested too deeply)") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: not a checkpoint manifest (a JSON {type(meta).__name__})")
    version = meta.get("version")
    if not _is_int(version) or version not in READABLE_VERSIONS:
        raise CheckpointError(f"{path}: unsupported checkpoint version {version!r:.40}")
    if not _is_int(meta.get("epoch")) or meta["epoch"] < 0:
        raise CheckpointError(f"{path}: 'epoch' must be a non-negative integer, got {meta.get('epoch')!r:.40}")
    name = meta.get("arrays")
    if not isinstance(name, str) or not name.endswith(".npz") or Path(name).name != name or name.startswith("."):
        raise CheckpointError(f"{path}: 'arrays' must name an .npz file beside it, got {name!r:.80}")
    digest = meta.get("arrays_sha256")
    if version >= 2 and not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        raise CheckpointError(f"{path}: 'arrays_sha256' must be the sha256 (hex) of the arrays file")
    return meta


def load_checkpoint(directory: PathLike) -> tuple[dict[str, Any], dict[str, Array]]:
    """(meta, arrays) of the checkpoint in ``directory``; arrays read with allow_pickle=False."""
    path = latest_checkpoint(directory)
    if path is None:
        raise CheckpointError(f"no checkpoint in {directory}")
    meta = _read_manifest(path)
    npz = path.parent / meta["arrays"]
    data = _npz.read_file(npz, f"arrays file {meta['arrays']!r} of {path.name}", CheckpointError)
    if meta["version"] >= 2 and _npz.sha256_hex(data) != meta["arrays_sha256"]:
        raise CheckpointError(f"{npz}: not the arrays file {path.name} was written with (sha256 differs)")
    return meta, _npz.read_npz(data, npz, CheckpointError)


# ---- the pieces fit() stores ------------------------------------------------------------------

def training_state(graph: Graph, optimizer: Optimizer, schedule: LRScheduler | None, history: History, epoch: int,
                   seed: int, best: float, waited: int, best_snap: Mapping[int, Array] | None,
                   variables: Sequence[Tensor]) -> tuple[dict[str, Array], dict[str, Any]]:
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


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_TRAINING_FIELDS: dict[str, Callable[[Any], bool]] = {
    "history": lambda v: isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(x, list) and all(e is None or _number(e) for e in x) for k, x in v.items()),
    "best_epoch": lambda v: v is None or (_is_int(v) and v >= 0),
    "best": lambda v: v is None or _number(v),
    "waited": lambda v: _is_int(v) and v >= 0,
    "lr": _number,
    "schedule": lambda v: v is None or (isinstance(v, dict) and all(isinstance(k, str) for k in v)),
    "shuffle": lambda v: isinstance(v, dict) and _is_int(v.get("seed")) and _is_int(v.get("next_epoch")),
    "rng_counter": lambda v: v is None or _is_int(v),
}


def _json_kind(v: object) -> str:
    if isinstance(v, bool) or v is None:
        return type(v).__name__
    return "number" if _number(v) else type(v).__name__


def check_training_meta(meta: Mapping[str, Any], schedule: LRScheduler | None) -> None:
    """Every field ``restore_training_state`` reads, with its type; the schedule's state must have
    the same keys and kinds of values as the schedule being resumed (it is written into its
    ``__dict__``)."""
    for key, ok in _TRAINING_FIELDS.items():
        if key not in meta:
            raise CheckpointError(f"{MANIFEST}: the checkpoint has no {key!r}")
        if not ok(meta[key]):
            raise CheckpointError(f"{MANIFEST}: {key!r} is malformed ({meta[key]!r:.80})")
    saved = meta["schedule"]
    if schedule is not None and saved is not None:
        want = schedule.state_dict()
        if set(saved) != set(want):
            raise CheckpointError(f"{MANIFEST}: the schedule state has keys {sorted(saved)}, "
                                  f"{type(schedule).__name__} has {sorted(want)}")
        for k, v in want.items():
            if None not in (v, saved[k]) and _json_kind(saved[k]) != _json_kind(json.loads(json.dumps(v, default=_json_default))):
                raise CheckpointError(f"{MANIFEST}: schedule entry {k!r} is {saved[k]!r:.60}, expected a "
                                      f"{_json_kind(v)}")


def restore_training_state(graph: Graph, optimizer: Optimizer, schedule: LRScheduler | None, history: History,
                           meta: Mapping[str, Any], arrays: Mapping[str, Array], seed: int,
                           variables: Sequence[Tensor]) -> tuple[int, float, int, dict[int, Array] | None]:
    """Put a checkpoint back into a freshly built training graph; returns (start_epoch, best,
    waited, best_snap)."""
    check_training_meta(meta, schedule)
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
    try:
        optimizer.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt:")})
        if schedule is not None and meta["schedule"] is not None:
            schedule.load_state_dict(meta["schedule"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"the checkpoint's optimizer or schedule state does not fit: {e}") from None
    optimizer.lr = meta["lr"]
    for key, values in meta["history"].items():
        history[key] = list(values)
    history.best_epoch = meta["best_epoch"]
    best = math.inf if meta["best"] is None else meta["best"]
    by_name = {t.name: t.id for t in variables}
    snap = {by_name[k[5:]]: v for k, v in arrays.items() if k.startswith("best:") and k[5:] in by_name}
    return int(meta["epoch"]), best, int(meta["waited"]), (snap or None)
