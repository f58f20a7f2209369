"""Tiered execution (s2s_ad.tiered): the first calls of a new GRAPH_MODE program run its numpy
code while Numba compiles it in the background; later calls run the machine code, with the
same results (to the tolerance the backends share)."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, context, ops, runtime, tiered


def loss(x, w):
    h = ops.tanh(ops.matmul(x, w))
    return ops.sum(h * h * ops.sin(x[:, :1]))


def compiled_programs(fn) -> list[runtime.Compiled]:
    return [calls[k] for calls in runtime.cache_for(fn).values() for k in list(calls)]


@pytest.fixture
def compile_mode():
    old = context.get_context("mode"), context.get_context("compile_mode")

    def select(mode: str) -> None:
        context.set_context(mode=context.GRAPH_MODE, compile_mode=mode)

    yield select
    context.set_context(mode=old[0], compile_mode=old[1])


def inputs(seed: int) -> tuple[Tensor, Tensor]:
    rng = np.random.default_rng(seed)
    return Tensor(rng.standard_normal((40, 3))), Tensor(rng.standard_normal((3, 5)))


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_background_tier_switches_to_compiled_code(compile_mode, worker, monkeypatch) -> None:
    monkeypatch.setenv("S2S_AD_COMPILE_WORKER", worker)
    x, w = inputs(int(worker == "process"))  # new shapes: a new program for each parameter
    x = Tensor(np.concatenate([x.asnumpy()] * (2 if worker == "process" else 3)))

    def f(x, w):  # its own function: its own programs
        return loss(x, w)

    compile_mode("blocking")
    reference = [g.asnumpy() for g in s2s_ad.grad(f, grad_position=(0, 1))(x, w)]

    def g(x, w):
        return loss(x, w)

    compile_mode("background")
    grad_g = s2s_ad.jit(s2s_ad.grad(g, grad_position=(0, 1)))
    first = [t.asnumpy() for t in grad_g(x, w)]
    (prog,) = compiled_programs(g) or compiled_programs(grad_g)
    assert prog.tier is not None and prog.backend == "numba"
    assert "for " in prog.source  # the Numba source has fused loops; the first call ran numpy's
    assert tiered.wait(timeout=600)
    assert prog.tier.error is None and prog.tier.ready is not None
    if worker == "process":
        assert prog.tier.process_ok
    # the dispatcher calls Numba's machine code now
    assert prog.fn is prog.tier.ready and prog.call.__globals__["fn"] is prog.tier.ready
    later = [t.asnumpy() for t in grad_g(x, w)]
    for a, b, r in zip(first, later, reference):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, r, rtol=1e-10, atol=1e-12)


def _flow(s, p):
    for _ in range(50):  # kept as a loop (a region), its body on (3,) values scalarised
        s = s + 0.01 * ops.stack([p[0] * (s[1] - s[0]), s[0] * (p[1] - s[2]) - s[1], s[0] * s[1] - p[2] * s[2]])
    return (s * s).sum()


def test_background_tier_runs_programs_with_loops(compile_mode) -> None:
    s, p = Tensor(np.array([1.0, 1.1, 0.9])), Tensor(np.array([10.0, 28.0, 8.0 / 3.0]))

    def f(s, p):
        return _flow(s, p)

    compile_mode("blocking")
    reference = [t.asnumpy() for t in s2s_ad.grad(f, grad_position=(0, 1))(s, p)]

    def g(s, p):
        return _flow(s, p)

    compile_mode("background")
    grad_g = s2s_ad.grad(g, grad_position=(0, 1))
    first = [t.asnumpy() for t in grad_g(s, p)]
    (prog,) = compiled_programs(g) or compiled_programs(grad_g)
    assert prog.tier is not None and "range(50)" in prog.source
    assert tiered.wait(timeout=600)
    assert prog.tier.error is None and prog.fn is prog.tier.ready
    later = [t.asnumpy() for t in grad_g(s, p)]
    for a, b, r in zip(first, later, reference):
        np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, r, rtol=1e-10, atol=1e-12)


def test_numpy_compile_mode_never_compiles(compile_mode) -> None:
    compile_mode("numpy")
    assert context.backend() == "python"

    def h(x, w):
        return loss(x, w)

    x, w = inputs(2)
    out = s2s_ad.jit(h)(x, w)
    (prog,) = compiled_programs(h)
    assert prog.backend == "python" and prog.tier is None
    np.testing.assert_allclose(
        out.asnumpy(), np.sum(np.tanh(x.asnumpy() @ w.asnumpy()) ** 2 * np.sin(x.asnumpy()[:, :1]))
    )


def test_blocking_compile_mode_has_no_tier(compile_mode) -> None:
    compile_mode("blocking")

    def k(x, w):
        return loss(x, w)

    s2s_ad.jit(k)(*inputs(3))
    (prog,) = compiled_programs(k)
    assert prog.tier is None and prog.backend == "numba"


def test_compile_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="compile_mode"):
        context.set_context(compile_mode="eventually")


def test_a_prestarted_process_takes_the_next_compile(compile_mode, monkeypatch) -> None:
    """Before a new program is traced, a compiling process starts (Numba's import and start-up
    overlap the trace); the program's background compile then runs in it. A prestarted
    process that gets no job is ended at exit."""
    monkeypatch.setenv("S2S_AD_COMPILE_WORKER", "process")
    monkeypatch.setenv("S2S_AD_COMPILE_PROCESSES", "1")
    compile_mode("background")
    tiered._stop_spare()
    tiered.prestart()
    (spare,) = tiered._spare
    tiered.prestart()  # one at most
    assert tiered._spare == [spare]
    x, w = inputs(7)
    x = Tensor(x.asnumpy()[:7])

    def h(x, w):
        return loss(x, w)

    grad_h = s2s_ad.grad(h, grad_position=(0, 1))
    first = [t.asnumpy() for t in grad_h(x, w)]
    assert tiered.wait(timeout=600)
    assert spare not in tiered._spare and spare.returncode == 0  # it ran this program's compile
    (prog,) = compiled_programs(h) or compiled_programs(grad_h)
    assert prog.tier.process_ok and prog.tier.ready is not None
    later = [t.asnumpy() for t in grad_h(x, w)]
    for a, b in zip(first, later):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    tiered._stop_spare()
    assert tiered._spare == []


def _d2(x):
    return ops.sin(x) * x * x * x


def test_fast_calls_made_before_the_switch_are_made_again(compile_mode) -> None:
    """A fast call made while the numpy code ran is made again when the machine code is in
    use, in the class of the functions holding it: a float64 scalar result then needs no
    dtype conversion."""
    compile_mode("background")
    g = s2s_ad.grad(s2s_ad.grad(_d2))
    x = Tensor(np.array(0.75))
    want = -(0.75**3) * np.sin(0.75) + 6 * 0.75**2 * np.cos(0.75) + 6 * 0.75 * np.sin(0.75)
    results = [g(x).asnumpy() for _ in range(2)]  # the second makes the fast call
    before = type(g)._s2s_fast
    assert before is not None
    assert tiered.wait(timeout=600)
    after = type(g)._s2s_fast
    assert "dt0" not in after.__code__.co_names and type(g).__call__ is after
    if "dt0" in before.__code__.co_names:  # made while the numpy code ran
        assert after is not before
    results.append(g(x).asnumpy())
    for r in results:
        assert r.dtype == np.float64
        np.testing.assert_allclose(r, want, rtol=1e-12)
