import os
import shutil
import sys
import tempfile

# The tests compile into a disk cache of their own (one per session), never the user's; with
# pytest-xdist (``-n``), one per worker process.
if "S2S_AD_CACHE_DIR" not in os.environ:
    os.environ["S2S_AD_CACHE_DIR"] = os.environ["S2S_AD_TEST_CACHE_ROOT"] = tempfile.mkdtemp(prefix="s2s_ad_test_cache_")
_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and os.environ.get("S2S_AD_TEST_CACHE_ROOT") == os.environ["S2S_AD_CACHE_DIR"]:
    os.environ["S2S_AD_CACHE_DIR"] = os.path.join(os.environ["S2S_AD_TEST_CACHE_ROOT"], _worker)
    os.makedirs(os.environ["S2S_AD_CACHE_DIR"], exist_ok=True)
# GRAPH_MODE tests check the compiled code: the first call compiles (no numpy tier first);
# tests/test_tiered.py selects the background tier itself.
os.environ.setdefault("S2S_AD_COMPILE", "blocking")
# Every program is checked (s2s_ad.ir.check_program) before and after each optimiser pass.
os.environ.setdefault("S2S_AD_CHECK_IR", "1")

# device_target="GPU" and the CUDA tests (tests/cuda) run on a GPU where there is one, else in
# Numba's CUDA simulator, which must be enabled before numba is first imported.
if "NUMBA_ENABLE_CUDASIM" not in os.environ and not (os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi")):
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
    # The simulator runs a block's threads as Python threads and polls them at syncthreads;
    # a short GIL switch interval makes those barriers about ten times faster.
    sys.setswitchinterval(1e-4)

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


@pytest.fixture(autouse=True)
def _restore_context():
    """Every test leaves the context (mode, device target, compile mode, ...) as it found it, so
    that no test depends on what an earlier one set."""
    saved = dict(context._state)
    yield
    context._state.clear()
    context._state.update(saved)
    context._changed()  # keys and fast calls made under the test's context
