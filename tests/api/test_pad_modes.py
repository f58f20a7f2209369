"""Padding modes: ops.pad ('constant', 'reflect', 'replicate', 'circular'), ops.MirrorPad and
nn.Pad ('REFLECT', 'SYMMETRIC') against numpy's np.pad; derivatives (the padded copies'
cotangents added back) against finite differences; errors naming the shape."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import ArgumentError, ShapeError, Tensor, jit, nn, ops
from s2s_ad.testing import check_grads

X = np.random.default_rng(0).standard_normal((2, 3, 4))
SYMMETRIC = nn.Pad(((0, 0), (2, 3), (1, 0)), "SYMMETRIC")
REFLECT = nn.Pad(((1, 1), (0, 0), (3, 2)), "REFLECT")


def test_values_match_numpy(mode):
    def f(x):
        return (
            ops.pad(x, (2, 1), mode="reflect"),
            ops.pad(x, (1, 2, 2, 0), mode="replicate"),
            ops.pad(x, (3, 4), mode="circular"),
            ops.pad(x, (1, 1, 1, 1), value=2.5),
            ops.MirrorPad("SYMMETRIC")(x, ((1, 2), (3, 0), (0, 4))),
            SYMMETRIC(x),
            REFLECT(x),
        )

    got = [t.asnumpy() for t in jit(f)(Tensor(X))]
    want = [
        np.pad(X, ((0, 0), (0, 0), (2, 1)), mode="reflect"),
        np.pad(X, ((0, 0), (2, 0), (1, 2)), mode="edge"),
        np.pad(X, ((0, 0), (0, 0), (3, 4)), mode="wrap"),
        np.pad(X, ((0, 0), (1, 1), (1, 1)), constant_values=2.5),
        np.pad(X, ((1, 2), (3, 0), (0, 4)), mode="symmetric"),
        np.pad(X, ((0, 0), (2, 3), (1, 0)), mode="symmetric"),
        np.pad(X, ((1, 1), (0, 0), (3, 2)), mode="reflect"),
    ]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_derivatives(mode):
    w = np.random.default_rng(1).standard_normal((2, 8, 5))

    def f(x):
        return (SYMMETRIC(x * x) * Tensor(w)).sum() + ops.pad(x, (2, 1), mode="reflect").sum() * x.sum()

    check_grads(f, (Tensor(X),), order=2 if mode == "python" else 1, atol=1e-6, rtol=1e-5)
    g = s2s_ad.grad(lambda x: ops.pad(x, (2, 1), mode="reflect").sum())(Tensor(X)).asnumpy()
    np.testing.assert_array_equal(g, np.broadcast_to([1.0, 2.0, 3.0, 1.0], X.shape))  # each copy counts


def test_errors():
    x = Tensor(X)
    with pytest.raises(ShapeError, match=r"padding \(4, 0\) of axis 2 of the input of shape \(2, 3, 4\) is too large"):
        ops.pad(x, (4, 0), mode="reflect")
    with pytest.raises(ShapeError, match=r"too large for mode 'symmetric'"):
        nn.Pad(((0, 0), (0, 0), (0, 5)), "SYMMETRIC")(x)
    with pytest.raises(ArgumentError, match="pad: mode must be one of"):
        ops.pad(x, (1, 1), mode="mirror")
    with pytest.raises(ArgumentError, match="MirrorPad: mode must be 'REFLECT' or 'SYMMETRIC'"):
        ops.MirrorPad("EDGE")
    with pytest.raises(s2s_ad.ArgumentValueError, match="Pad: mode must be"):
        nn.Pad(((1, 1),), "EDGE")
