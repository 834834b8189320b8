# %% [markdown]
# # 2. Gradients: by hand, then with `tg.grad`
#
# Backpropagation is the chain rule applied to a graph, from the output back to the inputs.
# Take `L = sum(tanh(x * w))` for one sample. By hand:
#
# * `dL/dy = 1` for `y = tanh(z)`, `z = x * w`,
# * `dL/dz = 1 - tanh(z)^2`,
# * `dL/dw = x * (1 - tanh(z)^2)` and `dL/dx = w * (1 - tanh(z)^2)`.

# %%
import numpy as np
import tensorforge as tg

x_val = np.array([1.0, 2.0, 3.0])
w_val = np.array([0.5, -1.0, 2.0])
by_hand_dw = x_val * (1 - np.tanh(x_val * w_val) ** 2)
print(by_hand_dw)

# %% [markdown]
# `tg.grad` derives the same thing *symbolically*: it adds the backward nodes to the graph, so
# the gradient is itself a graph that can be printed, optimised and compiled like any other.

# %%
g = tg.Graph("grads")
with g:
    x = tg.placeholder("x", (3,), dtype="float64")
    w = tg.placeholder("w", (3,), dtype="float64")
    loss = tg.sum(tg.tanh(x * w))
    dw, dx = tg.grad(loss, [w, x])

tg.dprint(dw);
f = tg.compile([x, w], [loss, dw, dx])
value, dw_val, dx_val = f(x_val, w_val)
assert np.allclose(dw_val, by_hand_dw)
assert np.allclose(dx_val, w_val * (1 - np.tanh(x_val * w_val) ** 2))
print("tg.grad agrees with the hand-derived gradient")

# %% [markdown]
# For functions too long to differentiate by hand, compare with *central finite differences*:
# `(L(w + eps) - L(w - eps)) / (2 eps)` for each element. `tg.testing.check_grad` does that and
# raises, naming the input and the worst element, if they disagree.

# %%
def model(x, w):
    return tg.sum(tg.sigmoid(x @ w) ** 2)

rng = np.random.default_rng(0)
tg.testing.check_grad(model, [rng.standard_normal((4, 3)), rng.standard_normal((3, 2))])
print("symbolic gradients match finite differences")
