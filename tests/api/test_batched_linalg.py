"""MatrixInverse and MatrixDeterminant of batches of matrices (leading batch axes): values
against numpy, derivatives against finite differences, NumPy spellings in compiled code, errors
naming the shape."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import ShapeError, Tensor, jit, ops
from s2s_ad.testing import check_grads

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 1, 2, 2)) + 4 * np.eye(2)


def test_values(mode):
    def f(a):
        return ops.inverse(a), ops.MatrixInverse()(a), ops.det(a), ops.MatrixDeterminant()(a), np.linalg.det(a)

    got = [t.asnumpy() for t in jit(f)(Tensor(A))]
    inv, det = np.linalg.inv(A), np.linalg.det(A)
    for g, w in zip(got, [inv, inv, det, det, det]):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-12)


W = RNG.standard_normal((3, 1, 2, 2))


def _f(a):
    return ((ops.inverse(a) * Tensor(W)).sum((2, 3)) + ops.det(0.2 * a * a) + np.linalg.inv(a).sum()).sum()


def test_derivatives(pynative):
    check_grads(_f, (Tensor(A),), order=2, atol=1e-6, rtol=1e-5)


def test_graph_gradient_matches_pynative():
    # GRAPH mode compiles the batched loops with Numba (one program: compiling is the slow part)
    want = np.linalg.det(A)[..., None, None] * np.swapaxes(np.linalg.inv(A), -1, -2)
    got = s2s_ad.jit(s2s_ad.grad(_det_sum))(Tensor(A)).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _det_sum(a):
    return ops.det(a).sum()


def test_errors():
    with pytest.raises(ShapeError, match=r"square in its last two axes, got shape \(2, 3, 4\)"):
        ops.inverse(Tensor(np.ones((2, 3, 4))))
