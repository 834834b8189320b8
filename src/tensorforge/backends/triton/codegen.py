"""Lower a kernel-IR ``LoopSpec`` (a fused group) to the source of one ``@triton.jit`` kernel.

    def name(out_ptr, in0_ptr, in1_ptr, ..., BLOCK: tl.constexpr)              elementwise
    def name(out_ptr, in0_ptr, ..., out1_ptr, ..., BLOCK: tl.constexpr)       multi-output elementwise
    def name(out_ptr, in0_ptr, ..., XBLOCK: tl.constexpr, RBLOCK: tl.constexpr) reductions

Extents and strides are baked into the source as constants (one kernel per shape).

Elementwise (``n_reduce == 0``): the loops are collapsed, then each program handles BLOCK
consecutive flat indices of the iteration space; the loop indices come from the flat one by
``//`` and ``%`` with the constant extents, and every load/store is masked and strided.

Reductions: each program owns XBLOCK outer indices (a [XBLOCK, 1] column) and walks the
reduced space in [1, RBLOCK] chunks, so any length works. Each stage accumulates lane-wise
in a [XBLOCK, RBLOCK] block (sum, or nan-propagating max like NumPy) and is then reduced
across lanes to a [XBLOCK, 1] value that later stages and the output read. Per-element
outputs (softmax) make one more pass over the chunks; per-outer outputs are stored once.
When the whole reduced space fits in one chunk the kernel is "persistent": no loops, and
each input is loaded once for every stage.

bool is int8 (0/1) in memory (``tl.load(...) != 0``; stores write ``.to(tl.int8)``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...kernel_ir import LoopSpec, collapse, is_empty, reads_nothing, reduction_identity
from ...ops.scalar import Expr
from .scalar import Emitter, constant, is_float, signed_zero_pick, tl_type
from .source import ident

__all__ = ["LaunchInfo", "emit_loop_kernel", "next_pow2", "MAX_BLOCK"]

MAX_BLOCK = 1024          # elements of one program's block (elementwise) or tile (reductions)
_INT32_LIMIT = 2**31 - 1
_IND = "    "


@dataclass(frozen=True)
class LaunchInfo:
    """How to launch a generated kernel: ``module.<name>[grid](out, *inputs, **constexprs)``."""
    name: str                              # the kernel's (sanitised) function name in the module
    grid: tuple[int, ...]                  # programs per axis (a 0 means: nothing to launch)
    constexprs: dict = field(default_factory=dict)   # BLOCK / XBLOCK / RBLOCK
    num_warps: int = 4
    ints: tuple[int, ...] = ()             # runtime int arguments after the pointers (none here)

    def launch(self, module, out, *inputs) -> None:
        """Run the kernel from ``module`` on tensors (or pointers) ``out`` and ``inputs``."""
        if math.prod(self.grid) == 0:
            return
        kernel = getattr(module, self.name)
        kernel[self.grid](out, *inputs, *self.ints, num_warps=self.num_warps, **self.constexprs)


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _extent_bound(offset: int, strides, extents) -> int:
    """Largest |flat index| an affine access can reach."""
    return abs(offset) + sum(abs(s) * max(e - 1, 0) for s, e in zip(strides, extents))


def _needs_int64(spec: LoopSpec, programs_span: int) -> bool:
    bounds = [_extent_bound(ld.offset, ld.strides, spec.space) for ld in spec.loads]
    bounds.append(_extent_bound(0, spec.out_strides, spec.space))
    return max(bounds + [programs_span, math.prod(spec.space)]) >= _INT32_LIMIT


def _decompose(lines: list, flat: str, extents, names) -> dict:
    """Lines splitting a flat index into per-axis indices (C order); returns {axis: name} for the
    axes of extent > 1 (an axis of extent 1 is always index 0 and contributes nothing)."""
    out = {}
    rest = flat
    live = [k for k, e in enumerate(extents) if e > 1]
    for pos, k in enumerate(reversed(live)):
        first = pos == len(live) - 1
        if first:
            lines.append(f"{names[k]} = {rest}")
        else:
            lines.append(f"{names[k]} = {rest} % {extents[k]}")
            nxt = f"{names[k]}_q"
            lines.append(f"{nxt} = {rest} // {extents[k]}")
            rest = nxt
        out[k] = names[k]
    return out


def _affine(offset: int, strides, index_names: dict) -> str | None:
    """``offset + Σ i_k * s_k`` over the axes that have an index and a nonzero stride; None
    when no axis contributes (a constant address)."""
    terms = [f"{index_names[k]} * {s}" if s != 1 else index_names[k]
             for k, s in enumerate(strides) if s and k in index_names]
    if not terms:
        return None
    if offset:
        terms.insert(0, str(offset))
    return " + ".join(terms)


class _Kernel:
    """State while one kernel's body is written: lines, indentation, shared temporaries."""

    def __init__(self, spec: LoopSpec, in_dtypes):
        self.spec = spec
        self.in_dtypes = [str(np.dtype(d)) for d in in_dtypes]
        self.load_dtypes = [self.in_dtypes[ld.input] for ld in spec.loads]
        self.acc_dtype = spec.dtype if np.dtype(spec.dtype).kind in "fiu" else "float64"
        self.default_float = self.acc_dtype if is_float(self.acc_dtype) else "float64"
        self.names = [0]
        self.lines: list[str] = []

    def scope(self, axis_groups, stages=(), tag: str = ""):
        """An expression scope whose loads index with ``axis_groups``: a list of
        (index_names {axis: name}, mask name) pairs, one per block dimension in use."""
        return _Scope(self, axis_groups, stages, tag)


class _Scope:
    """One CSE scope: loads are emitted lazily, once, when an expression first reads them."""

    def __init__(self, kernel: _Kernel, axis_groups, stages, tag):
        self.k = kernel
        self.axis_groups = axis_groups
        self.stages = stages            # names of the reduction results so far (a shared, growing list)
        self.tag = tag
        self.loaded: dict[int, str] = {}
        self.emitter = Emitter(self.leaf, kernel.lines, kernel.default_float, kernel.names)

    def leaf(self, e: Expr):
        if e.op == "stage":
            return self.stages[e.value], self.k.acc_dtype
        i = e.value
        if i not in self.loaded:
            self.loaded[i] = self._load(i)
        return self.loaded[i], self.k.load_dtypes[i]

    def _load(self, i: int) -> str:
        ld = self.k.spec.loads[i]
        dtype = self.k.load_dtypes[i]
        index, masks = [], []
        for names, mask in self.axis_groups:
            part = _affine(0, ld.strides, names)
            if part is not None:
                index.append(part)
                masks.append(mask)
        ptr = f"in{ld.input}_ptr"
        if ld.offset:
            ptr += f" + {ld.offset}"
        if index:
            ptr += " + " + " + ".join(f"({p})" for p in index)
        mask = "xrmask" if masks == ["xmask", "rmask"] else " & ".join(masks)
        call = f"tl.load({ptr}, mask={mask}, other=0)" if mask else f"tl.load({ptr})"
        name = f"x{i}{self.tag}"
        self.k.lines.append(f"{name} = {call}" + (" != 0" if dtype == "bool" else ""))
        return name

    def value(self, expr: Expr, dtype: str) -> str:
        return self.emitter.value(expr, dtype)[0]


def _store_value(name: str, dtype: str) -> str:
    return f"{name}.to(tl.int8)" if dtype == "bool" else name


def _signature(fn: str, spec: LoopSpec, in_dtypes, constexprs) -> list[str]:
    ptrs = ["out_ptr"] + [f"in{j}_ptr" for j in range(len(in_dtypes))]
    ptrs += [f"out{j + 1}_ptr" for j in range(len(spec.extra_outs))]
    consts = [f"{c}: tl.constexpr" for c in constexprs]
    return ["@triton.jit", f"def {fn}({', '.join(ptrs + consts)}):"]


# ---- elementwise -------------------------------------------------------------------------

def _elementwise(k: _Kernel, wide: bool) -> None:
    spec = k.spec
    total = math.prod(spec.space)
    pid = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    k.lines += [f"idx = {pid} * BLOCK + tl.arange(0, BLOCK)", f"mask = idx < {total}"]
    names = _decompose(k.lines, "idx", spec.space, [f"i{a}" for a in range(len(spec.space))])
    scope = k.scope([(names, "mask")])
    # every output from the same loads (one scope: shared subexpressions are written once),
    # all computed before the first store
    values = [scope.value(e, spec.dtype) for e in spec.outs]
    offset = _affine(0, spec.out_strides, names) or "idx * 0"
    for j, value in enumerate(values):
        ptr = "out_ptr" if j == 0 else f"out{j}_ptr"
        k.lines.append(f"tl.store({ptr} + ({offset}), {_store_value(value, spec.dtype)}, mask=mask)")


# ---- reductions --------------------------------------------------------------------------

def _identity(op: str, dtype: str) -> str:
    """The reduction's identity (kernel_ir.reduction_identity) as a source constant."""
    return constant(reduction_identity(op, dtype), dtype)


def _combine(op: str, acc: str, value: str, dtype: str) -> str:
    if op == "sum":
        return f"{acc} + {value}"
    fn = "tl.maximum" if op == "max" else "tl.minimum"
    if is_float(dtype):
        return signed_zero_pick(op, acc, value, f"{fn}({acc}, {value}, propagate_nan=tl.PropagateNan.ALL)")
    return f"{fn}({acc}, {value})"



def _finish(k: _Kernel, op: str, acc: str, stage: str) -> None:
    """Reduce the lanes of ``acc`` to the [XBLOCK, 1] stage value (max/min: nan if any lane is nan)."""
    dtype = k.acc_dtype
    if op == "sum":
        k.lines.append(f"{stage} = tl.sum({acc}, axis=1)[:, None]")
        return
    k.lines.append(f"{stage} = tl.{op}({acc}, axis=1)[:, None]")
    if is_float(dtype):  # tl.max/tl.min may drop nan on GPUs (maxnum): put it back
        k.lines.append(f"{stage}_nan = tl.max(({acc} != {acc}).to(tl.int32), axis=1)[:, None]")
        k.lines.append(f"{stage} = tl.where({stage}_nan > 0, {constant(math.nan, dtype)}, {stage})")
        _signed_zero_lanes(k, op, acc, stage, dtype)


def _signed_zero_lanes(k: _Kernel, op: str, acc: str, stage: str, dtype: str) -> None:
    """A zero max is +0 if any lane holds +0, a zero min -0 if any lane holds -0 (IEEE 754-2019,
    ops/signed_zero.py): tl.max/tl.min of the lanes may pick either zero."""
    bits = f"{acc}.to({'tl.int64' if dtype == 'float64' else 'tl.int32'}, bitcast=True)"
    sign_test = f"{bits} >= 0" if op == "max" else f"{bits} < 0"
    winner, loser = (0.0, -0.0) if op == "max" else (-0.0, 0.0)
    k.lines.append(f"{stage}_z = tl.max((({acc} == 0) & ({sign_test})).to(tl.int32), axis=1)[:, None]")
    k.lines.append(f"{stage} = tl.where({stage} == 0, tl.where({stage}_z > 0, {constant(winner, dtype)}, "
                   f"{constant(loser, dtype)}), {stage})")


def _reduction(k: _Kernel, rblock: int, wide: bool) -> None:
    spec = k.spec
    n_outer = len(spec.space) - spec.n_reduce
    outer_total, inner_total = math.prod(spec.outer), math.prod(spec.inner)
    persistent = inner_total <= rblock
    pid = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    k.lines += [f"xo = {pid} * XBLOCK + tl.arange(0, XBLOCK)[:, None]", f"xmask = xo < {outer_total}"]
    onames = _decompose(k.lines, "xo", spec.outer, [f"o{a}" for a in range(n_outer)])

    def chunk_indices(base: str) -> dict:
        """Lines for one [1, RBLOCK] chunk of the reduced space starting at ``base``."""
        k.lines += [f"rr = {base} + tl.arange(0, RBLOCK)[None, :]", f"rmask = rr < {inner_total}",
                    "xrmask = xmask & rmask"]
        names = _decompose(k.lines, "rr", spec.inner, [f"ri{a}" for a in range(spec.n_reduce)])
        return {n_outer + a: name for a, name in names.items()}

    def tile_scope(stages, tag):
        rn = chunk_indices("0" if persistent else "r0")
        return k.scope([(onames, "xmask"), (rn, "rmask")], stages, tag), rn

    stages: list[str] = []
    shared = shared_rn = None
    if persistent:
        shared, shared_rn = tile_scope(stages, "")
    for j, red in enumerate(spec.reductions):
        acc = f"acc{j}"
        k.lines.append(f"{acc} = tl.full([XBLOCK, RBLOCK], 0, {tl_type(k.acc_dtype)}) + "
                       f"{_identity(red.op, k.acc_dtype)}")
        if persistent:
            scope, indent = shared, 0
        else:
            k.lines.append(f"for r0 in range(0, {inner_total}, RBLOCK):")
            indent = len(k.lines)
            scope, _ = tile_scope(stages, f"_{j}")
        v = scope.value(red.expr, k.acc_dtype)
        v = f"tl.where(rmask, {v}, {_identity(red.op, k.acc_dtype)})"
        k.lines.append(f"{acc} = {_combine(red.op, acc, v, k.acc_dtype)}")
        if not persistent:
            _indent(k.lines, indent)
        _finish(k, red.op, acc, f"s{j}")
        stages.append(f"s{j}")
    if spec.per_element:
        if persistent:
            scope, rn, indent = shared, shared_rn, None
        else:
            k.lines.append(f"for r0 in range(0, {inner_total}, RBLOCK):")
            indent = len(k.lines)
            scope, rn = tile_scope(stages, "_out")
        value = scope.value(spec.out, spec.dtype)
        both = {**onames, **rn}
        offset = _affine(0, spec.out_strides, both)
        offset = f"{offset} + xo * 0 + rr * 0" if offset else "xo * 0 + rr * 0"
        k.lines.append(f"tl.store(out_ptr + ({offset}), {_store_value(value, spec.dtype)}, mask=xrmask)")
        if indent is not None:
            _indent(k.lines, indent)
    else:
        scope = k.scope([(onames, "xmask")], stages, "_o")   # loads at reduced index 0
        value = scope.value(spec.out, spec.dtype)
        offset = _affine(0, spec.out_strides[:n_outer], onames)
        offset = f"{offset} + xo * 0" if offset else "xo * 0"
        k.lines.append(f"tl.store(out_ptr + ({offset}), {_store_value(value, spec.dtype)}, mask=xmask)")


def _indent(lines: list, start: int) -> None:
    """Indent lines[start:] one level (they form a loop body)."""
    lines[start:] = [_IND + ln for ln in lines[start:]]


# ---- entry point -------------------------------------------------------------------------

def _reduction_blocks(outer_total: int, inner_total: int, xblock=None, rblock=None):
    rblock = rblock or min(next_pow2(max(inner_total, 1)), MAX_BLOCK)
    xblock = xblock or min(next_pow2(max(outer_total, 1)), max(1, MAX_BLOCK // rblock))
    return xblock, rblock


def emit_loop_kernel(name: str, spec: LoopSpec, in_dtypes, *, block: int | None = None,
                     xblock: int | None = None, rblock: int | None = None):
    """(source text of ``@triton.jit def <ident(name)>(out_ptr, in0_ptr, ...)``, LaunchInfo).

    ``in_dtypes`` are the dtypes of the fused node's inputs (contiguous buffers). Block sizes
    (powers of two) are chosen from the sizes unless given; the output is contiguous."""
    for b in (block, xblock, rblock):
        if b is not None and (b < 1 or b & (b - 1)):
            raise ValueError(f"block sizes must be powers of two, got {b}")
    empty = is_empty(spec)
    spec = collapse(reads_nothing(spec))
    fn = ident(name)
    k = _Kernel(spec, in_dtypes)
    if spec.n_reduce == 0:
        total = math.prod(spec.space)
        block = block or min(next_pow2(max(total, 1)), MAX_BLOCK)
        grid = (-(-total // block),)
        constexprs = {"BLOCK": block}
        _elementwise(k, _needs_int64(spec, grid[0] * block))
    else:
        outer_total, inner_total = math.prod(spec.outer), math.prod(spec.inner)
        xblock, rblock = _reduction_blocks(outer_total, inner_total, xblock, rblock)
        grid = (-(-outer_total // xblock),)
        constexprs = {"XBLOCK": xblock, "RBLOCK": rblock}
        _reduction(k, rblock, _needs_int64(spec, grid[0] * xblock + inner_total + rblock))
    if empty:       # nothing to write: never launched (its loads could only read out of bounds)
        grid = (0,)
    head = _signature(fn, spec, in_dtypes, constexprs)
    text = "\n".join(head + [_IND + ln for ln in k.lines]) + "\n"
    warps = 8 if math.prod(constexprs.values()) >= 2048 else 4
    return text, LaunchInfo(fn, grid, constexprs, warps)
