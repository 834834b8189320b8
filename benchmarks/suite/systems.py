"""The systems of the suite: hand-written NumPy, tensorforge (interp, llvm), PyTorch and JAX.

Each system makes callables for the workloads: ``chain(x)`` (the fused elementwise chain),
``train_step(workload, spec, x, y)`` (one training step returning the loss; ``spec`` is a
tensorforge.bench_models model spec) and, where it exists, ``matmul(a, b)``. A system that has
no version of a workload raises NotImplementedError with the reason, which the table shows.
``compile_s(workload)`` is the first call's build time where the system reports one.
"""
from __future__ import annotations

from tensorforge.bench import (ADAM, SGD, NetSpec, cnn_init, jax_compiled_step, jax_model, mlp_init,
                               tensorforge_training_step, torch_model)

from .workloads import CHAIN_A, CHAIN_B


def softmax_xent_and_grad(logits, y, rows):
    """Mean softmax cross-entropy of integer labels ``y`` and its gradient w.r.t. the logits."""
    import numpy as np
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = np.log(s[:, 0]).mean() - shifted[rows, y].mean()
    g = e / s
    g[rows, y] -= 1
    return loss, g / len(y)


class NumpySystem:
    """Hand-written, vectorised NumPy: the expression, forward + backward + optimizer."""

    name = "numpy"

    def chain(self, x):
        import numpy as np
        a, b = np.float32(CHAIN_A), np.float32(CHAIN_B)
        return lambda: 1 / (1 + np.exp(-(a * x + b))) * np.tanh(x) + np.maximum(x - 1, 0) * np.float32(0.5)

    def train_step(self, workload, spec, x, y):
        if isinstance(spec, NetSpec):
            raise NotImplementedError("no hand-written NumPy version of the MNIST Net (two convolutions' backward)")
        return self.cnn_step(x, y) if spec is None else self.mlp_step(spec, x, y)

    def compile_s(self, workload):
        return None

    def mlp_step(self, sizes, x, y):
        import numpy as np
        params = [p.copy() for layer in mlp_init(sizes) for p in layer]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        rows = np.arange(len(y))
        t = [0]

        def step():
            hs = [x]                                   # inputs of each layer (post-ReLU)
            for i in range(0, len(params), 2):
                z = hs[-1] @ params[i] + params[i + 1]
                hs.append(np.maximum(z, 0, out=z) if i + 2 < len(params) else z)
            logits = hs.pop()
            loss, g = softmax_xent_and_grad(logits, y, rows)
            grads = [None] * len(params)
            for i in range(len(params) - 2, -1, -2):
                h = hs[i // 2]
                grads[i], grads[i + 1] = h.T @ g, g.sum(axis=0)
                if i:
                    g = g @ params[i].T
                    g *= h > 0
            adam_update(params, grads, m, v, t)
            return loss
        return step

    def cnn_step(self, x, y):
        import numpy as np
        from numpy.lib.stride_tricks import sliding_window_view
        w, cb, wd, bd = [p.copy() for p in cnn_init()]
        params = [w, cb, wd, bd]
        bufs = [np.zeros_like(p) for p in params]
        n = x.shape[0]
        rows = np.arange(n)
        # the columns are rebuilt every step although the batch is fixed: the other systems
        # do not know the batch repeats either

        def step():
            xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
            cols = sliding_window_view(xp, (3, 3), axis=(2, 3))          # (n,1,8,8,3,3)
            cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(n * 64, 9)   # rows = (n,h,w), cols = (c,kh,kw)
            z = cols @ w.reshape(8, 9).T + cb                              # (n*64, 8) in NHWC order
            r = np.maximum(z, 0)
            r6 = r.reshape(n, 4, 2, 4, 2, 8)
            pooled = r6.max(axis=(2, 4))                                   # (n,4,4,8)
            flat = pooled.transpose(0, 3, 1, 2).reshape(n, 128)           # NCHW flatten order
            logits = flat @ wd + bd
            loss, g = softmax_xent_and_grad(logits, y, rows)
            gwd, gbd = flat.T @ g, g.sum(axis=0)
            gpool = (g @ wd.T).reshape(n, 8, 4, 4).transpose(0, 2, 3, 1)  # (n,4,4,8)
            # ties in a pooling window happen only among zeros, which the ReLU mask removes
            mask = r6 == pooled[:, :, None, :, None, :]
            gz = (mask * gpool[:, :, None, :, None, :]).reshape(n * 64, 8)
            gz *= z > 0
            gw, gcb = (gz.T @ cols).reshape(8, 1, 3, 3), gz.sum(axis=0)
            for p, gp, buf in zip(params, (gw, gcb, gwd, gbd), bufs):
                buf *= SGD["momentum"]
                buf += gp
                p -= SGD["lr"] * buf
            return loss
        return step

    def matmul(self, a, b):
        import numpy as np
        return lambda: np.matmul(a, b)


def adam_update(params, grads, m, v, t):
    """torch.optim.Adam's update, in place, in NumPy (bias corrections in float64 like torch)."""
    import numpy as np
    t[0] += 1
    b1, b2, lr, eps = ADAM["b1"], ADAM["b2"], ADAM["lr"], ADAM["eps"]
    step_size = lr / (1 - b1 ** t[0])
    bc2_sqrt = np.sqrt(1 - b2 ** t[0])
    for p, g, mi, vi in zip(params, grads, m, v):
        mi *= b1
        mi += (1 - b1) * g
        vi *= b2
        vi += (1 - b2) * (g * g)
        denom = np.sqrt(vi)
        denom /= bc2_sqrt
        denom += eps
        p -= step_size * (mi / denom)


class TensorforgeSystem:
    """tensorforge graphs compiled with ``tg.compile(..., backend=...)``; one native call per step on llvm."""

    def __init__(self, backend):
        import tensorforge as tg
        self.tg, self.backend, self.name = tg, backend, backend
        self.compiled = {}                 # workload -> CompiledFunction, for compile times

    def _run(self, key, fn, *arrays):
        self.compiled[key] = fn
        return lambda: fn(*arrays)

    def chain(self, x):
        tg = self.tg
        g = tg.Graph()
        with g:
            xs = tg.placeholder("x", x.shape)
            out = tg.sigmoid(xs * CHAIN_A + CHAIN_B) * tg.tanh(xs) + tg.maximum(xs - 1, 0) * 0.5
        fn = tg.compile([xs], out, backend=self.backend, name="chain")
        return self._run("chain", fn, x)

    def build_step(self, workload, spec, x, y, dynamic_batch=False):
        """The compiled training step, not yet called (the first call builds it)."""
        return tensorforge_training_step(spec, x, y, self.backend, name=f"{workload}_step",
                                         dynamic_batch=dynamic_batch)

    def train_step(self, workload, spec, x, y):
        return self._run(workload, self.build_step(workload, spec, x, y), x, y)

    def matmul(self, a, b):
        tg = self.tg
        with tg.Graph():
            pa, pb = tg.placeholder("a", a.shape), tg.placeholder("b", b.shape)
            fn = tg.compile([pa, pb], pa @ pb, backend=self.backend, name="matmul")
        return self._run("matmul", fn, a, b)

    def compile_s(self, key):
        fn = self.compiled.get(key)
        return max(fn.compile_times.values()) if fn is not None and fn.compile_times else None


class TorchSystem:
    """PyTorch eager, or with ``torch.compile`` (mode default) on the model and the optimizer step."""

    def __init__(self, compiled: bool):
        import torch
        self.torch, self.compiled = torch, compiled
        self.name = "torch.compile" if compiled else "torch"
        self.notes = []

    def _maybe_compile(self, fn):
        return self.torch.compile(fn) if self.compiled else fn

    def chain(self, x):
        torch = self.torch
        xt = torch.from_numpy(x)

        def f(v):
            return torch.sigmoid(v * CHAIN_A + CHAIN_B) * torch.tanh(v) + torch.clamp(v - 1, min=0) * 0.5
        f = self._maybe_compile(f)
        return lambda: f(xt).numpy()

    def _train_step(self, forward, opt, x, y):
        torch = self.torch
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def loss_fn(a, b):
            return torch.nn.functional.cross_entropy(forward(a), b)
        loss_fn = self._maybe_compile(loss_fn)
        opt_step = opt.step
        if self.compiled:
            opt_step = torch.compile(opt.step)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(xt, yt)
            loss.backward()
            opt_step()
            return loss.item()
        return step

    def train_step(self, workload, spec, x, y):
        return self._train_step(*torch_model(spec), x, y)

    def compile_s(self, workload):
        return None


class JaxSystem:
    """jax.jit of the whole step: value_and_grad and the optimizer update in one jitted function."""

    name = "jax"

    def __init__(self):
        import jax
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp
        self.compile_s_of = {}

    def chain(self, x):
        jax, jnp = self.jax, self.jnp
        f = jax.jit(lambda v: jax.nn.sigmoid(v * CHAIN_A + CHAIN_B) * jnp.tanh(v) + jnp.maximum(v - 1, 0) * 0.5)
        xj = jnp.asarray(x)
        return lambda: f(xj).block_until_ready()

    def _train(self, key, loss_fn, update, params, state, x, y):
        """The jitted step's run(); its compile time is kept under ``key``."""
        run, self.compile_s_of[key] = jax_compiled_step(loss_fn, update, params, state, x, y)
        return run

    def train_step(self, workload, spec, x, y):
        return self._train(workload, *jax_model(spec), x, y)

    def compile_s(self, workload):
        return self.compile_s_of.get(workload)
