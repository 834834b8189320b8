"""The public API's type hints (issue 13): ``mypy --strict`` is clean on the package, a typed
user script checks with no errors and its revealed types are the documented ones (not Any),
and the operators declared for checkers on Tensor are the ones installed at run time.

Each mypy run is one test (a cold run takes about a minute).
"""
from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER_SCRIPT = ROOT / "tests" / "typing" / "user_script.py"

pytest.importorskip("mypy")


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MYPYPATH=str(ROOT / "src"))   # this checkout's package, not an installed one
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)


def test_mypy_strict_is_clean_on_the_package() -> None:
    result = _mypy()          # files, strictness and the excluded internals: pyproject.toml [tool.mypy]
    assert result.returncode == 0, result.stdout + result.stderr


def _expectations() -> dict[int, str]:
    """Line number -> the type its reveal_type must show (from the ``# expect:`` comments)."""
    out = {}
    for number, line in enumerate(USER_SCRIPT.read_text().splitlines(), start=1):
        if "reveal_type(" in line:
            m = re.search(r"# expect: (.+)$", line)
            assert m, f"user_script.py:{number}: a reveal_type without an '# expect:' comment"
            out[number] = m.group(1).strip()
    return out


def _matches(revealed: str, expected: str) -> bool:
    if expected.endswith("..."):
        return revealed.startswith(expected[:-3])
    return revealed == expected


def test_typed_user_script_checks_with_the_documented_types() -> None:
    # --follow-imports=silent: what a user of the installed package sees, errors in the script only
    result = _mypy("--strict", "--follow-imports=silent", "--no-warn-unused-configs",
                   "--cache-dir", str(ROOT / ".mypy_cache" / "user_script"), str(USER_SCRIPT))
    output = result.stdout + result.stderr
    errors = [ln for ln in output.splitlines() if ": error:" in ln]
    assert not errors and result.returncode == 0, output
    revealed = {int(m.group(1)): m.group(2)
                for m in re.finditer(r"user_script\.py:(\d+): note: Revealed type is \"(.*)\"", output)}
    expected = _expectations()
    assert set(revealed) == set(expected), output
    wrong = [f"line {n}: expected {expected[n]!r}, revealed {revealed[n]!r}"
             for n in sorted(expected) if not _matches(revealed[n], expected[n])]
    assert not wrong, "\n".join(wrong)
    assert all("Any" not in revealed[n] or "numpy" in revealed[n] for n in revealed), revealed


def test_typed_user_script_runs(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), TENSORFORGE_CACHE_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, str(USER_SCRIPT)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def _declared_methods() -> dict[str, list[str]]:
    """Name -> parameter names (self excluded) of every method TensorMethods declares."""
    import tensorforge._tensor_methods as module
    tree = ast.parse(Path(module.__file__).read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TensorMethods")
    out = {}
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef):
            a = node.args
            out[node.name] = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs][1:]
    return out


def test_declared_tensor_methods_are_the_installed_ones() -> None:
    import tensorforge as tg
    declared = _declared_methods()
    assert len(declared) > 100
    for name, params in declared.items():
        installed = getattr(tg.Tensor, name, None)
        assert installed is not None and installed is not getattr(object, name, None), \
            f"Tensor.{name} is declared for checkers but not installed"
        runtime = list(inspect.signature(installed).parameters)[1:]
        assert all(p in runtime for p in params), (name, params, runtime)


def test_operators_build_tensors_as_declared() -> None:
    import numpy as np
    import tensorforge as tg
    with tg.Graph("ops"):
        x = tg.placeholder("x", (2, 3))
        results = [x + 1, 1 + x, x - 1, 2 * x, x / 2, x ** 2, -x, abs(x), x == 0, x != 0, x < 1, x[0],
                   x.sum(axis=1), x.reshape(3, 2), x.T, x.transpose(1, 0), x.astype("float64")]
    assert all(isinstance(r, tg.Tensor) for r in results)
    f = tg.compile([x], results[-5:])
    outs = f(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert [o.shape for o in outs] == [(2,), (3, 2), (3, 2), (3, 2), (2, 3)]
    assert np.array_equal(outs[2], np.arange(6).reshape(2, 3).T)
