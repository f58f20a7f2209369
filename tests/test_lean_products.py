"""opt.lean_products and the op table's ``rewrite`` rules (matmul, scatter): products of
derivative code with fills and one-row/one-column scatters become reductions, selections and
outer products; a scatter that fills its whole output becomes a reshape. The user's own
products are kept."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, ops, opt, runtime
from s2s_ad.codegen import generate
from s2s_ad.ir import Aval, Builder, Program, Var, check_program

F64 = np.dtype(np.float64)
FULL = ("slice", None, None, None)


def var(shape: tuple[int, ...], hint: str) -> Var:
    return Var(Aval(shape, F64), hint)


def program(invars: list[Var], b: Builder, outs: list) -> Program:
    tree = ("tuple", (None,) * len(invars))
    prog = Program("p", invars, len(invars), tree, [], [], list(b.eqns), outs, ("tuple", (None,) * len(outs)))
    check_program(prog, "input")
    return prog


def run(prog: Program, *args: np.ndarray) -> list[np.ndarray]:
    """``prog`` run as the generated numpy code (the PYNATIVE backend's)."""
    ns: dict = {"np": np}
    exec(generate(prog, "p"), ns)
    return [np.asarray(r) for r in ns["p"](*args)]


def matmul_inputs_made_by(prog: Program, kinds: tuple[str, ...]) -> int:
    made = {o: e.op for e in prog.eqns for o in e.outs}
    return sum(1 for e in prog.eqns if e.op == "matmul" and any(made.get(a) in kinds for a in e.ins))


def lean(prog: Program, keep_primal: bool = True) -> Program:
    out = opt.dce(opt.lean_products(prog, keep_primal))
    check_program(out, "after lean_products")
    return out


TRANSPOSES = list(itertools.product([False, True], repeat=2))


@pytest.mark.parametrize("ta,tb", TRANSPOSES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_a_product_with_a_fill_is_a_broadcast_of_sums(ta: bool, tb: bool, side: str) -> None:
    rng = np.random.default_rng(0)
    n, m, p = 5, 3, 4
    a_shape = (m, n) if ta else (n, m)
    b_shape = (p, m) if tb else (m, p)
    x = var(a_shape if side == "right" else b_shape, "x")
    b = Builder()
    c = b.bind1("fill", shape=b_shape if side == "right" else a_shape, value=2.5, dtype=F64)
    lhs, rhs = (x, c) if side == "right" else (c, x)
    out = b.bind1("matmul", lhs, rhs, transpose_a=ta, transpose_b=tb)
    prog = program([x], b, [out])
    xv = rng.standard_normal(x.shape)
    new = lean(prog)
    assert "matmul" not in [e.op for e in new.eqns]
    np.testing.assert_allclose(run(new, xv)[0], run(prog, xv)[0], rtol=1e-13)


@pytest.mark.parametrize("ta,tb", TRANSPOSES)
@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("line", ["row", "col"])
def test_a_product_with_one_row_or_column_is_a_selection_or_outer_product(
    ta: bool, tb: bool, side: str, line: str
) -> None:
    rng = np.random.default_rng(1)
    n, m, p = 5, 3, 4
    a_shape = (m, n) if ta else (n, m)
    b_shape = (p, m) if tb else (m, p)
    sparse_shape = a_shape if side == "left" else b_shape
    other = var(b_shape if side == "left" else a_shape, "y")
    b = Builder()
    size = sparse_shape[1] if line == "row" else sparse_shape[0]
    v = var((size,), "v")
    sparse = b.bind1("scatter", v, index=(1,) if line == "row" else (FULL, 1), shape=sparse_shape)
    lhs, rhs = (sparse, other) if side == "left" else (other, sparse)
    out = b.bind1("matmul", lhs, rhs, transpose_a=ta, transpose_b=tb)
    check(program([v, other], b, [out]), rng)


@pytest.mark.parametrize("shape", [(6, 1), (1, 6)])
@pytest.mark.parametrize("side", ["left", "right"])
def test_a_product_with_a_one_hot_vector_is_a_selection(shape: tuple[int, int], side: str) -> None:
    rng = np.random.default_rng(4)
    ta = side == "left" and shape[0] == 6
    tb = side == "right" and shape[1] == 6
    other_shape = (6, 3) if side == "left" else (3, 6)
    v, other = var((), "v"), var(other_shape, "y")
    b = Builder()
    onehot = b.bind1("scatter", v, index=(4,), shape=(6,))
    sparse = b.bind1("reshape", onehot, shape=shape)
    lhs, rhs = (sparse, other) if side == "left" else (other, sparse)
    out = b.bind1("matmul", lhs, rhs, transpose_a=ta, transpose_b=tb)
    check(program([v, other], b, [out]), rng)


def check(prog: Program, rng: np.random.Generator) -> None:
    """lean_products leaves no product with a one-row/column operand, and the same values."""
    args = [rng.standard_normal(v.shape) for v in prog.invars]
    new = lean(prog)
    assert sparse_products(new) == 0, [e.op for e in new.eqns]
    np.testing.assert_allclose(run(new, *args)[0], run(prog, *args)[0], rtol=1e-13, atol=1e-15)


def sparse_products(prog: Program) -> int:
    """Matmuls with an operand made by a scatter (or a reshape of one)."""
    made = {o: e for e in prog.eqns for o in e.outs}

    def sparse(a) -> bool:
        e = made.get(a)
        if e is not None and e.op == "reshape":
            e = made.get(e.ins[0])
        return e is not None and e.op == "scatter"

    return sum(1 for e in prog.eqns if e.op == "matmul" and any(sparse(a) for a in e.ins))


def test_the_users_own_products_are_kept() -> None:
    w = var((3, 4), "w")
    b = Builder(primal=True)
    ones = b.bind1("fill", shape=(2, 3), value=1.0, dtype=F64)
    out = b.bind1("matmul", ones, w, transpose_a=False, transpose_b=False)
    prog = program([w], b, [out])
    assert [e.op for e in lean(prog).eqns] == ["fill", "matmul"]
    assert "matmul" not in [e.op for e in lean(prog, keep_primal=False).eqns]


def test_a_scatter_that_fills_its_output_is_a_reshape() -> None:
    v = var((6,), "v")
    b = Builder()
    full = b.bind1("scatter", v, index=(FULL, 0), shape=(6, 1))
    part = b.bind1("scatter", v, index=(FULL, 0), shape=(6, 2))
    prog = program([v], b, [full, part])
    new = lean(prog)
    assert [e.op for e in new.eqns] == ["reshape", "scatter"]
    vv = np.arange(6.0)
    for got, want in zip(run(new, vv), run(prog, vv)):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ through the API, both modes
def compiled(fn) -> runtime.Compiled:
    (c,) = [calls[k] for calls in runtime.cache_for(fn).values() for k in list(calls)]
    return c


def test_input_derivatives_of_a_network_use_no_products_with_fills_or_scatters(mode) -> None:
    rng = np.random.default_rng(2)
    w1, w2 = rng.standard_normal((2, 16)), rng.standard_normal((16, 1))

    def total(x):
        return ops.sum(ops.matmul(ops.tanh(ops.matmul(x, Tensor(w1))), Tensor(w2)))

    def u_x(x):
        return ops.sum(ops.grad(total)(x)[:, 0])

    def laplacian_x(x):
        return ops.grad(u_x)(x)[:, 0]

    f = s2s_ad.jit(laplacian_x)
    x = rng.standard_normal((50, 2))
    got = f(Tensor(x)).asnumpy()
    h = np.tanh(x @ w1)
    # d2/dx0^2 of sum(tanh(x @ w1) @ w2): sum_k w2[k] * (-2 h (1 - h^2)) w1[0, k]^2
    want = ((-2 * h * (1 - h * h)) * w1[0] ** 2) @ w2[:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    prog = compiled(laplacian_x).program
    assert matmul_inputs_made_by(prog, ("fill",)) == 0 and sparse_products(prog) == 0


def test_a_jitted_hessian_selects_columns_instead_of_multiplying_by_one_hot_vectors(mode) -> None:
    rng = np.random.default_rng(3)
    n, d = 40, 6
    xv, yv = rng.standard_normal((n, d)), np.sign(rng.standard_normal(n))
    x, y = Tensor(xv), Tensor(yv)

    def loss(w):
        margin = y * ops.matmul(x, ops.reshape(w, (-1, 1)))[:, 0]
        return ops.mean(ops.log(1.0 + ops.exp(-margin)))

    def hess(w):
        return s2s_ad.hessian(loss)(w)

    wv = 0.3 * rng.standard_normal(d)
    got = s2s_ad.jit(hess)(Tensor(wv)).asnumpy()
    s = 1 / (1 + np.exp(-yv * (xv @ wv)))
    want = (xv.T * (s * (1 - s))) @ xv / n
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)
    prog = compiled(hess).program
    assert matmul_inputs_made_by(prog, ("fill",)) == 0 and sparse_products(prog) == 0


# ------------------------------------------------------------------ products with an identity constant
def with_consts(args: list[Var], cvars: list[Var], consts: list[np.ndarray], b: Builder, outs: list) -> Program:
    """A program of ``args`` and the constants ``consts`` (read through ``cvars``)."""
    tree = ("tuple", (None,) * len(args))
    prog = Program("p", args + cvars, len(args), tree, [], consts, list(b.eqns), outs, ("tuple", (None,) * len(outs)))
    check_program(prog, "input")
    return prog


def identity_uses(prog: Program) -> int:
    """The equations that read an identity constant."""
    eyes = {v for v, c in zip(prog.const_vars, prog.consts) if opt._identity_size(c) is not None}
    return sum(1 for e in prog.eqns for a in e.ins if a in eyes)


@pytest.mark.parametrize("ta,tb", TRANSPOSES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_a_product_with_an_identity_constant_is_the_other_factor(ta: bool, tb: bool, side: str) -> None:
    rng = np.random.default_rng(4)
    n, m = 5, 3
    if side == "right":  # op(a) @ eye: op(a) is (m, n)
        a = var((n, m) if ta else (m, n), "a")
    else:  # eye @ op(a): op(a) is (n, m)
        a = var((m, n) if tb else (n, m), "a")
    eye = np.eye(n)
    b = Builder()
    c = var(eye.shape, "c")
    x, y = (a, c) if side == "right" else (c, a)
    out = b.bind1("matmul", x, y, transpose_a=ta, transpose_b=tb)
    prog = with_consts([a], [c], [eye], b, [out])
    new = lean(prog)
    assert "matmul" not in [e.op for e in new.eqns] and identity_uses(new) == 0
    av = rng.standard_normal(a.shape)
    np.testing.assert_array_equal(run(new, av, eye)[0], run(prog, av, eye)[0])


def test_a_reshaped_identity_basis_and_batch_matmul() -> None:
    # the basis of a Jacobian sweep is eye(n) reshaped to (n, *seed shape); a reshape back to
    # (n, n) or its transpose is still the identity; a batch_matmul with it is the other factor
    rng = np.random.default_rng(5)
    n = 4
    basis = np.eye(n).reshape(n, 1, n)
    a, s = var((3, n, 2), "a"), var((n, n), "s")
    b = Builder()
    c = var(basis.shape, "c")
    sq = b.bind1("reshape", c, shape=(n, n))
    sqt = b.bind1("transpose", sq, perm=(1, 0))
    o1 = b.bind1("batch_matmul", sqt, a, transpose_a=False, transpose_b=False)  # (3, n, 2)
    o2 = b.bind1("batch_matmul", a, sq, transpose_a=True, transpose_b=False)  # (3, 2, n)
    o3 = b.bind1("matmul", s, sqt, transpose_a=False, transpose_b=True)
    prog = with_consts([a, s], [c], [basis], b, [o1, o2, o3])
    new = lean(prog)
    assert not {"matmul", "batch_matmul"} & {e.op for e in new.eqns} and identity_uses(new) == 0
    args = (rng.standard_normal(a.shape), rng.standard_normal(s.shape), basis)
    for got, want in zip(run(new, *args), run(prog, *args)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("const", [2 * np.eye(4), np.eye(4)[::-1].copy(), np.eye(4)[:, :3].copy()])
def test_products_with_other_constants_are_kept(const: np.ndarray) -> None:
    a = var((3, 4), "a")
    b = Builder()
    c = var(const.shape, "c")
    out = b.bind1("matmul", a, c, transpose_a=False, transpose_b=False)
    assert [e.op for e in lean(with_consts([a], [c], [const], b, [out])).eqns] == ["matmul"]


def test_the_users_own_products_with_an_identity_are_kept() -> None:
    # x @ eye keeps numpy's result bit for bit (an inf in x makes NaNs of inf * 0)
    a = var((3, 4), "a")
    b = Builder(primal=True)
    c = var((4, 4), "c")
    out = b.bind1("matmul", a, c, transpose_a=False, transpose_b=False)
    prog = with_consts([a], [c], [np.eye(4)], b, [out])
    assert [e.op for e in lean(prog).eqns] == ["matmul"]
    assert [e.op for e in lean(prog, keep_primal=False).eqns] == []


def test_a_jitted_mlp_hessian_multiplies_by_no_identity(mode) -> None:
    rng = np.random.default_rng(6)
    ws = [rng.standard_normal(s) / 2 for s in [(5, 6), (6, 6), (6, 1)]]

    def f(x):
        h = ops.reshape(x, (1, -1))
        for w in ws[:-1]:
            h = ops.tanh(ops.matmul(h, Tensor(w)))
        return ops.sum(ops.matmul(h, Tensor(ws[-1])))

    def hess(x):
        return s2s_ad.hessian(f)(x)

    def f_np(x):
        h = x[None]
        for w in ws[:-1]:
            h = np.tanh(h @ w)
        return float((h @ ws[-1]).sum())

    xv = rng.standard_normal(5)
    got = s2s_ad.jit(hess)(Tensor(xv)).asnumpy()
    eps, e = 1e-4, np.eye(5)
    want = np.array(
        [
            [
                (
                    f_np(xv + eps * (e[i] + e[j]))
                    - f_np(xv + eps * (e[i] - e[j]))
                    - f_np(xv - eps * (e[i] - e[j]))
                    + f_np(xv - eps * (e[i] + e[j]))
                )
                / (4 * eps * eps)
                for j in range(5)
            ]
            for i in range(5)
        ]
    )
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got, got.T, rtol=1e-12, atol=1e-14)
    prog = compiled(hess).program
    assert identity_uses(prog) == 0


def test_a_jitted_newton_hessian_multiplies_by_no_identity(mode) -> None:
    rng = np.random.default_rng(7)
    n, d = 30, 4
    xv, yv = rng.standard_normal((n, d)), np.sign(rng.standard_normal(n))
    x, y = Tensor(xv), Tensor(yv)

    def loss(w):
        margin = y * ops.matmul(x, ops.reshape(w, (-1, 1)))[:, 0]
        return ops.mean(ops.log(1.0 + ops.exp(-margin)))

    def hess(w):
        return s2s_ad.hessian(loss)(w)

    wv = 0.3 * rng.standard_normal(d)
    got = s2s_ad.jit(hess)(Tensor(wv)).asnumpy()
    s = 1 / (1 + np.exp(-yv * (xv @ wv)))
    np.testing.assert_allclose(got, (xv.T * (s * (1 - s))) @ xv / n, rtol=1e-10, atol=1e-13)
    prog = compiled(hess).program
    assert identity_uses(prog) == 0
