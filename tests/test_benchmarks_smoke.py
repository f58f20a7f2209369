"""Smoke test of the benchmark workloads: s2s_ad agrees with the hand-written numpy gradients.

Only W1, W2 (n=10) and W4 (small n) are checked compiled, and W7-W9, W11 and W12 (small sizes) in PYNATIVE
mode (the same generated code, run by numpy: their Numba compiles take too long for the suite);
no peer framework is needed.
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


NUMPY_CASES = workloads.variants(["W7", "W8", "W9", "W11", "W12"], quick=True)


@pytest.mark.parametrize("variant", CASES, ids=lambda v: v.key)
def test_s2s_ad_matches_numpy(variant: workloads.Variant, graph: None) -> None:
    check(variant)


@pytest.mark.parametrize("variant", NUMPY_CASES, ids=lambda v: v.key)
def test_s2s_ad_matches_numpy_pynative(variant: workloads.Variant) -> None:
    from s2s_ad import context

    old = context.get_context("mode")
    try:
        check(variant, context.PYNATIVE_MODE)
    finally:
        context.set_context(mode=old)


def check(variant: workloads.Variant, mode: int | None = None) -> None:
    """s2s_ad's gradient (and forward value) agree with the hand-written ones; ``mode``, when
    given, is set after the builder (which selects GRAPH_MODE)."""
    from s2s_ad import context

    ours = variant.builders["s2s_ad"]()
    if mode is not None:
        context.set_context(mode=mode)
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
