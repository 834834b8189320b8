"""The docs stay in sync with the code: the op reference lists every registered op."""
from pathlib import Path

import tensorforge as tg

ROOT = Path(__file__).resolve().parent.parent


def test_op_reference_lists_every_registered_op():
    text = (ROOT / "docs" / "ops.md").read_text()
    missing = [name for name in tg.OPS if f"| `{name}` |" not in text]
    assert not missing, f"docs/ops.md is stale, run tools/make_op_reference.py (missing: {missing})"


def test_every_registered_op_has_a_doc_line():
    undocumented = [name for name, op in tg.OPS.items() if not op.doc]
    assert not undocumented, f"ops without a doc string: {undocumented}"


def test_architecture_page_names_the_pipeline_modules():
    text = (ROOT / "docs" / "architecture.md").read_text()
    for module in ("graph.py", "ops/", "autodiff.py", "compile.py", "backends/", "optim/", "train.py"):
        assert module in text
