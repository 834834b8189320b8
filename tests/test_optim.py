"""tg.optim against torch.optim (float64): every optimizer and its main variants follow
torch's trajectory step by step; gradient clipping against clip_grad_norm_; the
learning rate as a graph input (no recompilation); state_dict round trips; SVRG.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tensorforge as tg

STEPS = 25
SHAPES = {"W1": (4, 5), "b1": (5,), "W2": (5, 2), "b2": (2,)}


@pytest.fixture(autouse=True)
def torch_float64():
    """torch keeps step counts and NAdam's mu_product in the default dtype: make it float64."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _problem(seed=0):
    """Initial values and STEPS minibatches for a 2-layer tanh net with a squared loss."""
    r = np.random.default_rng(seed)
    init = {k: r.standard_normal(s) * 0.5 for k, s in SHAPES.items()}
    batches = [(r.standard_normal((8, 4)), r.standard_normal((8, 2))) for _ in range(STEPS)]
    return init, batches


def _tg_net(init):
    """The net in a fresh graph: (graph, x, y, loss, params in SHAPES order)."""
    g = tg.Graph("net")
    with g:
        x = tg.placeholder("x", (None, 4), dtype="float64")
        y = tg.placeholder("y", (None, 2), dtype="float64")
        params = [tg.parameter(k, v.copy()) for k, v in init.items()]
        W1, b1, W2, b2 = params
        out = tg.tanh(x @ W1 + b1) @ W2 + b2
        d = out - y
        loss = tg.mean(d * d) + 0.1 * tg.mean(tg.tanh(W1) * W1)  # a non-quadratic penalty too
    return g, x, y, loss, params


def _torch_loss(tp, xb, yb):
    W1, b1, W2, b2 = tp
    out = torch.tanh(torch.from_numpy(xb) @ W1 + b1) @ W2 + b2
    d = out - torch.from_numpy(yb)
    return (d * d).mean() + 0.1 * (torch.tanh(W1) * W1).mean()


def _torch_params(init):
    return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in init.values()]


def _torch_step(opt, tp, xb, yb, clip_norm=None):
    opt.zero_grad()
    _torch_loss(tp, xb, yb).backward()
    if clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(tp, clip_norm)
    opt.step()


CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05)),
    ("SGD", dict(lr=0.01, momentum=0.5, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.02, initial_accumulator_value=0.1)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.02)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.9, weight_decay=0.02)),
    ("RMSprop", dict(lr=0.005, momentum=0.5)),
    ("Adam", dict(lr=0.02)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), amsgrad=True, weight_decay=0.02)),
    ("Adam", dict(lr=0.01, maximize=True)),
    ("AdamW", dict(lr=0.02)),
    ("AdamW", dict(lr=0.02, weight_decay=0.1, amsgrad=True)),
    ("Adamax", dict(lr=0.02)),
    ("Adamax", dict(lr=0.02, betas=(0.8, 0.95), weight_decay=0.02)),
    ("NAdam", dict(lr=0.02)),
    ("NAdam", dict(lr=0.02, weight_decay=0.05, decoupled_weight_decay=True, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.02, weight_decay=0.05)),
]


def _run_against_torch(name, kwargs, clip_norm=None):
    init, batches = _problem()
    g, x, y, loss, params = _tg_net(init)
    opt = getattr(tg.optim, name)(**kwargs)
    step = tg.compile([x, y], [loss], updates=opt.updates(loss, params, clip_norm=clip_norm), backend="interp")
    tp = _torch_params(init)
    topt = getattr(torch.optim, name)(tp, foreach=False, **kwargs)
    for i, (xb, yb) in enumerate(batches):
        step(xb, yb)
        _torch_step(topt, tp, xb, yb, clip_norm)
        for p, t in zip(params, tp):
            np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-5, atol=1e-12,
                                       err_msg=f"{name}{kwargs}: {p.name} after step {i + 1}")
    # the trajectory moved: the comparison is not between two frozen parameter sets
    assert not np.allclose(params[0].value, init["W1"])
    return opt, step


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_trajectory_matches_torch(name, kwargs):
    _run_against_torch(name, kwargs)


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.05))])
def test_clip_norm_in_updates_matches_torch(name, kwargs):
    _run_against_torch(name, kwargs, clip_norm=0.05)


def test_defaults_match_torch():
    """Every hyper-parameter default is torch's."""
    import inspect
    for name in ["SGD", "Adagrad", "Adadelta", "RMSprop", "Adam", "AdamW", "Adamax", "NAdam"]:
        ours = inspect.signature(getattr(tg.optim, name)).parameters
        theirs = inspect.signature(getattr(torch.optim, name)).parameters
        for arg, p in ours.items():
            assert arg in theirs, f"{name}: torch has no argument {arg!r}"
            assert p.default == theirs[arg].default, f"{name}.{arg}: {p.default} != {theirs[arg].default}"
        assert tg.optim.SGD().lr == 1e-3 and tg.optim.NAdam().lr == 2e-3 and tg.optim.Adadelta().lr == 1.0


def test_float32_params_give_float32_updates():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3))
        W = tg.parameter("W", np.ones((3, 2), np.float32))
        loss = tg.mean(tg.tanh(x @ W))
        ups = tg.optim.Adam(lr=0.1).updates(loss, [W])
    assert all(new.dtype == "float32" for _, new in ups)
    g64 = tg.Graph()
    with g64:
        x = tg.placeholder("x", (None, 3), dtype="float64")
        W = tg.parameter("W", np.ones((3, 2), np.float64))
        loss = tg.mean(tg.tanh(x @ W))
        opt = tg.optim.NAdam(lr=0.1)
        ups = opt.updates(loss, [W])
    assert all(new.dtype == "float64" for _, new in ups)
    assert all(t.dtype == "float64" for t in opt.state_parameters())


# ---- gradient clipping -----------------------------------------------------------------

@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_by_global_norm_matches_torch(max_norm, rng):
    arrays = [rng.standard_normal((3, 4)), rng.standard_normal((5,)), rng.standard_normal(())]
    g = tg.Graph()
    with g:
        hs = [tg.placeholder(f"g{i}", a.shape, dtype="float64") for i, a in enumerate(arrays)]
        clipped = tg.optim.clip_by_global_norm(hs, max_norm)
    out = tg.compile(hs, clipped)(*arrays)
    ts = [torch.tensor(a) for a in arrays]
    for t in ts:
        t.grad = t.detach().clone()
    torch.nn.utils.clip_grad_norm_(ts, max_norm)
    for o, t in zip(out, ts):
        np.testing.assert_allclose(o, t.grad.numpy(), rtol=1e-12)
    # the NumPy form agrees
    for o, n in zip(out, tg.optim.clip_by_global_norm(arrays, max_norm)):
        np.testing.assert_allclose(o, n, rtol=1e-12)
    total = np.sqrt(sum(np.sum(a * a) for a in arrays))
    assert np.isclose(tg.optim.global_norm(arrays), total)
    if max_norm < total:
        assert np.isclose(np.sqrt(sum(np.sum(o * o) for o in out)), max_norm, rtol=1e-5)
    else:
        for o, a in zip(out, arrays):
            np.testing.assert_array_equal(o, a)


# ---- the learning rate is a graph input ------------------------------------------------

def _quadratic(lr_opt):
    """min 0.5 |W - c|² (gradient W - c): one SGD step moves W by lr (c - W)."""
    g = tg.Graph()
    with g:
        c = tg.placeholder("c", (3,), dtype="float64")
        W = tg.parameter("W", np.zeros(3))
        d = W - c
        loss = 0.5 * tg.sum(d * d)
        step = tg.compile([c], [loss], updates=lr_opt.updates(loss, [W]))
    return W, step


def test_lr_change_takes_effect_without_recompiling():
    opt = tg.optim.SGD(lr=0.1)
    W, step = _quadratic(opt)
    c = np.array([1.0, 2.0, 3.0])
    step(c)
    np.testing.assert_allclose(W.value, 0.1 * c)
    for lr in [0.5, 0.0, 0.25]:
        before = W.value.copy()
        opt.lr = lr
        assert opt.lr == lr and isinstance(opt.lr, float)
        step(c)
        np.testing.assert_allclose(W.value, before + lr * (c - before))
    assert len(step._cache) == 1
    with pytest.raises(ValueError):
        opt.lr = -1.0


def test_lr_set_before_updates_and_changes_adam_like_torch():
    opt = tg.optim.Adam(lr=1.0)
    opt.lr = 0.05
    init, batches = _problem(1)
    g, x, y, loss, params = _tg_net(init)
    step = tg.compile([x, y], [loss], updates=opt.updates(loss, params))
    lr_params = [t for t in opt.state_parameters() if t.name.endswith("/lr")]
    assert len(lr_params) == 1 and float(lr_params[0].value) == 0.05
    assert lr_params[0].attrs["trainable"] is False and lr_params[0].dtype == "float64"
    tp = _torch_params(init)
    topt = torch.optim.Adam(tp, lr=0.05, foreach=False)
    for i, (xb, yb) in enumerate(batches[:10]):
        lr = 0.05 * 0.8 ** i
        opt.lr = lr
        topt.param_groups[0]["lr"] = lr
        step(xb, yb)
        _torch_step(topt, tp, xb, yb)
    for p, t in zip(params, tp):
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-5)
    assert len(step._cache) == 1


# ---- state ------------------------------------------------------------------------------

def test_state_names_are_unique_per_optimizer_instance():
    g = tg.Graph()
    with g:
        W = tg.parameter("W", np.ones(3))
        loss = tg.sum(W * W)
        a, b = tg.optim.Adam(), tg.optim.Adam()
        a.updates(loss, [W])
        b.updates(loss, [W])
    names_a = {t.name for t in a.state_parameters()}
    names_b = {t.name for t in b.state_parameters()}
    assert "W/adam_exp_avg" in names_a and not names_a & names_b
    assert all(t.attrs["trainable"] is False for t in a.state_parameters() + b.state_parameters())
    assert [p.name for p in g.parameters(trainable=True)] == ["W"]


@pytest.mark.parametrize("name,kwargs", [("Adam", dict(lr=0.02, amsgrad=True)), ("NAdam", dict(lr=0.02)),
                                         ("SGD", dict(lr=0.05, momentum=0.9)), ("RMSprop", dict(centered=True))])
def test_state_dict_round_trip_resumes_identically(name, kwargs):
    init, batches = _problem(2)

    def build():
        g, x, y, loss, params = _tg_net(init)
        opt = getattr(tg.optim, name)(**kwargs)
        return opt, params, tg.compile([x, y], [loss], updates=opt.updates(loss, params))

    opt, params, step = build()
    for xb, yb in batches[:5]:
        step(xb, yb)
    opt.lr = opt.lr * 0.5
    saved_state = opt.state_dict()
    saved_params = {p.name: p.value.copy() for p in params}
    assert all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in saved_state.items())
    assert float(saved_state["step"]) == 5
    for xb, yb in batches[5:12]:
        step(xb, yb)
    expected = {p.name: p.value.copy() for p in params}

    # resume in a fresh graph, loading the state after building the updates ...
    opt2, params2, step2 = build()
    for p in params2:
        p.value = saved_params[p.name]
    opt2.load_state_dict(saved_state)
    assert opt2.lr == opt.lr
    for xb, yb in batches[5:12]:
        step2(xb, yb)
    for p in params2:
        np.testing.assert_array_equal(p.value, expected[p.name])
    # ... and before building them (the state waits for updates())
    g, x, y, loss, params3 = _tg_net(saved_params)
    opt3 = getattr(tg.optim, name)(**kwargs)
    opt3.load_state_dict(saved_state)
    step3 = tg.compile([x, y], [loss], updates=opt3.updates(loss, params3))
    for xb, yb in batches[5:12]:
        step3(xb, yb)
    for p in params3:
        np.testing.assert_array_equal(p.value, expected[p.name])
    for k, v in opt3.state_dict().items():
        np.testing.assert_array_equal(v, opt.state_dict()[k])


def test_load_state_dict_rejects_mismatched_state():
    init, _ = _problem()
    g, x, y, loss, params = _tg_net(init)
    opt = tg.optim.Adam()
    opt.updates(loss, params)
    state = opt.state_dict()
    del state["W1/exp_avg"]
    with pytest.raises(KeyError, match="W1/exp_avg"):
        opt.load_state_dict(state)


def test_apply_gradients_matches_updates():
    init, batches = _problem(3)
    g, x, y, loss, params = _tg_net(init)
    grads = tg.grad(loss, params)
    opt = tg.optim.RMSprop(lr=0.01, momentum=0.9)
    step = tg.compile([x, y], [loss], updates=opt.apply_gradients(list(zip(params, grads))))
    tp = _torch_params(init)
    topt = torch.optim.RMSprop(tp, lr=0.01, momentum=0.9, foreach=False)
    for xb, yb in batches[:10]:
        step(xb, yb)
        _torch_step(topt, tp, xb, yb)
    for p, t in zip(params, tp):
        np.testing.assert_allclose(p.value, t.detach().numpy(), rtol=1e-5)


def test_bad_arguments_raise_clear_errors():
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (3,), dtype="float64")
        W = tg.parameter("W", np.ones(3))
        n = tg.parameter("n", np.ones(3, np.int64))
        loss = tg.sum(x * W)
    with pytest.raises(ValueError, match="scalar"):
        tg.optim.SGD().updates(x * W, [W])
    with pytest.raises(TypeError, match="not a parameter"):
        tg.optim.SGD().updates(loss, [x])
    with pytest.raises(TypeError, match="floating-point"):
        tg.optim.SGD().updates(loss, [n])
    with pytest.raises(ValueError, match="twice"):
        tg.optim.SGD().updates(loss, [W, W])
    with pytest.raises(ValueError):
        tg.optim.SGD(lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        tg.optim.Adam(betas=(1.0, 0.9))
    # params=None: every trainable parameter the loss depends on
    ups = tg.optim.SGD(lr=0.1).updates(loss)
    assert [p.name for p, _ in ups] == ["W", "sgd/step"]


# ---- SVRG --------------------------------------------------------------------------------

def _least_squares(n=200, d=5, seed=0):
    r = np.random.default_rng(seed)
    A = r.standard_normal((n, d))
    b = A @ r.standard_normal(d) + 0.5 * r.standard_normal(n)   # noisy: no w fits every sample
    return A, b


def _ls_graph():
    g = tg.Graph()
    with g:
        a = tg.placeholder("a", (None, 5), dtype="float64")
        b = tg.placeholder("b", (None,), dtype="float64")
        w = tg.parameter("w", np.zeros(5))
        r = a @ w - b
        loss = 0.5 * tg.mean(r * r)
    return a, b, w, loss


def _ls_grad(A, b, w):
    return A.T @ (A @ w - b) / len(b)


def test_svrg_one_step_matches_hand_formula():
    A, bvec = _least_squares()
    a, b, w, loss = _ls_graph()
    w.value = np.linspace(-1, 1, 5)
    svrg = tg.optim.SVRG(lr=0.05)
    step = tg.compile([a, b], [loss], updates=svrg.updates(loss, [w]))
    w0 = w.value.copy()
    svrg.take_snapshot([a, b], [A, bvec], batch_size=64)   # 64 does not divide 200: size-weighted
    mu = _ls_grad(A, bvec, w0)
    state = svrg.state_dict()
    np.testing.assert_allclose(state["w/mu"], mu, rtol=1e-12)
    np.testing.assert_array_equal(state["w/snapshot"], w0)
    # first step at the snapshot: the correction cancels, the step is -lr mu
    step(A[:10], bvec[:10])
    w1 = w0 - 0.05 * mu
    np.testing.assert_allclose(w.value, w1, rtol=1e-12)
    # second step on another batch: w2 = w1 - lr (g_j(w1) - g_j(w0) + mu)
    Aj, bj = A[10:20], bvec[10:20]
    step(Aj, bj)
    w2 = w1 - 0.05 * (_ls_grad(Aj, bj, w1) - _ls_grad(Aj, bj, w0) + mu)
    np.testing.assert_allclose(w.value, w2, rtol=1e-12)


def _run_constant_step(opt, epochs=40, batch=10, snapshot=False):
    A, bvec = _least_squares()
    a, b, w, loss = _ls_graph()
    step = tg.compile([a, b], [loss], updates=opt.updates(loss, [w]))
    order = np.random.default_rng(1)
    for _ in range(epochs):
        if snapshot:
            opt.take_snapshot([a, b], [A, bvec])
        idx = order.permutation(len(bvec))
        for s in range(0, len(bvec), batch):
            step(A[idx[s:s + batch]], bvec[idx[s:s + batch]])
    w_star = np.linalg.lstsq(A, bvec, rcond=None)[0]
    return np.linalg.norm(w.value - w_star)


def test_svrg_converges_to_the_exact_solution_where_sgd_stalls():
    err_svrg = _run_constant_step(tg.optim.SVRG(lr=0.05), snapshot=True)
    err_sgd = _run_constant_step(tg.optim.SGD(lr=0.05))
    assert err_svrg < 1e-9, err_svrg
    assert err_sgd > 1e-3, err_sgd


def test_svrg_needs_a_snapshot_source():
    svrg = tg.optim.SVRG()
    with pytest.raises(RuntimeError, match="updates"):
        svrg.take_snapshot([], [])
    with pytest.raises(TypeError, match="loss"):
        svrg.apply_gradients([(None, None)])
