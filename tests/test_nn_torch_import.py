"""Parameter naming by attribute, torch state_dict import (strict checks), torch default init,
and construction-time errors of the tg.nn layers added in issue 10."""
from __future__ import annotations

import math

import numpy as np
import pytest

import tensorforge as tg

torch = pytest.importorskip("torch")
tnn = torch.nn
nn = tg.nn


class Block(nn.Module):
    kind = "block"

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm(3)

    def forward(self, x, training):
        return nn.ReLU()(self.bn(self.conv1(x, training=training), training=training))


class Net(nn.Module):
    kind = "net"

    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.Flatten(), nn.Dense(3 * 4 * 4, 5), nn.ReLU(), nn.Dense(5, 2))

    def forward(self, x, training):
        return self.head(self.block(x, training=training), training=training)


class TorchBlock(tnn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = tnn.Conv2d(2, 3, 3, padding=1)
        self.bn = tnn.BatchNorm2d(3)

    def forward(self, x):
        return torch.relu(self.bn(self.conv1(x)))


class TorchNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.block = TorchBlock()
        self.head = tnn.Sequential(tnn.Flatten(), tnn.Linear(48, 5), tnn.ReLU(), tnn.Linear(5, 2))

    def forward(self, x):
        return self.head(self.block(x))


def _built(model, shape=(None, 2, 4, 4), dtype="float32"):
    g = tg.Graph()
    x = tg.placeholder("x", shape, dtype=dtype, graph=g)
    return g, x, model(x)


def test_attribute_names_become_parameter_names():
    net = Net()
    _built(net)
    names = [p.name for p in net.variables()]
    assert names[:6] == ["block/conv1/W", "block/conv1/b", "block/bn/gamma", "block/bn/beta",
                         "block/bn/running_mean", "block/bn/running_var"]
    assert names[6:] == ["head/dense0/W", "head/dense0/b", "head/dense1/W", "head/dense1/b"]
    assert set(net.state_dict()) == set(names)
    assert [p for p, _ in net.named_modules()][:4] == ["", "block", "block.conv1", "block.bn"]


def test_two_unnamed_copies_in_one_graph_get_distinct_names():
    g = tg.Graph()
    x = tg.placeholder("x", (None, 2, 4, 4), graph=g)
    a, b = Block(), Block()
    a(x), b(x)
    assert a.parameters()[0].name == "conv1/W" and b.parameters()[0].name == "conv1_1/W"


def test_from_torch_state_dict_matches_torch_in_eval_mode():
    torch.manual_seed(0)
    tnet = TorchNet()
    with torch.no_grad():    # non-trivial running statistics
        tnet.block.bn.running_mean.uniform_(-1, 1)
        tnet.block.bn.running_var.uniform_(0.5, 2)
    tnet.eval()
    net = Net()
    g, x, _ = _built(net, (None, 2, 4, 4), "float64")
    out = net(x, training=False)
    report = nn.from_torch_state_dict(net, tnet.state_dict())   # num_batches_tracked accepted
    assert report == {"missing_keys": [], "unexpected_keys": []}
    xv = np.random.default_rng(0).standard_normal((3, 2, 4, 4))
    (got,) = tg.compile([x], [out])(xv)
    np.testing.assert_allclose(got, tnet.double()(torch.tensor(xv)).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(g.by_name("head/dense0/W").value, tnet.head[1].weight.detach().numpy().T)


def test_from_torch_state_dict_reports_missing_unexpected_and_bad_shapes():
    net = nn.Sequential(nn.Dense(3, 4), nn.Dense(4, 2))
    _built(net, (None, 3))
    sd = tnn.Sequential(tnn.Linear(3, 4), tnn.Linear(4, 2)).state_dict()
    nn.from_torch_state_dict(net, sd)
    partial = {k: v for k, v in sd.items() if k != "1.bias"}
    partial["extra.weight"] = torch.zeros(2)
    with pytest.raises(KeyError, match=r"missing keys \['1.bias'\], unexpected keys \['extra.weight'\]"):
        nn.from_torch_state_dict(net, partial)
    report = nn.from_torch_state_dict(net, partial, strict=False)
    assert report == {"missing_keys": ["1.bias"], "unexpected_keys": ["extra.weight"]}
    bad = dict(sd)
    bad["0.weight"] = torch.zeros(3, 4)        # not transposed: torch's layout is (out, in) = (4, 3)
    before = net.parameters()[0].value.copy()
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(3, 4\), expected \(4, 3\) \(torch's \(out, in\)"):
        nn.from_torch_state_dict(net, bad)
    np.testing.assert_array_equal(net.parameters()[0].value, before)     # nothing written on error
    with pytest.raises(RuntimeError, match="not been built"):
        nn.from_torch_state_dict(nn.Dense(2, 2), {})


def test_torch_init_distribution_and_bias_rule():
    d = nn.Dense(200, 300, init="torch", seed=1)
    _built(d, (None, 200))
    W, b = (p.value for p in d.parameters())
    bound = 1 / math.sqrt(200)
    assert np.abs(W).max() <= bound and np.abs(W).max() > 0.95 * bound
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    assert W.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    t = tnn.Linear(200, 300)
    assert t.weight.detach().numpy().std() == pytest.approx(W.std(), rel=0.03)
    c = nn.Conv2d(4, 8, 3, init="torch")
    _built(c, (None, 4, 5, 5))
    bound = 1 / math.sqrt(4 * 9)
    assert np.abs(c.parameters()[0].value).max() <= bound and np.abs(c.parameters()[1].value).max() <= bound
    assert tg.init.kaiming_uniform((10, 20), a=math.sqrt(5)).max() <= 1 / math.sqrt(10)


def test_bad_initialiser_fails_at_construction():
    for make in (lambda: nn.Dense(2, 2, init="he_nromal"), lambda: nn.Conv2d(1, 1, 3, init="nope"),
                 lambda: nn.Conv1d(1, 1, 3, init="bad"), lambda: nn.Embedding(3, 2, init="bad")):
        with pytest.raises(ValueError, match="unknown initialiser"):
            make()


def test_constructor_and_shape_errors_name_the_culprit():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        nn.MultiheadAttention(5, 2)
    with pytest.raises(ValueError, match="divisible by num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match="activation"):
        nn.TransformerEncoderLayer(4, 2, activation="tanh")
    with pytest.raises(ValueError, match="output_padding"):
        nn.ConvTranspose2d(2, 2, 3, stride=1, output_padding=1)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv1d(3, 4, 3, groups=2)
    g = tg.Graph()
    with pytest.raises(tg.ShapeError, match=r"input must be \(N, L, input_size\) with input_size=3"):
        nn.GRU(3, 4, batch_first=True)(tg.placeholder("x", (2, 5, 4), graph=g))
    with pytest.raises(tg.ShapeError, match="sequence length"):
        nn.LSTM(3, 4, batch_first=True)(tg.placeholder("s", (2, None, 3), graph=g))
    with pytest.raises(tg.ShapeError, match="E=4"):
        nn.MultiheadAttention(4, 2, batch_first=True)(tg.placeholder("q", (2, 3, 5), graph=g))
    with pytest.raises(TypeError, match="integers"):
        nn.Embedding(4, 2)(tg.placeholder("f", (2,), graph=g))
    with pytest.raises(tg.ShapeError, match="Conv1d"):
        nn.Conv1d(2, 3, 3)(tg.placeholder("c", (2, 3, 5), graph=g))


def test_key_padding_mask_and_embedding_padding_idx():
    torch.manual_seed(0)
    tm = tnn.MultiheadAttention(4, 2, batch_first=True).double().eval()
    m = nn.MultiheadAttention(4, 2, batch_first=True)
    g = tg.Graph()
    x = tg.placeholder("x", (2, 3, 4), dtype="float64", graph=g)
    pad = np.array([[False, False, True], [False, True, True]])
    out, w = m(x, key_padding_mask=pad)
    nn.from_torch_state_dict(m, tm.state_dict())
    xv = np.random.default_rng(2).standard_normal((2, 3, 4))
    got, got_w = tg.compile([x], [out, w])(xv)
    want, want_w = tm(*(torch.tensor(xv),) * 3, key_padding_mask=torch.tensor(pad))
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_w, want_w.detach().numpy(), rtol=1e-10, atol=1e-12)

    e = nn.Embedding(4, 3, padding_idx=1)
    idx = tg.placeholder("i", (3,), dtype="int64", graph=g)
    y = e(idx)
    (gw,) = tg.grad(tg.sum(y), [e.parameters()[0]])
    yv, gv = tg.compile([idx], [y, gw])(np.array([1, 2, 1]))
    assert np.all(e.parameters()[0].value[1] == 0) and np.all(yv[[0, 2]] == 0)
    assert np.all(gv[1] == 0) and np.all(gv[2] == 1)
