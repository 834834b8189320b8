"""tensorforge: a symbolic computational-graph compiler.

Define a computation once as a graph, differentiate it symbolically, and run it
with the NumPy interpreter or compile it to native code (LLVM on CPUs, Triton on
NVIDIA GPUs). See docs/architecture.md for the pipeline.
"""
from __future__ import annotations

from ._version import __version__

from .graph import Graph, Tensor, as_tensor, constant, dprint, get_default_graph, parameter, placeholder
from .ops import (OPS, ShapeError, abs, add, argmax, avg_pool2d, batch_norm, binary_cross_entropy,
                  broadcast_to, cast, concat, conv2d, div, dropout, elu, equal, exp, expand_dims, getitem,
                  greater, greater_equal, group_norm, heaviside, instance_norm, layer_norm, leaky_relu, less,
                  less_equal, log, log_softmax, logsumexp, matmul, max, max_pool2d, maximum, maxout, mean, min,
                  minimum, mse, mul, neg, not_equal, one_hot, pow, prelu, relu, reshape, sigmoid, sign, softmax,
                  softmax_cross_entropy, softplus, sqrt, squeeze, sub, sum, tanh, transpose, var, where,
                  random_uniform, rng_counter)
from .ops import (acos, acosh, asin, asinh, atan, atan2, atanh, copysign, cos, cosh, erf, exp2, expm1,  # math
                  gelu, lerp, log10, log1p, log2, logaddexp, reciprocal, rsqrt, sin, sinh, square, tan)
# -- predicates, rounding, integer, bitwise and logical ops, clamp (ops/rounding.py) --
from .ops import (bitwise_and, bitwise_left_shift, bitwise_not, bitwise_or, bitwise_right_shift, bitwise_xor,
                  ceil, clamp, clip, floor, floor_divide, fmod, isfinite, isinf, isnan, logical_and, logical_not,
                  logical_or, logical_xor, remainder, round, trunc)
from .ops import (chunk, detach, diag, diagonal, einsum, embedding, flip, gather, index_add, index_select,
                  masked_fill, meshgrid, repeat, repeat_interleave, roll, scatter_add, split, stack, stop_gradient,
                  take, take_along_axis, tile, tril, triu, unfold)
from .ops import (all, any, argmin, argsort, cummax, cummin, cumprod, cumsum, logcumsumexp, norm, prod,
                  sort, std, topk)
from .ops import (adaptive_avg_pool1d, adaptive_avg_pool2d, avg_pool1d, conv1d, conv3d, conv_transpose2d,
                  interpolate, max_pool1d, pad)
from .ops import (celu, glu, hardsigmoid, hardswish, hardtanh, logsigmoid, mish, relu6, selu, silu,  # issue 10
                  softmin, softsign, swish, binary_cross_entropy_probs, binary_cross_entropy_with_logits,
                  cosine_similarity, cross_entropy, hinge_embedding_loss, huber_loss, kl_div, l1_loss,
                  margin_ranking_loss, mse_loss, nll_loss, smooth_l1_loss, scaled_dot_product_attention)
from .autodiff import grad
from .clone import clone
from .compile import CompiledFunction, InputError, compile
from .runtime import set_num_threads, get_num_threads
from . import init, optim, nn, ops, testing, data, train, distributed
from . import export
from . import config

config.apply_environment()

# the public names (mypy --strict re-exports only what is listed here; tools/make_api_reference.py
# documents them)
__all__ = [
    "__version__", "abs", "acos", "acosh", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "add", "all",
    "any", "argmax", "argmin", "argsort", "as_tensor", "asin", "asinh", "atan", "atan2", "atanh",
    "avg_pool1d", "avg_pool2d", "batch_norm", "binary_cross_entropy", "binary_cross_entropy_probs",
    "binary_cross_entropy_with_logits", "bitwise_and", "bitwise_left_shift", "bitwise_not", "bitwise_or",
    "bitwise_right_shift", "bitwise_xor", "broadcast_to", "cast", "ceil", "celu", "chunk", "clamp", "clip",
    "clone", "compile", "CompiledFunction", "concat", "constant", "conv1d", "conv2d", "conv3d",
    "conv_transpose2d", "copysign", "cos", "cosh", "cosine_similarity", "cross_entropy", "cummax", "cummin",
    "cumprod", "cumsum", "detach", "diag", "diagonal", "div", "dprint", "dropout", "einsum", "elu",
    "embedding", "equal", "erf", "exp", "exp2", "expand_dims", "expm1", "flip", "floor", "floor_divide",
    "fmod", "gather", "gelu", "get_default_graph", "get_num_threads", "getitem", "glu", "grad", "Graph",
    "greater", "greater_equal", "group_norm", "hardsigmoid", "hardswish", "hardtanh", "heaviside",
    "hinge_embedding_loss", "huber_loss", "index_add", "index_select", "InputError", "instance_norm",
    "interpolate", "isfinite", "isinf", "isnan", "kl_div", "l1_loss", "layer_norm", "leaky_relu", "lerp",
    "less", "less_equal", "log", "log10", "log1p", "log2", "log_softmax", "logaddexp", "logcumsumexp",
    "logical_and", "logical_not", "logical_or", "logical_xor", "logsigmoid", "logsumexp",
    "margin_ranking_loss", "masked_fill", "matmul", "max", "max_pool1d", "max_pool2d", "maximum", "maxout",
    "mean", "meshgrid", "min", "minimum", "mish", "mse", "mse_loss", "mul", "neg", "nll_loss", "norm",
    "not_equal", "one_hot", "OPS", "pad", "parameter", "placeholder", "pow", "prelu", "prod",
    "random_uniform", "reciprocal", "relu", "relu6", "remainder", "repeat", "repeat_interleave", "reshape",
    "rng_counter", "roll", "round", "rsqrt", "scaled_dot_product_attention", "scatter_add", "selu",
    "set_num_threads", "ShapeError", "sigmoid", "sign", "silu", "sin", "sinh", "smooth_l1_loss", "softmax",
    "softmax_cross_entropy", "softmin", "softplus", "softsign", "sort", "split", "sqrt", "square",
    "squeeze", "stack", "std", "stop_gradient", "sub", "sum", "swish", "take", "take_along_axis", "tan",
    "tanh", "Tensor", "tile", "topk", "transpose", "tril", "triu", "trunc", "unfold", "var", "where",
    "autodiff", "config", "data", "distributed", "export", "graph", "init", "nn", "ops", "optim", "runtime",
    "testing", "train",
]
