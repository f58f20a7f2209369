"""W3: two-layer tanh MLP 784 -> 256 -> 10, batch 64, softmax cross-entropy, float32.

``loss = mean_b(-sum_k labels[b, k] * log_softmax(tanh(x @ W1 + b1) @ W2 + b2)[b, k])`` with
one-hot labels; the gradient is with respect to the weights (W1, b1, W2, b2). ``quick``
shrinks the network to 32 -> 16 -> 10 with batch 8.
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

FULL = (64, 784, 256, 10)
QUICK = (8, 32, 16, 10)


def inputs(batch: int, n_in: int, hidden: int, n_out: int) -> dict[str, np.ndarray]:
    """Data, one-hot labels and weights (Glorot-scaled normal), float32, seeded."""
    rng = np.random.default_rng(3)
    f32 = np.float32
    labels = np.zeros((batch, n_out), f32)
    labels[np.arange(batch), rng.integers(0, n_out, batch)] = 1
    return {
        "x": rng.standard_normal((batch, n_in)).astype(f32),
        "labels": labels,
        "w1": (rng.standard_normal((n_in, hidden)) / np.sqrt(n_in)).astype(f32),
        "b1": (0.1 * rng.standard_normal(hidden)).astype(f32),
        "w2": (rng.standard_normal((hidden, n_out)) / np.sqrt(hidden)).astype(f32),
        "b2": (0.1 * rng.standard_normal(n_out)).astype(f32),
    }


WEIGHTS = ("w1", "b1", "w2", "b2")


def s2s_ad_impl(shape: tuple[int, ...]) -> Impl:
    import s2s_ad.nn as nn
    import s2s_ad.ops as ops
    from s2s_ad import Parameter, ParameterTuple, Tensor

    load_s2s_ad()

    d = inputs(*shape)

    class MLP(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            self.w1 = Parameter(Tensor(d["w1"]), name="w1")
            self.b1 = Parameter(Tensor(d["b1"]), name="b1")
            self.w2 = Parameter(Tensor(d["w2"]), name="w2")
            self.b2 = Parameter(Tensor(d["b2"]), name="b2")
            self.loss = nn.SoftmaxCrossEntropyWithLogits(sparse=False, reduction="mean")

        def construct(self, x, labels):
            h = ops.tanh(ops.matmul(x, self.w1) + self.b1)
            logits = ops.matmul(h, self.w2) + self.b2
            return self.loss(logits, labels)

    net = MLP()
    x, labels = Tensor(d["x"]), Tensor(d["labels"])
    grad_fn = ops.GradOperation(get_by_list=True)(net, ParameterTuple(net.trainable_params()))
    return Impl(grad=lambda: grad_fn(x, labels), forward=lambda: net(x, labels))


def jax_impl(shape: tuple[int, ...]) -> Impl:
    jax, jnp = load_jax()
    d = {k: jnp.asarray(v) for k, v in inputs(*shape).items()}

    def loss(params, x, labels):
        w1, b1, w2, b2 = params
        logits = jnp.tanh(x @ w1 + b1) @ w2 + b2
        return -jnp.mean(jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1))

    params = tuple(d[k] for k in WEIGHTS)
    grad_fn, fwd = jax.jit(jax.grad(loss)), jax.jit(loss)
    x, labels = d["x"], d["labels"]
    return Impl(grad=lambda: jax_ready(grad_fn(params, x, labels)), forward=lambda: jax_ready(fwd(params, x, labels)))


def torch_impl(shape: tuple[int, ...]) -> Impl:
    torch = load_torch()
    import torch.nn.functional as F

    d = inputs(*shape)
    params = tuple(torch_leaf(d[k]) for k in WEIGHTS)
    x, labels = torch_leaf(d["x"], False), torch_leaf(d["labels"], False)

    def loss() -> object:
        w1, b1, w2, b2 = params
        logits = torch.tanh(x @ w1 + b1) @ w2 + b2
        return F.cross_entropy(logits, labels)  # probability targets, mean over the batch

    def forward() -> object:
        with torch.no_grad():
            return loss()

    return Impl(grad=lambda: torch.autograd.grad(loss(), params), forward=forward)


def _np_loss(w1, b1, w2, b2, x, labels):
    """The loss in numpy, as tangent differentiates it (logsumexp shifted by the row max)."""
    logits = np.dot(np.tanh(np.dot(x, w1) + b1), w2) + b2
    m = np.max(logits, axis=1, keepdims=True)
    shifted = logits - m
    lse = np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.mean(np.sum(labels * (shifted - lse), axis=1))


def tangent_impl(shape: tuple[int, ...]) -> Impl:
    tangent = load_tangent()
    d = inputs(*shape)
    args = tuple(d[k] for k in (*WEIGHTS, "x", "labels"))
    try:
        grad_fn = tangent.grad(_np_loss, wrt=(0, 1, 2, 3))
        grad_fn(*args)
    except Exception as err:
        raise Skip(f"tangent cannot differentiate the loss: {type(err).__name__}: {err}") from None
    return Impl(grad=lambda: grad_fn(*args), forward=lambda: _np_loss(*args))


def autograd_impl(shape: tuple[int, ...]) -> Impl:
    autograd, anp = load_autograd()
    from autograd.scipy.special import logsumexp

    d = inputs(*shape)

    def loss(params, x, labels):
        w1, b1, w2, b2 = params
        logits = anp.dot(anp.tanh(anp.dot(x, w1) + b1), w2) + b2
        return -anp.mean(anp.sum(labels * (logits - logsumexp(logits, axis=1, keepdims=True)), axis=1))

    params = tuple(d[k] for k in WEIGHTS)
    grad_fn = autograd.grad(loss)
    x, labels = d["x"], d["labels"]
    return Impl(grad=lambda: grad_fn(params, x, labels), forward=lambda: loss(params, x, labels))


def numpy_grad(*args: np.ndarray) -> tuple[np.ndarray, ...]:
    """Hand-written backpropagation of the loss at ``(w1, b1, w2, b2, x, labels)``: ``(dW1, db1, dW2, db2)``."""
    w1, b1, w2, b2, x, labels = args
    h = np.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    dlogits = (p - labels) / np.float32(x.shape[0])
    dh = dlogits @ w2.T
    da = dh * (1 - h * h)
    return x.T @ da, da.sum(axis=0), h.T @ dlogits, dlogits.sum(axis=0)


def numpy_impl(shape: tuple[int, ...]) -> Impl:
    d = inputs(*shape)
    args = tuple(d[k] for k in (*WEIGHTS, "x", "labels"))
    return Impl(grad=partial(numpy_grad, *args), forward=partial(_np_loss, *args))


def _nb_grad(w1, b1, w2, b2, x, labels):
    batch, hidden, n_out = x.shape[0], w1.shape[1], w2.shape[1]
    h = np.dot(x, w1)
    for i in range(batch):
        for j in range(hidden):
            h[i, j] = np.tanh(h[i, j] + b1[j])
    dlogits = np.dot(h, w2)
    scale = np.float32(1.0) / np.float32(batch)
    db2 = np.zeros(n_out, w2.dtype)
    for i in range(batch):
        m = dlogits[i, 0] + b2[0]
        for k in range(n_out):
            dlogits[i, k] += b2[k]
            m = max(m, dlogits[i, k])
        s = np.float32(0.0)
        for k in range(n_out):
            dlogits[i, k] = np.exp(dlogits[i, k] - m)
            s += dlogits[i, k]
        for k in range(n_out):
            g = (dlogits[i, k] / s - labels[i, k]) * scale
            dlogits[i, k] = g
            db2[k] += g
    dw2 = np.dot(h.T, dlogits)
    da = np.dot(dlogits, w2.T)
    db1 = np.zeros(hidden, w1.dtype)
    for i in range(batch):
        for j in range(hidden):
            g = da[i, j] * (np.float32(1.0) - h[i, j] * h[i, j])
            da[i, j] = g
            db1[j] += g
    return np.dot(x.T, da), db1, dw2, db2


def _nb_forward(w1, b1, w2, b2, x, labels):
    batch, hidden, n_out = x.shape[0], w1.shape[1], w2.shape[1]
    h = np.dot(x, w1)
    for i in range(batch):
        for j in range(hidden):
            h[i, j] = np.tanh(h[i, j] + b1[j])
    logits = np.dot(h, w2)
    total = np.float32(0.0)
    for i in range(batch):
        m = logits[i, 0] + b2[0]
        for k in range(n_out):
            logits[i, k] += b2[k]
            m = max(m, logits[i, k])
        s = np.float32(0.0)
        for k in range(n_out):
            s += np.exp(logits[i, k] - m)
        lse = m + np.log(s)
        for k in range(n_out):
            total -= labels[i, k] * (logits[i, k] - lse)
    return total / np.float32(batch)


def numba_impl(shape: tuple[int, ...]) -> Impl:
    d = inputs(*shape)
    args = tuple(d[k] for k in (*WEIGHTS, "x", "labels"))
    grad_fn, fwd = njit(_nb_grad), njit(_nb_forward)
    return Impl(grad=partial(grad_fn, *args), forward=partial(fwd, *args))


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
    """One variant: the full network, or a small one when ``quick``."""
    shape = QUICK if quick else FULL
    batch, n_in, hidden, n_out = shape
    name = f"{n_in}-{hidden}-{n_out} batch {batch}"
    return [Variant("W3", name, np.dtype(np.float32), {s: partial(b, shape) for s, b in BUILDERS.items()})]
