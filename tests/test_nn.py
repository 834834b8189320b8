"""tg.nn layers: outputs and gradients against torch (float64, copied weights), naming,
parameter sharing, train/eval modes, running statistics, penalties."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tensorforge as tg

F = torch.nn.functional


def run(model, x_val, training=None, grads=False):
    """Build ``model`` on a float64 placeholder of a fresh graph; return (graph, output, grads of
    sum(out * w) w.r.t. the input and every parameter, w fixed random) and the compiled function."""
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None,) + x_val.shape[1:], dtype="float64")
        out = model(x, training=training)
        params = model.parameters(g)
        fetch = [out]
        if grads:
            w = tg.constant(np.random.default_rng(1).standard_normal((x_val.shape[0],) + out.shape[1:]))
            fetch += tg.grad(tg.sum(out * w), [x] + params)
    f = tg.compile([x], fetch)
    return g, f(x_val), f


def torch_grads(out, inputs):
    w = torch.tensor(np.random.default_rng(1).standard_normal(tuple(out.shape)))
    return torch.autograd.grad((out * w).sum(), inputs)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, np.float64), requires_grad=grad)


def test_dense_matches_torch_linear_with_copied_weights(rng):
    layer = tg.nn.Dense(5, 3, seed=2)
    x_val = rng.standard_normal((4, 5))
    g, (out, gx, gW, gb), _ = run(layer, x_val, grads=True)
    W, b = layer.parameters(g)
    assert W.shape == (5, 3) and W.dtype == "float64" and b.name == "dense0/b"
    lin = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        lin.weight.copy_(t64(W.value.T))      # torch stores (out, in)
        lin.bias.copy_(t64(b.value))
    xt = t64(x_val, grad=True)
    ref = lin(xt)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-12)
    tx, tw, tb = torch_grads(ref, [xt, lin.weight, lin.bias])
    np.testing.assert_allclose(gx, tx.numpy(), rtol=1e-10)
    np.testing.assert_allclose(gW, tw.numpy().T, rtol=1e-10)
    np.testing.assert_allclose(gb, tb.numpy(), rtol=1e-10)


def test_dense_without_bias_and_init_choice():
    layer = tg.nn.Dense(64, 32, bias=False, init="xavier_uniform", seed=4)
    g, _, _ = run(layer, np.zeros((2, 64)))
    (W,) = layer.parameters(g)
    np.testing.assert_allclose(W.value, tg.init.xavier_uniform((64, 32), seed=4))


@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 1), (1, "same")])
def test_conv2d_matches_torch(rng, stride, padding):
    layer = tg.nn.Conv2d(2, 4, 3, stride=stride, padding=padding, seed=3)
    x_val = rng.standard_normal((2, 2, 7, 6))
    g, (out, gx, gW, gb), _ = run(layer, x_val, grads=True)
    W, b = layer.parameters(g)
    assert W.shape == (4, 2, 3, 3) and b.shape == (4,)
    b.value = rng.standard_normal(4)      # a non-zero bias; a rebuild starts from the latest values
    _, (out, gx, gW, gb), _ = run(layer, x_val, grads=True)
    conv = torch.nn.Conv2d(2, 4, 3, stride=stride, padding=padding).double()
    with torch.no_grad():
        conv.weight.copy_(t64(W.value))
        conv.bias.copy_(t64(b.value))
    xt = t64(x_val, grad=True)
    ref = conv(xt)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    tx, tw, tb = torch_grads(ref, [xt, conv.weight, conv.bias])
    np.testing.assert_allclose(gx, tx.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gW, tw.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gb, tb.numpy(), rtol=1e-9, atol=1e-12)
    assert layer.num_parameters_per_filter() == 3 * 3 * 2 + 1


def test_conv2d_layer_checks_channels():
    g = tg.Graph()
    x = tg.placeholder("x", (None, 3, 8, 8), graph=g)
    with pytest.raises(tg.ShapeError, match="2 channels"):
        tg.nn.Conv2d(2, 4, 3)(x)
    with pytest.raises(tg.ShapeError, match=r"\(\.\.\., 5\)"):
        tg.nn.Dense(5, 2)(tg.placeholder("z", (None, 4), graph=g))


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 5)])
def test_batchnorm_train_and_eval_match_torch(rng, shape):
    bn = tg.nn.BatchNorm(3, momentum=0.2)
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None,) + shape[1:], dtype="float64")
        y_train = bn(x, training=True)
        y_eval = bn(x, training=False)
    gamma, beta = bn.parameters(g)
    mean, var = bn.state(g)
    assert [t.name for t in bn.state(g)] == ["batchnorm0/running_mean", "batchnorm0/running_var"]
    assert not mean.attrs["trainable"] and gamma.attrs["trainable"]
    gamma.value, beta.value = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    train = tg.compile([x], [y_train])       # uses the training output: updates running stats
    evaluate = tg.compile([x], [y_eval])     # no updates

    ref = torch.nn.BatchNorm2d(3, momentum=0.2) if len(shape) == 4 else torch.nn.BatchNorm1d(3, momentum=0.2)
    ref = ref.double()
    with torch.no_grad():
        ref.weight.copy_(t64(gamma.value))
        ref.bias.copy_(t64(beta.value))
    for step in range(3):
        xb = rng.standard_normal(shape) * 2 + 1
        ref.train()
        np.testing.assert_allclose(train(xb)[0], ref(t64(xb)).detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(mean.value, ref.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(var.value, ref.running_var.numpy(), rtol=1e-12)
    before = mean.value.copy()
    ref.eval()
    np.testing.assert_allclose(evaluate(xb)[0], ref(t64(xb)).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(mean.value, before)   # evaluation leaves the statistics alone


def test_batchnorm_follows_the_mode_flag():
    bn = tg.nn.BatchNorm(2)
    g = tg.Graph()
    x = tg.placeholder("x", (None, 2), graph=g)
    assert bn.training
    y1 = bn(x)
    bn.eval()
    y2 = bn(x)
    assert not bn.training and not y1.same(y2)
    f = tg.compile([x], [y2])
    np.testing.assert_allclose(f(np.array([[1.0, 2.0]], np.float32))[0], [[1.0, 2.0]], rtol=1e-5)  # mean 0, var 1


@pytest.mark.parametrize("normalized_shape", [4, (3, 4)])
def test_layernorm_matches_torch(rng, normalized_shape):
    ln = tg.nn.LayerNorm(normalized_shape, eps=1e-5)
    x_val = rng.standard_normal((2, 3, 4)) * 3
    g, (out, gx, ggamma, gbeta), _ = run(ln, x_val, grads=True)
    gamma, beta = ln.parameters(g)
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    assert gamma.shape == ns
    gamma.value, beta.value = rng.uniform(0.5, 2, ns), rng.standard_normal(ns)
    _, (out, gx, ggamma, gbeta), _ = run(ln, x_val, grads=True)
    gamma, beta = ln.parameters()       # the latest graph
    xt = t64(x_val, grad=True)
    gt, bt = t64(gamma.value, grad=True), t64(beta.value, grad=True)
    ref = F.layer_norm(xt, ns, gt, bt, eps=1e-5)
    np.testing.assert_allclose(out, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    for mine, theirs in zip((gx, ggamma, gbeta), torch_grads(ref, [xt, gt, bt])):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-8, atol=1e-10)


def test_a_new_graph_starts_from_the_latest_values():
    layer = tg.nn.Dense(3, 2)
    g1, _, _ = run(layer, np.zeros((1, 3)))
    W1 = layer.parameters(g1)[0]
    W1.value = np.full((3, 2), 7.0)
    g2, _, _ = run(layer, np.zeros((1, 3)))
    W2 = layer.parameters(g2)[0]
    np.testing.assert_array_equal(W2.value, 7.0)
    W2.value = np.zeros((3, 2))
    np.testing.assert_array_equal(W1.value, 7.0)        # separate storage afterwards
    assert layer.graph is g2 and layer.parameters()[0].same(W2)
    g3, _, _ = run(layer, np.zeros((1, 3)))             # from g2 (the latest), not g1 (the oldest)
    np.testing.assert_array_equal(layer.parameters(g3)[0].value, 0.0)


@pytest.mark.parametrize("layer, fn", [
    (tg.nn.ReLU(), F.relu), (tg.nn.Sigmoid(), torch.sigmoid), (tg.nn.Tanh(), torch.tanh),
    (tg.nn.LeakyReLU(0.1), lambda t: F.leaky_relu(t, 0.1)), (tg.nn.ELU(0.7), lambda t: F.elu(t, 0.7)),
    (tg.nn.Softplus(), F.softplus), (tg.nn.Softmax(), lambda t: F.softmax(t, -1)),
    (tg.nn.LogSoftmax(), lambda t: F.log_softmax(t, -1)), (tg.nn.Flatten(), lambda t: t.reshape(len(t), -1)),
    (tg.nn.Maxout(2), lambda t: t.reshape(2, 3, 2, 2).amax(-1)),
    (tg.nn.PReLU(), lambda t: F.prelu(t, torch.tensor([0.25], dtype=torch.float64))),
])
def test_parameter_free_layers_match_torch(rng, layer, fn):
    x_val = rng.standard_normal((2, 3, 4)) * 2
    x_val[0, 0, 0] = 0.0
    _, (out,), _ = run(layer, x_val)
    np.testing.assert_allclose(out, fn(t64(x_val)).numpy(), rtol=1e-12, atol=1e-14)


def test_pooling_layers_match_torch(rng):
    x_val = rng.standard_normal((2, 3, 6, 6))
    _, (out,), _ = run(tg.nn.MaxPool2d(2), x_val)
    np.testing.assert_allclose(out, F.max_pool2d(t64(x_val), 2).numpy())
    _, (out,), _ = run(tg.nn.AvgPool2d(3, stride=2, padding=1), x_val)
    np.testing.assert_allclose(out, F.avg_pool2d(t64(x_val), 3, 2, 1).numpy(), rtol=1e-12)


def test_dropout_modes_and_statistics():
    drop = tg.nn.Dropout(0.25)
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 1000))
        y_train = drop(x, training=True)
        y_eval = drop(x, training=False)
    assert y_eval.same(x)                                  # identity in evaluation mode
    f = tg.compile([x], [y_train])
    ones = np.ones((4, 1000), np.float32)
    a, b = f(ones)[0], f(ones)[0]
    assert set(np.unique(a)) <= {0.0, np.float32(1 / 0.75)}
    assert abs(np.mean(a == 0) - 0.25) < 0.02 and abs(a.mean() - 1.0) < 0.03   # expectation kept
    assert not np.array_equal(a, b)                        # a fresh mask every step
    with pytest.raises(ValueError):
        tg.nn.Dropout(1.0)


def test_two_dropout_layers_draw_different_masks():
    model = tg.nn.Sequential(tg.nn.Dropout(0.5), tg.nn.Lambda(lambda t: t * 1.0), tg.nn.Dropout(0.5))
    g = tg.Graph()
    x = tg.placeholder("x", (None, 500), graph=g)
    first = model[0](x)
    second = model[2](x)
    a, b = tg.compile([x], [first, second])(np.ones((1, 500), np.float32))
    assert not np.array_equal(a == 0, b == 0)


def test_sequential_names_sharing_and_modes(rng):
    model = tg.nn.Sequential(tg.nn.Dense(4, 8), tg.nn.ReLU(), tg.nn.Dropout(0.5), tg.nn.Dense(8, 3, seed=1))
    g = tg.Graph()
    with g:
        x_train = tg.placeholder("x_train", (None, 4))
        x_eval = tg.placeholder("x_eval", (None, 4))
        y_train = model(x_train)                 # training mode (the default flag)
        y_eval = model(x_eval, training=False)
    names = [p.name for p in model.parameters(g)]
    assert names == ["dense0/W", "dense0/b", "dense1/W", "dense1/b"]
    assert len(g.parameters(trainable=True)) == 4         # shared, not duplicated
    assert model.num_parameters() == 4 * 8 + 8 + 8 * 3 + 3
    assert [t.name for t in model.weights()] == ["dense0/W", "dense1/W"]
    xv = rng.standard_normal((5, 4)).astype(np.float32)
    W0, b0, W1, b1 = (t.value for t in model.parameters())
    want = np.maximum(xv @ W0 + b0, 0) @ W1 + b1
    np.testing.assert_allclose(tg.compile([x_eval], [y_eval])(xv)[0], want, rtol=1e-5, atol=1e-6)
    train_out = tg.compile([x_train], [y_train])(xv)[0]
    assert not np.allclose(train_out, want)              # dropout is active in training mode
    model.eval()
    assert all(not m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    assert "Dense(4, 8)" in repr(model) and "Dropout(p=0.5)" in repr(model)


def test_named_modules_and_unique_names():
    g = tg.Graph()
    x = tg.placeholder("x", (None, 4), graph=g)
    mlp = tg.nn.Sequential(tg.nn.Dense(4, 4, name="fc"), tg.nn.Dense(4, 2), name="mlp")
    mlp(x)
    assert [p.name for p in mlp.parameters()] == ["mlp/fc/W", "mlp/fc/b", "mlp/dense0/W", "mlp/dense0/b"]
    other = tg.nn.Dense(4, 2)                 # a second unnamed Dense in the same graph
    other(x)
    assert other.parameters()[0].name == "dense0/W"
    third = tg.nn.Dense(4, 2)
    third(x)
    assert third.parameters()[0].name == "dense1/W"
    clash = tg.nn.Dense(4, 2, name="dense1")
    with pytest.raises(ValueError, match="unique"):
        clash(x)


def test_custom_module_with_children():
    class TwoTower(tg.nn.Module):
        kind = "twotower"

        def __init__(self):
            super().__init__()
            self.left = tg.nn.Dense(3, 2, seed=1)
            self.right = tg.nn.Dense(3, 2, seed=2)

        def forward(self, x, training):
            return self.left(x, training=training) * self.right(x, training=training)

    m = TwoTower()
    g = tg.Graph()
    m(tg.placeholder("x", (None, 3), graph=g))
    # attribute names become scopes (torch style; issue 10 changed this from dense0/dense1)
    assert [p.name for p in m.parameters()] == ["left/W", "left/b", "right/W", "right/b"]
    assert len(list(m.modules())) == 3


def test_state_dict_round_trip():
    model = tg.nn.Sequential(tg.nn.Dense(3, 4), tg.nn.BatchNorm(4))
    g = tg.Graph()
    model(tg.placeholder("x", (None, 3), graph=g))
    sd = model.state_dict()
    assert sorted(sd) == sorted(["dense0/W", "dense0/b", "batchnorm0/gamma", "batchnorm0/beta",
                                 "batchnorm0/running_mean", "batchnorm0/running_var"])
    for t in model.variables():
        t.value = np.zeros(t.shape)
    model.load_state_dict(sd)
    for t in model.variables():
        np.testing.assert_array_equal(t.value, sd[t.name])
    with pytest.raises(KeyError, match="missing"):
        model.load_state_dict({})


def test_unbuilt_module_says_so():
    with pytest.raises(RuntimeError, match="not been built"):
        tg.nn.Dense(2, 2).parameters()
    with pytest.raises(TypeError, match="placeholder"):
        tg.nn.Dense(2, 2)(np.zeros((1, 2)))


def test_penalties_values_and_gradients(rng):
    model = tg.nn.Sequential(tg.nn.Dense(3, 4), tg.nn.Dense(4, 2, seed=1))
    g = tg.Graph()
    model(tg.placeholder("x", (None, 3), graph=g))
    W0, b0, W1, b1 = model.parameters()
    b0.value = rng.standard_normal(4)
    l1 = tg.nn.l1(model.parameters(), 0.3)
    l2 = tg.nn.l2(model.parameters(), 0.3)
    l2w = tg.nn.l2(model, 0.3)               # a Module: its weights only (no biases)
    grads = tg.grad(l2, [W0, b0])
    f = tg.compile([], [l1, l2, l2w] + grads)
    v1, v2, v2w, gW0, gb0 = f()
    vals = [t.value.astype(np.float64) for t in (W0, b0, W1, b1)]
    np.testing.assert_allclose(v1, 0.3 * sum(np.abs(v).sum() for v in vals), rtol=1e-5)
    np.testing.assert_allclose(v2, 0.15 * sum((v ** 2).sum() for v in vals), rtol=1e-5)   # (λ/2)||θ||²
    np.testing.assert_allclose(v2w, 0.15 * sum((v ** 2).sum() for v in vals[::2]), rtol=1e-5)
    np.testing.assert_allclose(gW0, 0.3 * W0.value, rtol=1e-5)                            # gradient λθ
    np.testing.assert_allclose(gb0, 0.3 * b0.value, rtol=1e-5)
    with pytest.raises(ValueError):
        tg.nn.l2([], 0.1)
