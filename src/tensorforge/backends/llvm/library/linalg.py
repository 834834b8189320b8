"""Matrix multiplication library kernel: a packed, cache-blocked, register-tiled GEMM in LLVM IR.

Structure (the BLIS/GotoBLAS loop nest; every size, stride and offset is a compile-time
constant of the emitted functions):

    for batch entries and MR-row panels in [begin, end):       (the range a thread owns)
      for jc in 0..N step NC:                                   column block
        for pc in 0..K step KC:                                 depth block
          pack B[pc:pc+kc, jc:jc+nc] into KC x NR panels       (reads any strides)
          for ic in rows step MC:                               row block
            pack A[ic:ic+mc, pc:pc+kc] into KC x MR panels
            for each MR x NR tile: microkernel

The microkernel keeps an MR x NR block of C in MR * NR/VW vector accumulators, loads
NR/VW vectors of packed B and broadcasts one packed A element per row per k step
(llvm.fma on vectors). Packing zero-pads the panels, so the microkernel always runs a full
tile; partial tiles at the M/N edges are written back through a small stack tile.

``emit_gemm`` is reused by the convolution kernels (conv.py) on im2col scratch buffers.
Each GEMM also gets ``<name>_range(c, a, b, i64 begin, i64 end)``, which computes only
the work units [begin, end) (a unit is one MR-row panel of one batch entry; see
``GemmSpec.units``), so a threading layer can split one product across cores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from . import Operand, register
from .common import (I1, I64, PTR, declare, convert_float, elem_ptr, float_type, for_range, host_vector_bits,
                     i64, imax, imin, load_elem, new_function, store_elem)


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
    kc = min(spec.k, 256 if elem_bytes == 4 else 192)
    mc = _round_up(min(spec.m, 96), mr)
    nc = _round_up(min(spec.n, 2048 if elem_bytes == 4 else 1024), nr)
    return Tiling(vw, mr, nr, max(kc, 1), max(mc, mr), max(nc, nr))


def _round_up(x: int, to: int) -> int:
    return -(-x // to) * to


def gemm_units(spec: GemmSpec, tiling: Tiling | None = None) -> int:
    """Number of work units of ``<name>_range``: batch entries x MR-row panels."""
    tiling = tiling or choose_tiling(spec)
    return spec.batch_count * -(-spec.m // tiling.mr)


# ---- emission --------------------------------------------------------------------------------

class _GemmEmitter:
    """Emits the functions of one GEMM instance into a module."""

    def __init__(self, module: ir.Module, name: str, spec: GemmSpec, tiling: Tiling):
        self.module, self.name, self.spec, self.t = module, name, spec, tiling
        self.T = float_type(spec.dtype)
        self.TA = float_type(spec.a.dtype)
        self.TB = float_type(spec.b.dtype)
        self.elem_bytes = np.dtype(spec.dtype).itemsize
        self.vec = ir.VectorType(self.T, tiling.vw)
        suffix = f"v{tiling.vw}f{8 * self.elem_bytes}"
        self.fma = declare(module, f"llvm.fma.{suffix}", self.vec, [self.vec] * 3)
        # with a single B panel every A element is used once: packing A would only add a copy,
        # so the microkernel then reads A in place through its strides
        self.direct_a = spec.n <= tiling.nr and spec.a.dtype == spec.dtype

    # -- the public pair of functions
    def emit(self) -> ir.Function:
        ukernel = self._emit_microkernel()
        pack_a = self._emit_pack_a()
        pack_b = self._emit_pack_b()
        ranged = self._emit_range(ukernel, pack_a, pack_b)
        fn = new_function(self.module, self.name, 3)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        units = gemm_units(self.spec, self.t)
        if units > 0:
            b.call(ranged, [*fn.args, i64(0), i64(units)])
        b.ret_void()
        return fn

    # -- microkernel: C[mr x nr] (+)= Ap[kc x MR]^T-panel @ Bp[kc x NR]-panel
    def _emit_microkernel(self) -> ir.Function:
        t, T, vec = self.t, self.T, self.vec
        fn = new_function(self.module, f"{self.name}.ukernel", 3, [I64, I64, I64, I1], linkage="internal")
        ap, bp, c, kc, mr, nr, accumulate = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        accs = [[b.alloca(vec, name=f"acc{r}_{v}") for v in range(t.nvec)] for r in range(t.mr)]
        zero = ir.Constant(vec, [ir.Constant(T, 0.0)] * t.vw)
        for row in accs:
            for slot in row:
                b.store(zero, slot)
        vec_align = t.vw * self.elem_bytes
        if self.direct_a:     # rows past the edge re-read row 0 (their results are discarded)
            row_offsets = [b.select(b.icmp_signed("<", i64(r), mr), i64(r * self.spec.a.rs), i64(0))
                           for r in range(t.mr)]
        with for_range(b, 0, kc, name="p") as p:
            b_row = b.mul(p, i64(t.nr))
            bvecs = [b.load(elem_ptr(b, bp, b.add(b_row, i64(v * t.vw)), T), typ=vec, align=vec_align)
                     for v in range(t.nvec)]
            if self.direct_a:
                a_row = b.mul(p, i64(self.spec.a.cs))
                a_index = [b.add(a_row, off) for off in row_offsets]
            else:
                a_row = b.mul(p, i64(t.mr))
                a_index = [b.add(a_row, i64(r)) for r in range(t.mr)]
            for r in range(t.mr):
                a_elem = load_elem(b, ap, a_index[r], T)
                splat = b.shuffle_vector(b.insert_element(ir.Constant(vec, ir.Undefined), a_elem, i64(0)),
                                         ir.Constant(vec, ir.Undefined),
                                         ir.Constant(ir.VectorType(ir.IntType(32), t.vw), [0] * t.vw))
                for v in range(t.nvec):
                    acc = b.load(accs[r][v], typ=vec)
                    b.store(b.call(self.fma, [splat, bvecs[v], acc]), accs[r][v])
        full = b.and_(b.icmp_signed("==", mr, i64(t.mr)), b.icmp_signed("==", nr, i64(t.nr)))
        with b.if_else(full) as (then, otherwise):
            with then:
                self._store_full_tile(b, c, accs, accumulate)
            with otherwise:
                self._store_partial_tile(b, c, accs, mr, nr, accumulate)
        b.ret_void()
        return fn

    def _store_full_tile(self, b, c, accs, accumulate):
        t, vec = self.t, self.vec
        with b.if_else(accumulate) as (add, assign):
            for branch, add_old in ((add, True), (assign, False)):
                with branch:
                    for r in range(t.mr):
                        for v in range(t.nvec):
                            ptr = elem_ptr(b, c, r * self.spec.n + v * t.vw, self.T)
                            val = b.load(accs[r][v], typ=vec)
                            if add_old:
                                val = b.fadd(b.load(ptr, typ=vec, align=self.elem_bytes), val)
                            b.store(val, ptr, align=self.elem_bytes)

    def _store_partial_tile(self, b, c, accs, mr, nr, accumulate):
        """Spill the accumulators to a stack tile and copy its valid mr x nr corner to C."""
        t, T = self.t, self.T
        # typed as vectors (llvmlite checks stores against alloca types); read back element-wise
        tile = b.alloca(self.vec, size=i64(t.mr * t.nvec), name="tile")
        for r in range(t.mr):
            for v in range(t.nvec):
                b.store(b.load(accs[r][v], typ=self.vec), elem_ptr(b, tile, r * t.nr + v * t.vw, T))
        with for_range(b, 0, mr, name="er") as r:
            with for_range(b, 0, nr, name="ej") as j:
                val = load_elem(b, tile, b.add(b.mul(r, i64(t.nr)), j), T)
                ptr = elem_ptr(b, c, b.add(b.mul(r, i64(self.spec.n)), j), T)
                old = b.load(ptr, typ=T)
                b.store(b.select(accumulate, b.fadd(old, val), val), ptr)

    # -- packing: A block (mc x kc) into MR-row panels, element (p, r) of panel q at q*MR*kc + p*MR + r
    def _emit_pack_a(self) -> ir.Function:
        t, T, va = self.t, self.T, self.spec.a
        fn = new_function(self.module, f"{self.name}.pack_a", 2, [I64, I64, I64, I64, I64],
                          linkage="internal")
        dst, src, base, ic, mc, pc, kc = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        n_panels = b.sdiv(b.add(mc, i64(t.mr - 1)), i64(t.mr))
        with for_range(b, 0, n_panels, name="q") as q:
            panel = b.mul(q, b.mul(kc, i64(t.mr)))
            rows = imin(b, i64(t.mr), b.sub(mc, b.mul(q, i64(t.mr))))
            row0 = b.add(ic, b.mul(q, i64(t.mr)))

            def copy(r, p):
                src_index = b.add(base, b.add(b.mul(b.add(row0, r), i64(va.rs)),
                                              b.mul(b.add(pc, p), i64(va.cs))))
                val = convert_float(b, load_elem(b, src, src_index, self.TA), T)
                store_elem(b, val, dst, b.add(panel, b.add(b.mul(p, i64(t.mr)), r)))

            if abs(va.cs) <= abs(va.rs):           # row-major A: walk k innermost (contiguous reads)
                with for_range(b, 0, rows, name="r") as r:
                    with for_range(b, 0, kc, name="p") as p:
                        copy(r, p)
            else:                                  # transposed A: walk rows innermost
                with for_range(b, 0, kc, name="p") as p:
                    with for_range(b, 0, rows, name="r") as r:
                        copy(r, p)
            with for_range(b, rows, t.mr, name="zr") as r:      # zero rows past the edge
                with for_range(b, 0, kc, name="zp") as p:
                    store_elem(b, ir.Constant(T, 0.0), dst, b.add(panel, b.add(b.mul(p, i64(t.mr)), r)))
        b.ret_void()
        return fn

    # -- packing: B block (kc x nc) into NR-column panels, element (p, c) of panel j at j*NR*kc + p*NR + c
    def _emit_pack_b(self) -> ir.Function:
        t, T, vb = self.t, self.T, self.spec.b
        fn = new_function(self.module, f"{self.name}.pack_b", 2, [I64, I64, I64, I64, I64],
                          linkage="internal")
        dst, src, base, pc, kc, jc, nc = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        n_panels = b.sdiv(b.add(nc, i64(t.nr - 1)), i64(t.nr))
        with for_range(b, 0, n_panels, name="q") as q:
            panel = b.mul(q, b.mul(kc, i64(t.nr)))
            cols = imin(b, i64(t.nr), b.sub(nc, b.mul(q, i64(t.nr))))
            col0 = b.add(jc, b.mul(q, i64(t.nr)))

            def copy(p, col):
                src_index = b.add(base, b.add(b.mul(b.add(pc, p), i64(vb.rs)),
                                              b.mul(b.add(col0, col), i64(vb.cs))))
                val = convert_float(b, load_elem(b, src, src_index, self.TB), T)
                store_elem(b, val, dst, b.add(panel, b.add(b.mul(p, i64(t.nr)), col)))

            if abs(vb.cs) <= abs(vb.rs):           # row-major B: columns innermost
                with for_range(b, 0, kc, name="p") as p:
                    with for_range(b, 0, cols, name="c") as col:
                        copy(p, col)
            else:                                  # transposed B: k innermost
                with for_range(b, 0, cols, name="c") as col:
                    with for_range(b, 0, kc, name="p") as p:
                        copy(p, col)
            with for_range(b, 0, kc, name="zp") as p:           # zero columns past the edge
                with for_range(b, cols, t.nr, name="zc") as col:
                    store_elem(b, ir.Constant(T, 0.0), dst, b.add(panel, b.add(b.mul(p, i64(t.nr)), col)))
        b.ret_void()
        return fn

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

    # -- the blocked loop nest over work units [begin, end)
    def _emit_range(self, ukernel, pack_a, pack_b) -> ir.Function:
        s, t, T = self.spec, self.t, self.T
        fn = new_function(self.module, f"{self.name}_range", 3, [I64, I64])
        c, a, bm, begin, end = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        if s.k == 0:                       # empty sum: C = 0 for the rows of these units
            self._emit_zero_units(b, c, begin, end)
            b.ret_void()
            return fn
        with b.if_then(b.icmp_signed("<", begin, end)):
            aligned_alloc = declare(self.module, "aligned_alloc", PTR, [I64, I64])
            free = declare(self.module, "free", ir.VoidType(), [PTR])
            a_bytes = _round_up(t.mc * t.kc * self.elem_bytes, 64)
            b_bytes = _round_up(t.nc * t.kc * self.elem_bytes, 64)
            ap = b.call(aligned_alloc, [i64(64), i64(a_bytes)], name="ap")
            bp = b.call(aligned_alloc, [i64(64), i64(b_bytes)], name="bp")
            panels = -(-s.m // t.mr)
            first_batch = b.sdiv(begin, i64(panels))
            last_batch = b.sdiv(b.add(end, i64(panels - 1)), i64(panels))
            with for_range(b, first_batch, last_batch, name="bat") as bidx:
                unit0 = b.mul(bidx, i64(panels))
                p0 = imax(b, b.sub(begin, unit0), 0)
                p1 = imin(b, b.sub(end, unit0), panels)
                row0 = b.mul(p0, i64(t.mr))
                row1 = imin(b, b.mul(p1, i64(t.mr)), s.m)
                a_base = b.add(i64(s.a.offset), self._batch_offset(b, bidx, s.a.batch_strides))
                b_base = b.add(i64(s.b.offset), self._batch_offset(b, bidx, s.b.batch_strides))
                c_batch = elem_ptr(b, c, b.mul(bidx, i64(s.m * s.n)), T)
                with for_range(b, 0, s.n, t.nc, name="jc") as jc:
                    nc = imin(b, t.nc, b.sub(i64(s.n), jc))
                    with for_range(b, 0, s.k, t.kc, name="pc") as pc:
                        kc = imin(b, t.kc, b.sub(i64(s.k), pc))
                        accumulate = b.icmp_signed(">", pc, i64(0))
                        b.call(pack_b, [bp, bm, b_base, pc, kc, jc, nc])
                        with for_range(b, row0, row1, t.mc, name="ic") as ic:
                            mc = imin(b, t.mc, b.sub(row1, ic))
                            if self.direct_a:
                                a_block = elem_ptr(b, a, b.add(a_base, b.add(b.mul(ic, i64(s.a.rs)),
                                                                             b.mul(pc, i64(s.a.cs)))), T)
                            else:
                                b.call(pack_a, [ap, a, a_base, ic, mc, pc, kc])
                                a_block = ap
                            self._emit_macro_kernel(b, ukernel, a_block, bp, c_batch, ic, mc, jc, nc, kc,
                                                    accumulate)
            b.call(free, [ap])
            b.call(free, [bp])
        b.ret_void()
        return fn

    def _emit_macro_kernel(self, b, ukernel, ap, bp, c_batch, ic, mc, jc, nc, kc, accumulate):
        """Every MR x NR tile of the packed block; the A panel (MR x kc) stays in L1 while the
        B panels stream past it from L2."""
        s, t, T = self.spec, self.t, self.T
        with for_range(b, 0, mc, t.mr, name="ir") as ir_:
            a_step = i64(s.a.rs) if self.direct_a else kc     # rows apart in A, or packed panels
            a_panel = elem_ptr(b, ap, b.mul(ir_, a_step), T)
            mr = imin(b, t.mr, b.sub(mc, ir_))
            row = b.add(ic, ir_)
            with for_range(b, 0, nc, t.nr, name="jr") as jr:
                b_panel = elem_ptr(b, bp, b.mul(jr, kc), T)
                nr = imin(b, t.nr, b.sub(nc, jr))
                c_tile = elem_ptr(b, c_batch, b.add(b.mul(row, i64(s.n)), b.add(jc, jr)), T)
                b.call(ukernel, [a_panel, b_panel, c_tile, kc, mr, nr, accumulate])

    def _emit_zero_units(self, b, c, begin, end):
        s, t = self.spec, self.t
        panels = -(-s.m // t.mr)
        with for_range(b, begin, end, name="u") as u:
            bidx = b.sdiv(u, i64(panels))
            row0 = b.mul(b.srem(u, i64(panels)), i64(t.mr))
            row1 = imin(b, b.add(row0, i64(t.mr)), s.m)
            first = b.add(b.mul(bidx, i64(s.m * s.n)), b.mul(row0, i64(s.n)))
            count = b.mul(b.sub(row1, row0), i64(s.n))
            with for_range(b, 0, count, name="z") as z:
                store_elem(b, ir.Constant(self.T, 0.0), c, b.add(first, z))


def emit_gemm(module: ir.Module, name: str, spec: GemmSpec, tiling: Tiling | None = None) -> ir.Function:
    """Add ``void name(ptr c, ptr a, ptr b)`` and ``void name_range(c, a, b, i64 begin, i64 end)``."""
    return _GemmEmitter(module, name, spec, tiling or choose_tiling(spec)).emit()


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
