"""A module edited after it was imported: s2s_ad reads the file at the function's old line, so
it must notice that the text there is not the function it runs (not compile another one)."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

import s2s_ad
from s2s_ad import SourceUnavailableError

MODULE = """import numpy as np


def model(p, t):
    return p[0] * np.sin(t)


def sse(p, t):
    return np.sum(model(p, t) ** 2)
"""


@pytest.fixture
def edmod(tmp_path, monkeypatch):
    path = tmp_path / "edmod_stale.py"
    path.write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("edmod_stale", None)
    module = importlib.import_module("edmod_stale")
    yield module, path
    sys.modules.pop("edmod_stale", None)


def test_an_unchanged_module_compiles(edmod, pynative):
    module, _ = edmod
    value, grad = s2s_ad.value_and_grad(module.sse)(np.array([2.0]), np.linspace(0, 1, 3))
    t = np.linspace(0, 1, 3)
    np.testing.assert_allclose(value, np.sum((2.0 * np.sin(t)) ** 2))
    np.testing.assert_allclose(grad, [2 * 2.0 * np.sum(np.sin(t) ** 2)])


def test_a_module_edited_after_import_is_an_error_not_another_function(edmod, pynative):
    module, path = edmod
    path.write_text(MODULE.replace("import numpy as np\n", "import numpy as np\n\n\n\n\n", 1))
    with pytest.raises(SourceUnavailableError, match=r"source of `sse` changed after it was imported.*def model"):
        s2s_ad.value_and_grad(module.sse)(np.array([2.0]), np.linspace(0, 1, 3))


def test_a_changed_signature_at_the_same_line_is_an_error(edmod, pynative):
    module, path = edmod
    path.write_text(MODULE.replace("def sse(p, t):", "def sse(q, t):"))
    with pytest.raises(SourceUnavailableError, match=r"def sse\(q, t\)`, not `def sse\(p, t\)"):
        s2s_ad.grad(module.sse)(np.array([2.0]), np.linspace(0, 1, 3))
