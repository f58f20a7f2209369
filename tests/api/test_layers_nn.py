"""Activations, softmax, Tensor methods, containers, LayerNorm and losses: values against
numpy, derivatives against finite differences (float64; second order in PYNATIVE), both modes."""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import pytest
import scipy.special

from s2s_ad import ArgumentError, ShapeError, Tensor, jit, nn, ops
from s2s_ad.testing import check_grads

RNG = np.random.default_rng(0)
X = RNG.uniform(-2.0, 2.0, (3, 4))


def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _order(mode: str) -> int:
    return 2 if mode == "python" else 1


def test_activation_values(mode):
    gelu = nn.GELU()

    def f(x):
        return (
            ops.softplus(x),
            ops.silu(x),
            ops.mish(x),
            ops.fast_gelu(x),
            ops.logaddexp(x, 2.0 * x),
            ops.atan2(x, x * x + 0.5),
            ops.Softmax(0)(x),
            ops.log_softmax(x),
            gelu(x),
        )

    got = [t.asnumpy() for t in jit(f)(Tensor(X))]
    sp = np.logaddexp(0, X)
    want = [
        sp,
        X / (1 + np.exp(-X)),
        X * np.tanh(sp),
        X / (1 + np.exp(-1.702 * np.abs(X))) * np.exp(0.851 * (X - np.abs(X))),
        np.logaddexp(X, 2 * X),
        np.arctan2(X, X * X + 0.5),
        softmax(X, 0),
        np.log(softmax(X)),
        0.5 * X * (1 + np.tanh(np.sqrt(2 / np.pi) * (X + 0.044715 * X**3))),
    ]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_softplus_and_softmax_are_exact_for_large_inputs(mode):
    x = Tensor(np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0]))
    np.testing.assert_array_equal(ops.softplus(x).asnumpy(), np.logaddexp(0, x.asnumpy()))
    s = ops.softmax(x).asnumpy()
    np.testing.assert_allclose(s, softmax(x.asnumpy()), rtol=1e-15)
    assert np.isfinite(ops.log_softmax(x).asnumpy()).all()

    def f(x):
        return (ops.softplus(x) + ops.log_softmax(x)).sum()

    g = ops.grad(f)(x).asnumpy()
    assert np.isfinite(g).all()
    with np.errstate(over="ignore"):
        want = 1 / (1 + np.exp(-x.asnumpy())) + 1 - 5 * softmax(x.asnumpy())
    np.testing.assert_allclose(g, want, atol=1e-12)


def test_activation_derivatives(mode):
    def f(x, y):
        a = ops.softplus(x) * ops.mish(y) + ops.silu(x * y) + ops.fast_gelu(x - y)
        b = ops.softmax(x, 1) * ops.log_softmax(y, 0) + ops.logaddexp(x, y) + ops.atan2(x, y)
        return a + b + ops.atan(x) * ops.asinh(y) + ops.asin(0.3 * x) * ops.acos(0.2 * y) + ops.acosh(2.0 + x * x)

    y = RNG.uniform(0.5, 2.0, (3, 4))
    check_grads(f, (Tensor(X), Tensor(y)), order=_order(mode), atol=1e-6, rtol=1e-5)


def test_tensor_methods_eager_and_compiled(mode):
    def f(x):
        a = x.tanh() + x.exp().log() - x.abs().sqrt() + x.neg().square() + x.pow(2)
        b = x.clip(-1.0, 1.0) + x.expand_dims(0).squeeze(0) + x.sigmoid()
        c = x.argmax(1).astype(x.dtype).reshape((3, 1)) + x.argmin().astype(x.dtype)
        d = x.all().astype(x.dtype) + (x > 0).any(0).astype(x.dtype) + x.flatten().reshape(3, 4)
        return a + b + c + d

    x = X.copy()
    x[1, 2] = 0.0
    want = (
        np.tanh(x) + x - np.sqrt(np.abs(x)) + 2 * x**2 + np.clip(x, -1, 1) + x + 1 / (1 + np.exp(-x))
        + np.argmax(x, 1).reshape(3, 1) + np.argmin(x) + float(np.all(x)) + np.any(x > 0, 0) + x
    )  # fmt: skip
    np.testing.assert_allclose(jit(f)(Tensor(x)).asnumpy(), want, rtol=1e-12)
    np.testing.assert_allclose(f(Tensor(x)).asnumpy(), want, rtol=1e-12)
    # argmax takes the first maximum, and a nan as numpy does; it has no derivative
    t = Tensor(np.array([[1.0, 3.0, 3.0], [np.nan, 0.0, 5.0]]))
    np.testing.assert_array_equal(t.argmax(1).asnumpy(), [1, 0])

    def g(x):
        return x.argmax().astype(x.dtype) + x.clip(-1.0, 1.0).sum() + x.tanh().sum()

    np.testing.assert_allclose(ops.grad(g)(Tensor(x)).asnumpy(), (np.abs(x) < 1) + 1 - np.tanh(x) ** 2, rtol=1e-12)


def test_tensor_method_errors():
    with pytest.raises(ShapeError, match="not 1"):
        Tensor(X).squeeze(0)
    with pytest.raises(ArgumentError, match="bounds"):
        Tensor(X).clip()


def test_sequential_cell_and_cell_list(mode):
    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.features = nn.SequentialCell([nn.Dense(4, 5), nn.ReLU(), nn.Dense(5, 3), nn.Tanh()])
            self.heads = nn.CellList([nn.Dense(3, 2), nn.Dense(3, 2)])
            self.out = nn.SequentialCell(OrderedDict(fc=nn.Dense(2, 1), act=nn.Sigmoid()))

        def construct(self, x):
            h = self.features(x)
            y = 0.0
            for head in self.heads:
                y = y + head(h)
            return self.out(y)

    net = Net()
    names = [p.name for p in net.trainable_params()]
    assert names == [
        "features.0.weight",
        "features.0.bias",
        "features.2.weight",
        "features.2.bias",
        "heads.0.weight",
        "heads.0.bias",
        "heads.1.weight",
        "heads.1.bias",
        "out.fc.weight",
        "out.fc.bias",
    ]
    # the wrappers keep the names (MindSpore's auto_prefix=False)
    wl = nn.WithLossCell(net, nn.MSELoss())
    assert [p.name for p in wl.trainable_params()] == names
    assert len(net.features) == 4 and isinstance(net.features[1], nn.ReLU) and len(net.heads) == 2
    x = Tensor(X.astype(np.float32))
    d1, r1, d2, t1 = net.features
    h = np.tanh(np.maximum(X @ d1.weight.asnumpy().T + d1.bias.asnumpy(), 0) @ d2.weight.asnumpy().T)
    h = h + d2.bias.asnumpy() * 0  # bias init is zero
    np.testing.assert_allclose(net.features(x).asnumpy(), h, rtol=1e-5, atol=1e-6)
    grads = ops.GradOperation(get_by_list=True)(net, net.trainable_params())(x)
    assert [g.shape for g in grads] == [p.shape for p in net.trainable_params()]


def test_layer_norm_values_and_derivatives(mode):
    ln = nn.LayerNorm((4,), gamma_init=Tensor(RNG.uniform(0.5, 1.5, 4)), beta_init=Tensor(RNG.uniform(-1, 1, 4)))
    x = RNG.standard_normal((2, 3, 4))
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    want = (x - mu) / np.sqrt(var + 1e-7) * ln.gamma.asnumpy() + ln.beta.asnumpy()
    np.testing.assert_allclose(ln(Tensor(x)).asnumpy(), want, rtol=1e-5, atol=1e-6)
    ln2 = nn.LayerNorm((3, 4), begin_norm_axis=1, begin_params_axis=1, dtype=np.float64)
    check_grads(ln2, (Tensor(x),), order=_order(mode), atol=1e-6, rtol=1e-5)


def test_activation_and_shape_cells(pynative):
    x = Tensor(RNG.standard_normal((2, 3, 2, 2)))
    assert nn.Flatten()(x).shape == (2, 12)
    assert nn.Flatten(0, 1)(x).shape == (6, 2, 2)
    np.testing.assert_allclose(nn.Softmax(1)(x).asnumpy().sum(1), 1.0)
    np.testing.assert_allclose(nn.LogSoftmax()(x).asnumpy(), np.log(softmax(x.asnumpy())), atol=1e-12)
    np.testing.assert_allclose(nn.SiLU()(x).asnumpy(), ops.silu(x).asnumpy())
    np.testing.assert_allclose(nn.Softplus()(x).asnumpy(), np.logaddexp(0, x.asnumpy()), rtol=1e-12)
    assert isinstance(nn.get_activation("gelu"), nn.GELU)
    xs = x.asnumpy()
    exact = 0.5 * xs * (1 + scipy.special.erf(xs / np.sqrt(2)))
    np.testing.assert_allclose(nn.GELU(approximate=False)(x).asnumpy(), exact, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ops.GeLU()(x).asnumpy(), exact, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- erf, erfc, GeLU
def test_erf_erfc_and_exact_gelu_values(mode):
    def f(x):
        return ops.erf(x), ops.Erfc()(x), x.erf(), x.erfc(), ops.gelu(x), ops.gelu(x, approximate="tanh")

    x = np.concatenate([X.ravel(), [0.0, -6.0, 6.0, 30.0]])
    got = [t.asnumpy() for t in jit(f)(Tensor(x))]
    gelu = 0.5 * x * (1 + scipy.special.erf(x / np.sqrt(2)))
    tanh_form = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    want = [scipy.special.erf(x), scipy.special.erfc(x), scipy.special.erf(x), scipy.special.erfc(x), gelu, tanh_form]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-300)
    # MindSpore's documented example (float32)
    y = ops.gelu(Tensor(np.array([1.0, 2.0, 3.0], np.float32)))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.asnumpy(), [0.8413447, 1.9544997, 2.9959505], rtol=1e-6)
    with pytest.raises(ArgumentError, match="approximate must be 'none' or 'tanh'"):
        jit(lambda x: ops.gelu(x, approximate="exact"))(Tensor(x))


def test_erf_and_gelu_derivatives(mode):
    exact = nn.GELU(approximate=False)

    def f(x, y):
        return ops.erf(x) * ops.erfc(y) + ops.gelu(x * y) + exact(x - y)

    y = RNG.uniform(-1.5, 1.5, (3, 4))
    check_grads(f, (Tensor(X), Tensor(y)), order=_order(mode), atol=1e-6, rtol=1e-5)
    # d erf/dx = 2/sqrt(pi) exp(-x^2), d GeLU/dx = Phi(x) + x phi(x)
    x = X.ravel()
    g = ops.grad(lambda x: (ops.erf(x) + ops.gelu(x)).sum())(Tensor(x)).asnumpy()
    want = 2 / np.sqrt(np.pi) * np.exp(-(x**2)) + 0.5 * (1 + scipy.special.erf(x / np.sqrt(2)))
    want += x * np.exp(-(x**2) / 2) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(g, want, rtol=1e-12)


# ----------------------------------------------------------------------------- losses
P = RNG.uniform(0.1, 0.9, (3, 4))
T = RNG.uniform(0.0, 1.0, (3, 4))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_values(pynative, reduction):
    red = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    d = X - T
    cases = [
        (nn.L1Loss(reduction), X, T, np.abs(d)),
        (nn.SmoothL1Loss(0.5, reduction), X, T, np.where(np.abs(d) < 0.5, d * d, np.abs(d) - 0.25)),
        (nn.BCELoss(reduction=reduction), P, T, -(T * np.log(P) + (1 - T) * np.log(1 - P))),
        (nn.BCEWithLogitsLoss(reduction), X, T, -(T * np.log(1 / (1 + np.exp(-X))) + (1 - T) * np.log(1 - 1 / (1 + np.exp(-X))))),
    ]  # fmt: skip
    for loss, a, b, want in cases:
        np.testing.assert_allclose(
            loss(Tensor(a), Tensor(b)).asnumpy(), red(want), rtol=1e-10, err_msg=type(loss).__name__
        )


def test_bce_with_logits_is_stable_and_weighted(pynative):
    x = Tensor(np.array([[-1000.0, 1000.0, 0.5]]))
    y = Tensor(np.array([[1.0, 0.0, 1.0]]))
    np.testing.assert_allclose(nn.BCEWithLogitsLoss("none")(x, y).asnumpy(), [[1000.0, 1000.0, np.log1p(np.exp(-0.5))]])
    pw, w = np.array([2.0, 3.0, 0.5]), np.array([1.0, 0.5, 2.0])
    got = nn.BCEWithLogitsLoss("none", Tensor(w), Tensor(pw))(Tensor(X[:, :3]), Tensor(T[:, :3])).asnumpy()
    s = 1 / (1 + np.exp(-X[:, :3]))
    want = -w * (pw * T[:, :3] * np.log(s) + (1 - T[:, :3]) * np.log(1 - s))
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_cross_entropy_loss(pynative):
    labels = np.array([1, 3, -100], np.int32)
    logp = np.log(softmax(X))
    np.testing.assert_allclose(
        nn.CrossEntropyLoss()(Tensor(X), Tensor(labels)).asnumpy(), -(logp[0, 1] + logp[1, 3]) / 2
    )
    w = np.array([0.5, 2.0, 1.0, 3.0])
    got = nn.CrossEntropyLoss(weight=Tensor(w), reduction="sum")(Tensor(X), Tensor(labels)).asnumpy()
    np.testing.assert_allclose(got, -(2.0 * logp[0, 1] + 3.0 * logp[1, 3]))
    got = nn.CrossEntropyLoss(weight=Tensor(w))(Tensor(X), Tensor(labels)).asnumpy()
    np.testing.assert_allclose(got, -(2.0 * logp[0, 1] + 3.0 * logp[1, 3]) / 5.0)
    got = nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")(Tensor(X[:2]), Tensor(labels[:2])).asnumpy()
    target = np.eye(4)[labels[:2]] * 0.8 + 0.05
    np.testing.assert_allclose(got, -(target * logp[:2]).sum(-1), rtol=1e-12)
    probs = softmax(T)
    got = nn.CrossEntropyLoss()(Tensor(X), Tensor(probs)).asnumpy()
    np.testing.assert_allclose(got, -(probs * logp).sum(-1).mean(), rtol=1e-12)


def test_loss_derivatives(mode):
    labels = Tensor(np.array([1, 3, 0], np.int32))
    ce, bce, sl1 = nn.CrossEntropyLoss(), nn.BCEWithLogitsLoss(), nn.SmoothL1Loss(reduction="mean")
    l1, bp = nn.L1Loss(), nn.BCELoss()

    def f(x, p):
        return ce(x, labels) + bce(x, p) + sl1(x, p) + l1(x, p) + bp(p, ops.sigmoid(x))

    check_grads(f, (Tensor(X), Tensor(P)), order=_order(mode), atol=1e-6, rtol=1e-5)


class WithDropout(nn.Cell):
    def __init__(self):
        super().__init__()
        self.body = nn.SequentialCell([nn.Dense(3, 2), nn.Dropout(p=0.25)])

    def construct(self, x):
        return self.body(x)


def test_dropout_is_the_identity_in_eval_mode_and_drops_in_training(pynative):
    assert nn.Dropout(keep_prob=0.8).p == pytest.approx(0.2) and nn.Dropout().keep_prob == 0.5
    net = WithDropout()
    x = Tensor(np.ones((2, 3), np.float32))
    d = net.body[0]
    want = np.ones((2, 3)) @ d.weight.asnumpy().T + d.bias.asnumpy()
    np.testing.assert_allclose(net(x).asnumpy(), want, rtol=1e-6)
    # set_train reaches the sub-cells and drops the programs traced in the other mode
    net.set_train(True)
    assert net.body[1].training
    dropped = net(x).asnumpy()
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], want[kept] / 0.75, rtol=1e-6)
    net.set_train(False)
    np.testing.assert_allclose(net(x).asnumpy(), want, rtol=1e-6)
    assert nn.Dropout(p=0.0).set_train(True)(x).shape == (2, 3)  # nothing dropped


def _erf_program(x):
    return ops.erf(x) * ops.erfc(x) + ops.gelu(x)


def test_erf_in_generated_source_and_standalone_modules():
    # numpy code calls scipy.special (imported as sc by the standalone module); Numba code and
    # its fused loops call the loop namespace's kernels (the C library's erf)
    from s2s_ad.api import generated_source

    x = np.linspace(-3.0, 3.0, 7)
    src = generated_source(_erf_program, Tensor(x), standalone=True)
    assert "import scipy.special as sc" in src and "sc.erf(" in src and "sc.erfc(" in src
    ns: dict = {}
    exec(compile(src, "<standalone>", "exec"), ns)  # noqa: S102 - the module s2s_ad generated
    want = scipy.special.erf(x) * scipy.special.erfc(x) + 0.5 * x * (1 + scipy.special.erf(x / np.sqrt(2)))
    fname = re.search(r"^def (\w+)\(", src, re.M).group(1)
    got = ns[fname](x)
    np.testing.assert_allclose(got[0] if isinstance(got, tuple) else got, want, rtol=1e-13)
    numba_src = generated_source(_erf_program, Tensor(x), target="numba")
    assert "vm.erf(" in numba_src and "sc." not in numba_src
