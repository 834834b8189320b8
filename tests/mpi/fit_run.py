"""Run under ``mpiexec -n N`` (or alone): ``tg.train.fit`` on a small MLP with dropout and
checkpoints. argv: epochs, checkpoint_dir ("-" for none), then optional flags:
"resume" (continue from the checkpoint), "diverge" (a learning rate that overflows), "kill-after=E" (rank 1 is SIGKILLed at the end
of epoch E, as a crashed node would be). Rank 0 prints one JSON line with the history and
a digest of the final parameters."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys

import numpy as np

import tensorforge as tg
from tensorforge import distributed as dist


def main() -> None:
    epochs, ckpt = int(sys.argv[1]), sys.argv[2]
    flags = sys.argv[3:]
    kill_after = next((int(f.split("=")[1]) for f in flags if f.startswith("kill-after=")), None)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 0.5)
    model = tg.nn.Sequential(tg.nn.Dense(6, 16, seed=1), tg.nn.ReLU(), tg.nn.Dropout(0.2, seed=5),
                             tg.nn.Dense(16, 3, seed=2))

    def on_epoch_end(epoch, history):
        if kill_after is not None and epoch + 1 == kill_after and dist.rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    lr = 1e30 if "diverge" in flags else 0.05
    bars = []                          # progress bars this rank drew (only rank 0 may draw any)
    real_bar = tg.train._progress_bar
    tg.train._progress_bar = lambda total, desc, enabled: bars.append(enabled) or real_bar(total, desc, enabled)
    hist = tg.train.fit(model, x, y, optimizer=tg.optim.SGD(lr=lr, momentum=0.9), epochs=epochs,
                        batch_size=8, validation_data=(x[:16], y[:16]), backend="llvm", seed=3,
                        progress=True, verbose=True, checkpoint_dir=None if ckpt == "-" else ckpt,
                        resume="resume" in flags, on_epoch_end=on_epoch_end)
    h = hashlib.sha256()
    for p in model.parameters(hist.graph):
        h.update(np.ascontiguousarray(hist.graph.values[p.id]).tobytes())
    digests = dist.allreduce(np.frombuffer(bytes.fromhex(h.hexdigest()), np.uint8).astype(np.int64), "max")
    same = bool(np.array_equal(digests, np.frombuffer(bytes.fromhex(h.hexdigest()), np.uint8)))
    same = bool(dist.allreduce(np.array([int(same)]), "min")[0])
    others_bars = int(dist.allreduce(np.array([0 if dist.is_main() else sum(bars)]), "sum")[0])
    if dist.is_main():
        print(json.dumps({"bars_by_other_ranks": others_bars, "bars_by_rank0": sum(bars),"digest": h.hexdigest(), "loss": hist.get("loss", []), "val_loss": hist.get("val_loss", []),
                          "identical": same, "size": dist.size(), "diverged": bool(hist.diverged),
                          "diverged_epoch": hist.diverged_epoch}), flush=True)


if __name__ == "__main__":
    main()
