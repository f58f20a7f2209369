"""The in-memory caches of compiled programs are bounded (``S2S_AD_MAX_PROGRAMS``): a function
called with ever new shapes keeps the most recently used programs, recompiles evicted ones
correctly, and evicted programs release their generated modules."""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, backend, nn, ops, runtime
from s2s_ad.lru import DEFAULT_MAX_PROGRAMS, ProgramCache, max_programs


def loss(x):
    return (ops.tanh(x) * ops.sin(x)).sum()


def elementwise(x):
    return ops.sin(x) * x


def loss_grad(x: np.ndarray) -> np.ndarray:
    return np.tanh(x) * np.cos(x) + np.sin(x) / np.cosh(x) ** 2


def sample(n: int) -> Tensor:
    return Tensor(np.linspace(-1, 1, n, dtype=np.float32))


def test_max_programs_setting(monkeypatch):
    monkeypatch.delenv("S2S_AD_MAX_PROGRAMS", raising=False)
    assert max_programs() == DEFAULT_MAX_PROGRAMS == 64
    monkeypatch.setenv("S2S_AD_MAX_PROGRAMS", "3")
    assert max_programs() == 3
    monkeypatch.setenv("S2S_AD_MAX_PROGRAMS", "0")
    monkeypatch.setattr("s2s_ad.lru._warned_max", False)
    with pytest.warns(RuntimeWarning, match="not a positive whole number"):
        assert max_programs() == 64


def test_program_cache_evicts_the_least_recently_used(monkeypatch):
    monkeypatch.setenv("S2S_AD_MAX_PROGRAMS", "3")
    c = ProgramCache()
    for k in "abc":
        c.put(k, k.upper())
    c.used("a")
    c.put("d", "D")
    assert list(c) == ["c", "a", "d"]
    assert ProgramCache(scale=2).put("x", 1) == 1


def test_a_gradient_called_with_many_shapes_keeps_at_most_the_bound(mode, monkeypatch):
    bound = 3
    monkeypatch.setenv("S2S_AD_MAX_PROGRAMS", str(bound))
    g = s2s_ad.grad(loss)
    g._s2s_calls = runtime.ProgramCache()  # this test's programs only (grad(loss) shares them)
    first = None
    for n in range(2, 10):
        np.testing.assert_allclose(g(sample(n)).asnumpy(), loss_grad(sample(n).asnumpy()), rtol=1e-5, atol=1e-6)
        # shape (2,) is used after every other shape: the most recently used are kept
        np.testing.assert_allclose(g(sample(2)).asnumpy(), loss_grad(sample(2).asnumpy()), rtol=1e-5, atol=1e-6)
        calls = g._s2s_calls
        assert len(calls) <= bound
        programs = [c for sig, c in calls.items() if sig[-1] == ((2,), np.dtype(np.float32))]
        first = first or programs[0]
        assert programs == [first]  # never evicted, never recompiled
    # an evicted signature compiles again, correctly
    assert not any(sig[-1] == ((5,), np.dtype(np.float32)) for sig in g._s2s_calls)
    np.testing.assert_allclose(g(sample(5)).asnumpy(), loss_grad(sample(5).asnumpy()), rtol=1e-5, atol=1e-6)
    assert len(g._s2s_calls) <= bound


def test_evicted_programs_release_their_modules(graph, monkeypatch):
    bound = 2
    monkeypatch.setenv("S2S_AD_MAX_PROGRAMS", str(bound))

    def modules() -> list[str]:
        gc.collect()
        return [m for m in sys.modules if m.startswith("s2s_ad_cache.grad_loss_")]

    backend._CACHE.clear()
    before = set(modules())
    g = s2s_ad.grad(loss)
    for n in range(11, 19):
        np.testing.assert_allclose(g(sample(n)).asnumpy(), loss_grad(sample(n).asnumpy()), rtol=1e-5, atol=1e-6)
    # the function's programs and the process-wide most recent ones, at most ``bound`` each
    assert len(g._s2s_calls) == bound and len(backend._CACHE) <= bound
    assert 0 < len(set(modules()) - before) <= 2 * bound
    # once nothing holds them (the programs of ``loss`` live with it), their modules go
    del g
    runtime.cache_for(loss).clear()
    backend._CACHE.clear()
    assert not set(modules()) - before


def test_cell_forward_jacobian_and_eager_caches_are_bounded(mode, monkeypatch):
    monkeypatch.setenv("S2S_AD_MAX_PROGRAMS", "2")

    class Net(nn.Cell):
        def construct(self, x):
            return ops.sin(x) * 2.0

    net = Net()
    for n in range(2, 7):
        x = sample(n)
        np.testing.assert_allclose(net(x).asnumpy(), 2 * np.sin(x.asnumpy()), rtol=1e-6)
        j = s2s_ad.jacrev(elementwise)(x)
        a = x.asnumpy()
        np.testing.assert_allclose(j.asnumpy(), np.diag(np.cos(a) * a + np.sin(a)), rtol=1e-5, atol=1e-6)
        y = x * 3.0  # an eager operation
        np.testing.assert_allclose(y.asnumpy(), 3 * x.asnumpy(), rtol=1e-6)
    assert len(runtime.calls_cache(net, ("forward",))) <= 2
    jacobians = [v for k, v in runtime.cache_for(elementwise).items() if k and k[0][0] == "jacrev"]
    assert jacobians and all(len(p) <= 2 for p in jacobians)
    assert len(runtime._EAGER) <= 8 * 2
