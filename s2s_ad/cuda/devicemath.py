"""Scalar device functions that the CUDA kernels call as ``dm.NAME(x)``.

The op table's elementwise printers are reused for the CUDA target by printing them with this
module as the namespace (``("call", "exp")`` prints ``dm.exp(x)``, the sigmoid template prints
``... / (... + dm.exp(-x))``), so no op needs a second hand-written entry. The set of names is
derived from the printers (:func:`s2s_ad.cuda.printer.device_function_names`) and every one of
them is defined here.

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

import numpy as np

_pyabs = builtins.abs

__all__ = [
    "abs",
    "arctanh",
    "cos",
    "cosh",
    "exp",
    "log",
    "maximum",
    "minimum",
    "sign",
    "sin",
    "sinh",
    "sqrt",
    "square",
    "tan",
    "tanh",
    "where",
]


def exp(x):
    """e**x."""
    return np.exp(x)


def log(x):
    """Natural logarithm."""
    return np.log(x)


def sqrt(x):
    """Square root."""
    return np.sqrt(x)


def sin(x):
    """Sine."""
    return np.sin(x)


def cos(x):
    """Cosine."""
    return np.cos(x)


def tan(x):
    """Tangent."""
    return np.tan(x)


def sinh(x):
    """Hyperbolic sine."""
    return np.sinh(x)


def cosh(x):
    """Hyperbolic cosine."""
    return np.cosh(x)


def tanh(x):
    """Hyperbolic tangent."""
    return np.tanh(x)


def arctanh(x):
    """Inverse hyperbolic tangent."""
    return np.arctanh(x)


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


# The math functions whose CUDA form is the ``math`` module's (typed by the argument: a
# float32 argument calls the float32 libdevice function).
_MATH = {
    exp: math.exp,
    log: math.log,
    sqrt: math.sqrt,
    sin: math.sin,
    cos: math.cos,
    tan: math.tan,
    sinh: math.sinh,
    cosh: math.cosh,
    tanh: math.tanh,
    arctanh: math.atanh,
}


def _register_cuda_overloads() -> None:
    from numba.cuda.extending import overload
    from numba.cuda.np.numpy_support import as_dtype

    def unary(fn, impl):
        overload(fn, target="cuda")(lambda x: lambda x: impl(x))

    for fn, impl in _MATH.items():
        unary(fn, impl)

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


def _simulated() -> bool:
    from numba.core import config

    return bool(config.ENABLE_CUDASIM)


if not _simulated():
    _register_cuda_overloads()
