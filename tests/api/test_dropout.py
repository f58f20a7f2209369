"""Dropout in training mode: masks from the counter-based ``random_uniform`` op, reproducible
after ``set_seed``, new at every call, the same in PYNATIVE and GRAPH code; the derivative uses
the forward pass's mask exactly; ``set_train`` switches between training and evaluation."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import ArgumentError, Tensor, context, nn, ops
from s2s_ad.common.initializer import RANDOM_KEY
from s2s_ad.primitives import mix64

X = Tensor(np.random.default_rng(0).uniform(1.0, 2.0, (40, 50)))


def test_mix64_is_splitmix64():
    # SplitMix64's first output for the state 1234567 (the generator's published test value)
    assert mix64(1234567 + 0x9E3779B97F4A7C15) == 6457827717110365317


def test_dropout_masks_are_seeded_fresh_and_scaled(mode):
    s2s_ad.set_seed(5)
    a = ops.dropout(X, p=0.3).asnumpy()
    b = ops.dropout(X, p=0.3).asnumpy()
    assert int(RANDOM_KEY.asnumpy()) == (mix64(5) >> 1) + 2  # advanced once per call
    kept = a != 0
    np.testing.assert_allclose(a[kept], X.asnumpy()[kept] / 0.7, rtol=1e-12)
    assert abs(kept.mean() - 0.7) < 0.05 and (a != b).any()
    s2s_ad.set_seed(5)
    np.testing.assert_array_equal(ops.dropout(X, p=0.3).asnumpy(), a)  # reproducible
    np.testing.assert_array_equal(ops.dropout(X, p=0.3, training=False).asnumpy(), X.asnumpy())
    with pytest.raises(ArgumentError, match=r"p \(the probability of dropping\) must be a number in \[0, 1\)"):
        ops.dropout(X, p=1.0)


def test_the_same_masks_in_both_modes():
    masks = []
    for m in (context.PYNATIVE_MODE, context.GRAPH_MODE):
        context.set_context(mode=m)
        s2s_ad.set_seed(11)
        out, mask = ops.Dropout(keep_prob=0.6, Seed0=1, Seed1=2)(X)
        np.testing.assert_array_equal(out.asnumpy() != 0, mask.asnumpy())
        masks.append(mask.asnumpy())
    context.set_context(mode=context.PYNATIVE_MODE)
    np.testing.assert_array_equal(masks[0], masks[1])
    s2s_ad.set_seed(11)
    other = ops.Dropout(keep_prob=0.6, Seed0=1, Seed1=3)(X)[1].asnumpy()
    assert (other != masks[0]).any()  # another op seed, another stream


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(50, 3)
        self.drop = nn.Dropout(p=0.5)

    def construct(self, x):
        return self.fc(self.drop(x * x))


def test_dropout_cell_train_and_eval_and_its_derivative(mode):
    s2s_ad.set_seed(0)
    net = Net()
    x = Tensor(X.asnumpy()[:4].astype(np.float32))
    w = net.fc.weight.asnumpy()
    np.testing.assert_allclose(net(x).asnumpy(), (x.asnumpy() ** 2) @ w.T + net.fc.bias.asnumpy(), rtol=1e-5)
    net.set_train()
    assert net.drop.training
    value_and_grad = ops.value_and_grad(lambda x: net.drop(x * x).sum())
    value, g = value_and_grad(x)
    # one mask for the value and the derivative: d/dx sum(mask * x^2 / keep) = 2 x mask / keep
    s2s_ad.set_seed(0)
    mask = ops.dropout(x, p=0.5).asnumpy() != 0
    np.testing.assert_allclose(g.asnumpy(), 2 * x.asnumpy() * mask / 0.5, rtol=1e-6)
    np.testing.assert_allclose(float(value.asnumpy()), (x.asnumpy() ** 2 * mask / 0.5).sum(), rtol=1e-5)
    # training steps draw new masks: the loss differs from step to step
    step = nn.TrainOneStepCell(nn.WithLossCell(net, nn.MSELoss()), nn.SGD(net.trainable_params(), 0.0))
    y = Tensor(np.zeros((4, 3), np.float32))
    losses = {float(step(x, y).asnumpy()) for _ in range(3)}
    assert len(losses) == 3
    net.set_train(False)
    np.testing.assert_allclose(net(x).asnumpy(), (x.asnumpy() ** 2) @ w.T + net.fc.bias.asnumpy(), rtol=1e-5)


def test_the_random_op_has_no_device_implementation_on_cuda():
    from s2s_ad.cuda.printer import generate
    from s2s_ad.errors import S2SError
    from s2s_ad.ir import Aval
    from s2s_ad.opt import optimize
    from s2s_ad.trace import trace

    key = Aval((), np.dtype(np.int64))
    prog = trace(
        lambda fe, args: fe.bind1("random_uniform", args[0], seed=0, shape=(3,), dtype=np.dtype(np.float32)),
        [key],
        "f",
        ["key"],
    )
    with pytest.raises(S2SError, match=r"RandomUniform \(random_uniform\) has no device implementation on the CUDA"):
        generate(optimize(prog), "f")
