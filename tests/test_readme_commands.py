"""Every command the README shows runs as shown.

The commands are read from README.md itself: the `$ ` lines of ```console blocks (the lines after
one, up to the next, are its printed output) and the lines of ```bash blocks. Each runs in a
shell, in a temporary folder holding a copy of examples/data (the README's paths are relative to
the repository), with the installed ``tensorforge`` command of this Python. It must exit with 0,
or with 2 where the README shows an "Error: " line, and print the README's key lines: those with
no measured number in them (no decimal point), which do not change from machine to machine.

Not run, with the reason: ``pip install`` itself (the tests run in an installed environment; a
line ``pip install X && COMMAND`` runs COMMAND), the test suite (``pytest``), and ``mpiexec``
with more processes than TENSORFORGE_README_MPI_PROCESSES (default 2) or without MPI.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SLOW_COMMANDS = ("tensorforge train", "tensorforge bench", "mpiexec")
# lines whose content depends on the machine: the peers a benchmark finds installed
MACHINE_DEPENDENT = (re.compile(r" per system on "),)


@dataclass
class Command:
    line: str                         # as the README shows it
    expected: list = field(default_factory=list)
    number: int = 0                   # its place in the README (commands run in this order)


def readme_commands(text: str) -> list[Command]:
    commands, kind, current = [], None, None
    for line in text.splitlines():
        fence = re.match(r"^```(\w*)\s*$", line)
        if fence:
            kind = None if kind is not None else (fence.group(1) or "text")
            current = None
            continue
        if kind == "console":
            if line.startswith("$ "):
                current = Command(line[2:].strip(), number=len(commands))
                commands.append(current)
            elif current is not None:
                current.expected.append(line)
        elif kind == "bash" and line.strip() and not line.lstrip().startswith("#"):
            commands.append(Command(line.split("  #")[0].strip(), number=len(commands)))
    return commands


def runnable(cmd: Command) -> tuple[str | None, str | None]:
    """(the shell line to run, or None; the reason when it is not run)."""
    line = cmd.line
    if line.startswith("pip install"):
        if "&&" not in line:
            return None, "installing is what the test environment did already"
        line = line.split("&&", 1)[1].strip()
    if line.startswith("pytest"):
        return None, "the test suite itself"
    mpi = re.match(r"mpiexec -n (\d+) ", line)
    if mpi:
        allowed = int(os.environ.get("TENSORFORGE_README_MPI_PROCESSES", "2"))
        if int(mpi.group(1)) > allowed:
            return None, f"needs {mpi.group(1)} MPI processes (allowed: {allowed})"
        if shutil.which("mpiexec") is None and not _python_mpiexec():
            return None, "no MPI here (pip install '.[distributed]')"
    return line, None


def _python_mpiexec() -> bool:
    return (Path(sys.executable).parent / "mpiexec").exists()


def key_lines(expected: list[str]) -> list[str]:
    """The printed lines every machine shows: no measured number (decimal point), no '...'."""
    keys = []
    for line in expected:
        text = line.strip()
        if not text or text == "..." or re.search(r"\d\.\d", text) or not text.strip("- "):
            continue
        if any(p.search(text) for p in MACHINE_DEPENDENT):
            continue
        keys.append(_words(text))
    return keys


def _words(text: str) -> str:
    """Runs of spaces folded: a table's column widths follow its longest entry."""
    return " ".join(text.split())


COMMANDS = readme_commands(README.read_text())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One folder for the whole README: later commands use files earlier ones wrote (mlp.json)."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples" / "data", folder / "examples" / "data")
    return folder


def _env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    # the worktree's sources, when the tests run from one with PYTHONPATH=src, as absolute paths
    if env.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep))
    return env


def test_the_readme_has_commands_to_run():
    shown = [c.line for c in COMMANDS]
    assert any(c.startswith("tensorforge train") for c in shown), shown
    assert any(c.startswith("tensorforge predict") for c in shown), shown
    assert sum(runnable(c)[0] is not None for c in COMMANDS) >= 10


def _marks(cmd: Command):
    line = runnable(cmd)[0] or cmd.line
    if any(e.startswith("Error: ") for e in cmd.expected):
        return []                                         # refused at once
    return [pytest.mark.slow] if any(line.startswith(s) or f"&& {s}" in line for s in SLOW_COMMANDS) else []


@pytest.mark.parametrize("cmd", [pytest.param(c, id=f"{c.number:02d} {c.line[:60]}", marks=_marks(c))
                                 for c in COMMANDS])
def test_readme_command_runs_as_shown(cmd, workdir):
    line, reason = runnable(cmd)
    if line is None:
        pytest.skip(reason)
    _run_earlier_commands(cmd, workdir)
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", line] if "|" not in line else ["bash", "-c", line],
                          cwd=workdir, env=_env(), capture_output=True, text=True, timeout=900)
    shows_error = any(e.startswith("Error: ") for e in cmd.expected)
    assert proc.returncode == (2 if shows_error else 0), (line, proc.stdout[-3000:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    printed = {_words(text) for text in (proc.stdout + proc.stderr).splitlines()}
    missing = [k for k in key_lines(cmd.expected) if k not in printed]
    assert not missing, (line, missing, proc.stdout[-3000:])


def _run_earlier_commands(cmd: Command, workdir: Path) -> None:
    """Commands are independent tests (and may run on other pytest-xdist workers): a command that
    reads a file an earlier README command writes (show mlp.json, predict flowers_model) first
    runs that command here, once per folder."""
    for earlier in COMMANDS[:cmd.number]:
        line = runnable(earlier)[0]
        if line is None:
            continue
        made = [w for w in shlex.split(line) if re.search(r"\.(json|tgz)$|_model$", w) and
                ("-o" in line.split() or "--save" in line.split())]
        wanted = [w for w in made if w in cmd.line.split()]
        if wanted and not all((workdir / w).exists() for w in wanted):
            subprocess.run(["bash", "-c", line], cwd=workdir, env=_env(), capture_output=True, timeout=900,
                           check=True)
