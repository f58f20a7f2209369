"""``laplacian`` / ``value_grad_and_laplacian`` (the forward Laplacian) against the trace of the
nested-AD Hessian and against finite differences in float64; gradients of losses built on it
with respect to weights (first and second order); both modes; a look at the generated code."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Parameter, Tensor, nn, ops
from s2s_ad.api import generated_source

pytestmark = pytest.mark.usefixtures("pynative")

RNG = np.random.default_rng(14)
W1 = RNG.standard_normal((8, 6)) / 2
B1 = RNG.standard_normal(6) / 2
W2 = RNG.standard_normal((6, 4)) / 2
W3 = RNG.standard_normal((4, 1))


def _fd_laplacian(f, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central second differences along each coordinate, summed (f64)."""
    f0 = np.asarray(f(Tensor(x)).asnumpy())
    out = np.zeros_like(f0)
    for idx in np.ndindex(x.shape):
        p, m = x.copy(), x.copy()
        p[idx] += h
        m[idx] -= h
        out += (f(Tensor(p)).asnumpy() - 2 * f0 + f(Tensor(m)).asnumpy()) / h**2
    return out


def _hessian_trace(f, x: np.ndarray) -> float:
    h = s2s_ad.hessian(f)(Tensor(x)).asnumpy().reshape(x.size, x.size)
    return float(np.trace(h))


def _mlp(act):
    def u(x):
        d = x.shape[0]
        h = act(ops.matmul(x.reshape(1, d), Tensor(W1[:d])) + Tensor(B1))
        h = act(ops.matmul(h, Tensor(W2)))
        return ops.matmul(h, Tensor(W3))[0, 0]

    return u


ACTS = {
    "tanh": ops.tanh,
    "sin": ops.sin,
    "softplus": ops.softplus,
    "sigmoid": ops.sigmoid,
    "gelu_like": lambda z: z * ops.sigmoid(1.702 * z),
    "exp_sq": lambda z: ops.exp(-z * z),
}


@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("d", [1, 3, 8])
def test_mlp_against_hessian_trace_and_finite_differences(act, d):
    u = _mlp(ACTS[act])
    x = RNG.uniform(-1, 1, d)
    lap = float(s2s_ad.laplacian(u)(Tensor(x)).asnumpy())
    np.testing.assert_allclose(lap, _hessian_trace(u, x), rtol=1e-9, atol=1e-10)
    if d == 3:
        np.testing.assert_allclose(lap, _fd_laplacian(u, x), rtol=1e-5, atol=1e-6)


def test_both_modes_and_value_and_grad(mode):
    u = _mlp(ops.tanh)
    x = RNG.uniform(-1, 1, 3)
    v, g, lap = s2s_ad.value_grad_and_laplacian(u)(Tensor(x))
    np.testing.assert_allclose(v.asnumpy(), u(Tensor(x)).asnumpy(), rtol=1e-12)
    np.testing.assert_allclose(g.asnumpy(), s2s_ad.grad(u)(Tensor(x)).asnumpy(), rtol=1e-10)
    assert g.shape == (3,)
    np.testing.assert_allclose(lap.asnumpy(), _hessian_trace(u, x), rtol=1e-9)


def test_float32_against_float64():
    u = _mlp(ops.tanh)
    x = RNG.uniform(-1, 1, 3)
    lap64 = s2s_ad.laplacian(u)(Tensor(x)).asnumpy()

    def u32(x):
        d = x.shape[0]
        h = ops.tanh(ops.matmul(x.reshape(1, d), Tensor(W1[:d].astype(np.float32))) + Tensor(B1.astype(np.float32)))
        h = ops.tanh(ops.matmul(h, Tensor(W2.astype(np.float32))))
        return ops.matmul(h, Tensor(W3.astype(np.float32)))[0, 0]

    lap32 = s2s_ad.laplacian(u32)(Tensor(x.astype(np.float32))).asnumpy()
    assert lap32.dtype == np.float32
    np.testing.assert_allclose(lap32, lap64, rtol=2e-4, atol=1e-5)


# ---------------------------------------------------------------------------- op coverage
A = RNG.standard_normal((3, 3))


def products(x):  # x-dependent factors: elementwise, matmul and batch matmul
    m = x.reshape(3, 1) * ops.sin(x).reshape(1, 3)  # outer product, broadcasting
    p = ops.matmul(m, ops.tanh(m), transpose_b=True)
    q = ops.matmul(ops.exp(0.3 * m), m, transpose_a=True)
    bm = ops.BatchMatMul()(ops.stack([m, q]), ops.stack([p, m]))
    return ops.sum(p * q) + ops.sum(ops.cos(bm)) + ops.sum(x * x * x)


def reductions(x):  # sums, means, an extremum (generic rule), indexing, transposes, broadcasting
    m = ops.exp(0.2 * x.reshape(2, 3)) + Tensor(A[:2])
    s = ops.sum(ops.tanh(m), axis=1, keepdims=True) * ops.mean(m * m, axis=0)
    t = ops.transpose(s, (1, 0))[1:, :] + ops.reduce_max(m * m, 1)
    return ops.sum(ops.log1p(t * t)) + ops.amax(ops.sin(x))


def divisions(x):  # quotients, powers, sqrt, two-argument ops
    y = x.reshape(2, 3)
    return ops.sum(ops.sqrt(1.5 + y * y) / (2.0 + ops.cos(y)) + ops.atan2(y, 1.0 + y * y) + (1.2 + y * y) ** 1.5)


@pytest.mark.parametrize("f", [products, reductions, divisions], ids=lambda f: f.__name__)
def test_structural_and_binary_ops(f):
    x = RNG.uniform(-1, 1, 6) if f is not products else RNG.uniform(-1, 1, 3)
    lap = float(s2s_ad.laplacian(f)(Tensor(x)).asnumpy())
    np.testing.assert_allclose(lap, _hessian_trace(f, x), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(lap, _fd_laplacian(f, x), rtol=1e-5, atol=1e-5)


def test_vector_output_and_matrix_argument(mode):
    """Each output element's own Laplacian; a 2-D argument (all its elements)."""

    def f(x):  # (2, 2) -> (3,)
        z = ops.tanh(ops.matmul(x, Tensor(A[:2, :2])))
        return ops.stack([ops.sum(z * z), ops.sum(ops.sin(x) * z), ops.sum(ops.exp(z[0]))])

    x = RNG.uniform(-1, 1, (2, 2))
    v, g, lap = s2s_ad.value_grad_and_laplacian(f)(Tensor(x))
    assert lap.shape == (3,) and g.shape == (3, 2, 2)
    for i in range(3):
        fi = lambda y, i=i: f(y)[i]  # noqa: E731
        np.testing.assert_allclose(lap.asnumpy()[i], _hessian_trace(fi, x), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(g.asnumpy(), s2s_ad.jacfwd(f)(Tensor(x)).asnumpy(), rtol=1e-10)
    np.testing.assert_allclose(v.asnumpy(), f(Tensor(x)).asnumpy(), rtol=1e-12)


def test_second_argument_and_tuple_output():
    def f(w, x):
        y = ops.sin(w * x) * x
        return ops.sum(y), y

    w, x = RNG.uniform(-1, 1, 4), RNG.uniform(-1, 1, 4)
    l_sum, l_y = s2s_ad.laplacian(f, argnums=1)(Tensor(w), Tensor(x))
    # d²/dx² (sin(w x) x) = 2 w cos(w x) - w² x sin(w x), elementwise
    exact = 2 * w * np.cos(w * x) - w * w * x * np.sin(w * x)
    np.testing.assert_allclose(l_y.asnumpy(), exact, rtol=1e-10)
    np.testing.assert_allclose(l_sum.asnumpy(), exact.sum(), rtol=1e-10)


def test_control_flow_regions(mode):
    def f(x):
        y = x
        for _ in range(3):
            y = ops.sin(y) + 0.5 * y * y.sum()
        if y.sum() > 0:
            z = ops.exp(0.3 * y)
        else:
            z = y * y
        return ops.sum(z * x)

    x = RNG.uniform(-1, 1, 3)
    lap = float(s2s_ad.laplacian(f)(Tensor(x)).asnumpy())
    np.testing.assert_allclose(lap, _hessian_trace(f, x), rtol=1e-8)
    np.testing.assert_allclose(lap, _fd_laplacian(f, x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- composition
class Net(nn.Cell):
    def __init__(self) -> None:
        super().__init__()
        self.w1 = Parameter(Tensor(W1[:2]), name="w1")
        self.b1 = Parameter(Tensor(B1), name="b1")
        self.w2 = Parameter(Tensor(W2[:, :1]), name="w2")

    def construct(self, x):
        h = ops.tanh(ops.matmul(x.reshape(1, 2), self.w1) + self.b1)
        return ops.sum(ops.matmul(h, self.w2))


def _pinn_loss(net, x):
    r = s2s_ad.laplacian(net)(x) - ops.sum(ops.sin(x))
    return r * r


def _fd_weights(loss, params, h=1e-6) -> list[np.ndarray]:
    out = []
    for p in params:
        base = p.asnumpy().copy()
        g = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            for s in (1, -1):
                v = base.copy()
                v[idx] += s * h
                p.set_data(Tensor(v))
                g[idx] += s * float(loss().asnumpy()) / (2 * h)
        p.set_data(Tensor(base))
        out.append(g)
    return out


def test_grad_of_a_pinn_loss_wrt_weights(mode):
    net = Net()
    x = Tensor(RNG.uniform(-1, 1, 2))
    params = net.trainable_params()
    grads = s2s_ad.grad(lambda x: _pinn_loss(net, x), None, params)(x)
    ref = _fd_weights(lambda: _pinn_loss(net, x), params)
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(g.asnumpy(), r, rtol=1e-6, atol=1e-8)
    # against the same loss on the nested-AD Laplacian
    nested = s2s_ad.grad(lambda x: _nested_loss(net, x), None, params)(x)
    for g, r in zip(grads, nested):
        np.testing.assert_allclose(g.asnumpy(), r.asnumpy(), rtol=1e-9, atol=1e-12)


def _u_x(net, y):
    return s2s_ad.grad(net)(y)[0]


def _u_y(net, y):
    return s2s_ad.grad(net)(y)[1]


def _hessian_trace_ad(net, x):
    """``u_xx + u_yy`` by reverse over reverse mode."""
    return s2s_ad.grad(_u_x, 1)(net, x)[0] + s2s_ad.grad(_u_y, 1)(net, x)[1]


def _nested_loss(net, x):
    r = _hessian_trace_ad(net, x) - ops.sum(ops.sin(x))
    return r * r


def _u_of_weight(w2, y):
    h = ops.tanh(ops.matmul(y.reshape(1, 2), Tensor(W1[:2])) + Tensor(B1))
    return ops.sum(ops.matmul(h, w2))


def test_second_order_in_weights():
    """The Hessian-vector product of the loss in one weight, forward over reverse through the
    forward Laplacian, against finite differences of its gradient."""
    x = Tensor(RNG.uniform(-1, 1, 2))
    w = Tensor(W2[:, :1])

    def loss_of(w2):
        r = s2s_ad.laplacian(_u_of_weight, argnums=1)(w2, x) - 1.0
        return r * r

    v = RNG.standard_normal(w.shape)
    hv = s2s_ad.hvp(loss_of, Tensor(w.asnumpy()), Tensor(v)).asnumpy()
    grad = s2s_ad.grad(loss_of)
    h = 1e-6
    fd = (grad(Tensor(w.asnumpy() + h * v)).asnumpy() - grad(Tensor(w.asnumpy() - h * v)).asnumpy()) / (2 * h)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-8)


def test_inside_jit_and_over_points():
    """Inside a compiled function, once per point of a batch."""
    u = _mlp(ops.tanh)
    pts = RNG.uniform(-1, 1, (4, 3))

    @s2s_ad.jit
    def laps(p):
        return ops.stack([s2s_ad.laplacian(u)(p[i]) for i in range(4)])

    got = laps(Tensor(pts)).asnumpy()
    np.testing.assert_allclose(got, [_hessian_trace(u, p) for p in pts], rtol=1e-9)


def test_vmap_over_points_and_grad_through_it(mode):
    """``vmap(laplacian(u))`` at a batch of points, and the gradient of a loss on it with
    respect to the weights, against the point-by-point Laplacian and finite differences."""
    net = Net()
    pts = RNG.uniform(-1, 1, (5, 2))
    lap = s2s_ad.vmap(s2s_ad.laplacian(net))
    got = lap(Tensor(pts)).asnumpy()
    assert got.shape == (5,)
    np.testing.assert_allclose(got, [s2s_ad.laplacian(net)(Tensor(p)).asnumpy() for p in pts], rtol=1e-12)
    np.testing.assert_allclose(got, [_hessian_trace(net, p) for p in pts], rtol=1e-9)

    def loss(p):
        r = lap(p) - ops.sin(p[:, 0])
        return ops.mean(r * r)

    params = net.trainable_params()
    grads = s2s_ad.grad(loss, None, params)(Tensor(pts))
    ref = _fd_weights(lambda: loss(Tensor(pts)), params)
    for g, r in zip(grads, ref):
        np.testing.assert_allclose(g.asnumpy(), r, rtol=1e-6, atol=1e-8)


def test_laplacian_of_a_vmapped_function():
    """The other nesting: the Laplacian of a function that maps a per-row function over its
    argument's rows (all ``x.size`` directions)."""

    def row(r):
        return ops.sum(ops.tanh(r) * r)

    def f(x):
        return ops.sum(s2s_ad.vmap(row)(x) ** 2)

    x = RNG.uniform(-1, 1, (2, 3))
    lap = float(s2s_ad.laplacian(f)(Tensor(x)).asnumpy())
    np.testing.assert_allclose(lap, _hessian_trace(f, x), rtol=1e-9)


# ---------------------------------------------------------------------------- the generated code
def test_generated_code_is_one_forward_sweep():
    """Per layer: the value's product, one product of the stacked directions and one of the
    Laplacian; the Gram term is a sum over the direction axis; no reverse sweep."""
    u = _mlp(ops.tanh)
    src = generated_source(s2s_ad.laplacian(u), Tensor(RNG.uniform(-1, 1, 8)))
    assert src.count("np.dot(") <= 7, src
    assert "_lap" in src and "axis=0" in src
    assert "adjoint" not in src


def test_errors():
    u = _mlp(ops.tanh)
    with pytest.raises(s2s_ad.ArgumentValueError, match="argnums 1 is out of range"):
        s2s_ad.laplacian(u, argnums=1)(Tensor(np.ones(3)))
    with pytest.raises(s2s_ad.ArgumentError, match="argnums must be an int"):
        s2s_ad.laplacian(u, argnums=(0, 1))
    with pytest.raises(s2s_ad.ArgumentError, match="one tensor"):
        s2s_ad.laplacian(lambda t: ops.sum(t[0] * t[1]))((Tensor(np.ones(2)), Tensor(np.ones(2))))
