"""The optimisation level of each kernel, chosen by its size.

Every kernel of a step is optimised by the same O3 pipeline, and most of a cold build is
LLVM's (tools/measure_compile.py). Small kernels (a bias's update, the softmax of a 64 x 10
batch, the mean of a loss) cost far more to compile than to run: inlined into ``tf_step``
with their loop bounds known, their loops are unrolled, vectorised and simplified again at
each call site, while those kernels run for microseconds. Measured (CPU time of LLVM's
optimisation, 1 thread, a loaded 2-core machine): the MNIST ``Net`` step 409 -> 360 ms and the
784-256-256-10 Adam step 272 -> 241 ms with the default 256, run time unchanged (within 1-2 %);
a limit of 1024 cut the Net's to 290 ms but made the 64-64-10 step about 3 % slower (its Adam
updates of 640 elements lose their vector code).

So a kernel whose work (the elements of its largest buffer: a reduction counts the elements
it reads) is at most ``config.get("small_kernel_work")`` keeps its own function, optimised
for size (``noinline optsize minsize``: no unrolling, no vectorisation that grows the
code). Larger kernels are inlined and optimised for speed as before. A function shared with
a large kernel (a range function, a GEMM micro-kernel) stays optimised for speed: a function
is small only when every kernel that reaches it is.

A build generic in the batch size (symbolic_step.py) is lowered at several probe sizes whose
texts must agree: there a kernel is small only when its work is the same at every probe (it
does not grow with the batch) and small at all of them.
"""
from __future__ import annotations

import math
from typing import Iterable

from llvmlite import ir

SMALL_ATTRIBUTES = ("noinline", "optsize", "minsize")


def small_limit() -> int:
    """The largest work of a kernel optimised for size (0: none is)."""
    from ... import config
    return int(config.get("small_kernel_work"))


def kernel_work(lowering) -> dict[str, int]:
    """Kernel (the function ``tf_step`` calls) -> elements of its largest buffer."""
    def elements(base: int) -> int:
        base = lowering.redirect.get(base, base)
        if base in lowering.buffers:
            return math.prod(lowering.buffers[base][0])
        return math.prod(lowering.p.shapes[base])

    work: dict[str, int] = {}
    for k, (name, bufs) in enumerate(lowering.calls):
        touched = list(bufs) + list(lowering.extra_writes.get(k, ()))
        work[name] = max(work.get(name, 0), max((elements(b) for b in touched), default=0))
    return work


def small_kernels(work: dict[str, int], limit: int) -> set[str]:
    return {name for name, w in work.items() if w <= limit} if limit > 0 else set()


def small_kernels_of_probes(works: list[dict[str, int]], limit: int) -> set[str]:
    """The kernels small at every probe size with the same work at each (see the module doc)."""
    if not works:
        return set()
    first = works[0]
    same = {name for name, w in first.items() if all(other.get(name) == w for other in works[1:])}
    return small_kernels({name: first[name] for name in same}, limit)


def mark_small(module: ir.Module, kernels: Iterable[str]) -> int:
    """Optimise for size every function of ``module`` reached only from the ``kernels`` named
    (``tf_step`` calls the kernels); returns how many functions were marked."""
    small = set(kernels)
    if not small:
        return 0
    reached_by: dict[str, set[str]] = {}
    callers = _kernels_called_by_entry(module)
    for kernel in callers:
        for fn in _reachable(module.get_global(kernel)):
            reached_by.setdefault(fn.name, set()).add(kernel)
    marked = 0
    for fn in module.functions:
        kernels_reaching = reached_by.get(fn.name)
        if (not kernels_reaching or not kernels_reaching <= small or fn.is_declaration
                or "alwaysinline" in fn.attributes):
            continue
        for attr in SMALL_ATTRIBUTES:
            fn.attributes.add(attr)
        marked += 1
    return marked


def _kernels_called_by_entry(module: ir.Module) -> list[str]:
    from .executable import ENTRY
    entry = module.globals.get(ENTRY)
    if entry is None:
        return []
    return sorted({fn.name for fn in _callees(entry)})


def _callees(fn: ir.Function) -> set[ir.Function]:
    """The defined functions ``fn`` calls or takes the address of."""
    out = set()
    for block in fn.blocks:
        for ins in block.instructions:
            for op in getattr(ins, "operands", ()):
                if isinstance(op, ir.Function) and not op.is_declaration:
                    out.add(op)
    return out


def _reachable(start: ir.Function) -> list[ir.Function]:
    seen: dict[str, ir.Function] = {}
    todo = [start]
    while todo:
        fn = todo.pop()
        if fn.name in seen:
            continue
        seen[fn.name] = fn
        todo.extend(_callees(fn))
    return list(seen.values())
