"""Warm starts: a call whose program is in the disk cache runs it without tracing, and every
change that could change the program (the source, a closure constant, a global it reads, a
dependency's version) traces it again."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Parameter, Tensor, backend, context, nn, ops, runtime, tiered, warmstart
from s2s_ad.lru import ProgramCache
from s2s_ad.runtime import cache_for

ROOT = Path(__file__).resolve().parents[1]

MODULE = """
import numpy as np
from s2s_ad import ops

SCALE = 3.0


def f(x):
    return (ops.sin(x) * SCALE).sum()


def make(c):
    def g(x):
        return (ops.exp(x) * c).sum()

    return g
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A disk cache of this test's own."""
    monkeypatch.setenv("S2S_AD_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def traces(monkeypatch):
    """The number of calls traced (not loaded by a warm start) so far."""
    count = [0]
    stage = runtime.stage

    def counting(*args, **kwargs):
        count[0] += 1
        return stage(*args, **kwargs)

    monkeypatch.setattr(runtime, "stage", counting)
    return count


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module written to a file (edit it with ``write``, reload it with ``load``)."""
    directory = tmp_path / "src"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    name = f"warm_user_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    path = directory / f"{name}.py"

    class User:
        def write(self, text: str) -> None:
            path.write_text(text)
            st = path.stat()  # a new time even within the file system's time resolution
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

        def load(self):
            importlib.invalidate_caches()
            if name in sys.modules:
                return importlib.reload(sys.modules[name])
            return importlib.import_module(name)

    yield User()
    sys.modules.pop(name, None)


def _forget(fn) -> None:
    """Drop the in-memory programs of ``fn``, as a new process starts without them."""
    cache_for(fn).clear()


X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)


def test_a_second_call_loads_without_tracing(mode, cache, traces, user_module):
    user_module.write(MODULE)
    m = user_module.load()
    g1 = s2s_ad.grad(m.f)(Tensor(X)).asnumpy()
    assert traces[0] == 1
    _forget(m.f)
    g2 = s2s_ad.grad(m.f)(Tensor(X)).asnumpy()
    assert traces[0] == 1  # loaded, not traced
    np.testing.assert_allclose(g2, g1, rtol=1e-6)
    np.testing.assert_allclose(g2, 3 * np.cos(X), rtol=1e-6)
    # another shape is another program
    _forget(m.f)
    s2s_ad.grad(m.f)(Tensor(X[0]))
    assert traces[0] == 2


def test_editing_the_source_traces_again(mode, cache, traces, user_module):
    user_module.write(MODULE)
    m = user_module.load()
    s2s_ad.grad(m.f)(Tensor(X))
    user_module.write(MODULE.replace("ops.sin(x) * SCALE", "ops.cos(x) * SCALE"))
    m = user_module.load()
    g = s2s_ad.grad(m.f)(Tensor(X)).asnumpy()
    assert traces[0] == 2
    np.testing.assert_allclose(g, -3 * np.sin(X), rtol=1e-6)


def test_a_global_it_reads_is_part_of_the_key(mode, cache, traces, user_module):
    user_module.write(MODULE)
    m = user_module.load()
    s2s_ad.grad(m.f)(Tensor(X))
    m.SCALE = 5.0  # the file is unchanged: the value read is compared
    _forget(m.f)
    g = s2s_ad.grad(m.f)(Tensor(X)).asnumpy()
    assert traces[0] == 2
    np.testing.assert_allclose(g, 5 * np.cos(X), rtol=1e-6)
    # the record written in place of the one that no longer held loads in the next process
    _forget(m.f)
    g = s2s_ad.grad(m.f)(Tensor(X)).asnumpy()
    assert traces[0] == 2
    np.testing.assert_allclose(g, 5 * np.cos(X), rtol=1e-6)
    m.SCALE = 3.0  # back to the first value: its program loads
    _forget(m.f)
    g = s2s_ad.grad(m.f)(Tensor(X)).asnumpy()
    np.testing.assert_allclose(g, 3 * np.cos(X), rtol=1e-6)


def test_a_closure_constant_is_part_of_the_key(mode, cache, traces, user_module):
    user_module.write(MODULE)
    m = user_module.load()
    g2, g3 = m.make(2.0), m.make(3.0)  # one code, two constants
    np.testing.assert_allclose(s2s_ad.grad(g2)(Tensor(X)).asnumpy(), 2 * np.exp(X), rtol=1e-6)
    np.testing.assert_allclose(s2s_ad.grad(g3)(Tensor(X)).asnumpy(), 3 * np.exp(X), rtol=1e-6)
    assert traces[0] == 2
    again = m.make(2.0)
    np.testing.assert_allclose(s2s_ad.grad(again)(Tensor(X)).asnumpy(), 2 * np.exp(X), rtol=1e-6)
    assert traces[0] == 2


def test_a_dependency_version_is_part_of_the_key(mode, cache, traces, user_module, monkeypatch):
    user_module.write(MODULE)
    m = user_module.load()
    s2s_ad.grad(m.f)(Tensor(X))
    _forget(m.f)
    monkeypatch.setattr(warmstart, "_VERSIONS", {})
    monkeypatch.setattr(np, "__version__", np.__version__ + ".post1")
    s2s_ad.grad(m.f)(Tensor(X))
    assert traces[0] == 2
    _forget(m.f)
    monkeypatch.setattr(warmstart, "_VERSIONS", {})
    monkeypatch.setattr(warmstart, "__version__", "0.0.0-other")
    s2s_ad.grad(m.f)(Tensor(X))
    assert traces[0] == 3


class _Net(nn.Cell):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale
        self.w = Parameter(Tensor(np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]], np.float32)), name="w")

    def construct(self, x):
        return ops.tanh(ops.matmul(x, self.w) * self.scale)


def test_cells_weights_and_parameters(mode, cache, traces):
    x = Tensor(X)
    net = _Net(2.0)
    grad = ops.GradOperation(get_by_list=True)
    weights = s2s_ad.ParameterTuple(net.trainable_params())
    (g1,) = grad(net, weights)(x)
    _forget(net)
    net2 = _Net(2.0)  # another Cell, described alike: its own Parameter is read
    net2.w.set_data(Tensor(net.w.asnumpy() * 0.5))
    (g2,) = grad(net2, s2s_ad.ParameterTuple(net2.trainable_params()))(x)
    assert traces[0] == 1
    w = net2.w.asnumpy()
    t = np.tanh(X @ w * 2.0)
    np.testing.assert_allclose(g2.asnumpy(), X.T @ ((1 - t**2) * 2.0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(g1.asnumpy(), g2.asnumpy())
    # a Cell attribute is part of the key
    (g3,) = grad(_Net(3.0), weights)(x)
    assert traces[0] == 2


class _Opaque:
    __slots__ = ("v",)

    def __init__(self, v: float):
        self.v = v


class _OpaqueNet(nn.Cell):
    def __init__(self, v: float):
        super().__init__()
        self.holder = _Opaque(v)
        self.v = v

    def construct(self, x):
        return (x * self.v).sum()


def test_what_cannot_be_described_is_traced_every_time(mode, cache, traces):
    s2s_ad.grad(_OpaqueNet(2.0))(Tensor(X))
    assert not any(p.suffix == ".warm" for p in cache.rglob("*"))


WARM_PROCESS = """
import sys, time
import numpy as np
import s2s_ad
from s2s_ad import Parameter, ParameterTuple, Tensor, nn, ops


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.z = Parameter(Tensor(np.array([1.5], np.float32)), name="z")

    def construct(self, x, y):
        return ops.matmul(ops.sin(x) * self.z, y)


net = Net()
x = Tensor(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
y = Tensor(np.linspace(0, 2, 9, dtype=np.float32).reshape(3, 3))
(g,) = ops.GradOperation(get_by_list=True)(net, ParameterTuple(net.trainable_params()))(x, y)
expected = (np.sin(x.asnumpy()) @ y.asnumpy()).sum()
assert np.allclose(g.asnumpy(), [expected], rtol=1e-5), (g, expected)
print("sympy" in sys.modules)
"""


def test_a_fresh_process_runs_the_cached_machine_code_without_sympy(tmp_path):
    (tmp_path / "main.py").write_text(textwrap.dedent(WARM_PROCESS))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "S2S_AD_CACHE_DIR": str(tmp_path / "cache")}

    def run() -> str:
        r = subprocess.run([sys.executable, str(tmp_path / "main.py")], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    assert run() == "True"  # compiled: SymPy derived the derivative
    assert run() == "False"  # loaded: no SymPy, no trace


def test_a_hessian_loads_without_tracing_again(mode, cache, traces, user_module, monkeypatch):
    from s2s_ad.jacobians import JacobianFunction

    user_module.write(MODULE)
    m = user_module.load()
    x = Tensor(X[0])
    first = s2s_ad.hessian(m.f)(x).asnumpy()
    np.testing.assert_allclose(first, np.diag(-3 * np.sin(X[0])), rtol=1e-6, atol=1e-7)
    assert traces[0] == 1
    _forget(m.f)

    def no_trace(*args, **kwargs):
        raise AssertionError("the Hessian was traced again")

    monkeypatch.setattr(JacobianFunction, "__s2s_stage__", no_trace)
    again = s2s_ad.hessian(m.f)(x).asnumpy()
    assert traces[0] == 1
    np.testing.assert_allclose(again, first)


def test_a_split_program_loads_without_tracing(cache, traces, user_module, monkeypatch):
    """A program split into loop kernels (``S2S_AD_SPLIT_LINES``) has a record too: its main
    (Python) source and its kernels load from the disk cache."""
    monkeypatch.setenv("S2S_AD_SPLIT_LINES", "3")
    context.set_context(mode=context.GRAPH_MODE)
    user_module.write(MODULE)
    m = user_module.load()
    fn = s2s_ad.grad(m.f)
    g1 = fn(Tensor(X)).asnumpy()
    (prog,) = [calls[k] for calls in cache_for(m.f).values() for k in calls]
    assert prog.split is not None and prog.split[1]  # kernels
    _forget(m.f)
    g2 = s2s_ad.grad(m.f)(Tensor(X)).asnumpy()
    assert traces[0] == 1
    np.testing.assert_allclose(g2, g1, rtol=1e-6)
    np.testing.assert_allclose(g2, 3 * np.cos(X), rtol=1e-6)


@pytest.mark.parametrize("split", ["0", "3"])
def test_a_warm_start_in_background_mode_answers_from_numpy_then_loads(cache, traces, user_module, monkeypatch, split):
    """In background mode a warm start runs the record's numpy code first and a worker loads
    the machine code (no compiling process: it is on disk); the results agree."""
    monkeypatch.setenv("S2S_AD_SPLIT_LINES", split)
    # functions compiled by earlier tests (kept in memory by source) would not be on this disk
    monkeypatch.setattr(backend, "_CACHE", ProgramCache())
    context.set_context(mode=context.GRAPH_MODE, compile_mode="blocking")
    # (a program of its own: an entry module loaded by an earlier test stays where it was)
    user_module.write(MODULE.replace("ops.sin(x) * SCALE", "ops.sin(x) * SCALE + ops.cos(x)"))
    m = user_module.load()
    g1 = s2s_ad.grad(m.f)(Tensor(X)).asnumpy()
    np.testing.assert_allclose(g1, 3 * np.cos(X) - np.sin(X), rtol=1e-5)
    _forget(m.f)
    context.set_context(compile_mode="background")
    fn = s2s_ad.grad(m.f)
    g2 = fn(Tensor(X)).asnumpy()
    assert traces[0] == 1
    (prog,) = [calls[k] for calls in cache_for(m.f).values() for k in calls]
    assert prog.program is None and prog.tier is not None and prog.tier.warm
    assert tiered.wait(timeout=600)
    assert prog.tier.error is None and prog.tier.process_ok is None  # loaded, not compiled by a process
    assert prog.call.__globals__["fn"] is prog.tier.ready
    g3 = fn(Tensor(X)).asnumpy()
    for g in (g2, g3):
        np.testing.assert_allclose(g, g1, rtol=1e-6)


WARM_BACKGROUND = """
import sys
import numpy as np
import s2s_ad
from s2s_ad import Parameter, ParameterTuple, Tensor, nn, ops, tiered


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.z = Parameter(Tensor(np.array([1.5], np.float32)), name="z")

    def construct(self, x, y):
        return ops.matmul(ops.sin(x) * self.z, y)


net = Net()
x = Tensor(np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
y = Tensor(np.linspace(0, 2, 9, dtype=np.float32).reshape(3, 3))
grad = ops.GradOperation(get_by_list=True)(net, ParameterTuple(net.trainable_params()))
expected = (np.sin(x.asnumpy()) @ y.asnumpy()).sum()
(g,) = grad(x, y)
assert np.allclose(g.asnumpy(), [expected], rtol=1e-5), (g, expected)
first = sorted(m for m in ("numba", "sympy") if m in sys.modules)
assert tiered.wait(timeout=600)
(g,) = grad(x, y)
assert np.allclose(g.asnumpy(), [expected], rtol=1e-5), (g, expected)
print(",".join(first) or "-")
"""


def test_a_fresh_process_in_background_mode_answers_without_numba(tmp_path):
    """The default (background) mode writes a record at the first compile; the next process
    answers its first call with neither SymPy nor Numba imported."""
    (tmp_path / "main.py").write_text(textwrap.dedent(WARM_BACKGROUND))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "S2S_AD_CACHE_DIR": str(tmp_path / "cache"),
        "S2S_AD_COMPILE": "background",
    }

    def run() -> str:
        r = subprocess.run([sys.executable, str(tmp_path / "main.py")], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    assert run() == "sympy"  # traced; answered from numpy while a process compiled
    assert run() == "-"  # loaded: numpy code first, the machine code loaded afterwards


def _local_net(c: float) -> nn.Cell:
    def helper(x):
        return ops.sin(x) * c

    class Local(nn.Cell):
        def construct(self, x):
            return helper(x).sum()

    return Local()


def test_a_cell_class_defined_in_a_function_keys_its_methods_closures(mode, cache, traces):
    """``construct`` calls a local function of the function that defined the class: its
    closure (here the constant ``c``) is part of the key."""
    g = s2s_ad.grad(_local_net(2.0))(Tensor(X)).asnumpy()
    np.testing.assert_allclose(g, 2 * np.cos(X), rtol=1e-6)
    g = s2s_ad.grad(_local_net(2.0))(Tensor(X)).asnumpy()
    assert traces[0] == 1  # another Cell, described alike: loaded
    np.testing.assert_allclose(g, 2 * np.cos(X), rtol=1e-6)
    g = s2s_ad.grad(_local_net(3.0))(Tensor(X)).asnumpy()
    assert traces[0] == 2
    np.testing.assert_allclose(g, 3 * np.cos(X), rtol=1e-6)
