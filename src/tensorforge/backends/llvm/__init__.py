"""The LLVM CPU backend: fused loop kernels and library kernels in one native module per step.

    jit.py       host target machine, optimisation pipeline, MCJIT, on-disk object cache
    scalar.py    scalar expressions (ops' declarations) -> IR instructions
    vecmath.py   vectorisable exp/log/tanh/pow written in IR (no libm calls)
    loops.py     kernel-IR LoopSpec -> one loop-nest function
    library/     matmul, conv, pooling, indexing, random, argmax, copy
    backend.py   program -> module + entry function; the executable (registered as "llvm")
"""
from . import backend  # noqa: F401  (registers the backend)
