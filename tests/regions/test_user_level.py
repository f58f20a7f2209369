"""Derivatives of user code with control flow (the frontend stages tensor ``if``, ``while`` and
``for`` loops as regions): gradients, forward mode, higher orders and checkpointing, in both
modes, against closed forms and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, ops
from s2s_ad.api import generated_source


def newton(a):
    x = a
    while ops.reduce_max(ops.abs(x * x * x + x - a)) > 1e-12:
        x = x - (x * x * x + x - a) / (3 * x * x + 1)
    return x


def newton_sum(a):
    return newton(a).sum()


def euler(x, w):
    for i in range(12):
        x = x + 0.1 * ops.sin(w * x) + 0.01 * i
    return (x * x).sum()


def branchy(x, y):
    if x.sum() > 0:
        z = ops.exp(x) * y
    else:
        z = x * x - ops.sin(y)
    return (z * z).sum()


A = np.array([0.5, 2.0, 10.0])


def test_newton_until_tolerance_gradient_and_second_derivative(mode):
    a = Tensor(A)
    g = s2s_ad.grad(newton_sum)(a).asnumpy()
    root = np.array([np.roots([1, 0, 1, -v])[np.isreal(np.roots([1, 0, 1, -v]))].real[0] for v in A])
    np.testing.assert_allclose(g, 1 / (3 * root**2 + 1), rtol=1e-8)
    # forward mode and forward over reverse
    _, t = s2s_ad.jvp(newton, a, Tensor(np.ones(3)))
    np.testing.assert_allclose(t.asnumpy(), 1 / (3 * root**2 + 1), rtol=1e-8)
    _, h = s2s_ad.jvp(s2s_ad.grad(newton_sum), a, Tensor(np.ones(3)))
    np.testing.assert_allclose(h.asnumpy(), -6 * root / (3 * root**2 + 1) ** 3, rtol=1e-7)


def _fd(f, args, k, eps=1e-6):
    base = [a.copy() for a in args]
    out = np.zeros_like(base[k])
    for idx in np.ndindex(base[k].shape):
        p, m = [a.copy() for a in base], [a.copy() for a in base]
        p[k][idx] += eps
        m[k][idx] -= eps
        out[idx] = (f(*p) - f(*m)) / (2 * eps)
    return out


def _euler_np(x, w):
    for i in range(12):
        x = x + 0.1 * np.sin(w * x) + 0.01 * i
    return float(np.sum(x * x))


@pytest.mark.parametrize("every", [None, 5])
def test_loop_gradient_checkpointed_or_not(mode, every):
    x, w = np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.5, -1.5])
    f = euler if every is None else s2s_ad.checkpoint(euler, every=every)
    gx, gw = s2s_ad.grad(f, grad_position=(0, 1))(Tensor(x), Tensor(w))
    np.testing.assert_allclose(gx.asnumpy(), _fd(_euler_np, [x, w], 0), rtol=1e-6)
    np.testing.assert_allclose(gw.asnumpy(), _fd(_euler_np, [x, w], 1), rtol=1e-6)


def test_loop_third_order(pynative):
    """d^3/dx^3 of a loop by reverse over reverse over reverse, against finite differences of
    the second derivative (a 0-d input)."""

    def f(x):
        for _ in range(30):
            x = x + 0.05 * ops.sin(x)
        return x

    g3 = s2s_ad.grad(s2s_ad.grad(s2s_ad.grad(f)))
    g2 = s2s_ad.grad(s2s_ad.grad(f))
    x = 0.7
    eps = 1e-5
    f64 = s2s_ad.float64
    fd = (g2(Tensor(x + eps, f64)).asnumpy() - g2(Tensor(x - eps, f64)).asnumpy()) / (2 * eps)
    np.testing.assert_allclose(g3(Tensor(x, f64)).asnumpy(), fd, rtol=1e-6)
    assert "range(30 - 1, -1, -1)" in generated_source(g3, Tensor(x, f64))  # kept as loops


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_if_on_a_tensor_both_branches(mode, sign):
    x, y = sign * np.array([0.5, 0.25, 0.75]), np.array([1.0, -2.0, 0.5])

    def ref(x, y):
        z = np.exp(x) * y if x.sum() > 0 else x * x - np.sin(y)
        return float(np.sum(z * z))

    gx, gy = s2s_ad.grad(branchy, grad_position=(0, 1))(Tensor(x), Tensor(y))
    np.testing.assert_allclose(gx.asnumpy(), _fd(ref, [x, y], 0), rtol=1e-6)
    np.testing.assert_allclose(gy.asnumpy(), _fd(ref, [x, y], 1), rtol=1e-6)
