"""Staging of the structural operations shared by primitives, functional ops, tensor methods
and NumPy calls: casts, reshapes, transposes, reductions, selects, comparisons, one-hot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import dtype as mstype
from ..errors import ArgumentError, NotSupportedError, ShapeError
from ..ir import Lit
from ..primitives import fmt_shape, normalize_axes, same_padding
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
    return more_tensor_methods(tr, m.name, x, args, kwargs)


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


# ---- convolution and pooling (issue 15)
def _ints(tr: Tracer, display: str, name: str, v: Any, n: int, allow: tuple[int, ...] = ()) -> tuple[int, ...]:
    """An int or a tuple of ``n`` ints (or of a length in ``allow``, whose last ``n`` count:
    MindSpore's ``(1, 1, s, s)`` strides) as a tuple of ``n`` non-negative ints."""
    vals = (v,) * n if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v
    if not isinstance(vals, (tuple, list)) or len(vals) not in (n, *allow):
        raise tr.error(f"{display}: {name} must be an int or a tuple of {n} ints, got {v!r}", ArgumentError)
    vals = tuple(vals)[-n:]
    if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a >= 0 for a in vals):
        raise tr.error(f"{display}: {name} must hold non-negative ints, got {v!r}", ArgumentError)
    return tuple(int(a) for a in vals)


def window_padding(
    tr: Tracer,
    display: str,
    pad_mode: str,
    pad: Any,
    in_hw: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...] = (1, 1),
) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding of a window op for MindSpore's ``pad_mode`` ("valid",
    "same" or "pad", any case) and ``pad`` (an int, or (top, bottom, left, right))."""
    mode = str(pad_mode).lower()
    if mode not in ("valid", "same", "pad"):
        raise tr.error(f"{display}: pad_mode must be 'valid', 'same' or 'pad', got {pad_mode!r}", ArgumentError)
    pads = _ints(tr, display, "pad", pad, 4)
    if mode != "pad":
        if any(pads):
            raise tr.error(f"{display}: pad {pad!r} needs pad_mode='pad', got pad_mode={pad_mode!r}", ArgumentError)
        if mode == "valid":
            return (0, 0, 0, 0)
        return same_padding(in_hw[0], kernel[0], stride[0], dilation[0]) + same_padding(
            in_hw[1], kernel[1], stride[1], dilation[1]
        )
    return pads  # type: ignore[return-value]


def _nchw(tr: Tracer, display: str, x: Any, what: str = "input") -> Any:
    a = tr.atom(x)
    if len(a.shape) != 4 or a.dtype.kind != "f":
        raise tr.error(f"{display}: the {what} must be a 4-D float NCHW tensor, got {a.aval}", ShapeError)
    return a


def lower_conv2d(
    tr: Tracer,
    x: Any,
    weight: Any,
    stride: Any = 1,
    pad_mode: str = "valid",
    pad: Any = 0,
    dilation: Any = 1,
    group: int = 1,
    display: str = "Conv2D",
) -> Any:
    """2-D convolution of an NCHW input with an (out, in, kh, kw) weight (cross-correlation, as
    MindSpore)."""
    if group != 1:
        raise tr.error(
            f"{display}: group={group} (grouped convolution) is not supported; only group=1", NotSupportedError
        )
    a, w = _nchw(tr, display, x), _nchw(tr, display, weight, "weight")
    st = _ints(tr, display, "stride", stride, 2, (4,))
    dl = _ints(tr, display, "dilation", dilation, 2, (4,))
    if 0 in st or 0 in dl:
        raise tr.error(
            f"{display}: stride and dilation must be positive, got {stride!r} and {dilation!r}", ArgumentError
        )
    pads = window_padding(tr, display, pad_mode, pad, a.shape[2:], w.shape[2:], st, dl)
    w = tr.cast(w, a.dtype)  # (a float64 input with a float32 weight computes in float64)
    return tr.bind1("conv2d", a, w, stride=st, pad=pads, dilation=dl)


def lower_pool(
    tr: Tracer,
    kind: str,
    x: Any,
    kernel_size: Any,
    strides: Any,
    pad_mode: str = "valid",
    pad: Any = 0,
    count_pad: bool = False,
    display: str = "MaxPool",
) -> Any:
    """Max (``kind`` "max") or average ("avg") pooling of an NCHW input over windows of
    ``kernel_size``; ``count_pad``: an average divides by the whole window, padding included."""
    a = _nchw(tr, display, x)
    k = _ints(tr, display, "kernel_size", kernel_size, 2, (4,))
    st = _ints(tr, display, "strides", strides, 2, (4,))
    if 0 in k or 0 in st:
        raise tr.error(
            f"{display}: kernel_size and strides must be positive, got {kernel_size!r} and {strides!r}", ArgumentError
        )
    pads = window_padding(tr, display, pad_mode, pad, a.shape[2:], k, st)
    if kind == "max":
        return tr.bind1("max_pool", a, a, kernel=k, stride=st, pad=pads)
    return tr.bind1("avg_pool", a, kernel=k, stride=st, pad=pads, count_pad=bool(count_pad))


# ---- softmax, argmax and the tensor methods (issue 15)
def _axis(tr: Tracer, display: str, axis: Any, ndim: int) -> int:
    if isinstance(axis, (tuple, list)) and len(axis) == 1:
        axis = axis[0]
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise tr.error(f"{display}: axis must be an int, got {axis!r}", ArgumentError)
    return normalize_axes(display, int(axis), ndim)[0]


def lower_softmax(tr: Tracer, x: Any, axis: Any = -1, log: bool = False) -> Any:
    """Softmax (or log-softmax) over ``axis``, computed stably: the inputs are shifted by their
    maximum along the axis, a shift the result does not depend on (so the shift's derivative
    is zero and it is held constant)."""
    display = "LogSoftmax" if log else "Softmax"
    a = tr.atom(x)
    if a.dtype.kind != "f":
        raise tr.error(f"{display}: the input must be a float tensor, got {a.aval}", ArgumentError)
    ax = _axis(tr, display, axis, len(a.shape))
    m = tr.bind1("stop_gradient", tr.bind1("reduce_max", a, axes=(ax,), keepdims=True))
    shifted = tr.elementwise("sub", [a, m])
    e = tr.elementwise("exp", [shifted])
    total = tr.bind1("reduce_sum", e, axes=(ax,), keepdims=True)
    if log:
        return tr.elementwise("sub", [shifted, tr.elementwise("log", [total])])
    return tr.elementwise("div", [e, total])


def lower_argmax(tr: Tracer, x: Any, axis: Any = None, keepdims: bool = False, smallest: bool = False) -> Any:
    """The index of the (first) largest value along ``axis`` (all axes, flattened, for None),
    as int32 as MindSpore; a nan counts as the largest (numpy's rule). Not differentiable."""
    display = "Argmin" if smallest else "Argmax"
    a = tr.atom(x)
    if axis is None:
        a = lower_reshape(tr, a, (-1,)) if len(a.shape) != 1 else a
        ax = 0
    else:
        ax = _axis(tr, display, axis, len(a.shape))
    a = tr.bind1("stop_gradient", a)
    best = tr.bind1("reduce_min" if smallest else "reduce_max", a, axes=(ax,), keepdims=True)
    hit = tr.bind1("equal", a, best)
    if a.dtype.kind == "f":
        hit = tr.elementwise("select", [tr.bind1("not_equal", a, a), Lit(True, np.dtype(np.bool_)), hit])
    n = a.shape[ax]
    idx = np.arange(n, dtype=np.int32).reshape((n,) + (1,) * (len(a.shape) - 1 - ax))
    pos = tr.elementwise("select", [hit, tr.atom(idx), Lit(n, np.dtype(np.int32))])
    out = tr.bind1("reduce_min", pos, axes=(ax,), keepdims=bool(keepdims) and axis is not None)
    return out


def lower_bool_reduce(tr: Tracer, x: Any, axis: Any, keepdims: bool, every: bool) -> Any:
    """``all`` (``every``) or ``any`` of the truth values of ``x`` over ``axis``: a bool tensor."""
    a = tr.atom(x)
    truth = a if a.dtype.kind == "b" else tr.bind1("not_equal", a, Lit(0, a.dtype))
    as_int = tr.bind1("cast", truth, dtype=np.dtype(np.int32))
    red = lower_reduce(
        tr, "reduce_min" if every else "reduce_max", "Tensor.all" if every else "Tensor.any", as_int, axis, keepdims
    )
    return tr.bind1("cast", red, dtype=np.dtype(np.bool_))


def lower_squeeze(tr: Tracer, x: Any, axis: Any = None) -> Any:
    a = tr.atom(x)
    if axis is None:
        axes: tuple[int, ...] = tuple(i for i, d in enumerate(a.shape) if d == 1)
    else:
        axes = normalize_axes("Squeeze", axis, len(a.shape))
        bad = [i for i in axes if a.shape[i] != 1]
        if bad:
            raise tr.error(
                f"Squeeze: axis {bad[0]} of a tensor of shape {fmt_shape(a.shape)} is not of length 1", ShapeError
            )
    return lower_reshape(tr, a, tuple(d for i, d in enumerate(a.shape) if i not in axes))


def lower_expand_dims(tr: Tracer, x: Any, axis: Any) -> Any:
    a = tr.atom(x)
    nd = len(a.shape) + 1
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -nd <= axis < nd:
        raise tr.error(f"ExpandDims: axis must be an int in [{-nd}, {nd}), got {axis!r}", ArgumentError)
    ax = int(axis) % nd
    return lower_reshape(tr, a, a.shape[:ax] + (1,) + a.shape[ax:])


def lower_clip(tr: Tracer, x: Any, xmin: Any = None, xmax: Any = None) -> Any:
    """``min(max(x, xmin), xmax)`` (either bound may be None, not both)."""
    if xmin is None and xmax is None:
        raise tr.error("clip: at least one of the bounds must be given", ArgumentError)
    y = x
    if xmin is not None:
        y = tr.elementwise("maximum", [y, xmin])
    if xmax is not None:
        y = tr.elementwise("minimum", [y, xmax])
    return y


# Tensor methods that are an elementwise op of the table: method name -> op name
ELEMENTWISE_METHODS = {
    n: n
    for n in (
        "exp",
        "log",
        "sqrt",
        "abs",
        "square",
        "sin",
        "cos",
        "tan",
        "tanh",
        "sinh",
        "cosh",
        "sigmoid",
        "log1p",
        "expm1",
        "sign",
        "neg",
        "atan",
        "asin",
        "acos",
        "atanh",
        "asinh",
        "acosh",
        "relu",
    )
}
ELEMENTWISE_METHODS.update(negative="neg", arctan="atan", arcsin="asin", arccos="acos", absolute="abs")


def _bind_args(tr: Tracer, name: str, sig: Callable[..., Any], args: list, kwargs: dict) -> Any:
    try:
        return sig(*args, **kwargs)
    except TypeError as err:
        raise tr.error(f"Tensor.{name}: {err}", ArgumentError) from None


def more_tensor_methods(tr: Tracer, name: str, x: Any, args: list, kwargs: dict) -> Any:
    """The tensor methods of :data:`MORE_TENSOR_METHODS` (the elementwise ones, ``pow``,
    ``clip``, ``squeeze``, ``expand_dims``, ``flatten``, ``argmax``/``argmin``, ``all``/``any``)."""
    if name in ELEMENTWISE_METHODS:
        _bind_args(tr, name, lambda: None, args, kwargs)
        return tr.elementwise(ELEMENTWISE_METHODS[name], [x])
    if name == "pow":
        (y,) = _bind_args(tr, name, lambda y: (y,), args, kwargs)
        return tr.elementwise("pow", [x, y])
    if name in ("clip", "clamp"):
        lo, hi = _bind_args(tr, name, lambda xmin=None, xmax=None: (xmin, xmax), args, kwargs)
        return lower_clip(tr, x, lo, hi)
    if name == "squeeze":
        (axis,) = _bind_args(tr, name, lambda axis=None: (axis,), args, kwargs)
        return lower_squeeze(tr, x, axis)
    if name == "expand_dims":
        (axis,) = _bind_args(tr, name, lambda axis: (axis,), args, kwargs)
        return lower_expand_dims(tr, x, axis)
    if name in ("flatten", "ravel"):
        _bind_args(tr, name, lambda order="C": None, args, kwargs)
        return lower_reshape(tr, x, (-1,))
    if name in ("argmax", "argmin"):
        axis, keep = _bind_args(tr, name, lambda axis=None, keepdims=False: (axis, keepdims), args, kwargs)
        return lower_argmax(tr, x, axis, keep, smallest=name == "argmin")
    if name in ("all", "any"):
        axis, keep = _bind_args(tr, name, lambda axis=(), keep_dims=False: (axis, keep_dims), args, kwargs)
        return lower_bool_reduce(tr, x, None if axis == () else axis, keep, every=name == "all")
    raise AssertionError(name)


MORE_TENSOR_METHODS = {
    *ELEMENTWISE_METHODS,
    "pow",
    "clip",
    "clamp",
    "squeeze",
    "expand_dims",
    "flatten",
    "ravel",
    "argmax",
    "argmin",
    "all",
    "any",
}
TENSOR_METHODS |= MORE_TENSOR_METHODS
