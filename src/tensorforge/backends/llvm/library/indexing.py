"""LLVM library kernels for data movement: the generic strided ``copy``, getitem and its
gradient, concat and concat_grad, one_hot.

All of them are strided copies whose views are worked out here, in Python, from the
operands' shapes, strides and the op's attributes (everything is a compile-time constant),
so the emitted code is a plain loop nest over constant bounds with constant strides.
"""
from __future__ import annotations

from llvmlite import ir

from ...common import broadcast_view, concat_grad_view
from . import Operand, register
from .common import (I64, begin_kernel, contiguous_strides, emit_fill, emit_strided_copy, for_range,
                     i64, is_unsigned, loop_nest, load_elem, store_elem, strided_index, value_type)


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


@register("copy")
def emit_copy(module: ir.Module, name: str, inputs: list[Operand], out: Operand, attrs: dict) -> ir.Function:
    """out = input read through its strides (materialises a transpose/broadcast/strided view).

    The input is matched to the output shape in this order: the same shape (element-wise
    copy); a shape that broadcasts to it (stride-0 axes); the same number of elements (a
    reshape: output element i is the input's i-th element in C order). The dtype is
    converted like ``astype`` when the two differ.
    """
    (src,) = inputs
    fn, b = begin_kernel(module, name, 1)
    dst_ptr, src_ptr = fn.args
    view = broadcast_view(src, out.shape)
    if view is not None:
        emit_strided_copy(b, dst_ptr, 0, contiguous_strides(out.shape), out.dtype,
                          src_ptr, view.offset, view.strides, src.dtype, out.shape)
    elif _size(src.shape) == _size(out.shape):
        # reshape: walk the input in C order, the output is contiguous in the same order
        emit_strided_copy(b, dst_ptr, 0, contiguous_strides(src.shape), out.dtype,
                          src_ptr, src.offset, src.strides, src.dtype, src.shape)
    else:
        raise ValueError(f"copy: input shape {src.shape} neither broadcasts nor reshapes to {out.shape}")
    b.ret_void()
    return fn


# ---- getitem / getitem_grad ------------------------------------------------------------

def index_view(base: Operand, index) -> Operand:
    """The view ``base[index]`` for a normalised ``index`` attribute (see ops/indexing.py):
    ints move the offset, slices scale the stride, new axes get stride 0."""
    offset, shape, strides, axis = base.offset, [], [], 0
    for entry in index:
        kind = entry[0]
        if kind == "new":
            shape.append(1)
            strides.append(0)
            continue
        dim, stride = base.shape[axis], base.strides[axis]
        if kind == "int":
            k = entry[1] + dim if entry[1] < 0 else entry[1]
            if not 0 <= k < dim:
                raise IndexError(f"getitem: index {entry[1]} is out of range for axis {axis} of size {dim}")
            offset += k * stride
        else:
            start, stop, step = slice(entry[1], entry[2], entry[3]).indices(dim)
            length = len(range(start, stop, step))
            if length:
                offset += start * stride
            shape.append(length)
            strides.append(step * stride)
        axis += 1
    return Operand(tuple(shape), tuple(strides), offset, base.dtype)


def _view_copy_kernel(module, name, n_inputs, view: Operand, out: Operand) -> ir.Function:
    """A kernel copying ``view`` of its first input into ``out`` (contiguous, converted to out's
    dtype); the other inputs only give shapes."""
    fn, b = begin_kernel(module, name, n_inputs)
    emit_strided_copy(b, fn.args[0], 0, contiguous_strides(out.shape), out.dtype,
                      fn.args[1], view.offset, view.strides, view.dtype, out.shape)
    b.ret_void()
    return fn


def _check_shape(what, got, want):
    if tuple(got) != tuple(want):
        raise ValueError(f"{what}: shape {tuple(got)} does not match the expected {tuple(want)}")


@register("getitem")
def emit_getitem(module, name, inputs, out, attrs):
    """out = x[index] (basic indexing): one strided copy from the indexed view."""
    (x,) = inputs
    view = index_view(x, attrs["index"])
    _check_shape("getitem", view.shape, out.shape)
    return _view_copy_kernel(module, name, 1, view, out)


@register("getitem_grad")
def emit_getitem_grad(module, name, inputs, out, attrs):
    """out = zeros(x_ref.shape); out[index] = g (basic indexing never repeats an element)."""
    g, _ref = inputs
    frame = Operand(out.shape, contiguous_strides(out.shape), 0, out.dtype)
    view = index_view(frame, attrs["index"])
    _check_shape("getitem_grad", g.shape, view.shape)
    fn, b = begin_kernel(module, name, 2)
    emit_fill(b, fn.args[0], _size(out.shape), out.dtype, 0)
    emit_strided_copy(b, fn.args[0], view.offset, view.strides, out.dtype,
                      fn.args[1], g.offset, g.strides, g.dtype, g.shape)
    b.ret_void()
    return fn


# ---- concat / concat_grad --------------------------------------------------------------

@register("concat")
def emit_concat(module, name, inputs, out, attrs):
    """out = concatenate(inputs, axis): one strided copy per input into its slab of out
    (inputs of another dtype are converted like np.concatenate does)."""
    ndim = len(out.shape)
    axis = int(attrs["axis"]) % ndim
    out_strides = contiguous_strides(out.shape)
    fn, b = begin_kernel(module, name, len(inputs))
    start = 0
    for x, ptr in zip(inputs, fn.args[1:]):
        want = tuple(out.shape[:axis]) + (x.shape[axis],) + tuple(out.shape[axis + 1:])
        _check_shape("concat input", x.shape, want)
        emit_strided_copy(b, fn.args[0], start * out_strides[axis], out_strides, out.dtype,
                          ptr, x.offset, x.strides, x.dtype, x.shape)
        start += x.shape[axis]
    _check_shape("concat", (start,), (out.shape[axis],))
    b.ret_void()
    return fn


@register("concat_grad")
def emit_concat_grad(module, name, inputs, out, attrs):
    """out = g[before.shape[axis] : + ref.shape[axis]] along axis (before, ref: shapes only)."""
    g, before, _ref = inputs
    part = concat_grad_view(g, before.shape, out.shape, attrs["axis"])
    return _view_copy_kernel(module, name, 3, part, out)


# ---- one_hot ---------------------------------------------------------------------------

@register("one_hot")
def emit_one_hot(module, name, inputs, out, attrs):
    """out[..., d] = (labels[...] == d) for d < depth.

    Unlike the NumPy reference (which raises), native code cannot raise: tg.compile checks
    labels that come from inputs before the call, and a label computed in the graph that is
    outside [0, depth) gives a NaN row (a zero row for integer outputs), so the loss built
    on it is NaN rather than quietly wrong.
    """
    (labels,) = inputs
    depth = int(attrs["depth"])
    _check_shape("one_hot", out.shape, tuple(labels.shape) + (depth,))
    out_t = value_type(out.dtype)
    one, zero = (ir.Constant(out_t, 1.0), ir.Constant(out_t, 0.0)) if out.dtype.startswith("float") \
        else (ir.Constant(out_t, 1), ir.Constant(out_t, 0))
    poison = ir.Constant(out_t, float("nan")) if out.dtype.startswith("float") else zero
    fn, b = begin_kernel(module, name, 1)
    row_strides = contiguous_strides(labels.shape)
    with loop_nest(b, labels.shape, name="lab") as idx:
        label = load_elem(b, fn.args[1], strided_index(b, labels.offset, labels.strides, idx),
                          value_type(labels.dtype))
        if label.type.width < 64:
            label = b.zext(label, I64) if is_unsigned(labels.dtype) else b.sext(label, I64)
        row = b.mul(strided_index(b, 0, row_strides, idx), i64(depth))
        # unsigned compare: a negative label is a huge one, so one test catches both ends
        bad = b.icmp_unsigned(">=", label, i64(depth))
        with for_range(b, 0, depth, name="d") as d:
            hot = b.select(bad, poison, b.select(b.icmp_signed("==", label, d), one, zero))
            store_elem(b, hot, fn.args[0], b.add(row, d))
    b.ret_void()
    return fn
