"""MindSpore-style primitive classes (``ops.MatMul()``, ``ops.Sin()``, ...) and their lowering.

Elementwise primitive classes are generated from the op table; a primitive instance is a
callable that runs eagerly on Tensors, and that the frontend lowers to IR inside compiled
code (through ``_s2s_lower``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtype as mstype
from ..errors import ArgumentError
from ..runtime import eager
from .table import ELEMENTWISE, fmt_shape, normalize_axes


class Primitive:
    """Base class: subclasses implement ``lower(fe, *args)``."""

    _s2s_attr_ok = True
    _s2s_constructible = True

    def __init__(self, **attrs: Any):
        self._attrs = attrs

    @property
    def name(self) -> str:
        return type(self).__name__

    def _key(self) -> tuple:
        return (type(self).__name__, tuple(sorted(self._attrs.items())))

    _weak_scalars = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return eager(self._key(), self._s2s_lower, args, kwargs, self._weak_scalars)

    def _s2s_lower(self, fe: Any, args: list, kwargs: dict) -> Any:
        return self.lower(fe, *args, **kwargs)

    def lower(self, fe: Any, *args: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        attrs = ", ".join(f"{k}={v!r}" for k, v in self._attrs.items())
        return f"Prim[{self.name}]({attrs})" if attrs else f"Prim[{self.name}]"


def _elementwise_class(op_name: str, display: str) -> type:
    def lower(self, fe, *args):
        return fe.elementwise(op_name, list(args))

    return type(
        display,
        (Primitive,),
        {"lower": lower, "_weak_scalars": True, "__doc__": f"Elementwise ``{op_name}`` (from the op table)."},
    )


ELEMENTWISE_CLASSES = {op.display: _elementwise_class(op.name, op.display) for op in ELEMENTWISE if op.name != "step"}
ELEMENTWISE_CLASSES["RealDiv"] = _elementwise_class("div", "RealDiv")


class MatMul(Primitive):
    """``MatMul(transpose_a=False, transpose_b=False)(x, y)``: 2-D matrix product."""

    def __init__(self, transpose_a: bool = False, transpose_b: bool = False):
        super().__init__(transpose_a=bool(transpose_a), transpose_b=bool(transpose_b))

    def lower(self, fe, x, y):
        return fe.bind("matmul", [x, y], **self._attrs)


def lower_reduce(fe, op: str, display: str, x: Any, axis: Any, keepdims: bool) -> Any:
    a = fe.atom(x)
    if isinstance(axis, (list,)):
        axis = tuple(axis)
    if not (axis is None or isinstance(axis, (int, np.integer, tuple))):
        raise fe.error(f"{display}: axis must be an int, a tuple of ints or None, got {axis!r}", ArgumentError)
    axes = normalize_axes(display, axis, len(a.shape))
    return fe.b.bind1(op, a, axes=axes, keepdims=bool(keepdims))


def _reduce_class(op: str, display: str, what: str) -> type:
    def __init__(self, keep_dims: bool = False):
        Primitive.__init__(self, keep_dims=bool(keep_dims))

    def lower(self, fe, x, axis=()):
        return lower_reduce(fe, op, display, x, axis, self._attrs["keep_dims"])

    doc = f"``{display}(keep_dims=False)(x, axis=())``: {what} over ``axis`` (all axes by default)."
    return type(display, (Primitive,), {"__init__": __init__, "lower": lower, "__doc__": doc})


ReduceSum = _reduce_class("reduce_sum", "ReduceSum", "sum")
ReduceMean = _reduce_class("reduce_mean", "ReduceMean", "mean")


def lower_cast(fe, x: Any, dtype: Any) -> Any:
    try:
        dt = mstype.to_np(dtype)
    except TypeError:
        raise fe.error(f"Cast: {dtype!r} is not a dtype", ArgumentError) from None
    a = fe.atom(x)
    if a.dtype == dt:
        return a
    return fe.b.bind1("cast", a, dtype=dt)


class Cast(Primitive):
    """``Cast()(x, dtype)``."""

    def lower(self, fe, x, dtype):
        return lower_cast(fe, x, dtype)


def lower_reshape(fe, x: Any, shape: Any) -> Any:
    a = fe.atom(x)
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    if shape.count(-1) == 1:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        if known == 0 or a.aval.size % known:
            raise fe.error(f"Reshape: cannot reshape a tensor of shape {fmt_shape(a.shape)} to {shape}")
        shape = tuple(a.aval.size // known if s == -1 else s for s in shape)
    if shape == a.shape:
        return a
    return fe.b.bind1("reshape", a, shape=shape)


class Reshape(Primitive):
    """``Reshape()(x, shape)``."""

    def lower(self, fe, x, shape):
        return lower_reshape(fe, x, shape)


def lower_transpose(fe, x: Any, perm: Any) -> Any:
    a = fe.atom(x)
    perm = tuple(int(p) % max(len(a.shape), 1) for p in perm)
    if perm == tuple(range(len(a.shape))):
        return a
    return fe.b.bind1("transpose", a, perm=perm)


class Transpose(Primitive):
    """``Transpose()(x, perm)``."""

    def lower(self, fe, x, perm):
        return lower_transpose(fe, x, perm)


# Methods of tensor values inside compiled code.
def tensor_method(fe, m, args: list, kwargs: dict) -> Any:
    x = m.value
    if m.name == "reshape":
        shape = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)
        return lower_reshape(fe, x, shape)
    if m.name in ("sum", "mean"):
        axis = args[0] if args else kwargs.get("axis")
        keep = args[1] if len(args) > 1 else kwargs.get("keepdims", False)
        op = "reduce_sum" if m.name == "sum" else "reduce_mean"
        return lower_reduce(fe, op, f"Tensor.{m.name}", x, axis, keep)
    if m.name == "astype":
        return lower_cast(fe, x, args[0])
    if m.name == "transpose":
        perm = (
            args[0]
            if len(args) == 1 and isinstance(args[0], (tuple, list))
            else (args or tuple(reversed(range(len(x.shape)))))
        )
        return lower_transpose(fe, x, perm)
    raise AssertionError(m.name)


TENSOR_METHODS = {"reshape", "sum", "mean", "astype", "transpose"}
