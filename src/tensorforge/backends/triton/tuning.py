"""Block-size autotuning of Triton kernels on the GPU, cached on disk.

A kernel whose source works for any of several launch configurations (tile sizes, warps,
pipeline stages) carries a ``TuneSpec``: a signature key, the candidate configurations (the
fixed default first) and its grid as a function of the configuration. On a real GPU the first
launch times every candidate with ``triton.testing.do_bench`` on the kernel's own buffers and
keeps the fastest; the choice is remembered in this process and written to a JSON file under
``runtime.cache_dir() / "triton-tuning"`` keyed by the signature, the candidate list, the GPU
name and the Triton version, so another process launches the tuned configuration at once.

Under Triton's interpreter (``TRITON_INTERPRET=1``, CI), without CUDA, with
``TENSORFORGE_TRITON_TUNE=0``, or while a CUDA graph is being captured, nothing is searched:
the default configuration (or an already known choice) is used. The Triton backend runs
every kernel once before it captures a step in a CUDA graph, so searches never happen
inside a capture.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ... import config, runtime
from ..._fileio import atomic_write

__all__ = ["TuneSpec", "TuningCache", "search_enabled", "choose", "cache_path", "device_tag"]

CACHE_VERSION = 1
_memo: dict[str, dict] = {}           # full key -> chosen config, for this process
_lock = threading.Lock()


@dataclass(frozen=True)
class TuneSpec:
    """What a tunable launch may vary: ``configs`` are meta dicts (constexprs plus num_warps /
    num_stages), the first being the fixed default; ``grid(config)`` is the launch grid."""
    key: str
    configs: tuple
    grid: Callable = field(compare=False)

    def digest(self) -> str:
        """The signature plus the candidate list: a new candidate list means a new search."""
        text = json.dumps([self.key, [sorted(c.items()) for c in self.configs]], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]


def search_enabled() -> bool:
    """True on a real GPU (not the interpreter) unless TENSORFORGE_TRITON_TUNE=0."""
    if os.environ.get("TRITON_INTERPRET") == "1" or not config.get("triton_tune"):
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def device_tag() -> str:
    """GPU name and Triton version: tuned choices are only valid for both."""
    import torch
    import triton
    return f"{torch.cuda.get_device_name()}|triton {triton.__version__}"


def cache_path() -> Path:
    return runtime.cache_dir() / "triton-tuning" / "configs.json"


def _valid_config(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and type(v) is int for k, v in value.items())


class TuningCache:
    """A JSON file {"version": 1, "entries": {key: {"config": {...}, "ms": float}}}.

    A missing, unreadable or corrupted file (or entry) reads as empty; writes merge with what
    is on disk now and replace the file atomically (temporary file + rename)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        entries = data.get("entries")
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items()
                if isinstance(k, str) and isinstance(v, dict) and _valid_config(v.get("config"))}

    def get(self, key: str) -> dict | None:
        entry = self.load().get(key)
        return dict(entry["config"]) if entry else None

    def put(self, key: str, config: dict, ms: float | None = None, note: str = "") -> None:
        """Record ``config`` for ``key``; an unwritable cache folder is not an error."""
        entries = self.load()
        entries[key] = {"config": dict(config), "ms": ms, "note": note}
        text = json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1, sort_keys=True)
        try:
            atomic_write(self.path, text.encode("utf-8"), durable=False)
        except OSError:
            return


def _capturing() -> bool:
    try:
        import torch
        return bool(torch.cuda.is_current_stream_capturing())
    except Exception:  # noqa: BLE001 - no CUDA: not capturing
        return False


def _time(run: Callable[[dict], None], config: dict) -> float | None:
    """Median milliseconds of ``run(config)``, or None if the configuration does not compile
    or launch here (too much shared memory, too many registers, ...)."""
    import triton.testing
    try:
        return float(triton.testing.do_bench(lambda: run(config), warmup=5, rep=25))
    except Exception:  # noqa: BLE001 - an unusable candidate is skipped, not fatal
        return None


def choose(spec: TuneSpec, run: Callable[[dict], None]) -> dict:
    """The configuration to launch ``spec``'s kernel with; ``run(config)`` launches it once
    (on the real buffers: tunable kernels only write their own outputs, so repeating a launch
    is harmless). Searches only when ``search_enabled()`` and not inside a graph capture."""
    default = dict(spec.configs[0])
    if len(spec.configs) < 2 or not search_enabled():
        return default
    key = f"{spec.digest()}|{device_tag()}"
    with _lock:
        if key in _memo:
            return dict(_memo[key])
        cache = TuningCache(cache_path())
        known = cache.get(key)
        if known is not None and known in [dict(c) for c in spec.configs]:
            _memo[key] = known
            return dict(known)
        if _capturing():
            return default
        timings = [(_time(run, dict(c)), i) for i, c in enumerate(spec.configs)]
        usable = [(t, i) for t, i in timings if t is not None]
        best_ms, best = min(usable) if usable else (None, 0)
        choice = dict(spec.configs[best])
        _memo[key] = choice
        cache.put(key, choice, best_ms, note=spec.key)
        return dict(choice)


def forget() -> None:
    """Drop this process's remembered choices (tests; the disk cache stays)."""
    with _lock:
        _memo.clear()
