"""Random graphs for differential testing: one seed -> one graph, built the same way in any float dtype.

``generate(seed, float_dtype, features)`` draws every decision from ``numpy.random.default_rng(seed)``
and never from anything that depends on ``float_dtype``, so the float64 build (the reference) and
the float32 build (what the backends run) are the same graph. Input data and constant values are
drawn in float64 and rounded to float32 before use, so both builds see the same numbers.

The op mix covers the elementwise ops of the registry (enumerated from ``OPS``, so a new op is
fuzzed without touching this file), broadcasting (static, and call-time through dimensions
declared ``None``), reductions, matmul, views, the softmax family, constants of every size, integer
and bool dtypes, and the gradient of a scalar reduction with respect to every float leaf (with, in
some graphs, an SGD update of the parameters).

Ops whose result jumps when an input moves by one rounding error (comparisons, sign, heaviside,
casts to int) only read *exact* values (leaves and what is computed from them without rounding),
so that float32 and float64 agree on which side of the jump a value is.

The ops are drawn in sequence, and the choice of outputs and loss comes from a separate stream:
the graph built with ``limit=k`` is the first k ops of the full graph, which is how a failing
graph is shrunk to a small repro.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from .. import ops as _ops
from ..autodiff import grad
from ..graph import Graph, Tensor, constant, dprint, parameter, placeholder
from ..ops.registry import OPS, ShapeError
from .shapes import _axes, _broadcastable, _reduced, _shape_of
from .view_ops import ViewOps

# Categories of generated code; a run enables a subset (see tensorforge.fuzz.KNOWN_BUGS).
FEATURES = (
    "elementwise", "scalars", "int", "bool", "where", "reduce", "softmax", "matmul", "reshape",
    "transpose", "slice", "broadcast_to", "concat", "expand_squeeze", "small_constants",
    "big_constants", "call_time_broadcast", "size_zero", "edge_values", "grad", "updates",
    "int_division", "int_pow", "int_scalar_promotion", "pow_scalar_base", "pow_edge", "sqrt_at_zero",
    "one_hot", "bad_labels", "deep_chain", "view_outputs",
    "signed_zero",
)
_VIEWS = ("reshape", "expand_dims", "squeeze", "transpose")   # transpose(x, identity) is a reshape

# Attributes for elementwise ops that need them (drawn per use); any other op is applied bare.
_ATTRS = {
    "leaky_relu": lambda rng: {"alpha": float(rng.choice([0.01, 0.2]))},
    "elu": lambda rng: {"alpha": float(rng.choice([1.0, 0.5]))},
}
# Elementwise ops with a restricted domain, made safe by a wrapper (unless edge values are on).
_POSITIVE = ("log", "sqrt")
# Unary ops that are discontinuous: only applied to exact values.
_JUMPY = ("sign", "heaviside", "floor", "ceil", "trunc", "round")
_COMPARE = ("lt", "le", "gt", "ge", "eq", "ne")
_SPECIAL_SIZES = (16, 17, 20, 1000)
_BASE_SHAPES = [(), (5,), (3, 4), (2, 3, 4), (4, 1), (1, 5), (16,), (17,), (20,), (4, 5), (2, 8), (3, 17),
                (1000,), (8, 125), (2, 2, 5)]


def registry_ops():
    """(unary, binary) elementwise op names of the registry, comparisons and where left out, and
    ops that do not map floats to floats (predicates, bitwise and logical ops) or that jump at
    every multiple of their divisor (floor_divide, remainder, fmod: float32 and float64 would
    disagree on the side of the jump)."""
    # index_in_range reads integer indices; stop_gradient's zero gradient differs from finite differences
    unary = sorted(n for n, o in OPS.items() if o.elementwise and o.n_inputs == 1
                   and n not in ("cast", "index_in_range", "stop_gradient") and _float_to_float(o))
    binary = sorted(n for n, o in OPS.items() if o.elementwise and o.n_inputs == 2 and n not in _COMPARE
                    and n not in _DISCONTINUOUS_BINARY and _float_to_float(o))
    return unary, binary


_DISCONTINUOUS_BINARY = ("floor_divide", "remainder", "fmod")


def _float_to_float(opdef) -> bool:
    from ..ops.registry import TensorType
    try:
        _, dtype = opdef.infer([TensorType((), "float32")] * opdef.n_inputs)
    except ShapeError:
        return False
    return str(dtype) == "float32"


@dataclass
class Value:
    """A tensor of the graph under construction, with its call-time shape."""
    t: Tensor
    shape: tuple                 # concrete shape at call time
    kind: str                    # "f", "i" or "b"
    exact: bool                  # equal in the float32 and float64 builds (no rounding so far)
    depth: int = 0


@dataclass
class Case:
    """One generated graph in one float dtype: what to compile and what to call it with."""
    seed: int
    dtype: str
    graph: Graph
    inputs: list                 # placeholders, in call order
    arrays: list                 # call-time values, same order
    outputs: list                # Tensors
    labels: list                 # a name per output ("out 0", "d loss / d x1", ...)
    updates: list = field(default_factory=list)    # (parameter, new value) pairs
    ops_used: int = 0

    def text(self) -> str:
        """The graph (tg.dprint of outputs and update values) and the call-time inputs."""
        buf = io.StringIO()
        dprint(self.outputs + [n for _, n in self.updates], file=buf)
        lines = [buf.getvalue().rstrip()]
        for t in self.graph.parameters():
            lines.append(f"parameter {t.name} = {_short(t.value)}")
        for t, a in zip(self.inputs, self.arrays):
            lines.append(f"input {t.name}: shape {a.shape} {a.dtype} = {_short(a)}")
        lines.append("outputs: " + ", ".join(f"%{t.id} ({lab})" for t, lab in zip(self.outputs, self.labels)))
        if self.updates:
            lines.append("updates: " + ", ".join(f"{p.name} <- %{n.id}" for p, n in self.updates))
        return "\n".join(lines)


def _short(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), threshold=24, precision=4, separator=", ").replace("\n", "")


class _Gen(ViewOps):
    """The state of one generation: the random stream, the pool of values, the leaves made."""

    def __init__(self, seed: int, dtype: str, features: frozenset):
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.on = features
        self.pool: list[Value] = []
        self.inputs: list[Tensor] = []
        self.arrays: list[np.ndarray] = []
        self.n_leaves = 0
        self.variables: list[Tensor] = []       # placeholders and parameters: what gradients are taken of
        self.edge = "edge_values" in features and self.rng.random() < 0.3
        self.unary, self.binary = registry_ops()

    # -- random helpers ----------------------------------------------------------------
    def coin(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    # -- leaves ------------------------------------------------------------------------
    def data(self, shape, kind: str) -> np.ndarray:
        """Values for a leaf, drawn in float64 and rounded to float32 (then to the build dtype)."""
        rng = self.rng
        if kind == "i":
            return np.asarray(rng.integers(-4, 6, size=shape).astype(np.int64))
        if kind == "b":
            return np.asarray(rng.random(shape) < 0.5)
        arr = rng.standard_normal(shape) * self.pick([1.0, 1.0, 3.0, 0.1])
        if self.coin(0.2):
            arr = np.round(arr)                 # repeated values: ties for max, ==, relu at 0
        if self.edge and arr.size:
            mask = rng.random(shape) < 0.15
            specials = np.array([0.0, np.inf, -np.inf, np.nan] + ([-0.0] if "signed_zero" in self.on else []))
            arr = np.where(mask, specials[rng.integers(len(specials), size=shape)], arr)
        return np.asarray(arr.astype(np.float32).astype(self.dtype))   # (0-d: an array, not a NumPy scalar)

    def leaf(self, shape, kind: str = "f", declare_none=True, allow_const=True) -> Value:
        """A new placeholder, parameter or constant of call-time ``shape``."""
        shape = tuple(int(d) for d in shape)
        size = int(np.prod(shape))
        what = self.rng.random()
        big_ok = "big_constants" in self.on or size <= 16
        small_ok = "small_constants" in self.on or size > 16
        name = f"x{self.n_leaves}"
        self.n_leaves += 1
        arr = self.data(shape, kind)
        if allow_const and what < 0.3 and big_ok and small_ok:
            t = constant(arr)
        elif what < 0.55 and kind == "f":
            name = f"p{self.n_leaves - 1}"
            t = parameter(name, arr)
            self.variables.append(t)
        else:
            static = tuple(None if declare_none and self.coin(0.4) and self._may_be_none(d) else d
                           for d in shape)
            t = placeholder(name, static, dtype=arr.dtype.name)
            self.inputs.append(t)
            self.arrays.append(arr)
            self.variables.append(t)
        return Value(t, shape, kind, exact=True)

    def _may_be_none(self, d: int) -> bool:
        if d == 1:
            return "call_time_broadcast" in self.on
        return d != 0 or "size_zero" in self.on

    def constant_of_size(self) -> Value:
        """A constant of one of the sizes that constant folding treats differently."""
        sizes = [n for n in _SPECIAL_SIZES if n <= 16 and "small_constants" in self.on
                 or n > 16 and "big_constants" in self.on]
        n = self.pick(sizes) if sizes else 1
        shape = self.pick([(n,), (n,)] + ([(4, n // 4)] if n % 4 == 0 else []))
        return Value(constant(self.data(shape, "f")), shape, "f", exact=True)

    def variant(self, shape) -> tuple:
        """A shape that broadcasts against ``shape``: some dims 1, maybe fewer leading dims."""
        out = [1 if self.coin(0.3) else d for d in shape]
        drop = int(self.rng.integers(len(out) + 1)) if out and self.coin(0.3) else 0
        return tuple(out[drop:])

    # -- choosing values ---------------------------------------------------------------
    def choose(self, kind: str = "f", exact: bool = False, pred=None) -> Value | None:
        cands = [v for v in self.pool if v.kind == kind and (v.exact or not exact) and (pred is None or pred(v))]
        if not cands:
            return None
        # favour recent values, so the graph is deep rather than wide
        weights = np.arange(1, len(cands) + 1, dtype=float) ** 2
        return cands[int(self.rng.choice(len(cands), p=weights / weights.sum()))]

    def partner(self, v: Value, kind: str | None = None) -> Value:
        """A value that broadcasts with ``v``: an existing one, or a fresh leaf."""
        kind = kind or v.kind
        if self.coin(0.5):
            w = self.choose(kind, pred=lambda w: _broadcastable(v.shape, w.shape))
            if w is not None:
                return w
        return self.leaf(self.variant(v.shape), kind)

    def add(self, t: Tensor, shape, kind: str, exact: bool, *parents: Value) -> Value:
        got = tuple(t.shape)
        if len(got) != len(shape) or any(g is not None and g != s for g, s in zip(got, shape)):
            raise AssertionError(f"fuzz generator: {t.op} made static shape {got}, expected {shape}")
        v = Value(t, tuple(shape), kind, exact, 1 + max((p.depth for p in parents), default=0))
        self.pool.append(v)
        return v

    # -- the op emitters: each adds one value (or returns None when it does not apply) --------
    def op_unary(self):
        name = self.pick(self.unary)
        v = self.choose("f", exact=name in _JUMPY)
        if v is None:
            return None
        x = v.t
        if name in _POSITIVE and not (self.edge and (name != "sqrt" or "sqrt_at_zero" in self.on)):
            x = _ops.abs(x) + float(self.pick([0.5, 1.0]))      # keep log/sqrt away from 0
        attrs = _ATTRS.get(name, lambda rng: {})(self.rng)
        exact = v.exact and name in ("neg", "abs", "relu") + _JUMPY
        return self.add(_ops.apply(name, [x], **attrs), v.shape, "f", exact, v)

    def op_binary(self):
        name = self.pick(self.binary)
        v = self.choose("f")
        if v is None:
            return None
        if "scalars" in self.on and self.coin(0.25):
            return self._binary_scalar(name, v)
        w = self.partner(v)
        a, b = (v, w) if self.coin(0.5) else (w, v)
        if name == "pow" and "pow_scalar_base" not in self.on:
            # a base or exponent that is broadcast anywhere upstream (even through a (1,) tensor
            # and broadcast_to) or 0-d meets the triton bug of scalar bases and 0-d exponents:
            # pow of fresh full-shape placeholders only, added to v
            if not v.shape:
                return None
            a, b = (self.leaf(v.shape, "f", declare_none=False, allow_const=False) for _ in range(2))
            p = _ops.pow(_ops.abs(_ops.tanh(a.t)) + 0.5, _ops.tanh(b.t) * 2.0)   # finite even at +-inf
            return self.add(v.t + p, v.shape, "f", False, v, a, b)
        x, y = a.t, b.t
        if name == "div" and not self.edge:
            y = _ops.abs(y) + 0.5                               # no division by ~0
        if name == "pow":
            if not (self.edge and "pow_edge" in self.on):
                x = _ops.abs(x) + 0.5
            if not self.edge:
                y = _ops.tanh(y) * 2.0                          # moderate exponents
        shape = np.broadcast_shapes(a.shape, b.shape)
        exact = a.exact and b.exact and name in ("maximum", "minimum")
        return self.add(_ops.apply(name, [x, y]), shape, "f", exact, a, b)

    def _binary_scalar(self, name: str, v: Value):
        c = float(self.pick([2.0, 0.5, -1.5, 3.0, 1.0, 0.0]))
        x = v.t
        if name == "pow":
            if self.coin(0.5) and "pow_scalar_base" in self.on:
                return self.add(float(self.pick([2.0, 0.5])) ** _ops.tanh(x), v.shape, "f", False, v)
            if not self.edge or "pow_edge" not in self.on:
                x = _ops.abs(x) + 0.5
            return self.add(x ** self.pick([2.0, 3.0, 0.5, -1.0, 1.0]), v.shape, "f", False, v)
        if name == "div" and c == 0.0:
            c = 4.0
        t = _ops.apply(name, [x, c] if self.coin(0.6) else [c, x]) if name != "div" else (
            x / c if self.coin(0.6) else c / (_ops.abs(x) + 0.5))
        return self.add(t, v.shape, "f", False, v)

    def op_where(self):
        c = self.op_compare(record=False)
        if c is None:
            return None
        a = self.partner(c, "f")
        b = self.partner(a, "f")
        if not _broadcastable(np.broadcast_shapes(c.shape, a.shape), b.shape):
            b = self.leaf(self.variant(np.broadcast_shapes(c.shape, a.shape)), "f")
        shape = np.broadcast_shapes(c.shape, a.shape, b.shape)
        return self.add(_ops.where(c.t, a.t, b.t), shape, "f", a.exact and b.exact, c, a, b)

    def op_compare(self, record=True):
        kind = "i" if "int" in self.on and self.coin(0.3) else "f"
        v = self.choose(kind, exact=True)
        if v is None:
            return None
        w = self.partner(v)
        if not w.exact:
            w = self.leaf(self.variant(v.shape), kind)
        t = _ops.apply(self.pick(_COMPARE), [v.t, w.t])
        shape = np.broadcast_shapes(v.shape, w.shape)
        val = Value(t, shape, "b", True, 1 + max(v.depth, w.depth))
        if record:
            self.pool.append(val)
        return val

    def op_bool(self):
        """Bool values: cast to float (a mask), or a mean of bools (an accuracy)."""
        v = self.choose("b") or self.op_compare()
        if v is None:
            return None
        if self.coin(0.5):
            return self.add(_ops.cast(v.t, self.dtype), v.shape, "f", True, v)
        return self.add(_ops.cast(v.t, "int64"), v.shape, "i", True, v)

    def op_int(self):
        """Integer arithmetic (exact), and casts between int and float."""
        v = self.choose("i")
        if v is None:
            v = self.leaf(self.pick(_BASE_SHAPES[:6]), "i")
            self.pool.append(v)
        roll = self.rng.random()
        if roll < 0.25:
            return self.add(_ops.cast(v.t, self.dtype), v.shape, "f", True, v)
        if roll < 0.35:
            f = self.choose("f", exact=True, pred=lambda f: not self.edge)
            if f is not None:                       # float -> int truncates: exact inputs only
                return self.add(_ops.cast(f.t, "int64"), f.shape, "i", True, f)
        if roll < 0.45:
            return self.add(_ops.apply(self.pick(["neg", "abs", "sign"]), [v.t]), v.shape, "i", True, v)
        if roll < 0.55 and "int_scalar_promotion" in self.on:
            k = int(self.pick([2, -3, 0]))
            t = self.pick([lambda: v.t * k, lambda: k - v.t, lambda: _ops.minimum(v.t, k),
                           lambda: _ops.where(v.t > 0, v.t, k), lambda: _ops.min(v.t)])()
            return self.add(t, tuple(t.shape) if t.ndim == 0 else v.shape, "i", True, v)
        w = self.partner(v)
        shape = np.broadcast_shapes(v.shape, w.shape)
        ops = ["add", "sub", "mul", "maximum", "minimum"]
        if "int_division" in self.on:
            ops.append("div")
        if "int_pow" in self.on:
            ops.append("pow")
        name = self.pick(ops)
        y = _ops.abs(w.t) if name == "pow" else w.t
        if name == "div":
            y = _ops.abs(y) + 1
            return self.add(_ops.apply(name, [v.t, y]), shape, "f", False, v, w)
        return self.add(_ops.apply(name, [v.t, y]), shape, "i", True, v, w)

    def op_reduce(self):
        kind = "i" if "int" in self.on and self.coin(0.2) else "f"
        v = self.choose(kind)
        if v is None:
            return None
        name = self.pick(["sum", "mean", "max", "min"])
        if not v.shape or self.coin(0.25):
            axis = None
        else:
            k = int(self.rng.integers(1, len(v.shape) + 1))
            axes = sorted(int(a) for a in self.rng.choice(len(v.shape), size=k, replace=False))
            axis = axes[0] - len(v.shape) * int(self.coin(0.3)) if len(axes) == 1 else tuple(axes)
        if name in ("max", "min") and any(v.shape[a] == 0 for a in _axes(axis, len(v.shape))):
            return None          # no identity: a ShapeError on every backend (tests/test_trust_crash.py)
        keep = self.coin(0.4)
        t = getattr(_ops, name)(v.t, axis=axis, keepdims=keep)
        shape = _reduced(v.shape, axis, keep)
        out_kind = "f" if name == "mean" else kind
        return self.add(t, shape, out_kind, v.exact and name in ("max", "min") or kind == "i" and name != "mean", v)

    def op_softmax(self):
        v = self.choose("f", pred=lambda v: len(v.shape) >= 1 and 0 not in v.shape)
        if v is None:
            return None
        axis = int(self.rng.integers(-len(v.shape), len(v.shape)))
        name = self.pick(["softmax", "log_softmax", "logsumexp"])
        if name == "logsumexp":
            keep = self.coin(0.4)
            return self.add(_ops.logsumexp(v.t, axis=axis, keepdims=keep), _reduced(v.shape, axis, keep), "f",
                            False, v)
        return self.add(getattr(_ops, name)(v.t, axis=axis), v.shape, "f", False, v)

    def op_matmul(self):
        v = self.choose("f", pred=lambda v: len(v.shape) >= 1)
        if v is None:
            return None
        k = v.shape[-1]
        n = int(self.pick([1, 3, 4, 16, 17]))
        if len(v.shape) == 1:
            w = self.leaf(self.pick([(k,), (k, n)]), "f")
        else:
            w = self.leaf(self.pick([(k, n), v.shape[:-2] + (k, n), (k,)]), "f")
        left = self.coin(0.7) or len(w.shape) == 1
        if left:
            out = np.matmul(np.zeros(v.shape), np.zeros(w.shape)).shape
            return self.add(_ops.matmul(v.t, w.t), out, "f", False, v, w)
        u = self.leaf((n,) + v.shape[-2:-1] if len(v.shape) >= 2 else (n, k), "f")
        out = np.matmul(np.zeros(u.shape), np.zeros(v.shape)).shape
        return self.add(_ops.matmul(u.t, v.t), out, "f", False, u, v)

    def op_constant(self):
        """A constant of a special size: folded alone (constant-only subgraph), or met with a value."""
        c = self.constant_of_size()
        if self.coin(0.4):
            c2 = self.constant_of_size()
            if _broadcastable(c.shape, c2.shape):
                self.pool.append(c)
                return self.add(c.t * c2.t + 1.0, np.broadcast_shapes(c.shape, c2.shape), "f", False, c, c2)
        v = self.choose("f", pred=lambda v: _broadcastable(v.shape, c.shape))
        if v is None:
            self.pool.append(c)
            return self.add(_ops.tanh(c.t), c.shape, "f", False, c)
        return self.add(v.t + c.t if self.coin(0.5) else v.t * c.t, np.broadcast_shapes(v.shape, c.shape), "f",
                        False, v, c)

    def op_one_hot(self):
        v = self.choose("i", pred=lambda v: len(v.shape) <= 2 and v.depth == 0)
        if v is None:
            return None
        depth = 6                                   # leaves hold -4..5
        labels = v.t
        if "bad_labels" not in self.on:
            labels = _ops.abs(labels)
        return self.add(_ops.one_hot(labels, depth, dtype=self.dtype), v.shape + (depth,), "f", True, v)

    def _kind(self) -> str:
        return "i" if "int" in self.on and self.coin(0.15) else "f"


# the op mix: (feature that enables it, emitter, weight)
_MIX = [
    ("elementwise", "op_unary", 6), ("elementwise", "op_binary", 6), ("where", "op_where", 1),
    ("bool", "op_compare", 0.5), ("bool", "op_bool", 0.7), ("int", "op_int", 1.5), ("reduce", "op_reduce", 2),
    ("softmax", "op_softmax", 1), ("matmul", "op_matmul", 1), ("reshape", "op_reshape", 1),
    ("transpose", "op_transpose", 1), ("slice", "op_slice", 1.2), ("broadcast_to", "op_broadcast_to", 0.6),
    ("concat", "op_concat", 0.8), ("expand_squeeze", "op_expand_squeeze", 0.5),
    ("small_constants", "op_constant", 0.8), ("big_constants", "op_constant", 0.8), ("one_hot", "op_one_hot", 0.3),
]


def generate(seed: int, dtype: str = "float32", features=FEATURES, max_nodes: int = 12,
             limit: int | None = None) -> Case:
    """The graph of ``seed`` built with float dtype ``dtype``, using only ``features``.

    ``max_nodes`` bounds the number of ops drawn (the count itself is random); ``limit`` cuts
    the sequence after that many ops (a prefix of the same graph, for shrinking).
    """
    features = frozenset(features)
    sizes = np.random.default_rng([seed, 1])          # a stream of its own: prefix-stable
    n_ops = int(sizes.integers(1, max(2, max_nodes + 1)))
    if limit is not None:
        n_ops = min(n_ops, limit)
    g = Graph(f"fuzz_{seed}")
    with g:
        gen = _Gen(seed, dtype, features)
        _start(gen)
        mix = [(getattr(gen, fn), w) for feat, fn, w in _MIX if feat in features]
        weights = np.array([w for _, w in mix])
        done = 0
        for _ in range(8 * n_ops):                    # emitters that do not apply are drawn again
            if done >= n_ops:
                break
            emit = mix[int(gen.rng.choice(len(mix), p=weights / weights.sum()))][0]
            try:
                if emit() is not None:
                    done += 1
            except ShapeError as e:                   # the generator asked for something invalid
                raise AssertionError(f"fuzz generator built an invalid op (seed {seed}): {e}") from e
        if "deep_chain" in features and gen.coin(0.05):
            _deep_chain(gen)
        case = _finish(gen, seed, np.random.default_rng([seed, 2]))
    case.ops_used = done
    return case


def _start(gen: _Gen) -> None:
    base = gen.pick(_BASE_SHAPES)
    if "size_zero" in gen.on and gen.coin(0.1):
        base = base[:-1] + (0,) if base else (0,)
    gen.pool.append(gen.leaf(base, "f", allow_const=False))
    if gen.coin(0.6):
        gen.pool.append(gen.leaf(gen.variant(base), "f"))
    if "int" in gen.on and gen.coin(0.3):
        gen.pool.append(gen.leaf(gen.variant(base), "i"))


def _deep_chain(gen: _Gen) -> None:
    v = gen.pool[-1] if gen.pool[-1].kind == "f" else gen.choose("f")
    t = v.t
    for i in range(300):
        t = _ops.tanh(t) * 0.9 + 0.01 * i
    gen.add(t, v.shape, "f", False, v)


def _finish(gen: _Gen, seed: int, rng: np.random.Generator) -> Case:
    """Outputs (the last value and a few others), the loss, its gradients and updates."""
    pool = [v for v in gen.pool if v.t.op not in ("placeholder", "parameter", "constant")] or gen.pool
    chosen = [pool[-1]] + [pool[int(i)] for i in rng.choice(len(pool), size=min(2, len(pool)), replace=False)]
    outs = list({v.t.id: v for v in chosen}.values())
    if "view_outputs" not in gen.on and len(outs) > 1:     # a reshape of another output, returned too
        outs = [v for v in outs if v.t.op not in _VIEWS] or outs[:1]
    outputs = [v.t for v in outs]
    labels = [f"out {i}" for i in range(len(outputs))]
    updates = []
    floats = [v for v in outs if v.kind == "f"]
    if "grad" in gen.on and floats:
        o = floats[int(rng.integers(len(floats)))].t
        style = int(rng.integers(4))
        if style == 3 and 0 in _shape_of(o, outs):
            style = 0
        loss = [lambda: _ops.sum(o), lambda: _ops.mean(o * o), lambda: _ops.sum(_ops.tanh(o)),
                lambda: _ops.max(o)][style]()
        if o.ndim == 0 and style == 0:
            loss = o * 1.5
        leaves = [t for t in gen.variables if np.dtype(t.dtype).kind == "f"]
        if leaves:
            grads = grad(loss, leaves)
            outputs += [loss] + list(grads)
            labels += ["loss"] + [f"d loss / d {t.name}" for t in leaves]
            if "updates" in gen.on and rng.random() < 0.3:
                updates = [(t, t - 0.1 * gt) for t, gt in zip(leaves, grads) if t.op == "parameter"]
    return Case(seed, gen.dtype, outputs[0].graph, gen.inputs, gen.arrays, outputs, labels, updates)
