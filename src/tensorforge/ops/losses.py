"""Losses as in ``torch.nn.functional`` (reduction="mean" | "sum" | "none", torch's defaults).

Every loss is a composition of existing graph ops, so it differentiates through autodiff,
runs on every backend, and its elementwise parts fuse. The older losses of ops/nn.py
(``tg.mse``, ``tg.binary_cross_entropy`` on logits, ``tg.softmax_cross_entropy``) keep
their signatures and defaults; the torch-named ones live here.

Class targets are picked with ``one_hot`` (rows of the class axis), never with a gather.
They first pass through ``index_in_range`` (values in [0, C) or ``ignore_index``), so labels
fed by a placeholder, parameter or constant are checked by tg.compile before each call on
every backend (an InputError naming them); computed labels raise on the interpreter and give
a NaN loss in compiled code, never a quietly wrong number. Entries equal to ``ignore_index``
are then replaced by class 0 and weighted by 0, so they contribute nothing and leave the
denominator of the mean (torch's weighted-mean rule).
"""
from __future__ import annotations

import numpy as np

from .._typing import TensorLike
from ..graph import Tensor, as_tensor
from .elementwise import softplus as _softplus
from .gather import _checked
from .indexing import one_hot
from .reduce import log_softmax, mean, sum as reduce_sum
from .registry import ShapeError, apply, broadcast_shapes
from .shape import transpose

REDUCTIONS = ("none", "mean", "sum")


# ---- shared helpers ----------------------------------------------------------------------

def _check_reduction(fn: str, reduction: str, allowed: tuple[str, ...] = REDUCTIONS) -> str:
    if reduction not in allowed:
        raise ValueError(f"{fn}: reduction must be one of {', '.join(map(repr, allowed))}, got {reduction!r}")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return reduce_sum(loss)
    return loss


def _float_tensor(x: TensorLike, fn: str, what: str, like: Tensor | None = None) -> Tensor:
    if isinstance(like, Tensor) and not isinstance(x, (Tensor, bool, int, float)):
        x = np.asarray(x)
        if x.dtype.kind in "biuf":   # a NumPy weight or target follows the input's dtype, never promotes it
            x = x.astype(like.dtype)
    x = as_tensor(x, like=like, graph=like.graph if isinstance(like, Tensor) else None)
    if np.dtype(x.dtype).kind != "f":
        raise TypeError(f"{fn}: {what} must be a floating-point tensor, got {x.dtype}")
    return x


def _pair(fn: str, input: TensorLike, target: TensorLike, like_shape: bool = False) -> tuple[Tensor, Tensor]:
    """``input`` and ``target`` as float tensors whose shapes broadcast (or match exactly)."""
    x = _float_tensor(input, fn, "input")
    y = _float_tensor(target, fn, "target", like=x)
    if like_shape and (len(x.shape) != len(y.shape) or any(
            a is not None and b is not None and a != b for a, b in zip(x.shape, y.shape))):
        raise ShapeError(f"{fn}: target {y.shape} must have the shape of input {x.shape}")
    try:
        broadcast_shapes(x.shape, y.shape)
    except ShapeError:
        raise ShapeError(f"{fn}: target {y.shape} does not broadcast with input {x.shape}") from None
    return x, y


def _where(cond: TensorLike, a: TensorLike, b: TensorLike) -> Tensor:
    return apply("where", [cond, a, b])


# ---- regression losses --------------------------------------------------------------------

def l1_loss(input: TensorLike, target: TensorLike, reduction: str = "mean") -> Tensor:
    """|input - target|, reduced; the gradient at a zero difference is 0 (sign(0))."""
    _check_reduction("l1_loss", reduction)
    x, y = _pair("l1_loss", input, target)
    return _reduce(apply("abs", [x - y]), reduction)


def mse_loss(input: TensorLike, target: TensorLike, reduction: str = "mean") -> Tensor:
    """(input - target)**2, reduced (torch's default: the mean; ``tg.mse`` defaults to "none")."""
    _check_reduction("mse_loss", reduction)
    x, y = _pair("mse_loss", input, target)
    d = x - y
    return _reduce(d * d, reduction)


def huber_loss(input: TensorLike, target: TensorLike, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Huber loss: 0.5 d**2 where |d| < delta, else delta * (|d| - 0.5 delta); d = input - target.

    Both pieces have slope ±delta at |d| = delta, so the gradient is continuous there."""
    _check_reduction("huber_loss", reduction)
    delta = float(delta)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    x, y = _pair("huber_loss", input, target)
    d = x - y
    ad = apply("abs", [d])
    return _reduce(_where(ad < delta, d * d * 0.5, (ad - 0.5 * delta) * delta), reduction)


def smooth_l1_loss(input: TensorLike, target: TensorLike, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Smooth L1: 0.5 d**2 / beta where |d| < beta, else |d| - 0.5 beta; beta = 0 is the L1 loss.

    It equals huber_loss(delta=beta) / beta, as in torch."""
    _check_reduction("smooth_l1_loss", reduction)
    beta = float(beta)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    x, y = _pair("smooth_l1_loss", input, target)
    d = x - y
    ad = apply("abs", [d])
    if beta == 0.0:
        return _reduce(ad, reduction)
    return _reduce(_where(ad < beta, d * d * (0.5 / beta), ad - 0.5 * beta), reduction)


# ---- binary classification ----------------------------------------------------------------

def binary_cross_entropy_probs(input: TensorLike, target: TensorLike, weight: TensorLike | None = None,
                               reduction: str = "mean") -> Tensor:
    """torch's F.binary_cross_entropy: -w (y log p + (1-y) log(1-p)), each log clamped at -100.

    ``input`` holds probabilities; the clamp (torch's) makes p = 0 or 1 give a finite loss.

    ``tg.binary_cross_entropy`` takes logits (and defaults to reduction="none"), so the
    probability form has this name; prefer ``binary_cross_entropy_with_logits``, which is
    stable. Inputs outside [0, 1] give NaN (torch raises)."""
    _check_reduction("binary_cross_entropy_probs", reduction)
    p, y = _pair("binary_cross_entropy_probs", input, target, like_shape=True)
    log_p = apply("maximum", [apply("log", [p]), -100.0])
    log_q = apply("maximum", [apply("log", [1.0 - p]), -100.0])
    loss = -(y * log_p + (1.0 - y) * log_q)
    if weight is not None:
        loss = loss * _float_tensor(weight, "binary_cross_entropy_probs", "weight", like=p)
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: TensorLike, target: TensorLike, weight: TensorLike | None = None,
                                     pos_weight: TensorLike | None = None, reduction: str = "mean") -> Tensor:
    """-w [pw y log σ(x) + (1 - y) log(1 - σ(x))] from logits x, computed stably.

    The form (1 - y) x + (1 + (pw - 1) y) softplus(-x) never overflows; ``pos_weight``
    broadcasts against the class (last) axis, ``weight`` against the whole loss, as in torch."""
    fn = "binary_cross_entropy_with_logits"
    _check_reduction(fn, reduction)
    x, y = _pair(fn, input, target, like_shape=True)
    scale: float | Tensor = 1.0
    if pos_weight is not None:
        scale = (_float_tensor(pos_weight, fn, "pos_weight", like=x) - 1.0) * y + 1.0
    loss = (1.0 - y) * x + _softplus(-x) * scale
    if weight is not None:
        loss = loss * _float_tensor(weight, fn, "weight", like=x)
    return _reduce(loss, reduction)


# ---- divergences and similarities -------------------------------------------------------

def kl_div(input: TensorLike, target: TensorLike, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL divergence target * (log target - input), with ``input`` as log-probabilities.

    The pointwise term target * (log target - input) is, taken as 0 where target == 0 (torch's xlogy); with
    ``log_target`` the target is a log-probability too: exp(target) * (target - input).
    reduction="batchmean" divides the sum by the batch size (input.shape[0]), the true KL;
    "mean" divides by the number of elements, as torch."""
    _check_reduction("kl_div", reduction, REDUCTIONS + ("batchmean",))
    x, t = _pair("kl_div", input, target)
    if log_target:
        loss = apply("exp", [t]) * (t - x)
    else:
        # log of 1 where the target is 0: the term is 0 and its gradient stays finite
        safe = _where(apply("eq", [t, 0.0]), 1.0, t)
        loss = t * apply("log", [safe]) - t * x
    if reduction == "batchmean":
        total = reduce_sum(loss)
        if len(loss.shape) == 0:
            return total
        return total / apply("numel", [loss], axis=(0,), dtype=loss.dtype)
    return _reduce(loss, reduction)


def cosine_similarity(x1: TensorLike, x2: TensorLike, axis: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1 * x2) / (max(|x1|, eps) * max(|x2|, eps)) along ``axis``; x1 and x2 broadcast.

    torch's eps rule: each norm is clamped separately. Each input is divided by its clamped
    norm first, which keeps the result in [-1, 1]."""
    a = _float_tensor(x1, "cosine_similarity", "x1")
    b = _float_tensor(x2, "cosine_similarity", "x2", like=a)
    try:
        shape = broadcast_shapes(a.shape, b.shape)
    except ShapeError:
        raise ShapeError(f"cosine_similarity: x1 {a.shape} and x2 {b.shape} do not broadcast") from None
    if len(shape) == 0:
        raise ShapeError("cosine_similarity: needs tensors of rank >= 1, got scalars")
    axis = int(axis)
    if not -len(shape) <= axis < len(shape):
        raise ShapeError(f"cosine_similarity: axis {axis} is out of range for the broadcast shape {shape}")

    def unit(v: Tensor) -> Tensor:
        norm = apply("sqrt", [reduce_sum(v * v, axis, keepdims=True)])
        return v / apply("maximum", [norm, float(eps)])
    return reduce_sum(unit(a) * unit(b), axis)


# ---- classification over C classes --------------------------------------------------------

def _class_last(x: Tensor, class_axis: int) -> Tensor:
    """Move the class axis to the end, so one-hot rows and (C,) weights line up with it."""
    nd = len(x.shape)
    if class_axis == nd - 1:
        return x
    return transpose(x, tuple(a for a in range(nd) if a != class_axis) + (class_axis,))


def _class_axis(x: Tensor, fn: str) -> int:
    if len(x.shape) == 0:
        raise ShapeError(f"{fn}: input must be (C,), (N, C) or (N, C, d1, ...), got a scalar")
    return 0 if len(x.shape) == 1 else 1


def _check_class_target(fn: str, x: Tensor, target: TensorLike, class_axis: int) -> Tensor:
    target = as_tensor(target, graph=x.graph)
    want = x.shape[:class_axis] + x.shape[class_axis + 1:]
    if np.dtype(target.dtype).kind not in "iu":
        raise TypeError(f"{fn}: class targets must be integers, got {target.dtype}"
                        + (" (for class probabilities give a float target of the input's shape)"
                           if fn == "cross_entropy" else ""))
    if len(target.shape) != len(want) or any(a is not None and b is not None and a != b
                                              for a, b in zip(target.shape, want)):
        raise ShapeError(f"{fn}: target must have shape {want} for input {x.shape}, got {target.shape}")
    return target


def _class_weight(weight: TensorLike | None, x: Tensor, fn: str, depth: int | None) -> Tensor | None:
    if weight is None:
        return None
    w = _float_tensor(weight, fn, "weight", like=x)
    if len(w.shape) != 1 or (w.shape[0] is not None and depth is not None and w.shape[0] != depth):
        raise ShapeError(f"{fn}: weight must have shape ({depth},) for {depth} classes, got {w.shape}")
    return w


def _picked(logp_last: Tensor, target: Tensor, ignore_index: int, weight: Tensor | None,
            depth: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(-logp[target] per entry, weight of each entry, the kept entries, the one-hot rows) over
    ``depth`` classes: ignored entries get weight 0 and a zero loss whatever their
    log-probabilities hold."""
    # range-check the labels themselves, ignore_index allowed: tg.compile sees the leaf through this op
    target = _checked(target, depth, ignore=ignore_index)
    keep = apply("ne", [target, ignore_index])
    safe = _where(keep, target, 0)
    hot = one_hot(safe, depth, dtype=logp_last.dtype)
    # hot * logp would turn a -inf log-probability of another class into NaN; a NaN hot row
    # (out-of-range label in compiled code) must stay NaN
    nll = -reduce_sum(_where(apply("eq", [hot, 0.0]), 0.0, hot * logp_last), -1)
    if weight is None:
        w = apply("cast", [keep], dtype=logp_last.dtype)
    else:
        w = _where(keep, reduce_sum(hot * weight, -1), 0.0)
    return nll, w, keep, hot


def _weighted_reduce(loss: Tensor, w: Tensor, reduction: str) -> Tensor:
    """torch's rule for class losses: "mean" divides by the total weight of the kept entries
    (0/0 = NaN when every entry is ignored)."""
    if reduction == "mean":
        return reduce_sum(loss) / reduce_sum(w)
    return _reduce(loss, reduction)


def nll_loss(input: TensorLike, target: TensorLike, weight: TensorLike | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood -weight[t] * input[n, t, ...] of log-probabilities at class targets.

    ``input`` is (C,), (N, C) or (N, C, d1, ...), integer ``target`` (), (N,) or (N, d1, ...). Entries
    equal to ``ignore_index`` contribute 0 and are left out of the mean's denominator, which
    is the total weight of the kept entries."""
    _check_reduction("nll_loss", reduction)
    x = _float_tensor(input, "nll_loss", "input")
    ca = _class_axis(x, "nll_loss")
    target = _check_class_target("nll_loss", x, target, ca)
    depth = x.shape[ca]
    w_cls = _class_weight(weight, x, "nll_loss", depth)
    if depth is None:
        raise ShapeError(f"nll_loss: the class axis {ca} of input {x.shape} must be known")
    nll, w, keep, _ = _picked(_class_last(x, ca), target, int(ignore_index), w_cls, depth)
    loss = _where(keep, nll * w, 0.0) if w_cls is not None else _where(keep, nll, 0.0)
    return _weighted_reduce(loss, w, reduction)


def cross_entropy(input: TensorLike, target: TensorLike, weight: TensorLike | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits (C,), (N, C) or (N, C, d1, ...) along the class axis (axis 1).

    ``target`` is either integer class indices (shape of input without the class axis;
    ``ignore_index`` entries are skipped, the mean divides by their total weight) or class
    probabilities (a float tensor of the input's shape; no ignore_index; the mean is over
    the entries). ``label_smoothing`` ε mixes the target with the uniform distribution:
    (1-ε) * target + ε/C, as torch."""
    fn = "cross_entropy"
    _check_reduction(fn, reduction)
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {eps}")
    x = _float_tensor(input, fn, "input")
    ca = _class_axis(x, fn)
    depth = x.shape[ca]
    if depth is None:
        raise ShapeError(f"{fn}: the class axis {ca} of input {x.shape} must be known")
    w_cls = _class_weight(weight, x, fn, depth)
    logp = _class_last(log_softmax(x, ca), ca)
    target = as_tensor(target, graph=x.graph)
    if np.dtype(target.dtype).kind == "f":
        return _cross_entropy_probs(fn, x, logp, target, ca, depth, w_cls, eps, reduction)
    target = _check_class_target(fn, x, target, ca)
    nll, w, keep, _ = _picked(logp, target, int(ignore_index), w_cls, depth)
    loss = nll * w if w_cls is not None else nll
    if eps > 0.0:
        per_class = logp if w_cls is None else logp * w_cls
        smooth = -reduce_sum(per_class, -1)
        loss = loss * (1.0 - eps) + smooth * (eps / depth)
    return _weighted_reduce(_where(keep, loss, 0.0), w, reduction)


def _cross_entropy_probs(fn: str, x: Tensor, logp: Tensor, target: Tensor, ca: int, depth: int,
                         w_cls: Tensor | None, eps: float, reduction: str) -> Tensor:
    if target.shape != x.shape and not (len(target.shape) == len(x.shape) and all(
            a is None or b is None or a == b for a, b in zip(target.shape, x.shape))):
        raise ShapeError(f"{fn}: a class-probability target must have the input's shape {x.shape}, "
                         f"got {target.shape}")
    t = _class_last(target, ca)
    if eps > 0.0:
        t = t * (1.0 - eps) + eps / depth
    per_class = logp * t if w_cls is None else logp * t * w_cls
    return _reduce(-reduce_sum(per_class, -1), reduction)


# ---- margin losses --------------------------------------------------------------------------

def hinge_embedding_loss(input: TensorLike, target: TensorLike, margin: float = 1.0,
                         reduction: str = "mean") -> Tensor:
    """x where target == 1, max(0, margin - x) where target == -1, then reduced.

    Other target values get the sum of both terms, as torch computes it."""
    _check_reduction("hinge_embedding_loss", reduction)
    x, y = _pair("hinge_embedding_loss", input, target)
    hinge = apply("relu", [float(margin) - x])
    loss = _where(apply("eq", [y, 1.0]), 0.0, hinge) + _where(apply("eq", [y, -1.0]), 0.0, x)
    return _reduce(loss, reduction)


def margin_ranking_loss(input1: TensorLike, input2: TensorLike, target: TensorLike, margin: float = 0.0,
                        reduction: str = "mean") -> Tensor:
    """max(0, -target * (input1 - input2) + margin)."""
    _check_reduction("margin_ranking_loss", reduction)
    a, b = _pair("margin_ranking_loss", input1, input2)
    y = _float_tensor(target, "margin_ranking_loss", "target", like=a)
    return _reduce(apply("relu", [-y * (a - b) + float(margin)]), reduction)


__all__ = ["l1_loss", "mse_loss", "huber_loss", "smooth_l1_loss", "binary_cross_entropy_probs",
           "binary_cross_entropy_with_logits", "kl_div", "cosine_similarity", "nll_loss",
           "cross_entropy", "hinge_embedding_loss", "margin_ranking_loss"]
