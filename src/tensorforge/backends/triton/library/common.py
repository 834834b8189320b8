"""Shared pieces of the Triton library kernels: the launch records (Scratch, KernelLaunch,
LaunchInfo) and the helpers that write kernel text (dtype names, literals, strided
addresses, the flat 1-D kernel and the strided copy every family builds on)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ...common import Operand, contiguous_strides
from ..source import PRELUDE, ident
from ..tuning import TuneSpec

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
