"""Tensor's operators and array methods, installed on :class:`s2s_ad.tensor.Tensor`.

:mod:`s2s_ad.tensor` is a plain data class low in the package's layers; what a Tensor
computes (``x + y``, ``x @ w``, ``x[i]``, ``x.sum()``, ``np.exp(x)``) runs through the
functional forms here, above the runtime, so eager calls use the op table's generated code
exactly as compiled code does. :func:`install` is called once, when :mod:`s2s_ad.ops` is
imported (importing ``s2s_ad`` does that).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime import eager
from ..tensor import Tensor
from ..trace.lowering import MORE_TENSOR_METHODS, STRUCTURAL_METHODS
from . import functional as F
from . import numpy_api


def _binary(op: str, reverse: bool = False):
    def method(self: Tensor, other: Any) -> Any:
        if not isinstance(other, (Tensor, np.ndarray, int, float, bool, np.generic)):
            return NotImplemented
        a, b = (other, self) if reverse else (self, other)
        return F.apply_elementwise(op, a, b)

    method.__name__ = f"__{'r' if reverse else ''}{op}__"
    return method


def _transpose_all(self: Tensor) -> Tensor:
    return F.transpose(self, tuple(reversed(range(self.ndim))))


def _transpose(self: Tensor, *perm: Any) -> Tensor:
    if len(perm) == 1 and isinstance(perm[0], (tuple, list)):
        perm = tuple(perm[0])
    return F.transpose(self, perm or tuple(reversed(range(self.ndim))))


def _astype(self: Tensor, dtype: Any) -> Tensor:
    return F.cast(self, dtype)


def _reshape(self: Tensor, *shape: Any) -> Tensor:
    return F.reshape(self, shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)


def _reduction(fn):
    def method(self: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        return fn(self, axis, keepdims)

    return method


def _array_ufunc(self: Tensor, ufunc, method, *inputs, **kwargs):
    # NumPy ufuncs given Tensors (np.exp(t), array + t): those s2s_ad compiles run as in
    # compiled code, others are NumPy's on the data; arrays come back as Tensors.
    return numpy_api.numpy_on_tensors(ufunc, method, inputs, kwargs)


def _array_function(self: Tensor, func, types, args, kwargs):
    if not all(issubclass(t, (Tensor, np.ndarray)) for t in types):
        return NotImplemented
    return numpy_api.numpy_on_tensors(func, "__call__", args, kwargs)


_PYTHON_OPERATORS = {
    "add": "add",
    "sub": "sub",
    "mul": "mul",
    "truediv": "div",
    "pow": "pow",
    "floordiv": "floor_div",
    "mod": "floor_mod",
}


def _structural_method(name: str):
    # the same lowering as the method inside compiled code (trace.lowering.STRUCTURAL_METHODS)
    fn = STRUCTURAL_METHODS[name]

    def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        return eager(("method", name), lambda fe, vals, kw: fn(fe, *vals, **kw), (self, *args), kwargs)

    method.__name__ = name
    return method


def _setitem(self: Tensor, idx: Any, value: Any) -> None:
    # eager (PYNATIVE) code updates the Tensor in place, as MindSpore's PyNative mode does
    def plain(i: Any) -> Any:
        return i.asnumpy() if isinstance(i, Tensor) else i

    idx = tuple(plain(i) for i in idx) if isinstance(idx, tuple) else plain(idx)
    data = self.asnumpy()
    data[idx] = np.asarray(plain(value), data.dtype)


def install() -> None:
    """Give :class:`Tensor` its operators and array methods (idempotent)."""
    for dunder, op in _PYTHON_OPERATORS.items():
        setattr(Tensor, f"__{dunder}__", _binary(op))
        setattr(Tensor, f"__r{dunder}__", _binary(op, reverse=True))
    Tensor.__matmul__ = lambda self, o: F.matmul(self, o)  # type: ignore[attr-defined]
    Tensor.__rmatmul__ = lambda self, o: F.matmul(o, self)  # type: ignore[attr-defined]
    Tensor.__neg__ = lambda self: F.neg(self)  # type: ignore[attr-defined]
    Tensor.__pos__ = lambda self: self  # type: ignore[attr-defined]
    Tensor.__abs__ = lambda self: F.abs(self)  # type: ignore[attr-defined]
    Tensor.__getitem__ = lambda self, idx: F.getitem(self, idx)  # type: ignore[attr-defined]
    Tensor.T = property(_transpose_all)  # type: ignore[attr-defined]
    Tensor.astype = _astype  # type: ignore[attr-defined]
    Tensor.reshape = _reshape  # type: ignore[attr-defined]
    Tensor.sum = _reduction(F.reduce_sum)  # type: ignore[attr-defined]
    Tensor.mean = _reduction(F.reduce_mean)  # type: ignore[attr-defined]
    Tensor.max = _reduction(F.reduce_max)  # type: ignore[attr-defined]
    Tensor.min = _reduction(F.reduce_min)  # type: ignore[attr-defined]
    Tensor.__array_ufunc__ = _array_ufunc  # type: ignore[attr-defined]
    Tensor.__array_function__ = _array_function  # type: ignore[attr-defined]
    # the methods of compiled code's tensors (tanh, clip, squeeze, argmax, all, ...), the same
    # lowering run eagerly
    for name in sorted(MORE_TENSOR_METHODS):
        setattr(Tensor, name, F.tensor_method(name))
    Tensor.transpose = _transpose  # type: ignore[attr-defined]
    # eagerly, a copy has data of its own (an eager `y[i] = v` then leaves the original as it was)
    Tensor.copy = Tensor.clone = lambda self: Tensor._wrap(self.asnumpy().copy())  # type: ignore[attr-defined]
    for name in STRUCTURAL_METHODS:
        setattr(Tensor, name, _structural_method(name))
    Tensor.__setitem__ = _setitem  # type: ignore[method-assign]
