"""The benchmark models, once for every system: tensorforge, PyTorch and JAX.

Every system starts from the same NumPy initial values and trains on the same batch, so their
first-step losses agree; this module is where those values and the models live. A model is
named by its ``spec``:

- a tuple of layer sizes: an MLP (ReLU between dense layers), softmax cross-entropy, Adam;
- ``None`` or ``"cnn"``: the small CNN (1x8x8 input, conv3x3 8 channels pad 1, ReLU,
  maxpool 2, dense 10), SGD with momentum;
- a :class:`NetSpec`: the network of PyTorch's MNIST example (conv3x3 c1, ReLU, conv3x3 c2,
  ReLU, maxpool 2, dense hidden, ReLU, dense 10) with dropout off, SGD with momentum.
  ``MNIST_NET`` is the real one (28x28, 32/64 channels, 9216->128->10); smaller specs keep
  smoke tests fast.

tensorforge.bench (``tensorforge bench``) and benchmarks/compiler.py both use these.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

ADAM = {"lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
SGD = {"lr": 0.01, "momentum": 0.9}


class NetSpec(NamedTuple):
    """PyTorch's MNIST ``Net`` shape: square single-channel images of side ``image``."""
    image: int = 28
    c1: int = 32
    c2: int = 64
    hidden: int = 128

    @property
    def flat(self) -> int:
        """Features after the two valid 3x3 convolutions and the 2x2 pool (9216 for MNIST)."""
        return self.c2 * ((self.image - 4) // 2) ** 2


MNIST_NET = NetSpec()


def is_cnn(spec) -> bool:
    return spec is None or spec == "cnn"


def uses_sgd(spec) -> bool:
    """The CNNs train with SGD + momentum, the MLPs with Adam."""
    return is_cnn(spec) or isinstance(spec, NetSpec)


def input_shape(spec, batch: int) -> tuple:
    if is_cnn(spec):
        return (batch, 1, 8, 8)
    if isinstance(spec, NetSpec):
        return (batch, 1, spec.image, spec.image)
    return (batch, spec[0])


# ---- shared initial values and the fixed batch -------------------------------------------

def _he(rng, shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def mlp_init(sizes, seed=0):
    """He-normal weights (in, out) and zero biases, float32: shared by every system."""
    rng = np.random.default_rng(seed)
    return [(_he(rng, (i, o), i), np.zeros(o, np.float32)) for i, o in zip(sizes[:-1], sizes[1:])]


def cnn_init(seed=0):
    """conv weight (8,1,3,3) + bias (8,), dense (128,10) + bias (10,), float32."""
    rng = np.random.default_rng(seed)
    return [_he(rng, (8, 1, 3, 3), 9), np.zeros(8, np.float32), _he(rng, (128, 10), 128), np.zeros(10, np.float32)]


def net_init(spec: NetSpec, seed=0):
    """[conv1 w, b, conv2 w, b, fc1 w (flat, hidden), b, fc2 w (hidden, 10), b], He-normal, float32."""
    rng = np.random.default_rng(seed)
    return [_he(rng, (spec.c1, 1, 3, 3), 9), np.zeros(spec.c1, np.float32),
            _he(rng, (spec.c2, spec.c1, 3, 3), 9 * spec.c1), np.zeros(spec.c2, np.float32),
            _he(rng, (spec.flat, spec.hidden), spec.flat), np.zeros(spec.hidden, np.float32),
            _he(rng, (spec.hidden, 10), spec.hidden), np.zeros(10, np.float32)]


def initial_params(spec) -> list[np.ndarray]:
    """The flat list of initial parameter arrays of any model spec."""
    if is_cnn(spec):
        return cnn_init()
    if isinstance(spec, NetSpec):
        return net_init(spec)
    return [p for layer in mlp_init(spec) for p in layer]


def random_batch(shape, seed: int = 1):
    """(x, y): standard-normal float32 inputs of ``shape`` and one integer label 0..9 per row."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(np.float32), rng.integers(0, 10, shape[0]).astype(np.int64)


# ---- the model on each system -------------------------------------------------------------

def tensorforge_training_step(spec, x, y, backend: str, name: str, dynamic_batch: bool = False):
    """The compiled training step (loss and in-place updates) for batches shaped like (x, y);
    with ``dynamic_batch`` the batch dimension is a ``None`` placeholder dimension."""
    import tensorforge as tg
    n = None if dynamic_batch else x.shape[0]
    with tg.Graph():
        xs = tg.placeholder("x", (n, *x.shape[1:]))
        ys = tg.placeholder("y", (n,), dtype="int64")
        if is_cnn(spec):
            w, cb, wd, bd = params = [tg.parameter(k, v) for k, v in zip(("w", "cb", "wd", "bd"), cnn_init())]
            h = tg.max_pool2d(tg.relu(tg.conv2d(xs, w, cb, stride=1, padding=1)), 2)
            logits = tg.reshape(h, (x.shape[0], 128)) @ wd + bd
        elif isinstance(spec, NetSpec):
            names = ("conv1/w", "conv1/b", "conv2/w", "conv2/b", "fc1/w", "fc1/b", "fc2/w", "fc2/b")
            w1, b1, w2, b2, w3, b3, w4, b4 = params = [tg.parameter(k, v) for k, v in zip(names, net_init(spec))]
            h = tg.relu(tg.conv2d(xs, w1, b1))
            h = tg.max_pool2d(tg.relu(tg.conv2d(h, w2, b2)), 2)
            h = tg.relu(tg.reshape(h, (x.shape[0], spec.flat)) @ w3 + b3)
            logits = h @ w4 + b4
        else:
            params, logits = [], xs
            for i, (w, b) in enumerate(mlp_init(spec)):
                W, B = tg.parameter(f"W{i}", w), tg.parameter(f"b{i}", b)
                params += [W, B]
                logits = logits @ W + B
                if i + 2 < len(spec):
                    logits = tg.relu(logits)
        if uses_sgd(spec):
            opt = tg.optim.SGD(lr=SGD["lr"], momentum=SGD["momentum"])
        else:
            opt = tg.optim.Adam(lr=ADAM["lr"], betas=(ADAM["b1"], ADAM["b2"]), eps=ADAM["eps"])
        loss = tg.mean(tg.softmax_cross_entropy(logits, ys))
        updates = opt.updates(loss, params)
    return tg.compile([xs, ys], loss, updates=updates, backend=backend, name=name)


def torch_model(spec):
    """(forward(x) -> logits, optimizer over the parameters) in PyTorch."""
    import torch
    F = torch.nn.functional
    params = [torch.tensor(a, requires_grad=True) for a in initial_params(spec)]
    if is_cnn(spec):
        w, cb, wd, bd = params

        def forward(h):
            h = F.max_pool2d(torch.relu(F.conv2d(h, w, cb, padding=1)), 2)
            return h.reshape(h.shape[0], 128) @ wd + bd
    elif isinstance(spec, NetSpec):
        w1, b1, w2, b2, w3, b3, w4, b4 = params

        def forward(h):
            h = F.max_pool2d(torch.relu(F.conv2d(torch.relu(F.conv2d(h, w1, b1)), w2, b2)), 2)
            return torch.relu(h.reshape(h.shape[0], spec.flat) @ w3 + b3) @ w4 + b4
    else:
        def forward(h):
            for i in range(0, len(params), 2):
                h = h @ params[i] + params[i + 1]
                if i + 2 < len(params):
                    h = torch.relu(h)
            return h
    if uses_sgd(spec):
        return forward, torch.optim.SGD(params, lr=SGD["lr"], momentum=SGD["momentum"])
    return forward, torch.optim.Adam(params, lr=ADAM["lr"], betas=(ADAM["b1"], ADAM["b2"]), eps=ADAM["eps"])


def jax_model(spec):
    """(loss_fn(params, x, y), update(params, grads, state) -> (params, state), params, state) in JAX;
    the updates are torch.optim's SGD with momentum and Adam, written out."""
    import jax
    import jax.numpy as jnp

    def xent(logits, yb):
        logp = jax.nn.log_softmax(logits, axis=1)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def conv(h, w, b, pad):
        h = jax.lax.conv_general_dilated(h, w, (1, 1), ((pad, pad), (pad, pad)),
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        return jax.nn.relu(h + b[None, :, None, None])

    def pool(h):
        return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    params = [jnp.asarray(p) for p in initial_params(spec)]
    if is_cnn(spec):
        def loss_fn(p, xb, yb):
            w, cb, wd, bd = p
            h = pool(conv(xb, w, cb, 1))
            return xent(h.reshape(h.shape[0], 128) @ wd + bd, yb)
    elif isinstance(spec, NetSpec):
        def loss_fn(p, xb, yb):
            w1, b1, w2, b2, w3, b3, w4, b4 = p
            h = pool(conv(conv(xb, w1, b1, 0), w2, b2, 0))
            return xent(jax.nn.relu(h.reshape(h.shape[0], spec.flat) @ w3 + b3) @ w4 + b4, yb)
    else:
        def loss_fn(p, xb, yb):
            h = xb
            for i in range(0, len(p), 2):
                h = h @ p[i] + p[i + 1]
                if i + 2 < len(p):
                    h = jax.nn.relu(h)
            return xent(h, yb)
    if uses_sgd(spec):
        def update(p, g, s):
            s = [SGD["momentum"] * bi + gi for bi, gi in zip(s, g)]
            return [pi - SGD["lr"] * bi for pi, bi in zip(p, s)], s
        return loss_fn, update, params, [jnp.zeros_like(p) for p in params]
    b1, b2, lr, eps = ADAM["b1"], ADAM["b2"], ADAM["lr"], ADAM["eps"]

    def update(p, g, s):
        m, v, t = s
        t = t + 1
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        step_size = lr / (1 - b1 ** t)
        bc2_sqrt = jnp.sqrt(1 - b2 ** t)
        p = [pi - step_size * mi / (jnp.sqrt(vi) / bc2_sqrt + eps) for pi, mi, vi in zip(p, m, v)]
        return p, (m, v, t)
    state = ([jnp.zeros_like(p) for p in params], [jnp.zeros_like(p) for p in params],
             jnp.asarray(0.0, jnp.float32))
    return loss_fn, update, params, state


def jax_compiled_step(loss_fn, update, params, state, x, y):
    """(run, compile seconds): jax.jit of the whole step (value_and_grad and update), compiled
    ahead for (x, y); its parameter and state buffers are donated, so each run() updates them in
    place and returns the loss."""
    import jax
    import jax.numpy as jnp

    def step(p, s, xb, yb):
        loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        p, s = update(p, grads, s)
        return p, s, loss
    xj, yj = jnp.asarray(x), jnp.asarray(y)
    t0 = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, xj, yj).compile()
    compile_s = time.perf_counter() - t0
    box = [params, state]

    def run():
        box[0], box[1], loss = compiled(box[0], box[1], xj, yj)
        return float(loss)               # float() waits for the result
    return run, compile_s
