"""How Jacobians are structured: MindSpore's ``ops.jacfwd``/``ops.jacrev`` (``grad_position``;
one block bare, a tuple per output and/or per position, ``has_aux`` returning ``(jac, aux)``)
and JAX's ``jacfwd``/``jacrev``/``hessian`` (``argnums``; the output's tree of a tuple per
position, ``has_aux`` with a pair). Values are checked against analytic Jacobians and finite
differences, in both modes and inside ``jit``."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import ArgumentError, ArgumentValueError, Tensor, nn, ops

X = np.array([[1.0, 2.0], [3.0, 4.0]])
Y = np.array([[-2.0, 3.0], [-1.0, 2.0]])
Z = np.array([[0.5, 3.0], [5.0, -1.0]])
EYE = np.eye(4).reshape(2, 2, 2, 2)


def t(a):
    return Tensor(np.asarray(a, np.float64))


def diag4(d):
    """The (2, 2, 2, 2) Jacobian of an elementwise map with derivative ``d``."""
    return d[:, :, None, None] * EYE


def cube(x):
    return x**3


def cube_and_double(x):
    return x**3, 2 * x


def product(x, y, z):
    return x * y * z


def squares_and_product(x, y, z):
    return x**2 + y**2 + z**2, x * y * z


def three_outputs(x, y, z):
    return ops.sin(x) * y, x + z, y * z


class SquaresAndProduct(nn.Cell):
    def construct(self, x, y, z):
        return x**2 + y**2 + z**2, x * y * z


MS = [ops.jacfwd, ops.jacrev]


@pytest.mark.parametrize("jac", MS)
def test_one_input_one_output_is_one_block(mode, jac):
    got = jac(cube)(t(X))
    np.testing.assert_allclose(got.asnumpy(), diag4(3 * X**2), rtol=1e-12)
    # a one-element tuple of positions is bare too
    np.testing.assert_allclose(jac(cube, grad_position=(0,))(t(X)).asnumpy(), diag4(3 * X**2), rtol=1e-12)


@pytest.mark.parametrize("jac", MS)
def test_several_outputs_give_a_tuple_per_output(mode, jac):
    a, b = jac(cube_and_double)(t(X))
    np.testing.assert_allclose(a.asnumpy(), diag4(3 * X**2), rtol=1e-12)
    np.testing.assert_allclose(b.asnumpy(), diag4(2 * np.ones_like(X)), rtol=1e-12)


@pytest.mark.parametrize("jac", MS)
def test_several_positions_give_a_tuple_per_position(mode, jac):
    got = jac(product, grad_position=(1, 2))(t(X), t(Y), t(Z))
    assert isinstance(got, tuple) and len(got) == 2
    np.testing.assert_allclose(got[0].asnumpy(), diag4(X * Z), rtol=1e-12)
    np.testing.assert_allclose(got[1].asnumpy(), diag4(X * Y), rtol=1e-12)


@pytest.mark.parametrize("jac", MS)
def test_several_outputs_and_positions_nest_outputs_outside(mode, jac):
    got = jac(SquaresAndProduct(), grad_position=(1, 2))(t(X), t(Y), t(Z))
    assert isinstance(got, tuple) and len(got) == 2 and all(len(g) == 2 for g in got)
    np.testing.assert_allclose(got[0][0].asnumpy(), diag4(2 * Y), rtol=1e-12)
    np.testing.assert_allclose(got[0][1].asnumpy(), diag4(2 * Z), rtol=1e-12)
    np.testing.assert_allclose(got[1][0].asnumpy(), diag4(X * Z), rtol=1e-12)
    np.testing.assert_allclose(got[1][1].asnumpy(), diag4(X * Y), rtol=1e-12)


@pytest.mark.parametrize("jac", MS)
def test_has_aux_returns_the_jacobian_of_the_first_output_and_the_rest(mode, jac):
    j, aux = jac(squares_and_product, grad_position=0, has_aux=True)(t(X), t(Y), t(Z))
    np.testing.assert_allclose(j.asnumpy(), diag4(2 * X), rtol=1e-12)
    np.testing.assert_allclose(aux.asnumpy(), X * Y * Z, rtol=1e-12)
    # three outputs: the auxiliary ones are a tuple
    j, aux = jac(three_outputs, has_aux=True)(t(X), t(Y), t(Z))
    np.testing.assert_allclose(j.asnumpy(), diag4(np.cos(X) * Y), rtol=1e-12)
    assert isinstance(aux, tuple) and len(aux) == 2
    np.testing.assert_allclose(aux[0].asnumpy(), X + Z, rtol=1e-12)
    np.testing.assert_allclose(aux[1].asnumpy(), Y * Z, rtol=1e-12)


@s2s_ad.jit
def jacobian_and_aux_inside_jit(x, y, z):
    return ops.jacfwd(squares_and_product, has_aux=True)(x, y, z)


@s2s_ad.jit
def jacobians_of_a_coupled_function_inside_jit(x, w):
    return ops.jacrev(coupled, grad_position=(0, 1))(x, w)


def coupled(x, w):
    return ops.tanh(ops.matmul(w, x.reshape((3, 1)))).reshape((2,)) * ops.sum(x * x)


def fd(f, args, k, h=1e-6):
    args = [np.asarray(a, np.float64) for a in args]
    cols = []
    for i in range(args[k].size):
        e = np.zeros(args[k].size)
        e[i] = h
        e = e.reshape(args[k].shape)
        plus = [t(a + e if j == k else a) for j, a in enumerate(args)]
        minus = [t(a - e if j == k else a) for j, a in enumerate(args)]
        cols.append((f(*plus).asnumpy() - f(*minus).asnumpy()) / (2 * h))
    return np.stack(cols, -1).reshape(cols[0].shape + args[k].shape)


def test_inside_jit(mode):
    j, aux = jacobian_and_aux_inside_jit(t(X), t(Y), t(Z))
    np.testing.assert_allclose(j.asnumpy(), diag4(2 * X), rtol=1e-12)
    np.testing.assert_allclose(aux.asnumpy(), X * Y * Z, rtol=1e-12)
    x, w = np.array([0.3, -0.5, 1.2]), np.arange(6.0).reshape(2, 3) / 5
    jx, jw = jacobians_of_a_coupled_function_inside_jit(t(x), t(w))
    np.testing.assert_allclose(jx.asnumpy(), fd(coupled, [x, w], 0), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(jw.asnumpy(), fd(coupled, [x, w], 1), rtol=1e-7, atol=1e-9)


def test_top_level_grad_position_takes_mindspores_conventions():
    # mindspore.jacfwd is MindSpore's top-level name too: grad_position=(0,) is bare there
    got = s2s_ad.jacfwd(cube, grad_position=(0,))(t(X))
    np.testing.assert_allclose(got.asnumpy(), diag4(3 * X**2), rtol=1e-12)
    (jax_style,) = s2s_ad.jacfwd(cube, argnums=(0,))(t(X))
    np.testing.assert_allclose(jax_style.asnumpy(), got.asnumpy(), rtol=1e-12)


def test_mindspore_errors():
    with pytest.raises(ArgumentError, match=r"ops.jacfwd\(has_aux=True\): cube must return a tuple of at least two"):
        ops.jacfwd(cube, has_aux=True)(t(X))
    with pytest.raises(ArgumentError, match="has_aux must be a bool"):
        ops.jacrev(cube, has_aux=1)
    with pytest.raises(ArgumentError, match="ops.jacrev: grad_position must be an int or a tuple of ints"):
        ops.jacrev(cube, grad_position=[0])
    with pytest.raises(ArgumentValueError, match="ops.jacfwd: grad_position 3 is out of range"):
        ops.jacfwd(product, grad_position=3)(t(X), t(Y), t(Z))


# ---------------------------------------------------------------------------- JAX's conventions


def pair_and_dict(x, y):
    return {"s": ops.sin(x) * y, "p": (x * y).sum()}


@pytest.mark.parametrize("jac", [s2s_ad.jacfwd, s2s_ad.jacrev])
def test_jax_outputs_keep_their_tree_and_positions_a_tuple(mode, jac):
    x, y = np.array([0.1, 0.7, -1.3]), np.array([2.0, -0.5, 1.5])
    got = jac(pair_and_dict, argnums=(0, 1))(t(x), t(y))
    assert set(got) == {"s", "p"} and len(got["s"]) == 2 and len(got["p"]) == 2
    np.testing.assert_allclose(got["s"][0].asnumpy(), np.diag(np.cos(x) * y), rtol=1e-12)
    np.testing.assert_allclose(got["s"][1].asnumpy(), np.diag(np.sin(x)), rtol=1e-12)
    np.testing.assert_allclose(got["p"][0].asnumpy(), y, rtol=1e-12)
    np.testing.assert_allclose(got["p"][1].asnumpy(), x, rtol=1e-12)
    (one,) = jac(cube, argnums=(0,))(t(X))  # a one-element tuple stays a tuple
    np.testing.assert_allclose(one.asnumpy(), diag4(3 * X**2), rtol=1e-12)


def with_aux(x):
    return ops.sum(ops.sin(x) * x), {"norm": ops.sum(x * x)}


@pytest.mark.parametrize("make", [s2s_ad.jacfwd, s2s_ad.jacrev, s2s_ad.hessian])
def test_jax_has_aux_is_a_pair(mode, make):
    x = np.array([0.3, -1.1, 2.0])
    got, aux = make(with_aux, has_aux=True)(t(x))
    g = np.cos(x) * x + np.sin(x)
    want = g if make is not s2s_ad.hessian else np.diag(-np.sin(x) * x + 2 * np.cos(x))
    np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-12)
    np.testing.assert_allclose(aux["norm"].asnumpy(), np.sum(x * x), rtol=1e-12)
    with pytest.raises(ArgumentError, match="must return a pair"):
        make(three_outputs, has_aux=True)(t(X), t(Y), t(Z))


def vector_and_dict(x, w):
    h = ops.tanh(ops.matmul(w, x.reshape((3, 1)))).reshape((2,))
    return {"h": h * ops.sum(x * x), "m": ops.matmul(w, w.T) * ops.sum(ops.sin(x))}, ops.sum(h)


def vector_and_dict_jax(x, w):
    import jax.numpy as jnp

    h = jnp.tanh(w @ x[:, None])[:, 0]
    return {"h": h * jnp.sum(x * x), "m": (w @ w.T) * jnp.sum(jnp.sin(x))}, jnp.sum(h)


@pytest.mark.parametrize("argnums", [0, 1, (0, 1), (1,)])
def test_hessian_of_any_output_is_jaxs(mode, argnums):
    # out.shape + in.shape + in.shape per output leaf, in jacrev's structure (jacfwd(jacrev(f)))
    jax = pytest.importorskip("jax")
    x, w = np.array([0.3, -0.8, 1.1]), np.arange(6.0).reshape(2, 3) / 5 - 0.4
    got = s2s_ad.hessian(vector_and_dict, argnums)(t(x), t(w))
    with jax.enable_x64(True):
        want = jax.hessian(vector_and_dict_jax, argnums)(x, w)
    got_leaves, got_tree = jax.tree_util.tree_flatten(got)
    want_leaves, want_tree = jax.tree_util.tree_flatten(want)
    assert got_tree == want_tree
    for g, e in zip(got_leaves, want_leaves):
        assert g.shape == e.shape
        np.testing.assert_allclose(g.asnumpy(), np.asarray(e), rtol=1e-10, atol=1e-12)


def test_hessian_of_a_vector_output_by_finite_differences(mode):
    # the i-th block is the Hessian of output i: second differences of f_i
    def f(x):
        return ops.stack([ops.sum(ops.sin(x) * x[::-1]), x[0] * ops.sum(x[:-1] * x[1:]), ops.sum(ops.exp(x * x))])

    def f_np(x):
        return np.array([np.sum(np.sin(x) * x[::-1]), x[0] * np.sum(x[:-1] * x[1:]), np.sum(np.exp(x * x))])

    x, e, h = np.array([0.4, -0.7, 0.9, 0.2]), np.eye(4), 1e-4
    want = np.empty((3, 4, 4))
    for i in range(4):
        for j in range(4):
            d = f_np(x + h * (e[i] + e[j])) - f_np(x + h * (e[i] - e[j]))
            want[:, i, j] = (d - f_np(x - h * (e[i] - e[j])) + f_np(x - h * (e[i] + e[j]))) / (4 * h * h)
    got = s2s_ad.jit(s2s_ad.hessian(f))(t(x)).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_hessian_of_a_vector_output_with_aux(mode):
    def f(x):
        return ops.sin(x) * ops.sum(x), {"n": ops.sum(x * x)}

    x = np.array([0.3, -1.1, 2.0])
    got, aux = s2s_ad.hessian(f, has_aux=True)(t(x))
    s, c = np.sin(x), np.cos(x)
    # d2/dx_j dx_k of sin(x_i) * S: -sin(x_i) S [i=j=k] + cos(x_i) ([i=j] + [i=k])
    e = np.eye(3)
    want = -np.einsum("i,ij,ik->ijk", s * x.sum(), e, e) + c[:, None, None] * (e[:, :, None] + e[:, None, :])
    np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(aux["n"].asnumpy(), np.sum(x * x), rtol=1e-12)


def tuple_input(p, x):
    w, b = p
    return ops.tanh(ops.matmul(w, x.reshape((3, 1))).reshape((2,)) + b)


def test_a_tuple_argument_gives_a_tuple_of_blocks(mode):
    w, b, x = np.arange(6.0).reshape(2, 3) / 7, np.array([0.1, -0.2]), np.array([0.5, -1.0, 2.0])
    jw, jb = s2s_ad.jacrev(tuple_input)((t(w), t(b)), t(x))
    fw, fb = s2s_ad.jacfwd(tuple_input)((t(w), t(b)), t(x))
    pre = w @ x + b
    d = 1 - np.tanh(pre) ** 2
    np.testing.assert_allclose(jb.asnumpy(), np.diag(d), rtol=1e-12)
    np.testing.assert_allclose(jw.asnumpy(), d[:, None, None] * np.eye(2)[:, :, None] * x, rtol=1e-12)
    np.testing.assert_allclose(fw.asnumpy(), jw.asnumpy(), rtol=1e-12)
    np.testing.assert_allclose(fb.asnumpy(), jb.asnumpy(), rtol=1e-12)
