"""Run under ``mpiexec -n 2``: rank 1 fails during data-parallel training, in the way named
by argv[1]: "raise" (an exception), "kill" (SIGKILL, as the OOM killer would) or "hang"
(stops taking part; the others must give up after TENSORFORGE_MPI_TIMEOUT seconds).
The job must end non-zero, quickly, with the error named."""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

import tensorforge as tg
from tensorforge import distributed as dist


def main(mode: str) -> None:
    dist.init()
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 4))
        y = tg.placeholder("y", (None,), dtype="int64")
        W = tg.parameter("W", tg.init.he_normal((4, 3), seed=0))
        loss = tg.mean(tg.softmax_cross_entropy(x @ W, y))
        step = tg.compile([x, y], [loss], updates=tg.optim.SGD(lr=0.1).updates(loss, [W], data_parallel=True))
    rng = np.random.default_rng(dist.rank())
    for i in range(1000):
        if i == 3 and dist.rank() == 1:
            if mode == "raise":
                raise RuntimeError("rank 1 failed on purpose")
            if mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if mode == "hang":
                time.sleep(600)
        step(rng.normal(size=(4, 4)).astype(np.float32), rng.integers(0, 3, 4))
        time.sleep(0.01)
    print("finished", dist.rank(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
