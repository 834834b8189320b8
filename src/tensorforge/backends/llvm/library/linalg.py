"""Matrix multiplication library kernel: a packed, cache-blocked, register-tiled GEMM in LLVM IR.

One *generic* GEMM per module and kind (dtypes of C, A, B and the register tile, see
``GemmKind``) takes every size, stride and cache block as a run-time argument; it is emitted
on first use and shared by all the products of the module, so a training step pays LLVM's
optimisation and code generation for it once instead of once per matmul. Its loop nest
(BLIS/GotoBLAS), over the rows [row0, row1) of one matrix:

      for jc in 0..N step NC:                                   column block
        for pc in 0..K step KC:                                 depth block
          pack B[pc:pc+kc, jc:jc+nc] into KC x NR panels       (reads any strides)
          for ic in rows step MC:                               row block
            pack A[ic:ic+mc, pc:pc+kc] into KC x MR panels
            for each MR x NR tile: microkernel

(a row-major A, unit column stride, skips its packing: see ``_GenericGemm.emit``)

The microkernel keeps an MR x NR block of C in MR * NR/VW vector accumulators, loads
NR/VW vectors of packed B and broadcasts one packed A element per row per k step
(llvm.fma on vectors). Packing zero-pads the panels, so the microkernel always runs a full
tile; partial tiles at the M/N edges are written back through a small stack tile. One packing
routine per dtype pair (gemm_pack.py) serves A and B of every kind.

Each product (``emit_gemm``; also used by conv.py on im2col scratch buffers) is then just
``<name>(c, a, b)`` and ``<name>_range(c, a, b, i64 begin, i64 end)``: the latter computes the
work units [begin, end) (a unit is one MR-row panel of one batch entry; see ``gemm_units``)
so a threading layer can split one product across cores; it allocates the packing scratch
and calls the generic kernel once per batch entry with the product's constants.
Loops carry ``llvm.loop`` hints that switch off LLVM's own vectorisation and unrolling where
the vector code is written by hand (``plain_loop``): that keeps the compile time down.

Products with few outputs and a long depth that both operands walk contiguously
(conv2d_grad_weight's O x K += gT @ colT^T with a depth of samples x positions) skip the
tiles: their MR x NR tile would be mostly padding, so each output is one dot product whose
depth loop LLVM vectorises (``dot_products``; 30 us -> a few us for 8 x 9 x 4096).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from . import Operand, register
from .common import (I1, I64, PTR, declare, convert_float, elem_ptr, float_type, for_range, host_vector_bits, i64, imax, imin,
                     load_elem, new_function, store_elem)
from .gemm_pack import plain_loop, shared_pack  # noqa: F401  (plain_loop: conv.py imports it from here)


@dataclass(frozen=True)
class MatrixView:
    """Where one GEMM operand lives: element (batch..., i, j) is at
    offset + sum(batch_index * batch_strides) + i * rs + j * cs, with dtype ``dtype``."""
    offset: int
    batch_strides: tuple[int, ...]
    rs: int
    cs: int
    dtype: str


@dataclass(frozen=True)
class GemmSpec:
    """C[batch] = A[batch] @ B[batch], C contiguous (batch..., m, n) in ``dtype``."""
    batch: tuple[int, ...]
    m: int
    n: int
    k: int
    a: MatrixView          # (m, k)
    b: MatrixView          # (k, n)
    dtype: str

    @property
    def batch_count(self) -> int:
        return math.prod(self.batch)


@dataclass(frozen=True)
class Tiling:
    vw: int    # vector width (elements)
    mr: int    # microkernel rows
    nr: int    # microkernel columns (a multiple of vw)
    kc: int    # depth block
    mc: int    # row block (a multiple of mr)
    nc: int    # column block (a multiple of nr)

    @property
    def nvec(self) -> int:
        return self.nr // self.vw


# cache-block caps (elements): depth per item size, rows, columns per item size
_KC_CAP = {4: 256, 8: 192}
_MC_CAP = 96
_NC_CAP = {4: 2048, 8: 1024}


def choose_tiling(spec: GemmSpec) -> Tiling:
    """Register tile and cache blocks for the host's vector width and this product's shape."""
    elem_bytes = np.dtype(spec.dtype).itemsize
    vw = max(host_vector_bits() // (8 * elem_bytes), 1)
    # measured on a Zen 5 (AVX-512) host: 8 x 2 zmm reaches ~200 GFLOP/s on 512^3 float32;
    # 6 x 2 ymm is the classic AVX2 (Haswell/Zen 3) tile: 12 accumulators of 16 registers
    mr, nvec = (8, 2) if host_vector_bits() >= 512 else (6, 2)
    if spec.n <= vw:               # narrow outputs (e.g. 10 logits): one vector wide, twice the
        nvec, mr = 1, 2 * mr       # rows, so that enough independent FMA chains stay in flight
    nr = nvec * vw
    kc = min(spec.k, _KC_CAP.get(elem_bytes, 192))
    mc = _round_up(min(spec.m, _MC_CAP), mr)
    nc = _round_up(min(spec.n, _NC_CAP.get(elem_bytes, 1024)), nr)
    return Tiling(vw, mr, nr, max(kc, 1), max(mc, mr), max(nc, nr))


_DOT_MAX_OUTPUTS = 256        # m * n at most ...
_DOT_MIN_DEPTH = 256          # ... and k at least: one dot product per output beats the tiles
_DOT_SUM_FLAGS = ("reassoc", "contract")   # split into vector lanes; no nsz (see loops.SUM_FLAGS)


def dot_products(spec: GemmSpec) -> bool:
    """Whether the product runs as one vectorised dot product per output (see the module doc)."""
    return (spec.m * spec.n <= _DOT_MAX_OUTPUTS and spec.k >= _DOT_MIN_DEPTH
            and spec.a.cs == 1 and spec.b.rs == 1)


def _round_up(x: int, to: int) -> int:
    return -(-x // to) * to


def gemm_units(spec: GemmSpec, tiling: Tiling | None = None) -> int:
    """Number of work units of ``<name>_range``: batch entries x MR-row panels."""
    tiling = tiling or choose_tiling(spec)
    return spec.batch_count * -(-spec.m // tiling.mr)


# ---- the generic kernel: one per (module, dtypes, register tile) -----------------------------------

@dataclass(frozen=True)
class GemmKind:
    """What the code of a generic GEMM depends on; every size, stride and block is a run-time argument."""
    dtype: str        # C (and accumulation) dtype
    a_dtype: str
    b_dtype: str
    vw: int
    mr: int
    nr: int
    direct_a: bool    # the microkernel reads A in place through its strides (no A packing)

    @property
    def nvec(self) -> int:
        return self.nr // self.vw

    @property
    def function_name(self) -> str:
        short = {"float32": "f32", "float64": "f64"}
        types = "".join(short[d] for d in (self.dtype, self.a_dtype, self.b_dtype))
        return f"tf_gemm.{types}.v{self.vw}m{self.mr}n{self.nr}{'.direct_a' if self.direct_a else ''}"


def gemm_kind(spec: GemmSpec, tiling: Tiling) -> GemmKind:
    # with a single narrow B panel every A element is used once: packing A would only add a
    # copy, so the narrow kernel reads A in place (when no dtype conversion is needed)
    direct_a = tiling.nvec == 1 and spec.n <= tiling.nr and spec.a.dtype == spec.dtype
    return GemmKind(spec.dtype, spec.a.dtype, spec.b.dtype, tiling.vw, tiling.mr, tiling.nr, direct_a)


_IN_PLACE_MIN_KC = 32   # row-major A is read in place for depth blocks at least this deep

# argument order of the generic function (after the pointers c, a, b)
_GEMM_ARGS = ("m", "n", "k", "a_rs", "a_cs", "b_rs", "b_cs", "c_rs", "row0", "row1", "kc", "mc", "nc")


def generic_gemm(module: ir.Module, kind: GemmKind) -> ir.Function:
    """The module's generic GEMM of ``kind`` (emitted on first use, then reused):

        void tf_gemm.<kind>(ptr c, ptr a, ptr b, i64 m, n, k, a_rs, a_cs, b_rs, b_cs, c_rs,
                            i64 row0, row1, kc, mc, nc, ptr a_pack, ptr b_pack)

    computes rows [row0, row1) of C (row stride c_rs, unit column stride) = A (m x k) @ B (k x n),
    A and B read through their strides; row0 is a multiple of MR. kc/mc/nc are the cache blocks,
    a_pack/b_pack scratch of at least mc*kc and nc*kc elements (a_pack unused when direct_a)."""
    cache = module.__dict__.setdefault("_tf_gemm", {})
    if kind not in cache:
        cache[kind] = _GenericGemm(module, kind).emit()
    return cache[kind]


class _GenericGemm:
    """Emits the generic GEMM of one kind: the BLIS loop nest, packing, and the microkernel."""

    def __init__(self, module: ir.Module, kind: GemmKind):
        self.module, self.kind, self.name = module, kind, kind.function_name
        self.T = float_type(kind.dtype)
        self.TA = float_type(kind.a_dtype)
        self.TB = float_type(kind.b_dtype)
        self.elem_bytes = np.dtype(kind.dtype).itemsize
        self.vec = ir.VectorType(self.T, kind.vw)
        suffix = f"v{kind.vw}f{8 * self.elem_bytes}"
        self.fma = declare(module, f"llvm.fma.{suffix}", self.vec, [self.vec] * 3)

    def emit(self) -> ir.Function:
        k = self.kind
        ukernel = self._emit_microkernel(direct=k.direct_a)
        pack_a = None if k.direct_a else shared_pack(self.module, k.dtype, k.a_dtype)
        # a packing kind still reads a row-major A (unit column stride, as in x @ W and dy @ W^T)
        # in place, chosen at run time so that one generic GEMM serves every product of a step:
        # the microkernel's MR broadcasts then walk MR rows contiguously along k, which L1 serves
        # as well as a packed panel, and the transposing copy of A costs more than it saves
        # (128 x 784 @ 784 x 256 on a Xeon with AVX-512: 0.86x -> 0.92x torch, 1 thread)
        row_major_ukernel = None
        if pack_a is not None and k.a_dtype == k.dtype:
            row_major_ukernel = self._emit_microkernel(direct=True, unit_a_cs=True)
        pack_b = shared_pack(self.module, k.dtype, k.b_dtype)
        fn = new_function(self.module, self.name, 3, [I64] * len(_GEMM_ARGS) + [PTR, PTR])
        # never inline or clone it into the callers: sharing one copy is the point
        fn.attributes.add("noinline")
        c, a, bm = fn.args[:3]
        arg = dict(zip(_GEMM_ARGS, fn.args[3:]))
        ap, bp = fn.args[-2:]
        for ptr in (ap, bp):
            ptr.add_attribute("noalias")
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        n, kk, row0, row1 = arg["n"], arg["k"], arg["row0"], arg["row1"]
        with plain_loop(b, 0, n, arg["nc"], name="jc") as jc:
            nc = imin(b, arg["nc"], b.sub(n, jc))
            with plain_loop(b, 0, kk, arg["kc"], name="pc") as pc:
                kc = imin(b, arg["kc"], b.sub(kk, pc))
                accumulate = b.icmp_signed(">", pc, i64(0))
                # B block (kc x nc) at (pc, jc): rows walk k, columns walk n
                b_block = elem_ptr(b, bm, b.add(b.mul(pc, arg["b_rs"]), b.mul(jc, arg["b_cs"])), self.TB)
                b.call(pack_b, [bp, b_block, arg["b_cs"], arg["b_rs"], nc, kc, i64(k.nr)])
                with plain_loop(b, row0, row1, arg["mc"], name="ic") as ic:
                    mc = imin(b, arg["mc"], b.sub(row1, ic))
                    a_block = elem_ptr(b, a, b.add(b.mul(ic, arg["a_rs"]), b.mul(pc, arg["a_cs"])), self.TA)
                    macro = (b, a_block, bp, c, arg, ic, mc, jc, nc, kc, accumulate)
                    if pack_a is None:
                        self._emit_macro_kernel(ukernel, True, *macro)
                    else:
                        self._emit_row_block(ukernel, row_major_ukernel, pack_a, ap, macro)
        b.ret_void()
        return fn

    def _emit_row_block(self, ukernel, row_major_ukernel, pack_a, ap, macro):
        """One MC x KC block of A against the packed B block: read in place when A is row-major
        (and a row-major microkernel exists), else packed into ``ap`` first."""
        b, a_block, arg, mc, kc = macro[0], macro[1], macro[4], macro[6], macro[9]

        def packed():
            b.call(pack_a, [ap, a_block, arg["a_rs"], arg["a_cs"], mc, kc, i64(self.kind.mr)])
            self._emit_macro_kernel(ukernel, False, b, ap, *macro[2:])

        if row_major_ukernel is None:
            packed()
            return
        # a short depth block leaves too few k steps to pay for the in-place kernel's row set-up
        in_place_ok = b.and_(b.icmp_signed("==", arg["a_cs"], i64(1)), b.icmp_signed(">=", kc, i64(_IN_PLACE_MIN_KC)))
        with b.if_else(in_place_ok) as (in_place, other):
            with in_place:
                self._emit_macro_kernel(row_major_ukernel, True, *macro)
            with other:
                packed()

    # -- microkernel: C[mr x nr] (+)= Ap[kc x MR]^T-panel @ Bp[kc x NR]-panel
    def _emit_microkernel(self, direct: bool, unit_a_cs: bool = False) -> ir.Function:
        """``direct``: A is read in place through its strides (a_rs, a_cs; with ``unit_a_cs`` the
        column stride is known to be 1), else from a packed MR-row panel."""
        k, T, vec = self.kind, self.T, self.vec
        suffix = ".row_major_a" if unit_a_cs else ""
        fn = new_function(self.module, f"{self.name}.ukernel{suffix}", 3, [I64, I64, I64, I1, I64, I64, I64],
                          linkage="internal")
        ap, bp, c, kc, mr, nr, accumulate, c_rs, a_rs, a_cs = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        accs = [[b.alloca(vec, name=f"acc{r}_{v}") for v in range(k.nvec)] for r in range(k.mr)]
        zero = ir.Constant(vec, [ir.Constant(T, 0.0)] * k.vw)
        for row in accs:
            for slot in row:
                b.store(zero, slot)
        vec_align = k.vw * self.elem_bytes
        if direct:            # rows past the edge re-read row 0 (their results are discarded)
            row_offsets = [b.select(b.icmp_signed("<", i64(r), mr), b.mul(i64(r), a_rs), i64(0))
                           for r in range(k.mr)]
        with plain_loop(b, 0, kc, name="p") as p:
            b_row = b.mul(p, i64(k.nr))
            bvecs = [b.load(elem_ptr(b, bp, b.add(b_row, i64(v * k.vw)), T), typ=vec, align=vec_align)
                     for v in range(k.nvec)]
            if direct:
                a_row = p if unit_a_cs else b.mul(p, a_cs)
                a_index = [b.add(a_row, off) for off in row_offsets]
            else:
                a_row = b.mul(p, i64(k.mr))
                a_index = [b.add(a_row, i64(r)) for r in range(k.mr)]
            for r in range(k.mr):
                a_elem = load_elem(b, ap, a_index[r], T)
                splat = b.shuffle_vector(b.insert_element(ir.Constant(vec, ir.Undefined), a_elem, i64(0)),
                                         ir.Constant(vec, ir.Undefined),
                                         ir.Constant(ir.VectorType(ir.IntType(32), k.vw), [0] * k.vw))
                for v in range(k.nvec):
                    acc = b.load(accs[r][v], typ=vec)
                    b.store(b.call(self.fma, [splat, bvecs[v], acc]), accs[r][v])
        full = b.and_(b.icmp_signed("==", mr, i64(k.mr)), b.icmp_signed("==", nr, i64(k.nr)))
        with b.if_else(full) as (then, otherwise):
            with then:
                self._store_full_tile(b, c, c_rs, accs, accumulate)
            with otherwise:
                self._store_partial_tile(b, c, c_rs, accs, mr, nr, accumulate)
        b.ret_void()
        return fn

    def _store_full_tile(self, b, c, c_rs, accs, accumulate):
        k, vec = self.kind, self.vec
        rows = [elem_ptr(b, c, b.mul(i64(r), c_rs), self.T) for r in range(k.mr)]
        with b.if_else(accumulate) as (add, assign):
            for branch, add_old in ((add, True), (assign, False)):
                with branch:
                    for r in range(k.mr):
                        for v in range(k.nvec):
                            ptr = elem_ptr(b, rows[r], v * k.vw, self.T)
                            val = b.load(accs[r][v], typ=vec)
                            if add_old:
                                val = b.fadd(b.load(ptr, typ=vec, align=self.elem_bytes), val)
                            b.store(val, ptr, align=self.elem_bytes)

    def _store_partial_tile(self, b, c, c_rs, accs, mr, nr, accumulate):
        """Spill the accumulators to a stack tile and copy its valid mr x nr corner to C."""
        k, T = self.kind, self.T
        # typed as vectors (llvmlite checks stores against alloca types); read back element-wise
        tile = b.alloca(self.vec, size=i64(k.mr * k.nvec), name="tile")
        for r in range(k.mr):
            for v in range(k.nvec):
                b.store(b.load(accs[r][v], typ=self.vec), elem_ptr(b, tile, r * k.nr + v * k.vw, T))
        with plain_loop(b, 0, mr, name="er") as r:
            with plain_loop(b, 0, nr, name="ej") as j:
                val = load_elem(b, tile, b.add(b.mul(r, i64(k.nr)), j), T)
                ptr = elem_ptr(b, c, b.add(b.mul(r, c_rs), j), T)
                old = b.load(ptr, typ=T)
                b.store(b.select(accumulate, b.fadd(old, val), val), ptr)

    def _emit_macro_kernel(self, ukernel, direct, b, ap, bp, c, arg, ic, mc, jc, nc, kc, accumulate):
        """Every MR x NR tile of the block; the A panel (MR x kc, packed or, when ``direct``, read
        in place) stays in L1 while the B panels stream past it from L2."""
        k, T = self.kind, self.T
        a_rs, a_cs, c_rs = arg["a_rs"], arg["a_cs"], arg["c_rs"]
        with plain_loop(b, 0, mc, k.mr, name="ir") as ir_:
            a_step = a_rs if direct else kc       # rows apart in A, or packed panels
            a_panel = elem_ptr(b, ap, b.mul(ir_, a_step), T)
            mr = imin(b, k.mr, b.sub(mc, ir_))
            row = b.add(ic, ir_)
            with plain_loop(b, 0, nc, k.nr, name="jr") as jr:
                b_panel = elem_ptr(b, bp, b.mul(jr, kc), T)
                nr = imin(b, k.nr, b.sub(nc, jr))
                c_tile = elem_ptr(b, c, b.add(b.mul(row, c_rs), b.add(jc, jr)), T)
                b.call(ukernel, [a_panel, b_panel, c_tile, kc, mr, nr, accumulate, c_rs, a_rs, a_cs])


# ---- one GEMM instance: two small functions calling the generic kernel with constants --------------

def _ceil_div(b: ir.IRBuilder, x, d: int):
    """ceil(x / d) for an i64 value x >= 0 and an int d > 0 (folded when x is a constant)."""
    return b.sdiv(b.add(i64(x), i64(d - 1)), i64(d))


def _round_up_ir(b: ir.IRBuilder, x, to: int):
    return b.mul(_ceil_div(b, x, to), i64(to))


class _GemmInstance:
    """``name(c, a, b)`` and ``name_range(c, a, b, begin, end)`` of one product: the batch loop,
    the packing scratch (malloc'ed per range call) and a call of the generic kernel per batch entry.

    Every value derived from the sizes (row panels, work units, cache blocks, scratch bytes)
    is computed in the IR from m, n, k, so that those stay plain literals, each a polynomial
    of the operand sizes: a build generic in the batch size (symbolic.py) replaces them by
    run-time values; a specialised build gets them folded to constants by LLVM."""

    def __init__(self, module: ir.Module, name: str, spec: GemmSpec, tiling: Tiling):
        self.module, self.name, self.spec, self.t = module, name, spec, tiling
        self.kind = gemm_kind(spec, tiling)
        self.T = float_type(spec.dtype)
        self.elem_bytes = np.dtype(spec.dtype).itemsize
        self.dot = dot_products(spec)

    def _panels(self, b: ir.IRBuilder):
        return _ceil_div(b, self.spec.m, self.t.mr)

    def emit(self) -> ir.Function:
        ranged = self._emit_range()
        fn = new_function(self.module, self.name, 3)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        units = b.mul(i64(self.spec.batch_count), self._panels(b))
        with b.if_then(b.icmp_signed(">", units, i64(0))):
            b.call(ranged, [*fn.args, i64(0), units])
        b.ret_void()
        return fn

    def _emit_range(self) -> ir.Function:
        s, t = self.spec, self.t
        fn = new_function(self.module, f"{self.name}_range", 3, [I64, I64])
        c, a, bm, begin, end = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        if s.k == 0:                       # empty sum: C = 0 for the rows of these units
            self._fill_units(b, c, begin, end, 0)
            b.ret_void()
            return fn
        if self.dot:                       # no packing, no scratch
            acc = b.alloca(self.T, name="acc")
            self._emit_batches(b, c, a, bm, begin, end, acc, None, 0, 0, 0)
            b.ret_void()
            return fn
        with b.if_then(b.icmp_signed("<", begin, end)):
            aligned_alloc = declare(self.module, "aligned_alloc", PTR, [I64, I64])
            free = declare(self.module, "free", ir.VoidType(), [PTR])
            # choose_tiling's blocks, from the caps (not from t.kc/t.mc/t.nc, which clamp the sizes in Python)
            kc = imax(b, imin(b, _KC_CAP.get(self.elem_bytes, 192), s.k), 1)
            mc = imin(b, _round_up(_MC_CAP, t.mr), _round_up_ir(b, s.m, t.mr))
            nc = imin(b, _round_up(_NC_CAP.get(self.elem_bytes, 1024), t.nr), _round_up_ir(b, s.n, t.nr))
            a_bytes = _round_up_ir(b, b.mul(b.mul(mc, kc), i64(self.elem_bytes)), 64)
            b_bytes = _round_up_ir(b, b.mul(b.mul(nc, kc), i64(self.elem_bytes)), 64)
            null = ir.Constant(PTR, None)
            ap = null if self.kind.direct_a else b.call(aligned_alloc, [i64(64), i64(a_bytes)], name="ap")
            bp = b.call(aligned_alloc, [i64(64), i64(b_bytes)], name="bp")
            failed = b.icmp_unsigned("==", bp, null)
            if not self.kind.direct_a:
                failed = b.or_(failed, b.icmp_unsigned("==", ap, null))
            with b.if_else(failed) as (oom, ok):
                with oom:      # no scratch: NaN results rather than silently wrong numbers
                    self._fill_units(b, c, begin, end, 0xFF)
                with ok:
                    self._emit_batches(b, c, a, bm, begin, end, ap, bp, kc, mc, nc)
            b.call(free, [ap])          # free(NULL) is a no-op
            b.call(free, [bp])
        b.ret_void()
        return fn

    def _emit_batches(self, b, c, a, bm, begin, end, ap, bp, kc, mc, nc):
        """Per batch entry of the units [begin, end): the generic kernel over its rows (or, for
        ``dot_products``, the dot-product loops, with ``ap`` their accumulator slot)."""
        s, t, panels = self.spec, self.t, self._panels(b)
        generic = None if self.dot else generic_gemm(self.module, self.kind)
        first_batch = b.sdiv(begin, panels)
        last_batch = b.sdiv(b.add(end, b.sub(panels, i64(1))), panels)
        with plain_loop(b, first_batch, last_batch, name="bat") as bidx:
            unit0 = b.mul(bidx, panels)
            row0 = b.mul(imax(b, b.sub(begin, unit0), 0), i64(t.mr))
            row1 = imin(b, b.mul(imin(b, b.sub(end, unit0), panels), i64(t.mr)), s.m)
            a_base = elem_ptr(b, a, b.add(i64(s.a.offset), self._batch_offset(b, bidx, s.a.batch_strides)),
                              float_type(s.a.dtype))
            b_base = elem_ptr(b, bm, b.add(i64(s.b.offset), self._batch_offset(b, bidx, s.b.batch_strides)),
                              float_type(s.b.dtype))
            c_batch = elem_ptr(b, c, b.mul(bidx, b.mul(i64(s.m), i64(s.n))), self.T)
            if self.dot:
                self._emit_dot_rows(b, c_batch, a_base, b_base, row0, row1, ap)
            else:
                sizes = dict(m=s.m, n=s.n, k=s.k, a_rs=s.a.rs, a_cs=s.a.cs, b_rs=s.b.rs, b_cs=s.b.cs, c_rs=s.n,
                             row0=row0, row1=row1, kc=kc, mc=mc, nc=nc)
                b.call(generic, [c_batch, a_base, b_base] + [i64(sizes[key]) for key in _GEMM_ARGS] + [ap, bp])

    def _emit_dot_rows(self, b, c, a, bm, row0, row1, acc):
        """C[i, j] = sum over k of A[i, k] * B[k, j] for the rows [row0, row1): the depth loop is
        innermost and contiguous on both sides, so LLVM vectorises it (a reassociated sum, like
        the fused reductions' sums)."""
        s = self.spec
        at, bt = float_type(s.a.dtype), float_type(s.b.dtype)
        zero = ir.Constant(self.T, 0.0)
        with plain_loop(b, row0, row1, name="dm") as i:
            a_row = b.mul(i, i64(s.a.rs))
            with plain_loop(b, 0, s.n, name="dn") as j:
                b_col = b.mul(j, i64(s.b.cs))
                b.store(zero, acc)
                with for_range(b, 0, s.k, name="dk") as k:
                    x = convert_float(b, load_elem(b, a, b.add(a_row, k), at), self.T)
                    y = convert_float(b, load_elem(b, bm, b.add(b_col, k), bt), self.T)
                    total = b.fadd(b.load(acc, typ=self.T), b.fmul(x, y, flags=("contract",)), flags=_DOT_SUM_FLAGS)
                    b.store(total, acc)
                store_elem(b, b.load(acc, typ=self.T), c, b.add(b.mul(i, i64(s.n)), j))

    def _batch_offset(self, b, bidx, strides):
        """sum over batch axes of index_along_axis(bidx) * stride (row-major batch order)."""
        total = i64(0)
        inner = 1
        for size, stride in reversed(list(zip(self.spec.batch, strides))):
            if stride != 0 and size > 1:
                idx = b.srem(b.sdiv(bidx, i64(inner)), i64(size))
                total = b.add(total, b.mul(idx, i64(stride)))
            inner *= size
        return total

    def _fill_units(self, b, c, begin, end, byte):
        """Every byte of the C rows of the work units [begin, end) = ``byte`` (one memset: the
        rows of consecutive units are adjacent in C). 0 gives zeros, 0xFF gives NaNs."""
        s, t = self.spec, self.t

        with b.if_then(b.icmp_signed("<", begin, end)):
            panels = self._panels(b)

            def row_start(unit, extra_rows):
                bidx = b.sdiv(unit, panels)
                row = imin(b, b.add(b.mul(b.srem(unit, panels), i64(t.mr)), i64(extra_rows)), s.m)
                return b.add(b.mul(bidx, b.mul(i64(s.m), i64(s.n))), b.mul(row, i64(s.n)))

            first = row_start(begin, 0)
            stop = row_start(b.sub(end, i64(1)), t.mr)
            memset = self.module.declare_intrinsic("llvm.memset", [PTR, I64])
            nbytes = b.mul(b.sub(stop, first), i64(self.elem_bytes))
            b.call(memset, [elem_ptr(b, c, first, self.T), ir.Constant(ir.IntType(8), byte), nbytes,
                            ir.Constant(I1, 0)])


def emit_gemm(module: ir.Module, name: str, spec: GemmSpec, tiling: Tiling | None = None) -> ir.Function:
    """Add ``void name(ptr c, ptr a, ptr b)`` and ``void name_range(c, a, b, i64 begin, i64 end)``,
    thin wrappers around the module's shared generic GEMM of this dtype combination and tile."""
    return _GemmInstance(module, name, spec, tiling or choose_tiling(spec)).emit()


# ---- the matmul op ---------------------------------------------------------------------------------

def matmul_spec(inputs: list[Operand], out: Operand) -> GemmSpec:
    """The GEMM of op "matmul" (NumPy batch broadcasting: a size-1 batch axis gets stride 0)."""
    a, b = inputs
    batch = tuple(out.shape[:-2])
    m, n = out.shape[-2:]
    k = a.shape[-1]

    def view(op: Operand) -> MatrixView:
        lead = len(batch) - (len(op.shape) - 2)          # missing leading batch axes broadcast
        strides = []
        for axis, size in enumerate(batch):
            j = axis - lead
            own = op.shape[j] if j >= 0 else 1
            strides.append(op.strides[j] if j >= 0 and own != 1 else 0)
        return MatrixView(op.offset, tuple(strides), op.strides[-2], op.strides[-1], op.dtype)

    return GemmSpec(batch, m, n, k, view(a), view(b), out.dtype)


@register("matmul")
def emit_matmul(module: ir.Module, name: str, inputs: list[Operand], out: Operand, attrs: dict) -> ir.Function:
    """``void name(out, a, b)`` plus ``name_range(out, a, b, i64 begin, i64 end)`` over
    ``matmul_units(inputs, out)`` work units (MR-row panels of each batch entry)."""
    return emit_gemm(module, name, matmul_spec(inputs, out))


def matmul_units(inputs: list[Operand], out: Operand) -> int:
    """How many work units ``<name>_range`` of a matmul kernel splits into."""
    return gemm_units(matmul_spec(inputs, out))


def matmul_units_extent(inputs: list[Operand], out: Operand):
    """``matmul_units`` as ``extent(builder) -> i64 value``, computed in the IR from the row count
    (a literal): for ``parallel.emit_entry`` with a run-time extent, so that a build generic in
    the batch size (tensorforge.symbolic) can split a product whose rows are the batch."""
    spec = matmul_spec(inputs, out)
    mr = choose_tiling(spec).mr
    return lambda b: b.mul(i64(spec.batch_count), _ceil_div(b, spec.m, mr))
