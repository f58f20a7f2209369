"""The public API used the way users use it, for ``tests/test_typing.py``: mypy checks this file
(``assert_type`` pins what each call returns, so a public signature that degrades to ``Any``
or changes its result type fails), and the test also runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, assert_type

import numpy as np

import s2s_ad
from s2s_ad import (
    GRAPH_MODE,
    PYNATIVE_MODE,
    Parameter,
    ParameterTuple,
    Tensor,
    context,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacrev,
    jit,
    jvp,
    laplacian,
    nn,
    ops,
    value_and_grad,
    value_grad_and_laplacian,
    vjp,
    vmap,
)
from s2s_ad.api import JitFunction, ReverseFunction, VmapFunction
from s2s_ad.jacobians import JacobianFunction
from s2s_ad.laplacian import LaplacianFunction


def f(x: Tensor, y: Tensor) -> Tensor:
    return ops.sin(x) * y + x @ y.T


class Net(nn.Cell):
    def __init__(self) -> None:
        super().__init__()
        self.w = Parameter(Tensor(np.ones((2, 2), np.float32)), name="w")

    def construct(self, x: Tensor) -> Tensor:
        return ops.matmul(x, self.w).sum()


def main() -> None:
    context.set_context(mode=PYNATIVE_MODE)
    assert_type(s2s_ad.get_context("mode"), Any)
    assert_type(s2s_ad.__version__, str)

    x = Tensor(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    y = Tensor(np.ones((2, 2), np.float32))
    assert_type(x + 1.0, Tensor)
    assert_type(2.0 * x - y / 3.0, Tensor)
    assert_type(x[0], Tensor)
    assert_type(x.shape, tuple[int, ...])
    assert_type(x.asnumpy(), np.ndarray)
    assert_type(x == y, Tensor)

    df = grad(f)
    assert_type(df, ReverseFunction)
    dx = df(x, y)
    assert_type(grad(f, grad_position=(0, 1))(x, y), Any)
    print(dx)

    deco = grad(grad_position=1)
    assert_type(deco, Callable[[Callable[..., Any]], ReverseFunction])

    @value_and_grad
    def loss(x: Tensor) -> Tensor:
        return (x * x).sum()

    assert_type(loss, ReverseFunction)
    value, g = loss(x)
    print(value, g)

    net = Net()
    params = ParameterTuple(net.trainable_params())
    assert_type(params[0], Parameter)
    assert_type(ops.GradOperation(get_by_list=True)(net, params), ReverseFunction)
    assert_type(grad(net, None, weights=params)(x), Any)

    out, tangent = jvp(f, (x, y), (y, y))
    out, cotangent = vjp(f, (x, y), y)
    assert_type(jvp(f, (x, y), (y, y)), tuple[Any, Any])
    print(tangent, cotangent)

    fast = jit(f)
    assert_type(fast, JitFunction)
    assert_type(jit(target="cpu"), Callable[[Callable[..., Any]], JitFunction])
    print(fast(x, y))

    batched = vmap(f, in_axes=(0, None))
    assert_type(batched, VmapFunction)
    print(ops.vmap(f, in_axes=[0, None], out_axes=0)(x, y))
    assert_type(vmap(grad(f), in_axes=(0, None))(x, y), Any)
    print(batched(x, y))

    def scalar(x: Tensor) -> Tensor:
        return (ops.sin(x) * x).sum()

    assert_type(jacfwd(f), JacobianFunction)
    assert_type(jacrev(f, argnums=(0, 1)), JacobianFunction)
    assert_type(hessian(scalar), JacobianFunction)
    assert_type(jacrev(argnums=1), Callable[[Callable[..., Any]], JacobianFunction])
    assert_type(jacfwd(f, has_aux=True), JacobianFunction)
    assert_type(ops.jacfwd(f, grad_position=(0, 1), has_aux=False), JacobianFunction)
    assert_type(ops.jacrev(f), JacobianFunction)
    print(hessian(scalar)(x[0]))
    print(hvp(scalar, (x[0],), (y[0],)))
    assert_type(laplacian(scalar), LaplacianFunction)
    assert_type(value_grad_and_laplacian(f, argnums=1), LaplacianFunction)
    print(laplacian(scalar)(x[0]), vmap(laplacian(scalar))(x))

    context.set_context(mode=GRAPH_MODE)
    print(grad(scalar)(x[0]))
    context.set_context(mode=PYNATIVE_MODE)


if __name__ == "__main__":
    main()
