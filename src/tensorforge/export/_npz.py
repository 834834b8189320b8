"""Reading and writing the .npz array files of saved graphs and checkpoints, trusting nothing.

``read_npz`` opens the zip itself and reads each member with ``np.lib.format.read_array(...,
allow_pickle=False)``: a member that is not a ``.npy`` array, an object array (it would need
pickle), a dtype outside ``SUPPORTED_DTYPES`` (float16 runs on no backend), a truncated or
garbled member, or a damaged zip is a ``LoadError`` naming the file and the member. Arrays
come back in native byte order (a big-endian file would otherwise reach native code as is).
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np
import numpy.typing as npt

from .._typing import Array, PathLike

SUPPORTED_DTYPES = ("float32", "float64", "int32", "int64", "bool")


def npz_bytes(arrays: Mapping[str, npt.ArrayLike]) -> bytes:
    """The .npz file of ``arrays`` as bytes (hashed before it is written)."""
    buf = io.BytesIO()
    # numpy's stub types savez's **kwds like its allow_pickle flag (bool), not as arrays
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    return buf.getvalue()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_declared_size(zf: zipfile.ZipFile, member: str, where: str, error: type[Exception]) -> None:
    """The header's shape and dtype must account for exactly the member's size: a header that
    claims terabytes is refused before anything is allocated."""
    fmt = np.lib.format
    with zf.open(member) as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            raise error(f"{where}: member {member!r} has .npy format version {version}, not 1.0 or 2.0")
        header_end = f.tell()
    if dtype.hasobject:
        raise error(f"{where}: member {member!r} refused: it needs pickle (allow_pickle=False)")
    count = 1
    for n in shape:
        count *= n
    if header_end + count * dtype.itemsize != zf.getinfo(member).file_size:
        raise error(f"{where}: member {member!r} declares {shape} {dtype}, which does not match its size")


def _read_member(zf: zipfile.ZipFile, member: str, where: str, error: type[Exception]) -> Array:
    if not member.endswith(".npy"):
        raise error(f"{where}: member {member!r} is not a .npy array")
    try:
        _check_declared_size(zf, member, where, error)
        with zf.open(member) as f:
            arr = np.lib.format.read_array(f, allow_pickle=False)
    except error:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) or "Object arrays" in str(e):
            raise error(f"{where}: member {member!r} refused: it needs pickle (allow_pickle=False)") from None
        raise error(f"{where}: member {member!r} is not a readable array ({e})") from None
    except Exception as e:       # zlib.error, EOFError, BadZipFile, OSError ... from a damaged file
        raise error(f"{where}: member {member!r} is damaged ({type(e).__name__}: {e})") from None
    if not isinstance(arr, np.ndarray):
        raise error(f"{where}: member {member!r} is not an array")
    if arr.dtype.name not in SUPPORTED_DTYPES:
        raise error(f"{where}: member {member!r} has dtype {arr.dtype} (supported: {', '.join(SUPPORTED_DTYPES)})")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def read_npz(data: bytes, where: PathLike, error: type[Exception]) -> dict[str, Array]:
    """The arrays of the .npz ``data`` by name (``.npy`` stripped); ``error`` is the exception
    class to raise, ``where`` the file named in its message."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except Exception as e:
        raise error(f"{where}: not a readable .npz file ({type(e).__name__}: {e})") from None
    with zf:
        arrays: dict[str, Array] = {}
        try:
            members = zf.namelist()
        except Exception as e:
            raise error(f"{where}: not a readable .npz file ({type(e).__name__}: {e})") from None
        for member in members:
            name = member[:-4] if member.endswith(".npy") else member
            if name in arrays:
                raise error(f"{where}: member {member!r} appears twice")
            arrays[name] = _read_member(zf, member, str(where), error)
    return arrays


def read_file(path: PathLike, what: str, error: type[Exception]) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: the {what} is missing") from None
    except OSError as e:
        raise error(f"{path}: the {what} cannot be read ({e})") from None
