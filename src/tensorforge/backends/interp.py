"""The NumPy interpreter: runs a Program node by node, one vectorised NumPy call each.

It is the reference every compiled backend is checked against, and the honest
baseline they are measured against. Run on a fused program (``passes=COMPILER_PASSES``) it
evaluates each kernel-IR node with NumPy; a multi-output kernel's further outputs are kept
aside for the ``fused_output`` nodes that read them.
"""
from __future__ import annotations

import time
from functools import partial

import numpy as np

from ..kernel_ir import CONV_EPILOGUES, evaluate_all, evaluate_conv_epilogue, evaluate_matmul_epilogue
from ..ops.registry import get_op
from .. import runtime
from ..program import Program
from . import register_backend


class NodeError(RuntimeError):
    """A node failed while running; the message names the node, its op and its shapes."""


class InterpretedFunction:
    def __init__(self, program: Program):
        self.program = program
        g = program.graph
        self._inputs = {nid: i for i, nid in enumerate(program.inputs)}
        self._steps = []  # (node id, impl, input ids, attrs) for every non-leaf node
        self._leaves = []
        self._leafset = set(program.inputs)
        for nid in program.order:
            d = g.node(nid)
            if d["op"] == "placeholder":
                continue
            if d["op"] in ("parameter", "constant"):
                self._leaves.append(nid)
                self._leafset.add(nid)
                continue
            self._steps.append((nid, self._impl(nid, d), d["inputs"], dict(d["attrs"])))
        self._side_outputs: dict[int, list] = {}    # multi-output kernel -> its further outputs

    def _impl(self, nid: int, d: dict):
        """The NumPy call of node ``nid``: the op's own, except for multi-output kernels and
        the ``fused_output`` nodes that read their further outputs."""
        attrs = dict(d["attrs"])
        if d["op"] in ("fused", "matmul_epilogue", *CONV_EPILOGUES) and attrs["spec"].extra_outs:
            if d["op"] in CONV_EPILOGUES:
                evaluate = partial(evaluate_conv_epilogue, d["op"])
            else:
                evaluate = evaluate_all if d["op"] == "fused" else evaluate_matmul_epilogue

            def run_kernel(*arrays, spec, **conv_attrs):
                first, *rest = evaluate(spec, *arrays, **conv_attrs)
                self._side_outputs[nid] = rest
                return first
            return run_kernel
        if d["op"] == "fused_output":
            kernel = d["inputs"][0]
            return lambda _first, index: self._side_outputs[kernel][index]
        return get_op(d["op"]).impl

    can_time_kernels = True

    def __call__(self, arrays):
        return self._run(arrays)

    def timed_call(self, arrays):
        """One step, and how long each NumPy call took: (results, [(node, seconds), ...])."""
        times: list = []
        results = self._run(arrays, times)
        return results, times

    def _run(self, arrays, times: list | None = None):
        runtime.limit_library_threads()     # BLAS threads follow tg.set_num_threads
        prog = self.program
        env = {nid: arrays[i] for nid, i in self._inputs.items()}
        values = prog.graph.values
        for nid in self._leaves:
            env[nid] = values[nid]
        for nid, impl, ins, attrs in self._steps:
            start = time.perf_counter()
            try:
                out = impl(*[env[i] for i in ins], **attrs)
            except Exception as e:  # noqa: BLE001 - re-raised with the node named
                raise NodeError(f"{prog.describe_node(nid)} raised {type(e).__name__}: {e}") from e
            if times is not None:
                times.append((self._label(nid), time.perf_counter() - start))
            want = prog.dtypes[nid]
            if out.dtype != want:
                out = out.astype(want)
            if out.shape != prog.shapes[nid]:  # an op's impl and its shape rule disagree: a bug to report
                raise NodeError(f"{prog.describe_node(nid)} produced shape {out.shape}, but its shape rule "
                                f"says {prog.shapes[nid]}")
            env[nid] = out
        # copy what could alias a buffer that the updates below overwrite, and outputs that are
        # views of a parameter or input (reshape, transpose ...): a later update or the caller's
        # own writes would otherwise change an array already returned
        results = [np.array(env[o]) if (prog.updates or o in self._leafset or self._aliases_leaf(env[o], env))
                   else env[o] for o in prog.outputs]
        _unshare(results)
        new_values = [(p, env[n]) for p, n in prog.updates]
        # updates are simultaneous: a new value that is (a view of) a buffer that another
        # update overwrites (e.g. swapping two parameters) must be copied before any write
        targets = [values[p] for p, _ in new_values]
        new_values = [(p, np.array(new) if any(np.may_share_memory(new, t) for t in targets) else new)
                      for p, new in new_values]
        for p, new in new_values:
            np.copyto(values[p], new, casting="same_kind")
        return results

    def _label(self, nid: int) -> str:
        d = self.program.graph.node(nid)
        return f"%{nid} {d['op']} {d['name']!r} -> {self.program.shapes[nid]} {self.program.dtypes[nid]}"

    def _aliases_leaf(self, arr: np.ndarray, env: dict) -> bool:
        return arr.base is not None and any(np.may_share_memory(arr, env[i]) for i in self._leafset)

    def __str__(self) -> str:
        return f"interpreter: {len(self._steps)} NumPy calls"


def _unshare(results: list) -> None:
    """Copy each result that shares memory with an earlier one (an output that is a view of
    another output, or the same node asked for twice): every output is an array of its own,
    as the compiled backends return, so writing into one never changes another."""
    for i, r in enumerate(results):
        if any(np.may_share_memory(r, earlier) for earlier in results[:i]):
            results[i] = np.array(r)


class InterpBackend:
    name = "interp"

    def build(self, program: Program, passes=None) -> InterpretedFunction:
        return InterpretedFunction(program)


register_backend(InterpBackend())
