"""The Triton backend: a fused program becomes one generated Triton module and a launch list.

Like the LLVM backend (same passes, same kernel IR, same view and memory handling from
``backends/common.py`` and ``backends/memory.py``), but the kernels are ``@triton.jit``
functions (``codegen.py`` for fused groups, ``library/`` for the rest) and the
buffers are torch tensors on the GPU:

* parameters and optimizer state live on the device across steps (``DeviceParameter``
  mirrors: the host copy in ``graph.values`` is refreshed only when someone reads it);
* a step copies in only the minibatch and copies out only the requested outputs;
* on a GPU the whole launch sequence is captured once in a CUDA graph, so a step is
  one replay; under ``TRITON_INTERPRET=1`` (CI, no GPU) the same kernels run on the CPU.
"""
from __future__ import annotations

import hashlib
import itertools
import math
import os
import threading
import time
from contextlib import contextmanager

import numpy as np

from ...kernel_ir import CONV_EPILOGUES
from ...passes.fusion import VIEW_OPS
from ...passes.pipeline import COMPILER_PASSES
from ... import config
from ...program import Program
from .. import memory, register_backend
from ..common import Operand, contiguous, is_contiguous, view_operand
from . import library
from .codegen import emit_loop_kernel
from .source import load_module, module_source

_TORCH_DTYPES = {"float32": "float32", "float64": "float64", "int64": "int64", "int32": "int32",
                 "int16": "int16", "int8": "int8", "uint8": "uint8", "uint16": "uint16",
                 "uint32": "uint32", "uint64": "uint64",
                 "bool": "int8"}     # bool lives in memory as int8 0/1, as the kernels expect


class TritonUnavailable(RuntimeError):
    """The Triton backend cannot run here; the message says what to install or set."""


def _torch():
    try:
        import torch
    except ImportError:
        raise TritonUnavailable("the triton backend keeps its buffers in PyTorch tensors: "
                                "pip install torch (a CUDA build for a GPU)") from None
    return torch


def device() -> str:
    """"cuda" on a machine with a visible NVIDIA GPU, "cpu" under TRITON_INTERPRET=1."""
    torch = _torch()
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "cpu"
    if not torch.cuda.is_available():
        raise TritonUnavailable("backend='triton' needs an NVIDIA GPU and none is visible to PyTorch; "
                                "set TRITON_INTERPRET=1 (before importing triton) to run the kernels "
                                "on the CPU with Triton's interpreter (slow), or use backend='llvm'")
    return "cuda"


def _tdtype(dtype: str):
    torch = _torch()
    try:
        return getattr(torch, _TORCH_DTYPES[str(dtype)])
    except KeyError:
        raise TypeError(f"the triton backend does not support dtype {dtype}; it supports "
                        f"{', '.join(sorted(_TORCH_DTYPES))}") from None


class DeviceParameter:
    """A parameter's device copy. ``stale``: the device is newer than ``graph.values``;
    ``host_newer``: the host was written since the last upload."""

    def __init__(self, graph, nid: int, dev: str):
        torch = _torch()
        host = graph.values[nid]
        self.graph, self.nid = graph, nid
        if dev == "cpu":   # the interpreter: share the numpy memory, nothing ever goes stale
            self.tensor = torch.from_numpy(host.view(np.int8) if host.dtype == np.bool_ else host)
        else:
            self.tensor = torch.empty(host.shape, dtype=_tdtype(host.dtype.name), device=dev)
            self.tensor.copy_(torch.from_numpy(np.ascontiguousarray(host).view(np.int8)
                                               if host.dtype == np.bool_ else host))
        self.shared = dev == "cpu"
        self.stale = False
        self.host_newer = False

    def to_host(self) -> None:
        if not self.shared:
            host = self.graph.values[self.nid]
            data = self.tensor.cpu().numpy()
            host[...] = data.view(np.bool_) if host.dtype == np.bool_ else data
        self.stale = False

    def from_host(self) -> None:
        if not self.shared:
            torch = _torch()
            host = self.graph.values[self.nid]
            self.tensor.copy_(torch.from_numpy(host.view(np.int8) if host.dtype == np.bool_ else host))
        self.host_newer = False


def _parameter_tensor(graph, nid: int, dev: str):
    mirror = graph.device_mirrors.get(nid)
    if mirror is None or mirror.tensor.device.type != dev:
        mirror = DeviceParameter(graph, nid, dev)
        graph.device_mirrors[nid] = mirror
    return mirror


class _Lowering:
    """Walks a fused program: kernel sources, buffers and the launch list."""

    def __init__(self, program: Program, dev: str):
        self.p, self.g, self.dev = program, program.graph, dev
        self.user_graph = program.source or program.graph
        self.origin = program.origin or {}
        self.operand: dict[int, tuple[int, Operand]] = {}
        self.buffers: dict[int, tuple] = {}       # computed base -> (shape, dtype)
        self.leaves: dict[int, object] = {}       # base -> DeviceParameter or constant tensor
        self.sources: list[str] = []
        self.calls: list[tuple] = []              # (kind, name, info, out base, input bases)
        self.extra_writes: dict[int, list] = {}   # call index -> further outputs of a multi-output kernel
        self.kernels: list[str] = []
        self._tmp = iter(range(-1, -10**9, -1))

    def _own(self, nid):
        self.operand[nid] = (nid, contiguous(self.p.shapes[nid], self.p.dtypes[nid]))

    def lower(self) -> None:
        for nid in self.p.order:
            d = self.g.node(nid)
            op = d["op"]
            if op == "placeholder":
                self._own(nid)
            elif op in ("parameter", "constant"):
                self._leaf(nid, d)
            elif op in VIEW_OPS:
                src = d["inputs"][0]
                base, opnd = self.operand[src]
                args = (op, dict(d["attrs"]), self.p.shapes[src], self.p.shapes[nid])
                view = view_operand(*args, opnd)
                if view is None:
                    base, opnd = self._materialise(src)
                    view = view_operand(*args, opnd)
                self.operand[nid] = (base, view)
            elif op == "fused":
                self._fused(nid, d)
            elif op == "fused_output":             # written by its multi-output kernel, in order
                writer = max(k for k, call in enumerate(self.calls) if call[3] == d["inputs"][0])
                self.buffers[nid] = (tuple(self.p.shapes[nid]), self.p.dtypes[nid])
                self._own(nid)
                written = self.extra_writes.setdefault(writer, [])
                if dict(d["attrs"])["index"] != len(written):      # pointers are passed by position
                    raise NotImplementedError(f"the outputs of a multi-output kernel come out of order at "
                                              f"{self.p.describe_node(nid)}")
                written.append(nid)
            elif op == "matmul_epilogue":
                self._matmul_epilogue(nid, d)
            elif op in CONV_EPILOGUES:
                self._conv_epilogue(nid, d)
            elif op in library.LIBRARY:
                self._library(nid, d)
            else:
                raise NotImplementedError(f"the triton backend has no kernel for {self.p.describe_node(nid)}")
        for o in self.p.outputs:           # outputs must show values from before the updates
            if self.operand[o][0] in {p for p, _ in self.p.updates}:
                self._materialise(o)
        self.update_values = []
        for param, new in self.p.updates:
            base, opnd = self.operand[new]
            if self.g.node(base)["op"] in ("parameter", "constant", "placeholder") or not is_contiguous(opnd):
                base, opnd = self._materialise(new)
            self.update_values.append((param, base))

    def _leaf(self, nid, d):
        torch = _torch()
        user = self.origin.get(nid, nid)
        if d["op"] == "parameter" and self.user_graph.values.get(user) is self.g.values[nid]:
            self.leaves[nid] = _parameter_tensor(self.user_graph, user, self.dev)
        else:
            arr = np.asarray(self.g.values[nid])
            data = arr.view(np.int8) if arr.dtype == np.bool_ else arr
            self.leaves[nid] = torch.from_numpy(np.array(data)).to(self.dev)
        self._own(nid)

    def _materialise(self, nid):
        base, opnd = self.operand[nid]
        tmp = next(self._tmp)
        self.buffers[tmp] = (tuple(opnd.shape), opnd.dtype)
        name = f"k{len(self.calls)}_copy"
        text, info = library.LIBRARY["copy"](name, [opnd], contiguous(opnd.shape, opnd.dtype), {})
        self.sources.append(text)
        self.calls.append(("library", name, info, tmp, [base]))
        self.kernels.append(f"{name}: copy {opnd.shape} {opnd.dtype} (materialise a view)")
        self.operand[nid] = (tmp, contiguous(opnd.shape, opnd.dtype))
        return self.operand[nid]

    def _fused(self, nid, d):
        spec = dict(d["attrs"])["spec"]
        bases = []
        for i in d["inputs"]:
            base, opnd = self.operand[i]
            if not is_contiguous(opnd):
                base, opnd = self._materialise(i)
            bases.append(base)
        self.buffers[nid] = (tuple(self.p.shapes[nid]), self.p.dtypes[nid])
        self._own(nid)
        name = f"k{len(self.calls)}_fused"
        text, info = emit_loop_kernel(name, spec, [self.p.dtypes[i] for i in d["inputs"]])
        self.sources.append(text)
        self.calls.append(("fused", name, info, nid, bases))
        from ...kernel_ir import describe
        self.kernels.append(f"{name}: {describe(spec)}")

    def _matmul_epilogue(self, nid, d):
        """One matmul kernel that stores its epilogue's values (its further inputs are read as
        contiguous buffers, like a fused kernel's; further outputs follow the inputs)."""
        a, b, *rest = d["inputs"]
        operands = [self.operand[i][1] for i in (a, b)]
        bases = [self.operand[i][0] for i in (a, b)]
        for i in rest:
            base, opnd = self.operand[i]
            if not is_contiguous(opnd):
                base, opnd = self._materialise(i)
            operands.append(opnd)
            bases.append(base)
        self.buffers[nid] = (tuple(self.p.shapes[nid]), self.p.dtypes[nid])
        self._own(nid)
        out = self.operand[nid][1]
        name = f"k{len(self.calls)}_matmul_epilogue"
        spec = dict(d["attrs"])["spec"]
        text, info = library.LIBRARY["matmul_epilogue"](name, operands, out, {"spec": spec})
        self.sources.append(text)
        self.calls.append(("library", name, info, nid, bases))
        from ...kernel_ir import describe
        self.kernels.append(f"{name}: matmul({operands[0].shape}, {operands[1].shape}), then {describe(spec)}")

    def _conv_epilogue(self, nid, d):
        """The unfused form of a convolution epilogue (passes/fusion_conv_epilogue.py): the
        convolution into a temporary buffer, then the epilogue as a fused kernel reading it
        (further outputs follow, written by that kernel)."""
        conv, n_conv = CONV_EPILOGUES[d["op"]]
        own, rest = d["inputs"][:n_conv], d["inputs"][n_conv:]
        operands = [self.operand[i][1] for i in own]
        attrs = dict(d["attrs"])
        spec = attrs["spec"]
        tmp = next(self._tmp)
        self.buffers[tmp] = (tuple(spec.space), self.p.dtypes[nid])
        conv_out = contiguous(tuple(spec.space), self.p.dtypes[nid])
        name = f"k{len(self.calls)}_{conv}"
        text, info = library.LIBRARY[conv](name, operands, conv_out,
                                           {"stride": attrs["stride"], "padding": attrs["padding"]})
        self.sources.append(text)
        self.calls.append(("library", name, info, tmp, [self.operand[i][0] for i in own]))
        self.kernels.append(f"{name}: {conv}({', '.join(str(o.shape) for o in operands)}) -> {conv_out.shape}")
        bases = [tmp]
        for i in rest:
            base, opnd = self.operand[i]
            if not is_contiguous(opnd):
                base, opnd = self._materialise(i)
            bases.append(base)
        self.buffers[nid] = (tuple(self.p.shapes[nid]), self.p.dtypes[nid])
        self._own(nid)
        name = f"k{len(self.calls)}_fused"
        text, info = emit_loop_kernel(name, spec, [self.p.dtypes[nid]] + [self.p.dtypes[i] for i in rest])
        self.sources.append(text)
        self.calls.append(("fused", name, info, nid, bases))
        from ...kernel_ir import describe
        self.kernels.append(f"{name}: {describe(spec)} (the epilogue of {self.p.describe_node(nid)})")

    def _library(self, nid, d):
        operands = [self.operand[i][1] for i in d["inputs"]]
        bases = [self.operand[i][0] for i in d["inputs"]]
        self.buffers[nid] = (tuple(self.p.shapes[nid]), self.p.dtypes[nid])
        self._own(nid)
        out = self.operand[nid][1]
        name = f"k{len(self.calls)}_{d['op']}"
        text, info = library.LIBRARY[d["op"]](name, operands, out, dict(d["attrs"]))
        self.sources.append(text)
        self.calls.append(("library", name, info, nid, bases))
        self.kernels.append(f"{name}: {d['op']}({', '.join(str(o.shape) for o in operands)}) -> {out.shape}")


class TritonFunction:
    """The executable: device buffers, the generated module, and the launch list."""

    def __init__(self, program: Program, low: _Lowering, module, source: str, build_seconds: float):
        torch = _torch()
        self.program, self._low, self._module = program, low, module
        self.source = source
        self.build_seconds = build_seconds
        self.dev = low.dev
        sizes = {b: math.prod(s) * np.dtype(dt).itemsize for b, (s, dt) in low.buffers.items()}
        # a multi-output kernel: one planning entry per output, each reading the kernel's inputs
        plan = memory.plan(sizes, [(o, ins) for k, (_, _, _, out, ins) in enumerate(low.calls)
                                   for o in low.extra_writes.get(k, []) + [out]],
                           {b for _, b in low.update_values} | {low.operand[o][0] for o in program.outputs})
        self.memory = plan
        blocks = [torch.empty(n, dtype=torch.int8, device=self.dev) for n in plan.block_sizes]
        self._tensors: dict[int, object] = {}
        for b, (shape, dt) in low.buffers.items():
            nbytes = math.prod(shape) * np.dtype(dt).itemsize
            self._tensors[b] = blocks[plan.block_of[b]][:nbytes].view(_tdtype(dt)).view(shape) if nbytes else \
                torch.empty(shape, dtype=_tdtype(dt), device=self.dev)
        for nid in program.inputs:
            if nid not in program.shapes:      # an input the outputs do not depend on
                continue
            shape, dt = program.shapes[nid], program.dtypes[nid]
            self._tensors[nid] = torch.empty(shape, dtype=_tdtype(dt), device=self.dev)
        self._mirrors = {b: m for b, m in low.leaves.items() if isinstance(m, DeviceParameter)}
        for b, leaf in low.leaves.items():
            self._tensors[b] = leaf.tensor if isinstance(leaf, DeviceParameter) else leaf
        self._scratch = {}
        self._lock = threading.Lock()
        self._graph = None            # a captured CUDA graph (GPU only)
        self._runs = 0

    # -- running ------------------------------------------------------------------------
    def _alloc_scratch(self, key):
        """The scratch buffers of one library op: allocated on its first launch, reused by every
        later step (the k-th request of a launch always gets the same buffer, which is also what a
        captured CUDA graph replays)."""
        torch = _torch()
        count = itertools.count()

        def alloc(shape, dtype):
            k = (key, next(count))
            buf = self._scratch.get(k)
            if buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != _tdtype(dtype):
                buf = self._scratch[k] = torch.empty(shape, dtype=_tdtype(dtype), device=self.dev)
            return buf
        return alloc

    def _launch_all(self, times: list | None = None) -> None:
        """Every kernel in order, then the update copies. With ``times``: each launch is
        synchronised and its wall time appended (``(kernel, seconds)``)."""
        t = self._tensors
        for k, (kind, name, info, out, ins) in enumerate(self._low.calls):
            with self._timed(times, self._low.kernels[k]):
                if kind == "fused":
                    extra = self._low.extra_writes.get(k, [])
                    info.launch(self._module, t[out], *[t[i] for i in ins + extra])
                else:
                    extra = self._low.extra_writes.get(k, [])
                    library.launch(self._module, info, t[out], [t[i] for i in ins + extra], self._alloc_scratch(name))
        with self._timed(times, "update copies"):
            for param, value in self._low.update_values:
                t[param].copy_(t[value].view(t[param].shape))

    @contextmanager
    def _timed(self, times: list | None, label: str):
        if times is None:
            yield
            return
        sync = _torch().cuda.synchronize if self.dev == "cuda" else (lambda: None)
        sync()
        start = time.perf_counter()
        yield
        sync()
        times.append((label, time.perf_counter() - start))

    def _step(self) -> None:
        torch = _torch()
        if self.dev != "cuda":
            self._launch_all()
            return
        if self._graph is None and not config.get("cuda_graphs"):
            self._graph = False
        if self._graph is None and self._runs >= 1:     # the first run compiled every kernel
            try:
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    self._launch_all()
                self._graph = g
                # capturing recorded the launches without running them: run this step for real
            except Exception:                            # noqa: BLE001 - fall back to plain launches
                self._graph = False
        if self._graph:
            self._graph.replay()
        else:
            self._launch_all()
        self._runs += 1

    can_time_kernels = True

    def timed_call(self, arrays):
        """One step launched kernel by kernel (no CUDA graph), each synchronised and timed:
        (results, [(kernel, seconds), ...]). Small kernels then show their launch cost too."""
        times: list = []
        return self(arrays, times), times

    def __call__(self, arrays, times: list | None = None):
        torch = _torch()
        with self._lock:
            for m in self._mirrors.values():
                if m.host_newer:
                    m.from_host()
            for nid, arr in zip(self.program.inputs, arrays):
                if nid not in self._tensors:
                    continue
                src = torch.from_numpy(arr.view(np.int8) if arr.dtype == np.bool_ else arr)
                self._tensors[nid].copy_(src)
            if times is None:
                self._step()
            else:
                self._launch_all(times)
            results = [self._read(o) for o in self.program.outputs]
            for param, _ in self._low.update_values:
                mirror = self._mirrors.get(param)
                if mirror is not None and not mirror.shared:
                    mirror.stale = True
        return results

    def _read(self, nid: int) -> np.ndarray:
        torch = _torch()
        base, opnd = self._low.operand[nid]
        t = self._tensors[base]
        flat = t.reshape(-1)
        view = torch.as_strided(flat, opnd.shape, opnd.strides, opnd.offset) if flat.numel() else \
            flat.reshape(opnd.shape)
        out = np.array(view.cpu().numpy())
        return out.view(np.bool_) if opnd.dtype == "bool" else out

    @property
    def ir(self) -> str:
        """The generated Triton source of the whole step."""
        return self.source

    def __str__(self) -> str:
        where = "CUDA graph" if self._graph else ("GPU" if self.dev == "cuda" else "Triton interpreter on the CPU")
        head = (f"triton ({where}): {len(self._low.calls)} kernels, build {self.build_seconds * 1e3:.0f} ms; "
                f"memory: {len(self.memory.block_of)} buffers in {len(self.memory.block_sizes)} blocks")
        return "\n".join([head] + ["  " + k for k in self._low.kernels])


class TritonBackend:
    name = "triton"
    default_passes = COMPILER_PASSES
    on_device = True

    def build(self, program: Program, passes=None) -> TritonFunction:
        t0 = time.perf_counter()
        dev = device()
        low = _Lowering(program, dev)
        low.lower()
        source = module_source(low.sources, doc="Generated by tensorforge: the Triton kernels of one step.")
        key = hashlib.sha256(source.encode()).hexdigest()[:16]
        module = load_module(source, f"step_{key}")
        return TritonFunction(program, low, module, source, time.perf_counter() - t0)


register_backend(TritonBackend())
