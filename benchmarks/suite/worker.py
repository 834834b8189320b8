"""The worker: one system on one thread count, answering the parent's requests.

Started by the parent with its thread variables already in the environment (so they hold
before any library loads), it pins the thread APIs, creates its system, reports the thread
counts it sees (a ``threads`` record) and then answers ``measure WORKLOAD ROUND`` lines with
one RESULT record each (tensorforge.bench_fair.serve). A workload is set up on its first
request: built, called once for its first-step loss, warmed up; later rounds only time it, and
the training state carries on from round to round. ``compile-cold`` / ``compile-warm`` workers
are one-shot: they build one step in a fresh process and exit.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from tensorforge.bench_fair import finish, pin_library_threads, serve, thread_report

from .measure import emit, median_seconds, warm_up
from .workloads import STEP_WORKLOADS, batch, chain_reference, model_spec, sizes_of


def make_system(name):
    from .systems import JaxSystem, NumpySystem, TensorforgeSystem, TorchSystem
    if name == "numpy":
        return NumpySystem()
    if name in ("interp", "llvm"):
        return TensorforgeSystem(name)
    if name in ("torch", "torch.compile"):
        return TorchSystem(compiled=name == "torch.compile")
    if name == "jax":
        return JaxSystem()
    if name in ("pytensor", "tinygrad"):
        from .peers import PyTensorSystem, TinygradSystem
        return PyTensorSystem() if name == "pytensor" else TinygradSystem()
    raise ValueError(f"unknown system {name!r}")


def failure_note(e: Exception) -> str:
    """The note a row shows instead of a number."""
    if isinstance(e, NotImplementedError):
        return str(e)
    if isinstance(e, ModuleNotFoundError):
        return f"not installed ({e.name}): pip install '.[bench]', see benchmarks/README.md"
    msg = str(e).strip().splitlines()[-1] if str(e).strip() else ""
    return f"failed: {type(e).__name__}: {msg}"[:240]


class Setups:
    """Each workload's timed callable and its one-off facts (first loss, errors, compile time),
    made on the workload's first request."""

    def __init__(self, system, sizes, threads):
        self.system, self.sizes, self.threads = system, sizes, threads
        self.done: dict[str, tuple] = {}

    def get(self, workload):
        if workload not in self.done:
            self.done[workload] = getattr(self, "_" + workload if hasattr(self, "_" + workload) else "_step")(workload)
        return self.done[workload]

    def _step(self, workload):
        x, y = batch(workload, self.sizes)
        fn = self.system.train_step(workload, model_spec(workload, self.sizes), x, y)
        facts = {"first_loss": float(fn())}
        facts["compile_s"] = self.system.compile_s(workload)
        warm_up(fn)
        return fn, facts

    def _chain(self, workload):
        import numpy as np
        x = np.random.default_rng(3).uniform(-3, 3, self.sizes["chain_n"]).astype(np.float32)
        fn = self.system.chain(x)
        out = np.asarray(fn())
        sample = slice(None, None, 61)
        err = float(np.max(np.abs(out[sample].astype(np.float64) - chain_reference(x[sample]))))
        warm_up(fn)
        return fn, {"max_abs_err": err, "compile_s": self.system.compile_s("chain")}

    def _copy(self, workload):
        return copy_fn(self.sizes["chain_n"], self.threads), {}

    def _matmul(self, workload):
        import numpy as np
        n = self.sizes["matmul_n"]
        rng = np.random.default_rng(4)
        a, b = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
        fn = self.system.matmul(a, b)
        out = np.asarray(fn())
        ref = a.astype(np.float64) @ b.astype(np.float64)
        warm_up(fn)
        return fn, {"rel_err": float(np.max(np.abs(out - ref)) / np.max(np.abs(ref))), "flop": 2.0 * n ** 3}

    def _mlp_dyn(self, workload):
        return dynamic_batch_setup(self.system, self.sizes)


def copy_fn(n, threads):
    """np.copyto over n float32 (read + write), split across ``threads`` Python threads (NumPy
    releases the GIL while copying): the memory bandwidth one process gets."""
    import numpy as np
    from concurrent.futures import ThreadPoolExecutor
    src = np.random.default_rng(2).standard_normal(n).astype(np.float32)
    dst = np.empty_like(src)
    if threads == 1:
        return lambda: np.copyto(dst, src)
    bounds = [(p[0], p[-1] + 1) for p in np.array_split(np.arange(n), threads)]
    pool = ThreadPoolExecutor(threads)
    return lambda: list(pool.map(lambda ab: np.copyto(dst[ab[0]:ab[1]], src[ab[0]:ab[1]]), bounds))


def dynamic_batch_setup(system, sizes):
    """The MLP 784-256-256-10 Adam step built once with a ``None`` batch dimension and called
    with the batch cycling through ``dyn_batches``, against the build specialised to the full
    batch. The timed callable runs one full cycle on the dynamic build; the facts hold the
    first cycle's time (it includes any builds) and the fixed build's first loss."""
    import numpy as np
    x, y = batch("mlp", sizes)
    batches = [(np.ascontiguousarray(x[:b]), y[:b]) for b in sizes["dyn_batches"]]
    dyn = system.build_step("mlp_dyn", sizes["mlp"], x, y, dynamic_batch=True)
    fixed = system.build_step("mlp_fixed", sizes["mlp"], x, y)
    t0 = time.perf_counter()
    first = [float(dyn(xb, yb)) for xb, yb in batches]
    first_cycle = time.perf_counter() - t0
    fixed_first = float(fixed(x, y))
    fixed_fn = lambda: fixed(x, y)  # noqa: E731
    cycle = lambda: [dyn(xb, yb) for xb, yb in batches][-1]  # noqa: E731
    warm_up(fixed_fn)
    warm_up(cycle, 1)
    facts = {"first_loss": first[-1], "fixed_first_loss": fixed_first, "first_cycle_s": first_cycle,
             "samples_per_cycle": int(sum(len(yb) for _, yb in batches)), "fixed_batch": len(y),
             "dyn": dyn, "fixed_fn": fixed_fn}
    return cycle, facts


def measure(setups, base, workload, round_index, budget, min_samples):
    """One RESULT record: the workload timed once more (this round)."""
    fn, facts = setups.get(workload)
    box = budget * (1.5 if workload == "chain" else 1.0)
    record = {**base, "workload": workload, "round": round_index,
              **{k: v for k, v in facts.items() if k not in ("dyn", "fixed_fn")}}
    if workload == "mlp_dyn":
        # A and B interleaved in the same round: the fixed build, the cycling build, the fixed again
        fixed_a = median_seconds(facts["fixed_fn"], box / 3, min_samples)
        timed = median_seconds(fn, box / 3, min_samples)
        fixed_b = median_seconds(facts["fixed_fn"], box / 3, min_samples)
        fixed_s = (fixed_a["seconds"] + fixed_b["seconds"]) / 2
        record.update(timed)
        record["fixed_seconds"] = fixed_s
        record["throughput_ratio"] = (facts["samples_per_cycle"] / timed["seconds"]) / (facts["fixed_batch"] / fixed_s)
        record["builds"] = len(facts["dyn"].compile_times)
        record["final_loss"] = float(fn())
        return record
    record.update(median_seconds(fn, box, min_samples))
    if workload in STEP_WORKLOADS:
        record["final_loss"] = float(fn())
    if "flop" in facts:
        record["gflops"] = facts["flop"] / record["seconds"] / 1e9
    return record


def run_worker(system_name: str, threads: int, quick: bool) -> None:
    """Serve ``measure`` requests for one system until the parent says quit."""
    sizes = sizes_of(quick)
    pin_library_threads(system_name, threads)
    base = {"system": system_name, "threads": threads}
    try:
        system = make_system(system_name)
    except Exception as e:  # noqa: BLE001 - a peer that cannot load is reported, not fatal
        emit({**base, "workload": "worker", "seconds": None, "note": failure_note(e)})
        finish()
        return None
    emit({**base, "workload": "threads", "seconds": None, "report": thread_report()})
    finish()
    setups = Setups(system, sizes, threads)

    def handle(command):
        _, workload, round_index = command.split()
        try:
            emit(measure(setups, base, workload, int(round_index), sizes["budget_s"], sizes["min_samples"]))
        except Exception as e:  # noqa: BLE001 - a failing workload is reported with its reason
            setups.done[workload] = None
            emit({**base, "workload": workload, "round": int(round_index), "seconds": None,
                  "note": failure_note(e)})
    serve(handle)


def compile_worker(phase: str, workload: str, threads: int, quick: bool) -> None:
    """Build one training step in this fresh process (cold or warm disk cache), once."""
    from .systems import TensorforgeSystem
    sizes = sizes_of(quick)
    pin_library_threads("llvm", threads)
    t0 = time.perf_counter()
    system = TensorforgeSystem("llvm")
    x, y = batch(workload, sizes)
    fn = system.build_step(workload, model_spec(workload, sizes), x, y)
    built = time.perf_counter()
    loss = float(fn(x, y))
    first_call = time.perf_counter() - built
    emit({"system": "llvm", "threads": threads, "workload": f"compile_{phase}_{workload}",
          "seconds": max(fn.compile_times.values()), "first_call_s": first_call, "graph_build_s": built - t0,
          "first_loss": loss,
          "cache_files": sum(1 for p in Path(os.environ["TENSORFORGE_CACHE_DIR"]).rglob("*") if p.is_file())})
