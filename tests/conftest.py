import pytest

from s2s_ad import context


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
