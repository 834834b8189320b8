"""Benchmark workloads by name, for ``tensorforge bench``: one training step on every backend.

Every system starts from the same initial parameters and trains repeatedly on the same fixed
batch, so the first-step losses must agree across systems. The models, their initial values and
the optimizer settings live here once: benchmarks/compiler.py imports them, so the two agree.

    mlp        MLP 784-256-256-10, batch 128, softmax cross-entropy, Adam
    small-mlp  MLP 64-64-10, batch 32, Adam (overhead-bound)
    cnn        64x1x8x8: conv3x3 8 channels pad 1, ReLU, maxpool 2, dense 10, SGD momentum 0.9

Systems: tensorforge's backends ("interp", "llvm", "triton" when a GPU is visible) and, as
peers when they are installed, "torch" (eager) and "jax" (jax.jit of the whole step).
"""
from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["WORKLOADS", "Result", "available_systems", "run_benchmark", "measure", "format_table"]

ADAM = {"lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
SGD = {"lr": 0.01, "momentum": 0.9}

# name -> (description, layer sizes or None for the CNN, batch size)
WORKLOADS = {
    "mlp": ("MLP 784-256-256-10, batch 128, Adam", (784, 256, 256, 10), 128),
    "small-mlp": ("MLP 64-64-10, batch 32, Adam", (64, 64, 10), 32),
    "cnn": ("CNN 64x1x8x8 conv3x3(8)-relu-maxpool2-dense10, SGD momentum", None, 64),
}


@dataclass
class Result:
    """One system's measurement of one workload."""
    system: str
    steps_per_s: float
    compile_s: float | None
    first_loss: float
    steps: int
    speedup: float | None = None       # against the interpreter, filled in by run_benchmark


# ---- shared initial values and the fixed batch -------------------------------------------

def mlp_init(sizes, seed=0):
    """He-normal weights (in, out) and zero biases, float32: shared by every system."""
    rng = np.random.default_rng(seed)
    return [((rng.standard_normal((i, o)) * np.sqrt(2.0 / i)).astype(np.float32), np.zeros(o, np.float32))
            for i, o in zip(sizes[:-1], sizes[1:])]


def cnn_init(seed=0):
    """conv weight (8,1,3,3) + bias (8,), dense (128,10) + bias (10,), float32."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((8, 1, 3, 3)) * np.sqrt(2.0 / 9)).astype(np.float32),
            np.zeros(8, np.float32),
            (rng.standard_normal((128, 10)) * np.sqrt(2.0 / 128)).astype(np.float32),
            np.zeros(10, np.float32)]


def random_batch(shape, seed: int = 1):
    """(x, y): standard-normal float32 inputs of ``shape`` and one integer label 0..9 per row."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, shape[0]).astype(np.int64)


def fixed_batch(workload: str, seed: int = 1):
    """The (x, y) batch a workload trains on, repeatedly."""
    _, sizes, n = WORKLOADS[workload]
    return random_batch((n, 1, 8, 8) if sizes is None else (n, sizes[0]), seed)


# ---- the model on each system: ``sizes`` are an MLP's layer sizes, None is the CNN -------

def tensorforge_training_step(sizes, x, y, backend: str, name: str):
    """The compiled training step (loss and in-place updates) for batches shaped like (x, y)."""
    import tensorforge as tg
    with tg.Graph():
        xs = tg.placeholder("x", x.shape)
        ys = tg.placeholder("y", y.shape, dtype="int64")
        if sizes is None:
            w, cb, wd, bd = params = [tg.parameter(n, v) for n, v in zip(("w", "cb", "wd", "bd"), cnn_init())]
            h = tg.max_pool2d(tg.relu(tg.conv2d(xs, w, cb, stride=1, padding=1)), 2)
            logits = tg.reshape(h, (x.shape[0], 128)) @ wd + bd
            opt = tg.optim.SGD(lr=SGD["lr"], momentum=SGD["momentum"])
        else:
            params, logits = [], xs
            for i, (w, b) in enumerate(mlp_init(sizes)):
                W, B = tg.parameter(f"W{i}", w), tg.parameter(f"b{i}", b)
                params += [W, B]
                logits = logits @ W + B
                if i + 2 < len(sizes):
                    logits = tg.relu(logits)
            opt = tg.optim.Adam(lr=ADAM["lr"], betas=(ADAM["b1"], ADAM["b2"]), eps=ADAM["eps"])
        loss = tg.mean(tg.softmax_cross_entropy(logits, ys))
        updates = opt.updates(loss, params)
    return tg.compile([xs, ys], loss, updates=updates, backend=backend, name=name)


def torch_model(sizes):
    """(forward(x) -> logits, optimizer over the parameters) in PyTorch."""
    import torch
    F = torch.nn.functional
    if sizes is None:
        w, cb, wd, bd = params = [torch.tensor(a, requires_grad=True) for a in cnn_init()]

        def forward(h):
            h = F.max_pool2d(torch.relu(F.conv2d(h, w, cb, padding=1)), 2)
            return h.reshape(h.shape[0], 128) @ wd + bd
        return forward, torch.optim.SGD(params, lr=SGD["lr"], momentum=SGD["momentum"])
    params = [torch.tensor(p, requires_grad=True) for layer in mlp_init(sizes) for p in layer]

    def forward(h):
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i + 2 < len(params):
                h = torch.relu(h)
        return h
    return forward, torch.optim.Adam(params, lr=ADAM["lr"], betas=(ADAM["b1"], ADAM["b2"]), eps=ADAM["eps"])


def jax_model(sizes):
    """(loss_fn(params, x, y), update(params, grads, state) -> (params, state), params, state) in JAX;
    the updates are torch.optim's SGD with momentum and Adam, written out."""
    import jax
    import jax.numpy as jnp

    def xent(logits, yb):
        logp = jax.nn.log_softmax(logits, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    if sizes is None:
        params = [jnp.asarray(p) for p in cnn_init()]

        def loss_fn(p, xb, yb):
            w, cb, wd, bd = p
            h = jax.lax.conv_general_dilated(xb, w, (1, 1), ((1, 1), (1, 1)),
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
            h = jax.nn.relu(h + cb[None, :, None, None])
            h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
            return xent(h.reshape(h.shape[0], 128) @ wd + bd, yb)

        def update(p, g, s):
            s = [SGD["momentum"] * bi + gi for bi, gi in zip(s, g)]
            return [pi - SGD["lr"] * bi for pi, bi in zip(p, s)], s
        return loss_fn, update, params, [jnp.zeros_like(p) for p in params]
    params = [jnp.asarray(p) for layer in mlp_init(sizes) for p in layer]

    def loss_fn(p, xb, yb):
        h = xb
        for i in range(0, len(p), 2):
            h = h @ p[i] + p[i + 1]
            if i + 2 < len(p):
                h = jax.nn.relu(h)
        return xent(h, yb)
    b1, b2, lr, eps = ADAM["b1"], ADAM["b2"], ADAM["lr"], ADAM["eps"]

    def update(p, g, s):
        m, v, t = s
        t = t + 1
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        step_size = lr / (1 - b1 ** t)
        bc2_sqrt = jnp.sqrt(1 - b2 ** t)
        p = [pi - step_size * mi / (jnp.sqrt(vi) / bc2_sqrt + eps) for pi, mi, vi in zip(p, m, v)]
        return p, (m, v, t)
    state = ([jnp.zeros_like(p) for p in params], [jnp.zeros_like(p) for p in params],
             jnp.asarray(0.0, jnp.float32))
    return loss_fn, update, params, state


def jax_compiled_step(loss_fn, update, params, state, x, y):
    """(run, compile seconds): jax.jit of the whole step (value_and_grad and update), compiled
    ahead for (x, y); its parameter and state buffers are donated, so each run() updates them in
    place and returns the loss."""
    import jax
    import jax.numpy as jnp

    def step(p, s, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        p, s = update(p, grads, s)
        return p, s, loss
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    t0 = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, xj, yj).compile()
    compile_s = time.perf_counter() - t0
    box = [params, state]

    def run():
        box[0], box[1], loss = compiled(box[0], box[1], xj, yj)
        return float(loss)               # float() waits for the result
    return run, compile_s


# ---- the runners: (step, first-step loss, compile seconds or None) -----------------------

def tensorforge_step(workload: str, backend: str):
    """(the compiled training step, x, y) of ``workload`` on a tensorforge backend."""
    x, y = fixed_batch(workload)
    fn = tensorforge_training_step(WORKLOADS[workload][1], x, y, backend, name=f"{workload}_step")
    return fn, x, y


def _tensorforge_runner(workload: str, backend: str):
    fn, x, y = tensorforge_step(workload, backend)
    t0 = time.perf_counter()
    first = float(fn(x, y))            # the first call specialises and compiles
    compile_s = max(fn.compile_times.values()) if fn.compile_times else time.perf_counter() - t0
    return (lambda: fn(x, y)), first, compile_s


def _torch_runner(workload: str):
    import torch
    x, y = fixed_batch(workload)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    forward, opt = torch_model(WORKLOADS[workload][1])

    def step():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(forward(xt), yt)
        loss.backward()
        opt.step()
        return loss.item()
    first = step()
    return step, first, None           # eager: nothing is compiled


def _jax_runner(workload: str):
    x, y = fixed_batch(workload)
    run, compile_s = jax_compiled_step(*jax_model(WORKLOADS[workload][1]), x, y)
    first = run()
    return run, first, compile_s


# ---- which systems, and measuring them ---------------------------------------------------

def gpu_visible() -> bool:
    """True when Triton has a GPU to run on (CUDA_VISIBLE_DEVICES may hide it)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    try:
        from .backends.triton.backend import device
        device()
        return True
    except Exception:              # no triton, no driver, no GPU: all mean "not available"
        return False


def available_systems(peers: bool = True) -> list[str]:
    """interp and llvm (when it loads), triton when a GPU is visible, torch/jax when installed."""
    from .backends import get_backend
    systems = ["interp"]
    try:
        get_backend("llvm")
        systems.append("llvm")
    except Exception:              # llvmlite missing or the backend not built: skip it
        pass
    if gpu_visible():
        systems.append("triton")
    if peers:
        systems += [name for name in ("torch", "jax") if importlib.util.find_spec(name) is not None]
    return systems


def measure(step: Callable[[], object], seconds: float) -> tuple[float, int]:
    """(steps per second, steps run) of ``step`` timed for about ``seconds`` after one warm-up call."""
    step()
    steps, t0 = 0, time.perf_counter()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return steps / elapsed, steps


def _runner(system: str, workload: str):
    if system == "torch":
        return _torch_runner(workload)
    if system == "jax":
        return _jax_runner(workload)
    return _tensorforge_runner(workload, system)


def run_benchmark(workload: str, systems: list[str], seconds: float = 1.0,
                  on_result: Callable[[Result], None] | None = None) -> list[Result]:
    """Measure ``workload`` on each system; speed-ups are against "interp" when it was measured."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
    results = []
    for system in systems:
        step, first, compile_s = _runner(system, workload)
        steps_per_s, steps = measure(step, seconds)
        results.append(Result(system, steps_per_s, compile_s, float(first), steps))
        if on_result is not None:
            on_result(results[-1])
    base = next((r.steps_per_s for r in results if r.system == "interp"), None)
    for r in results:
        r.speedup = r.steps_per_s / base if base else None
    return results


def profile_workload(workload: str, backend: str, steps: int = 50):
    """Per-kernel timings (a ``tensorforge.profiler.Profile``) of ``workload``'s training step on
    a tensorforge backend (interp, llvm, triton)."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}; choose one of {', '.join(WORKLOADS)}")
    x, y = fixed_batch(workload)
    step = tensorforge_training_step(WORKLOADS[workload][1], x, y, backend, name=f"{workload} step")
    step(x, y)                                    # compile outside the profile
    return step.profile(x, y, steps=steps)


def format_table(results: list[Result]) -> str:
    """Plain aligned text: system, steps/s, speed-up vs interp, compile time, first-step loss."""
    header = ["system", "steps/s", "vs interp", "compile s", "first loss"]
    rows = [[r.system, f"{r.steps_per_s:,.1f}", "-" if r.speedup is None else f"{r.speedup:.2f}x",
             "-" if r.compile_s is None else f"{r.compile_s:.3f}", f"{r.first_loss:.5f}"] for r in results]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def plot_bars(results: list[Result], workload: str, path: str) -> None:
    """A bar chart of steps/s per system (log scale), written atomically to ``path`` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [r.system for r in results]
    values = [r.steps_per_s for r in results]
    bars = ax.bar(names, values, color="#4c72b0")
    for bar, r in zip(bars, results):
        label = f"{r.steps_per_s:,.0f}" + (f"\n{r.speedup:.1f}x" if r.speedup else "")
        ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("training steps / s (log)")
    ax.set_title(f"{workload}: {WORKLOADS[workload][0]}", fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def _save_figure(fig, path: str) -> None:
    """Written atomically: no half-written picture (an error names ``path``, not a temp file)."""
    from ._fileio import atomic_write
    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    except OSError as e:
        raise OSError(f"cannot write {path}: {e.strerror or e}") from None
