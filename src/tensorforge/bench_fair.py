"""Fair measurement across systems: pinned threads, interleaved repeats, median and spread.

A comparison of tensorforge with PyTorch, JAX or another library is only fair when every
system has the same number of threads and the same machine conditions. So:

- every system runs in its own worker process, started with the thread variables of
  :func:`thread_env` in its environment, so they hold before NumPy, PyTorch, JAX, OpenBLAS
  or tinygrad load (a library reads them once, at import); the worker then also calls the
  thread APIs (``tg.set_num_threads``, ``torch.set_num_threads``) and reports the thread
  counts it sees (:func:`thread_report`), so a pin that did not take is visible;
- the workers stay up and the parent measures them in rounds: each round asks every worker
  for one measurement, in a rotated order, so slow drifts of the machine's load hit every
  system alike; the result of a row is the median over the rounds, with its spread (min, max);
- the 1-minute load average is read before and after, and :func:`load_warning` says when it
  exceeded the thread count (other work shared the cores: the numbers are noisy).

The parent talks to a worker over its stdin/stdout: one command a line, answered by
``RESULT {json}`` lines and a ``DONE`` line (:func:`serve` is the worker side). Running this
module is the worker of ``tensorforge bench``:

    python -m tensorforge.bench_fair --worker llvm --workload mlp --threads 1
"""
from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable, Iterable

RESULT_PREFIX = "RESULT "
DONE = "DONE"
# Read at import by OpenMP runtimes, OpenBLAS, MKL, Apple Accelerate, numexpr, tensorforge and
# tinygrad's CPU device; XLA_FLAGS (JAX) is set separately because it is a flag string.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
               "NUMEXPR_NUM_THREADS", "TENSORFORGE_NUM_THREADS", "NUM_CPU_THREADS")
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def thread_env(threads: int, base: dict | None = None) -> dict:
    """A copy of ``base`` (default os.environ) with every known thread knob set to ``threads``.

    On one thread XLA's Eigen pool is switched off; on more, XLA sizes its pool from the
    cores, which is the thread count when the machine has that many cores."""
    env = dict(os.environ if base is None else base)
    for var in THREAD_VARS:
        env[var] = str(threads)
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith(("--xla_cpu_multi_thread_eigen", "intra_op_parallelism_threads"))]
    if threads == 1:
        flags.append(XLA_ONE_THREAD)
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    else:
        env.pop("XLA_FLAGS", None)
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none). Tests replace it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def load_warning(load: float | None, threads: int) -> str | None:
    """A warning when the 1-minute load average exceeded the thread count, else None."""
    if load is None or load <= threads:
        return None
    return (f"warning: the machine was busy (1-min load average {load:.2f} > {threads} "
            f"thread{'s' if threads != 1 else ''}): other work shared the cores, the numbers are noisy")


def spread(values: Iterable[float]) -> tuple[float, float, float]:
    """(median, min, max) of the repeats of one measurement."""
    vals = [float(v) for v in values]
    return statistics.median(vals), min(vals), max(vals)


def thread_report() -> dict:
    """The thread counts this process's libraries use now: threadpoolctl's view of the native
    pools (OpenBLAS, OpenMP, MKL), torch, tensorforge and the relevant environment variables."""
    report: dict = {"env": {v: os.environ.get(v) for v in THREAD_VARS + ("XLA_FLAGS",)}}
    try:
        from threadpoolctl import threadpool_info
        report["threadpools"] = [{"api": p.get("internal_api"), "lib": os.path.basename(p.get("filepath", "")),
                                  "num_threads": p.get("num_threads")} for p in threadpool_info()]
    except ImportError:
        report["threadpools"] = None
    if "torch" in sys.modules:
        report["torch"] = sys.modules["torch"].get_num_threads()
    if "tinygrad" in sys.modules:
        from tinygrad.helpers import NUM_CPU_THREADS
        report["tinygrad"] = NUM_CPU_THREADS.value
    if "tensorforge" in sys.modules:
        from .runtime import get_num_threads
        report["tensorforge"] = get_num_threads()
    return report


def pin_library_threads(system: str, threads: int) -> None:
    """The thread knobs that need a call, after the environment has set the rest."""
    if system in ("interp", "llvm", "triton") or system.startswith("compile"):
        from .runtime import set_num_threads
        set_num_threads(threads)
    if system.startswith("torch"):
        import torch
        torch.set_num_threads(threads)


# ---- the parent's side ----------------------------------------------------------------------

class WorkerError(RuntimeError):
    """A worker died, timed out or answered an error."""


class Worker:
    """One worker process: ``request(command)`` sends a line and returns the RESULT records."""

    def __init__(self, cmd: list[str], env: dict, cwd: str | None = None, name: str = "worker"):
        self.name = name
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=None, text=True, bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)                       # end of output: the process is gone

    def reply(self, timeout: float) -> list[dict]:
        """The records up to the next DONE line; WorkerError when it dies or times out first."""
        records, deadline = [], time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                self.close(kill=True)
                raise WorkerError(f"{self.name}: timed out after {timeout:.0f} s") from None
            if line is None:
                code = self.proc.wait()
                raise WorkerError(f"{self.name}: worker exited with {code}")
            if line == DONE:
                return records
            if line.startswith(RESULT_PREFIX):
                records.append(json.loads(line[len(RESULT_PREFIX):]))

    def request(self, command: str, timeout: float) -> list[dict]:
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerError(f"{self.name}: worker is gone") from None
        return self.reply(timeout)

    def close(self, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                try:
                    self.proc.stdin.write("quit\n")
                    self.proc.stdin.flush()
                    self.proc.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def rotated(items: list, round_index: int) -> list:
    """``items`` started at a different one each round: no system always runs first or last."""
    k = round_index % len(items) if items else 0
    return items[k:] + items[:k]


# ---- the worker's side ----------------------------------------------------------------------

def send(record: dict) -> None:
    print(RESULT_PREFIX + json.dumps(record), flush=True)


def finish() -> None:
    print(DONE, flush=True)


def serve(handle: Callable[[str], None]) -> None:
    """Answer the parent's commands until ``quit`` or end of input; ``handle`` sends records.

    A failing command answers one ``{"error": ...}`` record instead of ending the worker."""
    for line in sys.stdin:
        command = line.strip()
        if not command:
            continue
        if command == "quit":
            break
        try:
            handle(command)
        except Exception as e:  # noqa: BLE001 - reported to the parent, which decides
            send({"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]})
        finish()


# ---- ``tensorforge bench``: one workload on several systems ----------------------------------

def _bench_worker(system: str, workload: str, threads: int) -> None:
    """Set up ``system``'s step of ``workload`` (compiling it), report, then measure on request."""
    pin_library_threads(system, threads)
    from . import bench
    try:
        step, first, compile_s = bench._runner(system, workload)
    except Exception as e:  # noqa: BLE001 - the parent reports which system failed and why
        send({"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]})
        finish()
        return
    send({"system": system, "first_loss": float(first), "compile_s": compile_s, "threads": thread_report()})
    finish()

    def handle(command: str) -> None:
        word, *rest = command.split()
        if word != "measure":
            raise ValueError(f"unknown command {command!r}")
        cpu0, t0 = time.process_time(), time.perf_counter()
        steps_per_s, steps = bench.measure(step, float(rest[0]))
        cpu_use = (time.process_time() - cpu0) / max(time.perf_counter() - t0, 1e-9)
        send({"steps_per_s": steps_per_s, "steps": steps, "cpu_use": cpu_use})
    serve(handle)


def start_bench_workers(workload: str, systems: list[str], threads: int, timeout: float):
    """{system: (Worker, ready record)}; a system whose worker fails is {system: error text}."""
    workers = {}
    for system in systems:
        cmd = [sys.executable, "-m", "tensorforge.bench_fair", "--worker", system, "--workload", workload,
               "--threads", str(threads)]
        w = Worker(cmd, thread_env(threads), name=system)
        try:
            ready = w.reply(timeout)
        except WorkerError as e:
            workers[system] = str(e)
            continue
        if not ready or "error" in ready[0]:
            workers[system] = ready[0]["error"] if ready else "no answer"
            w.close()
            continue
        workers[system] = (w, ready[0])
    return workers


def main(argv=None) -> None:
    import argparse
    parser = argparse.ArgumentParser(description="the worker of `tensorforge bench`")
    parser.add_argument("--worker", required=True)
    parser.add_argument("--workload", required=True)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args(argv)
    _bench_worker(args.worker, args.workload, args.threads)


if __name__ == "__main__":
    main()
