"""Every compiled call from Python takes one path (``runtime.staged``): a Cell's call, a
transformed function's, a jit call with keyword arguments, a Jacobian's plan and an eager
operation key their programs by ``runtime.call_key`` in ``runtime.calls_cache`` and build them
with ``runtime.stage``."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, context, nn, ops, runtime
from s2s_ad.api import arg_names_of, callable_name, generated_source, vjp_function
from s2s_ad.errors import S2SError
from s2s_ad.lru import ProgramCache

ROOT = Path(__file__).resolve().parents[1]


class Net(nn.Cell):
    def construct(self, x):
        return ops.sin(x) * x


class Scaled(nn.Cell):
    @s2s_ad.jit
    def construct(self, inp, *, scale=2.0):
        return ops.tanh(inp) * scale


def mixed(x):
    # not diagonal: the Jacobian of a 6-vector needs 6 reverse evaluations, so called from
    # Python it loops over one compiled evaluation (a plan of its own)
    return ops.sin(x) * x.sum()


def sample(n: int = 6) -> Tensor:
    return Tensor(np.linspace(-1.0, 1.0, n, dtype=np.float32).reshape(2, n // 2))


def test_cell_grad_jit_and_jacobian_calls_share_one_keyed_path(mode, monkeypatch):
    staged = []
    real_stage = runtime.stage

    def stage(describe, body, args, backend):
        staged.append(describe()[0])
        return real_stage(describe, body, args, backend)

    monkeypatch.setattr(runtime, "stage", stage)
    net, x = Net(), sample()
    a = x.asnumpy()
    np.testing.assert_allclose(net(x).asnumpy(), np.sin(a) * a, rtol=1e-6)
    np.testing.assert_allclose(s2s_ad.grad(net)(x).asnumpy(), np.cos(a) * a + np.sin(a), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s2s_ad.jit(net)(x).asnumpy(), np.sin(a) * a, rtol=1e-6)
    jac = s2s_ad.jacrev(net)(x).asnumpy()
    np.testing.assert_allclose(np.einsum("ijij->ij", jac), np.cos(a) * a + np.sin(a), rtol=1e-5, atol=1e-6)
    assert staged == ["Net_construct", "grad_Net", "jit_Net", "jacrev_Net"]

    key = runtime.call_key(context.backend(), (x,))
    assert key[0] == ("numba" if mode == "numba" else "python") and key[1] == context.compile_options()
    by_transform = {k: list(calls) for k, calls in runtime.cache_for(net).items()}
    assert ("forward",) in by_transform and (("jit",),) in by_transform
    assert any(k[0][0] == "jacrev" for k in by_transform if k != ("forward",))
    assert any(k[0][0] == "reverse" for k in by_transform if k != ("forward",))
    # one program (or plan) per transform, all under the same call key
    assert all(sigs == [key] for sigs in by_transform.values()), by_transform


def test_jacobians_and_eager_operations_use_the_call_key(mode):
    x = sample()
    a = x.asnumpy()
    jac = s2s_ad.jacrev(mixed)(x).asnumpy()
    # d(sin(x_ij) * sum(x)) / dx_kl = cos(x_ij) * sum(x) * [ij == kl] + sin(x_ij)
    expected = np.broadcast_to(np.sin(a)[:, :, None, None], (2, 3, 2, 3)).copy()
    expected += (np.cos(a) * a.sum())[:, :, None, None] * np.eye(6).reshape(2, 3, 2, 3)
    np.testing.assert_allclose(jac, expected, rtol=1e-5, atol=1e-6)
    (programs,) = [calls for k, calls in runtime.cache_for(mixed).items() if k != ("forward",)]
    # one compiled program per call key
    assert runtime.call_key(context.backend(), (x,)) in programs

    y = ops.cos(x)  # an eager operation: the python backend, keyed after the operation
    np.testing.assert_allclose(y.asnumpy(), np.cos(a), rtol=1e-6)
    assert any(k[2:] == runtime.call_key("python", (x,)) for k in runtime._EAGER)


def test_jit_keyword_arguments_are_keyed_by_name(mode):
    net = Scaled()
    x = sample()
    f = s2s_ad.jit(net)
    np.testing.assert_allclose(f(x, scale=3.0).asnumpy(), np.tanh(x.asnumpy()) * 3.0, rtol=1e-6)
    np.testing.assert_allclose(f(x, scale=2).asnumpy(), np.tanh(x.asnumpy()) * 2.0, rtol=1e-6)
    np.testing.assert_allclose(f(x).asnumpy(), np.tanh(x.asnumpy()) * 2.0, rtol=1e-6)  # positional only
    calls = runtime.calls_cache(net, ("jit", ("scale",)))
    assert list(calls) == [
        runtime.call_key(context.backend(), (x, 3.0)),
        runtime.call_key(context.backend(), (x, 2)),
    ]
    with pytest.raises(s2s_ad.ArgumentError, match="Scaled"):
        f(x, shift=1.0)


def test_a_cell_names_programs_after_its_construct():
    # the API learns what a Cell runs from the Cell (``_s2s_function``), @jit unwrapped
    net = Scaled()
    assert callable_name(net) == "Scaled" and callable_name(s2s_ad.grad(net)) == "grad_Scaled"
    assert arg_names_of(net, 1) == ["inp"] and arg_names_of(vjp_function(net), 2) == ["inp", "sens"]
    assert "def jit_Scaled(inp" in generated_source(s2s_ad.jit(net), sample())


def test_program_cache_lookup_builds_on_a_miss_only(monkeypatch):
    monkeypatch.setenv("S2S_AD_MAX_PROGRAMS", "2")
    c = ProgramCache()
    built = []
    assert c.lookup("a", lambda: built.append("a") or "A") == "A"
    assert c.lookup("b", lambda: built.append("b") or "B") == "B"
    assert c.lookup("a", lambda: built.append("a again") or "A2") == "A"  # a hit: now the most recent
    with pytest.raises(S2SError):
        c.lookup("x", lambda: (_ for _ in ()).throw(S2SError("no program")))
    assert "x" not in c and built == ["a", "b"]
    c.lookup("c", lambda: "C")  # evicts b, the least recently used
    assert list(c) == ["a", "c"]


def test_the_differentiation_api_is_installed_in_ops():
    for name in ("GradOperation", "grad", "value_and_grad", "jvp", "vjp"):
        assert getattr(ops, name) is getattr(s2s_ad.api, name)
    with pytest.raises(AttributeError, match="no attribute 'not_an_op'"):
        ops.not_an_op  # noqa: B018


def _imported_modules(path: Path) -> set[str]:
    """The s2s_ad modules a source file imports, anywhere in it (relative imports resolved);
    imports under ``if TYPE_CHECKING:`` are for type checkers only and do not count."""
    package = ["s2s_ad", *path.relative_to(ROOT / "s2s_ad").parent.parts]
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    out = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_the_api_does_not_import_nn_and_ops_does_not_import_the_api():
    # the facade's order: ops -> api -> jacobians -> nn (each may import the ones before it)
    api = _imported_modules(ROOT / "s2s_ad" / "api.py")
    assert not any(m == "s2s_ad.nn" or m.startswith("s2s_ad.nn.") for m in api), api
    for name in ("__init__.py", "functional.py", "primitives.py"):
        mods = _imported_modules(ROOT / "s2s_ad" / "ops" / name)
        assert not {"s2s_ad.api", "s2s_ad.jacobians"} & mods, (name, mods)
    assert "s2s_ad.api" in _imported_modules(ROOT / "s2s_ad" / "nn" / "cell.py")
