"""Run one kernel's outer loop on several cores, from inside the native step.

A kernel that supports it is emitted as ``name_range(ptr..., i64 begin, i64 end)``,
running its first outer loop over [begin, end). ``emit_entry`` then adds
``name(ptr...)``: small kernels call the range function once over everything; large
ones start ``threads - 1`` POSIX threads on equal slices, run the first slice on the
calling thread, and join. Starting a thread costs tens of microseconds, so only
kernels with enough work are split (``worth_splitting``).

The step stays one native call from Python: threads are created and joined inside it.
"""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm
from llvmlite import ir

from .library.common import I64, PTR, elem_ptr

I32 = ir.IntType(32)
# Starting and joining a thread costs some tens of microseconds: a slice must hold well more work
# than that (measured: splitting a 32x64x64 matmul made a small MLP step 3x slower)
MIN_WORK_PER_THREAD = 1 << 18      # elements, or multiply-adds / 32 for matmuls

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
    return threads > 1 and extent >= threads and work >= MIN_WORK_PER_THREAD * threads


def emit_entry(module: ir.Module, name: str, range_fn: ir.Function, n_ptrs: int, extent: int,
               threads: int) -> ir.Function:
    """``void name(ptr * n_ptrs)`` running ``range_fn`` over [0, extent) on ``threads`` threads."""
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] * n_ptrs), name=name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ptrs = list(fn.args)
    if threads <= 1:
        b.call(range_fn, ptrs + [ir.Constant(I64, 0), ir.Constant(I64, extent)])
        b.ret_void()
        return fn
    _add_pthread_symbols()
    worker = _emit_worker(module, name, range_fn, n_ptrs)
    create = _declare(module, "pthread_create", I32, [PTR, PTR, PTR, PTR])
    join = _declare(module, "pthread_join", I32, [I64, PTR])
    # an argument block per thread: the n pointers, then begin and end (all 8 bytes wide)
    width = n_ptrs + 2
    # allocas are typed pointers in llvmlite: address them through an opaque pointer
    blocks = b.bitcast(b.alloca(I64, size=threads * width, name="blocks"), PTR)
    tids = b.bitcast(b.alloca(I64, size=threads, name="tids"), PTR)
    bounds = [extent * t // threads for t in range(threads + 1)]
    for t in range(1, threads):
        block = elem_ptr(b, blocks, t * width, I64)
        for k, p in enumerate(ptrs):
            b.store(b.ptrtoint(p, I64), elem_ptr(b, block, k, I64))
        b.store(ir.Constant(I64, bounds[t]), elem_ptr(b, block, n_ptrs, I64))
        b.store(ir.Constant(I64, bounds[t + 1]), elem_ptr(b, block, n_ptrs + 1, I64))
        b.call(create, [elem_ptr(b, tids, t, I64), ir.Constant(PTR, None), worker, block])
    b.call(range_fn, ptrs + [ir.Constant(I64, bounds[0]), ir.Constant(I64, bounds[1])])
    for t in range(1, threads):
        b.call(join, [b.load(elem_ptr(b, tids, t, I64), typ=I64), ir.Constant(PTR, None)])
    b.ret_void()
    return fn


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
