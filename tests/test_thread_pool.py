"""The persistent native thread pool of the LLVM backend (backends/llvm/pool.py, parallel.py).

Results are bit-identical across thread counts (each output element is computed by one chunk
with the same code) and match the interpreter; the pool is really used; it survives many
calls, concurrent Python threads, nested dispatches, fork and interpreter exit; a kernel
never runs on more threads than it was built for; tg.set_num_threads bounds BLAS too.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from llvmlite import ir

import tensorforge as tg
from tensorforge.backends.llvm import jit, parallel, pool
from tensorforge.backends.llvm.library.common import I64, PTR, elem_ptr, for_range

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool is Linux-only")


@pytest.fixture(autouse=True)
def split_small_kernels(monkeypatch, tmp_path):
    """Split kernels far smaller than the tuned bounds, so that these tests (about correctness)
    exercise the pool with small arrays; builds go to a cache folder of their own, because the
    step cache's key does not see these bounds."""
    monkeypatch.setattr(parallel, "MIN_WORK_PER_THREAD", 1 << 12)
    monkeypatch.setattr(parallel, "MIN_WORK_PER_CHUNK", 1 << 10)
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def threads_setting():
    """Restore the thread count a test changes."""
    saved = tg.get_num_threads()
    yield tg.set_num_threads
    tg.set_num_threads(saved)


def _graph(shape=(512, 300)):
    """Fused loops, row and column reductions, a matmul and softmax, all big enough to split."""
    rng = np.random.default_rng(5)
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", shape)
        w = tg.constant(rng.standard_normal((shape[1], 256)).astype("float32"))
        b = tg.constant(np.linspace(-1, 1, shape[1]).astype("float32"))
        y = tg.sigmoid(x * b + 0.5) * tg.tanh(x) + tg.maximum(x - 1.0, 0.0) * 0.5
        h = tg.matmul(y, w)
        outs = [y, tg.sum(y, axis=0), tg.max(y, axis=1), h, tg.softmax(h), tg.sum(h * h)]
    return g, x, outs, rng.standard_normal(shape).astype("float32")


def _run(backend, threads, setter, calls=1):
    setter(threads)
    g, x, outs, xv = _graph()
    f = tg.compile([x], outs, backend=backend)
    results = [f(xv) for _ in range(calls)]
    return results


def test_results_are_identical_across_thread_counts_and_match_the_interpreter(threads_setting):
    (reference,) = _run("interp", 1, threads_setting)
    by_threads = {t: _run("llvm", t, threads_setting)[0] for t in (1, 2, 4)}
    for t in (2, 4):
        for a, c in zip(by_threads[1], by_threads[t]):
            np.testing.assert_array_equal(c, a)            # bit-identical, not just close
    for a, c in zip(reference, by_threads[1]):
        np.testing.assert_allclose(c, a, rtol=2e-4, atol=1e-4)


def _library_graph():
    """Pooling (unrolled, large-window, overlapping and disjoint gradients), dropout,
    random_uniform, argmax and strided copies, each big enough to be split."""
    rng = np.random.default_rng(9)
    shape = (8, 16, 40, 40)
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", shape)
        w = tg.constant(rng.standard_normal(shape).astype("float32"))
        pools = [tg.max_pool2d(x, 2), tg.avg_pool2d(x, 3, stride=2, padding=1),
                 tg.max_pool2d(x, 3, stride=2, padding=1), tg.max_pool2d(x, 9, stride=4)]
        loss = sum(tg.sum(p_ * p_) for p_ in pools)
        grads = tg.grad(loss, [x])
        dropped = tg.dropout(x * w, p=0.3, seed=4)
        noise = tg.random_uniform((300, 600), seed=2)
        flat = tg.reshape(x, (128, 1600))
        outs = pools + grads + [dropped, noise, tg.argmax(flat, axis=1), tg.argmax(flat, axis=0),
                                tg.transpose(flat) * 1.0, x[:, :, 1:-1, ::2] + 0.0]   # copies of views
    return g, x, outs, rng.standard_normal(shape).astype("float32")


def test_library_kernels_split_identically_and_match_the_interpreter(threads_setting):
    results = {}
    for backend, t in (("interp", 1), ("llvm", 1), ("llvm", 2), ("llvm", 4)):
        threads_setting(t)
        g, x, outs, xv = _library_graph()
        before = pool.stats()["dispatches"]
        results[backend, t] = tg.compile([x], outs, backend=backend)(xv)
        if backend == "llvm" and t > 1:
            assert pool.stats()["dispatches"] >= before + len(outs) - 2   # nearly all were split
    for t in (2, 4):
        for a, c in zip(results["llvm", 1], results["llvm", t]):
            np.testing.assert_array_equal(c, a)
    for a, c in zip(results["interp", 1], results["llvm", 1]):
        np.testing.assert_allclose(c, a, rtol=1e-5, atol=1e-5)


def test_a_parallel_step_goes_through_the_pool(threads_setting):
    before = pool.stats()
    _run("llvm", 2, threads_setting)
    after = pool.stats()
    assert after["dispatches"] > before["dispatches"]
    assert after["nworkers"] >= 1
    live = os.listdir("/proc/self/task")
    assert len(live) >= 1 + after["nworkers"]              # the workers are parked threads


def test_a_one_thread_step_never_dispatches(threads_setting):
    before = pool.stats()["dispatches"]
    _run("llvm", 1, threads_setting)
    assert pool.stats()["dispatches"] == before


def test_two_hundred_consecutive_calls_give_the_same_results(threads_setting):
    results = _run("llvm", 2, threads_setting, calls=200)
    for r in results[1:]:
        for a, c in zip(results[0], r):
            np.testing.assert_array_equal(c, a)


def test_two_python_threads_calling_two_steps_at_once(threads_setting):
    threads_setting(2)
    steps, inputs, expected = [], [], []
    for scale in (1.0, 2.0):
        g, x, outs, xv = _graph()
        xv = xv * scale
        f = tg.compile([x], outs, backend="llvm")
        steps.append(f)
        inputs.append(xv)
        expected.append(f(xv))
    errors = []

    def hammer(k):
        try:
            for _ in range(40):
                for a, c in zip(expected[k], steps[k](inputs[k])):
                    np.testing.assert_array_equal(c, a)
        except BaseException as e:       # reported by the main thread
            errors.append(e)

    workers = [threading.Thread(target=hammer, args=(k,)) for k in (0, 1)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in workers), "deadlock"
    assert not errors, errors[0]


def test_a_forked_child_runs_a_step_built_in_the_parent(threads_setting):
    threads_setting(2)
    g, x, outs, xv = _graph()
    f = tg.compile([x], outs, backend="llvm")
    expected = f(xv)                     # the parent's pool now has workers
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:                         # child: no workers until it dispatches again
        ok = 0
        try:
            for _ in range(3):
                got = f(xv)
                ok = all(np.array_equal(a, c) for a, c in zip(expected, got))
            ok = ok and pool.stats()["nworkers"] >= 1
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"1"


def test_the_interpreter_exits_cleanly_with_parked_workers(tmp_path):
    """Twice with one cache folder: the second process loads the parallel step from the disk
    cache, and its reference to the pool runtime must resolve there too."""
    script = textwrap.dedent("""
        import numpy as np, tensorforge as tg
        from tensorforge.backends.llvm import parallel
        parallel.MIN_WORK_PER_THREAD = 1 << 12
        tg.set_num_threads(2)
        g = tg.Graph()
        with g:
            x = tg.placeholder("x", (512, 512))
            y = tg.tanh(x) * 2.0 + 1.0
        f = tg.compile([x], [y], backend="llvm")
        (y,) = f(np.ones((512, 512), np.float32))
        assert np.allclose(y, np.tanh(1.0) * 2.0 + 1.0)
        from tensorforge.backends.llvm import pool
        assert pool.stats()["nworkers"] >= 1
        print("done")
    """)
    env = dict(os.environ, TENSORFORGE_CACHE_DIR=str(tmp_path / "exit"))
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "done"
    assert list((tmp_path / "exit").rglob("*.o"))     # the second run had a cache entry to load


def test_set_num_threads_bounds_the_interpreters_blas(threads_setting):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    threads_setting(1)
    g, x, outs, xv = _graph()
    tg.compile([x], outs, backend="interp")(xv)
    infos = threadpoolctl.threadpool_info()
    assert infos and all(info["num_threads"] == 1 for info in infos)


# ---- the pool itself, through hand-made kernels -------------------------------------------------
def _record_module(nested: bool):
    """``record(args, begin, end)``: out[i] = i + 1 and tid[i] = the running thread's id, over
    [begin, end); ``nested`` adds ``outer`` whose chunks each dispatch ``record`` again."""
    m = ir.Module("pool_test")
    m.triple = jit.target_machine().triple
    fnty = pool.RANGE_TYPE
    record = ir.Function(m, fnty, "record")
    b = ir.IRBuilder(record.append_basic_block())
    args, lo, hi = record.args
    out = b.inttoptr(b.load(args, typ=I64), PTR)
    tid = b.inttoptr(b.load(elem_ptr(b, args, 1, I64), typ=I64), PTR)
    syscall = ir.Function(m, ir.FunctionType(I64, [I64], var_arg=True), "syscall")
    me = b.call(syscall, [ir.Constant(I64, 186)])          # gettid (x86-64)
    with for_range(b, lo, hi) as i:
        b.store(b.add(i, ir.Constant(I64, 1)), elem_ptr(b, out, i, I64))
        b.store(me, elem_ptr(b, tid, i, I64))
    b.ret_void()
    if nested:
        outer = ir.Function(m, fnty, "outer")
        b = ir.IRBuilder(outer.append_basic_block())
        args, lo, hi = outer.args
        run = ir.Function(m, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I64, I64]), pool.RUN_SYMBOL)
        b.call(run, [record, args, ir.Constant(I64, 4096), ir.Constant(I64, 2), ir.Constant(I64, 64)])
        b.ret_void()
    pool.ensure_loaded()
    return jit.compile_module(str(m))


needs_x86 = pytest.mark.skipif(os.uname().machine != "x86_64", reason="gettid's number is x86-64's")


@needs_x86
def test_a_kernel_never_runs_on_more_threads_than_it_was_built_for():
    compiled = _record_module(nested=False)
    n = 1 << 16
    out, tid = np.zeros(n, np.int64), np.zeros(n, np.int64)
    block = (ctypes.c_void_p * 2)(out.ctypes.data, tid.ctypes.data)
    pool.run_range(compiled.address("record"), ctypes.addressof(block), n, 4, 64)   # 3 workers exist now
    assert pool.stats()["nworkers"] >= 3
    for _ in range(50):
        out[:] = 0
        pool.run_range(compiled.address("record"), ctypes.addressof(block), n, 2, 64)
        np.testing.assert_array_equal(out, np.arange(1, n + 1))
        assert len(set(tid.tolist())) <= 2


@needs_x86
def test_the_sleeping_paths_lose_no_wake_up():
    """Workers that sleep at once and a dispatcher that sleeps at once while waiting: every
    dispatch still completes, with every element written once."""
    compiled = _record_module(nested=False)
    n = 1 << 14
    out, tid = np.zeros(n, np.int64), np.zeros(n, np.int64)
    block = (ctypes.c_void_p * 2)(out.ctypes.data, tid.ctypes.data)
    saved = pool.wait_cycles(spin=0, patience=0)
    try:
        for k in range(300):
            out[:] = 0
            pool.run_range(compiled.address("record"), ctypes.addressof(block), n, 2 + k % 3, 256)
            np.testing.assert_array_equal(out, np.arange(1, n + 1))
    finally:
        pool.wait_cycles(*saved)


@needs_x86
def test_a_nested_dispatch_runs_serially_and_completes():
    compiled = _record_module(nested=True)
    out, tid = np.zeros(4096, np.int64), np.zeros(4096, np.int64)
    block = (ctypes.c_void_p * 2)(out.ctypes.data, tid.ctypes.data)
    # every chunk of outer dispatches record over the same 4096 elements: all must finish
    pool.run_range(compiled.address("outer"), ctypes.addressof(block), 64, 2, 1)
    np.testing.assert_array_equal(out, np.arange(1, 4097))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_emit_entry_takes_a_run_time_extent(threads):
    """``extent`` given as a callable evaluated in the entry: here read from a buffer."""
    m = ir.Module("extent_test")
    m.triple = jit.target_machine().triple
    rng_fn = ir.Function(m, ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I64]), "fill_range")
    b = ir.IRBuilder(rng_fn.append_basic_block())
    out, _, lo, hi = rng_fn.args
    with for_range(b, lo, hi) as i:
        old = b.load(elem_ptr(b, out, i, I64), typ=I64)
        b.store(b.add(old, b.add(i, ir.Constant(I64, 1))), elem_ptr(b, out, i, I64))
    b.ret_void()
    entry = parallel.emit_entry(m, "fill", rng_fn, 2, lambda bb: bb.load(bb.function.args[1], typ=I64),
                                threads, grain=16)
    assert entry.name == "fill"
    compiled = jit.compile_module(str(m))
    fill = compiled.function("fill", None, [ctypes.c_void_p, ctypes.c_void_p])
    for n in (0, 1, 31, 32, 1000, 100_000):
        buf = np.zeros(n + 5, np.int64)
        count = np.array([n], np.int64)
        fill(buf.ctypes.data, count.ctypes.data)
        np.testing.assert_array_equal(buf[:n], np.arange(1, n + 1))      # each element exactly once
        assert not buf[n:].any()


# ---- every splittable library kernel, cut into many small chunks ------------------------------
def _contiguous(a: np.ndarray):
    from tensorforge.backends.llvm.library import Operand
    return Operand(tuple(a.shape), tuple(s // a.itemsize for s in a.strides), 0, a.dtype.name)


def _library_cases():
    from tensorforge.ops.indexing import normalize_index
    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 5, 13, 11)).astype("float32")
    x[0, 0, 0, :3] = np.nan
    pooled = np.ones((3, 5, 6, 5), np.float32)
    counter = np.array(7, np.int64)
    attrs2 = {"kernel": (2, 2), "stride": (2, 2), "padding": (0, 0)}
    attrs3 = {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1)}
    return {
        "max_pool2d": ([x], attrs2, (3, 5, 6, 5), "float32"),
        "avg_pool2d": ([x], attrs3, (3, 5, 7, 6), "float32"),
        "max_pool2d_grad": ([pooled, x], attrs2, x.shape, "float32"),
        "max_pool2d_grad_overlapping": ([np.ones((3, 5, 7, 6), np.float32), x], attrs3, x.shape, "float32"),
        "avg_pool2d_grad": ([np.ones((3, 5, 7, 6), np.float32), x], attrs3, x.shape, "float32"),
        "dropout": ([x, counter], {"p": 0.4, "seed": 5}, x.shape, "float32"),
        "random_uniform": ([counter], {"shape": (37, 41), "seed": 1, "dtype": "float32"}, (37, 41), "float32"),
        "argmax": ([x.reshape(15, 143)], {"axis": 1, "keepdims": False}, (15,), "int64"),
        "copy": ([x], {}, x.shape, "float64"),
        "getitem": ([x], {"index": normalize_index((slice(None), 2, slice(1, None, 3)), 4)}, (3, 4, 11), "float32"),
    }


@pytest.mark.parametrize("case", list(_library_cases()))
def test_each_split_library_kernel_equals_its_one_thread_entry(case):
    from tensorforge.backends.llvm.library import LIBRARY, Operand
    from tensorforge.backends.llvm.library.split import splittable
    inputs, attrs, out_shape, out_dtype = _library_cases()[case]
    op = case.replace("_overlapping", "")
    m = ir.Module(case)
    m.triple = jit.target_machine().triple
    out_op = Operand(tuple(out_shape), tg.backends.common.contiguous_strides(out_shape), 0, out_dtype)
    LIBRARY[op](m, "k", [_contiguous(a) for a in inputs], out_op, attrs)
    extent, _work = splittable(m, "k")
    parallel.emit_entry(m, "k_mt", m.get_global("k_range"), 1 + len(inputs), extent, 4, grain=1)
    compiled = jit.compile_module(str(m))
    results = []
    for name in ("k", "k_mt"):
        out = np.full(out_shape, 123, out_dtype)        # every element must be written
        fn = compiled.function(name, None, [ctypes.c_void_p] * (1 + len(inputs)))
        fn(out.ctypes.data, *[a.ctypes.data for a in inputs])
        results.append(out)
    np.testing.assert_array_equal(results[1], results[0])
    assert extent >= 3
