"""The compiled data-parallel step: two native calls around one allreduce.

``tg.compile(inputs, outputs, updates=DataParallelUpdates)`` returns a
``DataParallelFunction``:

    stage 1  (inputs)                 -> outputs, local_grads   one native call: forward + backward
    allreduce(local_grads) / size                               one MPI call, one contiguous buffer
    stage 2  (averaged grads)         -> the parameter updates  one native call: clip, decay, update

Why split instead of calling MPI from the generated code: the allreduce of a
contiguous buffer through mpi4py costs a few microseconds of Python on top of the
MPI call itself, and keeps the code generators free of MPI (no ABI differences
between MPICH and Open MPI handles, no MPI library loaded into the JIT, the
interpreter and Triton backends work unchanged, a failed rank is handled with
timeouts in Python). docs/distributed.md measures the cost of the split.

On its first call the step broadcasts rank 0's parameters and optimizer state (and
offsets the random counter by rank), so training starts identical on every rank.
With one process (no MPI) the allreduce is skipped and the step computes exactly
what the ordinary one-call step computes.
"""
from __future__ import annotations

import time

import numpy as np

from . import distributed as dist

__all__ = ["DataParallelFunction", "DEFAULT_BUCKET_BYTES"]

# a gradient buffer above this size travels in several allreduces of at most this size
# (``bucket_bytes`` overrides it): MPI stages large messages in pieces anyway, and a bound
# keeps element counts far from the 2**31 limit of MPI's int counts
DEFAULT_BUCKET_BYTES = 256 << 20


class DataParallelFunction:
    """A data-parallel compiled step (see the module doc); called like ``CompiledFunction``."""

    def __init__(self, inputs, outputs, updates, backend="interp", passes=None, name=None, check=False):
        from .compile import CompiledFunction
        self.name = name or "step"
        single = not isinstance(outputs, (list, tuple))
        self._single = single
        self.outputs = [outputs] if single else list(outputs)
        self.inputs = list(inputs)
        self.dp_updates = updates
        grad_input = updates.grad_input
        if any(t.id == grad_input.id for t in self.inputs):
            raise ValueError(f"compile: {grad_input.name!r} is fed by the data-parallel step itself, "
                             "not by the caller")
        # (check=True checks each stage against the interpreter on its own inputs)
        self.forward = CompiledFunction(self.inputs, self.outputs + [updates.local_grads], None, backend,
                                        passes, name=f"{self.name}_grads", check=check)
        self.apply = CompiledFunction([grad_input], [], list(updates), backend, passes,
                                      name=f"{self.name}_update", check=check)
        self.graph = self.forward.graph
        self.backend = self.forward.backend
        self.updates = self.forward.updates + self.apply.updates
        self.bucket_bytes = updates.bucket_bytes or DEFAULT_BUCKET_BYTES
        # state that each rank computes itself and that is averaged too (batch-norm running
        # statistics with sync_batch_norm): appended to the gradient buffer, one allreduce for both
        self.sync_buffers = self._running_statistics() if updates.sync_batch_norm else []
        self._synced = False
        self.allreduce_seconds = 0.0      # total time spent in the allreduce (for benchmarks)

    def _running_statistics(self) -> list:
        """The floating-point state that stage 1 updates by itself (batch-norm running
        statistics; not the random counter, which must differ between ranks)."""
        return [t for t, _ in self.forward.updates if np.dtype(t.dtype).kind == "f"]

    def synchronise(self) -> None:
        """Overwrite every parameter and optimizer state this step touches with rank 0's
        (and offset the random counter by rank). Runs on the first call; call it again
        after loading a checkpoint on some ranks only."""
        touched = {t.id: t for t, _ in self.updates}
        for p in self.graph.parameters():
            touched.setdefault(p.id, p)
        dist.broadcast_parameters(list(touched.values()))
        self._synced = True

    def _average(self, local: np.ndarray) -> np.ndarray:
        n = dist.size()
        if n == 1:
            return local
        t0 = time.perf_counter()
        if self.sync_buffers:
            extra = [self.graph.values[t.id] for t in self.sync_buffers]
            buf = np.concatenate([local.reshape(-1)] + [e.reshape(-1).astype(local.dtype) for e in extra])
        else:
            buf = np.ascontiguousarray(local)
        dist.allreduce_inplace(buf, "sum", self.bucket_bytes)
        buf /= buf.dtype.type(n)
        if self.sync_buffers:
            start = local.size
            for t, e in zip(self.sync_buffers, extra):
                e[...] = buf[start:start + e.size].reshape(e.shape)
                start += e.size
            self.graph.host_changed([t.id for t in self.sync_buffers])
            buf = buf[:local.size]
        self.allreduce_seconds += time.perf_counter() - t0
        return buf

    def __call__(self, *args, **kwargs):
        if not self._synced:
            dist.init()
            self.synchronise()
        results = self.forward(*args, **kwargs)
        *outs, local = results
        self.apply(self._average(local))
        return outs[0] if self._single else outs

    @property
    def ir(self) -> str:
        return self.forward.ir + "\n\n" + self.apply.ir

    def profile(self, *args, **kwargs):
        """Profile of stage 1 (forward and backward), where nearly all the time goes."""
        return self.forward.profile(*args, **kwargs)

    def __repr__(self) -> str:
        return (f"<DataParallelFunction {self.name}: {len(self.dp_updates.params)} parameters, "
                f"{self.dp_updates.grad_input.shape[0]} gradient elements, {dist.size()} rank(s)>\n"
                + repr(self.forward) + "\n" + repr(self.apply))
