"""The values a compiled program returns for the user's own outputs are numpy's evaluation of
the user's program, inf and nan included: the optimiser does not re-express the user's
equations through SymPy (which folds ``x*0`` and ``x - x`` to 0, ``x/x`` to 1, ``log(exp(x))``
to ``x``). Checked for every API that returns the primal value, in PYNATIVE and GRAPH mode, on
0-d inputs and on a fused-loop shape. Derivatives agree with JAX's where JAX gives a number.
"""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, nn, ops

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy warns of the very values tested


def rewrites(x):
    return (
        x * 0,
        x - x,
        ops.exp(x) - ops.exp(x),
        x / x,
        (x + 1) - x,
        ops.sqrt(x) ** 2,
        ops.exp(ops.log(x)),
        ops.log(ops.exp(x)),
        ops.sqrt(x * x),
    )


def rewrites_numpy(x):
    with np.errstate(all="ignore"):
        return (
            x * 0,
            x - x,
            np.exp(x) - np.exp(x),
            x / x,
            (x + 1) - x,
            np.sqrt(x) ** 2,
            np.exp(np.log(x)),
            np.log(np.exp(x)),
            np.sqrt(x * x),
        )


class Rewrites(nn.Cell):
    def construct(self, x):
        return rewrites(x)


# where each expression's simplified form differs from numpy's value
VALUES = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e308, -1.0, 1000.0, 2.0]


def _primal_values(api: str, x: Tensor):
    ones = tuple(Tensor(np.ones(x.shape)) for _ in range(9))
    if api == "jit":
        return s2s_ad.jit(rewrites)(x)
    if api == "cell":
        return Rewrites()(x)
    if api == "value_and_grad":
        return s2s_ad.value_and_grad(rewrites)(x)[0]
    if api == "ForwardValueAndGrad":
        return nn.ForwardValueAndGrad(Rewrites())(x)[0]
    if api == "vjp":
        return s2s_ad.vjp(rewrites, x, ones)[0]
    if api == "jvp":
        return s2s_ad.jvp(rewrites, x, Tensor(np.ones(x.shape)))[0]
    raise AssertionError(api)


def _same(got, want) -> bool:
    got, want = np.asarray(got), np.asarray(want)
    return bool(np.all((got == want) | (np.isnan(got) & np.isnan(want))))


@pytest.mark.parametrize("api", ["jit", "cell", "value_and_grad", "ForwardValueAndGrad", "vjp", "jvp"])
def test_simplifications_keep_numpy_values(api, mode):
    x = np.resize(np.array(VALUES), 64)
    got = _primal_values(api, Tensor(x))
    want = rewrites_numpy(x)
    for k, (g, w) in enumerate(zip(got, want)):
        assert _same(g.asnumpy(), w), f"expression {k} ({api}, {mode}): {g.asnumpy()[:9]} != numpy {w[:9]}"
    # 0-d inputs (scalar code), one program for every value
    for v in VALUES:
        got = _primal_values(api, Tensor(np.float64(v)))
        for k, (g, w) in enumerate(zip(got, rewrites_numpy(np.float64(v)))):
            assert _same(g.asnumpy(), w), f"expression {k} ({api}, {mode}) at {v}: {g.asnumpy()} != numpy {w}"


def test_derivatives_of_the_rewritten_expressions(mode):
    # derivatives may drop symbolic zeros (x - x has derivative 0 everywhere, as in JAX)
    x = Tensor(np.array([0.5, 2.0, 3.0]))
    grads = [s2s_ad.grad(lambda_free(k))(x).asnumpy() for k in range(9)]
    expect = [0, 0, 0, 0, 0, 1, 1, 1, 1]
    for k, (g, e) in enumerate(zip(grads, expect)):
        np.testing.assert_allclose(g, np.full(3, float(e)), atol=1e-12, err_msg=f"expression {k}")


def lambda_free(k: int):
    def pick(x):
        return rewrites(x)[k]

    return pick


def _max(x, y):
    return ops.maximum(x, y)


def _min(x, y):
    return ops.minimum(x, y)


def _relu(x):
    return ops.relu(x)


def _sqrt_pow(x):
    return x**0.5


@pytest.mark.parametrize("shape", [(), (64,)])
def test_derivatives_at_special_values_agree_with_jax(mode, shape):
    def full(v):
        return Tensor(np.full(shape, v))

    # max/min at a tie go to x (inf - inf is nan, which must not leak into the derivative)
    for f in (_max, _min):
        for v in (np.inf, -np.inf, 1.0):
            gx, gy = s2s_ad.grad(f, grad_position=(0, 1))(full(v), full(v))
            np.testing.assert_array_equal(gx.asnumpy(), np.ones(shape))
            np.testing.assert_array_equal(gy.asnumpy(), np.zeros(shape))
        # a nan operand: the value is nan, the derivative 0 for both (JAX: x > y is false)
        for a, b in ((np.nan, 1.0), (1.0, np.nan), (np.nan, np.nan)):
            gx, gy = s2s_ad.grad(f, grad_position=(0, 1))(full(a), full(b))
            np.testing.assert_array_equal(gx.asnumpy(), np.zeros(shape))
            np.testing.assert_array_equal(gy.asnumpy(), np.zeros(shape))
    # ReLU's derivative is 0 at nan (JAX: where(x > 0, g, 0)) and at 0
    for v, d in ((np.nan, 0.0), (0.0, 0.0), (-1.0, 0.0), (2.0, 1.0)):
        np.testing.assert_array_equal(s2s_ad.grad(_relu)(full(v)).asnumpy(), np.full(shape, d))
    # d/dx x**0.5 = 0.5 * x**-0.5: +inf at -0.0 and 0.0 (JAX), in every backend; the value is
    # numpy's (x ** 0.5 of an array is sqrt(x): -0.0 at -0.0)
    for v in (-0.0, 0.0):
        value, g = s2s_ad.value_and_grad(_sqrt_pow)(full(v))
        np.testing.assert_array_equal(g.asnumpy(), np.full(shape, np.inf))
        assert np.all(np.signbit(value.asnumpy()) == np.signbit(v))
    # d(x**y)/dy = x**y * log(x) is 0 at x = 0 (JAX replaces log(0) there), not 0 * -inf = nan;
    # d/dx = y * x**(y - 1) stays as it is
    gx, gy = s2s_ad.grad(_pow, grad_position=(0, 1))(full(0.0), full(2.0))
    np.testing.assert_array_equal(gy.asnumpy(), np.zeros(shape))
    np.testing.assert_array_equal(gx.asnumpy(), np.zeros(shape))
    gy = s2s_ad.grad(_pow, grad_position=1)(full(2.0), full(3.0)).asnumpy()
    np.testing.assert_allclose(gy, np.full(shape, 8 * np.log(2.0)), rtol=1e-12)
    gyy = s2s_ad.grad(s2s_ad.grad(_pow, grad_position=1), grad_position=1)(full(2.0), full(3.0)).asnumpy()
    np.testing.assert_allclose(gyy, np.full(shape, 8 * np.log(2.0) ** 2), rtol=1e-12)


def _pow(x, y):
    return x**y


def test_algebraic_simplification_is_an_opt_in(mode):
    from s2s_ad import context

    x = Tensor(np.array([np.inf, np.nan, 2.0]))
    f = s2s_ad.jit(rewrites)
    assert np.isnan(f(x)[0].asnumpy()[0])  # numpy's inf * 0
    context.set_context(algebraic_simplification=True)
    try:
        # the same function object compiles anew: the setting is part of the cache key
        assert _same(f(x)[0].asnumpy(), [0.0, 0.0, 0.0])  # x*0 folded to 0
        assert _same(f(x)[3].asnumpy(), [1.0, 1.0, 1.0])  # x/x folded to 1
        with pytest.raises(ValueError, match="algebraic_simplification"):
            context.set_context(algebraic_simplification=1)
    finally:
        context.set_context(algebraic_simplification=False)
    assert np.isnan(f(x)[0].asnumpy()[0])
