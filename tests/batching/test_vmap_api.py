"""``s2s_ad.vmap`` and ``ops.vmap``: argument and output trees of batch axes, composition with
grad/jvp/jit/vmap at any depth (checked against per-example results and finite differences),
in PYNATIVE (numpy) and GRAPH (Numba) mode."""

from __future__ import annotations

import numpy as np

import s2s_ad as sa
from s2s_ad import Tensor, ops

RNG = np.random.default_rng(0)


def T(a) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float64))


def f(x, w):
    return ops.tanh(ops.matmul(x.reshape((1, 3)), w)).reshape((2,)) * ops.reduce_sum(x * x)


def f_np(x, w):
    return np.tanh(x @ w) * np.sum(x * x)


X = RNG.standard_normal((4, 3))
W = RNG.standard_normal((3, 2))


def test_vmap_equals_stacking(mode):
    out = sa.vmap(f, in_axes=(0, None))(T(X), T(W)).asnumpy()
    np.testing.assert_allclose(out, np.stack([f_np(x, W) for x in X]), rtol=1e-12)


def test_in_axes_negative_and_out_axes(pynative):
    out = sa.vmap(f, in_axes=(-1, None), out_axes=-1)(T(X.T), T(W)).asnumpy()
    np.testing.assert_allclose(out, np.stack([f_np(x, W) for x in X], axis=-1), rtol=1e-12)


def test_batched_weights_only(pynative):
    Ws = RNG.standard_normal((5, 3, 2))
    out = sa.vmap(f, in_axes=(None, 0), out_axes=1)(T(X[0]), T(Ws)).asnumpy()
    np.testing.assert_allclose(out, np.stack([f_np(X[0], w) for w in Ws], axis=1), rtol=1e-12)


def test_argument_trees(pynative):
    def g(pair, d, s):
        a, b = pair
        return {"sum": a + b * d["scale"], "prod": (a * b, d["shift"] - a)}

    a, b = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 4))
    scale, shift = RNG.standard_normal(3), RNG.standard_normal((4, 3))
    out = sa.vmap(g, in_axes=((0, 1), {"scale": None, "shift": 0}, None), out_axes={"sum": 1, "prod": (0, -1)})(
        (T(a), T(b)), {"scale": T(scale), "shift": T(shift)}, 2.0
    )
    bt = b.T
    np.testing.assert_allclose(out["sum"].asnumpy(), (a + bt * scale).T, rtol=1e-12)
    np.testing.assert_allclose(out["prod"][0].asnumpy(), a * bt, rtol=1e-12)
    np.testing.assert_allclose(out["prod"][1].asnumpy(), (shift - a).T, rtol=1e-12)


def test_unbatched_output_is_broadcast_or_kept(pynative):
    def g(x, y):
        return x * 2, y + 1

    a, b = sa.vmap(g, in_axes=(0, None))(T(X), T(W))
    np.testing.assert_allclose(a.asnumpy(), X * 2)
    np.testing.assert_allclose(b.asnumpy(), np.broadcast_to(W + 1, (4, 3, 2)))
    a, b = sa.vmap(g, in_axes=(0, None), out_axes=(0, None))(T(X), T(W))
    np.testing.assert_allclose(b.asnumpy(), W + 1)


def test_ops_vmap(pynative):
    out = ops.vmap(f, in_axes=(0, None), out_axes=0)(T(X), T(W)).asnumpy()
    np.testing.assert_allclose(out, np.stack([f_np(x, W) for x in X]), rtol=1e-12)
    out = ops.vmap(f, in_axes=[1, None])(T(X.T), T(W)).asnumpy()
    np.testing.assert_allclose(out, np.stack([f_np(x, W) for x in X]), rtol=1e-12)


def loss(w, x):
    return ops.reduce_sum(ops.sin(ops.matmul(x.reshape((1, 3)), w)) ** 2)


def loss_grad_np(w, x):
    z = x @ w
    return np.outer(x, 2 * np.sin(z) * np.cos(z))


def test_per_sample_gradients(mode):
    """vmap(grad(f)): a gradient per example."""
    g = sa.vmap(sa.grad(loss), in_axes=(None, 0))(T(W), T(X)).asnumpy()
    np.testing.assert_allclose(g, np.stack([loss_grad_np(W, x) for x in X]), rtol=1e-10)


def test_grad_of_vmap(mode):
    def total(w, xs):
        return ops.reduce_sum(sa.vmap(loss, in_axes=(None, 0))(w, xs))

    g = sa.grad(total)(T(W), T(X)).asnumpy()
    np.testing.assert_allclose(g, sum(loss_grad_np(W, x) for x in X), rtol=1e-10)


def test_jit_of_vmap_and_vmap_of_jit(mode):
    ref = np.stack([f_np(x, W) for x in X])
    np.testing.assert_allclose(sa.jit(sa.vmap(f, (0, None)))(T(X), T(W)).asnumpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(sa.vmap(sa.jit(f), (0, None))(T(X), T(W)).asnumpy(), ref, rtol=1e-12)

    @sa.jit
    def inside(xs, w):
        return sa.vmap(f, in_axes=(0, None))(xs, w) + 1

    np.testing.assert_allclose(inside(T(X), T(W)).asnumpy(), ref + 1, rtol=1e-12)


def test_vmap_of_vmap(pynative):
    xs = RNG.standard_normal((2, 4, 3))
    out = sa.vmap(sa.vmap(f, (0, None)), (1, None), out_axes=1)(T(xs), T(W)).asnumpy()
    ref = np.stack([np.stack([f_np(xs[i, j], W) for j in range(4)]) for i in range(2)])
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_vmap_of_jvp_and_jvp_of_vmap(mode):
    def h(x):
        return ops.sin(x) * ops.reduce_sum(x)

    def h_jvp_np(x, v):
        return np.cos(x) * v * x.sum() + np.sin(x) * v.sum()

    V = RNG.standard_normal((4, 3))
    out, tan = sa.vmap(lambda x, v: sa.jvp(h, x, v))(T(X), T(V))
    np.testing.assert_allclose(tan.asnumpy(), np.stack([h_jvp_np(x, v) for x, v in zip(X, V)]), rtol=1e-12)
    out, tan = sa.jvp(sa.vmap(h), T(X), T(V))
    np.testing.assert_allclose(out.asnumpy(), np.stack([np.sin(x) * x.sum() for x in X]), rtol=1e-12)
    np.testing.assert_allclose(tan.asnumpy(), np.stack([h_jvp_np(x, v) for x, v in zip(X, V)]), rtol=1e-12)


def _fd_grad(fn, x, h=1e-6):
    g = np.zeros_like(x)
    for j in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[j] += h
        xm[j] -= h
        g[j] = (fn(xp) - fn(xm)) / (2 * h)
    return g


def _s(x):
    return ops.reduce_sum(ops.sin(x) * x)


def _ds(x):  # the sum of d s / dx
    return ops.reduce_sum(sa.grad(_s)(x))


def _vs(x):
    return ops.reduce_sum(sa.vmap(_s)(x))


def _dvs(x):
    return ops.reduce_sum(sa.grad(_vs)(x))


def test_second_order(pynative):
    """vmap(grad(grad)) and grad(grad(vmap)) against the per-example second derivatives, and
    against finite differences of the first derivative."""
    xs = RNG.standard_normal((3, 2))
    exact = 2 * np.cos(xs) - xs * np.sin(xs)
    per = sa.vmap(sa.grad(_ds))(T(xs)).asnumpy()
    ref = np.stack([_fd_grad(lambda v: float(np.sum(np.cos(v) * v + np.sin(v))), x) for x in xs])
    np.testing.assert_allclose(per, ref, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(per, exact, rtol=1e-12)
    np.testing.assert_allclose(sa.grad(_dvs)(T(xs)).asnumpy(), exact, rtol=1e-12)
    # vmap of a second-order forward-over-reverse product
    _, tan = sa.vmap(lambda x, v: sa.jvp(sa.grad(_s), x, v))(T(xs), T(np.ones_like(xs)))
    np.testing.assert_allclose(tan.asnumpy(), exact, rtol=1e-12)


class _Loss(sa.nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def construct(self, x, y):
        return ops.reduce_sum((self.net(x.reshape((1, 3))) - y) ** 2)


def test_cells_and_per_example_weight_gradients(pynative):
    """A Cell's Parameters are shared by the batch; their gradients per example are batched."""
    net = sa.nn.Dense(3, 2)
    xs = RNG.standard_normal((5, 3)).astype(np.float32)
    ys = RNG.standard_normal((5, 2)).astype(np.float32)
    out = sa.vmap(net)(Tensor(xs)).asnumpy()
    # (float32 sums of three products: a value near zero is compared to the outputs' scale, as below)
    np.testing.assert_allclose(out, np.stack([net(Tensor(x[None]))[0].asnumpy() for x in xs]), rtol=1e-5, atol=1e-6)
    gf = sa.grad(_Loss(net), grad_position=None, weights=net.trainable_params())
    per = sa.vmap(gf)(Tensor(xs), Tensor(ys))
    refs = [gf(Tensor(x), Tensor(y)) for x, y in zip(xs, ys)]
    assert [p.shape for p in per] == [(5, 2, 3), (5, 2)]
    for k, p in enumerate(per):
        np.testing.assert_allclose(p.asnumpy(), np.stack([r[k].asnumpy() for r in refs]), rtol=1e-5, atol=1e-6)


@sa.custom_vjp
def _clip_gradient(x):
    return x * 1.0


def _clip_fwd(x):
    return x * 1.0, None


def _clip_bwd(res, g):
    return (ops.minimum(ops.maximum(g, -1.0), 1.0),)


_clip_gradient.defvjp(_clip_fwd, _clip_bwd)


def _clipped_loss(x):
    return ops.reduce_sum(_clip_gradient(x) * 5.0)


def _batched_clipped_loss(x):
    return ops.reduce_sum(sa.vmap(_clipped_loss)(x))


def test_custom_rules_under_vmap(pynative):
    """A function with its own derivative rule is mapped by the loop fallback; its rule is
    used per example, in vmap(grad) and grad(vmap) alike."""
    x = RNG.standard_normal((3, 2))
    np.testing.assert_allclose(sa.vmap(_clip_gradient)(T(x)).asnumpy(), x)
    np.testing.assert_allclose(sa.vmap(sa.grad(_clipped_loss))(T(x)).asnumpy(), np.ones((3, 2)))
    np.testing.assert_allclose(sa.grad(_batched_clipped_loss)(T(x)).asnumpy(), np.ones((3, 2)))
