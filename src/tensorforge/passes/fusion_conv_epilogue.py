"""Convolution epilogues: the elementwise kernel that finishes a conv2d's result (bias, ReLU)
is applied by the convolution itself, sample by sample, while the sample's output is in cache.

``relu(conv2d(x, w) + b)`` fuses (``fusion.py``) into a conv2d and one elementwise kernel that
reads the convolution element for element and the bias broadcast over (N, Ho, Wo). When that
kernel is the convolution's only reader, both become one node
``conv2d_epilogue(x, w, *inputs)`` (attrs: the convolution's stride and padding, and the
kernel's ``spec``). The same holds for conv2d_grad_input, whose reader in a CNN's backward
pass is the ReLU mask of the layer below: ``conv2d_grad_input_epilogue(g, w, x_ref, *inputs)``.
In both, 
    input 0 of spec   the raw convolution (read at the element being written)
    inputs 1, ...     the kernel's other inputs (bias, ...)
    space             the convolution's output (N, O, Ho, Wo) (grad_input: (N, C, H, W)), unchanged
    outputs           as the kernel's (several for a multi-output kernel, see fusion_multi.py)

This is the counterpart of fusion_epilogue.py (matmul) and is decided on the program alone,
for every backend. The LLVM kernel runs the spec over each sample right after that sample's
GEMM (library/conv.py); the interpreter runs the convolution with NumPy and then evaluates
the spec, the reference; the Triton backend runs the two unfused (a convolution, then the
elementwise kernel), so every backend computes exactly what the unfused program does.
A kernel is folded only when its output has the convolution's dtype (it is written over
the convolution's result), every load walks the output positions (Ho, Wo) as one axis (true
of bias broadcasts and same-shape operands), and it is not an optimizer's update kernel.
"""
from __future__ import annotations

from dataclasses import replace

from ..kernel_ir import Load, LoopSpec
from ..program import Program
from .fusion_epilogue import find_folds, sole_reader_inputs
from .rewrite import Builder

__all__ = ["fold_conv_epilogues", "EPILOGUE_OF"]

# the convolution kernels that take an epilogue, and the op each becomes with one
EPILOGUE_OF = {"conv2d": "conv2d_epilogue", "conv2d_grad_input": "conv2d_grad_input_epilogue"}


def _positions_flatten(strides, shape) -> bool:
    """Whether a load over (N, O, Ho, Wo) walks (Ho, Wo) with a single stride."""
    return shape[2] == 1 or shape[3] == 1 or strides[2] == strides[3] * shape[3]


def _epilogue_spec(spec: LoopSpec, conv_input: int) -> LoopSpec:
    """``spec`` with the convolution as input 0 and the other inputs after it, in order."""
    loads = tuple(Load(0 if ld.input == conv_input else 1 + ld.input - (ld.input > conv_input), ld.strides, ld.offset)
                  for ld in spec.loads)
    return replace(spec, loads=loads)


def _foldable(program: Program, consumers: dict[int, list[int]], kernel: int) -> tuple[int, LoopSpec] | None:
    """(position of the convolution among the kernel's inputs, epilogue spec) if ``kernel`` may
    be folded into the conv2d it reads, else None."""
    g = program.graph
    d = g.node(kernel)
    spec = dict(d["attrs"])["spec"]
    if spec.n_reduce or not spec.per_element or spec.reductions or len(spec.space) != 4:
        return None
    if any(kernel == v for _, v in program.updates):
        return None               # an update kernel writes its parameter in place (see fusion_epilogue.py)
    for position, shape in sole_reader_inputs(program, consumers, kernel, EPILOGUE_OF):
        if all(_positions_flatten(ld.strides, shape) for ld in spec.loads):
            return position, _epilogue_spec(spec, position)
    return None


def fold_conv_epilogues(program: Program) -> Program:
    """Every elementwise kernel that is the only reader of a conv2d becomes its epilogue."""
    g = program.graph
    folds = find_folds(program, _foldable)
    if not folds:
        return program
    convs = {g.node(k)["inputs"][pos] for k, (pos, _) in folds.items()}
    b = Builder(program)
    new_of: dict[int, int] = {}
    user = program.origin or {}
    inputs = set(program.inputs)
    for nid in list(program.inputs) + [n for n in program.order if n not in inputs]:
        if nid in new_of or nid in convs:
            continue                      # a folded convolution is computed by its epilogue node
        d = g.node(nid)
        with b.standing_for(user.get(nid, nid)):
            if nid not in folds:
                new_of[nid] = b.copy(nid, [new_of[i] for i in d["inputs"]])
                continue
            position, spec = folds[nid]
            conv = g.node(d["inputs"][position])
            others = [new_of[i] for k, i in enumerate(d["inputs"]) if k != position]
            operands = [new_of[i] for i in conv["inputs"]]
            attrs = dict(conv["attrs"])
            new_of[nid] = b.raw(EPILOGUE_OF[conv["op"]], operands + others,
                                {"stride": attrs["stride"], "padding": attrs["padding"], "spec": spec},
                                spec.out_shape, spec.dtype, name=d["name"])
    return b.program(new_of, list(b.order))
