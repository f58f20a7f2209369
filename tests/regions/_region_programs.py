"""Region programs built by hand for the per-region tests: a ``cond``, a counted ``loop`` (with
and without stacked inputs and outputs, static or dynamic length) and a ``while`` loop, each
whose body applies a smooth unary elementwise op drawn from the op table (and ``matmul``).

The op's argument is kept inside its table ``domain`` by construction (``mid + 0.4 * width *
tanh(.)``), so iterating the body never leaves the op's domain."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from s2s_ad import regions
from s2s_ad.ir import Atom, Aval, Builder, Lit, Program, Var, check_program
from s2s_ad.primitives import ELEMENTWISE, OPS

F8 = np.dtype(np.float64)
I8 = np.dtype(np.int64)
N = 3  # the vector length of the samples (fused loops in GRAPH mode)


def smooth_unary_ops() -> list[str]:
    """The table's unary elementwise ops with a nonzero, smooth derivative."""
    names = []
    for op in ELEMENTWISE:
        if op.nin != 1 or op.bool_inputs or op.distinct_inputs:
            continue
        text = " ".join(map(str, op.partials))
        if all(p == 0 for p in op.partials) or any(f in text for f in ("Sign", "Step", "Heaviside", "Dirac")):
            continue
        names.append(op.name)
    return names


def lit(v: float) -> Lit:
    return Lit(v, F8)


def in_domain(b: Builder, op: str, x: Atom) -> Var:
    """``op(mid + 0.4 * width * tanh(x))``: the op applied inside its domain."""
    lo, hi = OPS[op].domain
    t = b.bind1("tanh", x)
    a = b.bind1("add", lit((lo + hi) / 2), b.bind1("mul", lit(0.4 * (hi - lo)), t))
    return b.bind1(op, a)


def sub(name: str, invars: list[Var], fn: Callable) -> Program:
    b = Builder()
    return regions.subprogram(name, invars, b.eqns, fn(b, *invars))


def v(shape=(N,), dtype=F8, hint=None) -> Var:
    return Var(Aval(tuple(shape), np.dtype(dtype)), hint)


def program(name: str, args: list[Var], eqns, outs: list[Atom]) -> Program:
    prog = Program(
        name,
        args,
        len(args),
        ("tuple", (None,) * len(args)),
        [],
        [],
        eqns,
        list(outs),
        ("tuple", (None,) * len(outs)),
        [a.hint or f"a{k}" for k, a in enumerate(args)],
    )
    check_program(prog)
    return prog


def cond_program(op: str) -> Program:
    """``(p, x, w, u) -> (op(x) * w if p > 0 else x * u - op(w * x))``: the branches read
    different free variables."""
    p, x, w, u = v((), hint="p"), v(hint="x"), v(hint="w"), v(hint="u")
    b = Builder()
    pred = b.bind1("greater", p, lit(0.0))
    xt, wt, ut = v(hint="x"), v(hint="w"), v(hint="u")
    true = sub("if_true", [xt, wt, ut], lambda b, x, w, u: [b.bind1("mul", in_domain(b, op, x), w)])
    xf, wf, uf = v(hint="x"), v(hint="w"), v(hint="u")
    false = sub(
        "if_false",
        [xf, wf, uf],
        lambda b, x, w, u: [b.bind1("sub", b.bind1("mul", x, u), in_domain(b, op, b.bind1("mul", w, x)))],
    )
    (out,) = regions.bind_cond(b, pred, [x, w, u], true, false)
    return program(f"cond_{op}", [p, x, w, u], b.eqns, [b.bind1("mul", out, p)])


def loop_program(
    op: str, length: int = 4, scan: bool = False, dynamic: bool = False, matmul: bool = False, **extra
) -> Program:
    """``for i in range(length): c = 0.5 * c + w * op(c * x_i + i/10)`` (``x_i = xs[i]`` with
    ``scan``, else the const ``x``), stacking ``y_i = c * c`` with ``scan``; with ``matmul`` the
    carry is mixed by a matrix ``m`` each iteration. ``dynamic`` (not with ``scan``): the
    length is the last input, an int64 (``length`` is then the value the tests pass).
    ``extra``: more loop parameters (``checkpoint``)."""
    shape = (2, N) if matmul else (N,)  # matmul takes 2-D operands: a (2, 2) matrix mixes the rows
    i, c, w = v((), I8, "i"), v(shape, hint="c"), v(shape, hint="w")
    x = v(shape, hint="x")
    m = v((2, 2), hint="m")

    def body(b, i, w, *rest):
        if matmul:
            m, x, c = rest
        else:
            x, c = rest
        fi = b.bind1("mul", b.bind1("cast", i, dtype=F8), lit(0.1))
        z = b.bind1("add", b.bind1("mul", c, x), fi)
        if matmul:
            z = b.bind1("matmul", m, z, transpose_a=False, transpose_b=False)
        new = b.bind1("add", b.bind1("mul", lit(0.5), c), b.bind1("mul", w, in_domain(b, op, z)))
        return [new, b.bind1("mul", c, c)] if scan else [new]

    consts = [w, m] if matmul else [w]
    bodyp = sub("body", [i, *consts, x, c], body)
    W, C0 = v(shape, hint="W"), v(shape, hint="C0")
    M = v((2, 2), hint="M")
    X = v((length, *shape), hint="X") if scan else v(shape, hint="X")
    args = [W, *([M] if matmul else []), X, C0]
    b = Builder()
    n_arg = [v((), I8, "n")] if dynamic else []
    ln: Atom | int = n_arg[0] if dynamic else length
    mats = [M] if matmul else []
    if scan:
        outs = regions.bind_loop(b, bodyp, [W, *mats], [X], [C0], ln, n_ys=1, **extra)
    else:
        outs = regions.bind_loop(b, bodyp, [W, *mats, X], [], [C0], ln, **extra)
    return program(f"loop_{op}", [*args, *n_arg], b.eqns, outs)


def while_program(op: str, trips: int = 3) -> Program:
    """``k = 0; while k < trips: c = 0.5 * c + w * op(c * x); k += 1`` (a counter-driven while:
    its trip count does not move under finite differences)."""
    k, c, w, x = v((), I8, "k"), v(hint="c"), v(hint="w"), v(hint="x")
    cond = sub("cond", [w, x, k, c], lambda b, w, x, k, c: [b.bind1("less", k, Lit(trips, I8))])
    k2, c2, w2, x2 = v((), I8, "k"), v(hint="c"), v(hint="w"), v(hint="x")

    def body(b, w, x, k, c):
        new = b.bind1("add", b.bind1("mul", lit(0.5), c), b.bind1("mul", w, in_domain(b, op, b.bind1("mul", c, x))))
        return [b.bind1("add", k, Lit(1, I8)), new]

    bodyp = sub("body", [w2, x2, k2, c2], body)
    W, X, C0 = v(hint="W"), v(hint="X"), v(hint="C0")
    b = Builder()
    outs = regions.bind_while(b, cond, bodyp, [W, X], [Lit(0, I8), C0])
    return program(f"while_{op}", [W, X, C0], b.eqns, [outs[1]])
