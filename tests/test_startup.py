"""Start-up: ``import s2s_ad`` leaves SymPy and Numba unimported until a program needs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, cwd: Path | None = None, **env: str) -> str:
    """Run ``code`` in a fresh process (from a file in ``cwd`` when given: s2s_ad reads the source)."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    if cwd is None:
        argv = [sys.executable, "-c", code]
    else:
        (cwd / "main.py").write_text(code)
        argv = [sys.executable, str(cwd / "main.py")]
    r = subprocess.run(argv, capture_output=True, text=True, env=full, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_import_loads_neither_sympy_nor_numba() -> None:
    out = _run(
        "import sys, s2s_ad, s2s_ad.primitives, s2s_ad.opt, s2s_ad.ad.reverse, s2s_ad.ad.forward\n"
        "print(sorted(m for m in ('sympy', 'numba') if m in sys.modules))"
    )
    assert out.strip() == "[]"


def test_sympy_loads_when_a_derivative_is_built(tmp_path: Path) -> None:
    # the deferred formulas and heads of the op table resolve on first use: a gradient of
    # sigmoid (a custom head) and exp (SymPy's own) is right
    out = _run(
        "import sys, numpy as np, s2s_ad\n"
        "from s2s_ad import ops\n"
        "s2s_ad.set_context(mode=s2s_ad.PYNATIVE_MODE)\n"
        "def f(x):\n"
        "    return (ops.sigmoid(x) * ops.exp(x)).sum()\n"
        "x = np.linspace(-1, 1, 5)\n"
        "g = s2s_ad.grad(f)(s2s_ad.Tensor(x)).asnumpy()\n"
        "s = 1 / (1 + np.exp(-x))\n"
        "print('sympy' in sys.modules, np.allclose(g, s * (1 - s) * np.exp(x) + s * np.exp(x)))",
        cwd=tmp_path,
        S2S_AD_CACHE_DIR=str(tmp_path / "cache"),
    )
    assert out.split() == ["True", "True"]


def test_op_table_heads_resolve() -> None:
    from s2s_ad import primitives, symbolic_heads

    assert primitives.Sigmoid is symbolic_heads.Sigmoid  # the old import path still works
    heads = primitives.sympy_heads()
    assert heads[symbolic_heads.Sigmoid] == "sigmoid" and heads[symbolic_heads.Abs] == "abs"
