"""Scalar functions that the fused loops of the Numba backend call as ``vm.NAME(x)``.

Numba compiles ``np.exp(x)`` of a scalar to a call of the C library's ``exp``, one element
at a time, and a loop with a call in it is not vectorised: a float32 ``tanh`` over 16k
elements takes about 170 µs that way and 3 µs in numpy's SIMD loops. The functions here are
written the way the C libraries write them (range reduction, a polynomial, scaling by a
power of two through the bits of a float), but without branches: every case is computed
and the right one selected, so LLVM vectorises a loop that calls them.

* ``exp`` and ``tanh`` of float32 and float64 have such an implementation, in the
  argument's precision (float32 code stays float32). Their error is within 2 units in the
  last place of the correctly rounded result over the whole range, with IEEE results for
  ``inf``, ``nan``, overflow and underflow; ``tests/test_cpumath.py`` measures it against
  numpy in a higher precision.
* Every other name the op table's printers use is numpy's function of the same name,
  which Numba compiles as before; integer and bool arguments go to numpy's functions too.

The set of names is derived from the printers (:func:`s2s_ad.codegen.loop_function_names`);
a test checks that every one of them is defined here.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

# numpy's functions under the names the printers use
from numpy import (  # noqa: F401
    abs,
    arctanh,
    cos,
    cosh,
    log,
    maximum,
    minimum,
    sign,
    sin,
    sinh,
    sqrt,
    square,
    tan,
    where,
)

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

_JIT = {"error_model": "numpy", "nogil": True}


def exp(x):
    """e**x; a vectorisable float32/float64 implementation in compiled loops."""
    return np.exp(x)


def tanh(x):
    """Hyperbolic tangent; a vectorisable float32/float64 implementation in compiled loops."""
    return np.tanh(x)


# ----------------------------------------------------------------------------- bit casts
def _bitcast(bits_type, float_type, ll_float):
    @intrinsic
    def from_bits(typingctx, bits):
        # Numba widens int32 arithmetic to int64; the low 32 bits are the value either way
        if not isinstance(bits, types.Integer):
            return None

        def codegen(context, builder, sig, args):
            v = args[0]
            width = bits_type.bitwidth
            if bits.bitwidth > width:
                v = builder.trunc(v, ir.IntType(width))
            elif bits.bitwidth < width:
                v = builder.sext(v, ir.IntType(width)) if bits.signed else builder.zext(v, ir.IntType(width))
            return builder.bitcast(v, ll_float)

        return float_type(bits), codegen

    return from_bits


_f32_from_bits = _bitcast(types.int32, types.float32, ir.FloatType())  # the float32 with these bits
_f64_from_bits = _bitcast(types.int64, types.float64, ir.DoubleType())  # the float64 with these bits


# ----------------------------------------------------------------------------- float32
F = np.float32
_LOG2E_32 = F(1.44269504088896341)
# ln 2 in two parts: n * _LN2_HI_32 is exact for the |n| <= 150 used here
_LN2_HI_32 = F(0.693359375)
_LN2_LO_32 = F(-2.12194440e-4)


@njit(**_JIT)
def _exp32(x):
    # e**x = 2**n * e**r with n = round(x / ln 2) and |r| <= ln(2)/2; e**r by a minimax
    # polynomial; 2**n as two normal powers of two (n reaches -150 where e**x is subnormal)
    xc = min(max(x, F(-104.0)), F(89.0))
    n = np.floor(xc * _LOG2E_32 + F(0.5))
    r = (xc - n * _LN2_HI_32) - n * _LN2_LO_32
    p = F(1.9875691500e-4)
    p = p * r + F(1.3981999507e-3)
    p = p * r + F(8.3334519073e-3)
    p = p * r + F(4.1665795894e-2)
    p = p * r + F(1.6666665459e-1)
    p = p * r + F(5.0000001201e-1)
    p = p * (r * r) + r + F(1.0)
    ni = np.int32(n)
    n1 = ni >> np.int32(1)
    n2 = ni - n1
    y = p * _f32_from_bits((n1 + np.int32(127)) << np.int32(23)) * _f32_from_bits((n2 + np.int32(127)) << np.int32(23))
    return x if x != x else y


@njit(**_JIT)
def _tanh32(x):
    a = np.abs(x)
    # |x| > 0.625: from e**(2|x|), which is inf (so tanh is 1) beyond 44
    e = _exp32(F(2.0) * a)
    big = F(1.0) - F(2.0) / (e + F(1.0))
    # |x| <= 0.625: an odd minimax polynomial
    z = x * x
    q = F(-5.70498872745e-3)
    q = q * z + F(2.06390887954e-2)
    q = q * z - F(5.37397155531e-2)
    q = q * z + F(1.33314422036e-1)
    q = q * z - F(3.33332819422e-1)
    small = q * z * x + x
    return np.copysign(big if a > F(0.625) else small, x)  # (the sign also makes tanh(-0.0) -0.0)


# ----------------------------------------------------------------------------- float64
_LOG2E_64 = 1.4426950408889634
# ln 2 in two parts; the high part has 32 trailing zero bits, so n * _LN2_HI_64 is exact
_LN2_HI_64 = 6.93147180369123816490e-01
_LN2_LO_64 = 1.90821492927058770002e-10
# 1/k! for k = 2..13: with |r| <= ln(2)/2 the remainder of the series is below 5e-18
_INV_FACT = [1.0 / float(np.prod(np.arange(1, k + 1, dtype=np.float64))) for k in range(2, 14)]
(_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13) = _INV_FACT


@njit(**_JIT)
def _exp64(x):
    # as _exp32, with a degree-13 series; n reaches -1076 where e**x is subnormal
    xc = min(max(x, -746.0), 710.0)
    n = np.floor(xc * _LOG2E_64 + 0.5)
    r = (xc - n * _LN2_HI_64) - n * _LN2_LO_64
    p = _C13
    p = p * r + _C12
    p = p * r + _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * (r * r) + r + 1.0
    ni = np.int64(n)
    n1 = ni >> np.int64(1)
    n2 = ni - n1
    y = (
        p
        * _f64_from_bits((n1 + np.int64(1023)) << np.int64(52))
        * _f64_from_bits((n2 + np.int64(1023)) << np.int64(52))
    )
    return x if x != x else y


@njit(**_JIT)
def _tanh64(x):
    a = np.abs(x)
    e = _exp64(2.0 * a)
    big = 1.0 - 2.0 / (e + 1.0)
    # |x| <= 0.625: x + x z P(z) / Q(z), z = x**2 (a rational minimax approximation)
    z = x * x
    num = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3
    den = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z + 4.84406305325125486048e3
    small = x + x * z * (num / den)
    return np.copysign(big if a > 0.625 else small, x)


# ----------------------------------------------------------------------------- dispatch
def _by_precision(fn, f32, f64):
    @overload(fn, jit_options=_JIT)
    def impl(x):
        if x == types.float32:
            return lambda x: f32(x)
        if x == types.float64:
            return lambda x: f64(x)
        numpy_fn = getattr(np, fn.__name__)
        return lambda x: numpy_fn(x)

    return impl


_by_precision(exp, _exp32, _exp64)
_by_precision(tanh, _tanh32, _tanh64)
