"""A small ResNet on the 8x8 digits: batch norm, skip connections, global average pooling.

    stem   conv 3x3 1->16, BatchNorm, ReLU                           (N, 16, 8, 8)
    block  [conv 3x3, BN, ReLU, conv 3x3, BN] + x, ReLU              (N, 16, 8, 8)
    block  the same with stride 2 and 32 channels; the skip path is
           a 1x1 convolution with stride 2 and BN (shapes must match) (N, 32, 4, 4)
    head   global average pooling, dense 32->10                       (N, 10)

The skip connection adds the block's input to its output, so the gradient reaches early
layers through the identity path as well. Expect about 98 % test accuracy after 8 epochs on
the LLVM backend.

    python examples/resnet_digits.py [--epochs 8] [--backend llvm]
"""
from __future__ import annotations

import argparse

import tensorforge as tg


class BasicBlock(tg.nn.Module):
    """Two 3x3 convolutions with batch norm, plus the (projected) input."""

    kind = "block"

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, seed: int = 0,
                 name: str | None = None):
        super().__init__(name)
        self.conv1 = tg.nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False, seed=seed)
        self.bn1 = tg.nn.BatchNorm(out_channels)
        self.conv2 = tg.nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False, seed=seed + 1)
        self.bn2 = tg.nn.BatchNorm(out_channels)
        self.project = None
        if stride != 1 or in_channels != out_channels:
            self.project = tg.nn.Sequential(
                tg.nn.Conv2d(in_channels, out_channels, 1, stride, bias=False, seed=seed + 2),
                tg.nn.BatchNorm(out_channels))

    def forward(self, x, training):
        out = tg.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.project is None else self.project(x)
        return tg.relu(out + skip)


class ResNet(tg.nn.Module):
    kind = "resnet"

    def __init__(self, width: int = 16, classes: int = 10, seed: int = 0, name: str | None = None):
        super().__init__(name)
        self.stem = tg.nn.Conv2d(1, width, 3, padding=1, bias=False, seed=seed)
        self.bn = tg.nn.BatchNorm(width)
        self.layer1 = BasicBlock(width, width, seed=seed + 10)
        self.layer2 = BasicBlock(width, 2 * width, stride=2, seed=seed + 20)
        self.fc = tg.nn.Dense(2 * width, classes, seed=seed + 30)

    def forward(self, x, training):
        x = tg.relu(self.bn(self.stem(x)))
        x = self.layer2(self.layer1(x))
        x = tg.adaptive_avg_pool2d(x, 1)            # global average pooling: (N, C, 1, 1)
        return self.fc(tg.reshape(x, (-1, x.shape[1])))


def main(epochs: int = 8, backend: str = "llvm", seed: int = 0, limit: int | None = None, steps: int | None = None,
         progress: bool = False, verbose: bool = True) -> dict:
    """Train (``steps``: stop after that many steps) and return {"test_accuracy", "first_loss",
    "history", "model"}."""
    x_train, y_train, x_test, y_test = tg.data.digits(flat=False, seed=seed)
    if limit:
        x_train, y_train, x_test, y_test = x_train[:limit], y_train[:limit], x_test[:limit], y_test[:limit]
    model = ResNet(seed=seed)
    step_losses = []     # the loss of every step, from fit's callback
    history = tg.train.fit(model, x_train, y_train, loss="cross_entropy", optimizer=tg.optim.Adam(lr=3e-3),
                           epochs=epochs, batch_size=32, validation_data=(x_test, y_test), backend=backend,
                           seed=seed, progress=progress, verbose=verbose, steps=steps,
                           callbacks=lambda info: step_losses.append(info.loss) if info.event == "step" else None)
    result = tg.train.evaluate(model, x_test, y_test, backend=backend)
    print(f"{model.num_parameters()} parameters; test loss {result['loss']:.4f}, "
          f"test accuracy {result['accuracy']:.4f}")
    return {"test_accuracy": result["accuracy"], "first_loss": step_losses[0], "history": history, "model": model}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--backend", default="llvm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N train/test images")
    args = parser.parse_args()
    main(args.epochs, args.backend, args.seed, args.limit, progress=True)
