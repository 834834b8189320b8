"""IR-building helpers shared by the library kernels: constants, typed pointers, counted loops."""
from __future__ import annotations

import functools
from contextlib import contextmanager

from llvmlite import ir

from ...common import contiguous_strides  # noqa: F401  (re-exported: the kernels and backend.py import it from here)

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()

_FLOAT_TYPES = {"float32": F32, "float64": F64}


def float_type(dtype: str) -> ir.Type:
    """The LLVM type of a floating-point NumPy dtype name (NotImplementedError for others)."""
    try:
        return _FLOAT_TYPES[str(dtype)]
    except KeyError:
        raise NotImplementedError(f"this library kernel supports float32/float64 only, got {dtype}") from None


def i64(value) -> ir.Value:
    """An i64 constant from a Python int, or the value itself if it already is an IR value."""
    return value if isinstance(value, ir.Value) else ir.Constant(I64, int(value))


def elem_ptr(builder: ir.IRBuilder, base, index, etype: ir.Type) -> ir.Value:
    """Pointer to element ``index`` (i64 value or int) of an array of ``etype`` at ``base``.

    The result has ``base``'s pointer type: keep bases opaque (function arguments, malloc
    results) so that vectors and scalars can both be stored through it (llvmlite checks
    the pointee type of typed pointers, e.g. allocas, on store)."""
    return builder.gep(base, [i64(index)], inbounds=True, source_etype=etype)


def load_elem(builder, base, index, etype, align=None):
    return builder.load(elem_ptr(builder, base, index, etype), typ=etype, align=align)


def store_elem(builder, value, base, index, align=None):
    builder.store(value, elem_ptr(builder, base, index, value.type), align=align)


def convert_float(builder, value, to_type):
    """fpext/fptrunc a float value to ``to_type`` (no-op when it already has that type)."""
    if value.type == to_type:
        return value
    if isinstance(to_type, ir.DoubleType):
        return builder.fpext(value, to_type)
    return builder.fptrunc(value, to_type)


def imin(builder, a, b):
    """Signed minimum of two i64 values (or ints)."""
    a, b = i64(a), i64(b)
    return builder.select(builder.icmp_signed("<", a, b), a, b)


def imax(builder, a, b):
    a, b = i64(a), i64(b)
    return builder.select(builder.icmp_signed(">", a, b), a, b)


@contextmanager
def for_range(builder: ir.IRBuilder, start, stop, step=1, name="i"):
    """``for (i = start; i < stop; i += step)`` around the body emitted inside the ``with``.

    Yields the i64 induction variable; after the block the builder sits after the loop.
    ``start``/``stop``/``step`` are ints or i64 values (``step`` must be positive).
    """
    start, stop, step = i64(start), i64(stop), i64(step)
    entry = builder.block
    head = builder.append_basic_block(f"{name}.head")
    body = builder.append_basic_block(f"{name}.body")
    done = builder.append_basic_block(f"{name}.end")
    builder.branch(head)
    builder.position_at_end(head)
    index = builder.phi(I64, name)
    index.add_incoming(start, entry)
    builder.cbranch(builder.icmp_signed("<", index, stop), body, done)
    builder.position_at_end(body)
    yield index
    index.add_incoming(builder.add(index, step, name=f"{name}.next"), builder.block)
    builder.branch(head)
    builder.position_at_end(done)


def new_function(module: ir.Module, name: str, n_ptr_args: int, extra_args=(), linkage=None,
                 noalias=True) -> ir.Function:
    """``void name(ptr, ptr, ..., extra...)`` with the pointer arguments marked noalias."""
    fnty = ir.FunctionType(ir.VoidType(), [PTR] * n_ptr_args + list(extra_args))
    fn = ir.Function(module, fnty, name=name)
    if linkage:
        fn.linkage = linkage
    for arg in fn.args[:n_ptr_args]:
        if noalias:
            arg.add_attribute("noalias")
    return fn


def declare(module: ir.Module, name: str, ret: ir.Type, args) -> ir.Function:
    """The module's declaration of an external C function (created once)."""
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ret, list(args)), name=name)


@functools.lru_cache(maxsize=None)
def _host_features() -> str:
    import llvmlite.binding as llvm
    from .. import jit
    jit.target_machine()                 # makes sure the native target is initialised
    return llvm.get_host_cpu_features().flatten()


def host_vector_bits() -> int:
    """Widest SIMD register of the host: 512 with AVX-512F, 256 with AVX, else 128.

    TENSORFORGE_VECTOR_BITS overrides it (to test the AVX2 tiling on an AVX-512 host); only
    the feature query is cached, so that ``config.override(vector_bits=...)`` takes effect.
    """
    from .... import config
    forced = config.get("vector_bits")
    if forced:
        return forced
    feats = set(_host_features().split(","))
    if "+avx512f" in feats:
        return 512
    if "+avx" in feats:
        return 256
    return 128


# ---- any-dtype values, strided views, loop nests and copies ----------------------------
# (used by the pooling, indexing, random and argmax kernels; ints and bool included)

_VALUE_TYPES = {"float32": F32, "float64": F64, "int64": I64, "int32": I32, "int16": ir.IntType(16),
                "int8": I8, "uint8": I8, "uint16": ir.IntType(16), "uint32": I32, "uint64": I64,
                "bool": I8}


def value_type(dtype: str) -> ir.Type:
    """The LLVM type of a NumPy dtype name held in a buffer (bool is an i8 holding 0/1)."""
    try:
        return _VALUE_TYPES[str(dtype)]
    except KeyError:
        raise NotImplementedError(f"library kernels do not support the dtype {dtype}") from None


def is_float(dtype: str) -> bool:
    return str(dtype).startswith("float")


def is_unsigned(dtype: str) -> bool:
    """bool and uintN widen with zero extension (and convert to float as unsigned)."""
    return str(dtype) == "bool" or str(dtype).startswith("uint")


def convert_value(builder: ir.IRBuilder, value, src: str, dst: str):
    """``value`` of dtype ``src`` cast like NumPy's ``astype(dst)`` (bool: value != 0)."""
    src, dst = str(src), str(dst)
    to = value_type(dst)
    if src == dst:
        return value
    if dst == "bool":
        nonzero = (builder.fcmp_unordered("!=", value, ir.Constant(value.type, 0.0)) if is_float(src)
                   else builder.icmp_unsigned("!=", value, ir.Constant(value.type, 0)))
        return builder.zext(nonzero, I8)
    if is_float(src) and is_float(dst):
        return convert_float(builder, value, to)
    if is_float(dst):
        return builder.uitofp(value, to) if is_unsigned(src) else builder.sitofp(value, to)
    if is_float(src):
        return builder.fptoui(value, to) if is_unsigned(dst) else builder.fptosi(value, to)
    if to.width == value.type.width:
        return value
    if to.width < value.type.width:
        return builder.trunc(value, to)
    return builder.zext(value, to) if is_unsigned(src) else builder.sext(value, to)


def strided_index(builder: ir.IRBuilder, offset: int, strides, indices) -> ir.Value:
    """offset + sum(index_k * stride_k) as an i64 (zero strides add no instruction)."""
    total = i64(offset)
    for stride, index in zip(strides, indices):
        if stride == 0:
            continue
        term = index if stride == 1 else builder.mul(index, i64(stride))
        total = builder.add(total, term)
    return total


@contextmanager
def loop_nest(builder: ir.IRBuilder, shape, name="ax"):
    """Nested ``for`` loops over ``shape`` in C order; yields the list of i64 indices."""
    from contextlib import ExitStack
    with ExitStack() as stack:
        indices = [stack.enter_context(for_range(builder, 0, int(d), name=f"{name}{k}"))
                   for k, d in enumerate(shape)]
        yield indices


def merge_axes(shape, *stride_lists):
    """Drop size-1 axes and merge neighbouring axes that are contiguous in every stride list,
    so a copy runs as few, long (vectorisable) inner loops as possible.
    Returns (shape, [strides, ...]) with the same number of stride lists."""
    dims = [(int(d), [int(s[k]) for s in stride_lists]) for k, d in enumerate(shape) if int(d) != 1]
    merged: list = []
    for d, strides in dims:
        if merged:
            pd, pstrides = merged[-1]
            if all(ps == s * d for ps, s in zip(pstrides, strides)):
                merged[-1] = (pd * d, strides)
                continue
        merged.append((d, strides))
    if any(d == 0 for d in shape):
        merged = [(0, [0] * len(stride_lists))]
    return tuple(d for d, _ in merged), [tuple(s[k] for _, s in merged) for k in range(len(stride_lists))]


def emit_strided_copy(builder: ir.IRBuilder, dst, dst_offset: int, dst_strides, dst_dtype: str,
                      src, src_offset: int, src_strides, src_dtype: str, shape) -> None:
    """dst[view] = src[view].astype(dst_dtype) over ``shape``, both sides read through strides."""
    shape, (dst_strides, src_strides) = merge_axes(shape, dst_strides, src_strides)
    src_t = value_type(src_dtype)
    with loop_nest(builder, shape, name="cp") as idx:
        value = load_elem(builder, src, strided_index(builder, src_offset, src_strides, idx), src_t)
        value = convert_value(builder, value, src_dtype, dst_dtype)
        store_elem(builder, value, dst, strided_index(builder, dst_offset, dst_strides, idx))


def emit_fill(builder: ir.IRBuilder, dst, count: int, dtype: str, value=0) -> None:
    """dst[0:count] = value (a contiguous run; LLVM turns a zero fill into memset)."""
    t = value_type(dtype)
    const = ir.Constant(t, float(value) if is_float(dtype) else int(value))
    with for_range(builder, 0, int(count), name="fill") as i:
        store_elem(builder, const, dst, i)


def begin_kernel(module: ir.Module, name: str, n_inputs: int):
    """``void name(ptr out, ptr in0, ...)`` and a builder at its entry block."""
    fn = new_function(module, name, 1 + n_inputs)
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    return fn, builder
