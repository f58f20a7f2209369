"""Staging of the structural operations shared by primitives, functional ops, tensor methods
and NumPy calls: casts, reshapes, transposes, reductions, selects, comparisons, one-hot."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import dtype as mstype
from ..errors import ArgumentError, NotSupportedError, ShapeError, UnsupportedSyntaxError
from ..ir import Atom, Lit, Var
from ..primitives import fmt_shape, normalize_axes, same_padding
from .protocol import describe, is_tensor_value
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
    if m.name in STRUCTURAL_METHODS:
        fn = STRUCTURAL_METHODS[m.name]
        try:
            inspect.signature(fn).bind(tr, x, *args, **kwargs)
        except TypeError as err:
            raise tr.error(f"Tensor.{m.name}: {err}", ArgumentError) from None
        return fn(tr, x, *args, **kwargs)
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


# ---- structural, indexing and linalg ops (issue 15)
def _ints(tr: Tracer, what: str, v: Any) -> tuple[int, ...]:
    """A compile-time int or sequence of ints as a tuple (a clear error for anything else)."""
    items = v if isinstance(v, (tuple, list)) else (v,)
    if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in items):
        raise tr.error(
            f"{what} must be ints known at compile time, got {v!r} (a Python int passed at a differentiated "
            "position is a tensor input, not a constant)",
            ArgumentError,
        )
    return tuple(int(i) for i in items)


def _axis(tr: Tracer, display: str, axis: Any, ndim: int) -> int:
    (ax,) = _ints(tr, f"{display}: the axis", axis)
    if not -ndim <= ax < max(ndim, 1):
        raise tr.error(f"{display}: axis {ax} is out of range for a tensor of rank {ndim}", ShapeError)
    return ax % max(ndim, 1)


def _tensors(tr: Tracer, display: str, xs: Any) -> list[Atom]:
    """A list or tuple of tensors as atoms of one dtype (numpy's result type)."""
    if not isinstance(xs, (tuple, list)) or not xs:
        raise tr.error(f"{display}: expected a non-empty tuple or list of tensors, got {describe(xs)}", ArgumentError)
    atoms = tr.atoms(list(xs))
    dt = np.result_type(*[a.dtype for a in atoms])
    return [tr.cast(a, dt) for a in atoms]


def lower_concat(tr: Tracer, xs: Any, axis: Any = 0, display: str = "Concat") -> Any:
    """``concat((x, y, ...), axis)``: each part scattered into its slice of the result, summed
    (the adjoint takes each part's slice back)."""
    atoms = _tensors(tr, display, xs)
    ndim = len(atoms[0].shape)
    if ndim == 0:
        raise tr.error(f"{display}: zero-dimensional tensors cannot be concatenated", ShapeError)
    ax = _axis(tr, display, axis, ndim)
    for a in atoms[1:]:
        if len(a.shape) != ndim or a.shape[:ax] + a.shape[ax + 1 :] != atoms[0].shape[:ax] + atoms[0].shape[ax + 1 :]:
            shapes = " and ".join(fmt_shape(b.shape) for b in atoms)
            raise tr.error(f"{display}: shapes {shapes} differ outside axis {ax}", ShapeError)
    if len(atoms) == 1:
        return atoms[0]
    total = sum(a.shape[ax] for a in atoms)
    shape = atoms[0].shape[:ax] + (total,) + atoms[0].shape[ax + 1 :]
    out, start = None, 0
    for a in atoms:
        n = a.shape[ax]
        index = (("slice", None, None, None),) * ax + (("slice", start, start + n, None),)
        part = tr.bind1("scatter", a, index=index, shape=shape)
        out = part if out is None else tr.bind1("add", out, part)
        start += n
    return out


def lower_stack(tr: Tracer, xs: Any, axis: Any = 0, display: str = "Stack") -> Any:
    """``stack((x, y, ...), axis)``: each tensor with a new axis of length 1, concatenated (a
    list a loop built by appending is its stacked values already)."""
    ys = tr.stacked_list(xs)
    if ys is not None:
        ax = _axis(tr, display, axis, len(ys.shape))
        perm = (*range(1, ax + 1), 0, *range(ax + 1, len(ys.shape)))
        return lower_transpose(tr, ys, perm)
    atoms = _tensors(tr, display, xs)
    shape = atoms[0].shape
    for a in atoms[1:]:
        if a.shape != shape:
            raise tr.error(
                f"{display}: all tensors must have the same shape, got "
                + " and ".join(fmt_shape(b.shape) for b in atoms),
                ShapeError,
            )
    ax = _axis(tr, display, axis, len(shape) + 1)
    parts = [lower_reshape(tr, a, shape[:ax] + (1,) + shape[ax:]) for a in atoms]
    return lower_concat(tr, parts, ax, display)


def lower_split(tr: Tracer, x: Any, axis: Any = 0, sections: Any = 1, display: str = "Split") -> tuple:
    """``x`` split along ``axis`` into ``sections`` equal parts (an int) or parts of the given sizes."""
    a = tr.atom(x)
    ax = _axis(tr, display, axis, len(a.shape))
    n = a.shape[ax]
    if isinstance(sections, (int, np.integer)) and not isinstance(sections, bool):
        if sections <= 0 or n % sections:
            raise tr.error(f"{display}: an axis of length {n} does not split into {sections} equal parts", ShapeError)
        sizes = (n // sections,) * int(sections)
    else:
        sizes = _ints(tr, f"{display}: the section sizes", sections)
        if sum(sizes) != n or min(sizes) < 0:
            raise tr.error(f"{display}: section sizes {sizes} do not add up to the axis length {n}", ShapeError)
    parts, start = [], 0
    for s in sizes:
        parts.append(
            tr.bind1("getitem", a, index=(("slice", None, None, None),) * ax + (("slice", start, start + s, None),))
        )
        start += s
    return tuple(parts)


# ---- convolution and pooling (issue 15)
def _window_ints(tr: Tracer, display: str, name: str, v: Any, n: int, allow: tuple[int, ...] = ()) -> tuple[int, ...]:
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
    pads = _window_ints(tr, display, "pad", pad, 4)
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
    st = _window_ints(tr, display, "stride", stride, 2, (4,))
    dl = _window_ints(tr, display, "dilation", dilation, 2, (4,))
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
    k = _window_ints(tr, display, "kernel_size", kernel_size, 2, (4,))
    st = _window_ints(tr, display, "strides", strides, 2, (4,))
    if 0 in k or 0 in st:
        raise tr.error(
            f"{display}: kernel_size and strides must be positive, got {kernel_size!r} and {strides!r}", ArgumentError
        )
    pads = window_padding(tr, display, pad_mode, pad, a.shape[2:], k, st)
    if kind == "max":
        return tr.bind1("max_pool", a, a, kernel=k, stride=st, pad=pads)
    return tr.bind1("avg_pool", a, kernel=k, stride=st, pad=pads, count_pad=bool(count_pad))


# ---- GeLU (issue 15)
def lower_gelu(tr: Tracer, x: Any, approximate: Any = "none", who: str = "gelu") -> Any:
    """GeLU of ``x``: ``x Phi(x) = x/2 (1 + erf(x/sqrt 2))`` (``approximate='none'``) or its tanh
    form ``x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3)))`` (``'tanh'``), composed of table ops
    (their derivatives come from SymPy)."""
    if approximate not in ("none", "tanh"):
        raise tr.error(f"{who}: approximate must be 'none' or 'tanh', got {approximate!r}", ArgumentError)
    x = tr.atom(x)
    if x.dtype.kind != "f":
        x = tr.cast(x, np.dtype(np.float32))
    if approximate == "none":
        inner = tr.elementwise("erf", [tr.elementwise("mul", [x, 0.7071067811865476])])
    else:
        cube = tr.elementwise("mul", [tr.elementwise("mul", [x, x]), x])
        poly = tr.elementwise("add", [x, tr.elementwise("mul", [cube, 0.044715])])
        inner = tr.elementwise("tanh", [tr.elementwise("mul", [poly, 0.7978845608028654])])
    half_x = tr.elementwise("mul", [x, 0.5])
    return tr.elementwise("mul", [half_x, tr.elementwise("add", [inner, 1.0])])


# ---- Dropout (issue 15)
def lower_dropout(tr: Tracer, x: Any, p: Any, key: Any, seed: int = 0, who: str = "dropout") -> tuple[Any, Any]:
    """Dropout of ``x`` in training mode: ``(x * mask / (1 - p), mask)`` with ``mask`` true with
    probability ``1 - p``, drawn by the counter-based ``random_uniform`` op from the Parameter
    ``key`` (which the program advances by one: the next random op draws other numbers) and the
    op's ``seed``. The mask is a primal value: the derivative is ``mask / (1 - p)``, exactly."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) < 1.0:
        raise tr.error(f"{who}: p (the probability of dropping) must be a number in [0, 1), got {p!r}", ArgumentError)
    a = tr.atom(x)
    if a.dtype.kind != "f":
        raise tr.error(f"{who}: the input must be a float tensor, got dtype {a.dtype}", ArgumentError)
    k = tr.atom(key)
    u = tr.bind("random_uniform", [k], seed=int(seed), shape=tuple(a.shape), dtype=a.dtype)
    tr.assign(key, tr.elementwise("add", [k, 1]), who)
    keep = 1.0 - float(p)
    mask = lower_compare(tr, "less", u, keep)
    return lower_select(tr, mask, tr.elementwise("mul", [a, 1.0 / keep]), 0.0), mask


# ---- softmax, argmax and the tensor methods (issue 15)
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
    return lower_arg_extremum(tr, "argmin" if smallest else "argmax", x, axis, keepdims, np.int32)


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
    if axis is None or axis == ():
        axes = {i for i, d in enumerate(a.shape) if d == 1}
    else:
        axes = {_axis(tr, "Squeeze", i, len(a.shape)) for i in _ints(tr, "Squeeze: the axis", axis)}
        for i in axes:
            if a.shape[i] != 1:
                raise tr.error(
                    f"Squeeze: axis {i} of a tensor of shape {fmt_shape(a.shape)} has length {a.shape[i]}, not 1",
                    ShapeError,
                )
    return lower_reshape(tr, a, tuple(d for i, d in enumerate(a.shape) if i not in axes))


def lower_expand_dims(tr: Tracer, x: Any, axis: Any) -> Any:
    a = tr.atom(x)
    shape = list(a.shape)
    axes = _ints(tr, "ExpandDims: the axis", axis)
    ndim = len(shape) + len(axes)
    for ax in sorted(_axis(tr, "ExpandDims", i, ndim) for i in axes):
        shape.insert(ax, 1)
    return lower_reshape(tr, a, tuple(shape))


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
        "erf",
        "erfc",
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
    ``clip``, ``squeeze``, ``expand_dims``, ``flatten``, ``copy``, ``argmax``/``argmin``,
    ``all``/``any``)."""
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
    if name in ("copy", "clone"):
        # values in compiled code are never changed in place (`x[i] = v` makes a new value)
        _bind_args(tr, name, lambda: None, args, kwargs)
        return tr.atom(x)
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
    "copy",
    "clone",
    "argmax",
    "argmin",
    "all",
    "any",
}
TENSOR_METHODS |= MORE_TENSOR_METHODS


def lower_atleast(tr: Tracer, x: Any, n: int) -> Any:
    """``np.atleast_1d/2d/3d`` of one tensor (numpy's placement of the new axes)."""
    a = tr.atom(x)
    s = a.shape
    if len(s) >= n:
        return a
    if n == 1:
        shape: tuple = (1,)
    elif n == 2:
        shape = (1,) * (2 - len(s)) + s
    else:
        shape = {0: (1, 1, 1), 1: (1, s[0], 1), 2: (*s, 1)}[len(s)]
    return lower_reshape(tr, a, shape)


def lower_tile(tr: Tracer, x: Any, multiples: Any) -> Any:
    """``tile(x, multiples)``: a broadcast of ``x`` with an axis of length ``r`` before each of
    its axes, reshaped (the adjoint sums the copies)."""
    a = tr.atom(x)
    reps = _ints(tr, "Tile: multiples", multiples)
    shape = (1,) * (len(reps) - len(a.shape)) + a.shape
    reps = (1,) * (len(shape) - len(reps)) + reps
    if min(reps, default=1) < 0:
        raise tr.error(f"Tile: multiples must be non-negative, got {reps}", ArgumentError)
    a = lower_reshape(tr, a, shape)
    if all(r == 1 for r in reps):
        return a
    inter = lower_reshape(tr, a, tuple(v for d in shape for v in (1, d)))
    big = tuple(v for r, d in zip(reps, shape) for v in (r, d))
    b = tr.bind1("broadcast_to", inter, shape=big)
    return lower_reshape(tr, b, tuple(r * d for r, d in zip(reps, shape)))


def lower_broadcast_to(tr: Tracer, x: Any, shape: Any) -> Any:
    a = tr.atom(x)
    shape = _ints(tr, "BroadcastTo: the shape", shape)
    shape = tuple(a.shape[i - len(shape) + len(a.shape)] if s == -1 else s for i, s in enumerate(shape))
    if shape == a.shape:
        return a
    return tr.bind1("broadcast_to", a, shape=shape)


# padding modes other than "constant", by numpy's np.pad name: (the most a pad may have, the rule)
PAD_MODES = {
    "reflect": (lambda n: n - 1, "the axis length - 1 (the edge is not repeated)"),
    "symmetric": (lambda n: n, "the axis length (the edge is repeated)"),
    "edge": (lambda n: None, ""),
    "wrap": (lambda n: n, "the axis length"),
}


def lower_pad(tr: Tracer, x: Any, paddings: Any, value: Any = 0, mode: str = "constant", display: str = "Pad") -> Any:
    """``x`` with ``paddings[i] = (before, after)`` elements around axis ``i``: of ``value``
    (``mode="constant"``), or, by numpy's names, the elements mirrored at the edge
    (``"reflect"``), mirrored with the edge repeated (``"symmetric"``), the edge element
    (``"edge"``) or the other end's (``"wrap"``). A non-constant pad is a gather of each axis at
    the source indices (their derivative adds the padded copies' cotangents back)."""
    if mode != "constant":
        return _pad_by_gather(tr, x, paddings, mode, display)
    a = tr.atom(x)
    try:
        pads = [tuple(int(v) for v in p) for p in paddings]
    except TypeError:
        raise tr.error(
            f"Pad: paddings must be ((before, after), ...) of ints, got {paddings!r}", ArgumentError
        ) from None
    if len(pads) != len(a.shape) or any(len(p) != 2 or min(p) < 0 for p in pads):
        raise tr.error(
            f"Pad: paddings must give a non-negative (before, after) pair for each of the {len(a.shape)} axes, "
            f"got {paddings!r}",
            ArgumentError,
        )
    if all(p == (0, 0) for p in pads):
        return a
    shape = tuple(d + lo + hi for d, (lo, hi) in zip(a.shape, pads))
    index = tuple(("slice", lo, lo + d, None) for d, (lo, _) in zip(a.shape, pads))
    out = tr.bind1("scatter", a, index=index, shape=shape)
    if isinstance(value, (int, float)) and value == 0:
        return out
    mask = np.zeros(shape, np.bool_)
    mask[tuple(slice(lo, lo + d) for d, (lo, _) in zip(a.shape, pads))] = True
    return lower_select(tr, mask, out, value)


def _pad_by_gather(tr: Tracer, x: Any, paddings: Any, mode: str, display: str) -> Any:
    a = tr.atom(x)
    try:
        pads = [tuple(int(v) for v in p) for p in paddings]
    except TypeError:
        raise tr.error(
            f"{display}: paddings must be ((before, after), ...) of ints, got {paddings!r}", ArgumentError
        ) from None
    if len(pads) != len(a.shape) or any(len(p) != 2 or min(p) < 0 for p in pads):
        raise tr.error(
            f"{display}: paddings must give a non-negative (before, after) pair for each of the {len(a.shape)} axes "
            f"of the input of shape {fmt_shape(a.shape)}, got {paddings!r}",
            ArgumentError,
        )
    most, rule = PAD_MODES[mode]
    out = a
    for ax, (lo, hi) in enumerate(pads):
        if lo == hi == 0:
            continue
        n = a.shape[ax]
        limit = most(n)
        if n == 0 or (limit is not None and max(lo, hi) > limit):
            raise tr.error(
                f"{display}: padding ({lo}, {hi}) of axis {ax} of the input of shape {fmt_shape(a.shape)} is too "
                f"large for mode {mode!r}: at most {rule}, {limit}",
                ShapeError,
            )
        idx = np.pad(np.arange(n, dtype=np.int64), (lo, hi), mode=mode)
        out = tr.bind1("gather", out, tr.atom(idx), axis=ax)
    return out


def lower_addn(tr: Tracer, xs: Any) -> Any:
    atoms = _tensors(tr, "AddN", xs)
    out = atoms[0]
    for a in atoms[1:]:
        out = tr.elementwise("add", [out, a])
    return out


def lower_norm(tr: Tracer, x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    """The 2-norm (Frobenius over several axes), ``ord=1`` (sum of magnitudes) or ``ord=inf``
    (largest magnitude) of ``x`` over ``axis`` (all axes by default)."""
    a = tr.atom(x)
    if a.dtype.kind != "f":
        a = tr.cast(a, np.dtype(np.float32))
    if ord in (None, 2, "fro"):
        return tr.elementwise(
            "sqrt", [lower_reduce(tr, "reduce_sum", "norm", tr.elementwise("square", [a]), axis, keepdims)]
        )
    if ord == 1:
        return lower_reduce(tr, "reduce_sum", "norm", tr.elementwise("abs", [a]), axis, keepdims)
    if ord in (np.inf, float("inf"), "inf"):
        return lower_reduce(tr, "reduce_max", "norm", tr.elementwise("abs", [a]), axis, keepdims)
    raise tr.error(f"norm: ord={ord!r} is not supported (supported: None, 2, 'fro', 1, inf)", UnsupportedSyntaxError)


def lower_arg_extremum(
    tr: Tracer, op: str, x: Any, axis: Any = None, keepdims: bool = False, dtype: Any = np.int64
) -> Any:
    """The index of the largest (``argmax``) or smallest (``argmin``) element along ``axis``
    (of the flattened tensor when ``axis`` is None)."""
    a = tr.atom(x)
    display = "Argmax" if op == "argmax" else "Argmin"
    if axis is None:
        flat = lower_reshape(tr, a, (a.aval.size,))
        r = tr.bind1(op, flat, axis=0)
        if keepdims:
            r = lower_reshape(tr, r, (1,) * len(a.shape))
    else:
        ax = _axis(tr, display, axis, len(a.shape))
        r = tr.bind1(op, a, axis=ax)
        if keepdims:
            r = lower_reshape(tr, r, a.shape[:ax] + (1,) + a.shape[ax + 1 :])
    return lower_cast(tr, r, dtype)


def lower_cumsum(tr: Tracer, x: Any, axis: Any = 0, exclusive: bool = False, reverse: bool = False) -> Any:
    a = tr.atom(x)
    ax = _axis(tr, "CumSum", axis, len(a.shape))
    r = tr.bind1("cumsum", a, axis=ax, reverse=bool(reverse))
    return tr.elementwise("sub", [r, a]) if exclusive else r


def lower_cumprod(
    tr: Tracer, x: Any, axis: Any = 0, exclusive: bool = False, reverse: bool = False, display: str = "CumProd"
) -> Any:
    """Cumulative product along ``axis`` (its derivative divides by nothing: exact at zeros)."""
    a = tr.atom(x)
    if a.dtype.kind == "b":
        a = tr.cast(a, np.dtype(np.int64))
    ax = _axis(tr, display, axis, len(a.shape))
    return tr.bind1("cumprod", a, axis=ax, reverse=bool(reverse), exclusive=bool(exclusive))


def lower_prod(tr: Tracer, x: Any, axis: Any = None, keepdims: bool = False, display: str = "ReduceProd") -> Any:
    """The product over ``axis`` (all axes by default): the reduced axes moved last and merged,
    and the first element of their reverse cumulative product, so the derivative is the
    cumulative product's (no division by x: exact where x has zeros)."""
    a = tr.atom(x)
    if isinstance(axis, list):
        axis = tuple(axis)
    if not (axis is None or isinstance(axis, (int, np.integer, tuple))):
        raise tr.error(f"{display}: axis must be an int, a tuple of ints or None, got {axis!r}", ArgumentError)
    if a.dtype.kind == "b":
        a = tr.cast(a, np.dtype(np.int64))
    nd = len(a.shape)
    axes = normalize_axes(display, axis, nd)
    if nd == 0 or not axes:
        return a
    kept = [d for d in range(nd) if d not in axes]
    m = int(np.prod([a.shape[d] for d in axes], dtype=np.int64))
    out_shape = tuple(a.shape[d] for d in kept)
    if m == 0:
        r = tr.fill(out_shape, 1, a.dtype)
    else:
        perm = tuple(kept) + axes
        t = tr.bind1("transpose", a, perm=perm) if perm != tuple(range(nd)) else a
        t = tr.bind1("reshape", t, shape=out_shape + (m,)) if len(axes) != 1 else t
        c = tr.bind1("cumprod", t, axis=len(out_shape), reverse=True, exclusive=False)
        r = tr.bind1("gather", c, tr.atom(np.asarray(0, np.int64)), axis=len(out_shape))
    if keepdims:
        r = lower_reshape(tr, r, tuple(1 if d in axes else a.shape[d] for d in range(nd)))
    return r


def _index_tensor(tr: Tracer, display: str, idx: Any) -> Atom:
    if isinstance(idx, (list, tuple, int, np.integer, np.ndarray)) and not isinstance(idx, bool):
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu" and idx.size:
            raise tr.error(f"{display}: indices must be integers, got {idx.dtype}", ArgumentError)
        idx = idx.astype(np.int64)
    a = tr.atom(idx)
    if a.dtype.kind not in "iu":
        raise tr.error(f"{display}: indices must be an integer tensor, got {a.aval}", ArgumentError)
    return a


def lower_gather(tr: Tracer, x: Any, indices: Any, axis: Any = 0) -> Any:
    """``x``'s slices along ``axis`` at ``indices`` (an integer tensor of any shape)."""
    a = tr.atom(x)
    idx = _index_tensor(tr, "Gather", indices)
    ax = _axis(tr, "Gather", axis, len(a.shape))
    return tr.bind1("gather", a, idx, axis=ax)


def lower_gather_batched(tr: Tracer, x: Any, indices: Any, axis: Any, batch_dims: int, display: str = "Gather") -> Any:
    """Gather with ``batch_dims`` leading axes shared by ``x`` and ``indices``: batch ``b`` takes
    ``x[b]``'s slices along ``axis`` at ``indices[b]`` (TensorFlow's and MindSpore's rule). The
    batch axes and ``axis`` are merged into one axis and the indices offset by batch, so it is
    one plain gather (the indices are checked against ``axis``'s length first)."""
    a = tr.atom(x)
    idx = _index_tensor(tr, display, indices)
    ax = _axis(tr, display, axis, len(a.shape))
    bd = int(batch_dims)
    if bd < 0:
        bd += len(idx.shape)
    if not 0 <= bd <= min(len(idx.shape), ax):
        raise tr.error(
            f"{display}: batch_dims {batch_dims} must lie in [0, min(indices rank, axis)] = [0, "
            f"{min(len(idx.shape), ax)}] for params of shape {fmt_shape(a.shape)}, indices of shape "
            f"{fmt_shape(idx.shape)} and axis {ax}",
            ShapeError,
        )
    if bd == 0:
        return tr.bind1("gather", a, idx, axis=ax)
    batch = tuple(a.shape[:bd])
    if tuple(idx.shape[:bd]) != batch:
        raise tr.error(
            f"{display}: the first batch_dims={bd} axes of params (shape {fmt_shape(a.shape)}) and indices (shape "
            f"{fmt_shape(idx.shape)}) must be equal",
            ShapeError,
        )
    n = a.shape[ax]
    pre, post = list(range(bd, ax)), list(range(ax + 1, len(a.shape)))
    perm = tuple(range(bd)) + (ax,) + tuple(pre) + tuple(post)
    t = tr.bind1("transpose", a, perm=perm) if perm != tuple(range(len(a.shape))) else a
    nb = int(np.prod(batch, dtype=np.int64))
    rest = tuple(a.shape[d] for d in pre + post)
    flat_x = tr.bind1("reshape", t, shape=(nb * n,) + rest)
    rank_r = len(idx.shape) - bd
    offsets = (np.arange(nb, dtype=idx.dtype) * n).reshape(batch + (1,) * rank_r)
    flat_i = tr.elementwise("add", [_checked(tr, idx, n), tr.atom(offsets)])
    g = tr.bind1("gather", flat_x, flat_i, axis=0)  # batch + R + pre + post
    r0, p0 = bd, bd + rank_r
    order = (
        tuple(range(bd))
        + tuple(range(p0, p0 + len(pre)))
        + tuple(range(r0, r0 + rank_r))
        + tuple(range(p0 + len(pre), p0 + len(pre) + len(post)))
    )
    return tr.bind1("transpose", g, perm=order) if order != tuple(range(len(order))) else g


def _checked(tr: Tracer, idx: Atom, n: int) -> Atom:
    """``idx`` with negative indices counted from the end, checked to lie in ``[-n, n)`` when
    the program runs (a gather from ``arange(n)``)."""
    return tr.bind1("gather", tr.atom(np.arange(n, dtype=idx.dtype)), idx, axis=0)


def _linear_index(tr: Tracer, display: str, indices: Any, shape: tuple) -> tuple[Atom, int]:
    """The flat positions in the leading axes of ``shape`` that ``indices[..., :k]`` name."""
    idx = _index_tensor(tr, display, indices)
    if not idx.shape:
        raise tr.error(f"{display}: indices must have at least one axis, got a 0-d tensor", ShapeError)
    k = idx.shape[-1]
    if k > len(shape):
        raise tr.error(
            f"{display}: indices of shape {fmt_shape(idx.shape)} index {k} axes of a tensor of rank {len(shape)}",
            ShapeError,
        )
    lin: Atom | None = None
    stride = 1
    for j in reversed(range(k)):
        comp = _checked(tr, tr.bind1("getitem", idx, index=(Ellipsis, j)), shape[j])
        term = comp if stride == 1 else tr.elementwise("mul", [comp, stride])
        lin = term if lin is None else tr.elementwise("add", [lin, term])
        stride *= shape[j]
    assert lin is not None
    return lin, k


def lower_gather_nd(tr: Tracer, x: Any, indices: Any) -> Any:
    """``GatherNd``: ``out[i...] = x[indices[i..., 0], ..., indices[i..., k-1]]``."""
    a = tr.atom(x)
    lin, k = _linear_index(tr, "GatherNd", indices, a.shape)
    lead = int(np.prod(a.shape[:k], dtype=np.int64))
    flat = lower_reshape(tr, a, (lead,) + a.shape[k:])
    return tr.bind1("gather", flat, lin, axis=0)


def lower_scatter_nd(tr: Tracer, indices: Any, updates: Any, shape: Any, display: str = "ScatterNd") -> Any:
    """``ScatterNd``: zeros of ``shape`` with ``updates`` added at ``indices`` (repeated indices add up)."""
    shape = _ints(tr, f"{display}: the shape", shape)
    lin, k = _linear_index(tr, display, indices, shape)
    u = tr.atom(updates)
    want = lin.shape + shape[k:]
    if u.shape != want:
        raise tr.error(
            f"{display}: updates of shape {fmt_shape(u.shape)} do not fit; expected {fmt_shape(want)}", ShapeError
        )
    lead = int(np.prod(shape[:k], dtype=np.int64))
    out = tr.bind1("scatter_add", u, lin, axis=0, shape=(lead,) + shape[k:])
    return lower_reshape(tr, out, shape)


def lower_tensor_scatter(tr: Tracer, x: Any, indices: Any, updates: Any, add: bool) -> Any:
    """``TensorScatterAdd`` (``add``) or ``TensorScatterUpdate``: a new tensor, ``x`` with
    ``updates`` added at or written to ``indices``."""
    display = "TensorScatterAdd" if add else "TensorScatterUpdate"
    a = tr.atom(x)
    u = tr.cast(tr.atom(updates), a.dtype)
    scattered = lower_scatter_nd(tr, indices, u, a.shape, display)
    if add:
        return tr.elementwise("add", [a, scattered])
    ones = tr.fill(u.shape, 1, np.dtype(np.int32))
    hit = lower_scatter_nd(tr, indices, ones, a.shape, display)
    return lower_select(tr, tr.bind1("greater", hit, tr.lit(0, np.int32)), scattered, a)


def lower_gather_d(tr: Tracer, x: Any, dim: Any, index: Any) -> Any:
    """``GatherD``: ``out[i, j, ...] = x[.., index[i, j, ...], ..]`` with the index along ``dim``."""
    a = tr.atom(x)
    idx = _index_tensor(tr, "GatherD", index)
    ndim = len(a.shape)
    ax = _axis(tr, "GatherD", dim, ndim)
    if len(idx.shape) != ndim or any(i != ax and d > a.shape[i] for i, d in enumerate(idx.shape)):
        raise tr.error(
            f"GatherD: index of shape {fmt_shape(idx.shape)} does not fit x of shape {fmt_shape(a.shape)} (dim {ax})",
            ShapeError,
        )
    strides = [int(np.prod(a.shape[i + 1 :], dtype=np.int64)) for i in range(ndim)]
    offsets = sum(
        np.arange(d, dtype=np.int64).reshape((1,) * i + (d,) + (1,) * (ndim - 1 - i)) * strides[i]
        for i, d in enumerate(idx.shape)
        if i != ax
    )
    lin = tr.elementwise("mul", [_checked(tr, idx, a.shape[ax]), strides[ax]])
    if ndim > 1:
        lin = tr.elementwise("add", [lin, np.broadcast_to(offsets, idx.shape).copy()])
    flat = lower_reshape(tr, a, (a.aval.size,))
    return tr.bind1("gather", flat, tr.cast(lin, np.dtype(np.int64)), axis=0)


def lower_matmul(tr: Tracer, x: Any, y: Any, display: str = "MatMul") -> Any:
    """NumPy's ``matmul``: 1-D operands are a row (left) or a column (right) vector, removed
    from the result; batch axes broadcast."""
    a, b = tr.atoms([x, y])
    if not a.shape or not b.shape:
        raise tr.error(f"{display}: scalar operands are not allowed, use `*`", ArgumentError)
    a, b = tr.promote([a, b])
    if a.dtype != b.dtype:
        dt = np.result_type(a.dtype, b.dtype)
        a, b = tr.cast(a, dt), tr.cast(b, dt)
    a2 = lower_reshape(tr, a, (1, a.shape[0])) if len(a.shape) == 1 else a
    b2 = lower_reshape(tr, b, (b.shape[0], 1)) if len(b.shape) == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise tr.error(
            f"{display}: shapes {fmt_shape(a.shape)} and {fmt_shape(b.shape)} are not aligned "
            f"({a2.shape[-1]} != {b2.shape[-2]})",
            ShapeError,
        )
    op = "matmul" if len(a2.shape) == 2 and len(b2.shape) == 2 else "batch_matmul"
    r = tr.bind1(op, a2, b2, transpose_a=False, transpose_b=False)
    shape = r.shape
    if len(a.shape) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(b.shape) == 1:
        shape = shape[:-1]
    return lower_reshape(tr, r, shape)


def lower_batch_matmul(tr: Tracer, x: Any, y: Any, transpose_a: bool = False, transpose_b: bool = False) -> Any:
    a, b = tr.atoms([x, y])
    if len(a.shape) == 2 and len(b.shape) == 2:
        return tr.bind1("matmul", a, b, transpose_a=bool(transpose_a), transpose_b=bool(transpose_b))
    return tr.bind1("batch_matmul", a, b, transpose_a=bool(transpose_a), transpose_b=bool(transpose_b))


def lower_linalg(tr: Tracer, op: str, args: list) -> Any:
    """``matrix_inverse``, ``matrix_determinant`` or ``solve`` of float tensors (ints become float32)."""
    atoms = tr.atoms(args)
    dt = np.result_type(*[a.dtype for a in atoms])
    if dt.kind != "f":
        dt = np.dtype(np.float32)
    return tr.bind1(op, *[tr.cast(a, dt) for a in atoms])


def static_shape(tr: Tracer, shape: Any) -> tuple[int, ...]:
    """A shape known while compiling (an int or a tuple of ints)."""
    if isinstance(shape, (Var, Lit)) or is_tensor_value(shape):
        raise tr.error("the shape must be known while compiling (a tuple of ints)", ArgumentError)
    return _ints(tr, "the shape", shape)


def _method_arg_extremum(op: str):
    def lower(tr: Tracer, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return lower_arg_extremum(tr, op, x, axis, keepdims, np.int64)

    return lower


def _method_swapaxes(tr: Tracer, x: Any, axis0: Any, axis1: Any) -> Any:
    a = tr.atom(x)
    n = len(a.shape)
    i, j = _axis(tr, "swapaxes", axis0, n), _axis(tr, "swapaxes", axis1, n)
    perm = list(range(n))
    perm[i], perm[j] = j, i
    return lower_transpose(tr, a, tuple(perm))


# Tensor methods of the ops above (``x.squeeze()``, ``x.argmax(axis)``, ...), staged by
# :func:`tensor_method`: name -> lowering(tracer, tensor, *args, **kwargs)
STRUCTURAL_METHODS: dict[str, Any] = {
    "squeeze": lambda tr, x, axis=None: lower_squeeze(tr, x, axis),
    "expand_dims": lower_expand_dims,
    "unsqueeze": lower_expand_dims,
    "argmax": _method_arg_extremum("argmax"),
    "argmin": _method_arg_extremum("argmin"),
    "cumsum": lambda tr, x, axis=None, dtype=None: lower_cumsum(
        tr, lower_reshape(tr, x, (-1,)) if axis is None else x, 0 if axis is None else axis
    ),
    "tile": lower_tile,
    "prod": lambda tr, x, axis=None, keep_dims=False, dtype=None: lower_cast(
        tr, lower_prod(tr, x, axis, keep_dims, "Tensor.prod"), tr.atom(x).dtype if dtype is None else dtype
    ),
    "cumprod": lambda tr, x, dim, dtype=None: lower_cast(
        tr, lower_cumprod(tr, x, dim, display="Tensor.cumprod"), tr.atom(x).dtype if dtype is None else dtype
    ),
    "broadcast_to": lower_broadcast_to,
    "swapaxes": _method_swapaxes,
    "norm": lambda tr, x, ord=None, dim=None, keepdim=False: lower_norm(tr, x, ord, dim, keepdim),
    "flatten": lambda tr, x: lower_reshape(tr, x, (-1,)),
    "ravel": lambda tr, x: lower_reshape(tr, x, (-1,)),
}
TENSOR_METHODS |= set(STRUCTURAL_METHODS)
