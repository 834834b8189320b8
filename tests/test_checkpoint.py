"""Training checkpoints: fit(checkpoint_dir=...) saves every epoch; fit(resume=True) continues
from the last one and ends exactly where an uninterrupted run ends."""
from __future__ import annotations

import json

import numpy as np
import pytest

import tensorforge as tg
from tensorforge import nn, optim
from tensorforge.export import CheckpointError
from tensorforge.optim.schedules import StepLR

EPOCHS = 4


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    return x, y


def _run(tmp_dir=None, resume=False, stop_after=None, optimizer=None):
    """A fresh model/optimizer/schedule (same seeds) trained for EPOCHS epochs, maybe interrupted."""
    model = nn.Sequential(nn.Dense(5, 8, seed=0), nn.BatchNorm(8), nn.ReLU(), nn.Dropout(0.3),
                          nn.Dense(8, 3, seed=1))
    opt = optimizer or optim.Adam(lr=0.05)
    schedule = StepLR(opt, step_size=1, gamma=0.5)

    def stop(epoch, history):
        hist_epochs_run.append(epoch)
        if stop_after is not None and epoch + 1 == stop_after:
            raise KeyboardInterrupt("simulated crash")

    hist_epochs_run = []
    x, y = _data()
    hist = tg.train.fit(model, x, y, optimizer=opt, schedule=schedule, epochs=EPOCHS, batch_size=8, seed=3,
                        validation_data=(x[:10], y[:10]), progress=False, verbose=False,
                        checkpoint_dir=tmp_dir, resume=resume, on_epoch_end=stop)
    hist.epochs_run = hist_epochs_run
    return model, opt, schedule, hist


def _values(model, graph):
    return {t.name: np.array(t.value) for t in model.variables(graph)}


def test_resume_matches_uninterrupted_run_exactly(tmp_path):
    ref_model, ref_opt, ref_sched, ref_hist = _run()
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        _run(ckpt, stop_after=2)
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    assert meta["epoch"] == 2 and meta["shuffle"] == {"seed": 3, "next_epoch": 2}
    assert meta["rng_counter"] > 0                                 # dropout drew random numbers
    model, opt, sched, hist = _run(ckpt, resume=True)
    assert hist.epochs_run == [2, 3]                              # really resumed, not restarted
    want, got = _values(ref_model, ref_hist.graph), _values(model, hist.graph)
    assert set(want) == set(got) and len(want) >= 6             # weights and batch-norm statistics
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    ref_state, state = ref_opt.state_dict(), opt.state_dict()
    assert set(ref_state) == set(state)
    for k in ref_state:
        np.testing.assert_array_equal(state[k], ref_state[k], err_msg=k)
    assert sched.last_epoch == ref_sched.last_epoch and opt.lr == ref_opt.lr
    assert int(hist.graph.by_name("rng_counter").value) == int(ref_hist.graph.by_name("rng_counter").value)
    assert hist["loss"] == ref_hist["loss"] and hist["val_loss"] == ref_hist["val_loss"]
    assert hist.epochs == EPOCHS


def test_checkpoint_files_are_json_and_plain_npz(tmp_path):
    _run(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["checkpoint.json", f"ckpt-epoch{EPOCHS:04d}.npz"]   # older ones and temp files gone
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["epoch"] == EPOCHS and meta["schedule"]["last_epoch"] == EPOCHS
    assert len(meta["history"]["loss"]) == EPOCHS
    with np.load(tmp_path / meta["arrays"], allow_pickle=False) as f:
        names = set(f.files)
        assert all(f[k].dtype != object for k in f.files)
    assert {"dense0/W", "rng_counter", "opt:lr", "opt:step"} <= names
    assert any(k.startswith("opt:dense0/W/") for k in names)


def test_resume_without_checkpoint_starts_fresh_and_finished_run_does_nothing(tmp_path):
    ref_model, _, _, ref_hist = _run()
    model, _, _, hist = _run(tmp_path, resume=True)          # nothing to resume from
    for name, v in _values(ref_model, ref_hist.graph).items():
        np.testing.assert_array_equal(_values(model, hist.graph)[name], v)
    again_model, _, _, again = _run(tmp_path, resume=True)  # all epochs already done
    assert again.epochs == EPOCHS and again["loss"] == hist["loss"] and again.epochs_run == []
    for name, v in _values(model, hist.graph).items():
        np.testing.assert_array_equal(_values(again_model, again.graph)[name], v)


def test_resume_needs_a_directory_and_a_matching_model(tmp_path):
    x, y = _data()
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
        tg.train.fit(nn.Dense(5, 3), x, y, epochs=1, resume=True, progress=False, verbose=False)
    tg.train.fit(nn.Dense(5, 3, seed=0), x, y, epochs=1, checkpoint_dir=tmp_path, progress=False, verbose=False)
    with pytest.raises(CheckpointError, match="shape"):
        tg.train.fit(nn.Sequential(nn.Dense(5, 4, seed=0)), x, y, epochs=2, checkpoint_dir=tmp_path, resume=True,
                     progress=False, verbose=False)
    with pytest.raises(CheckpointError, match="seed"):
        tg.train.fit(nn.Dense(5, 3, seed=0), x, y, epochs=2, checkpoint_dir=tmp_path, resume=True, seed=9,
                     progress=False, verbose=False)
