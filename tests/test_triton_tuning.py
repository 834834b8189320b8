"""Block-size tuning of the Triton backend (backends/triton/tuning.py) and the tunable matmul.

CI (TRITON_INTERPRET=1, set by conftest.py): nothing is searched; the JSON cache round-trips
and ignores corrupted files; the search logic picks the fastest candidate and a second
"process" reads it from disk (timings faked); every candidate configuration of the matmul
kernel, and the K-major staging of tf32 operands, agree with NumPy under the interpreter.
GPU-marked tests (``TRITON_INTERPRET=0 pytest -m gpu``) run the real search.
"""
from __future__ import annotations

import ast
import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

from tensorforge.backends.triton import library as L  # noqa: E402
from tensorforge.backends.triton import tuning  # noqa: E402

DEVICE = "cpu"


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    """Each test gets its own cache folder and an empty in-process memo."""
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path))
    tuning.forget()
    yield tmp_path
    tuning.forget()


def _spec(n=3):
    configs = tuple({"BLOCK": 16 << i, "num_warps": 4} for i in range(n))
    return tuning.TuneSpec("test|kernel", configs, lambda meta: (64 // meta["BLOCK"],))


def _never(cfg):
    raise AssertionError("no kernel may be launched for a search here")


# ---- no search under the interpreter ------------------------------------------------------

def test_interpreter_never_searches(fresh_cache):
    assert os.environ.get("TRITON_INTERPRET") == "1"
    assert not tuning.search_enabled()
    spec = _spec()
    assert tuning.choose(spec, _never) == spec.configs[0]
    assert not tuning.cache_path().exists() and not any(fresh_cache.iterdir())


def test_search_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setenv("TENSORFORGE_TRITON_TUNE", "0")
    assert not tuning.search_enabled()


def test_launch_uses_the_default_configuration_under_the_interpreter(monkeypatch):
    seen = []
    real = tuning.choose

    def spy(spec, run):
        got = real(spec, run)
        seen.append((spec, got))
        return got
    monkeypatch.setattr(L, "choose", spy)
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.arange(20, dtype=np.float32).reshape(4, 5)
    out, _ = _run_matmul(a, b)
    np.testing.assert_allclose(out, a @ b, rtol=1e-6)
    ((spec, got),) = seen
    assert got == spec.configs[0] and len(spec.configs) > 1


# ---- the JSON cache ---------------------------------------------------------------------

def test_cache_round_trip_and_atomic_write(fresh_cache):
    cache = tuning.TuningCache(fresh_cache / "triton-tuning" / "configs.json")
    assert cache.get("k1") is None                       # no file yet
    cache.put("k1", {"BLOCK_M": 64, "num_warps": 4}, 0.5, note="first")
    cache.put("k2", {"BLOCK_M": 128, "num_warps": 8}, 0.25)
    again = tuning.TuningCache(cache.path)               # another process reading the file
    assert again.get("k1") == {"BLOCK_M": 64, "num_warps": 4}
    assert again.get("k2") == {"BLOCK_M": 128, "num_warps": 8}
    data = json.loads(cache.path.read_text())
    assert data["version"] == tuning.CACHE_VERSION and data["entries"]["k1"]["ms"] == 0.5
    assert [p.name for p in cache.path.parent.iterdir()] == ["configs.json"]   # no temporary left


@pytest.mark.parametrize("garbage", [
    "{not json", "", "[1, 2]", '{"version": 999, "entries": {"k1": {"config": {"BLOCK_M": 64}}}}',
    '{"version": 1, "entries": []}', '\xff\xfe', '{"version": 1, "entries": {"k1": {"config": {"BLOCK_M": "64"}}}}',
    '{"version": 1, "entries": {"k1": {"config": {"BLOCK_M": 6.5}}}}',
    '{"version": 1, "entries": {"k1": {"config": ["BLOCK_M"]}}}',
])
def test_corrupted_cache_is_ignored_and_replaced(fresh_cache, garbage):
    path = fresh_cache / "configs.json"
    path.write_text(garbage, encoding="utf-8", errors="surrogateescape")
    cache = tuning.TuningCache(path)
    assert cache.get("k1") is None
    cache.put("k2", {"BLOCK_M": 32})
    assert tuning.TuningCache(path).get("k2") == {"BLOCK_M": 32}


def test_unwritable_cache_folder_is_not_an_error(fresh_cache):
    blocker = fresh_cache / "file"
    blocker.write_text("x")
    cache = tuning.TuningCache(blocker / "sub" / "configs.json")  # parent is a file
    cache.put("k", {"BLOCK": 16})
    assert cache.get("k") is None


# ---- the search itself (timings faked, so it runs without a GPU) --------------------------

@pytest.fixture
def fake_gpu(monkeypatch):
    """search_enabled() is true and each configuration's time is looked up in ``times``."""
    times, runs = {}, []
    monkeypatch.setattr(tuning, "search_enabled", lambda: True)
    monkeypatch.setattr(tuning, "device_tag", lambda: "Fake GPU|triton 0")
    monkeypatch.setattr(tuning, "_capturing", lambda: False)

    def fake_time(run, config):
        run(config)
        return times.get(config["BLOCK"])
    monkeypatch.setattr(tuning, "_time", fake_time)
    return times, runs


def test_search_picks_the_fastest_and_caches_it(fake_gpu):
    times, _ = fake_gpu
    times.update({16: 3.0, 32: 1.0, 64: None})          # 64 fails to compile: skipped
    spec = _spec()
    launched = []
    assert tuning.choose(spec, launched.append) == {"BLOCK": 32, "num_warps": 4}
    assert [c["BLOCK"] for c in launched] == [16, 32, 64]
    entries = json.loads(tuning.cache_path().read_text())["entries"]
    ((key, entry),) = entries.items()
    assert key.endswith("|Fake GPU|triton 0") and entry["config"] == {"BLOCK": 32, "num_warps": 4}
    assert entry["ms"] == 1.0 and entry["note"] == "test|kernel"
    # same process: remembered; a new process (memo forgotten): read from disk, never searched
    assert tuning.choose(spec, _never) == {"BLOCK": 32, "num_warps": 4}
    tuning.forget()
    assert tuning.choose(spec, _never) == {"BLOCK": 32, "num_warps": 4}


def test_new_candidates_or_another_gpu_search_again(fake_gpu, monkeypatch):
    times, _ = fake_gpu
    times.update({16: 2.0, 32: 1.0, 64: 0.5})
    assert tuning.choose(_spec(2), lambda c: None)["BLOCK"] == 32
    tuning.forget()
    assert tuning.choose(_spec(3), lambda c: None)["BLOCK"] == 64        # a new candidate list
    tuning.forget()
    monkeypatch.setattr(tuning, "device_tag", lambda: "Other GPU|triton 0")
    launched = []
    tuning.choose(_spec(3), launched.append)
    assert len(launched) == 3
    assert len(json.loads(tuning.cache_path().read_text())["entries"]) == 3


def test_cached_choice_outside_the_candidates_is_ignored(fake_gpu):
    times, _ = fake_gpu
    times.update({16: 1.0, 32: 2.0, 64: 3.0})
    spec = _spec()
    key = f"{spec.digest()}|Fake GPU|triton 0"
    tuning.TuningCache(tuning.cache_path()).put(key, {"BLOCK": 4096, "num_warps": 4})
    assert tuning.choose(spec, lambda c: None) == {"BLOCK": 16, "num_warps": 4}


def test_no_search_while_a_cuda_graph_is_captured(fake_gpu, monkeypatch):
    monkeypatch.setattr(tuning, "_capturing", lambda: True)
    spec = _spec()
    assert tuning.choose(spec, _never) == spec.configs[0]


def test_all_candidates_failing_falls_back_to_the_default(fake_gpu):
    spec = _spec()
    assert tuning.choose(spec, lambda c: None) == spec.configs[0]


# ---- the tunable matmul under the interpreter ---------------------------------------------

def _operand(arr: np.ndarray) -> L.Operand:
    item = arr.itemsize
    return L.Operand(arr.shape, tuple(s // item for s in arr.strides), 0, arr.dtype.name)


def _run_matmul(a, b, attrs=None, config=None, device=DEVICE):
    """Emit the matmul for views a, b (their own strides), launch it (with ``config`` for the
    matmul launch if given) and return the result. a and b must be views of C-contiguous bases."""
    out_shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (a.shape[-2], b.shape[-1])
    out_op = L.Operand(out_shape, L.contiguous_strides(out_shape), 0, "float32" if a.dtype == np.float32 else "float64")
    source, info = L.LIBRARY["matmul"]("mm", [_operand(a), _operand(b)], out_op, attrs or {})
    ast.parse(source)
    if config is not None:
        last = info.launches[-1]
        info.launches[-1] = L.KernelLaunch(last.kernel, last.tune.grid(config), last.buffers, last.args,
                                           dict(config))
    module = L.load_module(source, "test_tuning_mm")

    def tensor(view):
        base = view.base if view.base is not None else view
        t = torch.from_numpy(np.array(base)).to(device)
        return torch.as_strided(t, view.shape, tuple(s // view.itemsize for s in view.strides))
    out = torch.full(out_shape, 7.0, dtype=getattr(torch, out_op.dtype), device=device)
    L.launch(module, info, out, [tensor(a), tensor(b)],
             lambda shape, dtype: torch.empty(shape, dtype=getattr(torch, dtype), device=device))
    return out.cpu().numpy(), info


def _matmul_candidates(m, n, k, tf32):
    return list(L.matmul_configs(m, n, k, "float32", tf32))


def test_every_candidate_configuration_is_correct(rng):
    """Tiles larger than the matrix (wrap-around rows, masked K tail) and exact fits."""
    a = rng.standard_normal((70, 45)).astype(np.float32)
    b = rng.standard_normal((45, 90)).astype(np.float32)
    want = a.astype(np.float64) @ b
    configs = _matmul_candidates(256, 256, 64, tf32=False) + _matmul_candidates(256, 256, 64, tf32=True)
    assert len(configs) >= 8
    seen = set()
    for cfg in configs:
        shape = (cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"])
        if shape in seen:
            continue
        seen.add(shape)
        got, _ = _run_matmul(a, b, config=cfg)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=str(cfg))


def test_exact_tiles_and_batches(rng):
    a = rng.standard_normal((2, 64, 64)).astype(np.float32)
    b = rng.standard_normal((64, 32)).astype(np.float32)
    for cfg in ({"BLOCK_M": 64, "BLOCK_N": 32, "BLOCK_K": 32, "GROUP_M": 8, "num_warps": 4, "num_stages": 3},
                {"BLOCK_M": 32, "BLOCK_N": 16, "BLOCK_K": 64, "GROUP_M": 2, "num_warps": 4, "num_stages": 2}):
        got, _ = _run_matmul(a, b, config=cfg)
        np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-5, atol=1e-5)


def test_candidates_are_powers_of_two_with_the_default_first():
    for m, n, k in [(4096, 4096, 4096), (300, 190, 257), (8, 1000, 3), (1024, 10, 1024)]:
        for tf32 in (False, True):
            configs = L.matmul_configs(m, n, k, "float32", tf32)
            bm, bn, bk, _ = L._matmul_blocks(m, n, k)
            assert (configs[0]["BLOCK_M"], configs[0]["BLOCK_N"], configs[0]["BLOCK_K"]) == (bm, bn, bk)
            assert len({json.dumps(c, sort_keys=True) for c in configs}) == len(configs)
            for c in configs:
                for key in ("BLOCK_M", "BLOCK_N", "BLOCK_K"):
                    assert c[key] >= 16 and c[key] & (c[key] - 1) == 0


def test_tf32_operands_are_staged_k_major(rng):
    """A column-major A and a row-major B are copied K-major (tiled transposes) before a tf32
    product of >= 256 rows/columns; the result is the same product."""
    a = np.ascontiguousarray(rng.standard_normal((40, 260)).astype(np.float32)).T   # (260, 40), M-major
    b = rng.standard_normal((40, 300)).astype(np.float32)                            # row-major
    got, info = _run_matmul(a, b, {"allow_tf32": True})
    assert [launch.kernel for launch in info.launches] == ["tf_mm_a_kmajor", "tf_mm_b_kmajor", "tf_mm"]
    assert [s.shape for s in info.scratch] == [(260 * 40,), (40 * 300,)]
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_tf32_k_major_staging_with_batches(rng):
    a = rng.standard_normal((2, 256, 24)).astype(np.float32)                       # already K-major
    b = np.ascontiguousarray(rng.standard_normal((2, 256, 24)).astype(np.float32)).transpose(0, 2, 1)
    got, info = _run_matmul(a, np.ascontiguousarray(b), {"allow_tf32": True})
    assert [launch.kernel for launch in info.launches] == ["tf_mm_b_kmajor", "tf_mm"]
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


def test_no_staging_without_tf32_or_for_small_products(rng):
    a = rng.standard_normal((300, 20)).astype(np.float32)
    b = rng.standard_normal((20, 30)).astype(np.float32)
    for attrs in ({}, {"allow_tf32": True}):        # ieee: never; tf32: n = 30 < 256 for A, B fine
        _, info = _run_matmul(a, b, attrs)
        assert [launch.kernel for launch in info.launches] == (["tf_mm_b_kmajor", "tf_mm"] if attrs else ["tf_mm"])
    m_major_a = b.T.copy().T[:, :20]                # M-major A, but only 20 columns
    k_major_b = a[:20].T.copy().T                   # column-major B is already K-major
    _, info = _run_matmul(m_major_a, k_major_b, {"allow_tf32": True})
    assert not info.scratch


# ---- on a real GPU (pytest -m gpu, TRITON_INTERPRET=0) -------------------------------------

def _on_gpu():
    assert os.environ.get("TRITON_INTERPRET", "0") == "0", "run the gpu tests with TRITON_INTERPRET=0"
    assert torch.cuda.is_available(), "the gpu tests need a CUDA device"
    assert tuning.search_enabled()


@pytest.mark.gpu
@pytest.mark.parametrize("tf32", [False, True])
def test_gpu_search_tunes_caches_and_stays_correct(tf32, rng):
    _on_gpu()
    a = rng.standard_normal((512, 384)).astype(np.float32)
    b = rng.standard_normal((384, 640)).astype(np.float32)
    got, info = _run_matmul(a, b, {"allow_tf32": tf32}, device="cuda")
    tol = dict(rtol=2e-2, atol=5e-2) if tf32 else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, **tol)
    entries = json.loads(tuning.cache_path().read_text())["entries"]
    ((key, entry),) = entries.items()
    assert torch.cuda.get_device_name() in key and entry["config"] in [dict(c) for c in info.launches[-1].tune.configs]
    assert entry["ms"] > 0
    tuning.forget()                        # a second process: reads the choice, no search
    got2, _ = _run_matmul(a, b, {"allow_tf32": tf32}, device="cuda")
    np.testing.assert_array_equal(got2, got)


@pytest.mark.gpu
def test_gpu_compiled_step_tunes_before_cuda_graph_capture(rng):
    """The first call searches (outside any capture); the second captures a CUDA graph."""
    _on_gpu()
    import tensorforge as tg
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (256, 128))
        w = tg.parameter("w", rng.standard_normal((128, 192)).astype(np.float32))
        y = tg.relu(x @ w)
    f = tg.compile([x], y, backend="triton")
    xs = [rng.standard_normal((256, 128)).astype(np.float32) for _ in range(3)]
    for xv in xs:
        got = f(xv)
        got = got[0] if isinstance(got, (list, tuple)) else got
        np.testing.assert_allclose(got, np.maximum(xv.astype(np.float64) @ g.values[w.id], 0), rtol=1e-4, atol=1e-4)
    exe = next(iter(f._cache.values()))
    assert exe._graph, "the step should have been captured in a CUDA graph"
    assert json.loads(tuning.cache_path().read_text())["entries"]
