"""tg.export.to_html: the self-contained graph page, its data (checked against the graph, the
fused program and the profile it shows), Jupyter's _repr_html_, ``show --html``, and the page
rendered in headless Chromium (skipped when no Chromium is installed; .ci/run installs it)."""
from __future__ import annotations

import functools
import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

import tensorforge as tg
from tensorforge import nn, optim
from tensorforge.export import to_html
from tensorforge.export.dot import node_label, resolve
from tensorforge.export.html import graph_data

HOSTILE = '</script><script>window.tfPwned=1</script><img src=x onerror="window.tfPwned=2">&amp;'


def _mlp_training_graph(input_name="x"):
    g = tg.Graph("mlp")
    x = tg.placeholder(input_name, (None, 4), graph=g)
    y = tg.placeholder("y", (None,), dtype="int64", graph=g)
    model = nn.Sequential(nn.Dense(4, 6, seed=0), nn.ReLU(), nn.Dense(6, 3, seed=1))
    loss = tg.mean(tg.softmax_cross_entropy(model(x, training=True), y))
    updates = optim.Adam(lr=1e-2).updates(loss, model.parameters(g))
    return g, x, y, loss, updates


def _batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 4)).astype(np.float32), rng.integers(0, 3, 8)


def _compiled_step(backend="llvm"):
    g, x, y, loss, updates = _mlp_training_graph()
    step = tg.compile([x, y], [loss], updates=updates, backend=backend)
    step(*_batch())
    return g, step


def _embedded_data(page: str) -> dict:
    blocks = re.findall(r'<script type="application/json" id="tf-data">(.*?)</script>', page, flags=re.S)
    assert len(blocks) == 1
    return json.loads(blocks[0])


# ---- the page's contents ----------------------------------------------------------------------

def test_page_is_self_contained_and_holds_every_node_and_edge():
    g, *_ = _mlp_training_graph()
    page = to_html(g)
    # no server, no network: nothing is fetched, and no URL appears at all
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"<script[^>]*\ssrc=|<link\b|<img\b|@import|url\((?!#)", page, flags=re.I)
    assert "@license dagre" in page and "Permission is hereby granted" in page    # the vendored licence
    data = _embedded_data(page)
    assert {n["id"] for n in data["nodes"]} == set(g.nx.nodes)
    assert sorted(map(tuple, data["edges"])) == sorted(g.nx.edges)
    phases = {n["phase"] for n in data["nodes"]}
    assert phases == {"forward", "backward", "optimizer"}
    grads = tg.export.gradient_nodes(g)
    assert all(n["phase"] == "backward" for n in data["nodes"] if n["id"] in grads)
    x = next(n for n in data["nodes"] if n["name"] == "x")
    assert x["kind"] == "placeholder" and x["shape"] == "(?, 4)" and x["dtype"] == "float32"


def test_hostile_names_stay_data():
    g, *_ = _mlp_training_graph(input_name=HOSTILE)
    g.name = "<b>bold</b>"
    page = to_html(g)
    assert "<b>bold" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page       # the <title> and toolbar
    assert "<img" not in page.lower()
    assert page.lower().count("</script>") == 5           # the data block and our four scripts only
    data = _embedded_data(page)
    assert any(n["name"] == HOSTILE for n in data["nodes"])


def test_forward_only_and_tensor_subgraph():
    g, x, y, loss, _ = _mlp_training_graph()
    fwd = graph_data(g, backward=False)
    assert {n["phase"] for n in fwd["nodes"]} == {"forward"}
    sub = graph_data(loss)
    assert {n["id"] for n in sub["nodes"]} == set(g.topological_order([loss.id]))


def test_max_nodes_keeps_the_nodes_nearest_the_outputs():
    g, x, y, loss, _ = _mlp_training_graph()
    data = graph_data(loss, max_nodes=5)
    assert len(data["nodes"]) == 5 and data["dropped"] == len(g.topological_order([loss.id])) - 5
    assert loss.id in {n["id"] for n in data["nodes"]} and data["summary_targets"]


def test_writes_the_file_atomically_and_returns_its_path(tmp_path):
    g, *_ = _mlp_training_graph()
    out = to_html(g, tmp_path / "g.html")
    assert out == tmp_path / "g.html" and out.read_text(encoding="utf-8") == to_html(g)
    assert [p.name for p in tmp_path.iterdir()] == ["g.html"]


def test_fused_kernels_list_the_ops_they_compute():
    g, step = _compiled_step()
    data = graph_data(step)
    program = resolve(step, True, True)[4]       # what the page draws (passes rerun after a disk-cache hit)
    assert data["fused_view"] and {n["id"] for n in data["nodes"]} == set(program.order)
    fused = [n for n in data["nodes"] if n["op"] in ("fused", "matmul_epilogue")]
    assert fused and [n["kernel"] for n in fused] == list(range(len(fused)))
    assert all(n["members"] and n["detail"].startswith("loop") for n in fused)
    # each kernel lists the node it stands for last, every member once
    assert all(n["members"][-1]["id"] == program.origin[n["id"]] for n in fused)
    assert all(len({m["id"] for m in n["members"]}) == len(n["members"]) for n in fused)
    # phases come from the user's graph: the Adam updates are optimizer kernels, relu's pullback backward
    assert {n["phase"] for n in fused} == {"forward", "backward", "optimizer"}
    where = next(n for n in fused if any(m["op"] == "where" for m in n["members"]))
    assert where["phase"] == "backward"


def test_fused_view_without_the_backward_pass():
    _, step = _compiled_step()
    full, forward = graph_data(step), graph_data(step, backward=False)
    assert {n["phase"] for n in forward["nodes"]} == {"forward"}
    assert {n["id"] for n in forward["nodes"]} == {n["id"] for n in full["nodes"] if n["phase"] == "forward"}
    ids = {n["id"] for n in forward["nodes"]}
    assert all(a in ids and b in ids for a, b in forward["edges"])


def test_fused_members_cover_exactly_the_inlined_ops():
    """With fusion as the only pass (no simplification removes ops), the ops of the user's step
    that no program node stands for are exactly those listed inside kernels (some in two
    kernels: fusion recomputes a cheap op rather than store it)."""
    g, x, y, loss, updates = _mlp_training_graph()
    step = tg.compile([x, y], [loss], updates=updates, backend="interp", passes=["fuse"])
    step(*_batch())
    program = resolve(step, True, True)[4]
    fused = [n for n in graph_data(step)["nodes"] if n["op"] in ("fused", "matmul_epilogue")]
    members = {m["id"] for n in fused for m in n["members"]}
    stands_for = {program.origin.get(n, n) for n in program.order}
    roots = [loss.id] + [new.id for _, new in step.updates]
    inlined = {n for n in g.topological_order(roots)
               if g.node(n)["op"] not in ("placeholder", "parameter", "constant") and n not in stands_for}
    kernel_ids = {n["id"] for n in fused}
    extra_outputs = {m for m in program.order if program.graph.node(m)["op"] == "fused_output"
                     and program.graph.node(m)["inputs"][0] in kernel_ids}
    kernel_roots = {program.origin[n] for n in kernel_ids | extra_outputs}
    assert inlined and members == inlined | kernel_roots


@pytest.mark.parametrize("backend", ["llvm", "triton", "interp"])
def test_profile_times_land_on_their_kernels(backend):
    _, step = _compiled_step(backend)
    profile = step.profile(*_batch(), steps=2, warmup=0)
    data = graph_data(step, profile=profile)
    timed = {n["id"]: n["seconds"] for n in data["nodes"] if "seconds" in n}
    unmatched = data["profile"]["unmatched"]
    assert all(label.startswith("update copies") for label, _ in unmatched)
    assert len(timed) + len(unmatched) == len(profile.kernels)
    assert sum(timed.values()) + sum(s for _, s in unmatched) == pytest.approx(profile.kernel_seconds)
    if backend != "interp":      # each fused kernel's time is its own kernel's, found by its LoopSpec text
        by_text = {k.kernel.split(": ", 1)[1]: k.seconds for k in profile.kernels if "_fused: " in k.kernel}
        for n in data["nodes"]:
            if n["op"] == "fused" and n["detail"] in by_text and list(by_text).count(n["detail"]) == 1:
                assert n["seconds"] == by_text[n["detail"]]


def test_repr_html_is_the_page_in_a_sandboxed_iframe():
    g, x, y, loss, updates = _mlp_training_graph()
    step = tg.compile([x, y], [loss], updates=updates, backend="llvm")
    before = step._repr_html_()
    step(*_batch())
    for obj in (g, loss, step):
        frame = obj._repr_html_()
        srcdoc = re.fullmatch(r'<iframe srcdoc="([^"]*)" sandbox="allow-scripts" .*</iframe>', frame, flags=re.S)
        assert srcdoc, frame[:200]
        assert html.unescape(srcdoc.group(1)) == to_html(obj, max_nodes=400)
    ops_before = {n["op"] for n in _embedded_data(html.unescape(re.search(r'srcdoc="([^"]*)"', before).group(1)))["nodes"]}
    assert "fused" not in ops_before and "matmul" in ops_before        # not run yet: the graph as built
    assert not graph_data(g)["fused_view"] and graph_data(step)["fused_view"]


def test_show_html_writes_the_saved_graphs_page(tmp_path):
    from tensorforge.cli import main
    g, x, y, loss, _ = _mlp_training_graph()
    tg.export.save(tmp_path / "mlp.json", [loss], [x, y])
    runner = CliRunner()
    done = runner.invoke(main, ["show", str(tmp_path / "mlp.json"), "--html", str(tmp_path / "mlp.html")])
    assert done.exit_code == 0, done.output
    data = _embedded_data((tmp_path / "mlp.html").read_text(encoding="utf-8"))
    assert len(data["nodes"]) == len(g.topological_order([loss.id])) and data["title"] == "mlp.json"
    bad = runner.invoke(main, ["show", str(tmp_path / "mlp.json"), "--html", str(tmp_path / "no" / "a.html")])
    assert bad.exit_code == 2 and "does not exist" in bad.output


# ---- in a real browser ------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _chromium():
    """A Chromium that runs (Ubuntu's `chromium-browser` may be a stub that only asks for snap)."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            try:
                if subprocess.run([path, "--version"], capture_output=True, timeout=60).returncode == 0:
                    return path
            except (OSError, subprocess.TimeoutExpired):
                pass
    return None


needs_chromium = pytest.mark.skipif(_chromium() is None, reason="no headless Chromium installed (.ci/run installs "
                                    "it with apt-get: apt-get install chromium)")


def render(path, tmp_path, fragment: str = "") -> tuple[dict, str, str]:
    """(the #tf-status attributes, the rendered DOM, the browser's log) of the page at ``path``."""
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=20000", "--window-size=1400,900", "--host-resolver-rules=MAP * ~NOTFOUND",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", path.resolve().as_uri() + fragment]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    dom = done.stdout
    status = re.search(r'<div id="tf-status"([^>]*)>(.*?)</div>', dom, flags=re.S)
    assert status, f"no status element in the rendered page; browser log:\n{done.stderr[-3000:]}"
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', status.group(1)))
    attrs["text"] = status.group(2)
    return attrs, dom, done.stderr


def _assert_rendered(status, dom, log, node_ids, n_edges):
    assert status.get("data-state") == "rendered", status
    assert status.get("data-errors") == "0", status["text"]
    assert "Uncaught" not in log, log[-3000:]
    drawn = set(map(int, re.findall(r'<g id="tf-node-(\d+)"', dom)))
    assert drawn == set(node_ids)
    assert int(status["data-nodes"]) == len(node_ids) and int(status["data-edges"]) == n_edges
    assert len(re.findall(r'<path [^>]*class="tf-edge', dom)) == n_edges


@needs_chromium
def test_training_step_renders_in_chromium_with_every_node(tmp_path):
    g, *_ = _mlp_training_graph()
    page = to_html(g, tmp_path / "train.html")
    status, dom, log = render(page, tmp_path, "#q=relu")
    _assert_rendered(status, dom, log, g.nx.nodes, g.nx.number_of_edges())
    # the search (preset by #q=) finds what a Python scan of names, ops and labels finds
    expected = {n for n in g.nx if any("relu" in s.lower() for s in
                                       (g.node(n)["name"], g.node(n)["op"], node_label(g, n)))}
    assert expected and set(map(int, status["data-matches"].split())) == expected
    assert len(re.findall(r'class="tf-node[^"]*tf-match', dom)) == len(expected)


@needs_chromium
def test_compiled_step_with_profile_renders_fused_kernels_and_heat(tmp_path):
    _, step = _compiled_step()
    profile = step.profile(*_batch(), steps=2, warmup=0)
    data = graph_data(step, profile=profile)
    page = to_html(step, tmp_path / "step.html", profile=profile)
    status, dom, log = render(page, tmp_path)
    _assert_rendered(status, dom, log, [n["id"] for n in data["nodes"]], len(data["edges"]))
    drawn_fused = re.findall(r'<g id="tf-node-\d+" class="tf-node tf-kind-fused', dom)
    assert len(drawn_fused) == sum(n["op"] in ("fused", "matmul_epilogue") for n in data["nodes"])
    assert len(re.findall(r'class="tf-shape" fill="rgb\(', dom)) == sum("seconds" in n for n in data["nodes"])
    assert "Profile" in dom and "kernel 0" in dom


@needs_chromium
def test_hostile_names_render_as_text(tmp_path):
    g, *_ = _mlp_training_graph(input_name=HOSTILE)
    page = to_html(g, tmp_path / "hostile.html")
    status, dom, log = render(page, tmp_path, "#q=onerror")
    _assert_rendered(status, dom, log, g.nx.nodes, g.nx.number_of_edges())
    assert not re.search(r"<img\b", dom) and "&lt;img src=x" in dom
    assert status["data-matches"] == str(g.by_name(HOSTILE).id)


def test_bad_arguments_are_refused():
    g, *_ = _mlp_training_graph()
    with pytest.raises(ValueError, match="layout"):
        to_html(g, layout="circular")
    with pytest.raises(ValueError, match="max_nodes"):
        to_html(g, max_nodes=0)
    _, x, y, loss, updates = _mlp_training_graph()
    step = tg.compile([x, y], [loss], updates=updates)
    with pytest.raises(ValueError, match=r"to_html\(fused=True\).*call it once"):
        to_html(step, fused=True)


@needs_chromium
def test_big_graphs_use_the_fast_layout_and_every_node_is_drawn(tmp_path):
    from tensorforge.export.html import DAGRE_MAX_NODES
    g = tg.Graph("deep")
    x = tg.placeholder("x", (None, 8), graph=g)
    y = tg.placeholder("y", (None,), dtype="int64", graph=g)
    layers = [layer for i in range(6) for layer in (nn.Dense(8, 8, seed=i), nn.ReLU())]
    loss = tg.mean(tg.softmax_cross_entropy(nn.Sequential(*layers, nn.Dense(8, 3, seed=9))(x, training=True), y))
    optim.Adam(lr=1e-2).updates(loss, [p for p in g.parameters(trainable=True)])
    assert len(g) > DAGRE_MAX_NODES
    status, dom, log = render(to_html(g, tmp_path / "deep.html"), tmp_path)
    _assert_rendered(status, dom, log, g.nx.nodes, g.nx.number_of_edges())
    assert status["data-layout"] == "layers"


@needs_chromium
@pytest.mark.parametrize("layout", ["dagre", "layers"])
def test_empty_and_one_node_graphs_render(tmp_path, layout):
    empty = tg.Graph("empty \udc80")                  # a lone surrogate in the name is replaced, not fatal
    one = tg.Graph("one")
    tg.placeholder("x", (2,), graph=one)
    for k, g in enumerate((empty, one)):
        status, dom, log = render(to_html(g, tmp_path / f"g{k}.html", layout=layout), tmp_path)
        _assert_rendered(status, dom, log, g.nx.nodes, 0)
        assert status["data-layout"] == layout
