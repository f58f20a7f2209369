"""W11: the full Hessian of a 6-layer tanh MLP w.r.t. its input, float64.

``f(x) = sum(tanh(... tanh(x @ W1) ...) @ W6)`` with five tanh layers of width 32 and a
linear last layer to one output; x has n = 16 or 64 elements (``quick``: 8). The Hessian is
dense: s2s_ad computes it as ``jit(hessian(f))``, one batched forward-over-reverse program
over the n basis tangents; JAX as ``jax.jit(jax.hessian(f))`` (vmap of forward over
reverse). The hand-written version sums, over the tanh layers, ``Jz^T diag(a * tanh''(z)) Jz``
(``Jz`` the Jacobian of the layer's pre-activations w.r.t. x, ``a`` the adjoint of its
outputs): the exact Hessian of a network whose only nonlinearities are elementwise.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .common import Impl, Skip, Variant, jax_ready, load_jax, load_s2s_ad

SIZES = (16, 64)
QUICK_SIZES = (8,)
WIDTH = 32
LAYERS = 6


def inputs(n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The point x and the weights (scaled by 1/sqrt(fan-in)), float64, seeded."""
    rng = np.random.default_rng(11)
    ws, d = [], n
    for layer in range(LAYERS):
        out = 1 if layer == LAYERS - 1 else WIDTH
        ws.append(rng.standard_normal((d, out)) / np.sqrt(d))
        d = out
    return rng.standard_normal(n), ws


def s2s_ad_impl(n: int) -> Impl:
    import s2s_ad.ops as ops
    from s2s_ad import Tensor

    s2s_ad = load_s2s_ad()
    xa, wa = inputs(n)
    ws = [Tensor(w) for w in wa]

    def f(x):
        h = ops.reshape(x, (1, -1))
        for w in ws[:-1]:
            h = ops.tanh(ops.matmul(h, w))
        return ops.sum(ops.matmul(h, ws[-1]))

    hess = s2s_ad.jit(s2s_ad.hessian(f))
    fwd = s2s_ad.jit(f)
    x = Tensor(xa)
    return Impl(grad=lambda: hess(x), forward=lambda: fwd(x))


def jax_impl(n: int) -> Impl:
    jax, jnp = load_jax()
    xa, wa = inputs(n)
    ws = [jnp.asarray(w) for w in wa]

    def f(x):
        h = x.reshape((1, -1))
        for w in ws[:-1]:
            h = jnp.tanh(h @ w)
        return jnp.sum(h @ ws[-1])

    hess = jax.jit(jax.hessian(f))
    fwd = jax.jit(f)
    x = jnp.asarray(xa)
    return Impl(grad=lambda: jax_ready(hess(x)), forward=lambda: jax_ready(fwd(x)))


def numpy_hessian(x: np.ndarray, ws: list[np.ndarray]) -> np.ndarray:
    """``sum_l Jz_l^T diag(a_l * tanh''(z_l)) Jz_l`` over the tanh layers."""
    h, jh = x[None, :], np.eye(x.size)  # value (1, d) and its Jacobian w.r.t. x (n, d)
    saved = []
    for w in ws[:-1]:
        jz = jh @ w
        h = np.tanh(h @ w)
        saved.append((jz, h[0]))
        jh = jz * (1.0 - h * h)
    a = ws[-1][:, 0]  # adjoint of the last hidden layer's output
    hess = np.zeros((x.size, x.size))
    for (jz, hv), w in zip(reversed(saved), reversed(ws[:-1])):
        d1 = 1.0 - hv * hv
        hess += (jz * (a * -2.0 * hv * d1)) @ jz.T
        a = w @ (a * d1)
    return hess


def numpy_forward(x: np.ndarray, ws: list[np.ndarray]) -> np.ndarray:
    h = x[None, :]
    for w in ws[:-1]:
        h = np.tanh(h @ w)
    return np.sum(h @ ws[-1])


def numpy_impl(n: int) -> Impl:
    x, ws = inputs(n)
    return Impl(grad=partial(numpy_hessian, x, ws), forward=partial(numpy_forward, x, ws))


def not_implemented(system: str, *_: object) -> Impl:
    raise Skip(f"no {system} version of this workload (compared with JAX and hand-written numpy)")


def variants(quick: bool = False) -> list[Variant]:
    """n = 16 and 64 (8 when ``quick``)."""
    from .common import SYSTEMS

    own = {"s2s_ad": s2s_ad_impl, "jax": jax_impl, "numpy": numpy_impl}
    return [
        Variant(
            "W11",
            f"MLP Hessian n={n}",
            np.dtype(np.float64),
            {s: partial(own[s], n) if s in own else partial(not_implemented, s) for s in SYSTEMS},
        )
        for n in (QUICK_SIZES if quick else SIZES)
    ]
