"""Run under ``mpiexec -n N``: K data-parallel steps with per-rank batch B must end with the
parameters that one process reaches with batch N*B on the same examples (rank 0 computes
that reference itself, without MPI), and every rank must hold bit-identical parameters.

Prints one JSON line per configuration, from rank 0 only:
{"model", "optimizer", "backend", "max_abs_diff", "max_rel_diff", "identical", "loss"}.
Also runs one dropout configuration to check that each rank draws its own mask stream.
"""
from __future__ import annotations

import hashlib
import json
import sys

import numpy as np

import tensorforge as tg
from tensorforge import distributed as dist

K, B = 4, 6


def build(model: str, optimizer: str, backend: str, data_parallel: bool, dropout: bool = False,
          bucket_bytes=None):
    """A fresh graph: (step, params). Same seeds on every rank and in the reference."""
    g = tg.Graph()
    with g:
        if model == "mlp":
            x = tg.placeholder("x", (None, 10))
            W1 = tg.parameter("W1", tg.init.he_normal((10, 16), seed=1))
            b1 = tg.parameter("b1", np.zeros(16, np.float32))
            W2 = tg.parameter("W2", tg.init.he_normal((16, 3), seed=2))
            b2 = tg.parameter("b2", np.zeros(3, np.float32))
            h = tg.relu(x @ W1 + b1)
            if dropout:
                h = tg.dropout(h, 0.5, seed=3)
            logits = h @ W2 + b2
            params = [W1, b1, W2, b2]
        else:
            x = tg.placeholder("x", (None, 1, 8, 8))
            K1 = tg.parameter("K1", tg.init.he_normal((4, 1, 3, 3), seed=1))
            c1 = tg.parameter("c1", np.zeros(4, np.float32))
            W2 = tg.parameter("W2", tg.init.he_normal((4 * 4 * 4, 3), seed=2))
            b2 = tg.parameter("b2", np.zeros(3, np.float32))
            h = tg.max_pool2d(tg.relu(tg.conv2d(x, K1, c1, padding=1)), 2)
            logits = tg.reshape(h, (-1, 4 * 4 * 4)) @ W2 + b2
            params = [K1, c1, W2, b2]
        y = tg.placeholder("y", (None,), dtype="int64")
        loss = tg.mean(tg.softmax_cross_entropy(logits, y))
        if optimizer == "sgd":
            opt = tg.optim.SGD(lr=0.1, momentum=0.9, weight_decay=1e-3)
        else:
            opt = tg.optim.Adam(lr=1e-2)
        extra = {"bucket_bytes": bucket_bytes} if bucket_bytes else {}
        updates = opt.updates(loss, params, clip_norm=5.0, data_parallel=data_parallel, **extra)
        step = tg.compile([x, y], [loss], updates=updates, backend=backend)
    return step, params


def data(model: str, n: int):
    rng = np.random.default_rng(42)
    shape = (n, 10) if model == "mlp" else (n, 1, 8, 8)
    return rng.normal(size=shape).astype(np.float32), rng.integers(0, 3, n)


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def all_identical(arrays) -> bool:
    """Every rank holds the same bytes (compared against rank 0's digest)."""
    mine = np.frombuffer(bytes.fromhex(digest(arrays)), dtype=np.uint8).copy()
    ref = dist.broadcast(mine)
    return bool(dist.allreduce(np.array([int(np.array_equal(mine, ref))]), "min")[0])


def run(model: str, optimizer: str, backend: str, bucket_bytes=None) -> dict:
    n, r = dist.size(), dist.rank()
    x, y = data(model, K * B * n)
    step, params = build(model, optimizer, backend, data_parallel=True, bucket_bytes=bucket_bytes)
    for k in range(K):
        lo = k * B * n + r * B
        loss = step(x[lo:lo + B], y[lo:lo + B])
    mine = [p.value.copy() for p in params]
    identical = all_identical(mine)
    out = {"model": model, "optimizer": optimizer, "backend": backend, "identical": identical,
           "loss": float(dist.allreduce(np.asarray(loss[0]), "mean"))}
    if dist.is_main():
        ref_step, ref_params = build(model, optimizer, backend, data_parallel=False)
        for k in range(K):
            ref_step(x[k * B * n:(k + 1) * B * n], y[k * B * n:(k + 1) * B * n])
        diffs = [np.abs(a - p.value) for a, p in zip(mine, ref_params)]
        out["max_abs_diff"] = float(max(d.max() for d in diffs))
        out["max_rel_diff"] = float(max((d / (np.abs(p.value) + 1e-3)).max() for d, p in zip(diffs, ref_params)))
    return out


def dropout_streams(backend: str) -> dict:
    """Each rank's dropout masks differ from the others' (counter offset by rank), and the
    parameters stay identical (the averaged gradient is the same everywhere)."""
    x, y = data("mlp", 8)
    step, params = build("mlp", "sgd", backend, data_parallel=True, dropout=True)
    step(x, y)
    counter = step.graph.values[tg.rng_counter(step.graph).id]
    counters = dist.allreduce(np.array([int(counter) == int(counter) % dist.RANK_COUNTER_STRIDE + dist.rank()
                                        * dist.RANK_COUNTER_STRIDE], dtype=np.int64), "min")
    return {"model": "dropout", "backend": backend, "identical": all_identical([p.value for p in params]),
            "counter_offset_by_rank": bool(counters[0])}


def batch_norm_statistics(backend: str, sync: bool) -> np.ndarray:
    """The running mean after one step on this rank's own data."""
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3))
        gamma = tg.parameter("gamma", np.ones(3, np.float32))
        beta = tg.parameter("beta", np.zeros(3, np.float32))
        mean = tg.parameter("running_mean", np.zeros(3, np.float32), trainable=False)
        var = tg.parameter("running_var", np.ones(3, np.float32), trainable=False)
        loss = tg.mean(tg.batch_norm(x, gamma, beta, mean, var, training=True) ** 2)
        updates = tg.optim.SGD(lr=0.1).updates(loss, [gamma, beta], data_parallel=True, sync_batch_norm=sync)
        step = tg.compile([x], [loss], updates=updates, backend=backend)
    step(np.random.default_rng(dist.rank()).normal(dist.rank(), 1.0, size=(5, 3)).astype(np.float32))
    return np.array(mean.value)


def sync_batch_norm(backend: str) -> dict:
    """Running statistics stay per rank by default; with sync_batch_norm they are the mean
    of the per-rank ones, on every rank."""
    own = batch_norm_statistics(backend, sync=False)
    synced = batch_norm_statistics(backend, sync=True)
    expected = dist.allreduce(own, "mean")
    return {"model": "sync_bn", "backend": backend, "identical": all_identical([synced]),
            "own_differ": not all_identical([own]),
            "max_abs_diff": float(np.abs(synced - expected).max())}


def main() -> None:
    dist.init()
    backends = sys.argv[1].split(",") if len(sys.argv) > 1 else ["interp", "llvm"]
    for backend in backends:
        for model in ("mlp", "cnn"):
            for optimizer in ("sgd", "adam"):
                result = run(model, optimizer, backend)
                if dist.is_main():
                    print(json.dumps(result), flush=True)
        bucketed = run("mlp", "adam", backend, bucket_bytes=100)      # 100-byte buckets: 25 floats each
        bucketed["model"], bucketed["optimizer"] = "mlp-bucketed", "adam"
        for result in (bucketed, dropout_streams(backend), sync_batch_norm(backend)):
            if dist.is_main():
                print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
