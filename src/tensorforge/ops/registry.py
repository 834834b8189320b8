"""The op registry: every op is declared once, here or in a family module.

An ``OpDef`` bundles everything the rest of the pipeline needs to know:

    infer(in_types, **attrs) -> (shape, dtype)    shape/dtype rule (None dims allowed)
    impl(*arrays, **attrs) -> ndarray              NumPy reference (the interpreter runs it)
    vjp(ctx, g) -> list[Tensor | None]             pullback built from other graph ops
    scalar(s, *args, **attrs) -> scalar expr       elementwise ops only: read by code generators

``apply(name, inputs, **attrs)`` is the single entry point that adds a node:
it validates inputs, infers the type, and interns the node in the graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple, Sequence, TypeAlias

import numpy as np

from .._typing import Array, Axis, DTypeLike, TensorLike
from ..graph import Graph, Tensor, as_tensor, format_shape, get_default_graph
# the four callbacks of an op declaration (ops/_types.py names what each receives and gives)
from ._types import Pullback, ScalarRule
from ._types import Reference as Impl
from ._types import TypeRule as InferRule


class TensorType(NamedTuple):
    shape: tuple[int | None, ...]
    dtype: str


class ShapeError(ValueError):
    """A shape or dtype rule was violated; the message names the op and the shapes."""


@dataclass
class VJPContext:
    """What a pullback sees: the node's inputs and output as graph tensors, and its attrs."""
    inputs: list[Tensor]
    output: Tensor
    attrs: dict[str, Any]
    needs: list[bool]       # needs[i]: is the gradient w.r.t. input i wanted? (skip building it if not)

    @property
    def x(self) -> Tensor:
        return self.inputs[0]


@dataclass
class OpDef:
    name: str
    infer: InferRule
    impl: Impl
    vjp: Pullback | None = None
    scalar: ScalarRule | None = None        # elementwise: the scalar expression
    n_inputs: int | None = None             # None: variadic
    shape_only_inputs: tuple[int, ...] = () # inputs read for their shape only (e.g. *_like ops)
    differentiable: bool = True             # False: gradient is zero (comparisons, one_hot ...)
    random: bool = False                    # draws counter-based random numbers
    doc: str = ""
    family: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def elementwise(self) -> bool:
        return self.scalar is not None


OPS: dict[str, OpDef] = {}


def register(name: str, *, infer: InferRule, impl: Impl, vjp: Pullback | None = None,
             scalar: ScalarRule | None = None, n_inputs: int | None = None,
             shape_only_inputs: Iterable[int] = (), differentiable: bool = True, random: bool = False,
             doc: str = "", family: str = "") -> OpDef:
    if name in OPS:
        raise ValueError(f"op {name!r} is registered twice")
    opdef = OpDef(name, infer, impl, vjp, scalar, n_inputs, tuple(shape_only_inputs), differentiable,
                  random, doc, family)
    OPS[name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; known ops: {', '.join(sorted(OPS))}") from None


def _graph_of(inputs: Sequence[TensorLike]) -> Graph:
    for x in inputs:
        if isinstance(x, Tensor):
            return x.graph
    return get_default_graph()


def _weak_scalar_partner(inputs: Sequence[TensorLike]) -> Tensor | None:
    """The tensor whose dtype Python scalars among ``inputs`` take (docs/numerics.md): the first
    non-bool tensor, so where(cond, g, 0.0) gives a zero of g's dtype rather than the default
    float of the bool condition; the first tensor if all are bool."""
    tensors = [x for x in inputs if isinstance(x, Tensor)]
    return next((t for t in tensors if t.dtype != "bool"), tensors[0] if tensors else None)


def apply(name: str, inputs: Sequence[TensorLike], **attrs: Any) -> Tensor:
    """Add an ``name`` node on ``inputs`` (Tensors or Python/NumPy values) and return it."""
    opdef = get_op(name)
    graph = _graph_of(inputs)
    tensors = [as_tensor(x, like=_weak_scalar_partner(inputs), graph=graph) for x in inputs]
    for t in tensors:
        if t.graph is not graph:
            raise ValueError(f"op {name!r}: inputs come from different graphs "
                             f"({t.graph.name!r} and {graph.name!r})")
    if opdef.n_inputs is not None and len(tensors) != opdef.n_inputs:
        raise TypeError(f"op {name!r} takes {opdef.n_inputs} inputs, got {len(tensors)}")
    types = [TensorType(t.shape, t.dtype) for t in tensors]
    shape, dtype = infer_type(opdef, types, attrs, [t.name for t in tensors])
    nid = graph.add_node(name, tuple(t.id for t in tensors), attrs, shape, dtype)
    return Tensor(graph, nid)


def infer_type(opdef: OpDef, types: Sequence[TensorType], attrs: dict[str, Any],
               names: Sequence[str] | None = None) -> tuple[tuple[int | None, ...], str]:
    """Run an op's type rule, turning any failure into a ShapeError naming op and operands."""
    try:
        shape, dtype = opdef.infer(types, **attrs)
    except ShapeError as e:
        raise ShapeError(f"{opdef.name}: {e} (inputs: {_describe(types, names)})") from None
    except (ValueError, IndexError, TypeError) as e:
        raise ShapeError(f"{opdef.name}: {e} (inputs: {_describe(types, names)})") from None
    return tuple(shape), str(np.dtype(dtype))


def _describe(types: Sequence[TensorType], names: Sequence[str] | None) -> str:
    names = names or [f"#{i}" for i in range(len(types))]
    return ", ".join(f"{n} {format_shape(t.shape)} {t.dtype}" for n, t in zip(names, types))


# ---- shape helpers shared by the family modules ------------------------------------------

def broadcast_shapes(*shapes: Sequence[int | None]) -> tuple[int | None, ...]:
    """NumPy broadcasting with ``None`` (unknown) dimensions."""
    ndim = max((len(s) for s in shapes), default=0)
    out: list[int | None] = []
    for axis in range(ndim):
        dims = [s[axis - ndim + len(s)] for s in shapes if axis - ndim + len(s) >= 0]
        known = {d for d in dims if d is not None and d != 1}
        if len(known) > 1:
            raise ShapeError("shapes " + " and ".join(format_shape(s) for s in shapes)
                             + " cannot be broadcast together")
        if known:
            out.append(known.pop())
        elif any(d is None for d in dims):
            out.append(None)
        else:
            out.append(1)
    return tuple(out)


def result_dtype(*dtypes: DTypeLike) -> str:
    return np.result_type(*[np.dtype(d) for d in dtypes]).name


def normalize_axis(axis: Axis, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out: list[int] = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(f"axis {a} is out of range for a tensor of rank {ndim}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"repeated axis in {axis}")
    return tuple(sorted(out))
