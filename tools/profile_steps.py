"""Per-kernel profile of the benchmark's training steps on the LLVM backend, at 1 and 2 threads.

    python tools/profile_steps.py                 # the MNIST Net, MLP 784-256-256-10, MLP 784-1024-1024-10
    python tools/profile_steps.py net             # one of: net, mlp, mlp_big

The steps are tensorforge.bench_models' (the same as benchmarks/compiler.py's); each table is
`CompiledFunction.profile`: microseconds per step for each kernel, largest first. Run it on a
quiet machine: the figures in docs/performance.md's notes come from it.
"""
from __future__ import annotations

import sys

import tensorforge as tg
from tensorforge.bench_models import MNIST_NET, input_shape, random_batch, tensorforge_training_step

STEPS = {"net": (MNIST_NET, 64, 10), "mlp": ((784, 256, 256, 10), 128, 30),
         "mlp_big": ((784, 1024, 1024, 10), 256, 30)}


def main(names: list[str]) -> int:
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        print(f"profile_steps: unknown step {', '.join(unknown)}; choose from {', '.join(STEPS)}", file=sys.stderr)
        return 2
    for name in names or list(STEPS):
        spec, batch, steps = STEPS[name]
        x, y = random_batch(input_shape(spec, batch))
        for threads in (1, 2):
            tg.set_num_threads(threads)
            step = tensorforge_training_step(spec, x, y, "llvm", name)
            step(x, y)                                          # build (or load) before timing
            print(f"== {name}, {threads} thread{'s' if threads > 1 else ''}")
            print(step.profile(x, y, steps=steps, warmup=2).table(n=12), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
