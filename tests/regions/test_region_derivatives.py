"""Per-region derivative tests generated from the op table: a ``cond``, counted loops (a plain
carry, stacked inputs/outputs, a dynamic length, a ``matmul`` in the body) and a ``while`` loop,
each with a body drawn from the table's smooth unary elementwise ops (``_region_programs.py``), are
differentiated to first, second and third order in every mix of reverse and forward mode
(written outermost first, as in ``tests/ops/test_higher_order_ops.py``), each order checked
against central finite differences of the order below (float64, numpy backend). Plus the
dot-product test between forward and reverse mode, and GRAPH (Numba) against PYNATIVE (numpy)
on first- and second-order programs."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from _region_programs import cond_program, loop_program, smooth_unary_ops, while_program

from s2s_ad.derivatives import grad_program, jvp_args_program
from s2s_ad.ir import Program, arg_leaf_ranges, flatten
from s2s_ad.opt import optimize
from s2s_ad.runtime import Compiled

H = 1e-5
RTOL = 1e-5
OPS = smooth_unary_ops()

# the region programs: name -> (builder, int arguments' values)
KINDS = {
    "cond_true": (cond_program, {}, 0.7),
    "cond_false": (cond_program, {}, -0.7),
    "loop": (loop_program, {}, None),
    "scan": (functools.partial(loop_program, scan=True), {}, None),
    "dynamic": (functools.partial(loop_program, dynamic=True, length=3), {"n": 3}, None),
    "matmul": (functools.partial(loop_program, matmul=True, length=3), {}, None),
    "while": (while_program, {}, None),
}
ORDER1 = ["rev", "fwd"]
ORDER2 = [f"{a}-{b}" for a in ORDER1 for b in ORDER1]
ORDER3 = [f"{a}-{m}" for a in ORDER1 for m in ORDER2]


def _ops_for(k: int, n: int) -> list[str]:
    """``n`` ops for the ``k``-th region kind, rotating through the table's smooth ops."""
    return [OPS[(k * n + j) % len(OPS)] for j in range(n)]


# per region kind: one op to first and second order in every mix and to third order in two
# mixes (the kinds share out the eight), two more ops to first order
CASES = []
for _k, _kind in enumerate(KINDS):
    for _j, _op in enumerate(_ops_for(_k, 3)):
        _mixes = ORDER1 + ORDER2 + [ORDER3[(2 * _k) % 8], ORDER3[(2 * _k + 1) % 8]] if _j == 0 else ORDER1
        for _mix in _mixes:
            CASES.append(pytest.param(_kind, _op, _mix, id=f"{_kind}-{_op}-{_mix}"))


def _diff_positions(prog: Program) -> list[int]:
    res = []
    for pos, (lo, hi, _) in enumerate(arg_leaf_ranges(prog)):
        if hi > lo and all(v.dtype.kind == "f" for v in prog.invars[lo:hi]):
            res.append(pos)
    return res


@functools.cache
def _program(kind: str, op: str, chain: tuple[str, ...]) -> Program:
    if not chain:
        return KINDS[kind][0](op)
    prog = _program(kind, op, chain[:-1])
    pos = _diff_positions(prog)
    out = grad_program(prog, pos, [], sens_param=True) if chain[-1] == "rev" else jvp_args_program(prog, pos)
    return optimize(out, final=False)


@functools.cache
def _compiled(kind: str, op: str, chain: tuple[str, ...], backend: str = "python") -> Compiled:
    return Compiled(_program(kind, op, chain), backend)


def _run(c: Compiled, args: list) -> list[np.ndarray]:
    leaves, _ = flatten(c(list(args)))
    return [np.asarray(t.asnumpy()) for t in leaves]


def _base_args(kind: str, op: str, rng) -> list:
    prog = _program(kind, op, ())
    _, ints, p = KINDS[kind]
    args = []
    for v in prog.invars:
        if v.dtype.kind == "i":
            args.append(np.int64(ints[v.hint]))
        elif v.hint == "p":
            args.append(np.float64(p))
        else:
            args.append(0.6 * rng.standard_normal(v.shape))
    return args


def _args(kind: str, op: str, chain: tuple[str, ...], rng) -> list:
    args = _base_args(kind, op, rng)
    for i, t in enumerate(chain):
        prog = _program(kind, op, chain[:i])
        if t == "rev":
            args += [rng.standard_normal(o.shape) for o in prog.outs]
        else:
            args += [rng.standard_normal(prog.invars[j].shape) for j in _leaves(prog)]
    return args


def _leaves(prog: Program) -> list[int]:
    ranges = arg_leaf_ranges(prog)
    return [i for pos in _diff_positions(prog) for i in range(ranges[pos][0], ranges[pos][1])]


@pytest.mark.parametrize("kind,op,mix", CASES)
def test_against_finite_differences_of_lower_order(kind, op, mix):
    chain = tuple(reversed(mix.split("-")))  # innermost first
    rng = np.random.default_rng(len(chain))
    args = _args(kind, op, chain[:-1], rng)
    lower = _program(kind, op, chain[:-1])
    d_lower = _compiled(kind, op, chain[:-1])
    diff = set(_leaves(lower))
    us = [rng.standard_normal(np.shape(a)) if i in diff else None for i, a in enumerate(args)]
    plus = [a if u is None else a + H * u for a, u in zip(args, us)]
    minus = [a if u is None else a - H * u for a, u in zip(args, us)]
    fd = [(p - m) / (2 * H) for p, m in zip(_run(d_lower, plus), _run(d_lower, minus))]
    top = _compiled(kind, op, chain)
    if chain[-1] == "fwd":
        outs = _run(top, args + [u for u in us if u is not None])
        n = len(outs) // 2
        for val, ref in zip(outs[:n], _run(d_lower, args)):
            np.testing.assert_allclose(val, ref, rtol=1e-12, atol=1e-12, err_msg=f"{mix}: value")
        for j, (t, num) in enumerate(zip(outs[n:], fd)):
            scale = max(1.0, float(np.max(np.abs(num), initial=0.0)))
            np.testing.assert_allclose(t, num, rtol=RTOL, atol=RTOL * scale, err_msg=f"{mix}: tangent {j}")
    else:
        sens = [rng.standard_normal(o.shape) for o in lower.outs]
        grads = _run(top, args + sens)
        assert len(grads) == len(diff)
        terms_u = [np.vdot(us[i], g) for i, g in zip(sorted(diff), grads)]
        terms_s = [np.vdot(s, num) for s, num in zip(sens, fd)]
        lhs, rhs = float(sum(terms_u)), float(sum(terms_s))
        scale = max(1.0, float(sum(abs(t) for t in terms_u)), float(sum(abs(t) for t in terms_s)))
        assert abs(lhs - rhs) <= RTOL * scale, f"{mix}: <u, D^T s> = {lhs!r} but <s, FD along u> = {rhs!r}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_dot_product_forward_against_reverse(kind):
    """``<s, J u>`` from forward mode equals ``<u, J^T s>`` from reverse mode (to rounding)."""
    op = _ops_for(list(KINDS).index(kind), 1)[0]
    rng = np.random.default_rng(7)
    args = _base_args(kind, op, rng)
    prog = _program(kind, op, ())
    leaves = _leaves(prog)
    us = [rng.standard_normal(np.shape(args[i])) for i in leaves]
    sens = [rng.standard_normal(o.shape) for o in prog.outs]
    jv = _run(_compiled(kind, op, ("fwd",)), args + us)[len(prog.outs) :]
    vj = _run(_compiled(kind, op, ("rev",)), args + sens)
    lhs = sum(np.vdot(s, t) for s, t in zip(sens, jv))
    rhs = sum(np.vdot(u, g) for u, g in zip(us, vj))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs)), (lhs, rhs)


@pytest.mark.parametrize("kind,mix", [("scan", "rev"), ("while", "fwd-rev")])
def test_graph_agrees_with_pynative(kind, mix):
    """The Numba programs (fused loops inside the regions) give the numpy programs' numbers."""
    op = _ops_for(list(KINDS).index(kind), 1)[0]
    chain = tuple(reversed(mix.split("-")))
    args = _args(kind, op, chain, np.random.default_rng(3))
    want = _run(_compiled(kind, op, chain), args)
    got = _run(_compiled(kind, op, chain, "numba"), args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
