"""The optimiser passes, the loop-fusion schedule and the op table's derivative rules on
hand-built IR: programs are written with :class:`~s2s_ad.ir.Builder` directly (no tracing, no
code generation), every program is checked by :func:`~s2s_ad.ir.check_program` before and after,
and rule outputs are evaluated by a small numpy interpreter of the IR written here."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from s2s_ad import opt
from s2s_ad.clusters import elementwise_units
from s2s_ad.fusion import Loop, candidates, schedule, use_counts
from s2s_ad.ir import Aval, Builder, Eqn, Lit, Program, Var, check_program
from s2s_ad.primitives import as_py_index, get_op

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
I32 = np.dtype(np.int32)


def var(shape: tuple[int, ...], hint: str | None = None, dtype: np.dtype = F32) -> Var:
    return Var(Aval(shape, dtype), hint)


def program(invars: list[Var], eqns: list[Eqn], outs: list, name: str = "p") -> Program:
    """A program of ``invars`` (all arguments) computing the flat tuple ``outs``; checked."""
    tree = ("tuple", (None,) * len(invars))
    prog = Program(
        name, list(invars), len(invars), tree, [], [], list(eqns), list(outs), ("tuple", (None,) * len(outs))
    )
    check_program(prog, "input")
    return prog


def run(pass_: Callable[[Program], Program], prog: Program) -> Program:
    """``pass_`` applied to ``prog``, with both checked."""
    check_program(prog, "before")
    out = pass_(prog)
    check_program(out, f"after {getattr(pass_, '__name__', 'pass')}")
    return out


def ops(prog: Program) -> list[str]:
    return [e.op for e in prog.eqns]


# ----------------------------------------------------------------------------- a numpy interpreter
_UNARY = {"neg": np.negative, "sin": np.sin, "cos": np.cos, "exp": np.exp, "log": np.log, "tanh": np.tanh}
_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "equal": np.equal,
    "greater": np.greater,
    "maximum": np.maximum,
}


def _eval_eqn(e: Eqn, x: list) -> np.ndarray:
    p = e.params
    if e.op in _UNARY:
        return _UNARY[e.op](x[0])
    if e.op in _BINARY:
        return _BINARY[e.op](x[0], x[1])
    if e.op == "matmul":
        a = x[0].T if p["transpose_a"] else x[0]
        c = x[1].T if p["transpose_b"] else x[1]
        return a @ c
    if e.op in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min"):
        f = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min}[e.op]
        return f(x[0], axis=p["axes"], keepdims=p["keepdims"])
    if e.op == "reshape":
        return np.reshape(x[0], p["shape"])
    if e.op == "broadcast_to":
        return np.broadcast_to(x[0], p["shape"])
    if e.op == "transpose":
        return np.transpose(x[0], p["perm"])
    if e.op == "cast":
        return np.asarray(x[0]).astype(p["dtype"])
    if e.op == "fill":
        return np.full(p["shape"], p["value"], p["dtype"])
    if e.op == "stop_gradient":
        return x[0]
    if e.op == "getitem":
        return np.asarray(x[0])[as_py_index(p["index"])]
    if e.op == "scatter":
        out = np.zeros(p["shape"], e.outs[0].dtype)
        out[as_py_index(p["index"])] += x[0]
        return out
    raise NotImplementedError(e.op)


def evaluate(prog: Program, *args: np.ndarray) -> list[np.ndarray]:
    """``prog``'s outputs at ``args``, equation by equation, checking every value's aval."""
    env: dict[Var, np.ndarray] = dict(zip(prog.invars, args, strict=True))

    def read(a):
        return np.asarray(a.value, a.dtype) if isinstance(a, Lit) else env[a]

    for e in prog.eqns:
        (out,) = e.outs
        with np.errstate(all="ignore"):  # IEEE results (inf, nan) are what some tests check
            val = np.asarray(_eval_eqn(e, [read(a) for a in e.ins]))
        val = val.astype(out.dtype) if val.dtype != out.dtype else val
        assert val.shape == out.shape, (e.op, val.shape, out.shape)
        env[out] = val
    return [read(a) for a in prog.outs]


# ----------------------------------------------------------------------------- dce
def test_dce_drops_dead_equations_and_keeps_what_the_outputs_need():
    x = var((3,), "x")
    b = Builder()
    y = b.bind1("sin", x)
    dead = b.bind1("exp", x)
    b.bind1("cos", dead)  # dead, and reads a dead value
    z = b.bind1("mul", y, Lit(2.0, F32))
    prog = program([x], b.eqns, [z])
    out = run(opt.dce, prog)
    assert ops(out) == ["sin", "mul"]
    assert out.eqns[0] is prog.eqns[0] and out.eqns[1] is prog.eqns[3]
    assert out.outs == [z]


def test_dce_keeps_every_output_and_an_output_that_is_an_input():
    x, w = var((2, 3), "x"), var((3, 2), "w")
    b = Builder()
    m = b.bind1("matmul", x, w, transpose_a=False, transpose_b=False)
    s = b.bind1("reduce_sum", m, axes=(0, 1), keepdims=False)
    b.bind1("transpose", x, perm=(1, 0))  # dead
    out = run(opt.dce, program([x, w], b.eqns, [s, m, x]))
    assert ops(out) == ["matmul", "reduce_sum"]
    assert run(opt.dce, program([x], [], [x])).eqns == []


# ----------------------------------------------------------------------------- cse
def test_cse_merges_equal_equations_and_their_users():
    x = var((3,), "x")
    b = Builder()
    y1 = b.bind1("sin", x)
    y2 = b.bind1("sin", x, hint="y2")
    z1 = b.bind1("mul", y1, Lit(2.0, F32))
    z2 = b.bind1("mul", y2, Lit(2.0, F32))  # another literal object of the same value and dtype
    out = run(opt.cse, program([x], b.eqns, [z1, z2]))
    assert ops(out) == ["sin", "mul"]
    assert out.outs[0] is out.outs[1] is z1
    assert out.eqns[1].ins[0] is y1
    # the kept value takes the user's name of the merged one, in the program's names table
    assert out.name_of(y1) == "y2" and y1.hint is None


def test_cse_keeps_equations_that_differ_in_params_literals_or_input_order():
    x, y = var((2, 3), "x"), var((2, 3), "y")
    b = Builder()
    outs = [
        b.bind1("reduce_sum", x, axes=(0,), keepdims=False),
        b.bind1("reduce_sum", x, axes=(1,), keepdims=False),
        b.bind1("reduce_sum", x, axes=(0,), keepdims=True),
        b.bind1("mul", x, Lit(2.0, F32)),
        b.bind1("mul", x, Lit(3.0, F32)),
        # inputs are matched in order: add(x, y) and add(y, x) stay apart (the SymPy cluster
        # pass, which sees them as one expression, merges those)
        b.bind1("add", x, y),
        b.bind1("add", y, x),
    ]
    prog = program([x, y], b.eqns, outs)
    out = run(opt.cse, prog)
    assert ops(out) == ops(prog)
    assert out.outs == outs


def test_cse_keeps_a_merged_equation_primal_when_either_copy_was():
    x = var((3,), "x")
    derived = Builder()
    d = derived.bind1("exp", x)
    user = Builder(primal=True)
    u = user.bind1("exp", x)
    out = run(opt.cse, program([x], derived.eqns + user.eqns, [d, u]))
    assert ops(out) == ["exp"]
    assert out.eqns[0].primal
    assert out.outs == [d, d]


# ----------------------------------------------------------------------------- strip_identities
def test_strip_identities_drops_stop_gradient_and_same_dtype_casts_only():
    x = var((3,), "x")
    b = Builder()
    s = b.bind1("stop_gradient", x)
    c = b.bind1("cast", s, dtype=F32)  # a no-op
    w = b.bind1("cast", c, dtype=F64)  # a real conversion
    y = b.bind1("sin", c)
    out = run(opt.strip_identities, program([x], b.eqns, [y, w, s]))
    assert ops(out) == ["cast", "sin"]
    assert out.eqns[0].ins == [x] and out.eqns[0].outs[0].dtype == F64
    assert out.eqns[1].ins == [x]
    assert out.outs[2] is x


# ----------------------------------------------------------------------------- fold_fills
def _folded(prog: Program, keep_primal: bool = True) -> Program:
    def fold_then_dce(p: Program) -> Program:
        return opt.dce(opt.fold_fills(p, keep_primal))

    return run(fold_then_dce, prog)


def test_fold_fills_propagates_a_fill_through_shape_ops():
    x = var((2, 3), "x")
    b = Builder()
    f = b.bind1("fill", shape=(3,), value=1.5, dtype=F32)
    g = b.bind1("broadcast_to", f, shape=(2, 3))
    h = b.bind1("transpose", g, perm=(1, 0))
    r = b.bind1("reshape", h, shape=(6,))
    i = b.bind1("cast", r, dtype=I32)
    prog = program([x], b.eqns, [r, i])
    out = _folded(prog)
    assert ops(out) == ["fill", "fill"]
    (a, c) = out.eqns
    assert a.params == {"shape": (6,), "value": 1.5, "dtype": F32}
    assert c.params == {"shape": (6,), "value": 1.0, "dtype": I32}  # the cast's value, as the cast gives it
    assert out.outs == [a.outs[0], c.outs[0]]
    np.testing.assert_array_equal(evaluate(out, np.zeros((2, 3), F32))[1], evaluate(prog, np.zeros((2, 3), F32))[1])


def test_fold_fills_sums_a_fill_into_a_scaled_fill_or_a_literal():
    x = var((2, 3), "x")
    b = Builder()
    f = b.bind1("fill", shape=(2, 3), value=0.5, dtype=F32)
    rows = b.bind1("reduce_sum", f, axes=(1,), keepdims=False)
    total = b.bind1("reduce_sum", f, axes=(0, 1), keepdims=False)
    y = b.bind1("mul", x, total)
    out = _folded(program([x], b.eqns, [rows, y]))
    assert ops(out) == ["fill", "mul"]
    assert out.eqns[0].params == {"shape": (2,), "value": 1.5, "dtype": F32}
    lit = out.eqns[1].ins[1]
    assert isinstance(lit, Lit) and lit.value == 3.0 and lit.dtype == F32  # a 0-d fill is a literal


def test_fold_fills_folds_a_matmul_with_zeros_in_derivative_code_only():
    x, w = var((2, 3), "x"), var((3, 4), "w")
    zeros = Builder()
    z = zeros.bind1("fill", shape=(2, 3), value=0.0, dtype=F32)

    derived = Builder()
    m = derived.bind1("matmul", z, w, transpose_a=False, transpose_b=False)
    out = _folded(program([x, w], zeros.eqns + derived.eqns, [m]))
    assert ops(out) == ["fill"]
    assert out.eqns[0].params == {"shape": (2, 4), "value": 0.0, "dtype": F32}

    # The user's own matmul is kept: 0 @ w is nan, not 0, where w has an inf or a nan.
    user = Builder(primal=True)
    m = user.bind1("matmul", z, w, transpose_a=False, transpose_b=False)
    prog = program([x, w], zeros.eqns + user.eqns, [m])
    out = _folded(prog)
    assert ops(out) == ["fill", "matmul"]
    got = evaluate(out, np.zeros((2, 3), F32), np.full((3, 4), np.inf, F32))[0]
    assert np.isnan(got).all()
    # ... unless algebraic simplification is asked for (keep_primal=False)
    assert ops(_folded(prog, keep_primal=False)) == ["fill"]


def test_fold_fills_keeps_the_users_sums_and_means_but_folds_their_shape_ops():
    x = var((4,), "x")
    user = Builder(primal=True)
    f = user.bind1("fill", shape=(4,), value=0.1, dtype=F32)
    s = user.bind1("reduce_sum", f, axes=(0,), keepdims=False)
    mean = user.bind1("reduce_mean", f, axes=(0,), keepdims=False)
    r = user.bind1("reshape", f, shape=(2, 2))
    prog = program([x], user.eqns, [s, mean, r])
    out = _folded(prog)
    assert ops(out) == ["fill", "reduce_sum", "reduce_mean", "fill"]
    assert out.eqns[3].params == {"shape": (2, 2), "value": pytest.approx(0.1), "dtype": F32}
    folded = _folded(prog, keep_primal=False)
    assert ops(folded) == ["fill"]
    assert [type(a) for a in folded.outs] == [Lit, Lit, Var]
    assert folded.outs[0].value == pytest.approx(0.4) and folded.outs[1].value == pytest.approx(0.1)


def test_fold_fills_leaves_values_that_are_not_constant():
    x = var((2, 3), "x")
    b = Builder()
    t = b.bind1("transpose", x, perm=(1, 0))
    s = b.bind1("reduce_sum", t, axes=(0,), keepdims=False)
    m = b.bind1("matmul", x, t, transpose_a=False, transpose_b=False)
    prog = program([x], b.eqns, [s, m])
    assert ops(_folded(prog, keep_primal=False)) == ["transpose", "reduce_sum", "matmul"]


# ----------------------------------------------------------------------------- clusters
def test_elementwise_units_group_connected_equations_at_one_structural_depth():
    x, y = var((3,), "x"), var((3,), "y")
    b = Builder()
    a = b.bind1("sin", x)
    c = b.bind1("mul", a, y)
    r = b.bind1("reduce_sum", c, axes=(0,), keepdims=False)
    e = b.bind1("exp", r)
    f = b.bind1("cos", y)
    g = b.bind1("mul", f, r)  # depth 1 (reads the sum), its input ``f`` depth 0: apart
    program([x, y], b.eqns, [e, g])
    units = elementwise_units(b.eqns)
    assert [[u.op for u in unit] for unit in units] == [["sin", "mul"], ["reduce_sum"], ["exp"], ["cos"], ["mul"]]
    assert [u for unit in units for u in unit] == b.eqns


def _cluster_program(primal: bool) -> tuple[Program, Var, Var]:
    """``w = x*0 + y`` and ``t = sin(w) - sin(w)``: real algebra folds both."""
    x, y = var((3,), "x"), var((3,), "y")
    b = Builder(primal=primal)
    z = b.bind1("mul", x, Lit(0.0, F32))
    w = b.bind1("add", z, y)
    s = b.bind1("sin", w)
    t = b.bind1("sub", s, s)
    return program([x, y], b.eqns, [w, t]), x, y


def test_simplify_clusters_folds_derivative_code():
    prog, x, y = _cluster_program(primal=False)
    out = run(opt.simplify_clusters, prog)
    assert ops(out) == ["fill"] and out.eqns[0].params == {"shape": (3,), "value": 0.0, "dtype": F32}
    assert out.outs == [y, out.eqns[0].outs[0]]


def test_simplify_clusters_keeps_the_users_equations_unless_asked():
    prog, x, y = _cluster_program(primal=True)
    out = run(opt.simplify_clusters, prog)
    assert ops(out) == ["mul", "add", "sin", "sub"]
    # as written: inf * 0 is nan, and so is everything computed from it
    w, t = evaluate(out, np.array([np.inf, 1.0, 2.0], F32), np.ones(3, F32))
    assert np.isnan(w[0]) and np.isnan(t[0]) and w[1] == 1.0 and t[1] == 0.0

    def algebraic(p: Program) -> Program:
        return opt.simplify_clusters(p, keep_primal=False)

    out = run(algebraic, prog)
    assert ops(out) == ["fill"] and out.outs[0] is y


# ----------------------------------------------------------------------------- fusion
def _loops(steps) -> list[Loop]:
    return [s for s in steps if isinstance(s, Loop)]


def test_elementwise_equations_of_one_shape_fuse_with_their_reduction():
    x, w = var((2, 3), "x"), var((3, 2), "w")
    b = Builder()
    y = b.bind1("sin", x)
    z = b.bind1("mul", y, Lit(2.0, F32))
    s = b.bind1("reduce_sum", z, axes=(1,), keepdims=True)
    t = b.bind1("add", z, s)
    m = b.bind1("matmul", t, w, transpose_a=False, transpose_b=False)
    prog = program([x, w], b.eqns, [m])
    steps = schedule(prog)
    first, second = _loops(steps)
    assert [e.op for e in first.eqns] == ["sin", "mul"] and first.shape == (2, 3)
    assert [e.op for e in first.reductions] == ["reduce_sum"]
    # ``add`` reads the finished sum, so it opens a second loop; ``z`` is read there: stored
    assert first.stored == [z]
    assert [e.op for e in second.eqns] == ["add"] and second.reductions == [] and second.stored == [t]
    assert steps[2] is prog.eqns[-1] and len(steps) == 3
    assert use_counts(prog)[z] == 2 and use_counts(prog)[y] == 1


def test_casts_comparisons_and_broadcasts_join_a_loop():
    x, v = var((2, 3), "x"), var((3,), "v")
    b = Builder()
    bv = b.bind1("broadcast_to", v, shape=(2, 3))
    m = b.bind1("mul", x, bv)
    g = b.bind1("greater", m, Lit(0.0, F32))
    c = b.bind1("cast", g, dtype=F32)
    out = b.bind1("mul", m, c)
    prog = program([x, v], b.eqns, [out])
    (step,) = schedule(prog)
    assert isinstance(step, Loop) and step.eqns == prog.eqns and step.stored == [out]
    assert step.computes


def test_values_of_other_shapes_and_scalars_do_not_fuse():
    x, v = var((2, 3), "x"), var((3,), "v")
    c = var((), "c")
    b = Builder()
    a = b.bind1("exp", x)
    d = b.bind1("cos", v)
    e = b.bind1("sin", c)  # 0-d: a plain equation
    f = b.bind1("mul", a, d)  # reads the other loop's value: that loop closes first
    prog = program([x, v, c], b.eqns, [f, e])
    steps = schedule(prog)
    loops = _loops(steps)
    assert [(lp.shape, [e.op for e in lp.eqns]) for lp in loops] == [((3,), ["cos"]), ((2, 3), ["exp", "mul"])]
    assert loops[0].stored == [d] and loops[1].stored == [f]
    assert [s.op for s in steps if isinstance(s, Eqn)] == ["sin"]


def test_a_loop_that_only_moves_data_prints_as_equations():
    x = var((3,), "x")
    b = Builder()
    f = b.bind1("fill", shape=(2, 3), value=1.0, dtype=F32)
    g = b.bind1("broadcast_to", x, shape=(2, 3))
    prog = program([x], b.eqns, [f, g])
    steps = schedule(prog)
    assert _loops(steps) == []
    assert steps == prog.eqns


def _tanh_layer(out_too: bool = False):
    """``h = tanh(x)`` (an array: a product reads it), ``c = 1 - h*h``, then ``q = (h @ w) * c``
    in a loop after the product."""
    x, w = var((2, 3), "x"), var((3, 3), "w")
    b = Builder()
    h = b.bind1("tanh", x)
    a = b.bind1("mul", h, h)
    c = b.bind1("sub", Lit(1.0, F32), a)
    p = b.bind1("matmul", h, w, transpose_a=False, transpose_b=False)
    q = b.bind1("mul", p, c)
    return program([x, w], b.eqns, [q, c] if out_too else [q]), (h, a, c, p, q)


def test_a_cheap_value_read_by_a_later_loop_is_computed_again_there():
    prog, (h, a, c, p, q) = _tanh_layer()
    assert candidates(prog) == {a, c}
    first, second = _loops(schedule(prog))
    # the first loop stores only h (the product reads it); a and c, unused there, are dropped
    assert [e.op for e in first.eqns] == ["tanh"] and first.stored == [h]
    assert [e.op for e in second.eqns] == ["mul", "sub", "mul"] and second.stored == [q]
    assert [e.outs[0] for e in second.eqns] == [a, c, q]


def test_values_a_program_returns_or_a_non_elementwise_equation_reads_are_stored():
    prog, (h, a, c, p, q) = _tanh_layer(out_too=True)
    assert candidates(prog) == {a}
    first, second = _loops(schedule(prog))
    assert first.stored == [h, c] and [e.outs[0] for e in second.eqns] == [q]


def test_a_value_computed_from_one_only_loops_read_is_stored():
    x, w = var((2, 3), "x"), var((3, 3), "w")
    b = Builder()
    g = b.bind1("exp", x)  # read by loops only: an array only where a loop stores it
    k = b.bind1("mul", g, Lit(2.0, F32))
    y = b.bind1("sin", x)
    p = b.bind1("matmul", y, w, transpose_a=False, transpose_b=False)  # closes the loop
    q = b.bind1("mul", p, k)
    prog = program([x, w], b.eqns, [q])
    assert candidates(prog) == {k}
    first, _ = _loops(schedule(prog))
    assert first.stored == [k, y]


# ----------------------------------------------------------------------------- derivative rules
def _rule_program(primal: Builder, rule: Builder, invars: list[Var], outs: list) -> Program:
    """The primal equations followed by the rule's, as a checked program."""
    return program(invars, primal.eqns + rule.eqns, outs, "rule")


def _avals(b: Builder) -> list[tuple[str, str]]:
    return [(e.op, str(e.outs[0].aval)) for e in b.eqns]


RNG = np.random.default_rng(0)


def _rand(*shape: int) -> np.ndarray:
    return RNG.uniform(-1.0, 1.0, shape).astype(F32)


def test_matmul_vjp_and_jvp():
    x, w = var((2, 3), "x"), var((4, 3), "w")
    p = Builder()
    (m,) = p.bind("matmul", [x, w], transpose_a=False, transpose_b=True)
    (eqn,) = p.eqns
    ct = var((2, 4), "ct")
    r = Builder()
    gx, gw = get_op("matmul").vjp(r, eqn, [ct], [True, True])
    assert _avals(r) == [("matmul", "f32[2,3]"), ("matmul", "f32[4,3]")]
    assert r.eqns[0].params == {"transpose_a": False, "transpose_b": False}  # ct @ w
    assert r.eqns[1].params == {"transpose_a": True, "transpose_b": False}  # ct.T @ x
    X, W, CT = _rand(2, 3), _rand(4, 3), _rand(2, 4)
    got = evaluate(_rule_program(p, r, [x, w, ct], [gx, gw]), X, W, CT)
    np.testing.assert_allclose(got[0], CT @ W, rtol=1e-6)
    np.testing.assert_allclose(got[1], CT.T @ X, rtol=1e-6)

    r = Builder()
    assert get_op("matmul").vjp(r, eqn, [ct], [False, True])[0] is None
    assert _avals(r) == [("matmul", "f32[4,3]")]

    tx, tw = var((2, 3), "tx"), var((4, 3), "tw")
    r = Builder()
    (t,) = get_op("matmul").jvp(r, eqn, [tx, tw])
    assert _avals(r) == [("matmul", "f32[2,4]"), ("matmul", "f32[2,4]"), ("add", "f32[2,4]")]
    TX, TW = _rand(2, 3), _rand(4, 3)
    (got,) = evaluate(_rule_program(p, r, [x, w, tx, tw], [t]), X, W, TX, TW)
    np.testing.assert_allclose(got, TX @ W.T + X @ TW.T, rtol=1e-5)
    r = Builder()
    (t,) = get_op("matmul").jvp(r, eqn, [None, tw])
    assert _avals(r) == [("matmul", "f32[2,4]")]


def test_reduce_sum_and_mean_vjp_restore_the_reduced_axes():
    x = var((2, 3, 4), "x")
    p = Builder()
    p.bind1("reduce_sum", x, axes=(0, 2), keepdims=False)
    p.bind1("reduce_mean", x, axes=(0, 2), keepdims=False)
    ct = var((3,), "ct")
    r = Builder()
    (gs,) = get_op("reduce_sum").vjp(r, p.eqns[0], [ct], [True])
    (gm,) = get_op("reduce_mean").vjp(r, p.eqns[1], [ct], [True])
    assert _avals(r) == [
        ("reshape", "f32[1,3,1]"),
        ("broadcast_to", "f32[2,3,4]"),
        ("reshape", "f32[1,3,1]"),
        ("broadcast_to", "f32[2,3,4]"),
        ("div", "f32[2,3,4]"),
    ]
    CT = _rand(3)
    got_s, got_m = evaluate(_rule_program(p, r, [x, ct], [gs, gm]), _rand(2, 3, 4), CT)
    np.testing.assert_allclose(got_s, np.broadcast_to(CT[None, :, None], (2, 3, 4)))
    np.testing.assert_allclose(got_m, np.broadcast_to(CT[None, :, None] / 8, (2, 3, 4)), rtol=1e-6)
    # the tangent rule of a linear op is the op itself
    t = var((2, 3, 4), "t")
    r = Builder()
    (dt,) = get_op("reduce_sum").jvp(r, p.eqns[0], [t])
    assert r.eqns[0].op == "reduce_sum" and r.eqns[0].params == p.eqns[0].params and dt.shape == (3,)


def test_reduce_max_vjp_splits_the_cotangent_among_ties():
    x = var((2, 3), "x")
    p = Builder()
    y = p.bind1("reduce_max", x, axes=(1,), keepdims=False)
    ct = var((2,), "ct")
    r = Builder()
    (g,) = get_op("reduce_max").vjp(r, p.eqns[0], [ct], [True])
    assert [op for op, _ in _avals(r)] == ["reshape", "equal", "cast", "reduce_sum", "reshape", "div", "mul"]
    assert g.aval == x.aval
    X = np.array([[1.0, 3.0, 3.0], [2.0, -1.0, 0.0]], F32)
    (got,) = evaluate(_rule_program(p, r, [x, ct], [g]), X, np.array([4.0, 5.0], F32))
    np.testing.assert_allclose(got, [[0.0, 2.0, 2.0], [5.0, 0.0, 0.0]])
    t = var((2, 3), "t")
    r = Builder()
    (dy,) = get_op("reduce_max").jvp(r, p.eqns[0], [t])
    assert dy.aval == y.aval
    T = np.array([[9.0, 1.0, 2.0], [7.0, 8.0, 9.0]], F32)
    (got,) = evaluate(_rule_program(p, r, [x, t], [dy]), X, T)
    np.testing.assert_allclose(got, [1.5, 7.0])


def test_shape_op_vjps_invert_the_op():
    x = var((2, 3, 4), "x")
    p = Builder()
    tr = p.bind1("transpose", x, perm=(2, 0, 1))
    rs = p.bind1("reshape", x, shape=(6, 4))
    gi = p.bind1("getitem", x, index=(1, ("slice", None, None, 2)))
    bc = p.bind1("broadcast_to", gi, shape=(5, 2, 4))
    cts = [var(a.shape, f"ct{k}") for k, a in enumerate([tr, rs, gi, bc])]
    r = Builder()
    (g_tr,) = get_op("transpose").vjp(r, p.eqns[0], [cts[0]], [True])
    (g_rs,) = get_op("reshape").vjp(r, p.eqns[1], [cts[1]], [True])
    (g_gi,) = get_op("getitem").vjp(r, p.eqns[2], [cts[2]], [True])
    (g_bc,) = get_op("broadcast_to").vjp(r, p.eqns[3], [cts[3]], [True])
    assert _avals(r) == [
        ("transpose", "f32[2,3,4]"),
        ("reshape", "f32[2,3,4]"),
        ("scatter", "f32[2,3,4]"),
        ("reduce_sum", "f32[2,4]"),
    ]
    assert r.eqns[0].params == {"perm": (1, 2, 0)}
    vals = [_rand(*c.shape) for c in cts]
    got = evaluate(_rule_program(p, r, [x, *cts], [g_tr, g_rs, g_gi, g_bc]), _rand(2, 3, 4), *vals)
    np.testing.assert_array_equal(got[0], np.transpose(vals[0], (1, 2, 0)))
    np.testing.assert_array_equal(got[1], vals[1].reshape(2, 3, 4))
    want = np.zeros((2, 3, 4), F32)
    want[1, ::2] = vals[2]
    np.testing.assert_array_equal(got[2], want)
    np.testing.assert_allclose(got[3], vals[3].sum(axis=0), rtol=1e-6)


def test_cast_rules_pass_float_cotangents_and_stop_at_int_results():
    x = var((3,), "x")
    p = Builder()
    p.bind1("cast", x, dtype=F64)
    p.bind1("cast", x, dtype=I32)
    r = Builder()
    (g,) = get_op("cast").vjp(r, p.eqns[0], [var((3,), "ct", F64)], [True])
    assert _avals(r) == [("cast", "f32[3]")] and g.dtype == F32
    assert get_op("cast").vjp(Builder(), p.eqns[1], [var((3,), "ct", I32)], [True]) == [None]
    r = Builder()
    assert get_op("cast").jvp(r, p.eqns[1], [var((3,), "t")]) == [None] and r.eqns == []
