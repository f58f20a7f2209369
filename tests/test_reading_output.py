"""Reading the generated code: adjoint statements say which user line they differentiate
(one comment where the line changes), and a gradient keeps the user's name (``x_bar``) on the
whole cotangent, also where SymPy rewrote the cluster that computes it."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from s2s_ad import cli, context, ops
from s2s_ad.api import generated_source
from s2s_ad.ir import Aval

SOURCE = """\
from s2s_ad import ops


def two_uses(x, y):
    return x * y, ops.sin(x)


def chain(x):
    y = ops.sin(x) * x
    z = ops.exp(y) + y * y
    return z * 2.0


def summed(x):
    y = ops.exp(x) * x * 1.0
    s = ops.sum(y)
    return y * s
"""

F32 = np.dtype(np.float32)


@pytest.fixture
def model(tmp_path: Path):
    path = tmp_path / "model.py"
    path.write_text(SOURCE)
    spec = importlib.util.spec_from_file_location("_reading_output_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


def comments(src: str) -> list[str]:
    return [ln.strip() for ln in src.splitlines() if ln.strip().startswith("# ")]


@pytest.mark.parametrize("target", ["numpy", "numba"])
def test_the_adjoint_block_says_which_line_it_differentiates(model, target):
    _, m = model
    src = generated_source(ops.GradOperation()(m.chain), Aval((5,), F32), target=target)
    got = comments(src)
    # the primal block, then the adjoint block; one comment per change of line, never repeated
    # (a fused loop of the numba source computes both: it carries the comment of its last member)
    if target == "numpy":
        assert got[0] == "# model.py:9: y = ops.sin(x) * x"
    assert "# adjoint of model.py:11: return z * 2.0" in got
    assert all(a != b for a, b in zip(got, got[1:]))
    first_adjoint = next(i for i, c in enumerate(got) if c.startswith("# adjoint of"))
    assert all(c.startswith("# adjoint of") for c in got[first_adjoint:])
    assert not any(c.startswith("# adjoint of") for c in comments(generated_source(m.chain, Aval((5,), F32))))


def test_a_gradient_with_two_contributions_keeps_its_name(model):
    # x reaches both outputs: its cotangent is a sum of two terms, named x_bar as a whole
    _, m = model
    spec = Aval((3,), F32)
    src = generated_source(ops.GradOperation(get_all=True, sens_param=True)(m.two_uses), spec, spec, (spec, spec))
    assert "    # adjoint of model.py:5: return x * y, ops.sin(x)" in src
    assert re.search(r"^    x_bar = .*cos\(x\)", src, re.M)
    assert "return (x_bar, y_bar)" in src


def test_a_gradient_sympy_rewrote_keeps_its_name(model):
    # the whole gradient of chain is one SymPy cluster, rewritten and cse'd: still x_bar
    _, m = model
    src = generated_source(ops.GradOperation()(m.chain), Aval((5,), F32))
    assert "return (x_bar,)" in src
    ns: dict = {"np": np}
    exec(src, ns)  # noqa: S102 - the generated source
    x = np.linspace(-1, 1, 5).astype(np.float32)
    y = np.sin(x) * x
    dy = np.cos(x) * x + np.sin(x)
    want = 2 * (np.exp(y) + 2 * y) * dy
    np.testing.assert_allclose(ns["grad_chain"](x)[0], want, rtol=1e-5)


def test_show_prints_adjoint_comments_and_names(model, capsys):
    path, _ = model
    code = cli.main(["show", f"{path}:two_uses", "--args", "float32[3], float32[3]", "--get-all", "--sens"])
    out = capsys.readouterr().out
    assert code == 0
    assert "# adjoint of model.py:5: return x * y, ops.sin(x)" in out
    assert "return (x_bar, y_bar)" in out
    sys.modules.pop("_s2s_target_model", None)


def test_cuda_source_has_adjoint_comments(model):
    _, m = model
    src = generated_source(ops.GradOperation()(m.chain), Aval((5,), F32), target="cuda")
    assert "# adjoint of model.py:" in src and "x_bar" in src


def test_with_algebraic_simplification_the_users_lines_stay_in_the_primal_block(model):
    # SymPy rewrites a cluster holding both the user's equations and adjoint ones: each
    # rewritten output keeps the line and the role of the equation that computed it.
    _, m = model
    old = context.get_context("algebraic_simplification")
    context.set_context(algebraic_simplification=True)
    try:
        src = generated_source(ops.GradOperation()(m.summed), Aval((3,), F32))
    finally:
        context.set_context(algebraic_simplification=old)
    lines = [ln.strip() for ln in src.splitlines()]
    y_at = next(i for i, ln in enumerate(lines) if ln.startswith("y = "))
    comment = next(ln for ln in reversed(lines[:y_at]) if ln.startswith("#"))
    assert comment == "# model.py:15: y = ops.exp(x) * x * 1.0"
    ret_at = lines.index("return (x_bar,)")
    assert next(ln for ln in reversed(lines[:ret_at]) if ln.startswith("#")).startswith("# adjoint of model.py:")
