"""Dynamic-batch fuzzing: one build for every batch size, checked against the interpreter.

A step whose placeholders declare the batch dimension ``None`` is built once by the LLVM backend,
generic in the batch size (tensorforge.symbolic), and must then give, for every batch size, what
the interpreter gives. ``dynamic_case(seed)`` draws a random batch-leading graph (rows of features
through dense layers, row-wise and batch-wise reductions, batch statistics, GEMMs whose depth is
the batch, slices and reversals along the batch, concatenation, a cross-entropy loss and, in half
of the graphs, an SGD update); ``check_dynamic`` calls it with many batch sizes on a backend and on
the float64 interpreter (the reference; the float32 interpreter tells rounding from bugs, as in
check.py) and returns one ``Outcome``:

    ok / imprecise / mismatch / error   as in check.py, over every call (outputs and parameters)
    specialised   the values agree, but the backend built more than once (a size it could not
                  serve generically; tensorforge logs why): counted, not a failure

Every random decision comes from the seed and never from the float dtype, so the float64 and
float32 builds are the same graph; ``limit=k`` keeps the first k ops (how ``shrink_dynamic``
makes a failing graph small).
"""
from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import ops as _ops
from ..compile import compile as _compile
from ..graph import Graph, Tensor, dprint, parameter, placeholder
from .check import Outcome, compare

# the adversarial sizes of the hand run: around vector widths, thread grains and powers of two
SIZES = (1, 2, 3, 5, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 96, 97, 100, 108, 127, 128, 129, 255, 256,
         257, 511, 513, 1000, 1024, 1500, 4100)
CI_SIZES = (1, 3, 17, 64)
_FEATURES = (1, 3, 7, 10, 16, 33)
N_CLASSES = 4


@dataclass
class DynamicCase:
    """One generated batch-leading graph in one float dtype."""
    seed: int
    dtype: str
    graph: Graph
    inputs: list                   # x (None, F), y (None,) int64 labels
    outputs: list                  # loss, logits
    updates: list = field(default_factory=list)
    features: int = 0
    ops: list = field(default_factory=list)     # names of the drawn ops, in order

    def text(self) -> str:
        import io
        buf = io.StringIO()
        dprint(self.outputs + [n for _, n in self.updates], file=buf)
        return f"ops: {', '.join(self.ops)}\n" + buf.getvalue().rstrip()

    def arrays(self, n: int) -> list[np.ndarray]:
        """The call-time inputs for batch size ``n`` (the same in every dtype)."""
        rng = np.random.default_rng([self.seed, n])
        x = rng.standard_normal((n, self.features)).astype(np.float32).astype(self.dtype)
        return [x, rng.integers(0, N_CLASSES, n)]


class _DynGen:
    """The state of one generation: the random stream and the pool of (n, f) values."""

    def __init__(self, seed: int, dtype: str):
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.n_params = 0

    def weight(self, shape: tuple) -> Tensor:
        w = (self.rng.standard_normal(shape) * 0.3).astype(np.float32).astype(self.dtype)
        self.n_params += 1
        return parameter(f"W{self.n_params}", w)

    def op(self, v: Tensor, pool: list[Tensor]) -> tuple[str, Tensor]:
        """One random op on v (n, f) giving (n, f'); its name for the report."""
        rng, f = self.rng, int(v.shape[1])
        ops = _op_table(self, f, pool)
        name = sorted(ops)[int(rng.integers(len(ops)))]
        return name, ops[name](v)


def _op_table(gen: _DynGen, f: int, pool: list[Tensor]) -> dict[str, Callable[[Tensor], Tensor]]:
    """The ops a (n, f) value can go through; every entry keeps the batch leading."""
    tg = _ops
    k = int(gen.rng.choice([1, 5, 12]))      # drawn whatever op is picked: keeps the stream aligned
    same = [w for w in pool if int(w.shape[1]) == f]
    other = same[int(gen.rng.integers(len(same)))] if same else None
    table: dict[str, Callable[[Tensor], Tensor]] = {
        "dense": lambda v: v @ gen.weight((f, k)),
        "tanh_exp": lambda v: tg.tanh(v) * 0.5 + tg.exp(-v * v),
        "softmax_rows": lambda v: tg.softmax(v, axis=1),
        "log_softmax_rows": lambda v: tg.log_softmax(v, axis=1),
        "center_on_batch_mean": lambda v: v - tg.mean(v, axis=0, keepdims=True),
        "batch_norm": lambda v: (v - tg.mean(v, axis=0, keepdims=True))
        / tg.sqrt(tg.mean((v - tg.mean(v, axis=0, keepdims=True)) ** 2, axis=0, keepdims=True) + 1e-3),
        "gram_over_batch": lambda v: v @ tg.tanh(tg.transpose(v) @ v * 0.01),
        "concat_features": lambda v: tg.concat([v, v * 2.0], axis=1),
        "every_other_feature": lambda v: v[:, ::2],
        "relu_plus_row_sum": lambda v: tg.maximum(v, 0.0) + tg.sum(v, axis=1, keepdims=True),
        "cumsum_rows": lambda v: v * tg.cumsum(v, axis=1),
        "row_max": lambda v: tg.expand_dims(tg.max(v, axis=1), 1) + v,
        "batch_max": lambda v: v - tg.max(v, axis=0, keepdims=True),
        "batch_min_row_min": lambda v: v * tg.min(v, axis=0) + tg.min(v, axis=1, keepdims=True),
        "softsign": lambda v: v / (1.0 + tg.abs(v)),
        "leaky_where": lambda v: tg.where(v > 0, v, v * 0.1),
        "reverse_batch": lambda v: v[::-1],
        "roll_batch": lambda v: tg.concat([v[1:], v[:1]], axis=0),
        "scale_by_batch_mean": lambda v: v * tg.mean(v, axis=0),
        "argmax_feature": lambda v: v + tg.expand_dims(tg.cast(tg.argmax(v, axis=1), v.dtype), 1),
        "logsumexp_rows": lambda v: v - tg.logsumexp(v, axis=1, keepdims=True),
        "flatten_roundtrip": lambda v: tg.reshape(tg.reshape(v, (-1,)) * 2.0, (-1, f)),
        "center_on_mean_of_all": lambda v: v - tg.mean(v),
        "rows_in_pairs": lambda v: tg.reshape(tg.concat([v, v * 0.5], axis=0), (-1, 2 * f)),
        "last_row_scaled": lambda v: tg.concat([v[:-1], v[-1:] * 3.0], axis=0),
        "transpose_3d": lambda v: tg.reshape(tg.transpose(tg.expand_dims(v, 2), (0, 2, 1)), (-1, f)),
        "scale_by_batch_var": lambda v: v * tg.var(v, axis=0),
        "softmax_over_batch": lambda v: tg.softmax(v, axis=0),
        "argmax_over_batch": lambda v: v + tg.cast(tg.argmax(v, axis=0), v.dtype),
    }
    if other is not None:
        table["add_earlier"] = lambda v: v + other * 0.5
    return table


def dynamic_case(seed: int, dtype: str = "float32", limit: int | None = None, max_ops: int = 8) -> DynamicCase:
    """The graph of ``seed``: 3 to ``max_ops`` random ops on x (None, F), logits, loss, maybe SGD."""
    gen = _DynGen(seed, dtype)
    features = int(gen.rng.choice(_FEATURES))
    n_ops = int(gen.rng.integers(3, max_ops + 1))
    with_update = bool(gen.rng.random() < 0.5)
    n_ops = n_ops if limit is None else min(n_ops, limit)
    g = Graph()
    with g:
        x = placeholder("x", (None, features), dtype=dtype)
        y = placeholder("y", (None,), dtype="int64")
        pool, names = [x], []
        for _ in range(n_ops):
            v = pool[int(gen.rng.integers(len(pool)))]
            name, out = gen.op(v, pool)
            pool.append(out)
            names.append(name)
        last = pool[-1]
        logits = last @ gen.weight((int(last.shape[1]), N_CLASSES))
        loss = _ops.mean(_ops.softmax_cross_entropy(logits, y))
        updates = []
        if with_update:
            from ..optim import SGD
            updates = SGD(lr=1e-2).updates(loss, list(g.parameters()))
    return DynamicCase(seed, dtype, g, [x, y], [loss, logits], list(updates), features, names)


# ---- checking ------------------------------------------------------------------------------

def _calls(case: DynamicCase, backend: str, sizes) -> tuple[list[list[np.ndarray]], Any]:
    """Every call's outputs and then the updated parameters, per size, in order. Each call starts
    from the initial parameters: chained SGD steps on a random graph can be chaotic (seed 206 of
    the first run drifted 1% in float32 after 26 steps), which would hide bugs behind noise."""
    updated = [p for p, _ in case.updates]
    initial = [np.array(p.value) for p in updated]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn = _compile(case.inputs, case.outputs, updates=case.updates or None, backend=backend)
        results = []
        for n in sizes:
            for p, v in zip(updated, initial):
                np.copyto(p.value, v)
            outs = [np.array(o) for o in fn(*case.arrays(n))]
            results.append(outs + [np.array(p.value) for p, _ in case.updates])
    return results, fn


def _first_difference(got, want, case: DynamicCase, sizes) -> str | None:
    labels = ["loss", "logits"] + [f"updated {p.name}" for p, _ in case.updates]
    for n, g_vals, w_vals in zip(sizes, got, want):
        for label, g, w in zip(labels, g_vals, w_vals):
            why = compare(g, w, "float32", "float32")
            if why:
                return f"batch {n}, {label}: {why}"
    return None


def check_dynamic(seed: int, backend: str = "llvm", sizes=SIZES, limit: int | None = None,
                  max_ops: int = 8) -> Outcome:
    """The graph of ``seed`` called with every size in ``sizes`` on ``backend``, against the
    float64 interpreter (and the float32 one, to tell ill-conditioning from a bug)."""
    start = time.perf_counter()
    case = dynamic_case(seed, "float32", limit, max_ops)
    try:
        ref, _ = _calls(dynamic_case(seed, "float64", limit, max_ops), "interp", sizes)
        ref = [[w.astype(np.float32) if w.dtype == np.float64 else w for w in vals] for vals in ref]
    except Exception as e:  # noqa: BLE001 - the reference failing is reported, not raised
        return Outcome(seed, backend, "error", f"the float64 reference raised {type(e).__name__}: {e}",
                       case.text() + "\n" + traceback.format_exc(limit=-4))
    try:
        got, fn = _calls(case, backend, sizes)
    except Exception as e:  # noqa: BLE001
        return Outcome(seed, backend, "error", f"raised {type(e).__name__}: {e}",
                       case.text() + "\n" + traceback.format_exc(limit=-6), time.perf_counter() - start)
    why = _first_difference(got, ref, case, sizes)
    status, detail = ("mismatch", why) if why else ("ok", "")
    if why:
        f32, _ = _calls(dynamic_case(seed, "float32", limit, max_ops), "interp", sizes)
        if _first_difference(got, f32, case, sizes) is None:
            status = "imprecise"
    builds = len(getattr(fn, "compile_times", ()))
    if status in ("ok", "imprecise") and backend == "llvm" and builds > 1:
        status, detail = "specialised", f"{builds} builds for {len(set(sizes))} batch sizes"
    repro = case.text() if status in ("mismatch", "error") else ""
    return Outcome(seed, backend, status, detail, repro, time.perf_counter() - start)


def shrink_dynamic(outcome: Outcome, sizes=SIZES, max_ops: int = 8) -> Outcome:
    """The shortest prefix of the graph's ops that still fails the same way."""
    for limit in range(1, max_ops):
        o = check_dynamic(outcome.seed, outcome.backend, sizes, limit, max_ops)
        if o.status == outcome.status:
            return o
    return check_dynamic(outcome.seed, outcome.backend, sizes, None, max_ops)   # the whole graph
