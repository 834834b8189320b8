"""A small CNN on the 8x8 digits images: conv 3x3 (8 filters, "same" padding P = (F-1)/2 = 1),
ReLU, 2x2 max pooling, then a dense layer to the 10 classes.

Shows convolution and pooling layers end to end: output sizes follow
(N + 2P - F) / stride + 1, each filter spans every input channel (F*F*C + 1
parameters), and training runs on the NumPy interpreter in seconds.
Expect about 97 % test accuracy.

    python examples/cnn_digits.py [--epochs 20] [--backend interp]
"""
from __future__ import annotations

import argparse

import tensorforge as tg


def build_model(channels: int = 8, seed: int = 0) -> tg.nn.Sequential:
    return tg.nn.Sequential(
        tg.nn.Conv2d(1, channels, 3, padding=1, seed=seed),   # (N, 1, 8, 8) -> (N, 8, 8, 8)
        tg.nn.ReLU(),
        tg.nn.MaxPool2d(2),                                   # -> (N, 8, 4, 4)
        tg.nn.Flatten(),                                      # -> (N, 128)
        tg.nn.Dense(channels * 4 * 4, 10, seed=seed + 1),     # -> (N, 10) class scores
    )


def main(epochs: int = 20, backend: str = "interp", seed: int = 0, progress: bool = False,
         verbose: bool = True) -> dict:
    """Train and return {"test_accuracy", "history", "model"}."""
    x_train, y_train, x_test, y_test = tg.data.digits(flat=False, seed=seed)
    model = build_model(seed=seed)
    print(f"digits as images: x_train {x_train.shape} (NCHW), x_test {x_test.shape}")
    print(model)
    conv = model[0]
    print(f"conv output size (8 + 2*1 - 3)/1 + 1 = {(8 + 2 * 1 - 3) // 1 + 1}; "
          f"{conv.num_parameters_per_filter()} parameters per filter (3*3*1 + 1)")
    history = tg.train.fit(model, x_train, y_train, loss="cross_entropy", optimizer=tg.optim.Adam(lr=3e-3),
                           epochs=epochs, batch_size=32, validation_data=(x_test, y_test), backend=backend,
                           seed=seed, progress=progress, verbose=verbose)
    result = tg.train.evaluate(model, x_test, y_test, backend=backend)
    print(f"{model.num_parameters()} parameters; training took {sum(history['time']):.2f} s "
          f"for {history.epochs} epochs")
    print(f"test loss {result['loss']:.4f}, test accuracy {result['accuracy']:.4f}")
    return {"test_accuracy": result["accuracy"], "history": history, "model": model}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--backend", default="interp")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    main(args.epochs, args.backend, args.seed, progress=True)
