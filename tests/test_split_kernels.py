"""Long GRAPH_MODE programs split into loop kernels (backend.split_program): the fused loops
compile as small Numba functions named by their content, the rest runs as numpy from Python;
results agree with the whole compiled program, and a loop shared by two programs is one kernel."""

from __future__ import annotations

import ast

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, context, diskcache, ops, runtime, tiered


def compiled(fn) -> runtime.Compiled:
    (c,) = [calls[k] for calls in runtime.cache_for(fn).values() for k in list(calls)]
    return c


def network(w1: np.ndarray, w2: np.ndarray):
    def total(x):
        return ops.sum(ops.matmul(ops.tanh(ops.matmul(x, Tensor(w1))), Tensor(w2)))

    def u_x(x):
        return ops.sum(ops.grad(total)(x)[:, 0])

    def laplacian_x(x):
        return ops.grad(u_x)(x)[:, 0] + ops.grad(total)(x)[:, 1] * ops.sin(x[:, 0])

    return laplacian_x


@pytest.fixture
def graph_mode():
    old = context.get_context("mode"), context.get_context("compile_mode")

    def select(compile_mode: str) -> None:
        context.set_context(mode=context.GRAPH_MODE, compile_mode=compile_mode)

    yield select
    context.set_context(mode=old[0], compile_mode=old[1])


def test_a_split_program_agrees_with_the_whole_one_and_shares_kernels(graph_mode, monkeypatch) -> None:
    rng = np.random.default_rng(5)
    w1, w2 = rng.standard_normal((2, 24)), rng.standard_normal((24, 1))
    x = Tensor(rng.standard_normal((64, 2)))
    graph_mode("blocking")
    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "0")  # never split
    whole_fn = network(w1, w2)
    whole = s2s_ad.jit(whole_fn)(x).asnumpy()
    assert not hasattr(compiled(whole_fn), "kernels")

    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "5")
    split_fn = network(w1, w2)
    split = s2s_ad.jit(split_fn)(x).asnumpy()
    c = compiled(split_fn)
    assert c.kernels and all(name in c.source for name in c.kernels)
    # the loops are in the kernels (the main function's only comprehension makes its workspace)
    assert not any(isinstance(n, ast.For) for n in ast.walk(ast.parse(c.main_source)))
    np.testing.assert_allclose(split, whole, rtol=1e-12, atol=1e-14)
    with context_mode(context.PYNATIVE_MODE):
        np.testing.assert_allclose(s2s_ad.jit(network(w1, w2))(x).asnumpy(), split, rtol=1e-12, atol=1e-14)

    # another program with the same loops (other weights, same shapes): the same kernels
    other_fn = network(2 * w1, w2)
    s2s_ad.jit(other_fn)(x)
    assert set(compiled(other_fn).kernels) == set(c.kernels)


def test_a_long_program_of_numpy_calls_only_is_not_compiled(graph_mode, monkeypatch) -> None:
    rng = np.random.default_rng(7)
    ws = [Tensor(rng.standard_normal((6, 6))) for _ in range(4)]
    x = Tensor(rng.standard_normal((3, 6)))

    def chain(x):
        for w in ws:
            x = ops.matmul(x, w)
        return x[:, 1:4]

    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "3")
    graph_mode("background")
    out = s2s_ad.jit(chain)(x).asnumpy()
    c = compiled(chain)
    assert c.kernels == {} and c.tier is None and c.fn.__name__ == c.fname  # plain Python
    assert not hasattr(c.fn, "py_func")  # not a Numba dispatcher
    want = x.asnumpy()
    for w in ws:
        want = want @ w.asnumpy()
    np.testing.assert_allclose(out, want[:, 1:4], rtol=1e-12)


WORKERS = ["llvm", "thread", "process", "2 processes"]


@pytest.mark.parametrize("worker", WORKERS)
def test_a_split_program_compiles_in_the_background(graph_mode, monkeypatch, worker) -> None:
    """Its kernels compiled by LLVM on the worker thread (the default), or by Numba on the
    thread or in one or two compiling processes (``S2S_AD_LOOPS=numba``)."""
    rng = np.random.default_rng(6)
    w1, w2 = rng.standard_normal((2, 20)), rng.standard_normal((20, 1))
    x = Tensor(rng.standard_normal((30 + WORKERS.index(worker), 2)))
    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "5")
    monkeypatch.setenv("S2S_AD_LOOPS", "llvm" if worker == "llvm" else "numba")
    monkeypatch.setenv("S2S_AD_COMPILE_WORKER", "thread" if worker == "thread" else "process")
    monkeypatch.setenv("S2S_AD_COMPILE_PROCESSES", "2" if worker.startswith("2") else "1")
    graph_mode("background")
    fn = network(w1, w2)
    jitted = s2s_ad.jit(fn)
    first = jitted(x).asnumpy()
    c = compiled(fn)
    assert c.tier is not None and c.tier.split is not None
    assert tiered.wait(timeout=600) and c.tier.error is None
    if worker == "llvm":
        assert c.tier.process_ok is None  # no compiling process: the thread compiled them
        g = c.tier.ready.__globals__
        assert all(type(g[k]).__name__ == "builtin_function_or_method" for k in c.tier.split[1])
    elif worker != "thread":
        assert c.tier.process_ok  # the children compiled the kernels into the disk cache
        assert all(diskcache.has_entry(src, name) for name, src in c.tier.split[1].items())
    assert c.call.__globals__["fn"] is c.tier.ready and c.tier.ready.__name__ == c.fname
    np.testing.assert_allclose(jitted(x).asnumpy(), first, rtol=1e-12, atol=1e-14)


class context_mode:
    def __init__(self, mode: int) -> None:
        self.mode = mode

    def __enter__(self) -> None:
        self.old = context.get_context("mode")
        context.set_context(mode=self.mode)

    def __exit__(self, *exc: object) -> None:
        context.set_context(mode=self.old)


def test_kernels_fill_arrays_their_caller_allocates_and_one_operator_stays_numpy(graph_mode, monkeypatch) -> None:
    """A kernel gets the arrays it fills (and its accumulators) from its caller and returns
    only what it computes otherwise; a loop of one operator on operands of its shape (a
    matrix product scaled) is a numpy statement, not a kernel; one that broadcasts (a bias
    added) is a kernel. Results agree with the numpy tier."""
    rng = np.random.default_rng(11)
    w1, w2 = Tensor(rng.standard_normal((3, 8))), Tensor(rng.standard_normal((8, 4)))
    b2 = Tensor(rng.standard_normal(4))
    x = Tensor(rng.standard_normal((50, 3)))

    def net(x):
        h = ops.matmul(x, w1) * 0.5  # one operator: numpy
        z = ops.tanh(ops.matmul(h, w2) + b2) * 2.0  # a kernel
        return ops.sum(z * z, 0), z[:2]  # a reduction fused into the kernel, and z itself

    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "2")
    graph_mode("blocking")
    got = [t.asnumpy() for t in s2s_ad.jit(net)(x)]
    main, kernels = compiled(net).split  # (also there for a program loaded by a warm start)
    assert kernels
    for src in kernels.values():
        assert "np.empty(" not in src and "np.zeros(" not in src
    assert "np.zeros(" in main and "np.empty(" in main
    assert all("tanh" in src for src in kernels.values())  # the scaling is no kernel
    assert " * 0.5" in main
    xa = x.asnumpy()
    z = np.tanh((xa @ w1.asnumpy() * 0.5) @ w2.asnumpy() + b2.asnumpy()) * 2.0
    np.testing.assert_allclose(got[0], (z * z).sum(0), rtol=1e-12)
    np.testing.assert_allclose(got[1], z[:2], rtol=1e-12)
    with context_mode(context.PYNATIVE_MODE):
        for a, b in zip(s2s_ad.jit(net)(x), got):
            np.testing.assert_allclose(a.asnumpy(), b, rtol=1e-12)


def test_the_kernels_are_dealt_out_to_the_compiling_processes() -> None:
    kernels = {f"loop_{k}": "def f():\n" + "    x = 1\n" * (k % 7 + 1) for k in range(23)}
    for parts in (1, 2, 3, 5):
        shares = [tiered.share(kernels, p, parts) for p in range(parts)]
        assert set().union(*shares) == set(kernels) and sum(map(len, shares)) == len(kernels)
        lines = [sum(kernels[k].count("\n") for k in sh) for sh in shares]
        assert max(lines) - min(lines) <= 8  # balanced to within the longest kernel


def test_a_short_program_of_large_matrix_products_is_split(graph_mode) -> None:
    """Numba would only wrap the products (a long compile each): a short program whose time
    goes to them runs its statements from Python, its loops as kernels."""
    rng = np.random.default_rng(3)
    x, w = Tensor(rng.standard_normal((200, 60))), Tensor(rng.standard_normal((60, 50)) / 8)

    def loss(w):
        return ops.sum(ops.tanh(ops.matmul(x, w)) ** 2)

    graph_mode("blocking")
    got = s2s_ad.grad(loss)(w).asnumpy()
    (c,) = [calls[k] for calls in runtime.cache_for(loss).values() for k in list(calls)]
    assert c.split is not None and "np.dot(" in c.split[0] and c.split[1]
    t = np.tanh(x.asnumpy() @ w.asnumpy())
    np.testing.assert_allclose(got, x.asnumpy().T @ (2 * t * (1 - t * t)), rtol=1e-12)

    def small(w):  # the same on 3 rows: its statements would cost more than its products
        return ops.sum(ops.tanh(ops.matmul(x[:3], w)) ** 2)

    s2s_ad.grad(small)(w)
    (c,) = [calls[k] for calls in runtime.cache_for(small).values() for k in list(calls)]
    assert c.split is None


def test_a_split_programs_statements_are_numpys(graph_mode, monkeypatch) -> None:
    """The statements between the kernels run in numpy, so they are printed for numpy: a
    maximum over an axis folds slices with ``out=`` (numpy 2.4 deprecates a positional out)."""
    import warnings

    rng = np.random.default_rng(12)
    x = Tensor(rng.standard_normal((30, 8)))

    def f(x):
        return ops.tanh(x * 2.0 + 1.0).max(axis=0) * 3.0

    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "2")
    graph_mode("blocking")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = s2s_ad.jit(f)(x).asnumpy()
    main, kernels = compiled(f).split
    assert "out=" in main and kernels
    np.testing.assert_allclose(got, np.tanh(x.asnumpy() * 2.0 + 1.0).max(axis=0) * 3.0, rtol=1e-12)


def _elementwise(x, y, b):
    u = ops.tanh(x) * y - x * x  # over every element of x and y: flat
    v = ops.sin(u) + b  # b broadcast along the rows: a loop over rows and columns
    return ops.sum(u * ops.transpose(y, (1, 0)).T) + ops.sum(v * v)


def test_a_kernel_over_every_element_runs_over_flat_views(graph_mode, monkeypatch) -> None:
    """A fused loop that reads and writes C-contiguous arrays element for element, over its
    whole shape, is a kernel with one index over the arrays' flat views (``ravel()``, passed
    by the program); a loop with a broadcast operand keeps its nest. Both agree with the
    whole program and with numpy."""
    rng = np.random.default_rng(11)
    x, y, b = (Tensor(rng.standard_normal(s)) for s in ((40, 7), (40, 7), (7,)))
    graph_mode("blocking")
    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "0")
    whole = [g.asnumpy() for g in s2s_ad.grad(_elementwise, grad_position=(0, 1, 2))(x, y, b)]

    def f(x, y, b):
        return _elementwise(x, y, b)

    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "2")
    split = [g.asnumpy() for g in s2s_ad.grad(f, grad_position=(0, 1, 2))(x, y, b)]
    c = compiled(f)
    flat = [k for k in c.kernels.values() if "range(280)" in k]
    nested = [k for k in c.kernels.values() if "range(40)" in k and "range(7)" in k]
    assert flat and nested
    assert all("[v0]" in k and ", " not in k.split("range(280)")[1].split("=")[0] for k in flat)
    assert ".ravel()" in c.main_source
    for a, w in zip(split, whole):
        np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-14)
    with context_mode(context.PYNATIVE_MODE):
        ref = [g.asnumpy() for g in s2s_ad.grad(_elementwise, grad_position=(0, 1, 2))(x, y, b)]
    for a, w in zip(split, ref):
        np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-14)


def _tanh_mix(x, y):
    return ops.sum(ops.tanh(x) * y - x * x)


def _tanh_mix_again(x, y):  # another program with the same loops: the same kernels
    return ops.sum(ops.tanh(x) * y - x * x)


def test_a_kernel_loads_new_signatures_after_its_first_call(graph_mode, monkeypatch) -> None:
    """After its first call a split program calls its kernels' dispatchers directly; a
    kernel shared with another program meets a signature that program compiled into the
    disk cache (read-only arrays) and loads it, with no warning and the same results."""
    import gc
    import warnings

    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((30, 4))
    frozen = x.copy()
    frozen.flags.writeable = False
    graph_mode("blocking")
    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "2")
    want = [(1 - np.tanh(x) ** 2) * y - 2 * x, np.tanh(x)]
    g = s2s_ad.grad(_tanh_mix, grad_position=(0, 1))
    h = s2s_ad.grad(_tanh_mix_again, grad_position=(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        results = [g(x, y) for _ in range(2)] + [h(frozen, y) for _ in range(2)]
        gc.collect()
        results.append(g(frozen, y))  # the signature h's kernels compiled into the cache
    for got in results:
        for a, w in zip(got, want):
            np.testing.assert_allclose(a.asnumpy(), w, rtol=1e-12, atol=1e-14)


def _with_special(x):
    return ops.sum(ops.tanh(x) * x) * ops.erf(ops.sum(x) * 0.1)


def test_a_split_programs_special_functions_are_numpys(graph_mode, monkeypatch) -> None:
    """A special function (``erf``) outside the fused loops of a split program runs as
    numpy's (scipy.special's), since only the kernels are compiled by Numba."""
    rng = np.random.default_rng(13)
    x = Tensor(rng.standard_normal((20, 3)))
    graph_mode("blocking")
    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "2")
    got = s2s_ad.grad(_with_special)(x).asnumpy()
    assert compiled(_with_special).kernels
    with context_mode(context.PYNATIVE_MODE):
        want = s2s_ad.grad(_with_special)(x).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
