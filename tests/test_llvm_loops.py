"""Fused-loop kernels compiled through LLVM directly (s2s_ad.llvmloops): every construct of the
kernel language gives Numba's result for the same source, at the types and values (inf, nan,
-0.0, out-of-range arguments) that take each path; arguments of other types go to a new
specialisation; kernels outside the language are Numba's; the machine code is kept in the
disk cache and a damaged entry is compiled again."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, backend, context, diskcache, llvmloops, ops, runtime

pytestmark = pytest.mark.skipif(not llvmloops.enabled(), reason="llvmlite or numpy's object layout unavailable")

# (kernel source, argument factory by float dtype); the last argument of each is its output
SPECIAL = [0.0, -0.0, 1.5, -2.25, 1e-30, 3e4, np.inf, -np.inf, np.nan, 0.7, -0.3, 12.0, 2e6]


def values(dt, n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 3
    x[: len(SPECIAL)] = SPECIAL
    return x.astype(dt)


KERNELS = {
    "arithmetic": """
def loop_arith(a0, a1, a2):
    for v0 in range(64):
        v1 = a0[v0]
        v2 = a1[v0]
        v3 = (v1 + v2) * v1 - v2 / np.float32(3.0) + -v1
        a2[v0] = v3 / v2 + v1 ** 2 - v2 ** 3 + np.float32(1.0) / v1 ** 4 + v2 ** 0 + v1 ** 1.5 + vm.square(v2)
""",
    "math": """
def loop_math(a0, a1, a2):
    for v0 in range(64):
        v1 = a0[v0]
        v2 = a1[v0]
        a2[v0] = vm.tanh(v1) + vm.exp(v2 * np.float32(0.1)) + vm.log(vm.abs(v1)) + vm.sqrt(v2) + vm.expm1(v1) * vm.arctan2(v1, v2)
""",
    "sincos": """
def loop_sincos(a0, a1, a2):
    out_of_range = False
    for v0 in range(64):
        v1 = a0[v0]
        v2 = vm.sin(v1) + vm.cos(a1[v0])
        a2[v0] = v2
        out_of_range |= v2 != v2
    if out_of_range:
        for v0 in range(64):
            a2[v0] = np.sin(a0[v0]) + np.cos(a1[v0])
""",
    "select": """
def loop_select(a0, a1, a2):
    for v0 in range(64):
        v1 = a0[v0]
        v2 = a1[v0]
        v3 = vm.maximum(v1, v2) - vm.minimum(v2, v1)
        a2[v0] = vm.where(v1 > v2, v3, v1 * v2) + (v1 if v1 <= v2 and v2 != np.float32(0.0) else v2) + vm.erf(v1)
        a2[v0] += vm.sign(v1) * vm.sign(v2 - v2) + vm.sign(-v1)
""",
    "broadcast_2d": """
def loop_bcast(a0, a1, a2):
    for v0 in range(8):
        for v1 in range(8):
            v2 = a0[v0, v1]
            v3 = a1[0, v1]
            a2[v0, v1] = v2 * v3 + np.float32(1.0)
""",
    "reduction": """
def loop_reduce(a0, a1, a2):
    for v0 in range(8):
        for v1 in range(8):
            v2 = a0[v0, v1] * a1[v1, v0]
            a2[v1] += v2
""",
}


ULP = {np.float32: 4 * float(np.finfo(np.float32).eps), np.float64: 4 * float(np.finfo(np.float64).eps)}


def numba(src: str, name: str):
    """What makes Numba's compiled kernel for ``src`` (as ``backend.compile_split`` passes)."""
    return lambda: backend.compile_source(src, name, "numba")


def args_for(name: str, dt) -> list[np.ndarray]:
    if name in ("broadcast_2d", "reduction"):
        a = values(dt, 64, 1).reshape(8, 8)
        b = values(dt, 64, 2).reshape(8, 8)
        if name == "broadcast_2d":
            return [a, b[:1].copy(), np.zeros((8, 8), dt)]
        return [a, b.T, np.zeros(8, dt)]  # a transpose: a strided (non-contiguous) argument
    return [values(dt, 64, 1), values(dt, 64, 2)[::-1].copy(), np.zeros(64, dt)]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(KERNELS))
def test_a_kernel_computes_numbas_result(name: str, dt) -> None:
    src = KERNELS[name].strip() + "\n"
    fname = src.split("(")[0].split()[-1]
    k = llvmloops.Kernel(src, fname, numba(src, fname))
    ours = args_for(name, dt)
    fn = k.function(tuple(ours))
    assert type(fn).__name__ == "builtin_function_or_method", fn  # compiled here, not by Numba
    with np.errstate(all="ignore"):
        fn(*ours)
        theirs = args_for(name, dt)
        backend.compile_source(src, fname, "numba")(*theirs)
    # the same operations in the same order (the C library's functions and vecmath's
    # included): the same values but for rounding, nan where Numba has nan
    np.testing.assert_allclose(ours[-1], theirs[-1], rtol=ULP[dt], atol=0)


def test_other_argument_types_get_their_own_machine_code() -> None:
    src = "def loop_twice(a0, a1):\n    for v0 in range(6):\n        a1[v0] = a0[v0] * 2.0\n"
    k = llvmloops.Kernel(src, "loop_twice", numba(src, "loop_twice"))
    x = np.arange(12.0)
    out = np.zeros(6)
    fn = k.function((x[:6], out))
    fn(x[:6], out)
    np.testing.assert_array_equal(out, x[:6] * 2)
    # a strided view, float32, int64 and a bool array: the entry refuses them, and the kernel
    # compiles again for each (the results are those of the types met)
    fn(x[::2], out)
    np.testing.assert_array_equal(out, x[::2] * 2)
    out32 = np.zeros(6, np.float32)
    fn(x[:6].astype(np.float32), out32)
    np.testing.assert_array_equal(out32, (x[:6] * 2).astype(np.float32))
    ints = np.zeros(6, np.int64)
    fn(np.arange(6), ints)
    np.testing.assert_array_equal(ints, np.arange(6) * 2)
    assert len(k.specs) == 4
    # a Python float, and one argument for two: the entry refuses it, and Numba's kernel
    # (for arguments that are not arrays) raises its TypeError
    with pytest.raises(TypeError):
        fn(3.0)


def test_a_kernel_outside_the_language_is_numbas() -> None:
    src = "def loop_floor(a0, a1):\n    for v0 in range(5):\n        a1[v0] = a0[v0] // 2\n"
    k = llvmloops.Kernel(src, "loop_floor", numba(src, "loop_floor"))
    x, out = np.arange(5), np.zeros(5, np.int64)
    fn = k.function((x, out))
    assert type(fn).__name__ != "builtin_function_or_method"
    fn(x, out)
    np.testing.assert_array_equal(out, x // 2)


def test_machine_code_is_kept_on_disk_and_a_damaged_entry_is_compiled_again(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("S2S_AD_CACHE_DIR", str(tmp_path))
    src = "def loop_cached(a0, a1):\n    for v0 in range(4):\n        a1[v0] = vm.tanh(a0[v0])\n"
    x, out = np.linspace(-1, 1, 4), np.zeros(4)
    llvmloops.Kernel(src, "loop_cached", numba(src, "loop_cached")).function((x, out))(x, out)
    (entry,) = (tmp_path / "__pycache__").glob("loop_cached_*.llo")
    np.testing.assert_allclose(out, np.tanh(x), rtol=1e-15)

    compiled: list[str] = []
    machine = llvmloops.machine()
    real = machine.compile
    monkeypatch.setattr(machine, "compile", lambda text: compiled.append(text) or real(text))
    out[:] = 0
    llvmloops.Kernel(src, "loop_cached", numba(src, "loop_cached")).function((x, out))(
        x, out
    )  # loaded: nothing compiled
    assert compiled == [] and np.allclose(out, np.tanh(x))

    entry.write_bytes(entry.read_bytes()[:-7] + b"garbage")
    out[:] = 0
    llvmloops.Kernel(src, "loop_cached", numba(src, "loop_cached")).function((x, out))(x, out)
    assert len(compiled) == 1 and np.allclose(out, np.tanh(x))
    # the cache counts its size, and clearing it deletes it
    assert diskcache.info()["bytes"] >= entry.stat().st_size > 0
    diskcache.clear()
    assert not entry.exists()


def split_gradient(dt, monkeypatch, loops: str):
    """The gradient of a tanh network's loss, forced into a split program (its kernels: tanh,
    exp, sin of float ``dt``), compiled with kernels by ``loops``; its results and program."""
    rng = np.random.default_rng(3)
    w = Tensor(rng.standard_normal((3, 16)).astype(dt))
    x = Tensor(rng.standard_normal((40, 3)).astype(dt))

    def loss(x, w):
        h = ops.tanh(ops.matmul(x, w))
        return ops.sum(h * h * ops.exp(-h)) + ops.sum(ops.sin(x) ** 2)

    def both(x, w):
        return ops.grad(loss, grad_position=(0, 1))(x, w)

    old = context.get_context("mode"), context.get_context("compile_mode")
    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "1")
    monkeypatch.setenv("S2S_AD_LOOPS", loops)
    try:
        context.set_context(mode=context.GRAPH_MODE, compile_mode="blocking")
        gx, gw = s2s_ad.jit(both)(x, w)
        (c,) = [calls[k] for calls in runtime.cache_for(both).values() for k in list(calls)]
        context.set_context(mode=context.PYNATIVE_MODE)
        px, pw = both(x, w)
    finally:
        context.set_context(mode=old[0], compile_mode=old[1])
    return (gx.asnumpy(), gw.asnumpy()), (px.asnumpy(), pw.asnumpy()), c


def test_a_split_program_runs_llvm_kernels_and_agrees_with_pynative_and_numba(monkeypatch) -> None:
    graph, pynative, c = split_gradient(np.float64, monkeypatch, "llvm")
    assert c.kernels
    g = c.fn.__globals__
    assert all(type(g[k]).__name__ == "builtin_function_or_method" for k in c.kernels)
    for a, b in zip(graph, pynative, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # float32 (vecmath's float32 functions): the values of the kernels Numba compiles
    ours, _, _ = split_gradient(np.float32, monkeypatch, "llvm")
    theirs, _, c = split_gradient(np.float32, monkeypatch, "numba")
    assert c.split and all(type(c.fn.__globals__[k]).__name__ == "CPUDispatcher" for k in c.split[1])
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=ULP[np.float32], atol=1e-7)


def test_numba_compiles_the_kernels_when_asked(monkeypatch) -> None:
    monkeypatch.setenv("S2S_AD_LOOPS", "numba")
    assert not llvmloops.enabled()
    src = "def loop_numba(a0, a1):\n    for v0 in range(3):\n        a1[v0] = a0[v0] + 1.0\n"
    main = "def main(x):\n    out = np.empty(3)\n    loop_numba(x, out)\n    return out\n"
    fn = backend.compile_split(main, "main", {"loop_numba": src})
    np.testing.assert_array_equal(fn(np.arange(3.0)), [1.0, 2.0, 3.0])
    assert type(fn.__globals__["loop_numba"]).__name__ == "CPUDispatcher"


def test_a_kernel_returns_its_scalar_results_as_numba_does() -> None:
    """A loop that finishes reductions returns them (a tuple of Python scalars, as Numba's)."""
    src = (
        "def loop_sums(a0, a1):\n"
        "    v0 = np.float32(0.0)\n"
        "    v1 = 0.0\n"
        "    v2 = 0\n"
        "    v3 = False\n"
        "    for v4 in range(7):\n"
        "        v5 = a0[v4]\n"
        "        a1[v4] = v5 * v5\n"
        "        v0 = vm.sum_add(v0, v5)\n"
        "        v1 += v5 * 2.0\n"
        "        v2 += 1\n"
        "        v3 = v3 or v5 > np.float32(2.5)\n"
        "    return (v0, v1, v2, v3)\n"
    )
    x = np.linspace(-1, 3, 7).astype(np.float32)
    ours, theirs = np.zeros(7, np.float32), np.zeros(7, np.float32)
    fn = llvmloops.Kernel(src, "loop_sums", numba(src, "loop_sums")).function((x, ours))
    assert type(fn).__name__ == "builtin_function_or_method"
    got = fn(x, ours)
    want = backend.compile_source(src, "loop_sums", "numba")(x, theirs)
    assert [type(v) for v in got] == [type(v) for v in want] == [float, float, int, bool]
    np.testing.assert_allclose(got[:2], want[:2], rtol=1e-6)
    assert got[2:] == want[2:] == (7, True)
    np.testing.assert_array_equal(ours, theirs)


def test_a_negative_index_counts_from_the_end_as_numbas() -> None:
    src = (
        "def loop_shift(a0, a1):\n"
        "    for v0 in range(5):\n"
        "        for v1 in range(3):\n"
        "            a1[v0, v1] = a0[v0 - 1, -1] + a0[4 - v0, v1 - 2]\n"
    )
    x = np.arange(15.0).reshape(5, 3)
    ours, theirs = np.zeros((5, 3)), np.zeros((5, 3))
    fn = llvmloops.Kernel(src, "loop_shift", numba(src, "loop_shift")).function((x, ours))
    assert type(fn).__name__ == "builtin_function_or_method"
    fn(x, ours)
    backend.compile_source(src, "loop_shift", "numba")(x, theirs)
    np.testing.assert_array_equal(ours, theirs)
