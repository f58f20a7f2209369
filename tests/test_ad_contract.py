"""The AD core's contract, on hand-built programs given straight to it: ``vjp_program(prog,
wrt, seeded)`` and ``jvp_program(prog, wrt)`` take a program, the input leaves to
differentiate and (reverse) the outputs to seed, nothing else. Checked in float64 against
central finite differences and by the dot-product test ``<J·u, w> == <u, wᵀ·J>``, in the
NumPy and the Numba backend (shapes that generate fused loops)."""

from __future__ import annotations

import numpy as np
import pytest

from s2s_ad.ad.forward import jvp_program
from s2s_ad.ad.reverse import backward, vjp_program
from s2s_ad.ir import Aval, Builder, Lit, Program, Var, check_program, copy_program
from s2s_ad.runtime import Compiled

F64 = np.dtype(np.float64)
H = 1e-6
BACKENDS = ["python", "numba"]


def _program() -> Program:
    """Inputs x (3, 4), y (4,), z (3, 4); outputs ``sin(x) * y + z`` (3, 4), ``sum(x * z)``
    (a scalar) and ``exp(y) * 0.5`` (4,): y is broadcast in the first output, every input
    reaches two outputs, and the outputs have three different shapes."""
    x, y, z = Var(Aval((3, 4), F64), "x"), Var(Aval((4,), F64), "y"), Var(Aval((3, 4), F64), "z")
    b = Builder(primal=True)
    o1 = b.bind1("add", b.bind1("mul", b.bind1("sin", x), y), z)
    o2 = b.bind1("reduce_sum", b.bind1("mul", x, z), axes=(0, 1), keepdims=False)
    o3 = b.bind1("mul", b.bind1("exp", y), Lit(0.5, F64))
    return Program(
        name="f",
        invars=[x, y, z],
        n_args=3,
        in_tree=("tuple", (None, None, None)),
        parameters=[],
        consts=[],
        eqns=b.eqns,
        outs=[o1, o2, o3],
        out_tree=("tuple", (None, None, None)),
        arg_names=["x", "y", "z"],
    )


def _leaves(out) -> list[np.ndarray]:
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _leaves(o)]
    return [np.asarray(out.asnumpy(), dtype=np.float64)]


def _inputs(rng, prog: Program) -> list[np.ndarray]:
    return [rng.standard_normal(v.shape) for v in prog.invars]


def _dot(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return sum(float(np.sum(p * q)) for p, q in zip(a, b, strict=True))


def _fd(prog: Program, args: list[np.ndarray], u: list[np.ndarray]) -> list[np.ndarray]:
    """Central finite differences of ``prog``'s outputs at ``args`` along ``u``."""
    f = Compiled(prog, "python")
    plus = _leaves(f([a + H * d for a, d in zip(args, u)]))
    minus = _leaves(f([a - H * d for a, d in zip(args, u)]))
    return [(p - m) / (2 * H) for p, m in zip(plus, minus)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seeded", [[0], [1], [2], [0, 2], None], ids=["o1", "o2", "o3", "o1+o3", "all"])
def test_vjp_seeded_outputs_wrt_subset_matches_finite_differences(backend, seeded):
    prog = _program()
    wrt = [0, 1]  # x and y; z is not differentiated
    vjp = vjp_program(prog, wrt, seeded)
    check_program(vjp, "vjp_program")
    outs = list(range(3)) if seeded is None else seeded
    # Interface: prog's arguments, one cotangent per seeded output; the value, then one
    # cotangent per wrt leaf, shaped like that leaf.
    assert vjp.n_args == 3 + len(outs)
    assert [v.aval for v in vjp.arg_vars[3:]] == [prog.outs[k].aval for k in outs]
    assert [o.aval for o in vjp.outs[3:]] == [prog.invars[i].aval for i in wrt]

    rng = np.random.default_rng(0)
    args = _inputs(rng, prog)
    w = [rng.standard_normal(prog.outs[k].shape) for k in outs]
    res = _leaves(Compiled(vjp, backend)(args + w))
    value, grads = res[:3], res[3:]
    for got, want in zip(value, _leaves(Compiled(prog, "python")(args))):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    # <w, J·u> by finite differences, for u along each wrt input alone
    for i, g in zip(wrt, grads):
        u = [np.zeros_like(a) for a in args]
        u[i] = rng.standard_normal(args[i].shape)
        fd = _fd(prog, args, u)
        np.testing.assert_allclose(_dot([g], [u[i]]), _dot(w, [fd[k] for k in outs]), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vjp_of_each_output_seeded_separately_sums_to_the_vjp_of_both(backend):
    prog = _program()
    rng = np.random.default_rng(1)
    args = _inputs(rng, prog)
    w1, w3 = rng.standard_normal((3, 4)), rng.standard_normal(4)
    wrt = [0, 1, 2]
    first = _leaves(Compiled(vjp_program(prog, wrt, [0]), backend)(args + [w1]))[3:]
    third = _leaves(Compiled(vjp_program(prog, wrt, [2]), backend)(args + [w3]))[3:]
    both = _leaves(Compiled(vjp_program(prog, wrt, [0, 2]), backend)(args + [w1, w3]))[3:]
    for a, c, ab in zip(first, third, both):
        np.testing.assert_allclose(a + c, ab, rtol=1e-12, atol=1e-12)
    # z reaches only the first (and second) output: its cotangent from the third is zero
    np.testing.assert_array_equal(third[2], np.zeros((3, 4)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_dot_product_jvp_against_vjp(backend):
    prog = _program()
    rng = np.random.default_rng(2)
    args = _inputs(rng, prog)
    wrt = [0, 2]
    jvp = jvp_program(prog, wrt)
    check_program(jvp, "jvp_program")
    assert [v.aval for v in jvp.arg_vars[3:]] == [prog.invars[i].aval for i in wrt]
    vjp = vjp_program(prog, wrt)
    u = [rng.standard_normal(args[i].shape) for i in wrt]
    w = [rng.standard_normal(o.shape) for o in prog.outs]
    ju = _leaves(Compiled(jvp, backend)(args + u))[3:]
    vw = _leaves(Compiled(vjp, backend)(args + w))[3:]
    np.testing.assert_allclose(_dot(ju, w), _dot(u, vw), rtol=1e-12)
    # and J·u is the finite difference along u
    full = [np.zeros_like(a) for a in args]
    for i, d in zip(wrt, u):
        full[i] = d
    for got, want in zip(ju, _fd(prog, args, full)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_broadcast_operand_cotangent_is_summed_to_its_shape_once():
    """y (4,) is broadcast to (3, 4) in ``sin(x) * y``: its cotangent is summed over the
    broadcast rows exactly once, ``sum_rows(w * sin(x))``."""
    prog = _program()
    rng = np.random.default_rng(3)
    args = _inputs(rng, prog)
    w = rng.standard_normal((3, 4))
    (gy,) = _leaves(Compiled(vjp_program(prog, [1], [0]), "python")(args + [w]))[3:]
    np.testing.assert_allclose(gy, np.sum(w * np.sin(args[0]), axis=0), rtol=1e-12)


def test_backward_takes_seeds_and_returns_zeros_for_unreached_variables():
    """``backward`` on equations already in a builder: an output without a seed contributes
    nothing, and a variable that reaches no seeded output gets zeros of its aval."""
    prog = _program()
    b = Builder()
    new_in, outs = copy_program(b, prog)
    ct = Var(prog.outs[2].aval, "ct")
    gx, gy = backward(b, b.eqns[:], outs, [None, None, ct], [new_in[0], new_in[1]])
    assert gx.aval == new_in[0].aval and gy.aval == new_in[1].aval
    (zeros,) = [e for e in b.eqns if gx in e.outs]
    assert zeros.op == "fill" and zeros.params["value"] == 0
    # y's cotangent is exp(y) * 0.5 * ct: no equation of the first two outputs' adjoints
    adjoint = b.eqns[len(prog.eqns) :]
    assert not any(e.op in ("cos", "reduce_sum") for e in adjoint)
