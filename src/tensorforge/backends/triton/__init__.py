"""The Triton GPU backend: the shared kernel IR lowered to ``@triton.jit`` source text.

    source.py    generated modules: sanitised identifiers, atomic writes to the cache, import
    scalar.py    scalar expressions (ops' declarations) -> Triton expression statements
    codegen.py   kernel-IR LoopSpec -> one @triton.jit kernel + its launch description

This package imports nothing heavy (no triton, no torch): the backend module, which
registers the backend, imports them when it is used.
"""
