"""The parent: start the workers with pinned threads, measure in interleaved rounds, aggregate.

For each thread count, one worker process per system is started with the thread variables of
tensorforge.bench_fair.thread_env in its environment (so they hold before NumPy, PyTorch, JAX,
PyTensor or tinygrad load). Then, round after round, every workload is measured once on every
system, the systems in a rotated order each round, with a short pause between measurements so
the previous system's spinning thread pools go quiet. Each row of the report is the median of
its rounds, with the min and max. Compile times are measured in fresh one-shot processes, a
cold and a warm disk cache per round.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tensorforge.bench_fair import RESULT_PREFIX, Worker, WorkerError, load_average, rotated, thread_env

from .workloads import STEP_WORKLOADS, SYSTEMS

SCRIPT = Path(__file__).resolve().parent.parent / "compiler.py"
ROOT = SCRIPT.parent.parent
# measurement order inside a round; "compile" is the one-shot compile-time processes
ALL_WORKLOADS = ("copy", "chain", *STEP_WORKLOADS, "mlp_dyn", "matmul", "compile")
COMPILED_STEPS = ("mlp", "net")               # the steps whose cold/warm compile times are measured
PAUSE_S = 0.2


def runs_on(system: str, workload: str) -> bool:
    """Which system measures which workload (the copy is NumPy's, the dynamic batch llvm's)."""
    if workload == "copy":
        return system == "numpy"
    if workload == "matmul":
        return system in ("numpy", "llvm")
    if workload in ("mlp_dyn", "compile"):
        return system == "llvm"
    return True


def worker_env(threads: int, cache_dir: str, tmp: str) -> dict:
    """The pinned thread environment plus each system's private caches under ``tmp``."""
    env = thread_env(threads)
    env["TENSORFORGE_CACHE_DIR"] = cache_dir
    flags = [f for f in env.get("PYTENSOR_FLAGS", "").split(",") if f and not f.startswith("base_compiledir")]
    env["PYTENSOR_FLAGS"] = ",".join(flags + [f"base_compiledir={Path(tmp) / 'pytensor'}"])
    env.setdefault("DEV", "CPU")                  # tinygrad's CPU device (clang-compiled kernels)
    return env


def worker_cmd(system: str, threads: int, quick: bool) -> list[str]:
    cmd = [sys.executable, str(SCRIPT), "--worker", system, "--threads", str(threads)]
    return cmd + (["--quick"] if quick else [])


def say(msg: str) -> None:
    print(f"[compiler.py] {msg}", file=sys.stderr, flush=True)


def note_record(system, threads, workload, note):
    return {"system": system, "threads": threads, "workload": workload, "seconds": None, "note": note}


def start_workers(systems, threads, quick, env, timeout):
    """{system: Worker} of the systems that started, and the records they (or their failure) left."""
    workers, records = {}, []
    for system in systems:
        w = Worker(worker_cmd(system, threads, quick), env, cwd=str(ROOT), name=f"{threads}t {system}")
        try:
            hello = w.reply(timeout)
        except WorkerError as e:
            records.append(note_record(system, threads, "worker", f"failed: {e}"))
            continue
        records += hello
        if any(r.get("workload") == "worker" and r.get("note") for r in hello):
            w.close()
            continue
        workers[system] = w
    return workers, records


def measure_rounds(workers, threads, workloads, rounds, timeout, pause_s=PAUSE_S):
    """Every (workload, system) once per round, systems rotated each round; a pair that fails
    is not asked again (its note stands for it)."""
    records, failed = [], set()
    for r in range(rounds):
        for workload in workloads:
            for system in rotated([s for s in workers if runs_on(s, workload)], r):
                if (system, workload) in failed or system in failed:
                    continue
                time.sleep(pause_s)
                try:
                    got = workers[system].request(f"measure {workload} {r}", timeout)
                except WorkerError as e:
                    records.append(note_record(system, threads, workload, f"failed: {e}"))
                    failed.add(system)
                    continue
                records += got
                if any(g.get("note") for g in got):
                    failed.add((system, workload))
    return records


def compile_times(threads, quick, rounds, tmp, timeout, steps=COMPILED_STEPS):
    """Cold then warm disk cache, in fresh processes, ``rounds`` times per step (a new cache each round)."""
    records = []
    for r in range(rounds):
        for step in steps:
            cache = Path(tmp) / f"compile-{threads}t-{step}-{r}"          # empty: the cold run fills it
            for phase in ("cold", "warm"):
                cmd = worker_cmd(f"compile-{phase}", threads, quick) + ["--compile-step", step]
                try:
                    proc = subprocess.run(cmd, env=worker_env(threads, str(cache), tmp), stdout=subprocess.PIPE,
                                          text=True, timeout=timeout, cwd=str(ROOT))
                    got = [json.loads(line[len(RESULT_PREFIX):]) for line in proc.stdout.splitlines()
                           if line.startswith(RESULT_PREFIX)]
                    if proc.returncode or not got:
                        got = [note_record("llvm", threads, f"compile_{phase}_{step}",
                                           f"failed: worker exited with {proc.returncode}")]
                except subprocess.TimeoutExpired:
                    got = [note_record("llvm", threads, f"compile_{phase}_{step}",
                                       f"failed: timed out after {timeout:.0f} s")]
                records += [{**g, "round": r} for g in got]
    return records


def run_all(args) -> tuple[list[dict], dict]:
    """Every configuration; returns (raw records, {"load_before", "load_after"})."""
    systems = [s for s in SYSTEMS if s in args.systems]
    workloads = [w for w in ALL_WORKLOADS if w in args.workloads]
    loads = {"load_before": load_average()}
    records: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tf-bench-") as tmp:
        for threads in args.threads:
            chosen = []
            for system in systems:
                if system == "torch.compile" and args.quick:
                    records.append(note_record(system, threads, "worker", "skipped in --quick (compiles take ~15 s)"))
                else:
                    chosen.append(system)
            env = worker_env(threads, str(Path(tmp) / "throughput"), tmp)
            workers, hello = start_workers(chosen, threads, args.quick, env, args.timeout)
            records += hello
            try:
                records += measure_rounds(workers, threads, [w for w in workloads if w != "compile"], args.rounds,
                                          args.timeout)
            finally:
                for w in workers.values():
                    w.close()
            if "llvm" in systems and "compile" in workloads:
                records += compile_times(threads, args.quick, args.rounds, tmp, args.timeout)
            say(f"{threads} thread(s) done")
    loads["load_after"] = load_average()
    return records, loads


# ---- aggregation: one row per (workload, system, threads) ----------------------------------

def aggregate(records: list[dict]) -> list[dict]:
    """The rounds of each (workload, system, threads) folded into one record: median seconds
    with ``seconds_min``/``seconds_max``/``rounds``, median CPU use and throughput ratio, the
    first round's first loss and the last round's final loss; notes and one-off records as they are."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["workload"], r["system"], r["threads"]), []).append(r)
    out = []
    for rows in groups.values():
        timed = [r for r in rows if isinstance(r.get("seconds"), (int, float))]
        if not timed:
            out.append(next((r for r in rows if r.get("note")), rows[0]))
            continue
        timed.sort(key=lambda r: r.get("round", 0))
        merged = {**timed[-1], "first_loss": timed[0].get("first_loss"), "rounds": len(timed)}
        secs = [r["seconds"] for r in timed]
        merged.update(seconds=statistics.median(secs), seconds_min=min(secs), seconds_max=max(secs))
        for key in ("cpu_use", "throughput_ratio", "fixed_seconds", "first_call_s", "gflops", "loadavg"):
            vals = [r[key] for r in timed if isinstance(r.get(key), (int, float))]
            if vals:
                merged[key] = statistics.median(vals)
        if any("builds" in r for r in timed):
            merged["builds"] = max(r.get("builds", 0) for r in timed)
        out.append(merged)
    return out
