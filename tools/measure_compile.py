"""Where the cold build of a training step goes: passes, lowering to LLVM IR, LLVM's optimisation,
code generation, and the warm (disk-cache) load.

    PYTHONPATH=src python tools/measure_compile.py [--model mlp|mlp-big|cnn] [--repeats 3]

Each repeat builds the step in a fresh, empty TENSORFORGE_CACHE_DIR (a cold build), then
builds it again from the disk cache (a warm build) and runs one step. Printed: medians of
wall time and of this process's CPU time (``time.process_time``, less sensitive to other
processes on a shared machine), the kernel count, and the split of a cold build.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager

import numpy as np


def _model(name: str):
    """(inputs, outputs, updates, feeds) of one training step, built in a fresh graph."""
    import tensorforge as tg
    g = tg.Graph()
    rng = np.random.default_rng(0)
    with g:
        y = tg.placeholder("y", (None,), dtype="int64")
        if name == "cnn":
            x = tg.placeholder("x", (None, 1, 28, 28))
            net = tg.nn.Sequential(tg.nn.Conv2d(1, 8, 3, padding=1, seed=1), tg.nn.ReLU(), tg.nn.MaxPool2d(2),
                                   tg.nn.Conv2d(8, 16, 3, padding=1, seed=2), tg.nn.ReLU(), tg.nn.MaxPool2d(2),
                                   tg.nn.Flatten(), tg.nn.Dense(16 * 7 * 7, 10, seed=3))
            feeds = [rng.standard_normal((32, 1, 28, 28)).astype("float32"), rng.integers(0, 10, 32)]
        else:
            width = 256 if name == "mlp-big" else 32
            n_in = 784 if name == "mlp-big" else 64
            x = tg.placeholder("x", (None, n_in))
            layers = [tg.nn.Dense(n_in, width, seed=1), tg.nn.ReLU()]
            if name == "mlp-big":
                layers += [tg.nn.Dense(width, width, seed=2), tg.nn.ReLU()]
            net = tg.nn.Sequential(*layers, tg.nn.Dense(width, 10, seed=3))
            feeds = [rng.standard_normal((32, n_in)).astype("float32"), rng.integers(0, 10, 32)]
        loss = tg.mean(tg.softmax_cross_entropy(net(x), y))
        updates = tg.optim.Adam(lr=1e-3).updates(loss, net.parameters())
    return [x, y], [loss], updates, feeds


@contextmanager
def _timing_of_llvm():
    """Collect the CPU seconds of jit.optimise and of the whole jit.compile_module per build
    (CPU time: on a shared machine, wall time mostly measures the other processes)."""
    from tensorforge.backends.llvm import jit
    seen = {"optimise": 0.0, "compile_module": 0.0}
    original_optimise, original_compile = jit.optimise, jit.compile_module

    def optimise(*args, **kw):
        t0 = time.process_time()
        try:
            return original_optimise(*args, **kw)
        finally:
            seen["optimise"] += time.process_time() - t0

    def compile_module(*args, **kw):
        t0 = time.process_time()
        try:
            return original_compile(*args, **kw)
        finally:
            seen["compile_module"] += time.process_time() - t0
    jit.optimise, jit.compile_module = optimise, compile_module
    try:
        yield seen
    finally:
        jit.optimise, jit.compile_module = original_optimise, original_compile


def _one_build(model: str) -> dict:
    import tensorforge as tg
    with tempfile.TemporaryDirectory() as folder:
        os.environ["TENSORFORGE_CACHE_DIR"] = folder
        ins, outs, updates, feeds = _model(model)
        with _timing_of_llvm() as llvm_seconds:
            step = tg.compile(ins, outs, updates=updates, backend="llvm")
            wall, cpu = time.perf_counter(), time.process_time()
            step(*feeds)
            cold, cold_cpu = time.perf_counter() - wall, time.process_time() - cpu
        passes = sum(entry[3] for log in step.pass_logs.values() for entry in log)     # wall seconds
        exe = next(iter(step._cache.values()))
        kernels = len(exe.manifest["kernels"])
        ins, outs, updates, feeds = _model(model)
        warm_step = tg.compile(ins, outs, updates=updates, backend="llvm")
        wall = time.perf_counter()
        warm_step(*feeds)
        warm = time.perf_counter() - wall
    optimise = llvm_seconds["optimise"]
    codegen = llvm_seconds["compile_module"] - optimise
    return {"cold": cold, "cold_cpu": cold_cpu, "warm_with_step": warm, "passes (wall)": passes,
            "llvm_optimise_cpu": optimise, "llvm_codegen_and_load_cpu": codegen,
            "python_cpu (passes, lowering)": cold_cpu - llvm_seconds["compile_module"], "kernels": kernels}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp", choices=["mlp", "mlp-big", "cnn"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    runs = [_one_build(args.model) for _ in range(args.repeats)]
    print(f"model {args.model}: {runs[0]['kernels']} kernels; medians of {args.repeats} cold builds "
          f"(load average {os.getloadavg()[0]:.2f})")
    for key in runs[0]:
        if key != "kernels":
            print(f"  {key:30s} {statistics.median(r[key] for r in runs) * 1e3:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
