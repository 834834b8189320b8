"""Measure the LLVM convolution and pooling kernels: GFLOP/s (or GB/s for pooling) per kernel
at several sizes.

    PYTHONPATH=src python tools/measure_conv.py [--threads N] [--repeat R] [--only LABEL] [--ops a,b]

Each (size, op) is its own compiled function holding one kernel (conv2d, conv2d_grad_input,
conv2d_grad_weight, max_pool2d or max_pool2d_grad with a 2x2 window), called in a loop.
Rates are per CPU second (time.process_time), which other processes on a shared machine
disturb far less than wall time; with threads > 1 compare the wall column instead.
A convolution counts 2*N*O*C*kh*kw*Ho*Wo flops, its gradients the same.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import tensorforge as tg
from tensorforge.ops.registry import apply

# (label, N, C, O, H=W, kernel, stride, padding)
SIZES = [
    ("mnist conv2", 64, 32, 64, 26, 3, 1, 0),
    ("mnist conv1", 64, 1, 32, 28, 3, 1, 0),
    ("small cnn", 64, 1, 8, 8, 3, 1, 1),
    ("16->32 32px 3x3", 16, 16, 32, 32, 3, 1, 1),
    ("64->64 16px 3x3", 16, 64, 64, 16, 3, 1, 1),
    ("128->128 8px 3x3", 16, 128, 128, 8, 3, 1, 1),
    ("256->256 8px 3x3", 8, 256, 256, 8, 3, 1, 1),
    ("32->64 32px 5x5", 8, 32, 64, 32, 5, 1, 2),
    ("32->64 64px 3x3 s2", 8, 32, 64, 64, 3, 2, 1),
]


def conv_out(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def build(op, n, c, o, h, k, s, p):
    """(inputs, output) of a graph holding one kernel of ``op``."""
    ho = conv_out(h, k, s, p)
    x = tg.placeholder("x", (n, c, h, h))
    w = tg.placeholder("w", (o, c, k, k))
    g = tg.placeholder("g", (n, o, ho, ho))
    attrs = dict(stride=(s, s), padding=(p, p))
    if op == "conv2d":
        return [x, w], apply("conv2d", [x, w], **attrs)
    if op == "conv2d_grad_input":
        return [g, w, x], apply("conv2d_grad_input", [g, w, x], **attrs)
    if op == "conv2d_grad_weight":
        return [g, x, w], apply("conv2d_grad_weight", [g, x, w], **attrs)
    pool = dict(kernel=(2, 2), stride=(2, 2), padding=(0, 0))
    if op == "max_pool2d":
        return [x], apply("max_pool2d", [x], **pool)
    pg = tg.placeholder("pg", (n, c, h // 2, h // 2))
    return [pg, x], apply("max_pool2d_grad", [pg, x], **pool)


def time_kernel(op, size, repeat):
    """(CPU seconds per call, wall seconds per call): medians over ``repeat`` timed batches."""
    _, n, c, o, h, k, s, p = size
    with tg.Graph():
        ins, out = build(op, n, c, o, h, k, s, p)
        step = tg.compile(ins, [out], backend="llvm")
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(t.shape).astype(np.float32) for t in ins]
    step(*arrays)
    calls = max(1, int(0.05 / max(_one_call(step, arrays), 1e-6)))
    cpu, wall = [], []
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(calls):
            step(*arrays)
        cpu.append((time.process_time() - c0) / calls)
        wall.append((time.perf_counter() - w0) / calls)
    return float(np.median(cpu)), float(np.median(wall))


def _one_call(step, arrays):
    t = time.perf_counter()
    step(*arrays)
    return time.perf_counter() - t


OPS = ("conv2d", "conv2d_grad_input", "conv2d_grad_weight", "max_pool2d", "max_pool2d_grad")


def measure(size, repeat, ops):
    label, n, c, o, h, k, s, p = size
    ho = conv_out(h, k, s, p)
    flops = 2 * n * o * c * k * k * ho * ho
    print(f"{label}: N={n} C={c} O={o} {h}px k={k} s={s} p={p} ({flops / 1e9:.3f} GFLOP per conv)")
    for op in ops:
        if op.startswith("max_pool") and h % 2:
            continue
        cpu, wall = time_kernel(op, size, repeat)
        rate = (f"{flops / cpu / 1e9:7.1f} GFLOP/s" if op.startswith("conv")
                else f"{n * c * h * h * 4 / cpu / 1e9:7.2f} GB/s in")
        print(f"  {op:20s} cpu {cpu * 1e6:10.1f} us  wall {wall * 1e6:10.1f} us  {rate} (per CPU second)", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="sizes whose label contains this")
    ap.add_argument("--ops", default=",".join(OPS))
    args = ap.parse_args()
    tg.set_num_threads(args.threads)
    print(f"threads {args.threads}, load average {os.getloadavg()}")
    for size in SIZES:
        if args.only in size[0]:
            measure(size, args.repeat, args.ops.split(","))


if __name__ == "__main__":
    main()
