"""LLVM library kernels for 2-D pooling (NCHW): max_pool2d, avg_pool2d and their gradients.

Semantics are those of the NumPy references in ops/nn.py:
- max pooling pads with -inf; its gradient goes to the *first* maximum of each window in
  row-major window order (a NaN counts as the maximum), overlapping windows add up;
- average pooling counts the zero padding in the divisor (kh*kw, count_include_pad), and
  its gradient spreads g / (kh*kw) over each window.

Windows of at most ``_MAX_UNROLLED_TAPS`` cells (2x2, 3x3: the usual ones) are unrolled
here: each output keeps its running max/sum (or argmax) in registers while the taps are
read with clamped, always-valid indices and padding cells are masked by a select, so the
loop over output columns has no branch and no store-to-load round trip per tap. Larger
windows run one output row at a time: for every window offset (i, j) an inner loop over
the output columns whose input column is in bounds (a range worked out here). The
gradients are gathers (each input element sums the windows that cover it, in increasing
output order, which is the order the reference adds them in); max_pool2d_grad accumulates
in float64 like the reference's bincount, so its result is bit-identical.

Every pooling kernel is ``<name>_range(out, inputs..., i64 begin, i64 end)`` over the N*C
(sample, channel) planes, which are independent, plus ``<name>(out, inputs...)`` running all
of them (``_plane_kernel``); the backend splits large ones across threads (``pool_units``).
"""
from __future__ import annotations

import math
from contextlib import contextmanager

from llvmlite import ir

from . import Operand, register
from .common import (F64, I64, convert_float, float_type, for_range, i64, imax, imin, load_elem, loop_nest,
                     new_function, store_elem, strided_index)

_MAX_ROW_SCRATCH = 1 << 16   # max_pool2d_grad keeps one float64 input row on the stack
_MAX_UNROLLED_TAPS = 64       # windows up to 8x8 are unrolled into straight-line code per output


class _Geometry:
    """Shapes and window attributes of one pooling instance (all Python ints)."""

    def __init__(self, x_shape, out_shape, attrs):
        self.n, self.c, self.h, self.w = (int(d) for d in x_shape)
        self.ho, self.wo = int(out_shape[2]), int(out_shape[3])
        self.kh, self.kw = (int(v) for v in attrs["kernel"])
        self.sh, self.sw = (int(v) for v in attrs["stride"])
        self.ph, self.pw = (int(v) for v in attrs["padding"])
        want_ho = (self.h + 2 * self.ph - self.kh) // self.sh + 1
        want_wo = (self.w + 2 * self.pw - self.kw) // self.sw + 1
        if (self.ho, self.wo) != (want_ho, want_wo):
            raise ValueError(f"pooling output {out_shape[2:]} does not match input {x_shape} with "
                             f"kernel {attrs['kernel']}, stride {attrs['stride']}, padding {attrs['padding']}")

    def valid_columns(self, j: int) -> tuple[int, int]:
        """[lo, hi) of output columns whose window column j lands inside the input."""
        lo = max(0, -((j - self.pw) // self.sw))                 # ceil((pw - j) / sw)
        hi = min(self.wo, (self.w - 1 + self.pw - j) // self.sw + 1)
        return lo, max(lo, hi)

    @property
    def unrolled(self) -> bool:
        return self.kh * self.kw <= _MAX_UNROLLED_TAPS


def _window_taps(b, geo, x: Operand, x_plane, oh, ow):
    """For each cell (i, j) of window (oh, ow), row-major: (input row, input column, element
    index, in-bounds flag or None when it cannot be padding). Indices are clamped into the
    plane, so a load from them is always valid; the caller masks out-of-bounds values."""
    top = b.sub(b.mul(oh, i64(geo.sh)), i64(geo.ph)) if geo.ph else b.mul(oh, i64(geo.sh))
    left = b.sub(b.mul(ow, i64(geo.sw)), i64(geo.pw)) if geo.pw else b.mul(ow, i64(geo.sw))
    taps = []
    for i in range(geo.kh):
        row = b.add(top, i64(i)) if i else top
        row_ok, row_c = _clamped(b, row, geo.h) if geo.ph else (None, row)
        for j in range(geo.kw):
            col = b.add(left, i64(j)) if j else left
            col_ok, col_c = _clamped(b, col, geo.w) if geo.pw else (None, col)
            ok = row_ok if col_ok is None else (col_ok if row_ok is None else b.and_(row_ok, col_ok))
            index = b.add(x_plane, b.add(b.mul(row_c, i64(x.strides[2])), b.mul(col_c, i64(x.strides[3]))))
            taps.append((row, col, index, ok))
    return taps


def _clamped(b, pos, size: int):
    """(0 <= pos < size, pos clamped into [0, size))."""
    ok = b.and_(b.icmp_signed(">=", pos, i64(0)), b.icmp_signed("<", pos, i64(size)))
    return ok, imin(b, imax(b, pos, 0), size - 1)


def _plane_base(b, op: Operand, n, c):
    """Element offset of x[n, c, 0, 0] in a strided NCHW operand."""
    return strided_index(b, op.offset, op.strides[:2], (n, c))


def pool_units(inputs, out) -> int:
    """Work units of a pooling kernel's ``<name>_range``: its (sample, channel) planes."""
    return int(out.shape[0]) * int(out.shape[1])


def _plane_kernel(module, name, n_inputs, geo):
    """``name_range(ptr out, ptr in..., i64 begin, i64 end)`` over the planes [begin, end) of
    the N*C (sample, channel) planes, which are independent (the backend may split them across
    threads), and ``name(ptr out, ptr in...)`` running all of them. Returns the range function
    and a builder at its entry."""
    ranged = new_function(module, f"{name}_range", 1 + n_inputs, [I64, I64])
    # listed with the other kernels that may be split (library/split.py), planes as the units
    module.__dict__.setdefault("_tf_splittable", {})[name] = (geo.n * geo.c, geo.n * geo.c * geo.h * geo.w)
    whole = new_function(module, name, 1 + n_inputs)
    wb = ir.IRBuilder(whole.append_basic_block("entry"))
    wb.call(ranged, list(whole.args) + [i64(0), i64(geo.n * geo.c)])
    wb.ret_void()
    return ranged, ir.IRBuilder(ranged.append_basic_block("entry"))


@contextmanager
def _planes(b, geo, begin, end):
    """Loop over the planes [begin, end); yields their (sample, channel) indices."""
    with for_range(b, begin, end, name="plane") as plane:
        yield b.sdiv(plane, i64(geo.c)), b.srem(plane, i64(geo.c))


def _covering_range(b, pos, pad, k, s, n_out):
    """[lo, hi) of output positions whose window (start o*s - pad, size k) covers input ``pos``."""
    first = imax(b, b.add(pos, i64(pad - k + 1)), 0)                      # >= 0, so sdiv floors
    lo = b.sdiv(b.add(first, i64(s - 1)), i64(s))
    hi = imin(b, b.add(b.sdiv(b.add(pos, i64(pad)), i64(s)), i64(1)), n_out)
    return lo, imax(b, lo, hi)


def _nan_max(b, acc, value):
    """max that propagates NaN like NumPy's max, with +0 > -0 in any order (IEEE 754-2019
    maximum, ops/signed_zero.py): a compare-and-select kept whichever zero came first."""
    fn = b.module.declare_intrinsic("llvm.maximum", [acc.type], ir.FunctionType(acc.type, [acc.type] * 2))
    return b.call(fn, [acc, value])


def _emit_pool_forward(module, name, inputs, out, attrs, kind):
    (x,) = inputs
    geo = _Geometry(x.shape, out.shape, attrs)
    if geo.unrolled:
        return _emit_pool_forward_unrolled(module, name, x, out, geo, kind)
    ft = float_type(out.dtype)
    xt = float_type(x.dtype)
    fn, b = _plane_kernel(module, name, 1, geo)
    out_ptr, x_ptr, begin, end = fn.args
    init = ir.Constant(ft, -math.inf if kind == "max" else 0.0)
    with _planes(b, geo, begin, end) as (n, c):
        x_plane = _plane_base(b, x, n, c)
        o_plane = b.mul(b.add(b.mul(n, i64(geo.c)), c), i64(geo.ho * geo.wo))
        with for_range(b, 0, geo.ho, name="oh") as oh:
            o_row = b.add(o_plane, b.mul(oh, i64(geo.wo)))
            with for_range(b, 0, geo.wo, name="init") as ow:
                store_elem(b, init, out_ptr, b.add(o_row, ow))
            with for_range(b, 0, geo.kh, name="ki") as i:
                ih = b.add(b.mul(oh, i64(geo.sh)), b.sub(i, i64(geo.ph)))
                inside = b.and_(b.icmp_signed(">=", ih, i64(0)), b.icmp_signed("<", ih, i64(geo.h)))
                with b.if_then(inside):
                    x_row = b.add(x_plane, b.mul(ih, i64(x.strides[2])))
                    for j in range(geo.kw):          # unrolled: each j has its own constant range
                        lo, hi = geo.valid_columns(j)
                        with for_range(b, lo, hi, name=f"ow{j}") as ow:
                            iw = b.add(b.mul(ow, i64(geo.sw)), i64(j - geo.pw))
                            v = convert_float(b, load_elem(b, x_ptr, b.add(x_row, b.mul(iw, i64(x.strides[3]))),
                                                           xt), ft)
                            slot = b.add(o_row, ow)
                            acc = load_elem(b, out_ptr, slot, ft)
                            new = _nan_max(b, acc, v) if kind == "max" else b.fadd(acc, v)
                            store_elem(b, new, out_ptr, slot)
            if kind == "avg":                         # divide (not multiply) like the reference
                count = ir.Constant(ft, float(geo.kh * geo.kw))
                with for_range(b, 0, geo.wo, name="div") as ow:
                    slot = b.add(o_row, ow)
                    store_elem(b, b.fdiv(load_elem(b, out_ptr, slot, ft), count), out_ptr, slot)
    b.ret_void()
    return module.globals[name]


def _emit_pool_forward_unrolled(module, name, x, out, geo, kind):
    """One output at a time, its window's taps unrolled and accumulated in a register, in the
    reference's row-major order (padding cells add 0.0 / compare -inf: no effect)."""
    ft, xt = float_type(out.dtype), float_type(x.dtype)
    fn, b = _plane_kernel(module, name, 1, geo)
    out_ptr, x_ptr, begin, end = fn.args
    neutral = ir.Constant(ft, -math.inf if kind == "max" else 0.0)
    with _planes(b, geo, begin, end) as (n, c), loop_nest(b, (geo.ho, geo.wo), name="o") as (oh, ow):
        acc = neutral
        for _, _, index, ok in _window_taps(b, geo, x, _plane_base(b, x, n, c), oh, ow):
            v = convert_float(b, load_elem(b, x_ptr, index, xt), ft)
            if ok is not None:
                v = b.select(ok, v, neutral)
            acc = _nan_max(b, acc, v) if kind == "max" else b.fadd(acc, v)
        if kind == "avg":                             # divide (not multiply) like the reference
            acc = b.fdiv(acc, ir.Constant(ft, float(geo.kh * geo.kw)))
        slot = b.add(b.mul(b.add(b.mul(b.add(b.mul(n, i64(geo.c)), c), i64(geo.ho)), oh), i64(geo.wo)), ow)
        store_elem(b, acc, out_ptr, slot)
    b.ret_void()
    return module.globals[name]


@register("max_pool2d")
def emit_max_pool2d(module, name, inputs, out, attrs):
    """out[n, c, oh, ow] = max of the (padded with -inf) kh x kw window."""
    return _emit_pool_forward(module, name, inputs, out, attrs, "max")


@register("avg_pool2d")
def emit_avg_pool2d(module, name, inputs, out, attrs):
    """out[n, c, oh, ow] = sum of the zero-padded window / (kh * kw)."""
    return _emit_pool_forward(module, name, inputs, out, attrs, "avg")


def _emit_window_argmax(b, geo, x, x_ptr, x_plane, oh, ow, slots):
    """Input (row, col) of the first maximum of window (oh, ow), or row -1 when it is a
    padding cell (every in-bounds value is -inf and a padding cell comes first)."""
    best_slot, row_slot, col_slot = slots
    xt = float_type(x.dtype)
    top, left = b.sub(b.mul(oh, i64(geo.sh)), i64(geo.ph)), b.sub(b.mul(ow, i64(geo.sw)), i64(geo.pw))
    r0, r1 = imax(b, top, 0), imin(b, b.add(top, i64(geo.kh)), geo.h)
    c0, c1 = imax(b, left, 0), imin(b, b.add(left, i64(geo.kw)), geo.w)
    b.store(ir.Constant(xt, -math.inf), best_slot)
    b.store(i64(-1), row_slot)
    b.store(i64(-1), col_slot)
    with for_range(b, r0, r1, name="wr") as r:
        x_row = b.add(x_plane, b.mul(r, i64(x.strides[2])))
        with for_range(b, c0, c1, name="wc") as col:
            v = load_elem(b, x_ptr, b.add(x_row, b.mul(col, i64(x.strides[3]))), xt)
            best = b.load(best_slot, typ=xt)
            take = b.or_(b.fcmp_ordered(">", v, best),
                         b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", best, best)))
            b.store(b.select(take, v, best), best_slot)
            b.store(b.select(take, r, b.load(row_slot, typ=I64)), row_slot)
            b.store(b.select(take, col, b.load(col_slot, typ=I64)), col_slot)
    # nothing beat -inf: the window's first cell wins, an input cell only if it is in bounds
    row, col = b.load(row_slot, typ=I64), b.load(col_slot, typ=I64)
    none = b.icmp_signed("<", row, i64(0))
    corner_inside = b.and_(b.icmp_signed(">=", top, i64(0)), b.icmp_signed(">=", left, i64(0)))
    row = b.select(none, b.select(corner_inside, top, i64(-1)), row)
    col = b.select(none, left, col)
    return row, col


def _window_argmax_unrolled(b, geo, x, x_ptr, x_plane, oh, ow):
    """``_emit_window_argmax`` with the taps unrolled and the running best in registers."""
    xt = float_type(x.dtype)
    best, row, col = ir.Constant(xt, -math.inf), i64(-1), i64(-1)
    taps = _window_taps(b, geo, x, x_plane, oh, ow)
    for r, c, index, ok in taps:
        v = load_elem(b, x_ptr, index, xt)
        take = b.or_(b.fcmp_ordered(">", v, best),
                     b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", best, best)))
        if ok is not None:
            take = b.and_(ok, take)
        best, row, col = b.select(take, v, best), b.select(take, r, row), b.select(take, c, col)
    # nothing beat -inf: the window's first cell wins, an input cell only if it is in bounds
    first_row, first_col, _, first_ok = taps[0]
    none = b.icmp_signed("<", row, i64(0))
    row = b.select(none, first_row if first_ok is None else b.select(first_ok, first_row, i64(-1)), row)
    return row, b.select(none, first_col, col)


@register("max_pool2d_grad")
def emit_max_pool2d_grad(module, name, inputs, out, attrs):
    """out = g routed to the first maximum of each window of x, summed over windows.

    One input row at a time: a float64 scratch row gathers, in increasing output order,
    the g of every window whose first maximum lies on that row, then is rounded once to
    the output dtype (what the reference's float64 bincount does).
    """
    g, x = inputs
    geo = _Geometry(x.shape, g.shape, attrs)
    if geo.w > _MAX_ROW_SCRATCH:
        raise NotImplementedError(f"max_pool2d_grad: input width {geo.w} exceeds the {_MAX_ROW_SCRATCH} "
                                  "columns of its stack scratch row")
    if geo.sh >= geo.kh and geo.sw >= geo.kw:
        return _emit_max_pool_grad_disjoint(module, name, g, x, out, geo)
    ft, gt = float_type(out.dtype), float_type(g.dtype)
    fn, b = _plane_kernel(module, name, 2, geo)
    out_ptr, g_ptr, x_ptr, begin, end = fn.args
    scratch = b.alloca(F64, size=i64(max(geo.w, 1)), name="row_acc")
    slots = (b.alloca(float_type(x.dtype)), b.alloca(I64), b.alloca(I64))
    zero = ir.Constant(F64, 0.0)
    with _planes(b, geo, begin, end) as (n, c):
        x_plane = _plane_base(b, x, n, c)
        g_plane = _plane_base(b, g, n, c)
        o_plane = b.mul(b.add(b.mul(n, i64(geo.c)), c), i64(geo.h * geo.w))
        with for_range(b, 0, geo.h, name="ih") as ih:
            with for_range(b, 0, geo.w, name="z") as iw:
                store_elem(b, zero, scratch, iw)
            oh_lo, oh_hi = _covering_range(b, ih, geo.ph, geo.kh, geo.sh, geo.ho)
            with for_range(b, oh_lo, oh_hi, name="oh") as oh:
                g_row = b.add(g_plane, b.mul(oh, i64(g.strides[2])))
                with for_range(b, 0, geo.wo, name="ow") as ow:
                    row, col = _emit_window_argmax(b, geo, x, x_ptr, x_plane, oh, ow, slots)
                    with b.if_then(b.icmp_signed("==", row, ih)):
                        gv = load_elem(b, g_ptr, b.add(g_row, b.mul(ow, i64(g.strides[3]))), gt)
                        acc = load_elem(b, scratch, col, F64)
                        store_elem(b, b.fadd(acc, convert_float(b, gv, F64)), scratch, col)
            o_row = b.add(o_plane, b.mul(ih, i64(geo.w)))
            with for_range(b, 0, geo.w, name="st") as iw:
                store_elem(b, convert_float(b, load_elem(b, scratch, iw, F64), ft), out_ptr, b.add(o_row, iw))
    b.ret_void()
    return module.globals[name]


def _emit_max_pool_grad_disjoint(module, name, g, x, out, geo):
    """The common case stride >= kernel: windows do not overlap, so each input element gets
    at most one gradient and a direct scatter (each window's argmax computed once) is exact.
    The stored value is 0.0 + g in float64, which is what the reference's bincount yields
    (it turns a -0.0 into +0.0)."""
    ft, gt = float_type(out.dtype), float_type(g.dtype)
    fn, b = _plane_kernel(module, name, 2, geo)
    out_ptr, g_ptr, x_ptr, begin, end = fn.args
    slots = (b.alloca(float_type(x.dtype)), b.alloca(I64), b.alloca(I64))
    plane_size = geo.h * geo.w
    writes_every_cell = (geo.unrolled and not (geo.ph or geo.pw) and (geo.sh, geo.sw) == (geo.kh, geo.kw)
                         and (geo.ho * geo.sh, geo.wo * geo.sw) == (geo.h, geo.w))
    if not writes_every_cell:     # windows tiling the plane exactly write all of it themselves
        with for_range(b, b.mul(begin, i64(plane_size)), b.mul(end, i64(plane_size)), name="fill") as z:
            store_elem(b, ir.Constant(ft, 0.0), out_ptr, z)
    with _planes(b, geo, begin, end) as (n, c):
        x_plane = _plane_base(b, x, n, c)
        g_plane = _plane_base(b, g, n, c)
        o_plane = b.mul(b.add(b.mul(n, i64(geo.c)), c), i64(geo.h * geo.w))
        with for_range(b, 0, geo.ho, name="oh") as oh:
            g_row = b.add(g_plane, b.mul(oh, i64(g.strides[2])))
            with for_range(b, 0, geo.wo, name="ow") as ow:
                gv = load_elem(b, g_ptr, b.add(g_row, b.mul(ow, i64(g.strides[3]))), gt)
                value = convert_float(b, b.fadd(ir.Constant(F64, 0.0), convert_float(b, gv, F64)), ft)
                if geo.unrolled and not (geo.ph or geo.pw):
                    _write_window(b, geo, x, x_ptr, x_plane, out_ptr, o_plane, oh, ow, value)
                else:
                    _scatter_to_argmax(b, geo, x, x_ptr, x_plane, out_ptr, o_plane, oh, ow, value, slots)
    b.ret_void()
    return module.globals[name]


def _scatter_to_argmax(b, geo, x, x_ptr, x_plane, out_ptr, o_plane, oh, ow, value, slots):
    """``value`` into the input cell of window (oh, ow)'s first maximum, if that is not padding."""
    if geo.unrolled:
        row, col = _window_argmax_unrolled(b, geo, x, x_ptr, x_plane, oh, ow)
    else:
        row, col = _emit_window_argmax(b, geo, x, x_ptr, x_plane, oh, ow, slots)
    with b.if_then(b.icmp_signed(">=", row, i64(0))):
        store_elem(b, value, out_ptr, b.add(o_plane, b.add(b.mul(row, i64(geo.w)), col)))


def _write_window(b, geo, x, x_ptr, x_plane, out_ptr, o_plane, oh, ow, value):
    """Every cell of window (oh, ow) (no padding): ``value`` at its first maximum, 0 elsewhere.

    Branch-free: with random data the argmax is unpredictable, and the select chains of
    ``_window_argmax_unrolled`` compiled to branches that mispredicted about every other
    window (max_pool2d_grad of 64x8x8x8 took 36 us; this writes the same bits)."""
    xt = float_type(x.dtype)
    taps = _window_taps(b, geo, x, x_plane, oh, ow)
    values = [load_elem(b, x_ptr, index, xt) for _, _, index, _ in taps]
    zero = ir.Constant(value.type, 0.0)
    for (row, col, _, _), hit in zip(taps, _first_maximum_flags(b, values)):
        store_elem(b, b.select(hit, value, zero), out_ptr, b.add(o_plane, b.add(b.mul(row, i64(geo.w)), col)))


def _first_maximum_flags(b, values):
    """Per value, whether it is the first maximum in the reference's sense: the first NaN if
    there is one, else the first value equal to the largest (-0.0 == 0.0, so ties go to the
    earlier cell, as a strict ``>`` scan gives; all -inf: the first cell)."""
    best = ir.Constant(values[0].type, -math.inf)
    any_nan = ir.Constant(ir.IntType(1), 0)
    for v in values:
        best = b.select(b.fcmp_ordered(">", v, best), v, best)
        any_nan = b.or_(any_nan, b.fcmp_unordered("uno", v, v))
    found = ir.Constant(ir.IntType(1), 0)
    flags = []
    for v in values:
        is_max = b.select(any_nan, b.fcmp_unordered("uno", v, v), b.fcmp_ordered("==", v, best))
        hit = b.and_(is_max, b.not_(found))
        found = b.or_(found, hit)
        flags.append(hit)
    return flags


@register("avg_pool2d_grad")
def emit_avg_pool2d_grad(module, name, inputs, out, attrs):
    """out[n, c, ih, iw] = sum over the windows covering (ih, iw) of g / (kh * kw)
    (x_ref is read for its shape only)."""
    g, x_ref = inputs
    geo = _Geometry(x_ref.shape, g.shape, attrs)
    ft, gt = float_type(out.dtype), float_type(g.dtype)
    count = ir.Constant(ft, float(geo.kh * geo.kw))
    fn, b = _plane_kernel(module, name, 2, geo)
    out_ptr, g_ptr, begin, end = fn.args[0], fn.args[1], fn.args[3], fn.args[4]
    acc_slot = b.alloca(ft)
    with _planes(b, geo, begin, end) as (n, c):
        g_plane = _plane_base(b, g, n, c)
        o_plane = b.mul(b.add(b.mul(n, i64(geo.c)), c), i64(geo.h * geo.w))
        with for_range(b, 0, geo.h, name="ih") as ih:
            oh_lo, oh_hi = _covering_range(b, ih, geo.ph, geo.kh, geo.sh, geo.ho)
            with for_range(b, 0, geo.w, name="iw") as iw:
                ow_lo, ow_hi = _covering_range(b, iw, geo.pw, geo.kw, geo.sw, geo.wo)
                b.store(ir.Constant(ft, 0.0), acc_slot)
                with for_range(b, oh_lo, oh_hi, name="oh") as oh:
                    g_row = b.add(g_plane, b.mul(oh, i64(g.strides[2])))
                    with for_range(b, ow_lo, ow_hi, name="ow") as ow:
                        gv = convert_float(b, load_elem(b, g_ptr, b.add(g_row, b.mul(ow, i64(g.strides[3]))), gt), ft)
                        b.store(b.fadd(b.load(acc_slot, typ=ft), b.fdiv(gv, count)), acc_slot)
                store_elem(b, b.load(acc_slot, typ=ft), out_ptr,
                           b.add(o_plane, b.add(b.mul(ih, i64(geo.w)), iw)))
    b.ret_void()
    return module.globals[name]
