"""The differential fuzzer's fixed-seed batch (``_gen.py`` makes the programs, ``_check.py``
checks them): PYNATIVE with every check, a smaller GRAPH batch (Numba compiles each program)
with vjp and jvp compared against PYNATIVE. Thousands of programs: ``python -m tests.fuzz.run``
(docs/architecture.md, "Testing")."""

from __future__ import annotations

import numpy as np
import pytest
from _check import Mismatch, checks, run
from _gen import CONTROL_MARGIN, Generator, Program, Ref, Reject, load, make

from s2s_ad import primitives as table

PYNATIVE_PROGRAMS = 150
GRAPH_PROGRAMS = 8
CONTROL_PYNATIVE_PROGRAMS = 8  # with control flow (if/for/while/early return)
CONTROL_GRAPH_PROGRAMS = 2


def _check(seed: int, mode: str, control: bool = False, full: bool | None = None) -> None:
    prog, xs = make(seed, control=control)
    load(prog)
    base = run(prog, xs, "pynative", full=bool(full)) if mode == "graph" else None
    if base is not None and base.failure is not None:
        pytest.fail(f"[pynative] {base.failure}\n\n{prog.describe()}")
    out = run(prog, xs, mode, base, full=mode == "pynative" if full is None else full)
    if out.failure is not None:
        pytest.fail(f"[{mode}] {out.failure}\n\n{prog.describe()}")


@pytest.mark.parametrize("seed", range(PYNATIVE_PROGRAMS))
def test_fuzz_pynative(seed):
    _check(seed, "pynative")


@pytest.mark.parametrize("seed", range(10_000, 10_000 + GRAPH_PROGRAMS))
def test_fuzz_graph(seed):
    _check(seed, "graph")


@pytest.mark.parametrize("seed", range(20_000, 20_000 + CONTROL_PYNATIVE_PROGRAMS))
def test_fuzz_control_pynative(seed):
    _check(seed, "pynative", control=True)


@pytest.mark.parametrize("seed", range(30_000, 30_000 + CONTROL_GRAPH_PROGRAMS))
def test_fuzz_control_graph(seed):
    _check(seed, "graph", control=True, full=False)


# ----------------------------------------------------------------------------- the fuzzer itself
def test_generation_is_deterministic():
    a, xa = make(7)
    b, xb = make(7)
    assert a.source == b.source
    for x, y in zip(xa, xb):
        np.testing.assert_array_equal(x, y)
    assert make(8)[0].source != a.source


def test_programs_cover_the_op_table():
    """Over a small batch the generator uses every kind of op it knows."""
    seen: set[str] = set()
    text = ""
    for seed in range(150):
        g = Generator(seed)
        prog = g.generate()
        seen.update(prog.ops)
        text += prog.source
    want = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "exp", "log", "sqrt", "sin", "tanh", "sigmoid"}
    want |= {"relu", "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "matmul", "reshape", "transpose"}
    want |= {"getitem", "where", "stop"}
    assert want <= seen, f"never generated: {sorted(want - seen)}"
    for form in ("keepdims=True", "None", "...", "ops.select(", " > ", "ops.less(", "** -"):
        assert form in text, form


def test_control_flow_is_drawn_only_with_the_flag():
    """Without ``control`` the programs are straight-line (and those of earlier versions); with
    it, a batch draws every region kind: if, ternary, short and long for, while, early return."""
    text = ""
    for seed in range(60):
        assert "if " not in make(seed)[0].source.split("def loss")[0]
        text += make(seed, control=True)[0].source.split("def loss")[0]
    for form in ("    if ", " if ", "    else:", "while (", " and ", "for i", "    return ", ".sum() "):
        assert form in text, form
    assert any(f"range({n})" in text for n in (2, 3)) and any(f"range({n})" in text for n in (5, 6, 8))


def test_control_inputs_keep_the_branches():
    """At the drawn inputs every test of an if/while is CONTROL_MARGIN away from switching."""
    for seed in range(30):
        prog, xs = make(seed, control=True)
        ns: dict = {}
        exec(prog.source[prog.source.index("def f_ref") :], ns)
        ns["f_ref"](Ref(check=True), *xs)  # raises Reject when too close
    with pytest.raises(Reject):
        Ref(check=True).gt(np.float64(1.0), 1.0 + CONTROL_MARGIN / 2)
    assert Ref(check=True).lt(np.float64(1.0), 1.0 + 2 * CONTROL_MARGIN)


def test_inputs_are_away_from_kinks():
    """Every program of a batch evaluates at its inputs with every margin wide."""
    for seed in range(40):
        prog, xs = make(seed)
        ns: dict = {}
        exec(prog.source[prog.source.index("def f_ref") :], ns)
        ns["f_ref"](Ref(check=True), *xs)  # raises Reject when too close


MEAN_PROGRAM = """from s2s_ad import grad, nn, ops


def f(x0):
    t0 = ops.sin(x0) * x0
    return ops.reduce_mean(t0, 1, False)


def loss(x0, w):
    return ops.reduce_sum(f(x0) * w)


def grad_dot(x0, w, u0):
    g0 = grad(loss)(x0, w)
    return ops.reduce_sum(g0 * u0)


class Net(nn.Cell):
    def construct(self, x0):
        return f(x0)


def f_ref(R, x0):
    t0 = R.v(R.sin(x0) * x0)
    return R.mean(t0, 1, False)
"""


@pytest.mark.parametrize("wrong", [False, True])
def test_a_wrong_derivative_rule_is_caught(monkeypatch, pynative, wrong):
    """The checks pass with the right rules and fail when a derivative rule is wrong:
    reduce_mean's vjp without its 1/n."""
    if wrong:
        monkeypatch.setattr(table.OPS["reduce_mean"], "vjp", table.OPS["reduce_sum"].vjp)
    prog = Program(-1 - wrong, MEAN_PROGRAM, [(3, 4)], (3,), ["mul", "reduce_mean"], [(0.5, 1.5)])
    load(prog)  # a module of its own: nothing compiled before the change is reused
    xs = [np.linspace(0.5, 1.5, 12).reshape(3, 4)]
    if not wrong:
        checks(prog, xs, "pynative", full=True)
        return
    with pytest.raises(Mismatch, match="vjp"):
        checks(prog, xs, "pynative", full=False)
