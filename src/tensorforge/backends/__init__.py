"""Backends: each turns a specialised Program into an executable.

A backend has a ``name`` and ``build(program, passes=None) -> executable``; the
executable is called with the list of input arrays, returns the list of output
arrays, and writes the updates into the parameter buffers in place.
"""
from __future__ import annotations

_BACKENDS: dict[str, object] = {}


def register_backend(backend) -> None:
    _BACKENDS[backend.name] = backend


def get_backend(name):
    if not isinstance(name, str):
        return name  # an object that already implements the interface
    if name not in _BACKENDS:
        _load(name)
    try:
        return _BACKENDS[name]
    except KeyError:
        if name in ("llvm", "triton"):
            raise ValueError(f"backend {name!r} is not built yet; available now: "
                             f"{', '.join(sorted(set(_BACKENDS) | {'interp', 'llvm'}))}") from None
        raise ValueError(f"unknown backend {name!r}; choose one of interp, llvm, triton") from None


def _load(name: str) -> None:
    import importlib
    if name in ("interp", "llvm", "triton"):
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise            # the backend exists but something it needs is missing: say what
