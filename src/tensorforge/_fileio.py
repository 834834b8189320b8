"""Files written whole or not at all, and groups of files that are trusted only together.

``atomic_write(path, data_or_writer)`` is the one way tensorforge writes a file: into a
temporary file in the same folder, then ``os.replace``, so a reader sees the old file or the
new one, never half of one. The temporary file is removed on any error; a process killed
outright (SIGKILL, power loss) cannot clean up, so each write first sweeps the temporary
files that dead writers of the same target left behind (their names carry the writer's pid).

``write_signed_group`` / ``read_signed_group`` keep several files (a cache entry) under one
sha256 that covers the entry's key and every file's bytes, stored in a signature file that is
written last. A reader that finds any file missing, changed, truncated, swapped with another
entry's, or the signature itself damaged gets ``None`` (a miss), never half-trusted data.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable, Union

__all__ = ["atomic_write", "write_signed_group", "read_signed_group"]

Writer = Union[bytes, Callable[[BinaryIO], object]]


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True                     # someone else's live process
    return True


def _sweep_dead_temps(path: Path) -> None:
    """Remove ``.<name>.<pid>.<rand>.tmp`` files of this target whose writer no longer runs."""
    prefix = f".{path.name}."
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return
    for p in siblings:
        name = p.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        parts = name[len(prefix):-len(".tmp")].split(".")
        if len(parts) != 2 or not parts[0].isdigit() or len(parts[1]) != 8:
            continue                    # another target's temporary file, or not ours at all
        if not _pid_alive(int(parts[0])):
            try:
                p.unlink()
            except OSError:
                pass


def atomic_write(path: str | os.PathLike[str], data_or_writer: Writer, *, mode: int = 0o644, durable: bool = True) -> Path:
    """Write ``path`` atomically. ``data_or_writer``: bytes, or a function given the open binary
    temporary file (its ``.name`` is the temporary path). ``durable`` fsyncs before the rename
    (saved models and checkpoints; caches, which are verified on read, skip it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_dead_temps(path)
    tmp = _temp_name(path)
    try:
        with open(tmp, "xb", opener=lambda p, flags: os.open(p, flags, mode)) as f:
            if isinstance(data_or_writer, (bytes, bytearray, memoryview)):
                f.write(data_or_writer)
            else:
                data_or_writer(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, mode)             # the umask may have narrowed it; saved files are ordinary files
        os.replace(tmp, path)
    finally:
        if tmp.exists():                # any failure, including KeyboardInterrupt: no litter
            try:
                tmp.unlink()
            except OSError:
                pass
    return path


# ---- signed groups of files (cache entries) --------------------------------------------------

_SIG_MAGIC = "tensorforge-signed-group 1"


def _group_digest(key: str, files: dict[str, bytes]) -> str:
    """One sha256 over the key and each (suffix, length, bytes): nothing can be moved between
    entries, dropped, or cut without changing it."""
    h = hashlib.sha256()
    h.update(f"{_SIG_MAGIC}\0{key}\0".encode())
    for suffix in sorted(files):
        data = files[suffix]
        h.update(f"{suffix}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def write_signed_group(folder: str | os.PathLike[str], key: str, files: dict[str, bytes]) -> None:
    """Write ``<key>.<suffix>`` for each file, then ``<key>.sig`` last (all atomic). Raises OSError."""
    folder = Path(folder)
    sig = folder / f"{key}.sig"
    try:
        sig.unlink()                    # while the files change, the entry is invalid
    except FileNotFoundError:
        pass
    for suffix, data in files.items():
        atomic_write(folder / f"{key}.{suffix}", data, durable=False)
    text = f"{_SIG_MAGIC}\n{' '.join(sorted(files))}\n{_group_digest(key, files)}\n"
    atomic_write(sig, text.encode(), durable=False)


def read_signed_group(folder: str | os.PathLike[str], key: str) -> tuple[dict[str, bytes] | None, str]:
    """(files by suffix, "") if the entry is whole and authentic; (None, why) otherwise. Never raises."""
    folder = Path(folder)
    try:
        lines = (folder / f"{key}.sig").read_bytes().decode("ascii").split("\n")
    except FileNotFoundError:
        return None, "no entry"
    except (OSError, UnicodeDecodeError) as e:
        return None, f"unreadable signature ({type(e).__name__})"
    if len(lines) < 3 or lines[0] != _SIG_MAGIC:
        return None, "damaged signature"
    suffixes = lines[1].split()
    if not suffixes or any(not s.isalnum() for s in suffixes):
        return None, "damaged signature"
    files = {}
    for suffix in suffixes:
        try:
            files[suffix] = (folder / f"{key}.{suffix}").read_bytes()
        except OSError as e:
            return None, f"{key}.{suffix} unreadable ({type(e).__name__})"
    if not hmac.compare_digest(_group_digest(key, files).encode(), lines[2].encode()):
        return None, "contents do not match the signature"
    return files, ""
