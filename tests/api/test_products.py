"""CumProd and ReduceProd: values against numpy, derivatives against finite differences and
exact at zeros (no division by x: one zero, two zeros), every spelling, both modes."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import ShapeError, Tensor, jit, ops
from s2s_ad.testing import check_grads

RNG = np.random.default_rng(0)
X = RNG.uniform(0.5, 1.5, (2, 3, 4)) * RNG.choice([-1, 1], (2, 3, 4))


def _prod_grad(x: np.ndarray) -> np.ndarray:
    """d prod(x) / dx_i = the product of the others, by brute force."""
    flat = x.ravel()
    return np.array([np.prod(np.delete(flat, i)) for i in range(flat.size)]).reshape(x.shape)


def test_values(mode):
    def f(x):
        return (
            ops.prod(x),
            ops.prod(x, (0, 2), True),
            ops.ReduceProd()(x, 1),
            x.prod(-1),
            ops.reduce_prod(x, 0),
            ops.cumprod(x, 1),
            ops.CumProd(exclusive=True)(x, 2),
            ops.CumProd(reverse=True)(x, 0),
            ops.CumProd(exclusive=True, reverse=True)(x, -1),
        )

    got = [t.asnumpy() for t in jit(f)(Tensor(X))]
    rev = np.flip(np.cumprod(np.flip(X, 0), 0), 0)
    excl = np.concatenate([np.ones((2, 3, 1)), np.cumprod(X, 2)[:, :, :-1]], 2)
    excl_rev = np.concatenate([np.flip(np.cumprod(np.flip(X, 2), 2), 2)[:, :, 1:], np.ones((2, 3, 1))], 2)
    want = [
        np.prod(X),
        np.prod(X, (0, 2), keepdims=True),
        np.prod(X, 1),
        np.prod(X, -1),
        np.prod(X, 0),
        np.cumprod(X, 1),
        excl,
        rev,
        excl_rev,
    ]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13)


def test_derivatives_against_finite_differences(mode):
    def f(x):
        return ops.prod(x, (0, 2)) * ops.cumprod(x, 1).sum() + ops.CumProd(True, True)(x, 2).sum(2).sum(0)

    check_grads(f, (Tensor(X),), order=2 if mode == "python" else 1, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("zeros", [[(0, 1, 2)], [(0, 1, 2), (1, 2, 0)]])
def test_derivatives_are_exact_at_zeros(mode, zeros):
    x = X.copy()
    for z in zeros:
        x[z] = 0.0
    g = s2s_ad.grad(lambda x: ops.prod(x))(Tensor(x)).asnumpy()
    np.testing.assert_allclose(g, _prod_grad(x), rtol=1e-12, atol=0)
    assert np.isfinite(g).all() and (g != 0).sum() == (1 if len(zeros) == 1 else 0)
    # the cumulative product's gradient: d/dx sum_k w_k cumprod(x)_k, by brute force per k
    w = RNG.standard_normal(x.shape)
    g = s2s_ad.grad(lambda x: (ops.cumprod(x, 2) * Tensor(w)).sum())(Tensor(x)).asnumpy()
    want = np.zeros_like(x)
    for k in range(4):
        part = np.zeros_like(x)
        part[:, :, : k + 1] = [[_prod_grad(x[a, b, : k + 1]) for b in range(3)] for a in range(2)]
        want += part * w[:, :, k : k + 1]
    np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-15)
    # second order at a zero: d2 prod / dx_i dx_j is the product of all but x_i and x_j
    h = s2s_ad.grad(_partial_012)(Tensor(x)).asnumpy()
    others = x.copy()
    others[0, 1, 2] = 1.0
    want = _prod_grad(others)
    want[0, 1, 2] = 0.0
    np.testing.assert_allclose(h, want, rtol=1e-12, atol=0)


def _prod(y):
    return ops.prod(y)


def _partial_012(x):
    return s2s_ad.grad(_prod)(x)[0, 1, 2]


def test_errors():
    with pytest.raises(ShapeError, match="CumProd: the input must have at least one axis"):
        ops.CumProd()(Tensor(np.float64(2.0)), 0)
    with pytest.raises(ShapeError, match="axis 3 is out of range for a tensor of rank 3"):
        ops.prod(Tensor(X), 3)
