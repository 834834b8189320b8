"""Benchmark suite of the compiler issue: tensorforge (interp, llvm) against NumPy, PyTorch and JAX.

Measures, side by side in one run and in float32, on each requested thread count:

1. the fused elementwise chain ``sigmoid(a*x+b)*tanh(x) + max(x-1,0)*0.5`` on 16M elements
   (ms and GB/s, bytes read + written), and the machine's copy bandwidth (np.copyto);
2. an MLP 784-256-256-10 training step, batch 128, softmax cross-entropy, Adam (steps/s);
3. a small MLP 64-64-10 training step, batch 32, Adam (steps/s, overhead-bound);
4. a small CNN step (64x1x8x8, conv3x3 8 channels pad 1, ReLU, maxpool 2, dense 10,
   SGD momentum 0.9) (steps/s);
5. matmul 512x512x512: GFLOP/s of tensorforge's generated kernel against NumPy's BLAS;
6. compile time of the MLP training step, cold (empty TENSORFORGE_CACHE_DIR) and warm
   (same cache, fresh process), and jax.jit's compile time of its step;

then writes docs/performance.md: the machine, the versions, one table per workload and a
summary of the targets of the issue (met / missed by how much).

Every configuration (system x thread count) runs in its own subprocess, so the thread
settings are in the environment before NumPy, PyTorch or JAX load; a worker prints one
``RESULT {json}`` line per measurement on stdout and a progress line on stderr. Every system
starts from the same initial parameters and trains on the same batch, so the first-step
losses must agree across systems (the table shows them); the models, their initial values and
the optimizer settings of the training steps come from tensorforge.bench, which
``tensorforge bench`` measures too.

    python benchmarks/compiler.py [--threads 1 2] [--quick] [--out docs/performance.md]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from tensorforge.bench import (ADAM, SGD, cnn_init, jax_compiled_step, jax_model, mlp_init, random_batch,
                               tensorforge_training_step, torch_model)

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ("numpy", "interp", "llvm", "torch", "torch.compile", "jax")
STEP_WORKLOADS = ("mlp", "small_mlp", "cnn")
NOTES_MARKER = "<!-- notes below this line are kept when the script rewrites the file -->"
RESULT_PREFIX = "RESULT "

# Full-size and --quick problem sizes; the quick ones keep the smoke test well under a minute.
SIZES = {
    "full": {"chain_n": 1 << 24, "mlp": (784, 256, 256, 10), "mlp_batch": 128,
             "small_mlp": (64, 64, 10), "small_batch": 32, "cnn_batch": 64, "matmul_n": 512,
             "budget_s": 1.5, "min_samples": 5},
    "quick": {"chain_n": 1 << 16, "mlp": (64, 32, 32, 10), "mlp_batch": 16,
              "small_mlp": (64, 64, 10), "small_batch": 32, "cnn_batch": 64, "matmul_n": 64,
              "budget_s": 0.05, "min_samples": 3},
}
CHAIN_A, CHAIN_B = 1.5, -0.25          # the chain's scalar constants, the same in every system


# ======================================================================================
# measurement helpers (worker side)
# ======================================================================================

def emit(record: dict) -> None:
    """One measurement to the parent (stdout) and a progress line (stderr); adds the CPU use
    of the measurement and the machine's load average (the machine may be shared)."""
    global LAST_CPU_USE
    if LAST_CPU_USE is not None and record.get("seconds") is not None and "cpu_use" not in record:
        record["cpu_use"] = LAST_CPU_USE
    LAST_CPU_USE = None
    if hasattr(os, "getloadavg"):
        record["loadavg"] = os.getloadavg()[0]
    print(RESULT_PREFIX + json.dumps(record), flush=True)
    value = record.get("seconds")
    shown = f"{value * 1e3:10.3f} ms" if isinstance(value, float) else f"{'-':>13}"
    extra = f"  ({record['calls']} calls" + (f", cpu {record['cpu_use']:.1f}" if "cpu_use" in record else "") \
        + ")" if "calls" in record else ""
    note = f"  note: {record['note']}" if record.get("note") else ""
    print(f"[compiler.py] {record['threads']}t {record['system']:<14} {record['workload']:<16}"
          f"{shown}{extra}{note}", file=sys.stderr, flush=True)


def median_seconds(fn, budget_s: float, min_samples: int) -> tuple[float, int]:
    """Median seconds per call of ``fn`` after two warm-up calls, time-boxed to ~``budget_s``.

    Each sample times a block of calls lasting about budget/10 (re-sized from the running
    median, so one slow warm-up call cannot leave the blocks too short); the median of the
    samples resists the noise of a shared machine. Also records the process CPU time per
    wall second while sampling in ``LAST_CPU_USE`` (about the number of busy threads)."""
    global LAST_CPU_USE
    fn()
    fn()
    t0 = time.perf_counter()
    fn()
    per_call = max(time.perf_counter() - t0, 1e-7)
    samples, calls = [], 3
    start, cpu_start = time.perf_counter(), time.process_time()
    while len(samples) < min_samples or (time.perf_counter() - start < budget_s and len(samples) < 200):
        per_sample = max(1, int(budget_s / 10 / per_call))
        t0 = time.perf_counter()
        for _ in range(per_sample):
            fn()
        samples.append((time.perf_counter() - t0) / per_sample)
        calls += per_sample
        per_call = max(statistics.median(samples), 1e-7)
    LAST_CPU_USE = (time.process_time() - cpu_start) / max(time.perf_counter() - start, 1e-9)
    return statistics.median(samples), calls


LAST_CPU_USE: float | None = None


def chain_reference(x):
    """The chain in float64 NumPy: the oracle every system's output is compared with."""
    import numpy as np
    x = x.astype(np.float64)
    return 1.0 / (1.0 + np.exp(-(CHAIN_A * x + CHAIN_B))) * np.tanh(x) + np.maximum(x - 1.0, 0.0) * 0.5


def batch(kind, sizes, seed=1):
    """The fixed (x, y) batch a workload trains on, repeatedly."""
    if kind == "cnn":
        shape = (sizes["cnn_batch"], 1, 8, 8)
    elif kind == "mlp":
        shape = (sizes["mlp_batch"], sizes["mlp"][0])
    else:
        shape = (sizes["small_batch"], sizes["small_mlp"][0])
    return random_batch(shape, seed)


# ======================================================================================
# the systems: each returns callables for the workloads
# ======================================================================================

def softmax_xent_and_grad(logits, y, rows):
    """Mean softmax cross-entropy of integer labels ``y`` and its gradient w.r.t. the logits."""
    import numpy as np
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = np.log(s[:, 0]).mean() - shifted[rows, y].mean()
    g = e / s
    g[rows, y] -= 1
    return loss, g / len(y)


class NumpySystem:
    """Hand-written, vectorised NumPy: the expression, forward + backward + optimizer."""

    name = "numpy"

    def chain(self, x):
        import numpy as np
        a, b = np.float32(CHAIN_A), np.float32(CHAIN_B)
        return lambda: 1 / (1 + np.exp(-(a * x + b))) * np.tanh(x) + np.maximum(x - 1, 0) * np.float32(0.5)

    def mlp_step(self, sizes, x, y):
        import numpy as np
        params = [p.copy() for layer in mlp_init(sizes) for p in layer]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        rows = np.arange(len(y))
        t = [0]

        def step():
            hs = [x]                                   # inputs of each layer (post-ReLU)
            for i in range(0, len(params), 2):
                z = hs[-1] @ params[i] + params[i + 1]
                hs.append(np.maximum(z, 0, out=z) if i + 2 < len(params) else z)
            logits = hs.pop()
            loss, g = softmax_xent_and_grad(logits, y, rows)
            grads = [None] * len(params)
            for i in range(len(params) - 2, -1, -2):
                h = hs[i // 2]
                grads[i], grads[i + 1] = h.T @ g, g.sum(axis=0)
                if i:
                    g = g @ params[i].T
                    g *= h > 0
            adam_update(params, grads, m, v, t)
            return loss
        return step

    def cnn_step(self, x, y):
        import numpy as np
        from numpy.lib.stride_tricks import sliding_window_view
        w, cb, wd, bd = [p.copy() for p in cnn_init()]
        params = [w, cb, wd, bd]
        bufs = [np.zeros_like(p) for p in params]
        n = x.shape[0]
        rows = np.arange(n)
        # the columns are rebuilt every step although the batch is fixed: the other systems
        # do not know the batch repeats either

        def step():
            xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
            cols = sliding_window_view(xp, (3, 3), axis=(2, 3))          # (n,1,8,8,3,3)
            cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * 64, 9)   # rows = (n,h,w), cols = (c,kh,kw)
            z = cols @ w.reshape(8, 9).T + cb                              # (n*64, 8) in NHWC order
            r = np.maximum(z, 0)
            r6 = r.reshape(n, 4, 2, 4, 2, 8)
            pooled = r6.max(axis=(2, 4))                                   # (n,4,4,8)
            flat = pooled.transpose(0, 3, 1, 2).reshape(n, 128)           # NCHW flatten order
            logits = flat @ wd + bd
            loss, g = softmax_xent_and_grad(logits, y, rows)
            gwd, gbd = flat.T @ g, g.sum(axis=0)
            gpool = (g @ wd.T).reshape(n, 8, 4, 4).transpose(0, 2, 3, 1)  # (n,4,4,8)
            # ties in a pooling window happen only among zeros, which the ReLU mask removes
            mask = r6 == pooled[:, :, None, :, None, :]
            gz = (mask * gpool[:, :, None, :, None, :]).reshape(n * 64, 8)
            gz *= z > 0
            gw, gcb = (gz.T @ cols).reshape(8, 1, 3, 3), gz.sum(axis=0)
            for p, gp, buf in zip(params, (gw, gcb, gwd, gbd), bufs):
                buf *= SGD["momentum"]
                buf += gp
                p -= SGD["lr"] * buf
            return loss
        return step

    def matmul(self, a, b):
        import numpy as np
        return lambda: np.matmul(a, b)


def adam_update(params, grads, m, v, t):
    """torch.optim.Adam's update, in place, in NumPy (bias corrections in float64 like torch)."""
    import numpy as np
    t[0] += 1
    b1, b2, lr, eps = ADAM["b1"], ADAM["b2"], ADAM["lr"], ADAM["eps"]
    step_size = lr / (1 - b1 ** t[0])
    bc2_sqrt = np.sqrt(1 - b2 ** t[0])
    for p, g, mi, vi in zip(params, grads, m, v):
        mi *= b1
        mi += (1 - b1) * g
        vi *= b2
        vi += (1 - b2) * (g * g)
        denom = np.sqrt(vi)
        denom /= bc2_sqrt
        denom += eps
        p -= step_size * (mi / denom)


class TensorforgeSystem:
    """tensorforge graphs compiled with ``tg.compile(..., backend=...)``; one native call per step on llvm."""

    def __init__(self, backend):
        import tensorforge as tg
        self.tg, self.backend, self.name = tg, backend, backend
        self.compiled = {}                 # workload -> CompiledFunction, for compile times

    def _run(self, key, fn, *arrays):
        self.compiled[key] = fn
        return lambda: fn(*arrays)

    def chain(self, x):
        tg = self.tg
        g = tg.Graph()
        with g:
            xs = tg.placeholder("x", x.shape)
            out = tg.sigmoid(xs * CHAIN_A + CHAIN_B) * tg.tanh(xs) + tg.maximum(xs - 1, 0) * 0.5
        fn = tg.compile([xs], out, backend=self.backend, name="chain")
        return self._run("chain", fn, x)

    def _mlp_graph(self, sizes, x, y):
        return tensorforge_training_step(sizes, x, y, self.backend, name="mlp_step")

    def mlp_step(self, sizes, x, y, key="mlp"):
        return self._run(key, self._mlp_graph(sizes, x, y), x, y)

    def cnn_step(self, x, y):
        return self._run("cnn", tensorforge_training_step(None, x, y, self.backend, name="cnn_step"), x, y)

    def matmul(self, a, b):
        tg = self.tg
        with tg.Graph():
            pa, pb = tg.placeholder("a", a.shape), tg.placeholder("b", b.shape)
            fn = tg.compile([pa, pb], pa @ pb, backend=self.backend, name="matmul")
        return self._run("matmul", fn, a, b)

    def compile_seconds(self, key):
        times = self.compiled[key].compile_times
        return max(times.values()) if times else None


class TorchSystem:
    """PyTorch eager, or with ``torch.compile`` (mode default) on the model and the optimizer step."""

    def __init__(self, compiled: bool):
        import torch
        self.torch, self.compiled = torch, compiled
        self.name = "torch.compile" if compiled else "torch"
        self.notes = []

    def _maybe_compile(self, fn):
        return self.torch.compile(fn) if self.compiled else fn

    def chain(self, x):
        torch = self.torch
        xt = torch.from_numpy(x)

        def f(v):
            return torch.sigmoid(v * CHAIN_A + CHAIN_B) * torch.tanh(v) + torch.clamp(v - 1, min=0) * 0.5
        f = self._maybe_compile(f)
        return lambda: f(xt).numpy()

    def _train_step(self, forward, opt, x, y):
        torch = self.torch
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def loss_fn(a, b):
            return torch.nn.functional.cross_entropy(forward(a), b)
        loss_fn = self._maybe_compile(loss_fn)
        opt_step = opt.step
        if self.compiled:
            opt_step = torch.compile(opt.step)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(xt, yt)
            loss.backward()
            opt_step()
            return loss.item()
        return step

    def mlp_step(self, sizes, x, y):
        return self._train_step(*torch_model(sizes), x, y)

    def cnn_step(self, x, y):
        return self._train_step(*torch_model(None), x, y)


class JaxSystem:
    """jax.jit of the whole step: value_and_grad and the optimizer update in one jitted function."""

    name = "jax"

    def __init__(self):
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        self.compile_s = {}

    def chain(self, x):
        jax, jnp = self.jax, self.jnp
        f = jax.jit(lambda v: jax.nn.sigmoid(v * CHAIN_A + CHAIN_B) * jnp.tanh(v) + jnp.maximum(v - 1, 0) * 0.5)
        xj = jnp.asarray(x)
        return lambda: f(xj).block_until_ready()

    def _train(self, key, loss_fn, update, params, state, x, y):
        """The jitted step's run(); its compile time is kept under ``key``."""
        run, self.compile_s[key] = jax_compiled_step(loss_fn, update, params, state, x, y)
        return run

    def mlp_step(self, sizes, x, y, key="mlp"):
        return self._train(key, *jax_model(sizes), x, y)

    def cnn_step(self, x, y):
        return self._train("cnn", *jax_model(None), x, y)


# ======================================================================================
# the worker: one system, one thread count, every workload
# ======================================================================================

def make_system(name):
    if name == "numpy":
        return NumpySystem()
    if name in ("interp", "llvm"):
        return TensorforgeSystem(name)
    if name in ("torch", "torch.compile"):
        return TorchSystem(compiled=name == "torch.compile")
    if name == "jax":
        return JaxSystem()
    raise ValueError(f"unknown system {name!r}")


def set_library_threads(system: str, threads: int) -> None:
    """Thread knobs that need a call, not just the environment the parent set."""
    if system in ("interp", "llvm"):
        import tensorforge as tg
        tg.set_num_threads(threads)
    if system.startswith("torch"):
        import torch
        torch.set_num_threads(threads)


def copy_bandwidth(n, threads, budget_s, min_samples):
    """GB/s of np.copyto over n float32 (read + write), split across ``threads`` Python threads
    (NumPy releases the GIL while copying)."""
    import numpy as np
    from concurrent.futures import ThreadPoolExecutor
    src = np.random.default_rng(2).standard_normal(n).astype(np.float32)
    dst = np.empty_like(src)
    if threads == 1:
        fn = lambda: np.copyto(dst, src)  # noqa: E731
        return median_seconds(fn, budget_s, min_samples)
    parts = np.array_split(np.arange(n), threads)
    bounds = [(p[0], p[-1] + 1) for p in parts]
    with ThreadPoolExecutor(threads) as pool:
        def fn():
            list(pool.map(lambda ab: np.copyto(dst[ab[0]:ab[1]], src[ab[0]:ab[1]]), bounds))
        return median_seconds(fn, budget_s, min_samples)


def measure_step(system, workload, sizes, threads, budget, min_samples, make):
    """Time one training-step workload; record its first-step and final losses."""
    kind = "small_mlp" if workload == "small_mlp" else workload
    x, y = batch(kind, sizes)
    fn = make(x, y)
    first = float(fn())
    seconds, calls = median_seconds(fn, budget, min_samples)
    final = float(fn())
    record = {"workload": workload, "system": system.name, "threads": threads, "seconds": seconds,
              "calls": calls + 2, "first_loss": first, "final_loss": final}
    if isinstance(system, TensorforgeSystem):
        record["compile_s"] = system.compile_seconds(workload)
    if isinstance(system, JaxSystem):
        record["compile_s"] = system.compile_s.get(workload)
    return record


def worker(args) -> None:
    """Run every workload of one system on one thread count; one RESULT line each."""
    import numpy as np
    sizes = SIZES["quick" if args.quick else "full"]
    budget, min_samples, threads = sizes["budget_s"], sizes["min_samples"], args.threads[0]
    set_library_threads(args.worker, threads)
    if args.worker.startswith("compile-"):
        return compile_worker(args, sizes, threads)
    system = make_system(args.worker)
    base = {"system": args.worker, "threads": threads}

    def guarded(workload, measure):
        try:
            emit(measure())
        except Exception as e:  # noqa: BLE001 - a failing system is reported, not fatal
            msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
            emit({**base, "workload": workload, "seconds": None, "note": f"failed: {msg}"})

    x = np.random.default_rng(3).uniform(-3, 3, sizes["chain_n"]).astype(np.float32)
    if args.worker == "numpy":
        guarded("copy", lambda: {**base, "workload": "copy", **dict(zip(
            ("seconds", "calls"), copy_bandwidth(sizes["chain_n"], threads, budget, min_samples)))})

    def chain():
        fn = system.chain(x)
        out = np.asarray(fn())
        sample = slice(None, None, 61)
        err = float(np.max(np.abs(out[sample].astype(np.float64) - chain_reference(x[sample]))))
        seconds, calls = median_seconds(fn, budget * 1.5, min_samples)
        record = {**base, "workload": "chain", "seconds": seconds, "calls": calls + 1, "max_abs_err": err}
        if isinstance(system, TensorforgeSystem):
            record["compile_s"] = system.compile_seconds("chain")
        return record
    guarded("chain", chain)
    guarded("mlp", lambda: measure_step(system, "mlp", sizes, threads, budget, min_samples,
                                        lambda xb, yb: system.mlp_step(sizes["mlp"], xb, yb)))
    guarded("small_mlp", lambda: measure_step(system, "small_mlp", sizes, threads, budget, min_samples,
                                              lambda xb, yb: _small(system, sizes, xb, yb)))
    guarded("cnn", lambda: measure_step(system, "cnn", sizes, threads, budget, min_samples, system.cnn_step))
    if args.worker in ("numpy", "llvm"):
        def matmul():
            n = sizes["matmul_n"]
            rng = np.random.default_rng(4)
            a, b = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
            fn = system.matmul(a, b)
            out = np.asarray(fn())
            ref = a.astype(np.float64) @ b.astype(np.float64)
            err = float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))
            seconds, calls = median_seconds(fn, budget, min_samples)
            return {**base, "workload": "matmul", "seconds": seconds, "calls": calls + 1, "rel_err": err,
                    "gflops": 2.0 * n ** 3 / seconds / 1e9}
        guarded("matmul", matmul)


def _small(system, sizes, x, y):
    """The small MLP step; tensorforge and jax keep its compile time under its own key."""
    if isinstance(system, (TensorforgeSystem, JaxSystem)):
        return system.mlp_step(sizes["small_mlp"], x, y, key="small_mlp")
    return system.mlp_step(sizes["small_mlp"], x, y)


def compile_worker(args, sizes, threads) -> None:
    """Compile the MLP training step once in this fresh process (cold or warm disk cache)."""
    phase = args.worker.split("-", 1)[1]
    t0 = time.perf_counter()
    system = TensorforgeSystem("llvm")
    x, y = batch("mlp", sizes)
    fn = system._mlp_graph(sizes["mlp"], x, y)
    built = time.perf_counter()
    loss = float(fn(x, y))
    first_call = time.perf_counter() - built
    emit({"system": "llvm", "threads": threads, "workload": f"compile_{phase}",
          "seconds": max(fn.compile_times.values()),
          "first_call_s": first_call, "graph_build_s": built - t0, "first_loss": loss,
          "cache_files": sum(1 for _ in Path(os.environ["TENSORFORGE_CACHE_DIR"]).rglob("*") if _.is_file())})


# ======================================================================================
# the parent: run every configuration, collect, write the report
# ======================================================================================

def worker_env(threads: int, cache_dir: str) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TENSORFORGE_NUM_THREADS"):
        env[var] = str(threads)
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    else:
        env.pop("XLA_FLAGS", None)
    env["TENSORFORGE_CACHE_DIR"] = cache_dir
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def run_worker(system: str, threads: int, quick: bool, cache_dir: str, timeout_s: float) -> list[dict]:
    """One configuration in a fresh subprocess; its RESULT lines, or one failure record."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", system, "--threads", str(threads)]
    if quick:
        cmd.append("--quick")
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=worker_env(threads, cache_dir), stdout=subprocess.PIPE, stderr=None,
                              text=True, timeout=timeout_s, cwd=str(ROOT))
        stdout, failure = proc.stdout, None if proc.returncode == 0 else f"worker exited with {proc.returncode}"
    except subprocess.TimeoutExpired as e:
        stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        failure = f"worker timed out after {timeout_s:.0f} s"
    records = [json.loads(line[len(RESULT_PREFIX):]) for line in stdout.splitlines()
               if line.startswith(RESULT_PREFIX)]
    if failure:
        records.append({"system": system, "threads": threads, "workload": "worker", "seconds": None,
                        "note": failure})
        print(f"[compiler.py] {threads}t {system}: {failure}", file=sys.stderr, flush=True)
    print(f"[compiler.py] {threads}t {system}: done in {time.perf_counter() - start:.1f} s",
          file=sys.stderr, flush=True)
    return records


def run_all(args) -> list[dict]:
    systems = [s for s in SYSTEMS if s in args.systems]
    records: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tf-bench-cache-") as tmp:
        for threads in args.threads:
            for system in systems:
                if system == "torch.compile" and args.quick:
                    records.append({"system": system, "threads": threads, "workload": "worker",
                                    "seconds": None, "note": "skipped in --quick (compiles take ~15 s)"})
                    continue
                records += run_worker(system, threads, args.quick, str(Path(tmp) / "throughput"),
                                      args.timeout)
            if "llvm" in systems:
                cache = Path(tmp) / f"compile-{threads}"        # empty: the cold run fills it
                for phase in ("cold", "warm"):
                    records += run_worker(f"compile-{phase}", threads, args.quick, str(cache), args.timeout)
    return records


# -------------------------------------------------------------------------------------
# report
# -------------------------------------------------------------------------------------

def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 2 ** 20:.1f} GiB"
    except OSError:
        pass
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        have = set(text.split("flags", 1)[1].split("\n", 1)[0].split())
        flags = " ".join(f for f in ("avx2", "fma", "avx512f") if f in have)
    except (OSError, IndexError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "isa": flags, "os": platform.platform()}


def versions() -> dict:
    def ver(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"
    out = {"python": platform.python_version(), "numpy": ver("numpy"), "llvmlite": ver("llvmlite"),
           "torch": ver("torch"), "jax": ver("jax"), "jaxlib": ver("jaxlib")}
    try:
        import llvmlite.binding as llvm
        out["LLVM"] = ".".join(map(str, llvm.llvm_version_info))
    except Exception:  # noqa: BLE001 - the version line just says unknown
        out["LLVM"] = "?"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        out["tensorforge"] = head + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        out["tensorforge"] = "?"
    return out


def lookup(records, workload, system, threads):
    for r in records:
        if r["workload"] == workload and r["system"] == system and r["threads"] == threads:
            return r
    return None


def seconds_of(records, workload, system, threads):
    r = lookup(records, workload, system, threads)
    return r["seconds"] if r and isinstance(r.get("seconds"), (int, float)) else None


def system_note(records, system, threads, workload):
    """Why a system has no number: its own failure note or its worker's."""
    r = lookup(records, workload, system, threads)
    if r and r.get("note"):
        return r["note"]
    w = lookup(records, "worker", system, threads)
    return w["note"] if w else "not measured"


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def table(header, rows) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return lines + [""]


def chain_table(records, threads_list, n) -> list[str]:
    bytes_moved = 2 * 4 * n
    rows = []
    for threads in threads_list:
        copy = seconds_of(records, "copy", "numpy", threads)
        copy_gbs = bytes_moved / copy / 1e9 if copy else None
        c = lookup(records, "copy", "numpy", threads) or {}
        rows.append(["np.copyto (copy bandwidth)", threads, fmt(copy and copy * 1e3, ".2f"), fmt(copy_gbs, ".1f"),
                     "100%" if copy_gbs else "-", "-", fmt(c.get("cpu_use"), ".1f"), "-",
                     "" if copy else system_note(records, "numpy", threads, "copy")])
        ref = seconds_of(records, "chain", "numpy", threads)
        for system in SYSTEMS:
            s = seconds_of(records, "chain", system, threads)
            r = lookup(records, "chain", system, threads) or {}
            gbs = bytes_moved / s / 1e9 if s else None
            rows.append([system, threads, fmt(s and s * 1e3, ".2f"), fmt(gbs, ".1f"),
                         f"{gbs / copy_gbs:.0%}" if gbs and copy_gbs else "-",
                         f"{ref / s:.2f}x" if s and ref else "-", fmt(r.get("cpu_use"), ".1f"),
                         fmt(r.get("max_abs_err"), ".1e"), "" if s else system_note(records, system, threads, "chain")])
    return table(["system", "threads", "ms", "GB/s", "of copy bw", "vs numpy", "cpu use", "max abs err vs f64",
                  "note"], rows)


def step_table(records, threads_list, workload) -> list[str]:
    rows = []
    for threads in threads_list:
        ref = seconds_of(records, workload, "numpy", threads)
        jax = seconds_of(records, workload, "jax", threads)
        first_ref = (lookup(records, workload, "numpy", threads) or {}).get("first_loss")
        for system in SYSTEMS:
            s = seconds_of(records, workload, system, threads)
            r = lookup(records, workload, system, threads) or {}
            first = r.get("first_loss")
            dev = abs(first - first_ref) / abs(first_ref) if first is not None and first_ref else None
            rows.append([system, threads, fmt(s and 1 / s, ",.0f"), fmt(s and s * 1e3, ".3f"),
                         f"{ref / s:.2f}x" if s and ref else "-", f"{jax / s:.2f}x" if s and jax else "-",
                         fmt(r.get("cpu_use"), ".1f"), fmt(first, ".6f"), fmt(dev, ".1e"), fmt(r.get("final_loss"), ".4f"),
                         fmt(r.get("compile_s"), ".2f"),
                         "" if s else system_note(records, system, threads, workload)])
    return table(["system", "threads", "steps/s", "ms/step", "vs numpy", "vs jax.jit", "cpu use", "first-step loss",
                  "rel. dev. from numpy", "loss after run", "compile s", "note"], rows)


def matmul_table(records, threads_list, n) -> list[str]:
    rows = []
    for threads in threads_list:
        ref = seconds_of(records, "matmul", "numpy", threads)
        for system, label in (("numpy", "numpy (BLAS)"), ("llvm", "tensorforge llvm")):
            s = seconds_of(records, "matmul", system, threads)
            r = lookup(records, "matmul", system, threads) or {}
            rows.append([label, threads, fmt(s and s * 1e3, ".3f"), fmt(r.get("gflops"), ".1f"),
                         f"{ref / s:.2f}x" if s and ref else "-", fmt(r.get("cpu_use"), ".1f"),
                         fmt(r.get("rel_err"), ".1e"), "" if s else system_note(records, system, threads, "matmul")])
    return table(["system", "threads", "ms", "GFLOP/s", "vs numpy", "cpu use", "max rel err vs f64", "note"], rows)


def compile_table(records, threads_list) -> list[str]:
    rows = []
    for threads in threads_list:
        for phase in ("cold", "warm"):
            r = lookup(records, f"compile_{phase}", "llvm", threads) or {}
            rows.append([f"tensorforge llvm, {phase} disk cache", threads, fmt(r.get("seconds"), ".3f"),
                         fmt(r.get("first_call_s"), ".3f"), r.get("cache_files", "-"),
                         r.get("note") or ("" if r else system_note(records, "llvm", threads, f"compile_{phase}"))])
        j = lookup(records, "mlp", "jax", threads) or {}
        rows.append(["jax.jit (lower + compile)", threads, fmt(j.get("compile_s"), ".3f"), "-", "-",
                     "" if j.get("compile_s") else system_note(records, "jax", threads, "mlp")])
    return table(["what", "threads", "compile s", "first call s", "cache files", "note"], rows)


def verdict(measured, target, unit="x"):
    if measured is None:
        return "-", "not measured"
    if measured >= target:
        return f"{measured:.2f}{unit}", "met"
    return f"{measured:.2f}{unit}", f"missed: {measured / target:.0%} of target (needs {target / measured:.2f}x more)"


def verdict_at_most(measured, limit):
    if measured is None:
        return "-", "not measured"
    if measured <= limit:
        return f"{measured:.3f} s", "met"
    return f"{measured:.3f} s", f"missed: {measured / limit:.1f}x the limit"


def ratio(records, workload, fast, slow, tf, ts):
    a, b = seconds_of(records, workload, fast, tf), seconds_of(records, workload, slow, ts)
    return b / a if a and b else None


def targets(records, threads_list) -> list[list]:
    rows = []
    t1 = 1 if 1 in threads_list else threads_list[0]

    def add(label, threads, measured, target, fn=verdict, shown_target=None):
        value, status = fn(measured, target)
        rows.append([label, threads, value, shown_target or f">= {target}x", status])
    add("fused chain: llvm / numpy expression", t1, ratio(records, "chain", "llvm", "numpy", t1, t1), 15)
    add("fused chain: llvm / jax.jit", t1, ratio(records, "chain", "llvm", "jax", t1, t1), 3)
    if 2 in threads_list and t1 == 1:
        add("fused chain: llvm 2 threads / llvm 1 thread", 2, ratio(records, "chain", "llvm", "llvm", 2, 1), 1.7)
    mlp_target = {1: 1.2, 2: 1.3}
    for threads in threads_list:
        if threads in mlp_target:
            add("MLP step: llvm / jax.jit", threads, ratio(records, "mlp", "llvm", "jax", threads, threads),
                mlp_target[threads])
    for threads in threads_list:
        add("small MLP step: llvm / jax.jit", threads,
            ratio(records, "small_mlp", "llvm", "jax", threads, threads), 2)
        add("small MLP step: llvm / interp", threads,
            ratio(records, "small_mlp", "llvm", "interp", threads, threads), 6)
    for threads in threads_list:
        add("small CNN step: llvm / jax.jit", threads, ratio(records, "cnn", "llvm", "jax", threads, threads), 3)
    add("matmul 512^3: llvm / numpy BLAS", t1, ratio(records, "matmul", "llvm", "numpy", t1, t1), 0.8)
    for phase, limit in (("cold", 0.5), ("warm", 0.05)):
        r = lookup(records, f"compile_{phase}", "llvm", t1) or {}
        add(f"MLP step compile time, {phase} disk cache", t1, r.get("seconds"), limit, verdict_at_most,
            f"<= {limit} s")
    return rows


def report(records, args, sizes, machine, vers, elapsed, date) -> str:
    threads_list = list(args.threads)
    mlp = "-".join(map(str, sizes["mlp"]))
    small = "-".join(map(str, sizes["small_mlp"]))
    n = sizes["chain_n"]
    lines = ["# Performance", "",
             "Written by `python benchmarks/compiler.py"
             + (" --quick" if args.quick else "") + f" --threads {' '.join(map(str, threads_list))}`"
             + f" on {date} ({elapsed:.0f} s). "
             "All numbers are float32, measured side by side in one run, each system and thread count in "
             "its own process; times are medians of repeated runs after warm-up, each measurement "
             "time-boxed to a few seconds. Ratios are speed ratios (higher = the first system is faster); "
             "'cpu use' is the process's CPU seconds per wall second while timing (about the number of "
             "busy threads). The load average in the machine table counts this benchmark's own threads too: "
             "well above the thread count means other work shared the cores and the numbers are noisy.",
             ""]
    if args.quick:
        lines += ["**--quick run: tiny sizes, short time boxes; the numbers mean nothing.**", ""]
    lines += ["## Machine and versions", ""]
    loads = [r["loadavg"] for r in records if "loadavg" in r]
    load = f"{min(loads):.2f} - {max(loads):.2f}" if loads else "?"
    lines += table(["", ""], [["CPU", machine["cpu"]], ["cores", machine["cores"]], ["memory", machine["memory"]],
                              ["vector ISA", machine["isa"]], ["OS", machine["os"]],
                              ["1-min load average during the run", load]]
                   + [[k, v] for k, v in vers.items()])
    if loads and max(loads) > (machine["cores"] or 1) + 0.5:
        lines += [f"**The machine was shared during this run (1-min load average up to {max(loads):.1f} on "
                  f"{machine['cores']} cores): the numbers are noisy, the multi-thread ones most (a thread "
                  "waiting for a busy core stalls the others); 'cpu use' shows how much CPU each measurement "
                  "got.**", ""]
    lines += ["## Targets", ""]
    lines += table(["target", "threads", "measured", "target", "status"], targets(records, threads_list))
    lines += [f"## 1. Fused elementwise chain, {n:,} elements", "",
              "`sigmoid(1.5*x-0.25)*tanh(x) + max(x-1,0)*0.5`; GB/s counts the bytes read and written "
              f"({2 * 4 * n / 1e6:.0f} MB per call); the copy row is np.copyto of the same size (split across "
              "Python threads on 2 threads), the memory bandwidth this machine gives one process.", ""]
    lines += chain_table(records, threads_list, n)
    for workload, title, text in (
            ("mlp", f"## 2. MLP training step {mlp}, batch {sizes['mlp_batch']}",
             "Softmax cross-entropy, Adam (lr 1e-3); forward, backward and update per step."),
            ("small_mlp", f"## 3. Small MLP training step {small}, batch {sizes['small_batch']}",
             "Softmax cross-entropy, Adam; overhead-bound: the per-step cost of calling into each system shows."),
            ("cnn", f"## 4. Small CNN training step, batch {sizes['cnn_batch']}",
             "Input 1x8x8, conv 3x3 8 channels pad 1, ReLU, maxpool 2, dense 10, softmax cross-entropy, "
             "SGD momentum 0.9 (lr 0.01); numpy is a hand-written im2col version.")):
        lines += [title, "", text + " Every system starts from the same parameters and trains on one fixed "
                  "batch, so the first-step losses agree; 'compile s' is the first-call build time "
                  "(tensorforge: `compile_times`; jax: lower + compile).", ""]
        lines += step_table(records, threads_list, workload)
    mm = sizes["matmul_n"]
    lines += [f"## 5. Matmul {mm}x{mm}x{mm}", "",
              "tensorforge's generated kernel (`tg.compile` of `a @ b`, llvm) against `np.matmul` (OpenBLAS).", ""]
    lines += matmul_table(records, threads_list, mm)
    lines += [f"## 6. Compile time of the MLP training step ({mlp})", "",
              "Each row is a fresh process; 'cold' starts with an empty TENSORFORGE_CACHE_DIR, 'warm' reuses "
              "the cache the cold run filled. 'compile s' is `CompiledFunction.compile_times` (passes + code "
              "generation or cache load); 'first call s' adds the first step's run.", ""]
    lines += compile_table(records, threads_list)
    skipped = sorted({f"{r['system']} ({r['threads']}t, {r['workload']}): {r['note']}" for r in records
                      if r.get("note")})
    if skipped:
        lines += ["## Not measured", ""] + [f"- {s}" for s in skipped] + [""]
    return "\n".join(lines)


def kept_notes(path: Path) -> str:
    """Hand-written notes after the marker in an existing report survive a re-run."""
    if path.exists():
        text = path.read_text()
        if NOTES_MARKER in text:
            return text.split(NOTES_MARKER, 1)[1].lstrip("\n")
    return ("## Notes\n\n(Why each missed target is missed and what would close it: written by hand, "
            "kept when the script rewrites the tables above.)\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and time boxes (smoke test)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--json", default=None, help="also write every raw measurement here")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--timeout", type=float, default=420.0, help="seconds per worker process")
    parser.add_argument("--from-json", default=None, metavar="JSON",
                        help="measure nothing: rewrite the report from a previous run's --json file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    if any(t < 1 for t in args.threads):
        parser.error("--threads: need positive thread counts")
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        records, elapsed = saved["records"], saved.get("elapsed_s", 0.0)
        for key in ("threads", "quick"):
            setattr(args, key, saved["args"][key])
        machine, vers = saved.get("machine") or machine_info(), saved.get("versions") or versions()
        date = saved.get("date", "?")
    else:
        date = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        machine, vers = machine_info(), versions()
        start = time.perf_counter()
        records = run_all(args)
        elapsed = time.perf_counter() - start
    sizes = SIZES["quick" if args.quick else "full"]
    text = report(records, args, sizes, machine, vers, elapsed, date)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(text + "\n" + NOTES_MARKER + "\n\n" + kept_notes(out))
    tmp.replace(out)                                  # atomic: never a half-written report
    if args.json and not args.from_json:
        Path(args.json).write_text(json.dumps({"records": records, "args": vars(args), "elapsed_s": elapsed,
                                               "date": date, "machine": machine, "versions": vers}, indent=1))
    print(text)
    print(f"[compiler.py] wrote {out} in {elapsed:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
