"""Smoke test of benchmarks/compiler.py: a --quick run on 1 thread in a subprocess writes a
well-formed docs table, and the numbers it computes are right (every system's losses are
finite, all systems start from the same first-step loss, llvm matches the interpreter, the
chain and matmul outputs match float64 NumPy)."""
from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "compiler.py"
STEP_WORKLOADS = ("mlp", "small_mlp", "cnn")
# torch.compile is skipped by --quick itself (its compiles take ~15 s); peers not installed are left out
SYSTEMS = ["numpy", "interp", "llvm"] + [s for s, mod in (("torch", "torch"), ("jax", "jax"))
                                         if importlib.util.find_spec(mod) is not None]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(markdown text, raw records) of one quick run."""
    tmp = tmp_path_factory.mktemp("bench")
    out, raw = tmp / "performance.md", tmp / "results.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--out", str(out),
                           "--json", str(raw), "--systems", *SYSTEMS],
                          capture_output=True, text=True, timeout=150, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[compiler.py]" in proc.stderr                       # progress lines
    return out.read_text(), json.loads(raw.read_text())["records"]


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
    text, _ = run
    for heading in ("## Machine and versions", "## Targets", "## 1. Fused elementwise chain",
                    "## 2. MLP training step", "## 3. Small MLP", "## 4. Small CNN", "## 5. Matmul",
                    "## 6. Compile time"):
        assert heading in text
    tables = markdown_tables(text)
    assert len(tables) == 8          # machine, targets, one per workload (6)
    for rows in tables:
        assert len(rows) >= 2 and all(len(r) == len(rows[0]) for r in rows), rows
    targets = next(t for t in tables if t[0][0] == "target")
    assert len(targets) - 1 == 9                                 # every target of the issue, 1 thread
    for row in targets[1:]:
        assert row[4] == "met" or row[4].startswith("missed: ") or row[4] == "not measured", row
    versions = dict(r for r in tables[0][1:])
    for key in ("CPU", "numpy", "llvmlite", "LLVM", "tensorforge"):
        assert versions[key] not in ("", "?"), key


def test_every_system_trains_to_finite_losses_from_the_same_start(run):
    _, records = run
    for workload in STEP_WORKLOADS:
        reference = find(records, workload, "numpy")["first_loss"]
        for system in SYSTEMS:
            r = find(records, workload, system)
            assert r["seconds"] > 0, r
            assert math.isfinite(r["first_loss"]) and math.isfinite(r["final_loss"]), r
            assert r["first_loss"] == pytest.approx(reference, rel=1e-4), (workload, system)
            assert r["final_loss"] < r["first_loss"], r              # it trained, on one fixed batch


def test_llvm_first_step_equals_the_interpreter(run):
    _, records = run
    for workload in STEP_WORKLOADS:
        llvm, interp = find(records, workload, "llvm"), find(records, workload, "interp")
        assert abs(llvm["first_loss"] - interp["first_loss"]) <= 1e-4 * abs(interp["first_loss"])


def test_chain_and_matmul_outputs_match_float64(run):
    _, records = run
    for system in SYSTEMS:
        assert find(records, "chain", system)["max_abs_err"] < 1e-5, system
    for system in ("numpy", "llvm"):
        r = find(records, "matmul", system)
        assert r["rel_err"] < 1e-5 and r["gflops"] > 0, r
    assert find(records, "copy", "numpy")["seconds"] > 0


def test_compile_times_cold_then_warm_cache(run):
    _, records = run
    cold, warm = find(records, "compile_cold", "llvm"), find(records, "compile_warm", "llvm")
    assert cold["seconds"] > 0 and warm["seconds"] > 0
    assert warm["cache_files"] >= 1                    # the cold process filled the disk cache
    assert cold["first_loss"] == pytest.approx(warm["first_loss"], rel=1e-6)
