"""tg.compile: calling conventions, input validation with clear errors, per-shape
specialisation and its cache, in-place simultaneous updates, and run-time errors.
"""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.backends import get_backend
from tensorforge.backends.interp import NodeError


class CountingBackend:
    """Wraps the interpreter and counts builds, to observe the compile cache."""
    name = "counting"

    def __init__(self):
        self.builds = []
        self.runs = 0
        self._inner = get_backend("interp")

    def build(self, program, passes=None):
        self.builds.append({program.graph.node(i)["name"]: program.shapes[i] for i in program.inputs})
        exe = self._inner.build(program, passes)

        def run(arrays):
            self.runs += 1
            return exe(arrays)
        return run


@pytest.fixture
def linear():
    """x (?, 64) @ W (64, 10) + b, with a float32 and an int64 placeholder."""
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 64))
        n = tg.placeholder("n", (None,), dtype="int64")
        W = tg.parameter("W", np.full((64, 10), 0.01, np.float32))
        b = tg.parameter("b", np.arange(10, dtype=np.float32))
        y = x @ W + b
    return g, x, n, W, b, y


# ---- calling conventions -------------------------------------------------------------------

def test_positional_and_keyword_inputs(linear):
    g, x, n, W, b, y = linear
    f = tg.compile([x, n], [y, n * 2])
    xv, nv = np.ones((3, 64), np.float32), np.array([1, 2, 3])
    for out in (f(xv, nv), f(x=xv, n=nv), f(xv, n=nv), f(n=nv, x=xv)):
        np.testing.assert_allclose(out[0], 0.64 + np.arange(10)[None, :].repeat(3, 0), rtol=1e-6)
        np.testing.assert_array_equal(out[1], [2, 4, 6])
        assert out[1].dtype == np.int64


def test_single_output_returns_an_array_and_a_list_returns_a_list(linear):
    g, x, n, W, b, y = linear
    single = tg.compile([x], y)(np.zeros((2, 64)))
    as_list = tg.compile([x], [y])(np.zeros((2, 64)))
    assert isinstance(single, np.ndarray) and single.shape == (2, 10)
    assert isinstance(as_list, list) and len(as_list) == 1


def test_function_of_parameters_only_takes_no_inputs(linear):
    g, x, n, W, b, y = linear
    f = tg.compile([], [tg.sum(b)])
    assert f()[0] == 45.0


# ---- bad input: clear errors naming the placeholder ----------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda f: f(np.zeros((2, 64))), r"missing input\(s\) 'n'"),
    (lambda f: f(), r"missing input\(s\) 'x', 'n'"),
    (lambda f: f(np.zeros((2, 64)), np.zeros(2, np.int64), np.zeros(1)), "takes 2 inputs .*got 3 positional"),
    (lambda f: f(np.zeros((2, 64)), n=np.zeros(2, np.int64), m=1), "unknown input 'm'; inputs are x, n"),
    (lambda f: f(np.zeros((2, 64)), np.zeros(2, np.int64), x=np.zeros((2, 64))), "got input 'x' twice"),
    (lambda f: f(np.zeros(64), np.zeros(2, np.int64)), r"input 'x': expected shape \(\?, 64\), got \(64,\)"),
    (lambda f: f(np.zeros((2, 64, 1)), np.zeros(2, np.int64)),
     r"input 'x': expected shape \(\?, 64\), got \(2, 64, 1\)"),
    (lambda f: f(np.zeros((2, 32)), np.zeros(2, np.int64)), r"input 'x': expected shape \(\?, 64\), got \(2, 32\)"),
    (lambda f: f(np.zeros((2, 64)), np.zeros(2)), "input 'n': expected integer dtype int64, got float64"),
    (lambda f: f(np.zeros((2, 64)), [1.5, 2.0]), "input 'n': expected integer dtype int64, got float64"),
    (lambda f: f(np.full((2, 64), "a"), np.zeros(2, np.int64)), "input 'x': expected numeric data"),
    (lambda f: f(np.zeros((2, 64)), [[1], 2]), "input 'n'"),
])
def test_bad_inputs_raise_input_error_naming_the_placeholder(linear, call, match):
    g, x, n, W, b, y = linear
    backend = CountingBackend()
    f = tg.compile([x, n], [y, n + 1], updates={b: b + 1.0}, backend=backend)
    before = b.value.copy()
    with pytest.raises(tg.InputError, match=match):
        call(f)
    assert backend.builds == [] and backend.runs == 0  # nothing was compiled or run
    np.testing.assert_array_equal(b.value, before)


def test_python_lists_and_other_numeric_dtypes_are_accepted(linear):
    g, x, n, W, b, y = linear
    f = tg.compile([x, n], [tg.sum(x), n * 2])
    s, twice = f([[1.0] * 64, [2] * 64], [1, 2])
    assert s.dtype == np.float32 and s == 192.0
    np.testing.assert_array_equal(twice, [2, 4])
    s64, _ = f(np.ones((1, 64), np.float64), np.array([3], np.int32))  # converted to the placeholder dtype
    assert s64 == 64.0
    s_strided, _ = f(np.ones((2, 128), np.float32)[:, ::2], [0, 0])  # non-contiguous input
    assert s_strided == 128.0


def test_compile_rejects_bad_arguments(linear):
    g, x, n, W, b, y = linear
    with pytest.raises(ValueError, match="an input is listed twice"):
        tg.compile([x, x], [y])
    with pytest.raises(TypeError, match="inputs must be placeholders"):
        tg.compile([y], [y])
    with pytest.raises(TypeError, match="not a parameter"):
        tg.compile([x], [y], updates={x: x})
    with pytest.raises(ValueError, match=r"update of parameter 'b': new value has shape \(\?, 10\)"):
        tg.compile([x], [y], updates={b: y})
    with pytest.raises(ValueError, match="parameter 'b' is updated twice"):
        tg.compile([x], [y], updates=[(b, b + 1.0), (b, b * 2.0)])
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        tg.compile([x], [y], backend="nope")
    f = tg.compile([], [y])
    with pytest.raises(ValueError, match="depend on placeholder 'x', which is not among"):
        f()


# ---- shape specialisation and the cache ------------------------------------------------------

def test_none_dims_bind_per_call_and_each_shape_compiles_once(linear):
    g, x, n, W, b, y = linear
    backend = CountingBackend()
    f = tg.compile([x], [y], backend=backend)
    for rows in (1, 5, 1, 5, 7, 5):
        (out,) = f(np.ones((rows, 64), np.float32))
        assert out.shape == (rows, 10)
    assert backend.builds == [{"x": (1, 64)}, {"x": (5, 64)}, {"x": (7, 64)}]  # in first-call order
    assert backend.runs == 6
    assert sorted(f._cache) == [((1, 64),), ((5, 64),), ((7, 64),)]
    assert set(f.compile_times) == set(f._cache)
    text = repr(f)
    assert "specialised for x=(1, 64)" in text and "specialised for x=(7, 64)" in text


def test_shape_mismatch_between_unknown_dims_is_a_shape_error_before_running():
    g = tg.Graph()
    with g:
        a = tg.placeholder("a", (None, 3))
        c = tg.placeholder("c", (None, 3))
        p = tg.parameter("p", np.zeros(3, np.float32))
        s = tg.sum(a * c, axis=0)
    backend = CountingBackend()
    f = tg.compile([a, c], [s], updates={p: p + s}, backend=backend)
    with pytest.raises(tg.ShapeError) as err:
        f(np.ones((2, 3)), np.ones((4, 3)))
    msg = str(err.value)
    assert f"node %{(a * c).id}" in msg and "op mul" in msg and "(2, 3)" in msg and "(4, 3)" in msg
    assert backend.builds == [] and backend.runs == 0 and not p.value.any()
    (ok,) = f(np.ones((4, 3)), np.ones((4, 3)))  # and the function still works afterwards
    np.testing.assert_allclose(ok, [4, 4, 4])


def test_errors_during_a_run_name_the_node_op_and_shapes():
    g = tg.Graph()
    with g:
        base = tg.placeholder("base", (None,), dtype="int64")
        e = tg.placeholder("e", (None,), dtype="int64")
        y = base ** e
    f = tg.compile([base, e], [y])
    np.testing.assert_array_equal(f([2, 3], [2, 1])[0], [4, 3])
    with pytest.raises(NodeError) as err:
        f([2, 3], [-1, 1])  # NumPy refuses integers to negative integer powers
    msg = str(err.value)
    assert f"node %{y.id}" in msg and "op pow" in msg and "(2,)" in msg and "negative integer powers" in msg


# ---- updates -----------------------------------------------------------------------------

def test_updates_are_simultaneous_swap_of_two_parameters():
    g = tg.Graph()
    with g:
        a = tg.parameter("a", np.array([1.0, 2.0], np.float32))
        b = tg.parameter("b", np.array([3.0, 4.0], np.float32))
    buf_a, buf_b = a.value, b.value
    swap = tg.compile([], [a - b], updates={a: b, b: a})
    (diff,) = swap()
    np.testing.assert_array_equal(diff, [-2.0, -2.0])  # outputs use the values before the update
    np.testing.assert_array_equal(a.value, [3.0, 4.0])
    np.testing.assert_array_equal(b.value, [1.0, 2.0])
    swap()
    np.testing.assert_array_equal(a.value, [1.0, 2.0])
    np.testing.assert_array_equal(b.value, [3.0, 4.0])
    assert a.value is buf_a and b.value is buf_b


def test_updates_see_old_values_and_reshaped_views():
    """Each new value is computed from the old ones, even through views of another parameter."""
    g = tg.Graph()
    with g:
        m = tg.parameter("m", np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
        v = tg.parameter("v", np.zeros(4, np.float32))
    f = tg.compile([], [], updates=[(m, tg.reshape(v, (2, 2)) + 10.0), (v, tg.reshape(m, (4,)))])
    f()
    np.testing.assert_array_equal(v.value, [1, 2, 3, 4])
    np.testing.assert_array_equal(m.value, np.full((2, 2), 10.0))


def test_gradient_descent_updates_in_place_keep_the_value_identity():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None,), dtype="float64")
        lr = tg.placeholder("lr", (), dtype="float64")
        w = tg.parameter("w", np.array(0.0))
        loss = tg.mean((x - w) ** 2)
        step = tg.compile([x, lr], [loss], updates={w: w - lr * tg.grad(loss, w)})
    buf = w.value
    data = np.array([1.0, 2.0, 3.0, 6.0])
    losses = [step(data, 0.25)[0] for _ in range(50)]
    assert w.value is buf and w.value.shape == ()
    np.testing.assert_allclose(w.value, data.mean(), rtol=1e-9)
    assert losses[0] > losses[-1]
    np.testing.assert_allclose(losses[-1], data.var(), rtol=1e-9)
    step(data, lr=0.0)  # a learning rate of 0 leaves it alone
    np.testing.assert_allclose(w.value, data.mean(), rtol=1e-9)


def test_returned_parameter_outputs_do_not_change_with_later_updates():
    g = tg.Graph()
    with g:
        c = tg.parameter("c", np.zeros(2, np.float32))
    inc = tg.compile([], [c], updates={c: c + 1.0})
    first = inc()[0]
    second = inc()[0]
    np.testing.assert_array_equal(first, [0.0, 0.0])
    np.testing.assert_array_equal(second, [1.0, 1.0])
    np.testing.assert_array_equal(c.value, [2.0, 2.0])


def test_float64_update_of_a_float32_parameter_is_cast_in_place():
    g = tg.Graph()
    with g:
        p = tg.parameter("p", np.ones(2, np.float32))
        lr = tg.placeholder("lr", (), dtype="float64")
    buf = p.value
    tg.compile([lr], [], updates={p: p - lr})(0.5)
    assert p.value is buf and p.value.dtype == np.float32
    np.testing.assert_array_equal(p.value, [0.5, 0.5])


def test_outputs_that_are_views_of_parameters_or_inputs_are_not_aliased():
    """A returned array must not change when a later update (or the caller) writes the buffer it views."""
    g = tg.Graph()
    with g:
        p = tg.parameter("p", np.zeros((2, 2), np.float32))
        x = tg.placeholder("x", (2, 2))
        read = tg.compile([x], [tg.reshape(p, (4,)), tg.reshape(x, (4,)), x])
        add_to_p = tg.compile([x], [], updates={p: p + x})
    xv = np.arange(4, dtype=np.float32).reshape(2, 2)
    p_flat, x_flat, x_out = read(xv)
    add_to_p(np.ones((2, 2), np.float32))
    xv[...] = -1.0
    np.testing.assert_array_equal(p_flat, np.zeros(4))
    np.testing.assert_array_equal(x_flat, [0, 1, 2, 3])
    np.testing.assert_array_equal(x_out, [[0, 1], [2, 3]])


def test_a_function_of_nothing_says_so_when_called():
    # it used to fail with "'NoneType' object has no attribute 'topological_order'"
    f = tg.compile([], [])
    with pytest.raises(ValueError, match="no inputs, outputs or updates"):
        f()
