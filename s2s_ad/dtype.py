"""MindSpore-style dtype objects (``from s2s_ad import dtype as mstype``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


class Type:
    """A tensor element type; wraps a numpy dtype and prints like MindSpore (``Float32``)."""

    __slots__ = ("name", "np_dtype")

    def __init__(self, name: str, np_dtype: npt.DTypeLike):
        self.name = name
        self.np_dtype = np.dtype(np_dtype)

    def __repr__(self) -> str:
        return self.name

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Type):
            return self.np_dtype == other.np_dtype
        try:
            return self.np_dtype == np.dtype(other)  # type: ignore[call-overload]
        except TypeError:
            return False

    def __hash__(self) -> int:
        return hash(self.np_dtype)


float16 = Type("Float16", np.float16)
float32 = Type("Float32", np.float32)
float64 = Type("Float64", np.float64)
int8 = Type("Int8", np.int8)
int16 = Type("Int16", np.int16)
int32 = Type("Int32", np.int32)
int64 = Type("Int64", np.int64)
uint8 = Type("UInt8", np.uint8)
bool_ = Type("Bool", np.bool_)
float_ = float32
half = float16
single = float32
double = float64

_ALL = (float16, float32, float64, int8, int16, int32, int64, uint8, bool_)
_BY_NP = {t.np_dtype: t for t in _ALL}
NP_DTYPES: tuple[np.dtype, ...] = tuple(t.np_dtype for t in _ALL)


def native(dt: np.dtype) -> np.dtype:
    """``dt`` in the machine's byte order (compiled code takes native arrays; big-endian data
    is converted at the boundary)."""
    return dt if dt.isnative else dt.newbyteorder("=")


def native_array(a: np.ndarray) -> np.ndarray:
    """``a``, converted to the machine's byte order when it is not in it."""
    return a if a.dtype.isnative else a.astype(native(a.dtype))


def to_np(dt: Any) -> np.dtype:
    """Normalise a MindSpore dtype, numpy dtype, or Python type to a numpy dtype."""
    if isinstance(dt, Type):
        return dt.np_dtype
    if dt is float:
        return np.dtype(np.float32)
    if dt is int:
        return np.dtype(np.int64)
    if dt is bool:
        return np.dtype(np.bool_)
    return np.dtype(dt)


def from_np(dt: np.dtype) -> Type:
    """The MindSpore dtype object for a numpy dtype."""
    dt = np.dtype(dt)
    if dt not in _BY_NP:
        raise TypeError(f"dtype {dt} is not supported by s2s_ad")
    return _BY_NP[dt]


def short_name(dt: np.dtype) -> str:
    """The short spelling s2s_ad prints for a dtype (generated docstrings, IR listings,
    errors): ``f32``, ``f64``, ``i64``, ``u8``, ``bool``."""
    dt = np.dtype(dt)
    return {"f": "f", "i": "i", "u": "u", "b": "bool"}[dt.kind] + ("" if dt.kind == "b" else str(dt.itemsize * 8))


def _spellings() -> dict[str, np.dtype]:
    names: dict[str, np.dtype] = {}
    for t in _ALL:
        names[short_name(t.np_dtype)] = t.np_dtype  # f32: what s2s_ad prints
        names[t.np_dtype.name] = t.np_dtype  # float32: numpy's name
    names["bool_"] = np.dtype(np.bool_)
    for alias in ("half", "single", "double"):  # MindSpore's aliases (mstype.double)
        names[alias] = globals()[alias].np_dtype
    return names


SPELLINGS: dict[str, np.dtype] = _spellings()


def from_name(name: str) -> np.dtype:
    """The numpy dtype a written name stands for: the short spelling s2s_ad prints (``f64``),
    numpy's name (``float64``) or a MindSpore alias (``double``). An unknown name raises
    ``ValueError`` listing the accepted ones."""
    try:
        return SPELLINGS[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; accepted: {', '.join(SPELLINGS)}") from None
