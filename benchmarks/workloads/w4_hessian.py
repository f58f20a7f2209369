"""W4: second derivatives of ``f(x) = sum(sin(x) * x**3)``, n = 100, float64.

Two variants: the full (n, n) Hessian and a Hessian-vector product ``H @ v``. The Hessian is
diagonal, ``diag(-x**3 sin x + 6 x**2 cos x + 6 x sin x)``; the hand-written versions use
that formula, and systems that do not detect the structure pay for n derivative sweeps.
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

N = 100
QUICK_N = 20


def inputs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """x in [-2, 2] and a tangent v, float64, seeded."""
    rng = np.random.default_rng(4)
    return rng.uniform(-2.0, 2.0, n), rng.standard_normal(n)


def _s2s_f(x):
    return ops.sum(ops.sin(x) * x**3)


def s2s_ad_impl(kind: str, n: int) -> Impl:
    from s2s_ad import Tensor

    s2s_ad = load_s2s_ad()

    x, v = (Tensor(a) for a in inputs(n))
    if kind == "hessian":
        hess = s2s_ad.hessian(_s2s_f)
        return Impl(grad=lambda: hess(x))
    return Impl(grad=lambda: s2s_ad.hvp(_s2s_f, x, v))


def jax_impl(kind: str, n: int) -> Impl:
    jax, jnp = load_jax()

    def f(x):
        return jnp.sum(jnp.sin(x) * x**3)

    x, v = (jnp.asarray(a) for a in inputs(n))
    if kind == "hessian":
        hess = jax.jit(jax.hessian(f))
        return Impl(grad=lambda: jax_ready(hess(x)))
    hvp = jax.jit(lambda x, v: jax.jvp(jax.grad(f), (x,), (v,))[1])
    return Impl(grad=lambda: jax_ready(hvp(x, v)))


def torch_impl(kind: str, n: int) -> Impl:
    torch = load_torch()

    def f(x):
        return torch.sum(torch.sin(x) * x**3)

    xa, va = inputs(n)
    if kind == "hessian":
        x = torch_leaf(xa, False)
        # vectorize=True batches the n backward sweeps with vmap (faster than the default loop).
        return Impl(grad=lambda: torch.autograd.functional.hessian(f, x, vectorize=True))
    x, v = torch_leaf(xa), torch_leaf(va, False)

    def hvp() -> object:
        (g,) = torch.autograd.grad(f(x), x, create_graph=True)
        return torch.autograd.grad(g, x, v)[0]

    return Impl(grad=hvp)


def _np_f(x):
    """The function in numpy (tangent differentiates this source)."""
    return np.sum(np.sin(x) * x**3)


def tangent_impl(kind: str, n: int) -> Impl:
    tangent = load_tangent()
    x, v = inputs(n)
    hvp = tangent.autodiff(tangent.grad(_np_f), mode="forward", wrt=(0,))
    if kind == "hvp":
        return Impl(grad=lambda: hvp(x, v))
    eye = np.eye(n)

    def hess() -> np.ndarray:  # no Hessian transform in tangent: one H @ e_i per column
        return np.stack([hvp(x, eye[i]) for i in range(n)], axis=1)

    return Impl(grad=hess)


def autograd_impl(kind: str, n: int) -> Impl:
    autograd, anp = load_autograd()

    def f(x):
        return anp.sum(anp.sin(x) * x**3)

    x, v = inputs(n)
    if kind == "hessian":
        hess = autograd.hessian(f)
        return Impl(grad=lambda: hess(x))
    hvp = autograd.hessian_tensor_product(f)
    return Impl(grad=lambda: hvp(x, v))


def hessian_diagonal(x: np.ndarray) -> np.ndarray:
    """``d^2/dx_i^2 (sin(x_i) x_i^3)``."""
    s, c, x2 = np.sin(x), np.cos(x), x * x
    return (6 - x2) * x * s + 6 * x2 * c


def numpy_hessian(x: np.ndarray) -> np.ndarray:
    """The dense Hessian, built from the analytic diagonal."""
    return np.diag(hessian_diagonal(x))


def numpy_hvp(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    return hessian_diagonal(x) * v


def numpy_impl(kind: str, n: int) -> Impl:
    x, v = inputs(n)
    return Impl(grad=partial(numpy_hessian, x) if kind == "hessian" else partial(numpy_hvp, x, v))


def _nb_hessian(x):
    n = x.shape[0]
    out = np.zeros((n, n), x.dtype)
    for i in range(n):
        xi = x[i]
        x2 = xi * xi
        out[i, i] = (6.0 - x2) * xi * np.sin(xi) + 6.0 * x2 * np.cos(xi)
    return out


def _nb_hvp(x, v):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        xi = x[i]
        x2 = xi * xi
        out[i] = ((6.0 - x2) * xi * np.sin(xi) + 6.0 * x2 * np.cos(xi)) * v[i]
    return out


def numba_impl(kind: str, n: int) -> Impl:
    x, v = inputs(n)
    if kind == "hessian":
        return Impl(grad=partial(njit(_nb_hessian), x))
    return Impl(grad=partial(njit(_nb_hvp), x, v))


BUILDERS = {
    "s2s_ad": s2s_ad_impl,
    "jax": jax_impl,
    "torch": torch_impl,
    "tangent": tangent_impl,
    "autograd": autograd_impl,
    "numpy": numpy_impl,
    "numba": numba_impl,
}

NOTES = {"tangent": "Hessian: n forward-over-reverse H @ e_i products looped in Python"}


def variants(quick: bool = False) -> list[Variant]:
    """The Hessian and the Hessian-vector product."""
    n = QUICK_N if quick else N
    return [
        Variant(
            "W4",
            f"{kind} n={n}",
            np.dtype(np.float64),
            {s: partial(b, kind, n) for s, b in BUILDERS.items()},
            NOTES if kind == "hessian" else {},
        )
        for kind in ("hessian", "hvp")
    ]
