"""What the Numba backend's fused loops print: integer powers as multiplications, exp and tanh
through :mod:`s2s_ad.cpumath`; and that their values match the numpy (PYNATIVE) backend."""

from __future__ import annotations

import re

import numpy as np
import pytest

import s2s_ad
from s2s_ad import context
from s2s_ad.api import generated_source
from s2s_ad.ir import Aval


def _both(fn, *args):
    """fn's results in GRAPH mode (Numba, fused) and PYNATIVE mode (numpy)."""
    old = context.get_context("mode")
    try:
        context.set_context(mode=context.GRAPH_MODE)
        graph = fn(*args)
        context.set_context(mode=context.PYNATIVE_MODE)
        native = fn(*args)
    finally:
        context.set_context(mode=old)
    return graph, native


def powers(x):
    return x**3 + x**-5 + x**16 * 1e-9 + np.abs(x) ** 2.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_integer_powers_are_multiplications(dtype):
    src = generated_source(s2s_ad.jit(powers), Aval((4,), np.dtype(dtype)), target="numba")
    assert "x_i ** 3" in src and "/ x_i ** 5" in src and "x_i ** 16" in src
    assert re.search(r"\*\* (np\.float32\()?2\.5", src)  # a fractional power stays a pow call
    assert "** 3.0" not in src
    x = np.array([0.5, -1.25, 2.0, 3.0], dtype)
    graph, native = _both(s2s_ad.jit(powers), s2s_ad.Tensor(x))
    assert graph.dtype == native.dtype == dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(graph.asnumpy(), native.asnumpy(), rtol=rtol)


def test_derivatives_with_integer_powers_match_numpy():
    def g(x):
        return np.sin(x) * np.exp(-x * x) / (1 + x * x)

    d = g
    for _ in range(4):  # elementwise, so each gradient (of the sum) is the derivative at every point
        d = s2s_ad.grad(d)
    x = s2s_ad.Tensor(np.linspace(-3.0, 3.0, 41))
    graph, native = _both(d, x)
    np.testing.assert_allclose(graph.asnumpy(), native.asnumpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_exp_and_tanh_go_through_cpumath(dtype):
    def f(x, w):
        return np.sum(np.tanh(x * w) * np.exp(-x))

    args = (Aval((8,), np.dtype(dtype)), Aval((8,), np.dtype(dtype)))
    src = generated_source(s2s_ad.grad(f, grad_position=(0, 1)), *args, target="numba")
    code = "\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith("#"))  # not the user's lines
    assert "vm.tanh(" in code and "vm.exp(" in code and "np.tanh(" not in code and "np.exp(" not in code
    rng = np.random.default_rng(2)
    x, w = (s2s_ad.Tensor(rng.uniform(-3, 3, 8).astype(dtype)) for _ in range(2))
    graph, native = _both(s2s_ad.grad(f, grad_position=(0, 1)), x, w)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    for a, b in zip(graph, native):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_sin_cos_beyond_their_fast_range_rerun_with_numpy(dtype):
    """vm.sin/vm.cos are nan beyond 2**20 pi/2: the loop then runs again with numpy's functions,
    sums starting from zero again."""

    def f(x):
        return np.sin(x) * np.cos(2.0 * x), np.sum(np.sin(x)), np.sum(np.cos(x), axis=0)

    src = generated_source(s2s_ad.jit(f), Aval((3, 4), np.dtype(dtype)), target="numba")
    assert "out_of_range |= " in src and "if out_of_range:" in src and "np.sin(" in src.split("if out_of_range:")[1]
    assert "vm.sum_add(" in src  # the full sum: an addition LLVM may reorder (vectorised)
    rng = np.random.default_rng(4)
    x = rng.uniform(-3, 3, (3, 4)).astype(dtype)
    for special in (None, 3e6, -1e20, np.inf, np.nan):
        xs = x.copy()
        if special is not None:
            xs[1, 2] = special
        with np.errstate(invalid="ignore"):
            graph, native = _both(s2s_ad.jit(f), s2s_ad.Tensor(xs))
        rtol = 1e-5 if dtype == np.float32 else 1e-13
        for a, b in zip(graph, native):
            assert a.dtype == b.dtype
            np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=rtol, atol=rtol)


_B1 = np.linspace(-0.5, 0.5, 5)
_W2 = np.linspace(1.0, -1.0, 5).reshape(5, 1)


def _network_total(xt, w):
    return s2s_ad.ops.sum(s2s_ad.ops.matmul(s2s_ad.ops.tanh(s2s_ad.ops.matmul(xt, w) + _B1), _W2))


def _input_gradient_loss(w, xt):
    du = s2s_ad.grad(_network_total)(xt, w)
    return s2s_ad.ops.sum(du * du)


def test_values_loops_compute_again_match_numpy():
    """A second-order PINN-style gradient: the ``1 - h*h`` factors of its tanh layer are
    computed again in each loop that reads them (not stored by the forward loop); the
    result is the numpy backend's."""
    rng = np.random.default_rng(3)
    w = s2s_ad.Tensor(rng.standard_normal((2, 5)))
    xt = s2s_ad.Tensor(rng.uniform(-1, 1, (7, 2)))
    g = s2s_ad.grad(_input_gradient_loss)
    graph, native = _both(g, w, xt)
    np.testing.assert_allclose(graph.asnumpy(), native.asnumpy(), rtol=1e-12, atol=1e-14)
    src = generated_source(g, Aval((2, 5), np.dtype(np.float64)), Aval((7, 2), np.dtype(np.float64)), target="numba")
    loops = re.split(r"for i0\w* in range\(7\):", src)[1:]
    forward = [lp for lp in loops if "vm.tanh(" in lp]
    # tanh's value and the product's operand stored; not ``2 - 2 h**2``, computed again later
    body = re.split(r"\n    (?! )", forward[0])[0]  # up to the next statement after the loop
    assert len(forward) == 1 and body.count("] = ") == 2
    assert any("2.0 - 2.0 * vm.square(" in lp for lp in loops if "vm.tanh(" not in lp)
