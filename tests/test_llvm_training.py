"""Whole training steps (forward, backward, optimizer update) on the LLVM backend agree with
the interpreter: an MLP and a CNN with every optimizer, 10 steps, losses and parameters;
and tg.train.fit(..., backend="llvm") learns the digits."""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg

OPTIMIZERS = {
    "sgd": lambda: tg.optim.SGD(lr=0.05),
    "sgd_momentum": lambda: tg.optim.SGD(lr=0.05, momentum=0.9, weight_decay=1e-3),
    "sgd_nesterov": lambda: tg.optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    "adagrad": lambda: tg.optim.Adagrad(lr=0.05),
    "adadelta": lambda: tg.optim.Adadelta(lr=1.0),
    "rmsprop_centered_momentum": lambda: tg.optim.RMSprop(lr=1e-3, momentum=0.9, centered=True),
    "adam": lambda: tg.optim.Adam(lr=1e-2),
    "adam_amsgrad": lambda: tg.optim.Adam(lr=1e-2, amsgrad=True),
    "adamw": lambda: tg.optim.AdamW(lr=1e-2, weight_decay=0.05),
    "adamax": lambda: tg.optim.Adamax(lr=1e-2),
    "nadam": lambda: tg.optim.NAdam(lr=1e-2),
    "svrg": lambda: tg.optim.SVRG(lr=0.05),
}


def mlp():
    return tg.nn.Sequential(tg.nn.Dense(64, 32, seed=1), tg.nn.ReLU(), tg.nn.Dense(32, 10, seed=2))


def cnn():
    return tg.nn.Sequential(tg.nn.Conv2d(1, 4, 3, padding=1, seed=1), tg.nn.ReLU(), tg.nn.MaxPool2d(2),
                            tg.nn.Flatten(), tg.nn.Dense(64, 10, seed=2))


def batches(kind, dtype, steps, n=16):
    rng = np.random.default_rng(7)
    shape = (n, 64) if kind == "mlp" else (n, 1, 8, 8)
    return [(rng.standard_normal(shape).astype(dtype), rng.integers(0, 10, n)) for _ in range(steps)]


def train(kind, opt_name, backend, dtype, steps=10):
    """Losses of ``steps`` steps and the final parameters and optimizer state."""
    g = tg.Graph()
    with g:
        net = mlp() if kind == "mlp" else cnn()
        x = tg.placeholder("x", (None, 64) if kind == "mlp" else (None, 1, 8, 8), dtype=dtype)
        y = tg.placeholder("y", (None,), dtype="int64")
        loss = tg.mean(tg.softmax_cross_entropy(net(x), y))
        opt = OPTIMIZERS[opt_name]()
        updates = opt.updates(loss, net.parameters())
    step = tg.compile([x, y], [loss], updates=updates, backend=backend)
    data = batches(kind, dtype, steps)
    losses = []
    for i, (xb, yb) in enumerate(data):
        if opt_name == "svrg" and i % 5 == 0:          # a snapshot every 5 steps, over 4 batches
            pool = data[i:i + 4]
            opt.take_snapshot([x, y], [np.concatenate([b[0] for b in pool]), np.concatenate([b[1] for b in pool])],
                              batch_size=32, backend=backend)
        (lv,) = step(xb, yb)
        losses.append(float(lv))
    params = [p.value.copy() for p in net.parameters()] + [s.value.copy() for s in opt.state_parameters()]
    return np.array(losses), params


CASES = [pytest.param(kind, name, id=f"{kind}-{name}") for kind in ("mlp", "cnn") for name in OPTIMIZERS]


def assert_same_training(kind, opt_name, dtype, rtol, atol):
    l0, p0 = train(kind, opt_name, "interp", dtype)
    l1, p1 = train(kind, opt_name, "llvm", dtype)
    assert np.all(np.isfinite(l0)) and l0[-1] < l0[0] * 1.5
    np.testing.assert_allclose(l1, l0, rtol=rtol, atol=atol)
    assert len(p0) == len(p1)
    for a, b in zip(p0, p1):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)


@pytest.mark.parametrize("kind, opt_name", CASES)
def test_ten_training_steps_match_the_interpreter(kind, opt_name):
    assert_same_training(kind, opt_name, "float32", rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opt_name", ["adam"])
def test_float64_mlp_training_matches_to_1e_10(opt_name):
    assert_same_training("mlp", opt_name, "float64", rtol=1e-10, atol=1e-12)


def test_fit_on_digits_with_llvm_reaches_95_percent():
    x_train, y_train, x_test, y_test = tg.data.digits()
    model = tg.nn.Sequential(tg.nn.Dense(64, 64, seed=0), tg.nn.ReLU(), tg.nn.Dense(64, 10, seed=1))
    h = tg.train.fit(model, x_train, y_train, optimizer=tg.optim.Adam(lr=1e-2), epochs=8, batch_size=64,
                     validation_data=(x_test, y_test), backend="llvm", progress=False, verbose=False)
    assert "llvm" in str(h.train_step)
    assert max(h["val_accuracy"]) >= 0.95
