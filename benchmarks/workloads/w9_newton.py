"""W9: one Newton step of L2-regularised logistic regression, full Hessian, float64.

``loss(w) = mean(log(1 + exp(-y * (X @ w)))) + LAM / 2 * sum(w * w)`` with n = 500 samples,
d = 30 features, labels ``y`` in {-1, 1}. The step is ``w - solve(H, g)`` with the gradient
``g`` and the full (d, d) Hessian ``H`` of the loss, both computed in one jitted function
(``s2s_ad.jit`` of ``ops.grad`` and ``s2s_ad.hessian``; JAX: ``jax.jit`` of ``jax.grad`` and
``jax.hessian``); the (d, d) solve is numpy's (JAX's) in every system. The hand-written
version uses ``H = X^T diag(p (1 - p)) X / n + LAM I``. ``quick`` uses n = 50, d = 5.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .common import Impl, Skip, Variant, jax_ready, load_jax, load_s2s_ad

FULL = (500, 30)
QUICK = (50, 5)
LAM = 1e-2


def inputs(n: int, dim: int) -> dict[str, np.ndarray]:
    """Features, labels in {-1, 1} from a noisy linear model, and a starting point, seeded."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((n, dim))
    y = np.sign(x @ rng.standard_normal(dim) + 0.5 * rng.standard_normal(n))
    return {"x": x, "y": y, "w": 0.1 * rng.standard_normal(dim)}


def s2s_ad_impl(n: int, dim: int) -> Impl:
    import s2s_ad.ops as ops
    from s2s_ad import Tensor

    s2s_ad = load_s2s_ad()
    d = inputs(n, dim)

    def loss(w, x, y):
        # s2s_ad's MatMul takes 2-D operands only (MindSpore's also takes a vector): w as a column
        margin = y * ops.matmul(x, ops.reshape(w, (-1, 1)))[:, 0]
        return ops.mean(ops.log(1.0 + ops.exp(-margin))) + 0.5 * LAM * ops.sum(w * w)

    @s2s_ad.jit
    def grad_and_hessian(w, x, y):
        return ops.grad(loss)(w, x, y), s2s_ad.hessian(loss)(w, x, y)

    w, x, y = Tensor(d["w"]), Tensor(d["x"]), Tensor(d["y"])

    def step() -> np.ndarray:
        g, h = grad_and_hessian(w, x, y)
        return d["w"] - np.linalg.solve(h.asnumpy(), g.asnumpy())

    return Impl(grad=step, forward=lambda: loss(w, x, y))


def jax_impl(n: int, dim: int) -> Impl:
    jax, jnp = load_jax()
    d = {k: jnp.asarray(v) for k, v in inputs(n, dim).items()}

    def loss(w, x, y):
        return jnp.mean(jnp.log(1.0 + jnp.exp(-y * (x @ w)))) + 0.5 * LAM * jnp.sum(w * w)

    @jax.jit
    def step(w, x, y):
        return w - jnp.linalg.solve(jax.hessian(loss)(w, x, y), jax.grad(loss)(w, x, y))

    fwd = jax.jit(loss)
    w, x, y = d["w"], d["x"], d["y"]
    return Impl(grad=lambda: jax_ready(step(w, x, y)), forward=lambda: jax_ready(fwd(w, x, y)))


def numpy_loss(d: dict[str, np.ndarray]) -> np.ndarray:
    w = d["w"]
    return np.mean(np.log(1.0 + np.exp(-d["y"] * (d["x"] @ w)))) + 0.5 * LAM * np.sum(w * w)


def numpy_step(d: dict[str, np.ndarray]) -> np.ndarray:
    """The Newton step with the analytic gradient and Hessian."""
    x, y, w = d["x"], d["y"], d["w"]
    n = x.shape[0]
    p = 1.0 / (1.0 + np.exp(y * (x @ w)))  # sigmoid(-margin)
    g = -(x.T @ (y * p)) / n + LAM * w
    h = (x.T * (p * (1.0 - p))) @ x / n + LAM * np.eye(w.shape[0])
    return w - np.linalg.solve(h, g)


def numpy_impl(n: int, dim: int) -> Impl:
    d = inputs(n, dim)
    return Impl(grad=partial(numpy_step, d), forward=partial(numpy_loss, d))


def not_implemented(system: str, *_: object) -> Impl:
    raise Skip(f"no {system} version of this workload (compared with JAX and hand-written numpy)")


def variants(quick: bool = False) -> list[Variant]:
    """n = 500, d = 30 (50 and 5 when ``quick``)."""
    from .common import SYSTEMS

    n, dim = QUICK if quick else FULL
    own = {"s2s_ad": s2s_ad_impl, "jax": jax_impl, "numpy": numpy_impl}
    builders = {s: partial(own[s], n, dim) if s in own else partial(not_implemented, s) for s in SYSTEMS}
    return [Variant("W9", f"Newton step n={n} d={dim}", np.dtype(np.float64), builders)]
