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
