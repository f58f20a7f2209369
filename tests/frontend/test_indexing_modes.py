"""Every basic indexing form (ints, negative ints, slices, None, ..., and their combinations)
on 0-d, 1-d and 2-d tensors, chained and applied to computed values: the forward value,
the gradient and the forward-mode tangent agree with numpy in PYNATIVE and GRAPH mode. In
GRAPH mode 0-d values are scalars inside the compiled code, so indexing one is printed
differently than indexing an array."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, ops

E = Ellipsis
S = slice
INDICES = {
    (): [None, E, (None, None), (E, None), (None, E), (), (None, E, None)],
    (3,): [
        1,
        -1,
        S(1, None),
        S(None, None, -1),
        S(0, 3, 2),
        None,
        E,
        (None, 1),
        (1, None),
        (E, None),
        (None, E, S(-2, None)),
        (S(None), None),
        (E, -2),
        (-3, E),
    ],
    (2, 3): [
        0,
        -1,
        (1, 2),
        (-1, -2),
        (S(None), 1),
        (E, 1),
        (None, 1, S(None, None, -1)),
        (E,),
        (1, E, None),
        (S(None, None, -1), None, S(1, 3)),
        (None, -1, -1, None),
        (S(1, None), E),
        (0, S(None)),
    ],
}
CASES = [(shape, idx) for shape, idxs in INDICES.items() for idx in idxs]


def _ids(case):
    shape, idx = case
    return f"{shape}-{idx!r}".replace(" ", "")


@pytest.mark.parametrize("case", CASES, ids=[_ids(c) for c in CASES])
def test_index_forms(mode, case):
    shape, idx = case
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, shape)

    def f(x):
        return ops.sin(x)[idx] * 3.0

    def g(x):
        return x[idx]

    want = (np.sin(x)[idx] * 3.0, x[idx])
    for fn, w in zip((f, g), want):
        out = s2s_ad.jit(fn)(Tensor(x)).asnumpy()
        np.testing.assert_allclose(out, w, rtol=1e-12)
        assert out.shape == np.shape(w)
        # gradient of sum(w * fn(x)): the cotangent scattered back to the indexed elements
        wt = rng.standard_normal(np.shape(w))
        _, gx = s2s_ad.vjp(fn, (Tensor(x),), Tensor(wt))
        gx = gx.asnumpy()
        expect = np.zeros(shape)
        expect[idx] += wt
        if fn is f:
            expect = expect * 3.0 * np.cos(x)
        np.testing.assert_allclose(gx, expect, rtol=1e-12, atol=1e-14)
        # forward mode: the tangent indexed like the value
        v = rng.standard_normal(shape)
        _, t = s2s_ad.jvp(fn, (Tensor(x),), (Tensor(v),))
        tv = v[idx] * (3.0 * np.cos(x)[idx] if fn is f else 1.0)
        np.testing.assert_allclose(t.asnumpy(), tv, rtol=1e-12, atol=1e-14)


def _chain1(x):
    return x[1][None]


def _chain2(x):
    return ops.sin(x)[None][0][...]


def _chain3(x):
    return (x * 2.0)[-1][...][None, E][0]


def _chain4(x):
    return x[1][None][0] * x[E][None, 2]


@pytest.mark.parametrize(
    "fn, ref",
    [
        (_chain1, lambda x: x[1][None]),
        (_chain2, lambda x: np.sin(x)[None][0][...]),
        (_chain3, lambda x: (x * 2.0)[-1][...][None, E][0]),
        (_chain4, lambda x: x[1][None][0] * x[E][None, 2]),
    ],
)
def test_chained_indexing(mode, fn, ref):
    x = np.array([0.5, 1.0, 1.5])
    np.testing.assert_allclose(s2s_ad.jit(fn)(Tensor(x)).asnumpy(), ref(x), rtol=1e-12)

    # the gradient against central differences (every chain is linear or smooth in x)
    def total(x):
        return fn(x).sum()

    gx = s2s_ad.grad(total)(Tensor(x)).asnumpy()
    h = 1e-6
    fd = [(ref(x + h * e).sum() - ref(x - h * e).sum()) / (2 * h) for e in np.eye(3)]
    np.testing.assert_allclose(gx, fd, rtol=1e-6, atol=1e-8)


def _index_a_folded_constant(x):
    one = x / x  # SymPy folds it to the literal 1.0
    return one[...] * x + one[None, ...]


def _index_a_scalar_select(x, y):
    t = ops.select(x > y, x, -1.5)  # a 0-d select prints as a Python conditional expression
    return ops.cosh(t[...]) + t[None]


def test_indexing_0d_scalars_of_the_generated_code(mode):
    """0-d values that are Python numbers in the generated code (a folded literal, a scalar
    select) indexed with ... and None."""
    x, y = Tensor(np.array(0.7)), Tensor(np.array(0.2))
    np.testing.assert_allclose(s2s_ad.jit(_index_a_folded_constant)(x).asnumpy(), [1.7], rtol=1e-12)
    np.testing.assert_allclose(s2s_ad.grad(_index_a_folded_constant)(x).asnumpy(), 1.0, rtol=1e-12)
    want = np.cosh(0.7) + 0.7
    np.testing.assert_allclose(s2s_ad.jit(_index_a_scalar_select)(x, y).asnumpy(), [want], rtol=1e-12)
    g = s2s_ad.grad(_index_a_scalar_select, grad_position=(0, 1))(x, y)
    np.testing.assert_allclose([t.asnumpy() for t in g], [np.sinh(0.7) + 1.0, 0.0], rtol=1e-12)
