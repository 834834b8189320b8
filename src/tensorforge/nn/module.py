"""The ``Module`` base class of the ``tg.nn`` layers.

A module is a recipe that *builds graph nodes*: calling it on a tensor adds its
ops to that tensor's graph and returns the output tensor. Its parameters are
created on the first call in a graph (as ``tg.parameter`` nodes named
``"<scope>/<local name>"``, e.g. ``"dense0/W"``) and reused by every later call
in the same graph, so a model called on a training placeholder and on an
evaluation placeholder of one graph shares its weights.

Scopes: a module given ``name=`` uses it. A module held by an attribute of a
custom module takes the attribute's name, torch style (``self.fc1 = Dense(...)``
gives ``fc1/W``; nested ``block/conv1/W``; a list attribute ``self.blocks``
gives ``blocks/0/...``); if that scope is already taken in the graph (two
unnamed copies of one model in one graph) it becomes ``fc1_1``, ``fc1_2``, ...
Other modules get ``<kind><k>`` (``dense0``, ``conv2d1``, ...) with the smallest
``k`` free in that graph: the layers of a ``Sequential`` (which keeps these
names; ``from_torch_state_dict`` still maps torch's ``0.weight`` by position)
and unnamed containers nested in one. A *named* container prefixes its children
(``"mlp/dense0/W"``); an unnamed root container, and an unnamed Sequential, are
transparent.

Modes: ``train()`` / ``eval()`` set a flag (recursively) that is read *when
building*; ``module(x, training=None)`` uses the flag, ``training=True/False``
overrides it for this call (and for every child built by this call).

Several graphs: a module built in a second graph starts from the values its
parameters have in the graph it was most recently built in (a copy); the
graphs do not share storage afterwards.
"""
from __future__ import annotations

import math
import weakref
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from .._typing import Array, Shape
from ..graph import Graph, Tensor, parameter

__all__ = ["Module", "ParamSpec"]

# scopes taken by modules, per graph (so two unnamed Dense layers get dense0 and dense1)
_SCOPES: "weakref.WeakKeyDictionary[Graph, set[str]]" = weakref.WeakKeyDictionary()


def _taken_scopes(graph: Graph) -> set[str]:
    if graph not in _SCOPES:
        _SCOPES[graph] = set()
    return _SCOPES[graph]


def _scope_free(graph: Graph, scope: str) -> bool:
    if scope in _taken_scopes(graph):
        return False
    prefix = scope + "/"
    return not any(name == scope or name.startswith(prefix) for name in graph._names)


def _known_dims(shape: Sequence[int | None]) -> Shape:
    """``shape`` as ints, where every dimension is known (a parameter's, or input axes a layer has
    checked): the graph declares dims ``int | None``."""
    dims = tuple(d for d in shape if d is not None)
    if len(dims) != len(shape):
        raise ValueError(f"shape {tuple(shape)} has an unknown dimension")
    return dims


class ParamSpec:
    """How to make one parameter: its shape, an initial-value function, and its role."""

    def __init__(self, shape: Sequence[int], make: Callable[[], Array], trainable: bool = True,
                 decay: bool = False) -> None:
        self.shape: Shape = tuple(int(d) for d in shape)
        self.make = make              # () -> np.ndarray of ``shape``
        self.trainable = trainable    # False: state such as running statistics
        self.decay = decay            # True for weights (what weight penalties usually act on)


class Module:
    """Base class: subclasses implement ``forward(x, training)`` and declare parameters with
    ``self.param(graph, local_name, spec, dtype)``."""

    kind = "module"
    # whether children held by attributes are named after them (Sequential keeps kind names)
    _attribute_names = True
    # containers that never take a scope of their own when unnamed
    _transparent = False
    # set with object.__setattr__ (before __setattr__ can see them): the holder of this module
    # and the attribute path it is held under
    _parent: Module | None
    _attr: str | None

    def __init__(self, name: str | None = None) -> None:
        object.__setattr__(self, "_parent", None)
        object.__setattr__(self, "_attr", None)
        self.name = name
        self.training = True
        self._params: "weakref.WeakKeyDictionary[Graph, dict[str, Tensor]]" = weakref.WeakKeyDictionary()
        self._specs: dict[str, ParamSpec] = {}
        self._scope: "weakref.WeakKeyDictionary[Graph, str]" = weakref.WeakKeyDictionary()
        self._latest: weakref.ref[Graph] | None = None

    # -- children (attributes that are modules, or lists/tuples of modules) ---------------
    def __setattr__(self, key: str, value: Any) -> None:
        if isinstance(value, Module) and not key.startswith("_"):
            object.__setattr__(value, "_parent", self)
            object.__setattr__(value, "_attr", key)
        elif isinstance(value, (list, tuple)) and not key.startswith("_"):
            for i, v in enumerate(value):
                if isinstance(v, Module):
                    object.__setattr__(v, "_parent", self)
                    object.__setattr__(v, "_attr", f"{key}/{i}")
        object.__setattr__(self, key, value)

    def children(self) -> list["Module"]:
        out: list[Module] = []
        for key, value in vars(self).items():
            if key.startswith("_"):
                continue
            if isinstance(value, Module):
                out.append(value)
            elif isinstance(value, (list, tuple)):
                out += [v for v in value if isinstance(v, Module)]
        return out

    def modules(self) -> Iterator["Module"]:
        """This module and every descendant, depth first."""
        yield self
        for child in self.children():
            yield from child.modules()

    # -- modes -----------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Training mode (dropout active, batch norm uses batch statistics) for this module and its children."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> "Module":
        """Evaluation mode (no dropout, batch norm uses its running statistics)."""
        return self.train(False)

    # -- building ----------------------------------------------------------------------------
    def __call__(self, x: Tensor, training: bool | None = None) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__} expects a graph Tensor (e.g. a tg.placeholder), "
                            f"got {type(x).__name__}")
        training = self.training if training is None else bool(training)
        out = self.forward(x, training=training)
        # set after building: while building, "latest" must still name the previous graph,
        # the one new parameters copy their values from
        self._latest = weakref.ref(x.graph)
        return out

    def forward(self, x: Tensor, training: bool) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement forward(x, training)")

    def scope(self, graph: Graph) -> str:
        """This module's name prefix in ``graph`` ("" for an unnamed container)."""
        if graph in self._scope:
            return self._scope[graph]
        parent = self._parent.scope(graph) if self._parent is not None else ""
        base = parent + "/" if parent else ""
        attr = self._attribute_name()
        if self.name is not None:
            scope = base + self.name
        elif attr is not None:
            scope = self._attr_scope(graph, base + attr)
        elif not self._has_own_scope():
            scope = parent  # unnamed root containers and Sequentials are transparent
        else:
            scope = self._auto_scope(graph, base)
        if scope and scope != parent:
            _taken_scopes(graph).add(scope)
        self._scope[graph] = scope
        return scope

    def _auto_scope(self, graph: Graph, base: str) -> str:
        k = 0
        while not _scope_free(graph, f"{base}{self.kind}{k}"):
            k += 1
        return f"{base}{self.kind}{k}"

    def _attribute_name(self) -> str | None:
        """The attribute path naming this module in its parent ("fc1", "blocks/0"), if the parent
        names its children that way."""
        parent = self._parent
        if parent is None or not parent._attribute_names or self._attr is None:
            return None
        return self._attr

    def _attr_scope(self, graph: Graph, scope: str) -> str:
        k, candidate = 0, scope
        while not _scope_free(graph, candidate):
            k += 1
            candidate = f"{scope}_{k}"
        return candidate

    def _has_own_scope(self) -> bool:
        """Leaf layers (with or without parameters) get a scope; unnamed root containers and
        Sequentials do not; a composite layer inside a Sequential (a transformer block) does,
        so that two of them do not fight over their children's attribute names."""
        if not self.children():
            return True
        return self._parent is not None and not self._transparent

    # -- torch-style paths ------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """(path, module) for this module and every descendant, with torch's dotted paths:
        attribute names, list and Sequential positions ("features.0", "block.conv1")."""
        yield prefix, self
        for key, child in self._named_children():
            yield from child.named_modules(f"{prefix}.{key}" if prefix else key)

    def _named_children(self) -> list[tuple[str, "Module"]]:
        out: list[tuple[str, Module]] = []
        for key, value in vars(self).items():
            if key.startswith("_"):
                continue
            if isinstance(value, Module):
                out.append((key, value))
            elif isinstance(value, (list, tuple)):
                out += [(f"{key}.{i}", v) for i, v in enumerate(value) if isinstance(v, Module)]
        return out

    # torch's local parameter names -> ours (e.g. Dense: weight -> W, transposed)
    torch_names: dict[str, str] = {}
    torch_transposed: tuple[str, ...] = ()
    torch_ignored: tuple[str, ...] = ()

    def param(self, graph: Graph, local: str, spec: ParamSpec, dtype: str = "float32") -> Tensor:
        """The parameter ``local`` of this module in ``graph``, created on first use."""
        store = self._params.setdefault(graph, {})
        if local in store:
            return store[local]
        self._specs[local] = spec
        value = self._value_elsewhere(graph, local)
        if value is None:
            value = spec.make()
        value = np.asarray(value, dtype=dtype)
        if value.shape != spec.shape:
            raise ValueError(f"{type(self).__name__}: initial value of {local!r} has shape {value.shape}, "
                             f"expected {spec.shape}")
        scope = self.scope(graph)
        if not scope:  # an unnamed container with parameters of its own: give it a scope now
            scope = self._auto_scope(graph, "")
            _taken_scopes(graph).add(scope)
            self._scope[graph] = scope
        t = parameter(f"{scope}/{local}", value, trainable=spec.trainable, graph=graph)
        store[local] = t
        return t

    def _value_elsewhere(self, graph: Graph, local: str) -> Array | None:
        """The value of ``local`` in the graph this module was most recently built in (if another)."""
        latest = self._latest() if self._latest is not None else None
        candidates = [latest] + list(self._params.keys())
        for g in candidates:
            if g is not None and g is not graph and local in self._params.get(g, {}):
                return np.array(self._params[g][local].value)
        return None

    # -- inspection ----------------------------------------------------------------------------
    @property
    def graph(self) -> Graph | None:
        """The graph this module (or a child) was most recently built in, or None."""
        latest = self._latest() if self._latest is not None else None
        if latest is not None:
            return latest
        for child in self.children():
            if child.graph is not None:
                return child.graph
        return None

    def _resolve_graph(self, graph: Graph | None) -> Graph:
        graph = graph if graph is not None else self.graph
        if graph is None:
            raise RuntimeError(f"{type(self).__name__} has not been built yet: call it on a tensor first "
                               f"(parameters are created in the input's graph on the first call)")
        return graph

    def _own(self, graph: Graph, trainable: bool | None = None, decay_only: bool = False) -> list[Tensor]:
        store = self._params.get(graph, {})
        out: list[Tensor] = []
        for local, t in store.items():
            spec = self._specs[local]
            if trainable is not None and spec.trainable != trainable:
                continue
            if decay_only and not spec.decay:
                continue
            out.append(t)
        return out

    def _collect(self, graph: Graph, trainable: bool | None = None, decay_only: bool = False) -> list[Tensor]:
        return [t for m in self.modules() for t in m._own(graph, trainable=trainable, decay_only=decay_only)]

    def parameters(self, graph: Graph | None = None) -> list[Tensor]:
        """The trainable parameters (in ``graph``, default: the most recent build graph), in layer order."""
        return self._collect(self._resolve_graph(graph), trainable=True)

    def weights(self, graph: Graph | None = None) -> list[Tensor]:
        """The weight matrices/kernels only (no biases, no norm scales): what L1/L2 penalties usually use."""
        return self._collect(self._resolve_graph(graph), trainable=True, decay_only=True)

    def state(self, graph: Graph | None = None) -> list[Tensor]:
        """The non-trainable parameters (batch-norm running statistics)."""
        return self._collect(self._resolve_graph(graph), trainable=False)

    def variables(self, graph: Graph | None = None) -> list[Tensor]:
        """Trainable parameters and state together."""
        return self._collect(self._resolve_graph(graph))

    def num_parameters(self, graph: Graph | None = None) -> int:
        return sum(math.prod(_known_dims(t.shape)) for t in self.parameters(graph))

    def state_dict(self, graph: Graph | None = None) -> dict[str, Array]:
        """Copies of every parameter and state value, keyed by graph name."""
        return {t.name: np.array(t.value) for t in self.variables(graph)}

    def load_state_dict(self, values: Mapping[str, Any], graph: Graph | None = None) -> None:
        """Write values (as from ``state_dict``) into the parameters, in place; every key must match."""
        tensors = {t.name: t for t in self.variables(graph)}
        missing = sorted(set(tensors) - set(values))
        unknown = sorted(set(values) - set(tensors))
        if missing or unknown:
            raise KeyError(f"load_state_dict: missing {missing}, unexpected {unknown}")
        for name, t in tensors.items():
            t.value = values[name]

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        kids = self.children()
        head = f"{type(self).__name__}({self.extra_repr()})"
        if not kids:
            return head
        inner = "\n".join("  " + line for k in kids for line in repr(k).splitlines())
        return f"{type(self).__name__}(\n{inner}\n)"
