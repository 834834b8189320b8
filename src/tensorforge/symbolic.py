"""Symbolic batch sizes: one build of a step that serves every batch size.

A placeholder dimension declared ``None`` (the batch) is a size symbol ``n``. Rather than
threading a symbolic integer type through every shape rule and code generator, the build
is *generalised from probes* (an idea close to JAX's shape polymorphism checked by
evaluation): the program is specialised and lowered at a few fixed probe sizes
(``PROBES``), which is cheap Python work, and the results are compared:

* everything that is the same at every probe is a constant of the build;
* an integer that differs must be an exact polynomial in ``n`` with integer coefficients
  (degree <= 2: x @ x.T has n*n elements), verified on a probe that the fit did not use;
  a float that differs must be such a polynomial or its reciprocal (a mean's 1/n);
* anything else (a different code structure, a clamp like min(n, 96) computed in
  Python, a rounding) raises ``SymbolicUnsupported``, and the caller specialises as before.

``Poly`` is that polynomial; ``generalise`` turns per-probe plain data (manifests, shapes)
into data holding ``{"sym": [c0, c1, c2]}`` where it varies, and ``evaluate`` gives the
concrete data for one batch size. The LLVM backend's text-level counterpart, for the
generated code, is ``backends/llvm/generalise.py``.

Batch sizes at which the generic build may run are checked per size by the caller
(``CompiledFunction``): the shapes that shape inference gives at that size must be the
polynomials' values (a rule that treats size 1 specially, e.g. squeeze, is caught there).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

__all__ = ["PROBES", "Poly", "SymbolicUnsupported", "UnsupportedOp", "fit", "fit_float", "generalise", "evaluate",
           "is_symbolic"]

# Probe batch sizes: primes near 100, unlikely to coincide with a model's own sizes, all in
# the regime of ordinary batches (code generators choose e.g. a GEMM's dot-product path for
# tiny outputs: every probe takes the same path, so the generic build takes it for all n).
# The first three fit, the last verifies. They span 28, so that a size divided and rounded in
# Python by anything up to 28 (row panels of 16, thread slices) differs between them and is
# caught instead of taken for a constant; larger divisors and clamps must be computed in the
# IR by the kernels (see linalg._GemmInstance) -- which is why only reviewed kernels take part.
PROBES = (79, 89, 97, 107)


class SymbolicUnsupported(Exception):
    """A build cannot be made generic in the batch size; the message says why (e.g.
    "conv2d needs fixed sizes"). Callers catch it and specialise instead."""


class UnsupportedOp(SymbolicUnsupported):
    """An op of the program has no kernel reviewed for run-time sizes (nothing else to try)."""


@dataclass(frozen=True)
class Poly:
    """c[0] + c[1] * n + c[2] * n**2 + ..., integer coefficients."""
    coeffs: tuple[int, ...]

    def __call__(self, n: int) -> int:
        total = 0
        for c in reversed(self.coeffs):
            total = total * n + c
        return total

    @property
    def degree(self) -> int:
        nz = [i for i, c in enumerate(self.coeffs) if c]
        return nz[-1] if nz else 0

    def __str__(self) -> str:
        terms = []
        for i, c in enumerate(self.coeffs):
            if c:
                terms.append(str(c) if i == 0 else f"{'' if c == 1 else c}{'n' if i == 1 else f'n^{i}'}")
        return " + ".join(terms) or "0"


def _lagrange(points) -> list[Fraction]:
    """Coefficients (low to high) of the polynomial through ``points`` (exact)."""
    k = len(points)
    coeffs = [Fraction(0)] * k
    for i, (xi, yi) in enumerate(points):
        basis = [Fraction(1)]                         # prod over j != i of (x - xj) / (xi - xj)
        denom = Fraction(1)
        for j, (xj, _) in enumerate(points):
            if j != i:
                basis = [Fraction(0)] + basis          # multiply by x ...
                for d in range(len(basis) - 1):
                    basis[d] -= xj * basis[d + 1]      # ... minus xj
                denom *= xi - xj
        for d, c in enumerate(basis):
            coeffs[d] += Fraction(yi) * c / denom
    return coeffs


def fit(ns, values) -> Poly | None:
    """The integer polynomial through (ns[i], values[i]) fitted on all points but the last
    and checked on the last, or None when there is none (a clamp, a rounding, ...)."""
    if len(set(values)) == 1:
        return Poly((int(values[0]),))
    if any(not isinstance(v, int) or isinstance(v, bool) for v in values):
        return None
    coeffs = _lagrange(list(zip(ns[:-1], values[:-1])))
    if any(c.denominator != 1 for c in coeffs):
        return None
    poly = Poly(tuple(int(c) for c in coeffs))
    return poly if poly(ns[-1]) == values[-1] else None


def fit_float(ns, values, exact) -> tuple[str, Poly] | None:
    """("value", p): the floats are p(n); ("reciprocal", p): they are 1 / p(n). ``exact(x)``
    rounds a Python float as the code stores it (to float32 for float constants), so a
    fitted form must reproduce the values exactly."""
    ints = [round(v) if v == v and abs(v) < 2 ** 53 and v == round(v) else None for v in values]
    if None not in ints:
        p = fit(ns, ints)
        if p is not None:
            return "value", p
    if all(v not in (0.0,) and v == v for v in values):
        recips = [round(1.0 / v) for v in values]
        p = fit(ns, recips)
        if p is not None and all(p(n) != 0 and exact(1.0 / p(n)) == v for n, v in zip(ns, values)):
            return "reciprocal", p
    return None


def is_symbolic(value) -> bool:
    return isinstance(value, dict) and set(value) == {"sym"}


def generalise(ns, versions, where: str = "value"):
    """One JSON-like structure from its versions at the probe sizes ``ns``: equal parts are
    kept, differing ints become ``{"sym": coefficients}``. Raises SymbolicUnsupported for any
    other difference (``where`` names the part, for the message)."""
    first = versions[0]
    if all(v == first for v in versions[1:]) and not isinstance(first, float):
        return first
    if isinstance(first, dict):
        if any(not isinstance(v, dict) or v.keys() != first.keys() for v in versions):
            raise SymbolicUnsupported(f"{where} differs in structure between batch sizes")
        return {k: generalise(ns, [v[k] for v in versions], f"{where}.{k}") for k in first}
    if isinstance(first, (list, tuple)):
        if any(not isinstance(v, (list, tuple)) or len(v) != len(first) for v in versions):
            raise SymbolicUnsupported(f"{where} differs in length between batch sizes")
        out = [generalise(ns, [v[i] for v in versions], f"{where}[{i}]") for i in range(len(first))]
        return tuple(out) if isinstance(first, tuple) else out
    if isinstance(first, int) and not isinstance(first, bool):
        p = fit(ns, list(versions))
        if p is None:
            raise SymbolicUnsupported(f"{where} is not a polynomial in the batch size "
                                      f"({', '.join(map(str, versions))} at {', '.join(map(str, ns))})")
        return {"sym": list(p.coeffs)}
    if isinstance(first, float) and all(v == first for v in versions):
        return first
    raise SymbolicUnsupported(f"{where} differs between batch sizes ({versions[0]!r} vs {versions[1]!r})")


def evaluate(value, n: int):
    """``value`` with every ``{"sym": coefficients}`` replaced by its value at batch size ``n``."""
    if is_symbolic(value):
        return Poly(tuple(value["sym"]))(n)
    if isinstance(value, dict):
        return {k: evaluate(v, n) for k, v in value.items()}
    if isinstance(value, list):
        return [evaluate(v, n) for v in value]
    if isinstance(value, tuple):
        return tuple(evaluate(v, n) for v in value)
    return value
