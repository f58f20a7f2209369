"""IEEE special values on the CUDA target: every elementwise op of the table on inf, -inf,
nan, ±0, overflowing and out-of-domain arguments equals numpy's evaluation (the check of
``tests/ops/test_special_values.py`` for the numpy and Numba backends)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("numba_cuda", reason="the CUDA target needs numba-cuda")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from _special import assert_ieee_equal, every_op, reference  # noqa: E402

from s2s_ad.runtime import Compiled  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy warns of the very values tested


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_elementwise_special_values(dtype, cuda_usable):
    prog, xs, spans = every_op(dtype)
    outs = Compiled(prog, "cuda")(xs)
    for (op, a, b), out in zip(spans, outs):
        # the device's libm may differ from numpy's by a few ulp more than the CPU's
        assert_ieee_equal(out.asnumpy(), reference(op, xs[a:b]), f"{op.name} (cuda, {dtype})", ulps=16)
