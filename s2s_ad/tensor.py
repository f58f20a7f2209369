"""``Tensor``, ``Parameter`` and ``ParameterTuple``: numpy arrays with MindSpore's face.

This module is the plain data class (layer 0): storage, shape, dtype, conversion, printing,
comparisons and in-place item assignment. Arithmetic, reductions, indexing and NumPy's
function protocol are installed on :class:`Tensor` by the facade
(:mod:`s2s_ad.ops.tensor_methods`), where they run the op table's generated numpy code, so
the eager and compiled paths compute with the same expressions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from . import dtype as mstype
from .errors import ArgumentError


def _to_array(data: Any, dtype: Any) -> np.ndarray:
    if isinstance(data, Tensor):
        arr = data._data
    elif isinstance(data, np.ndarray):
        arr = data
    elif isinstance(data, np.generic):
        arr = np.asarray(data)
    else:
        if data is None:
            raise TypeError("Tensor() needs input_data")
        arr = np.asarray(data)
        if arr.dtype == np.float64 and dtype is None:
            arr = arr.astype(np.float32)  # Python floats default to float32, as in MindSpore
        elif arr.dtype.kind in "iu" and dtype is None:
            arr = arr.astype(np.int64)
    if dtype is not None:
        arr = arr.astype(mstype.to_np(dtype), copy=False)
    if arr.dtype == object:
        raise TypeError(f"cannot make a Tensor from {type(data).__name__}")
    arr = mstype.native_array(arr)  # big-endian data in native byte order
    if arr.dtype not in mstype.NP_DTYPES:
        raise ArgumentError(
            f"Tensor: dtype {arr.dtype} is not supported"
            + (" (complex numbers are not supported)" if arr.dtype.kind == "c" else "")
            + "; supported: "
            + ", ".join(str(d) for d in mstype.NP_DTYPES)
        )
    return np.array(arr, copy=True, order="C")  # compiled calls rely on C order


def format_array(arr: np.ndarray) -> str:
    """MindSpore's Tensor value formatting: ``[ 1.00000000e+00, -2.00000000e+00]``."""
    if arr.dtype.kind == "f":
        fmt = {"float_kind": lambda v: f"{v: .8e}"}
    else:
        fmt = None
    return np.array2string(arr, separator=", ", formatter=fmt, threshold=1000)


class Tensor:
    """An n-dimensional array. ``Tensor(input_data, dtype=None)``."""

    __array_priority__ = 100

    def __init__(self, input_data: Any = None, dtype: Any = None):
        self._data = _to_array(input_data, dtype)

    @classmethod
    def _wrap(cls, arr: np.ndarray) -> Tensor:
        """A Tensor around ``arr`` without a copy; ``arr`` must be C-contiguous (every
        Tensor's data is, so compiled calls can pass it on unchecked)."""
        t = Tensor.__new__(Tensor)
        t._data = arr
        return t

    # ------------------------------------------------------------------ properties
    def asnumpy(self) -> np.ndarray:
        return self._data

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def dtype(self) -> mstype.Type:
        return mstype.from_np(self._data.dtype)

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return int(self._data.size)

    def __array__(self, dtype=None, copy=None):
        if copy:
            return np.array(self._data, dtype=dtype, copy=True)
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __float__(self) -> float:
        return float(self._data)

    def __int__(self) -> int:
        return int(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def item(self) -> Any:
        return self._data.item()

    # ------------------------------------------------------------------ printing
    def __repr__(self) -> str:
        body = format_array(self._data)
        sep = "\n" if self._data.ndim > 1 else " "
        return f"Tensor(shape={list(self.shape)}, dtype={self.dtype}, value={sep}{body})"

    def __str__(self) -> str:
        return str(self._data)

    def __setitem__(self, idx: Any, value: Any) -> None:
        self._data[idx] = np.asarray(value.asnumpy() if isinstance(value, Tensor) else value, self._data.dtype)

    # Comparisons are not differentiable: plain numpy, returning bool tensors.
    def _cmp(self, fn, other):
        o = other.asnumpy() if isinstance(other, Tensor) else other
        return Tensor._wrap(np.asarray(fn(self._data, o)))

    def __eq__(self, o):  # type: ignore[override]
        return self._cmp(np.equal, o)

    def __ne__(self, o):  # type: ignore[override]
        return self._cmp(np.not_equal, o)

    def __lt__(self, o):
        return self._cmp(np.less, o)

    def __le__(self, o):
        return self._cmp(np.less_equal, o)

    def __gt__(self, o):
        return self._cmp(np.greater, o)

    def __ge__(self, o):
        return self._cmp(np.greater_equal, o)

    __hash__ = object.__hash__


class Parameter(Tensor):
    """A trainable tensor owned by a Cell. ``Parameter(default_input, name=None, requires_grad=True)``."""

    def __init__(self, default_input: Any, name: str | None = None, requires_grad: bool = True):
        super().__init__(default_input)
        self.name = name or "Parameter"
        self.requires_grad = requires_grad
        self._named = name is not None

    @property
    def data(self) -> Parameter:
        return self

    def set_data(self, data: Any) -> Parameter:
        arr = data.asnumpy() if isinstance(data, Tensor) else np.asarray(data)
        if arr.shape != self._data.shape:
            raise ValueError(f"Parameter {self.name}: set_data with shape {arr.shape}, expected {self._data.shape}")
        self._data = np.array(arr, dtype=self._data.dtype, order="C")
        return self

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling: a Parameter is updated in place, so data that arrives read-only (a
        buffer passed out of band, as Dask does) is copied."""
        self.__dict__.update(state)
        data = self.__dict__.get("_data")
        if isinstance(data, np.ndarray) and not data.flags.writeable:
            self._data = np.array(data, order="C")

    def __repr__(self) -> str:
        return (
            f"Parameter (name={self.name}, shape={self.shape}, dtype={self.dtype}, requires_grad={self.requires_grad})"
        )


class ParameterTuple(tuple):
    """An immutable tuple of Parameters (what ``get_by_list`` differentiates)."""

    def __new__(cls, iterable: Iterable[Parameter]):
        items = tuple(iterable)
        for p in items:
            if not isinstance(p, Parameter):
                raise TypeError(f"ParameterTuple takes Parameters, got {type(p).__name__}")
        return super().__new__(cls, items)
