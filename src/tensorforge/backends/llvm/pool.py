"""A persistent pool of native worker threads for the LLVM backend (Linux), written in LLVM IR.

The runtime is one small module loaded once per process (``ensure_loaded``); its object code
is kept in the disk cache like the steps' (keyed on the target and tensorforge's source), so a
fresh process maps it in instead of running LLVM on it again. It exports

    void tf_pool_run(ptr fn, ptr args, i64 extent, i64 threads, i64 grain)

which runs ``fn(args, begin, end)`` over chunks covering [0, extent), on the calling thread
and on up to ``threads - 1`` pool workers. Its address reaches the compiled steps through
``llvm.add_symbol``, so a step stays a single native call from Python with no Python in the
loop. The workers are created lazily by the first parallel call (POSIX threads, detached,
signals blocked) and parked between kernels and between calls: they spin for a while on the
job word (``SPIN_CYCLES`` of the cycle counter), then sleep on a futex.

The job protocol:

* ``state`` is one 64-bit word: generation (high 32 bits) and the next chunk to claim (low 32).
  The dispatcher writes the job's fields (function, argument block, extent, chunk size, chunk
  count, how many workers may join), resets ``done`` and publishes generation g+1 with chunk 0;
  it then wakes sleepers (futex) and claims chunks itself. Once its claims fail it waits for
  ``done``: spinning briefly, then (a worker preempted mid-chunk on a loaded machine) asleep
  on a futex that the finisher of the last chunk wakes.
* A chunk is claimed by compare-and-swap of ``state`` from (g, i) to (g, i+1): dynamic
  scheduling, so a worker that the (shared, loaded) machine did not schedule leaves its chunks
  to the others instead of making them wait.
* When ``done`` reaches the chunk count, the dispatcher closes the job ((g, CLOSED): no chunk
  index can pass the test ``i < chunks``) before it may ever write the next job's fields, so a
  late worker whose claim succeeds always read the fields of the job it claims from.

Robustness: a try-lock (``busy``) admits one dispatcher at a time; a second Python thread in a
compiled step, or a range function that itself dispatches (nested), runs its whole range on
its own thread instead of waiting. A child handler registered with ``os.register_at_fork``
forgets the workers (the child of ``fork`` has none): the next parallel call there creates
new ones. The compiled runtime is never freed (its engine is deliberately kept alive), so
parked workers can never run freed code while the interpreter exits; they hold no Python
state and are ended with the process. Results do not depend on the split: each output element is computed by exactly one
chunk, by the same code, whichever thread runs it.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import threading

import llvmlite.binding as llvm
from llvmlite import ir

I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()

RUN_SYMBOL = "tf_pool_run"
RANGE_TYPE = ir.FunctionType(VOID, [PTR, I64, I64])    # fn(args, begin, end)
CHUNKS_PER_THREAD = 4          # dynamic scheduling: enough chunks to even out a busy machine
# Spinning keeps back-to-back parallel kernels of a step fast (a parked worker answers at once),
# but on a shared machine whose scheduler gives the whole process a fixed share (autogroups),
# every spin is taken from the calling thread: keep both spins short (measured on a loaded
# 2-core machine: no spin at all lost nothing there). Tunable at run time: wait_cycles().
SPIN_CYCLES = 1 << 16          # cycle-counter ticks a parked worker spins before it sleeps (~30 us)
SLEEP_AFTER_CYCLES = 1 << 14   # the dispatcher waiting on a preempted worker's chunk then sleeps
CLOSED = 0xFFFFFFFF
SYS_FUTEX, FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 202, 128, 129
_LIBC_FUNCTIONS = ("pthread_create", "pthread_detach", "pthread_sigmask", "syscall")

_lock = threading.Lock()
_runtime: dict = {}
_keep_alive: list = []         # the runtime's engine: never collected, even at interpreter exit


# -- IR helpers -----------------------------------------------------------------------------------
class _Emitter:
    """Globals and small helpers of the runtime module."""

    def __init__(self, module: ir.Module, x86: bool):
        self.m = module
        self.x86 = x86
        self.g = {}
        for name, ty in (("state", I64), ("done", I32), ("waiting", I32), ("futex", I32), ("sleepers", I32),
                         ("busy", I32), ("fn", I64), ("args", I64), ("extent", I64), ("chunk", I64),
                         ("nchunks", I64), ("max_workers", I64), ("nworkers", I64),
                         ("dispatches", I64), ("worker_chunks", I64), ("spin", I64), ("patience", I64),
                         ("chunks_per_thread", I64)):
            var = ir.GlobalVariable(module, ty, name=f"tfp_{name}")
            initial = {"spin": SPIN_CYCLES, "patience": SLEEP_AFTER_CYCLES, "chunks_per_thread": CHUNKS_PER_THREAD}
            var.initializer = ir.Constant(ty, initial.get(name))
            var.align = 64           # one cache line each: the hot words do not share lines
            self.g[name] = var

    def load(self, b, name, order="monotonic"):
        var = self.g[name]
        return b.load_atomic(var, order, var.type.pointee.width // 8, typ=var.type.pointee)

    def store(self, b, name, value, order="monotonic"):
        var = self.g[name]
        b.store_atomic(value, var, order, var.type.pointee.width // 8)

    def declare(self, name, ret, args, var_arg=False):
        if name in self.m.globals:
            return self.m.globals[name]
        return ir.Function(self.m, ir.FunctionType(ret, args, var_arg=var_arg), name=name)

    def cycles(self, b):
        fn = self.m.declare_intrinsic("llvm.readcyclecounter", (), ir.FunctionType(I64, []))
        return b.call(fn, [])

    def pause(self, b):
        if self.x86:
            b.call(self.m.declare_intrinsic("llvm.x86.sse2.pause", (), ir.FunctionType(VOID, [])), [])

    def syscall(self, b, *args):
        fn = self.declare("syscall", I64, [I64], var_arg=True)
        return b.call(fn, [ir.Constant(I64, args[0])] + list(args[1:]))


def _gen_of(b, word):
    return b.trunc(b.lshr(word, ir.Constant(I64, 32)), I32)


def _emit_work(e: _Emitter) -> ir.Function:
    """``i64 tfp_work(i32 gen)``: claim and run chunks of job ``gen`` until none is left; returns
    how many it ran. Shared by the dispatcher and the workers."""
    fn = ir.Function(e.m, ir.FunctionType(I64, [I32]), name="tfp_work")
    fn.linkage = "internal"
    gen = fn.args[0]
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    count = b.alloca(I64)
    b.store(ir.Constant(I64, 0), count)
    job_fn = e.load(b, "fn")           # pointers travel as i64 (atomic stores want a typed global)
    job_args = b.inttoptr(e.load(b, "args"), PTR)
    nchunks, chunk, extent = (e.load(b, k) for k in ("nchunks", "chunk", "extent"))
    claim, run, out = (fn.append_basic_block(n) for n in ("claim", "run", "out"))
    b.branch(claim)
    b.position_at_end(claim)
    word = e.load(b, "state", "acquire")
    index = b.and_(word, ir.Constant(I64, CLOSED))
    mine = b.and_(b.icmp_unsigned("==", _gen_of(b, word), gen), b.icmp_unsigned("<", index, nchunks))
    try_claim = fn.append_basic_block("try_claim")
    b.cbranch(mine, try_claim, out)
    b.position_at_end(try_claim)
    swapped = b.cmpxchg(e.g["state"], word, b.add(word, ir.Constant(I64, 1)), "acq_rel", "acquire")
    b.cbranch(b.extract_value(swapped, 1), run, claim)
    b.position_at_end(run)
    begin = b.mul(index, chunk)
    end = b.add(begin, chunk)
    end = b.select(b.icmp_signed("<", end, extent), end, extent)
    b.call(b.inttoptr(job_fn, ir.PointerType(RANGE_TYPE)), [job_args, begin, end])
    before = b.atomic_rmw("add", e.g["done"], ir.Constant(I32, 1), "seq_cst")
    b.store(b.add(b.load(count), ir.Constant(I64, 1)), count)
    # the last chunk wakes a dispatcher that went to sleep waiting for it
    last = b.icmp_unsigned("==", b.add(b.zext(before, I64), ir.Constant(I64, 1)), nchunks)
    wake = fn.append_basic_block("wake")
    b.cbranch(b.and_(last, b.icmp_unsigned("!=", e.load(b, "waiting", "seq_cst"), ir.Constant(I32, 0))),
              wake, claim)
    b.position_at_end(wake)
    e.syscall(b, SYS_FUTEX, e.g["done"], ir.Constant(I32, FUTEX_WAKE_PRIVATE), ir.Constant(I32, 1),
              ir.Constant(PTR, None), ir.Constant(PTR, None), ir.Constant(I32, 0))
    b.branch(claim)
    b.position_at_end(out)
    b.ret(b.load(count))
    return fn


def _emit_worker(e: _Emitter, work: ir.Function) -> ir.Function:
    """``ptr tfp_worker(ptr arg)``: arg = worker index | (generation seen at creation << 16).
    Waits for a new generation (spin, then futex), joins the job if its index is below the
    job's worker bound, and loops forever."""
    fn = ir.Function(e.m, ir.FunctionType(PTR, [PTR]), name="tfp_worker")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    arg = b.ptrtoint(fn.args[0], I64)
    me = b.and_(arg, ir.Constant(I64, 0xFFFF))
    seen = b.alloca(I32)
    start = b.alloca(I64)
    b.store(b.trunc(b.lshr(arg, ir.Constant(I64, 16)), I32), seen)
    # block every signal: Python's handlers run on the main thread anyway
    mask = b.alloca(I64, size=16)
    for k in range(16):
        b.store(ir.Constant(I64, -1), b.gep(mask, [ir.Constant(I64, k)], source_etype=I64))
    sigmask = e.declare("pthread_sigmask", I32, [I32, PTR, PTR])
    b.call(sigmask, [ir.Constant(I32, 0), b.bitcast(mask, PTR), ir.Constant(PTR, None)])
    head, spin, sleep, job, join = (fn.append_basic_block(n) for n in ("head", "spin", "sleep", "job", "join"))
    b.branch(head)

    b.position_at_end(head)
    b.store(e.cycles(b), start)
    b.branch(spin)

    b.position_at_end(spin)
    gen = _gen_of(b, e.load(b, "state", "acquire"))
    keep_spinning = fn.append_basic_block("keep_spinning")
    b.cbranch(b.icmp_unsigned("!=", gen, b.load(seen)), job, keep_spinning)
    b.position_at_end(keep_spinning)
    e.pause(b)
    waited = b.sub(e.cycles(b), b.load(start))
    b.cbranch(b.icmp_unsigned("<", waited, e.load(b, "spin")), spin, sleep)

    b.position_at_end(sleep)
    b.atomic_rmw("add", e.g["sleepers"], ir.Constant(I32, 1), "seq_cst")
    # futex_wait returns at once if the word already moved on (no lost wake-up)
    e.syscall(b, SYS_FUTEX, e.g["futex"], ir.Constant(I32, FUTEX_WAIT_PRIVATE), b.load(seen),
              ir.Constant(PTR, None), ir.Constant(PTR, None), ir.Constant(I32, 0))
    b.atomic_rmw("sub", e.g["sleepers"], ir.Constant(I32, 1), "seq_cst")
    b.branch(head)

    b.position_at_end(job)
    b.store(gen, seen)
    b.cbranch(b.icmp_unsigned("<", me, e.load(b, "max_workers")), join, head)
    b.position_at_end(join)
    ran = b.call(work, [gen])
    b.atomic_rmw("add", e.g["worker_chunks"], ran, "monotonic")
    b.branch(head)
    return fn


def _emit_start_workers(e: _Emitter, worker: ir.Function) -> ir.Function:
    """``void tfp_start_workers(i64 wanted, i32 gen)``: create workers up to ``wanted`` (called
    with the lock held; a failed pthread_create just leaves fewer workers)."""
    fn = ir.Function(e.m, ir.FunctionType(VOID, [I64, I32]), name="tfp_start_workers")
    fn.linkage = "internal"
    wanted, gen = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    tid = b.alloca(I64)
    create = e.declare("pthread_create", I32, [PTR, PTR, PTR, PTR])
    detach = e.declare("pthread_detach", I32, [I64])
    head, body, done = (fn.append_basic_block(n) for n in ("head", "body", "done"))
    b.branch(head)
    b.position_at_end(head)
    have = e.load(b, "nworkers")
    b.cbranch(b.icmp_signed("<", have, wanted), body, done)
    b.position_at_end(body)
    arg = b.or_(have, b.shl(b.zext(gen, I64), ir.Constant(I64, 16)))
    rc = b.call(create, [b.bitcast(tid, PTR), ir.Constant(PTR, None), worker, b.inttoptr(arg, PTR)])
    created = fn.append_basic_block("created")
    b.cbranch(b.icmp_signed("==", rc, ir.Constant(I32, 0)), created, done)
    b.position_at_end(created)
    b.call(detach, [b.load(tid)])
    e.store(b, "nworkers", b.add(have, ir.Constant(I64, 1)))
    b.branch(head)
    b.position_at_end(done)
    b.ret_void()
    return fn


def _emit_run(e: _Emitter, work: ir.Function, start_workers: ir.Function) -> ir.Function:
    """``void tf_pool_run(ptr fn, ptr args, i64 extent, i64 threads, i64 grain)``."""
    fn = ir.Function(e.m, ir.FunctionType(VOID, [PTR, PTR, I64, I64, I64]), name=RUN_SYMBOL)
    job_fn, job_args, extent, threads, grain = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    serial, locked, parallel, unlock = (fn.append_basic_block(n) for n in ("serial", "locked", "parallel", "unlock"))
    callee = b.inttoptr(b.ptrtoint(job_fn, I64), ir.PointerType(RANGE_TYPE))
    one = ir.Constant(I64, 1)
    grain = b.select(b.icmp_signed("<", grain, one), one, grain)
    small = b.or_(b.icmp_signed("<=", threads, one), b.icmp_signed("<", extent, b.mul(grain, ir.Constant(I64, 2))))
    try_lock = fn.append_basic_block("try_lock")
    b.cbranch(small, serial, try_lock)

    b.position_at_end(serial)
    b.call(callee, [job_args, ir.Constant(I64, 0), extent])
    b.ret_void()

    b.position_at_end(try_lock)     # another dispatcher (thread, or us: nested) -> run serially
    held = b.atomic_rmw("xchg", e.g["busy"], ir.Constant(I32, 1), "acquire")
    b.cbranch(b.icmp_unsigned("==", held, ir.Constant(I32, 0)), locked, serial)

    b.position_at_end(locked)
    word = e.load(b, "state")
    gen = _gen_of(b, word)
    b.call(start_workers, [b.sub(threads, one), gen])
    have = e.load(b, "nworkers")
    helpers = b.select(b.icmp_signed("<", have, b.sub(threads, one)), have, b.sub(threads, one))
    alone = fn.append_basic_block("alone")
    b.cbranch(b.icmp_signed(">", helpers, ir.Constant(I64, 0)), parallel, alone)
    b.position_at_end(alone)
    b.call(callee, [job_args, ir.Constant(I64, 0), extent])
    b.branch(unlock)

    b.position_at_end(parallel)
    # chunk = max(grain, ceil(extent / (threads * CHUNKS_PER_THREAD))); chunks = ceil(extent / chunk)
    parts = b.mul(b.add(helpers, one), e.load(b, "chunks_per_thread"))
    chunk = b.sdiv(b.sub(b.add(extent, parts), one), parts)
    chunk = b.select(b.icmp_signed("<", chunk, grain), grain, chunk)
    nchunks = b.sdiv(b.sub(b.add(extent, chunk), one), chunk)
    e.store(b, "fn", b.ptrtoint(job_fn, I64))
    e.store(b, "args", b.ptrtoint(job_args, I64))
    for name, value in (("extent", extent), ("chunk", chunk), ("nchunks", nchunks),
                        ("max_workers", helpers), ("done", ir.Constant(I32, 0))):
        e.store(b, name, value)
    new_gen = b.add(gen, ir.Constant(I32, 1))
    new_word = b.shl(b.zext(new_gen, I64), ir.Constant(I64, 32))
    e.store(b, "state", new_word, "seq_cst")
    e.store(b, "futex", new_gen, "seq_cst")
    wake, claim = fn.append_basic_block("wake"), fn.append_basic_block("claim")
    b.cbranch(b.icmp_unsigned("!=", e.load(b, "sleepers", "seq_cst"), ir.Constant(I32, 0)), wake, claim)
    b.position_at_end(wake)
    e.syscall(b, SYS_FUTEX, e.g["futex"], ir.Constant(I32, FUTEX_WAKE_PRIVATE), ir.Constant(I32, 0x7FFFFFFF),
              ir.Constant(PTR, None), ir.Constant(PTR, None), ir.Constant(I32, 0))
    b.branch(claim)

    b.position_at_end(claim)
    b.call(work, [new_gen])
    started = e.cycles(b)
    wait, waiting, finished = (fn.append_basic_block(n) for n in ("wait", "waiting", "finished"))
    b.branch(wait)
    b.position_at_end(wait)
    b.cbranch(b.icmp_unsigned("<", b.zext(e.load(b, "done", "acquire"), I64), nchunks), waiting, finished)
    b.position_at_end(waiting)
    e.pause(b)
    # a worker holding a chunk may have been preempted (a loaded machine): after a while, sleep
    # and leave the core to it; the worker that finishes the last chunk wakes us
    patient = fn.append_basic_block("patient")
    b.cbranch(b.icmp_unsigned("<", b.sub(e.cycles(b), started), e.load(b, "patience")), wait, patient)
    b.position_at_end(patient)
    e.store(b, "waiting", ir.Constant(I32, 1), "seq_cst")
    seen_done = e.load(b, "done", "seq_cst")
    sleep, awake = fn.append_basic_block("sleep"), fn.append_basic_block("awake")
    b.cbranch(b.icmp_unsigned("<", b.zext(seen_done, I64), nchunks), sleep, awake)
    b.position_at_end(sleep)
    e.syscall(b, SYS_FUTEX, e.g["done"], ir.Constant(I32, FUTEX_WAIT_PRIVATE), seen_done,
              ir.Constant(PTR, None), ir.Constant(PTR, None), ir.Constant(I32, 0))
    b.branch(awake)
    b.position_at_end(awake)
    e.store(b, "waiting", ir.Constant(I32, 0), "seq_cst")
    b.branch(wait)

    b.position_at_end(finished)
    e.store(b, "state", b.or_(new_word, ir.Constant(I64, CLOSED)), "seq_cst")
    b.fence("seq_cst")          # the next job's fields are written only after the close
    e.store(b, "dispatches", b.add(e.load(b, "dispatches"), one))
    b.branch(unlock)

    b.position_at_end(unlock)
    e.store(b, "busy", ir.Constant(I32, 0), "release")
    b.ret_void()
    return fn


def _emit_after_fork(e: _Emitter) -> ir.Function:
    """``void tfp_after_fork_child()``: the child of fork has no workers and no dispatcher."""
    fn = ir.Function(e.m, ir.FunctionType(VOID, []), name="tfp_after_fork_child")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    word = e.load(b, "state")
    e.store(b, "state", b.or_(b.and_(word, ir.Constant(I64, -(1 << 32))), ir.Constant(I64, CLOSED)))
    for name, ty in (("nworkers", I64), ("sleepers", I32), ("busy", I32)):
        e.store(b, name, ir.Constant(ty, 0))
    b.ret_void()
    return fn


def build_module(triple: str) -> ir.Module:
    """The runtime module's IR (exposed for inspection and tests)."""
    module = ir.Module(name="tensorforge_pool")
    module.triple = triple
    e = _Emitter(module, x86=triple.startswith(("x86_64", "i686", "i386")))
    work = _emit_work(e)
    worker = _emit_worker(e, work)
    start_workers = _emit_start_workers(e, worker)
    _emit_run(e, work, start_workers)
    _emit_after_fork(e)
    return module


# -- loading --------------------------------------------------------------------------------------
def _add_libc_symbols() -> None:
    libc = ctypes.CDLL(None)
    for name in _LIBC_FUNCTIONS:
        llvm.add_symbol(name, ctypes.cast(getattr(libc, name), ctypes.c_void_p).value)


def _cache_entry() -> str:
    """The disk-cache entry of the runtime's object code: the target and tensorforge's source
    (this file included), so an edited runtime or another CPU never gets a stale object."""
    from . import jit
    from ...runtime import code_fingerprint
    text = f"tensorforge pool runtime|{jit.target_description()}|{code_fingerprint()}"
    return hashlib.sha256(text.encode()).hexdigest()


def _runtime_object() -> bytes:
    """The runtime's object code: from the disk cache (a fresh process then skips LLVM's
    optimisation and code generation, about 30 ms), else compiled and stored there."""
    from . import jit
    entry = _cache_entry()
    obj = jit.read_cached_object(entry)
    if obj is not None:
        return obj
    module = jit._parse(str(build_module(jit.target_machine().triple)))
    jit.optimise(module)
    obj = jit.target_machine().emit_object(module)
    jit.write_cached_object(entry, obj, str(module))
    return obj


def ensure_loaded() -> None:
    """Compile the runtime (once per process) and publish ``tf_pool_run`` to later modules."""
    if _runtime:
        return
    with _lock:
        if _runtime:
            return
        from . import jit
        _add_libc_symbols()
        engine = jit.engine_for_object(_runtime_object())
        _keep_alive.append(engine)
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(engine))   # survives interpreter teardown too
        addresses = {name: engine.get_global_value_address(f"tfp_{name}")
                     for name in ("dispatches", "worker_chunks", "nworkers", "spin", "patience",
                                  "chunks_per_thread")}
        run = engine.get_function_address(RUN_SYMBOL)
        llvm.add_symbol(RUN_SYMBOL, run)
        after_fork = engine.get_function_address("tfp_after_fork_child")
        child_handler = ctypes.CFUNCTYPE(None)(after_fork)
        # os.fork (and multiprocessing's fork start method) run this in the child
        os.register_at_fork(after_in_child=child_handler)
        _runtime.update(addresses=addresses, run=run, child_handler=child_handler)


def _word(name: str) -> ctypes.c_int64:
    ensure_loaded()
    return ctypes.c_int64.from_address(_runtime["addresses"][name])


def stats() -> dict:
    """Counters of this process's pool: parallel dispatches, chunks run by workers, workers."""
    return {name: _word(name).value for name in ("dispatches", "worker_chunks", "nworkers")}


def set_chunks_per_thread(n: int) -> int:
    """How many chunks per thread a range is cut into (at least the grain each); returns the
    previous value (for measurements)."""
    old = _word("chunks_per_thread").value
    _word("chunks_per_thread").value = max(1, int(n))
    return old


def wait_cycles(spin: int | None = None, patience: int | None = None) -> tuple[int, int]:
    """How long (cycle-counter ticks) a parked worker spins before it sleeps on its futex, and
    a dispatcher waiting for a worker's chunk before it sleeps; sets those given, returns the
    previous values (tests use 0 to exercise the sleeping paths; measurements, to tune)."""
    old = (_word("spin").value, _word("patience").value)
    if spin is not None:
        _word("spin").value = int(spin)
    if patience is not None:
        _word("patience").value = int(patience)
    return old


def run_range(fn_address: int, args_address: int, extent: int, threads: int, grain: int = 1) -> None:
    """Call ``tf_pool_run`` from Python (tests and measurements)."""
    ensure_loaded()
    proto = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                             ctypes.c_int64)
    proto(_runtime["run"])(fn_address, args_address, extent, threads, grain)
