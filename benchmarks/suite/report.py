"""docs/performance.md from the aggregated records: tables, target verdicts, the machine.

Every row is the median of the rounds (see runner.py) with its range (min - max over the
rounds); ratios are speed ratios of medians (higher = the first system is faster). Text below
the notes marker of an existing report is kept when it is rewritten.
"""
from __future__ import annotations

from pathlib import Path

from tensorforge.bench_fair import load_warning

from .workloads import PEERS, STEP_WORKLOADS, SYSTEMS, describe

NOTES_MARKER = "<!-- notes below this line are kept when the script rewrites the file -->"


def lookup(records, workload, system, threads):
    for r in records:
        if r["workload"] == workload and r["system"] == system and r["threads"] == threads:
            return r
    return None


def seconds_of(records, workload, system, threads):
    r = lookup(records, workload, system, threads)
    return r["seconds"] if r and isinstance(r.get("seconds"), (int, float)) else None


def system_note(records, system, threads, workload):
    """Why a system has no number: its own failure note or its worker's."""
    r = lookup(records, workload, system, threads)
    if r and r.get("note"):
        return r["note"]
    w = lookup(records, "worker", system, threads)
    return w["note"] if w else "not measured"


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return lines + [""]


def verdict(measured, target, unit="x"):
    if measured is None:
        return "-", "not measured"
    if measured >= target:
        return f"{measured:.2f}{unit}", "met"
    return f"{measured:.2f}{unit}", f"missed: {measured / target:.0%} of target (needs {target / measured:.2f}x more)"


def verdict_at_most(measured, limit):
    if measured is None:
        return "-", "not measured"
    if measured <= limit:
        return f"{measured:.3f} s", "met"
    return f"{measured:.3f} s", f"missed: {measured / limit:.1f}x the limit"


def ratio(records, workload, fast, slow, tf, ts):
    a, b = seconds_of(records, workload, fast, tf), seconds_of(records, workload, slow, ts)
    return b / a if a and b else None


def kept_notes(path: Path) -> str:
    """Hand-written notes after the marker in an existing report survive a re-run."""
    if path.exists():
        text = path.read_text()
        if NOTES_MARKER in text:
            return text.split(NOTES_MARKER, 1)[1].lstrip("\n")
    return ("## Notes\n\n(Why each missed target is missed and what would close it: written by hand, "
            "kept when the script rewrites the tables above.)\n")


def spread_cell(r: dict, scale: float = 1e3, spec: str = ".2f") -> str:
    """'min - max (rounds)' of a row, in ms by default."""
    if not r or not isinstance(r.get("seconds_min"), (int, float)):
        return "-"
    return f"{r['seconds_min'] * scale:{spec}} - {r['seconds_max'] * scale:{spec}} ({r.get('rounds', 1)})"


def measured_systems(records, threads):
    """The systems of the table order that have any record at this thread count (requested ones)."""
    present = {r["system"] for r in records if r.get("threads") == threads}
    return [s for s in SYSTEMS if s in present]


def reference_system(records, workload, threads):
    """NumPy where it has the workload, else the interpreter: the first-loss reference."""
    for system in ("numpy", "interp"):
        r = lookup(records, workload, system, threads)
        if r and r.get("first_loss") is not None:
            return system, r["first_loss"]
    return None, None


def chain_table(records, threads_list, n) -> list[str]:
    bytes_moved = 2 * 4 * n
    rows = []
    for threads in threads_list:
        copy = seconds_of(records, "copy", "numpy", threads)
        copy_gbs = bytes_moved / copy / 1e9 if copy else None
        c = lookup(records, "copy", "numpy", threads) or {}
        rows.append(["np.copyto (copy bandwidth)", threads, fmt(copy and copy * 1e3, ".2f"), spread_cell(c),
                     fmt(copy_gbs, ".1f"), "100%" if copy_gbs else "-", "-", fmt(c.get("cpu_use"), ".1f"), "-",
                     "" if copy else system_note(records, "numpy", threads, "copy")])
        ref = seconds_of(records, "chain", "numpy", threads)
        for system in measured_systems(records, threads):
            s = seconds_of(records, "chain", system, threads)
            r = lookup(records, "chain", system, threads) or {}
            gbs = bytes_moved / s / 1e9 if s else None
            rows.append([system, threads, fmt(s and s * 1e3, ".2f"), spread_cell(r), fmt(gbs, ".1f"),
                         f"{gbs / copy_gbs:.0%}" if gbs and copy_gbs else "-",
                         f"{ref / s:.2f}x" if s and ref else "-", fmt(r.get("cpu_use"), ".1f"),
                         fmt(r.get("max_abs_err"), ".1e"), "" if s else system_note(records, system, threads, "chain")])
    return table(["system", "threads", "ms", "range ms (rounds)", "GB/s", "of copy bw", "vs numpy", "cpu use",
                  "max abs err vs f64", "note"], rows)


LOSS_TOLERANCE = 1e-5          # relative: first-step losses of one workload must agree to this


def step_table(records, threads_list, workload) -> list[str]:
    rows = []
    for threads in threads_list:
        ref_name, first_ref = reference_system(records, workload, threads)
        ref = seconds_of(records, workload, ref_name, threads) if ref_name else None
        jax = seconds_of(records, workload, "jax", threads)
        for system in measured_systems(records, threads):
            s = seconds_of(records, workload, system, threads)
            r = lookup(records, workload, system, threads) or {}
            first = r.get("first_loss")
            dev = abs(first - first_ref) / abs(first_ref) if first is not None and first_ref else None
            note = "" if s else system_note(records, system, threads, workload)
            if dev is not None and dev > LOSS_TOLERANCE:
                note = (note + "; " if note else "") + f"DISAGREES: first loss off by {dev:.1e} (relative)"
            rows.append([system, threads, fmt(s and 1 / s, ",.1f"), fmt(s and s * 1e3, ".3f"), spread_cell(r),
                         f"{ref / s:.2f}x" if s and ref else "-", f"{jax / s:.2f}x" if s and jax else "-",
                         fmt(r.get("cpu_use"), ".1f"), fmt(first, ".6f"), fmt(dev, ".1e"),
                         fmt(r.get("final_loss"), ".4f"), fmt(r.get("compile_s"), ".2f"), note])
    return table(["system", "threads", "steps/s", "ms/step", "range ms (rounds)", "vs reference", "vs jax.jit",
                  "cpu use", "first-step loss", "rel. dev. from reference", "loss after run", "compile s", "note"],
                 rows)


def dyn_table(records, threads_list, sizes) -> list[str]:
    rows = []
    for threads in threads_list:
        r = lookup(records, "mlp_dyn", "llvm", threads) or {}
        s = r.get("seconds") if isinstance(r.get("seconds"), (int, float)) else None
        rows.append(["llvm", threads, fmt(s and s * 1e3, ".3f"), spread_cell(r),
                     fmt(r.get("fixed_seconds") and r["fixed_seconds"] * 1e3, ".3f"),
                     fmt(r.get("throughput_ratio"), ".3f"), r.get("builds", "-"), fmt(r.get("first_cycle_s"), ".2f"),
                     fmt(r.get("first_loss"), ".6f"), "" if s else system_note(records, "llvm", threads, "mlp_dyn")])
    return table(["system", "threads", f"ms per cycle of {len(sizes['dyn_batches'])} calls", "range ms (rounds)",
                  f"ms per fixed b{sizes['mlp_batch']} call", "per-sample throughput vs fixed build",
                  "builds (len(compile_times))", "first cycle s (incl. builds)", "loss of last batch, 1st cycle",
                  "note"], rows)


def matmul_table(records, threads_list, n) -> list[str]:
    rows = []
    for threads in threads_list:
        ref = seconds_of(records, "matmul", "numpy", threads)
        for system, label in (("numpy", "numpy (BLAS)"), ("llvm", "tensorforge llvm")):
            s = seconds_of(records, "matmul", system, threads)
            r = lookup(records, "matmul", system, threads) or {}
            rows.append([label, threads, fmt(s and s * 1e3, ".3f"), spread_cell(r, spec=".3f"),
                         fmt(r.get("gflops"), ".1f"), f"{ref / s:.2f}x" if s and ref else "-",
                         fmt(r.get("cpu_use"), ".1f"), fmt(r.get("rel_err"), ".1e"),
                         "" if s else system_note(records, system, threads, "matmul")])
    return table(["system", "threads", "ms", "range ms (rounds)", "GFLOP/s", "vs numpy", "cpu use",
                  "max rel err vs f64", "note"], rows)


def compile_table(records, threads_list, steps) -> list[str]:
    rows = []
    for threads in threads_list:
        for step in steps:
            for phase in ("cold", "warm"):
                key = f"compile_{phase}_{step}"
                r = lookup(records, key, "llvm", threads) or {}
                rows.append([f"{step}: tensorforge llvm, {phase} disk cache", threads, fmt(r.get("seconds"), ".3f"),
                             spread_cell(r, 1, ".3f"), fmt(r.get("first_call_s"), ".3f"), r.get("cache_files", "-"),
                             r.get("note") or ("" if r else system_note(records, "llvm", threads, key))])
            j = lookup(records, step, "jax", threads) or {}
            rows.append([f"{step}: jax.jit (lower + compile)", threads, fmt(j.get("compile_s"), ".3f"), "-", "-", "-",
                         "" if j.get("compile_s") else system_note(records, "jax", threads, step)])
    return table(["what", "threads", "compile s", "range s (rounds)", "first call s", "cache files", "note"], rows)


def threads_table(records, threads_list) -> list[str]:
    """What each worker saw after its libraries loaded: the proof that the pins held."""
    rows = []
    for threads in threads_list:
        for system in SYSTEMS:
            r = lookup(records, "threads", system, threads)
            if not r:
                continue
            rep = r.get("report") or {}
            pools = ", ".join(sorted({f"{p['api']} {p['num_threads']}" for p in rep.get("threadpools") or []})) or "-"
            rows.append([system, threads, pools, rep.get("torch", "-"), rep.get("tensorforge", "-"),
                         rep.get("tinygrad", "-"), (rep.get("env") or {}).get("XLA_FLAGS") or "-"])
    return table(["system", "requested", "native pools (threadpoolctl)", "torch", "tensorforge", "tinygrad",
                  "XLA_FLAGS"], rows)


def fastest_peer(records, workload, threads):
    """(name, seconds) of the fastest system that is not tensorforge's, or (None, None)."""
    timed = [(seconds_of(records, workload, p, threads), p) for p in PEERS]
    timed = [(s, p) for s, p in timed if s]
    return (min(timed)[1], min(timed)[0]) if timed else (None, None)


def cpu_use_of(records, workload, system, threads):
    return (lookup(records, workload, system, threads) or {}).get("cpu_use")


def targets(records, threads_list) -> list[list]:
    """Every target of the issues, with its verdict (met, or missed by how much)."""
    rows = []
    t1 = 1 if 1 in threads_list else threads_list[0]

    def add(label, threads, measured, target, fn=verdict, shown_target=None):
        value, status = fn(measured, target)
        rows.append([label, threads, value, shown_target or f">= {target}x", status])
    add("fused chain: llvm / numpy expression", t1, ratio(records, "chain", "llvm", "numpy", t1, t1), 15)
    add("fused chain: llvm / jax.jit", t1, ratio(records, "chain", "llvm", "jax", t1, t1), 3)
    if 2 in threads_list and t1 == 1:
        add("fused chain: llvm 2 threads / llvm 1 thread", 2, ratio(records, "chain", "llvm", "llvm", 2, 1), 1.7)
    for threads, target in ((1, 1.2), (2, 1.3)):
        if threads in threads_list:
            add("MLP 784-256-256-10 step: llvm / jax.jit", threads,
                ratio(records, "mlp", "llvm", "jax", threads, threads), target)
    for threads in threads_list:
        peer, _ = fastest_peer(records, "mlp_big", threads)
        add(f"MLP 784-1024-1024-10 step: llvm / fastest peer ({peer or '-'})", threads,
            ratio(records, "mlp_big", "llvm", peer, threads, threads) if peer else None, 1.2)
    if 2 in threads_list:
        add("MLP 784-1024-1024-10 step: llvm cores kept busy (cpu use)", 2,
            cpu_use_of(records, "mlp_big", "llvm", 2), 1.9, lambda m, t: verdict(m, t, unit=""), ">= 1.9")
    if 1 in threads_list:
        add("MNIST Net step: llvm / torch eager", 1, ratio(records, "net", "llvm", "torch", 1, 1), 1.5)
        add("MNIST Net step: llvm / jax.jit", 1, ratio(records, "net", "llvm", "jax", 1, 1), 3)
    if 2 in threads_list:
        add("MNIST Net step: llvm / torch eager", 2, ratio(records, "net", "llvm", "torch", 2, 2), 1.5)
        if 1 in threads_list:
            add("MNIST Net step: llvm 2 threads / llvm 1 thread", 2, ratio(records, "net", "llvm", "llvm", 2, 1), 1.8)
    for threads in threads_list:
        add("small MLP step: llvm / jax.jit", threads, ratio(records, "small_mlp", "llvm", "jax", threads, threads), 2)
        add("small MLP step: llvm / interp", threads, ratio(records, "small_mlp", "llvm", "interp", threads, threads), 6)
        add("small CNN step: llvm / jax.jit", threads, ratio(records, "cnn", "llvm", "jax", threads, threads), 3)
    for peer in ("pytensor", "tinygrad"):
        for threads in threads_list:
            for workload in ("chain", *STEP_WORKLOADS):
                add(f"{workload}: llvm / {peer}", threads, ratio(records, workload, "llvm", peer, threads, threads),
                    1, shown_target="> 1x")
    for threads in threads_list:
        dyn = lookup(records, "mlp_dyn", "llvm", threads) or {}
        add("batch cycling every call: per-sample throughput / fixed build", threads, dyn.get("throughput_ratio"),
            0.95)
        builds = dyn.get("builds")
        rows.append(["batch cycling every call: builds", threads, "-" if builds is None else str(builds), "1",
                     "not measured" if builds is None else ("met" if builds == 1 else f"missed: {builds} builds")])
    add("matmul 512^3: llvm / numpy BLAS", t1, ratio(records, "matmul", "llvm", "numpy", t1, t1), 0.8)
    for step, cold in (("mlp", 0.5), ("net", 0.8)):
        for phase, limit in (("cold", cold), ("warm", 0.05)):
            r = lookup(records, f"compile_{phase}_{step}", "llvm", t1) or {}
            add(f"{step} step compile time, {phase} disk cache", t1, r.get("seconds"), limit, verdict_at_most,
                f"<= {limit} s")
    return rows


def load_lines(loads: dict, threads_list) -> list[str]:
    """The load before/after the run, and a bold warning when it exceeded the thread count."""
    before, after = loads.get("load_before"), loads.get("load_after")
    shown = ["-" if x is None else f"{x:.2f}" for x in (before, after)]
    lines = [f"1-min load average: {shown[0]} before the run, {shown[1]} after.", ""]
    worst = max([x for x in (before, after) if x is not None], default=None)
    warning = load_warning(worst, min(threads_list))
    if warning:
        lines += [f"**{warning[0].upper() + warning[1:]}.** Compare only ratios measured in the same run, and "
                  "rerun on a quiet machine before quoting them.", ""]
    return lines


STEP_SECTIONS = (
    ("mlp", "Softmax cross-entropy, Adam (lr 1e-3); forward, backward and update per step."),
    ("mlp_big", "Softmax cross-entropy, Adam (lr 1e-3): three large GEMMs per layer, compute-bound."),
    ("small_mlp", "Softmax cross-entropy, Adam; overhead-bound: the per-step cost of calling into each system shows."),
    ("cnn", "Input 1x8x8, conv 3x3 8 channels pad 1, ReLU, maxpool 2, dense 10, softmax cross-entropy, "
            "SGD momentum 0.9 (lr 0.01); numpy is a hand-written im2col version."),
    ("net", "PyTorch's MNIST example `Net`: conv 3x3 1->32, ReLU, conv 3x3 32->64, ReLU, maxpool 2, dense "
            "9216->128, ReLU, dense 10 (dropout off for timing), softmax cross-entropy, SGD momentum 0.9 "
            "(lr 0.01)."),
)


def report(records, args, sizes, machine, vers, elapsed, date, loads) -> str:
    threads_list = list(args.threads)
    n = sizes["chain_n"]
    cmd = "python benchmarks/compiler.py" + (" --quick" if args.quick else "") \
        + f" --threads {' '.join(map(str, threads_list))} --rounds {args.rounds}"
    lines = ["# Performance", "",
             f"Written by `{cmd}` on {date} ({elapsed:.0f} s). All numbers are float32. Every system runs in its "
             "own worker process with the same number of threads, pinned in its environment before any library "
             "loads (see the threads table); the workers stay up and are measured in interleaved rounds (each "
             "round times every workload on every system once, in a rotated order). A row is the median of its "
             "rounds, 'range' the min - max over them; each round's figure is the median of time-boxed samples "
             "after warm-up. Ratios are speed ratios (higher = the first system is faster); 'cpu use' is the "
             "process's CPU seconds per wall second while timing (about the number of busy threads).", ""]
    if args.quick:
        lines += ["**--quick run: tiny sizes, short time boxes; the numbers mean nothing.**", ""]
    lines += ["## Machine and versions", ""]
    lines += table(["", ""], [["CPU", machine["cpu"]], ["cores", machine["cores"]], ["memory", machine["memory"]],
                              ["vector ISA", machine["isa"]], ["OS", machine["os"]]]
                   + [[k, v] for k, v in vers.items()])
    lines += load_lines(loads, threads_list)
    lines += ["## Threads seen by each worker", ""]
    lines += threads_table(records, threads_list)
    lines += ["## Targets", ""]
    lines += table(["target", "threads", "measured", "target", "status"], targets(records, threads_list))
    lines += [f"## 1. Fused elementwise chain, {n:,} elements", "",
              "`sigmoid(1.5*x-0.25)*tanh(x) + max(x-1,0)*0.5`; GB/s counts the bytes read and written "
              f"({2 * 4 * n / 1e6:.0f} MB per call); the copy row is np.copyto of the same size (split across "
              "Python threads on 2 threads), the memory bandwidth this machine gives one process.", ""]
    lines += chain_table(records, threads_list, n)
    for i, (workload, text) in enumerate(STEP_SECTIONS, start=2):
        lines += [f"## {i}. Training step: {describe(workload, sizes)}", "",
                  text + " Every system starts from the same parameters and trains on one fixed batch, so the "
                  "first-step losses agree (the reference is numpy, or interp where numpy has no version; a "
                  f"deviation above {LOSS_TOLERANCE:g} is flagged); 'compile s' is the first-call build time "
                  "(tensorforge: `compile_times`; jax: lower + compile).", ""]
        lines += step_table(records, threads_list, workload)
    k = len(STEP_SECTIONS) + 2
    batches = sizes["dyn_batches"]
    lines += [f"## {k}. Batch size changing every call: {describe('mlp', sizes)} with the batch cycling "
              f"{batches[0]}..{batches[-1]}", "",
              "One step built with a `None` batch dimension, called with the batch cycling through "
              f"{', '.join(map(str, batches))}, against the build specialised to batch {sizes['mlp_batch']}, "
              "timed in the same round (fixed, cycling, fixed). The throughput ratio compares samples per second "
              "after the first cycle; 'builds' counts the dynamic step's `compile_times` entries.", ""]
    lines += dyn_table(records, threads_list, sizes)
    mm = sizes["matmul_n"]
    lines += [f"## {k + 1}. Matmul {mm}x{mm}x{mm}", "",
              "tensorforge's generated kernel (`tg.compile` of `a @ b`, llvm) against `np.matmul` (OpenBLAS).", ""]
    lines += matmul_table(records, threads_list, mm)
    lines += [f"## {k + 2}. Compile time of the training steps", "",
              "Each row is a fresh process; 'cold' starts with an empty TENSORFORGE_CACHE_DIR, 'warm' reuses "
              "the cache the cold run filled (a new cache each round). 'compile s' is "
              "`CompiledFunction.compile_times` (passes + code generation or cache load); 'first call s' adds "
              "the first step's run.", ""]
    lines += compile_table(records, threads_list, ("mlp", "net"))
    skipped = sorted({f"{r['system']} ({r['threads']}t, {r['workload']}): {r['note']}" for r in records
                      if r.get("note")})
    if skipped:
        lines += ["## Not measured", ""] + [f"- {s}" for s in skipped] + [""]
    return "\n".join(lines)
