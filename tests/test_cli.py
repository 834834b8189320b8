"""The command line's main job, run as a user would (a subprocess)."""
import re
import subprocess
import sys

import pytest


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tensorforge.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_main_job_trains_an_mlp_on_digits_to_at_least_95_percent():
    proc = run_cli("train", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    acc = float(re.search(r"test accuracy: ([0-9.]+)", proc.stdout).group(1))
    assert acc >= 0.95, proc.stdout


@pytest.mark.parametrize("args, culprit", [
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--optimizer", "bogus"], "--optimizer"),
    (["train", "--backend", "cuda"], "--backend"),
])
def test_bad_options_give_one_clear_line_and_no_traceback(args, culprit):
    proc = run_cli(*args)
    assert proc.returncode != 0
    assert culprit in proc.stderr
    assert "Traceback" not in proc.stderr


def test_triton_without_a_gpu_or_the_interpreter_is_a_clear_error():
    import os
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    proc = subprocess.run([sys.executable, "-m", "tensorforge.cli", "train", "--backend", "triton"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0
    assert "GPU" in proc.stderr and "TRITON_INTERPRET=1" in proc.stderr
    assert "Traceback" not in proc.stderr
