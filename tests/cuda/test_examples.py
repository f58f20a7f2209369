"""Every script in examples/ runs with device_target='GPU' and prints the numbers it prints on
the CPU (to float32 rounding: summation order and math libraries differ in the last bit)."""

from __future__ import annotations

import contextlib
import io
import re
import runpy
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="the CUDA target needs numba-cuda")

import s2s_ad.cuda  # noqa: E402
from s2s_ad import context  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _run(script: Path) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(script), run_name="__main__")
    return out.getvalue()


# Scripts with command-line options that start processes of their own: dask_sweep.py starts a
# Dask cluster (tests/test_dask.py runs it; its workers pick their device themselves).
# train_digits.py trains a network for 20 epochs (tests/api/test_training.py runs a short version).
OWN_PROCESSES = {"dask_sweep.py", "train_digits.py"}


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py") if p.name not in OWN_PROCESSES))
def test_example_on_the_gpu_prints_the_cpu_numbers(name, gpu, monkeypatch):
    built = []
    build = s2s_ad.cuda.build
    monkeypatch.setattr(s2s_ad.cuda, "build", lambda *a: built.append(a[1]) or build(*a))
    try:
        on_gpu = _run(EXAMPLES / name)
        assert built, "no CUDA program was built"
        assert context.backend() == "cuda"
        # the same script where CUDA is not usable: it runs on the CPU (Numba)
        monkeypatch.setattr(context, "_cuda", (False, "the CPU reference run"))
        monkeypatch.setattr(context, "_warned_gpu", True)
        on_cpu = _run(EXAMPLES / name)
        assert context.backend() == "numba"
    finally:
        context.set_context(mode=context.GRAPH_MODE, device_target="GPU")
    assert re.sub(r"\s", "", NUMBER.sub("#", on_gpu)) == re.sub(r"\s", "", NUMBER.sub("#", on_cpu))
    gpu_numbers = [float(x) for x in NUMBER.findall(on_gpu)]
    cpu_numbers = [float(x) for x in NUMBER.findall(on_cpu)]
    assert gpu_numbers, on_gpu
    np.testing.assert_allclose(gpu_numbers, cpu_numbers, rtol=1e-6, atol=1e-7, err_msg=on_gpu + "\n" + on_cpu)
