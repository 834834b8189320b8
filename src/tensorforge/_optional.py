"""Optional packages: one clear error, naming the extra to install, instead of an ImportError.

A feature that needs a package tensorforge does not require (onnx for ``--format onnx``,
mpi4py for ``mpiexec``, ...) calls :func:`require` before doing any work, so a user learns
what to install before a long training run rather than after it::

    onnx = require("onnx", extra="export", feature="--format onnx")

:class:`MissingOptional` is an ``ImportError`` (code that caught ImportError keeps working);
the command line prints its message as one line with exit code 2.
"""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingOptional", "require", "install_hint"]


class MissingOptional(ImportError):
    """A feature needs a package that is not installed; the message says which extra brings it."""

    def __init__(self, package: str, extra: str, feature: str):
        self.package, self.extra, self.feature = package, extra, feature
        super().__init__(f"{feature} needs {package}: {install_hint(extra)}", name=package)


def install_hint(extra: str) -> str:
    """The install line for an extra, quoted so that shells do not expand the brackets."""
    return f"pip install 'tensorforge[{extra}]'"


def require(package: str, extra: str, feature: str) -> ModuleType:
    """The imported module ``package``, or :class:`MissingOptional` naming ``extra`` and ``feature``.

    Only a missing package is translated: a package that is installed but broken lets its own
    error through, since reinstalling the extra would not fix it."""
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != package.split(".")[0]:
            raise
        raise MissingOptional(package, extra, feature) from None
