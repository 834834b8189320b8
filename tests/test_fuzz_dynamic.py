"""The dynamic-batch fuzzer (tensorforge.fuzz.dynamic, ``tools/fuzz.py --dynamic-batch``): random
batch-leading graphs, built once by the LLVM backend and called with several batch sizes, agree
with the interpreter; and a backend that is wrong at one batch size is caught."""
from __future__ import annotations

import numpy as np
import pytest

from tensorforge.fuzz.dynamic import check_dynamic, dynamic_case

SIZES = (1, 3, 17, 64)


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORFORGE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TENSORFORGE_DYNAMIC_BATCH", raising=False)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_batch_leading_graphs_build_once_and_agree_at_every_size(seed):
    o = check_dynamic(seed, "llvm", SIZES)
    assert o.status == "ok", o.describe()


def test_the_graph_is_the_same_in_both_dtypes_and_keeps_the_batch_leading():
    for seed in range(20):
        a, b = dynamic_case(seed, "float32"), dynamic_case(seed, "float64")
        assert a.ops == b.ops and b.text().replace("float64", "float32") == a.text()
        np.testing.assert_array_equal(a.arrays(5)[0], b.arrays(5)[0])
        assert a.outputs[1].shape[0] is None      # logits (None, classes)


class _WrongAtOddBatches:
    """A backend whose float outputs are 1% off when the batch size is odd."""
    name = "wrong_at_odd_batches"

    def build(self, program, passes=None):
        from tensorforge.backends.interp import InterpretedFunction
        run = InterpretedFunction(program)

        def call(arrays):
            odd = arrays[0].shape[0] % 2 == 1
            return [o * np.asarray(1.01, o.dtype) if odd and o.dtype.kind == "f" else o for o in run(arrays)]
        return call


def test_a_backend_wrong_at_one_batch_size_is_reported():
    o = check_dynamic(0, _WrongAtOddBatches(), (2, 4, 3))
    assert o.status == "mismatch" and o.detail.startswith("batch 3"), o.describe()
