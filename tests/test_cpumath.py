"""The vectorisable functions of fused loops (:mod:`s2s_ad.cpumath`): their error in units in
the last place against a higher-precision reference, IEEE special values, the range of sin and
cos, dtypes, and that a loop calling them is vectorised."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from s2s_ad import cpumath
from s2s_ad.diskcache import NJIT_OPTIONS

RNG = np.random.default_rng(11)
EXTENDED = np.finfo(np.longdouble).nmant >= 63  # x86's 80-bit long double


def _loop(fn):
    """A compiled loop ``out[i] = fn(x[i])``, as the fused loops call cpumath."""

    @numba.njit(**NJIT_OPTIONS)
    def loop(x, out):
        for i in range(x.size):
            out[i] = fn(x[i])

    return loop


LOOPS = {name: _loop(getattr(cpumath, name)) for name in ("exp", "tanh", "sin", "cos", "log")}
LIMIT = {np.float32: float(cpumath.SINCOS_LIMIT_32), np.float64: cpumath.SINCOS_LIMIT_64}


def _run(name: str, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    LOOPS[name](x, out)
    return out


def _reference(name: str, x: np.ndarray) -> np.ndarray:
    """``name(x)`` in a precision beyond x's dtype, as long doubles: float64 for float32; the
    64-bit-mantissa long double for float64, or where there is none mpmath's value correctly
    rounded to float64 (which adds at most half a unit to the measured error)."""
    if x.dtype == np.float32:
        return getattr(np, name)(x.astype(np.float64)).astype(np.longdouble)
    if EXTENDED:
        with np.errstate(over="ignore"):
            return getattr(np, name)(x.astype(np.longdouble))
    import mpmath

    with mpmath.workprec(80):
        f = getattr(mpmath, name)
        return np.array([float(f(mpmath.mpf(float(v)))) for v in x], np.longdouble)


def _ulps(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|got - ref| in units in the last place of ref rounded to got's dtype (subnormals: of the
    smallest subnormal); results that over- or underflow must equal the rounded reference."""
    dt = got.dtype
    with np.errstate(over="ignore"):
        rounded = ref.astype(dt)
    finite = np.isfinite(rounded)
    np.testing.assert_array_equal(got[~finite], rounded[~finite])
    unit = np.maximum(np.spacing(np.abs(rounded[finite])), np.finfo(dt).smallest_subnormal)
    return np.abs(got[finite].astype(np.longdouble) - ref[finite]) / unit.astype(np.longdouble)


# the ranges where the results are normal, subnormal, and near the formulas' switch points
SAMPLES = {
    ("exp", np.float32): [(-104.0, 89.0), (-1.0, 1.0), (-103.5, -87.0), (-1e-3, 1e-3)],
    ("exp", np.float64): [(-746.0, 710.0), (-1.0, 1.0), (-745.0, -708.0), (-1e-6, 1e-6)],
    ("tanh", np.float32): [(-20.0, 20.0), (-1.0, 1.0), (0.6, 0.65), (-1e-4, 1e-4)],
    ("tanh", np.float64): [(-40.0, 40.0), (-1.0, 1.0), (0.6, 0.65), (-1e-8, 1e-8)],
}
for _dt in (np.float32, np.float64):
    _tiny, _huge = np.log(float(np.finfo(_dt).smallest_subnormal)), np.log(float(np.finfo(_dt).max))
    SAMPLES["log", _dt] = [(_tiny, _huge, "exp"), (0.5, 2.0), (0.999, 1.001)]  # "exp": x = e**uniform
for _f in ("sin", "cos"):
    for _dt in (np.float32, np.float64):
        SAMPLES[_f, _dt] = [(-LIMIT[_dt], LIMIT[_dt]), (-4.0, 4.0), (-1e-3, 1e-3)]


def _near_multiples_of_half_pi(dtype) -> np.ndarray:
    """The floats nearest to k pi/2 up to the range's end, and their neighbours: where the
    reduction cancels most."""
    k = np.unique(np.geomspace(1, LIMIT[dtype] / 1.6, 3000).astype(np.int64))
    near = (k * np.longdouble(np.pi / 2)).astype(dtype)
    return np.concatenate([near, np.nextafter(near, dtype(np.inf)), np.nextafter(near, dtype(0)), -near])


@pytest.mark.parametrize("name,dtype", sorted(SAMPLES, key=str), ids=lambda v: getattr(v, "__name__", v))
def test_error_is_within_two_ulps(name, dtype):
    n = 40_000 if (EXTENDED or dtype == np.float32) else 2_000
    parts = [
        RNG.uniform(r[0], r[1], n) if len(r) == 2 else np.exp(RNG.uniform(r[0], r[1], n)) for r in SAMPLES[name, dtype]
    ]
    x = np.concatenate(parts).astype(dtype)
    x = x[np.isfinite(x) & (x > 0)] if name == "log" else x
    if name in ("sin", "cos"):
        x = np.concatenate([x, _near_multiples_of_half_pi(dtype)])
    got = _run(name, x)
    assert got.dtype == dtype
    err = _ulps(got, _reference(name, x))
    assert err.max() <= 2.0, f"{name} {np.dtype(dtype).name}: {float(err.max()):.2f} ulp at x = {x[np.argmax(err)]!r}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", ["exp", "tanh", "log"])
def test_special_values(name, dtype):  # (sin and cos: below)
    big = 1e3 if dtype == np.float32 else 1e5
    info = np.finfo(dtype)
    x = np.array(
        [np.nan, np.inf, -np.inf, 0.0, -0.0, big, -big, 1e-30, -1e-30, 1.0, info.smallest_subnormal, info.max], dtype
    )
    got = _run(name, x)
    with np.errstate(all="ignore"):
        want = getattr(np, name)(x)
    exact = ~np.isfinite(want) | (want == 0)  # inf, nan, zeros: the same; the rest within 2 ulp
    np.testing.assert_array_equal(got[exact], want[exact])
    np.testing.assert_array_max_ulp(got[~exact], want[~exact], maxulp=2)
    number = ~np.isnan(want)
    assert np.array_equal(np.signbit(got[number]), np.signbit(want[number]))  # tanh(-0.0) is -0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_sin_and_cos_are_nan_beyond_their_range(name, dtype):
    """The fused loops rerun with numpy's functions when they see nan (test_fused_loops.py)."""
    lim = LIMIT[dtype]
    inside = np.array([lim, -lim, 0.0, -0.0, 1e-30, -1e-30], dtype)
    got = _run(name, inside)
    np.testing.assert_allclose(got, getattr(np, name)(inside.astype(np.float64)), rtol=4 * np.finfo(dtype).eps)
    assert np.array_equal(np.signbit(got), np.signbit(getattr(np, name)(inside)))  # sin(-0.0) is -0.0
    outside = np.array([np.nextafter(dtype(lim), dtype(np.inf)), -2 * lim, 1e30, np.inf, -np.inf, np.nan], dtype)
    assert np.isnan(_run(name, outside)).all()


def test_overflow_and_underflow_thresholds():
    for dt in (np.float32, np.float64):
        info = np.finfo(dt)
        top = np.log(np.longdouble(info.max))
        x = np.array([np.nextafter(dt(top), dt(0)), np.nextafter(dt(top), dt(np.inf))], dt)
        got = _run("exp", x)
        assert np.isfinite(got[0]) and got[1] == np.inf
        # the smallest subnormal, and zero below half of it
        low = np.log(np.longdouble(info.smallest_subnormal))
        got = _run("exp", np.array([low + 0.1, low - 1.0], dt))
        assert got[0] > 0 and got[1] == 0


def test_a_loop_calling_them_is_vectorised():
    """No C library call is left in the loop, so LLVM turns it into SIMD code."""
    x = np.ones(64, np.float32)
    for name, loop in LOOPS.items():
        _run(name, x)
        # (the float32 one: other tests of this process may have compiled the loop for float64 first)
        (sig,) = [sig for sig in loop.signatures if str(sig[0].dtype) == "float32"]
        llvm = loop.inspect_llvm(sig)
        assert " x float>" in llvm, f"the {name} loop is not vectorised"
        assert f"@{name}f(" not in llvm


def test_other_arguments_go_to_numpy():
    @numba.njit(**NJIT_OPTIONS)
    def f(i, b):
        return cpumath.exp(i), cpumath.tanh(b), cpumath.sin(i), cpumath.log(i)

    got = f(np.int64(2), np.float32(0.5))
    assert got[3] == pytest.approx(np.log(2))
    assert got[0] == pytest.approx(np.exp(2)) and got[1] == pytest.approx(np.tanh(np.float32(0.5)))
    assert got[2] == pytest.approx(np.sin(2))
    assert cpumath.exp(np.float32(1.0)) == np.exp(np.float32(1.0))  # the Python fallbacks


def test_sum_add_reassociates_only_the_sum():
    """A loop summing with sum_add vectorises; the other float operations keep IEEE order (no
    reassoc flag on the compensated steps of sin/cos)."""

    @numba.njit(**NJIT_OPTIONS)
    def total(x):
        acc = 0.0
        for i in range(x.size):
            acc = cpumath.sum_add(acc, cpumath.sin(x[i]))
        return acc

    x = RNG.uniform(-3, 3, 4099).astype(np.float32)
    got = total(x)
    assert isinstance(got, float)
    assert got == pytest.approx(math.fsum(_run("sin", x).astype(np.float64)), rel=1e-12, abs=1e-12)
    llvm = total.inspect_llvm(total.signatures[0])
    assert " x double>" in llvm or " x float>" in llvm
    flagged = [ln for ln in llvm.splitlines() if " reassoc " in ln]
    assert flagged and all("fadd" in ln or "reduce" in ln or "phi" in ln for ln in flagged)
