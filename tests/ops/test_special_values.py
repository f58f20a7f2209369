"""IEEE special values, generated from the op table: every op's forward value on inf, -inf,
nan, ±0, the largest and subnormal values, overflowing and out-of-domain arguments (log(-1),
sqrt(-1), arctanh(2)) equals numpy's evaluation (nan matches nan, signed zeros where numpy
gives one) in the numpy backend (PYNATIVE) and the Numba backend (GRAPH), on 1-D inputs (a
fused loop) and on 0-d ones (scalar code). The CUDA target has the same check in
``tests/cuda/test_cuda_special_values.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from _harness import trace_op
from _special import REFERENCE, assert_ieee_equal, every_op, grid, reference, specials

from s2s_ad.primitives import ELEMENTWISE, OPS, as_py_index, mix64
from s2s_ad.runtime import Compiled

DTYPES = ["float64", "float32"]
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy warns of the very values tested


def test_every_elementwise_op_has_a_reference():
    assert set(REFERENCE) == {op.name for op in ELEMENTWISE}


@pytest.mark.parametrize("backend", ["python", "numba"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_special_values_in_loops(backend, dtype):
    prog, xs, spans = every_op(dtype)
    outs = Compiled(prog, backend)(xs)
    for (op, a, b), out in zip(spans, outs):
        assert_ieee_equal(out.asnumpy(), reference(op, xs[a:b]), f"{op.name} ({backend}, {dtype}, 1-D)")


@pytest.mark.parametrize("backend", ["python", "numba"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_special_values_on_scalars(backend, dtype):
    prog, xs, spans = every_op(dtype, shape_of=lambda op: ())
    fn = Compiled(prog, backend)
    n = max(len(x) for x in xs)
    got = [[] for _ in spans]
    for k in range(n):
        args = [np.asarray(x[k % len(x)]) for x in xs]
        for j, out in enumerate(fn(args)):
            got[j].append(out.asnumpy())
    for (op, a, b), g in zip(spans, got):
        want = reference(op, [np.resize(x, n) for x in xs[a:b]])
        assert_ieee_equal(np.array(g), want, f"{op.name} ({backend}, {dtype}, 0-d)")


# exponents a program may write as a constant: numpy computes x ** 0.5 of an array as sqrt(x)
# (-0.0 at -0.0, nan at -inf), x ** 2 as x * x, x ** -1 as 1 / x
POWERS = [0.5, 2.0, -1.0, 3.0, -2.0, 0.0, 1.0, 1.5, -0.5, 4.0]


@pytest.mark.parametrize("backend", ["python", "numba"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(64,), ()])
def test_pow_with_constant_exponents(backend, dtype, shape):
    from s2s_ad.ir import Aval, Lit
    from s2s_ad.trace import trace

    x = np.resize(specials(dtype), 64)

    def body(fe, vals):
        return tuple(fe.bind1("pow", vals[0], Lit(p, np.dtype(dtype))) for p in POWERS)

    fn = Compiled(trace(body, [Aval(shape, np.dtype(dtype))], "powers", ["x"]), backend)
    got = [fn([x]) for _ in range(1)] if shape else [fn([np.asarray(v)]) for v in x]
    for j, p in enumerate(POWERS):
        g = got[0][j].asnumpy() if shape else np.array([r[j].asnumpy() for r in got])
        with np.errstate(all="ignore"):
            want = x ** np.asarray(p, dtype)
        assert_ieee_equal(g, want, f"x ** {p} ({backend}, {dtype}, {shape})")


# ----------------------------------------------------------------------------- structural ops
def _scatter(x, index, shape):
    out = np.zeros(shape, x.dtype)
    out[as_py_index(index)] += x
    return out


def _padded(x, pad, value=0.0):
    pt, pb, pl, pr = pad
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=value)


def _windows(in_hw, out_hw, kernel, stride, pad, dilation=(1, 1)):
    """(p, q, i, j, h, v): every valid pairing of an output position with an input position."""
    for p in range(out_hw[0]):
        for q in range(out_hw[1]):
            for i in range(kernel[0]):
                for j in range(kernel[1]):
                    h = p * stride[0] - pad[0] + i * dilation[0]
                    v = q * stride[1] - pad[2] + j * dilation[1]
                    if 0 <= h < in_hw[0] and 0 <= v < in_hw[1]:
                        yield p, q, i, j, h, v


def _conv2d(x, w, stride, pad, dilation):
    oh = (x.shape[2] + pad[0] + pad[1] - dilation[0] * (w.shape[2] - 1) - 1) // stride[0] + 1
    ow = (x.shape[3] + pad[2] + pad[3] - dilation[1] * (w.shape[3] - 1) - 1) // stride[1] + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow), x.dtype)
    for p, q, i, j, h, v in _windows(x.shape[2:], (oh, ow), w.shape[2:], stride, pad, dilation):
        y[:, :, p, q] += x[:, :, h, v] @ w[:, :, i, j].T
    return y


def _conv2d_input(g, w, stride, pad, dilation, in_hw):
    x = np.zeros((g.shape[0], w.shape[1], *in_hw), g.dtype)
    for p, q, i, j, h, v in _windows(in_hw, g.shape[2:], w.shape[2:], stride, pad, dilation):
        x[:, :, h, v] += g[:, :, p, q] @ w[:, :, i, j]
    return x


def _conv2d_filter(x, g, stride, pad, dilation, kernel):
    w = np.zeros((g.shape[1], x.shape[1], *kernel), x.dtype)
    for p, q, i, j, h, v in _windows(x.shape[2:], g.shape[2:], kernel, stride, pad, dilation):
        w[:, :, i, j] += g[:, :, p, q].T @ x[:, :, h, v]
    return w


def _pool_out(in_hw, kernel, stride, pad):
    return tuple((in_hw[a] + pad[2 * a] + pad[2 * a + 1] - kernel[a]) // stride[a] + 1 for a in (0, 1))


def _argmax_positions(x, kernel, stride, pad):
    """For each (n, c, p, q): the input position where the window first attains its maximum
    (the first nan where there is one)."""
    out_hw = _pool_out(x.shape[2:], kernel, stride, pad)
    best = {}
    for p, q, _, _, h, v in _windows(x.shape[2:], out_hw, kernel, stride, pad):
        for n in range(x.shape[0]):
            for c in range(x.shape[1]):
                key = (n, c, p, q)
                xv = x[n, c, h, v]
                old = best.get(key)
                if old is None or xv > x[n, c, old[0], old[1]] or (np.isnan(xv) and not np.isnan(x[n, c, *old])):
                    best[key] = (h, v)
    return out_hw, best


def _max_pool(x, v, kernel, stride, pad):
    out_hw, best = _argmax_positions(x, kernel, stride, pad)
    y = np.zeros(x.shape[:2] + out_hw, v.dtype)
    for (n, c, p, q), (h, w) in best.items():
        y[n, c, p, q] = v[n, c, h, w]
    return y


def _max_pool_grad(x, g, kernel, stride, pad):
    _, best = _argmax_positions(x, kernel, stride, pad)
    y = np.zeros(x.shape, g.dtype)
    for (n, c, p, q), (h, w) in best.items():
        y[n, c, h, w] += g[n, c, p, q]
    return y


def _pool_counts(in_hw, out_hw, kernel, stride, pad, count_pad):
    cnt = np.zeros(out_hw)
    for p, q, *_ in _windows(in_hw, out_hw, kernel, stride, pad):
        cnt[p, q] += 1
    return np.full(out_hw, kernel[0] * kernel[1]) if count_pad else cnt


def _avg_pool(x, kernel, stride, pad, count_pad):
    out_hw = _pool_out(x.shape[2:], kernel, stride, pad)
    y = np.zeros(x.shape[:2] + out_hw, x.dtype)
    for p, q, _, _, h, v in _windows(x.shape[2:], out_hw, kernel, stride, pad):
        y[:, :, p, q] += x[:, :, h, v]
    return y / _pool_counts(x.shape[2:], out_hw, kernel, stride, pad, count_pad).astype(x.dtype)


def _avg_pool_grad(g, kernel, stride, pad, count_pad, in_hw):
    share = g / _pool_counts(in_hw, g.shape[2:], kernel, stride, pad, count_pad).astype(g.dtype)
    x = np.zeros(g.shape[:2] + tuple(in_hw), g.dtype)
    for p, q, _, _, h, v in _windows(in_hw, g.shape[2:], kernel, stride, pad):
        x[:, :, h, v] += share[:, :, p, q]
    return x


def _scatter_add(u, idx, axis, shape):
    out = np.zeros(shape, u.dtype)
    np.add.at(out, (slice(None),) * (axis % len(shape)) + (idx,), u)
    return out


STRUCTURAL_REFERENCE = {
    "matmul": lambda a, b, transpose_a, transpose_b: np.dot(a.T if transpose_a else a, b.T if transpose_b else b),
    "reduce_sum": lambda x, axes, keepdims: np.sum(x, axis=axes, keepdims=keepdims),
    "reduce_mean": lambda x, axes, keepdims: np.mean(x, axis=axes, keepdims=keepdims),
    "reduce_max": lambda x, axes, keepdims: np.max(x, axis=axes, keepdims=keepdims),
    "reduce_min": lambda x, axes, keepdims: np.min(x, axis=axes, keepdims=keepdims),
    "reshape": lambda x, shape: np.reshape(x, shape),
    "broadcast_to": lambda x, shape: np.broadcast_to(x, shape),
    "transpose": lambda x, perm: np.transpose(x, perm),
    "getitem": lambda x, index: x[as_py_index(index)],
    "scatter": _scatter,
    "cast": lambda x, dtype: x.astype(dtype),
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "conv2d": _conv2d,
    "conv2d_backprop_input": _conv2d_input,
    "conv2d_backprop_filter": _conv2d_filter,
    "max_pool": _max_pool,
    "max_pool_grad": _max_pool_grad,
    "avg_pool": _avg_pool,
    "avg_pool_grad": _avg_pool_grad,
}


def _cumprod(x, axis, reverse, exclusive):
    y = np.moveaxis(x, axis, 0)
    y = y[::-1] if reverse else y
    if exclusive:
        y = np.concatenate([np.ones_like(y[:1]), y[:-1]])
    r = np.cumprod(y, axis=0)
    return np.moveaxis(r[::-1] if reverse else r, 0, axis)


def _random_uniform(key, seed, shape, dtype):
    # SplitMix64 in Python integers: output i of the stream whose state is mix64(key * golden + mix64(seed))
    golden, mask = 0x9E3779B97F4A7C15, (1 << 64) - 1
    state = mix64((int(key) * golden + mix64(seed)) & mask)
    bits = 53 if np.dtype(dtype) == np.float64 else 24
    n = int(np.prod(shape, dtype=np.int64))
    vals = [(mix64((state + (i + 1) * golden) & mask) >> (64 - bits)) * 2.0**-bits for i in range(n)]
    return np.array(vals, dtype=dtype).reshape(shape)


STRUCTURAL_REFERENCE.update(
    {
        "gather": lambda x, idx, axis: np.take(x, idx, axis=axis),
        "scatter_add": _scatter_add,
        "cumsum": lambda x, axis, reverse: (
            np.flip(np.cumsum(np.flip(x, axis), axis), axis) if reverse else np.cumsum(x, axis)
        ),
        "argmax": lambda x, axis: np.argmax(x, axis),
        "argmin": lambda x, axis: np.argmin(x, axis),
        "random_uniform": _random_uniform,
        "cumprod": _cumprod,
        "batch_matmul": lambda a, b, transpose_a, transpose_b: np.matmul(
            np.swapaxes(a, -1, -2) if transpose_a else a, np.swapaxes(b, -1, -2) if transpose_b else b
        ),
        "pack": lambda *xs, shape: np.array(xs).reshape(shape),
    }
)
# LAPACK's routines take finite matrices only: Numba raises an error for a matrix with inf or
# nan (numpy's results there are LAPACK's), so these ops are left out here.
FINITE_ONLY = {"matrix_inverse", "matrix_determinant", "solve"}
STRUCTURAL = [op for op in OPS.values() if op.kind == "structural" and op.samples and op.name not in FINITE_ONLY]
CASES = [
    pytest.param(op.name, k, dt, id=f"{op.name}-{k}-{dt}")
    for op in STRUCTURAL
    for k in range(len(op.samples))
    for dt in DTYPES
]


def test_every_structural_op_with_samples_has_a_reference():
    assert set(STRUCTURAL_REFERENCE) == {op.name for op in STRUCTURAL}


def _structural_inputs(op: str, shapes, params, dtype, seed: int) -> list[np.ndarray]:
    # Special values drawn at random; a sum of them stays clear of an overflow that only
    # some summation orders reach (the largest value is left out). Integer index inputs are
    # drawn in range.
    s = specials(dtype)
    s = s[np.abs(s) != np.finfo(dtype).max]
    rng = np.random.default_rng(seed)
    xs = [rng.choice(s, size=shape).astype(dtype) for shape in shapes]
    if OPS[op].int_inputs:
        n = OPS[op].index_bound(shapes, params)
        for i in OPS[op].int_inputs:
            xs[i] = rng.integers(-n, n, size=shapes[i])
    return xs


@pytest.mark.parametrize("op,k,dtype", CASES)
def test_structural_special_values(op, k, dtype):
    shapes, params = OPS[op].samples[k]
    prog = trace_op(op, shapes, params, dtype)
    for seed in range(3):
        xs = _structural_inputs(op, shapes, params, dtype, seed)
        with np.errstate(all="ignore"):
            want = np.asarray(STRUCTURAL_REFERENCE[op](*xs, **params))
        for backend in ("python", "numba"):
            got = Compiled(prog, backend)(xs).asnumpy()
            assert_ieee_equal(got, want, f"{op} sample {k} ({backend}, {dtype}, seed {seed})")


def test_grid_covers_every_pair():
    (x,) = grid(OPS["exp"], "float64")
    a, b = grid(OPS["add"], "float64")
    n = len(specials("float64"))
    assert len(x) >= 64 and len(a) == len(b) == n * n
