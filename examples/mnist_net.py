"""The PyTorch MNIST example's ``Net``, ported line by line, on the digits upscaled to 28x28.

PyTorch's classic example (examples/mnist/main.py) trains

    conv 1->32 3x3, ReLU, conv 32->64 3x3, ReLU, max-pool 2, dropout 0.25,
    flatten 9216, dense 128, ReLU, dropout 0.5, dense 10, log_softmax

with the negative log-likelihood loss, Adadelta(lr=1.0) and StepLR(step_size=1, gamma=0.7).
Here the same network, the same initialisation rule (``init="torch"``), loss, optimizer and
schedule train on scikit-learn's 8x8 digits, upscaled to 28x28 with bilinear interpolation
(``tg.interpolate``) and standardised. Expect about 95 % test accuracy after 8 epochs on the
LLVM backend (the digits give 22 steps per epoch where MNIST gives 938, so the schedule,
which decays the learning rate every epoch, leaves fewer updates).

    python examples/mnist_net.py [--epochs 8] [--backend llvm] [--limit N]
"""
from __future__ import annotations

import argparse

import numpy as np

import tensorforge as tg


class Net(tg.nn.Module):
    """The network of PyTorch's MNIST example; attribute names become parameter names
    (``conv1/W``, ``fc2/b``, ...), so a torch ``state_dict`` of that example loads with
    ``tg.nn.from_torch_state_dict``."""

    kind = "net"

    def __init__(self, seed: int = 0, name: str | None = None):
        super().__init__(name)
        self.conv1 = tg.nn.Conv2d(1, 32, 3, 1, init="torch", seed=seed)
        self.conv2 = tg.nn.Conv2d(32, 64, 3, 1, init="torch", seed=seed + 1)
        self.dropout1 = tg.nn.Dropout(0.25)
        self.dropout2 = tg.nn.Dropout(0.5)
        self.flatten = tg.nn.Flatten()
        self.fc1 = tg.nn.Dense(9216, 128, init="torch", seed=seed + 2)
        self.fc2 = tg.nn.Dense(128, 10, init="torch", seed=seed + 3)

    def forward(self, x, training):
        x = tg.relu(self.conv1(x))                  # (N, 32, 26, 26)
        x = tg.relu(self.conv2(x))                  # (N, 64, 24, 24)
        x = tg.max_pool2d(x, 2)                     # (N, 64, 12, 12)
        x = self.dropout1(x)
        x = tg.relu(self.fc1(self.flatten(x)))      # (N, 128)
        x = self.fc2(self.dropout2(x))              # (N, 10)
        return tg.log_softmax(x, axis=1)


def upscale(images: np.ndarray, size: int = 28) -> np.ndarray:
    """(N, 1, 8, 8) images -> (N, 1, size, size) by bilinear interpolation, standardised to mean 0
    and standard deviation 1 (the PyTorch example's Normalize transform does the same for MNIST)."""
    g = tg.Graph("upscale")
    with g:
        x = tg.placeholder("x", (None,) + images.shape[1:])
        y = tg.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    (big,) = tg.compile([x], [y])(images)
    return ((big - big.mean()) / big.std()).astype(np.float32)


def nll(log_probs, labels):
    """The example's loss: F.nll_loss(output, target), the mean over the batch."""
    return tg.nll_loss(log_probs, labels)


def main(epochs: int = 8, backend: str = "llvm", seed: int = 1, limit: int | None = None, steps: int | None = None,
         batch_size: int = 64, progress: bool = False, verbose: bool = True) -> dict:
    """Train (``steps``: stop after that many steps) and return {"test_accuracy", "first_loss",
    "history", "model"}."""
    x_train, y_train, x_test, y_test = tg.data.digits(flat=False, seed=seed)
    if limit:
        x_train, y_train = x_train[:limit], y_train[:limit]
        x_test, y_test = x_test[:limit], y_test[:limit]
    x_train, x_test = upscale(x_train), upscale(x_test)
    print(f"digits upscaled to {x_train.shape[2:]}: train {x_train.shape}, test {x_test.shape}")
    model = Net(seed=seed)
    optimizer = tg.optim.Adadelta(lr=1.0)
    schedule = tg.optim.schedules.StepLR(optimizer, step_size=1, gamma=0.7)
    step_losses = []     # the loss of every step, from fit's callback
    history = tg.train.fit(model, x_train, y_train, loss=nll, optimizer=optimizer, schedule=schedule,
                           epochs=epochs, batch_size=batch_size, validation_data=(x_test, y_test),
                           backend=backend, seed=seed, progress=progress, verbose=verbose, steps=steps,
                           callbacks=lambda info: step_losses.append(info.loss) if info.event == "step" else None)
    result = tg.train.evaluate(model, x_test, y_test, loss=nll, backend=backend)
    print(f"{model.num_parameters()} parameters; test loss {result['loss']:.4f}, "
          f"test accuracy {result['accuracy']:.4f}")
    return {"test_accuracy": result["accuracy"], "first_loss": step_losses[0], "history": history, "model": model}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--backend", default="llvm")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N train/test images")
    args = parser.parse_args()
    main(args.epochs, args.backend, args.seed, args.limit, progress=True)
