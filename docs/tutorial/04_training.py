# %% [markdown]
# # 4. Training
#
# A training step is one graph: the forward pass, the loss, the gradients (`tg.grad`) and the
# optimizer's updates of the parameters. Compiled once, it runs as one native call per step.

# %%
import numpy as np
import tensorforge as tg

x_train, y_train, x_test, y_test = tg.data.digits()
print(x_train.shape, y_train.shape)

g = tg.Graph("mlp")
with g:
    x = tg.placeholder("x", (None, 64))
    y = tg.placeholder("y", (None,), dtype="int64")
    W1 = tg.parameter("W1", tg.init.he_normal((64, 64), seed=0))
    b1 = tg.parameter("b1", np.zeros(64, np.float32))
    W2 = tg.parameter("W2", tg.init.he_normal((64, 10), seed=1))
    b2 = tg.parameter("b2", np.zeros(10, np.float32))
    logits = tg.relu(x @ W1 + b1) @ W2 + b2
    loss = tg.mean(tg.softmax_cross_entropy(logits, y))
    updates = tg.optim.Adam(lr=3e-3).updates(loss, [W1, b1, W2, b2])

step = tg.compile([x, y], [loss], updates=updates, backend="llvm")
predict = tg.compile([x], [logits], backend="llvm")

rng = np.random.default_rng(0)
for epoch in range(10):
    order = rng.permutation(len(x_train))
    losses = [step(x_train[i], y_train[i])[0] for i in np.array_split(order, len(order) // 32)]
    print(f"epoch {epoch + 1:2d}  loss {np.mean(losses):.4f}")

accuracy = (predict(x_test)[0].argmax(axis=1) == y_test).mean()
print(f"test accuracy {accuracy:.3f}")
assert accuracy > 0.9

# %% [markdown]
# The same with layers and the training loop of `tg.train` (shuffled minibatches, validation,
# early stopping, schedules); `History` holds the per-epoch records:

# %%
model = tg.nn.Sequential(tg.nn.Dense(64, 64, seed=0), tg.nn.ReLU(), tg.nn.Dense(64, 10, seed=1))
history = tg.train.fit(model, x_train, y_train, optimizer=tg.optim.Adam(lr=3e-3), epochs=10,
                       validation_data=(x_test, y_test), backend="llvm", progress=False, verbose=False)
print("validation accuracy per epoch:", np.round(history["val_accuracy"], 3))
assert history["val_accuracy"][-1] > 0.9
