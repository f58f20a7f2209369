"""check_program on hand-built IR: a well-formed program passes, and each broken invariant is
reported with the pass, the equation and the problem."""

from __future__ import annotations

import numpy as np
import pytest

from s2s_ad.ir import Aval, Builder, Eqn, IRError, Lit, Program, Var, check_program

F32 = np.dtype(np.float32)


def program(build) -> Program:
    """A one-argument program ``x: f32[3]`` whose equations ``build(b, x)`` appends and whose
    output it returns."""
    x = Var(Aval((3,), F32), "x")
    b = Builder()
    out = build(b, x)
    return Program("p", [x], 1, ("tuple", (None,)), [], [], b.eqns, [out], None)


def good(b, x):
    y = b.bind1("sin", x)
    return b.bind1("mul", y, Lit(2.0, F32))


def test_a_well_formed_program_passes():
    check_program(program(good))


def test_use_before_definition():
    p = program(good)
    p.eqns.reverse()
    with pytest.raises(IRError, match=r"after cse: p: equation 0 \(mul\): input .* used before it is defined"):
        check_program(p, "after cse")


def test_a_variable_defined_twice():
    p = program(good)
    e = p.eqns[0]
    p.eqns.append(Eqn("cos", [p.invars[0]], e.outs, {}))
    with pytest.raises(IRError, match="defined twice"):
        check_program(p)


def test_an_output_whose_aval_differs_from_the_rule():
    p = program(good)
    p.eqns[1].outs[0].aval = Aval((3,), np.dtype(np.float64))
    with pytest.raises(IRError, match=r"equation 1 \(mul\): output .* is f64\[3\] where the op gives f32\[3\]"):
        check_program(p)


def test_inputs_the_shape_rule_rejects():
    p = program(good)
    p.eqns[1].ins[1] = Var(Aval((4,), F32))
    with pytest.raises(IRError, match="used before it is defined"):
        check_program(p)
    p = program(good)
    z = Var(Aval((4,), F32), "z")
    p.invars.append(z)
    p.consts.append(np.zeros(4, np.float32))
    p.eqns[1].ins[1] = z
    with pytest.raises(IRError, match="shape rule rejects"):
        check_program(p)


def test_an_unknown_op_and_an_undefined_output():
    p = program(good)
    p.eqns[0].op = "no_such_op"
    with pytest.raises(IRError, match="no such op"):
        check_program(p)
    p = program(good)
    p.outs = [Var(Aval((3,), F32))]
    with pytest.raises(IRError, match="program output .* used before it is defined"):
        check_program(p)


def test_tree_and_layout_sizes():
    p = program(good)
    with pytest.raises(IRError, match="output tree has 2 leaves for 1 outputs"):
        check_program(p.replace(out_tree=("tuple", (None, None))))
    with pytest.raises(IRError, match="input tree has 2 leaves"):
        check_program(p.replace(in_tree=("tuple", (None, None))))
    with pytest.raises(IRError, match="1 input variables for 1 arguments, 0 parameters and 1 constants"):
        check_program(p.replace(consts=[np.ones(3)]))


def test_the_suite_checks_every_pass():
    """tests/conftest.py turns the checker on for every program the suite compiles."""
    from s2s_ad import opt

    assert opt.CHECK_IR
