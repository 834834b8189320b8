"""Differential fuzzer: random graphs on each backend against a float64 NumPy reference.

    python tools/fuzz.py --graphs 2000 --backend llvm triton --seed 0 --max-nodes 12

Graph i has seed S+i: ``--seed S+i --graphs 1`` reproduces it alone. Graphs run in batches in
child processes, so a segfault is reported as a crash of the graph that was running (and the
run goes on) instead of ending the fuzzer. Each failure is printed with its seed and a shrunk
repro (the graph as tg.dprint shows it, and the call-time inputs). The exit status is 1 when
any graph mismatched, crashed or raised an unexplained error.

``--all-features`` also generates the categories that tensorforge.fuzz.KNOWN_BUGS switches off.

``--dynamic-batch`` checks "one build for every batch size" instead (tensorforge.fuzz.dynamic):
random batch-leading graphs, each built once and called with many batch sizes (``--sizes``), against
the float64 interpreter; a graph that needed more than one build is counted as "specialised".

    python tools/fuzz.py --dynamic-batch --graphs 200 --backend llvm --seed 0
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported: CPU interpreter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tensorforge.fuzz import FEATURES, Outcome, Report, check_case, features_for, generate, shrink  # noqa: E402
from tensorforge.fuzz import dynamic  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--graphs", type=int, default=200, help="how many graphs per backend")
    p.add_argument("--backend", nargs="+", default=["llvm", "triton"], choices=["interp", "interp+passes", "llvm", "triton"],
                   help="interp+passes: the interpreter on the compiled backends' passes")
    p.add_argument("--seed", type=int, default=0, help="seed of the first graph (graph i has seed+i)")
    p.add_argument("--max-nodes", type=int, default=12, help="at most this many random ops per graph")
    p.add_argument("--batch", type=int, default=40, help="graphs per child process")
    p.add_argument("--all-features", action="store_true", help="include the KNOWN_BUGS categories")
    p.add_argument("--enable", nargs="+", default=[], choices=FEATURES, metavar="CATEGORY",
                   help="switch these KNOWN_BUGS categories back on")
    p.add_argument("--no-isolate", action="store_true", help="run in this process (a crash ends the run)")
    p.add_argument("--no-shrink", action="store_true", help="print failures as found, unshrunk")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="check one build for every batch size: batch-leading graphs called with --sizes")
    p.add_argument("--sizes", type=int, nargs="+", default=list(dynamic.SIZES),
                   help="batch sizes of --dynamic-batch, called in this order")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--shrink-status", help=argparse.SUPPRESS)
    p.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _features(args, backend):
    return frozenset(FEATURES) if args.all_features else features_for(backend) | set(args.enable)


def worker(args) -> None:
    """Child process: one JSON line per outcome, flushed, so the parent sees how far it got."""
    (backend,) = args.backend
    if args.shrink_status:
        o = Outcome(args.seed, backend, args.shrink_status)
        small = (dynamic.shrink_dynamic(o, args.sizes) if args.dynamic_batch
                 else shrink(o, _features(args, backend), args.max_nodes))
        print(small.describe(), flush=True)
        return
    for seed in range(args.seed, args.seed + args.graphs):
        try:
            if args.dynamic_batch:
                o = dynamic.check_dynamic(seed, backend, args.sizes, args.limit)
            else:
                (o,) = check_case(seed, [backend], _features(args, backend), args.max_nodes, args.limit)
        except Exception as e:  # noqa: BLE001 - e.g. tg.grad failing, or a fuzzer bug: reported, not a crash
            o = Outcome(seed, backend, "error", f"building or checking the graph raised {type(e).__name__}: {e}")
        print(json.dumps(o.__dict__), flush=True)


def _child(args, backend, first, count):
    cmd = [sys.executable, __file__, "--worker", "--backend", backend, "--seed", str(first), "--graphs", str(count),
           "--max-nodes", str(args.max_nodes)] + _flags(args)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    outcomes = [Outcome(**json.loads(line)) for line in proc.stdout.splitlines() if line.startswith("{")]
    return outcomes, proc


def _flags(args) -> list:
    dyn = ["--dynamic-batch", "--sizes", *map(str, args.sizes)] if args.dynamic_batch else []
    return (["--all-features"] if args.all_features else []) + (["--enable", *args.enable] if args.enable else []) + dyn


def _case_text(args, seed, backend, limit=None) -> str:
    """The graph of ``seed`` (building it is safe: only running it can crash)."""
    if args.dynamic_batch:
        return dynamic.dynamic_case(seed, limit=limit).text()
    return generate(seed, "float32", _features(args, backend), args.max_nodes, limit=limit).text()


def _shrunk(args, o) -> str | None:
    """The shrunk failure, found in a child process (shrinking may crash too): None if it died."""
    cmd = [sys.executable, __file__, "--worker", "--backend", o.backend, "--seed", str(o.seed), "--graphs", "1",
           "--max-nodes", str(args.max_nodes), "--shrink-status", o.status] + _flags(args)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def _shrunk_crash(args, o) -> str:
    """The shortest prefix of a crashing graph that still kills a child process."""
    def crashes(limit):
        cmd = [sys.executable, __file__, "--worker", "--backend", o.backend, "--seed", str(o.seed), "--graphs", "1",
               "--max-nodes", str(args.max_nodes), "--limit", str(limit)] + _flags(args)
        return subprocess.run(cmd, capture_output=True, text=True).returncode != 0
    lo, hi = 1, args.max_nodes
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if crashes(mid) else (mid + 1, hi)
    return f"[{o.backend}] seed {o.seed}: crash: {o.detail}\n{_case_text(args, o.seed, o.backend, hi)}"


def run_isolated(args, backend, report, bar) -> None:
    seed, end = args.seed, args.seed + args.graphs
    while seed < end:
        count = min(args.batch, end - seed)
        outcomes, proc = _child(args, backend, seed, count)
        for o in outcomes:
            report.add(o)
            if o.failed:                   # said at once (a long run may be stopped before the end)
                bar.write(f"[{o.backend}] seed {o.seed}: {o.status}: {o.detail[:300]}")
        bar.update(len(outcomes))
        seed += len(outcomes)
        if len(outcomes) < count:          # the child died while running graph ``seed``
            why = f"the process died with exit status {proc.returncode}"
            tail = proc.stderr.strip().splitlines()[-5:]
            # building the graph is safe (only running it crashed): show it
            report.add(Outcome(seed, backend, "crash", why, _case_text(args, seed, backend) + "\n" + "\n".join(tail)))
            bar.update(1)
            seed += 1


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    from tqdm import tqdm
    report = Report()
    for backend in args.backend:
        with tqdm(total=args.graphs, desc=backend, unit="graph") as bar:
            if args.no_isolate:
                for seed in range(args.seed, args.seed + args.graphs):
                    outcomes = ([dynamic.check_dynamic(seed, backend, args.sizes)] if args.dynamic_batch else
                                check_case(seed, [backend], _features(args, backend), args.max_nodes))
                    for o in outcomes:
                        report.add(o)
                    bar.update(1)
            else:
                run_isolated(args, backend, report, bar)
    for o in report.failures:
        text = o.describe()
        if not args.no_shrink:
            text = _shrunk_crash(args, o) if o.status == "crash" else _shrunk(args, o) or text
        print(f"\n{text}\nreproduce: python tools/fuzz.py --backend {o.backend} --seed {o.seed} "
              f"--graphs 1 --max-nodes {args.max_nodes} {' '.join(_flags(args))}")
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
