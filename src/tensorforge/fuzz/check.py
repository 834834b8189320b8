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
from ..passes import COMPILER_PASSES
from .generate import FEATURES, Case, generate

# Categories of generated graphs switched off because they hit bugs fixed on other branches:
# feature -> (why, backends it applies to). Remove an entry once the fix is merged.
KNOWN_BUGS: dict[str, tuple[str, tuple[str, ...]]] = {
    # found by this fuzzer, not yet fixed:
}

RTOL = {"float32": 1e-3, "float64": 1e-9}    # relative to the element and to the output's magnitude
ATOL = {"float32": 1e-4, "float64": 1e-12}    # a 0 got by cancellation of O(1) terms is ~1e-5
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
    status: str                 # ok, imprecise, explained, mismatch, error, crash (dynamic.py: specialised)
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
                         f"ill-conditioned in float32)" + (f", {c('specialised')} built more than once"
                                                            if c("specialised") else ""))
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
            # "interp+passes": the interpreter on the compiled backends' passes (fusion included)
            passes = COMPILER_PASSES if backend == "interp+passes" else None
            backend = "interp" if backend == "interp+passes" else backend
            fn = _compile(case.inputs, case.outputs, updates=case.updates or None, backend=backend,
                          passes=passes, **({"check": True} if check else {}))
            outs = fn(*case.arrays)
        params = [np.array(p.value) for p, _ in case.updates]
        return _Run([np.asarray(o) for o in outs] + params)
    except Exception as e:  # noqa: BLE001 - every failure is classified by the caller
        return _Run(error=e, trace=traceback.format_exc(limit=-6))


def _labels(case: Case) -> list[str]:
    return list(case.labels) + [f"updated {p.name}" for p, _ in case.updates]


def _types(case: Case) -> list[str]:
    return [t.dtype for t in case.outputs] + [p.dtype for p, _ in case.updates]


def compare(got: np.ndarray, want: np.ndarray, dtype: str, precision: str = "float32") -> str | None:
    """None if ``got`` (a backend's value of static dtype ``dtype``) matches ``want`` (the float64
    reference), else what differs. Integers and bools must be equal; floats must have NaN and
    +-inf at the same places and finite values within RTOL/ATOL of the output's magnitude, for the
    ``precision`` the graph was built in (a float64 output of a float32 build, e.g. from int / int,
    may hold float32 values)."""
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
        prec = precision if np.dtype(precision).itemsize < got.dtype.itemsize else str(got.dtype)
        tol = ATOL[prec] + RTOL[prec] * (np.abs(w) + scale)
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
        why = compare(g, w, dtype, case.dtype)
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
        if backend == "interp" and status in ("ok", "imprecise"):   # the reference itself, against calculus
            why = gradient_check(generate(seed, "float64", features, max_nodes, limit))
            if why:
                status, detail = "mismatch", f"float64 reference: {why}"
        repro = case.text() if status in FAILURES else ""
        if status == "error":
            repro += "\n" + (run.trace or ref.trace)
        outcomes.append(Outcome(seed, backend, status, detail, repro, time.perf_counter() - start))
    return outcomes


def gradient_check(case: Case, eps: float = 1e-6) -> str | None:
    """The float64 reference's gradients against central finite differences along one random
    direction (autodiff bugs are the same in every backend, so only this can see them).
    None when they agree, or when the loss has a kink there (one-sided differences disagree)."""
    if "loss" not in case.labels:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = _compile(case.inputs, case.outputs, backend="interp")(*case.arrays)   # no updates
    k = case.labels.index("loss")
    grads = {lab[len("d loss / d "):]: v for lab, v in zip(case.labels, values) if lab.startswith("d loss / d ")}
    loss_fn = _compile(case.inputs, [case.outputs[k]], backend="interp")
    params = {t.name: t for t in case.graph.parameters()}
    rng = np.random.default_rng([case.seed, 3])
    dirs = {name: rng.standard_normal(np.shape(g)) for name, g in grads.items()}
    saved = {name: np.array(t.value) for name, t in params.items()}

    def loss_at(step):
        for name, t in params.items():
            np.copyto(t.value, saved[name] + step * dirs[name] if name in dirs else saved[name])
        arrays = [a + step * dirs[t.name] if t.name in dirs else a for t, a in zip(case.inputs, case.arrays)]
        with np.errstate(all="ignore"):
            return float(loss_fn(*arrays)[0])
    try:
        lm, l0, lp = loss_at(-eps), loss_at(0.0), loss_at(eps)
        half = (loss_at(eps / 2) - loss_at(-eps / 2)) / eps     # differs from ``central`` at a jump
    finally:
        for name, t in params.items():
            np.copyto(t.value, saved[name])
    with np.errstate(all="ignore"):
        symbolic = float(sum(np.sum(np.asarray(g, np.float64) * dirs[n]) for n, g in grads.items()))
    if not all(np.isfinite([lm, l0, lp, symbolic])):
        return None
    forward, backward, central = (lp - l0) / eps, (l0 - lm) / eps, (lp - lm) / (2 * eps)
    scale = 1e-13 * (abs(l0) + 1) / eps + 1e-7     # rounding of the loss, magnified by 1/eps
    if abs(forward - backward) > 1e-3 * (abs(forward) + abs(backward)) + scale or not np.isfinite(half) \
            or abs(half - central) > 1e-3 * (abs(half) + abs(central)) + scale:
        return None                                  # not differentiable here (relu at 0, ties ...)
    if abs(central - symbolic) > 1e-4 * (abs(central) + abs(symbolic)) + scale:
        return (f"gradient along a random direction is {symbolic!r}, finite differences say {central!r} "
                f"(one-sided: {forward!r}, {backward!r})")
    return None


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
