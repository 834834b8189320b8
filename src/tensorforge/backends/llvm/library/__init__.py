"""Library kernels of the LLVM backend: one LLVM function per op instance, shapes baked in.

Each emitter ``emit(module, name, inputs, out, attrs) -> ir.Function`` adds to ``module`` a
function ``void name(ptr out, ptr in0, ptr in1, ...)``; inputs are read through the strides
and offset of their ``Operand`` (so transposed or broadcast views need no copy), the output
is contiguous C order with offset 0.
"""
from __future__ import annotations

from ...common import Operand, library_registrar  # shared with the Triton backend

LIBRARY: dict[str, callable] = {}   # op name -> emitter
register = library_registrar(LIBRARY, "library kernel")   # decorator: @register("op name")


# the emitter modules register themselves on import (kept at the bottom: they import Operand)
from . import linalg, conv, epilogue  # noqa: E402,F401
from . import indexing, nn, random, reduce  # noqa: E402,F401  (pooling, indexing, random, argmax, copy)
