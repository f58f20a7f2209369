"""Forward mode (``jvp``) against reverse mode (``vjp``) by the dot-product test
⟨J·u, w⟩ = ⟨u, Jᵀ·w⟩ in float64 on composite networks, against finite differences, and a
look at the generated code: forward mode is a real tangent sweep, not reverse mode in disguise."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, nn, ops
from s2s_ad import dtype as mstype
from s2s_ad.api import JvpFunction, generated_source, vjp_function

# Plain numpy unless a test asks for both backends (the ``mode`` fixture applies after this).
pytestmark = pytest.mark.usefixtures("pynative")


# ---------------------------------------------------------------------------- helpers


def _leaves(x) -> list[np.ndarray]:
    if isinstance(x, (tuple, list)):
        return [leaf for v in x for leaf in _leaves(v)]
    return [x.asnumpy() if isinstance(x, Tensor) else np.asarray(x)]


def _like(x, rng):
    """Random float64 Tensors structured like ``x``."""
    if isinstance(x, (tuple, list)):
        return type(x)(_like(v, rng) for v in x)
    return Tensor(rng.standard_normal(x.shape))


def _inner(a, b) -> float:
    la, lb = _leaves(a), _leaves(b)
    assert len(la) == len(lb)
    for u, v in zip(la, lb):
        assert u.shape == v.shape, f"{u.shape} != {v.shape}"
    return float(sum(np.vdot(u, v) for u, v in zip(la, lb)))


def _same_structure(a, b) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (
            isinstance(a, tuple)
            and isinstance(b, tuple)
            and len(a) == len(b)
            and all(_same_structure(u, v) for u, v in zip(a, b))
        )
    return isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and a.dtype == b.dtype


def dot_product_test(fn, inputs: tuple, seed: int = 0, rtol: float = 1e-10):
    """jvp and vjp of ``fn`` at ``inputs`` satisfy ⟨J·u, w⟩ = ⟨u, Jᵀ·w⟩ for random u, w.
    Returns ``(output, J·u, u)`` for further checks."""
    rng = np.random.default_rng(seed)
    u = _like(inputs, rng)
    one = len(inputs) == 1
    out, ju = s2s_ad.jvp(fn, inputs[0] if one else inputs, u[0] if one else u)
    assert _same_structure(ju, out), "the tangent output must be structured like the output"
    w = _like(out, rng)
    out2, jtw = s2s_ad.vjp(fn, inputs[0] if one else inputs, w)
    for a, b in zip(_leaves(out), _leaves(out2)):
        # two programs computing the value: equal up to the last bits of float sums
        np.testing.assert_allclose(a, b, rtol=1e-6 if np.asarray(a).dtype == np.float32 else 1e-13)
    if one:
        assert isinstance(jtw, Tensor), "vjp of a one-input function gives a bare gradient"
        jtw = (jtw,)
    assert _same_structure(jtw, tuple(inputs))
    lhs, rhs = _inner(ju, w), _inner(u, jtw)
    assert abs(lhs - rhs) <= rtol * max(abs(lhs), abs(rhs)), f"<Ju, w> = {lhs!r} but <u, J^T w> = {rhs!r}"
    return out, ju, u


def fd_jvp(f, args, tangents, eps=1e-6):
    """Central-difference directional derivative of the numpy function ``f``."""
    hi = [a + eps * t for a, t in zip(args, tangents)]
    lo = [a - eps * t for a, t in zip(args, tangents)]
    fh, fl = f(*hi), f(*lo)
    if isinstance(fh, tuple):
        return [(a - b) / (2 * eps) for a, b in zip(_leaves(fh), _leaves(fl))]
    return [(fh - fl) / (2 * eps)]


def t64(a) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float64))


RNG = np.random.default_rng(2024)


# ---------------------------------------------------------------------------- networks under test


def mlp(x, w1, b1, w2, b2):
    h = ops.tanh(ops.matmul(x, w1.T) + b1)
    return ops.matmul(h, w2.T) + b2


def np_mlp(x, w1, b1, w2, b2):
    return np.tanh(x @ w1.T + b1) @ w2.T + b2


MLP_INPUTS = (
    t64(RNG.standard_normal((5, 3))),
    t64(RNG.standard_normal((4, 3))),
    t64(RNG.standard_normal(4)),
    t64(RNG.standard_normal((2, 4))),
    t64(RNG.standard_normal(2)),
)


class DenseMLP(nn.Cell):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Dense(3, 4, activation="tanh", dtype=mstype.float64)
        self.l2 = nn.Dense(4, 2, dtype=mstype.float64)

    def construct(self, x):
        return self.l2(self.l1(x))


def mix(a, b, c):
    h = ops.matmul(a, b)  # (3, 4)
    h = h * c + ops.exp(c) * 0.1  # broadcasting (4,)
    s = h.sum(1, keepdims=True)  # (3, 1)
    m = ops.reduce_mean(h * h, 0)  # (4,)
    r = h.reshape((2, 6)).transpose((1, 0))  # (6, 2)
    p = ops.transpose(r, (1, 0))[1, 1:5]  # (4,)
    q = a[:, 0:2] * a.T[1:2, :].T  # (3, 2) * (3, 1)
    return ops.tanh(s) * m + p + q.sum() + ops.sin(ops.matmul(q.T, a)).mean()


def np_mix(a, b, c):
    h = a @ b
    h = h * c + np.exp(c) * 0.1
    s = h.sum(1, keepdims=True)
    m = np.mean(h * h, 0)
    p = h.reshape(2, 6).T.T[1, 1:5]
    q = a[:, 0:2] * a.T[1:2, :].T
    return np.tanh(s) * m + p + q.sum() + np.sin(q.T @ a).mean()


MIX_INPUTS = (t64(RNG.standard_normal((3, 2))), t64(RNG.standard_normal((2, 4))), t64(RNG.standard_normal(4)))


def multi(x, y):
    p = x * y
    return p.sum(), (ops.exp(x) - y, p[0:2] * 2.0 + ops.sin(y[1:3]))


def np_multi(x, y):
    p = x * y
    return p.sum(), (np.exp(x) - y, p[0:2] * 2.0 + np.sin(y[1:3]))


MULTI_INPUTS = (t64([0.1, -0.7, 0.3]), t64([1.0, 2.0, -3.0]))

IDX = Tensor(np.array([[1, -2, 3], [0, 4, -1]], np.int32))


def with_ints(x, y):
    # Integer tensors and numbers mixed in; only float inputs carry tangents.
    k = IDX * 2 + 1
    kf = k.astype(mstype.float64)
    z = x * k + y**2 * kf + y**3 * (IDX.sum() + 2)
    z = ops.select(x > 0.0, z, z * 0.5)
    return ops.sqrt(z * z + 1.0) / (IDX.sum() + 2) + x**3 - ops.abs(y) * IDX


def np_with_ints(x, y):
    idx = IDX.asnumpy()
    k = idx * 2 + 1
    z = x * k + y**2 * k + y**3 * (idx.sum() + 2)
    z = np.where(x > 0.0, z, z * 0.5)
    return np.sqrt(z * z + 1.0) / (idx.sum() + 2) + x**3 - np.abs(y) * idx


INT_INPUTS = (t64(RNG.standard_normal((2, 3))), t64(RNG.uniform(0.5, 1.5, (2, 3)) * np.array([1, -1, 1])))


def pair_input(p, c):
    a, b = p
    return a * b + ops.cos(c) * a


# ---------------------------------------------------------------------------- dot-product tests


def test_mlp_weights_as_inputs(mode):
    out, ju, u = dot_product_test(mlp, MLP_INPUTS)
    args = [x.asnumpy() for x in MLP_INPUTS]
    np.testing.assert_allclose(out.asnumpy(), np_mlp(*args), rtol=1e-12)
    (expected,) = fd_jvp(np_mlp, args, _leaves(u))
    np.testing.assert_allclose(ju.asnumpy(), expected, rtol=1e-7, atol=1e-9)


def test_dense_mlp_cell_through_nn_jvp_and_nn_vjp():
    s2s_ad.set_seed(5)
    net = DenseMLP()
    x = t64(RNG.standard_normal((5, 3)))
    u, w = t64(RNG.standard_normal((5, 3))), t64(RNG.standard_normal((5, 2)))
    out, ju = nn.Jvp(net)(x, u)
    out2, jtw = nn.Vjp(net)(x, w)
    np.testing.assert_allclose(out.asnumpy(), out2.asnumpy(), rtol=1e-13)
    lhs, rhs = _inner(ju, w), _inner(u, jtw)
    assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), abs(rhs))
    # ... and the same as the functional forms.
    np.testing.assert_allclose(ju.asnumpy(), s2s_ad.jvp(net, x, u)[1].asnumpy(), rtol=1e-14)
    w1, b1, w2, b2 = (p.asnumpy() for p in net.trainable_params())
    (expected,) = fd_jvp(lambda v: np_mlp(v, w1, b1, w2, b2), [x.asnumpy()], [u.asnumpy()])
    np.testing.assert_allclose(ju.asnumpy(), expected, rtol=1e-7, atol=1e-9)


def test_matmul_reductions_broadcasting_indexing_reshape_transpose():
    out, ju, u = dot_product_test(mix, MIX_INPUTS)
    args = [x.asnumpy() for x in MIX_INPUTS]
    np.testing.assert_allclose(out.asnumpy(), np_mix(*args), rtol=1e-12)
    (expected,) = fd_jvp(np_mix, args, _leaves(u))
    np.testing.assert_allclose(ju.asnumpy(), expected, rtol=1e-7, atol=1e-8)


def test_multi_output_function():
    out, ju, u = dot_product_test(multi, MULTI_INPUTS)
    assert isinstance(ju, tuple) and isinstance(ju[1], tuple) and len(ju[1]) == 2
    assert ju[0].shape == () and ju[1][0].shape == (3,) and ju[1][1].shape == (2,)
    expected = fd_jvp(np_multi, [x.asnumpy() for x in MULTI_INPUTS], _leaves(u))
    for a, e in zip(_leaves(ju), expected):
        np.testing.assert_allclose(a, e, rtol=1e-7, atol=1e-9)


def test_integers_mixed_in():
    out, ju, u = dot_product_test(with_ints, INT_INPUTS)
    assert out.dtype == mstype.float64 and ju.dtype == mstype.float64
    (expected,) = fd_jvp(np_with_ints, [x.asnumpy() for x in INT_INPUTS], _leaves(u))
    np.testing.assert_allclose(ju.asnumpy(), expected, rtol=1e-7, atol=1e-8)


def test_tuple_structured_input():
    a, b, c = t64([1.0, -2.0]), t64([0.5, 3.0]), t64([0.2, 0.9])
    out, ju, u = dot_product_test(pair_input, ((a, b), c))
    (ua, ub), uc = u
    an, bn, cn = a.asnumpy(), b.asnumpy(), c.asnumpy()
    expected = ua.asnumpy() * (bn + np.cos(cn)) + ub.asnumpy() * an - np.sin(cn) * an * uc.asnumpy()
    np.testing.assert_allclose(ju.asnumpy(), expected, rtol=1e-12)


def test_jvp_of_grad_is_a_hessian_vector_product():
    # Forward over reverse, and reverse over forward, agree with the analytic Hessian of
    # f(x) = sum(sin(x) * x**2) (diagonal).
    x, v = t64([0.3, -1.2, 2.0]), t64([1.0, 0.5, -2.0])
    xn = x.asnumpy()
    hv = (-np.sin(xn) * xn**2 + 4 * np.cos(xn) * xn + 2 * np.sin(xn)) * v.asnumpy()
    _, fwd_rev = s2s_ad.jvp(ops.grad(sin_x2), x, v)
    np.testing.assert_allclose(fwd_rev.asnumpy(), hv, rtol=1e-12)
    rev_fwd = ops.grad(jvp_tangent_sum)(x, v)
    np.testing.assert_allclose(rev_fwd.asnumpy(), hv, rtol=1e-12)


def sin_x2(x):
    return (ops.sin(x) * x * x).sum()


def jvp_tangent_sum(x, v):
    return s2s_ad.jvp(sin_x2, x, v)[1]


def roundtrip_through_int(x, y):
    k = (x * 3.0).astype(mstype.int32)
    return k.astype(mstype.float64) * y + x


def test_float_to_int_cast_forward_and_reverse_agree():
    """A float -> int cast is piecewise constant: zero derivative in both modes."""
    x, y = t64([0.3, -1.7]), t64([1.0, 0.5])
    gx = ops.grad(roundtrip_through_int)(x, y)
    # J·e_i for each unit tangent (the Jacobian is diagonal here).
    _, jx = s2s_ad.jvp(roundtrip_through_int, (x, y), (t64([1.0, 1.0]), t64([0.0, 0.0])))
    np.testing.assert_array_equal(gx.asnumpy(), jx.asnumpy())


# ---------------------------------------------------------------------------- the generated code


def _assert_forward_mode_source(src: str) -> None:
    assert "_bar" not in src, src
    assert "sens" not in src, src
    assert "_dot" in src, src


def test_nn_jvp_generates_a_tangent_sweep():
    s2s_ad.set_seed(6)
    net = DenseMLP()
    x = t64(RNG.standard_normal((5, 3)))
    src = generated_source(nn.Jvp(net), x, x)
    _assert_forward_mode_source(src)
    assert src.startswith("def jvp_DenseMLP(x, v, ")
    assert "Forward-mode derivative of DenseMLP" in src
    # Each tangent is computed right after its primal: the first matmul's tangent comes
    # before the second layer's primal matmul.
    # (the parameters are named by their sub-cell path: l1.weight, l2.weight)
    assert src.index("x_dot = np.dot(v, l1_weight.T)") < src.index("l2_weight.T)")


def test_jvp_function_generates_a_tangent_sweep():
    src = generated_source(JvpFunction(mlp), *MLP_INPUTS, MLP_INPUTS)
    _assert_forward_mode_source(src)
    assert src.startswith("def jvp_mlp(x, w1, b1, w2, b2, v_0, v_1, v_2, v_3, v_4)")
    assert "h_dot" in src
    # For contrast: the reverse-mode program of the same function does have adjoints.
    rev = generated_source(vjp_function(mlp), *MLP_INPUTS, t64(np.ones((5, 2))))
    assert "_bar" in rev and "_dot" not in rev
