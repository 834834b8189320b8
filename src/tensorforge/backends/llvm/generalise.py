"""One LLVM module for every batch size, from the modules lowered at the probe sizes.

``generalise_ir(texts, ns)`` takes the textual IR of the same program lowered at the batch
sizes ``ns`` (``symbolic.PROBES``) and returns one module text in which every literal that
differs between them reads the batch size at run time:

* the lines must be equal token for token, except for number literals;
* a differing integer literal must be an exact polynomial in ``n`` (``symbolic.fit``), a
  differing float literal such a polynomial or its reciprocal (``symbolic.fit_float``);
* it must be an instruction operand written ``<type> <literal>`` with a scalar type (or a
  phi's incoming value), so that an SSA value may stand in its place; a literal inside a
  type (``[n x float]``), a vector constant, an alignment or an alloca's size stays
  unsupported.

Each function that needs the batch size loads it once from the module global ``@tf_batch``
at the top of its entry block and computes the polynomials there (LLVM hoists and folds
them); ``tf_step`` stores that global first, from the slot table (see backend.py). Anything
unsupported raises ``symbolic.SymbolicUnsupported`` naming the kernel, and the step is
specialised instead.
"""
from __future__ import annotations

import re
import struct

from ...symbolic import Poly, SymbolicUnsupported, fit, fit_float

BATCH_GLOBAL = "tf_batch"

_TOKEN = re.compile(r'''[%@!]"[^"]*"|[%@!][-\w$.]+|"[^"]*"|[A-Za-z_$.][-\w$.]*|0x[0-9A-Fa-f]+|'''
                    r'''-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\s+|.''')
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$|0x[0-9A-Fa-f]+$")
_INT_TYPES = {"i64": 64, "i32": 32, "i16": 16, "i8": 8}
_FLOAT_TYPES = ("float", "double")
# instructions whose operands share one type, written once before the first operand
_BINARY_OPS = frozenset("add sub mul sdiv srem udiv urem shl lshr ashr and or xor fadd fsub fmul fdiv frem "
                        "icmp fcmp".split())


def _tokens(line: str) -> list[str]:
    return _TOKEN.findall(line)


def _function_name(line: str) -> str:
    m = re.search(r'@("[^"]*"|[-\w$.]+)\(', line)
    return m.group(1).strip('"') if m else "?"


def _kernel_label(fn: str) -> str:
    """"k12_matmul_range" -> "matmul (kernel k12_matmul_range)", for the fallback message."""
    m = re.match(r"k\d+_([A-Za-z0-9_]+?)(?:_range|_mt|_worker)?$", fn)
    return f"{m.group(1)} (kernel {fn})" if m else f"function {fn}"


def _literal_value(tok: str, typ: str):
    if typ in _INT_TYPES:
        return int(tok)
    if tok.startswith("0x"):                  # llvmlite prints floats as the bits of a double
        return struct.unpack(">d", bytes.fromhex(tok[2:].rjust(16, "0")))[0]
    return float(tok)


def _float32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _operand_type(toks: list[str], j: int, line: str) -> str | None:
    """The scalar type of the literal at token ``j`` when an SSA value may replace it, else None."""
    prev = [t for t in toks[:j] if not t.isspace()]
    if not prev or "alloca" in line:
        return None
    angle = sum(1 for t in prev if t == "<") - sum(1 for t in prev if t == ">")
    if angle:                                  # inside a vector type or constant
        return None
    if prev[-1] in _INT_TYPES or prev[-1] in _FLOAT_TYPES:
        return prev[-1]
    if prev[-1] == "," and "=" in prev:        # the second operand of a binary op or compare
        i = prev.index("=")
        if i + 1 < len(prev) and prev[i + 1] in _BINARY_OPS:
            types = [t for t in prev[i + 2:] if t in _INT_TYPES or t in _FLOAT_TYPES or t in ("<", ">")]
            return types[0] if types and types[0] not in ("<", ">") else None
        return None
    if prev[-1] == "[" and "phi" in prev:      # phi [ value, %block ]: the phi's type
        i = prev.index("phi")
        return prev[i + 1] if i + 1 < len(prev) and (prev[i + 1] in _INT_TYPES or prev[i + 1] in _FLOAT_TYPES) else None
    return None


class _Function:
    """The polynomials one function needs, as SSA values defined at the top of its entry block."""

    def __init__(self, name: str):
        self.name = name
        self.defs: list[str] = []
        self.values: dict[tuple, str] = {}

    def _polynomial(self, k: int, coeffs) -> str:
        """Emit c0 + c1 * n + c2 * n**2 + ... as i64 (terms with a zero coefficient are skipped)."""
        power, acc = "%tf.n", None
        for i, c in enumerate(coeffs[1:], start=1):
            if i > 1:
                self.defs.append(f"  %tf.{k}.p{i} = mul i64 {power}, %tf.n")
                power = f"%tf.{k}.p{i}"
            if c:
                self.defs.append(f"  %tf.{k}.t{i} = mul i64 {power}, {c}")
                if acc is None:
                    acc = f"%tf.{k}.t{i}"
                else:
                    self.defs.append(f"  %tf.{k}.s{i} = add i64 {acc}, %tf.{k}.t{i}")
                    acc = f"%tf.{k}.s{i}"
        self.defs.append(f"  %tf.{k}.v = add i64 {acc or 0}, {coeffs[0]}")
        return f"%tf.{k}.v"

    def value(self, typ: str, kind: str, poly: Poly) -> str:
        key = (typ, kind, poly.coeffs)
        if key in self.values:
            return self.values[key]
        k = len(self.values)
        acc = self._polynomial(k, poly.coeffs)
        name = f"%tf.{k}"
        if typ in _INT_TYPES and typ != "i64":
            self.defs.append(f"  {name} = trunc i64 {acc} to {typ}")
        elif typ in _FLOAT_TYPES:
            conv = f"%tf.{k}.f"
            self.defs.append(f"  {conv} = sitofp i64 {acc} to {typ}")
            if kind == "reciprocal":
                self.defs.append(f"  {name} = fdiv {typ} 1.0, {conv}")
            else:
                name = conv
        else:
            name = acc
        self.values[key] = name
        return name


def generalise_ir(texts: list[str], ns) -> str:
    """The module of ``texts`` (lowered at batch sizes ``ns``) that reads the batch size at
    run time; raises SymbolicUnsupported (naming the kernel) where it cannot."""
    lines_per = [t.splitlines() for t in texts]
    if any(len(ls) != len(lines_per[0]) for ls in lines_per):
        raise SymbolicUnsupported(f"the generated code differs in length between batch sizes "
                                  f"({_first_difference(lines_per)})")
    out: list[str] = []
    functions: list[tuple[_Function, int]] = []      # function, index in ``out`` of its entry label
    fn: _Function | None = None
    entry_at = None
    for versions in zip(*lines_per):
        line = versions[0]
        if line.startswith("define "):
            fn, entry_at = _Function(_function_name(line)), None
            functions.append((fn, -1))
        elif fn is not None and entry_at is None and line.endswith(":") and not line.startswith(" "):
            entry_at = len(out) + 1
            functions[-1] = (fn, entry_at)
        elif line == "}":
            fn = None
        if all(v == line for v in versions[1:]):
            out.append(line)
            continue
        if fn is None:
            raise SymbolicUnsupported(f"a module-level line differs between batch sizes: {line.strip()[:80]}")
        out.append(_generalise_line(versions, ns, fn))
    # the definitions go right after each function's entry label (after the store of the
    # batch size in tf_step itself)
    for fn, at in reversed(functions):
        if not fn.values:
            continue
        if at < 0:
            raise SymbolicUnsupported(f"{_kernel_label(fn.name)} has no entry block")
        if fn.name == "tf_step":
            at = next(i for i in range(at, len(out)) if BATCH_GLOBAL in out[i] and "store" in out[i]) + 1
        head = ["  %tf.n = load i64, ptr @" + BATCH_GLOBAL]
        out[at:at] = head + fn.defs
    return "\n".join(out) + "\n"


def _first_difference(lines_per) -> str:
    fn = "?"
    for versions in zip(*lines_per):
        if versions[0].startswith("define "):
            fn = _function_name(versions[0])
        if any(v != versions[0] for v in versions[1:]):
            return f"first in {_kernel_label(fn)}"
    return "at the end"


def _generalise_line(versions, ns, fn: _Function) -> str:
    toks = [_tokens(v) for v in versions]
    where = _kernel_label(fn.name)
    if any(len(t) != len(toks[0]) for t in toks):
        raise SymbolicUnsupported(f"{where} needs fixed sizes (its code differs between batch sizes)")
    result = []
    for j, tok in enumerate(toks[0]):
        column = [t[j] for t in toks]
        if all(c == tok for c in column[1:]):
            result.append(tok)
            continue
        if not all(_NUMBER.match(c) for c in column):
            raise SymbolicUnsupported(f"{where} needs fixed sizes (its code differs between batch sizes)")
        typ = _operand_type(toks[0], j, versions[0])
        if typ is None:
            raise SymbolicUnsupported(f"{where} needs fixed sizes (a size in a type or constant: "
                                      f"{versions[0].strip()[:80]})")
        values = [_literal_value(c, typ) for c in column]
        if typ in _INT_TYPES:
            poly = fit(ns, values)
            form = ("value", poly) if poly is not None else None
        else:
            exact = _float32 if typ == "float" else float
            form = fit_float(ns, values, exact)
        if form is None:
            raise SymbolicUnsupported(f"{where} needs fixed sizes (a {typ} that is not a polynomial in the "
                                      f"batch size: {', '.join(map(str, column))})")
        result.append(fn.value(typ, *form))
    return "".join(result)
