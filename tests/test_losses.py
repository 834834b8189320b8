"""Activations, losses and attention of issue 10 beyond the op-info table: errors raised when
the graph is built, label handling in compiled code, the older losses left as they were,
fusion of the compositions, and call-time batch sizes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tensorforge as tg
from tensorforge.passes.pipeline import COMPILER_PASSES


def _graph():
    return tg.Graph("losses")


# ---- errors when the graph is built -------------------------------------------------------

def test_class_losses_reject_bad_targets():
    with _graph():
        x = tg.placeholder("x", (4, 5))
        with pytest.raises(TypeError, match="class targets must be integers, got float32"):
            tg.nll_loss(x, tg.placeholder("t", (4,)))
        with pytest.raises(tg.ShapeError, match=r"target must have shape \(4,\) for input \(4, 5\), got \(4, 1\)"):
            tg.nll_loss(x, tg.placeholder("t2", (4, 1), dtype="int64"))
        with pytest.raises(tg.ShapeError, match=r"class-probability target must have the input's shape"):
            tg.cross_entropy(x, tg.placeholder("p", (4, 4)))
        with pytest.raises(tg.ShapeError, match=r"weight must have shape \(5,\) for 5 classes, got \(4,\)"):
            tg.cross_entropy(x, tg.placeholder("t3", (4,), dtype="int64"), weight=np.ones(4, np.float32))
        with pytest.raises(ValueError, match="reduction must be one of"):
            tg.cross_entropy(x, tg.placeholder("t4", (4,), dtype="int64"), reduction="avg")
        with pytest.raises(ValueError, match="label_smoothing must be in"):
            tg.cross_entropy(x, tg.placeholder("t5", (4,), dtype="int64"), label_smoothing=1.5)
        with pytest.raises(TypeError, match="input must be a floating-point tensor"):
            tg.nll_loss(tg.placeholder("xi", (4, 5), dtype="int64"), tg.placeholder("t6", (4,), dtype="int64"))


def test_class_losses_need_a_known_class_count():
    """The one-hot rows need the number of classes when the graph is built: a ShapeError naming
    the loss, for nll_loss as for cross_entropy (nll_loss raised a bare TypeError from int(None))."""
    with _graph():
        x = tg.placeholder("x", (4, None))
        t = tg.placeholder("t", (4,), dtype="int64")
        with pytest.raises(tg.ShapeError, match=r"nll_loss: the class axis 1 of input \(4, None\) must be known"):
            tg.nll_loss(x, t)
        with pytest.raises(tg.ShapeError, match=r"cross_entropy: the class axis 1 of input \(4, None\) must be known"):
            tg.cross_entropy(x, t)


def test_pointwise_losses_reject_bad_arguments():
    with _graph():
        x = tg.placeholder("x", (3, 4))
        with pytest.raises(tg.ShapeError, match=r"mse_loss: target \(3, 5\) does not broadcast with input \(3, 4\)"):
            tg.mse_loss(x, tg.placeholder("y", (3, 5)))
        with pytest.raises(ValueError, match="huber_loss: delta must be positive"):
            tg.huber_loss(x, x, delta=0.0)
        with pytest.raises(ValueError, match="kl_div: reduction must be one of .*'batchmean'"):
            tg.kl_div(x, x, reduction="batch")
        with pytest.raises(tg.ShapeError, match="binary_cross_entropy_probs: target"):
            tg.binary_cross_entropy_probs(x, tg.placeholder("y2", (4,)))
        with pytest.raises(tg.ShapeError, match="cosine_similarity: axis 2 is out of range"):
            tg.cosine_similarity(x, x, axis=2)


def test_activations_reject_bad_arguments():
    with _graph():
        x = tg.placeholder("x", (3, 5))
        with pytest.raises(tg.ShapeError, match=r"glu: axis 1 of x \(3, 5\) must have a known even size, got 5"):
            tg.glu(x)
        with pytest.raises(ValueError, match="celu: alpha must not be 0"):
            tg.celu(x, 0.0)
        with pytest.raises(ValueError, match="hardtanh: min_val 2.0 must not exceed max_val 1.0"):
            tg.hardtanh(x, 2.0, 1.0)
        with pytest.raises(TypeError, match="relu6: expects a floating-point tensor, got int64"):
            tg.relu6(tg.placeholder("i", (3,), dtype="int64"))


def test_attention_rejects_bad_arguments():
    with _graph():
        q = tg.placeholder("q", (2, 3, 4))
        with pytest.raises(tg.ShapeError, match="must share the embedding size"):
            tg.scaled_dot_product_attention(q, tg.placeholder("k", (2, 5, 3)), tg.placeholder("v", (2, 5, 3)))
        with pytest.raises(tg.ShapeError, match="same source length"):
            tg.scaled_dot_product_attention(q, q, tg.placeholder("v2", (2, 5, 3)))
        with pytest.raises(ValueError, match="either attn_mask or is_causal"):
            tg.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), bool), is_causal=True)
        with pytest.raises(tg.ShapeError, match=r"attn_mask \(4, 4\) does not broadcast"):
            tg.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((4, 4), bool))
        with pytest.raises(TypeError, match="attn_mask must be bool or float"):
            tg.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), np.int64))


# ---- labels ---------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["interp", "llvm", "triton"])
def test_an_out_of_range_label_is_never_a_quiet_number(backend):
    """ignore_index is honoured; any other label outside [0, C) fed by a placeholder is refused
    before the call on every backend; a computed one raises (interp) or poisons the loss with
    NaN (compiled code), whichever reduction."""
    with _graph():
        x = tg.placeholder("x", (3, 4))
        t = tg.placeholder("t", (3,), dtype="int64")
        computed = t * 1        # not a leaf: the before-call check cannot see its values

        def losses(labels):
            return [tg.cross_entropy(x, labels), tg.nll_loss(x, labels, reduction="sum"),
                    tg.cross_entropy(x, labels, weight=np.ones(4, np.float32), reduction="none")]
    f = tg.compile([x, t], losses(t), backend=backend)
    g = tg.compile([x, t], losses(computed), backend=backend)
    xs = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    good = np.array([0, -100, 3])
    want = F.cross_entropy(torch.tensor(xs), torch.tensor(good))
    np.testing.assert_allclose(f(xs, good)[0], want.numpy(), rtol=1e-5)
    np.testing.assert_allclose(g(xs, good)[0], want.numpy(), rtol=1e-5)
    for bad in (np.array([0, 4, 3]), np.array([0, -1, 3])):
        with pytest.raises(tg.InputError, match=rf"input 't'.*label {bad[1]} is out of range"):
            f(xs, bad)
        if backend == "interp":
            with pytest.raises(RuntimeError, match="out of range"):   # the interpreter's NodeError
                g(xs, bad)
        else:
            mean, total, rows = g(xs, bad)
            assert np.isnan(mean) and np.isnan(total) and np.isnan(rows[1])


def test_every_entry_ignored_gives_nan_mean_as_torch():
    with _graph():
        x = tg.placeholder("x", (2, 3))
        t = tg.placeholder("t", (2,), dtype="int64")
        loss = tg.cross_entropy(x, t)
    (got,) = tg.compile([x, t], [loss], backend="llvm")(np.zeros((2, 3), np.float32), np.array([-100, -100]))
    assert np.isnan(got) and np.isnan(F.cross_entropy(torch.zeros(2, 3), torch.tensor([-100, -100])).item())


@pytest.mark.parametrize("backend", ["interp", "llvm"])
def test_cross_entropy_trains_with_a_batch_size_bound_at_call_time(backend):
    rng = np.random.default_rng(1)
    with _graph():
        x = tg.placeholder("x", (None, 5))
        t = tg.placeholder("t", (None,), dtype="int64")
        w = tg.parameter("w", rng.standard_normal((5, 3)).astype(np.float32))
        loss = tg.cross_entropy(x @ w, t, label_smoothing=0.1)
        (gw,) = tg.grad(loss, [w])
    f = tg.compile([x, t], [loss, gw], backend=backend)
    for n in (4, 7):
        xs, ts = rng.standard_normal((n, 5)).astype(np.float32), rng.integers(0, 3, n)
        wt = torch.tensor(w.value, requires_grad=True)
        want = F.cross_entropy(torch.tensor(xs) @ wt, torch.tensor(ts), label_smoothing=0.1)
        want.backward()
        got_loss, got_gw = f(xs, ts)
        np.testing.assert_allclose(got_loss, want.item(), rtol=1e-5)
        np.testing.assert_allclose(got_gw, wt.grad.numpy(), rtol=1e-4, atol=1e-6)


# ---- the older names keep their meaning -------------------------------------------------------

def test_older_losses_and_softplus_keep_their_defaults():
    rng = np.random.default_rng(2)
    z, y = rng.standard_normal((3, 4)), rng.uniform(0, 1, (3, 4))
    with _graph():
        zt, yt = tg.placeholder("z", (3, 4), "float64"), tg.placeholder("y", (3, 4), "float64")
        outs = [tg.binary_cross_entropy(zt, yt), tg.mse(zt, yt), tg.softplus(zt)]
    bce, mse, sp = tg.compile([zt, yt], outs)(z, y)
    assert bce.shape == mse.shape == (3, 4)          # reduction="none" stays their default
    np.testing.assert_allclose(bce, F.binary_cross_entropy_with_logits(
        torch.tensor(z), torch.tensor(y), reduction="none").numpy(), rtol=1e-12)
    np.testing.assert_allclose(sp, np.logaddexp(0, z), rtol=1e-12)


# ---- fusion and dropout ---------------------------------------------------------------------

ACTIVATIONS = {"silu": (tg.silu, F.silu), "mish": (tg.mish, F.mish), "selu": (tg.selu, F.selu),
               "celu": (lambda x: tg.celu(x, 0.7), lambda t: F.celu(t, 0.7)), "relu6": (tg.relu6, F.relu6),
               "hardtanh": (tg.hardtanh, F.hardtanh), "hardswish": (tg.hardswish, F.hardswish),
               "hardsigmoid": (tg.hardsigmoid, F.hardsigmoid), "softsign": (tg.softsign, F.softsign),
               "logsigmoid": (tg.logsigmoid, F.logsigmoid),
               "softplus": (lambda x: tg.softplus(x, beta=2.0), lambda t: F.softplus(t, beta=2.0))}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_an_activation_fuses_with_its_epilogue_into_one_kernel(name):
    """A composition is one kernel with what follows it. (The fusion pass inlines single-use
    values only, so a value an activation reads several times, e.g. silu(x) inside
    hardswish(silu(x)), is materialised by a kernel of its own.)"""
    tg_fn, torch_fn = ACTIVATIONS[name]
    with _graph():
        x = tg.placeholder("x", (4, 6))
        y = tg_fn(x) * 2.0 + 1.0
    f = tg.compile([x], [y], passes=list(COMPILER_PASSES))
    xs = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32) * 4
    (got,) = f(xs)
    program = next(iter(f._cache.values())).program
    ops = [program.graph.node(n)["op"] for n in program.order]
    assert ops == ["placeholder", "fused"]
    want = torch_fn(torch.tensor(xs, dtype=torch.float64)) * 2.0 + 1.0
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_attention_dropout_keeps_the_shape_and_is_the_identity_in_expectation():
    rng = np.random.default_rng(4)
    with _graph():
        q = tg.placeholder("q", (2, 3, 4))
        out = tg.scaled_dot_product_attention(q, q, q, dropout_p=0.5, seed=3)
        plain = tg.scaled_dot_product_attention(q, q, q)
    qs = rng.standard_normal((2, 3, 4)).astype(np.float32)
    got, ref = tg.compile([q], [out, plain])(qs)
    assert got.shape == ref.shape == (2, 3, 4)
    assert not np.allclose(got, ref)


def test_numpy_weights_and_masks_follow_the_input_dtype():
    with _graph():
        x = tg.placeholder("x", (3, 4))
        t = tg.placeholder("t", (3,), dtype="int64")
        assert tg.cross_entropy(x, t, weight=np.ones(4)).dtype == "float32"
        assert tg.binary_cross_entropy_with_logits(x, np.zeros((3, 4)), pos_weight=np.ones(4)).dtype == "float32"
        assert tg.scaled_dot_product_attention(x, x, x, attn_mask=np.zeros((3, 3))).dtype == "float32"
        with pytest.raises(tg.ShapeError, match=r"target \(3, 1\) must have the shape of input \(3, 4\)"):
            tg.binary_cross_entropy_with_logits(x, np.zeros((3, 1)))
