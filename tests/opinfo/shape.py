"""Op-info entries of the shape-manipulation and indexing family (issue 10)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import tensorforge as tg

from .spec import OpInfo, Sample, bools, edge, ints, randn


def _edge_matrix():
    return edge().reshape(2, 5)


def _stack_samples(r):
    return [Sample((randn(r, 3, 4), randn(r, 3, 4)), dict(axis=1), name="3x4-axis1"),
            Sample((randn(r, 2), randn(r, 2), randn(r, 2)), dict(axis=-1), name="three-1d"),
            Sample((randn(r, 0, 3), randn(r, 0, 3)), dict(axis=0), name="0x3"),
            Sample((np.asarray(1.5), np.asarray(-2.0)), dict(axis=0), name="scalars"),
            Sample((ints(r, -5, 5, 2, 3), ints(r, -5, 5, 2, 3)), dict(axis=2), name="int")]


def _split_samples(r):
    return [Sample((randn(r, 5, 3),), dict(size=2, axis=0), name="size2"),
            Sample((randn(r, 2, 6),), dict(size=[1, 3, 2], axis=-1), name="sections"),
            Sample((randn(r, 1, 4),), dict(size=4, axis=1), name="whole"),
            Sample((_edge_matrix(),), dict(size=[3, 2], axis=1), grad=False, name="edge"),
            Sample((ints(r, 0, 9, 4, 2),), dict(size=3, axis=0), name="int")]


def _chunk_samples(r):
    return [Sample((randn(r, 5, 3),), dict(chunks=2, axis=0), name="5in2"),
            Sample((randn(r, 2, 6),), dict(chunks=3, axis=-1), name="6in3"),
            Sample((randn(r, 1, 4),), dict(chunks=3, axis=0), name="size1"),
            Sample((bools(r, 3, 4),), dict(chunks=2, axis=1), name="bool")]


def _repeat_samples(r):
    return [Sample((randn(r, 2, 3),), dict(sizes=(2, 1)), name="2x3"),
            Sample((randn(r, 3),), dict(sizes=(2, 1, 2)), name="lift"),
            Sample((randn(r, 1, 2),), dict(sizes=(3, 0)), name="zero-count"),
            Sample((randn(r, 0, 2),), dict(sizes=(2, 2)), name="0x2"),
            Sample((ints(r, -3, 3, 2, 2),), dict(sizes=(1, 3)), name="int")]


def _tile_samples(r):
    return [Sample((randn(r, 2, 3),), dict(dims=(2,)), name="short-dims"),
            Sample((randn(r, 3),), dict(dims=(2, 2)), name="lift"),
            Sample((_edge_matrix(),), dict(dims=(1, 2)), grad=False, name="edge"),
            Sample((bools(r, 2, 2),), dict(dims=(2, 1)), name="bool")]


def _repeat_interleave_samples(r):
    return [Sample((randn(r, 2, 3),), dict(repeats=2, axis=1), name="int-axis1"),
            Sample((randn(r, 2, 3),), dict(repeats=3, axis=None), name="flat"),
            Sample((randn(r, 3, 2),), dict(repeats=[1, 0, 2], axis=0), name="list"),
            Sample((randn(r, 0, 2),), dict(repeats=2, axis=1), name="0x2"),
            Sample((ints(r, 0, 9, 3),), dict(repeats=[2, 1, 3], axis=0), name="int")]


def _torch_repeat_interleave(x, repeats, axis):
    reps = repeats if isinstance(repeats, int) else torch.tensor(repeats)
    return torch.repeat_interleave(x, reps, dim=axis)


def _roll_samples(r):
    return [Sample((randn(r, 3, 4),), dict(shifts=1, axis=1), name="axis1"),
            Sample((randn(r, 3, 4),), dict(shifts=(-2, 5), axis=(0, 1)), name="two-axes"),
            Sample((randn(r, 2, 3),), dict(shifts=4, axis=None), name="flat"),
            Sample((_edge_matrix(),), dict(shifts=2, axis=1), grad=False, name="edge"),
            Sample((ints(r, 0, 9, 1, 3),), dict(shifts=-1, axis=0), name="int-size1")]


def _flip_samples(r):
    return [Sample((randn(r, 3, 4),), dict(axis=(1,)), name="axis1"),
            Sample((randn(r, 2, 3, 2),), dict(axis=(0, 2)), name="two-axes"),
            Sample((randn(r, 0, 3),), dict(axis=(0, 1)), name="0x3"),
            Sample((_edge_matrix(),), dict(axis=(1,)), grad=False, name="edge"),
            Sample((bools(r, 4),), dict(axis=(0,)), name="bool")]


def _tri_samples(r):
    return [Sample((randn(r, 3, 4),), dict(diagonal=0), name="3x4"),
            Sample((randn(r, 2, 4, 3),), dict(diagonal=1), name="batched+1"),
            Sample((randn(r, 3, 3),), dict(diagonal=-2), name="-2"),
            Sample((_edge_matrix(),), dict(diagonal=0), grad=False, name="edge"),
            Sample((ints(r, -9, 9, 3, 2),), dict(diagonal=-1), name="int")]


def _diagonal_samples(r):
    return [Sample((randn(r, 3, 4),), dict(offset=1, axis1=0, axis2=1), name="3x4+1"),
            Sample((randn(r, 4, 3),), dict(offset=-2, axis1=0, axis2=1), name="4x3-2"),
            Sample((randn(r, 2, 3, 3),), dict(offset=0, axis1=2, axis2=0), name="axes20"),
            Sample((randn(r, 2, 3),), dict(offset=5, axis1=0, axis2=1), name="empty"),
            Sample((ints(r, 0, 9, 3, 3),), dict(offset=0, axis1=-1, axis2=-2), name="int")]


def _diag_samples(r):
    return [Sample((randn(r, 3),), dict(diagonal=0), name="vec"),
            Sample((randn(r, 2),), dict(diagonal=2), name="vec+2"),
            Sample((randn(r, 3),), dict(diagonal=-1), name="vec-1"),
            Sample((randn(r, 3, 4),), dict(diagonal=-1), name="mat-1"),
            Sample((ints(r, 0, 9, 2),), dict(diagonal=1), name="int")]


def _einsum_samples(r):
    return [Sample((randn(r, 2, 3, 4), randn(r, 2, 4, 2)), dict(eq="bij,bjk->bik"), name="bmm"),
            Sample((randn(r, 3, 3),), dict(eq="ii"), name="trace"),
            Sample((randn(r, 2, 3, 3), randn(r, 3)), dict(eq="...ii,i->...i"), name="diag-ellipsis"),
            Sample((randn(r, 3), randn(r, 4), randn(r, 4, 3)), dict(eq="i,j,ji"), name="three-implicit"),
            Sample((randn(r, 0, 2), randn(r, 2, 1)), dict(eq="ij,jk->ki"), name="size0-size1")]


def _unfold_samples(r):
    return [Sample((randn(r, 7),), dict(axis=0, size=3, step=2), name="1d"),
            Sample((randn(r, 2, 5),), dict(axis=1, size=2, step=1), name="overlap"),
            Sample((randn(r, 4, 2),), dict(axis=0, size=4, step=3), name="one-window"),
            Sample((_edge_matrix(),), dict(axis=1, size=2, step=2), grad=False, name="edge"),
            Sample((ints(r, 0, 9, 6),), dict(axis=0, size=1, step=2), name="int-size1")]


def _meshgrid_samples(r):
    return [Sample((randn(r, 3), randn(r, 2)), dict(indexing="ij"), name="ij"),
            Sample((randn(r, 3), randn(r, 2), randn(r, 4)), dict(indexing="xy"), name="xy3"),
            Sample((randn(r, 0), randn(r, 2)), dict(indexing="ij"), name="size0"),
            Sample((ints(r, 0, 9, 2), ints(r, 0, 9, 1)), dict(indexing="xy"), name="int")]


def _masked_fill_samples(r):
    return [Sample((randn(r, 3, 4), bools(r, 3, 4)), dict(value=-1.5), name="same"),
            Sample((randn(r, 3, 4), bools(r, 1, 4)), dict(value=float("-inf")), fd=False, name="bcast-inf"),
            Sample((randn(r, 0, 2), bools(r, 0, 2)), dict(value=0.0), name="0x2"),
            Sample((_edge_matrix(), bools(r, 2, 5)), dict(value=float("nan")), grad=False, name="edge"),
            Sample((ints(r, -5, 5, 2, 3), bools(r, 2, 3)), dict(value=7), name="int")]


def _stop_gradient_samples(r):
    return [Sample((randn(r, 3, 4),), fd=False, name="3x4"),
            Sample((randn(r, 0, 2),), name="0x2"),
            Sample((np.asarray(0.7),), fd=False, name="scalar"),
            Sample((edge(),), grad=False, name="edge")]


def _getitem_tensor_samples(r):
    return [Sample((randn(r, 4, 3), np.array([3, -1, 0, 3])), dict(where="rows"), name="rows-neg-repeat"),
            Sample((randn(r, 2, 5), np.array([[0, -5], [4, 2]])), dict(where="cols"), name="cols-2d-index"),
            Sample((randn(r, 3, 1), np.zeros((0,), np.int64)), dict(where="rows"), name="empty-index"),
            Sample((_edge_matrix(), np.array([1, 0])), dict(where="rows"), grad=False, name="edge"),
            Sample((ints(r, 0, 9, 2, 3), np.array([2, -3])), dict(where="cols"), name="int")]


def _index_with(x, i, where):
    return x[i] if where == "rows" else x[:, i]


def _getitem_numpy_samples(r):
    return [Sample((randn(r, 4, 3),), dict(index=(slice(None), np.array([2, -1, 2]))), name="cols"),
            Sample((randn(r, 3, 2),), dict(index=np.array([[0], [2]])), name="rows-2d"),
            Sample((randn(r, 2, 3, 2),), dict(index=(Ellipsis, np.array([1, 0]))), name="ellipsis"),
            Sample((bools(r, 3, 2),), dict(index=(0, np.array([1, 1]))), name="int-first-bool")]


def _torch_getitem(x, index):
    index = index if isinstance(index, tuple) else (index,)
    return x[tuple(torch.as_tensor(i) if isinstance(i, np.ndarray) else i for i in index)]


def _gather_samples(r):
    return [Sample((randn(r, 3, 4), ints(r, 0, 4, 3, 2)), dict(axis=1), name="axis1"),
            Sample((randn(r, 3, 4), ints(r, 0, 3, 2, 4)), dict(axis=0), name="axis0-repeats"),
            Sample((randn(r, 3, 4), ints(r, 0, 4, 2, 3)), dict(axis=-1), name="smaller-index"),
            Sample((_edge_matrix(), ints(r, 0, 5, 2, 6)), dict(axis=1), grad=False, name="edge"),
            Sample((ints(r, -9, 9, 2, 3), ints(r, 0, 3, 2, 0)), dict(axis=1), name="int-empty")]


def _take_along_samples(r):
    return [Sample((randn(r, 3, 4), ints(r, 0, 4, 3, 2)), dict(axis=1), name="axis1"),
            Sample((randn(r, 3, 4), ints(r, 0, 3, 2, 1)), dict(axis=0), name="bcast-index"),
            Sample((randn(r, 1, 4), ints(r, 0, 4, 3, 2)), dict(axis=1), name="bcast-x"),
            Sample((ints(r, -9, 9, 2, 3), ints(r, 0, 3, 2, 5)), dict(axis=-1), name="int")]


def _scatter_add_samples(r):
    return [Sample((randn(r, 3, 4), ints(r, 0, 4, 3, 5), randn(r, 3, 5)), dict(axis=1), wrt=(0, 2), name="axis1"),
            Sample((randn(r, 3, 4), ints(r, 0, 3, 2, 3), randn(r, 2, 3)), dict(axis=0), wrt=(0, 2),
                   name="partial"),
            Sample((randn(r, 2, 3), ints(r, 0, 3, 2, 0), randn(r, 2, 0)), dict(axis=1), wrt=(0,), name="empty"),
            Sample((ints(r, -9, 9, 2, 3), ints(r, 0, 3, 2, 4), ints(r, -9, 9, 2, 4)), dict(axis=1), name="int")]


def _index_add_samples(r):
    return [Sample((randn(r, 3, 4), np.array([2, 0, 2]), randn(r, 3, 3)), dict(axis=1), wrt=(0, 2), name="axis1"),
            Sample((randn(r, 4, 2), np.array([3, 3]), randn(r, 2, 2)), dict(axis=0, alpha=2.0), wrt=(0, 2),
                   name="alpha"),
            Sample((randn(r, 2, 3), np.zeros(0, np.int64), randn(r, 2, 0)), dict(axis=1), wrt=(0,), name="empty"),
            Sample((ints(r, -9, 9, 3, 2), np.array([1, 1]), ints(r, -9, 9, 2, 2)), dict(axis=0), name="int")]


def _index_select_samples(r):
    return [Sample((randn(r, 3, 4), np.array([3, 0, 3])), dict(axis=1), name="axis1"),
            Sample((randn(r, 3, 4), np.array([2])), dict(axis=0), name="axis0"),
            Sample((randn(r, 2, 1, 3), np.array([0, 0])), dict(axis=1), name="size1"),
            Sample((ints(r, -9, 9, 3, 2), np.array([1, 2])), dict(axis=0), name="int")]


def _take_samples(r):
    return [Sample((randn(r, 3, 4), np.array([[3, 0], [1, 1]])), dict(axis=1), name="2d-index"),
            Sample((randn(r, 3, 4), np.array([11, 0, 5])), dict(axis=None), name="flat"),
            Sample((_edge_matrix(), np.array([4, 6, 7])), dict(axis=None), grad=False, name="edge"),
            Sample((ints(r, -9, 9, 3, 2), np.array([2, 0])), dict(axis=0), name="int")]


def _torch_take(x, i, axis):
    if axis is None:
        return x.reshape(-1)[i]
    return x[(slice(None),) * axis + (i,)]


def _embedding_samples(r):
    return [Sample((ints(r, 0, 5, 2, 3), randn(r, 5, 4)), name="2d-indices"),
            Sample((np.array([4, 4, 0]), randn(r, 5, 1)), name="repeats"),
            Sample((np.zeros((0,), np.int64), randn(r, 3, 2)), name="empty"),
            Sample((np.asarray(2), randn(r, 3, 2)), name="scalar-index")]


OPS = [
    OpInfo("stack", lambda *xs, axis: tg.stack(xs, axis), lambda *xs, axis: torch.stack(xs, dim=axis),
           _stack_samples),
    OpInfo("split", lambda x, size, axis: tg.split(x, size, axis), lambda x, size, axis: torch.split(x, size, axis),
           _split_samples),
    OpInfo("chunk", lambda x, chunks, axis: x.chunk(chunks, axis), lambda x, chunks, axis: x.chunk(chunks, axis),
           _chunk_samples),
    OpInfo("repeat", lambda x, sizes: x.repeat(*sizes), lambda x, sizes: x.repeat(*sizes), _repeat_samples),
    OpInfo("tile", lambda x, dims: tg.tile(x, dims), lambda x, dims: torch.tile(x, dims), _tile_samples),
    OpInfo("repeat_interleave", lambda x, repeats, axis: tg.repeat_interleave(x, repeats, axis),
           _torch_repeat_interleave, _repeat_interleave_samples),
    OpInfo("roll", lambda x, shifts, axis: tg.roll(x, shifts, axis),
           lambda x, shifts, axis: torch.roll(x, shifts, axis), _roll_samples),
    OpInfo("flip", lambda x, axis: tg.flip(x, axis), lambda x, axis: torch.flip(x, axis), _flip_samples),
    OpInfo("tril", lambda x, diagonal: tg.tril(x, diagonal), lambda x, diagonal: torch.tril(x, diagonal),
           _tri_samples),
    OpInfo("triu", lambda x, diagonal: x.triu(diagonal), lambda x, diagonal: torch.triu(x, diagonal), _tri_samples),
    OpInfo("diagonal", lambda x, **kw: tg.diagonal(x, **kw),
           lambda x, offset, axis1, axis2: torch.diagonal(x, offset, axis1, axis2), _diagonal_samples),
    OpInfo("diag", lambda x, diagonal: tg.diag(x, diagonal), lambda x, diagonal: torch.diag(x, diagonal),
           _diag_samples),
    OpInfo("einsum", lambda *xs, eq: tg.einsum(eq, *xs), lambda *xs, eq: torch.einsum(eq, *xs), _einsum_samples,
           rtol=1e-5, atol=1e-5),
    OpInfo("unfold", lambda x, **kw: tg.unfold(x, **kw),
           lambda x, axis, size, step: x.unfold(axis, size, step), _unfold_samples),
    OpInfo("meshgrid", lambda *xs, indexing: tg.meshgrid(*xs, indexing=indexing),
           lambda *xs, indexing: torch.meshgrid(*xs, indexing=indexing), _meshgrid_samples),
    OpInfo("masked_fill", lambda x, m, value: x.masked_fill(m, value),
           lambda x, m, value: x.masked_fill(m, value), _masked_fill_samples),
    OpInfo("stop_gradient", lambda x: x + 2 * tg.stop_gradient(x), lambda x: x + 2 * x.detach(),
           _stop_gradient_samples),
    OpInfo("getitem_tensor", _index_with, _index_with, _getitem_tensor_samples),
    OpInfo("getitem_numpy", lambda x, index: x[index], _torch_getitem, _getitem_numpy_samples),
    OpInfo("gather", lambda x, i, axis: tg.gather(x, axis, i), lambda x, i, axis: torch.gather(x, axis, i),
           _gather_samples),
    OpInfo("take_along_axis", lambda x, i, axis: tg.take_along_axis(x, i, axis),
           lambda x, i, axis: torch.take_along_dim(x, i, axis), _take_along_samples),
    OpInfo("scatter_add", lambda x, i, s, axis: tg.scatter_add(x, axis, i, s),
           lambda x, i, s, axis: torch.scatter_add(x, axis, i, s), _scatter_add_samples),
    OpInfo("index_add", lambda x, i, s, **kw: tg.index_add(x, kw["axis"], i, s, kw.get("alpha", 1)),
           lambda x, i, s, **kw: torch.index_add(x, kw["axis"], i, s, alpha=kw.get("alpha", 1)),
           _index_add_samples),
    OpInfo("index_select", lambda x, i, axis: x.index_select(axis, i),
           lambda x, i, axis: torch.index_select(x, axis, i), _index_select_samples),
    OpInfo("take", lambda x, i, axis: tg.take(x, i, axis), _torch_take, _take_samples),
    OpInfo("embedding", lambda i, w: tg.embedding(i, w), lambda i, w: F.embedding(i, w), _embedding_samples),
]
