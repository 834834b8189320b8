"""The command line never prints a traceback: every failure is one "Error: ..." line on stderr naming
the culprit, exit code 2; a diverged run says where and still prints its summary; Ctrl-C stops
cleanly with the summary so far and exit code 130. Run as a user would (a subprocess), on tiny
data with the interpreter backend."""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import as_from_a_terminal

import tensorforge as tg

FAST = ("--no-progress", "--epochs", "1", "--backend", "interp", "--hidden", "8")


def run_cli(*args, timeout=120):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "tensorforge.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=env)


def one_line_error(proc, *mentions, code=2) -> str:
    """The run failed with exit code ``code`` and one "Error: " line that mentions every culprit."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for m in mentions:
        assert m in lines[0], (m, lines[0])
    return lines[0]


def train_fails(*args, mentions):
    return one_line_error(run_cli("train", *FAST, *args), *mentions)


def blobs(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


@pytest.fixture
def good_npz(tmp_path):
    path = tmp_path / "good.npz"
    x, y = blobs()
    np.savez(path, x=x, y=y)
    return path


# ---- divergence ------------------------------------------------------------------------------

def test_a_run_diverging_in_a_step_says_where_and_still_prints_its_summary(tmp_path):
    x, y = blobs(200)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    proc = run_cli("train", *FAST, "--data", tmp_path / "d.npz", "--optimizer", "sgd", "--lr", "1e30",
                   "--batch-size", "8", "--epochs", "3")
    line = one_line_error(proc, "training diverged at epoch 1 step 2: loss is nan", "--lr")
    assert "KeyError" not in line
    assert "epochs run: 0" in proc.stdout, proc.stdout
    assert "test accuracy: " in proc.stdout
    # the parameters kept are finite (those of the start of the run): the test loss is a number
    test_loss = float(proc.stdout.split("\ntest ")[1].split()[0])
    assert np.isfinite(test_loss), proc.stdout


def test_a_run_whose_last_update_diverges_is_caught_by_validation(good_npz):
    # one batch per epoch: the training loss is finite, the parameters after the update are not
    proc = run_cli("train", *FAST, "--data", good_npz, "--optimizer", "sgd", "--lr", "1e30")
    one_line_error(proc, "training diverged at epoch 1: validation loss is nan", "--lr")
    assert "epochs run: 1" in proc.stdout and "test accuracy: " in proc.stdout, proc.stdout


def test_fit_stops_at_the_first_non_finite_loss_and_keeps_the_best_finite_parameters():
    x, y = blobs(64)
    model = tg.nn.Sequential(tg.nn.Dense(3, 8, seed=0), tg.nn.ReLU(), tg.nn.Dense(8, 2, seed=1))
    fit = dict(epochs=2, batch_size=16, progress=False, verbose=False, validation_data=(x, y))
    h = tg.train.fit(model, x, y, optimizer=tg.optim.Adam(lr=1e-2), **fit)
    assert not h.diverged
    kept = [np.array(p.value) for p in model.parameters(h.graph)]
    with pytest.warns(RuntimeWarning, match="diverged at epoch 1 step 2"), np.errstate(all="ignore"):
        h = tg.train.fit(model, x, y, optimizer=tg.optim.SGD(lr=1e30), **fit)
    assert h.diverged and (h.diverged_epoch, h.diverged_step) == (1, 2) and not np.isfinite(h.diverged_loss)
    assert h.epochs == 0
    for before, p in zip(kept, model.parameters(h.graph)):
        np.testing.assert_array_equal(np.asarray(p.value), before)   # the run's starting parameters


# ---- data files ---------------------------------------------------------------------------------

def test_nan_and_inf_features_are_refused_with_their_row_and_column(tmp_path):
    x, y = blobs()
    x[3, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=y)
    train_fails("--data", tmp_path / "nan.npz", mentions=["--data", "nan.npz", "row 4, column 2", "nan"])
    x[3, 1], x[5, 0] = 1.0, np.inf
    np.savez(tmp_path / "inf.npz", x=x, y=y)
    train_fails("--data", tmp_path / "inf.npz", mentions=["inf.npz", "row 6, column 1", "inf"])


def test_a_csv_row_is_numbered_as_the_line_an_editor_shows_and_as_a_data_row(tmp_path):
    # line 1 header, line 2 data, line 3 blank, line 4 the NaN (the second data row)
    (tmp_path / "nan.csv").write_text("a,b,label\n1,2,0\n\n3,nan,1\n1,1,1\n")
    train_fails("--data", tmp_path / "nan.csv", mentions=["nan.csv", "line 4 (data row 2), column 2"])
    (tmp_path / "word.csv").write_text("a,b,label\n1,2,0\n3,oops,1\n")
    train_fails("--data", tmp_path / "word.csv", mentions=["word.csv", "line 3 (data row 2), column 2", "'oops'"])
    (tmp_path / "ragged.csv").write_text("1,2,0\n3,1\n")
    train_fails("--data", tmp_path / "ragged.csv", mentions=["ragged.csv", "row 2 has 2 columns"])


@pytest.mark.parametrize("label, mentions", [
    (10 ** 12, ["label 1000000000000", "classes"]),    # used to try to allocate 931 TiB
    (-1, ["label -1", "non-negative integer"]),
    (0.5, ["label 0.5", "non-negative integer"]),
    (300, ["label 300", "at most 240"]),               # more than 10 classes per sample
])
def test_labels_are_checked_when_the_data_is_loaded(tmp_path, label, mentions):
    x, y = blobs()
    y = y.astype(np.float64 if isinstance(label, float) else np.int64)
    y[2] = label
    np.savez(tmp_path / "labels.npz", x=x, y=y)
    train_fails("--data", tmp_path / "labels.npz", mentions=["--data", "labels.npz", "row 3", *mentions])


def _write_bad_file(tmp_path, kind):
    x, y = blobs()
    path = tmp_path / f"{kind}.npz"
    if kind == "truncated":
        np.savez(tmp_path / "whole.npz", x=x, y=y)
        path.write_bytes((tmp_path / "whole.npz").read_bytes()[:300])
    elif kind == "zero":
        path.write_bytes(b"")
    elif kind == "empty":
        np.savez(path)
    elif kind == "strings":
        np.savez(path, x=np.array([["a", "b"]] * 4), y=np.zeros(4, np.int64))
    elif kind == "object":
        np.savez(path, x=np.array([[1, None]] * 4, dtype=object), y=np.zeros(4, np.int64))
    elif kind == "single":
        path = tmp_path / "single.npy"
        np.save(path, x)                       # 3 columns: x[:, :2] and a non-integer label
    elif kind == "npy1d":
        path = tmp_path / "npy1d.npy"
        np.save(path, y)
    elif kind == "binary_csv":
        path = tmp_path / "binary.csv"
        path.write_bytes(b"\xff\xfe\x00\x81" * 10)
    elif kind == "directory":
        path = tmp_path / "dir.npz"
        path.mkdir()
    return path


@pytest.mark.parametrize("kind, mentions", [
    ("truncated", ["cannot read", "truncated.npz"]),
    ("zero", ["zero.npz", "empty"]),
    ("empty", ["empty.npz", "'x' and 'y'", "no arrays"]),
    ("strings", ["strings.npz", "numbers"]),
    ("object", ["object.npz", "cannot read"]),
    ("single", ["single.npy", "row 1", "label"]),
    ("npy1d", ["npy1d.npy", "2-D"]),
    ("binary_csv", ["binary.csv", "not a text file"]),
    ("directory", ["dir.npz", "directory"]),
])
def test_damaged_or_wrong_data_files_are_one_line(tmp_path, kind, mentions):
    train_fails("--data", _write_bad_file(tmp_path, kind), mentions=["--data", *mentions])


def test_a_npy_table_trains_like_a_csv(tmp_path):
    x, y = blobs()
    np.save(tmp_path / "t.npy", np.column_stack([x, y]))
    proc = run_cli("train", *FAST, "--data", tmp_path / "t.npy")
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy: " in proc.stdout


def test_an_unknown_data_name_is_one_line():
    train_fails("--data", "mnist", mentions=["--data", "'mnist'", "digits"])


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_data_file_is_one_line(good_npz):
    good_npz.chmod(0)
    train_fails("--data", good_npz, mentions=["--data", "good.npz"])


# ---- saved graphs and checkpoints -------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["train", *FAST, "--model", "{path}", "--data", "xor"],
    ["show", "{path}"],
    ["export", "{path}", "--format", "dot", "-o", "{tmp}/out.dot"],
])
@pytest.mark.parametrize("kind", ["deep", "empty", "directory"])
def test_a_bad_saved_graph_is_one_line_for_every_command(tmp_path, command, kind):
    path = tmp_path / f"{kind}.json"
    if kind == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "empty":
        path.write_text("")
    else:
        path.mkdir()
    args = [a.format(path=path, tmp=tmp_path) for a in command]
    one_line_error(run_cli(*args), f"{kind}.json")


def test_a_damaged_checkpoint_or_an_unwritable_checkpoint_dir_is_one_line(tmp_path):
    ckpt = tmp_path / "ckpt"
    assert run_cli("train", *FAST, "--data", "xor", "--checkpoint-dir", ckpt).returncode == 0
    for f in ckpt.glob("*.npz"):
        f.write_bytes(f.read_bytes()[:100])
    proc = run_cli("train", *FAST, "--data", "xor", "--epochs", "2", "--checkpoint-dir", ckpt, "--resume")
    one_line_error(proc, "--checkpoint-dir", "cannot resume")
    (tmp_path / "file").write_text("")
    proc = run_cli("train", *FAST, "--data", "xor", "--checkpoint-dir", tmp_path / "file" / "sub")
    one_line_error(proc, "--checkpoint-dir", "file")


# ---- options and outputs of every command -------------------------------------------------------

@pytest.mark.parametrize("args, mentions", [
    (["train", "--lr", "nan"], ["--lr", "nan"]),
    (["train", "--lr", "inf"], ["--lr", "inf"]),
    (["train", "--seed", "-1"], ["--seed"]),
    (["bench", "--seconds", "inf"], ["--seconds"]),
    (["--bogus"], ["--bogus"]),
    (["train", "--epochs", "0"], ["--epochs"]),
    (["train", "--plot", "/no/such/folder/p.png"], ["--plot", "/no/such/folder"]),
    (["bench", "--plot", "/no/such/folder/p.png"], ["--plot", "/no/such/folder"]),
    (["export", "mlp", "--format", "dot", "-o", "/no/such/folder/g.dot"], ["-o", "/no/such/folder"]),
])
def test_bad_options_are_one_line_with_exit_code_2(args, mentions):
    one_line_error(run_cli(*args), *mentions)


def test_an_unexpected_error_is_one_line_with_a_hint_and_debug_shows_the_traceback(monkeypatch):
    from click.testing import CliRunner

    from tensorforge import cli

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(cli, "_load_data", broken)
    monkeypatch.delenv("TENSORFORGE_DEBUG", raising=False)
    result = CliRunner().invoke(cli.main, ["train", "--backend", "interp"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "Error: unexpected RuntimeError: something inside broke; rerun with --debug (or TENSORFORGE_DEBUG=1) "
        "for the traceback")
    result = CliRunner().invoke(cli.main, ["--debug", "train", "--backend", "interp"])
    assert isinstance(result.exception, RuntimeError)
    monkeypatch.setenv("TENSORFORGE_DEBUG", "1")
    result = CliRunner().invoke(cli.main, ["train", "--backend", "interp"])
    assert isinstance(result.exception, RuntimeError)


# ---- Ctrl-C -------------------------------------------------------------------------------------

def test_ctrl_c_during_training_stops_cleanly_with_the_summary_so_far():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "tensorforge.cli", "train", "--no-progress", "--data", "spirals",
                             "--epochs", "100000", "--backend", "interp", "--hidden", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=as_from_a_terminal)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("epoch 2/"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=60)
    out = "".join(seen) + out
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("Error: interrupted during epoch"), err
    assert "epochs run: " in out and "test accuracy: " in out, out


def test_python_dash_m_tensorforge_is_the_command_line():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "tensorforge", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Usage: tensorforge" in out.stdout and "train" in out.stdout
