"""W8: radial-descriptor neural potential, force-matching loss gradient w.r.t. the weights, float64.

48 atoms at positions ``pos`` (a jittered 4 x 4 x 3 lattice). Each atom's descriptor is
``G[i, k] = sum_{j != i} exp(-ETA (r_ij - mu_k)^2) exp(-(r_ij / RC)^2)`` for 16 centres
``mu_k``; the energy is ``E = sum_i MLP(G[i])`` with a 16 -> 32 -> 32 -> 1 tanh MLP; the
forces are ``F = -dE/dpos``; the loss is ``mean((F - F_ref)^2)``, and the derivative is its
gradient with respect to the MLP's weights (a force of the model differentiated by the
weights: second order, mixed). s2s_ad is written in MindSpore style: the potential is an
``nn.Cell``, the forces ``ops.grad`` of it, the loss another Cell differentiated by
``ops.GradOperation(get_by_list=True)``. The hand-written numpy version derives the forces
and the weight gradient by hand (a tangent of the MLP along the descriptors' adjoint).
``quick`` uses 12 atoms.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .common import Impl, Skip, Variant, jax_ready, load_jax, load_s2s_ad

ATOMS = 48
QUICK_ATOMS = 12
CENTRES = 16
HIDDEN = 32
ETA = 4.0
RC = 4.0
MU = np.linspace(0.8, 4.0, CENTRES)
NAMES = ("w1", "b1", "w2", "b2", "w3", "b3")


def inputs(atoms: int) -> dict[str, np.ndarray]:
    """Positions (spacing 1.5, jitter 0.15), reference forces and Glorot-scaled weights, seeded."""
    rng = np.random.default_rng(8)
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(4), np.arange(3), indexing="ij"), -1).reshape(-1, 3)
    d = {"pos": 1.5 * grid[:atoms] + 0.15 * rng.standard_normal((atoms, 3))}
    d["f_ref"] = 0.5 * rng.standard_normal((atoms, 3))
    for i, (a, b) in enumerate(((CENTRES, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, 1)), start=1):
        d[f"w{i}"] = rng.standard_normal((a, b)) * np.sqrt(2.0 / (a + b))
        d[f"b{i}"] = 0.1 * rng.standard_normal(b)
    return d


def s2s_ad_impl(atoms: int) -> Impl:
    import s2s_ad.nn as nn
    import s2s_ad.ops as ops
    from s2s_ad import Parameter, ParameterTuple, Tensor

    load_s2s_ad()
    d = inputs(atoms)
    eye = Tensor(np.eye(atoms))
    mu = Tensor(MU)

    class Potential(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            for k in NAMES:
                setattr(self, k, Parameter(Tensor(d[k]), name=k))

        def construct(self, pos):
            n = pos.shape[0]
            diff = ops.reshape(pos, (n, 1, 3)) - ops.reshape(pos, (1, n, 3))
            r = ops.sqrt(ops.sum(diff * diff, -1) + eye)  # eye: no sqrt(0) on the diagonal
            pair = ops.exp(-((r / RC) ** 2)) * (1.0 - eye)
            gauss = ops.exp(-ETA * (ops.reshape(r, (n, n, 1)) - mu) ** 2)
            g = ops.sum(gauss * ops.reshape(pair, (n, n, 1)), 1)
            h = ops.tanh(ops.matmul(g, self.w1) + self.b1)
            h = ops.tanh(ops.matmul(h, self.w2) + self.b2)
            return ops.sum(ops.matmul(h, self.w3) + self.b3)

    potential = Potential()

    class ForceLoss(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            self.potential = potential

        def construct(self, pos, f_ref):
            forces = -ops.grad(self.potential)(pos)
            return ops.mean((forces - f_ref) ** 2)

    loss = ForceLoss()
    grad_fn = ops.GradOperation(get_by_list=True)(loss, ParameterTuple(potential.trainable_params()))
    pos, f_ref = Tensor(d["pos"]), Tensor(d["f_ref"])
    return Impl(grad=lambda: grad_fn(pos, f_ref), forward=lambda: loss(pos, f_ref))


def jax_impl(atoms: int) -> Impl:
    jax, jnp = load_jax()
    d = {k: jnp.asarray(v) for k, v in inputs(atoms).items()}
    eye, mu = jnp.eye(atoms), jnp.asarray(MU)

    def energy(pos, params):
        w1, b1, w2, b2, w3, b3 = params
        diff = pos[:, None, :] - pos[None, :, :]
        r = jnp.sqrt(jnp.sum(diff * diff, -1) + eye)
        pair = jnp.exp(-((r / RC) ** 2)) * (1.0 - eye)
        g = jnp.sum(jnp.exp(-ETA * (r[:, :, None] - mu) ** 2) * pair[:, :, None], 1)
        h = jnp.tanh(jnp.tanh(g @ w1 + b1) @ w2 + b2)
        return jnp.sum(h @ w3 + b3)

    def loss(params, pos, f_ref):
        return jnp.mean((-jax.grad(energy)(pos, params) - f_ref) ** 2)

    params = tuple(d[k] for k in NAMES)
    grad_fn, fwd = jax.jit(jax.grad(loss)), jax.jit(loss)
    pos, f_ref = d["pos"], d["f_ref"]
    return Impl(grad=lambda: jax_ready(grad_fn(params, pos, f_ref)), forward=lambda: jax_ready(fwd(params, pos, f_ref)))


def _geometry(pos: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(diff, r, phi, dphi)``: pair vectors, distances, the descriptor terms and their
    derivatives by r (zero on the diagonal)."""
    n = pos.shape[0]
    eye = np.eye(n)
    diff = pos[:, None, :] - pos[None, :, :]
    r = np.sqrt(np.sum(diff * diff, -1) + eye)
    pair = np.exp(-((r / RC) ** 2)) * (1.0 - eye)
    dpair = pair * (-2.0 * r / RC**2)
    gauss = np.exp(-ETA * (r[:, :, None] - MU) ** 2)
    dgauss = gauss * (-2.0 * ETA * (r[:, :, None] - MU))
    phi = gauss * pair[:, :, None]
    dphi = dgauss * pair[:, :, None] + gauss * dpair[:, :, None]
    return diff, r, phi, dphi


def _forces(d: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    diff, r, phi, dphi = _geometry(d["pos"])
    g = phi.sum(1)
    h1 = np.tanh(g @ d["w1"] + d["b1"])
    h2 = np.tanh(h1 @ d["w2"] + d["b2"])
    a2 = d["w3"][:, 0] * (1 - h2 * h2)
    a1 = (a2 @ d["w2"].T) * (1 - h1 * h1)
    s = a1 @ d["w1"].T  # dE/dG
    p = np.einsum("ik,ijk->ij", s, dphi)
    q = (p + p.T) / r
    forces = -np.einsum("ij,ijc->ic", q, diff)
    return forces, diff, r, dphi, g, h1, h2


def numpy_loss(d: dict[str, np.ndarray]) -> np.ndarray:
    return np.mean((_forces(d)[0] - d["f_ref"]) ** 2)


def numpy_grad(d: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The weight gradient by hand: the adjoint of the descriptors' gradient, then the
    weight gradient of the MLP's tangent along it."""
    forces, diff, r, dphi, g, h1, h2 = _forces(d)
    ybar = -2.0 * (forces - d["f_ref"]) / forces.size  # adjoint of dE/dpos
    u = np.einsum("ijc,ic->ij", diff, ybar) / r
    sbar = np.einsum("ij,ijk->ik", u + u.T, dphi)  # adjoint of dE/dG
    w1, w2, w3 = d["w1"], d["w2"], d["w3"]
    s1, s2 = 1 - h1 * h1, 1 - h2 * h2
    t1 = s1 * (sbar @ w1)  # tangent of h1
    zt2 = t1 @ w2
    t2 = s2 * zt2  # tangent of h2
    dw3 = t2.sum(0)[:, None]
    t2bar = np.broadcast_to(w3[:, 0], t2.shape)
    zt2bar = t2bar * s2
    z2bar = -2.0 * h2 * (t2bar * zt2) * s2
    dw2 = t1.T @ zt2bar + h1.T @ z2bar
    db2 = z2bar.sum(0)
    t1bar = zt2bar @ w2.T
    h1bar = z2bar @ w2.T
    z1bar = (h1bar - 2.0 * h1 * (t1bar * (sbar @ w1))) * s1
    dw1 = sbar.T @ (t1bar * s1) + g.T @ z1bar
    db1 = z1bar.sum(0)
    return dw1, db1, dw2, db2, dw3, np.zeros_like(d["b3"])


def numpy_impl(atoms: int) -> Impl:
    d = inputs(atoms)
    return Impl(grad=partial(numpy_grad, d), forward=partial(numpy_loss, d))


def not_implemented(system: str, *_: object) -> Impl:
    raise Skip(f"no {system} version of this workload (compared with JAX and hand-written numpy)")


def variants(quick: bool = False) -> list[Variant]:
    """48 atoms (12 when ``quick``)."""
    from .common import SYSTEMS

    atoms = QUICK_ATOMS if quick else ATOMS
    own = {"s2s_ad": s2s_ad_impl, "jax": jax_impl, "numpy": numpy_impl}
    builders = {s: partial(own[s], atoms) if s in own else partial(not_implemented, s) for s in SYSTEMS}
    return [Variant("W8", f"{atoms} atoms", np.dtype(np.float64), builders)]
