"""Structural ops on the CUDA target (matmul, reductions, shape ops, indexing, casts,
comparisons, select, fills) and their gradients, against numpy (PYNATIVE_MODE), on tiny shapes.
Each function is compiled with ``jit``/``grad`` and ``target="cuda"``; the reference is the same
function with ``target="cpu"`` in PYNATIVE_MODE."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="the CUDA target needs numba-cuda")

import s2s_ad  # noqa: E402
from s2s_ad import context, ops  # noqa: E402
from s2s_ad import dtype as mstype  # noqa: E402

RNG = np.random.default_rng(0)


def distinct(*shape, dtype=np.float32):
    """Values well apart (max/min have no ties), in [-1, 1]."""
    n = int(np.prod(shape))
    return ((RNG.permutation(n) + 0.5) / n * 2 - 1).reshape(shape).astype(dtype)


# ---------------------------------------------------------------------------- functions
def matmuls(a, b, c, v):
    return (
        np.matmul(a, b),
        ops.MatMul(transpose_b=True)(a, c),
        ops.MatMul(transpose_a=True)(c.T * 1.0, b),
        ops.MatMul(transpose_a=True, transpose_b=True)(a.T * 2.0, c),
        np.dot(a, v),  # matrix @ vector, through reshapes
        np.dot(v, b),  # vector @ matrix
    )


def reductions(x):
    return (
        np.sum(x),
        np.sum(x, axis=1, keepdims=True),
        np.mean(x, axis=(0, 2)),
        np.max(x, axis=0),  # rows of 3: a thread per row
        np.min(x, axis=-1, keepdims=True),  # rows of 5: a block per row
        np.max(x),
        np.min(x, axis=(0, 1)),
        ops.ReduceMean(keep_dims=True)(x * x, (1, 2)),
    )


def fused_reductions(x):
    y = np.exp(x) * x
    # one loop: the first axes run innermost (a scan per row), the others add atomically
    return np.sum(y, axis=0), np.sum(y, axis=1), np.sum(y), np.mean(y * y, axis=0, keepdims=True)


def shapes(x):
    return (
        x[1:, None, ::-2],
        x[-1, 1],
        x[..., 2],
        x[:, 1:3][::-1],
        np.transpose(x, (2, 0, 1)),
        np.reshape(x, (12, 5)) * 2.0,
        np.broadcast_to(x[0, 0], (2, 5)),
        ops.transpose(x, (1, 0, 2))[0],
    )


def logic(x, y):
    m = x > y
    return (
        np.where(m, x, y * 2.0),
        ops.cast(m, mstype.float32) * x,
        ops.cast(x, mstype.float64) + 1.0,
        np.where(x <= 0.25, np.sin(x), np.zeros_like(x)),
    )


def comparisons(x, y):
    return x > y, x >= y, x < y, x <= y, x == y, x != y, ops.cast(x * 4.0, mstype.int32)


def constants(x):
    return x + 1.0, np.ones((2, 3)), np.zeros((3,)) + 2.0, x * 0.0


def integers(i):
    return np.sum(i, axis=1), np.mean(i, axis=0), np.max(i), i * 2 + 1, np.sum(i)


def scalar(x):
    return np.sin(x) * np.exp(-x * x) / (1.0 + x * x)


# ---------------------------------------------------------------------------- helpers
def _leaves(x) -> list[np.ndarray]:
    if isinstance(x, (tuple, list)):
        return [leaf for v in x for leaf in _leaves(v)]
    return [x.asnumpy()]


def _compare(built, make, fn, args, rtol=2e-5):
    """``make(fn, target=...)(*args)`` on the CUDA target equals numpy's result."""
    before = len(built)
    got = _leaves(make(fn, target="cuda")(*args))
    assert len(built) == before + 1, "not built for the CUDA target"
    old = context.get_context("mode")
    context.set_context(mode=context.PYNATIVE_MODE)
    try:
        want = _leaves(make(fn, target="cpu")(*args))
    finally:
        context.set_context(mode=old)
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert (g.dtype, g.shape) == (w.dtype, w.shape), f"output {k}"
        if g.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol / 10, err_msg=f"output {k}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"output {k}")


def _grad(fn, target):
    return s2s_ad.grad(fn, grad_position=tuple(range(fn.__code__.co_argcount)), target=target)


CASES = {
    "matmuls": (matmuls, [distinct(3, 5), distinct(5, 4), distinct(4, 5), distinct(5)]),
    "reductions": (reductions, [distinct(3, 4, 5)]),
    "fused_reductions": (fused_reductions, [distinct(3, 5)]),
    "shapes": (shapes, [distinct(4, 3, 5)]),
    "logic": (logic, [distinct(2, 3), distinct(3)]),
    "scalar": (scalar, [np.float32(0.7)]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_value(case, cuda_usable, built):
    fn, args = CASES[case]
    _compare(built, s2s_ad.jit, fn, args)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient(case, cuda_usable, built):
    fn, args = CASES[case]
    _compare(built, _grad, fn, args)


def test_float64(cuda_usable, built):
    _compare(built, _grad, reductions, [distinct(3, 4, 5, dtype=np.float64)], rtol=1e-12)
    f64 = [distinct(*s, dtype=np.float64) for s in ((3, 5), (5, 4), (4, 5), (5,))]
    _compare(built, _grad, matmuls, f64, rtol=1e-12)


def test_bool_and_int_outputs(cuda_usable, built):
    _compare(
        built, s2s_ad.jit, comparisons, [distinct(2, 3), np.where(distinct(3) > 0, distinct(3), 0.5).astype(np.float32)]
    )


def test_fills_and_constant_outputs(cuda_usable, built):
    _compare(built, s2s_ad.jit, constants, [distinct(2, 3)])


@pytest.mark.parametrize("dtype", [np.int32, np.int8, np.int64])
def test_integer_reductions(dtype, cuda_usable, built):
    i = (distinct(3, 4) * 50).astype(dtype)
    _compare(built, s2s_ad.jit, integers, [i])


def test_second_order_scalar(cuda_usable, built):
    d2 = lambda f, target: s2s_ad.grad(s2s_ad.grad(f), target=target)  # noqa: E731
    _compare(built, d2, scalar, [np.float32(0.7)])
    _compare(built, d2, scalar, [np.float64(-1.3)], rtol=1e-12)
