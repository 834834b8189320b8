"""Library kernels of the Triton backend: matmul (tl.dot), conv via im2col + matmul, pooling,
indexing copies, one_hot, argmax, the counter-based random ops and the strided ``copy``.

Each emitter ``emit(name, inputs: list[Operand], out: Operand, attrs) -> (source, LaunchInfo)``
returns the text of one or more ``@triton.jit`` kernels (shapes, strides and offsets baked in
as constants, like the LLVM library) and a ``LaunchInfo``: the launches in order, each naming
the buffers it reads and writes ("out", "in0", "in1", ..., "scratch0", ...), plus the scratch
buffers (shape, dtype) the caller must allocate for the op. Inputs are read through their
``Operand`` strides and offset (views are never copied); outputs are contiguous C order.

The caller (the backend) writes the source to a module file and imports it; ``launch`` runs
a LaunchInfo given tensors and an allocator, so this package never imports torch.

Layout (mirrors backends/llvm/library/): common.py holds the launch records and the text
helpers; indexing.py (copy, getitem, getitem_grad, concat, concat_grad, one_hot), reduce.py
(argmax), random.py (random_uniform, dropout), linalg.py (matmul), conv.py (conv2d and its
gradients, im2col + matmul) and nn.py (pooling) register their emitters on import.
"""
from __future__ import annotations

from ...common import Operand, contiguous_strides, library_registrar
from ..source import ident, load_module
from ..tuning import choose
from .common import SOURCE_HEADER, KernelLaunch, LaunchInfo, Scratch

__all__ = ["Operand", "Scratch", "KernelLaunch", "LaunchInfo", "LIBRARY", "register", "launch",
           "load_module", "ident", "SOURCE_HEADER"]

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


# the emitter modules register themselves on import (kept at the bottom: they import register)
from . import indexing, reduce, random, linalg, conv, nn  # noqa: E402  (registration order of library.py)
# names the tests reach through the package (library.py's old namespace)
from .indexing import index_view  # noqa: E402
from .linalg import _matmul_blocks, matmul_configs, matmul_kernel  # noqa: E402

__all__ += ["contiguous_strides", "index_view", "matmul_configs", "matmul_kernel", "_matmul_blocks",
            "conv", "indexing", "linalg", "nn", "random", "reduce"]
