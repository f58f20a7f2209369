"""NumPy calls in compiled code, mapped onto the op table's primitives.

Inside compiled code (a Cell's ``construct`` or a plain function) ``np.sin(x)``, ``np.sum(x,
axis=1)``, ``np.where(x > 0, x, 0.1 * x)``, ... lower to the same IR as the MindSpore-style
ops, so they are differentiated, simplified and compiled like them. :data:`NUMPY_LOWERINGS`
is the one mapping: a numpy function object (looked up by identity) → a lowering
``(fe, args, kwargs) -> value``. Any other numpy callable is rejected with the user's line and
the list of supported functions. Outside compiled code, a numpy function or ufunc given
Tensors runs the same lowering eagerly (:func:`s2s_ad.ops.numpy_api.numpy_on_tensors`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import dtype as mstype
from ..errors import ArgumentError, ShapeError, UnsupportedSyntaxError
from ..ir import Lit, Var
from ..primitives import ELEMENTWISE, OPS, fmt_shape
from . import lowering as L
from .lowering import lower_cast, lower_compare, lower_reduce, lower_reshape, lower_select, lower_transpose
from .protocol import has_traced, is_tensor_value, register_stager_where
from .tracer import Tracer

Lowering = Callable[[Any, list, dict], Any]

# id(numpy object) -> (the object, its lowering); names: every supported ``np.`` name
NUMPY_LOWERINGS: dict[int, tuple[Any, Lowering]] = {}
_SUPPORTED_NAMES: set[str] = set()


def _lowering(name: str, impl: Callable[..., Any]) -> Lowering:
    """Wrap ``impl(fe, *numpy_params)`` as a lowering; arguments are bound to its signature, and
    an argument it does not take gives a clear error instead of a TypeError."""
    sig = inspect.signature(impl)
    params = list(sig.parameters.values())[1:]
    keywords = [p.name for p in params if p.kind != p.POSITIONAL_ONLY]

    def lower(fe, args: list, kwargs: dict) -> Any:
        for k in kwargs:
            if k not in keywords:
                supported = ", ".join(f"`{p}`" for p in keywords) or "none"
                raise fe.error(
                    f"np.{name}: the keyword argument `{k}` is not supported inside compiled code "
                    f"(supported keyword arguments: {supported})",
                    UnsupportedSyntaxError,
                )
        try:
            bound = sig.bind(fe, *args, **kwargs)
        except TypeError as err:
            shown = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in params)
            raise fe.error(f"np.{name}({shown}): {err}", ArgumentError) from None
        return impl(*bound.args, **bound.kwargs)

    lower.keywords = frozenset(keywords)  # type: ignore[attr-defined]
    return lower


def _register(names: str, impl: Callable[..., Any]) -> None:
    """Map each numpy attribute in ``names`` (space-separated; aliases share one object)."""
    for name in names.split():
        obj = getattr(np, name, None)
        if obj is None:  # not in this numpy version
            continue
        NUMPY_LOWERINGS[id(obj)] = (obj, _lowering(name, impl))
        _SUPPORTED_NAMES.add(f"np.{name}")


# ----------------------------------------------------------------------------- elementwise
def _unary(op: str) -> Callable[..., Any]:
    def impl(fe, x, /):
        return fe.elementwise(op, [x])

    return impl


def _binary(op: str) -> Callable[..., Any]:
    def impl(fe, x1, x2, /):
        return fe.elementwise(op, [x1, x2])

    return impl


def _compare(op: str) -> Callable[..., Any]:
    def impl(fe, x1, x2, /):
        return lower_compare(fe, op, x1, x2)

    return impl


# the elementwise ops: the NumPy names their table entries give (``numpy``)
for _opdef in ELEMENTWISE:
    if _opdef.numpy:
        _register(" ".join(_opdef.numpy), (_unary if _opdef.nin == 1 else _binary)(_opdef.name))
for _op in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal"):
    _register(_op, _compare(_op))


def _where(fe, condition, x=None, y=None, /):
    if x is None or y is None:
        raise fe.error(
            "np.where(condition) (the indices of the nonzero elements) is not supported inside compiled "
            "code: use np.where(condition, x, y)",
            UnsupportedSyntaxError,
        )
    return lower_select(fe, condition, x, y)


_register("where", _where)


# ----------------------------------------------------------------------------- products
def _dot_like(name: str, scalars_ok: bool) -> Callable[..., Any]:
    def impl(fe, a, b, /):
        x, y = fe.atoms([a, b])
        if not x.shape or not y.shape:
            if not scalars_ok:
                raise fe.error(f"np.{name}: scalar operands are not allowed, use `*`", ArgumentError)
            return fe.elementwise("mul", [x, y])
        if len(x.shape) > 2 or len(y.shape) > 2:
            raise fe.error(
                f"np.{name} of shapes {fmt_shape(x.shape)} and {fmt_shape(y.shape)}: only 1-D and 2-D operands "
                "are supported inside compiled code",
                UnsupportedSyntaxError,
            )
        inner = y.shape[0] if len(y.shape) == 1 else y.shape[-2]
        if x.shape[-1] != inner:
            raise fe.error(
                f"np.{name}: shapes {fmt_shape(x.shape)} and {fmt_shape(y.shape)} are not aligned "
                f"({x.shape[-1]} != {inner})",
                ShapeError,
            )
        x2 = x if len(x.shape) == 2 else lower_reshape(fe, x, (1, x.shape[0]))
        y2 = y if len(y.shape) == 2 else lower_reshape(fe, y, (y.shape[0], 1))
        r = fe.bind("matmul", [x2, y2], transpose_a=False, transpose_b=False)
        return lower_reshape(fe, r, x.shape[:-1] + y.shape[1:])

    return impl


def _matmul(fe, x1, x2, /):
    return L.lower_matmul(fe, x1, x2, "np.matmul")


_register("dot", _dot_like("dot", True))
_register("matmul", _matmul)


# ----------------------------------------------------------------------------- reductions
def _reduction(op: str, name: str) -> Callable[..., Any]:
    def impl(fe, a, axis=None, *, keepdims=False):
        x = fe.atom(a)
        if isinstance(axis, (tuple, list)) and not axis:
            return x  # numpy reduces over no axis at all
        if x.dtype.kind == "b" and op in ("reduce_sum", "reduce_mean"):
            x = lower_cast(fe, x, np.int64 if op == "reduce_sum" else np.float64)  # numpy counts
        elif x.dtype.kind in "iu" and op == "reduce_mean":
            x = lower_cast(fe, x, np.float64)
        return lower_reduce(fe, op, f"np.{name}", x, axis, keepdims)

    return impl


_register("sum", _reduction("reduce_sum", "sum"))
_register("mean", _reduction("reduce_mean", "mean"))
_register("max amax", _reduction("reduce_max", "max"))
_register("min amin", _reduction("reduce_min", "min"))


# ----------------------------------------------------------------------------- shapes
def _transpose(fe, a, axes=None):
    x = fe.atom(a)
    return lower_transpose(fe, x, tuple(reversed(range(len(x.shape)))) if axes is None else axes)


def _reshape(fe, a, /, shape, order="C"):
    if order != "C":
        raise fe.error(f"np.reshape: order={order!r} is not supported inside compiled code", UnsupportedSyntaxError)
    return lower_reshape(fe, a, shape)


def _broadcast_to(fe, array, shape):
    x = fe.atom(array)
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    if shape == x.shape:
        return x
    return fe.bind1("broadcast_to", x, shape=shape)


_register("transpose", _transpose)
_register("reshape", _reshape)
_register("broadcast_to", _broadcast_to)


# ----------------------------------------------------------------------------- constants
def _filled(value: float, like: bool) -> Callable[..., Any]:
    def static_dtype(fe, dtype, default):
        if dtype is None:
            return np.dtype(default)
        try:
            return mstype.to_np(dtype)
        except TypeError:
            raise fe.error(f"{dtype!r} is not a dtype", ArgumentError) from None

    if like:

        def impl_like(fe, a, dtype=None):
            x = fe.atom(a)
            return fe.fill(x.shape, value, static_dtype(fe, dtype, x.dtype))

        return impl_like

    def impl(fe, shape, dtype=None):
        if isinstance(shape, (Var, Lit)) or is_tensor_value(shape):
            raise fe.error("the shape must be known while compiling (a tuple of ints)", ArgumentError)
        shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        return fe.fill(shape, value, static_dtype(fe, dtype, np.float64))

    return impl


_register("zeros", _filled(0.0, False))
_register("ones", _filled(1.0, False))
_register("zeros_like", _filled(0.0, True))
_register("ones_like", _filled(1.0, True))


# ----------------------------------------------------------------------------- scalar types
def _scalar_type(t: type) -> Callable[..., Any]:
    dtype = np.dtype(t)

    def impl(fe, value=0, /):
        if isinstance(value, Lit):
            return Lit(value.value, dtype)
        if isinstance(value, Var) or is_tensor_value(value):
            return lower_cast(fe, value, dtype)  # np.float32(x) of a tensor: a cast
        try:
            return Lit(value, dtype)  # a compile-time constant of that dtype
        except (TypeError, ValueError) as err:
            raise fe.error(f"np.{dtype.name}({value!r}): {err}", ArgumentError) from None

    return impl


for _names, _t in [
    ("float32 single", np.float32),
    ("float64 double", np.float64),
    ("int8", np.int8),
    ("int16", np.int16),
    ("int32", np.int32),
    ("int64", np.int64),
    ("uint8", np.uint8),
    ("bool_ bool", np.bool_),
]:
    _register(_names, _scalar_type(_t))


# ---- structural, indexing and linalg ops (issue 15)
def _concatenate(fe, arrays, /, axis=0):
    return L.lower_concat(fe, arrays, axis, "np.concatenate")


def _stack(fe, arrays, /, axis=0):
    return L.lower_stack(fe, arrays, axis, "np.stack")


def _atleast(n: int) -> Callable[..., Any]:
    def impl(fe, *arys):
        res = [L.lower_atleast(fe, a, n) for a in arys]
        return res[0] if len(res) == 1 else tuple(res)

    return impl


def _expand_dims(fe, a, /, axis):
    return L.lower_expand_dims(fe, a, axis)


def _squeeze(fe, a, /, axis=None):
    return L.lower_squeeze(fe, a, axis)


def _swapaxes(fe, a, /, axis1, axis2):
    return L._method_swapaxes(fe, a, axis1, axis2)


def _tile(fe, A, /, reps):
    return L.lower_tile(fe, A, reps)


def _cumsum(fe, a, /, axis=None):
    x = fe.atom(a)
    return L.lower_cumsum(fe, L.lower_reshape(fe, x, (-1,)) if axis is None else x, 0 if axis is None else axis)


def _arg(op: str) -> Callable[..., Any]:
    def impl(fe, a, /, axis=None, *, keepdims=False):
        return L.lower_arg_extremum(fe, op, a, axis, keepdims, np.int64)

    return impl


def _take(fe, a, /, indices, axis=None):
    x = fe.atom(a)
    if axis is None:
        x, axis = L.lower_reshape(fe, x, (-1,)), 0
    return L.lower_gather(fe, x, indices, axis)


def _norm(fe, x, /, ord=None, axis=None, keepdims=False):
    return L.lower_norm(fe, x, ord, axis, keepdims)


def _linalg(op: str, nargs: int) -> Callable[..., Any]:
    if nargs == 1:
        return lambda fe, a, /: L.lower_linalg(fe, op, [a])
    return lambda fe, a, b, /: L.lower_linalg(fe, op, [a, b])


def _register_in(module: Any, prefix: str, names: str, impl: Callable[..., Any]) -> None:
    """Map each attribute in ``names`` of a numpy submodule (``np.linalg``)."""
    for name in names.split():
        obj = getattr(module, name)
        NUMPY_LOWERINGS[id(obj)] = (obj, _lowering(f"{prefix}.{name}", impl))
        _SUPPORTED_NAMES.add(f"np.{prefix}.{name}")


_register("concatenate concat", _concatenate)
_register("stack", _stack)
_register("atleast_1d", _atleast(1))
_register("atleast_2d", _atleast(2))
_register("atleast_3d", _atleast(3))
_register("expand_dims", _expand_dims)
_register("squeeze", _squeeze)
_register("swapaxes", _swapaxes)
_register("tile", _tile)
_register("cumsum", _cumsum)
_register("argmax", _arg("argmax"))
_register("argmin", _arg("argmin"))
_register("take", _take)
_register_in(np.linalg, "linalg", "norm", _norm)
# the structural ops of the table that give NumPy names (``numpy``), called with their inputs
for _opdef in OPS.values():
    if _opdef.kind == "structural":
        for _full in _opdef.numpy:
            _mod, _, _fname = _full.rpartition(".")
            _register_in(getattr(np, _mod), _mod, _fname, _linalg(_opdef.name, _opdef.nin))


def _array_of(fe: Tracer, obj: Any) -> Any:
    """``np.array`` of nested lists or tuples holding tensors computed in the function: the
    elements stacked (Python numbers become constants)."""
    if isinstance(obj, (list, tuple)):
        parts = [_array_of(fe, o) for o in obj]
        atoms = [fe.atom(p) if isinstance(p, (Var, Lit)) or is_tensor_value(p) else None for p in parts]
        dts = [a.dtype for a in atoms if a is not None]
        like = np.result_type(*dts) if dts else None
        vals = [a if a is not None else np.asarray(p, like) for a, p in zip(atoms, parts)]
        vals = [np.asarray(v.value, v.dtype) if isinstance(v, Lit) else v for v in vals]
        return L.lower_stack(fe, vals, 0, "np.array")
    return obj


def _array_traced(fe: Tracer, f: Any, args: list, kwargs: dict) -> Any:
    """``np.array(x)`` / ``np.asarray(x)`` where ``x`` holds computed tensors."""
    if len(args) != 1 or set(kwargs) - {"dtype"}:
        raise fe.error(f"{numpy_name(f)} of computed tensors takes one argument and `dtype`", UnsupportedSyntaxError)
    r = _array_of(fe, args[0])
    dtype = kwargs.get("dtype")
    return lower_cast(fe, r, dtype) if dtype is not None else fe.atom(r)


# ----------------------------------------------------------------------------- dispatch
def is_numpy_callable(f: Any) -> bool:
    if isinstance(f, np.ufunc):
        return True
    mod = getattr(f, "__module__", None)
    return callable(f) and isinstance(mod, str) and (mod == "numpy" or mod.startswith("numpy."))


def numpy_name(f: Any) -> str:
    """``np.arcsin``, ``np.linalg.norm``: how the user most likely wrote ``f``."""
    name = getattr(f, "__name__", None) or type(f).__name__
    mod = getattr(f, "__module__", None) or "numpy"
    public = [p for p in mod.split(".")[1:] if not p.startswith("_") and p not in ("core", "lib")]
    return ".".join(["np", *public, name])


def supported_names() -> list[str]:
    return sorted(_SUPPORTED_NAMES | {numpy_name(f) for f in CONSTANT_BUILDERS.values()})


# NumPy functions whose list or tuple arguments are sequences of arrays (or shapes), not arrays
_SEQUENCE_TAKERS = (np.stack, np.concatenate, np.zeros, np.ones, np.reshape, np.broadcast_to, np.tile, np.transpose)

# Array constructors run at compile time on constant arguments; their result is a constant
# tensor of the compiled program.
CONSTANT_BUILDERS = {id(f): f for f in (np.array, np.asarray, np.arange, np.eye, np.identity, np.linspace, np.full)}


def lower_numpy_call(fe: Tracer, f: Any, args: list, kwargs: dict) -> Any:
    """Lower a call of the numpy callable ``f``, or reject it with the supported list."""
    entry = NUMPY_LOWERINGS.get(id(f))
    if entry is not None and entry[0] is f:
        if f not in _SEQUENCE_TAKERS:
            # a list or tuple holding computed tensors is an array (`np.sum([a, b * b])`), as in NumPy
            args = [_array_of(fe, a) if isinstance(a, (list, tuple)) and has_traced([a]) else a for a in args]
        return entry[1](fe, list(args), dict(kwargs))
    if CONSTANT_BUILDERS.get(id(f)) is f:
        if f in (np.array, np.asarray) and has_traced([list(args)]) and not has_traced([list(kwargs.values())]):
            return _array_traced(fe, f, list(args), kwargs)
        if has_traced([list(args), list(kwargs.values())]):
            raise fe.error(
                f"`{numpy_name(f)}` builds constant arrays inside compiled code; its arguments must be "
                "compile-time constants, not tensors computed in the function",
                UnsupportedSyntaxError,
            )
        try:
            return f(*args, **kwargs)
        except (TypeError, ValueError) as err:
            raise fe.error(f"{numpy_name(f)}: {err}", ArgumentError) from None
    raise fe.error(
        f"`{numpy_name(f)}` is not supported inside compiled code. Supported NumPy functions: "
        + ", ".join(supported_names()),
        UnsupportedSyntaxError,
    )


def _stage_numpy(f: Any, tr: Tracer, args: list, kwargs: dict) -> Any:
    # np.sin(x), np.sum(x, axis=1), ...: the same primitives (or a clear error)
    return lower_numpy_call(tr, f, list(args), kwargs)


register_stager_where(is_numpy_callable, _stage_numpy)
