"""The graph: interning (CSE), ordered inputs, default-graph handling, names,
the text form (print(g), tg.dprint), leaves, and the Tensor operators.
"""
from __future__ import annotations

import io
import re
import threading

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.graph import format_shape


def run(inputs, outputs, *arrays):
    return tg.compile(inputs, outputs)(*arrays)


# ---- interning / CSE ---------------------------------------------------------------------

def test_same_expression_twice_is_the_same_node():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,))
        a = tg.tanh(x * 2.0 + 1.0)
        n = len(g)
        b = tg.tanh(x * 2.0 + 1.0)
    assert a.same(b) and a.id == b.id
    assert len(g) == n  # nothing was added the second time


def test_different_attributes_or_operand_order_are_different_nodes():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (2, 3))
        y = tg.placeholder("y", (2, 3))
    assert not tg.sum(x, 0).same(tg.sum(x, 1))
    assert not tg.sum(x, 0).same(tg.sum(x, 0, keepdims=True))
    assert not (x - y).same(y - x)
    assert tg.leaky_relu(x, 0.1).same(tg.leaky_relu(x, 0.1))
    assert tg.sum(x, (0, 1)).same(tg.sum(x, [0, 1]))  # lists and tuples of axes intern alike


def test_equal_small_constants_are_shared_and_different_dtypes_are_not():
    g = tg.Graph()
    with g:
        a, b = tg.constant(2.0), tg.constant(2.0)
        c = tg.constant(np.float64(2.0), dtype="float64")
        big1, big2 = tg.constant(np.zeros(100)), tg.constant(np.zeros(100))
        big3 = tg.constant(np.ones(100))
    assert a.same(b) and not a.same(c)
    assert big1.same(big2) and not big1.same(big3)  # large constants are interned by a digest
    assert a.dtype == "float32" and c.dtype == "float64"


def test_placeholders_and_parameters_are_never_interned():
    g = tg.Graph()
    with g:
        p = tg.parameter("p", np.zeros(2))
        q = tg.parameter("q", np.zeros(2))
        x = tg.placeholder("x", (2,))
        y = tg.placeholder("y", (2,))
    assert len({p.id, q.id, x.id, y.id}) == 4


def test_x_times_x_keeps_ordered_inputs():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,))
        y = tg.placeholder("y", (3,))
        sq = x * x
        d = y / x
    assert g.node(sq.id)["inputs"] == (x.id, x.id)
    assert [t.id for t in sq.inputs] == [x.id, x.id]
    assert g.node(d.id)["inputs"] == (y.id, x.id)
    assert set(g.nx.predecessors(sq.id)) == {x.id}
    (got,) = run([x, y], [d], np.array([1, 2, 4], np.float32), np.array([2, 2, 2], np.float32))
    np.testing.assert_allclose(got, [2.0, 1.0, 0.5])


# ---- the default graph ---------------------------------------------------------------------

def test_with_graph_makes_it_the_default_and_nests():
    outer, inner = tg.Graph("outer"), tg.Graph("inner")
    base = tg.get_default_graph()
    with outer:
        assert tg.get_default_graph() is outer
        a = tg.placeholder("a", (2,))
        with inner:
            assert tg.get_default_graph() is inner
            b = tg.placeholder("b", (2,))
        assert tg.get_default_graph() is outer
        c = tg.constant(1.0)
    assert tg.get_default_graph() is base
    assert a.graph is outer and b.graph is inner and c.graph is outer
    assert (a + 1.0).graph is outer  # ops follow their operands, not the current default


def test_default_graph_is_restored_after_an_exception():
    g = tg.Graph()
    base = tg.get_default_graph()
    with pytest.raises(RuntimeError):
        with g:
            raise RuntimeError("boom")
    assert tg.get_default_graph() is base


def test_default_graph_is_per_thread():
    g = tg.Graph()
    seen = []
    with g:
        t = threading.Thread(target=lambda: seen.append(tg.get_default_graph()))
        t.start()
        t.join()
    assert seen[0] is not g


def test_mixing_graphs_is_an_error():
    g1, g2 = tg.Graph("one"), tg.Graph("two")
    with g1:
        a = tg.placeholder("a", (2,))
    with g2:
        b = tg.placeholder("b", (2,))
    with pytest.raises(ValueError, match="different graphs"):
        a + b


# ---- names ---------------------------------------------------------------------------------

def test_placeholder_and_parameter_names_are_unique():
    g = tg.Graph()
    with g:
        tg.placeholder("x", (2,))
        tg.parameter("w", np.zeros(2))
        with pytest.raises(ValueError, match="already has a node named 'x'"):
            tg.placeholder("x", (3,))
        with pytest.raises(ValueError, match="already has a node named 'x'"):
            tg.parameter("x", np.zeros(2))
    assert g.by_name("w").op == "parameter"
    with pytest.raises(KeyError, match="no placeholder or parameter named 'nope'"):
        g.by_name("nope")


def test_op_nodes_get_distinct_generated_names():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (2,))
        nodes = [tg.exp(x), tg.log(x), x + x, x * x]
    names = [t.name for t in nodes]
    assert len(set(names)) == len(names)
    assert names[0].startswith("exp") and names[3].startswith("mul")


# ---- text form ----------------------------------------------------------------------------

# "%5 = add(%3, %4) axis=1 : (?, 10) float32", "%0 = placeholder 'x' : (?, 3) float32", "%7 = constant 0.5 : ..."
LINE = re.compile(r"^\s*%(\d+) = (\w+)(.*) : (\(.*\)) (\w+)$")


def _build_small():
    g = tg.Graph("small")
    with g:
        x = tg.placeholder("x", (None, 3))
        w = tg.parameter("w", np.ones((3, 2), np.float32))
        y = tg.sum(tg.relu(x @ w), axis=1)
    return g, x, w, y


def test_print_graph_shows_one_line_per_node_with_op_shape_dtype():
    g, x, w, y = _build_small()
    text = str(g)
    lines = text.splitlines()
    assert lines[0].startswith("Graph 'small'") and f"{len(g)} nodes" in lines[0]
    body = lines[1:]
    assert len(body) == len(g)
    for line in body:
        assert LINE.match(line), line
    by_id = {int(LINE.match(ln).group(1)): ln for ln in body}
    assert "placeholder 'x'" in by_id[x.id] and "(?, 3) float32" in by_id[x.id]
    assert "parameter 'w'" in by_id[w.id] and "(3, 2) float32" in by_id[w.id]
    assert "sum(" in by_id[y.id] and "axis=1" in by_id[y.id] and by_id[y.id].endswith("(?,) float32")
    # dependencies come first
    assert body.index(by_id[x.id]) < body.index(by_id[y.id])


def test_dprint_shows_only_the_subgraph_and_returns_it():
    g, x, w, y = _build_small()
    with g:
        unrelated = tg.placeholder("unrelated", (5,)) * 2.0
    buf = io.StringIO()
    text = tg.dprint(y, file=buf)
    assert buf.getvalue() == text + "\n"
    lines = text.splitlines()
    assert len(lines) == len(g.topological_order([y.id]))
    assert all(LINE.match(ln) for ln in lines)
    assert "unrelated" not in text and f"%{unrelated.id} " not in text
    ops = [LINE.match(ln).group(2) for ln in lines]
    assert ops[-1] == "sum" and "relu" in ops and "matmul" in ops
    both = tg.dprint([y, unrelated], file=io.StringIO())
    assert "unrelated" in both


def test_constants_show_small_values():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (2,))
        y = x * 0.5
    assert "constant 0.5 : () float32" in str(g)
    assert "const_0.5" == y.inputs[1].name


def test_format_shape():
    assert format_shape(()) == "()"
    assert format_shape((None,)) == "(?,)"
    assert format_shape((None, 64)) == "(?, 64)"


# ---- leaves -------------------------------------------------------------------------------

def test_leaf_properties_and_dtype_defaults():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", [None, 4])
        n = tg.placeholder("n", (None,), dtype="int64")
        p = tg.parameter("p", [[1.0, 2.0]])
        p64 = tg.parameter("p64", np.zeros(3))            # an ndarray keeps its dtype
        c = tg.constant(3)
    assert x.shape == (None, 4) and x.dtype == "float32" and x.op == "placeholder" and x.name == "x"
    assert n.dtype == "int64" and x.ndim == 2
    assert p.dtype == "float32" and p.shape == (1, 2)  # Python floats default to float32
    assert p64.dtype == "float64"
    assert c.dtype == "int64" and c.shape == ()
    assert set(t.id for t in g.placeholders()) == {x.id, n.id}
    assert set(t.id for t in g.parameters()) == {p.id, p64.id}
    assert p in g and x in g
    with pytest.raises(AttributeError, match="only parameters and constants hold a value"):
        x.value
    with pytest.raises(ValueError, match="dimensions must be >= 0 or None"):
        tg.placeholder("bad", (-2,), graph=g)


def test_parameter_value_is_copied_and_assigned_in_place():
    init = np.zeros(3, np.float32)
    g = tg.Graph()
    with g:
        p = tg.parameter("p", init)
    init[0] = 5.0
    assert p.value[0] == 0.0  # the graph owns a copy
    buf = p.value
    p.value = [1.0, 2.0, 3.0]
    assert p.value is buf
    np.testing.assert_array_equal(buf, [1, 2, 3])
    with pytest.raises(ValueError, match=r"expected a value of shape \(3,\)"):
        p.value = np.zeros(4)


def test_symbolic_tensors_have_no_truth_value_and_are_not_iterable():
    with tg.Graph():
        x = tg.placeholder("x", (3,))
        u = tg.placeholder("u", (None,))
    with pytest.raises(TypeError, match="no truth value"):
        bool(x > 0)
    with pytest.raises(TypeError, match="not iterable"):
        list(x)
    assert len(x) == 3
    with pytest.raises(TypeError, match="unknown"):
        len(u)


# ---- operators ----------------------------------------------------------------------------

A = np.array([[0.5, -1.0, 2.0], [1.5, 3.0, -0.25]], np.float32)
B = np.array([[2.0, -1.0, -1.0], [1.5, 3.0, 4.0]], np.float32)  # some entries equal A's (for == and !=)
OPERATORS = {
    "add": (lambda a, b: a + b, np.add), "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply), "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: abs(a) ** b, lambda a, b: np.abs(a) ** b),
    "matmul": (lambda a, b: a @ b.T, lambda a, b: a @ b.T),
    "neg": (lambda a, b: -a, lambda a, b: -a), "pos": (lambda a, b: +a, lambda a, b: a),
    "lt": (lambda a, b: a < b, np.less), "le": (lambda a, b: a <= b, np.less_equal),
    "gt": (lambda a, b: a > b, np.greater), "ge": (lambda a, b: a >= b, np.greater_equal),
    "eq": (lambda a, b: a == b, np.equal), "ne": (lambda a, b: a != b, np.not_equal),
}


@pytest.mark.parametrize("name", OPERATORS)
def test_tensor_operators(name):
    build, ref = OPERATORS[name]
    with tg.Graph():
        a = tg.placeholder("a", A.shape)
        b = tg.placeholder("b", B.shape)
        (got,) = run([a, b], [build(a, b)], A, B)
    want = ref(A, B)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)


REFLECTED = {
    "radd-int": (lambda x: 2 + x, lambda v: 2 + v),
    "rsub-float": (lambda x: 1.5 - x, lambda v: 1.5 - v),
    "rmul-np-float64-scalar": (lambda x: np.float64(3.0) * x, lambda v: 3.0 * v),
    "rtruediv-np-float32-scalar": (lambda x: np.float32(2.0) / x, lambda v: np.float32(2.0) / v),
    "rpow": (lambda x: 2.0 ** x, lambda v: 2.0 ** v),
    "radd-array": (lambda x: np.array([1.0, 2.0, 3.0], np.float32) + x, lambda v: np.array([1, 2, 3]) + v),
    "rsub-array-bcast": (lambda x: np.ones((2, 1), np.float32) - x, lambda v: np.ones((2, 1)) - v),
    "rmul-array": (lambda x: np.float32([2, 0, -1]) * x, lambda v: np.float32([2, 0, -1]) * v),
    "rmatmul-array": (lambda x: np.eye(3, dtype=np.float32)[:2] @ x, lambda v: np.eye(3)[:2] @ v),
    "rlt-array": (lambda x: np.float32([3, 3, 3]) < x, lambda v: 3 < v),
    "rgt-scalar": (lambda x: 2.0 > x, lambda v: 2.0 > v),
}


@pytest.mark.parametrize("name", REFLECTED)
def test_reflected_operators_with_python_and_numpy_operands(name):
    build, ref = REFLECTED[name]
    xv = np.array([1.0, 2.0, 4.0], np.float32)
    with tg.Graph():
        x = tg.placeholder("x", (3,))
        y = build(x)
        assert isinstance(y, tg.Tensor)  # NumPy defers to the Tensor instead of looping over it
        (got,) = run([x], [y], xv)
    np.testing.assert_allclose(got, ref(xv), rtol=1e-6)
    if got.dtype.kind == "f":
        assert got.dtype == np.float32  # float32 operands and Python scalars keep float32


def test_operand_dtype_promotion():
    """Python and NumPy float scalars are weakly typed and int with float gives the float (as in
    torch, docs/numerics.md); arrays of one category promote as in NumPy."""
    with tg.Graph():
        x = tg.placeholder("x", (2,))
        n = tg.placeholder("n", (2,), dtype="int64")
        assert (np.ones(2) * x).dtype == "float64"
        assert (x * 2.0).dtype == "float32" and (x * np.float64(2.0)).dtype == "float32"
        assert (n * 2).dtype == "int64" and (n * 2.5).dtype == "float32" and (n + x).dtype == "float32"


def test_tensor_methods():
    with tg.Graph():
        x = tg.placeholder("x", (2, 3))
        exprs = [x.sum(), x.sum(0), x.mean(1, keepdims=True), x.max(axis=0), x.reshape(3, 2), x.reshape((6,)),
                 x.transpose(), x.transpose(1, 0), x.T, x.astype("int64"), abs(x)]
        xv = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
        got = run([x], exprs, xv)
    want = [xv.sum(), xv.sum(0), xv.mean(1, keepdims=True), xv.max(0), xv.reshape(3, 2), xv.reshape(6), xv.T,
            xv.T, xv.T, xv.astype(np.int64), np.abs(xv)]
    for a, b in zip(got, want):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b)


def test_tensors_hash_by_node():
    """== builds an eq node (as in torch), so handles are dict keys by identity; the hash is the node's."""
    with tg.Graph():
        x = tg.placeholder("x", (2,))
    assert {x: "x"}[x] == "x"
    assert hash(x) == hash(x.graph.tensor(x.id))
    assert (x == x.graph.tensor(x.id)).op == "eq"
    assert "placeholder" in repr(x) and "(2,)" in repr(x)
