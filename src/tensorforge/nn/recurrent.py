"""Recurrent layers as torch has them: GRUCell, LSTMCell, and GRU / LSTM unrolled over the sequence.

Parameters carry torch's names and layouts, so ``from_torch_state_dict`` loads
them as they are: a cell has ``weight_ih`` (G·H, input_size), ``weight_hh``
(G·H, H), ``bias_ih`` and ``bias_hh`` (G·H), with G = 3 gates (r, z, n) for the
GRU and 4 (i, f, g, o) for the LSTM; layer k of a GRU/LSTM has ``weight_ih_l{k}``
and so on. Everything starts U(-1/√H, 1/√H), torch's initialisation.

The multi-step layers unroll the recurrence in the graph over the (known)
sequence length: one set of ops per step, so gradients are backpropagation
through time by ordinary autodiff, and the elementwise gate math fuses. The input
projection of every step is one matmul done before the loop.
"""
from __future__ import annotations

import math
import weakref
from typing import Callable, Optional, Sequence

from .. import init as initializers
from .. import ops
from .._typing import Array
from ..graph import Graph, Tensor, format_shape
from ..ops.registry import ShapeError
from .layers import _param_dtype
from .module import Module, ParamSpec, _known_dims

__all__ = ["GRUCell", "LSTMCell", "GRU", "LSTM"]

# one layer-direction's state going in: (h,) for a GRU, (h, c) for an LSTM, None entries or None
# for zeros; coming out every entry is a tensor
_StateIn = Optional[tuple[Optional[Tensor], ...]]
_State = tuple[Tensor, ...]


def _t(w: Tensor) -> Tensor:
    return ops.transpose(w, (1, 0))


def _hidden_projection(h: Tensor | None, w_hh: Tensor, b_hh: Tensor | None) -> Tensor | None:
    """h W_hhᵀ + b_hh; a None state is the zero state (nothing to multiply: the bias, or None)."""
    if h is None:
        return b_hh
    hw = ops.matmul(h, _t(w_hh))
    return hw if b_hh is None else hw + b_hh


def _gru_step(xw: Tensor, h: Tensor | None, w_hh: Tensor, b_hh: Tensor | None, hidden: int) -> Tensor:
    """One GRU step given the input projection ``xw`` = x W_ihᵀ + b_ih: torch's equations
    r = σ(.. + W_hr h + b_hr), z = σ(..), n = tanh(x_n + r ⊙ (W_hn h + b_hn)), h' = (1 - z) ⊙ n + z ⊙ h.
    ``h=None`` is the zero state (no ops spent on zeros)."""
    hw = _hidden_projection(h, w_hh, b_hh)
    H = hidden
    if hw is None:
        r = ops.sigmoid(xw[..., :H])
        z = ops.sigmoid(xw[..., H:2 * H])
        n = ops.tanh(xw[..., 2 * H:])
    else:
        r = ops.sigmoid(xw[..., :H] + hw[..., :H])
        z = ops.sigmoid(xw[..., H:2 * H] + hw[..., H:2 * H])
        n = ops.tanh(xw[..., 2 * H:] + r * hw[..., 2 * H:])
    out = (1.0 - z) * n
    return out if h is None else out + z * h


def _lstm_step(xw: Tensor, h: Tensor | None, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None,
               hidden: int) -> tuple[Tensor, Tensor]:
    """One LSTM step: gates = xw + h W_hhᵀ + b_hh split (i, f, g, o); c' = f⊙c + i⊙g, h' = o⊙tanh(c').
    None states are zero states."""
    hw = _hidden_projection(h, w_hh, b_hh)
    gates = xw if hw is None else xw + hw
    H = hidden
    i, f = ops.sigmoid(gates[..., :H]), ops.sigmoid(gates[..., H:2 * H])
    g, o = ops.tanh(gates[..., 2 * H:3 * H]), ops.sigmoid(gates[..., 3 * H:])
    c = i * g if c is None else f * c + i * g
    return o * ops.tanh(c), c


class _Recurrent(Module):
    """Parameter creation shared by the cells and the layers."""

    gates = 3
    # set by the subclasses' constructors
    hidden_size: int
    bias: bool

    def _uniform(self, shape: tuple[int, ...], seed: int) -> Callable[[], Array]:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0.0
        return lambda: initializers.uniform(shape, -bound, bound, seed=seed)

    def _layer_params(self, graph: Graph, dtype: str, suffix: str, in_size: int, seed: int) -> dict[str, Tensor]:
        G, H = self.gates * self.hidden_size, self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (G, in_size), "weight_hh": (G, H)}
        if self.bias:
            shapes.update({"bias_ih": (G,), "bias_hh": (G,)})
        out: dict[str, Tensor] = {}
        for k, (local, shape) in enumerate(shapes.items()):
            spec = ParamSpec(shape, self._uniform(shape, seed * 16 + k), decay=local.startswith("weight"))
            out[local] = self.param(graph, local + suffix, spec, dtype)
        return out

    def _finish(self, graph: Graph) -> None:
        self._latest = weakref.ref(graph)


class GRUCell(_Recurrent):
    """One GRU step, as torch.nn.GRUCell: ``cell(x, h=None)`` with x (N, input_size) and h (N, hidden_size)
    (zeros when None) returns h'."""

    kind, gates = "grucell", 3

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, seed: int = 0,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.input_size, self.hidden_size, self.bias, self.seed = int(input_size), int(hidden_size), bool(bias), seed

    def _check(self, x: Tensor, h: Tensor | None) -> None:
        if len(x.shape) != 2 or x.shape[1] not in (None, self.input_size):
            raise ShapeError(f"{self!r}: input must be (N, {self.input_size}), got {format_shape(x.shape)}")
        if h is not None and (len(h.shape) != 2 or h.shape[1] not in (None, self.hidden_size)):
            raise ShapeError(f"{self!r}: hidden state must be (N, {self.hidden_size}), got {format_shape(h.shape)}")

    # torch's (x, h) signature, unlike Module.__call__'s (x, training)
    def __call__(self, x: Tensor, h: Tensor | None = None,  # type: ignore[override]
                 training: bool | None = None) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__} expects a graph Tensor, got {type(x).__name__}")
        self._check(x, h)
        p = self._layer_params(x.graph, _param_dtype(x), "", self.input_size, self.seed)
        xw = ops.matmul(x, _t(p["weight_ih"]))
        if self.bias:
            xw = xw + p["bias_ih"]
        out = self._step(xw, h, p)
        self._finish(x.graph)
        return out

    def _step(self, xw: Tensor, h: Tensor | None, p: dict[str, Tensor]) -> Tensor:
        return _gru_step(xw, h, p["weight_hh"], p.get("bias_hh"), self.hidden_size)

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return self(x)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class LSTMCell(GRUCell):
    """One LSTM step, as torch.nn.LSTMCell: ``cell(x, (h, c)=None)`` returns (h', c')."""

    kind, gates = "lstmcell", 4

    # torch's (x, (h, c)) -> (h', c'), unlike GRUCell's (x, h) -> h'
    def __call__(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None,  # type: ignore[override]
                 training: bool | None = None) -> tuple[Tensor, Tensor]:
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__} expects a graph Tensor, got {type(x).__name__}")
        h, c = (None, None) if hx is None else hx
        self._check(x, h)
        self._check(x, c)
        p = self._layer_params(x.graph, _param_dtype(x), "", self.input_size, self.seed)
        xw = ops.matmul(x, _t(p["weight_ih"]))
        if self.bias:
            xw = xw + p["bias_ih"]
        out = _lstm_step(xw, h, c, p["weight_hh"], p.get("bias_hh"), self.hidden_size)
        self._finish(x.graph)
        return out

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return self(x)[0]


class GRU(_Recurrent):
    """A multi-layer GRU unrolled over the sequence, as torch.nn.GRU (``bidirectional`` too: the layer's
    output concatenates the forward and backward states, (N, L, 2H), parameters ``*_reverse``).

    ``gru(x, h0=None)`` with x (N, L, input_size) when ``batch_first`` (else (L, N, input_size)) and
    h0 (num_layers, N, hidden_size) (zeros when None) returns ``(output, h_n)``: the last layer's
    hidden state at every step (N, L, H) (or (L, N, H)) and every layer's last state
    (num_layers·directions, N, H); h0 has that shape too. ``dropout`` applies between layers in training mode, as torch does.
    """

    kind, gates = "gru", 3

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, seed: int = 0,
                 name: str | None = None) -> None:
        super().__init__(name)
        if int(num_layers) < 1:
            raise ValueError(f"{type(self).__name__}: num_layers must be >= 1, got {num_layers}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1), got {dropout}")
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.dropout, self.seed = bool(bias), bool(batch_first), float(dropout), seed
        self.bidirectional = bool(bidirectional)
        self.directions = 2 if self.bidirectional else 1

    def _sequence(self, x: Tensor) -> Tensor:
        if len(x.shape) != 3 or x.shape[2] not in (None, self.input_size):
            layout = "(N, L, input_size)" if self.batch_first else "(L, N, input_size)"
            raise ShapeError(f"{self!r}: input must be {layout} with input_size={self.input_size}, got "
                             f"{format_shape(x.shape)}")
        if not self.batch_first:
            x = ops.transpose(x, (1, 0, 2))
        if x.shape[1] is None:
            raise ShapeError(f"{self!r}: the sequence length must be known to unroll, got {format_shape(x.shape)}")
        return x

    def _initial_states(self, x: Tensor, given: Tensor | None, what: str) -> list[Tensor | None]:
        if given is None:
            return [None] * (self.num_layers * self.directions)
        count = self.num_layers * self.directions
        if len(given.shape) != 3 or given.shape[0] != count or given.shape[2] != self.hidden_size:
            raise ShapeError(f"{self!r}: {what} must be ({count}, N, {self.hidden_size}), got "
                             f"{format_shape(given.shape)}")
        return [given[k] for k in range(count)]

    def _run(self, x: Tensor, states: Sequence[_StateIn], training: bool) -> tuple[Tensor, list[_State]]:
        """Unroll every layer (and direction); ``states``: per layer and direction (torch's order
        l0, l0_reverse, l1, ...), a tuple of initial state tensors or None."""
        finals: list[_State] = []
        for layer in range(self.num_layers):
            in_size = self.input_size if layer == 0 else self.hidden_size * self.directions
            seqs: list[Tensor] = []
            for d in range(self.directions):
                k = layer * self.directions + d
                seq, state = self._direction(x, states[k], layer, d, in_size)
                seqs.append(seq)
                finals.append(state)
            x = seqs[0] if len(seqs) == 1 else ops.concat(seqs, axis=2)
            if self.dropout and training and layer < self.num_layers - 1:
                x = ops.dropout(x, p=self.dropout, seed=self.seed * 7919 + layer, training=True)
        if not self.batch_first:
            x = ops.transpose(x, (1, 0, 2))
        return x, finals

    def _direction(self, x: Tensor, state: _StateIn, layer: int, reverse: int, in_size: int) -> tuple[Tensor, _State]:
        """One layer in one direction over the whole sequence: (N, L, H) outputs in time order, last state."""
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        seed = self.seed + 1000 * layer + 500 * reverse
        p = self._layer_params(x.graph, _param_dtype(x), suffix, in_size, seed)
        xw = ops.matmul(x, _t(p["weight_ih"]))                # all steps at once: (N, L, G·H)
        if self.bias:
            xw = xw + p["bias_ih"]
        (length,) = _known_dims(x.shape[1:2])                # known: _sequence
        outs: list[Tensor] = []                               # in the order built
        last: _State = ()
        for t in (reversed(range(length)) if reverse else range(length)):
            last = self._cell(xw[:, t], state, p, x)
            state = last
            outs.append(ops.expand_dims(last[0], 1))
        if reverse:
            outs.reverse()                                    # time order
        return (outs[0] if length == 1 else ops.concat(outs, axis=1)), last

    def _cell(self, xw: Tensor, state: _StateIn, p: dict[str, Tensor], x: Tensor) -> _State:
        h = None if state is None else state[0]
        return (_gru_step(xw, h, p["weight_hh"], p.get("bias_hh"), self.hidden_size),)

    @staticmethod
    def _stack(ts: Sequence[Tensor]) -> Tensor:
        return ops.concat([ops.expand_dims(t, 0) for t in ts], axis=0)

    # torch's (x, h0) -> (output, h_n), unlike Module.__call__'s (x, training) -> Tensor
    def __call__(self, x: Tensor, h0: Tensor | None = None,  # type: ignore[override]
                 training: bool | None = None) -> tuple[Tensor, Tensor]:
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__} expects a graph Tensor, got {type(x).__name__}")
        training = self.training if training is None else bool(training)
        x = self._sequence(x)
        states: list[_StateIn] = [None if h is None else (h,) for h in self._initial_states(x, h0, "h0")]
        out, finals = self._run(x, states, training)
        self._finish(x.graph)
        return out, self._stack([s[0] for s in finals])

    def forward(self, x: Tensor, training: bool) -> Tensor:
        return self(x, training=training)[0]

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}" + (", bidirectional=True" if self.bidirectional else ""))


class LSTM(GRU):
    """A multi-layer LSTM unrolled over the sequence, as torch.nn.LSTM (no proj_size).

    ``lstm(x, (h0, c0)=None)`` returns ``(output, (h_n, c_n))`` with torch's shapes (see GRU).
    """

    kind, gates = "lstm", 4

    def _cell(self, xw: Tensor, state: _StateIn, p: dict[str, Tensor], x: Tensor) -> _State:
        state = (None, None) if state is None else state
        return _lstm_step(xw, state[0], state[1], p["weight_hh"], p.get("bias_hh"), self.hidden_size)

    # torch's (x, (h0, c0)) -> (output, (h_n, c_n)), unlike GRU's (x, h0) -> (output, h_n)
    def __call__(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None,  # type: ignore[override]
                 training: bool | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__} expects a graph Tensor, got {type(x).__name__}")
        training = self.training if training is None else bool(training)
        x = self._sequence(x)
        h0, c0 = (None, None) if hx is None else hx
        hs, cs = self._initial_states(x, h0, "h0"), self._initial_states(x, c0, "c0")
        states: list[_StateIn] = [None if h is None and c is None else (h, c) for h, c in zip(hs, cs)]
        if any(s is not None and (s[0] is None or s[1] is None) for s in states):
            raise ValueError(f"{self!r}: give both h0 and c0, or neither")
        out, finals = self._run(x, states, training)
        self._finish(x.graph)
        return out, (self._stack([s[0] for s in finals]), self._stack([s[1] for s in finals]))
