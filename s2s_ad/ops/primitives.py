"""MindSpore-style primitive classes (``ops.MatMul()``, ``ops.Sin()``, ...).

Elementwise primitive classes are generated from the op table; a primitive instance is a
callable that runs eagerly on Tensors, and that is staged inside compiled code through its
``__s2s_stage__`` (the staging protocol of :mod:`s2s_ad.trace`); the structural lowerings
live in :mod:`s2s_ad.trace.lowering`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtype as mstype
from ..common.initializer import RANDOM_KEY
from ..errors import ArgumentError, NotSupportedError, ShapeError
from ..primitives import ELEMENTWISE, get_op
from ..runtime import eager
from ..trace import lowering as L
from ..trace.lowering import (
    lower_cast,
    lower_compare,
    lower_conv2d,
    lower_dropout,
    lower_gelu,
    lower_one_hot,
    lower_pool,
    lower_reduce,
    lower_reshape,
    lower_select,
    lower_softmax,
    lower_transpose,
)
from ..trace.protocol import register_constructor, register_static
from ..trace.tracer import Tracer


class Primitive:
    """Base class: subclasses implement ``lower(tracer, *args)``."""

    def __init__(self, **attrs: Any):
        self._attrs = attrs

    @property
    def name(self) -> str:
        return type(self).__name__

    def _key(self) -> tuple:
        return (type(self).__name__, tuple(sorted(self._attrs.items())))

    _weak_scalars = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return eager(self._key(), self.__s2s_stage__, args, kwargs, self._weak_scalars)

    def __s2s_stage__(self, tr: Tracer, args: list, kwargs: dict) -> Any:
        return self.lower(tr, *args, **kwargs)

    def lower(self, tr: Tracer, *args: Any) -> Any:  # pragma: no cover - abstract
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


class GeLU(Primitive):
    """``GeLU()(x)``: ``x Phi(x) = x/2 (1 + erf(x/sqrt 2))``, the exact (erf) form."""

    def lower(self, fe, x):
        return lower_gelu(fe, x, "none", "GeLU")


class Dropout(Primitive):
    """``Dropout(keep_prob=0.5, Seed0=0, Seed1=0)(x)``: ``(output, mask)``, each element kept with
    probability ``keep_prob`` (and scaled by ``1 / keep_prob``); the seeds select the op's stream
    of the counter-based generator (see :func:`s2s_ad.ops.dropout`)."""

    def __init__(self, keep_prob: float = 0.5, Seed0: int = 0, Seed1: int = 0):  # noqa: N803 - MindSpore's names
        super().__init__(keep_prob=keep_prob, Seed0=Seed0, Seed1=Seed1)

    def lower(self, fe, x):
        a = self._attrs
        keep = a["keep_prob"]
        if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
            raise fe.error(f"Dropout: keep_prob must be in (0, 1], got {a['keep_prob']!r}", ArgumentError)
        seed = (int(a["Seed0"]) << 32) ^ int(a["Seed1"])
        return lower_dropout(fe, x, 1.0 - float(a["keep_prob"]), RANDOM_KEY, seed, "Dropout")


class Select(Primitive):
    """``Select()(cond, x, y)``: ``x`` where the bool tensor ``cond`` is true, else ``y``."""

    # Python numbers stay compile-time constants when called eagerly, so that they are typed
    # after ``x``/``y`` only (weak scalars would take the bool condition's dtype into account).

    def lower(self, fe, cond, x, y):
        return lower_select(fe, cond, x, y)


ELEMENTWISE_CLASSES["Select"] = Select


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


class Cast(Primitive):
    """``Cast()(x, dtype)``."""

    def lower(self, fe, x, dtype):
        return lower_cast(fe, x, dtype)


class Reshape(Primitive):
    """``Reshape()(x, shape)``."""

    def lower(self, fe, x, shape):
        return lower_reshape(fe, x, shape)


class Transpose(Primitive):
    """``Transpose()(x, perm)``."""

    def lower(self, fe, x, perm):
        return lower_transpose(fe, x, perm)


class OneHot(Primitive):
    """``OneHot(axis=-1)(indices, depth, on_value, off_value)``."""

    def __init__(self, axis: int = -1):
        super().__init__(axis=int(axis))

    def lower(self, fe, indices, depth, on_value, off_value):
        return lower_one_hot(fe, indices, depth, on_value, off_value, self._attrs["axis"])


# Primitive classes are constructed while compiling (``ops.Sin()`` inside construct); their
# attributes are compile-time values.
register_constructor(Primitive)
register_static(Primitive)


# ---- convolution and pooling (issue 15)
class Conv2D(Primitive):
    """``Conv2D(out_channel, kernel_size, mode=1, pad_mode="valid", pad=0, stride=1, dilation=1,
    group=1, data_format="NCHW")(x, weight)``: 2-D convolution (cross-correlation) of an NCHW
    input with an ``(out_channel, in_channel, kh, kw)`` weight. ``pad_mode``: "valid" (no
    padding), "same" (output size ``ceil(H / stride)``) or "pad" (``pad``: an int or
    ``(top, bottom, left, right)``)."""

    def __init__(
        self,
        out_channel: int,
        kernel_size: Any,
        mode: int = 1,
        pad_mode: str = "valid",
        pad: Any = 0,
        stride: Any = 1,
        dilation: Any = 1,
        group: int = 1,
        data_format: str = "NCHW",
    ):
        if data_format != "NCHW":
            raise NotSupportedError(f"Conv2D: data_format {data_format!r} is not supported; only 'NCHW'")
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        super().__init__(
            out_channel=int(out_channel),
            kernel_size=ks,
            pad_mode=str(pad_mode),
            pad=pad if isinstance(pad, int) else tuple(pad),
            stride=stride if isinstance(stride, int) else tuple(stride),
            dilation=dilation if isinstance(dilation, int) else tuple(dilation),
            group=int(group),
        )

    def lower(self, fe, x, weight):
        a = self._attrs
        w = fe.atom(weight)
        if len(w.shape) == 4 and (w.shape[0] != a["out_channel"] or tuple(w.shape[2:]) != a["kernel_size"]):
            raise fe.error(
                f"Conv2D: the weight has shape {w.shape}, expected ({a['out_channel']}, in_channel, "
                f"{a['kernel_size'][0]}, {a['kernel_size'][1]}) for out_channel={a['out_channel']} and "
                f"kernel_size={a['kernel_size']}",
                ShapeError,
            )
        return lower_conv2d(fe, x, w, a["stride"], a["pad_mode"], a["pad"], a["dilation"], a["group"])


def _pool_class(kind: str, display: str) -> type:
    def __init__(self, kernel_size: Any = 1, strides: Any = 1, pad_mode: str = "valid", data_format: str = "NCHW"):
        if data_format != "NCHW":
            raise NotSupportedError(f"{display}: data_format {data_format!r} is not supported; only 'NCHW'")
        Primitive.__init__(
            self,
            kernel_size=kernel_size if isinstance(kernel_size, int) else tuple(kernel_size),
            strides=strides if isinstance(strides, int) else tuple(strides),
            pad_mode=str(pad_mode),
        )

    def lower(self, fe, x):
        a = self._attrs
        return lower_pool(fe, kind, x, a["kernel_size"], a["strides"], a["pad_mode"], display=display)

    what = "maximum" if kind == "max" else "mean (over the input positions, padding excluded)"
    doc = (
        f'``{display}(kernel_size=1, strides=1, pad_mode="valid", data_format="NCHW")(x)``: the {what} '
        'of each window of an NCHW input; pad_mode "valid" or "same".'
    )
    return type(display, (Primitive,), {"__init__": __init__, "lower": lower, "__doc__": doc})


MaxPool = _pool_class("max", "MaxPool")
AvgPool = _pool_class("avg", "AvgPool")


# ---- softmax (issue 15)
def _softmax_class(display: str, log: bool) -> type:
    def __init__(self, axis: Any = -1):
        Primitive.__init__(self, axis=axis if isinstance(axis, int) else tuple(axis))

    def lower(self, fe, x):
        return lower_softmax(fe, x, self._attrs["axis"], log)

    what = "x - logsumexp(x)" if log else "exp(x) / sum(exp(x))"
    doc = f"``{display}(axis=-1)(x)``: {what} over ``axis``, computed stably (shifted by the maximum)."
    return type(display, (Primitive,), {"__init__": __init__, "lower": lower, "__doc__": doc})


Softmax = _softmax_class("Softmax", False)
LogSoftmax = _softmax_class("LogSoftmax", True)


# ---- structural, indexing and linalg ops (issue 15)
class Concat(Primitive):
    """``Concat(axis=0)(tensors)``."""

    def __init__(self, axis: int = 0):
        super().__init__(axis=int(axis))

    def lower(self, fe, tensors):
        return L.lower_concat(fe, tensors, self._attrs["axis"], "Concat")


class Stack(Primitive):
    """``Stack(axis=0)(tensors)``."""

    def __init__(self, axis: int = 0):
        super().__init__(axis=int(axis))

    def lower(self, fe, tensors):
        return L.lower_stack(fe, tensors, self._attrs["axis"], "Stack")


class Split(Primitive):
    """``Split(axis=0, output_num=1)(x)``: a tuple of ``output_num`` equal parts."""

    def __init__(self, axis: int = 0, output_num: int = 1):
        super().__init__(axis=int(axis), output_num=int(output_num))

    def lower(self, fe, x):
        return L.lower_split(fe, x, self._attrs["axis"], self._attrs["output_num"], "Split")


class Tile(Primitive):
    """``Tile()(x, multiples)``."""

    def lower(self, fe, x, multiples):
        return L.lower_tile(fe, x, multiples)


class BroadcastTo(Primitive):
    """``BroadcastTo(shape)(x)`` (-1 keeps an axis)."""

    def __init__(self, shape: tuple):
        super().__init__(shape=tuple(shape))

    def lower(self, fe, x):
        return L.lower_broadcast_to(fe, x, self._attrs["shape"])


class Squeeze(Primitive):
    """``Squeeze(axis=())(x)``: axes of length 1 removed (all of them by default)."""

    def __init__(self, axis: int | tuple = ()):
        super().__init__(axis=axis if isinstance(axis, int) else tuple(axis))

    def lower(self, fe, x):
        return L.lower_squeeze(fe, x, self._attrs["axis"])


class ExpandDims(Primitive):
    """``ExpandDims()(x, axis)``."""

    def lower(self, fe, x, axis):
        return L.lower_expand_dims(fe, x, axis)


class _StaticProperty(Primitive):
    """A property of a tensor known at compile time (a Python value, in and out of compiled code)."""

    def _of(self, shape: tuple[int, ...]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        return self._of(tuple(int(d) for d in np.shape(x)))

    def lower(self, fe, x):
        return self._of(tuple(fe.atom(x).shape))


class Shape(_StaticProperty):
    """``Shape()(x)``: the shape of ``x``, a tuple of ints."""

    def _of(self, shape):
        return shape


class Rank(_StaticProperty):
    """``Rank()(x)``: the number of dimensions of ``x``, an int."""

    def _of(self, shape):
        return len(shape)


class Size(_StaticProperty):
    """``Size()(x)``: the number of elements of ``x``, an int."""

    def _of(self, shape):
        return int(np.prod(shape, dtype=np.int64))


def _like_class(display: str, value: float) -> type:
    def lower(self, fe, x):
        a = fe.atom(x)
        return fe.fill(a.shape, value, a.dtype)

    return type(display, (Primitive,), {"lower": lower, "__doc__": f"``{display}()(x)``."})


OnesLike = _like_class("OnesLike", 1.0)
ZerosLike = _like_class("ZerosLike", 0.0)


class Pad(Primitive):
    """``Pad(paddings)(x)``: ``paddings[i] = (before, after)`` zeros around axis ``i``."""

    def __init__(self, paddings: tuple):
        super().__init__(paddings=tuple(tuple(int(v) for v in p) for p in paddings))

    def lower(self, fe, x):
        return L.lower_pad(fe, x, self._attrs["paddings"])


class MirrorPad(Primitive):
    """``MirrorPad(mode="REFLECT")(x, paddings)``: ``paddings[i] = (before, after)`` elements
    mirrored around axis ``i``; ``"REFLECT"`` leaves the edge out, ``"SYMMETRIC"`` repeats it."""

    def __init__(self, mode: str = "REFLECT"):
        if mode not in ("REFLECT", "SYMMETRIC"):
            raise ArgumentError(f"MirrorPad: mode must be 'REFLECT' or 'SYMMETRIC', got {mode!r}")
        super().__init__(mode=mode)

    def lower(self, fe, x, paddings):
        pads = np.asarray(paddings.asnumpy() if hasattr(paddings, "asnumpy") else paddings).tolist()
        return L.lower_pad(fe, x, pads, 0, self._attrs["mode"].lower(), "MirrorPad")


class AddN(Primitive):
    """``AddN()(inputs)``: the sum of a tuple or list of tensors."""

    def lower(self, fe, inputs):
        return L.lower_addn(fe, inputs)


class CumSum(Primitive):
    """``CumSum(exclusive=False, reverse=False)(x, axis)``."""

    def __init__(self, exclusive: bool = False, reverse: bool = False):
        super().__init__(exclusive=bool(exclusive), reverse=bool(reverse))

    def lower(self, fe, x, axis):
        return L.lower_cumsum(fe, x, axis, self._attrs["exclusive"], self._attrs["reverse"])


class CumProd(Primitive):
    """``CumProd(exclusive=False, reverse=False)(x, axis)``: cumulative product along ``axis``."""

    def __init__(self, exclusive: bool = False, reverse: bool = False):
        super().__init__(exclusive=bool(exclusive), reverse=bool(reverse))

    def lower(self, fe, x, axis):
        return L.lower_cumprod(fe, x, axis, self._attrs["exclusive"], self._attrs["reverse"])


class ReduceProd(Primitive):
    """``ReduceProd(keep_dims=False)(x, axis=())``: the product over ``axis`` (all axes by default)."""

    def __init__(self, keep_dims: bool = False):
        super().__init__(keep_dims=bool(keep_dims))

    def lower(self, fe, x, axis=()):
        return L.lower_prod(fe, x, axis, self._attrs["keep_dims"])


def _arg_class(op: str, display: str) -> type:
    def __init__(self, axis: int = -1, output_type: Any = np.int32):
        Primitive.__init__(self, axis=int(axis), output_type=np.dtype(mstype.to_np(output_type)))

    def lower(self, fe, x):
        return L.lower_arg_extremum(fe, op, x, self._attrs["axis"], False, self._attrs["output_type"])

    doc = f"``{display}(axis=-1, output_type=int32)(x)``: indices (not differentiable)."
    return type(display, (Primitive,), {"__init__": __init__, "lower": lower, "__doc__": doc})


Argmax = _arg_class("argmax", "Argmax")
Argmin = _arg_class("argmin", "Argmin")


class Gather(Primitive):
    """``Gather(batch_dims=0)()(input_params, input_indices, axis)``: slices along ``axis`` at integer
    indices; the first ``batch_dims`` axes of params and indices are batch axes."""

    def __init__(self, batch_dims: int = 0):
        super().__init__(batch_dims=int(batch_dims))

    def lower(self, fe, input_params, input_indices, axis):
        if self._attrs["batch_dims"]:
            return L.lower_gather_batched(fe, input_params, input_indices, axis, self._attrs["batch_dims"])
        return L.lower_gather(fe, input_params, input_indices, axis)


class GatherD(Primitive):
    """``GatherD()(x, dim, index)``."""

    def lower(self, fe, x, dim, index):
        return L.lower_gather_d(fe, x, dim, index)


class GatherNd(Primitive):
    """``GatherNd()(input_x, indices)``."""

    def lower(self, fe, input_x, indices):
        return L.lower_gather_nd(fe, input_x, indices)


class ScatterNd(Primitive):
    """``ScatterNd()(indices, updates, shape)``: updates added into zeros of ``shape``."""

    def lower(self, fe, indices, updates, shape):
        return L.lower_scatter_nd(fe, indices, updates, shape)


class TensorScatterAdd(Primitive):
    """``TensorScatterAdd()(input_x, indices, updates)``: a new tensor."""

    def lower(self, fe, input_x, indices, updates):
        return L.lower_tensor_scatter(fe, input_x, indices, updates, True)


class TensorScatterUpdate(Primitive):
    """``TensorScatterUpdate()(input_x, indices, updates)``: a new tensor."""

    def lower(self, fe, input_x, indices, updates):
        return L.lower_tensor_scatter(fe, input_x, indices, updates, False)


class BatchMatMul(Primitive):
    """``BatchMatMul(transpose_a=False, transpose_b=False)(x, y)``: batch axes broadcast."""

    def __init__(self, transpose_a: bool = False, transpose_b: bool = False):
        super().__init__(transpose_a=bool(transpose_a), transpose_b=bool(transpose_b))

    def lower(self, fe, x, y):
        return L.lower_batch_matmul(fe, x, y, **self._attrs)


class MatrixInverse(Primitive):
    """``MatrixInverse(adjoint=False)(x)`` of a square 2-D float tensor."""

    def __init__(self, adjoint: bool = False):
        super().__init__(adjoint=bool(adjoint))

    def lower(self, fe, x):
        a = fe.atom(x)
        if self._attrs["adjoint"]:
            a = lower_transpose(fe, a, (1, 0))
        return L.lower_linalg(fe, "matrix_inverse", [a])


class MatrixDeterminant(Primitive):
    """``MatrixDeterminant()(x)`` of a square 2-D float tensor."""

    def lower(self, fe, x):
        return L.lower_linalg(fe, "matrix_determinant", [x])


TensorAdd = ELEMENTWISE_CLASSES["Add"]
