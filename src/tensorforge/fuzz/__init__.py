"""Differential fuzzing of the backends: random graphs, each backend against a float64 reference.

``generate`` (generate.py) builds a random graph from a seed; ``check_case`` (check.py) runs it on
the interpreter in float64 (the reference) and on each backend in float32, and classifies the
outcome; ``fuzz`` runs many seeds and returns a ``Report``. ``tools/fuzz.py`` is the command
line front end (progress bar, crash isolation in subprocesses), tests/test_fuzz.py the CI test.
``dynamic`` (dynamic.py) checks one build for every batch size: batch-leading graphs called with
many batch sizes (``tools/fuzz.py --dynamic-batch``, tests/test_fuzz_dynamic.py).

``KNOWN_BUGS`` switches off the categories of generated code that hit bugs being fixed
elsewhere: delete an entry once its fix is merged and the fuzzer covers that category again.
"""
from __future__ import annotations

from .generate import FEATURES, Case, generate, registry_ops
from .check import Outcome, Report, check_case, features_for, fuzz, shrink, KNOWN_BUGS

__all__ = ["FEATURES", "KNOWN_BUGS", "Case", "Outcome", "Report", "check_case", "features_for", "fuzz",
           "generate", "registry_ops", "shrink"]
