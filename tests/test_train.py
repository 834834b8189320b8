"""tg.train: fit (loss decreases, history, early stopping with restore, schedules, SVRG hook,
penalties, clipping, losses), evaluate/predict, and the digits examples."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import tensorforge as tg

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits():
    return tg.data.digits()


def mlp(hidden=32, seed=0, n_in=64, n_out=10):
    return tg.nn.Sequential(tg.nn.Dense(n_in, hidden, seed=seed), tg.nn.ReLU(),
                            tg.nn.Dense(hidden, n_out, seed=seed + 1))


def test_fit_decreases_the_loss_and_fills_the_history(digits):
    x_train, y_train, x_test, y_test = digits
    model = mlp()
    h = tg.train.fit(model, x_train[:400], y_train[:400], optimizer=tg.optim.Adam(lr=1e-2), epochs=4,
                     batch_size=32, validation_data=(x_test, y_test), progress=False, verbose=False)
    assert set(h) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    assert all(len(v) == 4 for v in h.values()) and h.epochs == 4
    assert h["loss"][-1] < 0.7 * h["loss"][0] and h["val_loss"][-1] < h["val_loss"][0]
    assert np.all(np.diff(h["loss"]) < 0)
    assert h["val_accuracy"][-1] > 0.8 and h["lr"] == [1e-2] * 4 and all(t > 0 for t in h["time"])
    assert h.best_epoch == int(np.argmin(h["val_loss"])) and not h.stopped_early and h.monitor == "val_loss"
    # one training graph: two shapes (full batches, the last partial batch) at most
    assert len(h.train_step._cache) <= 2
    # the history's validation numbers are what evaluate() reports for the final parameters
    nodes = len(h.graph)
    ev = tg.train.evaluate(model, x_test, y_test)
    assert ev["loss"] == pytest.approx(h["val_loss"][-1], rel=1e-6)
    assert ev["accuracy"] == pytest.approx(h["val_accuracy"][-1])
    pred = tg.train.predict(model, x_test, batch_size=100)
    assert pred.shape == (450, 10) and np.mean(pred.argmax(1) == y_test) == pytest.approx(ev["accuracy"])
    assert len(h.graph) == nodes and model.graph is h.graph   # both reused fit's evaluation function


def test_fit_in_float64_trains_float64_parameters(digits):
    x_train, y_train, _, _ = digits
    model = mlp()
    h = tg.train.fit(model, x_train[:100].astype(np.float64), y_train[:100], optimizer=tg.optim.Adam(lr=1e-2),
                     epochs=2, progress=False, verbose=False)
    assert all(p.dtype == "float64" for p in model.parameters()) and h["loss"][1] < h["loss"][0]
    assert tg.train.predict(model, x_train[:5].astype(np.float64)).dtype == np.float64


def test_fit_is_reproducible(digits):
    x_train, y_train, _, _ = digits
    runs = []
    for _ in range(2):
        model = mlp()
        tg.train.fit(model, x_train[:200], y_train[:200], optimizer=tg.optim.SGD(lr=0.1), epochs=2,
                     progress=False, verbose=False, seed=3)
        runs.append(model.state_dict())
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


def test_early_stopping_restores_the_best_parameters(digits):
    x_train, y_train, x_test, y_test = digits
    rng = np.random.default_rng(0)
    x_small, y_small = x_train[:150], y_train[:150].copy()
    noisy = rng.random(150) < 0.3                      # label noise: the model overfits
    y_small[noisy] = rng.integers(0, 10, noisy.sum())
    model = tg.nn.Sequential(tg.nn.Dense(64, 128), tg.nn.ReLU(), tg.nn.Dense(128, 10, seed=1))
    snapshots = []
    h = tg.train.fit(model, x_small, y_small, optimizer=tg.optim.Adam(lr=3e-3), epochs=60, batch_size=16,
                     validation_data=(x_test[:200], y_test[:200]), early_stopping=3, progress=False,
                     verbose=False, on_epoch_end=lambda epoch, hist: snapshots.append(model.state_dict()))
    patience = 3
    assert h.stopped_early and h.epochs < 60
    assert h.best_epoch == int(np.argmin(h["val_loss"])) and h.best_epoch > 0
    assert h.epochs == h.best_epoch + 1 + patience     # stopped `patience` epochs after the best one
    final = model.state_dict()
    for name, value in final.items():
        np.testing.assert_array_equal(value, snapshots[h.best_epoch][name])
    assert any(not np.array_equal(final[k], snapshots[-1][k]) for k in final)
    # the restored parameters give the best validation loss again
    assert tg.train.evaluate(model, x_test[:200], y_test[:200])["loss"] == pytest.approx(min(h["val_loss"]),
                                                                                         rel=1e-6)


def test_restore_best_false_keeps_the_last_parameters(digits):
    x_train, y_train, x_test, y_test = digits
    model = mlp()
    last = []
    h = tg.train.fit(model, x_train[:100], y_train[:100], optimizer=tg.optim.Adam(lr=1e-2), epochs=6,
                     validation_data=(x_test[:50], 9 - y_test[:50]), early_stopping=1, restore_best=False,
                     progress=False, verbose=False, on_epoch_end=lambda e, hist: last.append(model.state_dict()))
    assert h.stopped_early
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, last[-1][k])


def test_a_schedule_changes_the_learning_rate_every_epoch(digits):
    x_train, y_train, _, _ = digits
    opt = tg.optim.SGD(lr=0.1)
    sched = tg.optim.schedules.StepLR(opt, step_size=2, gamma=0.5)
    h = tg.train.fit(mlp(), x_train[:64], y_train[:64], optimizer=opt, epochs=5, schedule=sched,
                     progress=False, verbose=False)
    np.testing.assert_allclose(h["lr"], [0.1, 0.1, 0.05, 0.05, 0.025])
    assert opt.lr == pytest.approx(0.025)   # stepped once more after the last epoch
    assert len(h.train_step._cache) == 1               # lr changes never recompile


def test_reduce_on_plateau_receives_the_validation_loss(digits):
    x_train, y_train, x_test, y_test = digits
    opt = tg.optim.Adam(lr=1e-2)
    seen = []

    class Spy(tg.optim.schedules.ReduceLROnPlateau):
        def step(self, metrics, epoch=None):
            seen.append(metrics)
            super().step(metrics, epoch)

    sched = Spy(opt, factor=0.5, patience=0)
    # wrong validation labels: the validation loss rises every epoch, so the lr halves each time
    h = tg.train.fit(mlp(), x_train[:200], y_train[:200], optimizer=opt, epochs=4, schedule=sched,
                     validation_data=(x_test[:100], (y_test[:100] + 1) % 10), progress=False, verbose=False)
    assert seen == h["val_loss"]
    assert np.all(np.diff(h["val_loss"]) > 0)
    np.testing.assert_allclose(h["lr"], [1e-2, 1e-2, 5e-3, 2.5e-3])


def test_per_batch_schedule(digits):
    x_train, y_train, _, _ = digits
    opt = tg.optim.SGD(lr=0.1)
    sched = tg.optim.schedules.ExponentialLR(opt, gamma=0.9)
    h = tg.train.fit(mlp(), x_train[:64], y_train[:64], optimizer=opt, epochs=2, batch_size=16,
                     schedule=sched, schedule_interval="batch", progress=False, verbose=False)
    np.testing.assert_allclose(h["lr"], [0.1, 0.1 * 0.9 ** 4])


def test_svrg_take_snapshot_is_called_every_epoch(digits):
    x_train, y_train, _, _ = digits
    calls = []

    class CountingSVRG(tg.optim.SVRG):
        def take_snapshot(self, inputs, arrays, batch_size=256, backend="interp"):
            calls.append((len(arrays[0]), [t.name for t in inputs], backend))
            return super().take_snapshot(inputs, arrays, batch_size=batch_size, backend=backend)

    h = tg.train.fit(mlp(), x_train[:300], y_train[:300], optimizer=CountingSVRG(lr=0.05), epochs=3,
                     progress=False, verbose=False)
    assert calls == [(300, ["x", "y"], tg.train.default_backend())] * 3   # fit's default backend
    assert h["loss"][-1] < h["loss"][0]


def test_svrg_hook_on_a_duck_typed_optimizer():
    """fit only relies on the documented interface: updates(), lr, take_snapshot()."""
    events = []

    class HandSGD:
        lr = 0.5

        def updates(self, loss, params, clip_norm=None):
            grads = tg.grad(loss, params)
            return [(p, p - self.lr * g) for p, g in zip(params, grads)]

        def take_snapshot(self, inputs, arrays, batch_size=256, backend="interp"):
            events.append(("snapshot", len(arrays[1])))

    x, y = tg.data.xor()
    h = tg.train.fit(mlp(8, n_in=2, n_out=2), x, y, optimizer=HandSGD(), epochs=3, batch_size=4,
                     progress=False, verbose=False, on_epoch_end=lambda e, hist: events.append(("end", e)))
    assert events == [("snapshot", 4), ("end", 0), ("snapshot", 4), ("end", 1), ("snapshot", 4), ("end", 2)]


def test_penalty_is_added_and_shrinks_the_weights(digits):
    x_train, y_train, _, _ = digits
    norms, losses = [], []
    for penalty in (None, lambda ps: tg.nn.l2(ps, 0.1)):
        model = mlp()
        h = tg.train.fit(model, x_train[:200], y_train[:200], optimizer=tg.optim.SGD(lr=0.1), epochs=3,
                         penalty=penalty, progress=False, verbose=False)
        norms.append(sum(float(np.sum(w.value ** 2)) for w in model.weights()))
        losses.append(h["loss"][0])
    assert norms[1] < 0.8 * norms[0]
    assert losses[1] > losses[0]                        # the reported training loss includes the penalty


def test_clip_norm_bounds_each_step(digits):
    x_train, y_train, _, _ = digits
    model = mlp()
    g = tg.Graph()
    model(tg.placeholder("x0", (None, 64), graph=g))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    tg.train.fit(model, x_train[:64], y_train[:64], optimizer=tg.optim.SGD(lr=1.0), epochs=1, batch_size=64,
                 clip_norm=1e-3, progress=False, verbose=False)
    after = model.state_dict()
    step = np.sqrt(sum(np.sum((after[k] - before[k]) ** 2) for k in after))
    assert 0 < step <= 1e-3 * (1 + 1e-4)


def test_mse_and_bce_losses_and_target_shapes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 3)).astype(np.float32)
    w = np.array([1.5, -2.0, 0.5], np.float32)
    y_reg = x @ w + 0.3                                  # (N,) targets for a (N, 1) output
    lin = tg.nn.Dense(3, 1, init="zeros")
    h = tg.train.fit(lin, x, y_reg, loss="mse", optimizer=tg.optim.SGD(lr=0.1), epochs=30, metrics=("mae",),
                     progress=False, verbose=False)
    W, b = lin.parameters()
    np.testing.assert_allclose(W.value[:, 0], w, atol=1e-3)
    np.testing.assert_allclose(b.value, [0.3], atol=1e-3)
    assert h["mae"][-1] < 1e-2 and h["loss"][-1] < 1e-5

    y_bin = (x @ w > 0).astype(np.float32)
    clf = tg.nn.Dense(3, 1, seed=1)
    h = tg.train.fit(clf, x, y_bin, loss="bce", optimizer=tg.optim.Adam(lr=0.05), epochs=20,
                     validation_data=(x, y_bin), progress=False, verbose=False)
    assert h["val_accuracy"][-1] > 0.95
    r = tg.train.evaluate(clf, x, y_bin, loss="bce")
    assert r["accuracy"] == pytest.approx(h["val_accuracy"][-1])


def test_callable_loss_and_one_hot_targets():
    x, y = tg.data.two_spirals(n=60, noise=0.0, seed=0)
    onehot = np.eye(2, dtype=np.float32)[y]

    def squared_error(out, target):
        return tg.sum((tg.softmax(out) - target) ** 2, axis=-1)

    model = tg.nn.Sequential(tg.nn.Dense(2, 32), tg.nn.Tanh(), tg.nn.Dense(32, 32, seed=1), tg.nn.Tanh(),
                             tg.nn.Dense(32, 2, seed=2))
    h = tg.train.fit(model, x, onehot, loss=squared_error, optimizer=tg.optim.Adam(lr=1e-2), epochs=40,
                     batch_size=30, validation_data=(x, onehot), progress=False, verbose=False)
    assert h["loss"][-1] < h["loss"][0] and h["val_accuracy"][-1] > 0.8
    h2 = tg.train.fit(model, x, onehot, loss="cross_entropy", optimizer=tg.optim.Adam(lr=1e-2), epochs=2,
                      validation_data=(x, onehot), progress=False, verbose=False)
    assert h2["val_accuracy"][-1] > 0.8


def test_batchnorm_and_dropout_models_train_and_evaluate(digits):
    x_train, y_train, x_test, y_test = digits
    model = tg.nn.Sequential(tg.nn.Dense(64, 32), tg.nn.BatchNorm(32), tg.nn.ReLU(), tg.nn.Dropout(0.2),
                             tg.nn.Dense(32, 10, seed=1))
    h = tg.train.fit(model, x_train[:300], y_train[:300], optimizer=tg.optim.Adam(lr=1e-2), epochs=3,
                     validation_data=(x_test, y_test), progress=False, verbose=False)
    mean, var = model.state()
    assert not np.allclose(mean.value, 0) and not np.allclose(var.value, 1)   # running stats were updated
    assert h["val_accuracy"][-1] > 0.8
    before = mean.value.copy()
    p1, p2 = tg.train.predict(model, x_test), tg.train.predict(model, x_test)
    np.testing.assert_array_equal(p1, p2)                # evaluation mode: deterministic
    np.testing.assert_array_equal(mean.value, before)    # and it does not touch the statistics


def test_predict_and_evaluate_on_a_model_never_fit():
    model = tg.nn.Dense(3, 2, seed=5)
    x = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    out = tg.train.predict(model, x, batch_size=3)
    W, b = model.parameters()
    np.testing.assert_allclose(out, x @ W.value + b.value, rtol=1e-5, atol=1e-6)
    r = tg.train.evaluate(model, x, np.zeros(7, np.int64), metrics=("accuracy",))
    want = -np.log(np.exp(out[:, 0]) / np.exp(out).sum(1))
    assert r["loss"] == pytest.approx(want.mean(), rel=1e-5)
    assert r["accuracy"] == pytest.approx(np.mean(out.argmax(1) == 0))


def test_verbose_progress_and_augment(digits, capsys):
    x_train, y_train, _, _ = digits
    seen = []

    def augment(xb, seed):
        seen.append(seed)
        return tg.data.add_gaussian_noise(xb, 0.01, seed=seed)

    h = tg.train.fit(mlp(), x_train[:64], y_train[:64], optimizer=tg.optim.SGD(lr=0.1), epochs=2,
                     batch_size=32, progress=True, verbose=True, augment=augment)
    out = capsys.readouterr()
    assert "epoch 1/2" in out.out and "epoch 2/2" in out.out and "loss" in out.out
    assert len(seen) == 4 and len(set(seen)) == 4 and h.epochs == 2


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_divergence_stops_with_a_warning():
    x, y = tg.data.xor()

    class Exploding:
        lr = 1.0

        def updates(self, loss, params, clip_norm=None):
            return [(p, p * 1e30) for p in params]

    with pytest.warns(RuntimeWarning, match="training loss became"):
        h = tg.train.fit(mlp(4, n_in=2, n_out=2), x, y, optimizer=Exploding(), epochs=5, batch_size=1,
                         progress=False, verbose=False)
    assert h.diverged and h.epochs < 5


def test_bad_arguments():
    x, y = tg.data.xor()
    with pytest.raises(ValueError, match="unknown loss"):
        tg.train.fit(mlp(4, n_in=2, n_out=2), x, y, loss="hinge", optimizer=tg.optim.SGD(lr=0.1),
                     progress=False, verbose=False)
    with pytest.raises(ValueError, match="samples"):
        tg.train.fit(mlp(4, n_in=2, n_out=2), x, y[:3], optimizer=tg.optim.SGD(lr=0.1), progress=False,
                     verbose=False)


def test_digits_mlp_job():
    history, acc = tg.train.digits_mlp(epochs=8, seed=0, progress=False)
    assert acc >= 0.95 and history.epochs == 8
    assert acc == pytest.approx(history["val_accuracy"][-1])


def _load_example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp_digits", "cnn_digits"])
def test_digits_examples_reach_95_percent(name, capsys):
    result = _load_example(name).main(verbose=False)
    assert result["test_accuracy"] >= 0.95
    assert "test accuracy" in capsys.readouterr().out
