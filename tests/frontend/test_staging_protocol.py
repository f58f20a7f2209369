"""The staging protocol of s2s_ad.trace: how an object called in compiled code is staged."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import s2s_ad
from s2s_ad import ops
from s2s_ad.errors import UnsupportedSyntaxError
from s2s_ad.ir import Aval
from s2s_ad.trace import Interpreter, Tracer, register_stager, register_static, trace
from s2s_ad.trace.interpreter import _EXPR_HANDLERS, _STMT_HANDLERS


class Softplus:
    """A user-defined op: softplus(x) = log(1 + exp(beta * x)) / beta, staged through the table ops."""

    def __init__(self, beta: float):
        self.beta = beta

    def __s2s_stage__(self, tr: Tracer, args: list, kwargs: dict):
        (x,) = args
        bx = tr.elementwise("mul", [x, self.beta])
        return tr.elementwise(
            "div", [tr.elementwise("log", [tr.elementwise("add", [tr.elementwise("exp", [bx]), 1.0])]), self.beta]
        )


softplus = Softplus(2.0)


def uses_softplus(x):
    return (softplus(x) * x).sum()


class Scaled:
    """A user class staged by a registered stager (it has no __s2s_stage__)."""

    def __init__(self, factor: float):
        self.factor = factor


def _stage_scaled(obj: Scaled, tr: Tracer, args: list, kwargs: dict):
    return tr.elementwise("mul", [args[0], obj.factor])


register_stager(Scaled, _stage_scaled)
triple = Scaled(3.0)


def uses_scaled(x):
    return ops.sin(triple(x)).sum()


class Opaque:
    def __call__(self, x):
        return x


opaque = Opaque()


def uses_opaque(x):
    return opaque(x)


class Settings:
    scale = 0.5


settings = Settings()
register_static(Settings)


def uses_settings(x):
    return x * settings.scale


unregistered = Opaque()


def reads_unregistered(x):
    return x * unregistered.attr


def _softplus_np(x, beta):
    return np.log1p(np.exp(beta * x)) / beta


@pytest.mark.parametrize("shape", [(), (3, 4)])
def test_s2s_stage_method_in_jit_and_grad(mode, shape):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    out = s2s_ad.jit(uses_softplus)(s2s_ad.Tensor(x)).asnumpy()
    np.testing.assert_allclose(out, (_softplus_np(x, 2.0) * x).sum(), rtol=1e-5)
    g = s2s_ad.grad(uses_softplus)(s2s_ad.Tensor(x)).asnumpy()
    sig = 1 / (1 + np.exp(-2.0 * x))
    np.testing.assert_allclose(g, _softplus_np(x, 2.0) + x * sig, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("shape", [(5,), (2, 3)])
def test_registered_stager(mode, shape):
    x = np.linspace(-1, 1, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    g = s2s_ad.grad(uses_scaled)(s2s_ad.Tensor(x)).asnumpy()
    np.testing.assert_allclose(g, 3.0 * np.cos(3.0 * x), rtol=1e-5)


def test_unknown_callable_is_rejected_with_the_callable_and_line():
    with pytest.raises(UnsupportedSyntaxError) as err:
        s2s_ad.jit(uses_opaque)(s2s_ad.Tensor(np.ones(3, np.float32)))
    msg = str(err.value)
    assert (
        f"call to `Opaque` (an object of type {__name__}.Opaque) is not supported inside compiled code: "
        "call s2s_ad ops (e.g. ops.Sin()), Cells, gradient functions, or Python functions whose source is available"
    ) in msg
    assert "test_staging_protocol.py" in msg


def test_static_object_attributes(mode):
    out = s2s_ad.jit(uses_settings)(s2s_ad.Tensor(np.full(4, 2.0, np.float32))).asnumpy()
    np.testing.assert_allclose(out, np.ones(4))
    with pytest.raises(UnsupportedSyntaxError, match="attribute `attr` of an object of type .*Opaque cannot be used"):
        s2s_ad.jit(reads_unregistered)(s2s_ad.Tensor(np.ones(3, np.float32)))


def test_tracer_stages_without_source():
    """A body staged on a Tracer directly: the staging API alone builds a program; a tracer
    without an interpreter cannot stage calls."""
    prog = trace(
        lambda tr, vals: Softplus(1.0).__s2s_stage__(tr, vals, {}), [Aval((3,), np.dtype(np.float32))], "f", ["x"]
    )
    assert [e.op for e in prog.eqns] == ["mul", "exp", "add", "log", "div"]
    with pytest.raises(s2s_ad.S2SError, match="without an interpreter"):
        Tracer().call(uses_opaque, [])


def test_interpreter_dispatches_by_node_class():
    """Every statement and expression the interpreter supports has its own handler."""
    assert {ast.Assign, ast.AugAssign, ast.If, ast.For, ast.Return, ast.Assert} <= set(_STMT_HANDLERS)
    assert {ast.BinOp, ast.Call, ast.Compare, ast.Subscript, ast.Attribute, ast.List, ast.Tuple} <= set(_EXPR_HANDLERS)
    assert all(callable(h) for h in (*_STMT_HANDLERS.values(), *_EXPR_HANDLERS.values()))
    assert isinstance(Interpreter().tracer, Tracer)


def test_trace_layer_imports_nothing_above_it():
    """The trace package imports only lower layers (and none of them function-locally)."""
    import s2s_ad.trace

    allowed = {"errors", "ir", "dtype", "primitives", "regions", "ad.reverse", "pyast"}
    root = Path(s2s_ad.trace.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 2:
                mods = [node.module] if node.module else [a.name for a in node.names]
                assert set(mods) <= allowed, f"{path.name} imports {mods}"
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not getattr(node, "level", 0):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(str(n).startswith("s2s_ad") for n in names), f"{path.name} imports {names}"
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert not any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(fn)), (
                    f"{path.name}: {fn.name} imports inside a function"
                )
