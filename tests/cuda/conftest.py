"""The CUDA target's tests run on a GPU where there is one, else in Numba's CUDA simulator
(``tests/conftest.py`` sets ``NUMBA_ENABLE_CUDASIM=1`` on machines without a GPU). The
simulator runs every CUDA thread as a Python thread, so the shapes here are tiny."""

from __future__ import annotations

import pytest

from s2s_ad import context


@pytest.fixture
def cuda_usable():
    """Skip unless CUDA kernels can run here (a GPU, or the simulator)."""
    usable, why = context.cuda_status()
    if not usable:
        pytest.skip(f"CUDA is not usable here: {why}")


@pytest.fixture
def gpu(cuda_usable):
    """GRAPH_MODE with device_target='GPU', restored afterwards."""
    old = context.get_context("mode"), context.get_context("device_target")
    context.set_context(mode=context.GRAPH_MODE, device_target="GPU")
    assert context.backend() == "cuda"
    yield
    context.set_context(mode=old[0], device_target=old[1])


@pytest.fixture
def built(monkeypatch):
    """The names of the programs built for the CUDA target during the test."""
    import s2s_ad.cuda

    names: list[str] = []
    build = s2s_ad.cuda.build

    def spy(program, fname, doc=None):
        names.append(fname)
        return build(program, fname, doc)

    monkeypatch.setattr(s2s_ad.cuda, "build", spy)
    return names
