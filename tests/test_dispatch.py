"""Dispatch: a call of a program that ran before is one dict lookup of the argument signature
and the call; Python numbers reach a program that takes scalars as scalars."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Parameter, Tensor, api, ops, runtime
from s2s_ad.errors import ArgumentError
from s2s_ad.ir import Aval
from s2s_ad.runtime import _FRESH_ARRAY, _FRESH_VIEW, _MAYBE_VIEW, _SCALAR, _output_kinds
from s2s_ad.trace import trace


def _poly(x):
    return (x * x * x + ops.sin(x)).sum()


def _mixed(x, w, y):
    return (ops.matmul(x, w) * y).sum()


def _no_more_staging(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a repeated call went through staged()")

    monkeypatch.setattr(api, "staged", fail)
    monkeypatch.setattr(runtime, "signature", fail)


def test_a_repeated_call_is_a_lookup_and_the_call(mode, monkeypatch):
    g = s2s_ad.grad(_mixed, grad_position=(0, 1))
    x = Tensor(np.linspace(-1, 1, 6).reshape(2, 3))
    w = Parameter(Tensor(np.linspace(0, 1, 6).reshape(3, 2)), name="w")
    y = np.linspace(1, 2, 4).reshape(2, 2)
    first = g(x, w, y)
    _no_more_staging(monkeypatch)
    again = g(x, w, y)
    for a, b in zip(first, again):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy())
    # another shape is not in the cache: it takes the full path
    with pytest.raises(AssertionError, match="went through staged"):
        g(Tensor(np.ones((3, 3))), w, y)


def test_a_python_number_is_passed_as_a_scalar(mode, monkeypatch):
    d2 = s2s_ad.grad(s2s_ad.grad(_poly))
    first = d2(0.5)
    assert first.asnumpy().dtype == np.float32  # a Python float is float32, as Tensor(0.5)

    def boxed(v):
        raise AssertionError("the number was boxed into a Tensor")

    monkeypatch.setattr(api, "number_input", boxed)
    _no_more_staging(monkeypatch)
    for v in (0.5, -1.25):
        got = d2(v).asnumpy()
        np.testing.assert_allclose(got, 6 * v - np.sin(v), rtol=1e-6)
        assert got.dtype == np.float32


def _kinds(fn, *shapes):
    f64 = np.dtype(np.float64)
    prog = trace(
        lambda fe, args: fe.call(fn, args), [Aval(s, f64) for s in shapes], "f", [f"a{i}" for i in range(len(shapes))]
    )
    return _output_kinds(prog)


def _views(x):
    return ops.transpose(x * 2.0, (1, 0)), ops.reshape(x, (6,)), x * 3.0, (x * x).sum()


def test_output_kinds_follow_views_back_to_the_inputs():
    # a view of memory the program made needs a layout check only; a view of an input may
    # share the caller's memory
    assert _kinds(_views, (2, 3)) == [_FRESH_VIEW, _MAYBE_VIEW, _FRESH_ARRAY, _SCALAR]


def test_outputs_are_contiguous_and_never_share_the_inputs(mode):
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    jf = s2s_ad.jit(_views)
    for _ in range(2):  # the first call, then the generated dispatcher
        t, r, m, s = (o.asnumpy() for o in jf(Tensor(x)))
        np.testing.assert_allclose(t, (x * 2).T)
        np.testing.assert_allclose(r, x.reshape(6))
        for a in (t, r, m):
            assert a.flags.c_contiguous and a.flags.writeable
            assert not np.may_share_memory(a, x)


class _Scaled(s2s_ad.nn.Cell):
    def __init__(self):
        super().__init__()
        self.k = Parameter(Tensor(np.array(1.5, np.float32)), name="k")  # a 0-d parameter

    def construct(self, x):
        return ops.sin(x) * self.k


def test_zero_d_arguments_and_parameters_together(mode):
    net = _Scaled()
    g = ops.GradOperation(get_all=True)(net)
    for v in (0.25, 0.25, -0.5):  # the first call, then the generated dispatcher
        (gx,) = g(Tensor(np.float32(v)))
        np.testing.assert_allclose(gx.asnumpy(), 1.5 * np.cos(np.float32(v)), rtol=1e-6)
    net.k.set_data(Tensor(np.array(2.0, np.float32)))
    (gx,) = g(Tensor(np.float32(0.5)))
    np.testing.assert_allclose(gx.asnumpy(), 2.0 * np.cos(np.float32(0.5)), rtol=1e-6)


def _no_lookup(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a repeated call looked its program up")

    monkeypatch.setattr(api, "cached", fail)
    _no_more_staging(monkeypatch)


_FELL_BACK = object()


def _misses(g, *args, **kwargs) -> bool:
    """Whether calling ``g`` so leaves its fast call for the lookup (``_call``)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(type(g), "_call", lambda self, args, kwargs: _FELL_BACK)
    try:
        return g(*args, **kwargs) is _FELL_BACK
    finally:
        mp.undo()


def test_the_fast_call_checks_its_signature_and_falls_back(mode, monkeypatch):
    """From the third call on, a transformed function calls the function fast_call generated
    for its last program (no key, no lookup); arguments of another signature, types or a
    changed context fall back to the lookup, with results as before."""
    g = s2s_ad.grad(_mixed, grad_position=(0, 1, 2))
    x = Tensor(np.linspace(-1, 1, 6).reshape(2, 3))
    w = Parameter(Tensor(np.linspace(0, 1, 6).reshape(3, 2)), name="w")
    y = np.linspace(1, 2, 4).reshape(2, 2)

    def expected(x, w, y):
        return y @ w.T, x.T @ y, x @ w

    g(x, w, y)
    g(x, w, y)  # found by the lookup: makes the fast call
    assert type(g)._s2s_fast is not None
    with monkeypatch.context() as m:
        _no_lookup(m)
        for got, want in zip(g(x, w, y), expected(x.asnumpy(), w.asnumpy(), y)):
            np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-12)
        # new values, the same signature: still the fast call
        x2 = Tensor(np.linspace(0, 2, 6).reshape(2, 3))
        for got, want in zip(g(x2, w, y * 3), expected(x2.asnumpy(), w.asnumpy(), y * 3)):
            np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-12)
    assert not _misses(g, x, w, y)
    # another shape, another dtype, an array where a Tensor was, too few or too many
    # arguments, keywords: not its call
    assert _misses(g, Tensor(np.ones((3, 3))), w, np.ones((3, 2)))
    assert _misses(g, Tensor(np.ones((2, 3), np.float32)), w, y)
    assert _misses(g, x.asnumpy(), w, y)
    assert _misses(g, x, w)
    assert _misses(g, x, w, y, y)
    assert _misses(g, x, w, y=y)
    with pytest.raises(ArgumentError, match="positional arguments only"):
        g(x, w, y=y)
    x3 = Tensor(np.ones((4, 3)))
    for got, want in zip(g(x3, w, np.ones((4, 2))), expected(np.ones((4, 3)), w.asnumpy(), np.ones((4, 2)))):
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-12)
    # a context change (what the backend key holds) is a miss too
    s2s_ad.set_context(algebraic_simplification=s2s_ad.get_context("algebraic_simplification"))
    assert _misses(g, x3, w, np.ones((4, 2)))


def test_the_fast_call_takes_python_floats_as_scalars(mode, monkeypatch):
    g = s2s_ad.grad(lambda x: x * x * ops.sin(x))
    for _ in range(2):
        g(0.5)
    with monkeypatch.context() as m:
        _no_lookup(m)
        out = g(0.25)
    assert out.shape == () and out.dtype == s2s_ad.float32
    np.testing.assert_allclose(out.asnumpy(), 2 * 0.25 * np.sin(0.25) + 0.25**2 * np.cos(0.25), rtol=1e-6)
    assert _misses(g, Tensor(np.float32(0.5)))  # a Tensor where a float was


def _sin_cube(x):
    return ops.sin(x) * x**3


def test_a_scalar_program_calls_its_machine_code_entry(monkeypatch):
    """A compiled program that takes only scalars is called at its machine-code entry (no
    typing of the arguments by Numba's dispatcher); arguments of another dtype or shape miss
    the fast call and get their own program."""
    old = s2s_ad.get_context("mode")
    s2s_ad.set_context(mode=s2s_ad.GRAPH_MODE)
    try:
        g = s2s_ad.grad(s2s_ad.grad(_sin_cube))

        def want(x):
            return -(x**3) * np.sin(x) + 6 * x**2 * np.cos(x) + 6 * x * np.sin(x)

        x = Tensor(np.array(0.5))
        g(x)
        g(x)
        fast = type(g)._s2s_fast
        assert type(fast.__globals__["fn"]).__name__ == "builtin_function_or_method"  # not a Dispatcher
        with monkeypatch.context() as m:
            _no_lookup(m)
            for v in (0.5, -1.25, 3.0):
                out = g(Tensor(np.array(v)))
                assert out.shape == () and out.asnumpy().dtype == np.float64
                np.testing.assert_allclose(out.asnumpy(), want(v), rtol=1e-12)
        assert _misses(g, Tensor(np.array(0.5, np.float32)))
        assert _misses(g, Tensor(np.array([0.5])))
        assert _misses(g, Parameter(Tensor(np.array(0.5)), name="p"))
        assert _misses(g) and _misses(g, x, x)
        f32 = g(Tensor(np.array(0.5, np.float32)))
        assert f32.asnumpy().dtype == np.float32
        np.testing.assert_allclose(f32.asnumpy(), want(0.5), rtol=1e-5)
        vec = g(Tensor(np.array([0.5, 1.0])))
        np.testing.assert_allclose(vec.asnumpy(), want(np.array([0.5, 1.0])), rtol=1e-12)
    finally:
        s2s_ad.set_context(mode=old)


def test_the_fast_call_is_the_call_of_a_class_of_its_own(mode):
    """A function with a fast call is an instance of a subclass of its own class whose
    ``__call__`` is the fast call; it is still its class by name, ``isinstance``, pickle and
    copy, and a change of context puts it back in its class."""
    import copy
    import pickle

    g = s2s_ad.grad(_poly)
    base = type(g)
    x = Tensor(np.linspace(-1.0, 1.0, 5))
    for _ in range(3):
        out = g(x)
    np.testing.assert_allclose(out.asnumpy(), 3 * x.asnumpy() ** 2 + np.cos(x.asnumpy()), rtol=1e-12)
    cls = type(g)
    assert cls is not base and cls._s2s_base is base and cls.__call__ is cls._s2s_fast
    assert isinstance(g, api.ReverseFunction) and cls.__name__ == base.__name__ and "grad" in repr(g)
    h = s2s_ad.grad(_poly)  # the same program: the same class once it has its fast call
    for _ in range(2):
        h(x)
    assert type(h) is cls
    for other in (pickle.loads(pickle.dumps(g)), copy.copy(g)):
        assert type(other) is base
        np.testing.assert_allclose(other(x).asnumpy(), out.asnumpy(), rtol=1e-12)
    s2s_ad.set_context(algebraic_simplification=s2s_ad.get_context("algebraic_simplification"))
    assert type(g) is base and type(h) is base
    np.testing.assert_allclose(g(x).asnumpy(), out.asnumpy(), rtol=1e-12)


def _scaled(x, y=2.0, *, z=1.0):
    return x * y + z


def test_keywords_reach_jit_after_its_fast_call(mode):
    j = s2s_ad.jit(_scaled)
    x = Tensor(np.array([1.0, -2.0]))
    for _ in range(3):
        np.testing.assert_allclose(j(x).asnumpy(), x.asnumpy() * 2.0 + 1.0)
    assert type(j)._s2s_fast is not None
    np.testing.assert_allclose(j(x, y=3.0).asnumpy(), x.asnumpy() * 3.0 + 1.0)
    np.testing.assert_allclose(j(x, z=10.0).asnumpy(), x.asnumpy() * 2.0 + 10.0)
    with pytest.raises(ArgumentError, match="unexpected keyword argument 'w'"):
        j(x, w=1.0)


def test_scalar_results_of_machine_code_need_no_conversion():
    """A 0-d float64 result that the machine code returns as a Python float becomes a 0-d
    array with no dtype to convert to; a float32 one is still converted to float32."""
    old = s2s_ad.get_context("mode")
    s2s_ad.set_context(mode=s2s_ad.GRAPH_MODE)
    try:
        g = s2s_ad.grad(s2s_ad.grad(_sin_cube))
        for dtype, exact in ((np.float64, True), (np.float32, False)):
            x = Tensor(np.array(0.5, dtype))
            for _ in range(3):
                out = g(x)
            assert out.asnumpy().dtype == dtype and out.shape == ()
            want = -(0.5**3) * np.sin(0.5) + 6 * 0.5**2 * np.cos(0.5) + 6 * 0.5 * np.sin(0.5)
            np.testing.assert_allclose(out.asnumpy(), want, rtol=1e-12 if exact else 1e-6)
            assert ("dt0" not in type(g)._s2s_fast.__code__.co_names) is exact
    finally:
        s2s_ad.set_context(mode=old)


def test_direct_entry_only_for_scalar_signatures():
    import numba

    from s2s_ad.backend import direct_entry

    scalar = numba.njit(lambda a, b: a * b)
    assert direct_entry(scalar) is scalar  # nothing compiled yet
    scalar(2.0, 3)
    entry = direct_entry(scalar)
    assert entry is not scalar and entry(2.0, 3) == 6.0
    scalar(2, 3)  # a second signature: the dispatcher chooses
    assert direct_entry(scalar) is scalar
    array = numba.njit(lambda a: a.sum())
    array(np.ones(3))
    assert direct_entry(array) is array
    assert direct_entry(_poly) is _poly  # not a Dispatcher at all
