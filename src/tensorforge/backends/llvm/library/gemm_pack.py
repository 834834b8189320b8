"""Packing routines of the generic GEMM (linalg.py): copies of operand blocks into the
zero-padded panels its microkernel reads, and ``plain_loop``, the hint-carrying loop that the
GEMM and its neighbours (conv.py, conv_im2col.py) use for hand-vectorised code.

A panel holds W lanes (A: MR rows; B: NR columns) for each of ``depth`` k steps, lanes
contiguous. Which copy is fast depends on the source's layout:

* lanes adjacent in the source (row-major B, transposed A): each k step is one contiguous run
  of W elements, copied as 32-byte vectors;
* depth adjacent in the source (row-major A, transposed B as in ``dy @ W^T``): each lane is a
  contiguous run along k. Copied element by element this is a scatter with stride W (about
  one element per cycle); instead 8 x 8 (float32; 4 x 4 float64) blocks are loaded as 8 row
  vectors, transposed in registers by a shuffle network, and stored as 8 panel rows;
* anything else (and the partial panels at the edges) by a scalar loop nest.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
from llvmlite import ir

from .common import (F64, I1, I8, I64, PTR, convert_float, elem_ptr, float_type, for_range, i64, imax, imin,
                     load_elem, new_function, store_elem)


@contextmanager
def plain_loop(b: ir.IRBuilder, start, stop, step=1, name="i"):
    """``for_range`` whose latch carries ``llvm.loop`` hints switching off loop vectorisation and
    unrolling: the GEMM's vector code is written by hand, and letting LLVM version, vectorise
    and unroll every scalar bookkeeping loop (runtime strides!) multiplies compile time."""
    with for_range(b, start, stop, step, name=name) as index:
        yield index
        latch_block = b.block
    latch = latch_block.instructions[-1]
    module = b.module
    hints = module.__dict__.get("_tf_loop_hints")
    if hints is None:
        hints = module.__dict__["_tf_loop_hints"] = (
            module.add_metadata([ir.MetaDataString(module, "llvm.loop.vectorize.enable"), ir.Constant(I1, 0)]),
            module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")]))
    loop_id = ir.values.MDValue(module, [], name=str(len(module.metadata)))
    loop_id.operands = (loop_id, *hints)        # a loop ID is a self-referential node
    latch.set_metadata("llvm.loop", loop_id)


def shared_pack(module: ir.Module, dtype: str, src_dtype: str) -> ir.Function:
    """The module's packing routine from ``src_dtype`` to ``dtype`` (one for every GEMM kind):

        void tf_gemm_pack.<dtype><src>(ptr dst, ptr src, i64 s_w, i64 s_p, i64 width, i64 depth, i64 W)

    dst[q*W*depth + p*W + w] = src[(q*W + w) * s_w + p * s_p] for q*W + w < width, else 0
    (panels of W lanes, p < depth). For A: W = MR, lanes walk rows (s_w = a_rs), p walks k;
    for B: W = NR, lanes walk columns (s_w = b_cs), p walks k (s_p = b_rs)."""
    cache = module.__dict__.setdefault("_tf_gemm_pack", {})
    if (dtype, src_dtype) not in cache:
        cache[(dtype, src_dtype)] = _PackEmitter(module, dtype, src_dtype).emit()
    return cache[(dtype, src_dtype)]


def transpose_network(rows: list) -> list[list[tuple[int, int, str]]]:
    """The shuffle network that transposes n row vectors of n lanes (n a power of two), as
    log2(n) stages; in each, output 2i interleaves the low halves of rows i and i + n/2 and
    output 2i + 1 their high halves ("lo"/"hi"). Returned as the stages' (i, i + n/2, half)
    triples so that tests can check the network on NumPy arrays."""
    n = len(rows)
    stage = [t for i in range(n // 2) for t in ((i, i + n // 2, "lo"), (i, i + n // 2, "hi"))]
    return [stage] * int(np.log2(n))


def interleave_mask(n: int, half: str) -> list[int]:
    """Shuffle indices of ``a ++ b`` giving a[h], b[h], a[h+1], b[h+1], ... for the low or high half."""
    base = 0 if half == "lo" else n // 2
    return [x for j in range(n // 2) for x in (base + j, n + base + j)]


class _PackEmitter:
    def __init__(self, module: ir.Module, dtype: str, src_dtype: str):
        self.module = module
        self.T, self.TS = float_type(dtype), float_type(src_dtype)
        self.elem, self.src_elem = np.dtype(dtype).itemsize, np.dtype(src_dtype).itemsize
        self.chunk = 32 // self.elem           # lanes of a 32-byte vector: 8 float32, 4 float64
        self.src_vec, self.dst_vec = ir.VectorType(self.TS, self.chunk), ir.VectorType(self.T, self.chunk)
        short = {"float32": "f32", "float64": "f64"}
        self.name = f"tf_gemm_pack.{short[dtype]}{short[src_dtype]}"

    def _load_vector(self, b, src, index):
        vals = b.load(elem_ptr(b, src, index, self.TS), typ=self.src_vec, align=self.src_elem)
        if self.TS != self.T:
            vals = b.fpext(vals, self.dst_vec) if self.T == F64 else b.fptrunc(vals, self.dst_vec)
        return vals

    def emit(self) -> ir.Function:
        fn = new_function(self.module, self.name, 2, [I64] * 5, linkage="internal")
        fn.attributes.add("noinline")         # shared by every GEMM kind of the module: keep one copy
        dst, src, s_w, s_p, width, depth, W = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        chunk = self.chunk
        whole_vectors = b.icmp_signed("==", b.srem(W, i64(chunk)), i64(0))
        lanes_adjacent = b.and_(b.icmp_signed("==", s_w, i64(1)), whole_vectors)
        depth_adjacent = b.and_(b.icmp_signed("==", s_p, i64(1)), whole_vectors)
        full_panels = b.select(b.or_(lanes_adjacent, depth_adjacent), b.sdiv(width, W), i64(0))
        panel_size = b.mul(depth, W)
        with b.if_else(lanes_adjacent) as (copy, other):
            with copy:
                self._copy_rows(b, dst, src, s_p, depth, W, full_panels, panel_size)
            with other:
                with b.if_then(depth_adjacent):
                    self._copy_transposed(b, dst, src, s_w, depth, W, full_panels, panel_size)
        self._copy_scalar(b, dst, src, s_w, s_p, width, depth, W, full_panels, panel_size)
        b.ret_void()
        return fn

    def _copy_rows(self, b, dst, src, s_p, depth, W, panels, panel_size):
        """Full panels whose W lanes are a contiguous run of the source at each k step."""
        with plain_loop(b, 0, panels, name="q") as q:
            panel, first = b.mul(q, panel_size), b.mul(q, W)
            with plain_loop(b, 0, depth, name="p") as p:
                at, to = b.add(first, b.mul(p, s_p)), b.add(panel, b.mul(p, W))
                with plain_loop(b, 0, W, self.chunk, name="c") as c:
                    b.store(self._load_vector(b, src, b.add(at, c)), elem_ptr(b, dst, b.add(to, c), self.T),
                            align=self.elem)

    def _copy_transposed(self, b, dst, src, s_w, depth, W, panels, panel_size):
        """Full panels whose lanes each run contiguously along k: chunk x chunk blocks
        transposed in registers; the last depth % chunk k steps by a scalar loop."""
        chunk, T = self.chunk, self.T
        blocked_depth = b.mul(b.sdiv(depth, i64(chunk)), i64(chunk))
        with plain_loop(b, 0, panels, name="tq") as q:
            panel, first = b.mul(q, panel_size), b.mul(b.mul(q, W), s_w)
            with plain_loop(b, 0, W, chunk, name="tw") as w0:
                lane0 = b.add(first, b.mul(w0, s_w))
                with plain_loop(b, 0, blocked_depth, chunk, name="tp") as p0:
                    rows = [self._load_vector(b, src, b.add(b.add(lane0, b.mul(i64(r), s_w)), p0))
                            for r in range(chunk)]
                    for stage in transpose_network(rows):
                        rows = [b.shuffle_vector(rows[i], rows[j], ir.Constant(
                            ir.VectorType(ir.IntType(32), chunk), interleave_mask(chunk, half)))
                            for i, j, half in stage]
                    to = b.add(b.add(panel, b.mul(p0, W)), w0)
                    for r in range(chunk):
                        b.store(rows[r], elem_ptr(b, dst, b.add(to, b.mul(i64(r), W)), T), align=self.elem)
                with plain_loop(b, blocked_depth, depth, name="tr") as p:
                    to = b.add(b.add(panel, b.mul(p, W)), w0)
                    with plain_loop(b, 0, chunk, name="tl") as w:
                        val = convert_float(b, load_elem(b, src, b.add(b.add(lane0, b.mul(w, s_w)), p), self.TS), T)
                        store_elem(b, val, dst, b.add(to, w))

    def _copy_scalar(self, b, dst, src, s_w, s_p, width, depth, W, full_panels, panel_size):
        """The panels from ``full_panels`` on: a scalar loop nest whose inner loop follows the
        source's smaller stride (chosen at run time), after zeroing lanes past the edge."""
        T, module = self.T, self.module
        n_panels = b.sdiv(b.add(width, b.sub(W, i64(1))), W)
        lanes_inner = b.icmp_signed("<=", imax(b, s_w, b.sub(i64(0), s_w)), imax(b, s_p, b.sub(i64(0), s_p)))
        memset = module.declare_intrinsic("llvm.memset", [PTR, I64])
        with plain_loop(b, full_panels, n_panels, name="sq") as q:
            panel = b.mul(q, panel_size)
            valid = imin(b, W, b.sub(width, b.mul(q, W)))
            with b.if_then(b.icmp_signed("<", valid, W)):
                b.call(memset, [elem_ptr(b, dst, panel, T), ir.Constant(I8, 0), b.mul(panel_size, i64(self.elem)),
                                ir.Constant(I1, 0)])
            first = b.mul(b.mul(q, W), s_w)
            # (count, source stride, destination stride) of the outer and the inner loop
            pick = lambda lanes, ks: b.select(lanes_inner, lanes, ks)  # noqa: E731
            n_o, so, do = pick(depth, valid), pick(s_p, s_w), pick(W, i64(1))
            n_i, si, di = pick(valid, depth), pick(s_w, s_p), pick(i64(1), W)
            with plain_loop(b, 0, n_o, name="o") as o:
                src_o, dst_o = b.add(first, b.mul(o, so)), b.add(panel, b.mul(o, do))
                # the one loop LLVM may vectorise: strided copies are where packing time goes
                with for_range(b, 0, n_i, name="i") as i:
                    val = convert_float(b, load_elem(b, src, b.add(src_o, b.mul(i, si)), self.TS), T)
                    store_elem(b, val, dst, b.add(dst_o, b.mul(i, di)))
