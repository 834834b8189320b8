"""Build the tutorial notebooks (docs/tutorial/*.ipynb) from their sources (docs/tutorial/*.py).

A source is a Python file in the "percent" format: ``# %%`` starts a code cell and
``# %% [markdown]`` a text cell whose lines are comments. The notebooks are generated, executed
(nbclient, a real Jupyter kernel) and written with their outputs, so they read well on a code
host; tests/test_tutorials.py executes them again in CI and checks they match their sources.

    python tools/make_notebooks.py            # rebuild and execute every notebook
    python tools/make_notebooks.py --no-run   # rebuild without executing
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial"


def cells_of(source: str) -> list[tuple[str, str]]:
    """(kind, text) per cell of a percent-format source."""
    cells: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
        elif cells:
            cells[-1][1].append(line)
    out = []
    for kind, lines in cells:
        if kind == "markdown":
            lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
        out.append((kind, "\n".join(lines).strip("\n")))
    return out


def notebook_of(source: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, text in cells_of(source):
        nb.cells.append(nbformat.v4.new_markdown_cell(text) if kind == "markdown" else nbformat.v4.new_code_cell(text))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"          # stable ids: a rebuild gives the same file
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path, timeout: int = 600) -> nbformat.NotebookNode:
    from nbclient import NotebookClient
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def sources() -> list[Path]:
    return sorted(TUTORIAL.glob("[0-9][0-9]_*.py"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="write the notebooks without executing them")
    args = parser.parse_args(argv)
    for src in sources():
        nb = notebook_of(src.read_text())
        if not args.no_run:
            execute(nb, TUTORIAL)
        target = src.with_suffix(".ipynb")
        tmp = target.with_suffix(".ipynb.tmp")
        nbformat.write(nb, str(tmp))
        tmp.replace(target)
        print(f"wrote {target.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
