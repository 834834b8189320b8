"""The LLVM backend's step cache on disk, and the ways to see generated code."""
import numpy as np
import pytest

import tensorforge as tg


def _step(seed=0):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 6))
        y = tg.placeholder("y", (None,), dtype="int64")
        net = tg.nn.Sequential(tg.nn.Dense(6, 8, seed=seed), tg.nn.ReLU(), tg.nn.Dense(8, 3, seed=seed + 1))
        loss = tg.mean(tg.softmax_cross_entropy(net(x), y))
        updates = tg.optim.Adam(lr=1e-2).updates(loss, net.parameters())
    return [x, y], loss, updates, net


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _run(build_backend, steps=3):
    ins, loss, updates, net = _step()
    f = tg.compile(ins, [loss], updates=updates, backend=build_backend)
    rng = np.random.default_rng(0)
    losses = [f(rng.standard_normal((5, 6)).astype("float32"), rng.integers(0, 3, 5))[0] for _ in range(steps)]
    return f, np.array(losses), [p.value.copy() for p in net.parameters()]


def test_a_second_build_of_the_same_step_comes_from_the_disk_cache_and_agrees(cache):
    f1, l1, p1 = _run("llvm")
    assert "from the disk cache" not in repr(f1)
    f2, l2, p2 = _run("llvm")            # a new graph, built the same way: same fingerprint
    assert "from the disk cache" in repr(f2)
    assert "fuse" in repr(f2)            # the pass log travels with the cached step
    np.testing.assert_array_equal(l1, l2)
    for a, b in zip(p1, p2):
        np.testing.assert_array_equal(a, b)
    _, l0, _ = _run("interp")
    np.testing.assert_allclose(l2, l0, rtol=1e-5)


def test_a_corrupted_cache_entry_is_rebuilt_not_trusted(cache):
    _run("llvm")
    for obj in (cache / "llvm" / "steps").glob("*.o"):
        obj.write_bytes(obj.read_bytes()[:-7] + b"garbage")
    f, losses, _ = _run("llvm")
    assert "from the disk cache" not in repr(f)
    _, ref, _ = _run("interp")
    np.testing.assert_allclose(losses, ref, rtol=1e-5)


def test_generated_ir_can_be_read_and_dumped(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORFORGE_DUMP_IR", str(tmp_path / "dump"))
    f, _, _ = _run("llvm", steps=1)
    assert "define" in f.ir and "tf_step" in f.ir
    dumped = list((tmp_path / "dump").glob("*.txt"))
    assert len(dumped) == 1 and "tf_step" in dumped[0].read_text()
    g, _, _ = _run("interp", steps=1)
    with pytest.raises(AttributeError, match="generates no code"):
        g.ir


def test_an_mlp_steps_kernel_count_is_reported_and_fusion_shrinks_it(cache):
    ins, loss, updates, _ = _step()
    f = tg.compile(ins, [loss], updates=updates, backend="llvm")
    f(np.zeros((5, 6), np.float32), np.zeros(5, np.int64))
    exe = next(iter(f._cache.values()))
    kernels = len(exe.manifest["kernels"])
    assert f"llvm: {kernels} kernels in one native call" in repr(f)
    unfused = tg.compile(ins, [loss], updates=updates, backend="interp")
    unfused(np.zeros((5, 6), np.float32), np.zeros(5, np.int64))
    nodes = len(next(iter(unfused._cache.values())).program.order)
    assert kernels < nodes / 3          # fusion: far fewer kernels than graph nodes
