"""Benchmark suite of the compiler issue: tensorforge (interp, llvm) against NumPy, PyTorch, JAX,
PyTensor and tinygrad.

Measures, side by side in one run and in float32, on each requested thread count:

1. the fused elementwise chain ``sigmoid(a*x+b)*tanh(x) + max(x-1,0)*0.5`` on 16M elements
   (ms and GB/s, bytes read + written), and the machine's copy bandwidth (np.copyto);
2. training steps (steps/s): MLP 784-256-256-10 b128 Adam, MLP 784-1024-1024-10 b256 Adam,
   MLP 64-64-10 b32 Adam, a small CNN (SGD momentum) and PyTorch's MNIST ``Net`` b64 (SGD
   momentum, dropout off);
3. the MLP 784-256-256-10 step with the batch size changing every call (120..128) against the
   build specialised to 128 (per-sample throughput, number of builds);
4. matmul 512x512x512: GFLOP/s of tensorforge's generated kernel against NumPy's BLAS;
5. compile time of the MLP and MNIST Net steps, cold (empty TENSORFORGE_CACHE_DIR) and warm
   (same cache, fresh process), and jax.jit's compile time of its step;

then writes docs/performance.md: the machine, the versions, the load, the threads each worker
saw, one table per workload and a summary of the targets of the issues (met / missed by how much).

Every system runs in its own worker process, started with the same thread count in its
environment (tensorforge.bench_fair.thread_env), so the pins hold before any library loads;
the workers are measured in interleaved rounds and every row is the median of the rounds with
its min - max. The code is in the package benchmarks/suite (workloads, measure, systems,
peers, worker, runner, report).

    python benchmarks/compiler.py [--threads 1 2] [--rounds 3] [--quick] [--out docs/performance.md]
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))     # the suite package beside this script

from suite.machine import machine_info, versions  # noqa: E402
from suite.report import NOTES_MARKER, kept_notes, report  # noqa: E402
from suite.runner import ALL_WORKLOADS, aggregate, run_all  # noqa: E402
from suite.workloads import SYSTEMS, sizes_of  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved repeats of every measurement (default 3; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and time boxes (smoke test)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--json", default=None, help="also write every raw measurement here")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--workloads", nargs="+", default=list(ALL_WORKLOADS), choices=ALL_WORKLOADS)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a worker may take for one request")
    parser.add_argument("--from-json", default=None, metavar="JSON",
                        help="measure nothing: rewrite the report from a previous run's --json file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--compile-step", default="mlp", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(t < 1 for t in args.threads):
        parser.error("--threads: need positive thread counts")
    if args.rounds is None:
        args.rounds = sizes_of(args.quick)["rounds"]
    if args.rounds < 1:
        parser.error("--rounds: need at least 1")
    return args


def write_report(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text + "\n" + NOTES_MARKER + "\n\n" + kept_notes(out))
    tmp.replace(out)                                  # atomic: never a half-written report


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        from suite.worker import compile_worker, run_worker
        if args.worker.startswith("compile-"):
            return compile_worker(args.worker.split("-", 1)[1], args.compile_step, args.threads[0], args.quick)
        return run_worker(args.worker, args.threads[0], args.quick)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        raw, elapsed, loads = saved["records"], saved.get("elapsed_s", 0.0), saved.get("loads", {})
        for key in ("threads", "quick", "rounds"):
            setattr(args, key, saved["args"].get(key, getattr(args, key)))
        machine, vers = saved.get("machine") or machine_info(), saved.get("versions") or versions()
        date = saved.get("date", "?")
    else:
        date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        machine, vers = machine_info(), versions()
        start = time.perf_counter()
        raw, loads = run_all(args)
        elapsed = time.perf_counter() - start
    text = report(aggregate(raw), args, sizes_of(args.quick), machine, vers, elapsed, date, loads)
    out = Path(args.out)
    write_report(out, text)
    if args.json and not args.from_json:
        Path(args.json).write_text(json.dumps({"records": raw, "args": vars(args), "elapsed_s": elapsed,
                                               "date": date, "machine": machine, "versions": vers, "loads": loads},
                                              indent=1))
    print(text)
    print(f"[compiler.py] wrote {out} in {elapsed:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
