"""Runtime knobs shared by the backends: thread count, the on-disk cache folder and its key.

Threads: ``set_num_threads(n)`` (or ``TENSORFORGE_NUM_THREADS``; default: every core) bounds
the threads compiled code uses. The LLVM backend bakes the count into a step when it builds it
(parallel kernels pass it to the thread pool, which never lets more than that many threads work
on one kernel) and the count is part of the step's cache key: changing it later does not change
steps already built, the next build (a new shape, a new compile) uses the new count, and a step
built for another count is never served from the cache. The interpreter's BLAS (and any other
library that threadpoolctl can bound, OpenMP included) is limited to the same count once one is
asked for (``set_num_threads`` or the variable), process-wide, so a 1-thread comparison is 1
thread everywhere.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

_blas_limit: int | None = None      # the limit last applied through threadpoolctl


def set_num_threads(n: int) -> None:
    """Bound the threads that compiled code uses (also: TENSORFORGE_NUM_THREADS; the setting
    ``num_threads`` of tg.config)."""
    from . import config
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: need n >= 1, got {n}")
    config.set("num_threads", n)
    limit_library_threads()


def get_num_threads() -> int:
    """The threads compiled code may use: set_num_threads's value, else TENSORFORGE_NUM_THREADS,
    else every core."""
    from . import config
    n: int = config.get("num_threads")
    return n


def _thread_count_was_asked_for() -> bool:
    from . import config
    return config.is_set("num_threads")


def limit_library_threads() -> None:
    """Bound BLAS/OpenMP threads (threadpoolctl) to ``get_num_threads()`` when a count was asked
    for. Cheap when nothing changed: the interpreter calls it on every run."""
    global _blas_limit
    if not _thread_count_was_asked_for():
        return
    n = get_num_threads()
    if n == _blas_limit:
        return
    try:
        import threadpoolctl
    except ImportError:          # an optional nicety: never fail a run for it
        return
    threadpoolctl.threadpool_limits(n)
    _blas_limit = n


def cache_dir() -> Path:
    """Where compiled code is cached on disk: TENSORFORGE_CACHE_DIR, else the platform's user cache
    folder (platformdirs: ~/.cache/tensorforge on Linux). See tg.config."""
    from . import config
    folder: Path = config.get("cache_dir")
    return folder


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
    from . import config
    on: bool = config.get("dynamic_batch")
    return on
