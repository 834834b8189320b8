"""``tg.nn``: layers that build graph nodes, a Module base class, and weight penalties.

    model = tg.nn.Sequential(tg.nn.Dense(64, 128), tg.nn.ReLU(), tg.nn.Dense(128, 10))
    logits = model(x)                       # builds ops in x's graph; parameters dense0/W, dense0/b, ...
    eval_logits = model(x, training=False)  # same parameters, evaluation behaviour

See module.py for naming, modes and parameter sharing.
"""
from __future__ import annotations

from .module import Module, ParamSpec
from .layers import (ELU, AvgPool2d, BatchNorm, Conv2d, Dense, Dropout, Flatten, Lambda, LayerNorm, LeakyReLU,
                     LogSoftmax, MaxPool2d, Maxout, PReLU, ReLU, Reshape, Sequential, Sigmoid, Softmax, Softplus,
                     Tanh)
from .penalties import l1, l2
# issue 10: torch-compatible layers and torch weight import
from .activations import (CELU, GELU, GLU, SELU, Hardsigmoid, Hardswish, Hardtanh, Identity, LogSigmoid, Mish,
                          ReLU6, SiLU, Softmin, Softsign)
from .attention import MultiheadAttention, TransformerEncoderLayer
from .conv import Conv1d, Conv3d, ConvTranspose2d
from .embedding import Embedding
from .normalization import GroupNorm, InstanceNorm1d, InstanceNorm2d
from .recurrent import GRU, LSTM, GRUCell, LSTMCell
from .torch_import import from_torch_state_dict, torch_parameter_map

__all__ = ["Module", "ParamSpec", "Dense", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm", "LayerNorm",
           "Dropout", "Flatten", "Reshape", "ReLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "Softplus", "Softmax",
           "LogSoftmax", "PReLU", "Maxout", "Lambda", "Sequential", "l1", "l2",
           "Identity", "GELU", "SiLU", "Mish", "SELU", "CELU", "ReLU6", "Hardtanh", "Hardswish", "Hardsigmoid",
           "Softsign", "LogSigmoid", "Softmin", "GLU", "MultiheadAttention", "TransformerEncoderLayer", "Conv1d",
           "Conv3d", "ConvTranspose2d", "Embedding", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "GRU", "LSTM",
           "GRUCell", "LSTMCell", "from_torch_state_dict", "torch_parameter_map"]
