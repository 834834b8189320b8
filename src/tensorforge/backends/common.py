"""What every code-generating backend shares: strided operands and how views become them,
the registry of library-kernel emitters, and the shape work of library ops that does not
depend on the code being generated.

A view (transpose, broadcast, slice, size-1 reshape, ...) is never computed: it is a
different way of reading its base buffer, described by an ``Operand`` (shape, element
strides, element offset, dtype). Kernels read their inputs through operands, so a
transposed matmul operand or a broadcast bias costs no copy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..passes.fusion import view_input_map


@dataclass(frozen=True)
class Operand:
    shape: tuple[int, ...]
    strides: tuple[int, ...]   # in elements (not bytes); may be 0 (broadcast) or permuted (transposed view)
    offset: int                # in elements
    dtype: str                 # numpy dtype name: "float32", "float64", "int64", "bool" (bool = i8 0/1)


def contiguous_strides(shape) -> tuple[int, ...]:
    """C-order strides in elements."""
    strides, step = [], 1
    for d in reversed(tuple(shape)):
        strides.append(step)
        step *= int(d)
    return tuple(reversed(strides))


def contiguous(shape, dtype) -> Operand:
    return Operand(tuple(shape), contiguous_strides(shape), 0, dtype)


def is_contiguous(op: Operand) -> bool:
    """C-contiguous from offset 0 (strides of size-1 axes do not matter)."""
    want = contiguous_strides(op.shape)
    return op.offset == 0 and all(s == w for s, w, d in zip(op.strides, want, op.shape) if d > 1)


def broadcast_view(src: Operand, shape) -> Operand | None:
    """``src`` seen with ``shape`` under NumPy broadcasting (stride 0 on broadcast axes), or
    None when the shapes do not broadcast."""
    shape = tuple(int(d) for d in shape)
    if len(src.shape) > len(shape):
        return None
    lead = len(shape) - len(src.shape)
    strides = [0] * lead
    for d_src, s_src, d_out in zip(src.shape, src.strides, shape[lead:]):
        if d_src == d_out:
            strides.append(s_src)
        elif d_src == 1:
            strides.append(0)
        else:
            return None
    return Operand(shape, tuple(strides), src.offset, src.dtype)


def is_index_mixing_reshape(op: str, in_shape, out_shape) -> bool:
    """A reshape that is more than inserting/removing size-1 axes (it needs contiguous memory)."""
    return op in ("reshape", "reshape_like") and \
        [s for s in in_shape if s != 1] != [s for s in out_shape if s != 1]


def view_operand(op: str, attrs: dict, in_shape, out_shape, src: Operand) -> Operand | None:
    """How to read view ``op`` of ``src``; None when the source must first be made contiguous
    (an index-mixing reshape of a non-contiguous view)."""
    if is_index_mixing_reshape(op, in_shape, out_shape):
        if not is_contiguous(src):
            return None
        return Operand(tuple(out_shape), contiguous_strides(out_shape), src.offset, src.dtype)
    eye = np.eye(len(out_shape), dtype=np.int64)
    M, off = view_input_map(op, attrs, in_shape, out_shape, eye, np.zeros(len(out_shape), np.int64))
    s_in = np.array(src.strides, dtype=np.int64)
    strides = tuple(int(v) for v in (s_in @ M)) if len(s_in) else (0,) * len(out_shape)
    offset = src.offset + (int(s_in @ off) if len(s_in) else 0)
    return Operand(tuple(out_shape), strides, offset, src.dtype)


# ---- library kernels: the emitter registry and backend-independent shape work ------------

def library_registrar(library: dict, what: str):
    """The decorator ``register(op_name)`` that adds an emitter to ``library`` (op name ->
    emitter); registering an op twice is a ValueError that names ``what``."""
    def register(op_name):
        """Decorator adding an emitter to the library under ``op_name``."""
        def add(emitter):
            if op_name in library:
                raise ValueError(f"{what} for {op_name!r} is registered twice")
            library[op_name] = emitter
            return emitter
        return add
    return register


def argmax_axes(axis, ndim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(reduced axes, kept axes) of argmax over ``axis``: None reduces every axis; otherwise one
    axis, given as an int or a one-element list or tuple."""
    if axis is None:
        return tuple(range(ndim)), ()
    if isinstance(axis, (tuple, list)):
        if len(axis) != 1:
            raise NotImplementedError(f"argmax over several axes {axis} is not supported (NumPy neither)")
        axis = axis[0]
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"argmax: axis {axis} is out of range for rank {ndim}")
    reduced = int(axis) % ndim
    return (reduced,), tuple(a for a in range(ndim) if a != reduced)


def concat_grad_view(g: Operand, before_shape, out_shape, axis) -> Operand:
    """The slab of concat's gradient ``g`` that belongs to one input of shape ``out_shape``:
    along ``axis`` it starts after the inputs before it (together ``before_shape``)."""
    axis = int(axis) % len(g.shape)
    start = before_shape[axis]
    if start + out_shape[axis] > g.shape[axis]:
        raise ValueError(f"concat_grad: part [{start}, {start + out_shape[axis]}) exceeds g's axis "
                         f"{axis} of size {g.shape[axis]}")
    return Operand(tuple(out_shape), g.strides, g.offset + start * g.strides[axis], g.dtype)
