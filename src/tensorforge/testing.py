"""Testing helpers: gradient checking by central finite differences in float64.

``check_grad(fn, inputs)`` builds ``fn`` on float64 placeholders, reduces its
output to a scalar with fixed random weights, differentiates it symbolically,
and compares against central differences. It is how every op's pullback is
tested (and how users can check their own compositions).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .autodiff import grad
from .compile import compile as _compile
from ._typing import Array
from .graph import Graph, Tensor, placeholder

__all__ = ["GradientCheckError", "numerical_grad", "symbolic_grads", "check_grad"]


class GradientCheckError(AssertionError):
    pass


def numerical_grad(f: Callable[[list[np.ndarray]], float], arrays: list[np.ndarray], i: int,
                   eps: float = 1e-6) -> np.ndarray:
    """Central differences of scalar ``f`` with respect to ``arrays[i]``."""
    x = arrays[i]
    out = np.zeros_like(x, dtype=np.float64)
    flat, oflat = x.reshape(-1), out.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        fp = f(arrays)
        flat[k] = old - eps
        fm = f(arrays)
        flat[k] = old
        oflat[k] = (fp - fm) / (2 * eps)
    return out


def symbolic_grads(fn: Callable[..., Tensor], arrays: Sequence[Array], wrt: Sequence[int] | None = None,
                   backend: str = "interp", seed: int = 0
                   ) -> tuple[Callable[[list[Array]], float], list[Array], list[int]]:
    """(value function, symbolic gradient arrays) of ``sum(w * fn(*xs))`` for random fixed w."""
    arrays = [np.asarray(a) for a in arrays]
    wrt = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"] if wrt is None else list(wrt)
    g = Graph("check_grad")
    with g:
        xs = [placeholder(f"x{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays)]
        y = fn(*xs)
        shape = tuple(d for d in y.shape if d is not None)   # all known: the inputs are concrete
        w = np.random.default_rng(seed).standard_normal(shape).astype(y.dtype)
        from .ops import sum as _sum
        from .graph import constant
        loss = _sum(y * constant(w)) if y.shape != () else y * constant(np.asarray(w, y.dtype))
        grads = grad(loss, [xs[i] for i in wrt])
    f_loss = _compile(xs, [loss], backend=backend)
    f_grads = _compile(xs, grads, backend=backend)
    return (lambda arrs: float(f_loss(*arrs)[0])), f_grads(*arrays), wrt


def check_grad(fn: Callable[..., Tensor], inputs: Sequence[np.ndarray], wrt: Sequence[int] | None = None,
               eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7, backend: str = "interp") -> None:
    """Assert that tensorforge's symbolic gradients of ``fn`` match central differences.

    ``fn`` takes graph tensors and returns one tensor; ``inputs`` are arrays (use float64).
    Raises GradientCheckError naming the input and the worst element on mismatch.
    """
    arrays = [np.array(a, dtype=np.float64 if np.asarray(a).dtype.kind == "f" else None, order="C") for a in inputs]
    f, sym, wrt = symbolic_grads(fn, arrays, wrt, backend)
    for gi, i in zip(sym, wrt):
        num = numerical_grad(f, arrays, i, eps)
        if not np.allclose(gi, num, rtol=rtol, atol=atol):
            err = np.abs(gi - num) - (atol + rtol * np.abs(num))
            k = np.unravel_index(np.argmax(err), err.shape) if err.ndim else ()
            raise GradientCheckError(
                f"gradient w.r.t. input {i} (shape {arrays[i].shape}) differs from finite differences: "
                f"at index {k} symbolic {np.asarray(gi)[k]!r} vs numeric {num[k]!r}")
