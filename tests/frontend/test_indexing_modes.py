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
    (): [None, E, (None, E, None), ()],
    (3,): [-1, S(None, None, -1), (None, 1), (E, None), (None, E, S(-2, None))],
    (2, 3): [(-1, -2), (E, 1), (None, 1, S(None, None, -1)), (E,), (S(None, None, -1), None, S(1, 3)), (0, S(None))],
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
        # a computed value indexed (in a fused loop in GRAPH mode), and an input indexed
        return ops.sin(x)[idx] * 3.0, x[idx]

    want = (np.sin(x)[idx] * 3.0, x[idx])
    # reverse mode, with the value: the cotangents scattered back to the indexed elements
    ws = tuple(rng.standard_normal(np.shape(w)) for w in want)
    out, gx = s2s_ad.vjp(f, (Tensor(x),), tuple(map(Tensor, ws)))
    for o, w in zip(out, want):
        assert o.shape == np.shape(w)
        np.testing.assert_allclose(o.asnumpy(), w, rtol=1e-12)
    expect = [np.zeros(shape), np.zeros(shape)]
    expect[0][idx] += ws[0]
    expect[1][idx] += ws[1]
    np.testing.assert_allclose(gx.asnumpy(), expect[0] * 3.0 * np.cos(x) + expect[1], rtol=1e-12, atol=1e-14)
    # forward mode: the tangent indexed like the value
    v = rng.standard_normal(shape)
    _, (t0, t1) = s2s_ad.jvp(f, (Tensor(x),), (Tensor(v),))
    np.testing.assert_allclose(t0.asnumpy(), v[idx] * 3.0 * np.cos(x)[idx], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(t1.asnumpy(), v[idx], rtol=1e-12, atol=1e-14)


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
