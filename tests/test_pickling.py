"""Transformed functions, Cells and decorated functions pickle (with pickle and cloudpickle),
called or not, as their user function and the transform's options: never compiled state. They
unpickle in this process and in another one (which compiles again or loads the disk cache)."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest

import s2s_ad
from s2s_ad import Parameter, ParameterTuple, Tensor, diskcache, nn, ops
from s2s_ad.api import JvpFunction, vjp_function
from s2s_ad.jacobians import HvpFunction

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/, for printed
from printed import printed_equal  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------- user code


def energy(x, y):
    return (ops.sin(x) * y * y + x * x).sum()


def field(x):
    return ops.sin(x) * x + ops.exp(x * 0.5)


def scalar(x):
    return (ops.cos(x) * x * x).sum()


@s2s_ad.jit
def jitted(x, y):
    return ops.tanh(x) * y + 1.0


@s2s_ad.grad(grad_position=(0, 1))
def grad_decorated(x, y):
    return (x * y * y + ops.sin(x)).sum()


@s2s_ad.value_and_grad
def vag_decorated(x):
    return (ops.exp(x) * x).sum()


class Model(nn.Cell):
    def __init__(self) -> None:
        super().__init__()
        self.w = Parameter(Tensor(np.linspace(0.5, 2.0, 6, dtype=np.float32).reshape(2, 3)), name="w")
        self.b = Parameter(Tensor(np.array([0.1, -0.2, 0.3], np.float32)), name="b")

    @s2s_ad.jit
    def construct(self, x):
        return (ops.tanh(x * self.w + self.b) * x).sum()

    @s2s_ad.jit
    def features(self, x):
        return ops.sin(x * self.w)


def local_model() -> Any:
    """A Cell of a class defined in a function: cloudpickle pickles the class by value."""

    class Local(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Model()
            self.k = Parameter(Tensor(np.float32(0.5)), name="k")

        def construct(self, x):
            return self.inner(x) * self.k + helper(x)

    def helper(x):
        return (ops.exp(x * 0.1)).sum()

    return Local()


def scaled_gradient(scale: float) -> Any:
    """A gradient of a closure: cloudpickle pickles it by value."""

    def loss(x):
        return (x * x * scale + ops.sin(x)).sum()

    return s2s_ad.grad(loss)


X = Tensor(np.array([[0.3, -1.2, 0.7], [1.5, 0.2, -0.4]], np.float32))
Y = Tensor(np.array([[1.1, 0.4, -0.9], [0.6, 2.0, 0.8]], np.float32))


def cases() -> list[tuple[str, Any, tuple, bool]]:
    """``(name, callable, args, by_reference)``, made afresh (not yet called). Those not
    ``by_reference`` live in a closure, which only cloudpickle can pickle."""
    model = Model()
    weights = ParameterTuple(model.trainable_params())
    local = local_model()
    return [
        ("grad", s2s_ad.grad(energy), (X, Y), True),
        ("grad positions", s2s_ad.grad(energy, grad_position=(0, 1)), (X, Y), True),
        ("value_and_grad", s2s_ad.value_and_grad(energy, 1), (X, Y), True),
        ("ops.grad", ops.grad(scalar), (X,), True),
        ("grad of grad", s2s_ad.grad(s2s_ad.grad(scalar)), (Tensor(np.float32(0.7)),), True),
        ("jit", s2s_ad.jit(field), (X,), True),
        ("jit target", s2s_ad.jit(field, target="cpu"), (X,), True),
        ("@jit", jitted, (X, Y), True),
        ("@grad", grad_decorated, (X, Y), True),
        ("@value_and_grad", vag_decorated, (X,), True),
        ("JvpFunction", JvpFunction(field), (X, Y), True),
        ("vjp function", vjp_function(field), (X, Y), True),
        ("jvp", s2s_ad.jvp, (field, X, Y), True),
        ("vjp", s2s_ad.vjp, (field, X, Y), True),
        ("jacfwd", s2s_ad.jacfwd(field), (X[0],), True),
        ("jacrev", s2s_ad.jacrev(energy, argnums=(0, 1)), (X[0], Y[0]), True),
        ("hessian", s2s_ad.hessian(scalar), (X[1],), True),
        ("HvpFunction", HvpFunction(scalar), (X, Y), True),
        ("hvp", s2s_ad.hvp, (scalar, X, Y), True),
        ("Cell", model, (X,), True),
        ("Cell method", model.features, (X,), True),
        ("GradOperation", ops.GradOperation(get_all=True, get_by_list=True)(model, weights), (X,), True),
        ("GradOperation default", ops.GradOperation()(energy), (X, Y), True),
        ("ForwardValueAndGrad", nn.ForwardValueAndGrad(model, weights, get_by_list=True), (X,), True),
        ("nn.Jvp", nn.Jvp(model), (X, Y), True),
        ("nn.Vjp", nn.Vjp(model), (X, Tensor(np.float32(2.0))), True),
        ("closure", scaled_gradient(1.5), (X,), False),
        ("local Cell", local_model(), (X,), False),
        ("grad of a local Cell", s2s_ad.grad(local, 0, local.trainable_params()), (X,), False),
    ]


def as_arrays(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return tuple(as_arrays(x) for x in v)
    return np.asarray(v.asnumpy() if isinstance(v, Tensor) else v)


def assert_close(got: Any, want: Any, what: str) -> None:
    got, want = as_arrays(got), as_arrays(want)
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{what}: structure {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close(g, w, f"{what}[{i}]")
        return
    assert got.shape == want.shape and got.dtype == want.dtype, f"{what}: {got.shape}/{got.dtype} != {want.shape}"
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=what)


PICKLERS = {"pickle": pickle, "cloudpickle": cloudpickle}


# ---------------------------------------------------------------------------- in this process


@pytest.mark.parametrize("pickler", PICKLERS)
@pytest.mark.parametrize("called", [False, True], ids=["fresh", "called"])
def test_round_trip(mode: str, pickler: str, called: bool) -> None:
    dumps = PICKLERS[pickler].dumps
    for name, fn, args, by_reference in cases():
        if not by_reference and pickler == "pickle":
            continue
        want = fn(*args)
        if not called:  # a fresh one, as it was before its first call
            fn = next(c[1] for c in cases() if c[0] == name)
        blob = dumps(fn)
        assert b"s2s_ad_cache" not in blob, f"{name}: the pickle holds a generated module"
        back = pickle.loads(blob)
        # (a decorated function unpickles as itself, a method as the function of its class)
        if back is not fn and not isinstance(back, types.MethodType):
            assert "_s2s_calls" not in getattr(back, "__dict__", {}), f"{name}: compiled programs were pickled"
        assert_close(back(*args), want, f"{name} ({pickler}, {'called' if called else 'fresh'})")


def test_decorated_functions_pickle_by_reference() -> None:
    for fn in (jitted, grad_decorated, vag_decorated, s2s_ad.jvp, s2s_ad.vjp, s2s_ad.hvp, s2s_ad.jacfwd):
        for dumps in (pickle.dumps, cloudpickle.dumps):
            blob = dumps(fn)
            assert len(blob) < 200, f"{fn!r} was pickled by value ({len(blob)} bytes)"
            assert pickle.loads(blob) is fn
    jitted(X, Y)
    assert pickle.loads(pickle.dumps(Model.construct)) is Model.construct


def test_compiled_state_is_not_pickled(mode: str) -> None:
    g = s2s_ad.grad(energy, grad_position=(0, 1))
    fresh = pickle.dumps(g)
    g(X, Y)
    g(X[0], Y[0])
    assert pickle.dumps(g) == fresh
    assert "_s2s_calls" in g.__dict__  # the compiled programs stay with the original


def test_parameters_keep_values_and_names_and_stay_shared(mode: str) -> None:
    model = Model()
    model.w.set_data(Tensor(np.full((2, 3), 0.25, np.float32)))
    weights = ParameterTuple(model.trainable_params())
    grad_w = ops.GradOperation(get_by_list=True)(model, weights)
    fvg = nn.ForwardValueAndGrad(model, weights, get_by_list=True)
    grad_w(X)
    model2, grad_w2, fvg2 = pickle.loads(cloudpickle.dumps((model, grad_w, fvg)))
    assert [p.name for p in model2.trainable_params()] == ["w", "b"]
    np.testing.assert_array_equal(model2.w.asnumpy(), np.full((2, 3), 0.25, np.float32))
    assert grad_w2.weights[0] is model2.w and fvg2._fn.weights[1] is model2.b
    assert grad_w2.fn is model2 and fvg2.network is model2
    # A change to the unpickled model's Parameters is seen by both unpickled transforms.
    model2.w.set_data(Tensor(np.full((2, 3), -0.5, np.float32)))
    model.w.set_data(Tensor(np.full((2, 3), -0.5, np.float32)))
    assert_close(grad_w2(X), grad_w(X), "GradOperation after set_data")
    assert_close(fvg2(X), fvg(X), "ForwardValueAndGrad after set_data")
    assert_close(model2(X), model(X), "the Cell after set_data")


# ---------------------------------------------------------------------------- in another process

_CHILD = """
import pickle, sys
import numpy as np
import s2s_ad
from s2s_ad import Tensor, context

context.set_context(mode=context.GRAPH_MODE if sys.argv[2] == "numba" else context.PYNATIVE_MODE)
with open(sys.argv[1], "rb") as f:
    payload = pickle.load(f)

def arrays(v):
    if isinstance(v, (tuple, list)):
        return tuple(arrays(x) for x in v)
    return np.asarray(v.asnumpy() if isinstance(v, Tensor) else v)

def close(a, b):
    if isinstance(b, tuple):
        return isinstance(a, tuple) and len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a.shape == b.shape and a.dtype == b.dtype and np.allclose(a, b, rtol=1e-5, atol=1e-6)

bad = []
for label, blob, args, want in payload:
    try:
        got = arrays(pickle.loads(blob)(*args))
    except Exception as e:
        bad.append(f"{label}: {type(e).__name__}: {e}")
        continue
    if not close(got, want):
        bad.append(f"{label}: got {got!r}, expected {want!r}")
print(len(payload), "calls")
print("\\n".join(bad))
sys.exit(1 if bad else 0)
"""


def _cache_files() -> set[str]:
    """The compiled entries of the disk cache (not the warm-start records, which a process
    that traces a call again, as unpickled functions may, writes anew)."""
    d = diskcache.entries_dir()
    return set() if d is None else {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file() and p.suffix != ".warm"}


def test_unpickled_in_another_process(mode: str, tmp_path: Path) -> None:
    """One child process loads every kind, pickled with pickle and cloudpickle, before and after
    its first call here, calls each and compares with the results computed here."""
    payload = []
    fresh = cases()
    for (name, fn, args, by_reference), (_, fresh_fn, _, _) in zip(cases(), fresh):
        want = as_arrays(fn(*args))
        for pickler, module in PICKLERS.items():
            if not by_reference and pickler == "pickle":
                continue
            payload.append((f"{name} ({pickler}, called)", module.dumps(fn), args, want))
            payload.append((f"{name} ({pickler}, fresh)", module.dumps(fresh_fn), args, want))
    path = tmp_path / "payload.pkl"
    path.write_bytes(pickle.dumps(payload))
    before = _cache_files()
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), mode], capture_output=True, text=True, env=env, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(payload)} calls" in run.stdout
    if mode == "numba" and diskcache.entries_dir() is not None:
        # Everything was compiled here first: the child loaded it all from the disk cache.
        assert _cache_files() == before


# ---------------------------------------------------------------------------- the user guide's example


def test_user_guide_example(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "user_guide.md").read_text(encoding="utf-8")
    section = re.search(r"^## Pickling.*?(?=^## )", text, re.S | re.M)
    assert section is not None, "docs/user_guide.md has no Pickling section"
    blocks = re.findall(r"^```python\n(.*?)^```", section.group(0), re.S | re.M)
    assert blocks, "the Pickling section has no python block"
    script = tmp_path / "example.py"
    script.write_text(textwrap.dedent(blocks[0]), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    printed = re.search(r"^```python\n.*?^```\n+```text\n(.*?)^```", section.group(0), re.S | re.M)
    if printed:
        assert printed_equal(run.stdout, printed.group(1)), run.stdout


def test_parameters_from_read_only_buffers_stay_writable(mode: str) -> None:
    """Pickle protocol 5 with out-of-band buffers (Dask's) may hand arrays back read-only:
    Parameters, which are updated in place, get their own copy; inputs are used as they are."""
    model = Model()
    buffers: list[pickle.PickleBuffer] = []
    blob = pickle.dumps((model, X), protocol=5, buffer_callback=buffers.append)
    assert buffers
    model2, x2 = pickle.loads(blob, buffers=[memoryview(b.raw()).toreadonly() for b in buffers])
    assert not x2.asnumpy().flags.writeable
    model2.w[0, 0] = 3.0
    model.w[0, 0] = 3.0
    assert_close(model2(x2), model(X), "the Cell after an in-place update")
