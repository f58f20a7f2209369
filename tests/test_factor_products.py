"""opt.factor_products: a sum of products (ops the table marks ``bilinear``) that share an
input becomes one product of a sum. Checked on every bilinear op's samples (both sides, with
signs), against the sums it must leave alone (a product read elsewhere, different params, the
user's own equations), and end to end: a network's weight gradient through its input
derivatives (the PINN's form) computes fewer matrix products and the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
from test_lean_products import program, run  # (programs built by hand, run as numpy code)

import s2s_ad
from s2s_ad import ops, opt
from s2s_ad.api import generated_source
from s2s_ad.ir import Aval, Builder, Program, Var, check_program
from s2s_ad.primitives import OPS

F64 = np.dtype(np.float64)
BILINEAR = [op for op in OPS.values() if op.bilinear]
SAMPLES = [
    pytest.param(op.name, shapes, params, id=f"{op.name}-{k}")
    for op in BILINEAR
    for k, (shapes, params) in enumerate(op.samples)
]


def factor(prog: Program, keep_primal: bool = True) -> Program:
    out = opt.factor_products(prog, keep_primal)
    check_program(out, "after factor_products")
    return out


def count(prog: Program, op: str) -> int:
    return sum(e.op == op for e in prog.eqns)


def test_every_bilinear_op_has_samples() -> None:
    assert {"matmul", "batch_matmul"} <= {op.name for op in BILINEAR}
    assert all(op.samples and op.nin == 2 for op in BILINEAR)


@pytest.mark.parametrize("name,shapes,params", SAMPLES)
@pytest.mark.parametrize("shared", [0, 1])
def test_a_signed_sum_of_products_sharing_an_input_is_one_product(name, shapes, params, shared) -> None:
    rng = np.random.default_rng(3)
    s = Var(Aval(tuple(shapes[shared]), F64), "s")
    others = [Var(Aval(tuple(shapes[1 - shared]), F64), f"x{k}") for k in range(3)]
    b = Builder()
    prods = [b.bind1(name, *((s, x) if shared == 0 else (x, s)), **params) for x in others]
    total = b.bind1("sub", b.bind1("add", prods[0], prods[1]), prods[2])
    prog = program([s, *others], b, [total])
    new = factor(prog)
    assert count(new, name) == 1
    vals = [rng.standard_normal(v.shape) for v in prog.invars]
    np.testing.assert_allclose(run(new, *vals)[0], run(prog, *vals)[0], rtol=1e-12, atol=1e-12)


def test_only_negative_products_keep_their_sign() -> None:
    w, x1, x2, c = (Var(Aval(sh, F64), n) for sh, n in (((3, 4), "w"), ((5, 3), "x1"), ((5, 3), "x2"), ((5, 4), "c")))
    b = Builder()
    p1, p2 = (b.bind1("matmul", x, w, transpose_a=False, transpose_b=False) for x in (x1, x2))
    total = b.bind1("sub", b.bind1("sub", c, p1), p2)  # c - x1 @ w - x2 @ w
    prog = program([w, x1, x2, c], b, [total])
    new = factor(prog)
    assert count(new, "matmul") == 1
    vals = [np.random.default_rng(4).standard_normal(v.shape) for v in prog.invars]
    np.testing.assert_allclose(run(new, *vals)[0], run(prog, *vals)[0], rtol=1e-12)


def _two_products(transpose_b: tuple[bool, bool] = (False, False), primal: bool = False):
    w, x1, x2 = (Var(Aval(sh, F64), n) for sh, n in (((4, 4), "w"), ((5, 4), "x1"), ((5, 4), "x2")))
    b = Builder(primal=primal)
    p1, p2 = (b.bind1("matmul", x, w, transpose_a=False, transpose_b=t) for x, t in zip((x1, x2), transpose_b))
    return [w, x1, x2], b, p1, p2


def test_a_product_read_elsewhere_stays() -> None:
    ins, b, p1, p2 = _two_products()
    total = b.bind1("add", p1, p2)
    prog = program(ins, b, [total, p1])
    assert count(factor(prog), "matmul") == 2


def test_products_with_different_params_stay() -> None:
    ins, b, p1, p2 = _two_products(transpose_b=(False, True))
    prog = program(ins, b, [b.bind1("add", p1, p2)])
    assert count(factor(prog), "matmul") == 2


def test_the_users_own_sum_stays_unless_algebra_is_allowed() -> None:
    ins, b, p1, p2 = _two_products(primal=True)
    prog = program(ins, b, [b.bind1("add", p1, p2)])
    assert count(factor(prog), "matmul") == 2
    assert count(factor(prog, keep_primal=False), "matmul") == 1


def test_a_long_sum_is_walked_without_recursion() -> None:
    w = Var(Aval((3, 3), F64), "w")
    xs = [Var(Aval((2, 3), F64), f"x{k}") for k in range(1500)]
    b = Builder()
    total = b.bind1("matmul", xs[0], w, transpose_a=False, transpose_b=False)
    for x in xs[1:]:
        total = b.bind1("add", total, b.bind1("matmul", x, w, transpose_a=False, transpose_b=False))
    prog = program([w, *xs], b, [total])
    new = factor(prog)
    assert count(new, "matmul") == 1
    vals = [np.random.default_rng(5).standard_normal(v.shape) for v in prog.invars]
    np.testing.assert_allclose(run(new, *vals)[0], run(prog, *vals)[0], rtol=1e-10)


def _u_sum(xt, w0, w1, w2):
    return ops.sum(ops.matmul(ops.tanh(ops.matmul(ops.tanh(ops.matmul(xt, w0)), w1)), w2))


def _u_x_sum(xt, w0, w1, w2):
    return ops.sum(ops.grad(_u_sum)(xt, w0, w1, w2)[:, 0])


def _loss(xt, w0, w1, w2):
    """The residual of a small PINN from its input derivatives (as the Burgers benchmark):
    its weight gradient sums products that share activations."""
    du = ops.grad(_u_sum)(xt, w0, w1, w2)
    u_xx = ops.grad(_u_x_sum)(xt, w0, w1, w2)[:, 0]
    r = du[:, 1] + du[:, 0] * u_xx
    return ops.sum(r * r)


def _residual_gradient():
    rng = np.random.default_rng(6)
    w0, w1, w2 = (rng.standard_normal(s) * 0.5 for s in ((2, 8), (8, 8), (8, 1)))
    xt = rng.uniform(-1, 1, (40, 2))
    return ops.grad(_loss, grad_position=(1, 2, 3)), (xt, w0, w1, w2), _loss


def test_a_pinn_weight_gradient_has_fewer_products_and_the_right_values(monkeypatch) -> None:
    grad, args, loss = _residual_gradient()
    grads = [np.asarray(g) for g in s2s_ad.jit(grad)(*args)]
    rng = np.random.default_rng(7)
    for k, g in enumerate(grads):  # finite differences of the loss along each weight
        d = rng.standard_normal(g.shape)
        h = 1e-6
        plus, minus = list(args), list(args)
        plus[k + 1] = args[k + 1] + h * d
        minus[k + 1] = args[k + 1] - h * d
        fd = (float(loss(*plus)) - float(loss(*minus))) / (2 * h)
        assert fd == pytest.approx(float(np.sum(g * d)), rel=1e-6, abs=1e-8)
    factored = generated_source(grad, *args).count("np.dot(")
    monkeypatch.setattr(opt, "factor_products", lambda p, keep_primal=True: p)
    assert factored < generated_source(grad, *args).count("np.dot(")
