"""Fusion: turn trees of elementwise ops, views and reductions into ``fused`` loop kernels.

Each node of the program is one of

    leaf        placeholder, parameter, constant                 -> a buffer
    elementwise declares a scalar expression                      -> inlined or a kernel root
    view        transpose, broadcast, expand/squeeze, reshape,   -> never computed: composed into
                getitem                                             the strides of whoever reads it
    reduction   sum, max, min, sum_to_like, softmax, log_softmax,      -> a kernel root; elementwise
                logsumexp                                           producers become its prologue
    opaque      everything else (matmul, conv2d, pooling, ...)   -> a buffer made by a library kernel

An elementwise node is *inlined* into its consumer when it has exactly one use and
the consumer reads it elementwise (an elementwise op, a reduction, or a single-use
view that leads to one). So every fused group is a tree whose inner nodes have no
use outside it, which makes each group convex: no path leaves a group and comes back.
A tree holds at most MAX_FUSED_OPS elementwise ops (a longer chain is cut into several
kernels), and every walk here uses an explicit stack: graph depth never meets Python's
recursion limit.

The result is a program whose non-leaf nodes are ``fused`` kernels, opaque ops, and
the views that remain between buffers and opaque ops (zero-copy strided aliases for
the backend). A row reduction read only by one elementwise kernel is finished inside that
kernel (``fusion_rows.py``). Elementwise kernels of one loop space that read each other element for element
then become multi-output kernels (``fusion_multi.py``), and a kernel that is the only reader
of a matmul becomes that matmul's epilogue (``fusion_epilogue.py``). Index arithmetic is affine: a value of shape S read at loop index i
is at multi-index ``M @ i + off``; a buffer's load strides are
``contiguous_strides(S) @ M``.
"""
from __future__ import annotations

import numpy as np

from ..kernel_ir import Load, LoopSpec, Reduction, contiguous_strides
from ..ops.indexing import index_to_python
from ..ops.registry import get_op, normalize_axis
from ..ops.scalar import SYMBOLIC, Expr
from ..program import Program
from .fusion_conv_epilogue import fold_conv_epilogues
from .fusion_epilogue import fold_matmul_epilogues
from .fusion_multi import merge_multi_output
from .fusion_rows import absorb_row_reductions
from .rewrite import Builder

__all__ = ["fuse", "VIEW_OPS", "REDUCTION_OPS"]

VIEW_OPS = ("transpose", "broadcast_to", "broadcast_like", "expand_dims", "squeeze", "reshape", "reshape_like",
            "getitem")
REDUCTION_OPS = ("sum", "max", "min", "sum_to_like", "softmax", "log_softmax", "logsumexp")
LEAF_OPS = ("placeholder", "parameter", "constant")
# At most this many elementwise ops in one fused expression: a longer chain is cut into several
# kernels, which bounds the code generators' work (and LLVM's and Triton's compile time) per kernel.
MAX_FUSED_OPS = 200


# ---- index maps of views -------------------------------------------------------------------

def _broadcast_rows(in_shape, out_shape) -> list[int | None]:
    """For each input axis, the output axis it follows (None: broadcast, reads index 0)."""
    lead = len(out_shape) - len(in_shape)
    return [lead + k if d == out_shape[lead + k] else None for k, d in enumerate(in_shape)]


def _select(M, off, rows):
    """Rows of (M, off) picked by ``rows`` (None: a zero row)."""
    n = M.shape[1]
    M2 = np.stack([M[r] if r is not None else np.zeros(n, np.int64) for r in rows]) if rows else \
        np.zeros((0, n), np.int64)
    off2 = np.array([off[r] if r is not None else 0 for r in rows], dtype=np.int64)
    return M2, off2


def _is_unit_reshape(in_shape, out_shape) -> bool:
    """A reshape that only inserts or removes size-1 axes is affine (no index mixing)."""
    return [d for d in in_shape if d != 1] == [d for d in out_shape if d != 1]


def _unit_reshape_rows(in_shape, out_shape):
    out_axes = [j for j, d in enumerate(out_shape) if d != 1]
    it = iter(out_axes)
    return [None if d == 1 else next(it) for d in in_shape]


def view_input_map(op: str, attrs: dict, in_shape, out_shape, M, off):
    """Given the output's index map (M, off), the input's index map."""
    if op == "transpose":
        axes = attrs.get("axes")
        nd = len(in_shape)
        axes = tuple(reversed(range(nd))) if axes is None else tuple(a % nd for a in axes)
        rows = [None] * nd
        for j, a in enumerate(axes):
            rows[a] = j
        return _select(M, off, rows)
    if op in ("broadcast_to", "broadcast_like"):
        return _select(M, off, _broadcast_rows(in_shape, out_shape))
    if op == "expand_dims":
        axes = set(normalize_axis(attrs["axes"], len(out_shape)))
        return _select(M, off, [j for j in range(len(out_shape)) if j not in axes])
    if op == "squeeze":
        axes = set(normalize_axis(attrs["axes"], len(in_shape)))
        it = iter(range(len(out_shape)))
        return _select(M, off, [None if k in axes else next(it) for k in range(len(in_shape))])
    if op in ("reshape", "reshape_like"):
        return _select(M, off, _unit_reshape_rows(in_shape, out_shape))
    if op == "getitem":
        return _getitem_map(attrs["index"], in_shape, M, off)
    raise KeyError(op)


def _getitem_map(index, in_shape, M, off):
    n = M.shape[1]
    rows_M, rows_off = [], []
    out_axis = 0
    in_axis = 0
    for entry in index:
        if entry[0] == "new":
            out_axis += 1
            continue
        size = in_shape[in_axis]
        if entry[0] == "int":
            k = entry[1] % size
            rows_M.append(np.zeros(n, np.int64))
            rows_off.append(k)
        else:
            start, _, step = slice(entry[1], entry[2], entry[3]).indices(size)
            rows_M.append(M[out_axis] * step)
            rows_off.append(start + step * off[out_axis])
            out_axis += 1
        in_axis += 1
    return (np.stack(rows_M) if rows_M else np.zeros((0, n), np.int64)), np.array(rows_off, np.int64)


# ---- the pass ------------------------------------------------------------------------------

class _Fuser:
    def __init__(self, program: Program):
        self.p = program
        g = program.graph
        self.node = g.node
        self.uses: dict[int, int] = {n: 0 for n in program.order}
        self.consumers: dict[int, list[int]] = {n: [] for n in program.order}
        for n in program.order:
            for i in self.node(n)["inputs"]:
                self.uses[i] += 1
                self.consumers[i].append(n)
        self.roots = set(program.outputs) | {v for _, v in program.updates}
        self.kind = {n: self._kind(n) for n in program.order}
        self.inline: dict[int, bool] = {}
        self.forced: set[int] = set()          # views that must be materialised (read by a reshape)
        self.epilogue: dict[int, int] = {}     # elementwise root -> the reduction it finishes
        self._decide_inlining()
        self._find_epilogues()

    def _kind(self, n: int) -> str:
        op = self.node(n)["op"]
        if op in LEAF_OPS:
            return "leaf"
        if op in VIEW_OPS:
            if op in ("reshape", "reshape_like") and not _is_unit_reshape(self.shape(self.node(n)["inputs"][0]),
                                                                           self.shape(n)):
                return "reshape"            # mixes indices: needs a contiguous buffer underneath
            return "view"
        if op in REDUCTION_OPS:
            return "reduction"
        if get_op(op).scalar is not None:
            return "elementwise"
        return "opaque"

    def shape(self, n: int) -> tuple:
        return tuple(self.p.shapes[n])

    def _absorbs(self, c: int) -> bool:
        """Does consumer ``c`` read its input elementwise, inside a fused kernel? (A loop, not
        recursion, down a chain of single-use views.)"""
        while self.kind[c] == "view":
            if self.uses[c] != 1 or c in self.roots:
                return False
            c = self.consumers[c][0]
        return self.kind[c] in ("elementwise", "reduction")

    def _decide_inlining(self) -> None:
        for n in self.p.order:
            self.inline[n] = (self.kind[n] == "elementwise" and self.uses[n] == 1 and n not in self.roots
                              and self._absorbs(self.consumers[n][0]))
        self._bound_group_sizes()
        # a view of an inlined expression is part of that expression
        for n in self.p.order:
            if self.kind[n] == "view":
                src = self.node(n)["inputs"][0]
                self.inline[n] = self._is_expression(src)
        # a reshape that mixes indices reads a contiguous buffer: materialise what it reads
        for n in self.p.order:
            if self.kind[n] == "reshape":
                src = self.node(n)["inputs"][0]
                if self._is_expression(src) or self.kind[src] == "view":
                    self.inline[src] = False
                    if self.kind[src] == "view":
                        self.forced.add(src)

    def _bound_group_sizes(self) -> None:
        """Cut fused trees larger than MAX_FUSED_OPS: in topological order, each kernel-forming node
        counts the inlined elementwise ops beneath it and materialises its largest inlined operands
        until the count fits (a 10000-op chain becomes 50 kernels of 200 ops)."""
        size: dict[int, int] = {}
        for n in self.p.order:
            if self.kind[n] not in ("elementwise", "reduction"):
                continue
            parts = []
            for i in self.node(n)["inputs"]:
                while self.kind[i] == "view":        # inlined producers may sit behind views
                    i = self.node(i)["inputs"][0]
                if self.kind[i] == "elementwise" and self.inline[i]:
                    parts.append((size[i], i))
            total = 1 + sum(p for p, _ in parts)
            for p, i in sorted(parts, reverse=True):
                if total <= MAX_FUSED_OPS:
                    break
                self.inline[i] = False
                total -= p
            size[n] = total

    def _find_epilogues(self) -> None:
        """A reduction whose only use is an elementwise tree of its own output shape is finished in
        the same kernel: the tree is evaluated once per outer index (e.g. mean = sum / n)."""
        for n in self.p.order:
            if (self.kind[n] != "reduction" or self.node(n)["op"] in ("softmax", "log_softmax")
                    or self.uses[n] != 1 or n in self.roots):
                continue
            c = self.consumers[n][0]
            while self.kind[c] == "elementwise" and self.inline[c]:
                c = self.consumers[c][0]
            if self.kind[c] == "elementwise" and self.shape(c) == self.shape(n) and c not in self.epilogue:
                self.epilogue[c] = n

    def _is_expression(self, n: int) -> bool:
        return self.inline.get(n, False)

    def is_root(self, n: int) -> bool:
        k = self.kind[n]
        if k == "elementwise":
            return not self.inline[n]
        if k == "reduction":
            return n not in self.epilogue.values()
        if k == "view":  # copied out contiguously: an output/update value, or what a reshape reads
            return (n in self.roots or n in self.forced) and not self.inline[n]
        return False

    # -- building a kernel --------------------------------------------------------------------
    def build_spec(self, root: int, new_of: dict[int, int]) -> tuple[LoopSpec, list[int]]:
        self._inputs: list[int] = []
        self._loads: dict[Load, int] = {}
        self._new_of = new_of
        self._stage_of: dict[int, Expr] = {}
        op = self.node(root)["op"]
        if self.kind[root] == "reduction":
            spec = self._reduction_spec(root, op)
        elif root in self.epilogue:
            red = self.epilogue[root]
            spec = self._reduction_spec(red, self.node(red)["op"], epilogue_root=root)
        else:
            shape = self.shape(root)
            M = np.eye(len(shape), dtype=np.int64)
            out = self.expr(root, M, np.zeros(len(shape), np.int64), top=True)
            spec = LoopSpec(shape, 0, tuple(self._load_list()), (), out, True, contiguous_strides(shape), shape,
                            self.p.dtypes[root])
        return spec, self._inputs

    def _load_list(self) -> list[Load]:
        return [ld for ld, _ in sorted(self._loads.items(), key=lambda kv: kv[1])]

    def _arg(self, buf: int, M, off) -> Expr:
        """A load of buffer ``buf`` under index map (M, off); one-element constants are inlined."""
        if self.node(buf)["op"] == "constant" and self.p.graph.values[buf].size == 1:
            value = self.p.graph.values[buf].reshape(())
            return SYMBOLIC.const(float(value), value.dtype.name)
        if buf not in self._inputs:
            self._inputs.append(buf)
        cs = np.array(contiguous_strides(self.shape(buf)), dtype=np.int64)
        strides = tuple(int(v) for v in (cs @ M)) if len(cs) else tuple(0 for _ in range(M.shape[1]))
        offset = int(cs @ off) if len(cs) else 0
        load = Load(self._inputs.index(buf), strides, offset)
        idx = self._loads.setdefault(load, len(self._loads))
        return SYMBOLIC.arg(idx, self.p.dtypes[buf])

    def expr(self, n: int, M, off, top: bool = False) -> Expr:
        """The scalar expression of node ``n`` at loop index i, where n's index is M @ i + off.

        An explicit stack instead of recursion (a fused tree may be deep); operands are visited
        left to right, as a recursive walk would, so loads are numbered in the same order."""
        stack: list = [(n, M, off, top)]
        values: list[Expr] = []
        while stack:
            item = stack.pop()
            if item[0] == "build":          # all operands of an elementwise node are on ``values``
                _, node, n_args = item
                d = self.node(node)
                args = values[len(values) - n_args:]
                del values[len(values) - n_args:]
                values.append(get_op(d["op"]).scalar(SYMBOLIC, *args, **dict(d["attrs"])))
                continue
            node, M, off, top = item
            d = self.node(node)
            k = self.kind[node]
            if node in self._stage_of:
                values.append(self._stage_of[node])
            elif k == "elementwise" and (top or self.inline[node]):
                stack.append(("build", node, len(d["inputs"])))
                for i in reversed(d["inputs"]):
                    Mi, oi = _select(M, off, _broadcast_rows(self.shape(i), self.shape(node)))
                    stack.append((i, Mi, oi, False))
            elif k == "view" and (top or node not in self.forced):
                src = d["inputs"][0]
                Mi, oi = view_input_map(d["op"], dict(d["attrs"]), self.shape(src), self.shape(node), M, off)
                stack.append((src, Mi, oi, False))
            else:
                values.append(self._leaf_expr(node, M, off))
        return values[-1]

    def _leaf_expr(self, n: int, M, off) -> Expr:
        """A load: a buffer read through index map (M, off), or a reshape's contiguous source."""
        d = self.node(n)
        k = self.kind[n]
        if k == "reshape":
            # the source is a contiguous buffer: read its memory with the reshaped strides
            src = d["inputs"][0]
            if src not in self._inputs:
                self._inputs.append(src)
            cs = np.array(contiguous_strides(self.shape(n)), dtype=np.int64)
            load = Load(self._inputs.index(src), tuple(int(v) for v in (cs @ M)), int(cs @ off))
            idx = self._loads.setdefault(load, len(self._loads))
            return SYMBOLIC.arg(idx, self.p.dtypes[src])
        return self._arg(n, M, off)

    def _reduction_spec(self, n: int, op: str, epilogue_root: int | None = None) -> LoopSpec:
        d = self.node(n)
        attrs = dict(d["attrs"])
        x = d["inputs"][0]
        xs, out_shape, dtype = self.shape(x), self.shape(n), self.p.dtypes[n]
        if op == "sum_to_like":
            lead = len(xs) - len(out_shape)
            red = tuple(range(lead)) + tuple(lead + k for k, dim in enumerate(out_shape)
                                             if dim == 1 and xs[lead + k] != 1)
        elif op in ("softmax", "log_softmax"):
            red = normalize_axis(attrs.get("axis", -1), len(xs))
        else:
            red = normalize_axis(attrs.get("axis"), len(xs))
        kept = tuple(a for a in range(len(xs)) if a not in red)
        perm = kept + red
        space = tuple(xs[a] for a in perm)
        M = np.zeros((len(xs), len(space)), dtype=np.int64)
        for j, a in enumerate(perm):
            M[a, j] = 1
        x_e = self.expr(x, M, np.zeros(len(xs), np.int64))
        if not red:   # a sum or max over no axes is its input: an elementwise kernel
            out, dtype_out = x_e, dtype
            if epilogue_root is not None:
                self._stage_of[n] = x_e
                out = self.expr(epilogue_root, M, np.zeros(len(xs), np.int64), top=True)
                dtype_out = self.p.dtypes[epilogue_root]
            return LoopSpec(space, 0, tuple(self._load_list()), (), out, True, contiguous_strides(out_shape),
                            out_shape, dtype_out)
        if op in ("softmax", "log_softmax"):
            xcs = contiguous_strides(xs)          # output has x's shape: same permutation
            out_strides = tuple(xcs[a] for a in perm)
        else:
            out_strides = self._kept_out_strides(op, attrs, xs, out_shape, kept, red)
        s0, s1 = Expr("stage", (), 0), Expr("stage", (), 1)
        if op in ("sum", "sum_to_like", "max", "min"):
            reductions = (Reduction(op if op in ("max", "min") else "sum", x_e),)
            out, per_element = s0, False
        elif op == "logsumexp":
            # shift by the row maximum only where it is finite: a row of -inf (or one holding
            # +inf) then gives -inf (+inf), as torch, instead of NaN from inf - inf
            shift = SYMBOLIC.where(SYMBOLIC.eq(s0 - s0, 0.0), s0, 0.0)
            reductions = (Reduction("max", x_e), Reduction("sum", SYMBOLIC.exp(x_e - shift)))
            out, per_element = shift + SYMBOLIC.log(s1), False
        else:
            reductions = (Reduction("max", x_e), Reduction("sum", SYMBOLIC.exp(x_e - s0)))
            if op == "softmax":
                out, per_element = SYMBOLIC.exp(x_e - s0) / s1, True
            else:
                out, per_element = x_e - s0 - SYMBOLIC.log(s1), True
        if epilogue_root is not None:
            # the root has the reduction's output shape: index it by the outer loop axes
            self._stage_of[n] = out
            rows = self._output_axes_to_loop(op, attrs, xs, out_shape, kept)
            M_out, off_out = _select(np.eye(len(space), dtype=np.int64), np.zeros(len(space), np.int64), rows)
            out = self.expr(epilogue_root, M_out, off_out, top=True)
            dtype = self.p.dtypes[epilogue_root]
        return LoopSpec(space, len(red), tuple(self._load_list()), reductions, out, per_element, out_strides,
                        out_shape, dtype)

    @staticmethod
    def _output_axes_to_loop(op, attrs, xs, out_shape, kept) -> list[int | None]:
        """For each axis of a reduction's output, the loop axis it runs along (None: size 1)."""
        if op == "sum_to_like":
            lead = len(xs) - len(out_shape)
            return [kept.index(lead + k) if lead + k in kept else None for k in range(len(out_shape))]
        if attrs.get("keepdims", False):
            return [kept.index(a) if a in kept else None for a in range(len(xs))]
        return list(range(len(out_shape)))

    @staticmethod
    def _kept_out_strides(op, attrs, xs, out_shape, kept, red):
        """Output strides per loop axis for a reduction that stores once per outer index."""
        cs = contiguous_strides(out_shape)
        if op == "sum_to_like":
            lead = len(xs) - len(out_shape)
            outer = [cs[a - lead] for a in kept]
        elif attrs.get("keepdims", False):
            outer = [cs[a] for a in kept]
        else:
            outer = list(cs)
        return tuple(outer) + (0,) * len(red)


def fuse(program: Program) -> Program:
    """The fusion pass: every elementwise/reduction group becomes one ``fused`` node."""
    f = _Fuser(program)
    b = Builder(program)
    new_of: dict[int, int] = {}
    user = program.origin or {}
    inputs = set(program.inputs)
    for nid in list(program.inputs) + [n for n in program.order if n not in inputs]:
        if nid in new_of:
            continue
        d = program.graph.node(nid)
        with b.standing_for(user.get(nid, nid)):
            if f.kind.get(nid) in ("leaf", "opaque") or nid not in f.kind or not f.is_root(nid):
                if (f.inline.get(nid) or nid in f.epilogue.values()
                        or (f.kind.get(nid) == "view" and not _needed_as_view(f, nid))):
                    continue            # lives on inside a kernel
                new_of[nid] = b.copy(nid, [new_of[i] for i in d["inputs"]])
                continue
            spec, bufs = f.build_spec(nid, new_of)
            new_of[nid] = b.raw("fused", [new_of[i] for i in bufs], {"spec": spec}, spec.out_shape, spec.dtype,
                                name=d["name"])
    order = list(b.order)
    prog = b.program(new_of, order)
    return fold_conv_epilogues(fold_matmul_epilogues(merge_multi_output(absorb_row_reductions(prog))))


def _needed_as_view(f: _Fuser, n: int) -> bool:
    """A view stays in the program (as a zero-copy alias) when something outside a kernel reads it,
    directly or through further views (searched with an explicit stack, not recursion)."""
    stack, seen = [n], {n}
    while stack:
        v = stack.pop()
        if v in f.roots:
            return True
        for c in f.consumers[v]:
            if f.kind[c] in ("opaque", "leaf", "reshape"):
                return True
            if f.kind[c] == "view" and c not in seen:
                seen.add(c)
                stack.append(c)
    return False
