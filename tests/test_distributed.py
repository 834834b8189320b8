"""tg.distributed and data-parallel training.

The multi-process tests launch ``mpiexec -n 2 python tests/mpi/<script>.py`` (mpi4py and
the mpich wheel come with the ``test`` extra) with timeouts, and read what rank 0 prints.
They are skipped, with the reason, only where no ``mpiexec`` or no mpi4py is installed.
The single-process tests run everywhere and check that nothing changes without MPI.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tensorforge as tg
from tensorforge import distributed as dist
from tensorforge.optim.data_parallel import DataParallelUpdates

ROOT = Path(__file__).resolve().parents[1]
MPI_SCRIPTS = ROOT / "tests" / "mpi"


def _mpiexec() -> str | None:
    beside_python = Path(sys.executable).parent / "mpiexec"
    return str(beside_python) if beside_python.exists() else shutil.which("mpiexec")


def _has_mpi4py() -> bool:
    import importlib.util
    return importlib.util.find_spec("mpi4py") is not None


needs_mpi = pytest.mark.skipif(_mpiexec() is None or not _has_mpi4py(),
                               reason="needs mpiexec and mpi4py: pip install 'tensorforge[distributed]'")


def _env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TENSORFORGE_NUM_THREADS", "1")
    for var in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        env.pop(var, None)
    env.update(extra)
    return env


def mpirun(args, n: int = 2, timeout: float = 240, **env) -> subprocess.CompletedProcess:
    """``mpiexec -n n python args...``: the finished process (output in .stdout, .stderr)."""
    cmd = [_mpiexec(), "-n", str(n), sys.executable] + [str(a) for a in args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(**env), cwd=ROOT)


# ---- equivalence: 2 ranks x batch B == 1 process x batch 2B -----------------------------

@pytest.fixture(scope="module")
def equivalence():
    proc = mpirun([MPI_SCRIPTS / "equivalence.py", "interp,llvm"], timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {(r["model"], r.get("optimizer"), r["backend"]): r for r in rows}


CONFIGS = [(m, o, b) for b in ("interp", "llvm") for m in ("mlp", "cnn", "mlp-bucketed") for o in ("sgd", "adam")
           if m != "mlp-bucketed" or o == "adam"]


@needs_mpi
@pytest.mark.parametrize("model,optimizer,backend", CONFIGS)
def test_two_ranks_match_one_process_with_the_whole_batch(equivalence, model, optimizer, backend):
    row = equivalence[(model, optimizer, backend)]
    assert row["max_abs_diff"] < 2e-6 and row["max_rel_diff"] < 1e-4, row


@needs_mpi
@pytest.mark.parametrize("model,optimizer,backend", CONFIGS)
def test_all_ranks_hold_bit_identical_parameters(equivalence, model, optimizer, backend):
    assert equivalence[(model, optimizer, backend)]["identical"] is True


@needs_mpi
@pytest.mark.parametrize("backend", ["interp", "llvm"])
def test_each_rank_draws_its_own_dropout_stream(equivalence, backend):
    row = equivalence[("dropout", None, backend)]
    assert row["counter_offset_by_rank"] is True and row["identical"] is True


@needs_mpi
@pytest.mark.parametrize("backend", ["interp", "llvm"])
def test_sync_batch_norm_averages_the_running_statistics(equivalence, backend):
    row = equivalence[("sync_bn", None, backend)]
    assert row["own_differ"] is True                  # default: per rank
    assert row["identical"] is True and row["max_abs_diff"] < 1e-6


@needs_mpi
@pytest.mark.slow
def test_triton_backend_through_host_copies_on_two_ranks():
    """Triton steps (here on its CPU interpreter; no GPU in CI): gradients come back to the
    host for the allreduce, and the averaged ones go in again as the update's input."""
    proc = mpirun([MPI_SCRIPTS / "equivalence.py", "triton"], timeout=400, TRITON_INTERPRET="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 7 and all(r["identical"] for r in rows)
    for r in rows:
        if "max_abs_diff" in r:
            assert r["max_abs_diff"] < 2e-6, r


# ---- failures end the job quickly, with the error named ---------------------------------

@needs_mpi
@pytest.mark.parametrize("mode,message", [
    ("raise", "rank 1 failed on purpose"),
    ("kill", "Killed"),
    ("hang", "did not complete within 3 s"),
])
def test_a_failed_rank_stops_the_job_within_bounded_time(mode, message):
    start = time.monotonic()
    proc = mpirun([MPI_SCRIPTS / "failure.py", mode], timeout=90, TENSORFORGE_MPI_TIMEOUT="3")
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert elapsed < 60, elapsed
    assert message in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert "finished" not in proc.stdout


# ---- one process, no MPI: everything as before ------------------------------------------

_NO_MPI = """
import sys
sys.modules["mpi4py"] = None          # as if mpi4py were not installed
import numpy as np
import tensorforge as tg
from tensorforge import distributed as dist
assert (dist.init(), dist.rank(), dist.size(), dist.is_main()) == (1, 0, 1, True)
a = np.arange(6, dtype=np.float32).reshape(2, 3)
assert np.array_equal(dist.allreduce(a), a) and np.array_equal(dist.allreduce(a, "mean"), a)
assert np.array_equal(dist.broadcast(a), a)
dist.barrier()
print("ok")
"""


def test_single_process_needs_no_mpi():
    proc = subprocess.run([sys.executable, "-c", _NO_MPI], capture_output=True, text=True, timeout=120,
                          env=_env(), cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_launched_by_mpi_without_mpi4py_names_the_extra():
    code = "import sys; sys.modules['mpi4py'] = None\nfrom tensorforge import distributed as d\nd.init()"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=_env(PMI_RANK="0", PMI_SIZE="2"), cwd=ROOT)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr and "tensorforge[distributed]" in proc.stderr, proc.stderr


def _mlp_step(backend, data_parallel, clip_norm=None, opt=None):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 5))
        y = tg.placeholder("y", (None,), dtype="int64")
        W = tg.parameter("W", tg.init.he_normal((5, 4), seed=0))
        b = tg.parameter("b", np.zeros(4, np.float32))
        loss = tg.mean(tg.softmax_cross_entropy(tg.dropout(tg.relu(x @ W + b), 0.2, seed=1), y))
        opt = opt or tg.optim.AdamW(lr=1e-2, weight_decay=0.1, amsgrad=True)
        updates = opt.updates(loss, [W, b], clip_norm=clip_norm, data_parallel=data_parallel)
        return tg.compile([x, y], [loss], updates=updates, backend=backend), [W, b]


@pytest.mark.parametrize("backend", ["interp", "llvm", "triton"])
def test_data_parallel_step_on_one_process_equals_the_ordinary_step(backend):
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(6, 5)).astype(np.float32), rng.integers(0, 4, 6)) for _ in range(4)]
    results = []
    for dp in (False, True):
        step, params = _mlp_step(backend, dp, clip_norm=0.5)
        losses = [float(step(xb, yb)[0]) for xb, yb in batches]
        results.append((losses, [p.value.copy() for p in params]))
    (l0, p0), (l1, p1) = results
    np.testing.assert_allclose(l1, l0, rtol=1e-6, atol=1e-7)
    for a, b in zip(p0, p1):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_data_parallel_updates_keep_their_marker_when_concatenated():
    step, _ = _mlp_step("interp", True)
    ups = step.dp_updates
    assert isinstance(ups + [], DataParallelUpdates) and isinstance([] + ups, DataParallelUpdates)
    assert ups.grad_input.shape == (5 * 4 + 4,)


def test_svrg_refuses_data_parallel():
    with pytest.raises(NotImplementedError, match="SVRG"):
        _mlp_step("interp", True, opt=tg.optim.SVRG(lr=0.1))


def test_data_parallel_needs_one_parameter_dtype():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,))
        a = tg.parameter("a", np.ones(3, np.float32))
        b = tg.parameter("b", np.ones(3, np.float64))
        loss = tg.sum(x * a) + tg.cast(tg.sum(tg.cast(x, "float64") * b), "float32")
        with pytest.raises(TypeError, match="one dtype"):
            tg.optim.SGD(lr=0.1).updates(loss, [a, b], data_parallel=True)


def test_shard_batches_on_one_rank_are_the_ordinary_batches():
    order = np.random.default_rng(0).permutation(10)
    shards = dist.shard_batches(order, 4)
    assert [s.tolist() for s in shards] == [order[0:4].tolist(), order[4:8].tolist(), order[8:].tolist()]


def test_allreduce_rejects_bad_arguments():
    with pytest.raises(ValueError, match="op must be one of"):
        dist.allreduce(np.ones(3), "prod")
    with pytest.raises(TypeError, match="numeric"):
        dist.allreduce(np.array(["a"]))


# ---- tg.train.fit and the command line under MPI -----------------------------------------

def _fit(tmp_path, ranks, epochs, ckpt, *flags, timeout=240):
    args = [MPI_SCRIPTS / "fit_run.py", epochs, ckpt] + list(flags)
    if ranks == 1:
        return subprocess.run([sys.executable] + [str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout, env=_env(), cwd=ROOT)
    return mpirun(args, n=ranks, timeout=timeout)


def _result(proc) -> dict:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(line)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """4 epochs on 2 ranks without a break, checkpointing into a folder of its own."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    return _result(_fit(folder, 2, 4, folder / "ckpt"))


@needs_mpi
def test_fit_on_two_ranks_keeps_parameters_identical_and_prints_once(uninterrupted, tmp_path):
    assert uninterrupted["identical"] is True and uninterrupted["size"] == 2
    proc = _fit(tmp_path, 2, 2, "-")
    assert proc.stdout.count("epoch 1/2 ") == 1 and proc.stdout.count("{") == 1, proc.stdout
    row = _result(proc)
    assert row["bars_by_rank0"] == 2 and row["bars_by_other_ranks"] == 0    # progress bars: rank 0's only


@needs_mpi
def test_fit_resume_under_mpi_is_exact(uninterrupted, tmp_path):
    _result(_fit(tmp_path, 2, 2, tmp_path / "ckpt"))
    resumed = _result(_fit(tmp_path, 2, 4, tmp_path / "ckpt", "resume"))
    assert resumed["digest"] == uninterrupted["digest"]
    assert resumed["loss"] == uninterrupted["loss"]


@needs_mpi
def test_killed_rank_ends_the_job_and_the_checkpoint_resumes(uninterrupted, tmp_path):
    start = time.monotonic()
    proc = _fit(tmp_path, 2, 4, tmp_path / "ckpt", "kill-after=2")
    assert proc.returncode != 0 and time.monotonic() - start < 60
    assert "Killed" in proc.stdout + proc.stderr
    assert (tmp_path / "ckpt" / "checkpoint.json").exists()
    resumed = _result(_fit(tmp_path, 2, 4, tmp_path / "ckpt", "resume"))
    assert resumed["digest"] == uninterrupted["digest"]
    # and with another number of ranks: it continues from the same epoch
    one = _result(_fit(tmp_path, 1, 5, tmp_path / "ckpt", "resume"))
    assert one["loss"][:4] == uninterrupted["loss"] and len(one["loss"]) == 5


@needs_mpi
def test_fit_divergence_stops_every_rank_together(tmp_path):
    start = time.monotonic()
    row = _result(_fit(tmp_path, 2, 3, "-", "diverge", timeout=120))
    assert time.monotonic() - start < 60
    assert row["diverged"] is True and row["diverged_epoch"] == 1 and row["identical"] is True


_CLI = "from tensorforge.cli import main; main()"


@needs_mpi
def test_cli_train_under_mpiexec_prints_once_and_writes_once(tmp_path):
    proc = mpirun(["-c", _CLI, "train", "--epochs", "2", "--no-progress", "--hidden", "16",
                   "--checkpoint-dir", tmp_path / "ckpt", "--plot", tmp_path / "curves.png"], timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.count("training a MLP") == 1 and out.count("test accuracy:") == 1, out
    assert out.count("epoch 2/2 ") == 1
    assert (tmp_path / "curves.png").exists() and (tmp_path / "ckpt" / "checkpoint.json").exists()


@needs_mpi
def test_cli_usage_error_on_one_rank_aborts_the_job(tmp_path):
    start = time.monotonic()
    proc = mpirun(["-c", _CLI, "train", "--data", str(tmp_path / "missing.npz"), "--epochs", "1"], timeout=90)
    assert proc.returncode != 0 and time.monotonic() - start < 60
    assert "missing.npz" in proc.stdout + proc.stderr


def test_cli_train_help_says_how_to_run_on_several_processes():
    from click.testing import CliRunner
    from tensorforge.cli import main
    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0
    assert "mpiexec -n N tensorforge train" in result.output and "tensorforge[distributed]" in result.output


def test_sync_batch_norm_needs_data_parallel():
    g = tg.Graph()
    with g:
        w = tg.parameter("w", np.ones(3, np.float32))
        with pytest.raises(ValueError, match="data_parallel=True"):
            tg.optim.SGD(lr=0.1).updates(tg.sum(w * w), [w], sync_batch_norm=True)


OPTIMIZERS = [
    lambda: tg.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda: tg.optim.Adagrad(lr=0.1, weight_decay=0.01),
    lambda: tg.optim.Adadelta(lr=1.0),
    lambda: tg.optim.RMSprop(lr=0.01, momentum=0.5, centered=True),
    lambda: tg.optim.Adam(lr=0.01, amsgrad=True, weight_decay=0.01),
    lambda: tg.optim.AdamW(lr=0.01),
    lambda: tg.optim.Adamax(lr=0.01),
    lambda: tg.optim.NAdam(lr=0.01),
]


@pytest.mark.parametrize("make", OPTIMIZERS, ids=lambda f: type(f()).__name__)
def test_every_optimizer_clipping_and_a_schedule_work_data_parallel(make):
    """One process: the data-parallel step (two native calls) follows the ordinary one
    step for step, with clipping and a learning-rate schedule changing lr in between."""
    rng = np.random.default_rng(1)
    batches = [(rng.normal(size=(6, 5)).astype(np.float32), rng.integers(0, 4, 6)) for _ in range(4)]
    finals = []
    for dp in (False, True):
        opt = make()
        step, params = _mlp_step("interp", dp, clip_norm=0.3, opt=opt)
        schedule = tg.optim.schedules.StepLR(opt, step_size=1, gamma=0.5)
        for xb, yb in batches:
            step(xb, yb)
            schedule.step()
        finals.append([p.value.copy() for p in params])
    for a, b in zip(*finals):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


@needs_mpi
def test_benchmark_quick_run_prints_the_tables():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "distributed.py"), "--quick"],
                          capture_output=True, text=True, timeout=300, env=_env(), cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for title in ("steps/s, 1 and 2 ranks", "the split step on one process", "allreduce against gradient size"):
        assert title in proc.stdout
    assert "| MLP 784-256-256-10, Adam, batch 128/rank | 2 |" in proc.stdout


def test_data_parallel_step_in_check_mode_runs_both_stages_against_the_interpreter():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3))
        w = tg.parameter("w", np.ones(3, np.float32))
        loss = tg.mean(tg.sum(x * w, axis=1) ** 2)
        ups = tg.optim.Adam(lr=0.1).updates(loss, [w], data_parallel=True)
        step = tg.compile([x], [loss], updates=ups, backend="llvm", check=True)
    step(np.ones((2, 3), np.float32))
    assert step.forward._checker is not None and step.apply._checker is not None


def test_cli_under_a_launcher_without_mpi4py_is_one_clear_line():
    code = ("import sys; sys.modules['mpi4py'] = None\nfrom tensorforge.cli import main\n"
            "main(['train', '--epochs', '1'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=_env(PMI_RANK="0", PMI_SIZE="2"), cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "tensorforge[distributed]" in proc.stderr, proc.stderr
