"""Every setting of tensorforge in one place: ``tg.config``.

Each setting has a Python name, an environment variable, a parser and a default. Code
reads a setting with ``config.get("cache_dir")``; the value comes from, in order:

1. ``config.set(name, value)`` (or ``with config.override(name=value): ...``) in this process,
2. the environment variable (read at each call, so a test or a launcher may change it),
3. the default.

A bad environment value raises a ``ValueError`` that names the variable and what it expects,
at the point of use, so a typo is never silently ignored. ``config.describe()`` prints the
table that docs/configuration.md shows, and ``config.log(...)`` switches on the diagnostic
logs (recompilations, pass timings, kernel counts).

The thread count keeps its historical functions ``tg.set_num_threads`` / ``tg.get_num_threads``
(runtime.py), which read and write the same setting.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

__all__ = ["Setting", "SETTINGS", "get", "is_set", "set", "reset", "override", "describe", "log", "LOG_TOPICS"]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def _flag(var: str, text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{var} must be one of 1/0, true/false, yes/no, on/off; got {text!r}")


def _positive_int(var: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{var} must be a positive integer, got {text!r}") from None
    if value < 1:
        raise ValueError(f"{var} must be a positive integer, got {text!r}")
    return value


def _non_negative_int(var: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{var} must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise ValueError(f"{var} must be an integer >= 0, got {text!r}")
    return value


def _positive_float(var: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{var} must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"{var} must be > 0, got {text!r}")
    return value


def _vector_bits(var: str, text: str) -> int | None:
    if not text.strip():
        return None
    if text.strip() not in ("128", "256", "512"):
        raise ValueError(f"{var} must be 128, 256 or 512, got {text!r}")
    return int(text)


def _path(var: str, text: str) -> Path:
    return Path(text).expanduser()


def _optional_path(var: str, text: str) -> Path | None:
    return Path(text).expanduser() if text.strip() else None


def _topics(var: str, text: str) -> tuple[str, ...]:
    names = tuple(t.strip().lower() for t in text.replace(";", ",").split(",") if t.strip())
    if "all" in names:
        return LOG_TOPICS
    unknown = [n for n in names if n not in LOG_TOPICS]
    if unknown:
        raise ValueError(f"{var}: unknown topic(s) {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(LOG_TOPICS)} or 'all'")
    return names


def _default_threads() -> int:
    return os.cpu_count() or 1


def _default_cache_dir() -> Path:
    """The platform's cache folder (~/.cache/tensorforge on Linux, ~/Library/Caches on macOS,
    %LOCALAPPDATA% on Windows)."""
    import platformdirs
    return Path(platformdirs.user_cache_dir("tensorforge", appauthor=False))


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    parse: Callable[[str, str], Any]
    default: Callable[[], Any]
    doc: str
    default_text: str


# what ``log`` can switch on, each a logger under "tensorforge."
LOG_TOPICS = ("compile", "passes", "kernels", "cache")

SETTINGS: dict[str, Setting] = {s.name: s for s in (
    Setting("num_threads", "TENSORFORGE_NUM_THREADS", _positive_int, _default_threads,
            "Threads that compiled code (and the interpreter's BLAS) may use.", "all cores"),
    Setting("cache_dir", "TENSORFORGE_CACHE_DIR", _path, _default_cache_dir,
            "Folder of the on-disk code cache (compiled steps and kernels).",
            "the platform's user cache folder + tensorforge"),
    Setting("debug", "TENSORFORGE_DEBUG", _flag, lambda: False,
            "The CLI prints the traceback of an unexpected error.", "off"),
    Setting("dump_ir", "TENSORFORGE_DUMP_IR", _optional_path, lambda: None,
            "Write the generated code (LLVM IR / Triton source) of every build into this folder.",
            "unset"),
    Setting("log", "TENSORFORGE_LOG", _topics, lambda: (),
            "Diagnostic logs to stderr: comma-separated topics " + ", ".join(LOG_TOPICS)
            + " or 'all' (recompilations and why, pass timings, kernel counts, cache hits).", "unset"),
    Setting("vector_bits", "TENSORFORGE_VECTOR_BITS", _vector_bits, lambda: None,
            "Force the SIMD width the LLVM kernels are tiled for (128, 256 or 512); "
            "for testing AVX2 code on an AVX-512 host.", "the host's widest"),
    Setting("dynamic_batch", "TENSORFORGE_DYNAMIC_BATCH", _flag, lambda: True,
            "Build one LLVM step for every batch size (a placeholder dim declared None); off: one "
            "build per input shape.", "on"),
    Setting("small_kernel_work", "TENSORFORGE_SMALL_KERNEL_WORK", _non_negative_int, lambda: 256,
            "LLVM kernels whose largest buffer has at most this many elements are optimised for "
            "size, not speed (they compile much faster and run for microseconds); 0: none.", "256"),
    Setting("triton_tune", "TENSORFORGE_TRITON_TUNE", _flag, lambda: True,
            "Autotune Triton kernels' block sizes on the GPU (off: fixed defaults).", "on"),
    Setting("cuda_graphs", "TENSORFORGE_CUDA_GRAPHS", _flag, lambda: True,
            "Replay a Triton step as one CUDA graph after its first call.", "on"),
    Setting("mpi_timeout", "TENSORFORGE_MPI_TIMEOUT", _positive_float, lambda: 300.0,
            "Seconds a collective waits for the other ranks before the run is aborted.", "300"),
)}

_overrides: dict[str, Any] = {}


def _setting(name: str) -> Setting:
    try:
        return SETTINGS[name]
    except KeyError:
        raise KeyError(f"unknown setting {name!r}; settings are {', '.join(SETTINGS)}") from None


def get(name: str) -> Any:
    """The current value of setting ``name`` (override, else environment, else default)."""
    setting = _setting(name)
    if name in _overrides:
        return _overrides[name]
    text = os.environ.get(setting.env)
    if text is not None and (text.strip() or setting.parse in (_optional_path, _vector_bits, _topics)):
        return setting.parse(setting.env, text)
    return setting.default()


def is_set(name: str) -> bool:
    """Whether ``name`` was given (``config.set`` or a non-empty environment variable) rather than
    left to its default."""
    setting = _setting(name)
    return name in _overrides or bool(os.environ.get(setting.env, "").strip())


def set(name: str, value: Any) -> None:  # noqa: A001 - mirrors get
    """Set ``name`` for this process (wins over its environment variable). The value is checked
    with the same rules as the environment variable's text."""
    setting = _setting(name)
    if value is None:
        reset(name)
    else:
        text = ",".join(value) if isinstance(value, (tuple, list)) else str(value)
        _overrides[name] = setting.parse(f"config.set({name!r})", text)
    if name == "log":
        _apply_log_topics(get("log"))


def reset(name: str | None = None) -> None:
    """Forget ``config.set`` for ``name`` (or for every setting)."""
    if name is None:
        _overrides.clear()
    else:
        _setting(name)
        _overrides.pop(name, None)


@contextlib.contextmanager
def override(**values: Any) -> Iterator[None]:
    """``with config.override(num_threads=1): ...`` sets settings for the block only."""
    saved = {k: _overrides[k] for k in values if k in _overrides}
    try:
        for k, v in values.items():
            set(k, v)
        yield
    finally:
        for k in values:
            _overrides.pop(k, None)
        _overrides.update(saved)


def describe() -> str:
    """A Markdown table of every setting: variable, Python name, default, meaning."""
    rows = ["| environment variable | `tg.config` name | default | what it does |", "|---|---|---|---|"]
    for s in SETTINGS.values():
        rows.append(f"| `{s.env}` | `{s.name}` | {s.default_text} | {s.doc} |")
    return "\n".join(rows)


_handler: logging.Handler | None = None


def _apply_log_topics(topics: Iterable[str]) -> None:
    """Attach one stderr handler to the chosen ``tensorforge.<topic>`` loggers at INFO."""
    global _handler
    if _handler is None:
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(logging.Formatter("tensorforge.%(topic)s: %(message)s"))
        _handler.addFilter(_TopicFilter())
    for topic in LOG_TOPICS:
        logger = logging.getLogger(f"tensorforge.{topic}")
        if topic in topics:
            logger.setLevel(logging.INFO)
            if _handler not in logger.handlers:
                logger.addHandler(_handler)
        elif _handler in logger.handlers:
            logger.removeHandler(_handler)


class _TopicFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.topic = record.name.split(".", 1)[-1]
        return True


def log(*topics: str) -> None:
    """Switch the diagnostic logs on (``tg.config.log("compile", "passes")``, or ``"all"``) or off
    (no arguments). The same as ``TENSORFORGE_LOG=compile,passes``."""
    set("log", ",".join(topics))


def apply_environment() -> None:
    """Called once at import: honour TENSORFORGE_LOG set before Python started."""
    topics = get("log")
    if topics:
        _apply_log_topics(topics)
