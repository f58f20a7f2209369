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
from ..ir import Lit
from ..runtime import eager
from .table import ELEMENTWISE, fmt_shape, get_op, normalize_axes


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


ELEMENTWISE_CLASSES = {
    op.display: _elementwise_class(op.name, op.display)
    for op in ELEMENTWISE
    if not op.derivative_only and op.name != "select"
}
ELEMENTWISE_CLASSES["RealDiv"] = _elementwise_class("div", "RealDiv")


def lower_select(fe, cond: Any, x: Any, y: Any) -> Any:
    """``x`` where ``cond`` holds, else ``y``. A non-bool condition means ``cond != 0`` (as in
    ``np.where``); Python numbers among ``x`` and ``y`` are typed after the tensors among them
    only (the bool condition does not take part)."""
    if isinstance(cond, (bool, np.bool_)):
        c = Lit(bool(cond), np.dtype(np.bool_))
    else:
        c = fe.atom(cond)
        if c.dtype.kind != "b":
            c = fe.b.bind1("not_equal", c, Lit(0, c.dtype))
    branches = [Lit(v, np.dtype(np.bool_)) if isinstance(v, (bool, np.bool_)) else v for v in (x, y)]
    return fe.elementwise("select", [c, *fe.atoms(branches)])


class Select(Primitive):
    """``Select()(cond, x, y)``: ``x`` where the bool tensor ``cond`` is true, else ``y``."""

    # Python numbers stay compile-time constants when called eagerly, so that they are typed
    # after ``x``/``y`` only (weak scalars would take the bool condition's dtype into account).

    def lower(self, fe, cond, x, y):
        return lower_select(fe, cond, x, y)


ELEMENTWISE_CLASSES["Select"] = Select


def lower_compare(fe, op: str, x: Any, y: Any) -> Any:
    return fe.bind(op, [x, y])


def _compare_class(op: str, display: str) -> type:
    def lower(self, fe, x, y):
        return lower_compare(fe, op, x, y)

    doc = f"``{display}()(x, y)``: elementwise comparison (a bool tensor; not differentiable)."
    return type(display, (Primitive,), {"lower": lower, "_weak_scalars": True, "__doc__": doc})


COMPARE_OPS = ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal")
COMPARE_CLASSES = {get_op(op).display: _compare_class(op, get_op(op).display) for op in COMPARE_OPS}


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
        hint = " (a Python int passed at a differentiated position is a tensor input, not a constant)"
        raise fe.error(
            f"{display}: axis must be an int, a tuple of ints or None, got {axis!r}"
            + (hint if getattr(axis, "shape", None) == () else ""),
            ArgumentError,
        )
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
ReduceMax = _reduce_class("reduce_max", "ReduceMax", "maximum")
ReduceMin = _reduce_class("reduce_min", "ReduceMin", "minimum")


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
    try:
        shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    except TypeError:
        raise fe.error(
            f"Reshape: the shape must be ints known at compile time, got {shape!r} (a Python int passed at a "
            "differentiated position is a tensor input, not a constant)",
            ArgumentError,
        ) from None
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
    if m.name in ("max", "min"):
        axis = args[0] if args else kwargs.get("axis")
        keep = args[1] if len(args) > 1 else kwargs.get("keepdims", False)
        return lower_reduce(fe, f"reduce_{m.name}", f"Tensor.{m.name}", x, axis, keep)
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


TENSOR_METHODS = {"reshape", "sum", "mean", "max", "min", "astype", "transpose"}


def lower_one_hot(fe, indices: Any, depth: Any, on_value: Any = 1.0, off_value: Any = 0.0, axis: int = -1) -> Any:
    """One-hot encoding: ``on_value`` where ``indices == k`` along a new axis of length
    ``depth``, else ``off_value`` (an index outside ``[0, depth)`` gives a row of
    ``off_value``). Built from ``equal`` and ``select``, so it is differentiable in the values."""
    a = fe.atom(indices)
    if a.dtype.kind not in "iu":
        raise fe.error(f"OneHot: indices must be an integer tensor, got {a.aval}", ArgumentError)
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth <= 0:
        raise fe.error(f"OneHot: depth must be a positive int, got {depth!r}", ArgumentError)
    ndim = len(a.shape) + 1
    if not -ndim <= axis < ndim:
        raise fe.error(f"OneHot: axis {axis} is out of range for a result of rank {ndim}", ArgumentError)
    axis %= ndim
    idx = lower_reshape(fe, a, a.shape[:axis] + (1,) + a.shape[axis:])
    classes = np.arange(int(depth), dtype=a.dtype).reshape((int(depth),) + (1,) * (ndim - 1 - axis))
    mask = fe.bind("equal", [idx, classes])
    return lower_select(fe, mask, on_value, off_value)


class OneHot(Primitive):
    """``OneHot(axis=-1)(indices, depth, on_value, off_value)``."""

    def __init__(self, axis: int = -1):
        super().__init__(axis=int(axis))

    def lower(self, fe, indices, depth, on_value, off_value):
        return lower_one_hot(fe, indices, depth, on_value, off_value, self._attrs["axis"])
