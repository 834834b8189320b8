"""tg.optim.schedules against torch.optim.lr_scheduler: the lr sequence over 60 steps
(the initial lr set at construction included), get_last_lr, state_dict round trips,
and a schedule driving a compiled step without recompiling.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import tensorforge as tg
from tensorforge.optim import schedules

STEPS = 60
BASE_LR = 0.1

# (class name, kwargs); both libraries get the same kwargs
CASES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("StepLR", dict(step_size=1)),
    ("ExponentialLR", dict(gamma=0.93)),
    ("LinearLR", dict()),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.6, total_iters=25)),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.0, total_iters=40)),
    ("CosineAnnealingLR", dict(T_max=20)),          # runs past T_max: the recursive form rises again
    ("CosineAnnealingLR", dict(T_max=13, eta_min=0.01)),
    ("CosineAnnealingWarmRestarts", dict(T_0=10)),
    ("CosineAnnealingWarmRestarts", dict(T_0=5, T_mult=2, eta_min=0.001)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=7, cycle_momentum=False)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=5, step_size_down=9, mode="triangular2",
                      cycle_momentum=False)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=6, mode="exp_range", gamma=0.97,
                      cycle_momentum=False)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=STEPS + 1, cycle_momentum=False)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=STEPS + 1, anneal_strategy="linear", pct_start=0.25,
                        cycle_momentum=False)),
    ("OneCycleLR", dict(max_lr=0.5, epochs=1, steps_per_epoch=STEPS + 1, three_phase=True, div_factor=10.0,
                        final_div_factor=100.0, cycle_momentum=False)),
]


def _torch_opt(lr=BASE_LR):
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)


def _sequences(name, kwargs, steps=STEPS):
    ours_opt = tg.optim.SGD(lr=BASE_LR)
    ours = getattr(schedules, name)(ours_opt, **kwargs)
    topt = _torch_opt()
    theirs = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    a, b = [ours_opt.lr], [topt.param_groups[0]["lr"]]
    for _ in range(steps):
        topt.step()  # (no gradients: only keeps torch from warning about the call order)
        theirs.step()
        ours.step()
        assert ours.get_last_lr() == [ours_opt.lr]
        a.append(ours_opt.lr)
        b.append(theirs.get_last_lr()[0])
    return np.array(a), np.array(b)


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_lr_sequence_matches_torch(name, kwargs):
    ours, theirs = _sequences(name, kwargs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-15)
    assert len(set(np.round(ours, 12))) > 2  # the schedule does change the lr


PLATEAU_CASES = [
    dict(),
    dict(patience=2, factor=0.5),
    dict(mode="max", patience=1, factor=0.3, threshold=0.05),
    dict(patience=0, threshold_mode="abs", threshold=0.05, cooldown=3, min_lr=0.004),
    dict(mode="max", threshold_mode="abs", patience=3, factor=0.7, cooldown=1, eps=1e-3),
]


@pytest.mark.parametrize("kwargs", PLATEAU_CASES)
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    r = np.random.default_rng(0)
    # a noisy metric that improves, plateaus, and improves again
    metric = np.concatenate([np.linspace(1, 0.5, 15), 0.5 + 0.02 * r.standard_normal(25),
                             np.linspace(0.5, 0.2, 20)])
    metric = metric if kwargs.get("mode", "min") == "min" else 2.0 - metric
    opt = tg.optim.Adam(lr=BASE_LR)
    ours = schedules.ReduceLROnPlateau(opt, **kwargs)
    topt = _torch_opt()
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    a, b = [], []
    for m in metric:
        ours.step(float(m))
        theirs.step(float(m))
        a.append(ours.get_last_lr()[0])
        b.append(theirs.get_last_lr()[0])
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert a[-1] < BASE_LR


def test_construction_sets_the_initial_lr_like_torch():
    opt = tg.optim.SGD(lr=BASE_LR)
    schedules.OneCycleLR(opt, max_lr=1.0, total_steps=10, cycle_momentum=False)
    assert opt.lr == pytest.approx(1.0 / 25) and opt.initial_lr == pytest.approx(1.0 / 25)
    opt = tg.optim.SGD(lr=BASE_LR)
    schedules.CyclicLR(opt, base_lr=0.003, max_lr=0.1, cycle_momentum=False)
    assert opt.lr == 0.003
    opt = tg.optim.SGD(lr=BASE_LR)
    schedules.LinearLR(opt, start_factor=0.25)
    assert opt.lr == pytest.approx(BASE_LR * 0.25) and opt.initial_lr == BASE_LR


def test_momentum_cycling_warns_that_only_lr_is_cycled():
    with pytest.warns(UserWarning, match="learning rate only"):
        schedules.CyclicLR(tg.optim.SGD(lr=0.1, momentum=0.9), base_lr=0.01, max_lr=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schedules.CyclicLR(tg.optim.SGD(lr=0.1), base_lr=0.01, max_lr=0.1, cycle_momentum=False)


@pytest.mark.parametrize("name,kwargs", [CASES[0], CASES[6], CASES[9], CASES[11], CASES[14]])
def test_state_dict_round_trip(name, kwargs):
    opt = tg.optim.SGD(lr=BASE_LR)
    sched = getattr(schedules, name)(opt, **kwargs)
    for _ in range(17):
        sched.step()
    state = sched.state_dict()
    assert "optimizer" not in state and all(not callable(v) for v in state.values())
    rest = []
    for _ in range(20):
        sched.step()
        rest.append(opt.lr)
    # a fresh optimizer and schedule, restored to step 17 (the optimizer's lr restored too,
    # as a checkpoint restores the optimizer's state)
    opt2 = tg.optim.SGD(lr=BASE_LR)
    sched2 = getattr(schedules, name)(opt2, **kwargs)
    sched2.load_state_dict(state)
    opt2.lr = state["_last_lr"][0]
    rest2 = []
    for _ in range(20):
        sched2.step()
        rest2.append(opt2.lr)
    assert rest2 == rest


def test_plateau_state_dict_round_trip():
    opt = tg.optim.SGD(lr=BASE_LR)
    sched = schedules.ReduceLROnPlateau(opt, patience=1)
    for m in [1.0, 0.9, 0.95, 0.96]:
        sched.step(m)
    state = sched.state_dict()
    assert state["best"] == 0.9 and state["num_bad_epochs"] == 0 and math.isclose(opt.lr, 0.01)
    sched2 = schedules.ReduceLROnPlateau(tg.optim.SGD(lr=opt.lr))
    sched2.load_state_dict(state)
    for s in (sched, sched2):
        s.step(0.97)
        s.step(0.98)
    assert sched.optimizer.lr == sched2.optimizer.lr == pytest.approx(0.001)


def test_schedule_drives_a_compiled_step_without_recompiling():
    g = tg.Graph()
    with g:
        c = tg.placeholder("c", (2,), dtype="float64")
        W = tg.parameter("W", np.zeros(2))
        d = W - c
        loss = 0.5 * tg.sum(d * d)
        opt = tg.optim.SGD(lr=0.5)
        step = tg.compile([c], [loss], updates=opt.updates(loss, [W]))
    sched = schedules.ExponentialLR(opt, gamma=0.5)
    target = np.array([1.0, -1.0])
    expected = np.zeros(2)
    for epoch in range(5):
        step(target)
        expected = expected + 0.5 * 0.5 ** epoch * (target - expected)
        sched.step()
    np.testing.assert_allclose(W.value, expected, rtol=1e-12)
    assert len(step._cache) == 1


def test_onecycle_refuses_to_step_past_total_steps():
    opt = tg.optim.SGD(lr=BASE_LR)
    sched = schedules.OneCycleLR(opt, max_lr=1.0, total_steps=5, cycle_momentum=False)
    for _ in range(4):
        sched.step()
    with pytest.raises(ValueError, match="total steps"):
        sched.step()
        sched.step()


def test_step_with_epoch_uses_the_closed_form():
    ours_opt, topt = tg.optim.SGD(lr=BASE_LR), _torch_opt()
    ours = schedules.CosineAnnealingLR(ours_opt, T_max=10)
    theirs = torch.optim.lr_scheduler.CosineAnnealingLR(topt, T_max=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for epoch in [3, 7, 4]:
            topt.step()
            theirs.step(epoch)
            ours.step(epoch)
            assert ours_opt.lr == pytest.approx(theirs.get_last_lr()[0], rel=1e-12)
