"""SVRG, stochastic variance-reduced gradient (Johnson & Zhang, 2013).

Each step uses the minibatch gradient at the current parameters w, corrected by the
same minibatch's gradient at a snapshot w̃ and the full-data gradient μ at w̃:

    w <- w - lr * (g_i(w) - g_i(w̃) + μ)

The correction has mean zero and a variance that vanishes as w and w̃ approach the
optimum, so a *constant* step size converges to the exact minimiser (plain SGD with
a constant step stalls at a noise floor). The snapshot w̃ and μ are refreshed by
``take_snapshot`` (``tg.train.fit`` calls it at the start of every epoch).

The loss at the snapshot is the same graph with the parameters replaced by the
snapshot parameters (``tg.clone``), so both gradients come out of one compiled step.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from ..autodiff import grad
from ..clone import clone
from .._typing import Array
from ..graph import Tensor
from ..nn.module import _known_dims
from .base import Optimizer, StepContext

__all__ = ["SVRG"]


class SVRG(Optimizer):
    """SVRG(lr=1e-2). Per parameter W it keeps "W/svrg_snapshot" (w̃, initially W's
    value) and "W/svrg_mu" (μ, initially zero)."""
    tag = "svrg"

    def __init__(self, lr: float = 1e-2) -> None:
        super().__init__(lr)
        self._snapshot_grads: list[Tensor] = []
        self._grad_fns: dict[tuple[tuple[int, ...], str], Callable[..., Any]] = {}

    def _slots(self) -> tuple[str, ...]:
        return ("snapshot", "mu")

    def _slot_init(self, slot: str, value: Array) -> Array:
        return np.array(value) if slot == "snapshot" else np.zeros_like(value)

    def updates(self, loss: Tensor, params: Sequence[Tensor] | None = None,
                clip_norm: float | None = None, data_parallel: bool = False,
                bucket_bytes: int | None = None, sync_batch_norm: bool = False) -> list[tuple[Tensor, Tensor]]:
        """The SVRG step on ``loss`` (a mean over the minibatch). ``clip_norm`` clips the
        variance-reduced direction g_i(w) - g_i(w̃) + μ by its global norm."""
        if data_parallel:
            raise NotImplementedError("SVRG does not support data_parallel=True: its snapshot mean "
                                      "gradient is computed per process; use SGD or Adam under MPI")
        params = self._check_params(loss, params)
        built = self._create_state(params)
        snapshots = [s["snapshot"] for s in built.slots]
        (loss_at_snapshot,) = clone([loss], list(zip(params, snapshots)))
        grads = grad(loss, params)
        self._snapshot_grads = grad(loss_at_snapshot, snapshots)
        self._grad_fns = {}
        directions = [g - gs + s["mu"] for g, gs, s in zip(grads, self._snapshot_grads, built.slots)]
        return self._build(params, directions, clip_norm, built=built)

    def apply_gradients(self, grads_and_params: Iterable[tuple[Tensor, Tensor]],
                        clip_norm: float | None = None) -> list[tuple[Tensor, Tensor]]:
        raise TypeError("SVRG needs the loss itself (to differentiate it at the snapshot): "
                        "use svrg.updates(loss, params)")

    def _rule(self, p: Tensor, direction: Tensor, slots: dict[str, Tensor],
              k: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        return p - k.lr * direction, {}

    def take_snapshot(self, inputs: Sequence[Tensor], arrays: Sequence[npt.ArrayLike], batch_size: int = 256,
                      backend: str = "interp") -> None:
        """Copy the parameters into the snapshot and set μ to the full-data gradient there.

        ``inputs``: the placeholders of the loss; ``arrays``: the whole training data for
        each (equal first dimensions). μ is the size-weighted average of the minibatch
        gradients, which is the full gradient when the loss is a mean over the batch.
        """
        built = self._built
        if built is None:
            raise RuntimeError("SVRG.take_snapshot: call updates(loss, params) first")
        placeholders, data = list(inputs), [np.asarray(a) for a in arrays]
        if len(placeholders) != len(data) or not data:
            raise ValueError(f"SVRG.take_snapshot: {len(placeholders)} inputs but {len(data)} arrays")
        n = len(data[0])
        if n == 0 or any(len(a) != n for a in data):
            raise ValueError("SVRG.take_snapshot: the arrays must be non-empty with equal first dimensions, "
                             f"got {[a.shape for a in data]}")
        if int(batch_size) < 1:
            raise ValueError(f"SVRG.take_snapshot: batch_size must be >= 1, got {batch_size}")
        batch_size = int(batch_size)
        for p, slots in zip(built.params, built.slots):
            slots["snapshot"].value = p.value
        fn = self._gradient_function(placeholders, backend)
        totals = [np.zeros(_known_dims(p.shape), dtype=np.float64) for p in built.params]
        for start in range(0, n, batch_size):
            batch = [a[start:start + batch_size] for a in data]
            for total, g in zip(totals, fn(*batch)):
                total += len(batch[0]) * np.asarray(g, dtype=np.float64)
        for total, slots in zip(totals, built.slots):
            slots["mu"].value = total / n

    def _gradient_function(self, inputs: Sequence[Tensor], backend: str) -> Callable[..., Any]:
        """The compiled gradient at the snapshot (cached per inputs and backend)."""
        from ..compile import compile as tg_compile
        key = (tuple(t.id for t in inputs), backend if isinstance(backend, str) else id(backend))
        if key not in self._grad_fns:
            self._grad_fns[key] = tg_compile(inputs, list(self._snapshot_grads), backend=backend,
                                             name="svrg_full_gradient")
        return self._grad_fns[key]
