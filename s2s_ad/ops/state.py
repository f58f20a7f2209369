"""Parameter updates: ``ops.Assign``/``ops.assign``, ``AssignAdd``/``AssignSub`` and
``ops.depend``.

Inside compiled code an assignment makes the Parameter's new value a value of the program:
later reads of the Parameter see it, and the program returns it as an extra output that the
runtime writes into the Parameter after the call (:attr:`s2s_ad.ir.Program.updates`), so a
whole training step (forward, gradient and update) is one compiled program. Outside compiled
code the assignment is done at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ArgumentError, ShapeError
from ..tensor import Parameter, Tensor
from ..trace.protocol import register_call
from ..trace.tracer import Tracer
from .primitives import Primitive


def _check_parameter(who: str, variable: Any) -> Parameter:
    if not isinstance(variable, Parameter):
        raise ArgumentError(f"{who}: the variable to assign must be a Parameter, got {type(variable).__name__}")
    return variable


def _eager_update(who: str, variable: Any, value: Any, combine: Any) -> Parameter:
    p = _check_parameter(who, variable)
    v = value.asnumpy() if isinstance(value, Tensor) else np.asarray(value)
    old = p.asnumpy()
    try:
        new = combine(old, v)
        fits = np.broadcast_shapes(np.shape(new), old.shape) == old.shape
    except ValueError:  # numpy's broadcasting error
        new, fits = v, False
    if not fits:
        raise ShapeError(
            f"{who}: cannot assign a value of shape {np.shape(new)} to Parameter {p.name} of shape {old.shape}"
        )
    p.set_data(np.broadcast_to(np.asarray(new, dtype=old.dtype), old.shape))
    return p


def _stage_update(tr: Tracer, who: str, variable: Any, value: Any, op: str | None) -> Any:
    if op is not None:
        value = tr.elementwise(op, [variable, value])
    return tr.assign(variable, value, who)


class Assign(Primitive):
    """``Assign()(variable, value)``: the Parameter ``variable`` takes ``value`` (broadcast to
    its shape, cast to its dtype); returns the new value."""

    def __call__(self, variable: Any, value: Any) -> Any:
        return _eager_update("Assign", variable, value, lambda old, v: v)

    def lower(self, tr: Tracer, variable: Any, value: Any) -> Any:
        return _stage_update(tr, "Assign", variable, value, None)


class AssignAdd(Primitive):
    """``AssignAdd()(variable, value)``: ``variable = variable + value`` for a Parameter."""

    def __call__(self, variable: Any, value: Any) -> Any:
        return _eager_update("AssignAdd", variable, value, lambda old, v: old + v)

    def lower(self, tr: Tracer, variable: Any, value: Any) -> Any:
        return _stage_update(tr, "AssignAdd", variable, value, "add")


class AssignSub(Primitive):
    """``AssignSub()(variable, value)``: ``variable = variable - value`` for a Parameter."""

    def __call__(self, variable: Any, value: Any) -> Any:
        return _eager_update("AssignSub", variable, value, lambda old, v: old - v)

    def lower(self, tr: Tracer, variable: Any, value: Any) -> Any:
        return _stage_update(tr, "AssignSub", variable, value, "sub")


class Depend(Primitive):
    """``Depend()(value, expr)``: ``value``; ``expr`` is evaluated first. Staging evaluates
    every expression in program order, and an assignment's effect is recorded when it is
    staged, so ``value`` is returned as is."""

    def __call__(self, value: Any, expr: Any) -> Any:
        return value

    def lower(self, tr: Tracer, value: Any, expr: Any) -> Any:
        return value


_ASSIGN, _ASSIGN_ADD, _ASSIGN_SUB, _DEPEND = Assign(), AssignAdd(), AssignSub(), Depend()


def assign(variable: Any, value: Any) -> Any:
    """``assign(variable, value)``: :class:`Assign` as a function."""
    return _ASSIGN(variable, value)


def assign_add(variable: Any, value: Any) -> Any:
    """``assign_add(variable, value)``: :class:`AssignAdd` as a function."""
    return _ASSIGN_ADD(variable, value)


def assign_sub(variable: Any, value: Any) -> Any:
    """``assign_sub(variable, value)``: :class:`AssignSub` as a function."""
    return _ASSIGN_SUB(variable, value)


def depend(value: Any, expr: Any) -> Any:
    """``depend(value, expr)``: :class:`Depend` as a function."""
    return value


for _prim, _fn in ((_ASSIGN, assign), (_ASSIGN_ADD, assign_add), (_ASSIGN_SUB, assign_sub), (_DEPEND, depend)):
    register_call(_fn, lambda _f, tr, args, kwargs, _p=_prim: _p.lower(tr, *args, **kwargs))
