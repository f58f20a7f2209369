"""W7: Burgers PINN, gradient of the residual loss with respect to the weights, float32.

``u(x, t)`` is a 2 -> 32 x L -> 1 tanh MLP (L = 2, 4, 8 hidden layers). The loss at 2000
collocation points and 200 boundary/initial points is

    mean((u_t + u u_x - nu u_xx)^2) + mean((u(boundary) - u_b)^2),   nu = 0.01 / pi,

and the derivative is its gradient with respect to every weight and bias (third-order mixed:
``u_xx`` differentiated by the weights). s2s_ad is written as a MindSpore user would: an
``nn.Cell`` network, its input derivatives by nested ``ops.grad`` of the sum over the points,
and ``ops.GradOperation(get_by_list=True)`` of the loss Cell. JAX uses the same sum-over-points
form under ``jax.jit``. The hand-written numpy version propagates ``(u, u_x, u_t, u_xx)``
forward through the layers and back-propagates through that by hand.
``quick`` uses 64 collocation and 16 boundary points with L = 2.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from .common import Impl, Skip, Variant, jax_ready, load_jax, load_s2s_ad

WIDTH = 32
NU = 0.01 / np.pi
FULL = (2000, 200)
QUICK = (64, 16)
LAYERS = (2, 4, 8)


def inputs(depth: int, n: int, nb: int) -> dict[str, np.ndarray]:
    """Collocation points ``xt`` (x in [-1, 1], t in [0, 1]), boundary points ``xt_b`` with
    values ``u_b`` (``-sin(pi x)`` at t = 0, 0 at x = +-1), and Glorot-scaled weights
    ``w0..w{depth}``, ``b0..b{depth}`` (``w_i`` of shape (in, out)); float32, seeded."""
    rng = np.random.default_rng(7)
    f32 = np.float32
    d: dict[str, np.ndarray] = {}
    sizes = [2] + [WIDTH] * depth + [1]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        d[f"w{i}"] = (rng.standard_normal((a, b)) * np.sqrt(2.0 / (a + b))).astype(f32)
        d[f"b{i}"] = (0.1 * rng.standard_normal(b)).astype(f32)
    d["xt"] = np.stack([rng.uniform(-1, 1, n), rng.uniform(0, 1, n)], axis=1).astype(f32)
    half = nb // 2
    x0 = rng.uniform(-1, 1, half)
    xs = rng.choice([-1.0, 1.0], nb - half)
    d["xt_b"] = np.concatenate(
        [np.stack([x0, np.zeros(half)], 1), np.stack([xs, rng.uniform(0, 1, nb - half)], 1)]
    ).astype(f32)
    d["u_b"] = np.concatenate([-np.sin(np.pi * x0), np.zeros(nb - half)]).astype(f32)
    return d


def weight_names(depth: int) -> list[str]:
    return [n for i in range(depth + 1) for n in (f"w{i}", f"b{i}")]


def s2s_ad_impl(depth: int, n: int, nb: int) -> Impl:
    import s2s_ad.nn as nn
    import s2s_ad.ops as ops
    from s2s_ad import Parameter, ParameterTuple, Tensor

    load_s2s_ad()
    d = inputs(depth, n, nb)

    class Layer(nn.Cell):
        def __init__(self, i: int, last: bool) -> None:
            super().__init__()
            self.weight = Parameter(Tensor(d[f"w{i}"]), name=f"w{i}")
            self.bias = Parameter(Tensor(d[f"b{i}"]), name=f"b{i}")
            self.last = last

        def construct(self, h):
            z = ops.matmul(h, self.weight) + self.bias
            return z if self.last else ops.tanh(z)

    class MLP(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            self.layers = [Layer(i, i == depth) for i in range(depth + 1)]

        def construct(self, xt):
            h = xt
            for layer in self.layers:
                h = layer(h)
            return h

    net = MLP()

    def total(xt):
        return ops.sum(net(xt))

    def total_u_x(xt):
        return ops.sum(ops.grad(total)(xt)[:, 0])

    class BurgersLoss(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def construct(self, xt, xt_b, u_b):
            u = self.net(xt)[:, 0]
            du = ops.grad(total)(xt)
            u_xx = ops.grad(total_u_x)(xt)[:, 0]
            r = du[:, 1] + u * du[:, 0] - NU * u_xx
            e = self.net(xt_b)[:, 0] - u_b
            return ops.mean(r * r) + ops.mean(e * e)

    loss = BurgersLoss()
    grad_fn = ops.GradOperation(get_by_list=True)(loss, ParameterTuple(net.trainable_params()))
    args = (Tensor(d["xt"]), Tensor(d["xt_b"]), Tensor(d["u_b"]))
    return Impl(grad=lambda: grad_fn(*args), forward=lambda: loss(*args))


def jax_impl(depth: int, n: int, nb: int) -> Impl:
    jax, jnp = load_jax()
    d = {k: jnp.asarray(v) for k, v in inputs(depth, n, nb).items()}
    params = tuple(d[k] for k in weight_names(depth))

    def u(params, xt):
        h = xt
        for i in range(depth + 1):
            h = h @ params[2 * i] + params[2 * i + 1]
            if i < depth:
                h = jnp.tanh(h)
        return h[:, 0]

    def total(xt, params):
        return jnp.sum(u(params, xt))

    def total_u_x(xt, params):
        return jnp.sum(jax.grad(total)(xt, params)[:, 0])

    def loss(params, xt, xt_b, u_b):
        uu = u(params, xt)
        du = jax.grad(total)(xt, params)
        u_xx = jax.grad(total_u_x)(xt, params)[:, 0]
        r = du[:, 1] + uu * du[:, 0] - NU * u_xx
        e = u(params, xt_b) - u_b
        return jnp.mean(r * r) + jnp.mean(e * e)

    grad_fn, fwd = jax.jit(jax.grad(loss)), jax.jit(loss)
    args = (d["xt"], d["xt_b"], d["u_b"])
    return Impl(grad=lambda: jax_ready(grad_fn(params, *args)), forward=lambda: jax_ready(fwd(params, *args)))


def _np_forward(ws: list[np.ndarray], bs: list[np.ndarray], xt: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Per layer ``(a, a_x, a_t, a_xx)`` in and the pre-activation ``(z, z_x, z_t, z_xx)``."""
    n = xt.shape[0]
    one = np.ones((n, 1), xt.dtype)
    zero = np.zeros((n, 1), xt.dtype)
    a = (xt, np.concatenate([one, zero], 1), np.concatenate([zero, one], 1), np.zeros_like(xt))
    tape = []
    for i, (w, b) in enumerate(zip(ws, bs)):
        z = (a[0] @ w + b, a[1] @ w, a[2] @ w, a[3] @ w)
        tape.append((a, z))
        if i == len(ws) - 1:
            return tape + [(z, None)]
        s = np.tanh(z[0])
        s1 = 1 - s * s
        s2 = -2 * s * s1
        a = (s, s1 * z[1], s1 * z[2], s1 * z[3] + s2 * z[1] * z[1])
    raise AssertionError


def _np_backward(ws, bs, tape, abar, dws, dbs) -> None:
    """Back-propagate the adjoints ``abar`` of the output's ``(u, u_x, u_t, u_xx)``."""
    zbar = abar
    for i in range(len(ws) - 1, -1, -1):
        a, z = tape[i]
        w = ws[i]
        for k in range(4):
            dws[i] += a[k].T @ zbar[k]
        dbs[i] += zbar[0].sum(0)
        if i == 0:
            return
        abar = tuple(zk @ w.T for zk in zbar)
        _, zp = tape[i - 1]
        s = np.tanh(zp[0])
        s1 = 1 - s * s
        g1 = abar[1] * zp[1] + abar[2] * zp[2] + abar[3] * zp[3] - 2 * s * abar[3] * zp[1] * zp[1]
        ds = abar[0] - 2 * s1 * abar[3] * zp[1] * zp[1] - 2 * s * g1
        zbar = (ds * s1, abar[1] * s1 + abar[3] * (-2 * s * s1) * 2 * zp[1], abar[2] * s1, abar[3] * s1)


def numpy_grad(depth: int, d: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The gradient of the loss by hand: ``(dw0, db0, dw1, db1, ...)``."""
    ws = [d[f"w{i}"] for i in range(depth + 1)]
    bs = [d[f"b{i}"] for i in range(depth + 1)]
    dws = [np.zeros_like(w) for w in ws]
    dbs = [np.zeros_like(b) for b in bs]
    tape = _np_forward(ws, bs, d["xt"])
    u, u_x, u_t, u_xx = tape[-1][0]
    n = u.shape[0]
    r = u_t + u * u_x - np.float32(NU) * u_xx
    rbar = 2 * r / np.float32(n)
    abar = (rbar * u_x, rbar * u, rbar, -np.float32(NU) * rbar)
    _np_backward(ws, bs, tape[:-1], abar, dws, dbs)
    tape_b = _np_forward(ws, bs, d["xt_b"])
    ub = tape_b[-1][0][0]
    ebar = 2 * (ub - d["u_b"][:, None]) / np.float32(ub.shape[0])
    zeros = np.zeros_like(ebar)
    _np_backward(ws, bs, tape_b[:-1], (ebar, zeros, zeros, zeros), dws, dbs)
    return tuple(g for pair in zip(dws, dbs) for g in pair)


def numpy_loss(depth: int, d: dict[str, np.ndarray]) -> np.ndarray:
    ws = [d[f"w{i}"] for i in range(depth + 1)]
    bs = [d[f"b{i}"] for i in range(depth + 1)]
    u, u_x, u_t, u_xx = _np_forward(ws, bs, d["xt"])[-1][0]
    r = u_t + u * u_x - np.float32(NU) * u_xx
    e = _np_forward(ws, bs, d["xt_b"])[-1][0][0][:, 0] - d["u_b"]
    return np.mean(r * r) + np.mean(e * e)


def numpy_impl(depth: int, n: int, nb: int) -> Impl:
    d = inputs(depth, n, nb)
    return Impl(grad=partial(numpy_grad, depth, d), forward=partial(numpy_loss, depth, d))


def not_implemented(system: str, *_: object) -> Impl:
    raise Skip(f"no {system} version of this workload (compared with JAX and hand-written numpy)")


def builders(depth: int, n: int, nb: int, systems: tuple[str, ...]) -> dict:
    own = {"s2s_ad": s2s_ad_impl, "jax": jax_impl, "numpy": numpy_impl}
    return {s: partial(own[s], depth, n, nb) if s in own else partial(not_implemented, s) for s in systems}


def variants(quick: bool = False) -> list[Variant]:
    """The PINN with 2, 4 and 8 hidden layers (only 2, at small sizes, when ``quick``)."""
    from .common import SYSTEMS

    n, nb = QUICK if quick else FULL
    return [
        Variant("W7", f"L={depth} {n}+{nb} points", np.dtype(np.float32), builders(depth, n, nb, SYSTEMS))
        for depth in ((2,) if quick else LAYERS)
    ]
