"""tg.train.fit options added in issue 10: shuffle, drop_last, steps, eval_every, callbacks."""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg


def _data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return x, y


def _fit(**kw):
    x, y = kw.pop("data", _data())
    model = kw.pop("model", None) or tg.nn.Sequential(tg.nn.Dense(3, 2, seed=0))
    kw.setdefault("optimizer", tg.optim.SGD(lr=0.1))
    return tg.train.fit(model, x, y, progress=False, verbose=False, **kw)


def test_defaults_unchanged():
    h = _fit(epochs=2, batch_size=8)
    assert h.epochs == 2 and h.steps == 6 and h.stop_reason is None and h.evaluations == []


def test_shuffle_false_feeds_batches_in_order():
    seen = []

    def batch_sum(out, y):       # a metric sees every batch's targets in the order fed
        seen.append(y.copy())
        return 0.0

    x, y = _data()
    _fit(data=(x, y), epochs=1, batch_size=8, shuffle=False, metrics=[batch_sum])
    np.testing.assert_array_equal(np.concatenate(seen), y)
    seen.clear()
    _fit(data=(x, y), epochs=1, batch_size=8, metrics=[batch_sum])
    assert not np.array_equal(np.concatenate(seen), y)      # shuffled by default


def test_drop_last_skips_the_short_batch():
    batches = []
    _fit(epochs=2, batch_size=8, drop_last=True, callbacks=lambda info: info.event == "step" and batches.append(
        info.batch) and False)
    assert batches == [0, 1, 0, 1]
    h = _fit(epochs=1, batch_size=8)
    assert h.steps == 3
    with pytest.raises(ValueError, match="drop_last"):
        _fit(epochs=1, batch_size=64, drop_last=True)


def test_steps_budget_stops_mid_epoch_and_sets_epochs():
    h = _fit(steps=4, batch_size=8)            # 3 batches per epoch: 1 full epoch + 1 step
    assert h.steps == 4 and h.epochs == 2 and h.stop_reason == "steps"
    h = _fit(steps=100, epochs=2, batch_size=8)  # epochs still bound the run
    assert h.steps == 6 and h.stop_reason is None
    with pytest.raises(ValueError, match="steps"):
        _fit(steps=0)


def test_eval_every_records_evaluations():
    x, y = _data()
    xv, yv = _data(8, seed=1)
    h = _fit(data=(x, y), epochs=2, batch_size=8, validation_data=(xv, yv), eval_every=2)
    assert [e["step"] for e in h.evaluations] == [2, 4, 6]
    assert {"val_loss", "val_accuracy", "epoch"} <= set(h.evaluations[0])
    # the evaluation at the last step of an epoch equals that epoch's validation
    assert h.evaluations[-1]["val_loss"] == pytest.approx(h["val_loss"][-1])
    with pytest.raises(ValueError, match="validation_data"):
        _fit(epochs=1, eval_every=2)


def test_callbacks_get_info_and_can_stop():
    events = []

    def record(info):
        events.append((info.event, info.epoch, info.step, info["batch"]))
        assert info["loss"] is not None and np.isfinite(info.loss) and info.lr == pytest.approx(0.1)

    h = _fit(epochs=2, batch_size=8, callbacks=[record])
    assert events[:4] == [("step", 0, 1, 0), ("step", 0, 2, 1), ("step", 0, 3, 2), ("epoch", 0, 3, None)]
    assert len(events) == 8 and h.stop_reason is None

    h = _fit(epochs=5, batch_size=8, callbacks=lambda info: info.step == 2)
    assert h.steps == 2 and h.stop_reason == "callback" and h.epochs == 1

    def stop_at_epoch_end(info):
        if info.event == "epoch" and info["loss"] is not None:
            raise tg.train.StopTraining()

    h = _fit(epochs=5, batch_size=8, callbacks=stop_at_epoch_end)
    assert h.epochs == 1 and h.steps == 3 and h.stop_reason == "callback"
    with pytest.raises(TypeError, match="callbacks"):
        _fit(epochs=1, callbacks=[3])


def test_epoch_callback_sees_validation_logs():
    xv, yv = _data(8, seed=1)
    logs = []
    _fit(epochs=1, batch_size=8, validation_data=(xv, yv),
         callbacks=lambda info: info.event == "epoch" and logs.append(dict(info.logs)))
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(logs[0])


def test_integer_inputs_for_an_embedding_model():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 6, (24, 3))
    labels = (ids[:, 0] > 2).astype(np.int64)
    model = tg.nn.Sequential(tg.nn.Embedding(6, 4), tg.nn.Flatten(), tg.nn.Dense(12, 2))
    h = tg.train.fit(model, ids, labels, epochs=2, batch_size=8, input_dtype="int64", progress=False,
                     verbose=False, optimizer=tg.optim.Adam(lr=0.05))
    assert h.epochs == 2 and h.graph.by_name("x").dtype == "int64"
    assert tg.train.predict(model, ids, input_dtype="int64").shape == (24, 2)
    assert set(tg.train.evaluate(model, ids, labels, input_dtype="int64")) == {"loss", "accuracy"}
