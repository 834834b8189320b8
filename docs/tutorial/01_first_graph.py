# %% [markdown]
# # 1. A first graph
#
# tensorforge is *define-then-run*: you first describe a computation as a graph, then compile
# it into a function and call that function with arrays. Nothing is computed while the graph
# is built; every operation only adds a node.

# %%
import numpy as np
import tensorforge as tg

g = tg.Graph("first")
with g:                                        # nodes created inside go into g
    x = tg.placeholder("x", (None, 3))         # None: the batch size is bound at call time
    w = tg.parameter("w", np.array([0.5, -1.0, 2.0], np.float32))
    y = tg.tanh(x * w)                         # broadcasting as in NumPy
    total = tg.sum(y, axis=1)

print(total)                                   # a symbolic tensor: op, shape and dtype, no values

# %% [markdown]
# `tg.dprint` shows the nodes a tensor depends on, one line per node, with their shapes:

# %%
tg.dprint(total);

# %% [markdown]
# Compiling gives a Python callable. The interpreter (`backend="interp"`) runs the graph node by
# node with NumPy: it is the reference every other backend is tested against.

# %%
f = tg.compile(inputs=[x], outputs=[total], backend="interp")
batch = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)
(result,) = f(batch)
print(result)

expected = np.tanh(batch * np.array([0.5, -1.0, 2.0], np.float32)).sum(axis=1)
assert np.allclose(result, expected, rtol=1e-6)

# %% [markdown]
# The same function runs on any batch size, and bad input is refused before anything runs, with
# an error that names the placeholder and the shapes:

# %%
print(f(np.ones((5, 3), np.float32))[0])
try:
    f(np.ones((2, 4), np.float32))
except tg.InputError as e:
    print("InputError:", e)
