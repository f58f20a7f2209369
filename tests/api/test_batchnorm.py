"""BatchNorm1d/BatchNorm2d: batch statistics and moving-statistics updates in training mode
(Parameter assignments inside a differentiated network), the moving statistics in evaluation
mode; a small conv net trained for a few steps against a numpy reference with hand-written
backpropagation; derivatives against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import s2s_ad
from s2s_ad import ShapeError, Tensor, nn, ops
from s2s_ad.testing import check_grads

EPS, MOM = 1e-5, 0.9


class ConvBN(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, pad_mode="valid", dtype=s2s_ad.float64)
        self.bn = nn.BatchNorm2d(2, eps=EPS, momentum=MOM, dtype=s2s_ad.float64)
        self.fc = nn.Dense(32, 3, weight_init="normal", dtype=s2s_ad.float64)

    def construct(self, x):
        h = ops.relu(self.bn(self.conv(x)))
        return self.fc(h.reshape((h.shape[0], -1)))


def _reference_step(p: dict, x: np.ndarray, t: np.ndarray, lr: float) -> float:
    """One SGD step of ConvBN with MSE loss, by hand: forward, backward, update (in place)."""
    patches = sliding_window_view(x, (3, 3), axis=(2, 3))  # (n, c, 4, 4, 3, 3)
    z = np.einsum("ncijab,ocab->noij", patches, p["w"])
    axes = (0, 2, 3)
    mean, var = z.mean(axes), z.var(axes)
    inv = 1 / np.sqrt(var + EPS)[None, :, None, None]
    xhat = (z - mean[None, :, None, None]) * inv
    y = xhat * p["gamma"][None, :, None, None] + p["beta"][None, :, None, None]
    r = np.maximum(y, 0)
    h = r.reshape(len(x), -1)
    out = h @ p["W"].T + p["b"]
    loss = ((out - t) ** 2).mean()
    dout = 2 * (out - t) / out.size
    dW, db = dout.T @ h, dout.sum(0)
    dr = (dout @ p["W"]).reshape(r.shape) * (y > 0)
    dgamma, dbeta = (dr * xhat).sum(axes), dr.sum(axes)
    dxhat = dr * p["gamma"][None, :, None, None]
    dz = inv * (dxhat - dxhat.mean(axes, keepdims=True) - xhat * (dxhat * xhat).mean(axes, keepdims=True))
    dw = np.einsum("noij,ncijab->ocab", dz, patches)
    for k, g in (("w", dw), ("gamma", dgamma), ("beta", dbeta), ("W", dW), ("b", db)):
        p[k] = p[k] - lr * g
    n = z.size // z.shape[1]
    p["mm"] = MOM * p["mm"] + (1 - MOM) * mean
    p["mv"] = MOM * p["mv"] + (1 - MOM) * var * n / (n - 1)
    return loss


def test_conv_batchnorm_training_matches_numpy(mode):
    s2s_ad.set_seed(3)
    net = ConvBN()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 6, 6))
    t = rng.standard_normal((4, 3))
    p = {
        "w": net.conv.weight.asnumpy().copy(),
        "gamma": net.bn.gamma.asnumpy().copy(),
        "beta": net.bn.beta.asnumpy().copy(),
        "W": net.fc.weight.asnumpy().copy(),
        "b": net.fc.bias.asnumpy().copy(),
        "mm": np.zeros(2),
        "mv": np.ones(2),
    }
    net.set_train()
    step = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), nn.SGD(net.trainable_params(), 0.5))
    names = {q.name for q in net.trainable_params()}
    assert not any("mean" in n or "variance" in n for n in names)  # the moving statistics are not trained
    for _ in range(3):
        loss = float(step(Tensor(x), Tensor(t)).asnumpy())
        want = _reference_step(p, x, t, 0.5)
        assert loss == pytest.approx(want, rel=1e-10)
    for got, key in (
        (net.conv.weight, "w"),
        (net.bn.gamma, "gamma"),
        (net.bn.beta, "beta"),
        (net.fc.weight, "W"),
        (net.bn.moving_mean, "mm"),
        (net.bn.moving_variance, "mv"),
    ):
        np.testing.assert_allclose(got.asnumpy(), p[key], rtol=1e-9, atol=1e-12, err_msg=key)
    # evaluation mode normalises with the moving statistics and updates nothing
    net.set_train(False)
    z = np.einsum("ncijab,ocab->noij", sliding_window_view(x, (3, 3), axis=(2, 3)), p["w"])
    y = (z - p["mm"][None, :, None, None]) / np.sqrt(p["mv"] + EPS)[None, :, None, None]
    y = y * p["gamma"][None, :, None, None] + p["beta"][None, :, None, None]
    want = np.maximum(y, 0).reshape(4, -1) @ p["W"].T + p["b"]
    np.testing.assert_allclose(net(Tensor(x)).asnumpy(), want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(net.bn.moving_mean.asnumpy(), p["mm"], rtol=1e-12)


def test_batchnorm1d_derivatives_and_statistics(mode):
    bn = nn.BatchNorm1d(3, dtype=s2s_ad.float64).set_train()
    x = np.random.default_rng(1).standard_normal((5, 3, 2))
    check_grads(lambda x: bn(x) * x, (Tensor(x),), atol=1e-6, rtol=1e-5)
    before = bn.moving_mean.asnumpy().copy()
    y = bn(Tensor(x)).asnumpy()
    np.testing.assert_allclose(y.mean((0, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var((0, 2)), 1, rtol=1e-4)
    np.testing.assert_allclose(bn.moving_mean.asnumpy(), MOM * before + (1 - MOM) * x.mean((0, 2)), rtol=1e-12)
    # a 2-D input, and use_batch_statistics=False uses the moving statistics in training mode too
    fixed = nn.BatchNorm1d(3, use_batch_statistics=False, dtype=s2s_ad.float64).set_train()
    x2 = x[:, :, 0]
    np.testing.assert_allclose(fixed(Tensor(x2)).asnumpy(), x2 / np.sqrt(1 + 1e-5), rtol=1e-12)
    with pytest.raises(ShapeError, match=r"BatchNorm2d\(3\): expected an input of rank 4 with 3 channels .* \(2, 3\)"):
        nn.BatchNorm2d(3)(Tensor(np.ones((2, 3), np.float32)))


class BNDropNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(4, 6, weight_init="normal", dtype=s2s_ad.float64)
        self.bn = nn.BatchNorm1d(6, eps=EPS, momentum=MOM, dtype=s2s_ad.float64)
        self.drop = nn.Dropout(p=0.5)
        self.fc2 = nn.Dense(6, 2, weight_init="normal", dtype=s2s_ad.float64)

    def construct(self, x):
        return self.fc2(self.drop(ops.relu(self.bn(self.fc1(x)))))


def _bn_drop_loss(p: list, x, t, mask, mm=None, mv=None) -> float:
    """BNDropNet's MSE loss in numpy: batch statistics and the dropout ``mask`` in training
    (``mm`` None), the moving statistics and no dropout in evaluation."""
    w1, b1, gamma, beta, w2, b2 = p
    h = x @ w1.T + b1
    mean, var = (h.mean(0), h.var(0)) if mm is None else (mm, mv)
    r = np.maximum((h - mean) / np.sqrt(var + EPS) * gamma + beta, 0)
    if mm is None:
        r = r * mask / 0.5
    return float((((r @ w2.T + b2) - t) ** 2).mean())


def _fd_grads(p: list, *args, **kwargs) -> list:
    out = []
    for k, a in enumerate(p):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            hi, lo = [q.copy() for q in p], [q.copy() for q in p]
            hi[k][i] += 1e-6
            lo[k][i] -= 1e-6
            g[i] = (_bn_drop_loss(hi, *args, **kwargs) - _bn_drop_loss(lo, *args, **kwargs)) / 2e-6
        out.append(g)
    return out


def test_batchnorm_and_dropout_under_grad_operation_and_train_one_step(mode):
    s2s_ad.set_seed(2)
    net = BNDropNet()
    params = net.trainable_params()
    assert [q.name for q in params] == ["fc1.weight", "fc1.bias", "bn.gamma", "bn.beta", "fc2.weight", "fc2.bias"]
    rng = np.random.default_rng(4)
    x, t = rng.standard_normal((8, 4)), rng.standard_normal((8, 2))
    p0 = [q.asnumpy().copy() for q in params]
    loss_net = nn.WithLossCell(net, nn.MSELoss())
    grad_fn = s2s_ad.GradOperation(get_by_list=True)(loss_net, s2s_ad.ParameterTuple(params))

    def mask_at(seed):  # the mask the Dropout layer draws first after set_seed(seed)
        s2s_ad.set_seed(seed)
        return ops.dropout(Tensor(np.ones((8, 6))), p=0.5).asnumpy() != 0

    # training: batch statistics, a dropout mask, the moving statistics updated once per call
    net.set_train(True)
    mask = mask_at(7)
    s2s_ad.set_seed(7)
    grads = grad_fn(Tensor(x), Tensor(t))
    for g, want, q in zip(grads, _fd_grads(p0, x, t, mask), params):
        np.testing.assert_allclose(g.asnumpy(), want, rtol=1e-5, atol=1e-7, err_msg=q.name)
    h = x @ p0[0].T + p0[1]
    mm, mv = (1 - MOM) * h.mean(0), MOM + (1 - MOM) * h.var(0) * 8 / 7
    np.testing.assert_allclose(net.bn.moving_mean.asnumpy(), mm, rtol=1e-10)
    np.testing.assert_allclose(net.bn.moving_variance.asnumpy(), mv, rtol=1e-10)
    # one training step with the same mask: the loss, the SGD update, the statistics again
    step = nn.TrainOneStepCell(loss_net, nn.SGD(params, 0.125))  # exact in float32, the learning rate's dtype
    s2s_ad.set_seed(7)
    loss = float(step(Tensor(x), Tensor(t)).asnumpy())
    assert loss == pytest.approx(_bn_drop_loss(p0, x, t, mask), rel=1e-10)
    for q, a, g in zip(params, p0, grads):
        np.testing.assert_allclose(q.asnumpy(), a - 0.125 * g.asnumpy(), rtol=1e-10, atol=1e-12, err_msg=q.name)
    mm, mv = MOM * mm + (1 - MOM) * h.mean(0), MOM * mv + (1 - MOM) * h.var(0) * 8 / 7
    np.testing.assert_allclose(net.bn.moving_mean.asnumpy(), mm, rtol=1e-10)
    # evaluation: the moving statistics, no dropout, nothing updated; the same compiled cells
    net.set_train(False)
    p1 = [q.asnumpy().copy() for q in params]
    grads = grad_fn(Tensor(x), Tensor(t))
    for g, want, q in zip(grads, _fd_grads(p1, x, t, None, mm, mv), params):
        np.testing.assert_allclose(g.asnumpy(), want, rtol=1e-5, atol=1e-7, err_msg=q.name)
    loss = float(step(Tensor(x), Tensor(t)).asnumpy())
    assert loss == pytest.approx(_bn_drop_loss(p1, x, t, None, mm, mv), rel=1e-10)
    np.testing.assert_allclose(net.bn.moving_mean.asnumpy(), mm, rtol=1e-12)
    # and back to training: the statistics move again
    net.set_train(True)
    step(Tensor(x), Tensor(t))
    assert not np.allclose(net.bn.moving_mean.asnumpy(), mm)
