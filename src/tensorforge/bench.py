"""Benchmark workloads by name, for ``tensorforge bench``: one training step on every backend.

Every system starts from the same initial parameters and trains repeatedly on the same fixed
batch, so the first-step losses must agree across systems. The models, their initial values and
the optimizer settings live in tensorforge.bench_models (re-exported here); benchmarks/compiler.py
imports them too, so the two agree.

    mlp        MLP 784-256-256-10, batch 128, softmax cross-entropy, Adam
    mlp-big    MLP 784-1024-1024-10, batch 256, Adam
    small-mlp  MLP 64-64-10, batch 32, Adam (overhead-bound)
    cnn        64x1x8x8: conv3x3 8 channels pad 1, ReLU, maxpool 2, dense 10, SGD momentum 0.9
    net        PyTorch's MNIST example ``Net`` (conv 1->32, conv 32->64, maxpool 2, dense
               9216->128->10, dropout off), batch 64 of 1x28x28, SGD momentum 0.9

Systems: tensorforge's backends ("interp", "llvm", "triton" when a GPU is visible) and, as
peers when they are installed, "torch" (eager) and "jax" (jax.jit of the whole step).

:func:`run_fair` (what ``tensorforge bench`` runs) measures each system in its own worker
process with pinned threads, in interleaved rounds, and reports the median and spread
(tensorforge.bench_fair); :func:`run_benchmark` measures in this process, one system after
the other.
"""
from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from .bench_fair import (WorkerError, load_average, load_warning, rotated, spread,  # noqa: F401
                         start_bench_workers)
from .bench_models import (ADAM, MNIST_NET, SGD, NetSpec, cnn_init, input_shape,  # noqa: F401
                           jax_compiled_step, jax_model, mlp_init, net_init, random_batch,
                           tensorforge_training_step, torch_model)

__all__ = ["WORKLOADS", "Result", "FairRun", "available_systems", "run_benchmark", "run_fair", "measure",
           "format_table", "format_spread"]

# name -> (description, model spec (layer sizes, None for the small CNN, a NetSpec), batch size)
WORKLOADS = {
    "mlp": ("MLP 784-256-256-10, batch 128, Adam", (784, 256, 256, 10), 128),
    "mlp-big": ("MLP 784-1024-1024-10, batch 256, Adam", (784, 1024, 1024, 10), 256),
    "small-mlp": ("MLP 64-64-10, batch 32, Adam", (64, 64, 10), 32),
    "cnn": ("CNN 64x1x8x8 conv3x3(8)-relu-maxpool2-dense10, SGD momentum", None, 64),
    "net": ("MNIST Net 64x1x28x28 conv3x3(32)-conv3x3(64)-maxpool2-dense(9216,128)-dense10, SGD momentum",
            MNIST_NET, 64),
}


@dataclass
class Result:
    """One system's measurement of one workload."""
    system: str
    steps_per_s: float
    compile_s: float | None
    first_loss: float
    steps: int
    speedup: float | None = None       # against the interpreter, filled in by run_benchmark
    rounds: list[float] = field(default_factory=list)   # steps/s of each round (run_fair)
    cpu_use: float | None = None       # CPU seconds per wall second while measuring (run_fair)
    threads: dict | None = None        # the worker's thread_report() (run_fair)


def fixed_batch(workload: str, seed: int = 1):
    """The (x, y) batch a workload trains on, repeatedly."""
    _, spec, n = WORKLOADS[workload]
    return random_batch(input_shape(spec, n), seed)


# ---- the runners: (step, first-step loss, compile seconds or None) -----------------------

def tensorforge_step(workload: str, backend: str):
    """(the compiled training step, x, y) of ``workload`` on a tensorforge backend."""
    x, y = fixed_batch(workload)
    fn = tensorforge_training_step(WORKLOADS[workload][1], x, y, backend, name=f"{workload}_step")
    return fn, x, y


def _tensorforge_runner(workload: str, backend: str):
    fn, x, y = tensorforge_step(workload, backend)
    t0 = time.perf_counter()
    first = float(fn(x, y))            # the first call specialises and compiles
    compile_s = max(fn.compile_times.values()) if fn.compile_times else time.perf_counter() - t0
    return (lambda: fn(x, y)), first, compile_s


def _torch_runner(workload: str):
    import torch
    x, y = fixed_batch(workload)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    forward, opt = torch_model(WORKLOADS[workload][1])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(forward(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()
    first = step()
    return step, first, None           # eager: nothing is compiled


def _jax_runner(workload: str):
    x, y = fixed_batch(workload)
    run, compile_s = jax_compiled_step(*jax_model(WORKLOADS[workload][1]), x, y)
    first = run()
    return run, first, compile_s


# ---- which systems, and measuring them ---------------------------------------------------

def gpu_visible() -> bool:
    """True when Triton has a GPU to run on (CUDA_VISIBLE_DEVICES may hide it)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    try:
        from .backends.triton.backend import device
        device()
        return True
    except Exception:              # no triton, no driver, no GPU: all mean "not available"
        return False


def available_systems(peers: bool = True) -> list[str]:
    """interp and llvm (when it loads), triton when a GPU is visible, torch/jax when installed."""
    from .backends import get_backend
    systems = ["interp"]
    try:
        get_backend("llvm")
        systems.append("llvm")
    except Exception:              # llvmlite missing or the backend not built: skip it
        pass
    if gpu_visible():
        systems.append("triton")
    if peers:
        systems += [name for name in ("torch", "jax") if importlib.util.find_spec(name) is not None]
    return systems


def measure(step: Callable[[], object], seconds: float) -> tuple[float, int]:
    """(steps per second, steps run) of ``step`` timed for about ``seconds`` after one warm-up call."""
    step()
    steps, t0 = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return steps / elapsed, steps


def _runner(system: str, workload: str):
    if system == "torch":
        return _torch_runner(workload)
    if system == "jax":
        return _jax_runner(workload)
    return _tensorforge_runner(workload, system)


def run_benchmark(workload: str, systems: list[str], seconds: float = 1.0,
                  on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Measure ``workload`` on each system; speed-ups are against "interp" when it was measured."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
    results = []
    for system in systems:
        step, first, compile_s = _runner(system, workload)
        steps_per_s, steps = measure(step, seconds)
        results.append(Result(system, steps_per_s, compile_s, float(first), steps))
        if on_result is not None:
            on_result(results[-1])
    base = next((r.steps_per_s for r in results if r.system == "interp"), None)
    for r in results:
        r.speedup = r.steps_per_s / base if base else None
    return results


@dataclass
class FairRun:
    """What :func:`run_fair` measured: the results, the systems that failed and why, the load."""
    workload: str
    threads: int
    rounds: int
    results: list[Result]
    failed: dict[str, str]
    load_before: float | None
    load_after: float | None

    def warnings(self) -> list[str]:
        """One load warning when the higher of the loads before and after exceeded the thread count."""
        loads = [x for x in (self.load_before, self.load_after) if x is not None]
        warning = load_warning(max(loads), self.threads) if loads else None
        return [warning] if warning else []


def run_fair(workload: str, systems: list[str], seconds: float = 1.0, threads: int = 1, rounds: int = 3,
             timeout: float = 600.0, pause_s: float = 0.2,
             on_progress: Callable[[str], None] | None = None) -> FairRun:
    """Measure ``workload`` on each system fairly: one worker process per system with its threads
    pinned before import, ``rounds`` interleaved repeats of ``seconds`` each, median and spread.

    Speed-ups are against "interp" when it was measured. ``pause_s`` between measurements lets
    the previous system's spinning thread pools go idle before the next one runs."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
    say = on_progress or (lambda _msg: None)
    load_before = load_average()
    started = start_bench_workers(workload, systems, threads, timeout)
    failed = {s: v for s, v in started.items() if isinstance(v, str)}
    live = [s for s in systems if s not in failed]
    per_round: dict[str, list[dict]] = {s: [] for s in live}
    try:
        for r in range(rounds):
            for system in rotated(live, r):
                if system in failed:
                    continue
                time.sleep(pause_s)
                try:
                    answer = started[system][0].request(f"measure {seconds}", timeout)
                except WorkerError as e:
                    failed[system] = str(e)
                    continue
                if not answer or "error" in answer[0]:
                    failed[system] = answer[0]["error"] if answer else "no answer"
                    continue
                per_round[system].append(answer[0])
                say(f"round {r + 1}/{rounds}: {system} {answer[0]['steps_per_s']:,.1f} steps/s")
    finally:
        for s in live:
            started[s][0].close()
    results = []
    for system in live:
        if system in failed or not per_round[system]:
            continue
        ready, runs = started[system][1], per_round[system]
        med, _, _ = spread(a["steps_per_s"] for a in runs)
        results.append(Result(system, med, ready.get("compile_s"), float(ready["first_loss"]),
                              sum(a["steps"] for a in runs), rounds=[a["steps_per_s"] for a in runs],
                              cpu_use=spread(a["cpu_use"] for a in runs)[0], threads=ready.get("threads")))
    base = next((r.steps_per_s for r in results if r.system == "interp"), None)
    for r in results:
        r.speedup = r.steps_per_s / base if base else None
    return FairRun(workload, threads, rounds, results, failed, load_before, load_average())


def format_spread(run: FairRun) -> str:
    """The repeats behind each median: rounds, min-max steps/s, spread, CPU use, threads seen."""
    lines = [f"{'system':<10}  {'rounds':>6}  {'min - max steps/s':>24}  {'spread':>7}  {'cpu use':>7}  threads seen"]
    for r in run.results:
        med, lo, hi = spread(r.rounds)
        seen = _threads_seen(r.threads)
        lines.append(f"{r.system:<10}  {len(r.rounds):>6}  {f'{lo:,.1f} - {hi:,.1f}':>24}  "
                     f"{(hi - lo) / med:>7.1%}  {r.cpu_use or 0:>7.2f}  {seen}")
    return "\n".join(lines)


def _threads_seen(report: dict | None) -> str:
    """A short text of the thread counts a worker reported (native pools, torch, tensorforge)."""
    if not report:
        return "-"
    parts = [f"{p['api']} {p['num_threads']}" for p in report.get("threadpools") or []]
    for key in ("torch", "tensorforge"):
        if key in report:
            parts.append(f"{key} {report[key]}")
    return ", ".join(dict.fromkeys(parts)) or "-"


def profile_workload(workload: str, backend: str, steps: int = 50):
    """Per-kernel timings (a ``tensorforge.profiler.Profile``) of ``workload``'s training step on
    a tensorforge backend (interp, llvm, triton)."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
    x, y = fixed_batch(workload)
    step = tensorforge_training_step(WORKLOADS[workload][1], x, y, backend, name=f"{workload} step")
    step(x, y)                                    # compile outside the profile
    return step.profile(x, y, steps=steps)


def format_table(results: list[Result]) -> str:
    """Plain aligned text: system, steps/s, speed-up vs interp, compile time, first-step loss."""
    header = ["system", "steps/s", "vs interp", "compile s", "first loss"]
    rows = [[r.system, f"{r.steps_per_s:,.1f}", "-" if r.speedup is None else f"{r.speedup:.2f}x",
             "-" if r.compile_s is None else f"{r.compile_s:.3f}", f"{r.first_loss:.5f}"] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def plot_bars(results: list[Result], workload: str, path: str) -> None:
    """A bar chart of steps/s per system (log scale), written atomically to ``path`` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [r.system for r in results]
    values = [r.steps_per_s for r in results]
    bars = ax.bar(names, values, color="#4c72b0")
    for bar, r in zip(bars, results):
        label = f"{r.steps_per_s:,.0f}" + (f"\n{r.speedup:.1f}x" if r.speedup else "")
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("training steps / s (log)")
    ax.set_title(f"{workload}: {WORKLOADS[workload][0]}", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _save_figure(fig, path: str) -> None:
    """Written atomically: no half-written picture (an error names ``path``, not a temp file)."""
    from ._fileio import atomic_write
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    except OSError as e:
        raise OSError(f"cannot write {path}: {e.strerror or e}") from None
