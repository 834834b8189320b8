"""tg.config: one place for every TENSORFORGE_* setting, checked values, and the log switch."""
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tensorforge as tg
from tensorforge import config, runtime

SRC = Path(tg.__file__).resolve().parent            # the package under test (installed or not)
ROOT = Path(__file__).resolve().parents[1]           # the repository: docs/ live here


def test_every_environment_variable_in_the_source_is_a_documented_setting():
    used = set()
    for path in SRC.rglob("*.py"):
        used |= set(re.findall(r"TENSORFORGE_[A-Z_]+", path.read_text()))
    declared = {s.env for s in config.SETTINGS.values()}
    assert used <= declared, f"undeclared settings: {sorted(used - declared)}"
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for s in config.SETTINGS.values():
        assert s.env in doc and f"`{s.name}`" in doc


def test_the_configuration_page_holds_the_current_table():
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert config.describe() in doc, "run: python -c 'import tensorforge as tg; print(tg.config.describe())'"


def test_precedence_override_then_environment_then_default(monkeypatch):
    monkeypatch.delenv("TENSORFORGE_MPI_TIMEOUT", raising=False)
    assert config.get("mpi_timeout") == 300.0
    monkeypatch.setenv("TENSORFORGE_MPI_TIMEOUT", "12.5")
    assert config.get("mpi_timeout") == 12.5
    with config.override(mpi_timeout=3):
        assert config.get("mpi_timeout") == 3.0
    assert config.get("mpi_timeout") == 12.5


@pytest.mark.parametrize("var,value,words", [
    ("TENSORFORGE_MPI_TIMEOUT", "soon", "number of seconds"),
    ("TENSORFORGE_VECTOR_BITS", "300", "128, 256 or 512"),
    ("TENSORFORGE_TRITON_TUNE", "maybe", "true/false"),
    ("TENSORFORGE_LOG", "everything", "unknown topic"),
])
def test_a_bad_environment_value_names_the_variable(monkeypatch, var, value, words):
    monkeypatch.setenv(var, value)
    name = next(s.name for s in config.SETTINGS.values() if s.env == var)
    with pytest.raises(ValueError, match=var) as e:
        config.get(name)
    assert words in str(e.value)


def test_unknown_setting_lists_the_valid_ones():
    with pytest.raises(KeyError, match="num_threads"):
        config.get("threads")


def test_cache_dir_defaults_to_the_platform_cache_folder(monkeypatch):
    import platformdirs
    monkeypatch.delenv("TENSORFORGE_CACHE_DIR", raising=False)
    assert runtime.cache_dir() == Path(platformdirs.user_cache_dir("tensorforge", appauthor=False))
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", "/tmp/somewhere")
    assert runtime.cache_dir() == Path("/tmp/somewhere")


def test_log_switch_shows_recompilations(caplog):
    config.log("compile")
    try:
        assert logging.getLogger("tensorforge.compile").level == logging.INFO
        assert config.get("log") == ("compile",)
    finally:
        config.log()
    assert config.get("log") == ()


def test_log_topics_from_the_environment_reach_stderr():
    code = ("import numpy as np, tensorforge as tg\n"
            "g = tg.Graph()\n"
            "with g:\n"
            "    x = tg.placeholder('x', (None, 3)); y = tg.sum(tg.exp(x))\n"
            "f = tg.compile([x], [y], backend='interp')\n"
            "f(np.ones((2, 3), np.float32)); f(np.ones((4, 3), np.float32))\n")
    env = dict(os.environ, TENSORFORGE_LOG="all")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "tensorforge.compile:" in out.stderr


def test_version_has_one_source():
    from importlib.metadata import PackageNotFoundError, version
    from tensorforge._version import __version__
    assert tg.__version__ == __version__
    try:
        assert version("tensorforge") == __version__
    except PackageNotFoundError:
        pytest.skip("tensorforge is not installed (run from a source tree)")


def test_package_ships_type_information():
    assert (SRC / "py.typed").exists()
