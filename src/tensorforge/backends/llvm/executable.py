"""The executable of an LLVM build: ``LLVMFunction`` holds the compiled module, the memory arena
and the table of buffer pointers, and runs a whole step as one native call (``tf_step``).

backend.py lowers a Program and hands the compiled module and its *manifest* (the plain-data
description of every buffer, input, output and update copy) to ``LLVMFunction``; the on-disk
step cache (step_cache.py) stores the same manifest, so a cached step is rebuilt here without
lowering anything. A build generic in the batch size (symbolic_step.py) carries polynomials in
its manifest, evaluated per batch size by ``SymbolicSizes``.
"""
from __future__ import annotations

import ctypes
import math
import sys
import threading
import time

import numpy as np

from ...program import Program
from ..common import is_contiguous as _is_contiguous
from .library import Operand

ALIGN = 64
ENTRY = "tf_step"          # the one exported function: a whole step, one native call


def _aligned_empty(shape, dtype) -> np.ndarray:
    """A C-contiguous array whose data starts on a 64-byte boundary (full vector loads)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


MANIFEST_VERSION = 2


class LLVMFunction:
    """The executable of one program: a slot table over buffers, and the compiled entry point.

    Built from a manifest (plain data), so that a step found in the disk cache runs without
    passes, lowering or LLVM: the warm path only reads two files and maps the object code."""

    def __init__(self, manifest: dict, consts: dict, user_graph, compiled, build_seconds: float,
                 program: Program | None = None):
        self.program = program
        self.manifest = manifest
        self.pass_log = manifest.get("pass_log", [])
        self._compiled = compiled
        self.build_seconds = build_seconds
        blocks = [_aligned_empty((n,), np.uint8) for n in manifest["blocks"]]
        slots = manifest["slots"]
        self._arrays: dict[int, np.ndarray] = {}   # slot -> the array behind it (not inputs/outputs)
        self._table = (ctypes.c_void_p * max(1, len(slots)))()
        self._input_slots, self._fresh_slots = [], []
        self._outputs = manifest["outputs"]
        self._sym = None
        if manifest.get("symbolic"):         # sizes, outputs and the arena follow the batch size
            from .symbolic_step import SymbolicSizes
            self._sym = SymbolicSizes(manifest)
        for i, sl in enumerate(slots):
            kind = sl["kind"]
            if kind == "dim" or (kind == "block" and self._sym is not None):
                continue                     # set per call / per capacity by SymbolicSizes
            if kind == "input":
                self._input_slots.append((i, sl["pos"]))
                continue
            if kind == "output":
                self._fresh_slots.append((i, tuple(sl["shape"]), np.dtype(sl["dtype"])))
                continue
            if kind == "block":
                nbytes = math.prod(sl["shape"]) * np.dtype(sl["dtype"]).itemsize
                arr = blocks[sl["block"]][:nbytes].view(sl["dtype"]).reshape(sl["shape"])
            elif kind == "leaf":
                arr = user_graph.values[sl["node"]]
            else:
                arr = consts[sl["name"]]
            self._arrays[i] = arr
            self._table[i] = arr.ctypes.data
        self._input_pos = {i: pos for i, pos in self._input_slots}
        self.can_time_kernels = bool(manifest.get("profiled"))
        if self.can_time_kernels:
            self._cycles = np.zeros(len(manifest["kernels"]) + 2, np.uint64)
            self._profiled_entry = compiled.function(ENTRY, None, [ctypes.c_void_p, ctypes.c_void_p])
            self._entry, self._entry_seconds = self._timed_entry, 0.0
        else:
            self._entry = compiled.function(ENTRY, None, [ctypes.c_void_p])
        self._lock = threading.Lock()
        self._last: dict[int, np.ndarray] = {}

    def _output_array(self, slot, shape, dtype) -> np.ndarray:
        """A new array for an output, or last call's one when the caller has let go of it.

        Fresh memory costs page faults (for 64 MB about as much as the kernel itself), so an
        output nobody references any more is recycled, as array libraries' allocators do."""
        last = self._last.get(slot)
        if last is not None and sys.getrefcount(last) == 3 and last.shape == shape:   # _last, `last`, the argument
            return last
        self._last[slot] = out = np.empty(shape, dtype)
        return out

    def _read_output(self, out: dict, arrays, fresh):
        """The output described by ``out``: the fresh array itself when the output is that whole
        array, else a copy read through its own shape and strides (a view of another output, of
        an input or of a parameter comes back as an array of its own, with its own shape, that no
        later step or in-place update can change)."""
        slot = out["slot"]
        if slot in fresh:
            whole = fresh[slot]
            # decided once per output (the manifest is fixed): the hot path of a step is this call
            if out.get("_whole") is None:
                out["_whole"] = _is_whole_array(whole, _operand(out))
            return whole if out["_whole"] else _strided_copy(whole, _operand(out))
        opnd = _operand(out)
        src = arrays[self._input_pos[slot]] if slot in self._input_pos else self._arrays[slot]
        return _strided_copy(src, opnd)

    def __call__(self, arrays):
        with self._lock:
            table = self._table
            if self._sym is not None:
                self._sym.bind(self, arrays)
            for slot, pos in self._input_slots:
                table[slot] = arrays[pos].ctypes.data
            fresh = {}
            for slot, shape, dtype in self._fresh_slots:
                fresh[slot] = out = self._output_array(slot, shape, dtype)
                table[slot] = out.ctypes.data
            self._entry(table)
            results = [self._read_output(o, arrays, fresh) for o in self._outputs]
        # the same node asked for twice: distinct arrays, as every other backend returns
        seen = set()
        for i, r in enumerate(results):
            if id(r) in seen:
                results[i] = r.copy()
            seen.add(id(r))
        return results

    def _timed_entry(self, table) -> None:
        start = time.perf_counter()
        self._profiled_entry(table, self._cycles.ctypes.data)
        self._entry_seconds = time.perf_counter() - start

    def timed_call(self, arrays):
        """One step, and how long each kernel took: (results, [(kernel, seconds), ...]).

        Only a profiling build (``build(..., profile=True)``) counts cycles. They are turned
        into seconds by the wall time of the native call, so no clock rate is assumed."""
        if not self.can_time_kernels:
            raise RuntimeError("this executable was built without profile=True: it does not time its kernels")
        self._cycles[:] = 0
        results = self(arrays)
        *per_call, total = (int(c) for c in self._cycles)
        seconds_per_cycle = self._entry_seconds / total if total else 0.0
        labels = list(self.manifest["kernels"]) + ["update copies (parameters not written in place)"]
        return results, [(label, c * seconds_per_cycle) for label, c in zip(labels, per_call)]

    @property
    def ir(self) -> str:
        """The optimised LLVM IR of the whole step."""
        return self._compiled.ir

    @property
    def asm(self) -> str:
        return self._compiled.asm

    def __str__(self) -> str:
        where = ", from the disk cache" if self._compiled.from_cache else ""
        head = (f"llvm: {len(self.manifest['kernels'])} kernels in one native call "
                f"(build {self.build_seconds * 1e3:.0f} ms{where})")
        return "\n".join([head, self.manifest["summary"]] + ["  " + k for k in self.manifest["kernels"]])


def _operand(out: dict) -> Operand:
    return Operand(tuple(out["shape"]), tuple(out["strides"]), out["offset"], out["dtype"])


def _is_whole_array(arr: np.ndarray, opnd: Operand) -> bool:
    """Whether ``opnd`` reads exactly ``arr`` as it is (same shape, dtype, C order from 0)."""
    return (tuple(arr.shape) == opnd.shape and arr.dtype == np.dtype(opnd.dtype)
            and _is_contiguous(opnd))


def _strided_copy(arr: np.ndarray, opnd: Operand) -> np.ndarray:
    flat = arr.reshape(-1)
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(flat[opnd.offset:], shape=opnd.shape,
                                           strides=[s * item for s in opnd.strides])
    return np.array(view, dtype=opnd.dtype, order="C")
