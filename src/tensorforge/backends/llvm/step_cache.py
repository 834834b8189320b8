"""The on-disk cache of whole compiled steps (``TENSORFORGE_CACHE_DIR``/llvm/steps).

An entry is the files named by the step's key: the object code (.o), the optimised IR (.ll,
for inspection), the manifest (.json) and the constants that the passes made (.npz, loaded
with ``allow_pickle=False``), plus a signature (.sig) written last: one sha256 over the key and
every file's bytes (``_fileio.write_signed_group``). The whole entry is verified before any of
it is parsed or mapped into the JIT, because a manifest that is valid JSON but edited, or an
object file of another entry, would run native code on wrong buffers. Anything missing,
damaged, swapped or of another format version is a miss (logged) that rebuilds and rewrites
the entry, never an error: nothing loaded from the cache is ever executed as Python.
"""
from __future__ import annotations

import io
import json
import logging

import numpy as np

from ... import runtime
from ..._fileio import read_signed_group, write_signed_group

log = logging.getLogger("tensorforge.cache")

_REQUIRED = ("o", "json", "npz")


def _folder():
    return runtime.cache_dir() / "llvm" / "steps"


def store(key: str, manifest: dict, consts: dict, obj: bytes | None, ir_text: str | None) -> None:
    if obj is None:
        return
    buf = io.BytesIO()
    np.savez(buf, **consts)
    files = {"o": bytes(obj), "json": json.dumps(manifest).encode(), "npz": buf.getvalue()}
    if ir_text is not None:
        files["ll"] = ir_text.encode()
    try:
        write_signed_group(_folder(), key, files)
    except OSError as e:
        log.info("llvm step cache: entry %s not written (%s)", key[:16], e)   # read-only or full


def _miss(key: str, why: str):
    log.warning("llvm step cache: entry %s ignored and rebuilt: %s", key[:16], why)
    return None


def load(key: str):
    """(manifest, constants, object code, IR text or None), or None on any miss (never raises)."""
    files, why = read_signed_group(_folder(), key)
    if files is None:
        if why != "no entry":
            _miss(key, why)
        return None
    if any(s not in files for s in _REQUIRED):
        return _miss(key, "an entry file is not part of the signature")
    try:
        from .executable import MANIFEST_VERSION
        manifest = json.loads(files["json"].decode("utf-8"))
        if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
            return _miss(key, "manifest of another format version")
        with np.load(io.BytesIO(files["npz"]), allow_pickle=False) as z:
            consts = {name: np.array(z[name]) for name in z.files}
        ir_text = files["ll"].decode("utf-8") if "ll" in files else None
    except Exception as e:   # signed but unreadable: written by another version of this code
        return _miss(key, f"{type(e).__name__}: {e}")
    return manifest, consts, files["o"], ir_text
