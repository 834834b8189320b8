"""Files that tensorforge reads back: caches, saved graphs and checkpoints are trusted only when whole.

- the LLVM step cache and object cache: every file of an entry is signed together with its
  key; an edited, swapped, cut or missing file is a logged miss that rebuilds (damaged caches
  run in a subprocess, so a segfault fails the test instead of killing pytest);
- the Triton cache: a planted ``__pycache__/*.pyc`` is never executed;
- ``tg.export.save``: the graph file and its arrays are one unit, and a killed save leaves no
  temporary files;
- ``load`` / ``load_checkpoint``: every damaged file is a LoadError naming what and where.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tensorforge as tg

SRC = str(Path(tg.__file__).resolve().parent.parent)

# ---- the LLVM step cache ------------------------------------------------------------------------

STEP_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorforge as tg

    def run(backend, hidden):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (None, 6))
            y = tg.placeholder("y", (None,), dtype="int64")
            net = tg.nn.Sequential(tg.nn.Dense(6, hidden, seed=0), tg.nn.ReLU(), tg.nn.Dense(hidden, 3, seed=1))
            loss = tg.mean(tg.softmax_cross_entropy(net(x), y))
            updates = tg.optim.Adam(lr=1e-2).updates(loss, net.parameters())
        f = tg.compile([x, y], [loss], updates=updates, backend=backend)
        rng = np.random.default_rng(0)
        losses = [float(f(rng.standard_normal((5, 6)).astype("float32"), rng.integers(0, 3, 5))[0])
                  for _ in range(3)]
        return losses, "from the disk cache" in repr(f)

    out = {}
    for hidden in map(int, sys.argv[1:]):
        losses, cached = run("llvm", hidden)
        out[hidden] = {"llvm": losses, "cached": cached, "interp": run("interp", hidden)[0]}
    print(json.dumps(out))
""")


def _run_steps(cache: Path, *hidden: int) -> dict:
    """Build and run the training steps in a fresh process; its exit status must be 0 (no crash)."""
    env = dict(os.environ, TENSORFORGE_CACHE_DIR=str(cache), PYTHONPATH=SRC)
    done = subprocess.run([sys.executable, "-c", STEP_SCRIPT, *map(str, hidden)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the step process died (rc {done.returncode}):\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for h, r in result.items():
        np.testing.assert_allclose(r["llvm"], r["interp"], rtol=1e-5, err_msg=f"hidden={h}")
    return {int(h): r for h, r in result.items()}


def _entry_files(cache: Path) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for p in sorted((cache / "llvm" / "steps").iterdir()):
        files.setdefault(p.suffix.lstrip("."), []).append(p)
    return files


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache folder holding the entries of two different steps (hidden 8 and hidden 9)."""
    cache = tmp_path_factory.mktemp("warm") / "cache"
    first = _run_steps(cache, 8, 9)
    assert not first[8]["cached"] and not first[9]["cached"]
    return cache


def _copy_cache(warm: Path, tmp_path: Path) -> Path:
    import shutil
    cache = tmp_path / "cache"
    shutil.copytree(warm, cache)
    return cache


def _damage(path: Path, how: str) -> None:
    blob = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(blob[: len(blob) // 2]))
    elif how == "garble":
        path.write_bytes(b"\x00garbage\xff" * 3)
    elif how == "flip":
        blob[len(blob) // 3] ^= 0x5A
        path.write_bytes(bytes(blob))
    elif how == "delete":
        path.unlink()


def _assert_rebuilt_then_cached(cache: Path, hidden=(8,)) -> None:
    again = _run_steps(cache, *hidden)
    assert not any(again[h]["cached"] for h in hidden), "a damaged entry was served from the cache"
    third = _run_steps(cache, *hidden)
    assert all(third[h]["cached"] for h in hidden), "the rebuilt entry was not written back"


@pytest.mark.parametrize("suffix", ["o", "json", "npz", "ll", "sig"])
def test_llvm_step_cache_damaged_file_of_each_type_rebuilds(warm_cache, tmp_path, suffix):
    for how in ("truncate", "garble", "flip", "delete"):
        cache = _copy_cache(warm_cache, tmp_path / how)
        for path in _entry_files(cache)[suffix]:
            _damage(path, how)
        _assert_rebuilt_then_cached(cache, hidden=(8, 9))


def test_llvm_step_cache_validly_edited_manifest_rebuilds_instead_of_crashing(warm_cache, tmp_path):
    cache = _copy_cache(warm_cache, tmp_path)
    for path in _entry_files(cache)["json"]:
        manifest = json.loads(path.read_text())
        manifest["blocks"] = [8 for _ in manifest["blocks"]]          # buffers far too small
        for sl in manifest["slots"]:
            if "shape" in sl:
                sl["shape"] = [1 for _ in sl["shape"]]
        path.write_text(json.dumps(manifest))
    _assert_rebuilt_then_cached(cache, hidden=(8, 9))


def test_llvm_step_cache_swapped_object_files_rebuild_with_right_values(warm_cache, tmp_path):
    cache = _copy_cache(warm_cache, tmp_path)
    a, b = _entry_files(cache)["o"]
    blob_a, blob_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(blob_b)
    b.write_bytes(blob_a)
    _assert_rebuilt_then_cached(cache, hidden=(8, 9))


def test_llvm_object_cache_swapped_files_are_not_served(tmp_path, monkeypatch):
    """jit.compile_module(key=...): the object file of another entry is a miss, not its kernel."""
    import ctypes
    from tensorforge.backends.llvm import jit
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path))

    def ir(op):
        return ("define void @k(ptr %a, ptr %b, ptr %out) {\n"
                "  %x = load double, ptr %a\n  %y = load double, ptr %b\n"
                f"  %z = {op} double %x, %y\n  store double %z, ptr %out\n  ret void\n}}\n")

    def call(compiled):
        a, b, out = np.array([5.0]), np.array([3.0]), np.zeros(1)
        compiled.function("k", None, [ctypes.c_void_p] * 3)(a.ctypes.data, b.ctypes.data, out.ctypes.data)
        return out[0]

    jit.compile_module(ir("fadd"), key="add")
    jit.compile_module(ir("fsub"), key="sub")
    objs = sorted((tmp_path / "llvm").glob("*.o"))
    assert len(objs) == 2
    blobs = [p.read_bytes() for p in objs]
    objs[0].write_bytes(blobs[1])
    objs[1].write_bytes(blobs[0])
    add = jit.compile_module(ir("fadd"), key="add")
    sub = jit.compile_module(ir("fsub"), key="sub")
    assert (call(add), call(sub)) == (8.0, 2.0)
    assert not add.from_cache and not sub.from_cache
    assert jit.compile_module(ir("fadd"), key="add").from_cache      # rewritten, valid again


# ---- the Triton cache ---------------------------------------------------------------------------

def _triton_step():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 5))
        y = tg.tanh(x) * 2.0 + 1.0
    return x, y


def _plant_pyc(py: Path, marker: Path) -> Path:
    """A .pyc that importlib's file loader would accept for ``py`` (same mtime and size in its
    header): it defines what the module defines, then writes ``marker`` and breaks the kernels."""
    import importlib.util
    from importlib import _bootstrap_external
    evil = py.read_text() + (f"\nopen({str(marker)!r}, 'w').write('executed')\n"
                             "for _n in [n for n in dir() if n.startswith('tf_')]:\n"
                             "    globals()[_n] = None\n")
    code = compile(evil, str(py), "exec")
    st = py.stat()
    pyc = Path(importlib.util.cache_from_source(str(py)))
    pyc.parent.mkdir(parents=True, exist_ok=True)
    pyc.write_bytes(bytes(_bootstrap_external._code_to_timestamp_pyc(code, int(st.st_mtime), st.st_size)))
    return pyc


def test_triton_cache_never_runs_a_planted_pyc(tmp_path, monkeypatch):
    pytest.importorskip("triton")
    from tensorforge.backends.triton import source
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path / "cache"))
    data = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    x, y = _triton_step()
    (want,) = tg.compile([x], [y], backend="interp")(data)
    (first,) = tg.compile([x], [y], backend="triton")(data)
    np.testing.assert_allclose(first, want, rtol=1e-5, atol=1e-6)
    modules = sorted((tmp_path / "cache" / "triton").glob("*.py"))
    assert modules
    marker = tmp_path / "marker"
    for py in modules:
        _plant_pyc(py, marker)
    for name in [n for n in source._loaded if any(n == p.stem for p in modules)]:
        del source._loaded[name]          # as in a new process: the module is loaded again
        sys.modules.pop(name, None)
    x, y = _triton_step()
    (again,) = tg.compile([x], [y], backend="triton")(data)
    assert not marker.exists(), "the planted bytecode was executed"
    np.testing.assert_allclose(again, want, rtol=1e-5, atol=1e-6)
    assert not list((tmp_path / "cache" / "triton").glob("*.tmp"))


# ---- tg.export.save: the graph file and its arrays are one unit -----------------------------------

from tensorforge.export import CheckpointError, LoadError, load, load_checkpoint, save, save_checkpoint  # noqa: E402
from tensorforge.export.serialize import arrays_path  # noqa: E402


def _small_graph(scale: float = 1.0):
    g = tg.Graph("small")
    x = tg.placeholder("x", (None, 3), graph=g)
    w = tg.parameter("w", scale * np.arange(6, dtype=np.float32).reshape(3, 2), graph=g)
    y = tg.leaky_relu(tg.matmul(x, w) + 1.5, 0.1)
    return x, y


def _saved_graph(folder: Path, scale: float = 1.0) -> Path:
    x, y = _small_graph(scale)
    return save(folder / "m.json", y, inputs=[x])


def _outputs_of(path: Path) -> np.ndarray:
    loaded = load(path)
    data = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    return tg.compile(loaded.inputs, loaded.outputs, backend="interp")(data)[0]


def _expected(scale: float) -> np.ndarray:
    x, y = _small_graph(scale)
    return tg.compile([x], [y], backend="interp")(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))[0]


def test_save_graph_with_another_saves_arrays_is_refused(tmp_path):
    a = _saved_graph(tmp_path / "a", 1.0)
    b = _saved_graph(tmp_path / "b", 2.0)
    np.testing.assert_array_equal(_outputs_of(a), _expected(1.0))
    arrays_path(a).write_bytes(arrays_path(b).read_bytes())     # same shapes, other weights
    with pytest.raises(LoadError, match="sha256"):
        load(a)


KILLED_SAVE = textwrap.dedent("""
    import os, sys
    import numpy as np
    import tensorforge as tg
    from tensorforge.export import save, save_checkpoint
    kind, folder = sys.argv[1], sys.argv[2]
    real_replace, calls = os.replace, []
    def die_after_first_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            os._exit(9)             # killed between the two renames, the second temp file written
        real_replace(src, dst)
    if kind == "graph":
        g = tg.Graph("small")
        x = tg.placeholder("x", (None, 3), graph=g)
        w = tg.parameter("w", 2.0 * np.arange(6, dtype=np.float32).reshape(3, 2), graph=g)
        y = tg.leaky_relu(tg.matmul(x, w) + 1.5, 0.1)
        os.replace = die_after_first_rename
        save(folder + "/m.json", y, inputs=[x])
    else:
        os.replace = die_after_first_rename
        save_checkpoint(folder, 1, {"w": np.full(3, 2.0, np.float32)}, {"note": "second"})
""")


def _killed_save(kind: str, folder: Path) -> None:
    env = dict(os.environ, PYTHONPATH=SRC)
    done = subprocess.run([sys.executable, "-c", KILLED_SAVE, kind, str(folder)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 9, done.stderr[-2000:]


def test_save_killed_between_the_two_files_is_refused_and_leaves_no_temp_files(tmp_path):
    path = _saved_graph(tmp_path, 1.0)
    _killed_save("graph", tmp_path)              # new .npz in place, old graph file
    with pytest.raises(LoadError, match="sha256"):
        load(path)
    assert any(p.name.endswith(".tmp") for p in tmp_path.iterdir())   # the killed writer's litter
    path = _saved_graph(tmp_path, 3.0)           # the next save sweeps it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.npz"]
    np.testing.assert_array_equal(_outputs_of(path), _expected(3.0))


def test_checkpoint_save_killed_before_its_manifest_keeps_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, 1, {"w": np.full(3, 1.0, np.float32)}, {"note": "first"})
    _killed_save("checkpoint", tmp_path)         # same epoch again: its .npz must not replace the old one
    meta, arrays = load_checkpoint(tmp_path)
    assert meta["note"] == "first"
    np.testing.assert_array_equal(arrays["w"], np.full(3, 1.0, np.float32))
    save_checkpoint(tmp_path, 2, {"w": np.full(3, 5.0, np.float32)}, {"note": "third"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "ckpt-epoch0002.npz"]
