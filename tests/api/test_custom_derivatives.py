"""Custom derivatives: ``s2s_ad.custom_vjp``/``custom_jvp``, a Cell's ``bprop``, user primitives
with a bprop and ``ops.Custom``: the rule is used (not the derivative of the function), at
second order where the rule is differentiable, in both modes and in fused loops; forward mode
of a reverse-mode rule, and rules that return the wrong gradients, are clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import GradOperation, NotSupportedError, Parameter, ParameterTuple, Tensor, nn, ops
from s2s_ad.api import generated_source
from s2s_ad.errors import ArgumentError, ShapeError
from s2s_ad.ops import PrimitiveWithInfer, prim_attr_register

RNG = np.random.default_rng(0)
X = RNG.uniform(0.2, 1.5, (4, 5)).astype(np.float32)  # a shape that makes fused loops in GRAPH mode
Y = RNG.uniform(0.2, 1.5, (4, 5)).astype(np.float32)


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a.asnumpy() if isinstance(a, Tensor) else a), b, rtol=tol, atol=tol)


def fd_grad(f, x, eps=1e-3):
    """Central finite differences of the scalar sum of f at x (float64)."""
    g = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x, dtype=np.float64)
        d[i] = eps
        g[i] = (np.sum(f(x + d)) - np.sum(f(x - d))) / (2 * eps)
    return g


# ----------------------------------------------------------------------------- custom_vjp
@s2s_ad.custom_vjp
def scaled_sin(x):
    return ops.sin(x)


def scaled_sin_fwd(x):
    return ops.sin(x), ops.cos(x)


def scaled_sin_bwd(c, g):
    return (2.0 * c * g,)  # twice the true derivative: the rule, not sin's derivative, is used


scaled_sin.defvjp(scaled_sin_fwd, scaled_sin_bwd)


def test_custom_vjp_value_and_gradients(mode):
    x = Tensor(X)
    close(scaled_sin(x), np.sin(X))
    close(s2s_ad.grad(scaled_sin)(x), 2 * np.cos(X))
    # second order: the derivative of the rule (2 cos x)' = -2 sin x, against finite differences
    second = s2s_ad.grad(s2s_ad.grad(scaled_sin))(x)
    close(second, -2 * np.sin(X), 1e-4)
    close(second, fd_grad(lambda v: 2 * np.cos(v), X.astype(np.float64)), 1e-3)
    # the generated code computes the function itself
    assert "sin" in generated_source(scaled_sin, x)


@s2s_ad.custom_vjp
def clipped_product(x, y):
    return x * y


def clipped_product_fwd(x, y):
    return x * y, (x, y)


def clipped_product_bwd(res, g):
    x, y = res
    return ops.minimum(g * y, 0.5), None  # a clipped gradient for x, none for y


clipped_product.defvjp(clipped_product_fwd, clipped_product_bwd)


class UsesCustom(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.full((4, 5), 0.5, np.float32)), name="w")

    def construct(self, x, y):
        return (clipped_product(x * self.w, y) ** 2).sum()


def test_custom_vjp_inside_a_cell_two_inputs_and_a_zero_gradient(mode):
    net = UsesCustom()
    gx, gy = GradOperation(get_all=True)(net)(Tensor(X), Tensor(Y))
    h = 0.5 * X * Y
    expected_dxw = np.minimum(2 * h * Y, 0.5)  # the rule's gradient w.r.t. its first input
    close(gx, expected_dxw * 0.5)
    close(gy, np.zeros_like(Y))  # None in the rule: zero
    (gw,) = GradOperation(get_by_list=True)(net, ParameterTuple(net.trainable_params()))(Tensor(X), Tensor(Y))
    close(gw, expected_dxw * X)


def test_custom_vjp_forward_mode_is_an_error(mode):
    with pytest.raises(NotSupportedError, match=r"scaled_sin has a custom reverse-mode rule \(defined at .*:\d+\)"):
        s2s_ad.jvp(scaled_sin, Tensor(X), Tensor(Y))


# ----------------------------------------------------------------------------- custom_jvp
@s2s_ad.custom_jvp
def soft_exp(x):
    return ops.exp(x)


@soft_exp.defjvp
def soft_exp_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = ops.exp(x)
    return y, 3.0 * y * t  # three times the true derivative


def test_custom_jvp_forward_reverse_and_second_order(mode):
    x, v = Tensor(X), Tensor(Y)
    out, tangent = s2s_ad.jvp(soft_exp, x, v)
    close(out, np.exp(X), 1e-4)
    close(tangent, 3 * np.exp(X) * Y, 1e-4)
    # reverse mode transposes the rule
    close(s2s_ad.grad(soft_exp)(x), 3 * np.exp(X), 1e-4)
    out, g = s2s_ad.vjp(soft_exp, x, v)
    close(g, 3 * np.exp(X) * Y, 1e-4)
    # second order, reverse over reverse and forward over reverse: (3 e^x)' = 3 e^x
    close(s2s_ad.grad(s2s_ad.grad(soft_exp))(x), 3 * np.exp(X), 1e-4)
    close(s2s_ad.jvp(s2s_ad.grad(soft_exp), x, v)[1], 3 * np.exp(X) * Y, 1e-4)


@s2s_ad.custom_jvp
def no_rule(x):
    return x * 2.0


def test_custom_jvp_without_a_rule_is_an_error():
    with pytest.raises(ArgumentError, match=r"no_rule: no derivative rule was defined \(call no_rule.defjvp"):
        no_rule(Tensor(X))


# ----------------------------------------------------------------------------- Cell bprop
class Doubler(nn.Cell):
    def construct(self, x, y):
        return x * y

    def bprop(self, x, y, out, dout):
        return dout * y * 2.0, dout * x * 2.0  # twice the true gradients


class UsesDoubler(nn.Cell):
    def __init__(self):
        super().__init__()
        self.inner = Doubler()

    def construct(self, x, y):
        return ops.sin(self.inner(x, y))


def test_cell_bprop_first_and_second_order(mode):
    x, y = Tensor(X), Tensor(Y)
    gx, gy = GradOperation(get_all=True)(UsesDoubler())(x, y)
    c = np.cos(X * Y)
    close(gx, 2 * c * Y, 1e-4)
    close(gy, 2 * c * X, 1e-4)

    net = UsesDoubler()

    def first(a, b):
        return GradOperation()(net)(a, b)

    # d/dx of 2 cos(xy) y is the rule's derivative: -2 sin(xy) * out' * y, with out' from the rule again
    second = s2s_ad.grad(first)(x, y)
    close(second, -2 * np.sin(X * Y) * (2 * Y) * Y, 1e-3)


class BadBprop(nn.Cell):
    def construct(self, x):
        return x * 2.0

    def bprop(self, x, out, dout):
        return dout, dout


class BadShapeBprop(nn.Cell):
    def construct(self, x):
        return x * 2.0

    def bprop(self, x, out, dout):
        return (dout[:2],)


class WithWeight(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.ones((4, 5), np.float32)), name="w")

    def construct(self, x):
        return x * self.w

    def bprop(self, x, out, dout):
        return (dout * self.w,)


def test_bprop_errors(mode):
    x = Tensor(X)
    with pytest.raises(ArgumentError, match=r"BadBprop: the custom derivative rule \(defined at .*\) must return one"):
        s2s_ad.grad(BadBprop())(x)
    with pytest.raises(ShapeError, match=r"the gradient of input 0 returned by the custom rule .* has shape"):
        s2s_ad.grad(BadShapeBprop())(x)
    net = WithWeight()
    close(s2s_ad.grad(net)(x), np.ones_like(X))  # the inputs' gradients are the rule's
    with pytest.raises(
        NotSupportedError, match=r"WithWeight: its custom derivative rule .* Parameter\(s\) it reads \(w\)"
    ):
        GradOperation(get_by_list=True)(net, ParameterTuple(net.trainable_params()))(x)


# ----------------------------------------------------------------------------- user primitives
class MulTwice(PrimitiveWithInfer):
    @prim_attr_register
    def __init__(self, scale=1.0):
        self.init_prim_io_names(inputs=["x", "y"], outputs=["out"])

    def __call__(self, x, y):
        return x * y * self.scale

    def infer_shape(self, x_shape, y_shape):
        return x_shape

    def get_bprop(self):
        def bprop(x, y, out, dout):
            return dout * y * 10.0, dout * x

        return bprop


class PrimNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.op = MulTwice(scale=3.0)

    def construct(self, x, y):
        return self.op(x, y)


def test_user_primitive_with_bprop(mode):
    x, y = Tensor(X), Tensor(Y)
    prim = MulTwice(scale=3.0)
    assert prim.scale == 3.0 and prim.name == "MulTwice"
    close(PrimNet()(x, y), 3 * X * Y, 1e-4)
    gx, gy = GradOperation(get_all=True)(PrimNet())(x, y)
    close(gx, 10 * Y)
    close(gy, X)


def custom_func(a):
    return np.sin(a) * 2.0


def custom_bprop(a, out, dout):
    return (dout * ops.cos(a) * 4.0,)


def test_ops_custom(mode):
    x = Tensor(X)
    op = ops.Custom(custom_func, out_shape=lambda s: s, out_dtype=lambda d: d, func_type="pyfunc", bprop=custom_bprop)
    close(op(x), 2 * np.sin(X), 1e-5)
    close(s2s_ad.grad(op)(x), 4 * np.cos(X), 1e-5)
    close(s2s_ad.grad(s2s_ad.grad(op))(x), -4 * np.sin(X), 1e-4)
    plain = ops.Custom(custom_func)  # no bprop: the derivative of func
    close(s2s_ad.grad(plain)(x), 2 * np.cos(X), 1e-5)
    with pytest.raises(NotSupportedError, match="func_type='aot' is not supported"):
        ops.Custom(custom_func, func_type="aot")


# ----------------------------------------------------------------------------- training through a rule
class TrainsThroughRule(nn.Cell):
    def __init__(self):
        super().__init__()
        self.dense = nn.Dense(5, 3)

    def construct(self, x):
        return scaled_sin(self.dense(x))


def test_training_step_through_a_custom_rule(mode):
    s2s_ad.set_seed(0)
    net = TrainsThroughRule()
    loss = nn.WithLossCell(net, nn.MSELoss())
    x, y = Tensor(X), Tensor(np.zeros((4, 3), np.float32))
    weights = ParameterTuple(net.trainable_params())
    grads = GradOperation(get_by_list=True)(loss, weights)(x, y)
    w0 = net.dense.weight.asnumpy().copy()
    h = X @ w0.T + net.dense.bias.asnumpy()
    dh = 2 * np.sin(h) / h.size * 2 * np.cos(h)  # d mean(sin(h)^2) through the doubled rule
    close(grads[0], dh.T @ X, 1e-4)
    train = nn.TrainOneStepCell(loss, nn.SGD(net.trainable_params(), 0.1))
    train(x, y)
    close(net.dense.weight, w0 - 0.1 * (dh.T @ X), 1e-4)
