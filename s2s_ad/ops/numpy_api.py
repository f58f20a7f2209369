"""NumPy functions and ufuncs given Tensors outside compiled code.

A Tensor's ``__array_function__``/``__array_ufunc__`` come here: a call that
:mod:`s2s_ad.trace.numpy_map` maps onto the op table runs that lowering eagerly, so
``np.sum(t)`` computes what it computes in compiled code; calls it does not map are computed
by NumPy on the Tensors' data. Either way array results come back as Tensors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtype as mstype
from ..errors import S2SError
from ..runtime import eager
from ..tensor import Tensor
from ..trace.numpy_map import NUMPY_LOWERINGS


# ----------------------------------------------------------------------------- outside compiled code
def numpy_on_tensors(func: Any, method: str, args: tuple, kwargs: dict) -> Any:
    """``func(*args, **kwargs)`` (``getattr(ufunc, method)`` for a ufunc method) where some
    arguments are Tensors, called from Python.

    A call this module lowers (``np.sum(t, axis=1)``, ``np.exp(t)``, ``t_array + t``, ...) runs
    that lowering eagerly, with the dtype rules of compiled code (``np.exp`` of an int32 Tensor
    is float32, as ``ops.exp``). Any other call (``np.std``, ``np.prod``, ``out=``, ufunc
    methods such as ``np.add.reduce``) is NumPy's, on the Tensors' data. Array results (and
    NumPy scalars) are returned as Tensors where their dtype is a Tensor dtype; other results
    (Python values, shapes, complex arrays) as NumPy gives them."""
    entry = NUMPY_LOWERINGS.get(id(func))
    if method == "__call__" and entry is not None and entry[0] is func and entry[1].keywords.issuperset(kwargs):
        try:
            return eager(("np", func), entry[1], args, kwargs, isinstance(func, np.ufunc))
        except S2SError:
            pass  # an argument form the lowering does not take: NumPy decides
    call = func if method == "__call__" else getattr(func, method)
    result = call(*_as_arrays(args), **_as_arrays(kwargs))
    out = kwargs.get("out")
    if out is not None:
        # NumPy writes into ``out`` (``array += t``, ``np.add(a, b, out=t)``) and returns it: the
        # same objects come back, an ndarray staying an ndarray.
        return out[0] if isinstance(out, tuple) and len(out) == 1 else out
    return _as_tensors(result)


def _as_arrays(v: Any) -> Any:
    if isinstance(v, Tensor):
        return v.asnumpy()
    if isinstance(v, (list, tuple)):
        return type(v)(_as_arrays(x) for x in v)
    if isinstance(v, dict):
        return {k: _as_arrays(x) for k, x in v.items()}
    return v


def _as_tensors(v: Any) -> Any:
    if isinstance(v, (np.ndarray, np.generic)) and v.dtype in mstype.NP_DTYPES:
        return Tensor._wrap(np.array(v, order="C", copy=True))
    if isinstance(v, tuple) and not hasattr(v, "_fields"):
        return tuple(_as_tensors(x) for x in v)
    if isinstance(v, list):
        return [_as_tensors(x) for x in v]
    return v
