"""The two closest graph compilers as peers: PyTensor (C backend) and tinygrad (CPU device).

Both build the same models as tensorforge.bench_models from the same NumPy initial values:

- PyTensor: shared variables for the parameters and optimizer state, one
  ``pytensor.function([x, y], loss, updates=...)`` per step (its default mode: C code, BLAS
  through NumPy when it finds no BLAS to link). PyTensor 3 has no conv2d or pooling op any more
  (only scipy-style ``convolve2d`` of single images), so its convolution is written as im2col:
  nine shifted slices stacked and contracted with the weights by ``tensordot`` (a GEMM), and
  its max-pool as a reshape and a max; its gradients come from PyTensor's own autodiff.
- tinygrad: Tensors, ``nn.optim`` (Adam, SGD with momentum) and a ``TinyJit``-ed step on its
  CPU device (``DEV=CPU``; it needs clang, which compiles its kernels), with
  ``NUM_CPU_THREADS`` pinning its thread count.

The optimizers are torch.optim's (SGD with momentum, Adam with bias corrections), so the first
losses agree exactly with the other systems and the later ones within float32 rounding.
"""
from __future__ import annotations

import numpy as np

from tensorforge.bench import ADAM, SGD, NetSpec, cnn_init, mlp_init, net_init

from .workloads import CHAIN_A, CHAIN_B


def _initial(spec):
    if spec is None:
        return cnn_init()
    if isinstance(spec, NetSpec):
        return net_init(spec)
    return [p for layer in mlp_init(spec) for p in layer]


def _uses_sgd(spec) -> bool:
    return spec is None or isinstance(spec, NetSpec)


class PyTensorSystem:
    """``pytensor.function`` with updates: the whole step compiled to one C-linked graph."""

    name = "pytensor"

    def __init__(self):
        import pytensor
        import pytensor.tensor as pt
        self.pytensor, self.pt = pytensor, pt

    def chain(self, x):
        pt = self.pt
        v = pt.vector("x", dtype="float32")
        out = pt.sigmoid(v * np.float32(CHAIN_A) + np.float32(CHAIN_B)) * pt.tanh(v) \
            + pt.maximum(v - np.float32(1), np.float32(0)) * np.float32(0.5)
        f = self.pytensor.function([v], out)
        return lambda: f(x)

    # -- model pieces --------------------------------------------------------------------
    def _conv(self, h, w, b, pad):
        """Cross-correlation NCHW x OIHW (3x3, stride 1) as im2col: shifted slices, tensordot."""
        pt = self.pt
        if pad:
            h = pt.pad(h, ((0, 0), (0, 0), (pad, pad), (pad, pad))).astype("float32")  # pad upcasts
        hh, ww = h.shape[2] - 2, h.shape[3] - 2
        cols = pt.stack([h[:, :, i:i + hh, j:j + ww] for i in range(3) for j in range(3)], axis=2)
        # cols: (n, cin, 9, H', W'); w: (cout, cin, 3, 3) -> (cout, cin, 9)
        out = pt.tensordot(cols, w.reshape((w.shape[0], w.shape[1], 9)), axes=[[1, 2], [1, 2]])
        return pt.maximum(out.dimshuffle(0, 3, 1, 2) + b.dimshuffle("x", 0, "x", "x"), np.float32(0))

    def _pool(self, h, n, c, side):
        half = side // 2
        return h.reshape((n, c, half, 2, half, 2)).max(axis=(3, 5))

    def _logits(self, spec, xv, params, n):
        pt = self.pt
        if spec is None:
            w, cb, wd, bd = params
            h = self._pool(self._conv(xv, w, cb, 1), n, 8, 8)
            return h.reshape((n, 128)) @ wd + bd
        if isinstance(spec, NetSpec):
            w1, b1, w2, b2, w3, b3, w4, b4 = params
            h = self._conv(self._conv(xv, w1, b1, 0), w2, b2, 0)
            h = self._pool(h, n, spec.c2, spec.image - 4)
            return pt.maximum(h.reshape((n, spec.flat)) @ w3 + b3, np.float32(0)) @ w4 + b4
        h = xv
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            if i + 2 < len(params):
                h = pt.maximum(h, np.float32(0))
        return h

    def _updates(self, spec, params, grads):
        pt, shared = self.pt, self.pytensor.shared
        f32 = np.float32
        if _uses_sgd(spec):
            updates = []
            for p, g in zip(params, grads):
                buf = shared(np.zeros(p.get_value().shape, np.float32))
                new_buf = f32(SGD["momentum"]) * buf + g
                updates += [(buf, new_buf), (p, p - f32(SGD["lr"]) * new_buf)]
            return updates
        b1, b2, lr, eps = ADAM["b1"], ADAM["b2"], ADAM["lr"], ADAM["eps"]
        t = shared(np.float64(0.0))
        t1 = t + 1
        step_size = (lr / (1 - b1 ** t1)).astype("float32")
        bc2_sqrt = pt.sqrt(1 - b2 ** t1).astype("float32")
        updates = [(t, t1)]
        for p, g in zip(params, grads):
            m = shared(np.zeros(p.get_value().shape, np.float32))
            v = shared(np.zeros(p.get_value().shape, np.float32))
            m1 = f32(b1) * m + f32(1 - b1) * g
            v1 = f32(b2) * v + f32(1 - b2) * g * g
            updates += [(m, m1), (v, v1), (p, p - step_size * (m1 / (pt.sqrt(v1) / bc2_sqrt + f32(eps))))]
        return updates

    def train_step(self, workload, spec, x, y):
        pt = self.pt
        params = [self.pytensor.shared(a.copy(), name=f"p{i}") for i, a in enumerate(_initial(spec))]
        xv = pt.tensor("x", dtype="float32", shape=(None,) * x.ndim)
        yv = pt.vector("y", dtype="int64")
        n = x.shape[0]
        logits = self._logits(spec, xv, params, n)
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - pt.log(pt.exp(shifted).sum(axis=1, keepdims=True))
        loss = -logp[pt.arange(n), yv].mean()
        grads = pt.grad(loss, params)
        f = self.pytensor.function([xv, yv], loss, updates=self._updates(spec, params, grads))
        return lambda: f(x, y)

    def compile_s(self, workload):
        return None


class TinygradSystem:
    """tinygrad Tensors on its CPU device, the step under ``TinyJit`` (captured on its 2nd call)."""

    name = "tinygrad"

    def __init__(self):
        import tinygrad
        self.tg = tinygrad
        self.device = tinygrad.Device.DEFAULT

    def _sync(self):
        self.tg.Device[self.device].synchronize()

    def chain(self, x):
        from tinygrad import Tensor, TinyJit
        xt = Tensor(x).is_param_(False).realize()

        @TinyJit
        def f(v):
            return ((v * CHAIN_A + CHAIN_B).sigmoid() * v.tanh() + (v - 1).maximum(0) * 0.5).realize()

        def run():
            out = f(xt)
            self._sync()
            return _NumpyOnDemand(out)
        return run

    def _forward(self, spec, params):
        if spec is None:
            w, cb, wd, bd = params
            return lambda h: h.conv2d(w, cb, padding=1).relu().max_pool2d((2, 2)).reshape(h.shape[0], 128) @ wd + bd
        if isinstance(spec, NetSpec):
            w1, b1, w2, b2, w3, b3, w4, b4 = params
            return lambda h: ((h.conv2d(w1, b1).relu().conv2d(w2, b2).relu().max_pool2d((2, 2))
                               .reshape(h.shape[0], spec.flat) @ w3 + b3).relu() @ w4 + b4)

        def forward(h):
            for i in range(0, len(params), 2):
                h = h @ params[i] + params[i + 1]
                if i + 2 < len(params):
                    h = h.relu()
            return h
        return forward

    def train_step(self, workload, spec, x, y):
        from tinygrad import Context, Tensor, TinyJit, nn
        params = [Tensor(a.copy()).realize() for a in _initial(spec)]
        forward = self._forward(spec, params)
        if _uses_sgd(spec):
            opt = nn.optim.SGD(params, lr=SGD["lr"], momentum=SGD["momentum"])
        else:
            opt = nn.optim.Adam(params, lr=ADAM["lr"], b1=ADAM["b1"], b2=ADAM["b2"], eps=ADAM["eps"])
        # inputs are not parameters: no gradient is computed for them
        xt, yt = Tensor(x).is_param_(False).realize(), Tensor(y.astype(np.int32)).is_param_(False).realize()

        @TinyJit
        def step(xb, yb):
            with Context(TRAINING=1):
                opt.zero_grad()
                loss = forward(xb).sparse_categorical_crossentropy(yb)
                loss.backward()
                # one schedule with the update, as tinygrad's own examples do: the loss is
                # computed from the parameters before the update
                return loss.realize(*opt.schedule_step())
        return lambda: step(xt, yt).item()

    def compile_s(self, workload):
        return None


class _NumpyOnDemand:
    """A tinygrad result that becomes a NumPy array only when asked (np.asarray): the timed
    calls wait for the kernel but do not pay for a copy the other systems don't make."""

    def __init__(self, tensor):
        self.tensor = tensor

    def __array__(self, dtype=None, copy=None):
        out = self.tensor.numpy()
        return out if dtype is None else out.astype(dtype)
