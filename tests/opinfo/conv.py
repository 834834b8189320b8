"""Op-info entries for padding, convolution, pooling and interpolation (issue 10, conv family)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import tensorforge as tg

from .spec import OpInfo, Sample, edge, ints, randn

CONV_TOL = dict(rtol=1e-4, atol=1e-5)


def _torch_pad(x, pad, mode="constant", value=None):
    return F.pad(x, pad, mode=mode) if value is None else F.pad(x, pad, mode=mode, value=value)


def _tg_pad(x, pad, mode="constant", value=None):
    return tg.pad(x, pad, mode=mode) if value is None else tg.pad(x, pad, mode=mode, value=value)


def _pad_samples(r):
    edges = edge().reshape(2, 5)
    return [Sample((randn(r, 2, 3, 4),), dict(pad=(1, 2, 0, 1), value=1.5), name="constant"),
            Sample((randn(r, 2, 3, 4),), dict(pad=(-1, 2, 1, -1, 1, 0)), name="crop-3axes"),
            Sample((randn(r, 2, 1, 3, 4),), dict(pad=(2, 1, 1, 2), mode="reflect"), name="reflect"),
            Sample((randn(r, 2, 2, 1, 4),), dict(pad=(1, 2, 2, 0), mode="replicate"), name="replicate-h1"),
            Sample((randn(r, 1, 2, 3, 4),), dict(pad=(1, 4, 3, 1), mode="circular"), name="circular"),
            Sample((ints(r, -5, 5, 2, 0, 3),), dict(pad=(1, 1, 0, 2)), name="int-size0"),
            Sample((edges,), dict(pad=(1, 1), mode="reflect"), grad=False, name="edge")]


def _with_infs(x):
    """x with +inf and -inf at two spots of its first batch item (torch gives ±inf, not NaN,
    where they meet only real kernel taps)."""
    x = x.copy()
    x.flat[3], x.flat[x.size // 2 + 1] = np.inf, -np.inf
    return x


def _conv1d_samples(r):
    return [Sample((randn(r, 2, 3, 7), randn(r, 4, 3, 3), randn(r, 4)), dict(stride=2, padding=1), name="s2p1"),
            Sample((randn(r, 2, 4, 7), randn(r, 4, 2, 2)), dict(dilation=2, groups=2, padding="same"),
                   name="d2g2-same"),
            Sample((randn(r, 1, 3, 6), randn(r, 3, 1, 3)), dict(groups=3, dilation=2, padding=2), name="depthwise"),
            Sample((randn(r, 2, 1, 1), randn(r, 2, 1, 1)), dict(), name="len1")]


def _conv2d_samples(r):
    return [Sample((randn(r, 2, 3, 6, 7), randn(r, 4, 3, 3, 3), randn(r, 4)), dict(stride=2, padding=1),
                   name="native-s2p1"),
            Sample((randn(r, 2, 2, 7, 6), randn(r, 3, 2, 3, 2)), dict(dilation=2, padding=(1, 2)), name="dilation"),
            Sample((randn(r, 2, 4, 5, 6), randn(r, 4, 2, 3, 3), randn(r, 4)), dict(groups=2, stride=(1, 2)),
                   name="groups2"),
            Sample((randn(r, 2, 3, 7, 7), randn(r, 3, 1, 3, 3)), dict(groups=3, stride=2, padding=1, dilation=(1, 2)),
                   name="depthwise"),
            Sample((randn(r, 2, 3, 1, 5), randn(r, 2, 3, 2, 4)), dict(padding="same"), name="same-even-h1"),
            Sample((_with_infs(randn(r, 1, 2, 7, 6)), randn(r, 3, 2, 3, 2)), dict(dilation=2, stride=(2, 1), padding=1),
                   grad=False, name="dilation-inf")]


def _conv3d_samples(r):
    return [Sample((randn(r, 2, 2, 4, 5, 5), randn(r, 3, 2, 2, 3, 3), randn(r, 3)),
                   dict(stride=(1, 2, 1), padding=1), name="s121p1"),
            Sample((randn(r, 1, 2, 5, 4, 4), randn(r, 2, 1, 2, 2, 2)), dict(dilation=(2, 1, 1), groups=2),
                   name="d2-groups2"),
            Sample((randn(r, 2, 1, 3, 3, 1), randn(r, 2, 1, 3, 2, 1)), dict(padding="same"), name="same-w1")]


def _conv_t_samples(r):
    return [Sample((randn(r, 2, 3, 3, 4), randn(r, 3, 2, 3, 3), randn(r, 2)),
                   dict(stride=2, padding=1, output_padding=1), name="s2p1op1"),
            Sample((randn(r, 2, 4, 3, 3), randn(r, 4, 1, 2, 3)), dict(groups=2, dilation=2, stride=(1, 2)),
                   name="g2-d2"),
            Sample((randn(r, 1, 2, 5, 4), randn(r, 2, 3, 3, 3)), dict(padding=(3, 1)), name="crop"),
            Sample((randn(r, 2, 2, 1, 1), randn(r, 2, 2, 2, 2)), dict(stride=3), name="1x1"),
            Sample((_with_infs(randn(r, 1, 2, 3, 4)), randn(r, 2, 3, 2, 3)), dict(stride=2, dilation=2, padding=1),
                   grad=False, name="s2d2-inf")]


def _ties(r, *shape):
    """relu of small integers: many equal maxima, where the gradient must go to one element."""
    return np.maximum(ints(r, -2, 3, *shape), 0).astype(np.float64)


def _max_pool_samples(r):
    nan_inf = edge()[[0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 0, 2]].reshape(1, 1, 3, 4)
    return [Sample((randn(r, 2, 3, 6, 6),), dict(kernel_size=2), name="native"),
            Sample((randn(r, 2, 2, 7, 7),), dict(kernel_size=3, stride=1, padding=1, dilation=2), name="dilation"),
            Sample((randn(r, 2, 2, 7, 6),), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), name="ceil"),
            Sample((_ties(r, 2, 3, 5, 5),), dict(kernel_size=2, stride=1, dilation=(1, 2), ceil_mode=True), fd=False,
                   name="ties"),
            Sample((nan_inf,), dict(kernel_size=2, stride=1, dilation=2), grad=False, name="edge")]


def _avg_pool_samples(r):
    return [Sample((randn(r, 2, 3, 7, 6),), dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
                   name="exclude-pad"),
            Sample((randn(r, 2, 2, 6, 7),), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True), name="ceil"),
            Sample((randn(r, 2, 2, 5, 5),), dict(kernel_size=(2, 3), stride=2, ceil_mode=True,
                                                count_include_pad=False), name="ceil-exclude"),
            Sample((randn(r, 1, 2, 4, 4),), dict(kernel_size=2, divisor_override=3), name="divisor"),
            Sample((randn(r, 2, 1, 1, 3),), dict(kernel_size=1, stride=(1, 2), ceil_mode=True), name="h1")]


def _pool1d_samples(r, kind):
    extra = dict(dilation=2) if kind == "max" else dict(count_include_pad=False)
    return [Sample((randn(r, 2, 3, 7),), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, **extra),
                   name="ceil"),
            Sample((randn(r, 2, 2, 6),), dict(kernel_size=2), name="native")]


def _adaptive_samples(r):
    return [Sample((randn(r, 2, 3, 7, 6),), dict(output_size=(3, 4)), name="7x6-to-3x4"),
            Sample((randn(r, 2, 2, 6, 4),), dict(output_size=(3, 2)), name="divisible"),
            Sample((randn(r, 2, 3, 5, 7),), dict(output_size=1), name="global"),
            Sample((randn(r, 1, 2, 1, 5),), dict(output_size=(None, 3)), name="h1-none"),
            Sample((randn(r, 1, 2, 3, 19),), dict(output_size=(2, 17)), name="many-bins")]


def _interp_samples(r):
    return [Sample((randn(r, 2, 2, 3, 4),), dict(size=(6, 7)), name="nearest-size"),
            Sample((randn(r, 2, 1, 5, 3),), dict(scale_factor=(0.6, 2.5)), name="nearest-scale"),
            Sample((randn(r, 2, 2, 4),), dict(scale_factor=1.5), name="nearest-1d"),
            Sample((randn(r, 2, 2, 3, 4),), dict(size=(5, 3), mode="bilinear"), name="bilinear"),
            Sample((randn(r, 1, 2, 1, 3),), dict(scale_factor=2, mode="bilinear", align_corners=True),
                   name="bilinear-corners"),
            Sample((randn(r, 2, 3, 5),), dict(size=7, mode="linear"), name="linear-1d"),
            Sample((randn(r, 1, 2, 3, 7),), dict(size=(20, 17), mode="bilinear"), name="bilinear-matmul"),
            Sample((randn(r, 2, 1, 5, 7),), dict(size=(21, 3)), name="nearest-matmul")]


OPS = [
    OpInfo("pad", _tg_pad, _torch_pad, _pad_samples),
    OpInfo("conv1d", tg.conv1d, F.conv1d, _conv1d_samples, **CONV_TOL),
    OpInfo("conv2d", tg.conv2d, F.conv2d, _conv2d_samples, **CONV_TOL),
    OpInfo("conv3d", tg.conv3d, F.conv3d, _conv3d_samples, **CONV_TOL),
    OpInfo("conv_transpose2d", tg.conv_transpose2d, F.conv_transpose2d, _conv_t_samples, **CONV_TOL),
    OpInfo("max_pool2d", tg.max_pool2d, F.max_pool2d, _max_pool_samples),
    OpInfo("avg_pool2d", tg.avg_pool2d, F.avg_pool2d, _avg_pool_samples, **CONV_TOL),
    OpInfo("max_pool1d", tg.max_pool1d, F.max_pool1d, lambda r: _pool1d_samples(r, "max")),
    OpInfo("avg_pool1d", tg.avg_pool1d, F.avg_pool1d, lambda r: _pool1d_samples(r, "avg"), **CONV_TOL),
    OpInfo("adaptive_avg_pool2d", tg.adaptive_avg_pool2d, F.adaptive_avg_pool2d, _adaptive_samples, **CONV_TOL),
    OpInfo("adaptive_avg_pool1d", tg.adaptive_avg_pool1d, F.adaptive_avg_pool1d,
           lambda r: [Sample((randn(r, 2, 3, 7),), dict(output_size=3), name="7-to-3")], **CONV_TOL),
    OpInfo("interpolate", tg.interpolate, F.interpolate, _interp_samples, **CONV_TOL),
]
