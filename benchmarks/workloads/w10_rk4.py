"""W10: a fixed-step RK4 integrator of the Lorenz system, gradient of ``sum(s_n**2)`` with respect
to the initial state ``s_0`` and the parameters ``(sigma, rho, beta)``, float64.

``for _ in range(n): s = rk4_step(s, p)`` at n = 100 and 10,000 steps (``quick``: 100). s2s_ad
keeps the loop as a loop (a ``loop`` region), so its generated source and compile time do not
grow with n; JAX runs ``lax.fori_loop``; the numpy reference is a hand-written discrete adjoint.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .common import Impl, Skip, Variant, jax_ready, load_jax, load_s2s_ad

STEPS = (100, 10_000)
QUICK_STEPS = (100,)
DT = 0.002


def inputs() -> tuple[np.ndarray, np.ndarray]:
    """The initial state and the classic parameters (sigma, rho, beta)."""
    return np.array([1.0, 1.0, 1.0]), np.array([10.0, 28.0, 8.0 / 3.0])


# ----------------------------------------------------------------------------- s2s_ad
def _s2s_functions(n: int):
    from s2s_ad import ops

    def lorenz(s, p):
        x, y, z = s[0], s[1], s[2]
        return ops.stack([p[0] * (y - x), x * (p[1] - z) - y, x * y - p[2] * z])

    def integrate(s, p):
        for _ in range(n):
            k1 = lorenz(s, p)
            k2 = lorenz(s + (0.5 * DT) * k1, p)
            k3 = lorenz(s + (0.5 * DT) * k2, p)
            k4 = lorenz(s + DT * k3, p)
            s = s + (DT / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        return s

    def loss(s, p):
        e = integrate(s, p)
        return (e * e).sum()

    return integrate, loss


def s2s_ad_impl(n: int) -> Impl:
    from s2s_ad import Tensor, ops

    s2s_ad = load_s2s_ad()
    integrate, loss = _s2s_functions(n)
    grad_fn = ops.GradOperation(get_all=True)(loss)
    fwd = s2s_ad.jit(integrate)
    s0, p = (Tensor(a) for a in inputs())
    return Impl(grad=lambda: grad_fn(s0, p), forward=lambda: fwd(s0, p))


# ----------------------------------------------------------------------------- JAX
def jax_impl(n: int) -> Impl:
    jax, jnp = load_jax()

    def lorenz(s, p):
        x, y, z = s[0], s[1], s[2]
        return jnp.stack([p[0] * (y - x), x * (p[1] - z) - y, x * y - p[2] * z])

    def step(_i, s, p):
        k1 = lorenz(s, p)
        k2 = lorenz(s + (0.5 * DT) * k1, p)
        k3 = lorenz(s + (0.5 * DT) * k2, p)
        k4 = lorenz(s + DT * k3, p)
        return s + (DT / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    def integrate(s, p):
        return jax.lax.fori_loop(0, n, partial(_bind_p, step, p), s)

    def loss(s, p):
        e = integrate(s, p)
        return jnp.sum(e * e)

    grad_fn = jax.jit(jax.grad(loss, argnums=(0, 1)))
    fwd = jax.jit(integrate)
    s0, p = (jnp.asarray(a) for a in inputs())
    return Impl(grad=lambda: jax_ready(grad_fn(s0, p)), forward=lambda: jax_ready(fwd(s0, p)))


def _bind_p(step, p, i, s):
    return step(i, s, p)


# ----------------------------------------------------------------------------- numpy
def _f(s: np.ndarray, p: np.ndarray) -> np.ndarray:
    x, y, z = s
    return np.array([p[0] * (y - x), x * (p[1] - z) - y, x * y - p[2] * z])


def _js(s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """d f / d s."""
    x, y, z = s
    return np.array([[-p[0], p[0], 0.0], [p[1] - z, -1.0, -x], [y, x, -p[2]]])


def _jp(s: np.ndarray) -> np.ndarray:
    """d f / d p."""
    x, y, z = s
    return np.array([[y - x, 0.0, 0.0], [0.0, x, 0.0], [0.0, 0.0, -z]])


def numpy_forward(s: np.ndarray, p: np.ndarray, n: int) -> np.ndarray:
    for _ in range(n):
        k1 = _f(s, p)
        k2 = _f(s + 0.5 * DT * k1, p)
        k3 = _f(s + 0.5 * DT * k2, p)
        k4 = _f(s + DT * k3, p)
        s = s + DT / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return s


def numpy_grad(s: np.ndarray, p: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The discrete adjoint of the RK4 steps: states stored forward, stages recomputed backward."""
    states = [s]
    for _ in range(n):
        states.append(numpy_forward(states[-1], p, 1))
    bs, bp = 2.0 * states[-1], np.zeros(3)
    for s in reversed(states[:-1]):
        k1 = _f(s, p)
        s1 = s + 0.5 * DT * k1
        k2 = _f(s1, p)
        s2 = s + 0.5 * DT * k2
        k3 = _f(s2, p)
        s3 = s + DT * k3
        bk1, bk2, bk3, bk4 = bs * DT / 6.0, bs * DT / 3.0, bs * DT / 3.0, bs * DT / 6.0
        new_bs = bs.copy()
        b3 = _js(s3, p).T @ bk4  # k4 = f(s3), s3 = s + DT k3
        bp += _jp(s3).T @ bk4
        bk3 = bk3 + DT * b3
        b2 = _js(s2, p).T @ bk3  # k3 = f(s2), s2 = s + DT/2 k2
        bp += _jp(s2).T @ bk3
        bk2 = bk2 + 0.5 * DT * b2
        b1 = _js(s1, p).T @ bk2  # k2 = f(s1), s1 = s + DT/2 k1
        bp += _jp(s1).T @ bk2
        bk1 = bk1 + 0.5 * DT * b1
        new_bs += b3 + b2 + b1 + _js(s, p).T @ bk1  # k1 = f(s)
        bp += _jp(s).T @ bk1
        bs = new_bs
    return bs, bp


def numpy_impl(n: int) -> Impl:
    s0, p = inputs()
    return Impl(grad=partial(numpy_grad, s0, p, n), forward=partial(numpy_forward, s0, p, n))


BUILDERS = {"s2s_ad": s2s_ad_impl, "jax": jax_impl, "numpy": numpy_impl}


def not_implemented(system: str, *_: object) -> Impl:
    raise Skip(f"no {system} version of this workload (compared with JAX and hand-written numpy)")


def variants(quick: bool = False) -> list[Variant]:
    """One variant per trip count; systems without a version are skipped with a note."""
    from .common import SYSTEMS

    def builders(n: int) -> dict:
        return {s: partial(BUILDERS[s], n) if s in BUILDERS else partial(not_implemented, s) for s in SYSTEMS}

    return [
        Variant("W10", f"rk4 lorenz {n} steps", np.dtype(np.float64), builders(n))
        for n in (QUICK_STEPS if quick else STEPS)
    ]
