"""The cluster builder (s2s_ad.clusters) on hand-built IR: which equations form a convex
cluster, the SymPy expressions it builds, the adjoint of a cluster with two outputs; and the
names side table: a pass names variables in its result's table, never by renaming variables
that its input shares with other programs."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from s2s_ad.clusters import cluster_expressions, cluster_index, cluster_vjp, elementwise_units, expression_size
from s2s_ad.codegen import generate
from s2s_ad.ir import Aval, Builder, Lit, Program, Var, check_program
from s2s_ad.opt import cse, optimize, simplify_clusters

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


def var(name: str | None, shape: tuple = (3,), dtype: np.dtype = F64) -> Var:
    return Var(Aval(shape, dtype), name)


def program(invars: list[Var], b: Builder, outs: list, names: dict | None = None) -> Program:
    out_tree = ("tuple", (None,) * len(outs))
    p = Program("p", invars, len(invars), ("tuple", (None,) * len(invars)), [], [], b.eqns, outs, out_tree)
    if names:
        p = p.replace(names=names)
    check_program(p)
    return p


def run(prog: Program, *args: np.ndarray) -> tuple:
    ns: dict = {"np": np}
    exec(generate(prog, "f"), ns)  # noqa: S102 - the generated source of a hand-built program
    return ns["f"](*args)


def test_a_chain_of_elementwise_equations_is_one_cluster_with_one_expression():
    x = var("x")
    b = Builder()
    s = b.bind1("sin", x)
    m = b.bind1("mul", s, Lit(2.0, F64))
    e = b.bind1("exp", m)
    ok, unit_of, members = cluster_index(b.eqns)
    assert ok == [True, True, True]
    assert len(set(unit_of)) == 1 and list(members.values()) == [[0, 1, 2]]
    ce = cluster_expressions(b.eqns)
    assert ce.inputs == [x]
    (s0,) = ce.symbols
    assert ce.expr_of[x] == s0
    assert sp.simplify(ce.expr_of[e] - sp.exp(2 * sp.sin(s0))) == 0
    assert sp.simplify(ce.expr_of[s] - sp.sin(s0)) == 0
    assert expression_size(b.eqns, [e]) == 5  # exp(mul(sin(x), 2)): 3 ops, the input and the literal


def test_a_constant_fill_enters_the_expression_as_its_number():
    x = var("x")
    b = Builder()
    c = b.bind1("fill", value=3.0, shape=(3,), dtype=F64)
    y = b.bind1("mul", x, c)
    ce = cluster_expressions(b.eqns[1:], consts={c: 3.0})
    assert ce.inputs == [x]
    assert ce.expr_of[y] == 3 * ce.symbols[0]


def test_a_path_through_a_structural_op_splits_the_cluster():
    # sin -> reduce_sum -> mul, and sin -> mul directly: {sin, mul} would not be convex (a path
    # leaves it through reduce_sum and comes back), so mul is at a deeper level, in a unit of its own.
    x = var("x")
    b = Builder()
    a = b.bind1("sin", x)
    s = b.bind1("reduce_sum", a, axes=(0,), keepdims=False)
    c = b.bind1("mul", a, s)
    d = b.bind1("exp", c)
    ok, unit_of, members = cluster_index(b.eqns)
    assert ok == [True, False, True, True]
    assert unit_of[0] != unit_of[2] and unit_of[2] == unit_of[3]
    assert sorted(members.values()) == [[0], [1], [2, 3]]
    units = elementwise_units(b.eqns)
    assert [[e.op for e in u] for u in units] == [["sin"], ["reduce_sum"], ["mul", "exp"]]
    # and the whole program still simplifies to the same values
    p = program([x], b, [d])
    xv = np.array([0.1, 0.5, -1.2])
    np.testing.assert_allclose(run(simplify_clusters(p), xv)[0], run(p, xv)[0], rtol=1e-12)


def test_equations_of_another_dtype_are_not_joined():
    x = var("x")
    b = Builder()
    y = b.bind1("sin", x)
    z = b.bind1("cast", y, dtype=F32)
    b.bind1("exp", z)
    _, unit_of, _ = cluster_index(b.eqns)
    assert len(set(unit_of)) == 3


def test_the_adjoint_of_a_cluster_with_two_outputs():
    # y = sin(x); z = w * y, both with cotangents from outside: x gets ct_y cos(x) + ct_z w cos(x),
    # w gets ct_z sin(x).
    x, w, cy, cz = var("x"), var("w"), var("ct_y"), var("ct_z")
    b = Builder()
    y = b.bind1("sin", x)
    z = b.bind1("mul", w, y)
    members = b.eqns[:]
    cts = {y: cy, z: cz}
    grads = cluster_vjp(b, members, cts.get, lambda v: v in (x, w))
    assert [v for v, _ in grads] == [x, w]
    p = program([x, w, cy, cz], b, [g for _, g in grads])
    xv, wv, cyv, czv = (np.array(v) for v in ([0.3, -1.0, 2.0], [1.5, 0.5, -2.0], [1.0, 2.0, 3.0], [0.5, -1.0, 2.0]))
    gx, gw = run(p, xv, wv, cyv, czv)
    np.testing.assert_allclose(gx, cyv * np.cos(xv) + czv * wv * np.cos(xv), rtol=1e-12)
    np.testing.assert_allclose(gw, czv * np.sin(xv), rtol=1e-12)


def test_the_adjoint_of_a_cluster_without_cotangents_or_active_inputs_is_empty():
    x = var("x")
    b = Builder()
    y = b.bind1("sin", x)
    assert cluster_vjp(b, b.eqns[:], lambda v: None, lambda v: True) == []
    assert cluster_vjp(b, b.eqns[:], {y: var("ct")}.get, lambda v: False) == []


# ----------------------------------------------------------------------------- names


def duplicates() -> tuple[Program, Var, Var]:
    """``a = exp(x)`` (no name) and ``b = exp(x)`` (named ``b``): cse keeps ``a`` for both."""
    x = var("x")
    bld = Builder()
    a = bld.bind1("exp", x)
    b = bld.bind1("exp", x, hint="b")
    return program([x], bld, [a, b]), a, b


def test_cse_names_the_kept_variable_in_its_result_not_in_the_shared_variable():
    p, a, _ = duplicates()
    before = generate(p, "f")
    q = cse(p)
    assert q.eqns[0].outs[0] is a  # the variable is shared between p and q
    assert q.name_of(a) == "b" and "b = np.exp(x)" in generate(q, "f")
    assert a.hint is None and p.name_of(a) is None and p.names == {}
    assert generate(p, "f") == before


def test_a_pass_on_a_derived_program_does_not_rename_the_primal_programs_variables():
    # u = sin(x) unnamed (the user's equation); v = u * 1 (a derivative's) named v_bar in the
    # program's table: simplification replaces v by u, and u (shared with p) is named v_bar in
    # the result's table only.
    x = var("x")
    b = Builder(primal=True)
    u = b.bind1("sin", x)
    b.primal = False
    v = b.bind1("mul", u, Lit(1.0, F64))
    p = program([x], b, [u, v], names={v: "v_bar"})
    before = generate(p, "f")
    q = optimize(p)
    assert q.outs == [u, u]
    assert q.name_of(u) == "v_bar" and "v_bar = np.sin(x)" in generate(q, "f")
    assert u.hint is None and p.name_of(u) is None and p.names == {v: "v_bar"}
    assert generate(p, "f") == before


def test_the_name_of_a_replaced_output_follows_a_chain_of_replacements():
    # v_bar = (sin(x) * 2) * 0.5: the cluster's output is replaced by a new sin(x), named v_bar.
    x = var("x")
    b = Builder()
    u = b.bind1("sin", x)
    w = b.bind1("mul", u, Lit(2.0, F64))
    v = b.bind1("mul", w, Lit(0.5, F64))
    p = program([x], b, [v], names={v: "v_bar"})
    q = simplify_clusters(p)
    (out,) = q.outs
    assert out is not v and q.name_of(out) == "v_bar"
    assert "return (v_bar,)" in generate(q, "f")


@pytest.mark.parametrize("hint", [None, "y"])
def test_copies_keep_the_names_of_the_table(hint):
    # grad_program copies its input's equations: a name from the input's table stays on the copy.
    from s2s_ad.derivatives import grad_program

    x = var("x", ())
    b = Builder(primal=True)
    y = b.bind1("sin", x, hint=hint)
    z = b.bind1("exp", y)
    p = program([x], b, [z], names={y: "named"} if hint is None else None)
    g = grad_program(p, [0], [], sens_param=False)
    (copy,) = [o for e in g.eqns if e.op == "sin" and e.primal for o in e.outs]
    assert g.name_of(copy) == (hint or "named")
    assert y.hint == hint
