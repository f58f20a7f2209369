"""Regressions found by probing the API as a user would: each test failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, jit, ops
from s2s_ad.errors import ArgumentError, S2SError
from s2s_ad.ops import GradOperation


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=tol, atol=tol)


X = np.array([[0.5, 1.0, 2.0], [-1.5, 0.25, 3.0]], np.float32)  # 2-D: fused loops in GRAPH mode


def pair_product(pair):
    return ops.sum(pair[0] * pair[1])


def nested(d):
    return ops.sum(d["a"]["b"] * d["c"][0] * d["c"][1])


def test_python_float_inside_a_container_is_differentiated(mode):
    # a float inside a tuple/list/dict at a differentiated position got the empty gradient ()
    g = s2s_ad.grad(pair_product)((Tensor(X), 2.0))
    close(g[0], np.full_like(X, 2.0))
    assert isinstance(g[1], Tensor) and g[1].shape == () and g[1].dtype == s2s_ad.float32
    close(g[1], X.sum())
    d = {"a": {"b": Tensor(X)}, "c": [Tensor(X), 3.0]}
    value, g = s2s_ad.vjp(nested, (d,), 1.0)
    close(value, 3.0 * (X * X).sum())
    close(g["c"][1], (X * X).sum())
    close(g["a"]["b"], 3.0 * X)
    (g,) = GradOperation(get_all=True, sens_param=True)(nested)(d, 2.0)
    close(g["c"][1], 2.0 * (X * X).sum())
    # forward mode: the float leaf takes a tangent of its own
    _, t = s2s_ad.jvp(nested, (d,), ({"a": {"b": Tensor(np.ones_like(X))}, "c": [Tensor(np.zeros_like(X)), 1.0]},))
    close(t, 3.0 * X.sum() + (X * X).sum())
    # one program for every value of the float
    f = s2s_ad.grad(pair_product)
    close(f((Tensor(X), 5.0))[0], np.full_like(X, 5.0))
    n = len(f._s2s_calls)
    close(f((Tensor(X), 7.0))[0], np.full_like(X, 7.0))
    assert len(f._s2s_calls) == n


def reshape_by(x, shape):
    return ops.sum(x.reshape(shape) * 2.0)


def test_ints_inside_a_container_stay_constants(mode):
    # a shape tuple beside the data: its ints are not differentiated (an empty gradient each)
    gx, gshape = GradOperation(get_all=True)(reshape_by)(Tensor(X), (3, 2))
    close(gx, np.full_like(X, 2.0))
    assert gshape == ((), ())


def reshape_rows(x, n):
    return ops.sum(x.reshape(n, 3))


def sum_over(x, axis):
    return ops.sum(ops.sum(x, axis) ** 2)


def test_int_used_as_shape_or_axis_under_get_all_stays_a_constant(mode):
    # get_all/vjp/jvp differentiate every input: an int the function needs as a shape or an
    # axis was a TypeError (Reshape) or an ArgumentError; it is a constant with gradient ()
    gx, gn = GradOperation(get_all=True)(reshape_rows)(Tensor(X), 2)
    close(gx, np.ones_like(X))
    assert gn == ()
    for axis in (0, 1, 0):  # each value its own constant, the second 0 from the cache
        gx, ga = GradOperation(get_all=True)(sum_over)(Tensor(X), axis)
        close(gx, np.broadcast_to(2 * X.sum(axis, keepdims=True), X.shape))
        assert ga == ()
        value, (gx, ga) = s2s_ad.vjp(sum_over, (Tensor(X), axis), 1.0)
        close(value, (X.sum(axis) ** 2).sum())
        close(gx, np.broadcast_to(2 * X.sum(axis, keepdims=True), X.shape))
        value, t = s2s_ad.jvp(sum_over, (Tensor(X), axis), (Tensor(np.ones_like(X)), 0))
        close(t, (2 * X.sum(axis) * X.shape[axis]).sum())


def test_int_used_as_shape_at_an_asked_position_is_a_clear_error(mode):
    # asked for by grad_position, the int is differentiated: a clear error (was a TypeError)
    with pytest.raises(ArgumentError, match=r"test_probe_regressions.py:\d+: Reshape: the shape must be ints"):
        s2s_ad.grad(reshape_rows, grad_position=(0, 1))(Tensor(X), 2)
    with pytest.raises(ArgumentError, match=r"axis must be .*differentiated position is a tensor input"):
        s2s_ad.grad(sum_over, grad_position=1)(Tensor(X), 1)


def square(x):
    return x * x


def test_vjp_jvp_called_without_v_is_an_argument_error():
    # MindSpore 2.x style vjp(fn, x) raised a TypeError naming an internal class
    with pytest.raises(ArgumentError, match=r"vjp\(fn, inputs, v\).*vjp\(square, inputs\) is missing v"):
        s2s_ad.vjp(square, Tensor(X))
    with pytest.raises(ArgumentError, match=r"jvp\(square\) is missing inputs and v"):
        s2s_ad.jvp(square)
    with pytest.raises(S2SError):
        jit(vjp_in_jit)(Tensor(X))


def vjp_in_jit(x):
    return s2s_ad.vjp(square, x)


def two_inputs(a, b):
    return ops.sin(a) * b


def test_jacobians_take_mindspore_grad_position(mode):
    # MindSpore's jacfwd/jacrev spell argnums grad_position (was a TypeError)
    a, b = np.array([0.5, 1.0, 2.0], np.float32), np.array([1.0, -2.0, 3.0], np.float32)
    for jac in (s2s_ad.jacfwd, s2s_ad.jacrev):
        ja, jb = jac(two_inputs, grad_position=(0, 1))(Tensor(a), Tensor(b))
        close(ja, np.diag(np.cos(a) * b))
        close(jb, np.diag(np.sin(a)))
        close(jac(two_inputs, grad_position=1)(Tensor(a), Tensor(b)), np.diag(np.sin(a)))
    with pytest.raises(ArgumentError, match=r"has_aux=True\): two_inputs must return a pair"):
        s2s_ad.jacfwd(two_inputs, has_aux=True)(Tensor(a), Tensor(b))
    with pytest.raises(ArgumentError, match="not both"):
        s2s_ad.jacrev(two_inputs, 1, grad_position=0)


def sum_axis5(x):
    return ops.sum(x.sum(axis=5))


def test_error_without_position_names_the_users_line(mode):
    # Tensor.sum's axis check is shared with the eager API and had no file:line
    with pytest.raises(S2SError, match=r"test_probe_regressions.py:\d+: Tensor.sum: axis 5 is out of range"):
        s2s_ad.grad(sum_axis5)(Tensor(X))
    with pytest.raises(S2SError, match=r"test_probe_regressions.py:\d+: Tensor.sum: axis 5"):
        jit(sum_axis5)(Tensor(X))


def test_jvp_vjp_has_aux_keyword(mode):
    # MindSpore 2.x passes has_aux=...: False works; with True (tests/api/test_ports.py) a function
    # with one output is a clear ArgumentError (was a TypeError)
    out, t = s2s_ad.jvp(square, (Tensor(X),), (Tensor(np.ones_like(X)),), has_aux=False)
    close(t, 2 * X)
    with pytest.raises(s2s_ad.ArgumentError, match=r"vjp\(has_aux=True\): square must return a tuple"):
        s2s_ad.vjp(square, Tensor(X), has_aux=True)


def tensor_of_computed(x):
    ones = Tensor(np.ones(3, np.float32))  # np.ones is computed while compiling
    half = Tensor(np.float32(0.5), s2s_ad.float64)
    return ops.sum(x * ones * Tensor(x, s2s_ad.float32) * half)


def test_tensor_of_a_value_computed_while_compiling(mode):
    # Tensor(np.ones(3)) or Tensor(np.float32(0.5)) in compiled code was rejected as "not a
    # compile-time constant"
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    close(jit(tensor_of_computed)(Tensor(x)), 0.5 * (x * x).sum())
    close(s2s_ad.grad(tensor_of_computed)(Tensor(x)), x)


def get_all_inside(x):
    gx, gaxis = GradOperation(get_all=True)(sum_over)(x, 0)
    _, (vx, vaxis) = s2s_ad.vjp(sum_over, (x, 1), 1.0)
    return gx + vx


def test_int_axis_under_get_all_inside_compiled_code(mode):
    # the same rule when the transform is called inside compiled code
    expected = 2 * X.sum(0, keepdims=True) + 2 * X.sum(1, keepdims=True)
    close(jit(get_all_inside)(Tensor(X)), expected)


def product(x, y):
    return x * y


def test_vjp_with_too_few_inputs_names_v():
    # the hint spoke of GradOperation's sens_param, which a vjp caller never set
    with pytest.raises(ArgumentError, match=r"in vjp\(fn, inputs, v\) the last argument is v"):
        s2s_ad.vjp(product, (Tensor(np.ones(2)),), Tensor(np.ones(2)))
