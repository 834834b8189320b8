"""The on-disk cache of whole compiled steps (``TENSORFORGE_CACHE_DIR``/llvm/steps).

An entry is four files named by the step's key: the object code (checksummed, see
jit.py), the optimised IR (for inspection), the manifest (JSON) and the constants that
the passes made (.npz, loaded with ``allow_pickle=False``). Files are written atomically
(temporary file, then rename), the object code last, so a reader sees either a whole entry
or none. Anything missing, corrupt or of another format version is a miss, never an error:
nothing loaded from the cache is ever executed as Python.
"""
from __future__ import annotations

import io
import json

import numpy as np

from ... import runtime
from . import jit


def _folder():
    return runtime.cache_dir() / "llvm" / "steps"


def store(key: str, manifest: dict, consts: dict, obj: bytes | None, ir_text: str | None) -> None:
    if obj is None:
        return
    folder = _folder()
    try:
        buf = io.BytesIO()
        np.savez(buf, **consts)
        jit._atomic_write(folder / f"{key}.npz", buf.getvalue())
        jit._atomic_write(folder / f"{key}.json", json.dumps(manifest).encode())
        if ir_text is not None:
            jit._atomic_write(folder / f"{key}.ll", ir_text.encode())
        jit._atomic_write(folder / f"{key}.o", jit._MAGIC + jit.hashlib.sha256(obj).digest() + obj)
    except OSError:
        pass  # a read-only or full cache folder must not break compilation


def load(key: str):
    """(manifest, constants, object code, IR text or None), or None on any miss."""
    folder = _folder()
    obj = jit._read_cached_object(folder / f"{key}.o")
    if obj is None:
        return None
    try:
        from .backend import MANIFEST_VERSION
        manifest = json.loads((folder / f"{key}.json").read_text())
        if manifest.get("version") != MANIFEST_VERSION:
            return None
        with np.load(folder / f"{key}.npz", allow_pickle=False) as z:
            consts = {name: np.array(z[name]) for name in z.files}
    except (OSError, ValueError, KeyError):
        return None
    try:
        ir_text = (folder / f"{key}.ll").read_text()
    except OSError:
        ir_text = None
    return manifest, consts, obj, ir_text
