"""Loop bodies on small arrays computed element by element (:mod:`s2s_ad.scalarise`), loop-invariant
code motion and the pruning of unread region outputs: the passes fire, and the programs they
give compute what the programs they were given compute (against the unscalarised code, finite
differences to second order, forward and reverse, in both modes)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, codegen, ops
from s2s_ad.api import generated_source
from s2s_ad.ir import Aval, Builder, Lit, Var, check_program
from s2s_ad.regions import INT, bind_loop, bind_while, subprogram
from s2s_ad.scalarise import LIMIT, hoist_invariants, prune_regions, scalarise
from s2s_ad.testing import check_grads

DT = 0.01


def lorenz(s, p):
    x, y, z = s[0], s[1], s[2]
    return ops.stack([p[0] * (y - x), x * (p[1] - z) - y, x * y - p[2] * z])


def rk4(s, p):
    for _ in range(20):
        k1 = lorenz(s, p)
        k2 = lorenz(s + (0.5 * DT) * k1, p)
        k3 = lorenz(s + (0.5 * DT) * k2, p)
        k4 = lorenz(s + DT * k3, p)
        s = s + (DT / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return s


def rk4_loss(s, p):
    e = rk4(s, p)
    return (e * e).sum()


def matrix_power(x, w):
    """A 4x4 state (at the element limit) through matmuls, a transpose and a reduction."""
    for _ in range(6):
        x = ops.tanh(ops.matmul(x, w) * 0.5 + x.T * 0.25) + x.sum(axis=0) * 0.01
    return x


def long_state(x, w):
    """A state of 17 elements: above the limit, kept as arrays."""
    for _ in range(6):
        x = x + 0.1 * ops.sin(w * x)
    return x


def broadcasting(x, c, r):
    """A (2, 3) state meeting a (3,) row, a (2, 1) column and a 0-d carry."""
    t = x.sum() * 0.0
    for _ in range(5):
        x = ops.cos(x * r + c) * 0.5 + x.mean(axis=1, keepdims=True) * 0.1
        t = t + x.max()
    return x * t


def newton(a):
    x = a
    while ops.reduce_max(ops.abs(x * x * x + x - a)) > 1e-12:
        x = x - (x * x * x + x - a) / (3 * x * x + 1)
    return x


def nested(x, w):
    """A ``while`` and an ``if`` in a ``for`` (inner ``for`` loops of static length are unrolled)."""
    for _ in range(5):
        k = x.sum() * 0.0
        while k < 3:
            x = x + 0.05 * ops.sin(w * x[::-1])
            k = k + 1
        if x.sum() > 0:
            x = x * 0.9
        else:
            x = x + 0.1
    return x


R = np.random.default_rng(0)
CASES = {
    "rk4": (rk4, (np.array([1.0, 1.2, 0.8]), np.array([10.0, 28.0, 8.0 / 3.0]))),
    "matrix": (matrix_power, (R.normal(size=(4, 4)) * 0.5, R.normal(size=(4, 4)) * 0.5)),
    "long": (long_state, (R.normal(size=17), R.normal(size=17))),
    "broadcast": (broadcasting, (R.normal(size=(2, 3)), R.normal(size=3), R.normal(size=(2, 1)))),
    "newton": (newton, (np.array([0.5, 2.0]),)),
    "nested": (nested, (R.normal(size=3), R.normal(size=3))),
}


def _loop_lines(src: str) -> list[str]:
    """The code lines (not comments) inside the generated code's outermost ``for`` or ``while`` loops."""
    out: list[str] = []
    depth = None
    for line in src.splitlines():
        indent = len(line) - len(line.lstrip())
        if depth is not None and line.strip() and indent <= depth:
            depth = None
        if depth is not None:
            if not line.strip().startswith("#"):
                out.append(line)
        elif re.match(r"\s*(for|while) ", line):
            depth = indent
    return out


def _run(fn, args, monkeypatch, scalarise_on: bool, target: str = "numpy"):
    monkeypatch.setenv("S2S_AD_SCALARISE", "1" if scalarise_on else "0")
    src = generated_source(fn, *(Tensor(a) for a in args), target=target, standalone=True)
    name = re.search(r"^def (\w+)\(", src, re.M).group(1)
    ns: dict = {}
    exec(compile(src, f"<{name}>", "exec"), ns)
    return src, ns[name](*args)


@pytest.mark.parametrize("grad", [False, True], ids=["value", "grad"])
def test_rk4_loop_body_allocates_nothing(grad, monkeypatch):
    s0, p = CASES["rk4"][1]
    fn = ops.GradOperation(get_all=True)(rk4_loss) if grad else rk4
    for target in ("numpy", "numba"):
        src = generated_source(fn, Tensor(s0), Tensor(p), target=target)
        body = _loop_lines(src)
        assert body, src
        assert not [ln for ln in body if re.search(r"np\.(zeros|full|empty|ones)\(", ln)], src
        # the consts are read once, before the loop
        assert not [ln for ln in body if re.search(r"\bp\[", ln)], src
    monkeypatch.setenv("S2S_AD_SCALARISE", "0")
    before = generated_source(fn, Tensor(s0), Tensor(p), target="numba")
    assert [ln for ln in _loop_lines(before) if "np.zeros(" in ln]  # the pass is what removes them


def test_while_tape_is_stored_as_columns():
    """The reverse sweep's tape of an inner ``while`` (read only by the reverse loop) is one
    column per element: nothing is packed per iteration."""
    x, w = CASES["nested"][1]
    src = generated_source(s2s_ad.grad(lambda x, w: nested(x, w).sum()), Tensor(x), Tensor(w), target="numba")
    body = _loop_lines(src)
    assert any("while True" in ln for ln in body), src
    assert not [ln for ln in body if re.search(r"np\.(array|zeros|full|ones)\(", ln)], src


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_results_as_unscalarised_code(case, monkeypatch):
    fn, args = CASES[case]
    src_on, on = _run(fn, args, monkeypatch, True)
    src_off, off = _run(fn, args, monkeypatch, False)
    for a, b in zip(on, off):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    if case == "long":
        assert src_on == src_off  # above the limit: nothing to do
    else:
        assert src_on != src_off


@pytest.mark.parametrize("case", sorted(CASES))
def test_derivatives(case, mode):
    fn, args = CASES[case]
    check_grads(fn, tuple(Tensor(a) for a in args), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", ["rk4", "broadcast", "nested"])
def test_second_derivatives(case):
    s2s_ad.set_context(mode=s2s_ad.PYNATIVE_MODE)  # (restored after the test)
    fn, args = CASES[case]
    check_grads(fn, tuple(Tensor(a) for a in args), order=2, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


def test_rk4_gradient_matches_the_hand_written_adjoint(mode):
    s0, p = CASES["rk4"][1]
    gs, gp = ops.GradOperation(get_all=True)(rk4_loss)(Tensor(s0), Tensor(p))
    eps = 1e-6
    num = np.zeros(3)
    for k in range(3):
        d = np.zeros(3)
        d[k] = eps
        num[k] = (rk4_loss(Tensor(s0 + d), Tensor(p)).asnumpy() - rk4_loss(Tensor(s0 - d), Tensor(p)).asnumpy()) / (
            2 * eps
        )
    np.testing.assert_allclose(gs.asnumpy(), num, rtol=1e-6)
    assert gp.shape == (3,)


def test_float32(mode):
    fn, args = CASES["rk4"]
    got = s2s_ad.jit(fn)(*(Tensor(a.astype(np.float32)) for a in args))
    assert got.asnumpy().dtype == np.float32
    want = s2s_ad.jit(fn)(*(Tensor(a) for a in args)).asnumpy()
    np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-4)
    g = ops.GradOperation(get_all=True)(rk4_loss)(*(Tensor(a.astype(np.float32)) for a in args))
    g64 = ops.GradOperation(get_all=True)(rk4_loss)(*(Tensor(a) for a in args))
    for a, b in zip(g, g64):
        assert a.asnumpy().dtype == np.float32
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-3)


def test_limit_is_documented_value():
    assert LIMIT == 16


# ----------------------------------------------------------------------------- IR-level passes
F64 = np.dtype(np.float64)


def _counting_loop(with_unread: bool):
    """``c -> (a, b, y)``: a loop whose body reads ``c[0] * 2`` (invariant), carries ``a`` and
    ``b`` (``b`` feeds ``a``) and an unread carry ``u``, and stacks ``y``."""
    body = Builder()
    i, c, a, b_, u = Var(Aval((), INT)), *(Var(Aval(s, F64)) for s in [(3,), (), (), ()])
    k = body.bind1("mul", body.bind1("getitem", c, index=(0,)), Lit(2.0, F64))
    a2 = body.bind1("add", a, body.bind1("mul", b_, k))
    b2 = body.bind1("sin", b_)
    u2 = body.bind1("cos", u)
    y = body.bind1("mul", a2, Lit(3.0, F64))
    prog = subprogram("body", [i, c, a, b_, u], body.eqns, [a2, b2, u2, y])
    top = Builder()
    x = Var(Aval((3,), F64))
    outs = bind_loop(top, prog, [x], [], [Lit(0.0, F64), Lit(1.0, F64), Lit(0.5, F64)], 7, n_ys=1)
    want = [outs[0], outs[1], outs[3]] if with_unread else [outs[0]]
    return subprogram("top", [x], top.eqns, want), outs


def test_hoist_moves_const_only_equations_out_of_the_loop():
    prog, _ = _counting_loop(True)
    new = hoist_invariants(prog)
    check_program(new, "hoist")
    ops_outside = [e.op for e in new.eqns]
    assert ops_outside[:2] == ["getitem", "mul"] and ops_outside[-1] == "loop"
    body = new.eqns[-1].params["body"]
    assert "getitem" not in [e.op for e in body.eqns]
    assert new.eqns[-1].params["n_consts"] == 3  # c, and the two hoisted values


def test_prune_drops_unread_carries_and_ys_but_keeps_what_live_carries_need():
    prog, _ = _counting_loop(False)
    new = prune_regions(prog)
    check_program(new, "prune")
    (loop,) = new.eqns
    body = loop.params["body"]
    assert loop.params["n_ys"] == 0
    assert len(loop.outs) == 2  # a, and b which a reads; u is gone
    assert "cos" not in [e.op for e in body.eqns]
    assert "sin" in [e.op for e in body.eqns]


def test_prune_while_keeps_what_the_condition_reads():
    cb, bb = Builder(), Builder()
    ci, cj = Var(Aval((), F64)), Var(Aval((), F64))
    cond = subprogram("cond", [ci, cj], cb.eqns, [cb.bind1("less", cj, Lit(5.0, F64))])
    bi, bj = Var(Aval((), F64)), Var(Aval((), F64))
    body = subprogram(
        "body", [bi, bj], bb.eqns, [bb.bind1("mul", bi, Lit(2.0, F64)), bb.bind1("add", bj, Lit(1.0, F64))]
    )
    top = Builder()
    outs = bind_while(top, cond, body, [], [Lit(1.0, F64), Lit(0.0, F64)])
    prog = subprogram("top", [], top.eqns, [outs[2]])  # only the trip count is read
    new = prune_regions(prog)
    check_program(new, "prune")
    (w,) = new.eqns
    assert len(w.outs) == 2  # j (the condition reads it) and the trip count
    assert [e.op for e in w.params["body"].eqns] == ["add"]


def test_scalarise_splits_a_small_const_into_elements():
    prog, _ = _counting_loop(True)
    new = scalarise(prog)
    check_program(new, "scalarise")
    loop = next(e for e in new.eqns if e.op == "loop")
    assert all(v.shape == () for v in loop.params["body"].invars)


def _nested_for(n: int, m: int):
    def f(x, w):
        acc = x * 0.0
        for _i in range(n):
            for j in range(m):
                acc = acc * 0.99 + ops.sin(x * w + 0.001 * j)
        return (acc * acc).sum()

    return f


@pytest.mark.parametrize("n", [3, 6])
def test_inner_loops_above_the_unroll_limit_stay_loops(n, mode):
    """An inner ``for`` longer than the unroll limit is a loop whether its outer loop is kept as
    a loop (n = 6) or unrolled (n = 3, at most the limit: the inner loop is met once per outer
    iteration): the generated source's lines do not grow with the inner trip count."""
    x, w = Tensor(np.array([0.3, 0.5])), Tensor(np.array([1.2, -0.4]))
    sizes = {}
    for m in (10, 1000):
        f = _nested_for(n, m)
        grad = ops.GradOperation(get_all=True)(f)
        sizes[m] = [len(generated_source(g, x, w, target="numba").splitlines()) for g in (f, grad)]
    assert sizes[10] == sizes[1000]
    for m in (10, 1000):
        f = _nested_for(n, m)
        xs, ws = x.asnumpy(), w.asnumpy()
        acc = xs * 0.0
        for _i in range(n):
            for j in range(m):
                acc = acc * 0.99 + np.sin(xs * ws + 0.001 * j)
        np.testing.assert_allclose(s2s_ad.jit(f)(x, w).asnumpy(), (acc * acc).sum(), rtol=1e-12)
        check_grads(f, (x, w), order=1, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


def _blowup(a, b):
    """Overflow to inf, then inf - inf: nan (no exception, as numpy)."""
    for _ in range(6):
        a = a * b - a
    return a


def _divide(a, b):
    for _ in range(6):
        a = a / b + a
    return a


def _numpy_run(fn, args, monkeypatch, floats: bool):
    if not floats:
        monkeypatch.setattr(codegen, "python_float_body", lambda body: False)
    src = generated_source(fn, *(Tensor(a) for a in args), target="numpy", standalone=True)
    monkeypatch.undo()
    name = re.search(r"^def (\w+)\(", src, re.M).group(1)
    ns: dict = {}
    exec(compile(src, f"<{name}>", "exec"), ns)
    with np.errstate(all="ignore"):  # numpy's scalars warn of the overflow; the values are the point
        return src, ns[name](*args)


@pytest.mark.parametrize("case", ["rk4", "rk4_grad", "blowup"])
def test_python_float_loop_bodies_give_numpys_results(case, monkeypatch):
    """numpy code computes a loop body of float64 ``+ - *`` on Python floats: the same bits as
    numpy's scalars (so compared exactly here, the one property under test), inf and nan included."""
    fn, args = {
        "rk4": (rk4, CASES["rk4"][1]),
        "rk4_grad": (ops.GradOperation(get_all=True)(rk4_loss), CASES["rk4"][1]),
        "blowup": (_blowup, (np.array([1.0, -2.0]), np.array([1e200, 1e-3]))),
    }[case]
    src_on, on = _numpy_run(fn, args, monkeypatch, True)
    src_off, off = _numpy_run(fn, args, monkeypatch, False)
    assert "float(" in src_on and "float(" not in src_off
    for a, b in zip(on, off):
        assert isinstance(a, np.ndarray) and a.dtype == np.float64
        np.testing.assert_array_equal(a, b)
    if case == "blowup":
        assert np.isnan(on[0][0]) and np.isfinite(on[0][1])


def test_loop_bodies_with_division_keep_numpy_scalars(monkeypatch):
    """``/`` by zero gives inf in numpy but raises on Python floats: such a body is not converted."""
    args = (np.array([1.0, 2.0]), np.array([0.0, 2.0]))
    src, got = _numpy_run(_divide, args, monkeypatch, True)
    assert "float(" not in src
    assert np.isinf(got[0][0]) and got[0][1] == 2.0 * 1.5**6


def _max_residual_solve(a):
    x = a
    while ops.abs(x + x**3 - a).max() > 1e-12:
        x = x - (x + x**3 - a) / (1.0 + 3.0 * x * x)
    return x


def test_scalar_maximum_computes_each_operand_once(mode):
    """The scalarised ``max`` of a residual is a chain of scalar maxima, whose printer repeats its
    operands (``a if a > b ...``): each operand is named once, not computed again per mention."""
    a = np.array([0.5, 2.0, 3.0])
    for target in ("numpy", "numba"):
        src = generated_source(_max_residual_solve, Tensor(a), target=target)
        assert max(line.count("abs(") for line in src.splitlines()) == 1, src
    x = s2s_ad.jit(_max_residual_solve)(Tensor(a)).asnumpy()
    np.testing.assert_allclose(x + x**3, a, rtol=1e-12)
    check_grads(_max_residual_solve, (Tensor(a),), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)
