"""GradOperation: every flag combination's return structure and semantics."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Parameter, ParameterTuple, Tensor, nn, ops
from s2s_ad import dtype as mstype


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.matmul = ops.MatMul()
        self.z = Parameter(Tensor(np.array([1.0], np.float32)), name="z")

    def construct(self, x, y):
        x = x * self.z
        return self.matmul(x, y)


class OneInput(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.array([2.0, 3.0], np.float32)), name="w")
        self.unused = Parameter(Tensor(np.ones((2, 2), np.float64)), name="unused")

    def construct(self, x):
        return ops.sin(x) * self.w


class TwoOutputs(nn.Cell):
    def construct(self, x, y):
        return x * y, ops.exp(x) + y


class Ignores(nn.Cell):
    def construct(self, x, k, y):
        return x * 2.0


X = Tensor([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]], dtype=mstype.float32)
Y = Tensor([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]], dtype=mstype.float32)
DX = np.ones((2, 3), np.float32) @ Y.asnumpy().T
DY = X.asnumpy().T @ np.ones((2, 3), np.float32)


def test_default_returns_first_input_gradient(mode):
    g = ops.GradOperation()(Net())(X, Y)
    assert isinstance(g, Tensor) and g.shape == (2, 3) and g.dtype == mstype.float32
    np.testing.assert_allclose(g.asnumpy(), DX, rtol=1e-6)


def test_get_all(mode):
    g = ops.GradOperation(get_all=True)(Net())(X, Y)
    assert isinstance(g, tuple) and len(g) == 2
    np.testing.assert_allclose(g[0].asnumpy(), DX, rtol=1e-6)
    np.testing.assert_allclose(g[1].asnumpy(), DY, rtol=1e-6)


def test_get_all_one_input_is_a_one_tuple(pynative):
    x = Tensor(np.array([0.5, 1.0], np.float32))
    g = ops.GradOperation(get_all=True)(OneInput())(x)
    assert isinstance(g, tuple) and len(g) == 1
    np.testing.assert_allclose(g[0].asnumpy(), np.cos(x.asnumpy()) * [2.0, 3.0], rtol=1e-6)


def test_get_by_list(mode):
    net = OneInput()
    x = Tensor(np.array([0.5, 1.0], np.float32))
    params = ParameterTuple(net.trainable_params())
    assert [p.name for p in params] == ["w", "unused"]
    gw, gu = ops.GradOperation(get_by_list=True)(net, params)(x)
    np.testing.assert_allclose(gw.asnumpy(), np.sin(x.asnumpy()), rtol=1e-6)
    # A parameter that does not reach the output: zeros of its own shape and dtype.
    assert gu.shape == (2, 2) and gu.dtype == mstype.float64
    assert not gu.asnumpy().any()


def test_get_all_and_get_by_list(pynative):
    net = Net()
    (dx, dy), (dz,) = ops.GradOperation(get_all=True, get_by_list=True)(net, ParameterTuple(net.trainable_params()))(
        X, Y
    )
    np.testing.assert_allclose(dx.asnumpy(), DX, rtol=1e-6)
    np.testing.assert_allclose(dy.asnumpy(), DY, rtol=1e-6)
    np.testing.assert_allclose(dz.asnumpy(), [np.sum(X.asnumpy() @ Y.asnumpy())], rtol=1e-6)


def test_weights_as_list_and_single_parameter(pynative):
    net = Net()
    (dz,) = ops.GradOperation(get_by_list=True)(net, [net.z])(X, Y)
    (dz2,) = ops.GradOperation(get_by_list=True)(net, net.z)(X, Y)
    np.testing.assert_allclose(dz.asnumpy(), dz2.asnumpy(), rtol=1e-6)


def test_sens_param_single_output(mode):
    s = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    g = ops.GradOperation(sens_param=True)(Net())(X, Y, s)
    np.testing.assert_allclose(g.asnumpy(), s.asnumpy() @ Y.asnumpy().T, rtol=1e-6)


def test_sens_param_multi_output(pynative):
    x = Tensor(np.array([0.5, 1.0], np.float32))
    y = Tensor(np.array([2.0, -1.0], np.float32))
    s1 = Tensor(np.array([1.0, 2.0], np.float32))
    s2 = Tensor(np.array([3.0, 4.0], np.float32))
    dx, dy = ops.GradOperation(get_all=True, sens_param=True)(TwoOutputs())(x, y, (s1, s2))
    np.testing.assert_allclose(dx.asnumpy(), s1.asnumpy() * y.asnumpy() + s2.asnumpy() * np.exp(x.asnumpy()), rtol=1e-6)
    np.testing.assert_allclose(dy.asnumpy(), s1.asnumpy() * x.asnumpy() + s2.asnumpy(), rtol=1e-6)


def test_no_sens_seeds_every_output_with_ones(pynative):
    x = Tensor(np.array([0.5, 1.0], np.float32))
    y = Tensor(np.array([2.0, -1.0], np.float32))
    dx, dy = ops.GradOperation(get_all=True)(TwoOutputs())(x, y)
    np.testing.assert_allclose(dx.asnumpy(), y.asnumpy() + np.exp(x.asnumpy()), rtol=1e-6)
    np.testing.assert_allclose(dy.asnumpy(), x.asnumpy() + 1, rtol=1e-6)


def test_unreached_inputs_get_zeros_of_their_shape_and_dtype(pynative):
    x = Tensor(np.array([1.0, 2.0], np.float32))
    k = Tensor(np.array([[1, 2, 3]], np.int32))
    y = Tensor(np.ones((3,), np.float64))
    dx, dk, dy = ops.GradOperation(get_all=True)(Ignores())(x, k, y)
    np.testing.assert_array_equal(dx.asnumpy(), [2.0, 2.0])
    assert dk.shape == (1, 3) and dk.dtype == mstype.int32 and not dk.asnumpy().any()
    assert dy.shape == (3,) and dy.dtype == mstype.float64 and not dy.asnumpy().any()


def test_float32_stays_float32_and_float64_stays_float64(mode):
    g32 = ops.GradOperation()(Net())(X, Y)
    assert g32.asnumpy().dtype == np.float32

    class F(nn.Cell):
        def construct(self, x):
            return ops.tanh(x) * 3.0 + x**2

    x64 = Tensor(np.array([0.3, -0.7]), dtype=mstype.float64)
    g64 = ops.GradOperation()(F())(x64)
    assert g64.asnumpy().dtype == np.float64
    xv = x64.asnumpy()
    np.testing.assert_allclose(g64.asnumpy(), 3 * (1 - np.tanh(xv) ** 2) + 2 * xv, rtol=1e-12)


def test_inside_construct_equals_direct(pynative):
    class Wrap(nn.Cell):
        def __init__(self, net):
            super().__init__()
            self.net = net
            self.grad_op = ops.GradOperation(get_all=True)

        def construct(self, x, y):
            return self.grad_op(self.net)(x, y)

    net = Net()
    a = Wrap(net)(X, Y)
    b = ops.GradOperation(get_all=True)(net)(X, Y)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u.asnumpy(), v.asnumpy(), rtol=1e-6)


def test_stop_gradient_blocks_flow(pynative):
    class S(nn.Cell):
        def construct(self, x):
            return x * x + ops.stop_gradient(x * x) + s2s_ad.stop_gradient(ops.sin(x))

    x = Tensor(np.array([1.5, -2.0], np.float32))
    np.testing.assert_allclose(ops.GradOperation()(S())(x).asnumpy(), 2 * x.asnumpy(), rtol=1e-6)


def test_parameter_values_are_read_at_each_call(pynative):
    net = Net()
    grad = ops.GradOperation()(net)
    g1 = grad(X, Y).asnumpy()
    net.z.set_data(Tensor(np.array([2.0], np.float32)))
    g2 = grad(X, Y).asnumpy()
    np.testing.assert_allclose(g2, 2 * g1, rtol=1e-6)


def test_repeated_call_does_no_analysis(monkeypatch, graph):
    import s2s_ad.runtime as rt

    net = Net()
    grad = ops.GradOperation()(net)
    grad(X, Y)
    calls = []
    monkeypatch.setattr(rt, "trace", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(rt, "Compiled", lambda *a, **k: calls.append(1))
    for _ in range(3):
        ops.GradOperation()(net)(X, Y)  # a new GradFunction for the same net hits the cache too
    assert calls == []
    # A new signature does need a new program.
    with pytest.raises((TypeError, AttributeError)):  # the stubs return None
        grad(Tensor(np.ones((3, 3), np.float32)), Y)
    assert calls


def test_loops_and_constant_if_and_helpers(mode):
    def helper(a, b):
        return a * b + ops.cos(a)

    class L(nn.Cell):
        def __init__(self):
            super().__init__()
            self.n = 3
            self.flag = False

        def construct(self, x):
            acc = x
            for i in range(self.n):
                acc = helper(acc, x) if i % 2 == 0 else acc + 1.0
            if self.flag:
                acc = acc * 100.0
            else:
                acc = acc - x
            return ops.ReduceSum()(acc)

    x = np.array([0.3, -0.4, 0.9])
    xt = Tensor(x, dtype=mstype.float64)

    def f(v):
        acc = v
        for i in range(3):
            acc = acc * v + np.cos(acc) if i % 2 == 0 else acc + 1.0
        return np.sum(acc - v)

    g = ops.GradOperation()(L())(xt).asnumpy()
    h = 1e-6
    num = np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(g, num, rtol=1e-6)


def test_transpose_of_an_inlined_expression_is_parenthesised(mode):
    class T(nn.Cell):
        def __init__(self):
            super().__init__()
            self.mm = ops.MatMul(transpose_a=True)

        def construct(self, x, y):
            return self.mm(x + y, y)

    def f(x, y):
        d = (x * 2.0).T
        return ops.ReduceSum()(d * y + d * d)

    a = np.array([[1.0, 2.0], [0.0, 1.0]], np.float32)
    b = np.array([[1.0, 0.0], [3.0, 1.0]], np.float32)
    np.testing.assert_allclose(T()(Tensor(a), Tensor(b)).asnumpy(), (a + b).T @ b, rtol=1e-6)
    x = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    y = np.ones((3, 2))
    g = ops.GradOperation()(f)(Tensor(x), Tensor(y)).asnumpy()
    np.testing.assert_allclose(g, 2 * y.T + 8 * x, rtol=1e-12)
