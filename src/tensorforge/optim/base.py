"""The optimizer base class: update rules as graph expressions, state as graph parameters.

An optimizer turns (parameter, gradient) pairs into symbolic (parameter, new value)
pairs that ``tg.compile`` applies after each step. Everything that changes between
steps lives in the graph as a non-trainable parameter, so a compiled step never has
to be rebuilt:

    <prefix>/lr          the learning rate (the ``lr`` property writes it in place)
    <prefix>/step        the step count t, a float scalar (bias corrections use beta ** t)
    <W>/<prefix>_<slot>  per-parameter buffers named after the parameter (momentum, moments ...)

``<prefix>`` is the optimizer's tag ("adam", "sgd", ...), numbered ("adam1", ...) when
the graph already holds names built from it, since graph names must be unique.
Hyper-parameters other than the learning rate are compiled in as constants.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Protocol, Sequence

import networkx as nx
import numpy as np
import numpy.typing as npt

from .._typing import Array
from ..autodiff import grad
from ..graph import Graph, Tensor, format_shape, parameter
from ..ops import cast
from .clip import clip_by_global_norm

__all__ = ["Optimizer", "StepContext"]


@dataclass
class StepContext:
    """What an update rule sees: the learning rate, the new step count t (1 on the first
    step) and the optimizer-wide scalars, all as graph tensors of one dtype."""
    lr: Tensor
    t: Tensor
    scalars: dict[str, Tensor] = field(default_factory=dict)       # values before this step
    new_scalars: dict[str, Tensor] = field(default_factory=dict)   # values after this step


@dataclass
class _Built:
    """The graph state one ``updates()`` call created."""
    graph: Graph
    prefix: str
    params: list[Tensor]
    lr: Tensor
    step: Tensor
    scalars: dict[str, Tensor]              # optimizer-wide scalar state (e.g. NAdam's mu_product)
    slots: list[dict[str, Tensor]]          # per-parameter buffers, in the order of params

    def named_state(self) -> dict[str, Tensor]:
        """State tensors under their checkpoint keys (independent of the prefix)."""
        out: dict[str, Tensor] = {"step": self.step}
        out.update(self.scalars)
        for p, slots in zip(self.params, self.slots):
            for slot, t in slots.items():
                out[f"{p.name}/{slot}"] = t
        return out


def _check_hyper(name: str, value: float, low: float = 0.0, high: float | None = None,
                 open_high: bool = False) -> None:
    """torch.optim's range checks, with its messages."""
    if value < low or (high is not None and (value >= high if open_high else value > high)):
        raise ValueError(f"Invalid {name} value: {value}")


class Optimizer:
    """Base class. Subclasses set ``tag`` and implement ``_slots``, ``_rule`` and,
    if they keep optimizer-wide scalars, ``_scalar_init`` / ``_scalar_rule``."""

    tag = "opt"

    def __init__(self, lr: float) -> None:
        _check_hyper("learning rate", lr)
        self._lr = float(lr)
        self.initial_lr: float | None = None   # set by the first schedule (torch's group["initial_lr"])
        self._lr_tensors: list[Tensor] = []    # every lr parameter built, in any graph
        self._built: _Built | None = None
        self._pending_state: dict[str, Array] | None = None

    # -- hooks for subclasses ------------------------------------------------------------
    def _slots(self) -> tuple[str, ...]:
        """Names of the per-parameter buffers."""
        return ()

    def _slot_init(self, slot: str, value: Array) -> Array:
        """Initial value of a per-parameter buffer (zeros unless overridden)."""
        return np.zeros_like(value)

    def _scalar_init(self) -> dict[str, float]:
        """Optimizer-wide scalar state and its initial values."""
        return {}

    def _scalar_rule(self, scalars: dict[str, Tensor], t: Tensor) -> dict[str, Tensor]:
        """New values of the optimizer-wide scalars at step t."""
        return {}

    def _rule(self, p: Tensor, g: Tensor, slots: dict[str, Tensor],
              k: StepContext) -> tuple[Tensor, dict[str, Tensor]]:
        """Return (new parameter value, {slot: new buffer value}) for one parameter."""
        raise NotImplementedError

    def _hyper_repr(self) -> dict[str, object]:
        return {}

    # -- the learning rate ---------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate; setting it rewrites the graph's lr parameter in place, so
        functions compiled with this optimizer's updates use it without recompiling."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        value = float(value)
        _check_hyper("learning rate", value)
        self._lr = value
        for t in self._lr_tensors:
            t.value = np.asarray(value, dtype=t.dtype)

    # -- building the updates ------------------------------------------------------------
    def updates(self, loss: Tensor, params: Sequence[Tensor] | None = None,
                clip_norm: float | None = None, data_parallel: bool = False,
                bucket_bytes: int | None = None, sync_batch_norm: bool = False) -> list[tuple[Tensor, Tensor]]:
        """Symbolic (parameter, new value) pairs for one step on ``loss``.

        ``params``: the parameters to train (default: every trainable parameter that
        ``loss`` depends on). ``clip_norm``: clip the gradients by their global norm first
        (``torch.nn.utils.clip_grad_norm_`` semantics). ``data_parallel``: average the
        gradients over all MPI ranks (one allreduce, in buckets of at most
        ``bucket_bytes`` if given) before clipping and updating; ``sync_batch_norm``: also
        average the batch-norm running statistics over the ranks after every step (they stay
        per rank by default); see ``tensorforge.optim.data_parallel`` and ``tg.distributed``.
        """
        if data_parallel:
            from .data_parallel import data_parallel_updates
            return data_parallel_updates(self, loss, params, clip_norm, bucket_bytes, sync_batch_norm)
        if sync_batch_norm or bucket_bytes is not None:
            raise ValueError(f"{type(self).__name__}.updates: sync_batch_norm and bucket_bytes need "
                             "data_parallel=True")
        params = self._check_params(loss, params)
        grads = grad(loss, params)
        return self._build(params, grads, clip_norm)

    def apply_gradients(self, grads_and_params: Iterable[tuple[Tensor, Tensor]],
                        clip_norm: float | None = None) -> list[tuple[Tensor, Tensor]]:
        """Updates from precomputed gradients: an iterable of (parameter, gradient) pairs."""
        pairs = list(grads_and_params)
        if not pairs:
            raise ValueError("apply_gradients: no (parameter, gradient) pairs given")
        params = self._check_params(None, [p for p, _ in pairs])
        grads = []
        for p, g in pairs:
            if not isinstance(g, Tensor) or g.graph is not p.graph:
                raise TypeError(f"apply_gradients: the gradient of {p.name!r} must be a tensor of the "
                                f"parameter's graph, got {g!r}")
            if g.shape != p.shape:
                raise ValueError(f"apply_gradients: gradient of {p.name!r} has shape "
                                 f"{format_shape(g.shape)}, expected {format_shape(p.shape)}")
            grads.append(g if g.dtype == p.dtype else cast(g, p.dtype))
        return self._build(params, grads, clip_norm)

    def _check_params(self, loss: Tensor | None, params: Iterable[Tensor] | None) -> list[Tensor]:
        if loss is not None:
            if not isinstance(loss, Tensor):
                raise TypeError(f"{type(self).__name__}.updates: loss must be a Tensor, got {loss!r}")
            if loss.shape != ():
                raise ValueError(f"{type(self).__name__}.updates: the loss must be a scalar, got shape "
                                 f"{format_shape(loss.shape)} (reduce it first, e.g. tg.mean)")
            if params is None:
                ancestors = nx.ancestors(loss.graph.nx, loss.id)
                params = [p for p in loss.graph.parameters(trainable=True) if p.id in ancestors]
        params = list(params or [])
        if not params:
            raise ValueError(f"{type(self).__name__}: no parameters to optimize")
        graph = params[0].graph if loss is None else loss.graph
        seen: set[int] = set()
        for p in params:
            if not isinstance(p, Tensor) or p.op != "parameter":
                raise TypeError(f"{type(self).__name__}: {p!r} is not a parameter")
            if p.graph is not graph:
                raise ValueError(f"{type(self).__name__}: parameter {p.name!r} belongs to another graph")
            if np.dtype(p.dtype).kind != "f":
                raise TypeError(f"{type(self).__name__}: parameter {p.name!r} has dtype {p.dtype}; "
                                "only floating-point parameters can be optimized")
            if p.id in seen:
                raise ValueError(f"{type(self).__name__}: parameter {p.name!r} is listed twice")
            seen.add(p.id)
        return params

    def _state_names(self, prefix: str, params: Sequence[Tensor]) -> list[str]:
        names = [f"{prefix}/lr", f"{prefix}/step"] + [f"{prefix}/{s}" for s in self._scalar_init()]
        names += [f"{p.name}/{prefix}_{slot}" for p in params for slot in self._slots()]
        return names

    def _unique_prefix(self, graph: Graph, params: Sequence[Tensor]) -> str:
        """The tag, numbered if the graph already has one of the names it would give."""
        for k in range(10_000):
            prefix = self.tag if k == 0 else f"{self.tag}{k}"
            if not any(n in graph._names for n in self._state_names(prefix, params)):
                return prefix
        raise RuntimeError("could not find a free name prefix for the optimizer state")

    def _build(self, params: list[Tensor], grads: list[Tensor], clip_norm: float | None,
               built: _Built | None = None) -> list[tuple[Tensor, Tensor]]:
        if clip_norm is not None:
            grads = clip_by_global_norm(grads, clip_norm)
        built = built or self._create_state(params)
        dtype = built.lr.dtype
        t_new = built.step + 1.0
        new_scalars = self._scalar_rule(built.scalars, t_new)
        contexts: dict[str, StepContext] = {}

        def context(dt: str) -> StepContext:
            # rules see the scalars in their parameter's dtype (mixed float32/float64 models)
            if dt not in contexts:
                def c(x: Tensor) -> Tensor:
                    return x if dt == dtype else cast(x, dt)
                contexts[dt] = StepContext(c(built.lr), c(t_new), {k: c(v) for k, v in built.scalars.items()},
                                           {k: c(v) for k, v in new_scalars.items()})
            return contexts[dt]

        out: list[tuple[Tensor, Tensor]] = []
        for p, g, slots in zip(params, grads, built.slots):
            new_p, new_slots = self._rule(p, g, dict(slots), context(p.dtype))
            out.append((p, new_p))
            out += [(slots[name], value) for name, value in new_slots.items()]
        out += [(built.scalars[name], value) for name, value in new_scalars.items()]
        out.append((built.step, t_new))
        return out

    def _create_state(self, params: list[Tensor]) -> _Built:
        graph = params[0].graph
        prefix = self._unique_prefix(graph, params)
        dtype = params[0].dtype

        def state(name: str, value: Array) -> Tensor:
            return parameter(name, value, trainable=False, graph=graph)

        lr = state(f"{prefix}/lr", np.asarray(self._lr, dtype=dtype))
        step = state(f"{prefix}/step", np.zeros((), dtype=dtype))
        scalars = {k: state(f"{prefix}/{k}", np.asarray(v, dtype=dtype)) for k, v in self._scalar_init().items()}
        slots = [{s: state(f"{p.name}/{prefix}_{s}", np.asarray(self._slot_init(s, p.value), dtype=p.dtype))
                  for s in self._slots()} for p in params]
        self._lr_tensors.append(lr)
        self._built = _Built(graph, prefix, list(params), lr, step, scalars, slots)
        if self._pending_state is not None:
            pending, self._pending_state = self._pending_state, None
            self._load_built(pending)
        return self._built

    # -- state ---------------------------------------------------------------------------
    def state_parameters(self) -> list[Tensor]:
        """The non-trainable graph parameters holding this optimizer's state (lr, step
        count, buffers) as built by the last ``updates()`` call."""
        b = self._built
        if b is None:
            return []
        return [b.lr] + list(b.named_state().values())

    def state_dict(self) -> dict[str, Array]:
        """Copies of the state: "lr", "step", optimizer-wide scalars, and "<param>/<slot>"."""
        out = {"lr": np.asarray(self._lr, dtype=np.float64)}
        if self._built is not None:
            out.update({k: np.array(t.value) for k, t in self._built.named_state().items()})
        elif self._pending_state is not None:
            out.update({k: np.array(v) for k, v in self._pending_state.items()})
        return out

    def load_state_dict(self, state: Mapping[str, npt.ArrayLike]) -> None:
        """Restore a ``state_dict()``. Before ``updates()`` has run, the buffers are kept
        and written into the graph state when it is built."""
        arrays = {str(k): np.asarray(v) for k, v in state.items()}
        if "lr" not in arrays:
            raise KeyError(f"{type(self).__name__}.load_state_dict: the state has no 'lr' entry")
        rest = {k: v for k, v in arrays.items() if k != "lr"}
        if self._built is None:
            self._pending_state = rest
        else:
            self._load_built(rest)
        self.lr = float(arrays["lr"])

    def _load_built(self, state: dict[str, Array]) -> None:
        assert self._built is not None, "the optimizer state is not built yet"
        named = self._built.named_state()
        missing = sorted(set(named) - set(state))
        unexpected = sorted(set(state) - set(named))
        if missing or unexpected:
            raise KeyError(f"{type(self).__name__}.load_state_dict: state does not match the optimizer "
                           f"(missing: {missing}, unexpected: {unexpected})")
        for k, t in named.items():
            t.value = state[k]

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in {"lr": self._lr, **self._hyper_repr()}.items())
        return f"{type(self).__name__}({hyper})"


class _Decaying(Protocol):
    """What _decay reads off an optimizer (torch's maximize and weight_decay options)."""
    maximize: bool
    weight_decay: float


def _decay_grad(opt: _Decaying, p: Tensor, g: Tensor) -> Tensor:
    """torch's preamble: negate for maximize, then add L2 weight decay to the gradient."""
    return _decay(opt, p, g, None, decoupled=False)[1]


def _decay(opt: _Decaying, p: Tensor, g: Tensor, lr: Tensor | None, decoupled: bool) -> tuple[Tensor, Tensor]:
    """Negate g for maximize, then apply weight decay: coupled (L2, g += wd p) or decoupled
    (AdamW, p *= 1 - lr wd; for adaptive methods the two differ). Returns (p, g)."""
    if opt.maximize:
        g = -g
    if opt.weight_decay != 0:
        if decoupled:
            assert lr is not None, "decoupled weight decay needs the learning rate"
            p = p * (1.0 - lr * opt.weight_decay)
        else:
            g = g + opt.weight_decay * p
    return p, g
