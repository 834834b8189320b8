"""`tensorforge bench` measures fairly: every system in its own worker process with the same
thread count pinned before import, interleaved rounds, median and spread, the load average
printed with a warning when the machine was busy (tensorforge.bench_fair, tensorforge.bench)."""
from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from tensorforge import bench, bench_fair


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tensorforge.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_thread_env_pins_every_library_before_import():
    env = bench_fair.thread_env(2, base={"XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false"})
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TENSORFORGE_NUM_THREADS",
                "NUM_CPU_THREADS"):
        assert env[var] == "2", var
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x"      # a user's flag stays, the 1-thread switch goes
    one = bench_fair.thread_env(1, base={})
    assert "--xla_cpu_multi_thread_eigen=false" in one["XLA_FLAGS"] and one["OMP_NUM_THREADS"] == "1"


def test_load_warning_spread_and_rotation():
    assert bench_fair.load_warning(None, 1) is None
    assert bench_fair.load_warning(0.9, 1) is None
    assert bench_fair.load_warning(2.0, 2) is None
    warning = bench_fair.load_warning(3.25, 2)
    assert "busy" in warning and "3.25 > 2 threads" in warning
    assert bench_fair.spread([3.0, 1.0, 2.0, 10.0]) == (2.5, 1.0, 10.0)
    assert bench_fair.rotated(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert bench_fair.rotated(["a", "b", "c"], 4) == ["b", "c", "a"]


def test_bench_table_of_medians_and_the_spread_of_interleaved_rounds():
    proc = run_cli("bench", "small-mlp", "--seconds", "0.1", "--backend", "interp", "--backend", "llvm",
                   "--rounds", "2", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "2 rounds, 1 thread" in out
    assert re.search(r"^1-min load average: [0-9.]+ before, [0-9.]+ after$", out, re.M), out
    rows = {m.group(1): m.groups()[1:] for m in
            re.finditer(r"^(interp|llvm)\s+([0-9,.]+)\s+([0-9.]+)x\s+([0-9.]+)\s+([0-9.]+)$", out, re.M)}
    assert set(rows) == {"interp", "llvm"}, out
    assert abs(float(rows["interp"][3]) - float(rows["llvm"][3])) < 1e-4       # same start, same loss
    spread_rows = {m.group(1): m.groups()[1:] for m in re.finditer(
        r"^(interp|llvm)\s+(\d+)\s+([0-9,.]+) - ([0-9,.]+)\s+([0-9.]+)%\s+([0-9.]+)\s+(.*)$", out, re.M)}
    assert set(spread_rows) == {"interp", "llvm"}, out
    for system, (rounds, lo, hi, _, _, seen) in spread_rows.items():
        assert rounds == "2"
        median = float(rows[system][0].replace(",", ""))
        assert float(lo.replace(",", "")) <= median <= float(hi.replace(",", ""))
        assert "tensorforge 1" in seen                         # the worker's own thread count


def test_worker_sees_the_requested_threads_in_every_library():
    systems = ["llvm"] + (["torch"] if importlib.util.find_spec("torch") else [])
    run = bench.run_fair("small-mlp", systems, seconds=0.05, threads=2, rounds=1)
    assert not run.failed, run.failed
    for r in run.results:
        assert r.threads["tensorforge"] == 2
        assert r.threads["env"]["OMP_NUM_THREADS"] == "2" and r.threads["env"]["NUM_CPU_THREADS"] == "2"
        assert r.threads["threadpools"] and all(p["num_threads"] == 2 for p in r.threads["threadpools"]), r.threads
        if r.system == "torch":
            assert r.threads["torch"] == 2
        assert len(r.rounds) == 1 and r.steps_per_s == r.rounds[0] and r.cpu_use is not None


def test_a_system_that_cannot_start_is_reported_not_fatal():
    run = bench.run_fair("small-mlp", ["interp", "no-such-backend"], seconds=0.05, rounds=1)
    assert [r.system for r in run.results] == ["interp"]
    assert "no-such-backend" in run.failed and run.failed["no-such-backend"]


def test_busy_machine_warning(monkeypatch):
    from click.testing import CliRunner

    from tensorforge.cli import main
    monkeypatch.setattr(bench, "load_average", lambda: 6.5)
    result = CliRunner().invoke(main, ["bench", "small-mlp", "--seconds", "0.05", "--backend", "interp",
                                       "--rounds", "1"])
    assert result.exit_code == 0, result.output
    assert "1-min load average: 6.50 before, 6.50 after" in result.output
    assert "warning: the machine was busy (1-min load average 6.50 > 1 thread)" in result.output
    monkeypatch.setattr(bench, "load_average", lambda: 0.5)
    result = CliRunner().invoke(main, ["bench", "small-mlp", "--seconds", "0.05", "--backend", "interp",
                                       "--rounds", "1"])
    assert result.exit_code == 0 and "busy" not in result.output


@pytest.mark.parametrize("workload", ["net", "mlp-big"])
def test_new_workloads_are_known_with_the_issue_sizes(workload):
    _, spec, n = bench.WORKLOADS[workload]
    x, y = bench.fixed_batch(workload)
    if workload == "net":
        assert (n, spec.flat, spec.hidden, x.shape) == (64, 9216, 128, (64, 1, 28, 28))
    else:
        assert (spec, n, x.shape) == ((784, 1024, 1024, 10), 256, (256, 784))
    assert y.shape == (n,) and y.max() <= 9


def test_net_step_agrees_with_torch_on_a_small_net():
    """The MNIST Net model on tensorforge and in PyTorch (the oracle): same start, same two steps."""
    torch = pytest.importorskip("torch")
    from tensorforge.bench_models import NetSpec, random_batch, tensorforge_training_step, torch_model
    spec = NetSpec(image=10, c1=3, c2=4, hidden=8)
    x, y = random_batch((5, 1, 10, 10))
    step = tensorforge_training_step(spec, x, y, "interp", name="net")
    forward, opt = torch_model(spec)
    ours, theirs = [], []
    for _ in range(2):
        ours.append(float(step(x, y)))
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(forward(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    assert ours == pytest.approx(theirs, rel=1e-5)
