"""GPU benchmarks of the Triton backend (issue 4); run where an NVIDIA GPU is visible.

    python benchmarks/gpu.py [--out docs/performance-gpu.md] [--quick]

Measured side by side in one run, float32, on the device:
1. fused chain sigmoid(a*x+b)*tanh(x) + max(x-1,0)*0.5 on 64M elements: GB/s (bytes read +
   written) against the device copy bandwidth measured here (torch copy_ of 64M float32);
2. matmul 4096^3: TFLOP/s of tensorforge's Triton kernel (fp32 IEEE, and tf32) against
   torch.matmul with the same precision setting;
3. MLP training step 784-1024-1024-10, batch 1024, softmax cross-entropy, Adam, and
4. the small CNN step (64x1x8x8, conv3x3 8 ch pad 1, ReLU, maxpool 2, dense 10, SGD momentum):
   steps/s against PyTorch eager and torch.compile;
5. compile time of the MLP step (fresh cache folder).
Every time is the median of CUDA-synchronised repetitions after warm-up.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "0")
os.environ.setdefault("TENSORFORGE_CACHE_DIR", tempfile.mkdtemp(prefix="tf-gpu-bench-"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
import tensorforge as tg  # noqa: E402


def timeit(fn, seconds=1.0, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(samples) < 5:
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def chain(n):
    x = torch.randn(n, device="cuda")
    t_copy = timeit(lambda: torch.empty_like(x).copy_(x))
    copy_gbs = 2 * 4 * n / t_copy / 1e9
    g = tg.Graph()
    with g:
        xp = tg.placeholder("x", (n,))
        a, b = tg.parameter("a", np.float32(1.5)), tg.parameter("b", np.float32(-0.25))
        y = tg.sigmoid(a * xp + b) * tg.tanh(xp) + tg.maximum(xp - 1.0, 0.0) * 0.5
    f = tg.compile([xp], y, backend="triton")
    exe_in = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    f(exe_in)
    exe = next(iter(f._cache.values()))
    # kernel time on device-resident data: time the launch list itself (inputs already on the GPU)
    t_tf = timeit(exe._step)
    tf_gbs = 2 * 4 * n / t_tf / 1e9

    def torch_chain():
        return torch.sigmoid(1.5 * x - 0.25) * torch.tanh(x) + torch.clamp(x - 1, min=0) * 0.5
    t_torch = timeit(torch_chain)
    compiled = torch.compile(torch_chain)
    t_tc = timeit(compiled)
    return [("device copy", t_copy, copy_gbs), ("tensorforge triton", t_tf, tf_gbs),
            ("torch eager", t_torch, 2 * 4 * n / t_torch / 1e9), ("torch.compile", t_tc, 2 * 4 * n / t_tc / 1e9)]


def matmul(n):
    rows = []
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    flops = 2 * n ** 3
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        t_torch = timeit(lambda: a @ b)
        from tensorforge.backends.common import contiguous
        from tensorforge.backends.triton import library
        from tensorforge.backends.triton.source import load_module, module_source
        text, info = library.LIBRARY["matmul"](f"bench_mm_{int(tf32)}", [contiguous((n, n), "float32")] * 2,
                                               contiguous((n, n), "float32"), {"allow_tf32": tf32})
        module = load_module(module_source([text]), f"bench_mm_{n}_{int(tf32)}")
        out = torch.empty(n, n, device="cuda")
        run = lambda: library.launch(module, info, out, [a, b], lambda s, d: torch.empty(s, device="cuda"))  # noqa
        t_tf = timeit(run)
        err = (out - a @ b).abs().max().item()
        rows.append(("tf32" if tf32 else "fp32", flops / t_tf / 1e12, flops / t_torch / 1e12, err))
    torch.backends.cuda.matmul.allow_tf32 = False
    return rows


def mlp_step_tf(sizes, batch, make_opt):
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, sizes[0]))
        y = tg.placeholder("y", (None,), dtype="int64")
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(tg.nn.Dense(sizes[i], sizes[i + 1], seed=i))
            if i < len(sizes) - 2:
                layers.append(tg.nn.ReLU())
        net = tg.nn.Sequential(*layers)
        loss = tg.mean(tg.softmax_cross_entropy(net(x), y))
        updates = make_opt().updates(loss, net.parameters())
    return tg.compile([x, y], [loss], updates=updates, backend="triton")


def cnn_step_tf():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 1, 8, 8))
        y = tg.placeholder("y", (None,), dtype="int64")
        net = tg.nn.Sequential(tg.nn.Conv2d(1, 8, 3, padding=1), tg.nn.ReLU(), tg.nn.MaxPool2d(2),
                               tg.nn.Flatten(), tg.nn.Dense(128, 10))
        loss = tg.mean(tg.softmax_cross_entropy(net(x), y))
        updates = tg.optim.SGD(lr=0.01, momentum=0.9).updates(loss, net.parameters())
    return tg.compile([x, y], [loss], updates=updates, backend="triton")


def torch_models():
    mlp = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
                              torch.nn.ReLU(), torch.nn.Linear(1024, 10)).cuda()
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Flatten(), torch.nn.Linear(128, 10)).cuda()
    return mlp, cnn


def torch_step(model, opt, x, y, compiled=False):
    loss_fn = torch.nn.functional.cross_entropy

    def fwd(x, y):
        return loss_fn(model(x), y)
    f = torch.compile(fwd) if compiled else fwd

    def step():
        opt.zero_grad(set_to_none=True)
        loss = f(x, y)
        loss.backward()
        opt.step()
        return loss
    return step


def steps(args):
    rows = []
    rng = np.random.default_rng(0)
    xm = rng.standard_normal((1024, 784)).astype(np.float32)
    ym = rng.integers(0, 10, 1024)
    xc = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    yc = rng.integers(0, 10, 64)
    for name, make, feeds, (xt, yt) in [
            ("MLP 784-1024-1024-10 b1024 Adam", lambda: mlp_step_tf((784, 1024, 1024, 10), 1024,
                                                                   lambda: tg.optim.Adam(lr=1e-3)),
             (xm, ym), (torch.from_numpy(xm).cuda(), torch.from_numpy(ym).cuda())),
            ("CNN 64x1x8x8 SGD momentum", cnn_step_tf, (xc, yc), (torch.from_numpy(xc).cuda(),
                                                                 torch.from_numpy(yc).cuda()))]:
        t0 = time.perf_counter()
        step = make()
        step(*feeds)
        compile_s = time.perf_counter() - t0
        t_tf = timeit(lambda: step(*feeds))        # includes the copy-in of the batch and the loss copy-out
        mlp, cnn = torch_models()
        model = mlp if name.startswith("MLP") else cnn
        opt = torch.optim.Adam(model.parameters(), lr=1e-3) if name.startswith("MLP") else \
            torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        t_eager = timeit(torch_step(model, opt, xt, yt))
        try:
            t_comp = timeit(torch_step(model, opt, xt, yt, compiled=True), warmup=5)
        except Exception as e:  # noqa: BLE001
            print(f"torch.compile failed: {e}", file=sys.stderr)
            t_comp = float("nan")
        rows.append((name, 1 / t_tf, 1 / t_eager, 1 / t_comp, compile_s))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "performance-gpu.md"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/gpu.py needs an NVIDIA GPU visible to PyTorch")
    n_chain = (1 << 20) if args.quick else (64 << 20)
    n_mm = 1024 if args.quick else 4096
    chain_rows = chain(n_chain)
    mm_rows = matmul(n_mm)
    step_rows = steps(args)
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = "?"
    import triton
    lines = ["# GPU performance (Triton backend)", "",
             f"Measured {time.strftime('%Y-%m-%d')} on {torch.cuda.get_device_name()} with torch {torch.__version__}, "
             f"triton {triton.__version__}, Python {platform.python_version()}, tensorforge {commit}. "
             "Medians of CUDA-synchronised repetitions after warm-up; ratios are from this one run.", "",
             f"## Fused elementwise chain, {n_chain:,} float32 elements", "",
             "| system | ms | GB/s | % of copy bandwidth |", "|---|---|---|---|"]
    copy_gbs = chain_rows[0][2]
    for name, t, gbs in chain_rows:
        lines.append(f"| {name} | {t * 1e3:.3f} | {gbs:.0f} | {100 * gbs / copy_gbs:.0f}% |")
    lines += ["", f"## matmul {n_mm}^3", "", "| precision | tensorforge TFLOP/s | torch.matmul TFLOP/s | ratio | max abs err |",
              "|---|---|---|---|---|"]
    for prec, tf, th, err in mm_rows:
        lines.append(f"| {prec} | {tf:.1f} | {th:.1f} | {tf / th:.2f} | {err:.2e} |")
    lines += ["", "## Training steps (steps/s)", "",
              "| step | tensorforge triton | torch eager | torch.compile | vs eager | vs compile | tensorforge compile s |",
              "|---|---|---|---|---|---|---|"]
    for name, tf, eager, comp, cs in step_rows:
        lines.append(f"| {name} | {tf:.0f} | {eager:.0f} | {comp:.0f} | {tf / eager:.2f}x | {tf / comp:.2f}x | {cs:.2f} |")
    lines += ["", "Targets (issue 4): elementwise >= 80% of copy bandwidth; matmul >= 70% of torch.matmul; "
              "MLP and CNN steps faster than PyTorch eager and within 1.3x of torch.compile.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
