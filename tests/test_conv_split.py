"""conv2d_grad_weight with few input channels (an image's 1 or 3) splits over panels of output
channels instead of input channels: the split must happen, give bit-identical weight gradients
for 1, 2 and 3 threads, and match the interpreter (the MNIST Net's first layer, odd sizes,
stride and padding, and the chunked / dot-product paths of small images)."""
from __future__ import annotations

import numpy as np
import pytest

import tensorforge as tg
from tensorforge.backends.llvm import parallel
from tensorforge.backends.llvm.library.conv import grad_weight_row_panels

# (N, C, O, H, W, (kh, kw), stride, padding)
FEW_CHANNEL_SIZES = [
    (64, 1, 32, 28, 28, (3, 3), 1, 0),        # the MNIST Net's conv1
    (5, 1, 40, 13, 11, (3, 3), 1, 1),         # 3 panels of 16 rows, the last one partial
    (3, 3, 20, 17, 15, (5, 5), 2, 2),         # RGB, 5x5: panels of 8 rows
    (4, 1, 24, 9, 9, (3, 3), 1, 1),           # few outputs: the dot-product path over chunks
    (2, 3, 13, 12, 10, (3, 2), (2, 1), (1, 0)),
]


def _grad_weight_graph(size):
    n, c, o, h, w, k, stride, padding = size
    x = tg.placeholder("x", (n, c, h, w))
    wt = tg.placeholder("w", (o, c) + k)
    y = tg.relu(tg.conv2d(x, wt, stride=stride, padding=padding))
    r = tg.constant(np.random.default_rng(4).standard_normal(y.shape).astype(np.float32))
    return [x, wt], [y] + list(tg.grad(tg.sum(y * r), [x, wt]))


def _run(size, backend):
    with tg.Graph():
        inputs, outputs = _grad_weight_graph(size)
        step = tg.compile(inputs, outputs, backend=backend)
    rng = np.random.default_rng(0)
    return step(*[rng.standard_normal(t.shape).astype(np.float32) for t in inputs])


def test_row_panels_are_whole_tiles_covering_every_output_channel():
    assert grad_weight_row_panels((64, 32, 26, 26), (64, 32, 3, 3), "float32") is None   # channels
    panels = grad_weight_row_panels((5, 1, 13, 11), (40, 1, 3, 3), "float32")
    assert panels[0][0] == 0 and panels[-1][1] == 40 and len(panels) >= 2
    assert all(a[1] == b[0] for a, b in zip(panels, panels[1:]))
    step = panels[0][1] - panels[0][0]
    assert all(r0 % step == 0 for r0, _ in panels)


@pytest.mark.parametrize("size", FEW_CHANNEL_SIZES, ids=lambda s: "x".join(map(str, s[:5])) + f"-k{s[5]}-s{s[6]}")
def test_few_channel_grad_weight_splits_identically_and_matches_the_interpreter(size, monkeypatch, tmp_path):
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path))      # lower afresh, no cache hit
    monkeypatch.setattr(parallel, "MIN_WORK_PER_THREAD", 1)
    split = []
    emit_entry = parallel.emit_entry
    monkeypatch.setattr(parallel, "emit_entry",
                        lambda m, name, *a, **k: split.append(name) or emit_entry(m, name, *a, **k))
    saved = tg.get_num_threads()
    results = {}
    try:
        for threads in (1, 2, 3):
            tg.set_num_threads(threads)
            results[threads] = _run(size, "llvm")
    finally:
        tg.set_num_threads(saved)
    assert any(name.endswith("_conv2d_grad_weight_mt") for name in split), split
    for threads in (2, 3):
        for a, b in zip(results[threads], results[1]):
            np.testing.assert_array_equal(a, b)
    want = _run(size, "interp")
    for name, a, b in zip(("conv", "grad x", "grad w"), results[2], want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()), err_msg=name)


def test_grad_weight_runs_one_chunk_per_thread(monkeypatch, tmp_path):
    """Each range call of conv2d_grad_weight packs every sample's output gradient again, so the
    kernel is cut into one chunk per thread (as a matmul is), not the pool's several dynamic
    chunks: in the MNIST Net, 8 chunks made conv2's grad_weight slower on 2 threads than on 1.
    The grain the parallel entry hands the pool is the units (input channels) per thread."""
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path))
    grains = {}
    emit_entry = parallel.emit_entry

    def record(module, name, range_fn, n_ptrs, extent, threads, grain=1):
        grains[name] = (extent, grain)
        return emit_entry(module, name, range_fn, n_ptrs, extent, threads, grain=grain)

    monkeypatch.setattr(parallel, "emit_entry", record)
    monkeypatch.setattr(parallel, "MIN_WORK_PER_THREAD", 1)       # split even this small case
    size = (8, 32, 16, 14, 14, (3, 3), 1, 1)
    saved = tg.get_num_threads()
    try:
        tg.set_num_threads(2)
        got = _run(size, "llvm")
    finally:
        tg.set_num_threads(saved)
    (extent, grain), = [v for k, v in grains.items() if k.endswith("_conv2d_grad_weight_mt")]
    assert (extent, grain) == (32, 16)
    for a, b in zip(got, _run(size, "interp")):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))
