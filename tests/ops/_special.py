"""IEEE special values for the special-value tests (``test_special_values.py`` and the CUDA
target's ``tests/cuda/test_cuda_special_values.py``): the inputs, numpy's reference for every
elementwise op of the table, the one program that applies every op, and the comparison
(nan matches nan, infinities and the sign of a zero exactly, finite values within a few ulp).
"""

from __future__ import annotations

import numpy as np
import scipy.special

from s2s_ad.ir import Aval, Program
from s2s_ad.primitives import ELEMENTWISE
from s2s_ad.trace import trace


def specials(dtype) -> np.ndarray:
    """inf, -inf, nan, ±0, the largest and smallest (subnormal) values, values whose exp,
    sinh, square or sum overflows, and values out of a domain (log(-1), sqrt(-1), arctanh(2))."""
    fi = np.finfo(dtype)
    vals = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 1000.0, -1000.0, fi.max, -fi.max]
    vals += [float(fi.smallest_subnormal), np.inf, -np.inf, np.nan]
    return np.array(vals, dtype=dtype)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))  # MindSpore's definition, evaluated by numpy


def _step(x):
    return np.where(x > 0, 1, 0).astype(x.dtype)


# numpy's evaluation of every elementwise op (``step``, ``at_least`` and ``log_or_zero`` are only made by AD)
REFERENCE = {
    "add": np.add,
    "floor_div": np.floor_divide,
    "floor_mod": np.mod,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "neg": np.negative,
    "square": np.square,
    "sqrt": np.sqrt,
    "exp": np.exp,
    "expm1": np.expm1,
    "log": np.log,
    "log1p": np.log1p,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "atanh": np.arctanh,
    "abs": np.abs,
    "sign": np.sign,
    "sigmoid": _sigmoid,
    "relu": lambda x: np.maximum(x, 0),
    "step": _step,
    "log_or_zero": lambda x: np.log(np.where(x == 0, 1, x)),
    "at_least": lambda x, y: np.where(x >= y, 1, 0).astype(x.dtype),
    "maximum": np.maximum,
    "minimum": np.minimum,
    "select": np.where,
    "atan": np.arctan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atan2": np.arctan2,
    "logaddexp": np.logaddexp,
    "softplus": lambda x: np.logaddexp(0, x).astype(x.dtype),
    "silu": lambda x: x * _sigmoid(x),
    "mish": lambda x: x * np.tanh(np.logaddexp(0, x).astype(x.dtype)),
    "fast_gelu": lambda x: x / (1 + np.exp(-1.702 * np.abs(x))) * np.exp(0.851 * (x - np.abs(x))),
    "erf": scipy.special.erf,
    "erfc": scipy.special.erfc,
}


def grid(op, dtype, n_unary: int = 64) -> list[np.ndarray]:
    """Inputs of ``op`` (1-D): every special value (tiled to ``n_unary``, so that the Numba
    backend fuses a loop) for a unary op, every pair for a binary one, and every pair under an
    alternating condition for select."""
    s = specials(dtype)
    if op.nin == 1:
        return [np.resize(s, max(n_unary, len(s)))]
    a, b = (m.ravel() for m in np.meshgrid(s, s, indexing="ij"))
    if op.nin == 2:
        return [a, b]
    return [np.arange(len(a)) % 2 == 0, a, b]


def reference(op, xs: list[np.ndarray]) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(REFERENCE[op.name](*xs))


def every_op(dtype, shape_of=None) -> tuple[Program, list[np.ndarray], list]:
    """One program applying every elementwise op to its own inputs from :func:`grid` (or, with
    ``shape_of``, to inputs of the shape ``shape_of(op)`` it returns), the grid inputs, and the ops."""
    avals, xs, spans = [], [], []
    for op in ELEMENTWISE:
        g = grid(op, dtype)
        start = len(avals)
        for i, x in enumerate(g):
            shape = x.shape if shape_of is None else shape_of(op)
            avals.append(Aval(tuple(shape), np.dtype(np.bool_) if i in op.bool_inputs else np.dtype(dtype)))
        xs += g
        spans.append((op, start, len(avals)))

    def body(fe, vals):
        return tuple(fe.bind1(op.name, *vals[a:b]) for op, a, b in spans)

    prog = trace(body, avals, f"specials_{np.dtype(dtype).name}", [f"x{i}" for i in range(len(avals))])
    return prog, xs, [(op, a, b) for op, a, b in spans]


def assert_ieee_equal(got, want, what: str, ulps: int = 8) -> None:
    """``got`` equals numpy's ``want``: nan where it is nan, the same infinities, zeros of the
    same sign, other values within ``ulps`` units in the last place."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype}, numpy gives {want.dtype}"
    if want.dtype.kind != "f":
        bad = got != want
    else:
        fi = np.finfo(want.dtype)
        nan_w, nan_g = np.isnan(want), np.isnan(got)
        with np.errstate(all="ignore"):
            close = np.abs(got - want) <= ulps * fi.eps * np.abs(want) + ulps * fi.smallest_subnormal
        zero = want == 0
        bad = (nan_w != nan_g) | (
            ~nan_w
            & (
                (np.isinf(want) & (got != want))
                | (~close & ~np.isinf(want))
                | (zero & (np.signbit(got) != np.signbit(want)))
            )
        )
    if np.any(bad):
        idx = np.flatnonzero(bad)[:8]
        raise AssertionError(
            f"{what}: {int(np.count_nonzero(bad))} of {bad.size} values differ from numpy, e.g. "
            + ", ".join(f"[{i}] got {got.ravel()[i]!r} numpy {want.ravel()[i]!r}" for i in idx)
        )
