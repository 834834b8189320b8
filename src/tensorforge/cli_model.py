"""Trained models on disk for ``tensorforge train --save`` and ``tensorforge predict``.

A saved model is a folder (or the same three files in one ``.tgz``):

    model.json + model.npz   the inference graph with the trained parameters (``tg.export.save``:
                             JSON + npz, loaded without pickle and without running code)
    preprocessing.json       what new data goes through before the graph: the original label
                             of each class (numbers or words), the StandardScaler's mean and scale
                             (or none), the number of features a row has and the sample shape the
                             graph takes; plus the sha256 of model.json, so that files of two
                             saves are never used together

Every file is written atomically (``_fileio.atomic_write``), preprocessing.json last. A ``.tgz``
is read member by member into memory: only those three regular files are accepted, nothing is
extracted anywhere else.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from ._fileio import atomic_write

__all__ = ["save_model", "load_model", "is_saved_model", "SavedModel", "ModelError", "MODEL_FILES", "load_graph",
           "graph_module"]

FORMAT_NAME = "tensorforge-model"
FORMAT_VERSION = 1
GRAPH_FILE, ARRAYS_FILE, PREP_FILE = "model.json", "model.npz", "preprocessing.json"
MODEL_FILES = (GRAPH_FILE, ARRAYS_FILE, PREP_FILE)
MAX_MEMBER_BYTES = 1 << 30


class ModelError(ValueError):
    """A saved model cannot be read (missing, damaged, or not a tensorforge model)."""


@dataclass
class SavedModel:
    """A loaded model: the graph (``tg.export.Loaded``) and how its data is prepared."""
    graph: object
    classes: np.ndarray
    scaler: dict | None
    features: int
    sample_shape: tuple
    info: dict


def is_saved_model(path) -> bool:
    """A folder with a preprocessing.json, or a .tgz file."""
    p = Path(path)
    return (p.is_dir() and (p / PREP_FILE).is_file()) or (p.suffix.lower() == ".tgz" and p.is_file())


# ---- saving ------------------------------------------------------------------------------

def save_model(path, net, sample_shape: tuple, classes: np.ndarray, scaler: dict | None, info: dict) -> Path:
    """Save the trained ``net`` (a tg.nn module) with its preprocessing (see the module docstring)."""
    path = Path(path)
    if path.suffix.lower() == ".tgz":
        with tempfile.TemporaryDirectory() as tmp:
            _save_folder(Path(tmp), net, sample_shape, classes, scaler, info)
            atomic_write(path, _tgz_bytes(Path(tmp)))
        return path
    if path.exists() and not path.is_dir():
        raise ModelError(f"{path} is a file; --save takes a folder or a path ending in .tgz")
    return _save_folder(path, net, sample_shape, classes, scaler, info)


def _save_folder(folder: Path, net, sample_shape, classes, scaler, info) -> Path:
    from . import export
    from .graph import Graph, placeholder
    graph = Graph("model")
    x = placeholder("x", (None,) + tuple(int(d) for d in sample_shape), graph=graph)
    out = net(x, training=False)
    folder.mkdir(parents=True, exist_ok=True)
    export.save(folder / GRAPH_FILE, [out], [x])
    words = np.asarray(classes).dtype.kind in "USO"
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
           "model_sha256": hashlib.sha256((folder / GRAPH_FILE).read_bytes()).hexdigest(),
           "class_kind": "word" if words else "number",
           "classes": [str(c) for c in classes] if words else [int(c) for c in classes],
           "scaler": scaler, "features": int(np.prod(sample_shape)),
           "sample_shape": [int(d) for d in sample_shape], "info": info}
    atomic_write(folder / PREP_FILE, json.dumps(doc, indent=1, allow_nan=False).encode())
    return folder


def _tgz_bytes(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in MODEL_FILES:
            tar.add(folder / name, arcname=name, recursive=False)
    return buf.getvalue()


# ---- loading -------------------------------------------------------------------------------

def load_model(path) -> SavedModel:
    """A model saved by :func:`save_model`, checked before use; any problem is a ModelError."""
    from .export import LoadError
    path = Path(path)
    if not path.exists():
        raise ModelError(f"no such model: {path}")
    if not is_saved_model(path):
        raise ModelError(f"{path} is not a saved model (a folder or .tgz written by `tensorforge train --save`)")
    try:
        if path.is_dir():
            return _load_folder(path)
        with tempfile.TemporaryDirectory() as tmp:
            _unpack_tgz(path, Path(tmp))
            return _load_folder(Path(tmp), shown=path)
    except LoadError as e:
        raise ModelError(f"cannot load the model {path}: {e}") from None
    except OSError as e:
        raise ModelError(f"cannot read the model {path}: {e}") from None


def _unpack_tgz(path: Path, into: Path) -> None:
    """Copy the three known members' bytes out of the archive; anything else is refused."""
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            members = tar.getmembers()
            names = sorted(m.name for m in members)
            if names != sorted(MODEL_FILES) or not all(m.isreg() for m in members):
                raise ModelError(f"{path} is not a saved model (a .tgz of {', '.join(MODEL_FILES)})")
            for m in members:
                if m.size > MAX_MEMBER_BYTES:
                    raise ModelError(f"{path}: {m.name} is larger than {MAX_MEMBER_BYTES} bytes")
                (into / m.name).write_bytes(tar.extractfile(m).read())
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ModelError(f"cannot read {path} as a .tgz model: {e}") from None


def _load_folder(folder: Path, shown: Path | None = None) -> SavedModel:
    from . import export
    shown = shown or folder
    doc = _read_prep(folder / PREP_FILE, shown)
    graph_bytes = (folder / GRAPH_FILE).read_bytes() if (folder / GRAPH_FILE).is_file() else b""
    if hashlib.sha256(graph_bytes).hexdigest() != doc["model_sha256"]:
        raise ModelError(f"{shown}: {GRAPH_FILE} is missing or not the one {PREP_FILE} was saved with")
    loaded = export.load(folder / GRAPH_FILE)
    if len(loaded.inputs) != 1 or len(loaded.outputs) != 1:
        raise ModelError(f"{shown}: a saved model has one input and one output")
    shape = tuple(doc["sample_shape"])
    if tuple(loaded.inputs[0].shape[1:]) != shape:
        raise ModelError(f"{shown}: the graph takes samples of shape {tuple(loaded.inputs[0].shape[1:])}, "
                         f"{PREP_FILE} says {shape}")
    classes = np.array(doc["classes"], dtype=str if doc["class_kind"] == "word" else np.int64)
    if loaded.outputs[0].shape[-1] != len(classes):
        raise ModelError(f"{shown}: the graph has {loaded.outputs[0].shape[-1]} outputs for "
                         f"{len(classes)} classes")
    return SavedModel(loaded, classes, doc["scaler"], int(doc["features"]), shape, doc["info"])


def _read_prep(path: Path, shown: Path) -> dict:
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{shown} is not a saved model: no {PREP_FILE}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelError(f"{shown}: {PREP_FILE} is damaged ({type(e).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise ModelError(f"{shown}: {PREP_FILE} is not a {FORMAT_NAME} file")
    if doc.get("version") != FORMAT_VERSION:
        raise ModelError(f"{shown}: model format version {doc.get('version')!r} is not supported")
    _check_fields(doc, shown)
    return doc


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_fields(doc: dict, shown: Path) -> None:
    """Every field with its type: a damaged file is one clear error, not a failure later on."""
    ok = {
        "model_sha256": lambda v: isinstance(v, str) and len(v) == 64,
        "class_kind": lambda v: v in ("word", "number"),
        "classes": lambda v: isinstance(v, list) and 1 <= len(v) and all(isinstance(c, str) or _is_int(c) for c in v),
        "features": lambda v: _is_int(v) and v >= 1,
        "sample_shape": lambda v: isinstance(v, list) and all(_is_int(d) and d >= 1 for d in v),
        "info": lambda v: isinstance(v, dict),
        "scaler": lambda v: v is None or (isinstance(v, dict) and set(v) == {"mean", "scale"} and all(
            isinstance(v[k], list) and len(v[k]) == doc.get("features") and
            all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in v[k]) for k in v)),
    }
    for key, check in ok.items():
        if key not in doc or not check(doc[key]):
            raise ModelError(f"{shown}: {PREP_FILE} has no valid {key!r}")


# ---- graphs for the command line (train --model, export, show) ---------------------------------

def graph_module(loaded):
    """A ``tg.nn`` module that re-applies a saved graph (one input) on the placeholder it gets,
    with the saved parameters as its own (trainable) parameters."""
    from . import graph as g
    from .nn.module import Module, ParamSpec
    from .ops.registry import apply

    if len(loaded.inputs) != 1 or len(loaded.outputs) != 1:
        raise click.BadParameter(f"a saved graph to train needs one input and one output (it has "
                                 f"{len(loaded.inputs)} and {len(loaded.outputs)})", param_hint="--model")
    src_in, src_out = loaded.inputs[0], loaded.outputs[0]

    class SavedGraph(Module):
        kind = "saved_graph"

        def forward(self, x, training):
            made = {src_in.id: x}
            source = src_out.graph
            for nid in source.topological_order([src_out.id]):
                t = source.tensor(nid)
                if nid in made:
                    continue
                if t.op == "placeholder":
                    raise click.BadParameter(f"the saved graph has a second placeholder {t.name!r}",
                                             param_hint="--model")
                if t.op == "parameter":
                    value = np.array(t.value)
                    made[nid] = self.param(x.graph, t.name.replace("/", "_"),
                                           ParamSpec(value.shape, lambda v=value: v), dtype=t.dtype)
                elif t.op == "constant":
                    made[nid] = g.constant(np.array(t.value), dtype=t.dtype, graph=x.graph)
                else:
                    made[nid] = apply(t.op, [made[i.id] for i in t.inputs], **t.attrs)
            return made[src_out.id]

    return SavedGraph(), tuple(src_in.shape[1:])


def load_graph(path: str, param_hint: str):
    """tg.export.load(path), with a missing file or a bad document as one clear line; a model saved
    by ``train --save`` (a folder or .tgz) gives its graph with the trained parameters."""
    p = Path(path)
    if is_saved_model(p):
        try:
            return load_model(p).graph
        except ModelError as e:
            raise click.BadParameter(str(e), param_hint=param_hint) from None
    if p.is_dir():
        raise click.BadParameter(f"{path} is a directory, not a saved graph", param_hint=param_hint)
    if not p.is_file():
        raise click.BadParameter(f"no such file: {path}", param_hint=param_hint)
    from . import export
    try:
        return export.load(str(p))
    except (export.LoadError, OSError) as e:
        raise click.BadParameter(f"cannot load {path}: {e}", param_hint=param_hint) from None
    except (RecursionError, MemoryError, UnicodeError, KeyError, TypeError, AttributeError) as e:
        # damage export.load does not name itself (a deeply nested or odd document)
        raise click.BadParameter(f"cannot load {path}: {type(e).__name__}: {e}", param_hint=param_hint) from None
