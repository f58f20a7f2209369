"""The differential fuzzer's fixed-seed batch (``_gen.py`` makes the programs, ``_check.py``
checks them): PYNATIVE with every check, a smaller GRAPH batch (Numba compiles each program)
with vjp and jvp compared against PYNATIVE. Thousands of programs: ``python -m tests.fuzz.run``
(docs/architecture.md, "Testing")."""

from __future__ import annotations

import numpy as np
import pytest
from _check import Mismatch, checks, run
from _gen import Generator, Program, Ref, load, make

from s2s_ad import primitives as table

PYNATIVE_PROGRAMS = 150
GRAPH_PROGRAMS = 8


def _check(seed: int, mode: str) -> None:
    prog, xs = make(seed)
    load(prog)
    base = run(prog, xs, "pynative") if mode == "graph" else None
    if base is not None and base.failure is not None:
        pytest.fail(f"[pynative] {base.failure}\n\n{prog.describe()}")
    out = run(prog, xs, mode, base, full=mode == "pynative")
    if out.failure is not None:
        pytest.fail(f"[{mode}] {out.failure}\n\n{prog.describe()}")


@pytest.mark.parametrize("seed", range(PYNATIVE_PROGRAMS))
def test_fuzz_pynative(seed):
    _check(seed, "pynative")


@pytest.mark.parametrize("seed", range(10_000, 10_000 + GRAPH_PROGRAMS))
def test_fuzz_graph(seed):
    _check(seed, "graph")


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
