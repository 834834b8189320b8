"""Shared pytest set-up for the tensorforge test suite.

TRITON_INTERPRET is set at import, before any test module can import triton, so
that the Triton back end's tests run on the CPU interpreter when no GPU is used.
"""
from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh, seeded generator per test: every test sees the same numbers."""
    return np.random.default_rng(0)
