"""The LLVM backend: a fused program becomes one native module with one entry call per step.

After the compiler passes (``passes.COMPILER_PASSES``: fold, simplify, CSE, DCE,
fusion) a program holds leaves, ``fused`` loop kernels, library ops (matmul, conv,
pooling, ...) and views. This module

1. resolves every view to a strided ``Operand`` of a real buffer (no copies),
2. gives each computed node a buffer (``memory.plan``: liveness-based reuse),
3. emits one LLVM function per kernel (``loops.py`` for fused groups, ``library/``
   for the rest) plus an entry function ``tf_step(ptr slots)`` that runs them all
   and finally copies the update values into the parameters,
4. compiles the module (``jit.py``, with the on-disk object cache) and returns an
   executable whose call writes the input pointers into the slot table, makes ONE
   native call, and copies the outputs out.
"""
from __future__ import annotations

import hashlib
import math
import time
from contextlib import contextmanager

import numpy as np
from llvmlite import ir

from ...kernel_ir import CONV_EPILOGUES, describe
from ...passes.fusion import VIEW_OPS
from ...passes.pipeline import COMPILER_PASSES
from ... import __version__
from ...program import Program, fingerprint
from ...runtime import code_fingerprint, get_num_threads
from .. import register_backend
from .. import memory
from ..common import is_contiguous as _is_contiguous, view_operand
from . import jit, kernel_opt, parallel, step_cache
from .library.split import splittable
from .library import LIBRARY, Operand
from .library.linalg import matmul_units, matmul_units_extent
from .library.ranged import range_split
from .library.common import I64, PTR, contiguous_strides, elem_ptr
from .loops import emit_loop_kernel
from .generalise import BATCH_GLOBAL

from .executable import ALIGN, ENTRY, MANIFEST_VERSION, LLVMFunction, _aligned_empty  # noqa: F401 (re-exported)

# library kernels that finish their result with a fused elementwise spec (attrs["spec"])
_EPILOGUE_OPS = ("matmul_epilogue", *CONV_EPILOGUES)
# library kernels whose range calls each repeat set-up work (see _maybe_parallel)
_ONE_CHUNK_PER_THREAD = frozenset({"conv2d_grad_weight"})


class BackendError(NotImplementedError):
    """The LLVM backend cannot lower a node (the message names it)."""


class _CycleTable:
    """``cycles[k] += elapsed`` around a piece of ``tf_step``, with the CPU's cycle counter
    (``llvm.readcyclecounter``: rdtsc on x86). The counter is a side effect, so LLVM keeps the
    kernel between the two reads."""

    def __init__(self, builder: ir.IRBuilder, table):
        self.b, self.table = builder, table
        i64 = ir.IntType(64)
        self.read = builder.module.declare_intrinsic("llvm.readcyclecounter", (), ir.FunctionType(i64, []))

    def now(self):
        return self.b.call(self.read, [])

    def add(self, k: int, start) -> None:
        i64 = ir.IntType(64)
        ptr = elem_ptr(self.b, self.table, k, i64)
        self.b.store(self.b.add(self.b.load(ptr, typ=i64), self.b.sub(self.now(), start)), ptr)


@contextmanager
def _timed(clock: "_CycleTable | None", k: int):
    """Count the cycles of what the body emits into ``cycles[k]`` (nothing without a clock)."""
    if clock is None:
        yield
        return
    start = clock.now()
    yield
    clock.add(k, start)


INLINE_MAX_KERNELS = 160     # see _Lowering._hide_kernels (an Adam MLP step has ~80 kernels)


class _Lowering:
    """Walks a fused program and builds the module, the slot table and the kernel list."""

    def __init__(self, program: Program, threads: int = 1, profile: bool = False, symbolic: bool = False,
                 plan: dict | None = None):
        self.p = program
        # symbolic: lowered at a probe batch size for a build generic in it (symbolic_step.py):
        # tf_step stores the batch size from a "dim" slot into @tf_batch; ``plan`` is the
        # block of every buffer, shared by all probes (sizes differ, lifetimes do not)
        self.symbolic = symbolic
        self.fixed_plan = plan
        self.threads = threads
        self.profile = profile             # tf_step also adds each kernel's cycle count to a table
        self.g = program.graph
        self.module = ir.Module(name="tensorforge")
        self.module.triple = jit.target_machine().triple
        self.slots: list = []              # slot index -> ("input", i) | ("array", ndarray) | ("output", ...)
        self.slot_of: dict[int, int] = {}  # base node id -> slot index
        self.operand: dict[int, tuple[int, Operand]] = {}   # node -> (base node, how to read it)
        self.arrays: dict[int, np.ndarray] = {}             # base node -> its buffer (not inputs)
        self.buffers: dict[int, tuple] = {}                  # computed base -> (shape, dtype), planned later
        self.calls: list[tuple[str, list[int]]] = []         # kernel name, base buffers (written one first)
        self.fused_specs: dict[int, object] = {}             # call index -> LoopSpec (for in-place updates)
        self.extra_writes: dict[int, list[int]] = {}         # call index -> further outputs (multi-output kernels)
        self.redirect: dict[int, int] = {}                   # update value -> parameter it is written into
        self._tmp_ids = iter(range(-1, -10**9, -1))           # ids of temporaries (never graph nodes)
        self.kernels: list[str] = []                         # one line per kernel, for printing
        # computed outputs are written straight into a fresh array per call (no copy-out)
        self.fresh = {o for o in program.outputs
                      if self.g.node(o)["op"] not in ("placeholder", "parameter", "constant") + VIEW_OPS}

    # -- buffers ----------------------------------------------------------------------
    def _slot(self, base: int) -> int:
        base = self.redirect.get(base, base)
        if base not in self.slot_of:
            self.slot_of[base] = len(self.slots)
            if base in self.p.inputs:
                self.slots.append(("input", self.p.inputs.index(base)))
            elif base in self.fresh:
                self.slots.append(("output", (tuple(self.p.shapes[base]), self.p.dtypes[base])))
            else:
                self.slots.append(("array", self.arrays[base]))
        return self.slot_of[base]

    def _own(self, nid: int) -> None:
        shape, dtype = self.p.shapes[nid], self.p.dtypes[nid]
        self.operand[nid] = (nid, Operand(tuple(shape), contiguous_strides(shape), 0, dtype))

    def _new_buffer(self, nid: int) -> None:
        if nid not in self.fresh:
            self.buffers[nid] = (tuple(self.p.shapes[nid]), self.p.dtypes[nid])
        self._own(nid)

    # -- nodes --------------------------------------------------------------------------
    def lower(self):
        if self.symbolic:
            from .symbolic_step import check_ops
            check_ops(self.p)
        for k, nid in enumerate(self.p.order):
            d = self.g.node(nid)
            op = d["op"]
            if op == "placeholder":
                self._own(nid)
            elif op in ("parameter", "constant"):
                arr = self.g.values[nid]
                if not (arr.flags.c_contiguous and arr.flags.aligned):
                    raise BackendError(f"parameter {d['name']!r} is not a contiguous aligned array")
                self.arrays[nid] = arr
                self._own(nid)
            elif op in VIEW_OPS:
                self._view(nid, d)
            elif op == "fused":
                self._fused(nid, d, k)
            elif op == "fused_output":
                self._fused_output(nid, d)
            elif op in LIBRARY:
                self._library(nid, d, k)
            else:
                raise BackendError(f"the LLVM backend has no kernel for {self.p.describe_node(nid)}")
        self._outputs_of_updated_parameters()
        self._updates()
        self._plan_memory()
        self._entry()
        self._hide_kernels()

    def _hide_kernels(self) -> None:
        """Give every kernel internal linkage: only ``tf_step`` is called from outside.

        Kernels are inlined into ``tf_step``; an exported kernel would also keep its own
        copy, so LLVM optimised and emitted each body twice (about 40 % of the compile time
        of an MLP step). A step of more than ``INLINE_MAX_KERNELS`` kernels keeps them as calls:
        optimising one huge ``tf_step`` grows faster than linearly (a 312-kernel fuzz graph took
        48 s at O3 inlined, about 3 s not). Below that, inlining pays: the 784-256-256-10 Adam
        step (~80 kernels) ran 1.5 ms inlined against 2.2 ms with calls, on one thread."""
        kernels = [fn for fn in self.module.functions if not fn.is_declaration and fn.name != ENTRY]
        for fn in kernels:
            fn.linkage = "internal"
            if len(kernels) > INLINE_MAX_KERNELS:
                fn.attributes.add("noinline")
        if not self.symbolic:       # (a generic build chooses over all its probes: symbolic_step.py)
            kernel_opt.mark_small(self.module, kernel_opt.small_kernels(kernel_opt.kernel_work(self),
                                                                         kernel_opt.small_limit()))

    def _view(self, nid: int, d: dict) -> None:
        (src,) = d["inputs"][:1]
        base, opnd = self.operand[src]
        args = (d["op"], dict(d["attrs"]), self.p.shapes[src], self.p.shapes[nid])
        view = view_operand(*args, opnd)
        if view is None:                       # an index-mixing reshape of a strided view
            base, opnd = self._materialise(src)
            view = view_operand(*args, opnd)
        self.operand[nid] = (base, view)

    def _materialise(self, nid: int):
        """Copy a strided view into a buffer of its own (when a kernel needs it contiguous)."""
        base, opnd = self.operand[nid]
        tmp = next(self._tmp_ids)
        self.buffers[tmp] = (tuple(opnd.shape), opnd.dtype)
        name = f"k{len(self.calls)}_copy"
        LIBRARY["copy"](self.module, name, [opnd], Operand(opnd.shape, contiguous_strides(opnd.shape), 0,
                                                           opnd.dtype), {})
        self.calls.append((name, [tmp, base]))
        self.kernels.append(f"{name}: copy {opnd.shape} {opnd.dtype} (materialise a view)")
        result = (tmp, Operand(opnd.shape, contiguous_strides(opnd.shape), 0, opnd.dtype))
        self.operand[nid] = result
        return result

    def _contiguous_input(self, i: int) -> int:
        base, opnd = self.operand[i]
        if not _is_contiguous(opnd) or opnd.offset:
            base, opnd = self._materialise(i)
        return base

    def _fused(self, nid: int, d: dict, k: int) -> None:
        spec = dict(d["attrs"])["spec"]
        bases = [self._contiguous_input(i) for i in d["inputs"]]
        self._new_buffer(nid)
        name = f"k{len(self.calls)}_fused"
        emit_loop_kernel(self.module, name, spec, [self.p.dtypes[i] for i in d["inputs"]], self.threads)
        self.fused_specs[len(self.calls)] = spec
        if spec.extra_outs:
            self.extra_writes[len(self.calls)] = []         # filled by the fused_output nodes that follow
        self.calls.append((name, [nid] + bases))
        self.kernels.append(f"{name}: {describe(spec)}")

    def _fused_output(self, nid: int, d: dict) -> None:
        """A further output of a multi-output kernel: a buffer of its own that the kernel writes
        (its pointer comes after the kernel's inputs, in output order)."""
        kernel = d["inputs"][0]
        writer = next(i for i, (_, bufs) in enumerate(self.calls) if bufs[0] == kernel)
        index = dict(d["attrs"])["index"]
        if len(self.extra_writes[writer]) != index:
            raise BackendError(f"the outputs of a multi-output kernel come out of order at {self.p.describe_node(nid)}")
        self._new_buffer(nid)
        self.extra_writes[writer].append(nid)

    def _writer_of(self, base: int) -> int | None:
        """The call that writes buffer ``base`` (as its first output or a further one)."""
        return next((i for i, (_, bufs) in enumerate(self.calls)
                     if bufs[0] == base or base in self.extra_writes.get(i, ())), None)

    def _library(self, nid: int, d: dict, k: int) -> None:
        if d["op"] in CONV_EPILOGUES:
            for i in d["inputs"][CONV_EPILOGUES[d["op"]][1]:]:   # read as a fused kernel reads its inputs
                self._contiguous_input(i)
        operands = [self.operand[i][1] for i in d["inputs"]]
        bases = [self.operand[i][0] for i in d["inputs"]]
        self._new_buffer(nid)
        out = self.operand[nid][1]
        name = f"k{len(self.calls)}_{d['op']}"
        attrs = dict(d["attrs"])
        LIBRARY[d["op"]](self.module, name, operands, out, attrs)
        n_extra = len(attrs["spec"].extra_outs) if d["op"] in _EPILOGUE_OPS else 0
        name = self._maybe_parallel(name, d["op"], operands, out, n_extra)
        if n_extra:
            self.extra_writes[len(self.calls)] = []         # filled by the fused_output nodes that follow
        self.calls.append((name, [nid] + bases))
        shapes = ", ".join(str(o.shape) for o in operands)
        per = "sample" if d["op"] in CONV_EPILOGUES else "row"
        epilogue = f", then per {per}: {describe(attrs['spec'])}" if d["op"] in _EPILOGUE_OPS else ""
        self.kernels.append(f"{name}: {d['op']}({shapes}) -> {out.shape} {out.dtype}{epilogue}")

    def _maybe_parallel(self, name: str, op: str, operands, out, n_extra: int = 0) -> str:
        """Split a large kernel's independent work units across the thread pool (its ``_range``
        entry takes them): a matmul's row panels (with its epilogue), a convolution's samples
        (grad_weight: input channels), a pooling kernel's (sample, channel) planes
        (library/ranged.py), or the outer loop of another library kernel that has one
        (library/split.py). ``n_extra``: extra outputs the kernel writes (a two-output epilogue)."""
        if self.threads <= 1:
            return name
        is_product = op in ("matmul", "matmul_epilogue")
        if is_product:
            units = matmul_units(operands[:2], out)
            k = operands[0].shape[-1]
            # a multiply-add is far cheaper than a loop element's memory traffic: weigh it 1/32
            work = math.prod(out.shape) * k // 32
        elif (split := range_split(op, operands, out)) is not None:
            units, work = split
        elif splittable(self.module, name):
            units, work = splittable(self.module, name)
        else:
            return name
        if not parallel.worth_splitting(work, units, self.threads):
            return name
        grain = parallel.grain_for(work // max(1, units))
        if is_product or op in _ONE_CHUNK_PER_THREAD:
            # every range call repeats set-up work: a matmul packs all of B for its rows, a
            # weight gradient packs every sample's output gradient for its channels. One chunk
            # per thread, not several (conv2's grad_weight in the MNIST Net: 11.2 ms on 2
            # threads in 8 chunks, against 10.4 ms on one)
            grain = max(grain, units // self.threads)
        range_fn = self.module.get_global(f"{name}_range")
        if self.symbolic and is_product:
            # a generic build: units = ceil(m / mr) is a step function of the batch that probes may
            # not see, so the extent, and the one-chunk-per-thread grain, are computed at run time
            extent = matmul_units_extent(operands[:2], out)
            floor = parallel.grain_for(work // max(1, units))
            threads = self.threads

            def grain(b):
                per_thread = b.sdiv(extent(b), ir.Constant(I64, threads))
                low = ir.Constant(I64, floor)
                return b.select(b.icmp_signed(">", per_thread, low), per_thread, low)
        else:
            extent = units
        parallel.emit_entry(self.module, f"{name}_mt", range_fn, 1 + len(operands) + n_extra, extent,
                            self.threads, grain=grain)
        return f"{name}_mt"

    def _outputs_of_updated_parameters(self) -> None:
        """An output that reads a parameter the step updates must show the value from before
        the update: copy it into its own buffer now, before any update is written."""
        targets = {p for p, _ in self.p.updates}
        for o in self.p.outputs:
            if self.operand[o][0] in targets:
                self._materialise(o)

    def _updates(self) -> None:
        """New values are all computed before any parameter is written (simultaneous updates).

        A value computed by an elementwise kernel that reads the parameter only at the element
        it writes, when no later kernel reads the parameter, is written into the parameter in
        place (Adam's moments, the parameters themselves). The others are copied in at the end;
        a value that is itself a leaf or a view is first copied to a temporary, so that writing
        one parameter can never change another update's value."""
        self.update_copies = []
        for param, new in self.p.updates:
            base, opnd = self.operand[new]
            if self._can_write_in_place(param, new):
                self.redirect[base] = param
                continue
            leaf = self.g.node(base)["op"] in ("parameter", "constant", "placeholder")
            if leaf or not _is_contiguous(opnd) or opnd.shape != tuple(self.p.shapes[param]):
                base, opnd = self._materialise_for_update(new)
            self.update_copies.append((param, base, math.prod(opnd.shape) * np.dtype(opnd.dtype).itemsize))

    def _can_write_in_place(self, param: int, new: int) -> bool:
        base, opnd = self.operand[new]
        writer = self._writer_of(base)
        spec = self.fused_specs.get(writer)
        if (spec is None or base != new or spec.n_reduce or not spec.per_element or base in self.fresh
                or base in self.redirect or opnd.shape != tuple(self.p.shapes[param])
                or self.p.dtypes[param] != opnd.dtype
                or sum(1 for _, v in self.p.updates if self.operand[v][0] == base) > 1):
            return False
        _, bufs = self.calls[writer]
        inputs = bufs[1:]
        for ld in spec.loads:   # the parameter may only be read at the element being written
            if inputs[ld.input] == param and (ld.offset != 0 or ld.strides != spec.out_strides):
                return False
        later_reads = any(param in bufs[1:] for _, bufs in self.calls[writer + 1:])
        read_by_outputs = any(self.operand[o][0] == param for o in self.p.outputs)
        if later_reads or read_by_outputs:
            return False
        # the kernel now writes memory it also reads: its pointers may alias
        name = self.calls[writer][0]
        for fn in (self.module.get_global(name), self.module.globals.get(f"{name}_range")):
            if fn is not None:
                for arg in fn.args:
                    arg.attributes.discard("noalias")
        for fn in self.module.functions:   # the shared range function it calls
            if fn.name.endswith("_range") and any(
                    getattr(ins, "callee", None) is fn for blk in self.module.get_global(name).blocks
                    for ins in blk.instructions):
                for arg in fn.args:
                    arg.attributes.discard("noalias")
        return True

    def _plan_memory(self) -> None:
        """Give computed buffers memory: blocks shared by buffers whose lifetimes do not overlap."""
        sizes = {b: math.prod(shape) * np.dtype(dt).itemsize for b, (shape, dt) in self.buffers.items()
                 if b not in self.redirect}
        calls = []
        for k, (_, bufs) in enumerate(self.calls):
            reads = [self.redirect.get(x, x) for x in bufs[1:]]
            # a multi-output kernel: one entry per output, all reading the kernel's inputs
            for out in self.extra_writes.get(k, []) + [bufs[0]]:
                calls.append((self.redirect.get(out, out), reads))
        live_to_end = {src for _, src, _ in self.update_copies}
        live_to_end |= {self.operand[o][0] for o in self.p.outputs}
        self.memory = (memory.plan(sizes, calls, live_to_end) if self.fixed_plan is None
                       else memory.plan_with(self.fixed_plan, sizes))
        blocks = [_aligned_empty((n,), np.uint8) for n in self.memory.block_sizes]
        for b, blk in self.memory.block_of.items():
            shape, dt = self.buffers[b]
            nbytes = math.prod(shape) * np.dtype(dt).itemsize
            self.arrays[b] = blocks[blk][:nbytes].view(dt).reshape(shape)
        for v, p in self.redirect.items():
            self.arrays[v] = self.arrays[p]

    def _materialise_for_update(self, nid):
        base, opnd = self.operand[nid]
        target = self.p.shapes[nid]
        opnd = Operand(tuple(target), opnd.strides, opnd.offset, opnd.dtype) if opnd.shape == tuple(target) else opnd
        self.operand[nid] = (base, opnd)
        return self._materialise(nid)

    def _entry(self) -> None:
        """``void tf_step(ptr slots)``: every kernel in order, then the update copies. A profiling
        build takes a second pointer, to ``uint64 cycles[len(calls) + 2]``: per kernel, for the
        update copies, and for the whole step."""
        params = [PTR, PTR] if self.profile else [PTR]
        fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), params), name=ENTRY)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        table = fn.args[0]
        clock = _CycleTable(b, fn.args[1]) if self.profile else None

        def slot(i):
            return b.load(elem_ptr(b, table, i, PTR), typ=PTR)
        if self.symbolic:
            self._store_batch_size(b, slot)
        with _timed(clock, len(self.calls) + 1):
            for k, (name, bases) in enumerate(self.calls):
                callee = self.module.get_global(name)
                with _timed(clock, k):
                    ptrs = bases + self.extra_writes.get(k, [])
                    b.call(callee, [slot(self._slot(x)) for x in ptrs])
            memcpy = self.module.declare_intrinsic("llvm.memcpy", [PTR, PTR, ir.IntType(64)])
            with _timed(clock, len(self.calls)):
                for dst, src, nbytes in self.update_copies:
                    b.call(memcpy, [slot(self._slot(dst)), slot(self._slot(src)),
                                    ir.Constant(ir.IntType(64), nbytes), ir.Constant(ir.IntType(1), 0)])
        b.ret_void()

    def _store_batch_size(self, b: ir.IRBuilder, slot) -> None:
        """@tf_batch = the batch size, which the caller puts in a slot of its own (as a pointer-sized int)."""
        self.dim_slot = len(self.slots)
        self.slots.append(("dim", None))
        batch = ir.GlobalVariable(self.module, I64, BATCH_GLOBAL)
        batch.linkage = "internal"
        batch.initializer = ir.Constant(I64, 0)
        b.store(b.ptrtoint(slot(self.dim_slot), I64), batch)

    # -- the executable's description, as plain data (cached on disk beside the object code) --
    def manifest(self, user_graph) -> tuple[dict, dict[str, np.ndarray]]:
        """Everything the executable needs besides the machine code: JSON-able, plus the arrays
        of constants that the passes made (the user's parameters are found again by node id)."""
        for o in self.p.outputs:                      # outputs read their base through a slot
            self._slot(self.operand[o][0])
        origin = self.p.origin or {}
        base_of_slot = {s: b for b, s in self.slot_of.items()}
        slots, arrays = [], {}
        for i, (kind, what) in enumerate(self.slots):
            base = base_of_slot.get(i)
            if kind == "dim":
                slots.append({"kind": "dim"})
            elif kind == "input":
                slots.append({"kind": "input", "pos": what})
            elif kind == "output":
                slots.append({"kind": "output", "shape": list(what[0]), "dtype": what[1]})
            elif base in self.memory.block_of:
                shape, dt = self.buffers[base]
                slots.append({"kind": "block", "block": self.memory.block_of[base], "shape": list(shape),
                              "dtype": dt})
            else:
                user = origin.get(base, base)
                if user in user_graph.values and user_graph.values[user] is what:
                    slots.append({"kind": "leaf", "node": user})
                else:                                  # a constant the passes made
                    arrays[f"c{i}"] = np.asarray(what)
                    slots.append({"kind": "const", "name": f"c{i}"})
        outputs = []
        for o in self.p.outputs:
            base, opnd = self.operand[o]
            outputs.append({"slot": self._slot(base), "shape": list(opnd.shape), "strides": list(opnd.strides),
                            "offset": opnd.offset, "dtype": opnd.dtype})
        summary = (f"memory: {len(self.memory.block_of)} intermediate buffers in {len(self.memory.block_sizes)} "
                   f"blocks ({self.memory.total_bytes / 1024:.0f} KiB); updates: {len(self.redirect)} written "
                   f"in place, {len(self.update_copies)} copied")
        return {"version": MANIFEST_VERSION, "slots": slots, "outputs": outputs,
                "blocks": list(self.memory.block_sizes), "kernels": list(self.kernels),
                "summary": summary, "profiled": self.profile}, arrays


class LLVMBackend:
    """Registered as "llvm". Caches whole steps on disk: key = fingerprint of the specialised
    program + passes + threads + target; value = object code + manifest (+ folded constants)."""
    name = "llvm"
    default_passes = COMPILER_PASSES

    def cache_key(self, program: Program, passes) -> str:
        text = "|".join([fingerprint(program), repr(tuple(passes or ())), str(get_num_threads()),
                         f"small kernels <= {kernel_opt.small_limit()}",
                         jit.target_description(), __version__, code_fingerprint(), str(MANIFEST_VERSION)])
        return hashlib.sha256(text.encode()).hexdigest()

    def load_cached(self, key: str, program: Program):
        t0 = time.perf_counter()
        entry = step_cache.load(key)
        if entry is None:
            return None
        manifest, consts, obj, ir_text = entry
        compiled = jit.load_object(obj, ir_text)
        return LLVMFunction(manifest, consts, program.graph, compiled, time.perf_counter() - t0, program)

    def build(self, program: Program, passes=None, cache_key: str | None = None,
              profile: bool = False) -> LLVMFunction:
        """``profile=True``: a build whose ``timed_call`` counts every kernel's cycles (never
        cached on disk: it is a different program)."""
        t0 = time.perf_counter()
        lowering = _Lowering(program, threads=get_num_threads(), profile=profile)
        cache_key = None if profile else cache_key
        lowering.lower()
        text = str(lowering.module)
        compiled = jit.compile_module(text)
        user_graph = program.source or program.graph
        manifest, consts = lowering.manifest(user_graph)
        manifest["pass_log"] = [list(entry) for entry in program.pass_log]
        if cache_key is not None:
            step_cache.store(cache_key, manifest, consts, compiled.object_code, compiled.ir)
        return LLVMFunction(manifest, consts, user_graph, compiled, time.perf_counter() - t0, program)

    def check_symbolic(self, program: Program) -> None:
        """Raise symbolic.UnsupportedOp when ``program`` (before the passes) uses a library kernel
        that cannot take its sizes at run time (the lowering checks again after the passes)."""
        from .symbolic_step import check_ops
        check_ops(program)

    def build_symbolic(self, programs: list[Program], ns, batch_axes, passes=None,
                       cache_key: str | None = None, profile: bool = False) -> LLVMFunction:
        """One executable for every batch size, from ``programs`` specialised (and passed) at the
        probe batch sizes ``ns``; ``batch_axes``: (input position, axis) of the batch dims.
        Raises symbolic.SymbolicUnsupported when the step cannot be generic (see symbolic_step.py)."""
        from .symbolic_step import generic_module
        t0 = time.perf_counter()
        user_graph = programs[0].source or programs[0].graph
        text, manifest, consts = generic_module(programs, ns, batch_axes, _Lowering, user_graph,
                                                get_num_threads(), profile)
        cache_key = None if profile else cache_key
        manifest["pass_log"] = [list(entry) for entry in programs[0].pass_log]
        compiled = jit.compile_module(text)
        if cache_key is not None:
            step_cache.store(cache_key, manifest, consts, compiled.object_code, compiled.ir)
        return LLVMFunction(manifest, consts, user_graph, compiled, time.perf_counter() - t0, programs[0])


register_backend(LLVMBackend())
