"""The model examples of issue 10 (examples/mnist_net.py, resnet_digits.py, gru_sequence.py,
char_transformer.py), shortened: each trains for a few steps on llvm and must lower its
loss, and its first step's loss on the interpreter (float32 too) equals the one on llvm.

The full runs reach what each example's docstring states (measured: docs/examples.md).
"""
from __future__ import annotations

import numpy as np
import pytest

from test_examples import load


def _first_losses(name, **kwargs):
    """The first-step loss on llvm and on interp, and llvm's result after ``kwargs``."""
    module = load(name)
    fast = module.main(backend="llvm", verbose=False, **kwargs)
    short = dict(kwargs, **({"steps": 1} if "steps" in kwargs else {}))
    ref = module.main(backend="interp", verbose=False, **short)
    return fast, ref


@pytest.mark.parametrize("name,kwargs,accuracy", [
    ("resnet_digits", dict(epochs=2, limit=400), 0.8),
    ("gru_sequence", dict(epochs=3, limit=400), 0.6),
])
def test_small_models_learn_on_llvm_and_start_like_the_interpreter(name, kwargs, accuracy):
    module = load(name)
    fast = module.main(backend="llvm", verbose=False, **kwargs)
    ref = module.main(backend="interp", verbose=False, steps=1, limit=kwargs["limit"])
    assert fast["first_loss"] == pytest.approx(ref["first_loss"], rel=1e-4)
    assert fast["test_accuracy"] > accuracy
    losses = fast["history"]["loss"]
    assert losses[-1] < losses[0]


def test_mnist_net_port_learns_and_its_first_step_matches_the_interpreter():
    module = load("mnist_net")
    fast = module.main(backend="llvm", verbose=False, epochs=2, limit=320)
    ref = module.main(backend="interp", verbose=False, steps=1, limit=320)
    # dropout masks come from the same counter-based generator on both backends
    assert fast["first_loss"] == pytest.approx(ref["first_loss"], rel=1e-4)
    assert fast["first_loss"] == pytest.approx(np.log(10), abs=0.3)     # torch's init: near-uniform scores
    assert fast["test_accuracy"] > 0.5


def test_mnist_net_has_the_pytorch_example_parameter_layout():
    module = load("mnist_net")
    import tensorforge as tg
    model = module.Net()
    g = tg.Graph()
    with g:
        model(tg.placeholder("x", (None, 1, 28, 28)))
    shapes = {k: v.shape for k, v in model.state_dict(g).items()}
    assert shapes == {"conv1/W": (32, 1, 3, 3), "conv1/b": (32,), "conv2/W": (64, 32, 3, 3), "conv2/b": (64,),
                      "fc1/W": (9216, 128), "fc1/b": (128,), "fc2/W": (128, 10), "fc2/b": (10,)}
    assert model.num_parameters(g) == 1_199_882       # as torch's Net


def test_char_transformer_learns_and_its_first_step_matches_the_interpreter(capsys):
    module = load("char_transformer")
    fast = module.main(steps=60, backend="llvm", sample_chars=20, verbose=False)
    ref = module.main(steps=1, backend="interp", sample_chars=2, verbose=False)
    assert fast["first_loss"] == pytest.approx(ref["first_loss"], rel=1e-4)
    assert fast["losses"][0] > 4.0 and np.mean(fast["losses"][-10:]) < 3.2
    assert len(fast["sample"]) == 20
    assert "--- sample ---" in capsys.readouterr().out
