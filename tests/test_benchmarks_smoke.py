"""Smoke test of benchmarks/compiler.py: a --quick run on 1 thread in a subprocess writes a
well-formed docs table, and the numbers it computes are right (every system's losses are
finite, all systems start from the same first-step loss, llvm matches the interpreter, the
chain and matmul outputs match float64 NumPy), every worker saw the thread count it was given,
every row is the median of its rounds with its range, and a busy machine is warned about.
The optional peers (PyTensor, tinygrad: the `bench` extra) run when installed, else skip."""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "compiler.py"
STEP_WORKLOADS = ("mlp", "mlp_big", "small_mlp", "cnn", "net")
# torch.compile is skipped by --quick itself (its compiles take ~15 s); peers not installed are left out
SYSTEMS = ["numpy", "interp", "llvm"] + [s for s, mod in (("torch", "torch"), ("jax", "jax"))
                                         if importlib.util.find_spec(mod) is not None]
ROUNDS = 2                                     # --quick's default


def quick_run(tmp, *extra, timeout=900):
    out, raw = tmp / "performance.md", tmp / "results.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out", str(out),
                           "--json", str(raw), *extra], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[compiler.py]" in proc.stderr                       # progress lines
    return out.read_text(), json.loads(raw.read_text())["records"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(markdown text, aggregated records, raw records) of one quick run."""
    text, raw = quick_run(tmp_path_factory.mktemp("bench"), "--systems", *SYSTEMS)
    return text, suite_module("runner").aggregate(raw), raw


def suite_module(name):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(f"suite.{name}")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def find(records, workload, system):
    hits = [r for r in records if r["workload"] == workload and r["system"] == system]
    assert len(hits) == 1, (workload, system, hits)
    return hits[0]


def markdown_tables(text):
    """Every table as a list of rows (lists of cells), header first, separator dropped."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            current = current if current is not None else []
            current.append(line)
        elif current is not None:
            tables.append(current)
            current = None
    parsed = []
    for lines in tables:
        assert re.fullmatch(r"\|(---\|)+", lines[1]), lines[:2]
        rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in [lines[0]] + lines[2:]]
        parsed.append(rows)
    return parsed


def test_report_is_well_formed(run):
    text, _, _ = run
    for heading in ("## Machine and versions", "## Threads seen by each worker", "## Targets",
                    "## 1. Fused elementwise chain", "## 2. Training step: MLP", "## 3. Training step: MLP",
                    "## 4. Training step: MLP", "## 5. Training step: small CNN", "## 6. Training step: MNIST Net",
                    "## 7. Batch size changing every call", "## 8. Matmul", "## 9. Compile time"):
        assert heading in text
    assert "1-min load average:" in text
    tables = markdown_tables(text)
    assert len(tables) == 12          # machine, threads, targets, chain, 5 steps, batch cycling, matmul, compile
    for rows in tables:
        assert len(rows) >= 2 and all(len(r) == len(rows[0]) for r in rows), rows
    targets = next(t for t in tables if t[0][0] == "target")
    labels = " / ".join(row[0] for row in targets[1:])
    for phrase in ("MNIST Net step: llvm / torch eager", "MNIST Net step: llvm / jax.jit",
                   "MLP 784-1024-1024-10 step: llvm / fastest peer", "llvm / pytensor", "llvm / tinygrad",
                   "batch cycling every call: per-sample throughput", "batch cycling every call: builds",
                   "net step compile time, cold disk cache", "net step compile time, warm disk cache"):
        assert phrase in labels, phrase
    for row in targets[1:]:
        assert row[4] == "met" or row[4].startswith("missed: ") or row[4] == "not measured", row
    versions = dict(r for r in tables[0][1:])
    for key in ("CPU", "numpy", "llvmlite", "LLVM", "tensorforge", "pytensor", "tinygrad"):
        assert versions[key] not in ("", "?"), key


def test_every_system_trains_to_finite_losses_from_the_same_start(run):
    _, records, _ = run
    for workload in STEP_WORKLOADS:
        reference = find(records, workload, "interp")["first_loss"]
        for system in SYSTEMS:
            r = find(records, workload, system)
            if system == "numpy" and workload == "net":
                assert r["seconds"] is None and "no hand-written NumPy" in r["note"]
                continue
            assert r["seconds"] > 0, r
            assert math.isfinite(r["first_loss"]) and math.isfinite(r["final_loss"]), r
            assert r["first_loss"] == pytest.approx(reference, rel=1e-5), (workload, system)
            assert r["final_loss"] < r["first_loss"], r              # it trained, on one fixed batch


def test_llvm_first_step_equals_the_interpreter(run):
    _, records, _ = run
    for workload in STEP_WORKLOADS:
        llvm, interp = find(records, workload, "llvm"), find(records, workload, "interp")
        assert abs(llvm["first_loss"] - interp["first_loss"]) <= 1e-5 * abs(interp["first_loss"])


def test_chain_and_matmul_outputs_match_float64(run):
    _, records, _ = run
    for system in SYSTEMS:
        assert find(records, "chain", system)["max_abs_err"] < 1e-5, system
    for system in ("numpy", "llvm"):
        r = find(records, "matmul", system)
        assert r["rel_err"] < 1e-5 and r["gflops"] > 0, r
    assert find(records, "copy", "numpy")["seconds"] > 0


def test_compile_times_cold_then_warm_cache(run):
    _, records, _ = run
    for step in ("mlp", "net"):
        cold, warm = find(records, f"compile_cold_{step}", "llvm"), find(records, f"compile_warm_{step}", "llvm")
        assert cold["seconds"] > 0 and warm["seconds"] > 0 and cold["rounds"] == ROUNDS
        assert warm["cache_files"] >= 1                    # the cold process filled the disk cache
        assert cold["first_loss"] == pytest.approx(warm["first_loss"], rel=1e-6)
        assert cold["first_loss"] == pytest.approx(find(records, step, "interp")["first_loss"], rel=1e-5)


def test_batch_cycling_step_reports_throughput_ratio_and_builds(run):
    _, records, _ = run
    r = find(records, "mlp_dyn", "llvm")
    batches = (12, 13, 14, 15, 16)                     # --quick's cycle
    assert r["seconds"] > 0 and r["fixed_seconds"] > 0 and r["throughput_ratio"] > 0
    assert 1 <= r["builds"] <= len(batches)            # one build once batch sizes are symbolic
    assert r["samples_per_cycle"] == sum(batches)
    # the fixed build and the dynamic one start from the same parameters: the same first loss on 16 rows
    assert r["fixed_first_loss"] == pytest.approx(find(records, "mlp", "interp")["first_loss"], rel=1e-5)


def test_every_worker_saw_the_requested_thread_count(run):
    _, records, _ = run
    for system in SYSTEMS:
        report = find(records, "threads", system)["report"]
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TENSORFORGE_NUM_THREADS",
                    "NUM_CPU_THREADS"):
            assert report["env"][var] == "1", (system, var)
        assert "--xla_cpu_multi_thread_eigen=false" in report["env"]["XLA_FLAGS"]
        assert report["threadpools"], system                      # at least NumPy's BLAS
        assert all(p["num_threads"] == 1 for p in report["threadpools"]), (system, report["threadpools"])
        assert report["tensorforge"] == 1
        if system == "torch":
            assert report["torch"] == 1


def test_rows_are_medians_of_interleaved_rounds_with_their_range(run):
    text, records, raw = run
    for workload, system in (("mlp", "llvm"), ("net", "interp"), ("chain", "numpy")):
        rounds = sorted((r for r in raw if r["workload"] == workload and r["system"] == system),
                        key=lambda r: r["round"])
        assert [r["round"] for r in rounds] == list(range(ROUNDS))
        agg = find(records, workload, system)
        secs = [r["seconds"] for r in rounds]
        assert agg["seconds"] == pytest.approx(statistics.median(secs))
        assert (agg["seconds_min"], agg["seconds_max"], agg["rounds"]) == (min(secs), max(secs), ROUNDS)
    # interleaved: round 0 of every system comes before any round 1
    order = [(r["round"], r["system"]) for r in raw if r["workload"] == "mlp" and "round" in r]
    assert max(i for i, (rnd, _) in enumerate(order) if rnd == 0) < min(i for i, (rnd, _) in enumerate(order)
                                                                          if rnd == 1)
    step_table = next(t for t in markdown_tables(text) if t[0][:3] == ["system", "threads", "steps/s"])
    col = step_table[0].index("range ms (rounds)")
    llvm = next(row for row in step_table[1:] if row[0] == "llvm")
    assert re.fullmatch(rf"[0-9.]+ - [0-9.]+ \({ROUNDS}\)", llvm[col]), llvm


def test_a_busy_machine_is_warned_about(monkeypatch, tmp_path):
    runner, report = suite_module("runner"), suite_module("report")
    monkeypatch.setattr(runner, "load_average", lambda: 7.5)         # as if 7 other processes ran
    args = argparse.Namespace(systems=["numpy"], workloads=["copy"], threads=[1], rounds=1, quick=True,
                              timeout=120.0)
    raw, loads = runner.run_all(args)
    assert loads == {"load_before": 7.5, "load_after": 7.5}
    assert find(runner.aggregate(raw), "copy", "numpy")["seconds"] > 0
    text = "\n".join(report.load_lines(loads, [1]))
    assert "7.50 before the run" in text and "the machine was busy" in text
    quiet = "\n".join(report.load_lines({"load_before": 0.2, "load_after": 0.9}, [1]))
    assert "busy" not in quiet and "0.20 before the run, 0.90 after" in quiet


def test_a_missing_peer_or_workload_is_a_note_not_a_failure():
    failure_note = suite_module("worker").failure_note
    assert failure_note(ModuleNotFoundError("no", name="tinygrad")).startswith("not installed (tinygrad)")
    assert failure_note(NotImplementedError("no NumPy version")) == "no NumPy version"
    assert failure_note(ValueError("bad\nshape (3,)")) == "failed: ValueError: shape (3,)"


PEERS = [pytest.param(name, marks=pytest.mark.skipif(
    importlib.util.find_spec(name) is None or (name == "tinygrad" and shutil.which("clang") is None),
    reason=f"optional peer {name} not installed (pip install '.[bench]'"
           + ("; tinygrad's CPU device also needs clang" if name == "tinygrad" else "") + ")"))
    for name in ("pytensor", "tinygrad")]


@pytest.mark.parametrize("peer", PEERS)
def test_peer_trains_from_the_same_start(peer, tmp_path):
    _, raw = quick_run(tmp_path, "--systems", "numpy", peer, "--workloads", "mlp", "--rounds", "1")
    records = suite_module("runner").aggregate(raw)
    ref, r = find(records, "mlp", "numpy"), find(records, "mlp", peer)
    assert r["seconds"] > 0, r
    assert r["first_loss"] == pytest.approx(ref["first_loss"], rel=1e-5)
    assert r["final_loss"] < r["first_loss"]
    report = find(records, "threads", peer)["report"]
    assert report["env"]["NUM_CPU_THREADS"] == "1" and report["env"]["OMP_NUM_THREADS"] == "1"
    if peer == "tinygrad":
        assert report["tinygrad"] == 1
