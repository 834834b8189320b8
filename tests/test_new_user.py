"""Issue 13, "a new user's first hour": one test (or a few) per item of its "Found, to fix" list.

The command line runs as a user would run it (a subprocess); oracles are the interpreter backend,
scikit-learn's own preprocessing, and the files the commands write.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from helpers import as_from_a_terminal

import tensorforge as tg

ROOT = Path(__file__).resolve().parent.parent
FAST = ("--no-progress", "--epochs", "2", "--hidden", "8")


def run_cli(*args, timeout=300, env=None, blocked=(), cwd=None):
    """`tensorforge ARGS`; ``blocked``: packages made unimportable, as if not installed."""
    env = dict(os.environ if env is None else env, PYTHONUNBUFFERED="1")
    code = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in blocked) + \
        "from tensorforge.cli import main\nmain(prog_name='tensorforge')\n"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def ok(*args, **kwargs):
    proc = run_cli(*args, **kwargs)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def one_line_error(proc, *mentions, code=2) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    for m in mentions:
        assert m in lines[0], (m, lines[0])
    return lines[0]


def blobs(n_per_class=30, classes=3, features=2, seed=0, spread=0.5):
    """Well separated Gaussian blobs: (x float64, y int64 0..classes-1)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-4, 4, (classes, features))
    x = np.concatenate([c + spread * rng.standard_normal((n_per_class, features)) for c in centres])
    y = np.repeat(np.arange(classes), n_per_class)
    order = rng.permutation(len(y))
    return x[order], y[order]


def write_csv(path, x, labels, delimiter=",", header=True):
    lines = [delimiter.join([f"f{j}" for j in range(x.shape[1])] + ["label"])] if header else []
    lines += [delimiter.join([repr(float(v)) for v in row] + [str(lab)]) for row, lab in zip(x, labels)]
    Path(path).write_text("\n".join(lines) + "\n")


def predictions(stdout: str) -> list[str]:
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("label"), stdout
    return [line.split(",")[0] for line in lines[1:]]


# ---- 1. optional packages: one line naming the extra, before any work -----------------------------

def test_plot_without_matplotlib_is_one_line_naming_the_extra_before_training(tmp_path):
    proc = run_cli("train", *FAST, "--plot", tmp_path / "c.png", blocked=["matplotlib"])
    one_line_error(proc, "--plot needs matplotlib", "pip install 'tensorforge[export]'")
    assert "training a" not in proc.stdout          # checked before the run, not after it


@pytest.mark.parametrize("args, package, feature", [
    (["export", "mlp", "--format", "onnx", "-o", "m.onnx"], "onnx", "--format onnx"),
    (["export", "mlp", "--format", "png", "-o", "m.png"], "matplotlib", "--format png"),
    (["bench", "small-mlp", "--seconds", "0.05", "--backend", "interp", "--plot", "b.png"], "matplotlib",
     "--plot"),
])
def test_other_optional_features_name_their_extra(tmp_path, args, package, feature):
    env = dict(os.environ, PATH=str(tmp_path))       # no Graphviz `dot`: pictures need matplotlib
    proc = run_cli(*args, blocked=[package], env=env, cwd=tmp_path)
    one_line_error(proc, f"{feature} needs {package}", "pip install 'tensorforge[export]'")
    assert "steps/s" not in proc.stdout


def test_matplotlib_is_a_core_dependency_since_the_first_examples_plot():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("matplotlib") for d in project["dependencies"])
    assert any(d.startswith("onnx") for d in project["optional-dependencies"]["export"])


def test_require_names_the_extra_and_is_an_import_error():
    from tensorforge._optional import MissingOptional, require
    assert require("json", extra="x", feature="y").dumps([1]) == "[1]"
    with pytest.raises(MissingOptional, match=r"--thing needs no_such_pkg_13: pip install 'tensorforge\[extra\]'"):
        require("no_such_pkg_13", extra="extra", feature="--thing")
    assert issubclass(MissingOptional, ImportError)


# ---- 3. pictures: Graphviz named, fused kernels say what they hold, a readable fallback -------------

def _fused_step():
    g = tg.Graph("fz")
    with g:
        x = tg.placeholder("x", (None, 6))
        y = tg.placeholder("y", (None,), dtype="int64")
        w = tg.parameter("w", np.ones((6, 3), np.float32))
        loss = tg.mean(tg.softmax_cross_entropy(tg.relu(x @ w) * 2.0, y))
    fn = tg.compile([x, y], [loss], backend="llvm")
    fn(np.ones((4, 6), np.float32), np.zeros(4, np.int64))
    return fn


def test_fused_kernels_are_labelled_with_the_ops_they_hold():
    text = tg.export.to_dot(_fused_step(), fused=True)
    labels = re.findall(r'label="(fused[^"]*)"', text)
    assert labels, text
    assert not any("loads" in lab for lab in labels)
    assert any("exp" in lab and "reduce: " in lab for lab in labels), labels      # the softmax's kernel
    assert any("maximum" in lab or "mul" in lab for lab in labels), labels        # relu(.) * 2


def test_the_matplotlib_drawing_keeps_svg_text_as_text_and_boxes_apart(tmp_path):
    import importlib

    from matplotlib.font_manager import FontProperties
    d = importlib.import_module("tensorforge.export.draw")
    g = tg.Graph("pic")
    with g:
        x = tg.placeholder("a_rather_long_input_name", (None, 64))
        w = tg.parameter("dense0/a_long_weight_name", np.ones((64, 128), np.float32))
        out = tg.relu(x @ w) + tg.relu(x @ w) * 3.0
    path = d.draw(out, tmp_path / "g.svg", engine="matplotlib")
    svg = path.read_text()
    assert "<text" in svg and "a_rather_long_input_name" in svg      # text, not glyph outlines
    view = d.graph_view(out)
    sizes = d.box_sizes(view["labels"], FontProperties(family="DejaVu Sans", size=d.FONT_PT))
    pos, (width, height) = d.sized_layout(view["nodes"], view["edges"], sizes)
    boxes = {n: (x - sizes[n][0] / 2, x + sizes[n][0] / 2, y - sizes[n][1] / 2, y + sizes[n][1] / 2)
             for n, (x, y) in pos.items()}
    for n, (x0, x1, y0, y1) in boxes.items():
        assert 0 <= x0 and x1 <= width and 0 <= y0 and y1 <= height       # nothing cut at the edges
        for m, (u0, u1, v0, v1) in boxes.items():
            if m != n:
                assert x1 <= u0 or u1 <= x0 or y1 <= v0 or v1 <= y0, (n, m)   # no two boxes overlap


def test_graphviz_is_named_in_the_readme_and_installed_by_ci():
    assert "Graphviz" in (ROOT / "README.md").read_text()
    assert "graphviz" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed (apt-get install graphviz)")
def test_graphviz_draws_the_fused_step(tmp_path):
    path = tg.export.draw(_fused_step(), tmp_path / "f.svg", engine="graphviz", fused=True)
    assert "fused kernel:" in path.read_text()


# ---- 4. save a trained model, predict with it, export its trained weights ----------------------------

@pytest.fixture(scope="module")
def word_model(tmp_path_factory):
    """A model trained on a semicolon CSV with word labels, saved as a folder."""
    tmp = tmp_path_factory.mktemp("words")
    x, y = blobs()
    words = np.array(["cat", "dog", "fish"])[y]
    write_csv(tmp / "animals.csv", x, words, delimiter=";")
    proc = ok("train", "--data", tmp / "animals.csv", "--no-progress", "--epochs", "30", "--save", tmp / "model")
    return tmp, x, words, proc


def test_train_save_then_predict_gives_the_original_word_labels(word_model):
    tmp, x, words, proc = word_model
    assert "labels are words: 3 classes (cat, dog, fish)" in proc.stdout
    write_csv(tmp / "new.csv", x[:20], ["?"] * 20, header=False)
    (tmp / "new.csv").write_text("\n".join(";".join(repr(float(v)) for v in row) for row in x[:20]) + "\n")
    llvm = predictions(ok("predict", tmp / "model", "--data", tmp / "new.csv").stdout)
    interp = predictions(ok("predict", tmp / "model", "--data", tmp / "new.csv", "--backend", "interp").stdout)
    assert llvm == interp                                           # the interpreter is the oracle
    assert set(llvm) <= {"cat", "dog", "fish"} and np.mean(np.array(llvm) == words[:20]) >= 0.9


def test_predict_with_labels_reports_accuracy_and_writes_probabilities(word_model):
    tmp, x, words, _ = word_model
    proc = ok("predict", tmp / "model", "--data", tmp / "animals.csv", "--out", tmp / "p.csv", "--proba")
    assert re.search(r"accuracy on the 90 labels in animals.csv: (0\.9\d+|1\.0+)", proc.stdout), proc.stdout
    rows = (tmp / "p.csv").read_text().splitlines()
    assert rows[0] == "label,p_cat,p_dog,p_fish" and len(rows) == 91
    probs = np.array([[float(v) for v in r.split(",")[1:]] for r in rows[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_export_of_a_saved_model_writes_the_trained_weights(word_model, tmp_path):
    tmp, *_ = word_model
    ok("export", tmp / "model", "--format", "json", "-o", tmp_path / "trained.json")
    trained = tg.export.load(tmp_path / "trained.json")
    saved = tg.export.load(tmp / "model" / "model.json")
    for name, p in saved.parameters.items():
        np.testing.assert_array_equal(np.asarray(trained.parameters[name].value), np.asarray(p.value))
    from tensorforge.cli import _build_model
    untrained = _build_model("mlp", 0, in_features=2, classes=3)
    first = np.asarray(next(iter(saved.parameters.values())).value)
    assert not any(np.array_equal(first, np.asarray(p.value)) for p in untrained.parameters(tg.Graph()))
    assert "(?, 3)" in ok("show", tmp / "model").stdout


def test_a_tgz_model_round_trips_and_a_tampered_model_is_one_line(tmp_path):
    x, y = blobs()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ok("train", "--data", tmp_path / "d.npz", *FAST, "--save", tmp_path / "m.tgz")
    np.save(tmp_path / "rows.npy", x[:5])
    assert len(predictions(ok("predict", tmp_path / "m.tgz", "--data", tmp_path / "rows.npy").stdout)) == 5
    ok("train", "--data", tmp_path / "d.npz", *FAST, "--save", tmp_path / "m")
    graph = tmp_path / "m" / "model.json"
    graph.write_text(graph.read_text().replace('"graph_name"', '"graph_name" ', 1))
    one_line_error(run_cli("predict", tmp_path / "m", "--data", tmp_path / "rows.npy"), "MODEL", "model.json")


# ---- 5. your own data ---------------------------------------------------------------------------

@pytest.mark.parametrize("delimiter, option", [(";", ()), ("\t", ()), ("|", ("--delimiter", "|"))])
def test_csv_separators_are_sniffed_or_given(tmp_path, delimiter, option):
    x, y = blobs()
    write_csv(tmp_path / "d.csv", x, y, delimiter=delimiter)
    proc = ok("train", "--data", tmp_path / "d.csv", *FAST, *option)
    assert "test accuracy" in proc.stdout


def test_one_based_labels_are_encoded_with_a_note_and_predicted_back(tmp_path):
    x, y = blobs()
    write_csv(tmp_path / "d.csv", x, y + 1)
    proc = ok("train", "--data", tmp_path / "d.csv", "--no-progress", "--epochs", "30", "--save", tmp_path / "m")
    assert "note: labels 1..3 are taken as classes 0..2" in proc.stdout
    assert "(?, 3)" in ok("show", tmp_path / "m").stdout                 # no empty class 0
    np.save(tmp_path / "rows.npy", x[:30])
    got = np.array(predictions(ok("predict", tmp_path / "m", "--data", tmp_path / "rows.npy").stdout), int)
    assert set(got) <= {1, 2, 3} and np.mean(got == y[:30] + 1) >= 0.9


def test_word_labels_are_encoded_like_sklearn_label_encoder():
    from sklearn.preprocessing import LabelEncoder

    from tensorforge.data import encode_labels
    y = np.array(["b", "a", "c", "a"])
    got = encode_labels(y, "t")
    np.testing.assert_array_equal(got.y, LabelEncoder().fit_transform(y))
    assert list(got.classes) == ["a", "b", "c"]
    assert encode_labels(np.array([0, 2, 1]), "t").note is None


def test_nhw_arrays_get_a_channel_for_the_cnn(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 40)
    x = rng.standard_normal((40, 6, 6)) + y[:, None, None]
    np.savez(tmp_path / "imgs.npz", x=x, y=y)
    assert "test accuracy" in ok("train", "--data", tmp_path / "imgs.npz", "--model", "cnn", *FAST).stdout


def test_rows_too_small_to_be_images_are_refused_for_the_cnn_unless_shaped(tmp_path):
    x, y = blobs(features=4)
    write_csv(tmp_path / "four.csv", x, y)
    one_line_error(run_cli("train", "--data", tmp_path / "four.csv", "--model", "cnn", *FAST),
                   "--image-shape", "4 features")
    proc = ok("train", "--data", tmp_path / "four.csv", "--model", "cnn", "--image-shape", "2x2", *FAST)
    assert "test accuracy" in proc.stdout


def test_standard_scaling_is_fit_on_the_training_part_only():
    from sklearn.preprocessing import StandardScaler

    from tensorforge import cli_data
    x, y = blobs()
    prepared = cli_data.Prepared(*cli_data.stratified_split(x * 1000 + 5000, y, 0), "t", np.arange(3), is_file=True)
    raw_train, raw_test = prepared.x_train.copy(), prepared.x_test.copy()
    cli_data.scale(prepared, "auto")
    reference = StandardScaler().fit(raw_train)
    np.testing.assert_allclose(prepared.x_train, reference.transform(raw_train), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(prepared.x_test, reference.transform(raw_test), rtol=1e-5, atol=1e-5)


def test_an_unscaled_data_set_trains_by_default(tmp_path):
    x, y = blobs(seed=3)
    write_csv(tmp_path / "big.csv", x * 1000 + 20000, y)
    proc = ok("train", "--data", tmp_path / "big.csv", "--no-progress", "--epochs", "30")
    assert float(re.search(r"test accuracy: ([0-9.]+)", proc.stdout).group(1)) >= 0.9, proc.stdout


def test_the_split_is_stratified():
    from tensorforge import cli_data
    y = np.array([0] * 80 + [1] * 20)
    x = np.arange(100.0)[:, None]
    _, y_train, _, y_test = cli_data.stratified_split(x, y, seed=0)
    assert np.bincount(y_test).tolist() == [20, 5] and np.bincount(y_train).tolist() == [60, 15]


def test_a_bad_csv_value_is_named_by_file_line_and_data_row(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,0\n3,oops,1\n4,5,1\n")
    one_line_error(run_cli("train", "--data", tmp_path / "d.csv", *FAST), "line 3 (data row 2), column 2")
    (tmp_path / "plain.csv").write_text("1,2,0\n3,nan,1\n4,5,1\n")
    one_line_error(run_cli("train", "--data", tmp_path / "plain.csv", *FAST), "row 2, column 2")


# ---- 6. defaults, warnings, Ctrl-C, logs, resuming, show --ir, fit, dtypes --------------------------------

@pytest.mark.slow
def test_spirals_with_defaults_reach_95_percent():
    proc = ok("train", "--data", "spirals", "--no-progress")
    assert float(re.search(r"test accuracy: ([0-9.]+)", proc.stdout).group(1)) >= 0.95, proc.stdout


def test_onecycle_shows_no_python_warning():
    proc = ok("train", "--data", "xor", "--schedule", "onecycle", *FAST)
    assert "Warning" not in proc.stderr and "cycle_momentum" not in proc.stderr, proc.stderr


def test_ctrl_c_on_llvm_keeps_the_history_and_prints_the_summary(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "tensorforge.cli", "train", "--data", "spirals",
                             "--epochs", "100000", "--plot", str(tmp_path / "c.png")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=as_from_a_terminal)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("epoch 3/"):
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    out = "".join(seen) + out
    assert proc.returncode == 130, (out, err)
    assert err.strip().splitlines() == [err.strip()] and err.startswith("Error: interrupted"), err
    epochs = int(re.search(r"epochs run: (\d+)", out).group(1))
    assert epochs >= 3 and "test accuracy: " in out and (tmp_path / "c.png").is_file(), out


def test_no_progress_bars_in_a_redirected_log():
    proc = ok("train", "--data", "xor", "--epochs", "3", "--hidden", "8")     # stderr is a pipe here
    assert "\r" not in proc.stderr and "batch" not in proc.stderr, proc.stderr


def test_resuming_with_another_optimizer_is_one_clear_line(tmp_path):
    ok("train", "--data", "xor", *FAST, "--checkpoint-dir", tmp_path / "ck")
    line = one_line_error(run_cli("train", "--data", "xor", *FAST, "--checkpoint-dir", tmp_path / "ck", "--resume",
                                  "--optimizer", "sgd"), "written by adam", "sgd")
    assert "no values for" not in line


def test_show_ir_triton_prints_the_source_without_a_gpu(tmp_path):
    ok("export", "mlp", "--format", "json", "-o", tmp_path / "mlp.json")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    out = ok("show", tmp_path / "mlp.json", "--ir", "--backend", "triton", env=env).stdout
    assert "@triton.jit" in out and "def tf_k" in out


def test_fit_defaults_to_the_llvm_backend_like_the_command_line():
    assert tg.train.default_backend() == "llvm"
    x, y = blobs()
    model = tg.nn.Sequential(tg.nn.Dense(2, 8, seed=0), tg.nn.ReLU(), tg.nn.Dense(8, 3, seed=1))
    h = tg.train.fit(model, x.astype(np.float32), y, epochs=1, progress=False, verbose=False)
    assert h.train_step.backend.name == "llvm"
    assert tg.train.default_backend("interp") == "interp"


def test_float64_input_behaves_as_the_readme_says():
    readme = (ROOT / "README.md").read_text()
    assert "float64 arrays are converted to the placeholder's float32" in readme
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3))
        y = tg.placeholder("labels", (None,), dtype="int64")
        out = x * 2.0
        picked = tg.mean(tg.softmax_cross_entropy(x, y))
    fn = tg.compile([x], [out], backend="interp")
    a = np.random.default_rng(0).standard_normal((2, 3))
    np.testing.assert_array_equal(fn(a)[0], fn(a.astype(np.float32))[0])
    fn2 = tg.compile([x, y], [picked], backend="interp")
    with pytest.raises(tg.InputError if hasattr(tg, "InputError") else ValueError, match="'labels'.*integer"):
        fn2(a.astype(np.float32), np.zeros(2))
