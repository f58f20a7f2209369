"""NumPy calls in user code lower onto the op table's primitives: every mapped function, in a
plain function and in a Cell's construct, gives numpy's value and the right gradient (central
finite differences in float64) under both backends; tensor comparisons; clear errors for
unsupported NumPy functions and arguments."""

from __future__ import annotations

import numpy as np
import pytest

from s2s_ad import S2SError, ShapeError, Tensor, UnsupportedSyntaxError, nn, ops
from s2s_ad.trace.numpy_map import supported_names


# ----------------------------------------------------------------------------- user code
# Several numpy functions per case keeps the number of (Numba) compilations small; a wrong
# value or derivative of any term still shows in the sum.
def np_trig(x):
    return np.sin(x) + np.cos(x) * np.tan(x) + np.tanh(x) - np.sinh(x) * np.cosh(x) + np.arctanh(x)


def np_inverse_trig(x, y):
    a = np.arctan(x) + np.arcsin(x) * np.arccos(x) + np.arcsinh(x) * np.arccosh(2.0 + x * x)
    return a + np.arctan2(x, y) + np.logaddexp(x, 3.0 * y)


def np_exp_log(x):
    return np.exp(x) + np.log(x) * np.sqrt(x) + np.expm1(x) * np.log1p(x)


def np_abs_sign(x):
    return np.abs(x) + np.absolute(2.0 * x) + np.sign(x) * x + np.square(x) - np.negative(x)


def np_arith(x, y):
    a = np.add(x, y) * np.subtract(x, 2.0) + np.multiply(y, y)
    return a - np.divide(x, y) + np.true_divide(1.0, y) + np.power(x, y) + np.power(x, 2)


def np_maximum(x, y):
    return np.maximum(x, y) * 2.0 + np.minimum(x, y) + np.maximum(x, 0.25)


def np_leaky_relu(x):
    return np.where(x > 0, x, 0.1 * x)


def np_where_broadcast(x, y):
    a = np.where(y <= x, np.exp(x), y) + np.where(x != y, 1.0, x) + np.where(np.greater(x, y), x, 0.5)
    b = np.where(np.greater_equal(x, y), 1.0, y) * np.where(np.less(x, y), x, y) + np.where(np.less_equal(y, x), y, x)
    return a + b * np.where(np.equal(x, y), 2.0, x) + np.where(np.not_equal(x, y), y, 0.0)


def np_dot(a, b):
    return np.dot(a, b) + np.matmul(a, b) + a @ b


def np_dot_vectors(u, v):
    return np.dot(u, v) * np.dot(np.dot(np.ones((2, 3)), u), v[:2]) + np.dot(np.ones((2, 3)), u)


def np_reductions(x):
    a = np.sum(x, axis=1, keepdims=True) * np.sum(x) + np.sum(x, 0)
    return a + np.mean(x, axis=(0, 2)).reshape((1, 3, 1)) + np.mean(x)


def np_extrema(x):
    a = np.max(x, axis=1, keepdims=True) + np.amax(x, axis=0) + np.max(x)
    return a * np.min(x, axis=0) * np.amin(x) + np.min(x, axis=(0, 1), keepdims=True)


def np_shapes(x):
    return np.transpose(x) + np.reshape(x, (3, 2)) + x.T * np.reshape(np.transpose(x, (1, 0)), shape=(3, 2))


def np_methods(x):
    return x.reshape((3, 2)).sum(axis=0) + x.mean() * x.max() - x.min(axis=1) + np.exp(x).sum()


def np_constants(x):
    a = np.broadcast_to(x, (4, 3)) * np.float32(2.0) + np.float64(0.5) * x + np.zeros_like(x) + np.ones(3)
    b = np.single(1.5) * np.double(x.shape[0]) + np.zeros((4, 1)) + np.ones_like(x, dtype=np.float64)
    c = np.int8(1) + np.int16(2) + np.int32(3) + np.int64(4) + np.uint8(5)  # integer constants
    d = np.where(np.bool_(True), x, 0.0) + np.where(np.bool(False), 0.0, x)
    # array constructors on constants run at compile time: constant tensors
    e = np.array([1.0, 2.0, 3.0]) * np.asarray([0.5, 0.5, 0.5]) + np.arange(3) + np.linspace(0.0, 1.0, 3)
    f = np.eye(3)[0] + np.identity(3)[1] + np.full((3,), 0.25)
    return a + b * c + d + e * x + f


def np_joins(x):
    a = np.concatenate([x, 2.0 * x], axis=1) + np.concat((x, x), 1) * np.tile(x, (1, 2))
    b = np.stack([x, x * x]) * np.expand_dims(x, 0) + np.squeeze(np.atleast_3d(x), 2)
    c = np.swapaxes(np.atleast_2d(x), 0, 1).sum() + np.atleast_1d(x[0, 0]) + np.array([x[0, 1], x[1, 0] * x[0, 0]])
    return (
        a.sum() + (b * b).sum() + c.sum() + (np.cumsum(x, axis=1) ** 2).sum() + np.take(x, np.argmax(x, axis=1)).sum()
    )


def np_floor_mod(x, y):
    return np.mod(x, y) + np.remainder(x, 0.3) * x + np.floor_divide(x, y) * x + x[np.argmin(x, axis=0)].sum()


def np_linalg(a, b):
    return np.linalg.inv(a).sum() + np.linalg.det(a) * np.linalg.norm(b) + np.linalg.solve(a, b).sum()


NUMPY_CASES = [
    # (function, input shapes, domain)
    (np_joins, [(2, 3)], (-2.0, 2.0)),
    (np_floor_mod, [(2, 3), (3,)], (0.5, 2.0)),
    (np_linalg, [(3, 3), (3,)], (0.5, 2.0)),
    (np_trig, [(2, 3)], (-0.8, 0.8)),
    (np_inverse_trig, [(2, 3), (3,)], (-0.8, 0.8)),
    (np_exp_log, [(2, 3)], (0.5, 2.0)),
    (np_abs_sign, [(2, 3)], (-2.0, 2.0)),
    (np_arith, [(2, 3), (3,)], (0.5, 2.0)),
    (np_maximum, [(2, 3), (3,)], (-2.0, 2.0)),
    (np_leaky_relu, [(2, 3)], (-2.0, 2.0)),
    (np_where_broadcast, [(2, 3), (3,)], (-2.0, 2.0)),
    (np_dot, [(2, 3), (3, 4)], (-2.0, 2.0)),
    (np_dot_vectors, [(3,), (3,)], (-2.0, 2.0)),
    (np_reductions, [(2, 3, 4)], (-2.0, 2.0)),
    (np_extrema, [(3, 4)], (-2.0, 2.0)),
    (np_shapes, [(2, 3)], (-2.0, 2.0)),
    (np_methods, [(2, 3)], (-2.0, 2.0)),
    (np_constants, [(3,)], (-2.0, 2.0)),
]


def test_every_mapped_numpy_function_is_exercised():
    import inspect

    src = "".join(inspect.getsource(fn) for fn, _, _ in NUMPY_CASES)
    for name in supported_names():
        assert f"{name}(" in src, f"{name} is not exercised"


class Apply(nn.Cell):
    """A Cell whose construct calls the user function (inlined into construct)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def construct(self, *xs):
        return self.fn(*xs)


def _draw(shapes, domain, seed=0):
    """float64 inputs, values pairwise apart (max/min/where/abs/sign have kinks at ties and 0)."""
    rng = np.random.default_rng(seed)
    lo, hi = domain
    sizes = [int(np.prod(s, dtype=np.int64)) for s in shapes]
    n = sum(sizes)
    vals = lo + (hi - lo) * (rng.permutation(n) + 0.5 + rng.uniform(-0.25, 0.25, n)) / n
    vals = np.where(np.abs(vals) < 0.05, 0.3, vals)
    return [p.reshape(s) for p, s in zip(np.split(vals, np.cumsum(sizes)[:-1]), shapes)]


def _numeric_grads(fn, xs, h=1e-6):
    """Central differences of sum(fn(xs)) (GradOperation's default sensitivity is ones)."""
    out = []
    for i, x in enumerate(xs):
        g = np.zeros_like(x)
        for j in np.ndindex(x.shape):
            xp = [v.copy() for v in xs]
            xm = [v.copy() for v in xs]
            xp[i][j] += h
            xm[i][j] -= h
            g[j] = (np.sum(fn(*xp)) - np.sum(fn(*xm))) / (2 * h)
        out.append(g)
    return out


def _ids(cases):
    return [c[0].__name__ for c in cases]


def _check_value_and_gradient(fn, target, shapes, domain):
    xs = _draw(shapes, domain)
    expected = fn(*xs)  # the same user code, run as plain numpy
    ts = [Tensor(x) for x in xs]
    got = Apply(fn)(*ts)
    assert got.asnumpy().dtype == np.asarray(expected).dtype
    np.testing.assert_allclose(got.asnumpy(), expected, rtol=1e-12, atol=1e-12)
    grads = ops.GradOperation(get_all=True)(target)(*ts)
    for g, num, x in zip(grads, _numeric_grads(fn, xs), xs):
        assert g.shape == x.shape and g.asnumpy().dtype == np.float64
        np.testing.assert_allclose(g.asnumpy(), num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fn,shapes,domain", NUMPY_CASES, ids=_ids(NUMPY_CASES))
def test_numpy_in_a_function(mode, fn, shapes, domain):
    _check_value_and_gradient(fn, fn, shapes, domain)


@pytest.mark.parametrize("fn,shapes,domain", NUMPY_CASES, ids=_ids(NUMPY_CASES))
def test_numpy_in_a_cell(pynative, fn, shapes, domain):
    # Lowering is the same for both backends; test_numpy_in_a_cell_construct compiles numpy
    # calls in a construct under Numba too.
    _check_value_and_gradient(fn, Apply(fn), shapes, domain)


class NumpyNet(nn.Cell):
    """A Cell whose construct uses numpy directly, many functions at once."""

    def construct(self, x, y):
        h = np.tanh(np.dot(x, y))
        h = np.where(h > 0.0, h, 0.01 * h)
        m = np.max(h, axis=1, keepdims=True)
        z = np.exp(h - m)
        p = z / np.sum(z, axis=1, keepdims=True)
        return np.mean(np.square(p - 0.25)) + np.minimum(np.abs(x), 1.0).sum() + x.T.max()


def test_numpy_in_a_cell_construct(mode):
    xs = _draw([(3, 4), (4, 5)], (-2.0, 2.0), seed=1)
    net = NumpyNet()
    expected = net.construct(*xs)  # plain numpy
    got = net(*[Tensor(x) for x in xs])
    np.testing.assert_allclose(got.asnumpy(), expected, rtol=1e-12)
    grads = ops.GradOperation(get_all=True)(net)(*[Tensor(x) for x in xs])
    for g, num in zip(grads, _numeric_grads(net.construct, xs)):
        np.testing.assert_allclose(g.asnumpy(), num, rtol=1e-6, atol=1e-7)


def test_float32_stays_float32(mode):
    x = np.array([[-1.5, 0.5, 2.0], [0.25, -0.75, 1.0]], np.float32)
    g = ops.GradOperation()(np_leaky_relu)(Tensor(x))
    assert g.asnumpy().dtype == np.float32
    np.testing.assert_allclose(g.asnumpy(), np.where(x > 0, 1.0, 0.1), rtol=1e-6)
    v = Apply(np_leaky_relu)(Tensor(x))
    assert v.asnumpy().dtype == np.float32
    np.testing.assert_allclose(v.asnumpy(), np.where(x > 0, x, np.float32(0.1) * x), rtol=1e-7)


# ----------------------------------------------------------------------------- comparisons
def comparisons(x, y):
    return x > y, x >= y, x < y, x <= y, x == y, x != y, x > 0.5, 1.0 <= y


def relu_by_comparison(x):
    return x * (x > 0)


def test_tensor_comparisons(mode):
    x = np.array([[1.0, 2.0, 3.0], [0.0, 2.0, -1.0]])
    y = np.array([2.0, 2.0, 1.0])
    got = Apply(comparisons)(Tensor(x), Tensor(y))
    for g, e in zip(got, comparisons(x, y)):
        assert g.asnumpy().dtype == np.bool_
        np.testing.assert_array_equal(g.asnumpy(), e)


def test_gradient_through_a_comparison(mode):
    x = np.array([[1.5, -2.0, 0.5], [-0.5, 2.0, -1.0]])
    g = ops.GradOperation()(relu_by_comparison)(Tensor(x))
    np.testing.assert_allclose(g.asnumpy(), (x > 0).astype(np.float64))


def chained(x):
    return 0.0 < x < 1.0


def compare_in_if(x):
    if x > 0:
        return x
    return -x


def membership(x, y):
    return x in y


def identity_tests(x, y):
    a = x if y is None else x * y
    return a if x is not None else None


def static_comparisons(x):
    n = x.shape[0]
    return x * 2.0 if 0 < n <= 3 and n != 7 else x


def test_chained_tensor_comparison_is_rejected():
    with pytest.raises(UnsupportedSyntaxError, match="chained comparisons of tensors"):
        Apply(chained)(Tensor(np.ones(3)))


def test_tensor_comparison_of_many_elements_as_if_condition_is_rejected():
    # a one-element test is staged as a `cond` region (tests/frontend/test_control_flow.py)
    with pytest.raises(ShapeError, match="a tensor test must have exactly one element"):
        Apply(compare_in_if)(Tensor(np.ones(3)))


def test_tensor_membership_is_rejected():
    with pytest.raises(UnsupportedSyntaxError, match="`in` is not supported on tensors"):
        Apply(membership)(Tensor(np.ones(3)), Tensor(np.ones(3)))


def test_is_and_python_comparisons_still_work():
    x = np.arange(3.0)
    np.testing.assert_allclose(Apply(identity_tests)(Tensor(x), None).asnumpy(), x)
    np.testing.assert_allclose(Apply(static_comparisons)(Tensor(x)).asnumpy(), 2 * x)


# ----------------------------------------------------------------------------- errors
def uses_cbrt(x):
    return np.cbrt(x) * 2.0


def sum_with_dtype(x):
    return np.sum(x, dtype=np.float32)


def sin_with_out(x):
    return np.sin(x, out=x)


def where_one_argument(x):
    return np.where(x > 0)


def dot_3d(x):
    return np.dot(x, x)


def _line_of(fn, text):
    import inspect

    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, ln in enumerate(lines) if text in ln)


def test_unsupported_numpy_function():
    with pytest.raises(UnsupportedSyntaxError) as info:
        ops.GradOperation()(uses_cbrt)(Tensor(np.ones(3)))
    msg = str(info.value)
    assert "`np.cbrt` is not supported" in msg
    assert msg.startswith(f"{__file__}:{_line_of(uses_cbrt, 'np.cbrt')}:")
    assert "np.cbrt(x) * 2.0" in msg  # the user's line is quoted
    listed = msg.split("Supported NumPy functions: ")[1].split("\n")[0].split(", ")
    assert listed == sorted(listed) == supported_names()
    for name in ("np.sin", "np.where", "np.sum", "np.dot", "np.maximum", "np.float32"):
        assert name in listed


@pytest.mark.parametrize(
    "fn,pattern",
    [
        (
            sum_with_dtype,
            r"np.sum: the keyword argument `dtype` is not supported .*supported keyword arguments: `a`, `axis`, `keepdims`",
        ),
        (sin_with_out, r"np.sin: the keyword argument `out` is not supported .*supported keyword arguments: none"),
        (where_one_argument, r"np.where\(condition\) .* is not supported"),
        (dot_3d, r"np.dot of shapes \(2, 2, 2\) and \(2, 2, 2\): only 1-D and 2-D"),
    ],
)
def test_unsupported_numpy_arguments(fn, pattern):
    with pytest.raises(S2SError, match=pattern) as info:
        Apply(fn)(Tensor(np.ones((2, 2, 2))))
    assert str(info.value).startswith(f"{__file__}:{_line_of(fn, 'np.')}:")


def too_many_args(x):
    return np.exp(x, x, x)


def test_wrong_number_of_arguments():
    with pytest.raises(S2SError, match=r"np.exp\(x\): too many positional arguments"):
        Apply(too_many_args)(Tensor(np.ones(3)))


def test_eager_numpy_on_tensors_is_plain_numpy():
    t = Tensor(np.array([1.0, -2.0]))
    np.testing.assert_allclose(np.maximum(t, 0.0), [1.0, 0.0])


def stacks_tensors(x):
    return np.array([x, 2.0 * x]).sum()


def ranges_of_tensors(x):
    return np.arange(x)


def test_array_of_computed_tensors_stacks_them_and_other_constructors_are_clear_errors():
    np.testing.assert_allclose(ops.GradOperation()(stacks_tensors)(Tensor(np.ones(2))).asnumpy(), [3.0, 3.0])
    with pytest.raises(UnsupportedSyntaxError, match=r"`np.arange` builds constant arrays.*compile-time constants"):
        ops.GradOperation()(ranges_of_tensors)(Tensor(np.ones(2)))
