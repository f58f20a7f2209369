"""Vectorisable scalar kernels for the fused loops of the Numba backend.

Numba compiles ``np.exp(x)`` of a scalar to a call of the C library's ``exp``, one element
at a time, and a loop with a call in it is not vectorised: a float32 ``tanh`` over 16k
elements takes about 170 µs that way and 3 µs in numpy's SIMD loops. The functions here are
written the way the C libraries write them (range reduction, a polynomial, scaling by a
power of two through the bits of a float), but without branches: every case is computed
and the right one selected, so LLVM vectorises a loop that calls them. Their source is
:mod:`s2s_ad.vecmath` (plain Python, which :mod:`s2s_ad.llvmloops` translates too); here
they are compiled by Numba, with the bit casts as Numba intrinsics.

* ``exp``, ``log``, ``tanh``, ``sin`` and ``cos`` of float32 and float64 have such an implementation,
  with float32 arithmetic for float32 (only the argument reduction of sin and cos is done in
  float64). Their error is within 2 units in the last place of the correctly rounded result
  (``tests/test_cpumath.py`` measures it against a higher precision), with IEEE results for
  ``inf``, ``nan``, overflow, underflow and ``-0.0``. Integer and bool arguments go to numpy's
  functions.
* ``sin`` and ``cos`` reduce the argument exactly only for ``|x| <= 2**20 pi/2``; beyond it
  (and for ``inf`` and ``nan``) they return ``nan``, and the fused loop that called them runs
  again with numpy's functions (``codegen._print_loop``). They are meant for those loops only.
* ``erf`` and ``erfc`` have no numpy function to fall back on (numpy code calls scipy.special's):
  here they are the C library's ``erf``/``erfc`` (Numba's ``math.erf``), element by element, for
  a scalar of any dtype and for an array (code outside fused loops calls them too).
* ``sum_add`` is the addition of the loops' float sums, the one operation LLVM may reorder.

The loops call their functions as ``vm.NAME(x)``; the namespace ``vm`` is built from the op
table by :func:`s2s_ad.codegen.loop_namespace`: the kernel here where one of the function's
name exists, else numpy's function (which Numba compiles as a call of the C library: ``tan``,
``sinh``, ``expm1``, ... keep their loop scalar). A kernel is added here only for speed.
"""

from __future__ import annotations

import math
from types import FunctionType

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from . import vecmath
from .context import disk_cache_on

__all__ = ["KERNELS", "cos", "erf", "erfc", "exp", "log", "sin", "sum_add", "tanh"]

_JIT = {"error_model": "numpy", "nogil": True}


def _kernel(fn):
    """``fn`` compiled by Numba, its machine code kept by Numba's own cache (next to this
    module, or in the user's cache directory where that is read-only), so that a process
    compiling a program loads it instead of compiling it again; not when s2s_ad's disk cache
    is turned off, or where Numba finds no place to keep it."""
    if disk_cache_on():
        try:
            return njit(cache=True, **_JIT)(fn)
        except RuntimeError:  # Numba: "cannot cache function ...: no locator available"
            pass
    return njit(**_JIT)(fn)


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


def _bits_of(float_type, bits_type):
    @intrinsic
    def bits(typingctx, x):
        if x != float_type:
            return None

        def codegen(context, builder, sig, args):
            v = builder.bitcast(args[0], ir.IntType(bits_type.bitwidth))
            return builder.sext(v, ir.IntType(64)) if bits_type.bitwidth < 64 else v

        return types.int64(x), codegen

    return bits


_bits32 = _bits_of(types.float32, types.int32)  # a float32's bits (as a signed int64)
_bits64 = _bits_of(types.float64, types.int64)  # a float64's bits


# ----------------------------------------------------------------------------- sums
@intrinsic
def sum_add(typingctx, acc, value):
    """``acc + value`` (value converted to acc's float type) as an addition LLVM may
    reassociate: a loop that sums with it is vectorised (partial sums per SIMD lane, added up
    at the end), while every other operation keeps IEEE order."""
    if not isinstance(acc, types.Float) or not isinstance(value, (types.Float, types.Integer, types.Boolean)):
        return None

    def codegen(context, builder, sig, args):
        v = context.cast(builder, args[1], sig.args[1], sig.return_type)
        return builder.fadd(args[0], v, flags=("reassoc",))

    return acc(acc, value), codegen


def log(x):
    """Natural logarithm; a vectorisable float32/float64 implementation in compiled loops."""
    return np.log(x)


def sin(x):
    """sin(x); in compiled loops of float32/float64, nan beyond ``SINCOS_LIMIT`` (see above)."""
    return np.sin(x)


def cos(x):
    """cos(x); in compiled loops of float32/float64, nan beyond ``SINCOS_LIMIT`` (see above)."""
    return np.cos(x)


# ----------------------------------------------------------------------------- the functions
def _compiled() -> dict:
    """vecmath's scalar functions compiled by Numba, by name: each a copy of the function
    whose globals are vecmath's with the bit casts as the intrinsics above and the functions
    it calls as their compiled versions."""
    ns = dict(vars(vecmath))
    ns.update(_f32_from_bits=_f32_from_bits, _f64_from_bits=_f64_from_bits, _bits32=_bits32, _bits64=_bits64)
    for name in vecmath.SCALAR:
        fn = getattr(vecmath, name)
        copy = FunctionType(fn.__code__, ns, name, fn.__defaults__)
        copy.__qualname__, copy.__module__, copy.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
        ns[name] = _kernel(copy)
    return ns


_NS = _compiled()
SINCOS_LIMIT_32, SINCOS_LIMIT_64 = vecmath.SINCOS_LIMIT_32, vecmath.SINCOS_LIMIT_64


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


for _name, (_f32, _f64) in vecmath.VECTORISED.items():
    _by_precision(globals()[_name], _NS[_f32], _NS[_f64])


# ----------------------------------------------------------------------------- special functions
def erf(x):
    """The error function; the C library's ``erf`` in compiled code (scipy.special's in Python)."""
    import scipy.special  # only when run without Numba (NUMBA_DISABLE_JIT)

    return scipy.special.erf(x)


def erfc(x):
    """1 - erf(x), accurate where erf(x) is close to 1; the C library's ``erfc`` in compiled code."""
    import scipy.special  # only when run without Numba (NUMBA_DISABLE_JIT)

    return scipy.special.erfc(x)


def _math_kernel(fn, scalar):
    @overload(fn, jit_options=_JIT)
    def impl(x):
        if isinstance(x, types.Float):
            return lambda x: scalar(x)
        if isinstance(x, (types.Integer, types.Boolean)):
            return lambda x: scalar(np.float64(x))
        if isinstance(x, types.Array) and isinstance(x.dtype, types.Float):

            def array_impl(x):
                out = np.empty(x.shape, x.dtype)
                flat, src = out.reshape(-1), np.ascontiguousarray(x).reshape(-1)
                for i in range(src.size):
                    flat[i] = scalar(src[i])
                return out

            return array_impl
        return None

    return impl


_math_kernel(erf, math.erf)
_math_kernel(erfc, math.erfc)


# the vectorised kernels, by the name of numpy's function they replace in fused loops, and
# the functions numpy lacks, by scipy.special's name (a scalar loop of the C library's)
KERNELS = {name: globals()[name] for name in (*vecmath.VECTORISED, *vecmath.SPECIAL)}
