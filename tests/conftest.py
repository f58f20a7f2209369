import os
import tempfile

# The tests compile into a disk cache of their own (one per session), never the user's.
os.environ.setdefault("S2S_AD_CACHE_DIR", tempfile.mkdtemp(prefix="s2s_ad_test_cache_"))

import pytest  # noqa: E402

from s2s_ad import context  # noqa: E402


@pytest.fixture
def pynative():
    old = context.get_context("mode")
    context.set_context(mode=context.PYNATIVE_MODE)
    yield
    context.set_context(mode=old)


@pytest.fixture
def graph():
    old = context.get_context("mode")
    context.set_context(mode=context.GRAPH_MODE)
    yield
    context.set_context(mode=old)


@pytest.fixture(params=["python", "numba"])
def mode(request):
    """Run a test under PYNATIVE (plain numpy) and GRAPH (Numba) mode."""
    old = context.get_context("mode")
    context.set_context(mode=context.PYNATIVE_MODE if request.param == "python" else context.GRAPH_MODE)
    yield request.param
    context.set_context(mode=old)
