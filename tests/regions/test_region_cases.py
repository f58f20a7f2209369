"""Derivatives through regions in the cases that matter beyond the generated ones: reverse mode
through a Newton solve iterated until a tolerance (a data-dependent trip count), a ``while``
that runs zero times, loops of length 0 and 1, and gradients with respect to weights (program
Parameters) that a loop reads as consts. Both backends (``mode``: numpy and Numba)."""

from __future__ import annotations

import numpy as np
import pytest
from _region_programs import F8, I8, N, lit, program, sub, v

from s2s_ad import regions
from s2s_ad.derivatives import grad_program, jvp_args_program
from s2s_ad.ir import Builder, Program, flatten
from s2s_ad.runtime import Compiled
from s2s_ad.tensor import Parameter


def _run(prog: Program, args: list, backend: str) -> list[np.ndarray]:
    leaves, _ = flatten(Compiled(prog, backend)(list(args)))
    return [np.asarray(t.asnumpy()) for t in leaves]


@pytest.fixture(params=["python", "numba"])
def backend(request):
    return request.param


def newton_program(tol: float = 1e-12) -> Program:
    """``x = a; while max|x**3 + x - a| > tol: x = x - (x**3 + x - a) / (3 x**2 + 1)``: the
    root of ``x**3 + x = a``, elementwise; the number of iterations depends on ``a``."""

    def resid(b, a, x):
        return b.bind1("sub", b.bind1("add", b.bind1("mul", b.bind1("square", x), x), x), a)

    def test(b, a, x):
        r = b.bind1("reduce_max", b.bind1("abs", resid(b, a, x)), axes=(0,), keepdims=False)
        return [b.bind1("greater", r, lit(tol))]

    def step(b, a, x):
        d = b.bind1("add", b.bind1("mul", lit(3.0), b.bind1("square", x)), lit(1.0))
        return [b.bind1("sub", x, b.bind1("div", resid(b, a, x), d))]

    cond = sub("cond", [v(hint="a"), v(hint="x")], test)
    body = sub("newton", [v(hint="a"), v(hint="x")], step)
    a = v(hint="a")
    b = Builder()
    x, trips = regions.bind_while(b, cond, body, [a], [a])
    return program("newton", [a], b.eqns, [x, trips])


def test_reverse_mode_through_newton_until_tolerance(backend):
    prog = newton_program()
    g = grad_program(prog, [0], [], sens_param=True)
    for a in (np.array([0.5, 2.0, -3.0]), np.array([10.0, 0.1, 1.0])):
        x, trips = _run(prog, [a], backend)
        np.testing.assert_allclose(x**3 + x, a, atol=1e-10)
        assert trips > 2  # a data-dependent number of iterations
        s = np.array([1.0, -2.0, 0.5])
        (ga,) = _run(g, [a, s, np.int64(0)], backend)
        # the implicit derivative of the root: dx/da = 1 / (3 x**2 + 1)
        np.testing.assert_allclose(ga, s / (3 * x**2 + 1), rtol=1e-8)
    # and forward mode, and the second derivative (forward over reverse)
    j = jvp_args_program(prog, [0])
    a = np.array([0.5, 2.0, -3.0])
    u = np.array([1.0, 1.0, 1.0])
    x, _, tx, _ = _run(j, [a, u], backend)
    np.testing.assert_allclose(tx, 1 / (3 * x**2 + 1), rtol=1e-8)
    jg = jvp_args_program(grad_program(prog, [0], [], sens_param=True), [0])
    (ga, tga) = _run(jg, [a, u, np.int64(0), u], backend)[:2]
    # d/da (1 / (3 x^2 + 1)) = -6 x x' / (3 x^2 + 1)^2
    np.testing.assert_allclose(tga, -6 * x / (3 * x**2 + 1) ** 3, rtol=1e-7)


def _while_counting(n_stop: float) -> Program:
    """``while c[0] < n_stop: c = 2 c``: runs zero times when ``c[0] >= n_stop`` already."""
    cond = sub("cond", [v(hint="c")], lambda b, c: [b.bind1("less", b.bind1("getitem", c, index=(0,)), lit(n_stop))])
    body = sub("double", [v(hint="c")], lambda b, c: [b.bind1("mul", c, lit(2.0))])
    c0 = v(hint="c0")
    b = Builder()
    c, trips = regions.bind_while(b, cond, body, [], [b.bind1("sin", c0)])
    return program("doubling", [c0], b.eqns, [c, trips])


def test_while_with_zero_iterations(backend):
    prog = _while_counting(0.0)
    c0 = np.array([0.5, 1.0, 1.5])
    c, trips = _run(prog, [c0], backend)
    assert trips == 0
    (g,) = _run(grad_program(prog, [0], [], sens_param=True), [c0, np.ones(N), np.int64(0)], backend)
    np.testing.assert_allclose(g, np.cos(c0), rtol=1e-12)
    _, _, t, _ = _run(jvp_args_program(prog, [0]), [c0, np.ones(N)], backend)
    np.testing.assert_allclose(t, np.cos(c0), rtol=1e-12)
    # and with iterations: 2**trips * cos(c0)
    prog = _while_counting(4.0)
    c, trips = _run(prog, [c0], backend)
    assert trips == 4  # sin(0.5) = 0.479 doubled 4 times passes 4
    (g,) = _run(grad_program(prog, [0], [], sens_param=True), [c0, np.ones(N), np.int64(0)], backend)
    np.testing.assert_allclose(g, 16 * np.cos(c0), rtol=1e-12)


@pytest.mark.parametrize("length", [0, 1, 2])
def test_loops_of_length_0_1_2(backend, length):
    """``for i in range(length): c = c * x + i; ys[i] = exp(c)``."""
    body = sub(
        "body",
        [v((), I8, "i"), v(hint="x"), v(hint="c")],
        lambda b, i, x, c: [b.bind1("add", b.bind1("mul", c, x), b.bind1("cast", i, dtype=F8)), b.bind1("exp", c)],
    )
    x, c0 = v(hint="x"), v(hint="c0")
    b = Builder()
    outs = regions.bind_loop(b, body, [x], [], [c0], length, n_ys=1)
    prog = program(f"loop{length}", [x, c0], b.eqns, outs)
    xv, cv = np.array([0.5, -1.0, 2.0]), np.array([0.3, 0.2, -0.1])
    s = [np.array([1.0, 2.0, 3.0]), np.ones((length, N))]
    gx, gc = _run(grad_program(prog, [0, 1], [], sens_param=True), [xv, cv, *s], backend)
    # reference by hand
    c, cs = cv.copy(), []
    for i in range(length):
        cs.append(c)
        c = c * xv + i
    ref_gx, ref_gc = np.zeros(N), s[0].copy()
    for i in reversed(range(length)):
        ref_gx += ref_gc * cs[i]
        ref_gc = ref_gc * xv + s[1][i] * np.exp(cs[i])
    np.testing.assert_allclose(gx, ref_gx, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gc, ref_gc, rtol=1e-12, atol=1e-15)


def test_gradient_with_respect_to_parameters_read_by_a_loop(backend):
    """A weight (a program Parameter) read as a loop const: its gradient accumulates over the
    iterations (an RNN-like ``h = tanh(w * h + x_i)``)."""
    body = sub(
        "cell",
        [v((), I8, "i"), v(hint="w"), v(hint="x"), v(hint="h")],
        lambda b, i, w, x, h: [b.bind1("tanh", b.bind1("add", b.bind1("mul", w, h), x))],
    )
    xs, w = v((4, N), hint="xs"), v(hint="w")
    b = Builder()
    h0 = b.bind1("fill", shape=(N,), value=0.0, dtype=F8)
    (h,) = regions.bind_loop(b, body, [w], [xs], [h0], 4)
    loss = b.bind1("reduce_sum", b.bind1("square", h), axes=(0,), keepdims=False)
    weight = Parameter(np.array([0.5, -0.3, 0.8]), name="w")
    prog = Program("rnn", [xs, w], 1, ("tuple", (None,)), [weight], [], b.eqns, [loss], ("tuple", (None,)), ["xs"])
    g = grad_program(prog, [], [1], sens_param=False)
    xv = np.random.default_rng(0).standard_normal((4, N))
    (gw,) = _run(g, [xv], backend)

    def f(wv):
        hv = np.zeros(N)
        for k in range(4):
            hv = np.tanh(wv * hv + xv[k])
        return np.sum(hv**2)

    eps = 1e-6
    fd = [(f(weight.asnumpy() + eps * e) - f(weight.asnumpy() - eps * e)) / (2 * eps) for e in np.eye(N)]
    np.testing.assert_allclose(gw, fd, rtol=1e-6)


@pytest.mark.parametrize(
    "backend,length,every,mix",
    [
        ("python", 7, 3, ("rev",)),
        ("python", 6, 2, ("rev",)),
        ("python", 4, 4, ("rev",)),
        ("python", 5, 1, ("rev",)),
        ("python", 7, 3, ("rev", "rev")),
        ("python", 7, 3, ("rev", "fwd")),
        ("numba", 7, 3, ("rev",)),
    ],
)
def test_checkpointed_loop_gives_the_same_derivatives(backend, length, every, mix):
    """``checkpoint=k``: the same gradients (and derivatives of them) as the fully taped loop,
    with ``length // k`` carries stored plus one segment's ``k``; ``length % k`` left over."""
    from _region_programs import loop_program

    progs = [loop_program("sin", length=length, scan=True)]
    progs.append(loop_program("sin", length=length, scan=True, checkpoint=every))
    rng = np.random.default_rng(1)
    results = []
    for prog in progs:
        args = [0.5 * rng.standard_normal(v.shape) for v in prog.invars]
        for t in mix:
            lower = prog
            if t == "rev":
                prog = grad_program(prog, list(range(len(prog.in_tree[1]))), [], sens_param=True)
                args += [np.linspace(-1, 1, o.aval.size).reshape(o.shape) for o in lower.outs]
            else:
                prog = jvp_args_program(prog, list(range(len(prog.in_tree[1]))))
                args += [np.linspace(0.5, 1, v.aval.size).reshape(v.shape) for v in lower.arg_vars]
        results.append(_run(prog, args, backend))
        rng = np.random.default_rng(1)
    for got, want in zip(results[1], results[0]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    if every < length:
        text = grad_program(progs[1], [0, 1, 2], [], sens_param=True).pretty()
        assert text.count("loop[") >= 3  # segments, their inner loop, the adjoint loops


@pytest.mark.parametrize("backend,every", [("python", 1), ("python", 2), ("python", 3), ("python", 50), ("numba", 2)])
def test_checkpointed_while_gives_the_same_derivatives(backend, every):
    """A Newton solve with ``checkpoint=k``: segments of at most ``k`` iterations, the last one
    partial; the same root, trip count and gradient (and second derivative) as the fully taped
    loop."""
    plain, ckpt = newton_program(), newton_program()
    (loop,) = [x for x in ckpt.eqns if x.op == "while"]
    loop.params["checkpoint"] = every
    a = np.array([0.5, 2.0, -3.0])
    s = np.array([1.0, -2.0, 0.5])
    for transform in ("rev", "fwd-rev"):
        results = []
        for prog in (plain, ckpt):
            g = grad_program(prog, [0], [], sens_param=True)
            args = [a, s, np.int64(0)]
            if transform == "fwd-rev":
                g = jvp_args_program(g, [0])
                args.append(np.ones(N))
            results.append(_run(g, args, backend))
        for got, want in zip(*results[::-1]):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    assert _run(ckpt, [a], backend)[1] == _run(plain, [a], backend)[1]
    text = grad_program(ckpt, [0], [], sens_param=True).pretty()
    assert text.count("while[") >= 3  # the segments, their inner loop, and again in the adjoint
