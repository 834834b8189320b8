"""Debug mode (``tg.compile(..., check=True)``): the interpreter runs beside the compiled backend.

In the spirit of Theano's DebugMode: every call of a checked function runs the compiled step as
usual (so parameters are updated once, by the backend), then evaluates the same graph with the
NumPy interpreter, node by node, on the inputs and on a copy of the parameters taken before the
step. When an output or an updated parameter differs beyond tolerance, a ``CheckError`` names
the *first* node, in topological order, whose compiled value differs: its op, shapes, the max
absolute and relative difference, and its id and name in the user's graph.

Compiled steps do not expose their intermediate values (fusion keeps most of them in
registers), so the culprit is found by compiling probe functions with the same backend and
passes: first one whose outputs are every node that the differing value depends on (one build);
if every node agrees there (the bug needs the fusion that extra outputs prevent), a bisection
over the topological order with one probe output at a time. Probes run on the parameter values
of before the step, which are put back afterwards.
"""
from __future__ import annotations

import numpy as np

from .graph import format_shape
from .ops.registry import get_op

__all__ = ["CheckError", "Checker", "difference"]

RTOL = {"float16": 1e-2, "float32": 1e-3, "float64": 1e-9}    # a sum's rounding depends on its order
ATOL = {"float16": 1e-3, "float32": 1e-5, "float64": 1e-12}


class CheckError(AssertionError):
    """check=True: the compiled backend disagrees with the interpreter (the message names the node)."""


def difference(got, want) -> tuple[bool, float, float]:
    """(close?, max abs diff, max rel diff) of a compiled value against the interpreter's.

    NaN and +-inf must be at the same places; finite values within RTOL of the element plus
    RTOL of the largest magnitude in the array (so a sum's rounding is judged by its terms'
    scale), plus ATOL. Integers and bools must be equal."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return False, float("inf"), float("inf")
    if want.dtype.kind != "f":
        bad = got != want
        return (not bad.any()), float(bad.any()), float(bad.any())
    g, w = got.astype(np.float64), want.astype(np.float64)
    with np.errstate(all="ignore"):
        special = (np.isnan(g) != np.isnan(w)) | ((g == np.inf) != (w == np.inf)) | ((g == -np.inf) != (w == -np.inf))
        finite = np.isfinite(g) & np.isfinite(w)
        err = np.where(finite, np.abs(g - w), 0.0)
        rel = np.where(finite, err / np.maximum(np.abs(w), np.finfo(np.float64).tiny), 0.0)
        scale = np.max(np.abs(w[finite])) if finite.any() else 0.0
        dtype = str(want.dtype)
        tol = ATOL.get(dtype, 1e-5) + RTOL.get(dtype, 1e-4) * (np.abs(w) + scale)
        close = not special.any() and not (err > tol).any()
    max_abs = float("inf") if special.any() else float(err.max(initial=0.0))
    return close, max_abs, float(rel.max(initial=0.0))


def evaluate(program, arrays, params: dict) -> dict:
    """Every node's value, by the ops' NumPy references; ``params`` overrides parameter values."""
    env: dict = {nid: a for nid, a in zip(program.inputs, arrays)}
    values = program.graph.values
    for nid in program.order:
        if nid in env:
            continue
        d = program.node(nid)
        if d["op"] in ("parameter", "constant"):
            env[nid] = params.get(nid, values.get(nid))
            continue
        out = get_op(d["op"]).impl(*[env[i] for i in d["inputs"]], **dict(d["attrs"]))
        env[nid] = np.asarray(out).astype(program.dtypes[nid], copy=False)
    return env


class Checker:
    """Wraps one CompiledFunction's calls (see ``CompiledFunction(check=True)``)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, arrays, executable):
        fn = self.fn
        graph = fn.graph
        ids = [p.id for p, _ in fn.updates]
        if graph is not None:
            graph.sync_host()
        before = {i: np.array(graph.values[i]) for i in ids}
        results = executable(arrays)
        if graph is not None:
            graph.sync_host()
        after = {i: np.array(graph.values[i]) for i in ids}
        program = fn._program(arrays)
        env = evaluate(program, arrays, before)
        checks = [(f"output {k}", o.id, r) for k, (o, r) in enumerate(zip(fn.outputs, results))]
        checks += [(f"update of parameter {p.name!r}", n.id, after[p.id]) for p, n in fn.updates]
        for what, nid, got in checks:
            close, max_abs, max_rel = difference(got, env[nid])
            if not close:
                culprit = self._locate(program, arrays, env, nid, before, after)
                raise CheckError(self._message(program, what, nid, max_abs, max_rel, culprit))
        return results

    # -- finding the first node that differs ------------------------------------------------
    def _locate(self, program, arrays, env, bad, before, after):
        """(node id, max abs, max rel) of the first differing node that ``bad`` depends on."""
        from .compile import CompiledFunction
        import networkx as nx
        graph = program.graph
        needed = nx.ancestors(graph.nx, bad) | {bad}
        cands = [n for n in program.order if n in needed
                 and program.node(n)["op"] not in ("placeholder", "parameter", "constant")]

        def probe(nodes):
            fn = CompiledFunction(self.fn.inputs, [graph.tensor(n) for n in nodes], backend=self.fn.backend,
                                  passes=self.fn.passes, name=f"{self.fn.name}_check_probe")
            fn.updates = []                       # a probe never writes state
            return fn(*arrays)

        def first_differing(nodes, values):
            for n, v in zip(nodes, values):
                close, max_abs, max_rel = difference(v, env[n])
                if not close:
                    return n, max_abs, max_rel
            return None

        self._set_params(before)
        try:
            found = first_differing(cands, probe(cands)) if cands else None
            if found is None and cands:
                # every node agrees when all are outputs: bisect with one output at a time
                lo, hi = 0, len(cands) - 1
                found_hi = first_differing([cands[hi]], probe([cands[hi]]))
                while lo < hi:
                    mid = (lo + hi) // 2
                    got = first_differing([cands[mid]], probe([cands[mid]]))
                    if got is not None:
                        hi, found_hi = mid, got
                    else:
                        lo = mid + 1
                found = found_hi
        finally:
            self._set_params(after)
        return found

    def _set_params(self, values: dict) -> None:
        graph = self.fn.graph
        for nid, value in values.items():
            np.copyto(graph.values[nid], value)
        if graph is not None:
            graph.host_changed(list(values))

    def _message(self, program, what, nid, max_abs, max_rel, culprit) -> str:
        head = (f"check=True: backend {self.fn.backend.name!r} differs from the interpreter in {what} "
                f"(max abs diff {max_abs:.3g}, max rel diff {max_rel:.3g})")
        if culprit is None:
            return head + "; no single node of the graph differs when computed alone"
        node, a, r = culprit
        return head + f"; the first node that differs is {_describe(program, node)}: max abs diff {a:.3g}, " \
                      f"max rel diff {r:.3g}"


def _describe(program, nid: int) -> str:
    d = program.node(nid)
    ins = ", ".join(f"%{i} {format_shape(program.shapes[i])} {program.dtypes[i]}" for i in d["inputs"])
    return (f"node %{nid} {d['name']!r} (op {d['op']}, inputs [{ins}], output "
            f"{format_shape(program.shapes[nid])} {program.dtypes[nid]})")
