"""W6: PINN Laplacian ``u_xx + u_yy`` of a 2 -> 32 -> 32 -> 1 tanh MLP, float64.

``u(p) = tanh(tanh(p @ W1 + b1) @ W2 + b2) @ W3 + b3`` at 1024 points (``quick``: 64); the
output is the Laplacian at every point. The hand-written versions propagate first and
second derivatives along each coordinate forward through the layers.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .common import (
    Impl,
    Skip,
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

POINTS = 1024
QUICK_POINTS = 64
WIDTH = 32
NAMES = ("w1", "b1", "w2", "b2", "w3", "b3")


def inputs(n: int) -> dict[str, np.ndarray]:
    """Points in [-1, 1]^2 and Glorot-scaled weights, float64, seeded."""
    rng = np.random.default_rng(6)
    shapes = {"w1": (2, WIDTH), "b1": (WIDTH,), "w2": (WIDTH, WIDTH), "b2": (WIDTH,), "w3": (WIDTH, 1), "b3": (1,)}
    d = {k: rng.standard_normal(s) / np.sqrt(s[0] if len(s) == 2 else 4.0) for k, s in shapes.items()}
    d["points"] = rng.uniform(-1.0, 1.0, (n, 2))
    return d


def s2s_ad_impl(n: int) -> Impl:
    import s2s_ad.nn as nn
    import s2s_ad.ops as ops
    from s2s_ad import Parameter, Tensor

    s2s_ad = load_s2s_ad()

    d = inputs(n)

    class U(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            self.w1 = Parameter(Tensor(d["w1"]), name="w1")
            self.b1 = Parameter(Tensor(d["b1"]), name="b1")
            self.w2 = Parameter(Tensor(d["w2"]), name="w2")
            self.b2 = Parameter(Tensor(d["b2"]), name="b2")
            self.w3 = Parameter(Tensor(d["w3"]), name="w3")
            self.b3 = Parameter(Tensor(d["b3"]), name="b3")

        def construct(self, points):
            h = ops.tanh(ops.matmul(points, self.w1) + self.b1)
            h = ops.tanh(ops.matmul(h, self.w2) + self.b2)
            return ops.matmul(h, self.w3) + self.b3

    u = U()

    def total(points):
        return ops.sum(u(points))

    def sum_u_x(points):
        return ops.sum(s2s_ad.grad(total)(points)[:, 0])

    def sum_u_y(points):
        return ops.sum(s2s_ad.grad(total)(points)[:, 1])

    @s2s_ad.jit
    def laplacian(points):
        u_xx = s2s_ad.grad(sum_u_x)(points)[:, 0]
        u_yy = s2s_ad.grad(sum_u_y)(points)[:, 1]
        return u_xx + u_yy

    points = Tensor(d["points"])
    return Impl(grad=lambda: laplacian(points), forward=lambda: u(points))


def jax_impl(n: int) -> Impl:
    jax, jnp = load_jax()
    d = {k: jnp.asarray(v) for k, v in inputs(n).items()}
    params = tuple(d[k] for k in NAMES)

    def u_point(params, p):
        w1, b1, w2, b2, w3, b3 = params
        h = jnp.tanh(p @ w1 + b1)
        h = jnp.tanh(h @ w2 + b2)
        return (h @ w3 + b3)[0]

    def lap_point(params, p):
        return jnp.trace(jax.hessian(u_point, argnums=1)(params, p))

    lap = jax.jit(jax.vmap(lap_point, in_axes=(None, 0)))
    fwd = jax.jit(jax.vmap(u_point, in_axes=(None, 0)))
    points = d["points"]
    return Impl(grad=lambda: jax_ready(lap(params, points)), forward=lambda: jax_ready(fwd(params, points)))


def torch_impl(n: int) -> Impl:
    torch = load_torch()
    d = inputs(n)
    w1, b1, w2, b2, w3, b3 = (torch_leaf(d[k], False) for k in NAMES)
    points = torch_leaf(d["points"])

    def u(p):
        return torch.tanh(torch.tanh(p @ w1 + b1) @ w2 + b2) @ w3 + b3

    def laplacian() -> object:
        (g,) = torch.autograd.grad(u(points).sum(), points, create_graph=True)
        u_xx = torch.autograd.grad(g[:, 0].sum(), points, retain_graph=True)[0][:, 0]
        u_yy = torch.autograd.grad(g[:, 1].sum(), points)[0][:, 1]
        return u_xx + u_yy

    def forward() -> object:
        with torch.no_grad():
            return u(points)

    return Impl(grad=laplacian, forward=forward)


def _np_total(points, w1, b1, w2, b2, w3, b3):
    """Sum of u over the points, in numpy (tangent differentiates this source)."""
    h = np.tanh(np.dot(points, w1) + b1)
    h = np.tanh(np.dot(h, w2) + b2)
    return np.sum(np.dot(h, w3) + b3)


def tangent_impl(n: int) -> Impl:
    tangent = load_tangent()
    d = inputs(n)
    args = tuple(d[k] for k in NAMES)
    points = d["points"]
    try:
        g = tangent.grad(_np_total)
        jvp_g = tangent.autodiff(g, mode="forward", wrt=(0,))
        e_x = np.zeros_like(points)
        e_x[:, 0] = 1
        e_y = 1 - e_x

        def laplacian() -> np.ndarray:  # forward over reverse, one unit tangent per coordinate
            return jvp_g(points, *args, e_x)[:, 0] + jvp_g(points, *args, e_y)[:, 1]

        laplacian()
    except Exception as err:
        raise Skip(
            f"tangent cannot differentiate the network twice: {type(err).__name__}: {str(err).strip()}"
        ) from None
    return Impl(grad=laplacian)


def autograd_impl(n: int) -> Impl:
    autograd, anp = load_autograd()
    d = inputs(n)
    args = tuple(d[k] for k in NAMES)

    def total(points, w1, b1, w2, b2, w3, b3):
        h = anp.tanh(anp.dot(points, w1) + b1)
        h = anp.tanh(anp.dot(h, w2) + b2)
        return anp.sum(anp.dot(h, w3) + b3)

    g = autograd.grad(total)
    g_xx = autograd.grad(lambda p, *a: anp.sum(g(p, *a)[:, 0]))
    g_yy = autograd.grad(lambda p, *a: anp.sum(g(p, *a)[:, 1]))
    points = d["points"]
    return Impl(grad=lambda: g_xx(points, *args)[:, 0] + g_yy(points, *args)[:, 1])


def numpy_laplacian(
    points: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, w3: np.ndarray, b3: np.ndarray
) -> np.ndarray:
    """Forward-mode first and second derivatives along x and y, both coordinates at once."""
    h1 = np.tanh(points @ w1 + b1)  # (n, m)
    s1 = 1 - h1 * h1
    d1 = s1[None] * w1[:, None, :]  # (2, n, m): dh1/dp_k
    dd1 = -2 * h1[None] * d1 * w1[:, None, :]  # d2h1/dp_k^2
    h2 = np.tanh(h1 @ w2 + b2)
    s2 = 1 - h2 * h2
    a = d1 @ w2  # da2/dp_k
    aa = dd1 @ w2  # d2a2/dp_k^2
    dd2 = s2[None] * (aa - 2 * h2[None] * a * a)
    return (dd2.sum(axis=0) @ w3)[:, 0]


def numpy_forward(
    points: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, w3: np.ndarray, b3: np.ndarray
) -> np.ndarray:
    """u at every point, shape (n, 1)."""
    return np.tanh(np.tanh(points @ w1 + b1) @ w2 + b2) @ w3 + b3


def numpy_impl(n: int) -> Impl:
    d = inputs(n)
    args = (d["points"], *(d[k] for k in NAMES))
    return Impl(grad=partial(numpy_laplacian, *args), forward=partial(numpy_forward, *args))


def _nb_laplacian(points, w1, b1, w2, b2, w3, b3):
    n, m = points.shape[0], w1.shape[1]
    out = np.empty(n, points.dtype)
    a = np.empty(m)
    ax, ay, aax, aay = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
    for i in range(n):
        px, py = points[i, 0], points[i, 1]
        a[:] = b2
        ax[:] = 0.0
        ay[:] = 0.0
        aax[:] = 0.0
        aay[:] = 0.0
        for r in range(m):  # layer 1 at unit r, pushed into layer 2's pre-activations
            t = np.tanh(px * w1[0, r] + py * w1[1, r] + b1[r])
            s = 1.0 - t * t
            gx, gy = s * w1[0, r], s * w1[1, r]
            qx, qy = -2.0 * t * gx * w1[0, r], -2.0 * t * gy * w1[1, r]
            for j in range(m):
                w = w2[r, j]
                a[j] += t * w
                ax[j] += gx * w
                ay[j] += gy * w
                aax[j] += qx * w
                aay[j] += qy * w
        lap = 0.0
        for j in range(m):
            t = np.tanh(a[j])
            lap += (1.0 - t * t) * (aax[j] + aay[j] - 2.0 * t * (ax[j] * ax[j] + ay[j] * ay[j])) * w3[j, 0]
        out[i] = lap
    return out


def _nb_forward(points, w1, b1, w2, b2, w3, b3):
    n, m = points.shape[0], w1.shape[1]
    out = np.empty((n, 1), points.dtype)
    a = np.empty(m)
    for i in range(n):
        a[:] = b2
        for r in range(m):
            t = np.tanh(points[i, 0] * w1[0, r] + points[i, 1] * w1[1, r] + b1[r])
            for j in range(m):
                a[j] += t * w2[r, j]
        acc = b3[0]
        for j in range(m):
            acc += np.tanh(a[j]) * w3[j, 0]
        out[i, 0] = acc
    return out


def numba_impl(n: int) -> Impl:
    d = inputs(n)
    args = (d["points"], *(d[k] for k in NAMES))
    return Impl(grad=partial(njit(_nb_laplacian), *args), forward=partial(njit(_nb_forward), *args))


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
    """The Laplacian at all points."""
    n = QUICK_POINTS if quick else POINTS
    return [
        Variant(
            "W6",
            f"laplacian 2-{WIDTH}-{WIDTH}-1 at {n} points",
            np.dtype(np.float64),
            {s: partial(b, n) for s, b in BUILDERS.items()},
        )
    ]


# ---------------------------------------------------------------------------- forward Laplacian
# ``benchmarks/laplacian.py`` times these: the Laplacian of a per-point network in one forward
# sweep (s2s_ad.laplacian, folx.forward_laplacian) against nested AD (s2s_ad's nested grads,
# the trace of JAX's jax.hessian), in float64 and float32, and the gradient of a PINN-style
# loss built on it with respect to every weight.


def _typed(n: int, dtype: np.dtype) -> dict[str, np.ndarray]:
    return {k: v.astype(dtype) for k, v in inputs(n).items()}


def _rhs(points: np.ndarray) -> np.ndarray:
    """The loss's target: ``sin(x) sin(y)`` at each point."""
    return np.sin(points[:, 0]) * np.sin(points[:, 1])


def s2s_ad_forward_laplacian(n: int, dtype: np.dtype, loss: bool = False) -> Impl:
    """``vmap(laplacian(u))`` of the per-point network (or the gradient of the loss)."""
    import s2s_ad.nn as nn
    import s2s_ad.ops as ops
    from s2s_ad import Parameter, Tensor

    s2s_ad = load_s2s_ad()
    d = _typed(n, dtype)

    class U(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            for k in NAMES:
                setattr(self, k, Parameter(Tensor(d[k]), name=k))

        def construct(self, p):
            h = ops.tanh(ops.matmul(p.reshape(1, 2), self.w1) + self.b1)
            h = ops.tanh(ops.matmul(h, self.w2) + self.b2)
            return (ops.matmul(h, self.w3) + self.b3)[0, 0]

    u = U()
    lap = s2s_ad.vmap(s2s_ad.laplacian(u))
    points, rhs = Tensor(d["points"]), Tensor(_rhs(d["points"]))
    if not loss:
        run = s2s_ad.jit(lap)
        return Impl(grad=lambda: run(points))

    def residual_loss(p, f):
        r = lap(p) - f
        return ops.mean(r * r)

    g = s2s_ad.grad(residual_loss, None, u.trainable_params())
    return Impl(grad=lambda: g(points, rhs))


def _jax_point(jnp):
    def u_point(params, p):
        w1, b1, w2, b2, w3, b3 = params
        h = jnp.tanh(p @ w1 + b1)
        h = jnp.tanh(h @ w2 + b2)
        return (h @ w3 + b3)[0]

    return u_point


def _jax_case(n: int, dtype: np.dtype, loss: bool, lap_point_of) -> Impl:
    jax, jnp = load_jax()
    d = {k: jnp.asarray(v) for k, v in _typed(n, dtype).items()}
    params = tuple(d[k] for k in NAMES)
    lap_point = lap_point_of(jax, jnp, _jax_point(jnp))
    laps = jax.vmap(lap_point, in_axes=(None, 0))
    points, rhs = d["points"], jnp.asarray(_rhs(np.asarray(d["points"])))
    if not loss:
        f = jax.jit(laps)
        return Impl(grad=lambda: jax_ready(f(params, points)))

    def residual_loss(params, p, rhs):
        r = laps(params, p) - rhs
        return jnp.mean(r * r)

    g = jax.jit(jax.grad(residual_loss))
    return Impl(grad=lambda: jax_ready(g(params, points, rhs)))


def jax_hessian_trace(n: int, dtype: np.dtype, loss: bool = False) -> Impl:
    """The trace of ``jax.hessian`` (forward over reverse) at each point, vmapped."""

    def lap_point_of(jax, jnp, u_point):
        return lambda params, p: jnp.trace(jax.hessian(u_point, argnums=1)(params, p))

    return _jax_case(n, dtype, loss, lap_point_of)


def folx_forward_laplacian(n: int, dtype: np.dtype, loss: bool = False) -> Impl:
    """folx's ``forward_laplacian`` at each point, vmapped."""
    load_jax()
    try:
        from folx import forward_laplacian
    except ImportError as err:
        raise Skip(f"folx not installed ({err})") from None

    def lap_point_of(jax, jnp, u_point):
        return lambda params, p: forward_laplacian(lambda q: u_point(params, q))(p).laplacian

    return _jax_case(n, dtype, loss, lap_point_of)


def s2s_ad_nested(n: int, dtype: np.dtype, loss: bool = False) -> Impl:
    """W6's s2s_ad implementation (nested grads under jit), float64 only."""
    if loss or dtype != np.float64:
        raise Skip("the nested-grad W6 implementation is float64 and has no loss variant")
    return s2s_ad_impl(n)


def numpy_reference(n: int, dtype: np.dtype, loss: bool = False) -> Impl:
    """The hand-written Laplacian; for the loss gradient (which has no hand-written form),
    JAX's nested ``jax.hessian`` in float64."""
    d = inputs(n)
    if not loss:
        return Impl(grad=partial(numpy_laplacian, d["points"], *(d[k] for k in NAMES)))
    ref = jax_hessian_trace(n, np.dtype(np.float64), loss=True)
    return Impl(grad=lambda: [np.asarray(g) for g in ref.grad()])


FORWARD_LAPLACIAN = {
    "s2s_ad": s2s_ad_forward_laplacian,
    "jax": jax_hessian_trace,
    "folx": folx_forward_laplacian,
    "s2s_ad_nested": s2s_ad_nested,
    "numpy": numpy_reference,
}


def forward_laplacian_variants(quick: bool = False) -> list[Variant]:
    """The Laplacian and the loss gradient, float64 and float32."""
    n = QUICK_POINTS if quick else POINTS
    out = []
    for loss in (False, True):
        for dt in (np.float64, np.float32):
            dtype = np.dtype(dt)
            what = "grad of mean((lap u - f)^2) wrt weights" if loss else "laplacian"
            out.append(
                Variant(
                    "W6",
                    f"{what} 2-{WIDTH}-{WIDTH}-1 at {n} points, {dtype.name}",
                    dtype,
                    {s: partial(b, n, dtype, loss) for s, b in FORWARD_LAPLACIAN.items()},
                    notes={"jax": "trace of jax.hessian", "s2s_ad": "vmap(laplacian)", "folx": "forward_laplacian"},
                )
            )
    return out
