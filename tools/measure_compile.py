"""Where the cold build of a training step goes: specialisation, passes, lowering to LLVM IR,
printing it, LLVM's optimisation, code generation, loading, the thread pool's runtime, and the
warm (disk-cache) load.

    PYTHONPATH=src python tools/measure_compile.py [--model mlp|net|mlp-small|mlp-big|cnn]
                                                  [--repeats 3] [--threads N] [--dynamic]

``mlp`` and ``net`` are the steps of benchmarks/compiler.py's ``compile`` workload
(784-256-256-10 Adam at batch 128; PyTorch's MNIST ``Net`` at batch 64, from
``tensorforge.bench_models``); ``--dynamic`` declares their batch dimension ``None`` (a build
generic in the batch size, then a second batch size). Each repeat runs in a fresh process
(so the thread pool's runtime and every per-process cache start cold): it builds the step in
an empty TENSORFORGE_CACHE_DIR (cold), then in a second fresh process from the filled cache
(warm). Printed: medians of wall and CPU time (``time.process_time``: less sensitive to
other processes on a shared machine), the kernel count, and the cold build's CPU time per
phase (exclusive: a phase inside another is not counted twice).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PHASES = ("specialise", "passes", "lower", "print IR", "generalise", "parse", "optimise", "codegen", "load",
          "pool runtime", "cache read/write")


def _legacy_model(name: str):
    """(inputs, outputs, updates, feeds) of the small models, built in a fresh graph."""
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
    return tg.compile([x, y], [loss], updates=updates, backend="llvm"), feeds


def _step(name: str, dynamic: bool):
    """(compiled step, list of argument tuples: the first builds, a second batch size after it)."""
    if name not in ("mlp", "net"):
        step, feeds = _legacy_model(name)
        return step, [tuple(feeds)]
    from tensorforge.bench_models import MNIST_NET, input_shape, random_batch, tensorforge_training_step
    spec = MNIST_NET if name == "net" else (784, 256, 256, 10)
    batch = 64 if name == "net" else 128
    x, y = random_batch(input_shape(spec, batch))
    step = tensorforge_training_step(spec, x, y, "llvm", name=f"{name}_step", dynamic_batch=dynamic)
    calls = [(x, y)]
    if dynamic:
        calls.append((x[: batch - 3], y[: batch - 3]))
    return step, calls


class _Phases:
    """Exclusive CPU seconds per phase: a wrapped function's time, less that of the wrapped
    functions it calls."""

    def __init__(self):
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._stack: list[list[float]] = []

    def wrap(self, owner, attr: str, phase: str) -> None:
        original = getattr(owner, attr)
        phases = self

        def timed(*args, **kwargs):
            phases._stack.append([time.process_time(), 0.0])
            try:
                return original(*args, **kwargs)
            finally:
                start, inner = phases._stack.pop()
                spent = time.process_time() - start
                phases.seconds[phase] += spent - inner
                if phases._stack:
                    phases._stack[-1][1] += spent
        setattr(owner, attr, timed)


def _instrument() -> _Phases:
    import llvmlite.binding as llvm
    import llvmlite.ir as llir
    import tensorforge.passes as passes
    from tensorforge import _fileio
    from tensorforge.backends.llvm import backend, generalise, jit, pool, symbolic_step
    from tensorforge.compile import CompiledFunction
    phases = _Phases()
    phases.wrap(CompiledFunction, "_program_for", "specialise")
    phases.wrap(passes, "run_passes", "passes")
    phases.wrap(backend._Lowering, "lower", "lower")
    phases.wrap(llir.Module, "__repr__", "print IR")
    phases.wrap(jit, "_parse", "parse")
    phases.wrap(jit, "optimise", "optimise")
    phases.wrap(llvm.TargetMachine, "emit_object", "codegen")
    phases.wrap(jit, "_load_object", "load")
    phases.wrap(pool, "ensure_loaded", "pool runtime")
    for name in ("read_signed_group", "write_signed_group"):
        phases.wrap(_fileio, name, "cache read/write")
    for module in (jit, backend.step_cache if hasattr(backend, "step_cache") else None):
        if module is not None:
            for name in ("read_signed_group", "write_signed_group"):
                if hasattr(module, name):
                    phases.wrap(module, name, "cache read/write")
    phases.wrap(generalise, "generalise_ir", "generalise")
    if hasattr(symbolic_step, "generalise_ir"):
        phases.wrap(symbolic_step, "generalise_ir", "generalise")
    return phases


def child(model: str, dynamic: bool, phase: str) -> None:
    """One build in this fresh process; prints one JSON line."""
    phases = _instrument() if phase == "cold" else None
    step, calls = _step(model, dynamic)
    wall, cpu = time.perf_counter(), time.process_time()
    step(*calls[0])
    first_wall, first_cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = {"wall": first_wall, "cpu": first_cpu, "builds": len(step.compile_times),
           "compile_times": max(step.compile_times.values()),
           "kernels": len(next(iter(step._cache.values())).manifest["kernels"])}
    if len(calls) > 1:
        wall, cpu = time.perf_counter(), time.process_time()
        step(*calls[1])
        out.update(second_wall=time.perf_counter() - wall, second_cpu=time.process_time() - cpu,
                   builds_after_second=len(step.compile_times))
    if phases is not None:
        out["phases"] = phases.seconds
    print("RESULT " + json.dumps(out))


def _run_child(model, dynamic, phase, cache, threads) -> dict:
    env = {**os.environ, "TENSORFORGE_CACHE_DIR": cache,
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                          os.environ.get("PYTHONPATH", "")])}
    if threads:
        env["TENSORFORGE_NUM_THREADS"] = str(threads)
    cmd = [sys.executable, __file__, "--child", phase, "--model", model] + (["--dynamic"] if dynamic else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mlp", choices=["mlp", "net", "mlp-small", "mlp-big", "cnn"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="TENSORFORGE_NUM_THREADS of the builds")
    parser.add_argument("--dynamic", action="store_true", help="a None batch dimension (mlp and net)")
    parser.add_argument("--child", choices=["cold", "warm"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.model, args.dynamic, args.child)
        return 0
    cold, warm = [], []
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as folder:
            cold.append(_run_child(args.model, args.dynamic, "cold", folder, args.threads))
            warm.append(_run_child(args.model, args.dynamic, "warm", folder, args.threads))
    load.append(os.getloadavg()[0])
    med = lambda runs, key: statistics.median(r[key] for r in runs)   # noqa: E731
    print(f"model {args.model}{' (None batch)' if args.dynamic else ''}, threads "
          f"{args.threads or 'default'}: {cold[0]['kernels']} kernels, {cold[0]['builds']} build(s); medians of "
          f"{args.repeats} fresh processes (1-min load average {load[0]:.2f} before, {load[1]:.2f} after)")
    for what, runs in (("cold", cold), ("warm", warm)):
        print(f"  {what:5s} first call  wall {med(runs, 'wall') * 1e3:8.1f} ms   cpu {med(runs, 'cpu') * 1e3:8.1f} ms"
              f"   compile_times {med(runs, 'compile_times') * 1e3:8.1f} ms")
        if "second_wall" in runs[0]:
            print(f"  {what:5s} second size wall {med(runs, 'second_wall') * 1e3:8.1f} ms   cpu "
                  f"{med(runs, 'second_cpu') * 1e3:8.1f} ms   builds {runs[0]['builds_after_second']}")
    print("  cold build, CPU per phase (exclusive):")
    for phase in PHASES:
        value = statistics.median(r["phases"][phase] for r in cold)
        if value:
            print(f"    {phase:18s} {value * 1e3:8.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
