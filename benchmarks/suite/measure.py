"""Timing on the worker side: medians of time-boxed samples, CPU use, and RESULT lines.

Each sample times a block of calls lasting about a tenth of the time box (re-sized from the
running median, so one slow call cannot leave the blocks too short); the median of the
samples resists the noise of a shared machine. The CPU time per wall second while sampling is
about the number of busy threads ("cpu use" in the tables).
"""
from __future__ import annotations

import statistics
import sys
import time

from tensorforge.bench_fair import load_average, send


def warm_up(fn, calls: int = 2) -> None:
    """The first calls compile and fill caches; they are never timed."""
    for _ in range(calls):
        fn()


def median_seconds(fn, budget_s: float, min_samples: int) -> dict:
    """{"seconds": median seconds per call, "calls", "cpu_use"} of ``fn``, about ``budget_s`` long."""
    t0 = time.perf_counter()
    fn()
    per_call = max(time.perf_counter() - t0, 1e-7)
    samples, calls = [], 1
    start, cpu_start = time.perf_counter(), time.process_time()
    while len(samples) < min_samples or (time.perf_counter() - start < budget_s and len(samples) < 200):
        per_sample = max(1, int(budget_s / 10 / per_call))
        t0 = time.perf_counter()
        for _ in range(per_sample):
            fn()
        samples.append((time.perf_counter() - t0) / per_sample)
        calls += per_sample
        per_call = max(statistics.median(samples), 1e-7)
    cpu_use = (time.process_time() - cpu_start) / max(time.perf_counter() - start, 1e-9)
    return {"seconds": statistics.median(samples), "calls": calls, "cpu_use": cpu_use}


def emit(record: dict) -> None:
    """One measurement to the parent (a RESULT line on stdout) and a progress line on stderr;
    adds the machine's load average (the machine may be shared)."""
    load = load_average()
    if load is not None:
        record["loadavg"] = load
    send(record)
    value = record.get("seconds")
    shown = f"{value * 1e3:10.3f} ms" if isinstance(value, float) else f"{'-':>13}"
    extra = f"  ({record['calls']} calls, cpu {record.get('cpu_use', 0):.1f})" if "calls" in record else ""
    note = f"  note: {record['note']}" if record.get("note") else ""
    print(f"[compiler.py] {record['threads']}t {record['system']:<14} {record['workload']:<12} "
          f"r{record.get('round', 0)} {shown}{extra}{note}", file=sys.stderr, flush=True)
