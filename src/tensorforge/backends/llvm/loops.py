"""Lower a kernel-IR ``LoopSpec`` (a fused group) to one LLVM function.

    void name(ptr out, ptr in0, ptr in1, ..., ptr out1, ptr out2, ...)

(``out1, ...``: the extra outputs of a multi-output kernel, ``LoopSpec.extra_outs``; every
output of an element is computed from the same loads before any of them is stored, so an
output may be written in place over an input read at that element.)

    for each outer index o:                       (nested loops, collapsed where contiguous)
        s_j = reduce_j over the inner axes of expr_j(loads)        for each reduction j
        per element:  for each inner index r: out[o, r] = out_expr(loads, s)
        otherwise:    out[o] = out_expr(loads at r = 0, s)

A sum or max down the columns (the last outer axis walked contiguously, reduced axes strided:
``x.sum(axis=0)`` of a row-major matrix, a bias gradient) runs with the loops swapped
(``_emit_column_reduce``): every row updates the whole output row, so the innermost loop
is contiguous and vectorises instead of striding through memory one column at a time.

Loads are affine: ``in_k[offset + Σ index_a * stride_a]``. Scalar expressions are
emitted by ``scalar.lower``; reduction results enter the expressions as extra
arguments. Sum accumulators carry ``reassoc`` (never ``nsz``, see SUM_FLAGS) so the
vectoriser may split them into vector lanes (summation order then differs from NumPy's by
rounding only).
"""
from __future__ import annotations

import math
from contextlib import ExitStack, contextmanager

import numpy as np
from llvmlite import ir

from ...kernel_ir import LoopSpec, collapse, reduction_identity
from ...ops.scalar import Expr
from . import parallel, scalar
from .library.common import I64, PTR, elem_ptr, for_range, loop_nest, strided_index

# no ``nsz``: with ``reassoc nsz`` on the accumulating fadd, LLVM's Reassociate pass breaks
# the summed ``x - x`` (or ``x + -x``) into terms and cancels them to 0, whatever the fsub's
# own flags say, so sum(x - x) with an inf in x gave 0 instead of NaN
SUM_FLAGS = ("reassoc", "contract")   # no arcp/afn: LLVM copies flags into the divisions it folds (scalar.py)


def _stages_as_args(expr: Expr, first_stage_arg: int, stage_dtypes) -> Expr:
    """``stage j`` leaves become ``arg(first_stage_arg + j)``, so scalar.lower can emit them."""
    memo: dict[int, Expr] = {}
    for e in expr.walk():
        if e.op == "stage":
            new = Expr("arg", (), first_stage_arg + e.value, stage_dtypes[e.value])
        elif e.args:
            new_args = tuple(memo[id(a)] for a in e.args)
            new = e if all(a is b for a, b in zip(new_args, e.args)) else Expr(e.op, new_args, e.value, e.dtype)
        else:
            new = e
        memo[id(e)] = new
    return memo[id(expr)]


def _load(b: ir.IRBuilder, base, load, indices, dtype: str):
    """Load one element (bool: i8 in memory -> i1 in registers)."""
    mem = scalar.ir_type(dtype, in_memory=True)
    value = b.load(elem_ptr(b, base, strided_index(b, load.offset, load.strides, indices), mem), typ=mem)
    if dtype == "bool":
        value = b.icmp_unsigned("!=", value, ir.Constant(mem, 0))
    return value


def _store(b: ir.IRBuilder, value, base, index, dtype: str):
    if dtype == "bool":
        value = b.zext(value, ir.IntType(8))
    b.store(value, elem_ptr(b, base, index, scalar.ir_type(dtype, in_memory=True)))


def _combine(b: ir.IRBuilder, op: str, acc, value, dtype: str):
    if np.dtype(dtype).kind == "f":
        if op == "sum":
            return b.fadd(acc, value, flags=SUM_FLAGS)
        # NumPy's max/min propagate nan: llvm.maximum/minimum do too (and vectorise as reductions)
        name = "llvm.maximum" if op == "max" else "llvm.minimum"
        fn = b.module.declare_intrinsic(name, [acc.type], ir.FunctionType(acc.type, [acc.type] * 2))
        return b.call(fn, [acc, value])
    if op == "sum":
        return b.add(acc, value)
    return b.select(scalar.compare(b, ">" if op == "max" else "<", value, acc, dtype), value, acc)


def _init(op: str, dtype: str):
    """The identity of the reduction (kernel_ir.reduction_identity) as an IR constant."""
    return ir.Constant(scalar.ir_type(dtype), reduction_identity(op, dtype))


def emit_loop_kernel(module: ir.Module, name: str, spec: LoopSpec, in_dtypes, threads: int = 1) -> ir.Function:
    """Add ``void name(ptr out, ptr in...)`` for ``spec`` to ``module`` (inputs are contiguous
    buffers); with ``threads > 1`` and enough work, the first outer loop is split across threads."""
    spec = collapse(spec)
    n_outer = len(spec.space) - spec.n_reduce
    extent = spec.space[0] if n_outer else 1
    range_fn = _shared_range(module, name, spec, in_dtypes)
    work = math.prod(spec.space)
    if not parallel.worth_splitting(work, extent, threads):
        threads = 1
    return parallel.emit_entry(module, name, range_fn, 1 + len(in_dtypes) + len(spec.extra_outs), extent, threads,
                               grain=parallel.grain_for(work // max(1, extent)))


def _shared_range(module: ir.Module, name: str, spec: LoopSpec, in_dtypes) -> ir.Function:
    """The range function of ``spec``, shared by every kernel that differs only in the extent of
    its first loop (that extent arrives as [begin, end) at run time). After collapsing, the
    update kernels of an optimizer, for instance, are 1-D loops: one function serves every
    parameter, which cuts compile time."""
    from dataclasses import replace
    n_outer = len(spec.space) - spec.n_reduce
    generic = replace(spec, space=(-1,) + spec.space[1:], out_shape=()) if n_outer else spec
    key = (generic, tuple(in_dtypes))
    cache = module.__dict__.setdefault("_tf_shared_ranges", {})
    if key not in cache:
        cache[key] = _emit_range(module, f"{name}_range", spec, in_dtypes)
    return cache[key]


@contextmanager
def _outer_loops(b: ir.IRBuilder, outer, begin, end):
    """The outer loop nest, its first loop over [begin, end)."""
    if not outer:
        yield []
        return
    with ExitStack() as stack:
        first = stack.enter_context(for_range(b, begin, end, name="o0"))
        rest = stack.enter_context(loop_nest(b, outer[1:], "o"))
        yield [first] + list(rest)


def _is_column_reduce(spec: LoopSpec, acc_dtype: str) -> bool:
    """The last outer axis contiguous for the output and every load, some load strided along
    the reduced axes, and a single reduction whose result is stored straight (perhaps scaled)."""
    n_outer = len(spec.space) - spec.n_reduce
    if n_outer < 1 or not spec.n_reduce or spec.per_element or len(spec.reductions) != 1:
        return False
    last = n_outer - 1
    if acc_dtype != spec.dtype or spec.out_strides[last] != 1:
        return False
    if any(e.op == "arg" for e in spec.out.walk()):      # the stored value reads only the stage
        return False
    if any(ld.strides[last] not in (0, 1) for ld in spec.loads):
        return False
    return any(any(st not in (0, 1) for st in ld.strides[n_outer:]) for ld in spec.loads)


def _emit_column_reduce(b: ir.IRBuilder, spec: LoopSpec, out_ptr, begin, end, value) -> None:
    """out[..., o] = combine over the reduced index r of expr(..., o, r), with r outside the
    contiguous o loop. The outer axes before o (if any) run outside both; the first outer
    axis covers [begin, end) (the threads' share)."""
    (red,) = spec.reductions
    ty = scalar.ir_type(spec.dtype)
    outer = spec.outer
    n_outer = len(outer)
    with ExitStack() as stack:
        if n_outer == 1:
            prefix, o_begin, o_end = [], begin, end
        else:
            prefix = list(stack.enter_context(_outer_loops(b, outer[:-1], begin, end)))
            o_begin, o_end = ir.Constant(I64, 0), ir.Constant(I64, outer[-1])

        def out_slot(o):
            return strided_index(b, 0, spec.out_strides[:n_outer], prefix + [o])

        with for_range(b, o_begin, o_end, name="init") as o:
            _store(b, _init(red.op, spec.dtype), out_ptr, out_slot(o), spec.dtype)
        with loop_nest(b, spec.inner, "r") as ridx:
            with for_range(b, o_begin, o_end, name="o") as o:
                v = value(red.expr, prefix + [o] + list(ridx), [], spec.dtype)
                acc = b.load(elem_ptr(b, out_ptr, out_slot(o), ty), typ=ty)
                _store(b, _combine(b, red.op, acc, v, spec.dtype), out_ptr, out_slot(o), spec.dtype)
        zeros = [ir.Constant(I64, 0)] * spec.n_reduce
        with for_range(b, o_begin, o_end, name="fin") as o:
            stage = b.load(elem_ptr(b, out_ptr, out_slot(o), ty), typ=ty)
            _store(b, value(spec.out, prefix + [o] + zeros, [stage], spec.dtype), out_ptr, out_slot(o), spec.dtype)


def _values_of_outputs(b: ir.IRBuilder, spec: LoopSpec, loaded, stages, arg_dtypes, acc_dtype) -> list:
    """Every output's value at one element, from one set of loads (all computed before any store)."""
    stage_dtypes = [acc_dtype] * len(spec.reductions)
    exprs = [_stages_as_args(e, len(spec.loads), stage_dtypes) for e in spec.outs]
    lowered = scalar.lower_all(b, exprs, loaded + stages, arg_dtypes=arg_dtypes, default_float=acc_dtype,
                               out_dtype=spec.dtype)
    return [v for v, _ in lowered]


def emit_epilogue_range(module: ir.Module, name: str, spec: LoopSpec, in_dtypes) -> ir.Function:
    """``void name(ptr out, ptr in1, ..., ptr out1, ..., i64 begin, i64 end)``: ``spec`` over
    the rows [begin, end) of its first loop, with input 0 read from ``out`` itself (a matmul
    epilogue, applied in place to the product). Input 0 shares the output's pointer, so LLVM
    sees each element read before it is written, and vectorises without alias checks."""
    return _emit_range(module, name, spec, in_dtypes, input0_is_out=True)


def _emit_range(module: ir.Module, name: str, spec: LoopSpec, in_dtypes, input0_is_out: bool = False) -> ir.Function:
    n_ins = len(in_dtypes) - (1 if input0_is_out else 0)
    n_ptrs = 1 + n_ins + len(spec.extra_outs)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR] * n_ptrs + [I64, I64]), name=name)
    for a in fn.args[:n_ptrs]:
        a.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    out_ptr, *ins = fn.args[:1 + n_ins]
    if input0_is_out:
        ins = [out_ptr] + ins
    out_ptrs = [out_ptr] + list(fn.args[1 + n_ins:n_ptrs])
    begin, end = fn.args[-2:]
    n_outer = len(spec.space) - spec.n_reduce
    outer, inner = spec.space[:n_outer], spec.space[n_outer:]
    load_dtypes = [in_dtypes[ld.input] for ld in spec.loads]
    acc_dtype = spec.dtype if np.dtype(spec.dtype).kind in "fiu" else "float64"
    stage_dtypes = [acc_dtype] * len(spec.reductions)
    arg_dtypes = load_dtypes + stage_dtypes

    def loads_at(indices):
        return [_load(b, ins[ld.input], ld, indices, dt) for ld, dt in zip(spec.loads, load_dtypes)]

    def value(expr, indices, stages, dtype):
        e = _stages_as_args(expr, len(spec.loads), stage_dtypes)
        v, _ = scalar.lower(b, e, loads_at(indices) + stages, arg_dtypes=arg_dtypes,
                            default_float=acc_dtype, out_dtype=dtype)
        return v

    if _is_column_reduce(spec, acc_dtype):
        _emit_column_reduce(b, spec, out_ptr, begin, end, value)
        b.ret_void()
        return fn
    # accumulators live in allocas of the entry block; SROA/mem2reg turn them into registers
    accs = [b.alloca(scalar.ir_type(acc_dtype), name=f"acc{j}") for j in range(len(spec.reductions))]
    with _outer_loops(b, outer, begin, end) as oidx:
        stages = []
        for j, red in enumerate(spec.reductions):
            b.store(_init(red.op, acc_dtype), accs[j])
            with loop_nest(b, inner, f"r{j}_") as ridx:
                v = value(red.expr, list(oidx) + list(ridx), stages, acc_dtype)
                b.store(_combine(b, red.op, b.load(accs[j]), v, acc_dtype), accs[j])
            stages.append(b.load(accs[j]))
        if spec.per_element:
            with loop_nest(b, inner, "e") as ridx:
                idx = list(oidx) + list(ridx)
                values = _values_of_outputs(b, spec, loads_at(idx), stages, arg_dtypes, acc_dtype)
                where = strided_index(b, 0, spec.out_strides, idx)
                for v, ptr in zip(values, out_ptrs):
                    _store(b, v, ptr, where, spec.dtype)
        else:
            zeros = [ir.Constant(ir.IntType(64), 0)] * len(inner)
            v = value(spec.out, list(oidx) + zeros, stages, spec.dtype)
            _store(b, v, out_ptr, strided_index(b, 0, spec.out_strides[:n_outer], oidx), spec.dtype)
    b.ret_void()
    return fn
