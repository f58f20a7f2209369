"""W2: ``sum(x*exp(y)*z**2 + sin(x)*cos(y)/(1+z*z))``, gradient with respect to x, y and z.

Vectors of n = 10, 1e4, 1e6 elements (``quick``: 10 and 1e4), float32 and float64.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from s2s_ad import ops

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

SIZES = (10, 10_000, 1_000_000)
QUICK_SIZES = (10, 10_000)
DTYPES = (np.float32, np.float64)


def inputs(n: int, dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, z drawn uniformly from [-1, 1] (seeded by n)."""
    rng = np.random.default_rng(n)
    return tuple(rng.uniform(-1.0, 1.0, n).astype(dtype) for _ in range(3))


def _s2s_f(x, y, z):
    return ops.sum(x * ops.exp(y) * z**2 + ops.sin(x) * ops.cos(y) / (1 + z * z))


def s2s_ad_impl(n: int, dtype: type) -> Impl:
    from s2s_ad import Tensor

    s2s_ad = load_s2s_ad()

    x, y, z = (Tensor(a) for a in inputs(n, dtype))
    grad_fn = ops.GradOperation(get_all=True)(_s2s_f)
    fwd = s2s_ad.jit(_s2s_f)
    return Impl(grad=lambda: grad_fn(x, y, z), forward=lambda: fwd(x, y, z))


def jax_impl(n: int, dtype: type) -> Impl:
    jax, jnp = load_jax()

    def f(x, y, z):
        return jnp.sum(x * jnp.exp(y) * z**2 + jnp.sin(x) * jnp.cos(y) / (1 + z * z))

    grad_fn = jax.jit(jax.grad(f, argnums=(0, 1, 2)))
    fwd = jax.jit(f)
    x, y, z = (jnp.asarray(a) for a in inputs(n, dtype))
    return Impl(grad=lambda: jax_ready(grad_fn(x, y, z)), forward=lambda: jax_ready(fwd(x, y, z)))


def torch_impl(n: int, dtype: type) -> Impl:
    torch = load_torch()
    x, y, z = (torch_leaf(a) for a in inputs(n, dtype))

    def f(x, y, z):
        return torch.sum(x * torch.exp(y) * z**2 + torch.sin(x) * torch.cos(y) / (1 + z * z))

    def forward() -> object:
        with torch.no_grad():
            return f(x, y, z)

    return Impl(grad=lambda: torch.autograd.grad(f(x, y, z), (x, y, z)), forward=forward)


def _np_f(x, y, z):
    """The function in numpy (tangent differentiates this source)."""
    return np.sum(x * np.exp(y) * z**2 + np.sin(x) * np.cos(y) / (1 + z * z))


def tangent_impl(n: int, dtype: type) -> Impl:
    tangent = load_tangent()
    x, y, z = inputs(n, dtype)
    grad_fn = tangent.grad(_np_f, wrt=(0, 1, 2))
    return Impl(grad=lambda: grad_fn(x, y, z), forward=lambda: _np_f(x, y, z))


def autograd_impl(n: int, dtype: type) -> Impl:
    autograd, anp = load_autograd()

    def f(x, y, z):
        return anp.sum(x * anp.exp(y) * z**2 + anp.sin(x) * anp.cos(y) / (1 + z * z))

    x, y, z = inputs(n, dtype)
    # autograd.grad takes one argnum; a tuple argument gives all three gradients in one sweep.
    grad_all = autograd.grad(lambda p: f(*p))
    return Impl(grad=lambda: grad_all((x, y, z)), forward=lambda: f(x, y, z))


def numpy_grad(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hand-written gradient (common subexpressions computed once)."""
    ey, sx, cx, sy, cy = np.exp(y), np.sin(x), np.cos(x), np.sin(y), np.cos(y)
    z2 = z * z
    r = 1 / (1 + z2)
    dx = ey * z2 + cx * cy * r
    dy = x * ey * z2 - sx * sy * r
    dz = 2 * z * (x * ey - sx * cy * r * r)
    return dx, dy, dz


def numpy_impl(n: int, dtype: type) -> Impl:
    x, y, z = inputs(n, dtype)
    return Impl(grad=partial(numpy_grad, x, y, z), forward=partial(_np_f, x, y, z))


def _nb_grad(x, y, z):
    one, two = x.dtype.type(1), x.dtype.type(2)  # literals would promote float32 to float64
    dx, dy, dz = np.empty_like(x), np.empty_like(y), np.empty_like(z)
    for i in range(x.shape[0]):
        ey = np.exp(y[i])
        sy, cy = np.sin(y[i]), np.cos(y[i])
        sx, cx = np.sin(x[i]), np.cos(x[i])
        z2 = z[i] * z[i]
        r = one / (one + z2)
        dx[i] = ey * z2 + cx * cy * r
        dy[i] = x[i] * ey * z2 - sx * sy * r
        dz[i] = two * z[i] * (x[i] * ey - sx * cy * r * r)
    return dx, dy, dz


def _nb_forward(x, y, z):
    acc, one = x.dtype.type(0), x.dtype.type(1)
    for i in range(x.shape[0]):
        acc += x[i] * np.exp(y[i]) * z[i] * z[i] + np.sin(x[i]) * np.cos(y[i]) / (one + z[i] * z[i])
    return acc


def numba_impl(n: int, dtype: type) -> Impl:
    x, y, z = inputs(n, dtype)
    grad_fn, fwd = njit(_nb_grad), njit(_nb_forward)
    return Impl(grad=partial(grad_fn, x, y, z), forward=partial(fwd, x, y, z))


BUILDERS = {
    "s2s_ad": s2s_ad_impl,
    "jax": jax_impl,
    "torch": torch_impl,
    "tangent": tangent_impl,
    "autograd": autograd_impl,
    "numpy": numpy_impl,
    "numba": numba_impl,
}


def size_label(n: int) -> str:
    return f"1e{len(str(n)) - 1}" if n >= 1000 and str(n).strip("0") == "1" else str(n)


def variants(quick: bool = False) -> list[Variant]:
    """One variant per size and dtype."""
    return [
        Variant(
            "W2",
            f"n={size_label(n)} {np.dtype(dt).name}",
            np.dtype(dt),
            {s: partial(b, n, dt) for s, b in BUILDERS.items()},
        )
        for n in (QUICK_SIZES if quick else SIZES)
        for dt in DTYPES
    ]
