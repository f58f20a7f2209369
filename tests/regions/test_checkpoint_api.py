"""``s2s_ad.checkpoint``: a checkpointed function's forward is recomputed in the adjoint sweep
(its call is a one-iteration loop region holding its staged body, closed over what it reads),
with the same derivatives as without; ``every=k`` sets the loop policy the frontend passes to
the loops it stages."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Parameter, Tensor, nn, ops
from s2s_ad.errors import ArgumentError
from s2s_ad.trace.checkpoint import loop_options, loop_policy


def _g(x, y):
    return ops.sin(x) * y + ops.exp(x * y)


def _h(x, y):
    return np.sin(x) * y


def test_recomputed_function_gives_the_same_derivatives(mode):
    gc = s2s_ad.checkpoint(_g)

    def f(x, y):
        return (gc(x, y) * x).sum()

    def f0(x, y):
        return (_g(x, y) * x).sum()

    x = Tensor(np.array([[0.1, 0.5, 0.9], [0.2, -0.4, 1.1]]))
    y = Tensor(np.array([1.0, 2.0, -3.0]))
    got = s2s_ad.grad(f, grad_position=(0, 1))(x, y)
    want = s2s_ad.grad(f0, grad_position=(0, 1))(x, y)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-12)
    # second order: the derivative of the recomputing adjoint
    h = s2s_ad.grad(s2s_ad.grad(f), grad_position=1)(x, y)
    h0 = s2s_ad.grad(s2s_ad.grad(f0), grad_position=1)(x, y)
    np.testing.assert_allclose(h.asnumpy(), h0.asnumpy(), rtol=1e-12)


def test_recomputed_cell_reads_its_weights():
    """A checkpointed function that reads a Cell's Parameter: the weight becomes an input of
    the region, and its gradient is right."""

    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.w = Parameter(np.array([0.5, -1.0, 2.0]), name="w")
            self.block = s2s_ad.checkpoint(self.inner)

        def inner(self, x):
            return ops.tanh(x * self.w)

        def construct(self, x):
            return (self.block(x) * self.block(x * 2.0)).sum()

    net = Net()
    x = Tensor(np.array([0.3, 0.2, -0.1]))
    gw = s2s_ad.grad(net, grad_position=None, weights=net.trainable_params())(x)[0].asnumpy()
    w = net.w.asnumpy()

    def f(wv):
        return np.sum(np.tanh(x.asnumpy() * wv) * np.tanh(2 * x.asnumpy() * wv))

    fd = [(f(w + 1e-6 * e) - f(w - 1e-6 * e)) / 2e-6 for e in np.eye(3)]
    np.testing.assert_allclose(gw, fd, rtol=1e-6)


def test_every_sets_the_loop_policy():
    """Staging a ``checkpoint(fn, every=k)`` call stages ``fn`` under the loop policy
    ``checkpoint=k`` (what the frontend passes to the loops it binds), and only then."""
    seen = []

    class Recorder:  # the part of the tracer the wrapper uses
        def call(self, f, args, kwargs):
            seen.append(loop_options())
            return f(*args, **kwargs)

    wrapped = s2s_ad.checkpoint(_h, every=3)
    out = wrapped.__s2s_stage__(Recorder(), [np.float64(0.5), np.float64(2.0)], {})
    assert seen == [{"checkpoint": 3}] and np.isclose(out, _h(0.5, 2.0))
    assert loop_options() == {}
    with loop_policy(checkpoint=5):
        assert loop_options() == {"checkpoint": 5}
    assert wrapped(0.5, 2.0) == _h(0.5, 2.0)  # outside compiled code: the function itself


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_every_must_be_a_positive_int(bad):
    with pytest.raises(ArgumentError, match="positive int"):
        s2s_ad.checkpoint(_g, every=bad)
