"""Run one kernel's outer loop on several cores, from inside the native step.

A kernel that supports it is emitted as ``name_range(ptr..., i64 begin, i64 end)``, running its
first outer loop over [begin, end). ``emit_entry`` then adds ``name(ptr...)``: small kernels
call the range function once over everything; large ones hand it to the persistent thread
pool (``pool.py``, Linux): ``tf_pool_run`` wakes parked workers, and the calling thread and
the workers claim chunks of the range until none is left. Elsewhere the portable fallback
starts ``threads - 1`` POSIX threads on equal slices and joins them (tens of microseconds per
kernel, so only huge kernels were worth it).

Each output element is computed by exactly one chunk with the same code, so results are
bit-identical to the 1-thread build. The step stays one native call from Python.
"""
from __future__ import annotations

import ctypes
import sys

import llvmlite.binding as llvm
from llvmlite import ir

from . import pool
from .library.common import I64, PTR, elem_ptr

I32 = ir.IntType(32)
# A pool dispatch costs under a microsecond when a worker is parked spinning, but a split kernel
# also pays for moving its data between cores (and a matmul packs B once per thread). Measured
# on a loaded 2-core machine, 784-256-256-10 Adam MLP step: with the bound at 1 << 15 the
# 2-thread step used 2.94 ms CPU against 1.75 on one thread; 1 << 17: 1.99; 1 << 19: 1.77.
# The spawn/join fallback (tens of microseconds per kernel) keeps its old 1 << 18: splitting
# a 32x64x64 matmul made a small MLP step 3x slower there.
MIN_WORK_PER_THREAD = (1 << 17) if sys.platform.startswith("linux") else (1 << 18)
MIN_WORK_PER_CHUNK = 1 << 13       # elements, or multiply-adds / 32 for matmuls

_symbols_added = False


def _add_pthread_symbols() -> None:
    """MCJIT does not search the process for libc's pthread functions: hand it their addresses."""
    global _symbols_added
    if not _symbols_added:
        libc = ctypes.CDLL(None)
        for fn in ("pthread_create", "pthread_join"):
            llvm.add_symbol(fn, ctypes.cast(getattr(libc, fn), ctypes.c_void_p).value)
        _symbols_added = True


def worth_splitting(work: int, extent: int, threads: int) -> bool:
    """Whether a kernel of ``work`` (elements, or weighted operations) over ``extent`` outer units
    gains from being split across ``threads`` threads."""
    return threads > 1 and extent >= threads and work >= MIN_WORK_PER_THREAD * threads


def grain_for(work_per_unit: int) -> int:
    """Fewest outer units per chunk, so that a chunk holds at least ``MIN_WORK_PER_CHUNK`` work."""
    return max(1, -(-MIN_WORK_PER_CHUNK // max(1, int(work_per_unit))))


def uses_pool() -> bool:
    """Parallel entries call the persistent pool (Linux: futexes) or start threads (elsewhere)."""
    return sys.platform.startswith("linux")


def emit_entry(module: ir.Module, name: str, range_fn: ir.Function, n_ptrs: int, extent, threads: int,
               grain: int = 1) -> ir.Function:
    """``void name(ptr * n_ptrs)`` running ``range_fn`` over [0, extent) on up to ``threads`` threads.

    ``extent`` is an int, or a callable ``extent(builder) -> ir.Value`` (i64) evaluated inside the
    entry (a size known only at run time). ``grain`` is the fewest units a chunk may hold
    (``grain_for``): a run-time extent below two grains runs on the calling thread alone. It may
    also be a callable ``grain(builder) -> ir.Value`` (i64), like ``extent``."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] * n_ptrs), name=name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ptrs = list(fn.args)
    extent_value = extent(b) if callable(extent) else ir.Constant(I64, int(extent))
    if threads <= 1:
        b.call(range_fn, ptrs + [ir.Constant(I64, 0), extent_value])
    elif uses_pool():
        _emit_pool_call(module, name, b, range_fn, ptrs, extent_value, threads, grain)
    else:
        _emit_spawn_join(module, name, b, range_fn, ptrs, extent_value, threads)
    b.ret_void()
    return fn


def _emit_pool_call(module, name, b, range_fn, ptrs, extent, threads, grain) -> None:
    """Small extents call the range directly (this direct call also keeps the range visible to
    the backend's in-place analysis); others go through ``tf_pool_run`` with an argument block."""
    run = _declare(module, pool.RUN_SYMBOL, ir.VoidType(), [PTR, PTR, I64, I64, I64])
    chunk_fn = _emit_chunk_trampoline(module, name, range_fn, len(ptrs))
    grain = grain(b) if callable(grain) else ir.Constant(I64, max(1, int(grain)))
    fn = b.function
    direct, pooled, done = (fn.append_basic_block(n) for n in ("direct", "pooled", "done"))
    # the argument block lives in the entry block (one stack slot, not one per call)
    block = b.bitcast(b.alloca(I64, size=max(1, len(ptrs)), name="args"), PTR)
    b.cbranch(b.icmp_signed("<", extent, b.mul(grain, ir.Constant(I64, 2))), direct, pooled)
    b.position_at_end(direct)
    b.call(range_fn, ptrs + [ir.Constant(I64, 0), extent])
    b.branch(done)
    b.position_at_end(pooled)
    for k, p in enumerate(ptrs):
        b.store(b.ptrtoint(p, I64), elem_ptr(b, block, k, I64))
    b.call(run, [chunk_fn, block, extent, ir.Constant(I64, threads), grain])
    b.branch(done)
    b.position_at_end(done)


def _emit_chunk_trampoline(module, name, range_fn, n_ptrs) -> ir.Function:
    """``void name_chunk(ptr block, i64 begin, i64 end)``: unpack the pointers and run the range."""
    fn = ir.Function(module, pool.RANGE_TYPE, name=f"{name}_chunk")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    block, begin, end = fn.args
    ptrs = [b.inttoptr(b.load(elem_ptr(b, block, k, I64), typ=I64), PTR) for k in range(n_ptrs)]
    b.call(range_fn, ptrs + [begin, end])
    b.ret_void()
    return fn


def _emit_spawn_join(module, name, b, range_fn, ptrs, extent, threads) -> None:
    """The portable fallback: start ``threads - 1`` POSIX threads on equal slices, run the first
    slice here, join them (tens of microseconds per kernel)."""
    _add_pthread_symbols()
    n_ptrs = len(ptrs)
    worker = _emit_worker(module, name, range_fn, n_ptrs)
    create = _declare(module, "pthread_create", I32, [PTR, PTR, PTR, PTR])
    join = _declare(module, "pthread_join", I32, [I64, PTR])
    # an argument block per thread: the n pointers, then begin and end (all 8 bytes wide)
    width = n_ptrs + 2
    # allocas are typed pointers in llvmlite: address them through an opaque pointer
    blocks = b.bitcast(b.alloca(I64, size=threads * width, name="blocks"), PTR)
    tids = b.bitcast(b.alloca(I64, size=threads, name="tids"), PTR)

    def bound(t):
        return b.sdiv(b.mul(extent, ir.Constant(I64, t)), ir.Constant(I64, threads))

    for t in range(1, threads):
        block = elem_ptr(b, blocks, t * width, I64)
        for k, p in enumerate(ptrs):
            b.store(b.ptrtoint(p, I64), elem_ptr(b, block, k, I64))
        b.store(bound(t), elem_ptr(b, block, n_ptrs, I64))
        b.store(bound(t + 1), elem_ptr(b, block, n_ptrs + 1, I64))
        b.call(create, [elem_ptr(b, tids, t, I64), ir.Constant(PTR, None), worker, block])
    b.call(range_fn, ptrs + [ir.Constant(I64, 0), bound(1)])
    for t in range(1, threads):
        b.call(join, [b.load(elem_ptr(b, tids, t, I64), typ=I64), ir.Constant(PTR, None)])


def _emit_worker(module, name, range_fn, n_ptrs) -> ir.Function:
    """``ptr name_worker(ptr block)``: unpack an argument block and run the range."""
    fn = ir.Function(module, ir.FunctionType(PTR, [PTR]), name=f"{name}_worker")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    block = fn.args[0]
    ptrs = [b.inttoptr(b.load(elem_ptr(b, block, k, I64), typ=I64), PTR) for k in range(n_ptrs)]
    begin = b.load(elem_ptr(b, block, n_ptrs, I64), typ=I64)
    end = b.load(elem_ptr(b, block, n_ptrs + 1, I64), typ=I64)
    b.call(range_fn, ptrs + [begin, end])
    b.ret(ir.Constant(PTR, None))
    return fn


def _declare(module, name, ret, args):
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ret, args), name=name)
