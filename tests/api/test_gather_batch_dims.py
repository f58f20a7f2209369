"""Gather with batch_dims (ops.gather, ops.Gather(batch_dims)): values against a per-batch
np.take, negative indices, derivatives against finite differences, out-of-range indices and
shape errors."""

from __future__ import annotations

import numpy as np
import pytest

from s2s_ad import ShapeError, Tensor, jit, ops
from s2s_ad.testing import check_grads

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 5, 4))
IDX = RNG.integers(-4, 4, (2, 3, 6))


def _reference(x, idx, axis, bd):
    out = np.empty(x.shape[:axis] + idx.shape[bd:] + x.shape[axis + 1 :])
    for b in np.ndindex(x.shape[:bd]):
        out[b] = np.take(x[b], idx[b], axis=axis - bd)
    return out


CASES = [(2, 2, IDX), (2, 1, IDX[:, 0]), (3, 1, IDX[:, 0]), (1, 1, IDX[:, :, 0] % 3), (3, 2, IDX), (3, -1, IDX[:, 0])]


def test_values(mode):
    def f(x):
        return tuple(ops.gather(x, Tensor(i), axis, batch_dims=bd) for axis, bd, i in CASES) + (
            ops.Gather(batch_dims=1)(x, Tensor(IDX[:, 0]), 2),
        )

    got = [t.asnumpy() for t in jit(f)(Tensor(X))]
    want = [_reference(X, i, axis, bd % i.ndim) for axis, bd, i in CASES] + [_reference(X, IDX[:, 0], 2, 1)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_derivatives(mode):
    w = Tensor(RNG.standard_normal((2, 3, 5, 6)))

    def f(x):
        return (ops.gather(x * x, Tensor(IDX), 3, batch_dims=2) * w).sum(2)

    check_grads(f, (Tensor(X),), order=2 if mode == "python" else 1, atol=1e-6, rtol=1e-5)


def test_errors():
    x = Tensor(X)
    with pytest.raises(ShapeError, match=r"batch_dims 3 must lie in .* = \[0, 2\] for params of shape \(2, 3, 5, 4\)"):
        ops.gather(x, Tensor(IDX), 2, batch_dims=3)
    with pytest.raises(ShapeError, match=r"first batch_dims=2 axes of params \(shape \(2, 3, 5, 4\)\) and indices"):
        ops.gather(x, Tensor(IDX[:, :2]), 2, batch_dims=2)
    with pytest.raises(IndexError, match=r"Gather: an index is out of range for an axis of size 5"):
        ops.gather(x, Tensor(np.full((2, 3), 5)), 2, batch_dims=2)
