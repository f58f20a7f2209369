"""Transforms nested in one another, two and three deep, in many orders: ``vmap``, ``grad``,
``jvp``, ``vjp``, ``jacfwd``, ``jacrev``, ``hessian``, ``laplacian`` and ``jit``. Each result is
checked against JAX (float64) computing the same nesting, or against a loop over the examples.
Every case runs in PYNATIVE mode; the cases marked ``both`` also in GRAPH (Numba) mode. Two
functions: a small tanh layer (matrix products, reductions) and one with a tensor ``if`` and a
``for`` loop (regions under every transform)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import s2s_ad as sa
from s2s_ad import Tensor, context, ops

jax.config.update("jax_enable_x64", True)

RNG = np.random.default_rng(7)
XS = RNG.standard_normal((4, 3))
W = RNG.standard_normal((2, 3))
V = RNG.standard_normal((4, 3))
# Rows far from the branch boundary of ``ctrl`` (|x|² = 1.5), on both sides.
CX = np.array([[0.2, -0.3, 0.1], [1.1, -0.8, 0.9], [0.4, 0.2, -0.5], [-1.2, 0.7, 1.0]])


def T(a) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float64))


def npy(t) -> np.ndarray:
    return np.asarray(t.asnumpy() if isinstance(t, Tensor) else t)


def close(got, want, rtol: float = 1e-9, atol: float = 1e-10) -> None:
    np.testing.assert_allclose(npy(got), np.asarray(want), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------- the functions
def layer(x, w):
    """A scalar of one example ``x`` (3,) and shared weights ``w`` (2, 3)."""
    return ops.reduce_sum(ops.tanh(ops.matmul(w, x)) ** 2) + ops.reduce_sum(x * x * x)


def layer_j(x, w):
    return jnp.sum(jnp.tanh(w @ x) ** 2) + jnp.sum(x * x * x)


def vec(x, w):
    """A vector (2,) of one example."""
    return ops.tanh(ops.matmul(w, x)) * ops.reduce_sum(x * x)


def vec_j(x, w):
    return jnp.tanh(w @ x) * jnp.sum(x * x)


def ctrl(x):
    """A tensor ``if`` on a value of ``x`` and a ``for`` loop carrying a vector."""
    s = ops.reduce_sum(x * x)
    if s > 1.5:
        y = ops.sin(x) * s
    else:
        y = x * x + 1.0
    for _ in range(2):
        y = ops.tanh(y) + 0.5 * x
    return ops.reduce_sum(y * y)


def ctrl_j(x):
    s = jnp.sum(x * x)
    y = jnp.where(s > 1.5, jnp.sin(x) * s, x * x + 1.0)
    for _ in range(2):
        y = jnp.tanh(y) + 0.5 * x
    return jnp.sum(y * y)


both = pytest.mark.parametrize("mode", ["python", "numba"], indirect=True)


@pytest.fixture(autouse=True)
def _pynative_default():
    old = context.get_context("mode")
    context.set_context(mode=context.PYNATIVE_MODE)
    yield
    context.set_context(mode=old)


# ---------------------------------------------------------------------------- depth 2
@both
def test_vmap_of_hessian(mode):
    got = sa.vmap(sa.hessian(layer), in_axes=(0, None))(T(XS), T(W))
    close(got, jax.vmap(jax.hessian(layer_j), in_axes=(0, None))(XS, W))


def test_hessian_of_a_vmap_using_function():
    def total(xs, w):
        return ops.reduce_sum(sa.vmap(layer, in_axes=(0, None))(xs, w))

    def total_j(xs, w):
        return jnp.sum(jax.vmap(layer_j, in_axes=(0, None))(xs, w))

    close(sa.hessian(total)(T(XS), T(W)), jax.hessian(total_j)(XS, W))
    close(sa.hessian(total, argnums=1)(T(XS), T(W)), jax.hessian(total_j, argnums=1)(XS, W))


@both
def test_jacrev_of_vmap(mode):
    f = sa.vmap(vec, in_axes=(0, None))
    fj = jax.vmap(vec_j, in_axes=(0, None))
    close(sa.jacrev(f)(T(XS), T(W)), jax.jacrev(fj)(XS, W))
    close(sa.jacrev(f, argnums=1)(T(XS), T(W)), jax.jacrev(fj, argnums=1)(XS, W))


def test_jacfwd_of_vmap_and_vmap_of_jacrev():
    close(sa.jacfwd(sa.vmap(vec, in_axes=(0, None)))(T(XS), T(W)), jax.jacfwd(jax.vmap(vec_j, (0, None)))(XS, W))
    close(sa.vmap(sa.jacrev(vec), in_axes=(0, None))(T(XS), T(W)), jax.vmap(jax.jacrev(vec_j), (0, None))(XS, W))


@both
def test_grad_of_vmap_of_grad(mode):
    """Per-example input gradients, squared and summed, differentiated in the weights."""
    per = sa.vmap(sa.grad(layer), in_axes=(0, None))

    def loss(w, xs):
        return ops.reduce_sum(per(xs, w) ** 2)

    def loss_j(w, xs):
        return jnp.sum(jax.vmap(jax.grad(layer_j), (0, None))(xs, w) ** 2)

    close(sa.grad(loss)(T(W), T(XS)), jax.grad(loss_j)(W, XS))


@both
def test_vmap_of_vmap_of_jvp(mode):
    def tangent(x, v, w):
        return sa.jvp(vec, (x, w), (v, ops.zeros_like(w)))[1]

    xs, vs = RNG.standard_normal((2, 4, 3)), RNG.standard_normal((2, 4, 3))
    got = sa.vmap(sa.vmap(tangent, in_axes=(0, 0, None)), in_axes=(0, 0, None))(T(xs), T(vs), T(W))
    want = np.stack([[jax.jvp(lambda y: vec_j(y, W), (x,), (v,))[1] for x, v in zip(xr, vr)] for xr, vr in zip(xs, vs)])
    close(got, want)


def test_vjp_of_vmap_and_vmap_of_vjp():
    cot = RNG.standard_normal((4, 2))
    out, g = sa.vjp(lambda xs: sa.vmap(vec, in_axes=(0, None))(xs, T(W)), T(XS), T(cot))
    close(out, jax.vmap(vec_j, (0, None))(XS, W))
    close(g, np.stack([jax.vjp(lambda y: vec_j(y, W), x)[1](c)[0] for x, c in zip(XS, cot)]))

    def per(x, c, w):
        return sa.vjp(vec, (x, w), c)[1]

    gx, gw = sa.vmap(per, in_axes=(0, 0, None))(T(XS), T(cot), T(W))
    want = [jax.vjp(vec_j, x, W)[1](c) for x, c in zip(XS, cot)]
    close(gx, np.stack([g[0] for g in want]))
    close(gw, np.stack([g[1] for g in want]))


def test_a_lambda_defined_in_compiled_code_is_refused_by_transforms():
    """A nested function given to a transform inside compiled code: a clear error (it used to
    fail with a KeyError from inside the forward-mode transform)."""

    def tangent(x, v):
        return sa.jvp(lambda y: ops.sin(y), x, v)[1]

    def mapped(x):
        return sa.vmap(lambda y: ops.sin(y))(x)

    for fn in (tangent, mapped):
        with pytest.raises(sa.NotSupportedError, match="nested function or lambda defined in compiled code"):
            sa.jit(fn)(*([T(XS)] * (2 if fn is tangent else 1)))


@both
def test_jit_of_vmap_of_jacfwd(mode):
    f = sa.jit(sa.vmap(sa.jacfwd(vec), in_axes=(0, None)))
    close(f(T(XS), T(W)), jax.vmap(jax.jacfwd(vec_j), (0, None))(XS, W))


def test_vmap_of_jit_and_grad_of_jit_of_vmap():
    f = sa.vmap(sa.jit(vec), in_axes=(0, None))
    close(f(T(XS), T(W)), jax.vmap(vec_j, (0, None))(XS, W))

    def loss(w):
        return ops.reduce_sum(sa.jit(sa.vmap(layer, in_axes=(0, None)))(T(XS), w))

    close(sa.grad(loss)(T(W)), jax.grad(lambda w: jnp.sum(jax.vmap(layer_j, (0, None))(XS, w)))(W))


def test_jvp_of_vmap_of_grad():
    per = sa.vmap(sa.grad(layer), in_axes=(0, None))
    _, t = sa.jvp(lambda xs: per(xs, T(W)), T(XS), T(V))
    _, want = jax.jvp(lambda xs: jax.vmap(jax.grad(layer_j), (0, None))(xs, W), (XS,), (V,))
    close(t, want)


# ---------------------------------------------------------------------------- the Laplacian
def u(x, w):
    return ops.reduce_sum(ops.tanh(ops.matmul(w, x))) * ops.reduce_sum(ops.sin(x))


def u_j(x, w):
    return jnp.sum(jnp.tanh(w @ x)) * jnp.sum(jnp.sin(x))


def lap_j(x, w):
    return jnp.trace(jax.hessian(u_j)(x, w))


def test_grad_of_a_loss_on_vmap_of_laplacian():
    lap = sa.vmap(sa.laplacian(u), in_axes=(0, None))
    close(lap(T(XS), T(W)), jax.vmap(lap_j, (0, None))(XS, W))

    def loss(w, xs):
        return ops.reduce_sum(lap(xs, w) ** 2)

    close(sa.grad(loss)(T(W), T(XS)), jax.grad(lambda w: jnp.sum(jax.vmap(lap_j, (0, None))(XS, w) ** 2))(W))


def test_laplacian_of_grad_and_grad_of_laplacian():
    def gsum(x, w):
        return ops.reduce_sum(sa.grad(u)(x, w))

    close(sa.laplacian(gsum)(T(XS[0]), T(W)), jnp.trace(jax.hessian(lambda x: jnp.sum(jax.grad(u_j)(x, W)))(XS[0])))
    close(sa.grad(sa.laplacian(u))(T(XS[0]), T(W)), jax.grad(lap_j)(XS[0], W), rtol=1e-8)


# ---------------------------------------------------------------------------- control flow
@both
def test_vmap_of_grad_and_hessian_through_if_and_for(mode):
    close(sa.vmap(sa.grad(ctrl))(T(CX)), jax.vmap(jax.grad(ctrl_j))(CX))
    close(sa.vmap(sa.hessian(ctrl))(T(CX)), jax.vmap(jax.hessian(ctrl_j))(CX))


def test_derivatives_of_vmap_through_if_and_for():
    def total(xs):
        return ops.reduce_sum(sa.vmap(ctrl)(xs))

    def total_j(xs):
        return jnp.sum(jax.vmap(ctrl_j)(xs))

    close(sa.grad(total)(T(CX)), jax.grad(total_j)(CX))
    close(sa.jacrev(sa.vmap(ctrl))(T(CX)), jax.jacrev(jax.vmap(ctrl_j))(CX))
    close(sa.hessian(total)(T(CX)), jax.hessian(total_j)(CX))
    close(sa.vmap(sa.laplacian(ctrl))(T(CX)), jax.vmap(lambda x: jnp.trace(jax.hessian(ctrl_j)(x)))(CX))


# ---------------------------------------------------------------------------- depth 3
@both
def test_vmap_of_vmap_of_hessian(mode):
    xs = RNG.standard_normal((2, 3, 3))
    got = sa.vmap(sa.vmap(sa.hessian(layer), in_axes=(0, None)), in_axes=(0, None))(T(xs), T(W))
    close(got, jax.vmap(jax.vmap(jax.hessian(layer_j), (0, None)), (0, None))(xs, W))


def test_vmap_of_jacfwd_of_jacrev():
    got = sa.vmap(sa.jacfwd(sa.jacrev(vec)), in_axes=(0, None))(T(XS), T(W))
    close(got, jax.vmap(jax.jacfwd(jax.jacrev(vec_j)), (0, None))(XS, W))


def test_jacfwd_of_vmap_of_grad():
    got = sa.jacfwd(sa.vmap(sa.grad(layer), in_axes=(0, None)))(T(XS), T(W))
    close(got, jax.jacfwd(jax.vmap(jax.grad(layer_j), (0, None)))(XS, W))


def test_jit_of_grad_of_vmap_of_grad_through_if_and_for():
    def loss(xs):
        return ops.reduce_sum(sa.vmap(sa.grad(ctrl))(xs) ** 2)

    def loss_j(xs):
        return jnp.sum(jax.vmap(jax.grad(ctrl_j))(xs) ** 2)

    close(sa.jit(sa.grad(loss))(T(CX)), jax.grad(loss_j)(CX))


def test_hessian_of_jit_of_vmap_then_vmap_again():
    def total(xs, w):
        return ops.reduce_sum(sa.jit(sa.vmap(layer, in_axes=(0, None)))(xs, w))

    h = sa.vmap(sa.hessian(total, argnums=1), in_axes=(0, None))
    xs = RNG.standard_normal((2, 4, 3))
    want = jax.vmap(jax.hessian(lambda a, w: jnp.sum(jax.vmap(layer_j, (0, None))(a, w)), argnums=1), (0, None))(xs, W)
    close(h(T(xs), T(W)), want)


def sliced_product(x, w):
    return ops.matmul(w[:2, :], x) + ops.matmul(w[:, 1:].T, x)


def test_no_performance_warnings_from_generated_code(graph):
    """A product of a slice (an array of any layout to Numba) compiles without Numba's
    warning that np.dot is faster on contiguous arrays."""
    import warnings

    from numba.core.errors import NumbaPerformanceWarning

    x, w = RNG.standard_normal((3, 2)), RNG.standard_normal((3, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NumbaPerformanceWarning)
        got = sa.jit(sliced_product)(T(x), T(w))
    close(got, w[:2, :] @ x + w[:, 1:].T @ x)
