"""Conv2D, MaxPool, AvgPool (ops and nn layers): values against a direct numpy reference,
derivatives against finite differences at first and second order, in PYNATIVE and GRAPH mode."""

from __future__ import annotations

import numpy as np
import pytest

from s2s_ad import ArgumentError, NotSupportedError, ShapeError, Tensor, nn, ops
from s2s_ad.testing import check_grads

RNG = np.random.default_rng(0)


def conv_reference(x, w, stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1)):
    """out[n, o, p, q] = sum over c, i, j of x_padded[n, c, p*sh + i*dh, q*sw + j*dw] * w[o, c, i, j]."""
    xp = np.pad(x, ((0, 0), (0, 0), pad[:2], pad[2:]))
    kh, kw = w.shape[2:]
    oh = (xp.shape[2] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (xp.shape[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for p in range(oh):
        for q in range(ow):
            h, v = p * stride[0], q * stride[1]
            patch = xp[
                :, :, h : h + dilation[0] * (kh - 1) + 1 : dilation[0], v : v + dilation[1] * (kw - 1) + 1 : dilation[1]
            ]
            out[:, :, p, q] = np.einsum("ncij,ocij->no", patch, w)
    return out


def pool_reference(x, k, s, pad=(0, 0, 0, 0), kind="max"):
    xp = np.pad(x, ((0, 0), (0, 0), pad[:2], pad[2:]), constant_values=np.nan)
    oh = (xp.shape[2] - k[0]) // s[0] + 1
    ow = (xp.shape[3] - k[1]) // s[1] + 1
    out = np.zeros(x.shape[:2] + (oh, ow))
    for p in range(oh):
        for q in range(ow):
            win = xp[:, :, p * s[0] : p * s[0] + k[0], q * s[1] : q * s[1] + k[1]]
            out[:, :, p, q] = np.nanmax(win, axis=(2, 3)) if kind == "max" else np.nanmean(win, axis=(2, 3))
    return out


X = RNG.standard_normal((2, 3, 7, 6))
W = RNG.standard_normal((4, 3, 3, 2))


@pytest.mark.parametrize(
    "kwargs,pad",
    [
        (dict(), (0, 0, 0, 0)),
        (dict(pad_mode="same"), (1, 1, 0, 1)),
        (dict(pad_mode="same", stride=2), (1, 1, 0, 0)),
        (dict(pad_mode="pad", pad=(2, 1, 0, 3), stride=(2, 1)), (2, 1, 0, 3)),
        (dict(pad_mode="pad", pad=1, dilation=2), (1, 1, 1, 1)),
    ],
)
def test_conv2d_values(mode, kwargs, pad):
    conv = ops.Conv2D(4, (3, 2), **kwargs)
    got = conv(Tensor(X), Tensor(W)).asnumpy()
    st = kwargs.get("stride", 1)
    st = (st, st) if isinstance(st, int) else st
    dl = (kwargs.get("dilation", 1),) * 2
    np.testing.assert_allclose(got, conv_reference(X, W, st, pad, dl), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pad_mode,pad", [("valid", (0, 0, 0, 0)), ("same", (1, 1, 0, 1))])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_values(mode, kind, pad_mode, pad):
    prim = ops.MaxPool(kernel_size=(3, 2), strides=(2, 1), pad_mode=pad_mode)
    if kind == "avg":
        prim = ops.AvgPool(kernel_size=(3, 2), strides=(2, 1), pad_mode=pad_mode)
    got = prim(Tensor(X)).asnumpy()
    np.testing.assert_allclose(got, pool_reference(X, (3, 2), (2, 1), pad, kind), rtol=1e-12)


def test_functional_forms(mode):
    b = RNG.standard_normal(4)
    got = ops.conv2d(Tensor(X), Tensor(W), Tensor(b), stride=1, pad_mode="pad", padding=1).asnumpy()
    np.testing.assert_allclose(got, conv_reference(X, W, pad=(1, 1, 1, 1)) + b[:, None, None], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ops.max_pool2d(Tensor(X), 2).asnumpy(), pool_reference(X, (2, 2), (2, 2)))
    # count_include_pad (the default) divides by the whole window
    got = ops.avg_pool2d(Tensor(X), 3, 1, 1).asnumpy()
    xp = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)))
    np.testing.assert_allclose(got[:, :, 0, 0], xp[:, :, :3, :3].mean(axis=(2, 3)), rtol=1e-12)
    got = ops.avg_pool2d(Tensor(X), 3, 1, 1, count_include_pad=False).asnumpy()
    np.testing.assert_allclose(got, pool_reference(X, (3, 3), (1, 1), (1, 1, 1, 1), "avg"), rtol=1e-12)


def _small():
    x = RNG.standard_normal((1, 2, 5, 4))
    w = RNG.standard_normal((2, 2, 2, 3))
    return x, w


def _order(mode: str) -> int:
    # second order in PYNATIVE (GRAPH compiles each derivative program with Numba: the per-op
    # tests in tests/ops check the Numba code of every conv and pool op and their derivatives)
    return 2 if mode == "python" else 1


@pytest.mark.parametrize("pad_mode", ["valid", "same"])
def test_conv2d_derivatives_first_and_second_order(mode, pad_mode):
    conv = ops.Conv2D(2, (2, 3), pad_mode=pad_mode, stride=(2, 1))

    def f(x, w):
        return ops.tanh(conv(x, w))

    x, w = _small()
    check_grads(f, (Tensor(x), Tensor(w)), order=_order(mode), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_derivatives_first_and_second_order(mode, kind):
    pool = (ops.MaxPool if kind == "max" else ops.AvgPool)(kernel_size=2, strides=(1, 2), pad_mode="same")

    def f(x):
        return ops.sin(pool(x * x))

    # distinct values, so that each window's maximum is well apart from the rest
    x = (RNG.permutation(40).reshape(1, 2, 5, 4) + 1.0) / 10
    check_grads(f, (Tensor(x),), order=_order(mode), atol=1e-6, rtol=1e-5)


def test_max_pool_gradient_goes_to_the_maximum(mode):
    x = np.array([[[[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 9.0, 8.0]]]])

    def f(x):
        return ops.MaxPool(2, 2)(x).sum()

    g = ops.grad(f)(Tensor(x)).asnumpy()
    np.testing.assert_array_equal(g, [[[[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]]])


class LeNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, pad_mode="same", has_bias=True)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(4, 6, 3, pad_mode="valid")
        self.avg = nn.AvgPool2d(2, 1)
        self.fc = nn.Dense(6, 3)

    def construct(self, x):
        y = self.pool(ops.relu(self.conv1(x)))
        y = self.avg(ops.relu(self.conv2(y)))
        return self.fc(y.reshape((y.shape[0], -1)))


def test_lenet_layers(pynative):
    net = LeNet()
    x = RNG.standard_normal((2, 1, 8, 8)).astype(np.float32)
    out = net(Tensor(x))
    assert out.shape == (2, 3) and out.dtype == np.float32
    check_grads(net, (Tensor(x.astype(np.float64)),), order=1, modes="rev", atol=1e-6, rtol=1e-5)


def test_lenet_gradients_in_graph_mode_match_pynative():
    from s2s_ad import context

    net = LeNet()
    x = Tensor(RNG.standard_normal((3, 1, 8, 8)).astype(np.float32))
    got = {}
    old = context.get_context("mode")
    try:
        for m in (context.PYNATIVE_MODE, context.GRAPH_MODE):
            context.set_context(mode=m)
            got[m] = ops.GradOperation(get_all=True, get_by_list=True)(net, net.trainable_params())(x)
    finally:
        context.set_context(mode=old)
    (gx1, gw1), (gx2, gw2) = got[context.PYNATIVE_MODE], got[context.GRAPH_MODE]
    for a, b in zip([*gx1, *gw1], [*gx2, *gw2]):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-4, atol=1e-5)


def test_conv_and_pool_errors():
    with pytest.raises(ShapeError, match="channels"):
        ops.Conv2D(4, (3, 2))(Tensor(X), Tensor(RNG.standard_normal((4, 2, 3, 2))))
    with pytest.raises(ShapeError, match="expected"):
        ops.Conv2D(5, 3)(Tensor(X), Tensor(W))
    with pytest.raises(NotSupportedError, match="group"):
        nn.Conv2d(3, 3, 3, group=3)
    with pytest.raises(ArgumentError, match="pad_mode='pad'"):
        ops.Conv2D(4, (3, 2), pad=1)(Tensor(X), Tensor(W))
    with pytest.raises(ShapeError, match="4-D"):
        ops.MaxPool(2, 2)(Tensor(X[0]))
    with pytest.raises(ShapeError, match="larger than the input"):
        ops.AvgPool(8, 1)(Tensor(X))
