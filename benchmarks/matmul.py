"""Benchmark: the LLVM library matmul kernel against NumPy's BLAS (np.matmul), one thread.

Prints GFLOP/s of both and their ratio for square sizes and the MLP shapes (forward and
the backward products with transposed operands), then the convolution kernels against
the NumPy references for the benchmark CNN's conv layer. Run:

    OPENBLAS_NUM_THREADS=1 python benchmarks/matmul.py

Last prints: compile time (wall and CPU, min of 5) of one module holding one matmul, the 5
matmuls of the MLP step, and conv2d with both gradients.

Generic GEMM (one shared kernel per module and register tile) against the former
per-instance specialised kernels, float32, 1 thread, on a shared 2-core AVX-512 EPYC VM
(heavily loaded while measured: each figure is the best of 2 alternating runs, and
GFLOP/s moved by up to +-30 % between runs; the llvm/numpy ratio is the steadier figure):

    GFLOP/s (ratio to numpy)        specialised      generic
    64x64x64                        138 (1.48)      146 (1.62)
    128x128x128                     183 (1.65)      192 (1.80)
    256x256x256                     210 (1.77)      214 (1.85)
    512x512x512                     222 (1.88)      221 (1.86)
    1024x1024x1024                  195 (2.05)      172 (2.17)
    128x784 @ 784x256               202 (1.74)      203 (1.76)
    128x256 @ 256x10                 95 (2.04)       92 (1.86)
    x.T @ g (784x128 @ 128x256)     192 (1.63)      150 (1.89)
    g @ w1.T (128x256 @ 256x784)    181 (2.34)      183 (1.65)
    h.T @ g2 (256x128 @ 128x10)     104 (2.45)       87 (1.56)
    g2 @ w2.T (128x10 @ 10x256)     150 (1.93)      153 (2.17)
    conv2d / grad_input / grad_weight (us)   25 / 13 / 45    12 / 18 / 32
    compile, CPU ms: one matmul              160             99
                     MLP step, 5 matmuls     532            195
                     conv2d + 2 gradients    628            228

Packing retuned on an Intel Xeon (Sapphire Rapids, AVX-512, 2 cores, 48 KiB L1d, 2 MiB L2;
load average 12-16 while measured, so GFLOP/s are only comparable within a row): ratio to
torch.matmul (oneDNN/MKL, 1 thread), CPU-time medians of 9 interleaved rounds, one process.
"before": packed A and B, depth-contiguous panels packed by a scalar scatter; "after": those
panels transposed in 8 x 8 register blocks (gemm_pack.py) and row-major A read in place:

    llvm / torch, 1 thread              before   after
    128x784 @ 784x256   (x @ W1)         0.83    0.93
    128x256 @ 256x256   (h @ W2)         0.83    0.92
    784x128 @ 128x256   (x^T @ dy)       0.96    0.97
    128x256 @ 256x256^T (dy @ W2^T)      0.81    1.03
    128x256 @ 256x784^T (dy @ W1^T)      0.79    0.93
    256x784 @ 784x1024                   0.92    0.95
    256x1024 @ 1024x1024                 0.93    0.97
    784x256 @ 256x1024  (x^T @ dy)       0.97    0.97
    256x1024 @ 1024x1024^T (dy @ W^T)    0.86    0.94
    512^3                                0.94    0.97

The register tile (8 x 2 zmm = 16 accumulators, no spills) and the cache blocks were swept
too (12 x 2, 14 x 2, 6 x 4 zmm; KC 196/256/320, MC 96/192, NC 512/2048, and the BLIS jr-outer
loop order): none beat the current choice by more than the noise on this machine.
"""
from __future__ import annotations

import ctypes
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # before numpy loads BLAS

import numpy as np  # noqa: E402
from llvmlite import ir  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from tensorforge.backends.llvm import jit  # noqa: E402
from tensorforge.backends.llvm.library import LIBRARY, Operand  # noqa: E402
from tensorforge.ops import OPS  # noqa: E402


def best_seconds(fn, min_time=0.2, repeats=5):
    """Best of ``repeats`` timings of a loop long enough to last ``min_time``, per call."""
    fn()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time:
        fn()
        calls += 1
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def operand(view):
    base = view
    while isinstance(base.base, np.ndarray):
        base = base.base
    off = (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // view.itemsize
    return Operand(view.shape, tuple(s // view.itemsize for s in view.strides), off, str(view.dtype)), base


def compiled_call(op_name, views, out_shape, dtype, attrs=None):
    """A no-argument callable running the kernel on ``views``, and its output array."""
    pairs = [operand(v) for v in views]
    out = np.empty(out_shape, dtype)
    module = ir.Module()
    LIBRARY[op_name](module, "kernel", [p[0] for p in pairs],
                     Operand(out.shape, tuple(s // out.itemsize for s in out.strides), 0, dtype), attrs or {})
    compiled = jit.compile_module(str(module))
    fn = compiled.function("kernel", None, [ctypes.c_void_p] * (1 + len(views)))
    args = [out.ctypes.data] + [p[1].ctypes.data for p in pairs]
    return (lambda: fn(*args)), out, compiled


def bench_matmul(label, a, b):
    call, out, _keep = compiled_call("matmul", [a, b], a.shape[:-1] + b.shape[-1:], str(a.dtype))
    call()
    assert np.allclose(out, a @ b, rtol=1e-4, atol=1e-3)
    flop = 2.0 * a.shape[0] * a.shape[1] * b.shape[1]
    ours, ref = best_seconds(call), best_seconds(lambda: np.matmul(a, b))
    print(f"{label:<28} llvm {flop / ours / 1e9:7.1f}  numpy {flop / ref / 1e9:7.1f}  ratio {ref / ours:5.2f}")


def bench_conv(label, op_name, views, out_shape, attrs):
    call, out, _keep = compiled_call(op_name, views, out_shape, "float32", attrs)
    impl = OPS[op_name].impl
    call()
    assert np.allclose(out, impl(*views, **attrs), rtol=1e-4, atol=1e-4)
    ours, ref = best_seconds(call), best_seconds(lambda: impl(*views, **attrs))
    print(f"{label:<28} llvm {ours * 1e6:8.1f} us  numpy {ref * 1e6:8.1f} us  speed-up {ref / ours:5.2f}")


def best_compile_seconds(build, repeats=5):
    """(wall, CPU) seconds of emitting + optimising + compiling one module, each the minimum over
    ``repeats`` (the machine is shared: CPU time is the steadier of the two; compiling is serial)."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        module = ir.Module()
        build(module)
        jit.compile_module(str(module))
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu


def _emit(module, name, op_name, views, out_shape, attrs=None):
    dtype = str(views[0].dtype)
    out = Operand(tuple(out_shape), tuple(int(np.prod(out_shape[i + 1:])) for i in range(len(out_shape))), 0, dtype)
    LIBRARY[op_name](module, name, [operand(v)[0] for v in views], out, attrs or {})


def mlp_matmuls(r):
    """The 5 matmuls of an MLP 784-256-256-10 training step, batch 128 (3 forward, 2 backward)."""
    x, w1, h, w2, w3, g3 = r(128, 784), r(784, 256), r(128, 256), r(256, 256), r(256, 10), r(128, 10)
    return [(x, w1), (h, w2), (h, w3), (h.T, g3), (g3, w3.T)]


def compile_times(r):
    """Compile seconds of (a) one module with the MLP step's 5 matmuls, (b) conv2d + its 2 gradients."""
    pairs = mlp_matmuls(r)

    def mlp(module):
        for i, (a, b) in enumerate(pairs):
            _emit(module, f"mm{i}", "matmul", [a, b], a.shape[:-1] + b.shape[-1:])

    attrs = {"stride": (1, 1), "padding": (1, 1)}
    xc, wc, gc = r(64, 1, 8, 8), r(8, 1, 3, 3), r(64, 8, 8, 8)

    def conv(module):
        _emit(module, "c0", "conv2d", [xc, wc], gc.shape, attrs)
        _emit(module, "c1", "conv2d_grad_input", [gc, wc, xc], xc.shape, attrs)
        _emit(module, "c2", "conv2d_grad_weight", [gc, xc, wc], wc.shape, attrs)

    def one(module):
        _emit(module, "mm", "matmul", list(pairs[0]), (128, 256))

    print("\ncompile time of one module (emit + optimise + codegen, min of 5), float32")
    for label, build in (("one matmul", one), ("MLP step: 5 matmuls", mlp), ("conv2d + 2 gradients", conv)):
        wall, cpu = best_compile_seconds(build)
        print(f"{label:<28} wall {wall * 1e3:7.1f} ms  cpu {cpu * 1e3:7.1f} ms")


def main():
    rng = np.random.default_rng(0)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    with threadpool_limits(1):
        print("float32 GFLOP/s, 1 thread")
        for n in (64, 128, 256, 512, 1024):
            bench_matmul(f"{n}x{n}x{n}", r(n, n), r(n, n))
        x, w1, h, w2 = r(128, 784), r(784, 256), r(128, 256), r(256, 10)
        g2 = r(128, 10)
        bench_matmul("128x784 @ 784x256", x, w1)
        bench_matmul("128x256 @ 256x10", h, w2)
        bench_matmul("x.T @ g (784x128 @ 128x256)", x.T, h)
        bench_matmul("g @ w1.T (128x256 @ 256x784)", h, w1.T)
        bench_matmul("h.T @ g2 (256x128 @ 128x10)", h.T, g2)
        bench_matmul("g2 @ w2.T (128x10 @ 10x256)", g2, w2.T)
        # MLP 784-1024-1024-10, batch 256: forward, dW = x^T @ dy (transposed A), dx = dy @ W^T
        xb, w1b, hb, w2b = r(256, 784), r(784, 1024), r(256, 1024), r(1024, 1024)
        bench_matmul("256x784 @ 784x1024", xb, w1b)
        bench_matmul("256x1024 @ 1024x1024", hb, w2b)
        bench_matmul("x.T @ g (784x256 @ 256x1024)", xb.T, hb)
        bench_matmul("g @ w2.T (256x1024 @ 1024^2)", hb, w2b.T)
        print("\nconv 64x1x8x8, 8 filters 3x3, pad 1 (float32)")
        attrs = {"stride": (1, 1), "padding": (1, 1)}
        xc, wc, gc = r(64, 1, 8, 8), r(8, 1, 3, 3), r(64, 8, 8, 8)
        bench_conv("conv2d", "conv2d", [xc, wc], (64, 8, 8, 8), attrs)
        bench_conv("conv2d_grad_input", "conv2d_grad_input", [gc, wc, xc], xc.shape, attrs)
        bench_conv("conv2d_grad_weight", "conv2d_grad_weight", [gc, xc, wc], wc.shape, attrs)
    compile_times(r)


if __name__ == "__main__":
    main()
