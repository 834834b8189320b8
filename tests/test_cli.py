"""The command line run as a user would (a subprocess): train, bench, export and show, and its errors."""
import re
import subprocess
import sys

import numpy as np
import pytest


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tensorforge.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_main_job_trains_an_mlp_on_digits_to_at_least_95_percent():
    proc = run_cli("train", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    acc = float(re.search(r"test accuracy: ([0-9.]+)", proc.stdout).group(1))
    assert acc >= 0.95, proc.stdout


@pytest.mark.parametrize("args, culprit", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--optimizer", "bogus"], "--optimizer"),
    (["train", "--backend", "cuda"], "--backend"),
])
def test_bad_options_give_one_clear_line_and_no_traceback(args, culprit):
    proc = run_cli(*args)
    assert proc.returncode != 0
    assert culprit in proc.stderr
    assert "Traceback" not in proc.stderr


def test_triton_without_a_gpu_or_the_interpreter_is_a_clear_error():
    import os
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run([sys.executable, "-m", "tensorforge.cli", "train", "--backend", "triton"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0
    assert "GPU" in proc.stderr and "TRITON_INTERPRET=1" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---- helpers for the commands below ----------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MLP_PARAMETER_COUNT = 64 * 128 + 128 + 128 * 10 + 10


def ok(*args):
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def fails(*args, mentions):
    proc = run_cli(*args)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert mentions in proc.stderr, proc.stderr
    return proc.stderr


def accuracy_in(stdout):
    return float(re.search(r"test accuracy: ([0-9.]+)", stdout).group(1))


@pytest.fixture(scope="module")
def saved_mlp(tmp_path_factory):
    """The built-in MLP saved with `tensorforge export --format json` (graph + .npz)."""
    path = tmp_path_factory.mktemp("saved") / "mlp.json"
    out = ok("export", "mlp", "--format", "json", "-o", str(path))
    assert "wrote" in out and path.is_file() and path.with_suffix(".npz").is_file()
    return path


# ---- train ----------------------------------------------------------------------------------

def test_train_xor_with_sgd_momentum_and_a_plateau_schedule_reaches_full_accuracy():
    out = ok("train", "--no-progress", "--data", "xor", "--hidden", "16", "--optimizer", "sgd", "--lr", "0.1",
             "--momentum", "0.9", "--epochs", "150", "--batch-size", "4", "--schedule", "plateau",
             "--backend", "interp")
    assert accuracy_in(out) == 1.0, out


def test_train_cnn_on_digit_images_with_onecycle_writes_the_table_and_a_png_plot(tmp_path):
    plot = tmp_path / "curves.png"
    out = ok("train", "--no-progress", "--data", "digits-images", "--model", "cnn", "--epochs", "2",
             "--optimizer", "adam", "--schedule", "onecycle", "--lr", "0.01", "--plot", str(plot))
    assert accuracy_in(out) >= 0.85, out
    # the final table: train / validation / test rows with a loss and an accuracy
    rows = {m.group(1): (float(m.group(2)), float(m.group(3)))
            for m in re.finditer(r"^(train|validation|test)\b.*?([0-9.]+)\s+([0-9.]+)$", out, re.M)}
    assert set(rows) == {"train", "validation", "test"}, out
    assert rows["test"][1] == accuracy_in(out)
    assert plot.read_bytes()[:8] == PNG_MAGIC


def test_train_on_a_users_npz_and_csv(tmp_path):
    # two well separated Gaussian blobs: any working classifier gets them all
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 0.5, (60, 3)), rng.normal(2, 0.5, (60, 3))]).astype(np.float32)
    y = np.repeat([0, 1], 60)
    np.savez(tmp_path / "blobs.npz", x=x, y=y)
    np.savetxt(tmp_path / "blobs.csv", np.column_stack([x, y]), delimiter=",", header="a,b,c,label",
               comments="")
    for name in ("blobs.npz", "blobs.csv"):
        out = ok("train", "--no-progress", "--data", str(tmp_path / name), "--epochs", "5", "--hidden", "8",
                 "--backend", "interp")
        assert f"on {name} (75 train / 15 validation / 30 test)" in out
        assert accuracy_in(out) >= 0.95, out


def test_train_a_saved_graph(saved_mlp):
    out = ok("train", "--no-progress", "--model", str(saved_mlp), "--epochs", "3")
    assert accuracy_in(out) >= 0.9, out


def test_train_with_checkpoints_saves_every_epoch_and_resumes(tmp_path):
    import inspect
    import tensorforge as tg
    if "checkpoint_dir" not in inspect.signature(tg.train.fit).parameters:
        pytest.skip("tg.train.fit has no checkpoints yet")
    ckpt = tmp_path / "ckpt"
    ok("train", "--no-progress", "--epochs", "2", "--checkpoint-dir", str(ckpt))
    assert any(ckpt.iterdir())
    out = ok("train", "--no-progress", "--epochs", "3", "--checkpoint-dir", str(ckpt), "--resume")
    assert accuracy_in(out) >= 0.9, out


@pytest.mark.parametrize("args, mentions", [
    (["--data", "no/such/file.npz"], "no such file"),
    (["--data", "mnist"], "--data"),
    (["--model", "missing.json"], "no such file"),
    (["--optimizer", "adam", "--momentum", "0.9"], "--momentum"),
    (["--resume"], "--checkpoint-dir"),
    (["--plot", "curves.svg"], "--plot"),
    (["--schedule", "warp"], "--schedule"),
])
def test_train_user_mistakes_are_one_clear_line(args, mentions):
    fails("train", "--no-progress", "--epochs", "1", *args, mentions=mentions)


def test_train_bad_data_shapes_and_labels_are_clear_errors(tmp_path):
    np.savez(tmp_path / "nolabels.npz", x=np.zeros((10, 3), np.float32))
    fails("train", "--data", str(tmp_path / "nolabels.npz"), mentions="'x' and 'y'")
    np.savez(tmp_path / "mismatch.npz", x=np.zeros((10, 3), np.float32), y=np.zeros(7, np.int64))
    fails("train", "--data", str(tmp_path / "mismatch.npz"), mentions="as many")
    (tmp_path / "frac.csv").write_text("0.1,0.2,0.5\n0.3,0.4,1.5\n0.3,0.1,1\n")
    fails("train", "--data", str(tmp_path / "frac.csv"), mentions="labels")
    (tmp_path / "words.csv").write_text("a,b\nc,d\n")
    fails("train", "--data", str(tmp_path / "words.csv"), mentions="cannot read")
    np.savez(tmp_path / "rows3.npz", x=np.zeros((20, 3), np.float32), y=np.zeros(20, np.int64))
    fails("train", "--model", "cnn", "--data", str(tmp_path / "rows3.npz"), mentions="square")


# ---- bench ----------------------------------------------------------------------------------

def test_bench_interp_and_llvm_table_and_bar_chart(tmp_path):
    chart = tmp_path / "bars.png"
    out = ok("bench", "small-mlp", "--seconds", "0.2", "--backend", "interp", "--backend", "llvm",
             "--plot", str(chart))
    rows = {m.group(1): m.groups()[1:] for m in
            re.finditer(r"^(interp|llvm)\s+([0-9,.]+)\s+([0-9.]+)x\s+([0-9.]+)\s+([0-9.]+)$", out, re.M)}
    assert set(rows) == {"interp", "llvm"}, out
    assert float(rows["interp"][1]) == 1.0
    assert float(rows["llvm"][1]) > 1.0, out                  # compiled code beats the interpreter
    assert float(rows["llvm"][2]) > 0                          # llvm compiles; the time is reported
    # same initial parameters, same batch: the first-step losses agree
    assert abs(float(rows["interp"][3]) - float(rows["llvm"][3])) < 1e-3
    assert float(rows["interp"][3]) == pytest.approx(np.log(10), abs=1.5)
    assert chart.read_bytes()[:8] == PNG_MAGIC


def test_bench_profile_lists_the_slowest_kernels_of_each_step():
    out = ok("bench", "cnn", "--seconds", "0.1", "--backend", "llvm", "--profile", "3")
    head = re.search(r"^profile of cnn step on llvm: 50 steps, .* in (\d+) kernels$", out, re.M)
    assert head, out
    rows = re.findall(r"^\s+([0-9,.]+)\s+([0-9.]+)%\s+(k\d+_\w+): ", out, re.M)
    assert len(rows) == 3, out
    times = [float(t.replace(",", "")) for t, _, _ in rows]
    assert times == sorted(times, reverse=True) and times[0] > 0      # slowest first
    assert sum(float(share) for _, share, _ in rows) <= 100.5
    assert re.search(r"\(\d+ more kernels\)", out)


def test_bench_errors():
    fails("bench", "--profile", "0", mentions="--profile")
    fails("bench", "resnet", mentions="'resnet' is not one of")
    fails("bench", "--backend", "cuda", "--seconds", "0.1", mentions="--backend")
    fails("bench", "--seconds", "0", mentions="--seconds")


# ---- export and show ----------------------------------------------------------------------------

def test_export_json_loads_back_and_gives_the_same_outputs(saved_mlp):
    import tensorforge as tg
    loaded = tg.export.load(str(saved_mlp))
    params = list(loaded.parameters.values())
    assert sum(int(np.prod(p.shape)) for p in params) == MLP_PARAMETER_COUNT
    x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    out = tg.compile(list(loaded.inputs), list(loaded.outputs))(x)[0]
    # the built-in MLP (seed 0) computed by hand from the saved parameters: relu(x W0 + b0) W1 + b1
    by_shape = {p.shape: np.asarray(p.value) for p in params}
    h = np.maximum(x @ by_shape[(64, 128)] + by_shape[(128,)], 0)
    np.testing.assert_allclose(out, h @ by_shape[(128, 10)] + by_shape[(10,)], rtol=1e-4, atol=1e-5)


def test_export_dot_svg_png_and_onnx(tmp_path):
    import xml.etree.ElementTree as ET
    ok("export", "mlp", "--format", "dot", "--backward", "-o", str(tmp_path / "g.dot"))
    text = (tmp_path / "g.dot").read_text()
    assert text.lstrip().startswith("digraph") and "matmul" in text
    ok("export", "mlp", "--format", "svg", "--backward", "-o", str(tmp_path / "g.svg"))
    assert ET.parse(tmp_path / "g.svg").getroot().tag.endswith("svg")
    ok("export", "cnn", "--format", "png", "--fused", "-o", str(tmp_path / "g.png"))
    assert (tmp_path / "g.png").read_bytes()[:8] == PNG_MAGIC
    onnx = pytest.importorskip("onnx")
    ok("export", "cnn", "--format", "onnx", "-o", str(tmp_path / "cnn.onnx"))
    onnx.checker.check_model(onnx.load(str(tmp_path / "cnn.onnx")))


def test_export_errors(tmp_path, saved_mlp):
    fails("export", "nothing.json", "--format", "dot", "-o", str(tmp_path / "x.dot"), mentions="no such file")
    fails("export", "mlp", "--format", "gif", "-o", str(tmp_path / "x.gif"), mentions="--format")
    fails("export", "mlp", "--format", "json", "--backward", "-o", str(tmp_path / "x.json"), mentions="--backward")
    fails("export", "mlp", "--format", "png", "-o", str(tmp_path / "x.svg"), mentions=".png")
    (tmp_path / "bad.json").write_text("{not json")
    fails("show", str(tmp_path / "bad.json"), mentions="cannot load")


def test_show_summarises_a_saved_graph_and_prints_its_llvm_ir(saved_mlp):
    out = ok("show", str(saved_mlp))
    assert f"({MLP_PARAMETER_COUNT:,} values)" in out, out
    assert re.search(r"^\s+matmul\s+2$", out, re.M), out
    assert re.search(r"^\s+relu\s+1$", out, re.M), out
    assert "(?, 64)" in out and "(64, 128)" in out
    ir = ok("show", str(saved_mlp), "--ir")
    assert "define" in ir
    fails("show", "missing.json", mentions="no such file")
