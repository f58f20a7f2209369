"""maximum/minimum, the comparisons, select and reduce_max/reduce_min beyond the generated
per-op tests: MindSpore's tie rules, how they go through the SymPy passes and the printers,
and their MindSpore-style primitives and functional forms."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from s2s_ad import ArgumentError, Tensor, nn, ops
from s2s_ad.ad.forward import jvp_program
from s2s_ad.derivatives import grad_program
from s2s_ad.ir import Aval, Builder, Lit, Var
from s2s_ad.opt import optimize
from s2s_ad.primitives import OPS
from s2s_ad.runtime import Compiled
from s2s_ad.symbolic import to_ir
from s2s_ad.symbolic_heads import AtLeast, Maximum, Minimum, Select, Step
from s2s_ad.trace import trace

F32, F64, BOOL = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.bool_)


def _prog(body, avals, names=None):
    names = names or [f"x{i}" for i in range(len(avals))]
    return trace(lambda fe, vals: body(fe.builder, *vals), avals, "f", names)


def _grads(prog, args, w, backend="python"):
    g = Compiled(grad_program(prog, list(range(len(args))), [], sens_param=True), backend)
    return [a.asnumpy() for a in g(list(args) + [w])[1]]


def _tangent(prog, args, tangents, backend="python"):
    j = Compiled(jvp_program(prog, list(range(len(args)))), backend)
    return j(list(args) + list(tangents))[1].asnumpy()


# ----------------------------------------------------------------------------- tie rules
@pytest.mark.parametrize("backend", ["python", "numba"])
def test_maximum_and_minimum_send_ties_to_the_first_input(backend):
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([1.0, 3.0, 2.0])  # tie, y larger, x larger
    w = np.array([1.0, 10.0, 100.0])
    for op, dx, dy in [("maximum", [1, 0, 100], [0, 10, 0]), ("minimum", [1, 10, 0], [0, 0, 100])]:
        prog = _prog(lambda b, a, c, op=op: b.bind1(op, a, c), [Aval((3,), F64)] * 2)
        gx, gy = _grads(prog, [x, y], w, backend)
        np.testing.assert_array_equal(gx, dx)
        np.testing.assert_array_equal(gy, dy)
        # forward mode agrees: the tangent of the first input wins a tie
        t = _tangent(prog, [x, y], [np.array([1.0, 1.0, 1.0]), np.array([5.0, 5.0, 5.0])], backend)
        expect = [1.0, 5.0, 1.0] if op == "maximum" else [1.0, 1.0, 5.0]
        np.testing.assert_array_equal(t, expect)


def test_tie_rules_as_sympy_partials():
    x, y = OPS["maximum"].symbols
    assert OPS["maximum"].partials == (AtLeast(x, y), Step(y - x))
    assert OPS["minimum"].partials == (AtLeast(y, x), Step(x - y))
    # a tie goes to x (AtLeast(x, x) = 1, step(0) = 0); a nan to neither
    assert OPS["maximum"].partials[0].subs(y, x) == 1 and OPS["maximum"].partials[1].subs(y, x) == 0
    assert OPS["maximum"].partials[0].subs(y, sp.nan) == 0 and OPS["maximum"].partials[1].subs(y, sp.nan) == 0
    assert Maximum(2, 3) == 3 and Minimum(2, 3) == 2 and Maximum(x, x) == x
    c = sp.Symbol("c")
    assert Select(1, x, y) == x and Select(0, x, y) == y and Select(c, x, x) == x
    assert sp.diff(Select(c, x * x, y), x) == 2 * x * Select(c, 1, 0)


@pytest.mark.parametrize(
    "backend,op,keep",
    [("python", "reduce_max", False), ("python", "reduce_max", True), ("python", "reduce_min", False)]
    + [("numba", "reduce_max", True)],
)
def test_reduce_max_splits_the_cotangent_among_ties(backend, op, keep):
    x = np.array([[1.0, 3.0, 3.0], [5.0, 2.0, 5.0]], np.float32)
    prog = _prog(lambda b, a: b.bind1(op, a, axes=(1,), keepdims=keep), [Aval((2, 3), F32)])
    w = np.array([2.0, 4.0], np.float32).reshape((2, 1) if keep else (2,))
    (g,) = _grads(prog, [x], w, backend)
    assert g.dtype == np.float32
    if op == "reduce_max":
        np.testing.assert_array_equal(g, [[0, 1, 1], [2, 0, 2]])
    else:
        np.testing.assert_array_equal(g, [[2, 0, 0], [0, 4, 0]])
    # forward mode: the mean of the tangents at the tied positions
    t = _tangent(prog, [x], [np.array([[1, 2, 4], [8, 16, 32]], np.float32)], backend)
    np.testing.assert_array_equal(t.reshape(-1), [3.0, 20.0] if op == "reduce_max" else [1.0, 16.0])


@pytest.mark.parametrize("backend", ["python", "numba"])
@pytest.mark.parametrize(
    "shape,axes,keep",
    [((4,), (0,), False), ((2, 3, 4), (0, 2), True), ((2, 3, 4), (1,), False), ((), (), False), ((3, 2), (0, 1), True)],
)
def test_reduce_extrema_values(backend, shape, axes, keep):
    x = np.random.default_rng(0).standard_normal(shape)
    for op, ref in [("reduce_max", np.max), ("reduce_min", np.min)]:
        prog = _prog(lambda b, a, op=op: b.bind1(op, a, axes=axes, keepdims=keep), [Aval(shape, F64)])
        got = Compiled(prog, backend)([x]).asnumpy()
        np.testing.assert_array_equal(got, ref(x, axis=axes, keepdims=keep))


# ----------------------------------------------------------------------------- select and the SymPy passes
def _select_net(b, c, x, y):
    s = b.bind1("select", c, b.bind1("mul", b.bind1("sin", x), Lit(2.0, x.dtype)), b.bind1("add", y, Lit(1.0, x.dtype)))
    return b.bind1("mul", s, s)


def test_select_survives_the_sympy_cluster_pass():
    prog = _prog(_select_net, [Aval((2, 3), BOOL), Aval((2, 3), F32), Aval((3,), F32)], ["c", "x", "y"])
    opt = optimize(prog)
    # the user's equations are kept as written (SymPy only rewrites derivative equations)
    assert [e.op for e in opt.eqns] == ["sin", "mul", "add", "select", "mul"]
    assert "np.where(c, " in Compiled(prog, "python").source
    c = np.array([[True, False, True], [False, False, True]])
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    y = np.array([0.5, -0.25, 2.0], np.float32)
    expect = np.where(c, 2 * np.sin(x), y + 1) ** 2
    for backend in ("python", "numba"):
        got = Compiled(prog, backend)([c, x, y]).asnumpy()
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expect, rtol=1e-6)
    # the derivative: literal 0/1 branches are printed in the output's dtype
    grad = Compiled(grad_program(prog, [1, 2], [], sens_param=False), "python")
    assert "np.where(c, np.float32(1.0), np.float32(0.0))" in grad.source
    gx, gy = grad([c, x, y])[1]
    assert gx.asnumpy().dtype == gy.asnumpy().dtype == np.float32
    np.testing.assert_allclose(gx.asnumpy(), np.where(c, 2 * 2 * np.sin(x) * 2 * np.cos(x), 0), rtol=1e-5)
    np.testing.assert_allclose(gy.asnumpy(), np.sum(np.where(c, 0, 2 * (y + 1)), axis=0), rtol=1e-6)


def test_sympy_bridge_prints_nary_heads_and_folds_literals():
    b = Builder()
    c, x = Var(Aval((3,), BOOL), "c"), Var(Aval((3,), F32), "x")
    cs, xs = sp.Symbol("c", real=True), sp.Symbol("x", real=True)
    (out,) = to_ir(b, [Select(cs, xs, 0) + Maximum(xs, 2)], {cs: c, xs: x}, F32)
    assert sorted(e.op for e in b.eqns) == ["add", "maximum", "select"]
    (sel,) = [e for e in b.eqns if e.op == "select"]
    assert sel.ins[2].dtype == F32  # the literal branch takes the expression's dtype
    b2 = Builder()
    (lit,) = to_ir(b2, [Maximum(sp.Integer(2), sp.Integer(5)) + Step(sp.Integer(-1))], {}, F32)
    assert isinstance(lit, Lit) and lit.value == 5.0 and not b2.eqns


@pytest.mark.parametrize("backend", ["python", "numba"])
def test_scalar_select_compiles(backend):
    # Numba's np.where on scalars gives a 0-d array: a scalar select prints `a if c else b`.
    def body(b, x, y):
        s = b.bind1("select", b.bind1("greater", x, y), x, b.bind1("mul", y, Lit(3.0, F32)))
        return b.bind1("cast", b.bind1("exp", s), dtype=F64)

    prog = _prog(body, [Aval((), F32)] * 2)
    c = Compiled(prog, backend)
    assert " if " in c.source
    for x, y in [(1.0, 0.5), (0.25, 0.5)]:
        got = c([np.float32(x), np.float32(y)]).asnumpy()
        np.testing.assert_allclose(got, np.exp(np.float32(x if x > y else 3 * y)), rtol=1e-6)
    gx, gy = _grads(prog, [np.float32(0.25), np.float32(0.5)], np.float64(1.0), backend)
    assert gx == 0 and gy == pytest.approx(3 * np.exp(1.5), rel=1e-6)


def test_comparisons_are_not_clustered_and_go_through_cse_and_dce():
    def body(b, x, y):
        c1 = b.bind1("greater", x, y)
        c2 = b.bind1("greater", x, y)  # a duplicate: cse
        b.bind1("less", x, y)  # unused: dce
        s = b.bind1("select", c1, b.bind1("exp", x), y)
        t = b.bind1("select", c2, y, b.bind1("exp", x))
        return b.bind1("add", s, t)

    prog = _prog(body, [Aval((3,), F64)] * 2)
    opt = optimize(prog)
    ops_ = [e.op for e in opt.eqns]
    assert ops_.count("greater") == 1 and "less" not in ops_
    x, y = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 1.0])
    np.testing.assert_allclose(Compiled(prog, "python")([x, y]).asnumpy(), np.exp(x) + y)


def test_select_needs_a_bool_condition():
    with pytest.raises(ArgumentError, match="Select: the condition must be a bool tensor"):
        _prog(lambda b, c, x: b.bind1("select", c, x, x), [Aval((3,), F32)] * 2)


# ----------------------------------------------------------------------------- primitives and functional forms
class ExtremaNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.reduce_max = ops.ReduceMax(keep_dims=True)
        self.reduce_min = ops.ReduceMin()
        self.select = ops.Select()
        self.greater = ops.Greater()
        self.maximum = ops.Maximum()

    def construct(self, x, y):
        m = self.reduce_max(x, 1) + self.reduce_min(x, (0, 1))
        s = self.select(self.greater(x, y), x, ops.minimum(x, y) * 0.5)
        return self.maximum(s, m) + ops.where(ops.less_equal(y, 0.0), 1.0, y) + x.max(axis=0) - x.min()


def test_primitives_in_a_cell(mode):
    x = np.array([[0.5, -1.5, 2.0], [1.25, 0.75, -0.5]], np.float32)
    y = np.array([0.25, 1.0, -1.0], np.float32)
    net = ExtremaNet()
    m = x.max(axis=1, keepdims=True) + x.min()
    s = np.where(x > y, x, np.minimum(x, y) * np.float32(0.5))
    expect = np.maximum(s, m) + np.where(y <= 0, np.float32(1.0), y) + x.max(axis=0) - x.min()
    got = net(Tensor(x), Tensor(y))
    assert got.asnumpy().dtype == np.float32
    np.testing.assert_allclose(got.asnumpy(), expect, rtol=1e-6)


def test_primitives_in_a_cell_gradient(pynative):
    x = np.array([[0.625, -1.5, 2.0], [1.25, 0.75, -0.5]])  # no ties (0.5 would tie in maximum)
    y = np.array([0.25, 1.0, -1.0])
    net = ExtremaNet()
    gx, gy = ops.GradOperation(get_all=True)(net)(Tensor(x), Tensor(y))
    h = 1e-6
    for i, (g, v) in enumerate([(gx, x), (gy, y)]):
        num = np.zeros_like(v)
        for j in np.ndindex(v.shape):
            args_p, args_m = [x.copy(), y.copy()], [x.copy(), y.copy()]
            args_p[i][j] += h
            args_m[i][j] -= h
            fp = net(*map(Tensor, args_p)).asnumpy().sum()
            fm = net(*map(Tensor, args_m)).asnumpy().sum()
            num[j] = (fp - fm) / (2 * h)
        np.testing.assert_allclose(g.asnumpy(), num, rtol=1e-6, atol=1e-8)


def test_eager_primitives_and_functional_forms():
    x = Tensor(np.array([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]], np.float32))
    a = x.asnumpy()
    np.testing.assert_array_equal(ops.ReduceMax(keep_dims=True)(x, 1).asnumpy(), a.max(1, keepdims=True))
    np.testing.assert_array_equal(ops.ReduceMin()(x).asnumpy(), a.min())
    np.testing.assert_array_equal(ops.reduce_max(x, 0).asnumpy(), a.max(0))
    np.testing.assert_array_equal(ops.amin(x, 1).asnumpy(), a.min(1))
    np.testing.assert_array_equal(x.max().asnumpy(), 6.0)
    np.testing.assert_array_equal(x.min(axis=1, keepdims=True).asnumpy(), a.min(1, keepdims=True))
    np.testing.assert_array_equal(ops.Select()(x > 2.0, x, 0.0).asnumpy(), np.where(a > 2, a, 0))
    np.testing.assert_array_equal(ops.where(x > 2.0, 1.0, x).asnumpy(), np.where(a > 2, 1, a))
    np.testing.assert_array_equal(ops.select(x > 2.0, 1, 0).asnumpy(), np.where(a > 2, 1, 0))
    np.testing.assert_array_equal(ops.select(x, x, -x).asnumpy(), a)  # a non-bool condition means != 0
    np.testing.assert_array_equal(ops.Maximum()(x, 3.0).asnumpy(), np.maximum(a, 3))
    np.testing.assert_array_equal(ops.minimum(x, 3.0).asnumpy(), np.minimum(a, 3))
    for cls, fn, ref in [
        (ops.Greater, ops.greater, np.greater),
        (ops.GreaterEqual, ops.ge, np.greater_equal),
        (ops.Less, ops.less, np.less),
        (ops.LessEqual, ops.le, np.less_equal),
        (ops.Equal, ops.eq, np.equal),
        (ops.NotEqual, ops.not_equal, np.not_equal),
    ]:
        for got in (cls()(x, 3.0), fn(x, 3.0)):
            assert got.asnumpy().dtype == np.bool_
            np.testing.assert_array_equal(got.asnumpy(), ref(a, 3.0))


def _hessian_fn(x):
    return np.sum(np.where(x > 0, x**3, np.sin(x))) + np.max(x * x, axis=0).sum() + np.sum(np.maximum(x, 0.5) ** 2)


def _gradient_fn(x):
    return ops.GradOperation()(_hessian_fn)(x)


def test_second_derivatives_through_select_maximum_and_reduce_max(pynative):
    x = np.array([[1.5, -0.7], [0.3, -2.0]])
    got = ops.GradOperation()(_gradient_fn)(Tensor(x)).asnumpy()
    # d2/dx2 of each term: 6x or -sin(x); 2 where x*x is the column max; 2 where x > 0.5
    expect = np.where(x > 0, 6 * x, -np.sin(x)) + 2 * (x * x == (x * x).max(axis=0)) + 2 * (x > 0.5)
    np.testing.assert_allclose(got, expect, rtol=1e-12)
