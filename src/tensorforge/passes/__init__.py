"""Graph passes: Program -> Program rewrites run between shape specialisation and a backend.

Each pass works on a private copy (see ``program.detach`` and ``rewrite.rebuild``) and
can be run and tested alone: constant folding, algebraic simplification,
common-subexpression elimination, dead-code elimination, and fusion into loop kernels
(``fusion.py``, producing the kernel IR of ``kernel_ir.py``). ``pipeline`` names them
and runs them in order for ``tg.compile(..., passes=...)``.
"""
from __future__ import annotations

from ..program import detach
from .cse import cse
from .dce import dce, live_nodes
from .fold import fold_constants
from .fusion import fuse
from .pipeline import COMPILER_PASSES, DEFAULT_PASSES, PASSES, format_log, resolve_passes, run_passes, stats
from .rewrite import Builder, rebuild
from .simplify import simplify

__all__ = ["COMPILER_PASSES", "DEFAULT_PASSES", "PASSES", "Builder", "cse", "dce", "detach", "fold_constants",
           "format_log", "fuse",
           "live_nodes", "rebuild", "resolve_passes", "run_passes", "simplify", "stats"]
