"""W1: the seeds' MatMul network ``(x * z) @ y``, gradient of the sum of its outputs.

x (2, 3), y (3, 3) and the Parameter z (1,) are float32 and hold the seeds' values. Two
variants: the gradient with respect to x (``GradOperation()``) and with respect to the weight
z (``GradOperation(get_by_list=True)``). MindSpore seeds every output element with 1, so
both are gradients of ``sum((x * z) @ y)``.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .common import (
    Impl,
    Variant,
    jax_ready,
    load_autograd,
    load_jax,
    load_s2s_ad,
    load_tangent,
    load_torch,
    njit,
    torch_leaf,
)

X = np.array([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]], np.float32)
Y = np.array([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]], np.float32)
Z = np.array([1.0], np.float32)
WRT = ("x", "z")


def s2s_ad_impl(wrt: str) -> Impl:
    import s2s_ad.nn as nn
    import s2s_ad.ops as ops
    from s2s_ad import Parameter, ParameterTuple, Tensor

    load_s2s_ad()

    class Net(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            self.matmul = ops.MatMul()
            self.z = Parameter(Tensor(Z), name="z")

        def construct(self, x, y):
            x = x * self.z
            return self.matmul(x, y)

    net = Net()
    x, y = Tensor(X), Tensor(Y)
    if wrt == "x":
        grad_fn = ops.GradOperation()(net)
    else:
        grad_fn = ops.GradOperation(get_by_list=True)(net, ParameterTuple(net.trainable_params()))
    return Impl(grad=lambda: grad_fn(x, y), forward=lambda: net(x, y))


def jax_impl(wrt: str) -> Impl:
    jax, jnp = load_jax()

    def net(x, y, z):
        return (x * z) @ y

    def loss(x, y, z):
        return jnp.sum(net(x, y, z))

    grad_fn = jax.jit(jax.grad(loss, argnums=0 if wrt == "x" else 2))
    fwd = jax.jit(net)
    x, y, z = (jnp.asarray(a) for a in (X, Y, Z))
    return Impl(grad=lambda: grad_fn(x, y, z).block_until_ready(), forward=lambda: jax_ready(fwd(x, y, z)))


def torch_impl(wrt: str) -> Impl:
    torch = load_torch()
    x, y, z = torch_leaf(X, wrt == "x"), torch_leaf(Y, False), torch_leaf(Z, wrt == "z")
    target = x if wrt == "x" else z

    def grad() -> object:
        out = (x * z) @ y
        return torch.autograd.grad(out.sum(), target)[0]

    def forward() -> object:
        with torch.no_grad():
            return (x * z) @ y

    return Impl(grad=grad, forward=forward)


def _np_net(x, y, z):
    return np.dot(x * z, y)


def _np_loss(x, y, z):
    return np.sum(np.dot(x * z, y))


def tangent_impl(wrt: str) -> Impl:
    tangent = load_tangent()
    grad_fn = tangent.grad(_np_loss, wrt=(0,) if wrt == "x" else (2,))
    return Impl(grad=lambda: grad_fn(X, Y, Z), forward=lambda: _np_net(X, Y, Z))


def autograd_impl(wrt: str) -> Impl:
    autograd, anp = load_autograd()

    def loss(x, y, z):
        return anp.sum(anp.dot(x * z, y))

    grad_fn = autograd.grad(loss, 0 if wrt == "x" else 2)
    return Impl(grad=lambda: grad_fn(X, Y, Z), forward=lambda: anp.dot(X * Z, Y))


def numpy_grad(wrt: str, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Hand-written gradient of ``sum((x * z) @ y)``: the row sums of y broadcast over x's rows."""
    row = y.sum(axis=1)
    if wrt == "x":
        return np.broadcast_to(row * z, x.shape).copy()
    return np.array([np.dot(x.sum(axis=0), row)], x.dtype)


def numpy_impl(wrt: str) -> Impl:
    return Impl(grad=partial(numpy_grad, wrt, X, Y, Z), forward=partial(_np_net, X, Y, Z))


def _nb_grad_x(x, y, z):
    out = np.empty_like(x)
    for k in range(y.shape[0]):
        s = y.dtype.type(0)
        for j in range(y.shape[1]):
            s += y[k, j]
        for i in range(x.shape[0]):
            out[i, k] = s * z[0]
    return out


def _nb_grad_z(x, y, z):
    acc = x.dtype.type(0)
    for k in range(y.shape[0]):
        s = y.dtype.type(0)
        for j in range(y.shape[1]):
            s += y[k, j]
        c = x.dtype.type(0)
        for i in range(x.shape[0]):
            c += x[i, k]
        acc += c * s
    out = np.empty(1, x.dtype)
    out[0] = acc
    return out


def _nb_forward(x, y, z):
    out = np.zeros((x.shape[0], y.shape[1]), x.dtype)
    for i in range(x.shape[0]):
        for k in range(x.shape[1]):
            a = x[i, k] * z[0]
            for j in range(y.shape[1]):
                out[i, j] += a * y[k, j]
    return out


def numba_impl(wrt: str) -> Impl:
    grad_fn = njit(_nb_grad_x if wrt == "x" else _nb_grad_z)
    fwd = njit(_nb_forward)
    return Impl(grad=partial(grad_fn, X, Y, Z), forward=partial(fwd, X, Y, Z))


BUILDERS = {
    "s2s_ad": s2s_ad_impl,
    "jax": jax_impl,
    "torch": torch_impl,
    "tangent": tangent_impl,
    "autograd": autograd_impl,
    "numpy": numpy_impl,
    "numba": numba_impl,
}


def variants(quick: bool = False) -> list[Variant]:
    """The two W1 variants (the sizes are the seeds'; ``quick`` changes nothing)."""
    return [
        Variant("W1", f"grad wrt {wrt}", np.dtype(np.float32), {s: partial(b, wrt) for s, b in BUILDERS.items()})
        for wrt in WRT
    ]
