"""Smoke test of the benchmark workloads: s2s_ad agrees with the hand-written numpy gradients.

Only W1, W2 (n=10) and W4 (small n) are checked, and no peer framework is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import workloads  # noqa: E402

CASES = [
    v for v in workloads.variants(["W1", "W2", "W4"], quick=True) if v.workload != "W2" or v.name.startswith("n=10 ")
]


@pytest.mark.parametrize("variant", CASES, ids=lambda v: v.key)
def test_s2s_ad_matches_numpy(variant: workloads.Variant, graph: None) -> None:
    ours = variant.builders["s2s_ad"]()
    reference = variant.builders[workloads.REFERENCE]()
    ok, err = workloads.agree(workloads.as_arrays(ours.grad()), workloads.as_arrays(reference.grad()), variant.rtol())
    assert ok, f"{variant.key}: relative error {err:.3g} > {variant.rtol():g}"
    if ours.forward is not None and reference.forward is not None:
        ok, err = workloads.agree(
            workloads.as_arrays(ours.forward()), workloads.as_arrays(reference.forward()), variant.rtol()
        )
        assert ok, f"{variant.key} forward: relative error {err:.3g}"


def test_every_workload_has_every_system() -> None:
    for v in workloads.variants(quick=True):
        assert set(v.builders) == set(workloads.SYSTEMS), v.key
