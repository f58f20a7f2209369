"""Idioms of MindSpore programs inside compiled code: ``isinstance`` of computed values, the
compile-time properties ``ops.Shape``/``Rank``/``Size`` (and ``ops.shape``/``rank``/``size``),
in PYNATIVE and GRAPH mode, derivatives against finite differences."""

from __future__ import annotations

import numpy as np

import s2s_ad
from s2s_ad import Parameter, Tensor, nn, ops
from s2s_ad.testing import check_grads


class Scaled(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.array([0.5, -1.5, 2.0])), name="w")
        self.shape = ops.Shape()

    def construct(self, x, extra=(1.0, 2.0)):
        y = x * 2.0
        computed = isinstance(y, s2s_ad.Tensor) and not isinstance(y, (tuple, list, Parameter))
        given = isinstance(self.w, Parameter) and isinstance(x, Tensor) and isinstance(extra, tuple)
        n = self.shape(x)[0] + ops.rank(x) + ops.Size()(x)  # 3 + 1 + 3
        if computed and given:
            return (y * self.w).sum() * n
        return y.sum()


def test_isinstance_and_static_properties(mode):
    x = np.array([1.0, 2.0, -0.5])
    net = Scaled()
    got = net(Tensor(x))
    np.testing.assert_allclose(got.asnumpy(), (2.0 * x * net.w.asnumpy()).sum() * 7, rtol=1e-12)
    check_grads(net, (Tensor(x),), atol=1e-6, rtol=1e-6)


def test_static_properties_outside_compiled_code():
    x = Tensor(np.zeros((2, 3, 4), np.float32))
    assert ops.Shape()(x) == (2, 3, 4) and ops.shape(x) == (2, 3, 4)
    assert ops.Rank()(x) == 3 and ops.rank(x) == 3
    assert ops.Size()(x) == 24 and ops.size(x) == 24


def overwrite_a_copy(x):
    y = x.copy()
    y[0] = y[1] * y[2]
    return (x * y).sum()


def test_tensor_copy(mode):
    """``x.copy()`` in compiled code is ``x`` (values are not changed in place there); eagerly a
    copy has data of its own, so assigning into it leaves ``x`` as it was."""
    x = np.array([1.0, 2.0, 3.0])
    t = Tensor(x)
    assert overwrite_a_copy(t) == 19.0
    np.testing.assert_array_equal(t.asnumpy(), x)
    np.testing.assert_allclose(s2s_ad.jit(overwrite_a_copy)(t).asnumpy(), 19.0)
    check_grads(overwrite_a_copy, (t,), order=2, modes="rev", atol=1e-6, rtol=1e-6)
