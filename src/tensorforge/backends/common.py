"""What every code-generating backend shares: strided operands and how views become them.

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
