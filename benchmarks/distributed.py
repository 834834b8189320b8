"""Benchmark of data-parallel training on MPI (tg.distributed), backend llvm, 1 thread per rank.

Measures, and prints as the Markdown tables of docs/distributed.md:

1. steps/s of the data-parallel training step with 1 and 2 ranks at a fixed per-rank batch
   (weak scaling), for
     - the MLP 784-256-256-10, batch 128 per rank, Adam (the MLP of benchmarks/compiler.py);
     - ``Net``, the network of PyTorch's MNIST example: conv3x3(32)-relu-conv3x3(64)-relu-
       maxpool2-dropout(0.25)-dense(9216,128)-relu-dropout(0.5)-dense(10) on 1x28x28, Adam,
       batch 32 per rank (1.2 M parameters);
   with examples/s, scaling efficiency (examples/s on N ranks / (N x examples/s on 1 rank)),
   and the share of the step spent in the allreduce;
2. the cost of the split step on one process: the ordinary one-call step against the
   data-parallel step (two native calls, allreduce skipped), same model;
3. allreduce time against gradient size (float32, 2 ranks, in place), with the bus
   bandwidth 2(N-1)/N x bytes / time.

Every configuration runs under ``mpiexec -n N`` in its own processes, with
TENSORFORGE_NUM_THREADS=1 (and the BLAS thread variables) set before anything loads.

    python benchmarks/distributed.py [--seconds 3] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

WORKLOADS = {
    "mlp": "MLP 784-256-256-10, Adam, batch 128/rank",
    "net": "MNIST Net (1.2 M params), Adam, batch 32/rank",
}
BATCH = {"mlp": 128, "net": 32}


# ---- the models --------------------------------------------------------------------------

def build_step(workload: str, data_parallel: bool, batch: int):
    """(compiled step, x, y) for one rank; same initial values on every rank."""
    import tensorforge as tg
    rng = np.random.default_rng(1)
    with tg.Graph():
        if workload == "mlp":
            x = tg.placeholder("x", (None, 784))
            h, params = x, []
            for i, (a, b) in enumerate(zip((784, 256, 256), (256, 256, 10))):
                W = tg.parameter(f"W{i}", tg.init.he_normal((a, b), seed=i))
                c = tg.parameter(f"b{i}", np.zeros(b, np.float32))
                params += [W, c]
                h = h @ W + c
                if i < 2:
                    h = tg.relu(h)
            xs = rng.standard_normal((batch, 784)).astype(np.float32)
        else:
            x = tg.placeholder("x", (None, 1, 28, 28))
            k1 = tg.parameter("conv1/w", tg.init.he_normal((32, 1, 3, 3), seed=1))
            c1 = tg.parameter("conv1/b", np.zeros(32, np.float32))
            k2 = tg.parameter("conv2/w", tg.init.he_normal((64, 32, 3, 3), seed=2))
            c2 = tg.parameter("conv2/b", np.zeros(64, np.float32))
            W3 = tg.parameter("fc1/w", tg.init.he_normal((9216, 128), seed=3))
            b3 = tg.parameter("fc1/b", np.zeros(128, np.float32))
            W4 = tg.parameter("fc2/w", tg.init.he_normal((128, 10), seed=4))
            b4 = tg.parameter("fc2/b", np.zeros(10, np.float32))
            params = [k1, c1, k2, c2, W3, b3, W4, b4]
            h = tg.relu(tg.conv2d(x, k1, c1))
            h = tg.max_pool2d(tg.relu(tg.conv2d(h, k2, c2)), 2)
            h = tg.reshape(tg.dropout(h, 0.25, seed=5), (-1, 9216))
            h = tg.dropout(tg.relu(h @ W3 + b3), 0.5, seed=6)
            h = h @ W4 + b4
            xs = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
        y = tg.placeholder("y", (None,), dtype="int64")
        loss = tg.mean(tg.softmax_cross_entropy(h, y))
        updates = tg.optim.Adam(lr=1e-3).updates(loss, params, data_parallel=data_parallel)
        step = tg.compile([x, y], [loss], updates=updates, backend="llvm")
    return step, xs, rng.integers(0, 10, batch)


def timed(step, x, y, seconds: float, warmup: int = 2):
    """(steps/s, steps): whole steps in a time box, after warm-up (compilation included there).
    Rank 0 sizes the box from a few probe steps and every rank runs that many steps, so no
    extra collective sits inside the timed loop."""
    from tensorforge import distributed as dist
    for _ in range(warmup):
        step(x, y)
    t0 = time.perf_counter()
    for _ in range(3):
        step(x, y)
    probe = (time.perf_counter() - t0) / 3
    steps = int(dist.broadcast(np.array([max(3, int(seconds / max(probe, 1e-6)))], dtype=np.int64))[0])
    dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        step(x, y)
    elapsed = time.perf_counter() - start
    elapsed = float(dist.allreduce(np.array([elapsed]), "max")[0])     # the slowest rank sets the pace
    return steps / elapsed, steps


def alternating(a, b, x, y, seconds: float, rounds: int = 6):
    """Median steps/s of two steps timed in alternating rounds (one process), so that a
    busy machine slows both alike."""
    for f in (a, b):
        f(x, y)
    t0 = time.perf_counter()
    a(x, y)
    n = max(2, int(seconds / rounds / 2 / max(time.perf_counter() - t0, 1e-6)))
    times = {id(a): [], id(b): []}
    for _ in range(rounds):
        for f in (a, b):
            start = time.perf_counter()
            for _ in range(n):
                f(x, y)
            times[id(f)].append((time.perf_counter() - start) / n)
    return 1 / float(np.median(times[id(a)])), 1 / float(np.median(times[id(b)]))


# ---- workers (run under mpiexec) ----------------------------------------------------------

def worker_step(workload: str, seconds: float) -> None:
    from tensorforge import distributed as dist
    dist.init()
    out = {"workload": workload, "ranks": dist.size(), "batch": BATCH[workload]}
    step, x, y = build_step(workload, True, BATCH[workload])
    step(x, y)
    step.allreduce_seconds = 0.0
    rate, steps = timed(step, x, y, seconds)
    out.update(steps_per_s=rate, steps=steps, allreduce_share=step.allreduce_seconds * rate / max(steps, 1),
               grad_elements=int(step.dp_updates.grad_input.shape[0]))
    if dist.size() == 1:      # the split's cost: the ordinary one-call step on the same model
        fused, x, y = build_step(workload, False, BATCH[workload])
        out["fused_steps_per_s"], out["split_steps_per_s"] = alternating(fused, step, x, y, seconds)
    if dist.is_main():
        print("RESULT " + json.dumps(out), flush=True)


def worker_allreduce(sizes, reps: int) -> None:
    from tensorforge import distributed as dist
    dist.init()
    for n in sizes:
        buf = np.ones(n, np.float32)
        for _ in range(3):
            dist.allreduce_inplace(buf)
        times = []
        for _ in range(reps):
            dist.barrier()
            t0 = time.perf_counter()
            dist.allreduce_inplace(buf)
            times.append(time.perf_counter() - t0)
        t = float(np.median(dist.allreduce(np.array(times), "max")))
        if dist.is_main():
            print("RESULT " + json.dumps({"elements": n, "seconds": t}), flush=True)


# ---- driver ------------------------------------------------------------------------------

def _mpiexec() -> str:
    found = Path(sys.executable).parent / "mpiexec"
    path = str(found) if found.exists() else shutil.which("mpiexec")
    if path is None:
        sys.exit('mpiexec not found: pip install "tensorforge[distributed]"')
    return path


def launch(ranks: int, args: list[str], timeout: float = 1200) -> list[dict]:
    env = dict(os.environ, TENSORFORGE_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, __file__, "--worker"] + args
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]


def median_rows(runs: list[list[dict]]) -> list[dict]:
    """Per configuration, the median of every rate over the repeated runs."""
    out = []
    for i, row in enumerate(runs[0]):
        med = dict(row)
        for key in ("steps_per_s", "fused_steps_per_s", "split_steps_per_s", "allreduce_share"):
            if key in row:
                med[key] = float(np.median([run[i][key] for run in runs]))
        med["runs"] = len(runs)
        out.append(med)
    return out


def step_table(rows: list[dict]) -> str:
    lines = ["| workload | ranks | batch/rank | steps/s | examples/s | scaling efficiency | allreduce share |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    base = {r["workload"]: r for r in rows if r["ranks"] == 1}
    for r in rows:
        ex = r["steps_per_s"] * r["batch"] * r["ranks"]
        b = base[r["workload"]]
        eff = ex / (r["ranks"] * b["steps_per_s"] * b["batch"])
        lines.append(f"| {WORKLOADS[r['workload']]} | {r['ranks']} | {r['batch']} | {r['steps_per_s']:.2f} | "
                     f"{ex:.0f} | {eff:.0%} | {r['allreduce_share']:.1%} |")
    return "\n".join(lines)


def split_table(rows: list[dict]) -> str:
    lines = ["| workload | one-call step (steps/s) | split step, 1 rank (steps/s) | split cost per step |",
             "|---|---:|---:|---:|"]
    for r in rows:
        if r["ranks"] == 1:
            cost = 1 / r["split_steps_per_s"] - 1 / r["fused_steps_per_s"]
            lines.append(f"| {WORKLOADS[r['workload']]} | {r['fused_steps_per_s']:.2f} | "
                         f"{r['split_steps_per_s']:.2f} | {cost * 1e6:+.0f} us |")
    return "\n".join(lines)


def allreduce_table(rows: list[dict], ranks: int = 2) -> str:
    lines = ["| elements (float32) | bytes | time | bus bandwidth 2(N-1)/N x bytes / time |", "|---:|---:|---:|---:|"]
    for r in rows:
        nbytes = 4 * r["elements"]
        bw = 2 * (ranks - 1) / ranks * nbytes / r["seconds"]
        lines.append(f"| {r['elements']:,} | {nbytes / 1e6:.3g} MB | {r['seconds'] * 1e6:.0f} us | {bw / 1e9:.2f} GB/s |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time box per measurement")
    parser.add_argument("--quick", action="store_true", help="the MLP only, short boxes (a smoke run)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of every configuration; the tables show the medians (a shared machine is noisy)")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "step":
            worker_step(rest[0], float(rest[1]))
        else:
            worker_allreduce([int(n) for n in rest[1:]], int(rest[0]))
        return
    seconds = 0.3 if args.quick else args.seconds
    workloads = ["mlp"] if args.quick else list(WORKLOADS)
    print(f"# load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} CPUs")
    runs = [[r for w in workloads for n in (1, 2) for r in launch(n, ["step", w, str(seconds)])]
            for _ in range(1 if args.quick else args.repeat)]
    rows = median_rows(runs)
    sizes = [2 ** k for k in ((10, 16) if args.quick else range(10, 25, 2))]
    ar = launch(2, ["allreduce", "5" if args.quick else "30"] + [str(s) for s in sizes])
    print(f"# load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("\n## steps/s, 1 and 2 ranks (1 thread each)\n\n" + step_table(rows))
    print("\n## the split step on one process\n\n" + split_table(rows))
    print("\n## allreduce against gradient size (2 ranks)\n\n" + allreduce_table(ar))
    print("\nRAW " + json.dumps({"steps": rows, "allreduce": ar}))


if __name__ == "__main__":
    main()
