"""The vectorisable scalar functions of the fused loops, as plain Python.

The algorithms behind :mod:`s2s_ad.cpumath`'s ``exp``, ``tanh``, ``log``, ``sin`` and ``cos``
of float32 and float64 (range reduction, a polynomial, scaling by a power of two through the
bits of a float; branch-free, so that LLVM vectorises a loop that calls them; see cpumath's
docstring for their accuracy and special values). This module imports no compiler: cpumath
compiles these functions with Numba (with its bit casts as Numba intrinsics), and
:mod:`s2s_ad.llvmloops` translates their source into LLVM IR, so one source defines them
for both. The bit casts here are plain Python, for reading and for running the functions
without a compiler.
"""

from __future__ import annotations

import numpy as np

# the functions of the fused loops that have a vectorisable version here, by numpy's name:
# (float32 version, float64 version)
VECTORISED = {
    "exp": ("_exp32", "_exp64"),
    "tanh": ("_tanh32", "_tanh64"),
    "log": ("_log32", "_log64"),
    "sin": ("_sin32", "_sin64"),
    "cos": ("_cos32", "_cos64"),
}
# the functions of the fused loops that numpy lacks (scipy.special's names): the C library's
SPECIAL = ("erf", "erfc")
# every function here, each after those it calls
SCALAR = (
    "_exp32",
    "_tanh32",
    "_exp64",
    "_tanh64",
    "_log32",
    "_log64",
    "_sincos32",
    "_sincos64",
    "_sin32",
    "_cos32",
    "_sin64",
    "_cos64",
)


# ----------------------------------------------------------------------------- bit casts
def _f32_from_bits(bits):
    """The float32 whose bits are the low 32 bits of the integer ``bits``."""
    return np.array(int(bits) & 0xFFFFFFFF, np.uint32).view(np.float32)[()]


def _f64_from_bits(bits):
    """The float64 whose bits are the integer ``bits`` (its low 64)."""
    return np.array(int(bits) & 0xFFFFFFFFFFFFFFFF, np.uint64).view(np.float64)[()]


def _bits32(x):
    """A float32's bits, as a signed integer."""
    return int(np.array(x, np.float32).view(np.int32))


def _bits64(x):
    """A float64's bits, as a signed integer."""
    return int(np.array(x, np.float64).view(np.int64))


BIT_CASTS = ("_f32_from_bits", "_f64_from_bits", "_bits32", "_bits64")


# ----------------------------------------------------------------------------- float32
F = np.float32
_LOG2E_32 = F(1.44269504088896341)
# ln 2 in two parts: n * _LN2_HI_32 is exact for the |n| <= 150 used here
_LN2_HI_32 = F(0.693359375)
_LN2_LO_32 = F(-2.12194440e-4)


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


# ----------------------------------------------------------------------------- log
# log x = k ln 2 + log m with x = 2**k m and m in [sqrt(2)/2, sqrt(2)) (found by adding the
# bits of 1 - sqrt(2)/2 to x's, so that the carry into the exponent picks k); log m = log(1 + f)
# from s = f / (2 + f) and a minimax polynomial in s**2, as in fdlibm. Subnormal x is scaled
# into the normal range first; x < 0 gives nan, 0 gives -inf, inf and nan themselves.
_LG1_32, _LG2_32, _LG3_32, _LG4_32 = F(0.66666662693), F(0.40000972152), F(0.28498786688), F(0.24279078841)
_LN2_HI_LOG32, _LN2_LO_LOG32 = F(6.9313812256e-01), F(9.0580006145e-06)


def _log32(x):
    sub = x < F(1.1754943508222875e-38)  # subnormal (or zero, or negative: fixed below)
    xs = x * F(33554432.0) if sub else x  # * 2**25
    ix = _bits32(xs) + (0x3F800000 - 0x3F3504F3)
    k = (ix >> 23) - 0x7F - (25 if sub else 0)
    f = _f32_from_bits((ix & 0x007FFFFF) + 0x3F3504F3) - F(1.0)
    s = f / (F(2.0) + f)
    z = s * s
    w = z * z
    r = z * (_LG1_32 + w * _LG3_32) + w * (_LG2_32 + w * _LG4_32)
    hfsq = F(0.5) * f * f
    dk = F(k)
    y = s * (hfsq + r) + dk * _LN2_LO_LOG32 - hfsq + f + dk * _LN2_HI_LOG32
    y = x if x == F(np.inf) else y
    y = -F(np.inf) if x == F(0.0) else y
    return F(np.nan) if x < F(0.0) or x != x else y


_LG1, _LG2, _LG3 = 6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01
_LG4, _LG5, _LG6 = 2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01


def _log64(x):
    sub = x < 2.2250738585072014e-308
    xs = x * 18014398509481984.0 if sub else x  # * 2**54
    ix = _bits64(xs) + (0x3FF0000000000000 - 0x3FE6A09E00000000)
    k = (ix >> 52) - 0x3FF - (54 if sub else 0)
    f = _f64_from_bits((ix & 0x000FFFFFFFFFFFFF) + 0x3FE6A09E00000000) - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    hfsq = 0.5 * f * f
    dk = np.float64(k)
    y = s * (hfsq + (t1 + t2)) + dk * _LN2_LO_64 - hfsq + f + dk * _LN2_HI_64
    y = x if x == np.inf else y
    y = -np.inf if x == 0.0 else y
    return np.nan if x < 0.0 or x != x else y


# ----------------------------------------------------------------------------- sin and cos
# sin and cos reduce x by the multiple k of pi/2 nearest to it: r = x - k pi/2, |r| <= pi/4,
# and evaluate sin or cos of r by the quadrant k mod 4. The reduction subtracts pi/2 in parts
# whose products with k are exact, which holds for |x| below SINCOS_LIMIT (2**20 pi/2). Beyond it (and for inf and nan) the result is nan: the fused loops
# check for that and run the loop again with numpy's functions (see ``codegen._print_loop``),
# so these two are only for those loops.
SINCOS_LIMIT_32 = F(1647099.3)  # 2**20 pi / 2, as in float64
SINCOS_LIMIT_64 = 1647099.3291652855  # 2**20 * pi / 2

_TWO_OVER_PI_64 = 0.63661977236758134308
# pi/2 in 33-bit parts (k * part is exact for |k| < 2**20) and the rest
_PIO2_1 = 1.57079632673412561417e00
_PIO2_2 = 6.07710050630396597660e-11
_PIO2_3 = 2.02226624871116645580e-21
_PIO2_3T = 8.47842766036889956997e-32
_S1, _S2, _S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
_S4, _S5, _S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
_K1, _K2, _K3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
_K4, _K5, _K6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11


def _sincos32(x, shift):
    """sin(x) (shift 0) or cos(x) (shift 1) of a float32, for |x| <= SINCOS_LIMIT_32: the
    reduction in float64 (a float32 pi/2 in parts would lose bits near its multiples), the
    polynomials in float32."""
    xd = np.float64(x)
    k = np.floor(xd * _TWO_OVER_PI_64 + 0.5)
    r = np.float32((xd - k * _PIO2_1) - k * _PIO2_2)
    z = r * r
    s = ((F(-1.9515295891e-4) * z + F(8.3321608736e-3)) * z - F(1.6666654611e-1)) * z * r + r
    c = ((F(2.443315711809948e-5) * z - F(1.388731625493765e-3)) * z + F(4.166664568298827e-2)) * (z * z)
    c = c - F(0.5) * z + F(1.0)
    q = (np.int64(k) + shift) & 3  # sin(x) = (sin r, cos r, -sin r, -cos r)[q]; cos: q + 1
    y = c if q & 1 else s
    y = -y if q & 2 else y
    y = x if shift == 0 and np.abs(x) < F(2.44140625e-4) else y  # sin x rounds to x (and -0.0 stays)
    return y if np.abs(x) <= SINCOS_LIMIT_32 else F(np.nan)


def _sincos64(x, shift):
    """sin(x) (shift 0) or cos(x) (shift 1) of a float64, for |x| <= SINCOS_LIMIT_64."""
    k = np.floor(x * _TWO_OVER_PI_64 + 0.5)
    # r = hi + lo exactly enough: a - b as a two-term sum (a and k * _PIO2_2 are exact)
    a = x - k * _PIO2_1
    b = k * _PIO2_2
    hi = a - b
    bb = hi - a
    lo = ((a - (hi - bb)) - (b + bb)) - k * _PIO2_3 - k * _PIO2_3T
    r = hi + lo  # renormalised: |lo| below half a unit of hi, as the polynomials' correction assumes
    lo = lo - (r - hi)
    hi = r
    # minimax polynomials on |r| <= pi/4 with the low part as a first-order correction
    z = hi * hi
    w = z * z
    v = z * hi
    rs = _S2 + z * (_S3 + z * _S4) + z * w * (_S5 + z * _S6)
    s = hi - ((z * (0.5 * lo - v * rs) - lo) - v * _S1)
    rc = z * (_K1 + z * (_K2 + z * _K3)) + w * w * (_K4 + z * (_K5 + z * _K6))
    hz = 0.5 * z
    one_minus = 1.0 - hz
    c = one_minus + (((1.0 - one_minus) - hz) + (z * rc - hi * lo))
    q = (np.int64(k) + shift) & 3
    y = c if q & 1 else s
    y = -y if q & 2 else y
    y = x if shift == 0 and np.abs(x) < 1.4901161193847656e-08 else y  # sin x rounds to x (and -0.0 stays)
    return y if np.abs(x) <= SINCOS_LIMIT_64 else np.nan


def _sin32(x):
    return _sincos32(x, 0)


def _cos32(x):
    return _sincos32(x, 1)


def _sin64(x):
    return _sincos64(x, 0)


def _cos64(x):
    return _sincos64(x, 1)
