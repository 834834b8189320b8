"""tg.export: DOT text, pictures (both renderers), JSON save/load with validation, ONNX export."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

import tensorforge as tg
from tensorforge import nn, optim
from tensorforge.export import LoadError, UnsupportedOpError, draw, load, save, to_dot, to_onnx
from tensorforge.export.serialize import arrays_path


def _mlp_training_graph():
    g = tg.Graph("mlp")
    x = tg.placeholder("x", (None, 4), graph=g)
    y = tg.placeholder("y", (None,), dtype="int64", graph=g)
    model = nn.Sequential(nn.Dense(4, 6, seed=0), nn.ReLU(), nn.Dense(6, 3, seed=1))
    out = model(x, training=True)
    loss = tg.mean(tg.softmax_cross_entropy(out, y))
    updates = optim.Adam(lr=1e-2).updates(loss, model.parameters(g))
    return g, x, y, out, loss, updates


def _node_styles(dot: str) -> dict[str, str]:
    """node id -> its attribute text."""
    return dict(re.findall(r"^\s*(n\d+) \[(.*)\];$", dot, flags=re.M))


# ---- DOT ---------------------------------------------------------------------------------------

def test_dot_styles_kinds_apart():
    g, x, y, out, loss, _ = _mlp_training_graph()
    dot = to_dot(g)
    styles = _node_styles(dot)
    assert dot.startswith('digraph "mlp" {') and dot.rstrip().endswith("}")
    assert "invhouse" in styles[f"n{x.id}"] and 'x\\n(?, 4) float32' in styles[f"n{x.id}"]
    w = g.by_name("dense0/W")
    assert "shape=box" in styles[f"n{w.id}"] and "#ffd966" in styles[f"n{w.id}"]
    assert "#f0e6a8" in styles[f"n{g.by_name('dense0/W/adam_exp_avg').id}"]     # optimizer state
    assert "matmul\\n(?, 6) float32" in styles[f"n{out.inputs[0].inputs[0].inputs[0].inputs[0].id}"]
    grads = tg.export.gradient_nodes(g)
    assert grads and all("#f4a6a0" in styles[f"n{n}"] for n in grads
                         if g.node(n)["op"] not in ("constant", "parameter", "placeholder"))
    assert any("#b6e3b0" in s for s in styles.values())                         # Adam's update nodes
    assert all("#f4a6a0" not in styles[f"n{n}"] for n in g.topological_order([loss.id]))
    consts = [n for n in g.nx if g.node(n)["op"] == "constant"]
    assert all("plaintext" in styles[f"n{n}"] and "#808080" in styles[f"n{n}"] for n in consts)
    # every edge connects two drawn nodes and there is one per (input, consumer) pair
    edges = re.findall(r"^\s*n(\d+) -> n(\d+);$", dot, flags=re.M)
    assert len(edges) == g.nx.number_of_edges()


def test_dot_forward_only_and_tensor_subgraph():
    g, x, y, out, loss, _ = _mlp_training_graph()
    fwd = to_dot(g, backward=False)
    assert "#f4a6a0" not in fwd and "#b6e3b0" not in fwd
    sub = to_dot(out)
    assert set(_node_styles(sub)) == {f"n{n}" for n in g.topological_order([out.id])}
    both = to_dot([out, loss])
    assert set(_node_styles(both)) == {f"n{n}" for n in g.topological_order([out.id, loss.id])}


def test_dot_escapes_labels():
    g = tg.Graph('quote"graph')
    a = tg.placeholder('in "a"\nsecond line\\', (2,), graph=g)
    dot = to_dot(tg.relu(a))
    assert 'label="in \\"a\\"\\nsecond line\\\\\\n(2,) float32"' in dot
    assert 'digraph "quote\\"graph"' in dot
    # no raw newline inside any quoted string: each statement is on one line
    for line in dot.splitlines()[2:-1]:
        assert line.count('"') % 2 == 0 or "\\\"" in line


def test_dot_max_nodes_collapses_the_rest():
    g = tg.Graph("chain")
    x = tg.placeholder("x", (3,), graph=g)
    y = x
    for _ in range(50):
        y = tg.tanh(y)
    dot = to_dot(y, max_nodes=10)
    assert len(_node_styles(dot)) == 10
    assert '"... 41 more nodes"' in dot and "summary -> n" in dot
    assert f"n{y.id} [" in dot                      # the output is always kept


def test_dot_fused_clusters_for_compiled_function():
    g = tg.Graph("fuse")
    x = tg.placeholder("x", (None, 8), graph=g)
    w = tg.parameter("w", np.ones((8, 4), np.float32), graph=g)
    y = tg.sum(tg.tanh(tg.exp(tg.matmul(x, w)) * 2.0 + 1.0), axis=1)
    f = tg.compile([x], [y], backend="llvm")
    with pytest.raises(ValueError, match="has not run yet"):
        to_dot(f, fused=True)
    f(np.ones((2, 8), np.float32))
    dot = to_dot(f, fused=True)
    assert "subgraph cluster_" in dot and "fused kernel" in dot
    assert "(2, 4) float32" in dot                  # shapes of the specialisation
    plain = to_dot(f)
    assert "cluster" not in plain and "tanh" in plain


# ---- pictures ---------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<svg")])
def test_draw_matplotlib_path(tmp_path, suffix, magic):
    g, *_ = _mlp_training_graph()
    path = draw(g, tmp_path / f"g{suffix}", engine="matplotlib", max_nodes=60)
    data = path.read_bytes()
    assert magic in data[:4000]
    assert [p.name for p in tmp_path.iterdir()] == [f"g{suffix}"]     # no temp files left behind


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<svg")])
def test_draw_graphviz_path(tmp_path, suffix, magic):
    g, *_ = _mlp_training_graph()
    path = draw(g, tmp_path / f"g{suffix}", engine="graphviz")
    assert magic in path.read_bytes()[:4000]


def test_draw_rejects_unknown_suffix_and_keeps_old_file_on_failure(tmp_path):
    g, *_ = _mlp_training_graph()
    with pytest.raises(ValueError, match="unsupported picture format"):
        draw(g, tmp_path / "g.gif")
    target = tmp_path / "g.png"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        draw("not a graph", target, engine="matplotlib")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["g.png"]


# ---- save / load ------------------------------------------------------------------------------

def _cnn_eval_graph():
    g = tg.Graph("cnn")
    x = tg.placeholder("img", (None, 1, 8, 8), graph=g)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, seed=0), nn.BatchNorm(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Dense(64, 5, seed=1), nn.LayerNorm(5), nn.Tanh())
    model(x, training=True)                              # builds the batch-norm statistics too
    out = model(x, training=False)
    return g, x, out


@pytest.mark.parametrize("backend", ["interp", "llvm"])
def test_save_load_round_trip_identical_outputs(tmp_path, backend):
    g, x, out = _cnn_eval_graph()
    probs = tg.softmax(out, axis=-1)
    path = save(tmp_path / "model.json", [out, probs], inputs=[x])
    assert path.exists() and arrays_path(path).exists() and arrays_path(path).suffix == ".npz"
    loaded = load(path)
    assert [t.name for t in loaded.inputs] == ["img"]
    assert loaded["img"].same(loaded.inputs[0])
    assert set(loaded.parameters) == {t.name for t in g.parameters()
                                      if t.id in g.topological_order([out.id])}
    assert loaded.parameters["conv2d0/W"].value.tobytes() == g.by_name("conv2d0/W").value.tobytes()
    data = np.random.default_rng(0).standard_normal((3, 1, 8, 8)).astype(np.float32)
    want = tg.compile([x], [out, probs], backend=backend)(data)
    got = tg.compile(loaded.inputs, loaded.outputs, backend=backend)(data)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_save_refuses_missing_inputs(tmp_path):
    g = tg.Graph("two")
    a = tg.placeholder("a", (2,), graph=g)
    b = tg.placeholder("b", (2,), graph=g)
    with pytest.raises(ValueError, match="not among the inputs"):
        save(tmp_path / "m.json", a + b, inputs=[a])


def _saved(tmp_path):
    g = tg.Graph("small")
    x = tg.placeholder("x", (None, 3), graph=g)
    w = tg.parameter("w", np.arange(6, dtype=np.float32).reshape(3, 2), graph=g)
    y = tg.relu(tg.matmul(x, w) + 1.5)
    path = save(tmp_path / "m.json", y)
    return path, json.loads(path.read_text())


def _rewrite(path, doc):
    path.write_text(json.dumps(doc))


def _node(doc, op):
    return next(n for n in doc["graph"]["nodes"] if n["op"] == op)


def test_load_rejects_unknown_op(tmp_path):
    path, doc = _saved(tmp_path)
    _node(doc, "relu")["op"] = "os_system"
    _rewrite(path, doc)
    with pytest.raises(LoadError, match="unknown op 'os_system'"):
        load(path)


def test_load_rejects_wrong_shape(tmp_path):
    path, doc = _saved(tmp_path)
    _node(doc, "matmul")["shape"] = [None, 7]
    _rewrite(path, doc)
    with pytest.raises(LoadError, match=r"declares \(\?, 7\) float32, but its inputs give \(\?, 2\)"):
        load(path)


def test_load_rejects_parameter_array_of_wrong_shape(tmp_path):
    path, doc = _saved(tmp_path)
    w = _node(doc, "parameter")
    arrays = dict(np.load(arrays_path(path)))
    arrays[f"n{w['id']}"] = np.zeros((2, 2), np.float32)
    np.savez(arrays_path(path), **arrays)
    with pytest.raises(LoadError, match=r"'w'\) is \(2, 2\) float32, but the graph declares \(3, 2\)"):
        load(path)


def test_load_rejects_cycle(tmp_path):
    path, doc = _saved(tmp_path)
    add, relu = _node(doc, "add"), _node(doc, "relu")
    add["inputs"][0] = relu["id"]
    _rewrite(path, doc)
    with pytest.raises(LoadError, match="cycle"):
        load(path)


def test_load_rejects_other_version(tmp_path):
    path, doc = _saved(tmp_path)
    doc["version"] = 99
    _rewrite(path, doc)
    with pytest.raises(LoadError, match="format version 99 is not supported"):
        load(path)


def test_load_rejects_missing_array(tmp_path):
    path, doc = _saved(tmp_path)
    w = _node(doc, "parameter")
    arrays = dict(np.load(arrays_path(path)))
    del arrays[f"n{w['id']}"]
    np.savez(arrays_path(path), **arrays)
    with pytest.raises(LoadError, match=r"array of parameter %\d+ \('w'\) is missing"):
        load(path)
    arrays_path(path).unlink()
    with pytest.raises(LoadError, match="arrays file .* is missing"):
        load(path)


def test_load_refuses_object_arrays(tmp_path):
    path, doc = _saved(tmp_path)
    w = _node(doc, "parameter")
    arrays = dict(np.load(arrays_path(path)))
    arrays[f"n{w['id']}"] = np.array([{"evil": 1}, None], dtype=object)
    np.savez(arrays_path(path), **arrays)        # np.savez pickles object arrays
    with pytest.raises(LoadError, match="allow_pickle=False"):
        load(path)


def test_load_rejects_dangling_reference_and_garbage(tmp_path):
    path, doc = _saved(tmp_path)
    _node(doc, "relu")["inputs"] = [12345]
    _rewrite(path, doc)
    with pytest.raises(LoadError, match="refers to missing node 12345"):
        load(path)
    path.write_text("{not json")
    with pytest.raises(LoadError, match="not a JSON graph file"):
        load(path)


# ---- ONNX -------------------------------------------------------------------------------------

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _onnx_matches(tmp_path, inputs, outputs, feeds, opset=17):
    path = tmp_path / "model.onnx"
    model = to_onnx(inputs, outputs, path, opset=opset)
    onnx.checker.check_model(onnx.load(str(path)))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {t.name: v for t, v in zip(inputs, feeds)})
    want = tg.compile(inputs, outputs)(*feeds)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    return model


def test_onnx_mlp_with_norms_and_activations(tmp_path):
    g = tg.Graph("mlp")
    x = tg.placeholder("x", (None, 6), graph=g)
    model = nn.Sequential(nn.Dense(6, 8, seed=0), nn.BatchNorm(8), nn.Sigmoid(), nn.Dense(8, 8, seed=1),
                          nn.LayerNorm(8), nn.Tanh(), nn.Dense(8, 4, seed=2), nn.ReLU(), nn.Dense(4, 3, seed=3))
    rng = np.random.default_rng(1)
    # move the batch-norm statistics away from (0, 1) so eval mode really uses them
    tg.train.fit(model, rng.standard_normal((32, 6)) * 3 + 1, rng.integers(0, 3, 32), epochs=1,
                 progress=False, verbose=False)
    logits = model(x, training=False)
    outs = [logits, tg.softmax(logits, axis=-1), tg.log_softmax(logits, axis=-1)]
    feeds = [rng.standard_normal((5, 6)).astype(np.float32)]
    m = _onnx_matches(tmp_path, [x], outs, feeds)
    op_types = {n.op_type for n in m.graph.node}
    assert {"MatMul", "Add", "Sigmoid", "Tanh", "Relu", "Softmax", "LogSoftmax", "ReduceSum", "Sqrt"} <= op_types
    # the batch dimension stays symbolic: another batch size runs too
    sess = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"x": np.zeros((2, 6), np.float32)})[0].shape == (2, 3)


def test_onnx_cnn(tmp_path):
    g = tg.Graph("cnn")
    x = tg.placeholder("img", (None, 2, 8, 8), graph=g)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, seed=0), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(4, 4, 3, padding=1, stride=1, seed=2), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Dense(16, 3, seed=1), nn.LogSoftmax())
    out = model(x, training=False)
    feeds = [np.random.default_rng(2).standard_normal((3, 2, 8, 8)).astype(np.float32)]
    m = _onnx_matches(tmp_path, [x], [out], feeds)
    assert {"Conv", "MaxPool", "AveragePool", "Reshape", "LogSoftmax"} <= {n.op_type for n in m.graph.node}


@pytest.mark.parametrize("opset", [13, 17, 18])       # reduce ops take axes as an input from 18
def test_onnx_elementwise_and_shape_ops(tmp_path, opset):
    g = tg.Graph("misc")
    a = tg.placeholder("a", (None, 3), graph=g)
    b = tg.placeholder("b", (3,), graph=g)
    y = tg.where(a > b, tg.exp(-tg.abs(a)) / (1.0 + b * b), tg.maximum(a, b) - tg.sqrt(b * b + 1.0))
    y = tg.transpose(tg.expand_dims(y, 0), (1, 0, 2))
    z = tg.squeeze(y, 1) ** 2.0 + tg.leaky_relu(a, 0.1) + tg.elu(a) + tg.softplus(a)
    z = tg.concat([z, tg.logsumexp(z, axis=1, keepdims=True), tg.max(z, axis=1, keepdims=True),
                   tg.cast(tg.sum(z, axis=1, keepdims=True), "float32")], axis=1)
    rng = np.random.default_rng(3)
    _onnx_matches(tmp_path, [a, b], [z, tg.mean(z)], [rng.standard_normal((4, 3)).astype(np.float32),
                                                   rng.standard_normal(3).astype(np.float32)], opset=opset)


def test_onnx_unsupported_op_is_named(tmp_path):
    g = tg.Graph("drop")
    x = tg.placeholder("x", (None, 4), graph=g)
    y = nn.Dropout(0.5)(x, training=True)
    with pytest.raises(UnsupportedOpError, match="op 'dropout'"):
        to_onnx([x], [y], tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_draw_auto_falls_back_to_matplotlib_without_dot(tmp_path, monkeypatch):
    import sys
    draw_module = sys.modules["tensorforge.export.draw"]     # (the package's `draw` is the function)
    monkeypatch.setattr(draw_module.shutil, "which", lambda name: None)
    g, *_ = _mlp_training_graph()
    assert draw(g, tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(RuntimeError, match="Graphviz 'dot' is not on PATH"):
        draw(g, tmp_path / "h.png", engine="graphviz")


def test_to_dot_of_a_compiled_training_step_draws_its_updates():
    """Regression: to_dot(CompiledFunction) passed the update pairs' Tensors, not their node ids,
    to networkx, which raised NetworkXError for every step with updates."""
    g = tg.Graph()
    with g:
        x = tg.placeholder("x", (None, 3))
        W = tg.parameter("W", np.ones((3, 2), np.float32))
        loss = tg.sum(x @ W)
        step = tg.compile([x], [loss], updates=tg.optim.Adam().updates(loss, [W]))
    dot = tg.export.to_dot(step)
    assert 'label="W\\n(3, 2) float32"' in dot
    assert 'label="W/adam_exp_avg_sq\\n(3, 2) float32"' in dot     # the optimizer's state is drawn
