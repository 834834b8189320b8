"""LLVM library kernels for data movement: the generic strided ``copy``, getitem and its
gradient, concat and concat_grad, one_hot.

All of them are strided copies whose views are worked out here, in Python, from the
operands' shapes, strides and the op's attributes (everything is a compile-time constant),
so the emitted code is a plain loop nest over constant bounds with constant strides.

The single-copy kernels (copy, getitem, concat_grad) have a ``_range`` function over the first
(merged) axis of their copy (library/split.py), so a large copy is split across the thread
pool; every element is copied by exactly one thread.
"""
from __future__ import annotations

from llvmlite import ir

from ...common import broadcast_view, concat_grad_view
from . import Operand, register
from .split import begin_range_kernel, finish_range_kernel
from .common import (I64, begin_kernel, contiguous_strides, convert_value, emit_fill, emit_strided_copy,
                     for_range, merge_axes, i64, is_unsigned, loop_nest, load_elem, store_elem, strided_index, value_type)


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
    view = broadcast_view(src, out.shape)
    if view is not None:
        return _split_copy_kernel(module, name, 1, contiguous_strides(out.shape), out.dtype,
                                  view.offset, view.strides, src.dtype, out.shape)
    if _size(src.shape) == _size(out.shape):
        # reshape: walk the input in C order, the output is contiguous in the same order
        return _split_copy_kernel(module, name, 1, contiguous_strides(src.shape), out.dtype,
                                  src.offset, src.strides, src.dtype, src.shape)
    raise ValueError(f"copy: input shape {src.shape} neither broadcasts nor reshapes to {out.shape}")


def _split_copy_kernel(module, name, n_inputs, dst_strides, dst_dtype, src_offset, src_strides, src_dtype,
                       shape) -> ir.Function:
    """out[dst view] = in0[src view] (converted), as a range kernel over the first merged axis
    (the loop of ``emit_strided_copy``, with that axis covering [begin, end))."""
    shape, (dst_strides, src_strides) = merge_axes(shape, dst_strides, src_strides)
    if not shape:                       # a single element: one step of a dummy axis
        shape, dst_strides, src_strides = (1,), (0,), (0,)
    fn, b, begin, end = begin_range_kernel(module, name, n_inputs)
    dst, src = fn.args[0], fn.args[1]
    src_t = value_type(src_dtype)
    with for_range(b, begin, end, name="cp0") as first, loop_nest(b, shape[1:], name="cp") as rest:
        idx = [first] + list(rest)
        value = load_elem(b, src, strided_index(b, src_offset, src_strides, idx), src_t)
        store_elem(b, convert_value(b, value, src_dtype, dst_dtype), dst, strided_index(b, 0, dst_strides, idx))
    b.ret_void()
    return finish_range_kernel(module, name, fn, n_inputs, shape[0], _size(shape))


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
    return _split_copy_kernel(module, name, n_inputs, contiguous_strides(out.shape), out.dtype,
                              view.offset, view.strides, view.dtype, out.shape)


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
