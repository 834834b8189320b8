"""Triton library kernels for data movement: the generic strided ``copy``, getitem and its
gradient, concat and concat_grad, one_hot."""
from __future__ import annotations

from ...common import Operand, broadcast_view, concat_grad_view, contiguous_strides
from ..source import ident
from . import register
from .common import (INT32_LIMIT, KernelLaunch, _addr, _convert, _copy_op, _flat_kernel, _flat_launch,
                     _is_float, _lit, _single, _size, _span, _strided_copy_kernel, _tl)

# ---- copy / getitem / getitem_grad / concat / concat_grad ---------------------------------

@register("copy")
def emit_copy(name, inputs, out, attrs):
    """out = input read through its strides: same shape, a broadcast, or a reshape (C order);
    dtype converted like astype."""
    (src,) = inputs
    view = broadcast_view(src, out.shape)
    if view is not None:
        text, l = _copy_op(name, out.shape, src, view.strides, view.offset, out)
    elif _size(src.shape) == _size(out.shape):
        text, l = _copy_op(name, src.shape, src, src.strides, src.offset, out)
    else:
        raise ValueError(f"copy: input shape {src.shape} neither broadcasts nor reshapes to {out.shape}")
    return _single(text, [l])


def index_view(base: Operand, index) -> Operand:
    """The view ``base[index]`` for a normalised getitem ``index`` attribute."""
    from ...llvm.library.indexing import index_view as llvm_index_view
    return llvm_index_view(base, index)


@register("getitem")
def emit_getitem(name, inputs, out, attrs):
    (x,) = inputs
    view = index_view(x, attrs["index"])
    if tuple(view.shape) != tuple(out.shape):
        raise ValueError(f"getitem: view shape {view.shape} does not match {out.shape}")
    text, l = _copy_op(name, out.shape, x, view.strides, view.offset, out)
    return _single(text, [l])


def _fill_kernel(kname, total, dtype, value=0):
    lit = _lit(value) if _is_float(dtype) else str(int(value))
    body = [f"tl.store(out_ptr + i, tl.full([BLOCK], {lit}, {_tl(dtype)}), mask=mask)"]
    return _flat_kernel(kname, 1, total, body, total > INT32_LIMIT)


@register("getitem_grad")
def emit_getitem_grad(name, inputs, out, attrs):
    """out = zeros; out[index] = g: a fill launch, then a scatter copy into the indexed view."""
    g, _ref = inputs
    frame = Operand(tuple(out.shape), contiguous_strides(out.shape), 0, out.dtype)
    view = index_view(frame, attrs["index"])
    if tuple(view.shape) != tuple(g.shape):
        raise ValueError(f"getitem_grad: g shape {g.shape} does not match the view {view.shape}")
    fill = ident(name) + "_fill"
    text = _fill_kernel(fill, _size(out.shape), out.dtype)
    scatter = ident(name) + "_scatter"
    copy_text, total = _strided_copy_kernel(scatter, g.shape, g, g.strides, g.offset, view.strides,
                                            view.offset, out.dtype, _size(out.shape))
    return _single(text + copy_text, [_flat_launch(fill, _size(out.shape), ["out"]),
                                      _flat_launch(scatter, total, ["out", "in0"])])


@register("concat")
def emit_concat(name, inputs, out, attrs):
    """One strided copy launch per input into its slab of out."""
    ndim = len(out.shape)
    axis = int(attrs["axis"]) % ndim
    out_strides = contiguous_strides(out.shape)
    text, launches, start = "", [], 0
    for k, x in enumerate(inputs):
        want = tuple(out.shape[:axis]) + (x.shape[axis],) + tuple(out.shape[axis + 1:])
        if tuple(x.shape) != want:
            raise ValueError(f"concat: input {k} has shape {x.shape}, expected {want}")
        kname = f"{ident(name)}_part{k}"
        part, total = _strided_copy_kernel(kname, x.shape, x, x.strides, x.offset, out_strides,
                                           start * out_strides[axis], out.dtype, _size(out.shape))
        text += part
        launches.append(KernelLaunch(kname, _flat_launch(kname, total, []).grid, ("out", f"in{k}"),
                                     (), _flat_launch(kname, total, []).meta))
        start += x.shape[axis]
    if start != out.shape[axis]:
        raise ValueError(f"concat: parts add up to {start} along axis {axis}, not {out.shape[axis]}")
    return _single(text, launches)


@register("concat_grad")
def emit_concat_grad(name, inputs, out, attrs):
    """out = g[before.shape[axis] : + ref.shape[axis]] along axis (before, ref: shapes only)."""
    g, before, _ref = inputs
    part = concat_grad_view(g, before.shape, out.shape, attrs["axis"])
    text, l = _copy_op(name, out.shape, g, part.strides, part.offset, out)
    return _single(text, [l])


# ---- one_hot ----------------------------------------------------------------------------

@register("one_hot")
def emit_one_hot(name, inputs, out, attrs):
    """out[..., d] = (labels[...] == d). Kernels cannot raise: tg.compile checks labels that come
    from inputs, and a label computed in the graph outside [0, depth) gives a NaN row (a zero
    row for integer outputs), as on the LLVM backend."""
    (labels,) = inputs
    depth = int(attrs["depth"])
    if tuple(out.shape) != tuple(labels.shape) + (depth,):
        raise ValueError(f"one_hot: output shape {out.shape} does not match {labels.shape} + ({depth},)")
    total = _size(out.shape)
    kname = ident(name)
    label = f"tl.load(in0_ptr + {_addr('row', labels.shape, labels.strides, labels.offset)}, mask=mask, other=-1)"
    body = [f"row = i // {depth}",
            f"lab = {label}.to(tl.int64)",
            f"hot = lab == (i % {depth})",
            f"val = {_convert('hot', 'bool', out.dtype)}"]
    if _is_float(out.dtype):
        body.append(f"val = tl.where(lab < 0, float('nan'), tl.where(lab >= {depth}, float('nan'), val))")
    body.append("tl.store(out_ptr + i, val, mask=mask)")
    wide = max(total, _span(labels)) > INT32_LIMIT
    return _single(_flat_kernel(kname, 2, total, body, wide), [_flat_launch(kname, total, ["out", "in0"])])
