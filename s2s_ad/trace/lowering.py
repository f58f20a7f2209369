"""Staging of the structural operations shared by primitives, functional ops, tensor methods
and NumPy calls: casts, reshapes, transposes, reductions, selects, comparisons, one-hot."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtype as mstype
from ..errors import ArgumentError
from ..ir import Lit
from ..primitives import fmt_shape, normalize_axes
from .tracer import Tracer


def lower_select(tr: Tracer, cond: Any, x: Any, y: Any) -> Any:
    """``x`` where ``cond`` holds, else ``y``. A non-bool condition means ``cond != 0`` (as in
    ``np.where``); Python numbers among ``x`` and ``y`` are typed after the tensors among them
    only (the bool condition does not take part)."""
    if isinstance(cond, (bool, np.bool_)):
        c = Lit(bool(cond), np.dtype(np.bool_))
    else:
        c = tr.atom(cond)
        if c.dtype.kind != "b":
            c = tr.bind1("not_equal", c, Lit(0, c.dtype))
    branches = [Lit(v, np.dtype(np.bool_)) if isinstance(v, (bool, np.bool_)) else v for v in (x, y)]
    return tr.elementwise("select", [c, *tr.atoms(branches)])


def lower_compare(tr: Tracer, op: str, x: Any, y: Any) -> Any:
    return tr.bind(op, [x, y])


def lower_reduce(tr: Tracer, op: str, display: str, x: Any, axis: Any, keepdims: bool) -> Any:
    a = tr.atom(x)
    if isinstance(axis, (list,)):
        axis = tuple(axis)
    if not (axis is None or isinstance(axis, (int, np.integer, tuple))):
        hint = " (a Python int passed at a differentiated position is a tensor input, not a constant)"
        raise tr.error(
            f"{display}: axis must be an int, a tuple of ints or None, got {axis!r}"
            + (hint if getattr(axis, "shape", None) == () else ""),
            ArgumentError,
        )
    axes = normalize_axes(display, axis, len(a.shape))
    return tr.bind1(op, a, axes=axes, keepdims=bool(keepdims))


def lower_cast(tr: Tracer, x: Any, dtype: Any) -> Any:
    try:
        dt = mstype.to_np(dtype)
    except TypeError:
        raise tr.error(f"Cast: {dtype!r} is not a dtype", ArgumentError) from None
    a = tr.atom(x)
    if a.dtype == dt:
        return a
    return tr.bind1("cast", a, dtype=dt)


def lower_reshape(tr: Tracer, x: Any, shape: Any) -> Any:
    a = tr.atom(x)
    try:
        shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    except TypeError:
        raise tr.error(
            f"Reshape: the shape must be ints known at compile time, got {shape!r} (a Python int passed at a "
            "differentiated position is a tensor input, not a constant)",
            ArgumentError,
        ) from None
    if shape.count(-1) == 1:
        known = int(np.prod([s for s in shape if s != -1], dtype=np.int64))
        if known == 0 or a.aval.size % known:
            raise tr.error(f"Reshape: cannot reshape a tensor of shape {fmt_shape(a.shape)} to {shape}")
        shape = tuple(a.aval.size // known if s == -1 else s for s in shape)
    if shape == a.shape:
        return a
    return tr.bind1("reshape", a, shape=shape)


def lower_transpose(tr: Tracer, x: Any, perm: Any) -> Any:
    a = tr.atom(x)
    perm = tuple(int(p) % max(len(a.shape), 1) for p in perm)
    if perm == tuple(range(len(a.shape))):
        return a
    return tr.bind1("transpose", a, perm=perm)


class TensorMethod:
    """A method of a tensor value used inside compiled code (``x.reshape(...)``, ``x.sum()``)."""

    def __init__(self, value: Any, name: str):
        self.value = value
        self.name = name

    def __s2s_stage__(self, tr: Tracer, args: list, kwargs: dict) -> Any:
        return tensor_method(tr, self, args, kwargs)


def tensor_method(tr: Tracer, m: TensorMethod, args: list, kwargs: dict) -> Any:
    """Stage the call of the tensor method ``m`` (one of :data:`TENSOR_METHODS`)."""
    x = m.value
    if m.name == "reshape":
        shape = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else tuple(args)
        return lower_reshape(tr, x, shape)
    if m.name in ("sum", "mean"):
        axis = args[0] if args else kwargs.get("axis")
        keep = args[1] if len(args) > 1 else kwargs.get("keepdims", False)
        op = "reduce_sum" if m.name == "sum" else "reduce_mean"
        return lower_reduce(tr, op, f"Tensor.{m.name}", x, axis, keep)
    if m.name in ("max", "min"):
        axis = args[0] if args else kwargs.get("axis")
        keep = args[1] if len(args) > 1 else kwargs.get("keepdims", False)
        return lower_reduce(tr, f"reduce_{m.name}", f"Tensor.{m.name}", x, axis, keep)
    if m.name == "astype":
        return lower_cast(tr, x, args[0])
    if m.name == "transpose":
        perm = (
            args[0]
            if len(args) == 1 and isinstance(args[0], (tuple, list))
            else (args or tuple(reversed(range(len(x.shape)))))
        )
        return lower_transpose(tr, x, perm)
    raise AssertionError(m.name)


TENSOR_METHODS = {"reshape", "sum", "mean", "max", "min", "astype", "transpose"}


def lower_one_hot(
    tr: Tracer, indices: Any, depth: Any, on_value: Any = 1.0, off_value: Any = 0.0, axis: int = -1
) -> Any:
    """One-hot encoding: ``on_value`` where ``indices == k`` along a new axis of length
    ``depth``, else ``off_value`` (an index outside ``[0, depth)`` gives a row of
    ``off_value``). Built from ``equal`` and ``select``, so it is differentiable in the values."""
    a = tr.atom(indices)
    if a.dtype.kind not in "iu":
        raise tr.error(f"OneHot: indices must be an integer tensor, got {a.aval}", ArgumentError)
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth <= 0:
        raise tr.error(f"OneHot: depth must be a positive int, got {depth!r}", ArgumentError)
    ndim = len(a.shape) + 1
    if not -ndim <= axis < ndim:
        raise tr.error(f"OneHot: axis {axis} is out of range for a result of rank {ndim}", ArgumentError)
    axis %= ndim
    idx = lower_reshape(tr, a, a.shape[:axis] + (1,) + a.shape[axis:])
    classes = np.arange(int(depth), dtype=a.dtype).reshape((int(depth),) + (1,) * (ndim - 1 - axis))
    mask = tr.bind("equal", [idx, classes])
    return lower_select(tr, mask, on_value, off_value)
