"""Measure the LLVM backend's thread pool (backends/llvm/pool.py) against the spawn/join path.

1. Dispatch overhead per kernel: an empty range function run through a parallel entry, called
   in a native loop (no ctypes per call): 1 thread (a plain call), 2 threads spawn/join (the
   old path), 2 threads through the pool.
2. Adam MLP steps, llvm: 64-64-10 batch 32 and 784-256-256-10 batch 128 (and the pooling and
   dropout middle of the MNIST Net, forward and backward), built for 1 thread,
   for 2 threads the old way (spawn/join, MIN_WORK_PER_THREAD = 1 << 18) and for 2 threads
   with the pool; rounds interleaved in one process, medians of steps/s, and CPU use
   (process_time / wall: 2.0 means two cores busy).

    PYTHONPATH=src python tools/measure_pool.py [--rounds 7] [--quick]

Prints a small table; the load average is printed too (timings on a shared machine are noisy).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import statistics
import tempfile
import time

import numpy as np
from llvmlite import ir

os.environ.setdefault("TENSORFORGE_CACHE_DIR", tempfile.mkdtemp(prefix="tf-measure-pool-"))

import tensorforge as tg  # noqa: E402
from tensorforge.backends.llvm import backend, jit, parallel, pool  # noqa: E402
from tensorforge.backends.llvm.library.common import I64, PTR, for_range  # noqa: E402


# ---- 1. dispatch overhead ------------------------------------------------------------------------
def _dispatch_module():
    """Entries over an empty range (1 thread, spawn/join, pool), each called n times by a loop."""
    m = ir.Module("measure_pool")
    m.triple = jit.target_machine().triple
    empty = ir.Function(m, ir.FunctionType(ir.VoidType(), [PTR, I64, I64]), "empty_range")
    empty.attributes.add("noinline")            # the call itself is part of what is measured
    ir.IRBuilder(empty.append_basic_block()).ret_void()
    entries = {}
    for label, threads, use_pool in (("serial", 1, True), ("spawn_join", 2, False), ("pool", 2, True)):
        saved = parallel.uses_pool
        parallel.uses_pool = lambda use_pool=use_pool: use_pool
        try:
            entries[label] = parallel.emit_entry(m, f"entry_{label}", empty, 1, 1024, threads, grain=1)
        finally:
            parallel.uses_pool = saved
        loop = ir.Function(m, ir.FunctionType(ir.VoidType(), [I64, PTR]), f"loop_{label}")
        b = ir.IRBuilder(loop.append_basic_block())
        with for_range(b, 0, loop.args[0]):
            b.call(entries[label], [loop.args[1]])
        b.ret_void()
    pool.ensure_loaded()
    return jit.compile_module(str(m))


def measure_dispatch(rounds: int, calls: int):
    compiled = _dispatch_module()
    loops = {label: compiled.function(f"loop_{label}", None, [ctypes.c_int64, ctypes.c_void_p])
             for label in ("serial", "spawn_join", "pool")}
    dummy = ctypes.c_int64(0)
    samples = {label: [] for label in loops}
    for _ in range(rounds):
        for label, fn in loops.items():
            n = calls if label != "spawn_join" else max(1, calls // 20)
            wall, cpu = time.perf_counter(), time.process_time()
            fn(n, ctypes.addressof(dummy))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            samples[label].append((wall / n * 1e6, cpu / n * 1e6))
    print("\n## Dispatch overhead per kernel (empty range, native loop)")
    print("| entry | wall us/kernel (median) | CPU us/kernel (median) |")
    print("|---|---|---|")
    for label, rows in samples.items():
        wall, cpu = statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows)
        print(f"| {label} | {wall:.2f} | {cpu:.2f} |")


# ---- 2. MLP steps --------------------------------------------------------------------------------
@contextlib.contextmanager
def _own_cache_folder():
    """Each variant builds into its own cache folder: the step cache's key does not see the
    monkeypatching of ``_old_parallel_path``, so variants would otherwise serve each other."""
    saved = os.environ.get("TENSORFORGE_CACHE_DIR")
    os.environ["TENSORFORGE_CACHE_DIR"] = tempfile.mkdtemp(prefix="tf-measure-pool-")
    try:
        yield
    finally:
        os.environ["TENSORFORGE_CACHE_DIR"] = saved


@contextlib.contextmanager
def _old_parallel_path():
    """Build as before the pool: spawn/join per kernel, only huge fused loops and matmuls split
    (library kernels were never split)."""
    saved = parallel.uses_pool, parallel.MIN_WORK_PER_THREAD, backend.splittable
    parallel.uses_pool, parallel.MIN_WORK_PER_THREAD = (lambda: False), 1 << 18
    backend.splittable = lambda module, name: None
    try:
        yield
    finally:
        parallel.uses_pool, parallel.MIN_WORK_PER_THREAD, backend.splittable = saved


def _mlp_step(sizes, batch: int, threads: int, old: bool):
    tg.set_num_threads(threads)
    g = tg.Graph()
    with g:
        layers = []
        for k, (a, b) in enumerate(zip(sizes, sizes[1:])):
            layers.append(tg.nn.Dense(a, b, seed=k + 1))
            if k < len(sizes) - 2:
                layers.append(tg.nn.ReLU())
        net = tg.nn.Sequential(*layers)
        x = tg.placeholder("x", (batch, sizes[0]))
        y = tg.placeholder("y", (batch,), dtype="int64")
        loss = tg.mean(tg.softmax_cross_entropy(net(x), y))
        updates = tg.optim.Adam(lr=1e-3).updates(loss, net.parameters())
    with _own_cache_folder(), _old_parallel_path() if old else contextlib.nullcontext():
        step = tg.compile([x, y], [loss], updates=updates, backend="llvm")
        rng = np.random.default_rng(0)
        xb = rng.standard_normal((batch, sizes[0])).astype("float32")
        yb = rng.integers(0, sizes[-1], batch)
        step(xb, yb)                     # builds
    return lambda: step(xb, yb)


def _pool_tail_step(threads: int, old: bool):
    """The middle of the PyTorch MNIST Net, forward and backward, without its convolutions:
    relu, max-pool 2, dropout on a 64x64x24x24 activation (pooling, dropout, fused loops)."""
    tg.set_num_threads(threads)
    rng = np.random.default_rng(1)
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (64, 64, 24, 24))
        h = tg.dropout(tg.max_pool2d(tg.relu(x), 2), p=0.25, seed=3)
        loss = tg.sum(h * h)
        (dx,) = tg.grad(loss, [x])
    with _own_cache_folder(), _old_parallel_path() if old else contextlib.nullcontext():
        step = tg.compile([x], [loss, dx], backend="llvm")
        xv = rng.standard_normal((64, 64, 24, 24)).astype("float32")
        step(xv)
    return lambda: step(xv)


def _variants(build):
    return {"1 thread": build(1, False), "2 threads spawn/join (old)": build(2, True),
            "2 threads pool": build(2, False)}


def measure_mlp(name, sizes, batch, rounds, seconds):
    measure(f"{name}, Adam", _variants(lambda t, old: _mlp_step(sizes, batch, t, old)), rounds, seconds)


def measure(name, variants, rounds, seconds):
    for run in variants.values():        # warm: pool workers exist, caches filled
        for _ in range(20):
            run()
    samples = {label: [] for label in variants}
    for _ in range(rounds):
        for label, run in variants.items():
            n, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - wall0 < seconds:
                for _ in range(10):
                    run()
                n += 10
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            samples[label].append((n / wall, cpu / wall))
    print(f"\n## {name}, llvm ({rounds} interleaved rounds of {seconds}s)")
    print("| build | steps/s (median) | min-max | CPU use (cores) | CPU ms/step |")
    print("|---|---|---|---|---|")
    for label, rows in samples.items():
        rates = [r[0] for r in rows]
        cpu_per_step = statistics.median(r[1] / r[0] * 1e3 for r in rows)
        print(f"| {label} | {statistics.median(rates):.0f} | {min(rates):.0f}-{max(rates):.0f} | "
              f"{statistics.median(r[1] for r in rows):.2f} | {cpu_per_step:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="short rounds (a smoke run)")
    args = parser.parse_args()
    seconds = 0.2 if args.quick else 1.0
    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}; "
          f"host CPU: {jit.target_machine() and jit._state.get('cpu')}")
    measure_dispatch(args.rounds, 2000 if args.quick else 20000)
    measure_mlp("MLP 64-64-10 batch 32", (64, 64, 10), 32, args.rounds, seconds)
    measure_mlp("MLP 784-256-256-10 batch 128", (784, 256, 256, 10), 128, args.rounds, seconds)
    measure("MNIST Net middle: relu, max-pool 2, dropout, 64x64x24x24, forward + backward",
            _variants(_pool_tail_step), args.rounds, seconds)
    print(f"\nload average after: {os.getloadavg()}; pool: {pool.stats()}")


if __name__ == "__main__":
    main()
