"""``tg.distributed``: data-parallel training on MPI (through mpi4py).

Every rank runs the same program on its own shard of each batch; a data-parallel
step (``optimizer.updates(loss, params, data_parallel=True)``, see
``tensorforge.optim.data_parallel``) averages the gradients of all ranks in one
allreduce before the update, so the parameters stay bit-identical everywhere.

Single-process use needs no MPI: mpi4py is imported only when the process was
started by an MPI launcher (mpiexec, srun, ...) or ``init(comm)`` is given a
communicator. Then ``rank() == 0``, ``size() == 1`` and every collective is the
identity. Started by a launcher without mpi4py installed, ``init`` raises an
ImportError naming the extra ``tensorforge[distributed]``.

Failures never hang a job: an uncaught exception on one rank prints its traceback
and aborts the whole job (``MPI_Abort``), and every collective here waits at most
``TENSORFORGE_MPI_TIMEOUT`` seconds (default 300) for the other ranks before it
aborts the job with an error naming the collective.
"""
from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np
import numpy.typing as npt

from ._typing import Array

if TYPE_CHECKING:
    from .graph import Graph, Tensor

__all__ = ["init", "rank", "size", "is_main", "barrier", "allreduce", "broadcast", "allreduce_inplace",
           "broadcast_parameters", "shard_batches", "average_metrics", "abort", "is_distributed",
           "DistributedError", "launched_by_mpi", "RANK_COUNTER_STRIDE", "shard_minibatches", "sum_over_ranks",
           "quiet_unless_main", "abort_on_error"]

EXTRA_HINT = 'pip install "tensorforge[distributed]"  (mpi4py and the mpich wheel)'
# environment variables that MPI launchers set in every process they start, with the world size
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
_LAUNCHER_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
# a rank's random counter starts this far from rank 0's (2**40 steps apart: never overlaps)
RANK_COUNTER_STRIDE = 1 << 40


class DistributedError(RuntimeError):
    """A collective failed or timed out."""


class _World:
    """The communicator in use (None: single process)."""
    comm: Any = None                 # an mpi4py communicator (an optional extra: typed loosely)
    MPI: ModuleType | None = None    # the mpi4py.MPI module
    initialised = False
    excepthook_installed = False


_world = _World()


def launched_by_mpi() -> bool:
    """True when an MPI launcher started this process as one of several (or named its rank)."""
    if any(v in os.environ for v in _LAUNCHER_RANK_VARS):
        return True
    for var in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 1:
            return True
    return False


def _timeout() -> float:
    from . import config
    seconds: float = config.get("mpi_timeout")
    return seconds


def init(comm: Any = None) -> int:
    """Join the MPI world (idempotent); returns the world size.

    ``comm``: an mpi4py communicator to use instead of ``COMM_WORLD``. Without one,
    mpi4py is imported only if an MPI launcher started this process; otherwise the
    process runs alone (size 1) and MPI is never touched.
    """
    if comm is not None:
        from mpi4py import MPI
        _world.MPI, _world.comm, _world.initialised = MPI, comm, True
        _install_excepthook()
        n: int = comm.Get_size()
        return n
    if _world.initialised:
        return size()
    if launched_by_mpi():
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise ImportError(f"tensorforge.distributed: this process was started by an MPI launcher "
                              f"but mpi4py is not installed ({e}); install the extra: {EXTRA_HINT}") from None
        _world.MPI, _world.comm = MPI, MPI.COMM_WORLD
        if _world.comm.Get_size() > 1:
            _install_excepthook()
    _world.initialised = True
    return size()


def _install_excepthook() -> None:
    """An uncaught exception on one rank aborts the job: the others would wait forever
    in their next collective."""
    if _world.excepthook_installed:
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        previous(kind, value, tb)
        if _world.comm is not None and _world.comm.Get_size() > 1 and not issubclass(kind, KeyboardInterrupt):
            sys.stderr.write(f"tensorforge.distributed: rank {rank()} failed with {kind.__name__}: {value}; "
                             f"aborting all {size()} ranks\n")
            _flush_then_abort(_world.comm, 1)
    sys.excepthook = hook
    _world.excepthook_installed = True


def _comm() -> Any:
    if not _world.initialised:
        init()
    return _world.comm


def rank() -> int:
    """This process's rank (0 without MPI)."""
    comm = _comm()
    r: int = 0 if comm is None else comm.Get_rank()
    return r


def size() -> int:
    """The number of processes (1 without MPI)."""
    comm = _comm()
    n: int = 1 if comm is None else comm.Get_size()
    return n


def is_main() -> bool:
    """True on rank 0: the rank that prints, draws progress bars and writes files."""
    return rank() == 0


def is_distributed() -> bool:
    """True when more than one rank takes part."""
    return size() > 1


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` (naming this rank) and stop every rank of the job."""
    sys.stderr.write(f"tensorforge.distributed: rank {rank()}/{size()}: {message}\n")
    comm = _comm()
    if comm is not None and comm.Get_size() > 1:
        _flush_then_abort(comm, code)
    raise DistributedError(message)


def _flush_then_abort(comm: Any, code: int) -> None:
    """MPI_Abort kills every rank at once: give the launcher a moment to forward what
    this rank printed (the error message is the point)."""
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(0.3)
    comm.Abort(code)
    os._exit(code)          # (MPI_Abort does not return; if it ever did, this rank must still stop)


class _Watchdog:
    """Bounds the time of every collective: the collective itself runs blocking, at full
    speed, in the calling thread, while this daemon thread aborts the job if one has been
    running for longer than TENSORFORGE_MPI_TIMEOUT (a rank died, hangs, or runs another
    program). Polling a nonblocking collective instead would stall MPI's progress between
    polls and cost bandwidth on large buffers."""

    def __init__(self) -> None:
        self.what: str | None = None
        self.deadline = 0.0
        self.thread: threading.Thread | None = None

    def _loop(self) -> None:
        while True:
            time.sleep(0.25)
            what, deadline = self.what, self.deadline
            if what is not None and time.monotonic() > deadline:
                sys.stderr.write(f"tensorforge.distributed: rank {rank()}/{size()}: {what} did not complete "
                                 f"within {_timeout():g} s (TENSORFORGE_MPI_TIMEOUT): another rank died, hangs "
                                 "or runs a different program; aborting the job\n")
                _flush_then_abort(_world.comm, 1)

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, name="tensorforge-mpi-watchdog", daemon=True)
            self.thread.start()
        self.deadline = time.monotonic() + _timeout()
        self.what = what
        try:
            yield
        finally:
            self.what = None


_watchdog = _Watchdog()


_REDUCE_OPS = ("sum", "mean", "max", "min")


def _mpi() -> ModuleType:
    """The mpi4py.MPI module (collectives reach here only with a communicator of several ranks)."""
    if _world.MPI is None:
        raise DistributedError("MPI is not initialised: call tg.distributed.init() under an MPI launcher")
    return _world.MPI


def _mpi_op(op: str) -> Any:
    if op not in _REDUCE_OPS:
        raise ValueError(f"allreduce: op must be one of {_REDUCE_OPS}, got {op!r}")
    MPI = _mpi()
    return {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]


def _as_buffer(array: npt.ArrayLike, what: str) -> Array:
    arr = np.asarray(array)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{what}: expected a numeric NumPy array, got dtype {arr.dtype}")
    return arr


def allreduce_inplace(buffer: np.ndarray, op: str = "sum", bucket_bytes: int | None = None) -> np.ndarray:
    """Reduce a C-contiguous array across ranks in place (``op``: sum, mean, max, min);
    in buckets of at most ``bucket_bytes`` when given (each its own allreduce)."""
    if not isinstance(buffer, np.ndarray) or not buffer.flags.c_contiguous or not buffer.flags.writeable:
        raise TypeError("allreduce_inplace: the buffer must be a writeable C-contiguous NumPy array")
    if op not in _REDUCE_OPS:
        raise ValueError(f"allreduce: op must be one of {_REDUCE_OPS}, got {op!r}")
    if op == "mean" and buffer.dtype.kind != "f":
        raise TypeError(f"allreduce: op='mean' needs a floating-point array, got {buffer.dtype}")
    comm = _comm()
    if comm is None or comm.Get_size() == 1:
        return buffer
    flat = buffer.reshape(-1)
    step = flat.size if not bucket_bytes else max(1, int(bucket_bytes) // max(1, flat.itemsize))
    for start in range(0, flat.size, step):
        chunk = flat[start:start + step]
        with _watchdog.guard(f"allreduce of {buffer.size} x {buffer.dtype}"):
            comm.Allreduce(_mpi().IN_PLACE, chunk, op=_mpi_op(op))
    if op == "mean":
        buffer /= buffer.dtype.type(comm.Get_size())
    return buffer


def allreduce(array: npt.ArrayLike, op: str = "sum") -> Array:
    """A reduced copy of ``array`` over all ranks (``op``: sum, mean, max, min). Without
    MPI (one rank) it returns a copy of the array (``mean`` of one rank is itself)."""
    arr = _as_buffer(array, "allreduce")
    if op not in _REDUCE_OPS:
        raise ValueError(f"allreduce: op must be one of {_REDUCE_OPS}, got {op!r}")
    out = np.array(arr, order="C")
    if op == "mean" and out.dtype.kind != "f":
        out = out.astype(np.float64)
    return allreduce_inplace(out, op)


def broadcast(array: npt.ArrayLike, root: int = 0) -> Array:
    """Rank ``root``'s ``array`` on every rank (shape and dtype must agree across ranks);
    a copy without MPI."""
    arr = np.array(_as_buffer(array, "broadcast"), order="C")
    comm = _comm()
    if comm is None or comm.Get_size() == 1:
        return arr
    if not 0 <= root < comm.Get_size():
        raise ValueError(f"broadcast: root must be a rank in [0, {comm.Get_size()}), got {root}")
    with _watchdog.guard(f"broadcast of {arr.shape} {arr.dtype} from rank {root}"):
        comm.Bcast(arr, root=root)
    return arr


def barrier() -> None:
    """Wait until every rank gets here (at most TENSORFORGE_MPI_TIMEOUT seconds)."""
    comm = _comm()
    if comm is not None and comm.Get_size() > 1:
        with _watchdog.guard("barrier"):
            comm.Barrier()


def broadcast_parameters(tensors_or_graph: Graph | Iterable[Tensor], root: int = 0) -> None:
    """Overwrite the values of parameters (all of a Graph's, or the listed ones) with
    rank ``root``'s, in place; the graph's random counter is then offset by rank (each
    rank draws its own dropout stream, the same one every run)."""
    from .graph import Graph
    from .ops.random import COUNTER_NAME
    if isinstance(tensors_or_graph, Graph):
        params = tensors_or_graph.parameters()
    else:
        params = list(tensors_or_graph)
    if not params or size() == 1:
        return
    graph = params[0].graph
    graph.sync_host()
    for p in params:
        value = graph.values[p.id]
        np.copyto(value, broadcast(value, root).reshape(value.shape))
    counters = [p for p in params if p.name == COUNTER_NAME]
    for c in counters:
        graph.values[c.id][...] = graph.values[c.id] + np.int64(rank() * RANK_COUNTER_STRIDE)
    graph.host_changed([p.id for p in params])


def shard_batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """This rank's index batches of one epoch: ``order`` (the same shuffled permutation on
    every rank) is cut into global batches of ``batch_size * size()`` examples, and rank r
    takes the r-th contiguous slice of each. A short last batch is split as evenly as
    possible; if it has fewer examples than ranks it is dropped (every rank must take the
    same number of steps, or the allreduce would wait forever)."""
    if batch_size < 1:
        raise ValueError(f"shard_batches: batch_size must be >= 1, got {batch_size}")
    n, r = size(), rank()
    glob = batch_size * n
    out: list[Array] = []
    for start in range(0, len(order), glob):
        chunk = order[start:start + glob]
        if len(chunk) < n:
            break
        out.append(np.array_split(chunk, n)[r])
    return out


def average_metrics(values: dict[str, float], weight: float = 1.0) -> dict[str, float]:
    """Weighted means of scalar metrics over all ranks (``weight``: e.g. this rank's
    example count); the input itself with one rank."""
    if size() == 1:
        return dict(values)
    keys = sorted(values)
    buf = np.array([float(values[k]) * weight for k in keys] + [float(weight)], dtype=np.float64)
    allreduce_inplace(buf, "sum")
    total = buf[-1] if buf[-1] != 0 else 1.0
    return {k: float(v / total) for k, v in zip(keys, buf[:-1])}


# ---- helpers for tg.train.fit and the command line ------------------------------------------

def shard_minibatches(x: Array, y: Array, batch_size: int, seed: int, epoch: int) -> list[tuple[Array, Array]]:
    """This rank's (x, y) batches of one epoch: the epoch's permutation is the one
    ``tg.data.minibatches`` draws from (seed, epoch), the same on every rank; see
    ``shard_batches`` for how it is cut."""
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(len(x))
    return [(x[idx], y[idx]) for idx in shard_batches(order, batch_size)]


def sum_over_ranks(values: Iterable[float]) -> list[float]:
    """Sums of a list of floats over all ranks (float64); the list itself with one rank."""
    floats = [float(v) for v in values]
    if size() == 1:
        return floats
    sums: list[float] = allreduce_inplace(np.array(floats, dtype=np.float64), "sum").tolist()
    return sums


def quiet_unless_main() -> None:
    """Send this process's standard output to the null device unless it is rank 0, so a
    command prints once however many ranks run it (errors still reach stderr)."""
    if not is_main():
        sys.stdout.flush()
        sys.stdout = open(os.devnull, "w")


@contextmanager
def abort_on_error() -> Iterator[None]:
    """Turn a failure on this rank (an exception, or ``sys.exit`` with a non-zero code, as
    click does for a usage error) into ``MPI_Abort`` of the whole job: otherwise the other
    ranks would wait in their next collective, and this one in ``MPI_Finalize``."""
    try:
        yield
    except SystemExit as e:
        if size() > 1 and e.code not in (None, 0):
            abort(f"exited with status {e.code}", code=e.code if isinstance(e.code, int) else 1)
        raise
    except BaseException as e:  # noqa: BLE001 - every failure must stop the other ranks
        if size() > 1 and not isinstance(e, KeyboardInterrupt):
            if hasattr(e, "format_message"):        # a click usage error: its one line says it all
                abort(f"Error: {e.format_message()}", code=getattr(e, "exit_code", 1) or 1)
            traceback.print_exc()
            abort(f"failed with {type(e).__name__}: {e}")
        raise
