"""Library kernels of the Triton backend: matmul (tl.dot), conv via im2col + matmul, pooling,
indexing copies, one_hot, argmax, the counter-based random ops and the strided ``copy``.

Each emitter ``emit(name, inputs: list[Operand], out: Operand, attrs) -> (source, LaunchInfo)``
returns the text of one or more ``@triton.jit`` kernels (shapes, strides and offsets baked in
as constants, like the LLVM library) and a ``LaunchInfo``: the launches in order, each naming
the buffers it reads and writes ("out", "in0", "in1", ..., "scratch0", ...), plus the scratch
buffers (shape, dtype) the caller must allocate for the op. Inputs are read through their
``Operand`` strides and offset (views are never copied); outputs are contiguous C order.

The caller (the backend) writes the source to a module file and imports it; ``launch`` runs
a LaunchInfo given tensors and an allocator, so this module never imports torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...ops import random as rnd
from ..common import (Operand, argmax_axes, broadcast_view, concat_grad_view, contiguous_strides,
                      library_registrar)
from .source import PRELUDE, ident, load_module
from .tuning import TuneSpec, choose

__all__ = ["Operand", "Scratch", "KernelLaunch", "LaunchInfo", "LIBRARY", "register", "launch",
           "load_module", "ident", "SOURCE_HEADER"]

SOURCE_HEADER = PRELUDE   # each op's text imports what it uses, so it also loads on its own
INT32_LIMIT = 2 ** 31 - 1


@dataclass(frozen=True)
class Scratch:
    """A temporary buffer one op needs between its launches (contiguous, C order)."""
    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class KernelLaunch:
    """One kernel call: ``kernel[grid](*buffers, *args, **meta)``.

    ``buffers`` name the pointer arguments: "out", "in<k>" (the op's k-th input) or
    "scratch<k>" (LaunchInfo.scratch[k]). ``grid`` and ``meta`` are the fixed default; a
    ``tune`` spec lets the first launch on a GPU pick another configuration (tuning.py)."""
    kernel: str
    grid: tuple[int, ...]
    buffers: tuple[str, ...]
    args: tuple[int, ...] = ()
    meta: dict = field(default_factory=dict)
    tune: TuneSpec | None = None


@dataclass
class LaunchInfo:
    launches: list[KernelLaunch]
    scratch: list[Scratch] = field(default_factory=list)


LIBRARY: dict[str, callable] = {}   # op name -> emitter
register = library_registrar(LIBRARY, "Triton library kernel")   # decorator: @register("op name")


# ---- launching ------------------------------------------------

def launch(module, info: LaunchInfo, out, inputs, alloc) -> None:
    """Run ``info``'s launches; ``alloc(shape, dtype)`` makes scratch tensors on the device."""
    buffers = {"out": out}
    buffers.update({f"in{k}": t for k, t in enumerate(inputs)})
    buffers.update({f"scratch{k}": alloc(s.shape, s.dtype) for k, s in enumerate(info.scratch)})
    for call in info.launches:
        kernel = getattr(module, call.kernel)
        args = [buffers[b] for b in call.buffers] + list(call.args)
        if call.tune is None:
            kernel[call.grid](*args, **call.meta)
            continue
        tune = call.tune
        meta = choose(tune, lambda cfg: kernel[tune.grid(cfg)](*args, **cfg))
        kernel[tune.grid(meta)](*args, **meta)


# ---- text helpers -----------------------------------------------------------------------

_TL = {"float32": "tl.float32", "float64": "tl.float64", "float16": "tl.float16", "int64": "tl.int64",
       "int32": "tl.int32", "int16": "tl.int16", "int8": "tl.int8", "uint8": "tl.uint8",
       "uint16": "tl.uint16", "uint32": "tl.uint32", "uint64": "tl.uint64", "bool": "tl.int1"}


def _tl(dtype: str) -> str:
    try:
        return _TL[str(dtype)]
    except KeyError:
        raise NotImplementedError(f"Triton library kernels do not support the dtype {dtype}") from None


def _is_float(dtype) -> bool:
    return str(dtype).startswith("float")


def _require_float(dtype, op):
    if not _is_float(dtype):
        raise NotImplementedError(f"{op}: the Triton kernel supports floating dtypes only, got {dtype}")


def _convert(expr: str, src: str, dst: str) -> str:
    """``expr`` (loaded with dtype ``src``) cast like NumPy's astype(dst); bool is value != 0."""
    src, dst = str(src), str(dst)
    if src == dst:
        return expr
    if dst == "bool":
        return f"(({expr}) != 0)"
    if src == "bool":                       # a bool buffer may load as int1 or int8
        return f"(({expr}) != 0).to({_tl(dst)})"
    return f"({expr}).to({_tl(dst)})"


def _lit(value: float) -> str:
    """A float literal that Triton's frontend accepts (inf/nan spelled as calls)."""
    value = float(value)
    if math.isnan(value):
        return 'float("nan")'
    if math.isinf(value):
        return 'float("inf")' if value > 0 else '-float("inf")'
    return repr(value)


def _size(shape) -> int:
    return int(math.prod(int(d) for d in shape))


def _addr(var: str, shape, strides, offset: int) -> str:
    """offset + sum(index_k * stride_k) where ``var`` is the flat C-order index over ``shape``
    (a block of them); size-1 and stride-0 axes add nothing."""
    terms = [str(int(offset))]
    divisor = 1
    for d, s in reversed(list(zip(shape, strides))):
        d, s = int(d), int(s)
        if d != 1 and s != 0:
            idx = var if divisor == 1 else f"({var} // {divisor})"
            idx = f"({idx} % {d})"
            terms.append(idx if s == 1 else f"{idx} * {s}")
        divisor *= d
    if len(terms) == 1:        # a single element read by a block of lanes: keep the address a block
        terms.append(f"0 * {var}")
    return " + ".join(terms)


def _span(op: Operand) -> int:
    """Largest element index an operand can touch (decides int32 vs int64 index math)."""
    return int(op.offset) + sum(max(int(d) - 1, 0) * abs(int(s)) for d, s in zip(op.shape, op.strides))


def _pow2(n: int, lo: int = 16, hi: int = 1024) -> int:
    p = lo
    while p < n and p < hi:
        p *= 2
    return p


def _cdiv(a: int, b: int) -> int:
    return -(-int(a) // int(b))


def _flat_kernel(kname: str, n_ptr: int, total: int, body: list[str], wide: bool,
                 block: int = 1024) -> str:
    """A 1-D kernel over ``total`` flat output positions in blocks: ``body`` uses ``i`` (the
    block of flat indices) and ``mask`` and does its own stores."""
    params = ", ".join(["out_ptr"] + [f"in{k}_ptr" for k in range(n_ptr - 1)])
    pid = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    lines = ["", "@triton.jit", f"def {kname}({params}, BLOCK: tl.constexpr):",
             f"    i = {pid} * BLOCK + tl.arange(0, BLOCK)",
             f"    mask = i < {int(total)}"]
    lines += ["    " + line for line in body]
    return "\n".join(lines) + "\n"


def _flat_launch(kname, total, buffers, block=1024) -> KernelLaunch:
    block = min(block, max(16, _pow2(total, 16, block)))
    return KernelLaunch(kname, (_cdiv(total, block),), tuple(buffers), (), {"BLOCK": block})


def _strided_copy_kernel(kname, shape, src: Operand, src_view_strides, src_offset,
                         dst_strides, dst_offset, dst_dtype, dst_span=None):
    """dst[view] = src[view] over ``shape`` (flat C order); returns (source, launch)."""
    total = _size(shape)
    wide = max(total, _span(Operand(tuple(shape), tuple(src_view_strides), src_offset, src.dtype)),
               dst_span or total) > INT32_LIMIT
    load = f"tl.load(in0_ptr + {_addr('i', shape, src_view_strides, src_offset)}, mask=mask, other=0)"
    body = [f"v = {_convert(load, src.dtype, dst_dtype)}",
            f"tl.store(out_ptr + {_addr('i', shape, dst_strides, dst_offset)}, v, mask=mask)"]
    return _flat_kernel(kname, 2, total, body, wide), total


def _single(src_text: str, launches: list[KernelLaunch], scratch=()) -> tuple[str, LaunchInfo]:
    launches = [l for l in launches if all(g > 0 for g in l.grid)]
    return SOURCE_HEADER + src_text, LaunchInfo(launches, list(scratch))


def _copy_op(name, shape, src: Operand, strides, offset, out: Operand, buffers=("out", "in0"),
             dst_strides=None, dst_offset=0):
    kname = ident(name)
    dst_strides = contiguous_strides(shape) if dst_strides is None else dst_strides
    text, total = _strided_copy_kernel(kname, shape, src, strides, offset, dst_strides, dst_offset,
                                       out.dtype, _size(out.shape))
    return text, _flat_launch(kname, total, buffers)


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
    from ..llvm.library.indexing import index_view as llvm_index_view
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


# ---- argmax -----------------------------------------------------------------------------

def _lowest(dtype: str) -> str:
    if _is_float(dtype):
        return '-float("inf")'
    if dtype == "bool":
        return "0"
    return str(int(np.iinfo(np.dtype(dtype)).min))


@register("argmax")
def emit_argmax(name, inputs, out, attrs):
    """One program per kept index; the reduced run (flat C order) is scanned in chunks of
    RBLOCK. NumPy's rule: the first maximum wins, a NaN is the maximum (the first NaN wins)."""
    (x,) = inputs
    axes, kept = argmax_axes(attrs.get("axis", -1), len(x.shape))
    kept_shape = [x.shape[a] for a in kept]
    red_shape = [x.shape[a] for a in axes]
    n_red, n_out = _size(red_shape), _size(kept_shape)
    if n_red == 0 and n_out:
        raise ValueError("argmax of an empty sequence")
    rblock = _pow2(n_red, 16, 1024)
    kname = ident(name)
    base = _addr("pid", kept_shape, [x.strides[a] for a in kept], x.offset)
    red = _addr("r", red_shape, [x.strides[a] for a in axes], 0)
    is_f = _is_float(x.dtype)
    vtype = "tl.int8" if x.dtype == "bool" else _tl(x.dtype)
    lines = ["", "@triton.jit", f"def {kname}(out_ptr, in0_ptr, RBLOCK: tl.constexpr):",
             "    pid = tl.program_id(0).to(tl.int64)",
             f"    base = {base}",
             f"    best = tl.full([], {_lowest(x.dtype)}, {vtype})",
             "    best_i = tl.full([], 0, tl.int64)",
             f"    for start in range(0, {n_red}, RBLOCK):",
             "        r = start + tl.arange(0, RBLOCK).to(tl.int64)",
             f"        m = r < {n_red}",
             f"        v = tl.load(in0_ptr + base + {red}, mask=m, other={_lowest(x.dtype)}).to({vtype})"]
    big = str(2 ** 62)
    if is_f:
        lines += ["        nan = (v != v) & m",
                  "        has_nan = tl.max(nan.to(tl.int32), axis=0) > 0",
                  f"        first_nan = tl.min(tl.where(nan, r, {big}), axis=0)",
                  f"        cmax = tl.max(tl.where(nan | (m == 0), {_lowest(x.dtype)}, v), axis=0)",
                  f"        first_max = tl.min(tl.where(m & (v == cmax), r, {big}), axis=0)",
                  "        cidx = tl.where(has_nan, first_nan, first_max)",
                  "        cval = tl.where(has_nan, float(\"nan\"), cmax)",
                  "        take = (cval > best) | ((cval != cval) & (best == best))"]
    else:
        lines += ["        cmax = tl.max(v, axis=0)",
                  f"        cidx = tl.min(tl.where(m & (v == cmax), r, {big}), axis=0)",
                  "        cval = cmax",
                  "        take = cval > best"]
    lines += ["        best_i = tl.where(take, cidx, best_i)",
              "        best = tl.where(take, cval, best)",
              "    tl.store(out_ptr + pid, best_i)"]
    text = "\n".join(lines) + "\n"
    return _single(text, [KernelLaunch(kname, (n_out,), ("out", "in0"), (), {"RBLOCK": rblock})])


# ---- random_uniform / dropout -----------------------------------------------------------

def _key_lines(seed: int, counter: Operand) -> list[str]:
    """Statements computing ``key`` (uint32) from the seed (folded here) and the counter
    read at run time from in<k>_ptr named ``cptr``."""
    if tuple(counter.shape) != ():
        raise ValueError(f"the random counter must be a scalar, got shape {counter.shape}")
    salted = np.array([(int(seed) & rnd.MASK32) ^ rnd.SEED_SALT], dtype=np.uint32)
    k0 = int(rnd.lowbias32(salted)[0])
    return [f"c = tl.load(cptr + {int(counter.offset)}).to(tl.int64)",
            "lo = (c & 0xFFFFFFFF).to(tl.uint32)",
            "hi = ((c >> 32) & 0xFFFFFFFF).to(tl.uint32)",
            f"key = _lowbias32(tl.full([], {k0}, tl.uint32) ^ lo)",
            "key = _lowbias32(key ^ hi)"]


# uint32 arithmetic: constants are made uint32 tensors so * wraps modulo 2**32 and >> is logical
_LOWBIAS = '''
@triton.jit
def _lowbias32(x):
    x = x ^ (x >> 16)
    x = x * tl.full([], 0x7FEB352D, tl.uint32)
    x = x ^ (x >> 15)
    x = x * tl.full([], 0x846CA68B, tl.uint32)
    x = x ^ (x >> 16)
    return x
'''


@register("random_uniform")
def emit_random_uniform(name, inputs, out, attrs):
    """out[i] = (bits(seed, counter, i) >> 8) * 2**-24 (exact in float32 and float64)."""
    (counter,) = inputs
    _require_float(out.dtype, "random_uniform")
    total = _size(out.shape)
    kname = ident(name)
    pid = "tl.program_id(0).to(tl.int64)" if total > INT32_LIMIT else "tl.program_id(0)"
    lines = ["", "@triton.jit", f"def {kname}(out_ptr, cptr, BLOCK: tl.constexpr):"]
    lines += ["    " + s for s in _key_lines(attrs["seed"], counter)]
    lines += [f"    i = {pid} * BLOCK + tl.arange(0, BLOCK)",
              f"    mask = i < {total}",
              "    bits = _lowbias32(key ^ i.to(tl.uint32))",
              f"    u = (bits >> 8).to({_tl(out.dtype)}) * {2.0 ** -24!r}",
              "    tl.store(out_ptr + i, u, mask=mask)"]
    text = _LOWBIAS.replace("_lowbias32", f"{kname}_lowbias32") + "\n".join(lines).replace(
        "_lowbias32(", f"{kname}_lowbias32(") + "\n"
    return _single(text, [_flat_launch(kname, total, ["out", "in0"])])


@register("dropout")
def emit_dropout(name, inputs, out, attrs):
    """out[i] = x[i] * s if (bits >> 8) >= ceil(p * 2**24) else 0; s = 1/(1-p) rounded once to
    x's dtype; i is the output's flat C-order index (x read through strides)."""
    x, counter = inputs
    _require_float(out.dtype, "dropout")
    if tuple(x.shape) != tuple(out.shape):
        raise ValueError(f"dropout: x shape {x.shape} differs from the output shape {out.shape}")
    p = float(attrs["p"])
    scale = float(np.asarray(1.0 / (1.0 - p), dtype=out.dtype))
    total = _size(out.shape)
    kname = ident(name)
    wide = max(total, _span(x)) > INT32_LIMIT
    pid = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    load = f"tl.load(in0_ptr + {_addr('i', x.shape, x.strides, x.offset)}, mask=mask, other=0)"
    lines = ["", "@triton.jit", f"def {kname}(out_ptr, in0_ptr, cptr, BLOCK: tl.constexpr):"]
    lines += ["    " + s for s in _key_lines(attrs["seed"], counter)]
    lines += [f"    i = {pid} * BLOCK + tl.arange(0, BLOCK)",
              f"    mask = i < {total}",
              f"    v = {_convert(load, x.dtype, out.dtype)}",
              "    bits = _lowbias32(key ^ i.to(tl.uint32))",
              f"    keep = (bits >> 8) >= tl.full([], {rnd.keep_threshold(p)}, tl.uint32)",
              f"    y = tl.where(keep, v * {_lit(scale)}, 0.0).to({_tl(out.dtype)})",
              "    tl.store(out_ptr + i, y, mask=mask)"]
    text = _LOWBIAS.replace("_lowbias32", f"{kname}_lowbias32") + "\n".join(lines).replace(
        "_lowbias32(", f"{kname}_lowbias32(") + "\n"
    return _single(text, [_flat_launch(kname, total, ["out", "in0", "in1"])])


# ---- matmul -----------------------------------------------------------------------------

def _matmul_blocks(m, n, k):
    """Default tiles (no search: the interpreter, or before tuning): powers of two >= 16
    (tl.dot's minimum), small for small problems, 128x128 tiles for big ones."""
    big = m >= 256 and n >= 256
    cap = 128 if big else 64
    return _pow2(m, 16, cap), _pow2(n, 16, cap), _pow2(k, 16, 32), big


def matmul_configs(m, n, k, dtype, allow_tf32):
    """Candidate launch configurations of the matmul kernel for the GPU search: the default
    first, then larger tiles with deeper pipelines (tf32 and big fp32 products need them)."""
    bm, bn, bk, big = _matmul_blocks(m, n, k)
    default = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": 8, "num_warps": 8 if big else 4,
               "num_stages": 3}
    configs = [default]
    if dtype == "float64" or min(m, n) < 64:     # small or fp64 products: a couple of variants
        configs += [dict(default, num_warps=4, num_stages=2), dict(default, BLOCK_K=_pow2(k, 16, 64))]
    else:
        for bm_, bn_, bk_, stages, warps in (_TF32_TILES if allow_tf32 else _FP32_TILES):
            if bm_ <= 2 * _pow2(m, 16, 256) and bn_ <= 2 * _pow2(n, 16, 256):
                configs.append({"BLOCK_M": bm_, "BLOCK_N": bn_, "BLOCK_K": bk_, "GROUP_M": 8,
                                "num_warps": warps, "num_stages": stages})
    unique = []
    for c in configs:
        if c not in unique:
            unique.append(c)
    return unique


# (BLOCK_M, BLOCK_N, BLOCK_K, num_stages, num_warps), from a sweep of 4096^3 on an H100:
# tf32 (tensor cores, K-major operands) wants big tiles and deep pipelines; fp32 IEEE runs on
# the FMA units and prefers small tiles. At most ~200 KB of shared memory per program.
_TF32_TILES = [
    (128, 256, 32, 4, 8), (128, 256, 32, 3, 8), (256, 128, 32, 4, 8), (128, 256, 16, 5, 8),
    (128, 128, 64, 3, 8), (128, 128, 32, 4, 4), (64, 128, 32, 4, 4),
]
_FP32_TILES = [
    (64, 64, 32, 4, 4), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4), (128, 256, 16, 5, 8),
]


def _batch_strides(op: Operand, batch) -> tuple[int, ...]:
    """The operand's batch strides broadcast to ``batch`` (0 where it is broadcast)."""
    own = tuple(op.shape[:-2])
    lead = len(batch) - len(own)
    strides = [0] * lead
    for d, s, b in zip(own, op.strides[:-2], batch[lead:]):
        strides.append(0 if d == 1 and b != 1 else s)
    return tuple(strides)


def matmul_kernel(kname, a: Operand, b: Operand, out_dtype, batch, a_bstrides, b_bstrides,
                  allow_tf32=False, out_offset=0):
    """Source and launch of out[batch, M, N] = a[batch, M, K] @ b[batch, K, N] (contiguous out),
    a and b read through strides; fp32 (or fp64) accumulation, masks at the edges.

    Returns (source, grid, meta, tune): the grid is a function of the meta parameters (any
    power-of-two tiles work: the tile counts are computed from BLOCK_M/BLOCK_N in the
    kernel), meta is the default configuration, tune describes the GPU search."""
    m, k = int(a.shape[-2]), int(a.shape[-1])
    n = int(b.shape[-1])
    if int(b.shape[-2]) != k:
        raise ValueError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape}")
    _require_float(out_dtype, "matmul")
    n_batch = _size(batch)
    acc_t = "tl.float64" if out_dtype == "float64" else "tl.float32"
    precision = "tf32" if allow_tf32 and out_dtype == "float32" else "ieee"
    sam, sak = a.strides[-2], a.strides[-1]
    sbk, sbn = b.strides[-2], b.strides[-1]
    # 256 rows/columns of slack: tiles of any tuned size stay within int32 index math
    wide = max(_span(a), _span(b), n_batch * (m + 256) * (n + 256)) > INT32_LIMIT
    a_base = _addr("bidx", batch, a_bstrides, a.offset)
    b_base = _addr("bidx", batch, b_bstrides, b.offset)
    pid = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    cvt_a = "" if _tl(a.dtype) == acc_t else f".to({acc_t})"
    cvt_b = "" if _tl(b.dtype) == acc_t else f".to({acc_t})"
    text = f"""
@triton.jit
def {kname}(out_ptr, a_ptr, b_ptr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    pid = {pid}
    tm = ({m} + BLOCK_M - 1) // BLOCK_M
    tn = ({n} + BLOCK_N - 1) // BLOCK_N
    bidx = pid // (tm * tn)
    tile = pid % (tm * tn)
    # grouped ordering: GROUP_M row tiles share their column tiles (L2 reuse)
    group = tile // (GROUP_M * tn)
    first_m = group * GROUP_M
    size_m = tl.minimum(tm - first_m, GROUP_M)
    pid_m = first_m + (tile % (GROUP_M * tn)) % size_m
    pid_n = (tile % (GROUP_M * tn)) // size_m
    a_base = {a_base}
    b_base = {b_base}
    # rows/columns past the edge wrap around (loads need no mask; the store is masked)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    if {m} % BLOCK_M != 0:
        rm_in = rm % {max(m, 1)}
    else:
        rm_in = rm
    if {n} % BLOCK_N != 0:
        rn_in = rn % {max(n, 1)}
    else:
        rn_in = rn
    rk = tl.arange(0, BLOCK_K)
    a_ptrs = a_ptr + a_base + rm_in[:, None] * {sam} + rk[None, :] * {sak}
    b_ptrs = b_ptr + b_base + rk[:, None] * {sbk} + rn_in[None, :] * {sbn}
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype={acc_t})
    for k0 in range(0, {k}, BLOCK_K):
        if {k} % BLOCK_K == 0:
            a = tl.load(a_ptrs){cvt_a}
            b = tl.load(b_ptrs){cvt_b}
        else:
            a = tl.load(a_ptrs, mask=rk[None, :] < {k} - k0, other=0.0){cvt_a}
            b = tl.load(b_ptrs, mask=rk[:, None] < {k} - k0, other=0.0){cvt_b}
        acc = tl.dot(a, b, acc, input_precision="{precision}", out_dtype={acc_t})
        a_ptrs += BLOCK_K * {sak}
        b_ptrs += BLOCK_K * {sbk}
    out = out_ptr + {int(out_offset)} + bidx * {m * n} + rm[:, None] * {n} + rn[None, :]
    tl.store(out, acc.to({_tl(out_dtype)}), mask=(rm[:, None] < {m}) & (rn[None, :] < {n}))
"""
    configs = matmul_configs(m, n, k, out_dtype, precision == "tf32")
    meta = dict(configs[0])

    tune = TuneSpec(f"matmul|a {a.shape} {a.strides} +{a.offset} {a_bstrides}|b {b.shape} {b.strides} "
                    f"+{b.offset} {b_bstrides}|batch {batch}|{out_dtype}|{precision}",
                    tuple(configs), _MatmulGrid(m, n, n_batch))
    return text, tune.grid(meta), meta, tune


@dataclass(frozen=True)
class _MatmulGrid:
    """Programs of a matmul launch for a configuration's tile sizes."""
    m: int
    n: int
    n_batch: int

    def __call__(self, meta) -> tuple[int]:
        return (self.n_batch * _cdiv(self.m, meta["BLOCK_M"]) * _cdiv(self.n, meta["BLOCK_N"]),)


def _transpose_kernel(kname, src: Operand, dst_strides, dtype):
    """Copy ``src`` (a batch of matrices, read through its strides) into a contiguous scratch
    whose matrices have strides ``dst_strides``, in 2-D tiles so that reads and writes both
    stay coalesced when the copy transposes; returns (source, launch grid, meta)."""
    rows, cols = int(src.shape[-2]), int(src.shape[-1])
    own = tuple(src.shape[:-2])
    tile = 64
    tr, tc = _cdiv(rows, tile), _cdiv(cols, tile)
    wide = max(_span(src), _size(src.shape)) > INT32_LIMIT
    pid = "tl.program_id(0).to(tl.int64)" if wide else "tl.program_id(0)"
    base = _addr("bidx", own, src.strides[:-2], src.offset)
    dr, dc = (int(s) for s in dst_strides)
    text = f"""
@triton.jit
def {kname}(out_ptr, in0_ptr, TILE: tl.constexpr):
    pid = {pid}
    bidx = pid // {tr * tc}
    t = pid % {tr * tc}
    r = (t // {tc}) * TILE + tl.arange(0, TILE)
    c = (t % {tc}) * TILE + tl.arange(0, TILE)
    mask = (r[:, None] < {rows}) & (c[None, :] < {cols})
    v = tl.load(in0_ptr + {base} + r[:, None] * {src.strides[-2]} + c[None, :] * {src.strides[-1]}, mask=mask)
    tl.store(out_ptr + bidx * {rows * cols} + r[:, None] * {dr} + c[None, :] * {dc}, v.to({_tl(dtype)}), mask=mask)
"""
    return text, (_size(own) * tr * tc,), {"TILE": tile}


def _k_major(op: Operand, k_axis: int, buffer: str, other_extent: int, plan_text: list, launches: list,
             scratch: list, kname: str):
    """tf32 tensor cores on Hopper (wgmma) take only K-major operands from shared memory;
    Triton transposes any other layout through registers every iteration, which costs ~4x
    (83 vs 350 TFLOP/s at 4096^3 on an H100). When the product is big enough (the other
    extent >= 256 amortises one pass over the operand) the operand is first copied, tiled,
    into a K-major scratch. Returns (buffer, operand) to use."""
    if op.strides[k_axis] == 1 or op.shape[k_axis] <= 1 or other_extent < 256 or _size(op.shape) == 0:
        return buffer, op
    rows, cols = int(op.shape[-2]), int(op.shape[-1])
    own = tuple(op.shape[:-2])
    # K-major: K has stride 1; the other matrix axis strides over K; batches are contiguous blocks
    mat = (cols, 1) if k_axis == -1 else (1, rows)
    strides = tuple(s * rows * cols for s in contiguous_strides(own)) + mat
    text, grid, meta = _transpose_kernel(kname, op, mat, op.dtype)
    plan_text.append(text)
    scratch.append(Scratch((_size(op.shape),), op.dtype))
    buf = f"scratch{len(scratch) - 1}"
    launches.append(KernelLaunch(kname, grid, (buf, buffer), (), meta))
    return buf, Operand(tuple(op.shape), strides, 0, op.dtype)


@register("matmul")
def emit_matmul(name, inputs, out, attrs):
    """out = a @ b, NumPy batch broadcasting; attrs may carry allow_tf32 (off: parity). With
    tf32 on big products, operands that are not K-major are first copied K-major."""
    a, b = inputs
    batch = tuple(out.shape[:-2])
    kname = ident(name)
    tf32 = bool(attrs.get("allow_tf32", False)) and out.dtype == "float32"
    texts, launches, scratch = [], [], []
    a_buf, b_buf = "in0", "in1"
    if tf32:
        m, n = int(a.shape[-2]), int(b.shape[-1])
        a_buf, a = _k_major(a, -1, a_buf, n, texts, launches, scratch, kname + "_a_kmajor")
        b_buf, b = _k_major(b, -2, b_buf, m, texts, launches, scratch, kname + "_b_kmajor")
    text, grid, meta, tune = matmul_kernel(kname, a, b, out.dtype, batch, _batch_strides(a, batch),
                                           _batch_strides(b, batch), tf32)
    launches.append(KernelLaunch(kname, grid, ("out", a_buf, b_buf), (), meta, tune))
    return _single("".join(texts) + text, launches, scratch)


# ---- convolution: im2col + matmul ---------------------------------------------------------

def _conv_geometry(x_shape, w_shape, stride, padding):
    n, c, h, wd = (int(d) for d in x_shape)
    o, _, kh, kw = (int(d) for d in w_shape)
    sh, sw = (int(s) for s in stride)
    ph, pw = (int(p) for p in padding)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    return n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo


def _im2col_kernel(kname, x: Operand, geo, rows_first: bool, dtype):
    """col = im2col(x), zero padding: with rows_first the layout is (N, C*kh*kw, Ho*Wo) (for
    conv2d), else (N*Ho*Wo, C*kh*kw) (for the weight gradient). Flat index i over that layout."""
    n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo = geo
    ckk, p = c * kh * kw, ho * wo
    total = n * ckk * p
    if rows_first:
        decomp = [f"s = i // {ckk * p}", f"q = (i // {p}) % {ckk}", f"pix = i % {p}"]
    else:
        decomp = [f"s = i // {p * ckk}", f"pix = (i // {ckk}) % {p}", f"q = i % {ckk}"]
    sn, sc, shh, sww = x.strides
    body = decomp + [f"ch = q // {kh * kw}", f"ti = (q // {kw}) % {kh}", f"tj = q % {kw}",
                     f"hh = (pix // {wo}) * {sh} - {ph} + ti", f"ww = (pix % {wo}) * {sw} - {pw} + tj",
                     f"ok = mask & (hh >= 0) & (hh < {h}) & (ww >= 0) & (ww < {wd})",
                     f"v = tl.load(in0_ptr + {x.offset} + s * {sn} + ch * {sc} + hh * {shh} + ww * {sww}, "
                     "mask=ok, other=0.0)",
                     f"tl.store(out_ptr + i, {_convert('v', x.dtype, dtype)}, mask=mask)"]
    wide = max(total, _span(x)) > INT32_LIMIT
    return _flat_kernel(kname, 2, total, body, wide), total


def _matrix_view(op: Operand, split: int) -> Operand | None:
    """``op`` seen as a matrix (prod(shape[:split]), prod(shape[split:])) without a copy, or None
    when the axes on one side do not merge into a single stride."""
    def merged(shape, strides):
        dims = [(int(d), int(s)) for d, s in zip(shape, strides) if int(d) != 1]
        if not dims:
            return _size(shape), 0
        for (d0, s0), (d1, s1) in zip(dims, dims[1:]):
            if s0 != s1 * d1:
                return None
        return _size(shape), dims[-1][1]
    rows = merged(op.shape[:split], op.strides[:split])
    cols = merged(op.shape[split:], op.strides[split:])
    if rows is None or cols is None:
        return None
    return Operand((rows[0], cols[0]), (rows[1], cols[1]), op.offset, op.dtype)


class _Plan:
    """Builds a multi-launch op: kernel texts, launches and scratch buffers."""

    def __init__(self, name):
        self.base = ident(name)
        self.text, self.launches, self.scratch = "", [], []

    def new_scratch(self, shape, dtype) -> str:
        self.scratch.append(Scratch(tuple(int(d) for d in shape), dtype))
        return f"scratch{len(self.scratch) - 1}"

    def add_flat(self, suffix, text_total, buffers):
        text, total = text_total
        self.text += text
        self.launches.append(_flat_launch(f"{self.base}_{suffix}", total, buffers))

    def contiguous(self, suffix, op: Operand, buffer: str) -> str:
        """A contiguous scratch copy of ``op`` (when its axes do not merge into a matrix)."""
        dst = self.new_scratch(op.shape, op.dtype)
        kname = f"{self.base}_{suffix}"
        self.add_flat(suffix, _strided_copy_kernel(kname, op.shape, op, op.strides, op.offset,
                                                   contiguous_strides(op.shape), 0, op.dtype), [dst, buffer])
        return dst

    def matrix(self, suffix, op: Operand, buffer: str, split: int):
        """(buffer, matrix Operand) for ``op`` viewed as a matrix, copying only if needed."""
        view = _matrix_view(op, split)
        if view is not None:
            return buffer, view
        buf = self.contiguous(suffix, op, buffer)
        return buf, _matrix_view(Operand(op.shape, contiguous_strides(op.shape), 0, op.dtype), split)

    def matmul(self, suffix, out_buf, a_buf, a: Operand, b_buf, b: Operand, out_dtype, batch,
               a_bstrides, b_bstrides):
        kname = f"{self.base}_{suffix}"
        text, grid, meta, tune = matmul_kernel(kname, a, b, out_dtype, batch, a_bstrides, b_bstrides)
        self.text += text
        self.launches.append(KernelLaunch(kname, grid, (out_buf, a_buf, b_buf), (), meta, tune))

    def result(self):
        return _single(self.text, self.launches, self.scratch)


def _batched(op: Operand, n: int, batch_stride: int) -> Operand:
    return Operand((n,) + tuple(op.shape), (batch_stride,) + tuple(op.strides), op.offset, op.dtype)


@register("conv2d")
def emit_conv2d(name, inputs, out, attrs):
    """out[n] (O, Ho*Wo) = W (O, C*kh*kw) @ col[n] (C*kh*kw, Ho*Wo): im2col, then one batched
    matmul whose output layout is exactly NCHW."""
    x, w = inputs
    _require_float(out.dtype, "conv2d")
    geo = _conv_geometry(x.shape, w.shape, attrs["stride"], attrs["padding"])
    n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo = geo
    ckk, p = c * kh * kw, ho * wo
    plan = _Plan(name)
    col = plan.new_scratch((n, ckk, p), out.dtype)
    plan.add_flat("im2col", _im2col_kernel(f"{plan.base}_im2col", x, geo, True, out.dtype), [col, "in0"])
    w_buf, wmat = plan.matrix("wcopy", w, "in1", 1)
    colm = Operand((ckk, p), (p, 1), 0, out.dtype)
    plan.matmul("gemm", "out", w_buf, wmat, col, colm, out.dtype, (n,), (0,), (ckk * p,))
    return plan.result()


@register("conv2d_grad_weight")
def emit_conv2d_grad_weight(name, inputs, out, attrs):
    """gw (O, C*kh*kw) = gT (O, N*Ho*Wo) @ col (N*Ho*Wo, C*kh*kw): g is copied to (O, N, P)."""
    g, x, w_ref = inputs
    _require_float(out.dtype, "conv2d_grad_weight")
    geo = _conv_geometry(x.shape, out.shape, attrs["stride"], attrs["padding"])
    n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo = geo
    ckk, p = c * kh * kw, ho * wo
    plan = _Plan(name)
    col = plan.new_scratch((n * p, ckk), out.dtype)
    plan.add_flat("im2col", _im2col_kernel(f"{plan.base}_im2col", x, geo, False, out.dtype), [col, "in1"])
    # g as (O, N, Ho, Wo): its (N, Ho, Wo) axes merge into one K axis only after a copy in general
    g_t = Operand((o, n, ho, wo), (g.strides[1], g.strides[0], g.strides[2], g.strides[3]), g.offset, g.dtype)
    g_buf, gmat = plan.matrix("gcopy", g_t, "in0", 1)
    colm = Operand((n * p, ckk), (ckk, 1), 0, out.dtype)
    plan.matmul("gemm", "out", g_buf, gmat, col, colm, out.dtype, (), (), ())
    return plan.result()


def _col2im_kernel(kname, geo, dtype):
    """dx[n, c, h, w] = sum over the taps (i, j) whose output pixel (oh, ow) lands on (h, w)
    of colg[n, c*kh*kw + i*kw + j, oh*Wo + ow] (a gather: no atomics, deterministic)."""
    n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo = geo
    ckk, p = c * kh * kw, ho * wo
    total = n * c * h * wd
    body = [f"s = i // {c * h * wd}", f"ch = (i // {h * wd}) % {c}", f"hh = (i // {wd}) % {h}",
            f"ww = i % {wd}", f"acc = tl.zeros([BLOCK], {_tl(dtype)})",
            f"for ti in tl.static_range({kh}):",
            f"    th = hh + {ph} - ti",
            f"    oh = th // {sh}",
            f"    okh = (th >= 0) & (th % {sh} == 0) & (oh < {ho})",
            f"    for tj in tl.static_range({kw}):",
            f"        tw = ww + {pw} - tj",
            f"        ow = tw // {sw}",
            f"        ok = mask & okh & (tw >= 0) & (tw % {sw} == 0) & (ow < {wo})",
            f"        src = s * {ckk * p} + (ch * {kh * kw} + ti * {kw} + tj) * {p} + oh * {wo} + ow",
            "        acc += tl.load(in0_ptr + src, mask=ok, other=0.0)",
            "tl.store(out_ptr + i, acc, mask=mask)"]
    return _flat_kernel(kname, 2, total, body, n * ckk * p > INT32_LIMIT), total


@register("conv2d_grad_input")
def emit_conv2d_grad_input(name, inputs, out, attrs):
    """colg[n] (C*kh*kw, Ho*Wo) = W^T @ g[n] (a transposed view of W, no copy), then col2im."""
    g, w, x_ref = inputs
    _require_float(out.dtype, "conv2d_grad_input")
    geo = _conv_geometry(out.shape, w.shape, attrs["stride"], attrs["padding"])
    n, c, h, wd, o, kh, kw, sh, sw, ph, pw, ho, wo = geo
    ckk, p = c * kh * kw, ho * wo
    plan = _Plan(name)
    w_buf, wmat = plan.matrix("wcopy", w, "in1", 1)
    wt = Operand((ckk, o), (wmat.strides[1], wmat.strides[0]), wmat.offset, wmat.dtype)
    g_flat = Operand((n, o, ho, wo), tuple(g.strides), g.offset, g.dtype)
    view = _matrix_view(Operand((o, ho, wo), tuple(g.strides[1:]), g.offset, g.dtype), 1)
    if view is None:
        g_buf = plan.contiguous("gcopy", g_flat, "in0")
        gm, g_bstride = Operand((o, p), (p, 1), 0, g.dtype), o * p
    else:
        g_buf, gm, g_bstride = "in0", view, g.strides[0]
    colg = plan.new_scratch((n, ckk, p), out.dtype)
    plan.matmul("gemm", colg, w_buf, wt, g_buf, gm, out.dtype, (n,), (0,), (g_bstride,))
    plan.add_flat("col2im", _col2im_kernel(f"{plan.base}_col2im", geo, out.dtype), ["out", colg])
    return plan.result()


# ---- pooling ------------------------------------------------------------------------------

def _pool_geometry(x_shape, attrs):
    n, c, h, wd = (int(d) for d in x_shape)
    kh, kw = (int(k) for k in attrs["kernel"])
    sh, sw = (int(s) for s in attrs["stride"])
    ph, pw = (int(p) for p in attrs["padding"])
    return n, c, h, wd, kh, kw, sh, sw, ph, pw, (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1


def _plane(var_n, var_c, op: Operand) -> str:
    return f"{op.offset} + {var_n} * {op.strides[0]} + {var_c} * {op.strides[1]}"


def _pool_forward(name, inputs, out, attrs, kind):
    (x,) = inputs
    _require_float(out.dtype, kind)
    n, c, h, wd, kh, kw, sh, sw, ph, pw, ho, wo = _pool_geometry(x.shape, attrs)
    total = n * c * ho * wo
    kname = ident(name)
    dt = _tl(out.dtype)
    init = '-float("inf")' if kind == "max_pool2d" else "0.0"
    other = '-float("inf")' if kind == "max_pool2d" else "0.0"
    body = [f"s = i // {c * ho * wo}", f"ch = (i // {ho * wo}) % {c}", f"oh = (i // {wo}) % {ho}",
            f"ow = i % {wo}", f"plane = {_plane('s', 'ch', x)}", f"acc = tl.full([BLOCK], {init}, {dt})",
            f"for ti in tl.static_range({kh}):",
            f"    hh = oh * {sh} - {ph} + ti",
            f"    for tj in tl.static_range({kw}):",
            f"        ww = ow * {sw} - {pw} + tj",
            f"        ok = mask & (hh >= 0) & (hh < {h}) & (ww >= 0) & (ww < {wd})",
            f"        v = tl.load(in0_ptr + plane + hh * {x.strides[2]} + ww * {x.strides[3]}, mask=ok, "
            f"other={other}).to({dt})"]
    if kind == "max_pool2d":   # NaN propagates: a NaN takes over and is never replaced
        body += ["        acc = tl.where((v > acc) | ((v != v) & (acc == acc)), v, acc)"]
    else:
        body += ["        acc += v"]
    if kind == "avg_pool2d":
        body += [f"acc = acc / {float(kh * kw)!r}"]
    body += ["tl.store(out_ptr + i, acc, mask=mask)"]
    wide = max(total, _span(x)) > INT32_LIMIT
    return _single(_flat_kernel(kname, 2, total, body, wide), [_flat_launch(kname, total, ["out", "in0"])])


@register("max_pool2d")
def emit_max_pool2d(name, inputs, out, attrs):
    """max over each window, -inf padding, NaN propagating like NumPy's max."""
    return _pool_forward(name, inputs, out, attrs, "max_pool2d")


@register("avg_pool2d")
def emit_avg_pool2d(name, inputs, out, attrs):
    """sum over each window (zero padding) / (kh*kw): padding counts in the divisor."""
    return _pool_forward(name, inputs, out, attrs, "avg_pool2d")


def _covering_loops(geo, inner: list[str]) -> list[str]:
    """Loops over the windows (oh, ow) covering input (hh, ww): tap (ti, tj) with
    oh*sh - ph + ti == hh; ``inner`` runs with ``okw`` true for a real window."""
    n, c, h, wd, kh, kw, sh, sw, ph, pw, ho, wo = geo
    lines = [f"for ti in tl.static_range({kh}):",
             f"    th = hh + {ph} - ti",
             f"    oh = th // {sh}",
             f"    okh = (th >= 0) & (th % {sh} == 0) & (oh < {ho})",
             f"    for tj in tl.static_range({kw}):",
             f"        tw = ww + {pw} - tj",
             f"        ow = tw // {sw}",
             f"        okw = mask & okh & (tw >= 0) & (tw % {sw} == 0) & (ow < {wo})"]
    return lines + ["        " + s for s in inner]


@register("avg_pool2d_grad")
def emit_avg_pool2d_grad(name, inputs, out, attrs):
    """dx[h, w] = sum over the windows covering (h, w) of g / (kh*kw) (padding counted)."""
    g, _ref = inputs
    _require_float(out.dtype, "avg_pool2d_grad")
    geo = _pool_geometry(out.shape, attrs)
    n, c, h, wd, kh, kw, sh, sw, ph, pw, ho, wo = geo
    total = n * c * h * wd
    dt = _tl(out.dtype)
    kname = ident(name)
    body = [f"s = i // {c * h * wd}", f"ch = (i // {h * wd}) % {c}", f"hh = (i // {wd}) % {h}",
            f"ww = i % {wd}", f"gplane = {_plane('s', 'ch', g)}", f"acc = tl.zeros([BLOCK], {dt})"]
    body += _covering_loops(geo, [
        f"gv = tl.load(in0_ptr + gplane + oh * {g.strides[2]} + ow * {g.strides[3]}, mask=okw, other=0.0)",
        f"acc += gv.to({dt}) / {float(kh * kw)!r}"])
    body += ["tl.store(out_ptr + i, acc, mask=mask)"]
    wide = max(total, _span(g)) > INT32_LIMIT
    return _single(_flat_kernel(kname, 2, total, body, wide), [_flat_launch(kname, total, ["out", "in0"])])


@register("max_pool2d_grad")
def emit_max_pool2d_grad(name, inputs, out, attrs):
    """dx[h, w] = sum of g over the windows whose FIRST maximum (NumPy argmax order over the
    -inf padded window, a NaN counting as the maximum) is (h, w)."""
    g, x = inputs
    _require_float(out.dtype, "max_pool2d_grad")
    geo = _pool_geometry(x.shape, attrs)
    n, c, h, wd, kh, kw, sh, sw, ph, pw, ho, wo = geo
    total = n * c * h * wd
    xt = _tl(x.dtype)
    dt = _tl(out.dtype)
    kname = ident(name)
    argmax = [f"best = tl.full([BLOCK], -float(\"inf\"), {xt})", "best_t = tl.zeros([BLOCK], tl.int32)"]
    for ui in range(kh):
        for uj in range(kw):
            t = ui * kw + uj
            argmax += [f"xh = oh * {sh} - {ph} + {ui}", f"xw = ow * {sw} - {pw} + {uj}",
                       f"okx = okw & (xh >= 0) & (xh < {h}) & (xw >= 0) & (xw < {wd})",
                       f"xv = tl.load(in1_ptr + xplane + xh * {x.strides[2]} + xw * {x.strides[3]}, "
                       f"mask=okx, other=-float(\"inf\")).to({xt})"]
            if t == 0:
                argmax += ["best = xv"]
            else:
                argmax += ["take = (xv > best) | ((xv != xv) & (best == best))",
                           f"best_t = tl.where(take, {t}, best_t)", "best = tl.where(take, xv, best)"]
    body = [f"s = i // {c * h * wd}", f"ch = (i // {h * wd}) % {c}", f"hh = (i // {wd}) % {h}",
            f"ww = i % {wd}", f"gplane = {_plane('s', 'ch', g)}", f"xplane = {_plane('s', 'ch', x)}",
            f"acc = tl.zeros([BLOCK], {dt})"]
    body += _covering_loops(geo, argmax + [
        f"hit = okw & (best_t == ti * {kw} + tj)",
        f"gv = tl.load(in0_ptr + gplane + oh * {g.strides[2]} + ow * {g.strides[3]}, mask=hit, other=0.0)",
        f"acc += gv.to({dt})"])
    body += ["tl.store(out_ptr + i, acc, mask=mask)"]
    wide = max(total, _span(g), _span(x)) > INT32_LIMIT
    return _single(_flat_kernel(kname, 3, total, body, wide),
                   [_flat_launch(kname, total, ["out", "in0", "in1"])])
