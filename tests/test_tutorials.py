"""The tutorial notebooks (docs/tutorial) run in a real Jupyter kernel and match their sources.

Each notebook's cells assert their results against an oracle (hand-derived gradients, finite
differences, the interpreter, ONNX Runtime), so executing them is a test of what they teach.
"""
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial"

import importlib.util
spec = importlib.util.spec_from_file_location("make_notebooks", ROOT / "tools" / "make_notebooks.py")
make_notebooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_notebooks)

SOURCES = make_notebooks.sources()


def test_there_is_a_tutorial_path():
    names = [p.stem for p in SOURCES]
    assert len(names) >= 5, names
    index = (ROOT / "docs" / "tutorial" / "README.md").read_text()
    for name in names:
        assert f"{name}.ipynb" in index


@pytest.mark.parametrize("src", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_matches_its_source(src):
    committed = nbformat.read(str(src.with_suffix(".ipynb")), as_version=4)
    fresh = make_notebooks.notebook_of(src.read_text())
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in fresh.cells], \
        "run: python tools/make_notebooks.py"


@pytest.mark.parametrize("src", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_executes_without_errors(src, tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path / "cache"))
    nb = make_notebooks.notebook_of(src.read_text())
    make_notebooks.execute(nb, TUTORIAL, timeout=600)     # raises CellExecutionError on any failure
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert outputs, "the notebook printed nothing"
