"""The Triton GPU backend: the shared kernel IR lowered to Triton kernels.

    scalar.py    scalar expressions -> Triton statements
    codegen.py   kernel-IR LoopSpec -> one @triton.jit kernel (elementwise or staged reductions)
    library/     matmul (tl.dot), conv (im2col + matmul), pooling, indexing, random, argmax, copy
    source.py    generated modules: sanitised identifiers, atomic cache files, import
    backend.py   program -> module + launch list over device buffers (registered as "triton")

Importing this package imports neither triton nor torch; the generated module does.
"""
from . import backend  # noqa: F401  (registers the backend)
