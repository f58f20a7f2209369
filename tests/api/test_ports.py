"""Ports without edits: the module names MindSpore programs import (``ops.composite as C``,
``ops.operations as P``, ``ops.functional as F``, ``common.dtype``, ...), ``jvp``/``vjp``
with ``has_aux``, GradOperation on nets without inputs and with ``get_by_list`` and no
weights, as MindSpore treats them."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import s2s_ad
from s2s_ad import NotSupportedError, Parameter, ParameterTuple, Tensor, nn
from s2s_ad.errors import ArgumentError
from s2s_ad.ops import composite as C
from s2s_ad.ops import functional as F
from s2s_ad.ops import operations as P


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a.asnumpy() if isinstance(a, Tensor) else a), b, rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- module names
@pytest.mark.parametrize(
    "line",
    [
        "from s2s_ad.ops import composite as C",
        "import s2s_ad.ops.composite as C",
        "from s2s_ad.ops import operations as P",
        "import s2s_ad.ops.operations as P",
        "from s2s_ad.ops import functional as F",
        "from s2s_ad.ops.functional import grad, jvp, vjp, sin, depend",
        "from s2s_ad.ops.composite import GradOperation",
        "from s2s_ad.ops.operations import Assign, MatMul, ReduceSum",
        "import s2s_ad.common.dtype as mstype",
        "from s2s_ad.common import dtype as mstype",
        "from s2s_ad.common.tensor import Tensor",
        "from s2s_ad.common.parameter import Parameter, ParameterTuple",
        "from s2s_ad.common.api import jit, ms_function",
        "from s2s_ad.common.initializer import initializer, Normal, TruncatedNormal",
        "from s2s_ad.common import set_seed",
        "from s2s_ad import context, ms_function, Tensor, Parameter, ParameterTuple",
        "from s2s_ad.nn.optim import Momentum, SGD, Adam, AdamWeightDecay",
        "from s2s_ad.nn import TrainOneStepCell, WithLossCell, WithGradCell",
    ],
)
def test_import_lines(line):
    exec(line, {})


def test_module_aliases_are_the_package_objects():
    from s2s_ad import ops

    assert C.GradOperation is ops.GradOperation and F.grad is ops.grad and F.sin is ops.sin
    assert P.Assign is ops.Assign and F.depend is ops.depend
    assert importlib.import_module("s2s_ad.common.dtype").float32 is s2s_ad.float32
    with pytest.raises(AttributeError, match="no attribute 'NoSuchOp'"):
        _ = P.NoSuchOp


class PortedNet(nn.Cell):
    """Written as MindSpore's own tests write it (imports changed only)."""

    def __init__(self):
        super().__init__()
        self.matmul = P.MatMul()
        self.sin = P.Sin()
        self.reduce_sum = P.ReduceSum(keep_dims=False)
        self.z = Parameter(Tensor(np.array([1.0, 2.0, 3.0], np.float32)), name="z")

    def construct(self, x, y):
        return self.reduce_sum(F.square(self.sin(self.matmul(x, y))) * self.z)


class GradWrap(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.weights = ParameterTuple(net.trainable_params())
        self.grad = C.GradOperation(get_all=True, get_by_list=True)

    def construct(self, x, y):
        return self.grad(self.net, self.weights)(x, y)


def test_ported_net_gradients(mode):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4)).astype(np.float32)
    y = rng.standard_normal((4, 3)).astype(np.float32)
    (gx, gy), (gz,) = GradWrap(PortedNet())(Tensor(x), Tensor(y))
    h = x @ y
    z = np.array([1.0, 2.0, 3.0])
    dh = 2 * np.sin(h) * np.cos(h) * z
    close(gx, dh @ y.T, 1e-4)
    close(gy, x.T @ dh, 1e-4)
    close(gz, (np.sin(h) ** 2).sum(0), 1e-4)


# ----------------------------------------------------------------------------- GradOperation edge cases
class NoInputs(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.array([2.0, 3.0], np.float32)), name="w")

    def construct(self):
        return (self.w * self.w).sum()


class GradNoInputs(nn.Cell):
    def __init__(self, net, grad):
        super().__init__()
        self.net = net
        self.grad = grad

    def construct(self):
        return self.grad(self.net)()


def test_grad_operation_on_a_net_without_inputs(mode):
    net = NoInputs()
    assert s2s_ad.GradOperation()(net)() == ()
    assert s2s_ad.GradOperation(get_all=True)(net)() == ()
    assert GradNoInputs(net, s2s_ad.GradOperation())() == ()  # inside compiled code too
    (gw,) = s2s_ad.GradOperation(get_by_list=True)(net, ParameterTuple(net.trainable_params()))()
    close(gw, [4.0, 6.0])


class Scale(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.array([3.0], np.float32)), name="w")

    def construct(self, x):
        return x * self.w


def test_get_by_list_without_weights(mode):
    net = Scale()
    x = Tensor(np.array([2.0], np.float32))
    assert s2s_ad.GradOperation(get_by_list=True)(net, None)(x) == ()
    assert s2s_ad.GradOperation(get_by_list=True)(net, ParameterTuple([]))(x) == ()
    (gx,), gw = s2s_ad.GradOperation(get_all=True, get_by_list=True)(net, None)(x)
    close(gx, [3.0])
    assert gw == ()
    with pytest.raises(ArgumentError, match="needs weights"):
        nn.ForwardValueAndGrad(net, get_by_list=True)


# ----------------------------------------------------------------------------- has_aux
def fn_aux(x, y):
    return x**3 + y, y * 2.0


def fn_two_aux(x, y):
    return x**3 + y, y * 2.0, x - y


def square_two_aux(a):
    return a * a, a + 1.0, a - 1.0


def fn_one(x, y):
    return x**3 + y


X = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
Y = np.array([[0.5, -1.0], [2.0, 0.0]], np.float32)
V = np.array([[1.0, 0.5], [-1.0, 2.0]], np.float32)


def test_jvp_has_aux(mode):
    x, y, v = Tensor(X), Tensor(Y), Tensor(V)
    out, tangent, aux = s2s_ad.ops.jvp(fn_aux, (x, y), (v, v), has_aux=True)
    close(out, X**3 + Y)
    close(tangent, 3 * X**2 * V + V, 1e-4)
    close(aux, Y * 2)
    out, tangent, aux = s2s_ad.jvp(fn_two_aux, (x, y), (v, v), has_aux=True)
    assert isinstance(aux, tuple) and len(aux) == 2
    close(aux[1], X - Y)
    # finite differences of the first output
    eps = 1e-3
    fd = ((X + eps * V) ** 3 - (X - eps * V) ** 3) / (2 * eps) + V
    close(tangent, fd, 1e-2)


class JvpAuxCell(nn.Cell):
    def construct(self, x, y, v):
        out, tangent, aux = s2s_ad.ops.jvp(fn_aux, (x, y), (v, v), has_aux=True)
        return out + tangent + aux


def test_jvp_has_aux_inside_compiled_code(mode):
    got = JvpAuxCell()(Tensor(X), Tensor(Y), Tensor(V))
    close(got, X**3 + Y + 3 * X**2 * V + V + 2 * Y, 1e-4)


def test_vjp_has_aux(mode):
    x, y, v = Tensor(X), Tensor(Y), Tensor(V)
    out, vjp_fn, aux = s2s_ad.ops.vjp(fn_aux, x, y, has_aux=True)
    close(out, X**3 + Y)
    close(aux, Y * 2)
    gx, gy = vjp_fn(v)
    close(gx, 3 * X**2 * V, 1e-4)
    close(gy, V)
    out, vjp_fn, aux = s2s_ad.ops.vjp(square_two_aux, x, has_aux=True)
    (g,) = vjp_fn(v)  # a tuple for one input too (MindSpore's get_all gradients)
    close(g, 2 * X * V)
    close(aux[0], X + 1)
    close(aux[1], X - 1)


def test_has_aux_errors(mode):
    x, y, v = Tensor(X), Tensor(Y), Tensor(V)
    with pytest.raises(ArgumentError, match="must return a tuple of at least two outputs"):
        s2s_ad.ops.jvp(fn_one, (x, y), (v, v), has_aux=True)
    with pytest.raises(ArgumentError, match="must return a tuple of at least two outputs"):
        s2s_ad.ops.vjp(fn_one, x, y, has_aux=True)

    class VjpAuxInside(nn.Cell):
        def construct(self, a):
            return s2s_ad.ops.vjp(fn_aux, a, a, has_aux=True)

    with pytest.raises(NotSupportedError, match=r"test_ports.py:\d+: vjp\(fn, \*inputs, has_aux=True\) returns"):
        VjpAuxInside()(x)
