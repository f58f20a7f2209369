"""jacfwd, jacrev, hessian and hvp: JAX's semantics, checked against finite differences and
against each other; diagonal structure is detected."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import ArgumentError, ArgumentValueError, Tensor, ops
from s2s_ad.api import trace_program

pytestmark = pytest.mark.usefixtures("pynative")

X = np.array([0.3, -0.5, 1.2])
W = np.arange(6.0).reshape(2, 3) / 5


def t(a):
    return Tensor(np.asarray(a, np.float64))


def elementwise_sum(x):
    return ops.sum(ops.sin(x) * x**3)


def coupled(x):
    return ops.sum(ops.tanh(x) * ops.sum(x * x))


def layer(x, w):
    return ops.tanh(ops.matmul(w, x.reshape((3, 1)))).reshape((2,))


def bilinear(x, y):
    return ops.sum(x * x * y)


def fd_jacobian(f, args, argnum, h=1e-6):
    args = [np.asarray(a, np.float64) for a in args]
    x = args[argnum]
    cols = []
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        e = e.reshape(x.shape)
        plus = [t(a + e) if k == argnum else t(a) for k, a in enumerate(args)]
        minus = [t(a - e) if k == argnum else t(a) for k, a in enumerate(args)]
        cols.append((np.asarray(f(*plus).asnumpy()) - np.asarray(f(*minus).asnumpy())) / (2 * h))
    out_shape = cols[0].shape
    return np.stack(cols, -1).reshape(out_shape + x.shape)


@pytest.mark.parametrize("jac", [s2s_ad.jacfwd, s2s_ad.jacrev])
def test_jacobian_of_a_layer_matches_finite_differences(jac):
    jx, jw = jac(layer, argnums=(0, 1))(t(X), t(W))
    assert jx.shape == (2, 3) and jw.shape == (2, 2, 3)
    np.testing.assert_allclose(jx.asnumpy(), fd_jacobian(layer, [X, W], 0), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(jw.asnumpy(), fd_jacobian(layer, [X, W], 1), rtol=1e-7, atol=1e-9)
    bare = jac(layer)(t(X), t(W))
    np.testing.assert_allclose(bare.asnumpy(), jx.asnumpy(), rtol=1e-13, atol=1e-300)


def test_jacfwd_and_jacrev_agree(mode):
    a = s2s_ad.jacfwd(layer)(t(X), t(W)).asnumpy()
    b = s2s_ad.jacrev(layer)(t(X), t(W)).asnumpy()
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_hessian_of_elementwise_sum_is_diagonal_and_one_hvp():
    h = s2s_ad.hessian(elementwise_sum)(t(X)).asnumpy()
    d = -np.sin(X) * X**3 + 6 * np.cos(X) * X**2 + 6 * np.sin(X) * X
    np.testing.assert_allclose(h, np.diag(d), rtol=1e-12)
    # One Hessian-vector product, not n: no scatter of one-hot columns in the program.
    prog = trace_program(s2s_ad.hessian(elementwise_sum), t(X))
    assert not any(e.op == "scatter" for e in prog.eqns)
    assert sum(e.op == "sin" for e in prog.eqns) == 1
    assert len(prog.eqns) < 15


def test_hessian_of_a_coupled_function(mode):
    h = s2s_ad.hessian(coupled)(t(X)).asnumpy()
    np.testing.assert_allclose(h, h.T, rtol=1e-12)
    grad = s2s_ad.grad(coupled)
    np.testing.assert_allclose(h, fd_jacobian(grad, [X], 0), rtol=1e-6, atol=1e-8)


def test_hessian_blocks_of_two_arguments():
    (hxx, hxy), (hyx, hyy) = s2s_ad.hessian(bilinear, argnums=(0, 1))(t(X), t(2 * X))
    np.testing.assert_allclose(hxx.asnumpy(), np.diag(4 * X))
    np.testing.assert_allclose(hxy.asnumpy(), np.diag(2 * X))
    np.testing.assert_allclose(hyx.asnumpy(), np.diag(2 * X))
    np.testing.assert_array_equal(hyy.asnumpy(), np.zeros((3, 3)))


def test_hvp_matches_hessian_times_vector(mode):
    v = np.array([1.0, -2.0, 0.5])
    h = s2s_ad.hessian(coupled)(t(X)).asnumpy()
    np.testing.assert_allclose(s2s_ad.hvp(coupled, t(X), t(v)).asnumpy(), h @ v, rtol=1e-12)
    # several primals: one product per input
    hx, hy = s2s_ad.hvp(bilinear, (t(X), t(2 * X)), (t(v), t(v)))
    np.testing.assert_allclose(hx.asnumpy(), 4 * X * v + 2 * X * v)
    np.testing.assert_allclose(hy.asnumpy(), 2 * X * v)


def test_hvp_forward_over_reverse_equals_reverse_over_forward():
    v = np.array([1.0, -2.0, 0.5])

    def directional(x):
        return s2s_ad.jvp(coupled, x, t(v))[1]

    rof = s2s_ad.grad(directional)(t(X)).asnumpy()
    np.testing.assert_allclose(s2s_ad.hvp(coupled, t(X), t(v)).asnumpy(), rof, rtol=1e-12)


def trace_of_jacobian(x):
    return ops.sum(s2s_ad.jacfwd(ops.sin)(x))


def test_jacobians_nest_inside_other_transforms():
    np.testing.assert_allclose(s2s_ad.grad(trace_of_jacobian)(t(X)).asnumpy(), -np.sin(X), rtol=1e-12)


def test_decorator_forms():
    @s2s_ad.jacfwd
    def jf(x):
        return ops.exp(x)

    np.testing.assert_allclose(jf(t(X)).asnumpy(), np.diag(np.exp(X)))
    hb = s2s_ad.hessian(argnums=0)(elementwise_sum)
    assert hb(t(X)).shape == (3, 3)


def int_output(x):
    return ops.cast(x, s2s_ad.int32)


def test_errors():
    with pytest.raises(ArgumentError, match="argnums must be an int"):
        s2s_ad.jacfwd(layer, argnums=[0])
    with pytest.raises(ArgumentValueError, match="repeats"):
        s2s_ad.jacrev(layer, argnums=(0, 0))
    with pytest.raises(ArgumentValueError, match="out of range"):
        s2s_ad.jacfwd(layer, argnums=2)(t(X), t(W))
    with pytest.raises(ArgumentError, match="Jacobians need float outputs"):
        s2s_ad.jacfwd(int_output)(t(X))
    with pytest.raises(ArgumentError, match="Jacobians need float outputs"):
        s2s_ad.hessian(int_output)(t(X))
    with pytest.raises(ArgumentError, match="must return a scalar"):
        s2s_ad.hvp(layer, (t(X), t(W)), (t(X), t(W)))


def chain(x):
    return ops.sum(ops.cos(x[1:] - x[:-1]))


def chain_hessian_reference(x):
    h = np.zeros((x.size, x.size))
    for i, d in enumerate(x[1:] - x[:-1]):
        c = -np.cos(d)
        h[i, i] += c
        h[i + 1, i + 1] += c
        h[i, i + 1] -= c
        h[i + 1, i] -= c
    return h


def hessian_trace(x):
    return ops.sum(s2s_ad.hessian(chain)(x) * np.eye(x.shape[0]))


def test_large_jacobians_are_one_batched_program_inside_and_outside_jit(mode):
    # The Hessian is one batched forward-over-reverse program, called from Python or inlined
    # into compiled code: both agree with the analytic one.
    x = np.linspace(0.0, 1.0, 8)
    h = s2s_ad.hessian(chain)(t(x))
    np.testing.assert_allclose(h.asnumpy(), chain_hessian_reference(x), rtol=1e-12, atol=1e-15)
    assert h.dtype == s2s_ad.float64
    inside = s2s_ad.jit(s2s_ad.hessian(chain))(t(x))
    np.testing.assert_allclose(inside.asnumpy(), h.asnumpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        float(s2s_ad.jit(hessian_trace)(t(x)).asnumpy()), np.trace(chain_hessian_reference(x)), rtol=1e-12
    )
    w = np.linspace(-1.0, 1.0, 12).reshape(6, 2)

    def wide(v):
        return ops.tanh(ops.matmul(t(w), v.reshape((2, 1)))).reshape((6,))

    jr = s2s_ad.jacrev(wide)(t(x[:2]))
    jf = s2s_ad.jacfwd(wide)(t(x[:2]))
    np.testing.assert_allclose(jr.asnumpy(), jf.asnumpy(), rtol=1e-12)
    np.testing.assert_allclose(jr.asnumpy(), fd_jacobian(wide, [x[:2]], 0), rtol=1e-7, atol=1e-9)


def test_a_jacobian_over_the_former_unroll_limit_is_one_sweep():
    # 300 inputs (over the 256 evaluations once unrolled): one batched sweep, and the program
    # does not grow with the number of inputs.
    x = np.linspace(-1.0, 1.0, 300)
    h = s2s_ad.jit(s2s_ad.hessian(chain))(t(x)).asnumpy()
    np.testing.assert_allclose(h, chain_hessian_reference(x), rtol=1e-12, atol=1e-14)
    small = trace_program(s2s_ad.hessian(chain), t(x[:5]))
    large = trace_program(s2s_ad.hessian(chain), t(x))
    assert len(large.eqns) == len(small.eqns)
    assert not any(e.op == "loop" for e in large.eqns)  # batched by rules, not mapped by a loop


def _tanh_sin_grad(x):
    return np.tanh(x) * np.cos(x) + (1 - np.tanh(x) ** 2) * np.sin(x)


@pytest.mark.parametrize("m", [s2s_ad.PYNATIVE_MODE, s2s_ad.GRAPH_MODE])
@pytest.mark.parametrize("make", [s2s_ad.jacrev, s2s_ad.jacfwd, s2s_ad.hessian])
def test_scalar_output_in_both_modes(make, m):
    """A scalar output's cotangent seed is a 0-d scatter: a scalar in Numba's code."""
    x = np.linspace(-1.0, 1.0, 3)

    def loss(x):
        return (ops.tanh(x) * ops.sin(x)).sum()

    s2s_ad.set_context(mode=m)
    try:
        got = make(loss)(Tensor(x.astype(np.float32))).asnumpy()
    finally:
        s2s_ad.set_context(mode=s2s_ad.PYNATIVE_MODE)
    h = 1e-6
    expected = (
        np.diag((_tanh_sin_grad(x + h) - _tanh_sin_grad(x - h)) / (2 * h))
        if make is s2s_ad.hessian
        else _tanh_sin_grad(x)
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- control flow


def damped_steps(x):
    """Ten explicit steps of a coupled map: kept as a ``loop`` region."""
    for _ in range(10):
        x = x + 0.1 * ops.sin(ops.sum(x) - x) * x
    return x


def branch(x):
    """A tensor condition: a ``cond`` region."""
    if ops.sum(x) > 0:
        y = ops.sin(x) * ops.sum(x * x)
    else:
        y = ops.exp(x) * x[0]
    return y


def iterate_to_small(x):
    """A ``while`` region: halves until the norm is small."""
    while ops.sum(x * x) > 0.01:
        x = x * 0.5 + 0.01 * ops.sin(x)
    return ops.sum(x * ops.cos(x))


def regions_of(f, x):
    return {e.op for e in trace_program(f, x).eqns}


@pytest.mark.parametrize("jac", [s2s_ad.jacfwd, s2s_ad.jacrev])
def test_jacobians_through_a_loop_region(mode, jac):
    x = np.array([0.3, -0.2, 0.9, 0.1])
    assert "loop" in regions_of(damped_steps, t(x))
    got = jac(damped_steps)(t(x)).asnumpy()
    np.testing.assert_allclose(got, fd_jacobian(damped_steps, [x], 0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(s2s_ad.jit(jac(damped_steps))(t(x)).asnumpy(), got, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("jac", [s2s_ad.jacfwd, s2s_ad.jacrev])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_jacobians_through_a_cond_region(mode, jac, sign):
    x = sign * np.array([0.3, 0.2, 0.9])
    assert "cond" in regions_of(branch, t(x))
    got = jac(branch)(t(x)).asnumpy()
    np.testing.assert_allclose(got, fd_jacobian(branch, [x], 0), rtol=1e-6, atol=1e-8)


def test_hessian_through_a_while_region(mode):
    x = np.array([0.4, -0.3, 0.8])
    assert "while" in regions_of(iterate_to_small, t(x))
    h = s2s_ad.hessian(iterate_to_small)(t(x)).asnumpy()
    np.testing.assert_allclose(h, h.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h, fd_jacobian(s2s_ad.grad(iterate_to_small), [x], 0), rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------- composition


def test_jacobians_compose_with_vmap_and_with_each_other(mode):
    xs = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    per_example = s2s_ad.vmap(s2s_ad.jacrev(coupled_vector))(t(xs)).asnumpy()
    assert per_example.shape == (4, 3, 3)
    for x, j in zip(xs, per_example):
        np.testing.assert_allclose(j, fd_jacobian(coupled_vector, [x], 0), rtol=1e-6, atol=1e-8)
    h = s2s_ad.hessian(elementwise_sum_coupled)(t(X)).asnumpy()
    fwd_rev = s2s_ad.jacfwd(s2s_ad.jacrev(elementwise_sum_coupled))(t(X)).asnumpy()
    rev_fwd = s2s_ad.jit(s2s_ad.jacrev(s2s_ad.jacfwd(elementwise_sum_coupled)))(t(X)).asnumpy()
    np.testing.assert_allclose(fwd_rev, h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rev_fwd, h, rtol=1e-12, atol=1e-14)


def coupled_vector(x):
    return ops.tanh(x) * ops.sum(x * x)


def elementwise_sum_coupled(x):
    return ops.sum(coupled_vector(x) * ops.sin(x))


class DenseTanh(s2s_ad.nn.Cell):
    def __init__(self):
        super().__init__()
        self.dense = s2s_ad.nn.Dense(3, 4, weight_init="normal", dtype=s2s_ad.float64)

    def construct(self, x):
        return ops.tanh(self.dense(x))


def test_jacobian_of_a_cell_with_parameters(mode):
    s2s_ad.set_seed(3)
    net = DenseTanh()
    x = np.array([[0.2, -0.4, 1.0], [0.5, 0.1, -0.3]])
    for jac in (ops.jacfwd, ops.jacrev):
        got = jac(net)(t(x)).asnumpy()
        assert got.shape == (2, 4, 2, 3)
        np.testing.assert_allclose(got, fd_jacobian(net, [x], 0), rtol=1e-6, atol=1e-8)
