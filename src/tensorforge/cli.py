"""The ``tensorforge`` command line: train, predict, bench, export and show.

``tensorforge train`` with no options is the project's main job: train an MLP on
the bundled digits data set and print its test accuracy. Users' data is read and prepared by
``cli_data`` (labels, split, scaling, shapes), a trained model is saved and loaded by
``cli_model`` (``train --save``, ``predict``, which ``cli_predict`` runs), and the run's
report (summary table, plot, Ctrl-C, divergence) is ``cli_report``. Optional packages are
checked with ``_optional.require`` before any work starts. Every failure (a missing or
damaged file, a bad option value, data of the wrong shape, a diverged run) ends with one
line on stderr ("Error: ..." naming the culprit) and exit code 2, never a traceback: the
common mistakes are raised as click exceptions, and the command group turns anything
else into one line too (``--debug`` or TENSORFORGE_DEBUG=1 shows the traceback).
"""
from __future__ import annotations

import inspect
import math
import sys
from collections import Counter
from pathlib import Path

import click
import numpy as np

from . import cli_report as report
from ._fileio import atomic_write
from . import cli_data
from ._optional import require
from .cli_data import DATASETS, SCALES
from .cli_errors import CliError, FiniteFloat, GuardedGroup
from .cli_model import graph_module as _graph_module, load_graph as _load_saved

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw", "adamax",
              "nadam")
SCHEDULES = ("none", "step", "cosine", "onecycle", "plateau")
BACKENDS = ("interp", "llvm", "triton")
EXPORT_FORMATS = ("dot", "svg", "png", "json", "onnx")


# ---- optimizers --------------------------------------------------------------------------

def _optimizer_table():
    from . import optim
    return {
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


def _make_optimizer(name: str, lr: float | None, **hyper):
    """The optimizer ``name`` with its default lr (or ``lr``) and the hyper-parameters given
    (None = not given); one it does not take is a bad option, not a silent no-op."""
    cls, kwargs = _optimizer_table()[name]
    kwargs = dict(kwargs)
    if lr is not None:
        kwargs["lr"] = lr
    accepted = inspect.signature(cls.__init__).parameters
    for key, value in hyper.items():
        if value is None:
            continue
        if key == "beta1" or key == "beta2":
            if "betas" not in accepted:
                raise click.BadParameter(f"{name} has no betas", param_hint=f"--{key}")
            betas = list(kwargs.get("betas", accepted["betas"].default))
            betas[0 if key == "beta1" else 1] = value
            kwargs["betas"] = tuple(betas)
            continue
        if key not in accepted:
            raise click.BadParameter(f"{name} does not take {key.replace('_', '-')}",
                                     param_hint="--" + key.replace("_", "-"))
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ValueError as e:
        raise click.UsageError(f"{name}: {e}") from None


def _make_schedule(kind: str, opt, epochs: int, steps_per_epoch: int, step_size: int | None,
                   gamma: float | None):
    """(schedule or None, "epoch" or "batch"): how often fit steps it."""
    from .optim import schedules
    if kind == "none":
        return None, "epoch"
    if kind == "step":
        return schedules.StepLR(opt, step_size or max(1, epochs // 3), gamma if gamma is not None else 0.1), "epoch"
    if kind == "cosine":
        return schedules.CosineAnnealingLR(opt, T_max=epochs), "epoch"
    if kind == "onecycle":
        # cycle_momentum=False: the CLI has no option for it, so the warning asking for it
        # would only confuse (tensorforge cycles the learning rate alone)
        return schedules.OneCycleLR(opt, max_lr=float(opt.lr), epochs=epochs, steps_per_epoch=steps_per_epoch,
                                    cycle_momentum=False), "batch"
    return schedules.ReduceLROnPlateau(opt, factor=gamma if gamma is not None else 0.5,
                                       patience=step_size or 2), "epoch"


# ---- models -----------------------------------------------------------------------------------

def _build_model(kind: str, seed: int, in_features: int = 64, classes: int = 10, hidden: int = 128,
                 image_hw: tuple[int, int] = (8, 8)):
    from . import nn
    if kind == "mlp":
        return nn.Sequential(nn.Dense(in_features, hidden, seed=seed), nn.ReLU(),
                             nn.Dense(hidden, classes, seed=seed + 1))
    h, w = image_hw
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, seed=seed), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dense(8 * (h // 2) * (w // 2), classes, seed=seed + 1))


def _parameter_list(loaded) -> list:
    """The saved parameters as a list (``Loaded.parameters`` maps names to tensors)."""
    params = loaded.parameters
    return list(params.values()) if isinstance(params, dict) else list(params)


def _check_output(path: str | None, param_hint: str) -> None:
    """An output path's folder must exist (say so now, not after the work is done)."""
    if path is not None and not Path(path).resolve().parent.is_dir():
        raise click.BadParameter(f"cannot write {path}: the folder {Path(path).parent} does not exist",
                                 param_hint=param_hint)


def _check_backend(backend: str) -> None:
    from .backends import get_backend
    try:
        get_backend(backend)
        if backend == "triton":
            from .backends.triton.backend import device
            device()
    except (ValueError, RuntimeError, ImportError) as e:
        raise click.BadParameter(str(e), param_hint="--backend") from None


# ---- the command group ------------------------------------------------------------------------

@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tensorforge")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error (or TENSORFORGE_DEBUG=1).")
def main(debug) -> None:
    """tensorforge: a symbolic computational-graph compiler (graphs, autodiff, LLVM/Triton code)."""


# ---- train --------------------------------------------------------------------------------------

@main.command()
@click.option("--data", "dataset", default="digits", show_default=True, metavar="NAME|FILE",
              help=f"{', '.join(DATASETS)}, or a .npz (arrays x, y), .npy or .csv (last column the label: "
                   f"class numbers or words).")
@click.option("--delimiter", default=None, metavar="CHAR",
              help="The CSV column separator (default: ',' unless the first line has only ';' or tabs).")
@click.option("--scale", type=click.Choice(SCALES), default="auto", show_default=True,
              help="standard: standardise each feature with the training part's mean and deviation; "
                   "auto: standard for your files, none for the built-in sets.")
@click.option("--model", default="mlp", show_default=True, metavar="mlp|cnn|FILE",
              help="mlp: in-hidden-classes (ReLU); cnn: conv3x3(8)-relu-maxpool-dense on 1xHxW images; "
                   "or a graph saved with tg.export.save / `tensorforge export --format json` / --save.")
@click.option("--image-shape", default=None, metavar="HxW", help="cnn: read each row of features as an HxW image.")
@click.option("--hidden", type=click.IntRange(min=1), default=None,
              help="MLP hidden units (default 128; spirals 64).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True)
@click.option("--lr", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Learning rate (default: a sensible value per optimizer and data set).")
@click.option("--momentum", type=FiniteFloat(min=0), default=None, help="SGD/RMSprop momentum.")
@click.option("--weight-decay", type=FiniteFloat(min=0), default=None)
@click.option("--beta1", type=FiniteFloat(0, 1, max_open=True), default=None, help="Adam-family beta1.")
@click.option("--beta2", type=FiniteFloat(0, 1, max_open=True), default=None, help="Adam-family beta2.")
@click.option("--eps", type=FiniteFloat(min=0, min_open=True), default=None)
@click.option("--schedule", type=click.Choice(SCHEDULES), default="none", show_default=True,
              help="Learning-rate schedule (onecycle peaks at --lr and steps every batch).")
@click.option("--step-size", type=click.IntRange(min=1), default=None,
              help="step: epochs between decays (default epochs/3); plateau: patience (default 2).")
@click.option("--gamma", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=None,
              help="step: decay factor (default 0.1); plateau: factor (default 0.5).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (default 20; spirals 200).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--backend", type=click.Choice(BACKENDS), default="llvm", show_default=True,
              help="llvm: native code for this CPU; interp: the NumPy reference; triton: NVIDIA GPUs.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=None, help="Early-stopping patience (epochs).")
@click.option("--progress/--no-progress", default=None,
              help="Show a progress bar (default: only when stderr is a terminal, so logs stay clean).")
@click.option("--plot", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write loss/accuracy curves to this PNG.")
@click.option("--save", type=click.Path(), default=None, metavar="DIR|FILE.tgz",
              help="Save the trained model (graph, parameters, label names, scaling) for `tensorforge predict`.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Save a checkpoint there after every epoch.")
@click.option("--resume", is_flag=True, help="Resume from the last checkpoint in --checkpoint-dir.")
def train(**options) -> None:
    """Train a model on a data set and print a summary table and its test accuracy.

    \b
    Data-parallel on N processes (pip install "tensorforge[distributed]"):
      mpiexec -n N tensorforge train [OPTIONS]    (on Slurm: srun -n N tensorforge train ...)
    Each process trains on its shard of every batch (--batch-size is per process), the
    gradients are averaged in one allreduce per step, and only rank 0 prints, draws the
    progress bar and writes checkpoints and plots.
    """
    from . import distributed as dist
    try:
        dist.init()
    except ImportError as e:        # started by mpiexec without the [distributed] extra
        raise CliError(str(e)) from None
    dist.quiet_unless_main()
    with dist.abort_on_error():
        _train(**options)


# defaults that depend on the data set: the two spirals need a longer run and a larger step to
# be separated (20 epochs of the digits' defaults reach 0.67)
TRAIN_DEFAULTS = {"epochs": 20, "hidden": 128}
DATASET_DEFAULTS = {"spirals": {"epochs": 200, "hidden": 64, "lr": 0.01}}


def _with_defaults(dataset: str, optimizer: str, epochs, hidden, lr):
    """(epochs, hidden, lr): the options given, else the data set's defaults, else the general ones."""
    own = DATASET_DEFAULTS.get(dataset, {})
    epochs = epochs if epochs is not None else own.get("epochs", TRAIN_DEFAULTS["epochs"])
    hidden = hidden if hidden is not None else own.get("hidden", TRAIN_DEFAULTS["hidden"])
    if lr is None and optimizer == "adam":
        lr = own.get("lr")
    return epochs, hidden, lr


def _load_data(dataset: str, seed: int, delimiter: str | None):
    """The data set, read and split (``cli_data.load``)."""
    return cli_data.load(dataset, seed, delimiter)


def _check_train_options(backend, resume, checkpoint_dir, plot, save) -> None:
    """What can be checked before any work: a failure here costs nothing."""
    _check_backend(backend)
    if resume and not checkpoint_dir:
        raise click.BadParameter("--resume needs --checkpoint-dir", param_hint="--resume")
    if plot is not None:
        if not plot.lower().endswith(".png"):
            raise click.BadParameter("the plot is a PNG: give a path ending in .png", param_hint="--plot")
        _check_output(plot, "--plot")
        require("matplotlib", extra="export", feature="--plot")
    if save is not None:
        _check_output(save, "--save")
        if Path(save).suffix.lower() != ".tgz" and Path(save).exists() and not Path(save).is_dir():
            raise click.BadParameter(f"{save} is a file: give a folder or a path ending in .tgz",
                                     param_hint="--save")


def _train(dataset, delimiter, scale, model, image_shape, hidden, optimizer, lr, momentum, weight_decay, beta1,
           beta2, eps, schedule, step_size, gamma, epochs, batch_size, backend, seed, patience, progress, plot,
           save, checkpoint_dir, resume) -> None:
    from . import distributed as dist
    from .train import evaluate, fit

    _check_train_options(backend, resume, checkpoint_dir, plot, save)
    epochs, hidden, lr = _with_defaults(dataset, optimizer, epochs, hidden, lr)
    progress = sys.stderr.isatty() if progress is None else progress
    image_hw = cli_data.parse_image_shape(image_shape)

    net, in_shape = None, None
    if model not in ("mlp", "cnn"):
        net, in_shape = _graph_module(_load_saved(model, "--model"))
    data = cli_data.scale(_load_data(dataset, seed, delimiter), scale)
    shape = cli_data.sample_shape(model, in_shape, data.x_train.shape[1:], image_hw or data.image_hw, data.notes)
    x_train, x_test = cli_data.reshape(data.x_train, shape), cli_data.reshape(data.x_test, shape)
    y_train, y_test = data.y_train, data.y_test
    if net is None:
        net = _build_model(model, seed, in_features=int(np.prod(shape)), classes=data.n_classes, hidden=hidden,
                           image_hw=tuple(shape[-2:]) if model == "cnn" else (8, 8))

    # validation (monitoring, early stopping) comes out of the training set; the test set is
    # touched once, at the end
    x_train, y_train, x_val, y_val = cli_data.validation_split(x_train, y_train, seed)
    opt = _make_optimizer(optimizer, lr, momentum=momentum, weight_decay=weight_decay, beta1=beta1,
                          beta2=beta2, eps=eps)
    sched, interval = _make_schedule(schedule, opt, epochs, math.ceil(len(x_train) / (batch_size * dist.size())),
                                     step_size, gamma)
    extra = _checkpoint_kwargs(fit, checkpoint_dir, resume)
    if resume:
        report.check_resumable(checkpoint_dir, opt, optimizer)
    model_name = model.upper() if model in ("mlp", "cnn") else Path(model).name
    for note in data.notes:
        click.echo(f"note: {note}")
    click.echo(f"training a {model_name} on {data.name} ({len(x_train)} train / {len(x_val)} validation / "
               f"{len(x_test)} test), {optimizer}, backend={backend}")
    fit_kwargs = dict(loss="cross_entropy", optimizer=opt, epochs=epochs, batch_size=batch_size,
                      validation_data=(x_val, y_val), early_stopping=patience, schedule=sched,
                      schedule_interval=interval, backend=backend, seed=seed, progress=progress, verbose=True,
                      **extra)
    run = report.run_fit(fit, net, x_train, y_train, fit_kwargs, checkpoint_dir)
    results = report.final_results(evaluate, net, (x_train, y_train), (x_test, y_test), backend)
    report.print_summary(run.history, *results)
    if plot is not None and run.history.epochs and dist.is_main():
        report.plot_history(run.history, plot)
        click.echo(f"wrote {plot}")
    if save is not None and dist.is_main():
        _save_trained(save, net, shape, data, dict(model=model_name, data=data.name, epochs=run.history.epochs,
                                                   test_accuracy=results[1]["accuracy"]))
    click.echo(f"test accuracy: {results[1]['accuracy']:.4f}")
    report.fail_if_stopped(run)


def _save_trained(path, net, shape, data, info: dict) -> None:
    from .cli_model import ModelError, save_model
    try:
        save_model(path, net, shape, data.classes, data.scaler, info)
    except (OSError, ModelError) as e:
        raise CliError(f"cannot save the model to {path}: {e}") from None
    click.echo(f"saved the model to {path} (tensorforge predict {path} --data FILE)")


def _checkpoint_kwargs(fit, checkpoint_dir, resume) -> dict:
    if checkpoint_dir is None:
        return {}
    if "checkpoint_dir" not in inspect.signature(fit).parameters:
        raise CliError("this version of tg.train.fit cannot save checkpoints")
    return {"checkpoint_dir": checkpoint_dir, "resume": resume}


# ---- bench ----------------------------------------------------------------------------------------

@main.command()
@click.argument("workload", type=click.Choice(["mlp", "mlp-big", "small-mlp", "cnn", "net"]), default="small-mlp")
@click.option("--seconds", type=FiniteFloat(min=0, min_open=True), default=1.0, show_default=True,
              help="Measuring time per system and round.")
@click.option("--backend", "systems", multiple=True, metavar="NAME",
              help="Measure only these (repeatable): interp, llvm, triton, torch, jax. Default: all available.")
@click.option("--peers/--no-peers", default=True, help="Include PyTorch and JAX when installed.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Threads of every system (set in each worker's environment before import).")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Interleaved repeats: each round measures every system once; the table shows medians.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write a bar chart to this PNG.")
@click.option("--profile", "top", type=click.IntRange(min=1), default=None, metavar="N",
              help="Then list the N slowest kernels of each tensorforge backend's step.")
def bench(workload, seconds, systems, peers, threads, rounds, plot, top) -> None:
    """Time one training step of WORKLOAD on every available backend, fairly: each system in its
    own process with the same pinned thread count, ROUNDS interleaved repeats, median and spread."""
    from . import bench as b
    available = b.available_systems(peers=True)
    if systems:
        for s in systems:
            if s not in available:
                raise click.BadParameter(f"{s!r} is not available here (available: {', '.join(available)})",
                                         param_hint="--backend")
        chosen = list(dict.fromkeys(systems))
    else:
        chosen = [s for s in available if peers or s not in ("torch", "jax")]
    if plot is not None and not plot.lower().endswith(".png"):
        raise click.BadParameter("the chart is a PNG: give a path ending in .png", param_hint="--plot")
    _check_output(plot, "--plot")
    if plot is not None:
        require("matplotlib", extra="export", feature="--plot")
    click.echo(f"{workload}: {b.WORKLOADS[workload][0]}; {seconds:g} s per system and round, {rounds} "
               f"round{'s' if rounds != 1 else ''}, {threads} thread{'s' if threads != 1 else ''}, "
               f"on {', '.join(chosen)}")
    run = b.run_fair(workload, chosen, seconds, threads=threads, rounds=rounds)
    _echo_load(run)
    if not run.results:
        raise CliError("no system could be measured: " + "; ".join(f"{s}: {e}" for s, e in run.failed.items()))
    click.echo(b.format_table(run.results))
    click.echo("")
    click.echo(b.format_spread(run))
    for system, why in run.failed.items():
        click.echo(f"{system}: not measured ({why})")
    if plot is not None:
        try:
            b.plot_bars(run.results, workload, plot)
        except OSError as e:
            raise CliError(f"cannot write {plot}: {e}") from None
        click.echo(f"wrote {plot}")
    if top is not None:
        for system in chosen:
            if system in ("interp", "llvm", "triton"):
                click.echo("")
                click.echo(b.profile_workload(workload, system).table(n=top))


def _echo_load(run) -> None:
    """The load average before and after the bench run, and a warning when the machine was busy."""
    shown = ["-" if x is None else f"{x:.2f}" for x in (run.load_before, run.load_after)]
    click.echo(f"1-min load average: {shown[0]} before, {shown[1]} after")
    for warning in run.warnings():
        click.echo(warning, err=True)


# ---- export -------------------------------------------------------------------------------------------

def _builtin_graph(kind: str, backward: bool, seed: int = 0):
    """(inputs, outputs) of the built-in model in a new graph: the inference graph, or with
    ``backward`` a training step (cross-entropy loss, gradients, Adam updates)."""
    from . import graph as g
    from . import ops
    from .optim import Adam
    graph = g.Graph(f"{kind}")
    shape = (None, 64) if kind == "mlp" else (None, 1, 8, 8)
    x = g.placeholder("x", shape, graph=graph)
    net = _build_model(kind, seed)
    if not backward:
        return [x], [net(x, training=False)], None
    y = g.placeholder("y", (None,), dtype="int64", graph=graph)
    loss = ops.mean(ops.softmax_cross_entropy(net(x, training=True), y))
    updates = Adam(lr=1e-3).updates(loss, net.parameters(graph))
    return [x, y], [loss], updates


def _example_inputs(inputs, batch: int) -> list[np.ndarray]:
    """Random arrays for the placeholders (unknown dimensions = ``batch``), labels in 0..9."""
    rng = np.random.default_rng(0)
    arrays = []
    for t in inputs:
        shape = tuple(batch if d is None else d for d in t.shape)
        if np.dtype(t.dtype).kind in "iu":
            arrays.append(rng.integers(0, 10, shape).astype(t.dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(t.dtype))
    return arrays


@main.command()
@click.argument("source", metavar="MODEL|FILE")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The file to write.")
@click.option("--backward", is_flag=True, help="Include the gradient graph (a training step with Adam).")
@click.option("--fused", is_flag=True, help="Show the compiled kernel groups (dot/svg/png).")
@click.option("--backend", type=click.Choice(BACKENDS), default="llvm", show_default=True,
              help="The backend compiled for --fused.")
@click.option("--max-nodes", type=click.IntRange(min=1), default=300, show_default=True)
def export(source, fmt, output, backward, fused, backend, max_nodes) -> None:
    """Write a built-in model (mlp, cnn) or a saved graph FILE as dot, svg, png, json or onnx."""
    from . import export as ex
    from .compile import compile as tg_compile
    if source in ("mlp", "cnn"):
        inputs, outputs, updates = _builtin_graph(source, backward)
    else:
        loaded = _load_saved(source, "MODEL|FILE")
        inputs, outputs, updates = list(loaded.inputs), list(loaded.outputs), None
        if backward:
            raise click.BadParameter("--backward applies to the built-in models (mlp, cnn)",
                                     param_hint="--backward")
    if fmt in ("json", "onnx") and (backward or fused):
        raise click.BadParameter(f"{fmt} exports the inference graph: drop --backward/--fused",
                                 param_hint="--format")
    if fmt == "svg" or fmt == "png":
        if Path(output).suffix.lower() != "." + fmt:
            raise click.BadParameter(f"a {fmt} picture needs a path ending in .{fmt}", param_hint="-o")
    if fmt == "json" and Path(output).suffix.lower() != ".json":
        raise click.BadParameter("the saved graph needs a path ending in .json", param_hint="-o")
    _check_output(output, "-o")
    _require_for_format(fmt)
    try:
        obj = list(outputs) + ([new for _, new in updates] if updates else [])
        if fused:
            _check_backend(backend)
            obj = tg_compile(inputs, outputs, updates=updates, backend=backend, name=f"{source}_step")
            obj(*_example_inputs(inputs, 32))     # the kernel groups exist once a shape is compiled
        if fmt == "dot":
            text = ex.to_dot(obj, backward=backward, fused=fused, max_nodes=max_nodes)
            _write_text(output, text)
        elif fmt in ("svg", "png"):
            ex.draw(obj, output, backward=backward, fused=fused, max_nodes=max_nodes)
        elif fmt == "json":
            ex.save(output, outputs, inputs)
        else:
            ex.to_onnx(inputs, outputs, output)
    except OSError as e:
        raise CliError(f"cannot write {output}: {e}") from None
    except (ValueError, NotImplementedError) as e:
        raise CliError(f"cannot export {source} as {fmt}: {e}") from None
    click.echo(f"wrote {output}" + (f" and {Path(output).with_suffix('.npz')}" if fmt == "json" else ""))


def _require_for_format(fmt: str) -> None:
    """The optional packages a format needs, checked before any work."""
    if fmt == "onnx":
        require("onnx", extra="export", feature="--format onnx")
    elif fmt in ("svg", "png"):
        from .export.draw import dot_available
        if not dot_available():           # the Graphviz binary draws without matplotlib
            require("matplotlib", extra="export", feature=f"--format {fmt}")


def _write_text(path: str, text: str) -> None:
    atomic_write(path, text.encode())


# ---- predict ---------------------------------------------------------------------------------------------

@main.command()
@click.argument("model", metavar="MODEL")
@click.option("--data", "data_path", required=True, metavar="FILE",
              help="A .csv, .npy or .npz with the columns the model was trained on (a label column may follow).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the predictions to this CSV (default: print them).")
@click.option("--proba", is_flag=True, help="Also give each class's probability.")
@click.option("--delimiter", default=None, metavar="CHAR", help="The CSV column separator (default: sniffed).")
@click.option("--backend", type=click.Choice(BACKENDS), default="llvm", show_default=True)
def predict(model, data_path, out, proba, delimiter, backend) -> None:
    """Predict the labels of new data with a MODEL saved by `tensorforge train --save`."""
    from .cli_predict import predict as run_predict
    _check_backend(backend)
    _check_output(out, "--out")
    run_predict(model, data_path, out, proba, backend, delimiter)


# ---- show ------------------------------------------------------------------------------------------------

@main.command()
@click.argument("file", metavar="FILE")
@click.option("--ir", is_flag=True, help="Print the generated code of the forward function.")
@click.option("--backend", type=click.Choice(["llvm", "triton"]), default="llvm", show_default=True,
              help="With --ir: LLVM IR (llvm) or Triton source (triton).")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --ir: the size given to unknown (batch) dimensions.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False), default=None, metavar="OUT.html",
              help="Write the graph as one interactive page (zoom, search, tooltips) for any browser.")
def show(file, ir, backend, batch, html_out) -> None:
    """Summarise a saved graph FILE: inputs, outputs, ops, parameters and their shapes."""
    from .compile import compile as tg_compile
    from .graph import format_shape
    if html_out is not None and ir:
        raise click.BadParameter("--html and --ir are separate views: give one", param_hint="--html")
    _check_output(html_out, "--html")
    loaded = _load_saved(file, "FILE")
    if html_out is not None:
        _show_html(loaded, file, html_out)
        return
    if ir:
        try:
            fn = tg_compile(list(loaded.inputs), list(loaded.outputs), backend=backend, name="forward")
            if backend == "triton" and not _triton_runs_here():
                click.echo(_triton_source(fn, _example_inputs(loaded.inputs, batch)))
                return
            _check_backend(backend)
            fn(*_example_inputs(loaded.inputs, batch))
        except (ValueError, NotImplementedError) as e:
            raise CliError(f"cannot compile {file}: {e}") from None
        click.echo(fn.ir)
        return
    graph = loaded.outputs[0].graph
    nodes = [graph.tensor(n) for n in graph.topological_order([t.id for t in loaded.outputs])]
    ops = Counter(t.op for t in nodes if t.op not in ("placeholder", "parameter", "constant"))
    params = _parameter_list(loaded)
    n_params = sum(int(np.prod(p.shape)) for p in params)
    click.echo(f"{file}: {len(nodes)} nodes, {sum(ops.values())} ops, {len(params)} parameters "
               f"({n_params:,} values)")
    for title, tensors in (("inputs", loaded.inputs), ("outputs", loaded.outputs), ("parameters", params)):
        click.echo(f"{title}:")
        for t in tensors:
            click.echo(f"  {t.name:<24} {format_shape(t.shape):<16} {t.dtype}")
    click.echo("ops:")
    for op, count in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"  {op:<24} {count}")


def _show_html(loaded, file: str, html_out: str) -> None:
    """``show --html``: the saved graph's outputs and everything they need, as tg.export.to_html's page."""
    from .export import to_html
    try:
        to_html(list(loaded.outputs), html_out, title=Path(file).name)
    except OSError as e:
        raise CliError(f"cannot write {html_out}: {e}") from None
    click.echo(f"wrote {html_out}")


def _triton_runs_here() -> bool:
    try:
        _check_backend("triton")
        return True
    except click.BadParameter:
        return False


def _triton_source(fn, arrays) -> str:
    """The Triton source of ``fn`` for these inputs, generated without a GPU: printing source needs
    no device, so ``show --ir --backend triton`` works on any machine (the kernels are lowered for
    the CPU-side buffers; the source is the same one a GPU would compile)."""
    from .backends.triton.backend import _Lowering
    from .backends.triton.source import module_source
    from .passes import run_passes
    program = run_passes(fn._program(arrays), fn.passes)
    low = _Lowering(program, "cpu")
    low.lower()
    return module_source(low.sources, doc="Generated by tensorforge: the Triton kernels of one step.")


def run() -> None:  # pragma: no cover - console entry point wrapper
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    main()
