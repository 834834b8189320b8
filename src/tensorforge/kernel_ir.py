"""The kernel IR: one loop nest per fused group, shared by every code generator.

A fused group (made by ``passes/fusion.py``) becomes a node of op ``"fused"``
whose single attribute ``spec`` is a ``LoopSpec``:

    space       loop extents; the first ``len(space) - n_reduce`` axes are the
                outer (parallel) axes, the last ``n_reduce`` axes are reduced
    loads       how each scalar argument is read: input position, an element
                stride per loop axis (0 = broadcast), an element offset
    reductions  evaluated in order, each over all the reduced axes at one outer
                index; ``Expr("stage", value=j)`` is reduction j's result
    out         the scalar expression that is stored
    per_element True: ``out`` is stored at every loop index (elementwise ops,
                softmax); False: once per outer index, after the reductions
    out_strides element strides of the (contiguous) output per loop axis
    extra_outs  more stored expressions (a multi-output kernel, elementwise only): each is
                written, like ``out``, at every loop index into a buffer of its own with the
                same shape, strides and dtype. One kernel then reads each shared input once
                (an optimizer's state and parameter updates of one parameter). In a graph,
                output j + 1 is the node ``fused_output(kernel, index=j)``.

Every input of a fused node is a contiguous buffer: views (transpose, broadcast,
slices, size-1 reshapes) were composed into the loads' strides by the fusion
pass, so a backend only needs affine indexing: ``flat = offset + Σ i_k * stride_k``.

``evaluate`` runs a LoopSpec with NumPy (``as_strided`` views, the same index
arithmetic as compiled code), which is also how the interpreter runs fused
programs: the fusion pass is tested against the unfused interpreter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .ops.registry import register
from .ops import signed_zero
from .ops.scalar import NUMPY, Expr

__all__ = ["Load", "Reduction", "LoopSpec", "evaluate", "evaluate_all", "evaluate_matmul_epilogue", "eval_expr", "contiguous_strides", "collapse",
           "describe", "reads_nothing", "substitute_args", "is_empty", "accumulator_dtype",
           "reduction_identity"]


@dataclass(frozen=True)
class Load:
    input: int                    # position among the fused node's inputs
    strides: tuple[int, ...]      # element stride per loop axis
    offset: int = 0               # element offset


@dataclass(frozen=True)
class Reduction:
    op: str                       # "sum", "max" or "min"
    expr: Expr


@dataclass(frozen=True)
class LoopSpec:
    space: tuple[int, ...]
    n_reduce: int
    loads: tuple[Load, ...]
    reductions: tuple[Reduction, ...]
    out: Expr
    per_element: bool
    out_strides: tuple[int, ...]
    out_shape: tuple[int, ...]
    dtype: str
    extra_outs: tuple[Expr, ...] = ()

    @property
    def outs(self) -> tuple[Expr, ...]:
        """Every stored expression: ``out`` first, then ``extra_outs``."""
        return (self.out,) + self.extra_outs

    @property
    def outer(self) -> tuple[int, ...]:
        return self.space[:len(self.space) - self.n_reduce]

    @property
    def inner(self) -> tuple[int, ...]:
        return self.space[len(self.space) - self.n_reduce:]

    def __repr__(self) -> str:
        return describe(self)


REDUCE_OPS = {"sum": np.sum, "max": signed_zero.reduce_max, "min": signed_zero.reduce_min}   # +0 > -0


def substitute_args(expr: Expr, leaf_for) -> Expr:
    """``expr`` with every ``arg`` leaf replaced by ``leaf_for(leaf)``; unchanged subtrees are
    shared, not copied (an iterative walk: fused expressions can be deep)."""
    memo: dict[int, Expr] = {}
    for e in expr.walk():
        if e.op == "arg":
            new = leaf_for(e)
        elif e.args:
            args = tuple(memo[id(a)] for a in e.args)
            new = e if all(a is b for a, b in zip(args, e.args)) else Expr(e.op, args, e.value, e.dtype)
        else:
            new = e
        memo[id(e)] = new
    return memo[id(expr)]


def contiguous_strides(shape) -> tuple[int, ...]:
    """Element strides of a C-contiguous array of ``shape``."""
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


# ---- NumPy evaluation (the reference semantics of the IR) --------------------------------

def eval_expr(expr: Expr, args, stages, dtype: str | None = None):
    """Evaluate an expression DAG with NumPy; ``args``/``stages`` are arrays for the leaves.

    Constants take ``dtype`` (the kernel's float type), as compiled code does."""
    memo: dict[int, object] = {}
    for e in expr.walk():
        if e.op == "arg":
            v = args[e.value]
        elif e.op == "stage":
            v = stages[e.value]
        elif e.op == "const":
            want = e.dtype or (dtype if dtype and np.dtype(dtype).kind == "f" else None)
            v = np.asarray(e.value, dtype=want) if want else e.value
        elif e.op == "cast":
            v = NUMPY.cast(memo[id(e.args[0])], e.value)
        else:
            v = getattr(NUMPY, e.op)(*[memo[id(a)] for a in e.args])
        memo[id(e)] = v
    return memo[id(expr)]


def _view(arr: np.ndarray, load: Load, space) -> np.ndarray:
    flat = np.asarray(arr, order="C").reshape(-1)
    item = flat.itemsize
    return as_strided(flat[load.offset:] if load.offset else flat, shape=space,
                      strides=[s * item for s in load.strides], writeable=False)


def reduction_identity(op: str, dtype: str):
    """The identity of reduction ``op`` in ``dtype`` (both code generators and ``evaluate`` use it):
    0 for sums; for max/min the lowest/highest value of the dtype (+-inf for floats)."""
    kind = np.dtype(dtype).kind
    if op == "sum":
        return 0.0 if kind == "f" else 0
    if kind == "f":
        return -math.inf if op == "max" else math.inf
    if kind == "b":
        return op != "max"
    info = np.iinfo(np.dtype(dtype))
    return int(info.min if op == "max" else info.max)


def accumulator_dtype(spec: LoopSpec) -> str:
    """The dtype reductions accumulate in and stages hold: the kernel's own dtype when it is a
    number type, float64 for a kernel that stores bool (a comparison of a reduction)."""
    return spec.dtype if np.dtype(spec.dtype).kind in "fiu" else "float64"


def _view_at_outer_index(arr: np.ndarray, load: Load, space, n_outer: int) -> np.ndarray:
    """``load`` as a per-outer-index store reads it: once per outer index, at reduced index 0
    (where compiled code reads it), with size-1 reduced axes."""
    shape = tuple(space[:n_outer]) + (1,) * (len(space) - n_outer)
    if np.asarray(arr).size == 0:                 # nothing to read (an empty reduced axis)
        return np.zeros(shape, np.asarray(arr).dtype)
    at_zero = Load(load.input, tuple(load.strides[:n_outer]) + (0,) * (len(space) - n_outer), load.offset)
    return _view(arr, at_zero, shape)


def evaluate(spec: LoopSpec, *arrays) -> np.ndarray:
    """Run ``spec`` on the input arrays with NumPy; returns the (first) output array."""
    if spec.extra_outs:
        return evaluate_all(spec, *arrays)[0]
    return _evaluate_one(spec, arrays)


def evaluate_all(spec: LoopSpec, *arrays) -> list[np.ndarray]:
    """Every output of a (multi-output) ``spec``: ``out`` first, then ``extra_outs``."""
    return [_evaluate_one(replace(spec, out=e, extra_outs=()), arrays) for e in spec.outs]


def _evaluate_one(spec: LoopSpec, arrays) -> np.ndarray:
    space = spec.space
    n_outer = len(space) - spec.n_reduce
    red_axes = tuple(range(n_outer, len(space)))
    with np.errstate(all="ignore"):
        args = [_view(arrays[ld.input], ld, space) for ld in spec.loads]
        stages = []
        for r in spec.reductions:
            fn, acc = REDUCE_OPS[r.op], accumulator_dtype(spec)
            # in the accumulator's dtype, as compiled code reduces (an int64 min in a float32 kernel:
            # its identity, +inf, is no int64; fuzz seeds 7580, 8034 on interp+passes)
            val = np.broadcast_to(np.asarray(eval_expr(r.expr, args, stages, spec.dtype)).astype(acc, copy=False), space)
            # ``initial``: over an empty reduced space each stage is its identity (max: -inf)
            stages.append(fn(val, axis=red_axes, keepdims=True, initial=reduction_identity(r.op, acc))
                          .astype(acc, copy=False))
        if not spec.per_element:                  # the store after the reductions: one value per outer index
            args = [_view_at_outer_index(arrays[ld.input], ld, space, n_outer) for ld in spec.loads]
        value = eval_expr(spec.out, args, stages, spec.dtype)
    out = np.zeros(spec.out_shape, dtype=spec.dtype)
    item = out.itemsize
    if spec.per_element:
        target = as_strided(out, shape=space, strides=[s * item for s in spec.out_strides])
        target[...] = np.broadcast_to(value, space)
    else:
        outer = space[:n_outer]
        target = as_strided(out, shape=outer, strides=[s * item for s in spec.out_strides[:n_outer]])
        value = np.broadcast_to(value, outer + (1,) * spec.n_reduce)
        target[...] = value.reshape(outer)
    return out


def reads_nothing(spec: LoopSpec) -> LoopSpec:
    """``spec`` with every reduction over an empty reduced space replaced by its identity, so a
    code generator emits no load of the (empty) inputs: a kernel over rows of length 0 still
    runs once per row but never touches memory it does not own. Other specs are returned as is."""
    if not spec.n_reduce or math.prod(spec.inner) != 0:
        return spec
    acc = accumulator_dtype(spec)
    reductions = tuple(Reduction(r.op, Expr("const", (), reduction_identity(r.op, acc), spec.dtype))
                       for r in spec.reductions)
    return LoopSpec(spec.space, spec.n_reduce, spec.loads, reductions, spec.out, spec.per_element,
                    spec.out_strides, spec.out_shape, spec.dtype, spec.extra_outs)


def is_empty(spec: LoopSpec) -> bool:
    """Does the kernel write nothing (an output with a size-0 axis)? Then it is never launched."""
    return math.prod(spec.out_shape) == 0


# ---- loop collapsing (a shared optimisation for both code generators) --------------------

def collapse(spec: LoopSpec) -> LoopSpec:
    """Merge adjacent loop axes that every load and the output walk contiguously, so a
    (64, 128) elementwise kernel becomes one loop of 8192. Outer and reduced axes are merged
    only among themselves."""
    n_outer = len(spec.space) - spec.n_reduce
    groups = [list(range(n_outer)), list(range(n_outer, len(spec.space)))]
    all_strides = [ld.strides for ld in spec.loads] + [spec.out_strides]
    new_axes: list[list[int]] = []
    for group in groups:
        merged: list[list[int]] = []
        for ax in group:
            if merged:
                prev = merged[-1][-1]
                if all(s[prev] == s[ax] * spec.space[ax] for s in all_strides):
                    merged[-1].append(ax)
                    continue
            merged.append([ax])
        new_axes += merged
    if len(new_axes) == len(spec.space):
        return spec
    space = tuple(math.prod(spec.space[a] for a in axes) for axes in new_axes)
    pick = lambda strides: tuple(strides[axes[-1]] for axes in new_axes)  # noqa: E731
    n_reduce = sum(1 for axes in new_axes if axes[0] >= n_outer)
    loads = tuple(Load(ld.input, pick(ld.strides), ld.offset) for ld in spec.loads)
    return LoopSpec(space, n_reduce, loads, spec.reductions, spec.out, spec.per_element,
                    pick(spec.out_strides), spec.out_shape, spec.dtype, spec.extra_outs)


# ---- text form ---------------------------------------------------------------------------

# an expression whose text as a tree would exceed this many nodes is printed with named shared
# subexpressions: merged kernels (fusion_multi.py) share values, and a tree print of a chain that
# reads each value twice doubles at every link
MAX_TREE_TEXT_NODES = 2000


def _tree_size(exprs) -> int:
    size: dict[int, int] = {}
    for expr in exprs:
        for e in expr.walk():
            size[id(e)] = 1 + sum(size[id(a)] for a in e.args)
    return sum(size[id(e)] for e in exprs)


def _texts(exprs) -> tuple[list[str], list[str]]:
    """(let bindings, text of each expr): plain trees when small, else every subexpression
    used more than once is named (``t3=add(x0, x1)``) and referred to by name."""
    if _tree_size(exprs) <= MAX_TREE_TEXT_NODES:
        return [], [repr(e) for e in exprs]
    uses: dict[int, int] = {}
    order = []
    seen: set[int] = set()
    for expr in exprs:
        for e in expr.walk():
            if id(e) not in seen:
                seen.add(id(e))
                order.append(e)
                for a in e.args:
                    uses[id(a)] = uses.get(id(a), 0) + 1
    text: dict[int, str] = {}
    lets: list[str] = []
    for e in order:
        if not e.args:
            text[id(e)] = repr(e)
            continue
        body = f"cast({text[id(e.args[0])]}, {e.value})" if e.op == "cast" else \
            f"{e.op}({', '.join(text[id(a)] for a in e.args)})"
        if uses.get(id(e), 0) > 1:
            lets.append(f"t{len(lets)}={body}")
            text[id(e)] = f"t{len(lets) - 1}"
        else:
            text[id(e)] = body
    return lets, [text[id(e)] for e in exprs]


def describe(spec: LoopSpec) -> str:
    lets, (out, *extra_texts) = _texts(list(spec.outs))
    parts = [f"loop{list(spec.outer)}"]
    if spec.n_reduce:
        parts.append(f"reduce{list(spec.inner)}")
    loads = ", ".join(f"x{i}=in{ld.input}[{ld.offset}+{ld.strides}]" for i, ld in enumerate(spec.loads))
    stages = "; ".join(f"s{j}={r.op}({r.expr!r})" for j, r in enumerate(spec.reductions))
    store = "every index" if spec.per_element else "each outer index"
    extra = "".join(f"; out{j + 1}[{store}] = {t}" for j, t in enumerate(extra_texts))
    n_out = f"{1 + len(spec.extra_outs)} x " if spec.extra_outs else ""
    shared = f"; {', '.join(lets)}" if lets else ""
    return (f"{' '.join(parts)} {{ {loads}" + (f"; {stages}" if stages else "") + shared
            + f"; out[{store}] = {out}{extra} }} -> {n_out}{spec.out_shape} {spec.dtype}")


# ---- the "fused" op: how fused groups sit in a graph ------------------------------------

def _fused_type(types, spec: LoopSpec):
    return spec.out_shape, spec.dtype


register("fused", infer=_fused_type, impl=lambda *arrays, spec: evaluate(spec, *arrays), family="kernel",
         doc="a fused loop kernel (made by the fusion pass; attrs: spec, a kernel_ir.LoopSpec)")


def _fused_output_type(types, index: int):
    return types[0].shape, types[0].dtype      # every output of a multi-output kernel has one type


def _fused_output_impl(kernel, index: int):
    raise RuntimeError("fused_output is read from its multi-output kernel by the executor "
                       "(backends/interp.py, llvm, triton); it has no stand-alone implementation")


def _matmul_epilogue_impl(a, b, *inputs, spec: LoopSpec):
    return evaluate(spec, *_product_and_inputs(a, b, inputs))


def _product_and_inputs(a, b, inputs) -> list:
    """The arrays a matmul epilogue's spec reads: the raw product (its input 0), then ``inputs``."""
    from .ops.registry import get_op
    return [get_op("matmul").impl(a, b), *inputs]


def evaluate_matmul_epilogue(spec: LoopSpec, a, b, *inputs) -> list[np.ndarray]:
    """Every output of ``matmul_epilogue(a, b, *inputs)`` (passes/fusion_epilogue.py)."""
    return evaluate_all(spec, *_product_and_inputs(a, b, inputs))


register("matmul_epilogue", infer=_fused_type, impl=_matmul_epilogue_impl, family="kernel",
         doc="a matmul whose result is finished by an elementwise epilogue (made by the fusion pass; "
             "inputs: a, b, then the epilogue's; attrs: spec, a kernel_ir.LoopSpec over (rows, columns) "
             "whose input 0 is the product)")


# the convolution kernels that take an elementwise epilogue (passes/fusion_conv_epilogue.py):
# epilogue op -> (the convolution op, how many of the node's inputs are the convolution's)
CONV_EPILOGUES = {"conv2d_epilogue": ("conv2d", 2), "conv2d_grad_input_epilogue": ("conv2d_grad_input", 3)}


def _conv_and_inputs(op: str, arrays, stride, padding) -> list:
    """The arrays the spec of a convolution epilogue ``op`` reads: the raw convolution (its
    input 0), then the node's inputs after the convolution's."""
    from .ops.registry import get_op
    conv, n = CONV_EPILOGUES[op]
    return [get_op(conv).impl(*arrays[:n], stride=stride, padding=padding), *arrays[n:]]


def evaluate_conv_epilogue(op: str, spec: LoopSpec, *arrays, stride, padding) -> list[np.ndarray]:
    """Every output of the convolution epilogue node ``op`` (passes/fusion_conv_epilogue.py)."""
    return evaluate_all(spec, *_conv_and_inputs(op, arrays, stride, padding))


def _register_conv_epilogue(op: str, doc: str) -> None:
    def impl(*arrays, stride, padding, spec: LoopSpec):
        return evaluate(spec, *_conv_and_inputs(op, arrays, stride, padding))
    register(op, infer=lambda types, stride, padding, spec: _fused_type(types, spec), impl=impl, family="kernel",
             doc=doc)


_register_conv_epilogue(
    "conv2d_epilogue",
    "a conv2d whose result is finished by an elementwise epilogue (made by the fusion pass; inputs: x, w, "
    "then the epilogue's; attrs: stride, padding, and spec, a kernel_ir.LoopSpec over the convolution's "
    "(N, O, Ho, Wo) whose input 0 is the convolution)")
_register_conv_epilogue(
    "conv2d_grad_input_epilogue",
    "a conv2d_grad_input whose result is finished by an elementwise epilogue (made by the fusion pass; "
    "inputs: g, w, x_ref, then the epilogue's; attrs: stride, padding, and spec, a kernel_ir.LoopSpec over "
    "(N, C, H, W) whose input 0 is the gradient)")


register("fused_output", infer=_fused_output_type, impl=_fused_output_impl, family="kernel",
         doc="output index + 1 of a multi-output fused kernel (its input; attrs: index)")
