"""The computational graph: a networkx DAG of op nodes, and thin Tensor handles.

A node is an integer id in ``Graph.nx`` whose attributes are

    op      name of the op in the registry ("add", "placeholder", ...)
    inputs  the *ordered* tuple of input node ids (``x * x`` has two equal entries,
            which a plain DiGraph edge set could not express)
    attrs   op attributes as a sorted tuple of (key, value) pairs (hashable)
    shape   static shape; ``None`` marks a dimension bound at call time
    dtype   numpy dtype name ("float32", "int64", "bool", ...)
    name    a human-readable name (placeholders and parameters: the user's)

Nodes built by ops are interned on (op, inputs, attrs), so building the same
expression twice yields the same node: common-subexpression elimination for free.
"""
from __future__ import annotations

import hashlib
import itertools
import threading
from typing import IO, TYPE_CHECKING, Any, Iterable, NoReturn, Protocol, Sequence

import networkx as nx
import numpy as np
import numpy.typing as npt

from ._tensor_methods import TensorMethods
from ._typing import Array, DTypeLike, ShapeSpec

if TYPE_CHECKING:
    from ._typing import TensorLike

__all__ = [
    "Graph", "Tensor", "get_default_graph", "placeholder", "parameter", "constant",
    "dprint", "as_tensor",
]

LEAF_OPS = ("placeholder", "parameter", "constant")


class DeviceMirror(Protocol):
    """A parameter's copy on a GPU (backends/triton/backend.py): ``stale`` when the device copy
    is newer, ``host_newer`` when the host's is."""
    stale: bool
    host_newer: bool

    def to_host(self) -> None: ...


def _freeze(value: Any) -> Any:
    """Make attribute values hashable (lists -> tuples, dicts -> sorted tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, slice):
        return ("__slice__", value.start, value.stop, value.step)
    if isinstance(value, np.generic):
        return value.item()
    return value


def freeze_attrs(attrs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, _freeze(v)) for k, v in attrs.items()))


def constant_key(arr: Array) -> dict[str, Any]:
    """The interning key of a constant: its content, so equal constants merge and different
    ones never can. Small arrays are keyed by their bytes; big ones by a sha256 digest of
    them (a counter-based key could collide with one copied from another graph)."""
    data = np.ascontiguousarray(arr).tobytes()
    if arr.size <= 16:
        return {"key": (arr.dtype.str, arr.shape, data)}
    return {"key": (arr.dtype.str, arr.shape, "sha256:" + hashlib.sha256(data).hexdigest())}


def native_byte_order(arr: Array) -> Array:
    """``arr`` in the machine's byte order (compiled code reads raw memory); a copy only
    when it was not already native."""
    if not arr.dtype.isnative:
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


def check_leaf_name(kind: str, name: object) -> str:
    """A placeholder or parameter name must be a non-empty str that UTF-8 can encode: calls
    pass inputs by keyword, and backends and exports write names out as text."""
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a str, got {type(name).__name__} {name!r}")
    if not name:
        raise ValueError(f"{kind} name must not be empty (inputs are passed by name)")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{kind} name {name!r} cannot be encoded as UTF-8 ({e.reason} at position "
                         f"{e.start}); use a name without lone surrogates") from None
    return name


def format_shape(shape: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


class Graph:
    """A define-then-run graph. Use ``with g:`` to make it the default graph."""

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.nx: nx.DiGraph[int] = nx.DiGraph()
        self.values: dict[int, Array] = {}       # parameter storage
        self.default_updates: dict[int, int] = {}     # state node -> update node (e.g. running stats)
        self.update_triggers: dict[int, int] = {}     # state node -> node whose use implies the update
        # parameters that a GPU backend keeps on the device: node id -> mirror with .stale
        # (the device copy is newer) and to_host()/from_host(); see backends/triton/backend.py
        self.device_mirrors: dict[int, DeviceMirror] = {}
        self.grad_nodes: set[int] = set()             # nodes that tg.grad added (export styles them)
        self._intern: dict[tuple[Any, ...], int] = {}
        self._ids = itertools.count()
        self._names: dict[str, int] = {}

    # -- context manager / default graph ------------------------------------------------
    def __enter__(self) -> "Graph":
        _stack().append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _stack().pop()

    # -- node access ---------------------------------------------------------------------
    def node(self, nid: int) -> dict[str, Any]:
        data: dict[str, Any] = self.nx.nodes[nid]
        return data

    def tensor(self, nid: int) -> "Tensor":
        return Tensor(self, nid)

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    def sync_host(self) -> None:
        """Bring every parameter that lives on a device back into ``values`` (if it changed there)."""
        for mirror in self.device_mirrors.values():
            if mirror.stale:
                mirror.to_host()

    def host_changed(self, nids: Iterable[int]) -> None:
        """Parameters ``nids`` were written on the host: their device copies must be refreshed."""
        for nid in nids:
            mirror = self.device_mirrors.get(nid)
            if mirror is not None:
                mirror.host_newer = True

    def __bool__(self) -> bool:
        # always true, even when empty: `graph or get_default_graph()` must not swap an
        # empty graph for the default one (without this, __len__ decides truthiness)
        return True

    def __contains__(self, t: object) -> bool:
        return isinstance(t, Tensor) and t.graph is self and t.id in self.nx

    def by_name(self, name: str) -> "Tensor":
        if name not in self._names:
            raise KeyError(f"graph {self.name!r} has no placeholder or parameter named {name!r}")
        return self.tensor(self._names[name])

    def placeholders(self) -> list["Tensor"]:
        return [self.tensor(n) for n, d in self.nx.nodes(data=True) if d["op"] == "placeholder"]

    def parameters(self, trainable: bool | None = None) -> list["Tensor"]:
        out: list[Tensor] = []
        for n, d in self.nx.nodes(data=True):
            if d["op"] == "parameter" and (trainable is None or dict(d["attrs"]).get("trainable") == trainable):
                out.append(self.tensor(n))
        return out

    def add_node(self, op: str, inputs: tuple[int, ...], attrs: dict[str, Any], shape: Sequence[int | None],
                 dtype: DTypeLike,
                 name: str | None = None, intern: bool = True) -> int:
        """Add a node (or return the interned equal one) and its edges."""
        fattrs = freeze_attrs(attrs)
        key = (op, tuple(inputs), fattrs)
        if intern and key in self._intern:
            return self._intern[key]
        nid = next(self._ids)
        self.nx.add_node(nid, op=op, inputs=tuple(inputs), attrs=fattrs, shape=tuple(shape),
                         dtype=str(np.dtype(dtype)), name=name or f"{op}_{nid}")
        for i in inputs:
            self.nx.add_edge(i, nid)
        if intern:
            self._intern[key] = nid
        return nid

    def register_name(self, name: str, nid: int) -> None:
        if name in self._names:
            raise ValueError(f"graph {self.name!r} already has a node named {name!r}; names of "
                             "placeholders and parameters must be unique")
        self._names[name] = nid

    def topological_order(self, roots: Iterable[int] | None = None) -> list[int]:
        """Nodes in dependency order; with ``roots``, only their ancestors (and themselves)."""
        if roots is None:
            return list(nx.topological_sort(self.nx))
        needed: set[int] = set()
        for r in roots:
            needed.add(r)
            needed |= nx.ancestors(self.nx, r)
        return [n for n in nx.topological_sort(self.nx.subgraph(needed))]

    # -- text form -----------------------------------------------------------------------
    def format_node(self, nid: int) -> str:
        """One line: ``%5 = add(%3, %4) : (?, 10) float32``; leaves show their name or value."""
        d = self.node(nid)
        attrs = {k: v for k, v in d["attrs"] if k not in ("key", "uid")}
        if d["op"] in ("placeholder", "parameter"):
            kind = "parameter" if attrs.get("trainable", True) else "state"
            call = f"{kind if d['op'] == 'parameter' else 'placeholder'} {d['name']!r}"
            attrs = {}
        elif d["op"] == "constant":
            val = self.values[nid]
            call = "constant " + (np.array2string(val, threshold=6, precision=4) if val.size <= 6
                                  else f"<{val.size} values>")
        else:
            call = f"{d['op']}({', '.join(f'%{i}' for i in d['inputs'])})"
        attr_txt = "".join(f" {k}={v}" for k, v in attrs.items())
        return f"%{nid} = {call}{attr_txt} : {format_shape(d['shape'])} {d['dtype']}"

    def __str__(self) -> str:
        lines = [f"Graph {self.name!r}: {len(self)} nodes"]
        lines += ["  " + self.format_node(n) for n in self.topological_order()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Graph {self.name!r} with {len(self)} nodes>"

    def _repr_html_(self) -> str | None:
        """Jupyter shows the interactive viewer of ``tg.export.to_html`` (in an iframe)."""
        from .export.html import repr_html
        return repr_html(self)


_local = threading.local()
_GLOBAL_DEFAULT = Graph("default")


def _stack() -> list[Graph]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    stack: list[Graph] = _local.stack
    return stack


def get_default_graph() -> Graph:
    """The innermost graph entered with ``with g:``, else the global default graph."""
    stack = _stack()
    return stack[-1] if stack else _GLOBAL_DEFAULT


class Tensor(TensorMethods):
    """A handle on one node of a graph. Operators build new nodes."""

    __slots__ = ("graph", "id")
    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operator

    def __init__(self, graph: Graph, nid: int):
        self.graph = graph
        self.id = nid

    @property
    def _d(self) -> dict[str, Any]:
        return self.graph.node(self.id)

    @property
    def shape(self) -> tuple[int | None, ...]:
        shape: tuple[int | None, ...] = self._d["shape"]
        return shape

    @property
    def dtype(self) -> str:
        return str(self._d["dtype"])

    @property
    def name(self) -> str:
        return str(self._d["name"])

    @property
    def op(self) -> str:
        return str(self._d["op"])

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._d["attrs"])

    @property
    def inputs(self) -> list["Tensor"]:
        return [Tensor(self.graph, i) for i in self._d["inputs"]]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def value(self) -> Array:
        if self.op == "parameter":
            mirror = self.graph.device_mirrors.get(self.id)
            if mirror is not None and mirror.stale:
                mirror.to_host()
            return self.graph.values[self.id]
        if self.op == "constant":
            return self.graph.values[self.id]
        raise AttributeError(f"{self.name!r} is a {self.op!r} node: only parameters and constants hold a value")

    @value.setter
    def value(self, new: npt.ArrayLike) -> None:
        if self.op != "parameter":
            raise AttributeError(f"cannot assign a value to {self.op!r} node {self.name!r}")
        new = native_byte_order(np.asarray(new))
        cur = self.graph.values[self.id]
        if new.shape != cur.shape:
            raise ValueError(f"parameter {self.name!r}: expected a value of shape {cur.shape}, got {new.shape}")
        mirror = self.graph.device_mirrors.get(self.id)
        if mirror is not None and mirror.stale:
            mirror.to_host()          # a partial write must not be lost by the next download
        cur[...] = new  # in place: compiled code holds on to this buffer
        self.graph.host_changed([self.id])

    @property
    def T(self) -> "Tensor":
        return self.transpose()   # installed by tensorforge.ops

    def __repr__(self) -> str:
        return f"<Tensor %{self.id} {self.name!r} op={self.op} shape={format_shape(self.shape)} dtype={self.dtype}>"

    def _repr_html_(self) -> str | None:
        """Jupyter shows the sub-graph that computes this tensor in the interactive viewer."""
        from .export.html import repr_html
        return repr_html(self)

    def __hash__(self) -> int:
        return hash((id(self.graph), self.id))

    def same(self, other: "Tensor") -> bool:
        return isinstance(other, Tensor) and other.graph is self.graph and other.id == self.id

    def __bool__(self) -> bool:
        raise TypeError("a symbolic Tensor has no truth value until the graph runs; use tg.where(...) "
                        "for data-dependent choices")

    def __len__(self) -> int:
        if not self.shape or self.shape[0] is None:
            raise TypeError(f"len() of tensor {self.name!r} with shape {format_shape(self.shape)} is unknown")
        return self.shape[0]

    if TYPE_CHECKING:
        # not iterable, for checkers too: a Tensor passed where an iterable is wanted is an error
        __iter__: None
    else:
        def __iter__(self) -> NoReturn:
            raise TypeError("symbolic Tensors are not iterable; index them explicitly")

    # operators: defined in ops/__init__.py (they need the op registry); TensorMethods declares them


def as_tensor(x: TensorLike, like: Tensor | None = None, graph: Graph | None = None) -> Tensor:
    """Wrap Python scalars/arrays as constants. Python scalars are weak (as in PyTorch): they
    take ``like``'s dtype unless their category is higher (``ops.scalar.weak_scalar_dtype``),
    so ``x * 2`` stays float32 and ``int32 tensor * 1.5`` is float32."""
    if isinstance(x, Tensor):
        return x
    graph = like.graph if like is not None else (graph or get_default_graph())
    if isinstance(x, (bool, int, float)):
        from .ops.scalar import weak_scalar_dtype   # the one promotion rule (docs/numerics.md)
        dtype = np.dtype(weak_scalar_dtype(x, like.dtype if like is not None else None))
        if dtype.kind in "iu" and not isinstance(x, bool):
            # wraps into the tensor's range, as PyTorch does (uint8 tensor * -1 multiplies by 255)
            info = np.iinfo(dtype)
            x = (int(x) - int(info.min)) % (int(info.max) - int(info.min) + 1) + int(info.min)
        return constant(np.asarray(x, dtype=dtype), graph=graph)
    return constant(x, graph=graph)


def placeholder(name: str, shape: ShapeSpec, dtype: DTypeLike = "float32", graph: Graph | None = None) -> Tensor:
    """A graph input fed at call time. ``None`` in ``shape`` is bound per call."""
    check_leaf_name("placeholder", name)
    g = graph or get_default_graph()
    shape = tuple(None if d is None else int(d) for d in shape)
    if any(d is not None and d < 0 for d in shape):
        raise ValueError(f"placeholder {name!r}: dimensions must be >= 0 or None, got {shape}")
    nid = g.add_node("placeholder", (), {}, shape, np.dtype(dtype).name, name=name, intern=False)
    g.register_name(name, nid)
    return Tensor(g, nid)


def parameter(name: str, value: npt.ArrayLike, trainable: bool = True, dtype: DTypeLike | None = None,
              graph: Graph | None = None) -> Tensor:
    """A variable whose value lives in the graph; compiled updates change it in place."""
    check_leaf_name("parameter", name)
    g = graph or get_default_graph()
    arr = native_byte_order(np.array(value, dtype=dtype if dtype is not None else None, copy=True))
    if arr.dtype == np.float64 and dtype is None and not isinstance(value, np.ndarray):
        arr = arr.astype(np.float32)  # Python floats default to float32, like the rest of the API
    arr = np.asarray(arr, order="C")  # (ascontiguousarray would turn a 0-d value 1-d)
    nid = g.add_node("parameter", (), {"trainable": bool(trainable)}, arr.shape, arr.dtype.name,
                     name=name, intern=False)
    g.register_name(name, nid)
    g.values[nid] = arr
    return Tensor(g, nid)


def constant(value: npt.ArrayLike, dtype: DTypeLike | None = None, graph: Graph | None = None) -> Tensor:
    """A constant; equal constants are shared (interned on their content, see constant_key)."""
    g = graph or get_default_graph()
    arr = native_byte_order(np.array(value, dtype=dtype))
    if arr.dtype == np.float64 and dtype is None and not isinstance(value, np.ndarray):
        arr = arr.astype(np.float32)
    if arr.dtype.kind == "i" and arr.dtype != np.int64 and not isinstance(value, np.ndarray):
        arr = arr.astype(np.int64)
    arr.setflags(write=False)
    nid = g.add_node("constant", (), constant_key(arr), arr.shape, arr.dtype.name,
                     name=f"const_{arr.item():g}" if arr.size == 1 and arr.dtype.kind in "fiu" else None)
    g.values[nid] = arr
    return Tensor(g, nid)


def dprint(t: Tensor | Iterable[Tensor], file: IO[str] | None = None) -> str:
    """Print (and return) the sub-graph that computes ``t``, one line per node."""
    ts = [t] if isinstance(t, Tensor) else list(t)
    g = ts[0].graph
    lines = [g.format_node(n) for n in g.topological_order([x.id for x in ts])]
    text = "\n".join(lines)
    print(text, file=file)
    return text
