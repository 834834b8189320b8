"""docs/api.md is generated from the docstrings and must be current; every public name has a docstring."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_api_reference", ROOT / "tools" / "make_api_reference.py")
make_api_reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_api_reference)


def test_api_reference_is_current():
    assert (ROOT / "docs" / "api.md").read_text() == make_api_reference.render(), \
        "run: python tools/make_api_reference.py"


def test_every_public_name_has_a_docstring():
    missing = [line for line in make_api_reference.render().splitlines() if "(no docstring)" in line]
    assert not missing, "\n".join(missing)
