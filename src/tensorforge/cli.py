"""The ``tensorforge`` command line.

``tensorforge train`` with no options is the project's main job: train an MLP on
the bundled digits data set and print its test accuracy.
"""
from __future__ import annotations

import sys

import click

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw", "adamax",
              "nadam")


def _make_optimizer(name: str, lr: float | None):
    from . import optim
    table = {
        "sgd": (optim.SGD, {"lr": 0.1}),
        "momentum": (optim.SGD, {"lr": 0.05, "momentum": 0.9}),
        "nesterov": (optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
        "adagrad": (optim.Adagrad, {"lr": 0.05}),
        "adadelta": (optim.Adadelta, {"lr": 1.0}),
        "rmsprop": (optim.RMSprop, {"lr": 1e-3}),
        "adam": (optim.Adam, {"lr": 3e-3}),
        "adamw": (optim.AdamW, {"lr": 3e-3}),
        "adamax": (optim.Adamax, {"lr": 5e-3}),
        "nadam": (optim.NAdam, {"lr": 3e-3}),
    }
    cls, kwargs = table[name]
    if lr is not None:
        kwargs["lr"] = lr
    return cls(**kwargs)


def _build_model(kind: str, seed: int):
    from . import nn
    if kind == "mlp":
        return nn.Sequential(nn.Dense(64, 128, seed=seed), nn.ReLU(), nn.Dense(128, 10, seed=seed + 1))
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, seed=seed), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dense(8 * 4 * 4, 10, seed=seed + 1))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tensorforge")
def main() -> None:
    """tensorforge: a symbolic computational-graph compiler (graphs, autodiff, LLVM/Triton code)."""


@main.command()
@click.option("--model", type=click.Choice(["mlp", "cnn"]), default="mlp", show_default=True,
              help="mlp: 64-128-10 on flat digits; cnn: conv3x3(8)-relu-maxpool-dense on 1x8x8 images.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Learning rate (default: a sensible value per optimizer).")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--backend", type=click.Choice(["interp", "llvm", "triton"]), default="llvm", show_default=True,
              help="llvm: native code for this CPU; interp: the NumPy reference; triton: NVIDIA GPUs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=None, help="Early-stopping patience (epochs).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def train(model, optimizer, lr, epochs, batch_size, backend, seed, patience, progress) -> None:
    """Train a model on the bundled digits data set and print its test accuracy."""
    from . import data
    from .backends import get_backend
    from .train import evaluate, fit

    try:
        get_backend(backend)
        if backend == "triton":
            from .backends.triton.backend import device
            device()
    except (ValueError, RuntimeError) as e:
        raise click.BadParameter(str(e), param_hint="--backend") from None

    x_train, y_train, x_test, y_test = data.digits(flat=(model == "mlp"), seed=seed)
    # validation (monitoring, early stopping) comes out of the training set; the test set is
    # touched once, at the end
    n_val = len(x_train) // 6
    x_train, x_val = x_train[n_val:], x_train[:n_val]
    y_train, y_val = y_train[n_val:], y_train[:n_val]
    net = _build_model(model, seed)
    opt = _make_optimizer(optimizer, lr)
    click.echo(f"training a {model.upper()} on digits ({len(x_train)} train / {len(x_val)} validation / "
               f"{len(x_test)} test), "
               f"{optimizer}, backend={backend}")
    hist = fit(net, x_train, y_train, loss="cross_entropy", optimizer=opt, epochs=epochs,
               batch_size=batch_size, validation_data=(x_val, y_val), early_stopping=patience,
               backend=backend, seed=seed, progress=progress, verbose=True)
    result = evaluate(net, x_test, y_test, backend=backend)
    click.echo(f"epochs run: {len(hist['loss'])}, final train loss {hist['loss'][-1]:.4f}")
    click.echo(f"test accuracy: {result['accuracy']:.4f}")


def run() -> None:  # pragma: no cover - console entry point wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    main()
