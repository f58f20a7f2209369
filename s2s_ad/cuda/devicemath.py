"""Scalar device functions for the CUDA kernels, which call them as ``dm.NAME(x)``.

The op table's elementwise printers are reused for the CUDA target by printing them with the
namespace ``dm`` (``("call", "exp")`` prints ``dm.exp(x)``, the sigmoid template prints
``... / (... + dm.exp(-x))``), so no op needs a second hand-written entry. ``dm`` is built from
the op table by :func:`s2s_ad.cuda.printer.device_namespace`: for the function an elementwise op
computes, the helper of that name here where one exists (``square``, ``abs``, ``sign``,
``maximum``, ``minimum``, ``where``), else :func:`math_function` of numpy's function and the
op's CUDA lowering (the ``math`` function CUDA compiles: ``math.exp``, ``math.atanh``).

Each function has two implementations:

* the Python body, numpy on numpy scalars, which Numba's CUDA simulator runs
  (``NUMBA_ENABLE_CUDASIM=1``): numpy keeps float32 float32 and gives IEEE results (``inf``,
  ``nan``) where the ``math`` module would raise;
* a CUDA overload (``numba.cuda.extending.overload``), compiled into the kernels on a GPU. It
  is typed by its argument: ``math.exp`` of a float32 is ``expf``, and the constants of
  ``sign`` are built in the argument's dtype, so float32 code never goes through float64.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Callable

import numpy as np

_pyabs = builtins.abs

__all__ = ["HELPERS", "abs", "logaddexp", "math_function", "maximum", "minimum", "sign", "square", "where"]


def math_function(name: str, numpy_fn: Callable, cuda_fn: Callable, nin: int = 1) -> Callable:
    """The device function ``name`` of ``nin`` (1 or 2) arguments: ``numpy_fn`` in the
    simulator, ``cuda_fn`` (a ``math`` function, typed by its arguments) compiled on a GPU."""
    if nin == 2:

        def fn2(x, y):
            return numpy_fn(x, y)

        fn = fn2
    else:

        def fn1(x):
            return numpy_fn(x)

        fn = fn1
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"{name}: numpy's {numpy_fn.__name__} in the simulator, {cuda_fn.__name__} on a GPU."
    if not _simulated():
        from numba.cuda.extending import overload  # numba.cuda's compiler: only on a GPU

        if nin == 2:
            overload(fn, target="cuda")(lambda x, y: lambda x, y: cuda_fn(x, y))
        else:
            overload(fn, target="cuda")(lambda x: lambda x: cuda_fn(x))
    return fn


def logaddexp(a, b):
    """log(exp(a) + exp(b)) without overflow (``np.logaddexp``)."""
    return np.logaddexp(a, b)


def square(x):
    """x * x."""
    return x * x


def abs(x):  # noqa: A001 - the name the op table prints
    """Absolute value."""
    return np.abs(x)


def sign(x):
    """-1, 0 or 1 in x's dtype (nan for nan, +0.0 for -0.0 as numpy)."""
    return np.sign(x)


def maximum(a, b):
    """The larger of a and b; nan if either is nan (``np.maximum``)."""
    return np.maximum(a, b)


def minimum(a, b):
    """The smaller of a and b; nan if either is nan (``np.minimum``)."""
    return np.minimum(a, b)


def where(c, a, b):
    """a if c else b."""
    return a if c else b


def _register_cuda_overloads() -> None:
    from numba.cuda.extending import overload
    from numba.cuda.np.numpy_support import as_dtype

    @overload(square, target="cuda")
    def _square(x):
        return lambda x: x * x

    @overload(abs, target="cuda")
    def _abs(x):
        return lambda x: _pyabs(x)

    @overload(sign, target="cuda")
    def _sign(x):
        one, zero = as_dtype(x).type(1), as_dtype(x).type(0)

        def impl(x):
            if x > zero:
                return one
            if x < zero:
                return -one
            if x == zero:
                return zero  # +0.0 for -0.0 too, as numpy gives
            return x  # nan

        return impl

    @overload(maximum, target="cuda")
    def _maximum(a, b):
        # a nan in either operand wins, as in np.maximum; a tie gives b (so -0.0 and 0.0
        # give the second, as numpy does)
        return lambda a, b: a if (a > b or a != a) else b

    @overload(minimum, target="cuda")
    def _minimum(a, b):
        return lambda a, b: a if (a < b or a != a) else b

    @overload(where, target="cuda")
    def _where(c, a, b):
        return lambda c, a, b: a if c else b

    @overload(logaddexp, target="cuda")
    def _logaddexp(a, b):
        # numpy's algorithm: a tie (also of infinities) is a + log(2); nan if either is nan
        ln2 = as_dtype(a).type(np.log(2.0))

        def impl(a, b):
            if a == b:
                return a + ln2
            d = a - b
            if d > 0:
                return a + math.log1p(math.exp(-d))
            if d <= 0:
                return b + math.log1p(math.exp(d))
            return d

        return impl


def _simulated() -> bool:
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


if not _simulated():
    _register_cuda_overloads()

# the device functions that have a helper of their own, by name
HELPERS = {fn.__name__: fn for fn in (square, abs, sign, maximum, minimum, where, logaddexp)}
