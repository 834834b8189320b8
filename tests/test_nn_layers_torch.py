"""tg.nn layers against their torch counterparts with copied weights (tg.nn.from_torch_state_dict):
forward values and gradients w.r.t. the input and every parameter, on the interpreter (float64)
and on LLVM (float32)."""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg

torch = pytest.importorskip("torch")
tnn = torch.nn

BACKENDS = [("interp", "float64", 1e-7, 1e-9), ("llvm", "float32", 1e-4, 1e-5)]


def _torch_grads(tlayer, xt, tcall, R):
    out = tcall(tlayer, xt)
    (out * torch.as_tensor(R, dtype=out.dtype)).sum().backward()
    return out.detach().numpy(), (None if xt.grad is None else xt.grad.numpy())


def check_layer(make_tg, make_torch, x_np, backend, dtype, rtol, atol, call=None, tcall=None,
                int_input=False, seed=0):
    """Copy torch's weights into the tg layer, then compare out, d(out·R)/dx and d(out·R)/dparams."""
    call = call or (lambda m, x: m(x))
    tcall = tcall or (lambda m, x: m(x))
    torch.manual_seed(seed)
    tlayer = make_torch().to(torch.float64 if dtype == "float64" else torch.float32)
    tlayer.eval()
    layer = make_tg()
    g = tg.Graph()
    xdtype = "int64" if int_input else dtype
    x = tg.placeholder("x", x_np.shape, dtype=xdtype, graph=g)
    out = call(layer, x)
    tg.nn.from_torch_state_dict(layer, tlayer.state_dict())
    R = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(dtype)
    loss = tg.sum(out * tg.constant(R, graph=g))
    targets = tg.nn.torch_parameter_map(layer)
    trainable = {p.name for p in layer.parameters()}
    keys = [k for k, v in targets.items() if v is not None and v[0].name in trainable]
    params = [targets[k][0] for k in keys]
    wrt = params if int_input else [x] + params
    grads = tg.grad(loss, wrt)
    fn = tg.compile([x], [out] + list(grads), backend=backend)
    xv = x_np.astype(xdtype)
    got = fn(xv)

    xt = torch.tensor(xv, requires_grad=not int_input)
    want_out, want_gx = _torch_grads(tlayer, xt, tcall, R)
    np.testing.assert_allclose(got[0], want_out, rtol=rtol, atol=atol, err_msg="forward")
    rest = got[1:]
    if not int_input:
        np.testing.assert_allclose(rest[0], want_gx, rtol=rtol, atol=atol, err_msg="grad x")
        rest = rest[1:]
    tparams = dict(tlayer.named_parameters())
    for key, value in zip(keys, rest):
        grad = tparams[key].grad      # None: the output does not depend on it
        want = np.zeros(tuple(tparams[key].shape)) if grad is None else grad.numpy()
        if targets[key][1]:
            want = want.T
        np.testing.assert_allclose(value, want, rtol=rtol, atol=atol, err_msg=f"grad {key}")
    assert len(keys) == len(tparams), (keys, list(tparams))
    return got


def _x(shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape) * scale


backends = pytest.mark.parametrize("backend,dtype,rtol,atol", BACKENDS, ids=[b[0] for b in BACKENDS])


@backends
def test_dense_and_conv2d_import(backend, dtype, rtol, atol):
    check_layer(lambda: tg.nn.Dense(4, 3), lambda: tnn.Linear(4, 3), _x((2, 4)), backend, dtype, rtol, atol)
    check_layer(lambda: tg.nn.Conv2d(2, 3, 3, padding=1), lambda: tnn.Conv2d(2, 3, 3, padding=1),
                _x((2, 2, 4, 4)), backend, dtype, rtol, atol)


@backends
def test_conv1d(backend, dtype, rtol, atol):
    check_layer(lambda: tg.nn.Conv1d(2, 3, 3, stride=2, padding=1), lambda: tnn.Conv1d(2, 3, 3, stride=2, padding=1),
                _x((2, 2, 7)), backend, dtype, rtol, atol)


@backends
def test_conv3d(backend, dtype, rtol, atol):
    check_layer(lambda: tg.nn.Conv3d(2, 2, (2, 3, 3), padding=(1, 1, 0)),
                lambda: tnn.Conv3d(2, 2, (2, 3, 3), padding=(1, 1, 0)), _x((1, 2, 3, 4, 4)), backend, dtype, rtol, atol)


@backends
def test_conv_transpose2d(backend, dtype, rtol, atol):
    check_layer(lambda: tg.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1),
                lambda: tnn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1),
                _x((2, 2, 3, 3)), backend, dtype, rtol, atol)


@backends
def test_embedding(backend, dtype, rtol, atol):
    idx = np.array([[0, 3, 4], [4, 1, 1]])
    check_layer(lambda: tg.nn.Embedding(5, 3, dtype=dtype), lambda: tnn.Embedding(5, 3), idx, backend, dtype, rtol,
                atol, int_input=True)


@backends
def test_group_and_instance_norm(backend, dtype, rtol, atol):
    check_layer(lambda: tg.nn.GroupNorm(2, 4), lambda: tnn.GroupNorm(2, 4), _x((2, 4, 3, 3)), backend, dtype,
                rtol, atol)
    check_layer(lambda: tg.nn.InstanceNorm2d(3, affine=True), lambda: tnn.InstanceNorm2d(3, affine=True),
                _x((2, 3, 3, 3)), backend, dtype, rtol, atol)
    check_layer(lambda: tg.nn.InstanceNorm1d(3), lambda: tnn.InstanceNorm1d(3), _x((2, 3, 5)), backend, dtype,
                rtol, atol)


ACTIVATIONS = [
    ("GELU", lambda: tg.nn.GELU(), lambda: tnn.GELU(), 0),
    ("GELU_tanh", lambda: tg.nn.GELU("tanh"), lambda: tnn.GELU("tanh"), 0),
    ("SiLU", tg.nn.SiLU, tnn.SiLU, 0), ("Mish", tg.nn.Mish, tnn.Mish, 0), ("SELU", tg.nn.SELU, tnn.SELU, 0),
    ("CELU", lambda: tg.nn.CELU(0.7), lambda: tnn.CELU(0.7), 0), ("ReLU6", tg.nn.ReLU6, tnn.ReLU6, 0),
    ("Hardtanh", lambda: tg.nn.Hardtanh(-0.5, 2.0), lambda: tnn.Hardtanh(-0.5, 2.0), 0),
    ("Hardswish", tg.nn.Hardswish, tnn.Hardswish, 0), ("Hardsigmoid", tg.nn.Hardsigmoid, tnn.Hardsigmoid, 0),
    ("Softsign", tg.nn.Softsign, tnn.Softsign, 0), ("LogSigmoid", tg.nn.LogSigmoid, tnn.LogSigmoid, 0),
    ("Softmin", lambda: tg.nn.Softmin(dim=1), lambda: tnn.Softmin(dim=1), 0),
    ("GLU", lambda: tg.nn.GLU(dim=1), lambda: tnn.GLU(dim=1), 0), ("Identity", tg.nn.Identity, tnn.Identity, 0),
]


@backends
@pytest.mark.parametrize("name,make,tmake,extra_atol", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_activation_modules(name, make, tmake, extra_atol, backend, dtype, rtol, atol):
    x = _x((3, 4), scale=3.0)   # away from the kinks only by chance: random values never hit them
    check_layer(make, tmake, x, backend, dtype, rtol, atol + extra_atol)


@backends
@pytest.mark.parametrize("masked", [False, True])
def test_multihead_attention(backend, dtype, rtol, atol, masked):
    mask = np.triu(np.ones((3, 3), bool), k=1) if masked else None
    tmask = None if mask is None else torch.as_tensor(mask)
    check_layer(lambda: tg.nn.MultiheadAttention(4, 2, batch_first=True),
                lambda: tnn.MultiheadAttention(4, 2, batch_first=True), _x((2, 3, 4)), backend, dtype, rtol, atol,
                call=lambda m, x: m(x, x, x, attn_mask=mask)[0],
                tcall=lambda m, x: m(x, x, x, attn_mask=tmask)[0])


@backends
def test_multihead_attention_weights_and_sequence_first(backend, dtype, rtol, atol):
    check_layer(lambda: tg.nn.MultiheadAttention(4, 2), lambda: tnn.MultiheadAttention(4, 2), _x((3, 2, 4)),
                backend, dtype, rtol, atol, call=lambda m, x: m(x, x, x)[1], tcall=lambda m, x: m(x, x, x)[1])


@backends
@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_transformer_encoder_layer(backend, dtype, rtol, atol, norm_first, activation):
    check_layer(lambda: tg.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, activation=activation,
                                                      batch_first=True, norm_first=norm_first),
                lambda: tnn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, activation=activation, batch_first=True,
                                                    norm_first=norm_first),
                _x((2, 3, 4)), backend, dtype, rtol, atol + (1e-6 if activation == "gelu" else 0),
                call=lambda m, x: m(x, training=False))


@backends
def test_gru_and_lstm_cells(backend, dtype, rtol, atol):
    check_layer(lambda: tg.nn.GRUCell(3, 4), lambda: tnn.GRUCell(3, 4), _x((2, 3)), backend, dtype, rtol, atol)
    check_layer(lambda: tg.nn.LSTMCell(3, 4), lambda: tnn.LSTMCell(3, 4), _x((2, 3)), backend, dtype, rtol, atol,
                call=lambda m, x: m(x)[0] * 2 + m(x)[1], tcall=lambda m, x: m(x)[0] * 2 + m(x)[1])


@backends
@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_gru_lstm_layers(backend, dtype, rtol, atol, kind):
    def combine(out, swap):
        # the whole output sequence plus the final states (every layer's), so all of them are checked
        seq, state = out
        last = state if kind == "GRU" else state[0] + 0.5 * state[1]     # (layers, N, H)
        per_batch = swap(last)                                            # (N, layers, H)
        return seq + per_batch[:, :1] * 0.5 + per_batch[:, 1:] * 0.25

    check_layer(lambda: getattr(tg.nn, kind)(3, 4, num_layers=2, batch_first=True),
                lambda: getattr(tnn, kind)(3, 4, num_layers=2, batch_first=True), _x((2, 3, 3)), backend, dtype,
                rtol, atol, call=lambda m, x: combine(m(x), lambda t: tg.transpose(t, (1, 0, 2))),
                tcall=lambda m, x: combine(m(x), lambda t: t.transpose(0, 1)))


TRITON_CASES = [
    ("Conv1d", lambda: tg.nn.Conv1d(2, 3, 3, padding=1), lambda: tnn.Conv1d(2, 3, 3, padding=1), (2, 2, 5), None),
    ("Conv3d", lambda: tg.nn.Conv3d(1, 2, 2), lambda: tnn.Conv3d(1, 2, 2), (1, 1, 3, 3, 3), None),
    ("ConvTranspose2d", lambda: tg.nn.ConvTranspose2d(2, 3, 3, stride=2), lambda: tnn.ConvTranspose2d(2, 3, 3, stride=2),
     (1, 2, 2, 2), None),
    ("GroupNorm", lambda: tg.nn.GroupNorm(2, 4), lambda: tnn.GroupNorm(2, 4), (2, 4, 3), None),
    ("MultiheadAttention", lambda: tg.nn.MultiheadAttention(4, 2, batch_first=True),
     lambda: tnn.MultiheadAttention(4, 2, batch_first=True), (2, 3, 4), lambda m, x: m(x, x, x)[0]),
    ("LSTM", lambda: tg.nn.LSTM(3, 4, batch_first=True), lambda: tnn.LSTM(3, 4, batch_first=True), (2, 3, 3),
     lambda m, x: m(x)[0]),
    ("GRU", lambda: tg.nn.GRU(3, 4, batch_first=True), lambda: tnn.GRU(3, 4, batch_first=True), (2, 3, 3),
     lambda m, x: m(x)[0]),
]


@pytest.mark.parametrize("name,make,tmake,shape,call", TRITON_CASES, ids=[c[0] for c in TRITON_CASES])
def test_layers_on_triton(name, make, tmake, shape, call):
    check_layer(make, tmake, _x(shape), "triton", "float32", 1e-4, 1e-5, call=call, tcall=call)


def test_embedding_and_transformer_on_triton():
    check_layer(lambda: tg.nn.Embedding(5, 3), lambda: tnn.Embedding(5, 3), np.array([[0, 3], [4, 4]]), "triton",
                "float32", 1e-4, 1e-5, int_input=True)
    check_layer(lambda: tg.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True),
                lambda: tnn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True), _x((2, 3, 4)),
                "triton", "float32", 1e-4, 1e-5, call=lambda m, x: m(x, training=False))


@backends
@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_bidirectional_with_initial_state(backend, dtype, rtol, atol, kind):
    # sequence-first input, two layers, both directions, given initial states
    h0 = np.random.default_rng(5).standard_normal((4, 2, 3))

    def run(m, x, lib):
        state = lib(h0) if kind == "GRU" else (lib(h0), lib(h0 * 0.5))
        seq, last = m(x, state)
        last = last if kind == "GRU" else last[0] - last[1]
        return seq[:, :, :3] + seq[:, :, 3:] * 0.5 + last[:1].sum() * 0.1 + last[3:].sum() * 0.2

    check_layer(lambda: getattr(tg.nn, kind)(2, 3, num_layers=2, bidirectional=True),
                lambda: getattr(tnn, kind)(2, 3, num_layers=2, bidirectional=True), _x((3, 2, 2)), backend, dtype,
                rtol, atol, call=lambda m, x: run(m, x, lambda a: tg.constant(a.astype(dtype), graph=x.graph)),
                tcall=lambda m, x: run(m, x, lambda a: torch.as_tensor(a, dtype=x.dtype)))


@backends
def test_convolutions_with_groups_and_dilation(backend, dtype, rtol, atol):
    check_layer(lambda: tg.nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4, init="torch"),
                lambda: tnn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=4), _x((1, 4, 4, 4)), backend, dtype,
                rtol, atol)
    check_layer(lambda: tg.nn.Conv1d(4, 6, 3, padding=2, dilation=2, groups=2),
                lambda: tnn.Conv1d(4, 6, 3, padding=2, dilation=2, groups=2), _x((2, 4, 7)), backend, dtype, rtol, atol)
    check_layer(lambda: tg.nn.Conv3d(2, 2, 2, dilation=(2, 1, 1), groups=2),
                lambda: tnn.Conv3d(2, 2, 2, dilation=(2, 1, 1), groups=2), _x((1, 2, 3, 3, 3)), backend, dtype,
                rtol, atol)
    check_layer(lambda: tg.nn.ConvTranspose2d(4, 2, 2, stride=2, groups=2, dilation=2, output_padding=1),
                lambda: tnn.ConvTranspose2d(4, 2, 2, stride=2, groups=2, dilation=2, output_padding=1),
                _x((1, 4, 2, 3)), backend, dtype, rtol, atol)
