"""Shape/indexing family beyond the op-info table: bad input raises a clear error when the
graph is built, out-of-range indices never give a quiet number, gather-like ops fuse into
one reduction kernel, and the Tensor methods exist."""
import numpy as np
import pytest

import tensorforge as tg
from tensorforge.passes.pipeline import COMPILER_PASSES, stats


def _graph():
    return tg.Graph("shape_extra")


# ---- errors when the graph is built -------------------------------------------------

@pytest.mark.parametrize("equation, shapes, match", [
    ("ij,jk", [(2, 3)], "names 2 operand"),
    ("ij->k", [(2, 3)], "output label 'k'"),
    ("ij->ii", [(2, 3)], "repeats a label"),
    ("i1,i", [(2, 3), (2,)], "invalid character '1'"),
    ("ijk", [(2, 3)], "rank 2 but term 'ijk'"),
    ("ij,jk->ik", [(2, 3), (4, 5)], "label 'j' has size 3"),
    ("ii", [(2, 3)], "label 'i' has size 2"),
    ("i->j->k", [(2,)], "more than one '->'"),
    ("...i,i->i", [(2, 3), (3,)], "output does not"),
])
def test_bad_einsum_equations_name_the_problem(equation, shapes, match):
    with _graph():
        ops = [tg.placeholder(f"x{k}", s) for k, s in enumerate(shapes)]
        with pytest.raises(ValueError, match=match):
            tg.einsum(equation, *ops)


def test_bad_arguments_raise_when_built():
    with _graph():
        x = tg.placeholder("x", (3, 4))
        with pytest.raises(tg.ShapeError, match="same shape"):
            tg.stack([x, tg.placeholder("y", (4, 3))])
        with pytest.raises(ValueError, match="add up to the size 4"):
            tg.split(x, [1, 2], axis=1)
        with pytest.raises(tg.ShapeError, match="cannot be smaller than the rank"):
            x.repeat(2)
        with pytest.raises(ValueError, match="3 non-negative counts"):
            tg.repeat_interleave(x, [1, 2], axis=0)
        with pytest.raises(tg.ShapeError, match="axis 2 is out of range"):
            tg.flip(x, 2)
        with pytest.raises(tg.ShapeError, match="axis1 and axis2 must differ"):
            tg.diagonal(x, 0, 1, -1)
        with pytest.raises(ValueError, match="size 5 must lie in"):
            x.unfold(1, 5, 1)
        with pytest.raises(TypeError, match="mask must be a bool"):
            x.masked_fill(x, 0.0)
        with pytest.raises(tg.ShapeError, match="rank of x"):
            tg.gather(x, 1, np.zeros((3,), np.int64))
        with pytest.raises(tg.ShapeError, match="index size 5 exceeds"):
            tg.gather(x, 1, np.zeros((5, 2), np.int64))
        with pytest.raises(TypeError, match="integers"):
            tg.gather(x, 1, np.zeros((3, 2)))
        with pytest.raises(TypeError, match="boolean index"):
            x[np.array([True, False, True])]
        with pytest.raises(TypeError, match="at most one integer-array"):
            x[np.array([0]), np.array([1])]
        with pytest.raises(tg.ShapeError, match="source must have shape"):
            tg.index_add(x, 0, np.array([0, 1]), tg.placeholder("s", (3, 4)))
        with pytest.raises(tg.ShapeError, match="weight must be 2-d"):
            tg.embedding(np.array([0]), x[0])
        with pytest.raises(ValueError, match="indexing must be"):
            tg.meshgrid(x[0], indexing="yx")


def test_a_constant_index_out_of_range_is_an_error_when_built():
    with _graph():
        x = tg.placeholder("x", (3, 4))
        with pytest.raises(IndexError, match="index 4 is out of range for axis 1 with size 4"):
            x[:, np.array([0, 4])]
        with pytest.raises(IndexError, match="index -4 is out of range for axis 0"):
            x[np.array([-4])]


# ---- out-of-range indices at run time ------------------------------------------------

@pytest.mark.parametrize("backend", ["interp", "llvm"])
def test_an_input_index_out_of_range_is_rejected_before_the_call(backend):
    with _graph():
        x = tg.placeholder("x", (3, 4))
        i = tg.placeholder("i", (3, 2), dtype="int64")
        f = tg.compile([x, i], [tg.gather(x, 1, i)], backend=backend)
    xs = np.ones((3, 4), np.float32)
    f(xs, np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match=r"out of range \[0, 4\)"):
        f(xs, np.full((3, 2), 4, np.int64))


def test_a_computed_index_out_of_range_raises_on_interp_and_gives_nan_compiled():
    with _graph():
        x = tg.placeholder("x", (2, 3))
        i = tg.placeholder("i", (2,), dtype="int64")
        y = tg.take(x, i + 2, axis=1)             # i + 2 is computed: not checked before the call
        feeds = (np.ones((2, 3), np.float32), np.array([0, 1]))
        with pytest.raises(RuntimeError, match=r"index 3 is out of range \[0, 3\)"):
            tg.compile([x, i], [y], backend="interp")(*feeds)
        out = tg.compile([x, i], [y], backend="llvm")(*feeds)[0]
    np.testing.assert_array_equal(out[:, 0], [1.0, 1.0])
    assert np.isnan(out[:, 1]).all()


# ---- fusion ---------------------------------------------------------------------------

def _fused_program(ins, outs, feeds):
    f = tg.compile(ins, outs, passes=list(COMPILER_PASSES))
    f(*feeds)
    return next(iter(f._cache.values())).program


def _materialised_shapes(prog):
    return {prog.shapes[n] for n in prog.order if prog.graph.node(n)["op"] not in ("placeholder", "parameter")}


@pytest.mark.parametrize("build", [
    lambda x, i: tg.gather(x, 1, i),
    lambda x, i: tg.take_along_axis(x, i, 1),
    lambda x, i: tg.take(x, i, axis=1),
])
def test_gather_like_ops_are_one_reduction_kernel(build):
    """The compare-select-sum is one kernel: no (3, 4, 50) one-hot is ever materialised."""
    with _graph():
        x = tg.placeholder("x", (3, 50))
        i = tg.placeholder("i", (3, 4), dtype="int64")
        y = build(x, i)
    prog = _fused_program([x, i], [y], [np.ones((3, 50), np.float32), np.zeros((3, 4), np.int64)])
    assert stats(prog).get("fused") == 1, stats(prog)


def test_embedding_gradient_is_one_kernel_and_accumulates_repeats():
    with _graph():
        w = tg.parameter("w", np.arange(12, dtype=np.float32).reshape(6, 2))
        e = tg.placeholder("e", (4,), dtype="int64")
        (gw,) = tg.grad(tg.sum(tg.embedding(e, w)), [w])
    prog = _fused_program([e], [gw], [np.array([1, 1, 5, 0])])
    assert (4, 6, 2) not in _materialised_shapes(prog)      # no (indices, rows, dim) one-hot product
    out = tg.compile([e], [gw], backend="llvm")(np.array([1, 1, 5, 0]))[0]
    np.testing.assert_array_equal(out[:, 0], [1, 2, 0, 0, 0, 1])


def test_stop_gradient_fuses_with_its_neighbours():
    with _graph():
        x = tg.placeholder("x", (4, 5))
        y = tg.tanh(tg.stop_gradient(x * 2.0)) + x
    prog = _fused_program([x], [y], [np.ones((4, 5), np.float32)])
    assert stats(prog).get("fused") == 1, stats(prog)


# ---- Tensor methods and tuple results ----------------------------------------------

def test_tensor_methods_match_the_functions():
    x0 = np.arange(12, dtype=np.float32).reshape(3, 4)
    with _graph():
        x = tg.placeholder("x", (3, 4))
        outs = [x.flip(1), x.roll(1, 0), x.tril(), x.diagonal(1), x.tile(2), x.repeat_interleave(2, 1),
                x.take(np.array([5, 0])), x.detach(), x.index_select(0, np.array([2])),
                x.gather(0, np.array([[2, 1, 0, 0]])), *x.split(2, 1), *x.chunk(3, 0)]
        got = tg.compile([x], outs, backend="interp")(x0)
    want = [x0[:, ::-1], np.roll(x0, 1, 0), np.tril(x0), np.diagonal(x0, 1), np.tile(x0, 2),
            np.repeat(x0, 2, 1), x0.reshape(-1)[[5, 0]], x0, x0[[2]], x0[[2, 1, 0, 0], [0, 1, 2, 3]][None],
            x0[:, :2], x0[:, 2:], x0[:1], x0[1:2], x0[2:]]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_a_computed_scatter_index_out_of_range_poisons_its_slice_with_nan():
    with _graph():
        x = tg.placeholder("x", (2, 3))
        i = tg.placeholder("i", (2, 1), dtype="int64")
        y = tg.scatter_add(x, 1, i * 2, tg.constant(np.ones((2, 1), np.float32)))
        out = tg.compile([x, i], [y], backend="llvm")(np.zeros((2, 3), np.float32), np.array([[1], [2]]))[0]
    np.testing.assert_array_equal(out[0], [0, 0, 1])
    assert np.isnan(out[1]).all()


def test_einsum_contracts_with_one_batched_matmul_and_keeps_integer_dtypes():
    with _graph():
        a = tg.placeholder("a", (2, 3, 4))
        b = tg.placeholder("b", (2, 4, 5))
        y = tg.einsum("bij,bjk->bik", a, b)
        x = tg.placeholder("x", (3, 4), dtype="int32")
        z = tg.gather(x, 0, np.array([[2, 0, 1, 1]]))
    ops = [d["op"] for _, d in y.graph.nx.nodes(data=True)]
    assert ops.count("matmul") == 1
    assert z.dtype == "int32"
    x0 = np.arange(12, dtype=np.int32).reshape(3, 4)
    got = tg.compile([x], [z], backend="llvm")(x0)[0]
    np.testing.assert_array_equal(got, np.take_along_axis(x0, np.array([[2, 0, 1, 1]]), 0))


def test_repeat_interleave_rejects_tensor_repeats():
    with _graph():
        x = tg.placeholder("x", (3,))
        with pytest.raises(TypeError, match="not a Tensor"):
            tg.repeat_interleave(x, tg.placeholder("r", (3,), dtype="int64"))
