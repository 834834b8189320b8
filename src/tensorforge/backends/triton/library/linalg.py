"""Triton matmul library kernel (tl.dot): the default tiles, the candidate configurations of
the GPU search, the kernel text (also used by conv.py) and the K-major copies for tf32."""
from __future__ import annotations

from dataclasses import dataclass

from ...common import Operand, contiguous_strides
from ..source import ident
from ..tuning import TuneSpec
from . import register
from .common import (INT32_LIMIT, KernelLaunch, Scratch, _addr, _cdiv, _pow2, _require_float, _single,
                     _size, _span, _tl)

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
                  allow_tf32=False, out_offset=0, epilogue=None):
    """Source and launch of out[batch, M, N] = a[batch, M, K] @ b[batch, K, N] (contiguous out),
    a and b read through strides; fp32 (or fp64) accumulation, masks at the edges.

    Returns (source, grid, meta, tune): the grid is a function of the meta parameters (any
    power-of-two tiles work: the tile counts are computed from BLOCK_M/BLOCK_N in the
    kernel), meta is the default configuration, tune describes the GPU search.

    ``epilogue``: (LoopSpec, dtypes of its inputs 1, ...) of a ``matmul_epilogue`` node; the
    kernel then takes those inputs and the spec's extra outputs as further pointers, and
    stores the spec's values computed from the accumulator instead of the accumulator."""
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
    mask = f"(rm[:, None] < {m}) & (rn[None, :] < {n})"
    if epilogue is None:
        extra_ptrs, store = "", f"    tl.store(out, acc.to({_tl(out_dtype)}), mask={mask})\n"
    else:
        extra_ptrs, store = _epilogue_store(epilogue, m, n, out_dtype, mask)
    text = f"""
@triton.jit
def {kname}(out_ptr, a_ptr, b_ptr, {extra_ptrs}BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
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
{store}"""
    configs = matmul_configs(m, n, k, out_dtype, precision == "tf32")
    meta = dict(configs[0])

    tune = TuneSpec(f"matmul|a {a.shape} {a.strides} +{a.offset} {a_bstrides}|b {b.shape} {b.strides} "
                    f"+{b.offset} {b_bstrides}|batch {batch}|{out_dtype}|{precision}",
                    tuple(configs), _MatmulGrid(m, n, n_batch))
    return text, tune.grid(meta), meta, tune


def _epilogue_store(epilogue, m: int, n: int, out_dtype: str, mask: str) -> tuple[str, str]:
    """(extra pointer parameters, store lines) applying a matmul epilogue to the accumulator:
    the spec's input 0 is the product (the accumulator rounded to the output dtype, as the other
    backends store it first), the others are loaded at (row, column) of the stacked batch rows."""
    from ..scalar import Emitter
    spec, in_dtypes = epilogue
    lines = [f"c = acc.to({_tl(out_dtype)})", f"erow = bidx * {m} + rm", f"emask = {mask}"]
    loaded: dict[int, tuple[str, str]] = {}

    def leaf(e):
        ld = spec.loads[e.value]
        if ld.input == 0:
            return "c", out_dtype
        if e.value not in loaded:
            dtype = in_dtypes[ld.input - 1]
            ptr = f"e{ld.input}_ptr + {ld.offset} + erow[:, None] * {ld.strides[0]} + rn_in[None, :] * {ld.strides[1]}"
            lines.append(f"x{e.value} = tl.load({ptr}, mask=emask, other=0)" + (" != 0" if dtype == "bool" else ""))
            loaded[e.value] = (f"x{e.value}", dtype)
        return loaded[e.value]

    emitter = Emitter(leaf, lines, out_dtype)
    values = [emitter.value(e, out_dtype)[0] for e in spec.outs]
    lines.append(f"tl.store(out, {values[0]}, mask=emask)")
    offset = "bidx * {mn} + rm[:, None] * {n} + rn[None, :]".format(mn=m * n, n=n)
    for j, v in enumerate(values[1:]):
        lines.append(f"tl.store(o{j + 1}_ptr + {offset}, {v}, mask=emask)")
    params = [f"e{k + 1}_ptr" for k in range(len(in_dtypes))] + [f"o{j + 1}_ptr" for j in range(len(spec.extra_outs))]
    return "".join(f"{p}, " for p in params), "".join(f"    {line}\n" for line in lines)


@register("matmul_epilogue")
def emit_matmul_epilogue(name, inputs, out, attrs):
    """out (and the spec's extra outputs, passed after the inputs) = epilogue(a @ b, inputs...):
    the matmul kernel stores the spec's values computed from its accumulator."""
    a, b, *rest = inputs
    spec = attrs["spec"]
    batch = tuple(out.shape[:-2])
    kname = ident(name)
    text, grid, meta, tune = matmul_kernel(kname, a, b, out.dtype, batch, _batch_strides(a, batch),
                                           _batch_strides(b, batch), epilogue=(spec, [o.dtype for o in rest]))
    buffers = ["out"] + [f"in{k}" for k in range(len(inputs) + len(spec.extra_outs))]
    return _single(text, [KernelLaunch(kname, grid, tuple(buffers), (), meta, tune)])


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
