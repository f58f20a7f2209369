"""W5: the 4th derivative of ``g(x) = sin(x) * exp(-x*x) / (1 + x*x)``, float64.

Two variants: at the scalar x = 0.5, and elementwise at 1e5 points (``quick``: 1e3) in
[-3, 3], as nested gradients of sums. The hand-written versions evaluate the closed form
that SymPy derives (once, on first use) and prints with common subexpressions shared.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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

POINTS = 100_000
QUICK_POINTS = 1_000
X0 = 0.5
ORDER = 4


def inputs(n: int | None) -> np.ndarray:
    """The scalar ``X0`` (n is None) or n points in [-3, 3], float64."""
    if n is None:
        return np.array(X0)
    return np.random.default_rng(5).uniform(-3.0, 3.0, n)


@functools.cache
def closed_form() -> tuple[Callable, Callable]:
    """``(numpy_function, math_function)`` of g's 4th derivative, from SymPy."""
    import sympy

    x = sympy.Symbol("x", real=True)
    d4 = sympy.diff(sympy.sin(x) * sympy.exp(-x * x) / (1 + x * x), x, ORDER)
    return sympy.lambdify(x, d4, "numpy", cse=True), sympy.lambdify(x, d4, "math", cse=True)


def _s2s_g(x):
    return ops.sin(x) * ops.exp(-x * x) / (1 + x * x)


def s2s_ad_impl(n: int | None) -> Impl:
    from s2s_ad import Tensor

    s2s_ad = load_s2s_ad()

    d = _s2s_g
    for _ in range(ORDER):
        d = s2s_ad.grad(d)
    x = Tensor(inputs(n))
    return Impl(grad=lambda: d(x))


def jax_impl(n: int | None) -> Impl:
    jax, jnp = load_jax()

    def g(x):
        return jnp.sin(x) * jnp.exp(-x * x) / (1 + x * x)

    d = g
    for _ in range(ORDER):
        d = jax.grad(d)
    fn = jax.jit(d if n is None else jax.vmap(d))
    x = jnp.asarray(inputs(n))
    return Impl(grad=lambda: jax_ready(fn(x)))


def torch_impl(n: int | None) -> Impl:
    torch = load_torch()
    x = torch_leaf(inputs(n))

    def d4() -> object:
        y = torch.sin(x) * torch.exp(-x * x) / (1 + x * x)
        for k in range(ORDER):
            (y,) = torch.autograd.grad(y.sum(), x, create_graph=k < ORDER - 1)
        return y

    return Impl(grad=d4)


def _np_g(x):
    """g in numpy (tangent differentiates this source)."""
    return np.sin(x) * np.exp(-x * x) / (1 + x * x)


def tangent_impl(n: int | None) -> Impl:
    tangent = load_tangent()
    d = _np_g
    for _ in range(ORDER):
        d = tangent.grad(d)
    x = float(X0) if n is None else inputs(n)
    return Impl(grad=lambda: d(x))


def autograd_impl(n: int | None) -> Impl:
    autograd, anp = load_autograd()

    def g(x):
        return anp.sin(x) * anp.exp(-x * x) / (1 + x * x)

    d = g
    for _ in range(ORDER):
        d = autograd.grad(d) if n is None else autograd.elementwise_grad(d)
    x = float(X0) if n is None else inputs(n)
    return Impl(grad=lambda: d(x))


def numpy_impl(n: int | None) -> Impl:
    fn = closed_form()[0]
    x = inputs(n)
    return Impl(grad=partial(fn, x))


def numba_impl(n: int | None) -> Impl:
    scalar = njit(closed_form()[1])
    if n is None:
        return Impl(grad=partial(scalar, float(X0)))

    def loop(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = scalar(x[i])
        return out

    return Impl(grad=partial(njit(loop), inputs(n)))


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
    """At a scalar, and at many points."""
    n = QUICK_POINTS if quick else POINTS
    label = f"1e{len(str(n)) - 1}"
    return [
        Variant("W5", f"d4 scalar x={X0}", np.dtype(np.float64), {s: partial(b, None) for s, b in BUILDERS.items()}),
        Variant("W5", f"d4 at {label} points", np.dtype(np.float64), {s: partial(b, n) for s, b in BUILDERS.items()}),
    ]
