"""The op-info table (tests/opinfo/) run on every backend against torch.

For each entry, sample and backend: the forward values (and dtype) against torch, the
gradients of ``sum(w * out)`` against torch autograd, and on interp (float64) the same
gradients against central finite differences. Float samples run in float64 on interp and
in float32 on llvm and triton, where torch's float64 result on the same float32-rounded
inputs is the reference (so the tolerance states the backend's real accuracy).
"""
from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest
import torch

import tensorforge as tg
from tensorforge.testing import numerical_grad

from opinfo import spec

FAMILIES = sorted(m.name for m in pkgutil.iter_modules([str(spec.__file__).rsplit("/", 1)[0]])
                  if m.name != "spec")
INTERP_TOL = dict(rtol=1e-9, atol=1e-11)


def _entries():
    for fam in FAMILIES:
        yield from importlib.import_module(f"opinfo.{fam}").OPS


def _cases():
    for info in _entries():
        samples = info.samples(np.random.default_rng(0))
        for k, s in enumerate(samples):
            for backend in info.backends:
                marks = [pytest.mark.skip(reason=info.skip[backend])] if backend in info.skip else []
                yield pytest.param(info, k, backend, id=f"{info.name}-{s.name or k}-{backend}", marks=marks)


def _pick(out, indices):
    if isinstance(out, (tuple, list)):
        return [out[i] for i in (indices if indices is not None else range(len(out)))]
    return [out]


def _as_backend_array(a, backend):
    a = np.asarray(a)
    if backend != "interp" and a.dtype == np.float64:
        return a.astype(np.float32)
    return a


def _weights(shapes, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def run_tg(info, sample, arrays, backend, grad):
    """Outputs (and gradients w.r.t. sample.float_wrt()) of the tg function on ``backend``."""
    g = tg.Graph("opinfo")
    wrt = sample.float_wrt() if grad else ()
    with g:
        xs = [tg.placeholder(f"x{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays)]
        outs = _pick(info.tg_fn(*xs, **sample.kwargs), info.outputs)
        grads = []
        if wrt:
            gouts = _pick(outs if len(outs) > 1 else outs[0], info.grad_outputs)
            ws = _weights([o.shape for o in gouts])
            loss = None
            for o, w in zip(gouts, ws):
                term = tg.sum(o * tg.constant(w.astype(o.dtype)))
                loss = term if loss is None else loss + term
            grads = tg.grad(loss, [xs[i] for i in wrt])
    fn = tg.compile(xs, outs + list(grads), backend=backend)
    res = fn(*arrays)
    return res[:len(outs)], res[len(outs):]


def run_torch(info, sample, arrays, grad):
    wrt = sample.float_wrt() if grad else ()
    ts = [torch.tensor(a, requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    outs = _pick(info.torch_fn(*ts, **sample.kwargs), info.outputs)
    grads = []
    if wrt:
        gouts = _pick(outs if len(outs) > 1 else outs[0], info.grad_outputs)
        ws = _weights([tuple(o.shape) for o in gouts])
        loss = sum((o * torch.tensor(w, dtype=o.dtype)).sum() for o, w in zip(gouts, ws))
        got = torch.autograd.grad(loss, [ts[i] for i in wrt], allow_unused=True)
        grads = [np.zeros(arrays[i].shape) if g is None else g.detach().numpy() for i, g in zip(wrt, got)]
    return [o.detach().numpy() for o in outs], grads


def _torch_dtype_name(a):
    return np.asarray(a).dtype.name


def assert_close(got, want, rtol, atol, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, torch {want.shape}"
    if want.dtype.kind in "biu" or got.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol,
                                   equal_nan=True, err_msg=what)


@pytest.mark.parametrize("info,k,backend", list(_cases()))
def test_op(info, k, backend):
    sample = info.samples(np.random.default_rng(0))[k]
    grad = info.grad and sample.grad
    arrays = [_as_backend_array(a, backend) for a in sample.arrays]
    outs, grads = run_tg(info, sample, arrays, backend, grad)
    # the dtype torch gives on the same input dtypes, the values torch gives in float64
    want_dtype, _ = run_torch(info, sample, arrays, False)
    ref_arrays = [np.asarray(a, np.float64) if np.asarray(a).dtype.kind == "f" else np.asarray(a)
                  for a in arrays]
    want, want_grads = run_torch(info, sample, ref_arrays, grad)
    tol = INTERP_TOL if backend == "interp" else dict(rtol=info.rtol, atol=info.atol)
    for j, (o, d, w) in enumerate(zip(outs, want_dtype, want)):
        assert np.asarray(o).dtype == np.asarray(d).dtype, \
            f"output {j}: dtype {np.asarray(o).dtype}, torch {np.asarray(d).dtype}"
        assert_close(o, w, what=f"output {j}", **tol)
    for i, gt, gw in zip(sample.float_wrt() if grad else (), grads, want_grads):
        assert_close(gt, gw, what=f"gradient w.r.t. input {i}", **tol)
    if grad and sample.fd and backend == "interp":
        _check_finite_differences(info, sample, arrays, grads)


def _check_finite_differences(info, sample, arrays, grads):
    """Central differences of sum(w * out) against the symbolic gradients (float64)."""
    g = tg.Graph("opinfo_fd")
    with g:
        xs = [tg.placeholder(f"x{i}", a.shape, dtype=a.dtype.name) for i, a in enumerate(arrays)]
        gouts = _pick(_pick(info.tg_fn(*xs, **sample.kwargs), info.outputs), info.grad_outputs) \
            if info.grad_outputs is not None else _pick(info.tg_fn(*xs, **sample.kwargs), info.outputs)
        ws = _weights([o.shape for o in gouts])
        loss = None
        for o, w in zip(gouts, ws):
            term = tg.sum(o * tg.constant(w.astype(o.dtype)))
            loss = term if loss is None else loss + term
    f = tg.compile(xs, [loss], backend="interp")
    arrs = [np.array(a) for a in arrays]
    for i, gi in zip(sample.float_wrt(), grads):
        num = numerical_grad(lambda a: float(f(*a)[0]), arrs, i, eps=1e-6)
        assert_close(gi, num, rtol=1e-4, atol=1e-6, what=f"gradient w.r.t. input {i} vs finite differences")


def test_every_entry_runs_on_every_backend():
    """The table is complete: no entry is skipped or limited on a backend."""
    limited = [(i.name, i.skip or set(spec.BACKENDS) - set(i.backends)) for i in _entries()
               if i.skip or set(i.backends) != set(spec.BACKENDS)]
    assert not limited, f"entries not run on every backend: {limited}"
