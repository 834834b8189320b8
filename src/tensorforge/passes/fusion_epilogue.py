"""Matmul epilogues: the elementwise kernel that finishes a matmul's result is applied by the
matmul itself, as each C element is produced.

``relu(x @ W + b)`` fuses (``fusion.py``) into a matmul and one elementwise kernel that reads
the product element for element, and the bias broadcast along the rows. When that kernel is
the product's only reader, both become one node ``matmul_epilogue(a, b, *inputs)`` whose
``spec`` (a kernel-IR LoopSpec) is the kernel's, over the product's rows and columns:

    input 0        the raw product C (read at the element being written)
    inputs 1, ...  the kernel's other inputs (bias, the ReLU backward's mask operand, ...)
    space          (rows, columns): batch axes and matrix rows walked as one row axis
    outputs        as the kernel's (several for a multi-output kernel, see fusion_multi.py)

Code generators apply the spec to C before the product leaves the cache (the LLVM GEMM
per work unit of rows, Triton on the tile). The interpreter runs the product with NumPy
and evaluates the spec (``kernel_ir``), which is the reference the other two are tested
against. An optimizer's update kernel is never folded (it writes its parameter in place). A
kernel is folded only when its output has the product's dtype (written over C)
and every load walks the batch and row axes as one (true of bias broadcasts along rows or
columns, of same-shape operands, and of transposed reads of a 2-D product).
"""
from __future__ import annotations

from dataclasses import replace

from ..kernel_ir import Load, LoopSpec, contiguous_strides
from ..program import Program
from .rewrite import Builder

__all__ = ["fold_matmul_epilogues"]


def _rows_axis_strides(strides, shape) -> tuple[int, int] | None:
    """(row stride, column stride) of a load over (batch..., m, n) when its batch and row axes
    merge into one row axis, else None. Axes of extent 1 never move; each other axis must step
    as far as the next one's whole extent (stride_k = stride_k' * extent_k')."""
    walked = [(stride, size) for stride, size in zip(strides[:-1], shape[:-1]) if size != 1]
    for (outer, _), (inner, size) in zip(walked, walked[1:]):
        if outer != inner * size:
            return None
    return (walked[-1][0] if walked else 0), strides[-1]


def _epilogue_spec(spec: LoopSpec, product_input: int, shape) -> LoopSpec | None:
    """``spec`` over (rows, columns) with the product as input 0, or None when it cannot be."""
    rows = 1
    for d in shape[:-1]:
        rows *= d
    loads = []
    for ld in spec.loads:
        rc = _rows_axis_strides(ld.strides, shape)
        if rc is None:
            return None
        position = 0 if ld.input == product_input else 1 + ld.input - (ld.input > product_input)
        loads.append(Load(position, rc, ld.offset))
    return replace(spec, space=(rows, shape[-1]), loads=tuple(loads), out_strides=(shape[-1], 1))


def readers(program: Program) -> dict[int, list[int]]:
    """node -> the nodes that read it (each reader once, in program order)."""
    found: dict[int, list[int]] = {}
    for n in program.order:
        for i in dict.fromkeys(program.graph.node(n)["inputs"]):
            found.setdefault(i, []).append(n)
    return found


def find_folds(program: Program, foldable) -> dict:
    """kernel -> what ``foldable(program, readers, kernel)`` says of each fused kernel it accepts."""
    reader_map = readers(program)
    folds = {}
    for n in program.order:
        if program.graph.node(n)["op"] == "fused":
            found = foldable(program, reader_map, n)
            if found is not None:
                folds[n] = found
    return folds


def sole_reader_inputs(program: Program, reader_map: dict[int, list[int]], kernel: int, producer_ops):
    """(position, shape) of each input of the elementwise ``kernel`` that an epilogue could
    take over: computed by an op in ``producer_ops``, read by ``kernel`` alone (once, not an
    output nor an update's value), of the kernel's space, dtype and contiguous layout, and read
    at exactly the element being written."""
    g = program.graph
    d = g.node(kernel)
    spec = dict(d["attrs"])["spec"]
    for position, m in enumerate(d["inputs"]):
        if g.node(m)["op"] not in producer_ops or reader_map.get(m) != [kernel] or m in program.outputs:
            continue
        if any(m == v for _, v in program.updates) or list(d["inputs"]).count(m) != 1:
            continue
        shape = tuple(program.shapes[m])
        if (spec.space != shape or spec.out_shape != shape or spec.dtype != program.dtypes[m]
                or spec.out_strides != contiguous_strides(shape)):
            continue
        if not all(ld.offset == 0 and ld.strides == spec.out_strides for ld in spec.loads if ld.input == position):
            continue
        yield position, shape


def _foldable(program: Program, consumers, kernel: int) -> tuple[int, LoopSpec] | None:
    """(position of the product among the kernel's inputs, epilogue spec) if ``kernel`` may be
    folded into the matmul it reads, else None."""
    g = program.graph
    d = g.node(kernel)
    spec = dict(d["attrs"])["spec"]
    if spec.n_reduce or not spec.per_element or spec.reductions:
        return None
    if any(kernel == v for _, v in program.updates):
        # an update's kernel (an optimizer step on a weight gradient) stays apart: it writes the
        # parameter in place, which a product cannot (its raw C would overwrite the parameter first)
        return None
    for position, shape in sole_reader_inputs(program, consumers, kernel, ("matmul",)):
        epilogue = _epilogue_spec(spec, position, shape)
        if epilogue is not None:
            return position, epilogue
    return None


def fold_matmul_epilogues(program: Program) -> Program:
    """Every elementwise kernel that is the only reader of a matmul becomes its epilogue."""
    g = program.graph
    folds = find_folds(program, _foldable)
    if not folds:
        return program
    products = {g.node(k)["inputs"][pos]: k for k, (pos, _) in folds.items()}
    b = Builder(program)
    new_of: dict[int, int] = {}
    user = program.origin or {}
    inputs = set(program.inputs)
    for nid in list(program.inputs) + [n for n in program.order if n not in inputs]:
        if nid in new_of or nid in products:
            continue                      # a folded product is computed by its epilogue node
        d = g.node(nid)
        with b.standing_for(user.get(nid, nid)):
            if nid not in folds:
                new_of[nid] = b.copy(nid, [new_of[i] for i in d["inputs"]])
                continue
            position, spec = folds[nid]
            product = d["inputs"][position]
            others = [new_of[i] for k, i in enumerate(d["inputs"]) if k != position]
            operands = [new_of[i] for i in g.node(product)["inputs"]]
            new_of[nid] = b.raw("matmul_epilogue", operands + others, {"spec": spec}, spec.out_shape, spec.dtype,
                                name=d["name"])
    return b.program(new_of, list(b.order))
