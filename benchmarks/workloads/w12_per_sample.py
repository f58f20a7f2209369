"""W12: per-sample gradients of an MLP's loss, batch 256, float32.

``loss(params, x, y) = 0.5 * (mlp(x) - y)**2`` for one example, ``mlp`` a 32→64→64→1 tanh
network with biases; the gradient w.r.t. every weight and bias for each of 256 examples
(``quick``: an 8→16→16→1 network, 16 examples). s2s_ad computes it as
``jit(vmap(grad(loss), in_axes=(None, 0, 0)))``, JAX as
``jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))``; the hand-written version
back-propagates the whole batch and forms each example's weight gradients as outer products.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .common import Impl, Skip, Variant, jax_ready, load_jax, load_s2s_ad

FULL = (256, 32, 64)
QUICK = (16, 8, 16)


def inputs(batch: int, d: int, h: int) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """The parameters ``(W1, b1, W2, b2, W3, b3)``, the examples and their targets, float32, seeded."""
    rng = np.random.default_rng(12)

    def f32(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float32)

    params = (
        f32(rng.standard_normal((d, h)) / np.sqrt(d)),
        f32(0.1 * rng.standard_normal(h)),
        f32(rng.standard_normal((h, h)) / np.sqrt(h)),
        f32(0.1 * rng.standard_normal(h)),
        f32(rng.standard_normal((h, 1)) / np.sqrt(h)),
        f32(0.1 * rng.standard_normal(1)),
    )
    return params, f32(rng.standard_normal((batch, d))), f32(rng.standard_normal(batch))


def s2s_ad_impl(batch: int, d: int, h: int) -> Impl:
    import s2s_ad.ops as ops
    from s2s_ad import Tensor

    s2s_ad = load_s2s_ad()
    pa, xa, ya = inputs(batch, d, h)

    def loss(params, x, y):
        w1, b1, w2, b2, w3, b3 = params
        a = ops.tanh(ops.matmul(ops.reshape(x, (1, -1)), w1) + b1)
        a = ops.tanh(ops.matmul(a, w2) + b2)
        r = ops.matmul(a, w3) + b3 - y
        return 0.5 * ops.sum(r * r)

    per_sample = s2s_ad.jit(s2s_ad.vmap(s2s_ad.grad(loss), in_axes=(None, 0, 0)))
    losses = s2s_ad.jit(s2s_ad.vmap(loss, in_axes=(None, 0, 0)))
    params, x, y = tuple(Tensor(p) for p in pa), Tensor(xa), Tensor(ya)
    return Impl(grad=lambda: per_sample(params, x, y), forward=lambda: losses(params, x, y))


def jax_impl(batch: int, d: int, h: int) -> Impl:
    jax, jnp = load_jax()
    pa, xa, ya = inputs(batch, d, h)

    def loss(params, x, y):
        w1, b1, w2, b2, w3, b3 = params
        a = jnp.tanh(x[None, :] @ w1 + b1)
        a = jnp.tanh(a @ w2 + b2)
        r = a @ w3 + b3 - y
        return 0.5 * jnp.sum(r * r)

    per_sample = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))
    losses = jax.jit(jax.vmap(loss, in_axes=(None, 0, 0)))
    params, x, y = tuple(jnp.asarray(p) for p in pa), jnp.asarray(xa), jnp.asarray(ya)
    return Impl(grad=lambda: jax_ready(per_sample(params, x, y)), forward=lambda: jax_ready(losses(params, x, y)))


def numpy_per_sample(params: tuple[np.ndarray, ...], x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    """The whole batch forward and back; each example's weight gradient an outer product."""
    w1, b1, w2, b2, w3, b3 = params
    a1 = np.tanh(x @ w1 + b1)
    a2 = np.tanh(a1 @ w2 + b2)
    d3 = a2 @ w3 + b3 - y[:, None]  # (batch, 1)
    d2 = (d3 @ w3.T) * (1 - a2 * a2)
    d1 = (d2 @ w2.T) * (1 - a1 * a1)
    return (
        x[:, :, None] * d1[:, None, :],
        d1,
        a1[:, :, None] * d2[:, None, :],
        d2,
        a2[:, :, None] * d3[:, None, :],
        d3,
    )


def numpy_losses(params: tuple[np.ndarray, ...], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    w1, b1, w2, b2, w3, b3 = params
    r = np.tanh(np.tanh(x @ w1 + b1) @ w2 + b2) @ w3 + b3 - y[:, None]
    return 0.5 * r[:, 0] ** 2


def numpy_impl(batch: int, d: int, h: int) -> Impl:
    args = inputs(batch, d, h)
    return Impl(grad=partial(numpy_per_sample, *args), forward=partial(numpy_losses, *args))


def not_implemented(system: str, *_: object) -> Impl:
    raise Skip(f"no {system} version of this workload (compared with JAX and hand-written numpy)")


def variants(quick: bool = False) -> list[Variant]:
    """Batch 256 of a 32→64→64→1 network (16 of 8→16→16→1 when ``quick``)."""
    from .common import SYSTEMS

    batch, d, h = QUICK if quick else FULL
    own = {"s2s_ad": s2s_ad_impl, "jax": jax_impl, "numpy": numpy_impl}
    builders = {s: partial(own[s], batch, d, h) if s in own else partial(not_implemented, s) for s in SYSTEMS}
    return [Variant("W12", f"per-sample gradients batch={batch} {d}-{h}-{h}-1", np.dtype(np.float32), builders)]
