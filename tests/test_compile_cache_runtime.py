"""Compile time: the thread pool's runtime comes from the disk cache in a fresh process, and
small kernels are optimised for size (backends/llvm/kernel_opt.py) without changing results."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from llvmlite import ir

import tensorforge as tg
from tensorforge import config
from tensorforge.backends.llvm import kernel_opt


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TENSORFORGE_SMALL_KERNEL_WORK", raising=False)


_POOL_CHILD = textwrap.dedent("""
    import ctypes, sys
    from tensorforge.backends.llvm import jit, pool
    compiled = []
    original = jit.optimise
    def counting(module, *args, **kwargs):
        compiled.append(module)
        return original(module, *args, **kwargs)
    jit.optimise = counting
    pool.ensure_loaded()
    # a range function that writes its indices, run on 2 threads by the runtime just loaded
    m = jit.compile_module('''
    define void @record(ptr %block, i64 %begin, i64 %end) {
    entry:
      %out = load ptr, ptr %block
      br label %head
    head:
      %i = phi i64 [%begin, %entry], [%next, %body]
      %more = icmp slt i64 %i, %end
      br i1 %more, label %body, label %done
    body:
      %p = getelementptr i64, ptr %out, i64 %i
      store i64 %i, ptr %p
      %next = add i64 %i, 1
      br label %head
    done:
      ret void
    }
    ''')
    n = 4096
    out = (ctypes.c_int64 * n)()
    block = (ctypes.c_void_p * 1)(ctypes.addressof(out))
    pool.run_range(m.address("record"), ctypes.addressof(block), n, 2, 64)
    assert list(out) == list(range(n))
    print(len(compiled) - 1)     # LLVM runs of the pool runtime (the record module is the other one)
""")


def test_the_pool_runtime_is_compiled_once_then_loaded_from_the_disk_cache(tmp_path):
    env = {**os.environ, "TENSORFORGE_CACHE_DIR": str(tmp_path / "shared"),
           "PYTHONPATH": str(Path(tg.__file__).resolve().parents[1])}
    script = tmp_path / "child.py"
    script.write_text(_POOL_CHILD)
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        runs.append(proc.stdout.split())
    assert runs == [["1"], ["0"]]        # compiled by the first process, mapped in by the second


def _mlp_step(backend: str, batch):
    g = tg.Graph()
    with g:
        net = tg.nn.Sequential(tg.nn.Dense(20, 16, seed=1), tg.nn.ReLU(), tg.nn.Dense(16, 10, seed=3))
        x = tg.placeholder("x", (batch, 20))
        y = tg.placeholder("y", (batch,), dtype="int64")
        logits = net(x)
        loss = tg.mean(tg.softmax_cross_entropy(logits, y))
        updates = tg.optim.Adam(lr=1e-2).updates(loss, net.parameters())
    return tg.compile([x, y], [loss, logits], updates=updates, backend=backend), net


@pytest.mark.parametrize("batch", [12, None])
def test_small_kernels_are_optimised_for_size_and_agree_with_the_interpreter(batch):
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((12, 20)).astype("float32"), rng.integers(0, 10, 12)) for _ in range(3)]
    results = {}
    for name, limit in (("interp", None), ("speed", 0), ("size", 256)):
        with config.override(small_kernel_work=limit if limit is not None else 256):
            step, net = _mlp_step("interp" if limit is None else "llvm", batch)
            outs = [step(xb, yb) for xb, yb in data]
        results[name] = (outs, [p.value.copy() for p in net.parameters()], step)
    assert "minsize" in results["size"][2].ir and "minsize" not in results["speed"][2].ir
    assert len(results["size"][2].compile_times) == 1
    for other in ("speed", "interp"):
        for got, want in zip(results["size"][0], results[other][0]):
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        for a, b in zip(results["size"][1], results[other][1]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _function(module, name, callees=()):
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), []), name=name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    for callee in callees:
        b.call(callee, [])
    b.ret_void()
    return fn


def test_a_function_shared_with_a_large_kernel_stays_optimised_for_speed():
    module = ir.Module()
    shared = _function(module, "shared_range")
    own = _function(module, "small_range")
    small = _function(module, "k0_small", [shared, own])
    large = _function(module, "k1_large", [shared])
    _function(module, "tf_step", [small, large])
    assert kernel_opt.mark_small(module, {"k0_small"}) == 2
    marked = {fn.name for fn in module.functions if "minsize" in fn.attributes}
    assert marked == {"k0_small", "small_range"}
    assert all("noinline" in module.get_global(n).attributes for n in marked)


def test_a_generic_build_marks_only_kernels_that_do_not_grow_with_the_batch():
    works = [{"k0": 10, "k1": 4 * n, "k2": 5000, "k3": 7 if n < 100 else 9} for n in (79, 89, 97, 107)]
    assert kernel_opt.small_kernels_of_probes(works, 256) == {"k0"}
    assert kernel_opt.small_kernels_of_probes(works, 0) == set()
    assert kernel_opt.small_kernels({"a": 256, "b": 257}, 256) == {"a"}


def test_the_setting_reads_its_environment_variable(monkeypatch):
    monkeypatch.setenv("TENSORFORGE_SMALL_KERNEL_WORK", "0")
    assert kernel_opt.small_limit() == 0
    monkeypatch.setenv("TENSORFORGE_SMALL_KERNEL_WORK", "-3")
    with pytest.raises(ValueError, match="TENSORFORGE_SMALL_KERNEL_WORK"):
        kernel_opt.small_limit()


def test_a_generic_build_from_the_disk_cache_agrees_and_still_draws_its_fused_kernels():
    """The warm load of a build generic in the batch size no longer runs the passes on this
    call's program (as a specialised hit never did); to_dot(fused=True) runs them when asked."""
    rng = np.random.default_rng(4)
    xb, yb = rng.standard_normal((9, 20)).astype("float32"), rng.integers(0, 10, 9)
    cold, _ = _mlp_step("llvm", None)
    want = cold(xb, yb)
    warm, _ = _mlp_step("llvm", None)
    got = warm(xb, yb)
    assert "from the disk cache" in repr(warm) and "from the disk cache" not in repr(cold)
    assert len(warm.compile_times) == 1
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert "fused" in tg.export.to_dot(warm, fused=True) and "fused" in tg.export.to_dot(cold, fused=True)
