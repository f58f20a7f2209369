"""Functional forms (``ops.sin(x)``, ``ops.matmul(x, y)``, ``ops.stop_gradient(x)``, ...).

Each is a plain function that runs eagerly on Tensors; inside compiled code it is staged by
the lowering registered for it with :func:`s2s_ad.trace.register_call`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import dtype as mstype
from ..common.initializer import RANDOM_KEY
from ..errors import ArgumentError, NotSupportedError, ShapeError
from ..primitives import ELEMENTWISE
from ..runtime import eager
from ..trace import lowering as L
from ..trace.lowering import (
    lower_cast,
    lower_clip,
    lower_compare,
    lower_conv2d,
    lower_one_hot,
    lower_pool,
    lower_reduce,
    lower_reshape,
    lower_select,
    lower_softmax,
    lower_transpose,
    more_tensor_methods,
)
from ..trace.protocol import register_call
from .primitives import COMPARE_OPS


def _functional(name: str, lower: Callable[..., Any], doc: str, weak_scalars: bool = False) -> Callable[..., Any]:
    def f(*args: Any, **kwargs: Any) -> Any:
        return eager(("fn", name), lower, args, kwargs, weak_scalars)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = doc
    register_call(f, lambda _f, tr, args, kwargs: lower(tr, args, kwargs))
    return f


def _elementwise(op: str) -> Callable[..., Any]:
    def lower(fe, args, kwargs):
        return fe.elementwise(op, list(args))

    return _functional(op, lower, f"Elementwise ``{op}`` (from the op table); broadcasts like numpy.", True)


ELEMENTWISE_FUNCTIONS = {
    op.name: _elementwise(op.name) for op in ELEMENTWISE if not op.derivative_only and op.name != "select"
}
ELEMENTWISE_FUNCTIONS["realdiv"] = ELEMENTWISE_FUNCTIONS["div"]


def _select_lower(fe, args, kwargs):
    return lower_select(fe, *args, **kwargs)


select = _functional("select", _select_lower, "``select(cond, x, y)``: ``x`` where ``cond`` is true, else ``y``.")
where = select


def _compare(op: str) -> Callable[..., Any]:
    def lower(fe, args, kwargs):
        return lower_compare(fe, op, *args, **kwargs)

    return _functional(op, lower, f"``{op}(x, y)``: elementwise comparison (a bool tensor).", True)


COMPARE_FUNCTIONS = {op: _compare(op) for op in COMPARE_OPS}


def apply_elementwise(op: str, *args: Any) -> Any:
    return ELEMENTWISE_FUNCTIONS[op](*args)


neg = ELEMENTWISE_FUNCTIONS["neg"]
abs = ELEMENTWISE_FUNCTIONS["abs"]  # noqa: A001


def _matmul_lower(fe, args, kwargs):
    x, y = args
    return L.lower_matmul(fe, x, y)


matmul = _functional(
    "matmul", _matmul_lower, "``matmul(x, y)``: matrix product with NumPy's rules for 1-D and batched operands."
)


def _stop_gradient_lower(fe, args, kwargs):
    (x,) = args
    return fe.bind("stop_gradient", [x])


stop_gradient = _functional("stop_gradient", _stop_gradient_lower, "Identity whose derivative is zero.")
cast = _functional("cast", lambda fe, a, k: lower_cast(fe, *a, **k), "``cast(x, dtype)``.")
reshape = _functional("reshape", lambda fe, a, k: lower_reshape(fe, *a, **k), "``reshape(x, shape)``.")
transpose = _functional("transpose", lambda fe, a, k: lower_transpose(fe, *a, **k), "``transpose(x, perm)``.")


def _reduce(op: str, display: str):
    def lower(fe, args, kwargs):
        x = args[0]
        axis = args[1] if len(args) > 1 else kwargs.get("axis")
        keep = args[2] if len(args) > 2 else kwargs.get("keepdims", kwargs.get("keep_dims", False))
        return lower_reduce(fe, op, display, x, axis, keep)

    return lower


reduce_sum = _functional("reduce_sum", _reduce("reduce_sum", "sum"), "``reduce_sum(x, axis=None, keepdims=False)``.")
reduce_mean = _functional(
    "reduce_mean", _reduce("reduce_mean", "mean"), "``reduce_mean(x, axis=None, keepdims=False)``."
)
reduce_max = _functional("reduce_max", _reduce("reduce_max", "max"), "``reduce_max(x, axis=None, keepdims=False)``.")
reduce_min = _functional("reduce_min", _reduce("reduce_min", "min"), "``reduce_min(x, axis=None, keepdims=False)``.")


def _getitem_lower(fe, args, kwargs):
    x, idx = args
    return fe.subscript(x, idx)


getitem = _functional("getitem", _getitem_lower, "``x[idx]`` with constant ints, slices, None and ...")


def _one_hot_lower(fe, args, kwargs):
    return lower_one_hot(fe, *args, **kwargs)


one_hot = _functional(
    "one_hot",
    _one_hot_lower,
    "``one_hot(indices, depth, on_value=1.0, off_value=0.0, axis=-1)``: one-hot encoding of integer indices.",
)


# ---- convolution and pooling (issue 15)
def _conv2d_lower(fe, args, kwargs):
    def bind(input, weight, bias=None, stride=1, pad_mode="valid", padding=0, dilation=1, groups=1):  # noqa: A002
        y = lower_conv2d(fe, input, weight, stride, pad_mode, padding, dilation, groups, display="conv2d")
        if bias is None:
            return y
        b = fe.atom(bias)
        if b.shape != (y.shape[1],):
            raise fe.error(f"conv2d: bias must have shape ({y.shape[1]},), got {b.aval}", ShapeError)
        return fe.elementwise("add", [y, lower_reshape(fe, b, (1, y.shape[1], 1, 1))])

    return bind(*args, **kwargs)


conv2d = _functional(
    "conv2d",
    _conv2d_lower,
    '``conv2d(input, weight, bias=None, stride=1, pad_mode="valid", padding=0, dilation=1, groups=1)``: '
    "2-D convolution of an NCHW input (``padding``, an int or (top, bottom, left, right), with "
    'pad_mode="pad"; groups=1 only).',
)


def _pool_padding(padding: Any) -> tuple[str, Any]:
    """PyTorch-style symmetric ``padding`` (an int or (ph, pw)) as (pad_mode, pad)."""
    if padding in (0, (0, 0)):
        return "valid", 0
    ph, pw = (padding, padding) if isinstance(padding, int) else tuple(padding)
    return "pad", (ph, ph, pw, pw)


def _max_pool2d_lower(fe, args, kwargs):
    def bind(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
        if dilation not in (1, (1, 1)) or ceil_mode or return_indices:
            raise fe.error(
                "max_pool2d: dilation, ceil_mode and return_indices are not supported (only their defaults)",
                NotSupportedError,
            )
        mode, pad = _pool_padding(padding)
        st = kernel_size if stride is None else stride
        return lower_pool(fe, "max", x, kernel_size, st, mode, pad, display="max_pool2d")

    return bind(*args, **kwargs)


def _avg_pool2d_lower(fe, args, kwargs):
    def bind(x, kernel_size=1, stride=1, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
        if ceil_mode or divisor_override is not None:
            raise fe.error("avg_pool2d: ceil_mode and divisor_override are not supported", NotSupportedError)
        mode, pad = _pool_padding(padding)
        return lower_pool(fe, "avg", x, kernel_size, stride, mode, pad, bool(count_include_pad), display="avg_pool2d")

    return bind(*args, **kwargs)


max_pool2d = _functional(
    "max_pool2d",
    _max_pool2d_lower,
    "``max_pool2d(x, kernel_size, stride=None, padding=0)``: the maximum of each window of an NCHW input "
    "(stride defaults to kernel_size; padding positions never win).",
)
avg_pool2d = _functional(
    "avg_pool2d",
    _avg_pool2d_lower,
    "``avg_pool2d(x, kernel_size=1, stride=1, padding=0, count_include_pad=True)``: the mean of each window "
    "of an NCHW input.",
)


# ---- activations, softmax and the tensor methods (issue 15)
def _softmax_lower(log: bool):
    def lower(fe, args, kwargs):
        def bind(x, axis=-1, dtype=None):
            y = lower_softmax(fe, x, axis, log)
            return y if dtype is None else lower_cast(fe, y, dtype)

        return bind(*args, **kwargs)

    return lower


softmax = _functional(
    "softmax", _softmax_lower(False), "``softmax(x, axis=-1)``: exp(x) / sum(exp(x)) over ``axis``, computed stably."
)
log_softmax = _functional(
    "log_softmax", _softmax_lower(True), "``log_softmax(x, axis=-1)``: x - logsumexp(x) over ``axis``, computed stably."
)


def _clip_lower(fe, args, kwargs):
    def bind(x, min=None, max=None):  # noqa: A002
        return lower_clip(fe, x, min, max)

    return bind(*args, **kwargs)


def _gelu_lower(fe, args, kwargs):
    def bind(input, approximate="none"):  # noqa: A002 - MindSpore's argument name
        return L.lower_gelu(fe, input, approximate)

    return bind(*args, **kwargs)


gelu = _functional(
    "gelu",
    _gelu_lower,
    "``gelu(input, approximate='none')``: ``x Phi(x)`` with the normal distribution's ``Phi`` (erf), or its "
    "tanh approximation with ``approximate='tanh'``.",
)


def _dropout_lower(fe, args, kwargs):
    def bind(input, p=0.5, training=True, seed=None):  # noqa: A002 - MindSpore's argument name
        if not training or p == 0:
            return input
        return L.lower_dropout(fe, input, p, RANDOM_KEY, 0 if seed is None else seed)[0]

    return bind(*args, **kwargs)


dropout = _functional(
    "dropout",
    _dropout_lower,
    "``dropout(input, p=0.5, training=True, seed=None)``: each element zeroed with probability ``p``, the "
    "others scaled by ``1 / (1 - p)``; the masks come from a counter-based generator keyed by "
    ":func:`s2s_ad.set_seed` (the identity when ``training`` is False).",
)
clip_by_value = _functional("clip_by_value", _clip_lower, "``clip_by_value(x, min, max)``: x limited to [min, max].")
clamp = clip = _functional("clamp", _clip_lower, "``clamp(x, min=None, max=None)``: x limited to [min, max].")


def tensor_method(name: str) -> Callable[..., Any]:
    """The eager form of the tensor method ``name`` (``Tensor.tanh``, ``Tensor.clip``, ...): the
    same lowering as inside compiled code."""
    return _functional(
        f"Tensor.{name}",
        lambda fe, a, k: more_tensor_methods(fe, name, a[0], list(a[1:]), k),
        f"``Tensor.{name}`` (as inside compiled code).",
    )


# MindSpore's and NumPy's other names of the elementwise functions
for _alias, _op in {
    "arctan": "atan",
    "arcsin": "asin",
    "arccos": "acos",
    "arcsinh": "asinh",
    "arccosh": "acosh",
    "arctan2": "atan2",
    "negative": "neg",
}.items():
    ELEMENTWISE_FUNCTIONS[_alias] = ELEMENTWISE_FUNCTIONS[_op]


# MindSpore programs import this module as ``from mindspore.ops import functional as F`` and
# call ``F.grad``, ``F.sin``, ``F.depend``, ...: every name of s2s_ad.ops is found here too.
def __getattr__(name: str) -> Any:
    """A name of :mod:`s2s_ad.ops` (the package, loaded when this module is first used)."""
    try:
        return getattr(sys.modules["s2s_ad.ops"], name)
    except (KeyError, AttributeError):
        raise AttributeError(f"module 's2s_ad.ops.functional' has no attribute {name!r}") from None


# ---- structural, indexing and linalg ops (issue 15)
def _fn(name: str, lower: Callable[..., Any], doc: str) -> Callable[..., Any]:
    """A functional form whose lowering takes the call's arguments as they are."""
    return _functional(name, lambda fe, a, k: lower(fe, *a, **k), doc)


def _concat_lower(fe, tensors, axis=0):
    return L.lower_concat(fe, tensors, axis, "concat")


def _stack_lower(fe, tensors, axis=0):
    return L.lower_stack(fe, tensors, axis, "stack")


def _split_lower(fe, tensor, split_size_or_sections, axis=0):
    # MindSpore's ops.split: an int is the size of each chunk (the last one may be smaller)
    n = fe.atom(tensor).shape[axis] if isinstance(split_size_or_sections, int) else None
    if n is not None:
        s = int(split_size_or_sections)
        if s <= 0:
            raise fe.error(f"split: split_size_or_sections must be positive, got {s}", ArgumentError)
        split_size_or_sections = [s] * (n // s) + ([n % s] if n % s else [])
    return L.lower_split(fe, tensor, axis, list(split_size_or_sections), "split")


def _squeeze_lower(fe, input, axis=None):
    return L.lower_squeeze(fe, input, axis)


def _expand_dims_lower(fe, input_x, axis):
    return L.lower_expand_dims(fe, input_x, axis)


def _unsqueeze_lower(fe, input, dim):
    return L.lower_expand_dims(fe, input, dim)


def _filled(value: float, like: bool):
    def lower_like(fe, input, dtype=None):
        a = fe.atom(input)
        return fe.fill(a.shape, value, a.dtype if dtype is None else mstype.to_np(dtype))

    def lower(fe, shape, dtype=None):
        shape = L.static_shape(fe, shape)
        return fe.fill(shape, value, np.dtype(np.float32) if dtype is None else mstype.to_np(dtype))

    return lower_like if like else lower


def _norm_lower(fe, A, ord=None, dim=None, keepdim=False, *, dtype=None):
    r = L.lower_norm(fe, A, ord, dim, keepdim)
    return r if dtype is None else L.lower_cast(fe, r, dtype)


def _arg_lower(op: str):
    def lower(fe, input, dim=None, keepdim=False):
        return L.lower_arg_extremum(fe, op, input, dim, keepdim, np.int32)

    return lower


def _cumsum_lower(fe, x, axis, dtype=None):
    r = L.lower_cumsum(fe, x, axis)
    return r if dtype is None else L.lower_cast(fe, r, dtype)


def _gather_lower(fe, input_params, input_indices, axis, batch_dims=0):
    if batch_dims:
        return L.lower_gather_batched(fe, input_params, input_indices, axis, batch_dims, "gather")
    return L.lower_gather(fe, input_params, input_indices, axis)


def _pad_lower(fe, input_x, padding, mode="constant", value=None):
    # MindSpore's ops.pad: (left, right) of the last axis first, then of the one before, ...
    modes = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
    if mode not in modes:
        raise fe.error(f"pad: mode must be one of {', '.join(map(repr, modes))}, got {mode!r}", ArgumentError)
    if mode != "constant" and value is not None:
        raise fe.error(
            f"pad: value is used by mode='constant' only, got value={value!r} with mode={mode!r}", ArgumentError
        )
    a = fe.atom(input_x)
    pad = L._ints(fe, "pad: padding", padding)
    if len(pad) % 2 or len(pad) // 2 > len(a.shape):
        raise fe.error(
            f"pad: padding {pad} must give (before, after) pairs for at most {len(a.shape)} axes", ArgumentError
        )
    pairs = [(0, 0)] * len(a.shape)
    for k in range(len(pad) // 2):
        pairs[len(a.shape) - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    return L.lower_pad(fe, a, pairs, 0 if value is None else value, modes[mode], "pad")


concat = _fn("concat", _concat_lower, "``concat(tensors, axis=0)``: tensors joined along ``axis``.")
cat = concat
stack = _fn("stack", _stack_lower, "``stack(tensors, axis=0)``: tensors joined along a new axis.")
split = _fn("split", _split_lower, "``split(tensor, split_size_or_sections, axis=0)``: a tuple of parts.")
tile = _fn("tile", L.lower_tile, "``tile(input, multiples)``: ``input`` repeated along each axis.")
broadcast_to = _fn("broadcast_to", L.lower_broadcast_to, "``broadcast_to(input, shape)`` (-1 keeps an axis).")
squeeze = _fn("squeeze", _squeeze_lower, "``squeeze(input, axis=None)``: axes of length 1 removed.")
expand_dims = _fn("expand_dims", _expand_dims_lower, "``expand_dims(input_x, axis)``: a new axis of length 1.")
unsqueeze = _fn("unsqueeze", _unsqueeze_lower, "``unsqueeze(input, dim)``: a new axis of length 1.")
ones_like = _fn("ones_like", _filled(1.0, True), "``ones_like(input, dtype=None)``.")
zeros_like = _fn("zeros_like", _filled(0.0, True), "``zeros_like(input, dtype=None)``.")
ones = _fn("ones", _filled(1.0, False), "``ones(shape, dtype=float32)``.")
zeros = _fn("zeros", _filled(0.0, False), "``zeros(shape, dtype=float32)``.")
pad = _fn(
    "pad",
    _pad_lower,
    "``pad(input_x, padding, mode='constant', value=None)``: padding of the last axes ((left, right) of the last "
    "first); mode 'constant' (``value``), 'reflect', 'replicate' or 'circular'.",
)
addn = _fn("addn", L.lower_addn, "``addn(x)``: the sum of a tuple or list of tensors.")
norm = _fn("norm", _norm_lower, "``norm(A, ord=None, dim=None, keepdim=False)``: 2-norm, 1-norm or inf-norm.")
argmax = _fn("argmax", _arg_lower("argmax"), "``argmax(input, dim=None, keepdim=False)``: int32 indices, as MindSpore.")
argmin = _fn("argmin", _arg_lower("argmin"), "``argmin(input, dim=None, keepdim=False)``: int32 indices, as MindSpore.")


def _cumprod_lower(fe, input, dim, dtype=None):  # noqa: A002 - MindSpore's argument name
    r = L.lower_cumprod(fe, input, dim, display="cumprod")
    return r if dtype is None else L.lower_cast(fe, r, dtype)


def _prod_lower(fe, input, axis=None, keep_dims=False, dtype=None):  # noqa: A002 - MindSpore's argument name
    r = L.lower_prod(fe, input, axis, keep_dims, "prod")
    return r if dtype is None else L.lower_cast(fe, r, dtype)


cumprod = _fn("cumprod", _cumprod_lower, "``cumprod(input, dim, dtype=None)``: cumulative product along ``dim``.")
prod = _fn(
    "prod",
    _prod_lower,
    "``prod(input, axis=None, keep_dims=False, dtype=None)``: the product over ``axis`` (all axes by default).",
)
reduce_prod = prod
cumsum = _fn("cumsum", _cumsum_lower, "``cumsum(x, axis, dtype=None)``: cumulative sum along ``axis``.")
gather = _fn("gather", _gather_lower, "``gather(input_params, input_indices, axis)``: slices at integer indices.")
gather_d = _fn("gather_d", L.lower_gather_d, "``gather_d(x, dim, index)``: elements at ``index`` along ``dim``.")
gather_nd = _fn("gather_nd", L.lower_gather_nd, "``gather_nd(input_x, indices)``: elements or slices at indices.")
scatter_nd = _fn("scatter_nd", L.lower_scatter_nd, "``scatter_nd(indices, updates, shape)``: updates added into zeros.")
tensor_scatter_add = _fn(
    "tensor_scatter_add",
    lambda fe, input_x, indices, updates: L.lower_tensor_scatter(fe, input_x, indices, updates, True),
    "``tensor_scatter_add(input_x, indices, updates)``: a new tensor with updates added at indices.",
)
tensor_scatter_update = _fn(
    "tensor_scatter_update",
    lambda fe, input_x, indices, updates: L.lower_tensor_scatter(fe, input_x, indices, updates, False),
    "``tensor_scatter_update(input_x, indices, updates)``: a new tensor with updates written at indices.",
)
bmm = _fn("bmm", lambda fe, input_x, mat2: L.lower_batch_matmul(fe, input_x, mat2), "``bmm(input_x, mat2)``.")
inverse = _fn("inverse", lambda fe, input: L.lower_linalg(fe, "matrix_inverse", [input]), "``inverse(input)``.")
matrix_inverse = inverse
det = _fn("det", lambda fe, input: L.lower_linalg(fe, "matrix_determinant", [input]), "``det(input)``.")
matrix_determinant = det
