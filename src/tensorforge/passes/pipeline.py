"""The pass pipeline: a registry of graph passes by name, and ``run_passes``.

``tg.compile(..., passes=...)`` resolves its argument here: None means the
backend's default (``backend.default_passes``; the interpreter has none, so it
stays the honest reference), a list of names runs exactly those in that order,
and [] runs none. Every run is logged on the program as
(pass name, nodes before, nodes after, seconds).
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from ..program import Program, detach
from .cse import cse
from .dce import dce
from .fold import fold_constants
from .fusion import fuse
from .simplify import simplify

log = logging.getLogger("tensorforge.passes")

__all__ = ["COMPILER_PASSES", "DEFAULT_PASSES", "PASSES", "format_log", "run_passes", "resolve_passes", "stats"]

DEFAULT_PASSES = ("fold_constants", "simplify", "cse", "dce")

PASSES: dict[str, Callable[[Program], Program]] = {
    "fold_constants": fold_constants,
    "simplify": simplify,
    "cse": cse,
    "dce": dce,
    "fuse": fuse,
}

# what the compiled backends run: clean the graph up, then fuse, then drop what fusion left unused
COMPILER_PASSES = DEFAULT_PASSES + ("fuse", "dce")


def stats(program: Program) -> dict[str, int]:
    """How many nodes of each op the program holds (the sum is its node count)."""
    counts: dict[str, int] = {}
    for nid in program.order:
        op = program.graph.node(nid)["op"]
        counts[op] = counts.get(op, 0) + 1
    return dict(sorted(counts.items()))


def resolve_passes(passes, default: Sequence[str] = DEFAULT_PASSES) -> tuple[str, ...]:
    """The pass names to run: ``passes`` checked, or ``default`` when it is None."""
    if passes is None:
        passes = default
    if isinstance(passes, str):
        passes = [passes]
    names = tuple(passes)
    unknown = [n for n in names if n not in PASSES]
    if unknown:
        raise ValueError(f"unknown pass(es) {', '.join(map(repr, unknown))}; valid passes are "
                         f"{', '.join(PASSES)}")
    return names


def run_passes(program: Program, passes=None, default: Sequence[str] = DEFAULT_PASSES) -> Program:
    """Run the named passes on a private copy of ``program`` (the user's graph is never changed).

    With no passes to run, ``program`` itself is returned, untouched.
    """
    names = resolve_passes(passes, default)
    if not names:
        return program
    program = detach(program)
    for name in names:
        before, t0 = len(program.order), time.perf_counter()
        program = PASSES[name](program)
        program.pass_log.append((name, before, len(program.order), time.perf_counter() - t0))
    if log.isEnabledFor(logging.INFO):
        log.info("%s", format_log(program.pass_log).replace("\n", "; "))
    return program


def format_log(pass_log) -> str:
    """One line per pass: ``name: before -> after nodes (ms)``."""
    return "\n".join(f"{name}: {before} -> {after} nodes ({seconds * 1e3:.1f} ms)"
                     for name, before, after, seconds in pass_log)
