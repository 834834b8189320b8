"""Run a generated graph on each backend and compare with a float64 reference.

For one seed, ``check_case`` builds the graph three ways: in float64 for the interpreter (the
reference), in float32 for the interpreter (to tell float32 rounding from a backend bug) and in
float32 for each backend under test, and classifies each backend's outcome:

    ok          every output, gradient and updated parameter agrees with the float64 reference
                (NaN and inf at the same places, finite values within a tolerance relative to
                the output's magnitude)
    imprecise   it differs from the float64 reference but agrees with the float32 interpreter:
                the graph is ill-conditioned in float32, not wrong (counted, not a failure)
    explained   the reference and the backend both raise the same tensorforge error
    mismatch    it agrees with neither reference
    error       an exception on one side only (or different ones)
    crash       the process died (detected by tools/fuzz.py, which runs batches in subprocesses)
"""
from __future__ import annotations

import time
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np

from ..compile import compile as _compile
from .generate import FEATURES, Case, generate

# Categories of generated graphs switched off because they hit bugs fixed on other branches:
# feature -> (why, backends it applies to). Remove an entry once the fix is merged.
_ALL = ("interp", "llvm", "triton")
KNOWN_BUGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "big_constants": ("constant folding aliases constants of more than 16 elements (wrong values, or a "
                      "pass AssertionError)", ("llvm", "triton")),
    "call_time_broadcast": ("gradients of call-time broadcasting (dims declared None that are 1 at call "
                            "time)", _ALL),
    "bad_labels": ("out-of-range labels of one_hot", ("llvm", "triton")),
    "int_scalar_promotion": ("type promotion of Python scalars (where, min on ints)", _ALL),
    "int_division": ("int / int should give float32", _ALL),
    "pow_edge": ("pow gradient edge values at 0", ("llvm", "triton")),
    "sqrt_at_zero": ("llvm: y / sqrt(x) at x = 0 gives NaN instead of inf", ("llvm",)),
    "int_pow": ("integer pow is not exact", ("llvm", "triton")),
    "pow_scalar_base": ("triton: pow with a scalar base or a 0-d exponent", ("triton",)),
    "size_zero": ("size-0 tensors on triton", ("triton",)),
    # found by this fuzzer, not yet fixed:
    "view_outputs": ("llvm returns an output that is a reshape of another output with the other's "
                     "shape: outputs [reshape(c, (2, 3)), c] come back as (6,), (6,)", ("llvm",)),
    "empty_max": ("max/min over an empty axis: the interpreter raises, llvm returns a value", ("llvm", "triton")),
    "deep_chain": ("RecursionError on ~300-deep chains", _ALL),
}

RTOL = {"float32": 1e-3, "float64": 1e-9}    # relative to the element and to the output's magnitude
ATOL = {"float32": 1e-5, "float64": 1e-12}
FAILURES = ("mismatch", "error", "crash")


def features_for(backend: str, known_bugs: dict | None = None) -> frozenset:
    """Every feature except those that hit a known bug on ``backend`` (or on any of several)."""
    known = KNOWN_BUGS if known_bugs is None else known_bugs
    backends = [backend] if isinstance(backend, str) else list(backend)
    return frozenset(f for f in FEATURES
                     if not any(f in known and b in known[f][1] for b in backends))


@dataclass
class Outcome:
    seed: int
    backend: str
    status: str                 # ok, imprecise, explained, mismatch, error, crash
    detail: str = ""
    repro: str = ""             # the graph text and the inputs (for failures)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status in FAILURES

    def describe(self) -> str:
        head = f"[{self.backend}] seed {self.seed}: {self.status}: {self.detail}"
        return head + ("\n" + self.repro if self.repro else "")


@dataclass
class Report:
    """Counts per backend and the failures, in order."""
    counts: dict = field(default_factory=dict)     # backend -> status -> count
    failures: list = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        per = self.counts.setdefault(outcome.backend, {})
        per[outcome.status] = per.get(outcome.status, 0) + 1
        if outcome.failed:
            self.failures.append(outcome)

    def graphs(self, backend: str) -> int:
        return sum(self.counts.get(backend, {}).values())

    def count(self, backend: str, status: str) -> int:
        return self.counts.get(backend, {}).get(status, 0)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        lines = []
        for b in self.counts:
            c = lambda s: self.count(b, s)  # noqa: E731
            lines.append(f"{b}: {self.graphs(b)} graphs, {c('mismatch')} mismatches, {c('crash')} crashes, "
                         f"{c('error')} errors ({c('explained')} explained errors, {c('imprecise')} "
                         f"ill-conditioned in float32)")
        return "\n".join(lines)


# ---- running one graph ------------------------------------------------------------------

@dataclass
class _Run:
    values: list | None = None      # outputs, then the updated parameters
    error: BaseException | None = None
    trace: str = ""


def _run(case: Case, backend: str, check: bool = False) -> _Run:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn = _compile(case.inputs, case.outputs, updates=case.updates or None, backend=backend,
                          **({"check": True} if check else {}))
            outs = fn(*case.arrays)
        params = [np.array(p.value) for p, _ in case.updates]
        return _Run([np.asarray(o) for o in outs] + params)
    except Exception as e:  # noqa: BLE001 - every failure is classified by the caller
        return _Run(error=e, trace=traceback.format_exc(limit=-6))


def _labels(case: Case) -> list[str]:
    return list(case.labels) + [f"updated {p.name}" for p, _ in case.updates]


def _types(case: Case) -> list[str]:
    return [t.dtype for t in case.outputs] + [p.dtype for p, _ in case.updates]


def compare(got: np.ndarray, want: np.ndarray, dtype: str) -> str | None:
    """None if ``got`` (a backend's value of static dtype ``dtype``) matches ``want`` (the float64
    reference), else what differs. Integers and bools must be equal; floats must have NaN and
    +-inf at the same places and finite values within RTOL/ATOL of the output's magnitude."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return f"shape {got.shape}, reference {want.shape}"
    if str(got.dtype) != dtype:
        return f"dtype {got.dtype}, but the graph says {dtype}"
    if got.dtype.kind != "f":
        bad = got != want.astype(got.dtype)
        if bad.any():
            k = _first(bad)
            return f"{int(bad.sum())} of {bad.size} elements differ; at {k}: {got[k]!r} vs reference {want[k]!r}"
        return None
    with np.errstate(all="ignore"):
        w = want.astype(got.dtype).astype(np.float64)      # rounds, and overflows, like float32 would
        g = got.astype(np.float64)
        for what, mask_g, mask_w in [("NaN", np.isnan(g), np.isnan(w)), ("+inf", g == np.inf, w == np.inf),
                                     ("-inf", g == -np.inf, w == -np.inf)]:
            bad = mask_g != mask_w
            if bad.any():
                k = _first(bad)
                return f"{what} at different places ({int(bad.sum())} elements); at {k}: {g[k]!r} vs reference {w[k]!r}"
        finite = np.isfinite(w)
        if not finite.any():
            return None
        scale = np.max(np.abs(w[finite]))
        tol = ATOL[dtype] + RTOL[dtype] * (np.abs(w) + scale)
        err = np.where(finite, np.abs(g - w), 0.0)
        bad = err > tol
        if bad.any():
            k = _first(err - tol == np.max((err - tol)[finite]))
            return (f"{int(bad.sum())} of {bad.size} elements beyond tolerance; worst at {k}: {g[k]!r} vs "
                    f"reference {w[k]!r} (abs diff {err[k]:.3g}, output magnitude {scale:.3g})")
    return None


def _first(mask: np.ndarray):
    return tuple(int(i) for i in np.argwhere(mask)[0]) if mask.ndim else ()


def _differences(run: _Run, ref: _Run, case: Case) -> list[str]:
    out = []
    for label, dtype, g, w in zip(_labels(case), _types(case), run.values, ref.values):
        why = compare(g, w, dtype)
        if why:
            out.append(f"{label}: {why}")
    return out


def _error_text(run: _Run) -> str:
    return f"{type(run.error).__name__}: {run.error}"


def _same_error(a: _Run, b: _Run) -> bool:
    return type(a.error) is type(b.error)


def check_case(seed: int, backends, features=None, max_nodes: int = 12, limit: int | None = None,
               check_mode: bool = False) -> list[Outcome]:
    """One outcome per backend for the graph of ``seed``."""
    backends = [backends] if isinstance(backends, str) else list(backends)
    features = features_for(backends) if features is None else frozenset(features)
    ref_case = generate(seed, "float64", features, max_nodes, limit)
    ref = _run(ref_case, "interp")
    f32: _Run | None = None
    outcomes = []
    for backend in backends:
        start = time.perf_counter()
        case = generate(seed, "float32", features, max_nodes, limit)
        run = _run(case, backend, check_mode)
        status, detail = _classify(run, ref, case)
        if status == "mismatch":
            if f32 is None:
                f32 = _run(generate(seed, "float32", features, max_nodes, limit), "interp")
            if f32.values is not None and not _differences(run, f32, case):
                status = "imprecise"
        repro = case.text() if status in FAILURES else ""
        if status == "error":
            repro += "\n" + (run.trace or ref.trace)
        outcomes.append(Outcome(seed, backend, status, detail, repro, time.perf_counter() - start))
    return outcomes


def _classify(run: _Run, ref: _Run, case: Case) -> tuple[str, str]:
    if ref.error is not None or run.error is not None:
        if ref.error is not None and run.error is not None and _same_error(run, ref):
            return "explained", _error_text(run)
        if run.error is None:
            return "error", f"the float64 reference raised {_error_text(ref)}, the backend did not"
        if ref.error is None:
            return "error", f"raised {_error_text(run)} (the reference did not)"
        return "error", f"raised {_error_text(run)}, the reference {_error_text(ref)}"
    diffs = _differences(run, ref, case)
    return ("mismatch", "; ".join(diffs)) if diffs else ("ok", "")


# ---- many graphs ------------------------------------------------------------------------

def fuzz(seeds, backends, features=None, max_nodes: int = 12, on_outcome=None) -> Report:
    """Check every seed on every backend, in this process."""
    report = Report()
    for seed in seeds:
        for outcome in check_case(seed, backends, features, max_nodes):
            report.add(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return report


def shrink(outcome: Outcome, features=None, max_nodes: int = 12) -> Outcome:
    """The smallest prefix of the failing graph (fewest ops, gradients dropped if they are not
    needed) that still fails the same way on the same backend."""
    features = features_for(outcome.backend) if features is None else frozenset(features)

    def fails(limit, feats):
        (o,) = check_case(outcome.seed, [outcome.backend], feats, max_nodes, limit)
        return o if o.status == outcome.status else None

    best = outcome
    lo, hi = 1, max_nodes
    while lo < hi:                         # the first prefix length that fails (assumed monotone)
        mid = (lo + hi) // 2
        o = fails(mid, features)
        if o is not None:
            best, hi = o, mid
        else:
            lo = mid + 1
    if "grad" in features:
        o = fails(hi, features - {"grad", "updates"})
        if o is not None:
            best = o
    return best
