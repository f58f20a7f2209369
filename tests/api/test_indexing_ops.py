"""Structural, indexing and linear-algebra ops in MindSpore's and NumPy's spellings, and dynamic
indexing in compiled code: values against numpy, derivatives (first and second order) against
finite differences in float64, in PYNATIVE and GRAPH mode, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad as ms
from s2s_ad import ShapeError, Tensor, TensorIndexError, UnsupportedSyntaxError, ops
from s2s_ad.testing import check_grads

RNG = np.random.default_rng(0)
X = RNG.uniform(-1.0, 1.0, (4, 3))
Y = RNG.uniform(-1.0, 1.0, (4, 3))
A = RNG.uniform(-1.0, 1.0, (3, 3)) + 4 * np.eye(3)
IDX = np.array([2, -1, 0, 2])


def _check(fn, args, mode, rtol=1e-5, atol=1e-5):
    """Derivatives of ``fn`` against finite differences: orders 1 and 2 in PYNATIVE mode; in
    GRAPH mode (Numba compiles every derivative program, which takes seconds) the gradient of
    the first argument, against finite differences of the PYNATIVE value."""
    if mode == "python":
        check_grads(fn, args, order=2, rtol=rtol, atol=atol)
        return
    g = ops.grad(fn)(*[Tensor(a) for a in args]).asnumpy()
    f = ms.jit(fn)
    h, x0 = 1e-6, args[0]
    num = np.zeros_like(x0)
    for j in np.ndindex(x0.shape):
        e = np.zeros_like(x0)
        e[j] = h
        plus = float(f(Tensor(x0 + e), *[Tensor(a) for a in args[1:]]).asnumpy())
        minus = float(f(Tensor(x0 - e), *[Tensor(a) for a in args[1:]]).asnumpy())
        num[j] = (plus - minus) / (2 * h)
    np.testing.assert_allclose(g, num, rtol=rtol, atol=atol)


def _close(got, want, rtol=1e-12):
    np.testing.assert_allclose(
        np.asarray(got.asnumpy() if isinstance(got, Tensor) else got), want, rtol=rtol, atol=1e-12
    )


# ----------------------------------------------------------------------------- joining and splitting
def concat_stack(x, y):
    c = ops.concat((x, y), 1)
    s = ops.stack([x, y], axis=-1)
    a = np.concatenate([x, 2.0 * y])
    b = np.array([x[0, 0], y[1, 2] * x[2, 1], 3.0])
    p0, p1 = ops.split(c, 3, axis=1)
    return (c * c).sum() + (s[..., 1] * s[..., 0]).sum() + np.sin(a).sum() + (b * b).sum() + (p0 * p1).sum()


def test_concat_stack_split_and_np_array_of_computed_values(mode):
    def ref(x, y):
        c = np.concatenate((x, y), 1)
        s = np.stack([x, y], -1)
        a = np.concatenate([x, 2.0 * y])
        b = np.array([x[0, 0], y[1, 2] * x[2, 1], 3.0])
        return (
            (c * c).sum()
            + (s[..., 1] * s[..., 0]).sum()
            + np.sin(a).sum()
            + (b * b).sum()
            + (c[:, :3] * c[:, 3:]).sum()
        )

    _close(ms.jit(concat_stack)(Tensor(X), Tensor(Y)), ref(X, Y))
    _check(concat_stack, (X, Y), mode)


def shapes_ops(x):
    t = ops.tile(x, (2, 1))
    e = ops.expand_dims(x, 0)
    q = ops.squeeze(e)
    z = ops.zeros_like(x) + ops.ones((4, 3), ms.float64) + ops.ones_like(x)
    p = ops.pad(x, (1, 2))
    n = ops.norm(x) + np.linalg.norm(x[0])
    w = np.swapaxes(np.expand_dims(x, 2), 0, 1) * np.atleast_2d(x[0, 0]) + np.atleast_3d(x[1]).sum()
    bt = ops.broadcast_to(x[0], (2, 3))
    return (t * t).sum() + (q * z).sum() + (p * p * p).sum() + n + (w * w).sum() + ops.addn([x, x, q]).sum() + bt.sum()


def test_tile_squeeze_expand_pad_norm_fills(mode):
    def ref(x):
        t = np.tile(x, (2, 1))
        z = np.zeros_like(x) + 2.0
        p = np.pad(x, ((0, 0), (1, 2)))
        n = np.linalg.norm(x) + np.linalg.norm(x[0])
        w = np.swapaxes(x[:, :, None], 0, 1) * x[0, 0] + x[1].sum()
        bt = np.broadcast_to(x[0], (2, 3))
        return (t * t).sum() + (x * z).sum() + (p**3).sum() + n + (w * w).sum() + 3 * x.sum() + bt.sum()

    _close(ms.jit(shapes_ops)(Tensor(X)), ref(X))
    _check(shapes_ops, (X,), mode)


def cumulative(x):
    c = ops.cumsum(x, 1) + ops.CumSum(exclusive=True, reverse=True)(x, 0)
    return (c * c).sum() + (x % 0.3).sum() + (x // 0.3 * x).sum()


def mod_sum(x, y):
    return (x % y + x // y).sum()


def test_cumsum_mod_floordiv(mode):
    def ref(x):
        rev_excl = np.flip(np.cumsum(np.flip(x, 0), 0), 0) - x
        c = np.cumsum(x, 1) + rev_excl
        return (c * c).sum() + np.mod(x, 0.3).sum() + (np.floor_divide(x, 0.3) * x).sum()

    _close(ms.jit(cumulative)(Tensor(X)), ref(X))
    _check(cumulative, (X,), mode)
    # d(x % y)/dy = -floor(x / y), d(x // y) = 0
    gx, gy = ops.grad(mod_sum, grad_position=(0, 1))(Tensor(X), Tensor(np.full((4, 3), 0.3)))
    _close(gx, np.ones_like(X))
    _close(gy, -np.floor(X / 0.3))


def arg_extrema(x):
    return ops.argmax(x, 1), ops.Argmin(axis=0)(x), x.argmax(), np.argmax(x, axis=0)


def weighted_by_argmax(x):
    return (x * ops.argmax(x, 1).astype(ms.float64)[:, None]).sum()


def test_argmax_argmin_are_int_and_not_differentiated(mode):
    a, b, c, d = ms.jit(arg_extrema)(Tensor(X))
    assert a.asnumpy().dtype == np.int32 and b.asnumpy().dtype == np.int32  # int32, as MindSpore
    _close(a, X.argmax(1))
    _close(b, X.argmin(0))
    _close(c, X.argmax())
    _close(d, X.argmax(0))
    g = ops.grad(weighted_by_argmax)(Tensor(X))
    _close(g, np.broadcast_to(X.argmax(1)[:, None], X.shape).astype(float))


# ----------------------------------------------------------------------------- matmul
def products(x, v, b3):
    return (x @ v).sum() + (v @ x.T @ x).sum() + v @ v + (b3 @ x.T).sum() + (np.matmul(b3, v) ** 2).sum()


def test_matmul_with_numpy_rules_for_1d_and_batched_operands(mode):
    v = RNG.uniform(-1, 1, 3)
    b3 = RNG.uniform(-1, 1, (2, 5, 3))
    want = (X @ v).sum() + (v @ X.T @ X).sum() + v @ v + (b3 @ X.T).sum() + (np.matmul(b3, v) ** 2).sum()
    _close(ms.jit(products)(Tensor(X), Tensor(v), Tensor(b3)), want)
    _check(products, (X, v, b3), mode)


def batch(a, b):
    return (ops.BatchMatMul(transpose_b=True)(a, b) ** 2).sum() + ops.bmm(a, b.swapaxes(-1, -2)).sum()


def test_batch_matmul_broadcasts_batch_axes(mode):
    a = RNG.uniform(-1, 1, (2, 1, 3, 4))
    b = RNG.uniform(-1, 1, (3, 5, 4))
    want = np.matmul(a, np.swapaxes(b, -1, -2))
    _close(ms.jit(batch)(Tensor(a), Tensor(b)), (want**2).sum() + want.sum())
    _check(batch, (a, b), mode)


# ----------------------------------------------------------------------------- gather and scatter
IDX_T = Tensor(IDX)
IDX_ND = Tensor(np.array([[0, 1], [3, -1], [2, 2]]))


def gathers(x):
    g = ops.gather(x, IDX_T, 0) * ops.Gather()(x, Tensor(np.array([[1, 0], [2, 2]])), 1).sum()
    d = ops.gather_d(x, 1, Tensor(np.array([[0, 2], [1, 1], [2, 0], [0, 0]])))
    nd = ops.gather_nd(x, IDX_ND)
    s = ops.scatter_nd(IDX_ND, nd * nd, (4, 3))
    ta = ops.tensor_scatter_add(x, IDX_ND, nd)
    tu = ops.TensorScatterUpdate()(x, IDX_ND, 3.0 * nd * nd)
    return (g * g).sum() + (d * d).sum() + (s * x).sum() + (ta * ta).sum() + (tu * tu * tu).sum()


def test_gather_scatter_family(mode):
    def ref(x):
        g = x[IDX] * x[:, [[1, 0], [2, 2]]].sum()
        d = np.take_along_axis(x, np.array([[0, 2], [1, 1], [2, 0], [0, 0]]), 1)
        rows, cols = np.array([0, 3, 2]), np.array([1, -1, 2])
        nd = x[rows, cols]
        s = np.zeros((4, 3))
        np.add.at(s, (rows, cols), nd * nd)
        ta = x.copy()
        np.add.at(ta, (rows, cols), nd)
        tu = x.copy()
        tu[rows, cols] = 3.0 * nd * nd
        return (g * g).sum() + (d * d).sum() + (s * x).sum() + (ta * ta).sum() + (tu**3).sum()

    _close(ms.jit(gathers)(Tensor(X)), ref(X))
    _check(gathers, (X,), mode)


# ----------------------------------------------------------------------------- dynamic indexing
def dyn(x, i, idx):
    x[i] = 2.0 * x[i]
    x[1:3] += 1.0
    x[i, 0] = x[0, 1] * x[i, 2]
    x[idx] += 0.5 * x[0]
    x[-1] = x[i] - 1.0
    return (x * x * x).sum() + x[i, 1] + (x[idx] ** 2).sum()


def dyn_ref(x, i, idx):
    x = x.copy()
    x[i] = 2.0 * x[i]
    x[1:3] += 1.0
    x[i, 0] = x[0, 1] * x[i, 2]
    x[idx] += 0.5 * x[0]
    x[-1] = x[i] - 1.0
    return (x**3).sum() + x[i, 1] + (x[idx] ** 2).sum()


@pytest.mark.parametrize("i", [1, -2])
def test_dynamic_indexing_and_functional_updates_with_an_int_argument(mode, i):
    idx = np.array([3, 1])  # no repeated index: x[idx] += v is then numpy's
    x = Tensor(X.copy())
    before = x.asnumpy().copy()
    f = ms.jit(dyn)
    _close(f(x, Tensor(np.array(i)), Tensor(idx)), dyn_ref(X, i, idx))
    np.testing.assert_array_equal(x.asnumpy(), before)  # the caller's tensor is not changed
    g = ops.grad(dyn, grad_position=0)(x, Tensor(np.array(i)), Tensor(idx))
    h = 1e-6
    num = np.zeros_like(X)
    for j in np.ndindex(X.shape):
        e = np.zeros_like(X)
        e[j] = h
        num[j] = (dyn_ref(X + e, i, idx) - dyn_ref(X - e, i, idx)) / (2 * h)
    np.testing.assert_allclose(g.asnumpy(), num, rtol=1e-6, atol=1e-7)
    ii, tidx = Tensor(np.array(i)), Tensor(idx)

    def at_i(x):
        return dyn(x, ii, tidx)

    if mode == "python":
        check_grads(at_i, (X,), order=2)


def loop_body(x, i):
    row = x[i, :]
    x[i] = row * row
    return x


def test_traced_int_scalar_index_matches_static_index(mode):
    for i in range(4):
        got = ms.jit(loop_body)(Tensor(X), Tensor(np.array(i, np.int32)))
        want = X.copy()
        want[i] = X[i] ** 2
        _close(got, want)


def out_of_range_static(x):
    return x[4]


def row(x, i):
    return x[i]


def float_index(x):
    return x[x[0, 0]]


def ragged_concat(x):
    return ops.concat((x, x[0]), 0)


def test_out_of_range_indices_are_clear_errors(mode):
    with pytest.raises(TensorIndexError, match=r"test_indexing_ops.py:\d+.*out of bounds"):
        ms.jit(out_of_range_static)(Tensor(X))
    with pytest.raises(IndexError, match="Gather: an index is out of range for an axis of size 4"):
        ms.jit(row)(Tensor(X), Tensor(np.array(7)))
    with pytest.raises(UnsupportedSyntaxError, match="integer tensors, got a float64 tensor"):
        ms.jit(float_index)(Tensor(X))
    with pytest.raises(ShapeError, match="concat: shapes"):
        ms.jit(ragged_concat)(Tensor(X))


# ----------------------------------------------------------------------------- linear algebra
def linalg(a, b):
    inv = np.linalg.inv(a)
    x = np.linalg.solve(a, b)
    return (inv * inv).sum() + np.linalg.det(a) + (x * x).sum() + ops.MatrixDeterminant()(a) * ops.inverse(a)[0, 1]


def inverse(a):
    return np.linalg.inv(a)


def test_inverse_determinant_solve(mode):
    b = RNG.uniform(-1, 1, 3)
    inv = np.linalg.inv(A)
    x = np.linalg.solve(A, b)
    want = (inv * inv).sum() + np.linalg.det(A) + (x * x).sum() + np.linalg.det(A) * inv[0, 1]
    _close(ms.jit(linalg)(Tensor(A), Tensor(b)), want, rtol=1e-10)
    _check(linalg, (A, b), mode, rtol=1e-4, atol=1e-6)
    # float32 stays float32
    r = ms.jit(inverse)(Tensor(A.astype(np.float32)))
    assert r.asnumpy().dtype == np.float32


# ----------------------------------------------------------------------------- nn.Embedding
class EmbedSum(ms.nn.Cell):
    def __init__(self, one_hot: bool):
        super().__init__()
        self.embed = ms.nn.Embedding(5, 3, use_one_hot=one_hot, padding_idx=0)

    def construct(self, ids, x):
        return (self.embed(ids) * x).sum()


@pytest.mark.parametrize("one_hot", [False, True])
def test_embedding_values_and_table_gradient(mode, one_hot):
    ms.set_seed(1)
    net = EmbedSum(one_hot)
    table = net.embed.embedding_table.asnumpy().copy()
    assert not table[0].any()
    ids = np.array([[1, 4], [1, 0]], np.int32)
    x = RNG.uniform(-1, 1, (2, 2, 3)).astype(np.float32)
    _close(net(Tensor(ids), Tensor(x)), (table[ids] * x).sum(), rtol=1e-5)
    (g,) = ops.GradOperation(get_by_list=True)(net, net.trainable_params())(Tensor(ids), Tensor(x))
    want = np.zeros_like(table)
    np.add.at(want, ids, x)
    _close(g, want, rtol=1e-6)


def repeated_update(x, idx, v):
    x[idx] = v
    x[idx] += v
    return x


def test_repeated_indices_in_an_assignment_keep_the_last_as_numpy(mode):
    idx = np.array([0, 2, 0, -2])  # rows 0 and 2 are each named twice
    v = RNG.uniform(-1.0, 1.0, (4, 3))
    ref = X.copy()
    ref[idx] = v
    ref[idx] += v
    got = ms.jit(repeated_update)(Tensor(X), Tensor(idx), Tensor(v))
    np.testing.assert_allclose(got.asnumpy(), ref, rtol=1e-12)
    # only the last assignment to a row reaches the result: the rows it overwrote get no gradient
    g = ops.grad(lambda x, i, v: repeated_update(x, i, v).sum(), grad_position=2)(Tensor(X), Tensor(idx), Tensor(v))
    np.testing.assert_allclose(g.asnumpy(), np.array([[0.0] * 3, [0.0] * 3, [2.0] * 3, [2.0] * 3]))
