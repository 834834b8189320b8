"""Op-info entries for the losses and attention of issue 10 (ops/losses.py, ops/attention.py).

Class targets are int64 arrays (they keep their dtype on every backend); ``ignore_index``
entries, size-1 batches and every reduction appear among the samples. Gradients are taken
with respect to the float inputs torch differentiates (``wrt``)."""
from __future__ import annotations

import numpy as np
import torch.nn.functional as F

import tensorforge as tg

from .spec import OpInfo, Sample, ints, randn, uniform

I64 = np.int64


def log_probs(r, *shape, axis=1):
    x = randn(r, *shape)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def probs(r, *shape, axis=-1):
    return np.exp(log_probs(r, *shape, axis=axis))


def _with_weight(tg_name, torch_fn, weight_kw="weight"):
    """(tg_fn, torch_fn) taking an optional third array as ``weight``."""
    tg_fn = getattr(tg, tg_name)
    return (lambda x, t, w=None, **kw: tg_fn(x, t, **({weight_kw: w} if w is not None else {}), **kw),
            lambda x, t, w=None, **kw: torch_fn(x, t, **({weight_kw: w} if w is not None else {}), **kw))


def _nll_samples(r):
    t = ints(r, 0, 5, 4)
    t[1] = -100
    return [Sample((log_probs(r, 4, 5), t), dict(reduction="mean"), wrt=(0,), name="NxC_ignored"),
            Sample((log_probs(r, 2, 3, 2, 2), ints(r, 0, 3, 2, 2, 2), uniform(r, 0.5, 2, 3)),
                   dict(reduction="sum", ignore_index=1), wrt=(0,), name="spatial_w_ign1"),
            Sample((log_probs(r, 1, 3), np.array([2], I64)), dict(reduction="none"), wrt=(0,), name="1x3"),
            Sample((log_probs(r, 3, axis=0), np.asarray(1, I64), uniform(r, 0.5, 2, 3)), dict(reduction="mean"),
                   wrt=(0,), name="unbatched_w"),
            Sample((np.zeros((0, 3)), np.zeros((0,), I64)), dict(reduction="sum"), wrt=(0,), name="0x3")]


def _ce_samples(r):
    t = ints(r, 0, 5, 4)
    t[2] = -100
    edge = np.array([[1e4, -1e4, 0.0], [-np.inf, 0.0, 1.0]])
    return [Sample((randn(r, 4, 5), t, uniform(r, 0.5, 2, 5)), dict(label_smoothing=0.1), wrt=(0,),
                   name="NxC_w_smooth_ignored"),
            Sample((randn(r, 2, 3, 2, 2), ints(r, 0, 3, 2, 2, 2)), dict(reduction="sum", ignore_index=0),
                   wrt=(0,), name="spatial_ign0"),
            Sample((randn(r, 3, 4), probs(r, 3, 4)), dict(label_smoothing=0.2), name="prob_target"),
            Sample((randn(r, 2, 3, 2), probs(r, 2, 3, 2, axis=1)), dict(reduction="none"), name="prob_spatial"),
            Sample((edge, np.array([0, 2], I64)), dict(reduction="none"), fd=False, wrt=(0,),
                   name="1e4_-inf")]


def _bce_samples(r):
    return [Sample((uniform(r, 0.05, 0.95, 3, 4), uniform(r, 0, 1, 3, 4), uniform(r, 0.5, 2, 4)),
                   wrt=(0, 1), name="weight_bcast"),
            Sample((uniform(r, 0.05, 0.95, 1, 5), uniform(r, 0, 1, 1, 5)), dict(reduction="sum"), name="1x5"),
            Sample((np.array([0.0, 1.0, 0.0, 1.0, 0.5]), np.array([0.0, 1.0, 1.0, 0.0, 0.3])),
                   dict(reduction="none"), grad=False, name="clamp_-100"),
            Sample((np.zeros((0, 3)), np.zeros((0, 3))), dict(reduction="sum"), name="0x3")]


def _bce_logits_samples(r):
    return [Sample((randn(r, 3, 4, scale=3), uniform(r, 0, 1, 3, 4), uniform(r, 0.5, 2, 3, 1)), wrt=(0, 1), name="weight"),
            Sample((randn(r, 2, 3, scale=3), uniform(r, 0, 1, 2, 3)),
                   dict(reduction="sum", pos_weight=None), name="sum"),
            Sample((np.array([[-1e4, 1e4, -50.0, 50.0, 0.0]]), np.array([[1.0, 0.0, 0.3, 0.7, 0.5]])),
                   dict(reduction="none"), fd=False, name="large"),
            Sample((np.zeros((0, 3)), np.zeros((0, 3))), name="0x3")]


def _bce_logits_pw(r):
    return [Sample((randn(r, 3, 4, scale=3), uniform(r, 0, 1, 3, 4), uniform(r, 0.5, 3, 4)), wrt=(0, 1), name="pos_weight"),
            Sample((randn(r, 1, 2, scale=3), uniform(r, 0, 1, 1, 2), uniform(r, 0.5, 3, 2)),
                   dict(reduction="none"), wrt=(0, 1), name="1x2")]


def _regression_samples(r, **kw):
    d = uniform(r, -3, 3, 3, 4)
    ties = d.copy()
    ties[0, :2] = 0.0      # input == target: the gradient convention at a zero difference
    return [Sample((d, uniform(r, -3, 3, 3, 4)), dict(kw), name="mean"),
            Sample((uniform(r, -3, 3, 3, 1), uniform(r, -3, 3, 1, 4)), dict(kw, reduction="sum"), name="bcast_sum"),
            Sample((ties, np.zeros((3, 4))), dict(kw, reduction="none"), fd=False, name="ties_none"),
            # huge but finite in float32 once squared, so float32 and the float64 reference agree
            Sample((np.array([np.inf, -np.inf, np.nan, 1e15, 0.0]), np.array([1.0, 1.0, 0.0, -1e15, np.inf])),
                   dict(kw, reduction="none"), grad=False, name="edge"),
            Sample((np.zeros((0, 3)), np.zeros((0, 3))), dict(kw, reduction="sum"), name="0x3")]


def _kl_samples(r):
    t = probs(r, 3, 4)
    t[0, 1] = 0.0          # xlogy: a zero target contributes 0
    return [Sample((log_probs(r, 3, 4, axis=-1), t), dict(reduction="batchmean"), wrt=(0,), name="batchmean_zero"),
            Sample((log_probs(r, 2, 3, axis=-1), probs(r, 2, 3)), dict(reduction="mean"), name="mean"),
            Sample((log_probs(r, 1, 3, axis=-1), log_probs(r, 1, 3, axis=-1)), dict(reduction="sum", log_target=True),
                   name="log_target"),
            Sample((log_probs(r, 2, 3, axis=-1), probs(r, 1, 3)), dict(reduction="none"), name="bcast_none"),
            Sample((np.zeros((0, 3)), np.zeros((0, 3))), dict(reduction="sum"), name="0x3")]


def _cos_samples(r):
    zero_row = randn(r, 3, 4)
    zero_row[1] = 0.0
    return [Sample((randn(r, 3, 4), randn(r, 3, 4)), name="3x4"),
            Sample((randn(r, 3, 1, 4), randn(r, 1, 2, 4)), dict(axis=-1), name="bcast"),
            Sample((zero_row, randn(r, 3, 4)), dict(axis=1), grad=False, name="zero_vector_eps"),
            Sample((randn(r, 1, 5, scale=1e-5), randn(r, 1, 5)), dict(axis=1, eps=1e-3), grad=False, name="tiny_eps"),
            Sample((randn(r, 0, 3), randn(r, 0, 3)), dict(axis=1), name="0x3")]


def _sdpa(q, k, v, m=None, **kw):
    return tg.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw)


def _sdpa_torch(q, k, v, m=None, **kw):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=m, **kw)


def _sdpa_samples(r):
    keep = np.ones((3, 5), bool)
    keep[0, 2:] = False
    keep[2, :1] = False
    return [Sample((randn(r, 2, 3, 4), randn(r, 2, 5, 4), randn(r, 2, 5, 3)), name="plain"),
            Sample((randn(r, 2, 2, 3, 4), randn(r, 2, 1, 5, 4), randn(r, 2, 1, 5, 2), keep), name="heads_bool_mask"),
            Sample((randn(r, 1, 4, 3), randn(r, 1, 4, 3), randn(r, 1, 4, 3)), dict(is_causal=True, scale=0.3),
                   name="causal"),
            Sample((randn(r, 3, 2), randn(r, 5, 2), randn(r, 5, 2), randn(r, 3, 5)), name="float_mask"),
            Sample((randn(r, 1, 1, 4), randn(r, 1, 1, 4), randn(r, 1, 1, 4)), name="1x1")]


nll = _with_weight("nll_loss", F.nll_loss)
ce = _with_weight("cross_entropy", F.cross_entropy)
bce = _with_weight("binary_cross_entropy_probs", F.binary_cross_entropy)
bcel = _with_weight("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits)
bcel_pw = _with_weight("binary_cross_entropy_with_logits", F.binary_cross_entropy_with_logits, "pos_weight")

OPS = [
    OpInfo("nll_loss", *nll, _nll_samples),
    OpInfo("cross_entropy", *ce, _ce_samples),
    OpInfo("binary_cross_entropy_probs", *bce, _bce_samples),
    OpInfo("binary_cross_entropy_with_logits", *bcel, _bce_logits_samples),
    OpInfo("bce_with_logits_pos_weight", *bcel_pw, _bce_logits_pw),
    OpInfo("l1_loss", tg.l1_loss, F.l1_loss, _regression_samples),
    OpInfo("mse_loss", tg.mse_loss, F.mse_loss, _regression_samples),
    OpInfo("huber_loss", tg.huber_loss, F.huber_loss, lambda r: _regression_samples(r, delta=0.7)),
    OpInfo("smooth_l1_loss", tg.smooth_l1_loss, F.smooth_l1_loss, lambda r: _regression_samples(r, beta=0.5)),
    OpInfo("smooth_l1_loss_beta0", tg.smooth_l1_loss, F.smooth_l1_loss,
           lambda r: _regression_samples(r, beta=0.0)[:2]),
    OpInfo("kl_div", tg.kl_div, F.kl_div, _kl_samples),
    OpInfo("cosine_similarity", tg.cosine_similarity, F.cosine_similarity, _cos_samples),
    OpInfo("hinge_embedding_loss", tg.hinge_embedding_loss, F.hinge_embedding_loss,
           lambda r: [Sample((randn(r, 3, 4), np.sign(randn(r, 3, 4))), dict(margin=0.5), wrt=(0,), name="pm1"),
                      Sample((randn(r, 1, 3), np.array([[1.0, -1.0, -1.0]])), dict(reduction="none"), wrt=(0,),
                             name="1x3")]),
    OpInfo("margin_ranking_loss", tg.margin_ranking_loss, F.margin_ranking_loss,
           lambda r: [Sample((randn(r, 5), randn(r, 5), np.sign(randn(r, 5))), dict(margin=0.1), wrt=(0, 1),
                             name="5"),
                      Sample((randn(r, 1), randn(r, 1), np.array([1.0])), dict(reduction="sum"), wrt=(0, 1),
                             name="1")]),
    OpInfo("scaled_dot_product_attention", _sdpa, _sdpa_torch, _sdpa_samples, rtol=1e-4, atol=1e-5),
]
