"""Problem sizes, the workloads' names and the fixed data every system trains on.

Full sizes are what the issue asks for; --quick sizes keep the smoke test under a couple of
minutes (its numbers mean nothing, it checks that every path runs and agrees). The models
themselves live in tensorforge.bench_models, shared with ``tensorforge bench``.
"""
from __future__ import annotations

from tensorforge.bench_models import MNIST_NET, NetSpec, input_shape, random_batch

# every system the suite knows, in table order; tensorforge's own are interp and llvm
SYSTEMS = ("numpy", "interp", "llvm", "torch", "torch.compile", "jax", "pytensor", "tinygrad")
TENSORFORGE = ("interp", "llvm")
PEERS = tuple(s for s in SYSTEMS if s not in TENSORFORGE)
# training-step workloads, in report order
STEP_WORKLOADS = ("mlp", "mlp_big", "small_mlp", "cnn", "net")
CHAIN_A, CHAIN_B = 1.5, -0.25          # the chain's scalar constants, the same in every system

SIZES = {
    "full": {"chain_n": 1 << 24, "mlp": (784, 256, 256, 10), "mlp_batch": 128,
             "mlp_big": (784, 1024, 1024, 10), "mlp_big_batch": 256,
             "small_mlp": (64, 64, 10), "small_mlp_batch": 32, "cnn_batch": 64,
             "net": MNIST_NET, "net_batch": 64, "dyn_batches": tuple(range(120, 129)),
             "matmul_n": 512, "budget_s": 1.0, "min_samples": 3, "rounds": 3},
    "quick": {"chain_n": 1 << 16, "mlp": (64, 32, 32, 10), "mlp_batch": 16,
              "mlp_big": (64, 48, 48, 10), "mlp_big_batch": 24,
              "small_mlp": (64, 64, 10), "small_mlp_batch": 32, "cnn_batch": 64,
              "net": NetSpec(image=10, c1=4, c2=8, hidden=16), "net_batch": 4, "dyn_batches": (12, 13, 14, 15, 16),
              "matmul_n": 64, "budget_s": 0.03, "min_samples": 3, "rounds": 2},
}


def sizes_of(quick: bool) -> dict:
    return SIZES["quick" if quick else "full"]


def model_spec(workload: str, sizes: dict):
    """The tensorforge.bench_models spec of a training-step workload (None = the small CNN)."""
    if workload == "cnn":
        return None
    return sizes[workload]


def batch_size(workload: str, sizes: dict) -> int:
    return sizes[f"{workload}_batch"]


def batch(workload: str, sizes: dict, seed: int = 1):
    """The fixed (x, y) batch a workload trains on, repeatedly."""
    return random_batch(input_shape(model_spec(workload, sizes), batch_size(workload, sizes)), seed)


def describe(workload: str, sizes: dict) -> str:
    """A short name of a workload at these sizes, for headings."""
    spec = model_spec(workload, sizes)
    if spec is None:
        return f"small CNN, batch {sizes['cnn_batch']}"
    if isinstance(spec, NetSpec):
        return (f"MNIST Net ({spec.image}x{spec.image}, conv {spec.c1}/{spec.c2}, dense {spec.flat}->"
                f"{spec.hidden}->10), batch {sizes['net_batch']}")
    return f"MLP {'-'.join(map(str, spec))}, batch {batch_size(workload, sizes)}"


def chain_reference(x):
    """The chain in float64 NumPy: the oracle every system's output is compared with."""
    import numpy as np
    x = x.astype(np.float64)
    return 1.0 / (1.0 + np.exp(-(CHAIN_A * x + CHAIN_B))) * np.tanh(x) + np.maximum(x - 1.0, 0.0) * 0.5
