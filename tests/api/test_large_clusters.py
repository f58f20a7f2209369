"""Clusters whose expression tree is too large for SymPy (a deep chain reusing values) fall
back to the per-equation chain rule and are left unsimplified: building stays fast and the
derivative stays right."""

from __future__ import annotations

import time

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, ops
from s2s_ad.api import trace_program

pytestmark = pytest.mark.usefixtures("pynative")


def deep_chain(x):
    for _ in range(30):
        x = ops.sin(x) * x + x * x * 0.1
    return ops.sum(x)


def test_deep_chain_builds_quickly_and_is_correct():
    x = np.array([0.1, 0.2, 0.3])
    t0 = time.perf_counter()
    prog = trace_program(s2s_ad.grad(deep_chain), Tensor(x))
    assert time.perf_counter() - t0 < 10, "exponential expression growth"
    assert len(prog.eqns) < 40 * 30
    g = s2s_ad.grad(deep_chain)(Tensor(x)).asnumpy()
    h = 1e-6
    fd = [
        (deep_chain(Tensor(x + h * e)).asnumpy() - deep_chain(Tensor(x - h * e)).asnumpy()) / (2 * h) for e in np.eye(3)
    ]
    np.testing.assert_allclose(g, fd, rtol=1e-6)
    _, t = s2s_ad.jvp(deep_chain, Tensor(x), Tensor(np.ones(3)))
    np.testing.assert_allclose(t.asnumpy(), np.sum(fd), rtol=1e-6)
