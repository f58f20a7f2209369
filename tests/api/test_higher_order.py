"""Higher-order derivatives through the public API: derivatives of derivatives built by nesting
``s2s_ad.grad``, ``s2s_ad.jvp``, ``s2s_ad.vjp``, ``ops.GradOperation`` (in Cells, MindSpore's
``GradSec`` pattern) and ``nn.Jvp``, in every mix of reverse and forward mode up to the 4th
order, checked against SymPy's derivatives, analytic partials and finite differences; and a
regression guard on the size of the n-th derivative's program."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy

import s2s_ad
from s2s_ad import Parameter, Tensor, nn, ops
from s2s_ad.api import trace_program
from s2s_ad.ir import Aval

# Plain numpy unless a test asks for both backends (the ``mode`` fixture applies after this).
pytestmark = pytest.mark.usefixtures("pynative")


def t64(a) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float64))


# ---------------------------------------------------------------------------- the bump function


def g(x):
    return ops.sin(x) * ops.exp(-x * x) / (1 + x * x)


SX = sympy.Symbol("x", real=True)
G = sympy.sin(SX) * sympy.exp(-SX * SX) / (1 + SX * SX)
POINTS = np.array([-1.3, 0.2, 0.7, 1.9])


def g_derivative(n: int, x: np.ndarray) -> np.ndarray:
    """The n-th derivative of ``g`` from SymPy, evaluated numerically."""
    return sympy.lambdify(SX, sympy.diff(G, SX, n), "numpy")(x)


# One derivative of an elementwise function of one input, elementwise, by each API. Each takes
# the function to differentiate and returns its derivative, itself a function of one input.


def rev(f):
    """``s2s_ad.grad``: the gradient of sum(f(x)), which is f' elementwise."""
    return s2s_ad.grad(f)


def fwd(f):
    """``s2s_ad.jvp`` with a tangent of ones: f' elementwise."""

    def d(x):
        return s2s_ad.jvp(f, x, np.ones_like(x))[1]

    return d


def vjp(f):
    """``s2s_ad.vjp`` with a cotangent of ones."""

    def d(x):
        return s2s_ad.vjp(f, x, np.ones_like(x))[1]

    return d


def gradop(f):
    """``ops.GradOperation()`` (its sens is ones)."""
    return ops.GradOperation()(f)


def njvp(f):
    """An ``nn.Jvp`` Cell, called inside compiled code."""
    cell = nn.Jvp(f)

    def d(x):
        return cell(x, np.ones_like(x))[1]

    return d


TRANSFORMS = {"rev": rev, "fwd": fwd, "vjp": vjp, "gradop": gradop, "njvp": njvp}


def nested(mix: str):
    """The derivative of ``g`` for ``mix``, outermost transform first ("fwd-rev" is forward
    over reverse: ``fwd(rev(g))``)."""
    f = g
    for name in reversed(mix.split("-")):
        f = TRANSFORMS[name](f)
    return f


# Every mix of reverse and forward mode up to the 4th order, and the other APIs in the mix.
MIXES = ["-".join(m) for n in range(1, 5) for m in itertools.product(("rev", "fwd"), repeat=n)]
MIXES += [
    "vjp-vjp",
    "gradop-gradop",
    "njvp-njvp",
    "gradop-fwd-vjp",
    "njvp-rev-vjp",
    "vjp-njvp-gradop-fwd",
    "fwd-gradop-rev-njvp",
]


@pytest.mark.parametrize("mix", MIXES)
def test_bump_derivatives_match_sympy(mix):
    n = mix.count("-") + 1
    d = nested(mix)
    ref = g_derivative(n, POINTS)
    # a vector, elementwise
    out = d(t64(POINTS))
    assert out.shape == POINTS.shape and out.dtype == s2s_ad.float64
    np.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-11, atol=1e-12)
    # scalars
    for x, r in zip(POINTS, ref):
        out = d(t64(x))
        assert out.shape == ()
        assert float(out.asnumpy()) == pytest.approx(r, rel=1e-11, abs=1e-12)


@pytest.mark.parametrize("mix", ["rev-rev-rev", "fwd-rev-rev", "rev-fwd-rev-fwd"])
def test_bump_derivatives_both_backends(mode, mix):
    n = mix.count("-") + 1
    out = nested(mix)(t64(POINTS)).asnumpy()
    np.testing.assert_allclose(out, g_derivative(n, POINTS), rtol=1e-11, atol=1e-12)


def test_inside_jit_equals_direct():
    """A derivative called inside compiled code (inlined) equals the direct call."""
    d = nested("fwd-rev-rev")
    jitted = s2s_ad.jit(d)
    np.testing.assert_allclose(jitted(t64(POINTS)).asnumpy(), d(t64(POINTS)).asnumpy(), rtol=1e-14)


# ---------------------------------------------------------------------------- Cells: GradSec


class Bump(nn.Cell):
    def construct(self, x):
        return ops.sin(x) * ops.exp(-x * x) / (1 + x * x)


class Grad(nn.Cell):
    """The seed's pattern: a Cell whose construct calls a GradOperation of another Cell."""

    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation()
        self.network = network

    def construct(self, x):
        gout = self.grad(self.network)(x)
        return gout


def test_gradsec_to_third_order(mode):
    first = Grad(Bump())
    second = Grad(first)
    third = Grad(second)
    x = t64(POINTS)
    for n, cell in enumerate((first, second, third), start=1):
        np.testing.assert_allclose(cell(x).asnumpy(), g_derivative(n, POINTS), rtol=1e-11, atol=1e-12)


class Sin(nn.Cell):
    def __init__(self):
        super().__init__()
        self.sin = ops.Sin()

    def construct(self, x):
        return self.sin(x)


def test_gradsec_third_derivative_of_sin_float32(mode):
    """The seed's example one order further: sin''' = -cos, and float32 stays float32."""
    x = Tensor(np.array([1.0], dtype=np.float32))
    out = Grad(Grad(Grad(Sin())))(x)
    assert out.dtype == s2s_ad.float32 and out.shape == (1,)
    np.testing.assert_allclose(out.asnumpy(), [-np.cos(1.0)], rtol=1e-6)


# ---------------------------------------------------------------------------- mixed partials

SY = sympy.Symbol("y", real=True)
F = SX * SX * SY + sympy.sin(SX) * SY**3 + sympy.exp(SX * SY)
XS = np.array([0.4, -0.9, 1.3])
YS = np.array([1.1, 0.5, -0.7])


def partial(*wrt: sympy.Symbol) -> np.ndarray:
    """d^k F / d wrt[0] ... d wrt[k-1] at (XS, YS), elementwise."""
    return sympy.lambdify((SX, SY), sympy.diff(F, *wrt), "numpy")(XS, YS) * np.ones_like(XS)


class TwoInputs(nn.Cell):
    def construct(self, x, y):
        return x * x * y + ops.sin(x) * y * y * y + ops.exp(x * y)


class GradAll(nn.Cell):
    """First order: ``(f_x, f_y)``."""

    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation(get_all=True, sens_param=False)
        self.network = network

    def construct(self, x, y):
        return self.grad(self.network)(x, y)


class GradSec(nn.Cell):
    """The seed's pattern: the sens selects which first derivative is differentiated."""

    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation(get_all=True, sens_param=True)
        self.network = network
        self.sens1 = t64(np.ones(3))
        self.sens2 = t64(np.zeros(3))

    def construct(self, x, y):
        dxdx, dxdy = self.grad(self.network)(x, y, (self.sens1, self.sens2))
        dydx, dydy = self.grad(self.network)(x, y, (self.sens2, self.sens1))
        return dxdx, dxdy, dydx, dydy


class GradThird(nn.Cell):
    """Third order over GradSec: the sens weighs GradSec's four outputs."""

    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation(get_all=True, sens_param=True)
        self.network = network

    def construct(self, x, y, sens):
        return self.grad(self.network)(x, y, sens)


def test_mixed_partials_by_sens_tuples(mode):
    x, y = t64(XS), t64(YS)
    fx, fy = GradAll(TwoInputs())(x, y)
    np.testing.assert_allclose(fx.asnumpy(), partial(SX), rtol=1e-12)
    np.testing.assert_allclose(fy.asnumpy(), partial(SY), rtol=1e-12)
    second = GradSec(GradAll(TwoInputs()))
    dxdx, dxdy, dydx, dydy = second(x, y)
    np.testing.assert_allclose(dxdx.asnumpy(), partial(SX, SX), rtol=1e-12)
    np.testing.assert_allclose(dxdy.asnumpy(), partial(SX, SY), rtol=1e-12)
    np.testing.assert_allclose(dydx.asnumpy(), partial(SX, SY), rtol=1e-12)
    np.testing.assert_allclose(dydy.asnumpy(), partial(SY, SY), rtol=1e-12)
    # third order: weights c of (f_xx, f_xy, f_yx, f_yy); d/dx and d/dy of their weighted sum
    c = [t64(v) for v in np.random.default_rng(0).standard_normal((4, 3))]
    gx, gy = GradThird(second)(x, y, tuple(c))
    cn = [v.asnumpy() for v in c]
    fxxx, fxxy, fxyy, fyyy = partial(SX, SX, SX), partial(SX, SX, SY), partial(SX, SY, SY), partial(SY, SY, SY)
    np.testing.assert_allclose(gx.asnumpy(), cn[0] * fxxx + (cn[1] + cn[2]) * fxxy + cn[3] * fxyy, rtol=1e-11)
    np.testing.assert_allclose(gy.asnumpy(), cn[0] * fxxy + (cn[1] + cn[2]) * fxyy + cn[3] * fyyy, rtol=1e-11)


class GradAllSens(nn.Cell):
    """First order with a sens: ``(s f_x, s f_y)``."""

    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation(get_all=True, sens_param=True)
        self.network = network

    def construct(self, x, y, s):
        return self.grad(self.network)(x, y, s)


class GradOfGradWithSens(nn.Cell):
    """Second order with a sens at both levels: the gradients of ``a s f_x + b s f_y`` with
    respect to x, y and the inner sens s."""

    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation(get_all=True, sens_param=True)
        self.network = network

    def construct(self, x, y, s, a, b):
        return self.grad(self.network)(x, y, s, (a, b))


def test_sens_param_at_both_levels(mode):
    rng = np.random.default_rng(1)
    s, a, b = (rng.standard_normal(3) for _ in range(3))
    x, y = t64(XS), t64(YS)
    first = GradAllSens(TwoInputs())
    gx, gy = first(x, y, t64(s))
    np.testing.assert_allclose(gx.asnumpy(), s * partial(SX), rtol=1e-12)
    np.testing.assert_allclose(gy.asnumpy(), s * partial(SY), rtol=1e-12)
    hx, hy, hs = GradOfGradWithSens(first)(x, y, t64(s), t64(a), t64(b))
    fxx, fxy, fyy = partial(SX, SX), partial(SX, SY), partial(SY, SY)
    np.testing.assert_allclose(hx.asnumpy(), s * (a * fxx + b * fxy), rtol=1e-11)
    np.testing.assert_allclose(hy.asnumpy(), s * (a * fxy + b * fyy), rtol=1e-11)
    np.testing.assert_allclose(hs.asnumpy(), a * partial(SX) + b * partial(SY), rtol=1e-12)


def test_grad_with_positions_of_grad_with_sens():
    """``s2s_ad.grad(grad_position=(0, 1), sens_param=True)`` of a ``grad_position=(0, 1)``
    gradient: the same mixed partials through the functional API."""

    def f(x, y):
        return x * x * y + ops.sin(x) * y * y * y + ops.exp(x * y)

    first = s2s_ad.grad(f, grad_position=(0, 1))
    second = s2s_ad.grad(first, grad_position=(0, 1), sens_param=True)
    x, y = t64(XS), t64(YS)
    ones, zeros = t64(np.ones(3)), t64(np.zeros(3))
    dxdx, dxdy = second(x, y, (ones, zeros))
    dydx, dydy = second(x, y, (zeros, ones))
    np.testing.assert_allclose(dxdx.asnumpy(), partial(SX, SX), rtol=1e-12)
    np.testing.assert_allclose(dxdy.asnumpy(), partial(SX, SY), rtol=1e-12)
    np.testing.assert_allclose(dydx.asnumpy(), partial(SX, SY), rtol=1e-12)
    np.testing.assert_allclose(dydy.asnumpy(), partial(SY, SY), rtol=1e-12)


# ---------------------------------------------------------------------------- Hessian-vector products

RNG = np.random.default_rng(2024)
W = t64(RNG.standard_normal((4, 3)))
X0 = RNG.standard_normal(3)
V0 = RNG.standard_normal(3)


def mlp(x):
    return ops.sum(ops.tanh(ops.matmul(W, x.reshape((3, 1)))) ** 2)


def analytic_hessian(x: np.ndarray) -> np.ndarray:
    w = W.asnumpy()
    th = np.tanh(w @ x)
    # d/dz of d/dz tanh(z)^2 = 2 tanh (1 - tanh^2), elementwise in z = W x
    return w.T @ np.diag((2 - 6 * th**2) * (1 - th**2)) @ w


def fd_hvp(x: np.ndarray, v: np.ndarray, h: float = 1e-5) -> np.ndarray:
    grad = s2s_ad.grad(mlp)
    return (grad(t64(x + h * v)).asnumpy() - grad(t64(x - h * v)).asnumpy()) / (2 * h)


def hvp_forward_over_reverse(x, v):
    return s2s_ad.jvp(s2s_ad.grad(mlp), x, v)[1]


def hvp_reverse_over_forward(x, v):
    def directional(x):
        # the tangent of a scalar function is <grad f(x), v>
        return s2s_ad.jvp(mlp, x, v)[1]

    return s2s_ad.grad(directional)(x)


def hvp_reverse_over_reverse(x, v):
    def directional(x):
        return ops.sum(s2s_ad.grad(mlp)(x) * v)

    return s2s_ad.grad(directional)(x)


class MLP(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(W, name="w")

    def construct(self, x):
        return ops.sum(ops.tanh(ops.matmul(self.w, x.reshape((3, 1)))) ** 2)


class HvpCell(nn.Cell):
    """Forward over reverse with Cells: nn.Jvp of the seed's Grad pattern."""

    def __init__(self, network):
        super().__init__()
        self.jvp = nn.Jvp(Grad(network))

    def construct(self, x, v):
        return self.jvp(x, v)[1]


def test_hvp_forward_over_reverse_equals_reverse_over_forward(mode):
    x, v = t64(X0), t64(V0)
    h = analytic_hessian(X0) @ V0
    fd = fd_hvp(X0, V0)
    np.testing.assert_allclose(fd, h, rtol=1e-7, atol=1e-9)
    results = {
        "forward-over-reverse": hvp_forward_over_reverse(x, v).asnumpy(),
        "reverse-over-forward": hvp_reverse_over_forward(x, v).asnumpy(),
        "reverse-over-reverse": hvp_reverse_over_reverse(x, v).asnumpy(),
        "nn.Jvp over GradOperation": HvpCell(MLP())(x, v).asnumpy(),
        "jit(forward-over-reverse)": s2s_ad.jit(hvp_forward_over_reverse)(x, v).asnumpy(),
    }
    for name, r in results.items():
        assert r.shape == (3,), name
        np.testing.assert_allclose(r, results["forward-over-reverse"], rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(r, h, rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(r, fd, rtol=1e-7, atol=1e-9, err_msg=name)


def test_hessian_columns_by_hvp():
    """n HVPs with unit tangents give the (symmetric) Hessian."""
    x = t64(X0)
    cols = [hvp_forward_over_reverse(x, t64(e)).asnumpy() for e in np.eye(3)]
    hess = np.stack(cols, axis=1)
    np.testing.assert_allclose(hess, hess.T, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hess, analytic_hessian(X0), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- program size

# Equations of the optimised program of the n-th derivative grad(grad(...(g))) of the bump at a
# float64 scalar. Measured: 17, 37, 61, 76, 128, 170 for n = 1..6 (cluster-level SymPy
# differentiation and simplification); the bounds leave some slack.
MAX_EQNS = [20, 45, 70, 90, 150, 200]


def test_nth_derivative_program_stays_compact():
    f = g
    sizes = []
    for _ in MAX_EQNS:
        f = s2s_ad.grad(f)
        sizes.append(len(trace_program(f, Aval((), np.dtype(np.float64))).eqns))
    assert all(s <= m for s, m in zip(sizes, MAX_EQNS)), f"equations per order: {sizes}, bounds {MAX_EQNS}"


# ---------------------------------------------------------------------------- broadcasting in a cluster
# A value of a smaller shape (``a``) that meets a larger one by broadcasting in an elementwise
# cluster and is also used outside the cluster. Its gradient was counted once per broadcast
# copy (fixed in reverse.cluster_vjp by reducing the cotangent terms per output shape); found
# by tests/ops/test_higher_order_ops.py (div and pow with broadcasting, reverse over reverse
# over reverse), it showed at first order.


def shared_small_value(x, y):  # x (3,), y (2, 3)
    a = x * x
    return ops.sum(a * y) + ops.sum(a)


def scalar_broadcast(x, y):  # x (), y (2, 3)
    a = x * x
    return ops.sum(ops.exp(a + y) * a) + a


def column_broadcast(x, y):  # x (2, 1), y (2, 3)
    a = x * 3.0
    return ops.sum((a + y) ** 2) + ops.sum(a)


BROADCAST_CASES = [(shared_small_value, (3,)), (scalar_broadcast, ()), (column_broadcast, (2, 1))]
BROADCAST_IDS = [f.__name__ for f, _ in BROADCAST_CASES]
Y23 = np.random.default_rng(3).standard_normal((2, 3))


def fd_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    out = np.zeros_like(x)
    for j in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[j] = h
        out[j] = (float(f(t64(x + e), t64(Y23)).asnumpy()) - float(f(t64(x - e), t64(Y23)).asnumpy())) / (2 * h)
    return out


@pytest.mark.parametrize("f,shape", BROADCAST_CASES, ids=BROADCAST_IDS)
def test_cluster_outputs_of_different_shapes_first_order(f, shape):
    x = np.random.default_rng(4).standard_normal(shape)
    gx = s2s_ad.grad(f)(t64(x), t64(Y23)).asnumpy()
    np.testing.assert_allclose(gx, fd_gradient(f, x), rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("f,shape", BROADCAST_CASES, ids=BROADCAST_IDS)
def test_cluster_outputs_of_different_shapes_forward_mode(f, shape):
    rng = np.random.default_rng(4)
    x, u = rng.standard_normal(shape), rng.standard_normal(shape)
    tangent = s2s_ad.jvp(f, (t64(x), t64(Y23)), (t64(u), t64(np.zeros((2, 3)))))[1]
    assert float(tangent.asnumpy()) == pytest.approx(float(np.sum(fd_gradient(f, x) * u)), rel=1e-7, abs=1e-8)


@pytest.mark.parametrize("f,shape", BROADCAST_CASES, ids=BROADCAST_IDS)
def test_cluster_outputs_of_different_shapes_second_order(f, shape):
    """Hessian-vector products in x: forward over reverse, reverse over reverse, reverse over
    forward and finite differences of the gradient agree."""
    rng = np.random.default_rng(5)
    x, u = rng.standard_normal(shape), rng.standard_normal(shape)
    y, tu, zero = t64(Y23), t64(u), t64(np.zeros((2, 3)))
    grad = s2s_ad.grad(f)

    def ror(x, y):
        return ops.sum(grad(x, y) * tu)

    def rof(x, y):
        return s2s_ad.jvp(f, (x, y), (tu, zero))[1]

    h = 1e-5
    fd = (grad(t64(x + h * u), y).asnumpy() - grad(t64(x - h * u), y).asnumpy()) / (2 * h)
    fwd_rev = s2s_ad.jvp(grad, (t64(x), y), (tu, zero))[1].asnumpy()
    np.testing.assert_allclose(fwd_rev, fd, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(s2s_ad.grad(ror)(t64(x), y).asnumpy(), fwd_rev, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(s2s_ad.grad(rof)(t64(x), y).asnumpy(), fwd_rev, rtol=1e-10, atol=1e-12)
