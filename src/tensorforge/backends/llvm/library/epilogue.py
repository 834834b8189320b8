"""The ``matmul_epilogue`` op (passes/fusion_epilogue.py): a GEMM whose rows are finished by an
elementwise epilogue as soon as they are computed.

    void name(ptr c, ptr a, ptr b, ptr in1, ..., ptr out1, ...)
    void name_range(same pointers, i64 begin, i64 end)        (matmul work units)

``name_range`` runs the product's units [begin, end) (``linalg.emit_gemm``: MR-row panels of
each batch entry), then the epilogue over exactly those rows of C, in place, while they are
still in the cache (a unit range is at most a few hundred KiB of C). So a threaded product
applies its epilogue on the same threads, and C is never read back from memory by another
kernel. The generic GEMM stays shared by every product of the module: specialising its
microkernel per epilogue would compile one GEMM per product (the compile time of an MLP
step is mostly LLVM's, see tools/measure_compile.py).

The epilogue is a kernel-IR LoopSpec over (rows, columns), its input 0 the product read at
the element being written (``loops.emit_epilogue_range``).
"""
from __future__ import annotations

from llvmlite import ir

from . import Operand, register
from .common import I64, i64, imin, new_function
from .linalg import _ceil_div, choose_tiling, emit_gemm, gemm_units, matmul_spec, matmul_units_extent


def epilogue_units(inputs: list[Operand], out: Operand) -> int:
    """How many work units ``<name>_range`` of a matmul epilogue kernel splits into."""
    return gemm_units(matmul_spec(inputs[:2], out))


@register("matmul_epilogue")
def emit_matmul_epilogue(module: ir.Module, name: str, inputs: list[Operand], out: Operand, attrs: dict):
    from ..loops import emit_epilogue_range     # loops imports this package: import when used
    spec = attrs["spec"]
    gspec = matmul_spec(inputs[:2], out)
    tiling = choose_tiling(gspec)
    emit_gemm(module, f"{name}_gemm", gspec, tiling)
    gemm_range = module.get_global(f"{name}_gemm_range")
    epilogue = emit_epilogue_range(module, f"{name}_epi_range", spec, [out.dtype] + [o.dtype for o in inputs[2:]])
    n_ptrs = 1 + len(inputs) + len(spec.extra_outs)
    # no noalias: the epilogue writes C, which the GEMM wrote through the same pointer
    ranged = new_function(module, f"{name}_range", n_ptrs, [I64, I64], noalias=False)
    ptrs, (begin, end) = list(ranged.args[:n_ptrs]), ranged.args[n_ptrs:]
    b = ir.IRBuilder(ranged.append_basic_block("entry"))
    b.call(gemm_range, ptrs[:3] + [begin, end])
    # computed in the IR, not in Python: in a build generic in the batch size (symbolic.py) m is
    # the batch, and ceil(m / mr) is a step function that the probe sizes may not reveal
    panels = _ceil_div(b, gspec.m, tiling.mr)

    def first_row(unit):
        """The row of C (batch entries stacked) where work unit ``unit`` starts."""
        within = imin(b, b.mul(b.srem(unit, panels), i64(tiling.mr)), gspec.m)
        return b.add(b.mul(b.sdiv(unit, panels), i64(gspec.m)), within)

    b.call(epilogue, [ptrs[0]] + ptrs[3:] + [first_row(begin), first_row(end)])
    b.ret_void()
    fn = new_function(module, name, n_ptrs, noalias=False)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    if gemm_units(gspec, tiling) > 0:
        b.call(ranged, list(fn.args) + [i64(0), matmul_units_extent(inputs[:2], out)(b)])
    b.ret_void()
    return fn
