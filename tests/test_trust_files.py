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


# ---- load() and load_checkpoint(): every damaged file is a LoadError ------------------------------

import io  # noqa: E402
import zipfile  # noqa: E402
import hashlib  # noqa: E402


def _npz_of(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=True)
    return buf.getvalue()


def _deep(n: int = 100000) -> str:
    return '{"format": "tensorforge-graph", "version": 2, "x": ' + "[" * n + "]" * n + "}"


def _graph_variants(json_text: str, npz: bytes):
    """(name, new json text or None, new npz bytes or None, fix digest) for each damaged file."""
    doc = json.loads(json_text)
    arrays = {k: v for k, v in np.load(io.BytesIO(npz)).items()}
    w_key = next(k for k, v in arrays.items() if v.shape == (3, 2))

    def edit(fn):
        d = json.loads(json_text)
        fn(d)
        return json.dumps(d)

    def node(d, op):
        return next(n for n in d["graph"]["nodes"] if n["op"] == op)

    for cut in (0, 1, len(json_text) // 2, len(json_text) - 2):
        yield f"json cut at {cut}", json_text[:cut], None, False
    for cut in (0, 20, len(npz) // 2, len(npz) - 4):
        yield f"npz cut at {cut}", None, npz[:cut], False
    for at in (len(npz) // 3, len(npz) - 30):
        flipped = bytearray(npz)
        flipped[at] ^= 0xFF
        yield f"npz byte {at} flipped", None, bytes(flipped), False
    yield "json first byte flipped", chr(ord(json_text[0]) ^ 0x40) + json_text[1:], None, False
    yield "json not an object", "[1, 2, 3]", None, False
    yield "json invalid utf-8", None, None, False   # handled below as bytes
    for key in ("format", "version", "inputs", "outputs", "graph", "arrays_sha256"):
        yield f"no top-level {key!r}", edit(lambda d, k=key: d.pop(k, None)), None, False
    for key in ("id", "op", "inputs", "attrs", "shape", "dtype", "name"):
        yield f"parameter node has no {key!r}", edit(lambda d, k=key: node(d, "parameter").pop(k, None)), None, False
    wrong_types = {
        "version as text": lambda d: d.update(version="2"),
        "inputs not a list": lambda d: d.update(inputs="x"),
        "outputs an object": lambda d: d.update(outputs={}),
        "nodes an object": lambda d: d["graph"].update(nodes={}),
        "node an int": lambda d: d["graph"]["nodes"].append(7),
        "shape as text": lambda d: node(d, "parameter").update(shape="3,2"),
        "negative dim": lambda d: node(d, "parameter").update(shape=[-3, 2]),
        "float dim": lambda d: node(d, "parameter").update(shape=[3.0, 2]),
        "dtype an int": lambda d: node(d, "parameter").update(dtype=5),
        "attrs an object": lambda d: node(d, "leaky_relu").update(attrs={"alpha": 0.1}),
        "attr value an object": lambda d: node(d, "leaky_relu").update(attrs=[["alpha", {"x": 1}]]),
        "input id a float": lambda d: node(d, "matmul").update(inputs=[1.5, 2]),
        "id as text": lambda d: node(d, "parameter").update(id="1"),
        "name an int": lambda d: node(d, "parameter").update(name=7),
        "unknown attribute": lambda d: node(d, "leaky_relu")["attrs"].append(["exec", "rm -rf /"]),
        "unknown op": lambda d: node(d, "leaky_relu").update(op="os_system"),
        "empty outputs": lambda d: d.update(outputs=[]),
        "float16 node": lambda d: node(d, "parameter").update(dtype="float16"),
        "object dtype node": lambda d: node(d, "parameter").update(dtype="object"),
        "input is a later missing node": lambda d: node(d, "matmul").update(inputs=[10 ** 9, 0]),
        "graph input not a placeholder": lambda d: d.update(inputs=[node(d, "parameter")["id"]]),
        "wrong arity": lambda d: node(d, "matmul")["inputs"].append(node(d, "matmul")["inputs"][0]),
        "attr of wrong kind": lambda d: node(d, "leaky_relu").update(attrs=[["alpha", [[1]]]]),
    }
    for name, fn in wrong_types.items():
        yield name, edit(fn), None, False
    yield "deep JSON nesting", _deep(), None, False
    yield "empty npz", None, _npz_of({}), True
    yield "non-npy member", None, _zip_of({**{f"{k}.npy": _npy(v) for k, v in arrays.items()},
                                           "notes.txt": b"hello"}), True
    yield "object array member", None, _zip_of({**{f"{k}.npy": _npy(v) for k, v in arrays.items()},
                                                f"{w_key}.npy": _npy(np.array([{}, 1], dtype=object))}), True
    yield "float16 member", None, _npz_of({**arrays, w_key: arrays[w_key].astype(np.float16)}), True
    yield "member of wrong shape", None, _npz_of({**arrays, w_key: np.zeros((2, 3), np.float32)}), True
    huge = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    huge["shape"] = (10 ** 12,)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, huge)
    yield "member header claims 4 TB", None, _zip_of({**{f"{k}.npy": _npy(v) for k, v in arrays.items()},
                                                     f"{w_key}.npy": buf.getvalue() + b"\0" * 24}), True
    yield "garbled npy header", None, _zip_of({f"{k}.npy": b"\x93NUMPY\x01\x00garbage" for k in arrays}), True


def _with_digest(text: str, npz: bytes, key: str = "arrays_sha256") -> str:
    doc = json.loads(text)
    doc[key] = hashlib.sha256(npz).hexdigest()
    return json.dumps(doc)


def test_every_damaged_graph_file_is_a_load_error(tmp_path):
    path = _saved_graph(tmp_path / "good")
    text, npz = path.read_text(), arrays_path(path).read_bytes()
    variants = list(_graph_variants(text, npz))
    assert len(variants) >= 24
    failures = []
    for k, (name, new_text, new_npz, fix_digest) in enumerate(variants):
        folder = tmp_path / f"v{k}"
        folder.mkdir()
        p = folder / "m.json"
        npz_bytes = npz if new_npz is None else new_npz
        json_text = text if new_text is None else new_text
        if fix_digest:
            json_text = _with_digest(json_text, npz_bytes)
        if name == "json invalid utf-8":
            p.write_bytes(b'{"format": "\xff\xfe"}')
        else:
            p.write_text(json_text)
        arrays_path(p).write_bytes(npz_bytes)
        try:
            load(p)
        except LoadError as e:
            if str(p) not in str(e) and str(arrays_path(p)) not in str(e):
                failures.append(f"{name}: the message does not name the file: {e}")
            continue
        except BaseException as e:  # noqa: BLE001 - the point is that nothing else escapes
            failures.append(f"{name}: {type(e).__name__}: {e}"[:300])
            continue
        failures.append(f"{name}: loaded without error")
    assert not failures, "\n".join(failures)


def test_big_endian_arrays_load_in_native_byte_order(tmp_path):
    path = _saved_graph(tmp_path)
    arrays = {k: v for k, v in np.load(arrays_path(path)).items()}
    swapped = {k: v.astype(v.dtype.newbyteorder(">")) for k, v in arrays.items()}
    blob = _npz_of(swapped)
    arrays_path(path).write_bytes(blob)
    path.write_text(_with_digest(path.read_text(), blob))
    loaded = load(path)
    for t in loaded.parameters.values():
        assert t.value.dtype.isnative and t.value.dtype == np.float32
    np.testing.assert_array_equal(_outputs_of(path), _expected(1.0))


def _fit(folder: Path, epochs: int, resume: bool):
    from tensorforge import nn, optim
    from tensorforge.optim.schedules import StepLR
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = nn.Sequential(nn.Dense(5, 4, seed=0), nn.ReLU(), nn.Dense(4, 2, seed=1))
    opt = optim.Adam(lr=0.05)
    hist = tg.train.fit(model, x, y, optimizer=opt, schedule=StepLR(opt, step_size=1, gamma=0.5), epochs=epochs,
                        batch_size=8, seed=3, progress=False, verbose=False, checkpoint_dir=folder, resume=resume)
    return {t.name: np.array(t.value) for t in model.variables(hist.graph)}


def _checkpoint_variants(meta_text: str, npz_name: str, npz: bytes):
    """(name, new manifest text or None, new npz bytes or None, fix digest)."""
    arrays = {k: v for k, v in np.load(io.BytesIO(npz)).items()}
    w_key = next(k for k in arrays if k.endswith("/W") and not k.startswith(("opt:", "best:")))
    opt_key = next(k for k in arrays if k.startswith("opt:") and k.endswith("/W/exp_avg")) \
        if any(k.endswith("/W/exp_avg") for k in arrays) else next(k for k in arrays if k.startswith("opt:") and "/" in k)

    def edit(fn):
        d = json.loads(meta_text)
        fn(d)
        return json.dumps(d)

    for cut in (0, 7, len(meta_text) // 2):
        yield f"manifest cut at {cut}", meta_text[:cut], None, False
    for cut in (0, 22, len(npz) // 2, len(npz) - 10):
        yield f"npz cut at {cut}", None, npz[:cut], False
    flipped = bytearray(npz)
    flipped[len(npz) // 2] ^= 0xFF
    yield "npz byte flipped", None, bytes(flipped), False
    yield "npz byte flipped, digest updated", None, bytes(flipped), True
    for key in ("version", "epoch", "arrays", "arrays_sha256", "history", "best_epoch", "best", "waited", "lr",
                "schedule", "shuffle", "rng_counter"):
        yield f"no {key!r}", edit(lambda d, k=key: d.pop(k, None)), None, False
    wrong = {
        "epoch as text": lambda d: d.update(epoch="1"),
        "arrays an int": lambda d: d.update(arrays=5),
        "arrays outside the folder": lambda d: d.update(arrays="../" + npz_name),
        "history a list": lambda d: d.update(history=[1, 2]),
        "history values text": lambda d: d.update(history={"loss": "abc"}),
        "lr as text": lambda d: d.update(lr="fast"),
        "shuffle seed text": lambda d: d.update(shuffle={"seed": "3", "next_epoch": 1}),
        "shuffle a list": lambda d: d.update(shuffle=[3, 1]),
        "waited negative": lambda d: d.update(waited=-1),
        "schedule a list": lambda d: d.update(schedule=[1]),
        "schedule unknown key": lambda d: d["schedule"].update(optimizer=None),
        "schedule value kind": lambda d: d["schedule"].update(last_epoch="one"),
        "manifest a list": lambda d: d.clear(),
    }
    for name, fn in wrong.items():
        text = edit(fn) if name != "manifest a list" else "[1, 2]"
        yield name, text, None, False
    yield "deep JSON nesting", '{"version": 2, "x": ' + "[" * 100000 + "]" * 100000 + "}", None, False
    yield "invalid utf-8 manifest", "\udcff", None, False
    yield "empty npz", None, _npz_of({}), True
    yield "non-npy member", None, _zip_of({**{f"{k}.npy": _npy(v) for k, v in arrays.items()},
                                           "evil.pkl": b"cos\nsystem\n"}), True
    yield "object array member", None, _zip_of({**{f"{k}.npy": _npy(v) for k, v in arrays.items()},
                                                f"{w_key}.npy": _npy(np.array([None], dtype=object))}), True
    yield "float16 member", None, _npz_of({**arrays, w_key: arrays[w_key].astype(np.float16)}), True
    yield "parameter missing", None, _npz_of({k: v for k, v in arrays.items() if k != w_key}), True
    yield "parameter of wrong shape", None, _npz_of({**arrays, w_key: np.zeros((1, 1), np.float32)}), True
    yield "optimizer state of wrong shape", None, _npz_of({**arrays, opt_key: np.zeros(7, np.float32)}), True
    yield "optimizer state missing", None, _npz_of({k: v for k, v in arrays.items() if k != opt_key}), True


def test_every_damaged_checkpoint_is_a_load_error(tmp_path):
    good = tmp_path / "good"
    _fit(good, epochs=1, resume=False)
    meta_text = (good / "checkpoint.json").read_text()
    npz_name = json.loads(meta_text)["arrays"]
    npz = (good / npz_name).read_bytes()
    variants = list(_checkpoint_variants(meta_text, npz_name, npz))
    assert len(variants) >= 24
    failures = []
    for k, (name, new_text, new_npz, fix_digest) in enumerate(variants):
        folder = tmp_path / f"v{k}"
        folder.mkdir()
        blob = npz if new_npz is None else new_npz
        text = meta_text if new_text is None else new_text
        if fix_digest:
            text = _with_digest(text, blob)
        (folder / "checkpoint.json").write_bytes(text.encode("utf-8", "surrogateescape"))
        (folder / npz_name).write_bytes(blob)
        try:
            _fit(folder, epochs=2, resume=True)
        except LoadError as e:
            assert isinstance(e, CheckpointError)
            continue
        except BaseException as e:  # noqa: BLE001 - the point is that nothing else escapes
            failures.append(f"{name}: {type(e).__name__}: {e}"[:300])
            continue
        failures.append(f"{name}: resumed without error")
    assert not failures, "\n".join(failures)


def test_checkpoint_with_big_endian_arrays_resumes_like_the_original(tmp_path):
    want = _fit(tmp_path / "ref", epochs=2, resume=False)
    folder = tmp_path / "ckpt"
    _fit(folder, epochs=1, resume=False)
    meta_path = folder / "checkpoint.json"
    npz_path = folder / json.loads(meta_path.read_text())["arrays"]
    arrays = {k: v for k, v in np.load(npz_path).items()}
    blob = _npz_of({k: v.astype(v.dtype.newbyteorder(">")) for k, v in arrays.items()})
    npz_path.write_bytes(blob)
    meta_path.write_text(_with_digest(meta_path.read_text(), blob))
    _, loaded = load_checkpoint(folder)
    assert all(v.dtype.isnative for v in loaded.values())
    got = _fit(folder, epochs=2, resume=True)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_llvm_step_cache_miss_on_a_damaged_entry_is_logged(tmp_path, monkeypatch, caplog):
    """In-process (a garbled .npz cannot crash): the rebuild says which entry and why."""
    import logging
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path / "cache"))

    def run(backend):
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (None, 4))
            w = tg.parameter("w", np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
            y = tg.tanh(x @ w) * 3.0
        f = tg.compile([x], [y], backend=backend)
        return f(np.ones((2, 4), np.float32))[0], f

    want, _ = run("interp")
    run("llvm")
    for npz in (tmp_path / "cache" / "llvm" / "steps").glob("*.npz"):
        npz.write_bytes(b"PK\x03\x04 not really a zip")
    with caplog.at_level(logging.WARNING, logger="tensorforge.cache"):
        got, f = run("llvm")
    assert "from the disk cache" not in repr(f)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert any("ignored and rebuilt" in r.getMessage() for r in caplog.records)
    again, f = run("llvm")
    assert "from the disk cache" in repr(f)
    np.testing.assert_allclose(again, want, rtol=1e-5)


def test_atomic_write_failure_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    from tensorforge._fileio import atomic_write
    target = tmp_path / "model.json"
    atomic_write(target, b"old")

    def broken(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]
