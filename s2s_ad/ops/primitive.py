"""``s2s_ad.ops.primitive``: user-defined primitives, as ``mindspore.ops.primitive``.

* ``PrimitiveWithInfer`` (and ``Primitive``) subclasses with ``@prim_attr_register`` on
  ``__init__``, a ``__call__`` that computes the result (written with s2s_ad ops or NumPy
  functions; traced inside compiled code) and optionally ``get_bprop()`` returning
  ``bprop(*inputs, out, dout)`` (or a ``bprop`` method): with a bprop the primitive's gradient
  is the rule's, at every order where the rule is differentiable; without one it is derived
  from ``__call__``. ``infer_shape``, when defined, is checked against the traced result.
* ``ops.Custom(func, out_shape=None, out_dtype=None, func_type="pyfunc", bprop=None)``:
  ``func`` traced as above, ``bprop(*inputs, out, dout)`` its rule.
* ``constexpr``: a function evaluated while compiling, on compile-time constants.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any

from ..api import JitFunction
from ..custom import stage_with_bprop
from ..errors import ArgumentError, NotSupportedError, ShapeError
from ..trace.protocol import register_static, unwrap_function
from ..trace.tracer import Tracer
from .primitives import Primitive as _Primitive


def prim_attr_register(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator of a primitive's ``__init__``: its arguments (defaults included) become
    attributes of the primitive, as in MindSpore."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        attrs = {k: v for k, v in list(bound.arguments.items())[1:]}
        _Primitive.__init__(self, **attrs)
        for k, v in attrs.items():
            object.__setattr__(self, k, v)
        fn(self, *args, **kwargs)

    return init


class Primitive(_Primitive):
    """Base of user primitives (MindSpore's ``Primitive``): see the module docstring."""

    def __init__(self, name: str | None = None, **attrs: Any):
        if "_attrs" not in self.__dict__:
            _Primitive.__init__(self, **attrs)
        self._name = name or type(self).__name__

    @property
    def name(self) -> str:
        return self.__dict__.get("_name", type(self).__name__)

    def add_prim_attr(self, name: str, value: Any) -> Primitive:
        self._attrs[name] = value
        return self

    def init_prim_io_names(self, inputs: list[str], outputs: list[str]) -> None:
        self.add_prim_attr("input_names", tuple(inputs))
        self.add_prim_attr("output_names", tuple(outputs))

    def _key(self) -> tuple:
        return (type(self).__module__, type(self).__qualname__, id(self))

    def _forward(self) -> Any:
        fwd = type(self).__call__
        if fwd in (Primitive.__call__, PrimitiveWithInfer.__call__):
            return None
        return unwrap_function(fwd)

    def _bprop(self) -> Any:
        get = getattr(self, "get_bprop", None)
        if get is not None:
            return get()
        return getattr(self, "bprop", None)

    def __call__(self, *args: Any) -> Any:
        """Outside compiled code: the primitive compiled for these arguments."""
        return JitFunction(self)(*args)

    def __s2s_stage__(self, tr: Tracer, args: list[Any], kwargs: dict) -> Any:
        fwd = self._forward()
        if fwd is None:
            raise tr.error(
                f"{self.name}: a user primitive needs a __call__ that computes its result (with s2s_ad ops or "
                "NumPy functions)",
                NotSupportedError,
            )
        if kwargs:
            raise tr.error(f"{self.name}: keyword arguments are not supported; pass inputs positionally", ArgumentError)

        def primal(fe: Tracer, vals: list[Any]) -> Any:
            out = fe.inline(fwd, [self, *vals], {}, owner=self)
            self._check_shape(fe, vals, out)
            return out

        bprop = self._bprop()
        if bprop is None:
            return primal(tr, list(args))
        return stage_with_bprop(tr, self.name, bprop, primal, list(args))

    def _check_shape(self, fe: Tracer, vals: list[Any], out: Any) -> None:
        infer = getattr(self, "infer_shape", None)
        if infer is None or isinstance(out, (tuple, list)):
            return
        want = infer(*[list(fe.atom(v).shape) for v in vals])
        got = fe.atom(out).shape
        if want is not None and tuple(want) != tuple(got):
            raise fe.error(
                f"{self.name}: __call__ computed a result of shape {got}, but infer_shape gives {tuple(want)}",
                ShapeError,
            )


class PrimitiveWithInfer(Primitive):
    """MindSpore's ``PrimitiveWithInfer``: a :class:`Primitive` with ``infer_shape``/``infer_dtype``."""


class Custom(Primitive):
    """``ops.Custom(func, out_shape=None, out_dtype=None, func_type="pyfunc", bprop=None)``: an
    op computed by the Python function ``func`` (traced: written with s2s_ad ops or NumPy
    functions), with the gradient rule ``bprop(*inputs, out, dout)`` when given."""

    def __init__(
        self,
        func: Callable[..., Any],
        out_shape: Any = None,
        out_dtype: Any = None,
        func_type: str = "pyfunc",
        bprop: Callable[..., Any] | None = None,
        reg_info: Any = None,
    ):
        if func_type != "pyfunc":
            raise NotSupportedError(
                f"ops.Custom: func_type={func_type!r} is not supported; only 'pyfunc' (a Python function, "
                "traced and compiled like construct)"
            )
        if not callable(func):
            raise ArgumentError(f"ops.Custom: func must be a function, got {type(func).__name__}")
        super().__init__(getattr(func, "__name__", "Custom"))
        self.func = func
        self.custom_bprop = bprop

    def _forward(self) -> Any:
        return None

    def __s2s_stage__(self, tr: Tracer, args: list[Any], kwargs: dict) -> Any:
        if kwargs:
            raise tr.error(f"{self.name}: keyword arguments are not supported; pass inputs positionally", ArgumentError)

        def primal(fe: Tracer, vals: list[Any]) -> Any:
            return fe.call(self.func, vals)

        if self.custom_bprop is None:
            return primal(tr, list(args))
        return stage_with_bprop(tr, self.name, self.custom_bprop, primal, list(args))


def constexpr(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``@constexpr``: ``fn`` runs while compiling, on compile-time constants (shapes, flags)."""
    register_static(fn)
    return fn


# MindSpore spells these ``ops.Custom``, ``ops.PrimitiveWithInfer``, ``ops.prim_attr_register``,
# ``ops.constexpr``: installed in the ops package (which cannot import this module: it builds on
# the API, which builds on ops).
for _name in ("Custom", "PrimitiveWithInfer", "prim_attr_register", "constexpr"):
    setattr(sys.modules["s2s_ad.ops"], _name, globals()[_name])
