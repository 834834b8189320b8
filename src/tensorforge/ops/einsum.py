"""einsum, lowered to existing graph ops.

The equation is parsed at build time into one list of labels per operand; then

1. a label repeated inside one operand takes that operand's diagonal (``diagonal``);
2. size-1 axes broadcast against the other operands' sizes (``broadcast_to``);
3. labels that only one operand holds and the output does not are summed away at once;
4. operands are contracted left to right, two at a time: shared labels that are still
   needed later become batch axes, the other shared labels are contracted by a batched
   ``matmul`` on (batch, left, contracted) x (batch, contracted, right) views, or by a
   broadcasting multiply when nothing is contracted;
5. a final transpose puts the labels in the output order.

Autodiff differentiates through all of it, so gradients match torch's.
"""
from __future__ import annotations

import math
import string

from typing import Sequence, TypeAlias, cast

import numpy as np

from .._typing import TensorLike
from ..graph import Tensor, as_tensor
from .registry import ShapeError, apply

#: One operand's axis labels, a character each (``...`` axes get private characters).
Labels: TypeAlias = list[str]

LETTERS = set(string.ascii_letters)


def _parse(equation: str, ranks: list[int]) -> tuple[list[Labels], Labels]:
    """Per-operand label lists and the output label list; ``...`` becomes private labels
    (chr(0x100 + k)) aligned from the right as NumPy broadcasting aligns them."""
    eq = equation.replace(" ", "")
    if eq.count("->") > 1:
        raise ValueError(f"einsum: equation {equation!r} has more than one '->'")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"einsum: equation {equation!r} names {len(terms)} operand(s), "
                         f"but {len(ranks)} were given")
    n_ell = 0
    parsed: list[tuple[str, int]] = []
    for k, (term, rank) in enumerate(zip(terms, ranks)):
        _check_chars(term, equation)
        if term.count("...") > 1:
            raise ValueError(f"einsum: operand {k} term {term!r} has more than one '...'")
        named = len(term.replace("...", ""))
        if "..." in term:
            if rank < named:
                raise ValueError(f"einsum: operand {k} has rank {rank}, fewer than the {named} labels "
                                 f"of {term!r}")
            n_ell = max(n_ell, rank - named)
        elif named != rank:
            raise ValueError(f"einsum: operand {k} has rank {rank} but term {term!r} names {named} axes")
        parsed.append((term, rank - named))
    ell = [chr(0x100 + i) for i in range(n_ell)]
    ins: list[Labels] = []
    for term, e in parsed:
        head, dots, tail = term.partition("...")
        ins.append(list(head) + (ell[n_ell - e:] if dots else []) + list(tail))
    if arrow:
        _check_chars(rhs, equation)
        if rhs.count("...") > 1:
            raise ValueError(f"einsum: the output {rhs!r} has more than one '...'")
        head, dots, tail = rhs.partition("...")
        out = list(head) + (ell if dots else []) + list(tail)
        if not dots and ell:
            raise ValueError(f"einsum: the inputs of {equation!r} use '...' but the output does not")
        if len(set(out)) != len(out):
            raise ValueError(f"einsum: output {rhs!r} repeats a label")
        seen = {c for labels in ins for c in labels}
        for c in out:
            if c not in seen:
                raise ValueError(f"einsum: output label {c!r} does not appear in any input of {equation!r}")
    else:
        counts: dict[str, int] = {}
        for labels in ins:
            for c in labels:
                counts[c] = counts.get(c, 0) + 1
        out = ell + sorted(c for c, n in counts.items() if n == 1 and c not in ell)
    return ins, out


def _check_chars(term: str, equation: str) -> None:
    bad = [c for c in term.replace("...", "") if c not in LETTERS]
    if bad:
        raise ValueError(f"einsum: invalid character {bad[0]!r} in equation {equation!r} "
                         "(labels are letters a-z, A-Z; '...' for broadcast axes)")


def _label_sizes(ops: Sequence[Tensor], labels: Sequence[Labels]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for k, (x, ls) in enumerate(zip(ops, labels)):
        for c, d in zip(ls, x.shape):
            if d is None:
                raise ShapeError(f"einsum: the shape of operand {k} must be known when the graph is built, "
                                 f"got {x.shape}")
            old = sizes.get(c)
            if d != 1 and old not in (None, 1) and d != old:
                name = "'...'" if ord(c) >= 0x100 else repr(c)
                raise ShapeError(f"einsum: label {name} has size {old} in one operand and {d} in operand {k}")
            if d != 1 or old is None:
                sizes[c] = d
    return sizes


def _take_diagonals(x: Tensor, ls: Labels) -> tuple[Tensor, Labels]:
    from .manipulation import diagonal
    while len(set(ls)) != len(ls):
        c = next(c for c in ls if ls.count(c) > 1)
        p = ls.index(c)
        q = ls.index(c, p + 1)
        if x.shape[p] != x.shape[q]:
            raise ShapeError(f"einsum: label {c!r} is repeated in one operand on axes of sizes "
                             f"{x.shape[p]} and {x.shape[q]}")
        x = diagonal(x, 0, p, q)
        ls = [l for i, l in enumerate(ls) if i not in (p, q)] + [c]
    return x, ls


def _sum_away(x: Tensor, ls: Labels, keep: set[str]) -> tuple[Tensor, Labels]:
    axes = tuple(i for i, c in enumerate(ls) if c not in keep)
    if not axes:
        return x, ls
    return apply("sum", [x], axis=axes, keepdims=False), [c for c in ls if c in keep]


def _permute(x: Tensor, ls: Labels, order: Labels) -> Tensor:
    perm = tuple(ls.index(c) for c in order)
    return x if perm == tuple(range(len(ls))) else apply("transpose", [x], axes=perm)


def _contract(a: Tensor, la: Labels, b: Tensor, lb: Labels, keep: set[str],
              sizes: dict[str, int]) -> tuple[Tensor, Labels]:
    """a and b contracted over their shared labels that ``keep`` lacks."""
    batch = [c for c in la if c in lb and c in keep]
    summed = [c for c in la if c in lb and c not in keep]
    left = [c for c in la if c not in lb]
    right = [c for c in lb if c not in la]

    def size(cs: Labels) -> int:
        return math.prod(sizes[c] for c in cs)

    if not summed:                        # an outer / elementwise product: broadcast and multiply
        order = batch + left + right
        ae = apply("reshape", [_permute(a, la, batch + left)], shape=tuple(sizes[c] for c in batch + left)
                   + (1,) * len(right))
        be = apply("reshape", [_permute(b, lb, batch + right)], shape=tuple(sizes[c] for c in batch)
                   + (1,) * len(left) + tuple(sizes[c] for c in right))
        return apply("mul", [ae, be]), order
    a3 = apply("reshape", [_permute(a, la, batch + left + summed)], shape=(size(batch), size(left), size(summed)))
    b3 = apply("reshape", [_permute(b, lb, batch + summed + right)], shape=(size(batch), size(summed), size(right)))
    out = apply("matmul", [a3, b3])
    order = batch + left + right
    return apply("reshape", [out], shape=tuple(sizes[c] for c in order)), order


def einsum(equation: str, *operands: TensorLike | Sequence[TensorLike]) -> Tensor:
    """torch.einsum: the sum over repeated labels of products of the operands' elements,
    e.g. ``einsum("bij,bjk->bik", a, b)`` (batched matmul), ``einsum("ii", a)`` (trace),
    ``einsum("ii->i", a)`` (diagonal), ``einsum("...ij->...ji", a)``. Without ``->`` the
    output is the labels that appear once, in alphabetical order (after any ``...`` axes).
    Size-1 axes broadcast. Operands may also be given as one list."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the equation must be a string, got {type(equation).__name__}")
    given: Sequence[TensorLike]
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        given = tuple(cast("Sequence[TensorLike]", operands[0]))      # the operands passed as one list
    else:
        given = cast("tuple[TensorLike, ...]", operands)               # one operand per argument
    if not given:
        raise ValueError("einsum: needs at least one operand")
    like = next((t for t in given if isinstance(t, Tensor)), None)
    ops = [as_tensor(t, like=like) for t in given]
    labels, out = _parse(equation, [len(x.shape) for x in ops])
    sizes = _label_sizes(ops, labels)
    items = []
    for x, ls in zip(ops, labels):
        x, ls = _take_diagonals(x, ls)
        want = tuple(sizes[c] for c in ls)
        if x.shape != want:
            x = apply("broadcast_to", [x], shape=want)
        items.append((x, ls))
    for c in out:
        sizes.setdefault(c, 1)
    acc, la = items[0]
    for k in range(1, len(items)):
        later = {c for _, ls in items[k + 1:] for c in ls} | set(out)
        b, lb = items[k]
        acc, la = _sum_away(acc, la, later | set(lb))
        b, lb = _sum_away(b, lb, later | set(la))
        acc, la = _contract(acc, la, b, lb, later, sizes)
    acc, la = _sum_away(acc, la, set(out))
    return _permute(acc, la, out)
