"""Dead-code elimination: keep only what the outputs and the updates need.

Also drops no-op updates (a parameter whose new value is the parameter itself, as
simplification can leave behind). The input placeholders always stay: the compiled
function's calls bind them even when nothing uses them.
"""
from __future__ import annotations

from dataclasses import replace

from ..program import Program
from .rewrite import rebuild

__all__ = ["dce", "live_nodes"]


def live_nodes(program: Program) -> set[int]:
    """Every node that an output or an update (target or new value) depends on."""
    graph = program.graph
    stack = list(program.outputs) + [n for pair in program.updates for n in pair]
    live: set[int] = set()
    while stack:
        nid = stack.pop()
        if nid not in live:
            live.add(nid)
            stack.extend(graph.node(nid)["inputs"])
    return live


def dce(program: Program) -> Program:
    """The program without dead nodes and without no-op updates."""
    program = replace(program, updates=[(p, n) for p, n in program.updates if p != n])
    return rebuild(program, keep=live_nodes(program))[0]
