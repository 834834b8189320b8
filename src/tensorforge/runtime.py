"""Runtime knobs shared by the backends: thread count, the on-disk cache folder and its key."""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

_num_threads: int | None = None


def set_num_threads(n: int) -> None:
    """Bound the threads that compiled code uses (also: TENSORFORGE_NUM_THREADS)."""
    global _num_threads
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: need n >= 1, got {n}")
    _num_threads = n


def get_num_threads() -> int:
    if _num_threads is not None:
        return _num_threads
    env = os.environ.get("TENSORFORGE_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"TENSORFORGE_NUM_THREADS must be a positive integer, got {env!r}") from None
    return os.cpu_count() or 1


def cache_dir() -> Path:
    """Where compiled code is cached on disk (TENSORFORGE_CACHE_DIR, default ~/.cache/tensorforge)."""
    return Path(os.environ.get("TENSORFORGE_CACHE_DIR", Path.home() / ".cache" / "tensorforge"))


@functools.lru_cache(maxsize=None)
def code_fingerprint() -> str:
    """A hash of tensorforge's own source files: part of every disk-cache key, so compiled code
    made by other code (an edited checkout, another version) is never served. Read once per
    process (about a hundred small files)."""
    package = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def dynamic_batch() -> bool:
    """Whether a step whose placeholders have None dims may be built once for every batch
    size (tensorforge.symbolic); TENSORFORGE_DYNAMIC_BATCH=0 specialises per shape as before."""
    return os.environ.get("TENSORFORGE_DYNAMIC_BATCH", "1").strip().lower() not in ("0", "false", "no", "off")
