"""Per-op higher-order tests generated from the op table: for every op and every sample,
derivative programs of order 2 and 3 built by applying the AD transforms to derivative
programs, in every mix of reverse and forward mode, each checked against central finite
differences of the program one order below.

A *mix* such as ``fwd-rev-rev`` (read as "forward over reverse over reverse", outermost first)
starts from the op's program and applies, innermost first, ``grad_program(...,
sens_param=True)`` ("rev") or ``jvp_args_program`` ("fwd"); after each transform the program is
optimised as the API does before it inlines a derivative program (``optimize(final=False)``),
so the next transform sees what a nested ``s2s_ad.grad``/``s2s_ad.jvp`` would. Every transform
differentiates with respect to every float argument of the program below it: the op's float
inputs, and the sens and tangent arguments lower orders added (a derivative is linear in
those, which the check covers too). Bool inputs are never differentiated.

The check of the outermost transform, for a random direction ``u`` over the differentiated
arguments ``a`` and ``D`` the order-(k-1) program:

* ``fwd``: the tangent output equals ``(D(a + h u) - D(a - h u)) / 2h`` leaf by leaf, and the
  value output equals ``D(a)``;
* ``rev``: with a random sens ``s``, ``<u, D'(a)^T s>`` equals
  ``<s, (D(a + h u) - D(a - h u)) / 2h>``.

Inputs (domains, ``bool_inputs``, ``distinct_inputs``) come from the op table through
``_harness.py``, as in ``test_op_table.py``; a sample is skipped by the op's shape/dtype rule
when its output is not float64 (a comparison has no derivative; a cast to float32 would limit
finite differences to float32 precision). float64, plain numpy backend (no Numba).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from _harness import along, avals, differentiable, inputs, trace_op

from s2s_ad.derivatives import grad_program, jvp_args_program
from s2s_ad.ir import Program, arg_leaf_ranges, flatten
from s2s_ad.opt import optimize
from s2s_ad.primitives import OPS
from s2s_ad.runtime import Compiled

# every mix of reverse and forward mode at orders 2 and 3 (outermost transform first)
MIXES = [f"{a}-{b}" for a in ("rev", "fwd") for b in ("rev", "fwd")]
MIXES += [f"{a}-{m}" for a in ("rev", "fwd") for m in MIXES]
H = 1e-5
RTOL = 1e-5


def _float64_output(op: str, shapes, params) -> bool:
    """Whether the op's output (by its shape/dtype rule) is a float64 tensor for float64
    inputs: not a comparison (a bool output, no derivative) nor a cast to float32 (finite
    differences of its derivatives would be limited to float32 precision)."""
    (out,) = OPS[op].abstract(avals(op, shapes, "float64"), params)
    return out.dtype == np.float64


CASES = []
for _op in OPS.values():
    for _k, (_shapes, _params) in enumerate(_op.samples):
        if not _float64_output(_op.name, _shapes, _params):
            continue
        for _mix in MIXES:
            CASES.append(pytest.param(_op.name, _k, _mix, id=f"{_op.name}-{_k}-{_mix}"))


def _diff_positions(prog: Program) -> list[int]:
    """The argument positions a transform differentiates: those whose leaves are floats."""
    res = []
    for pos, (lo, hi, _) in enumerate(arg_leaf_ranges(prog)):
        if hi > lo and all(v.dtype.kind == "f" for v in prog.invars[lo:hi]):
            res.append(pos)
    return res


def _diff_leaves(prog: Program) -> list[int]:
    ranges = arg_leaf_ranges(prog)
    return [i for pos in _diff_positions(prog) for i in range(ranges[pos][0], ranges[pos][1])]


@functools.cache
def _program(op: str, k: int, chain: tuple[str, ...]) -> Program:
    """The op's program with the transforms of ``chain`` (innermost first) applied."""
    if not chain:
        shapes, params = OPS[op].samples[k]
        return trace_op(op, shapes, params, "float64")
    prog = _program(op, k, chain[:-1])
    pos = _diff_positions(prog)
    out = grad_program(prog, pos, [], sens_param=True) if chain[-1] == "rev" else jvp_args_program(prog, pos)
    return optimize(out, final=False)


@functools.cache
def _compiled(op: str, k: int, chain: tuple[str, ...]) -> Compiled:
    return Compiled(_program(op, k, chain), "python")


def _run(compiled: Compiled, args: list) -> list[np.ndarray]:
    """The program's output leaves: float64 arrays (a derivative keeps its input's dtype)."""
    leaves, _ = flatten(compiled(list(args)))
    outs = [t.asnumpy() for t in leaves]
    for a in outs:
        assert a.dtype == np.float64, f"{compiled.fname}: a {a.dtype} output"
    return outs


def _extra_args(prog: Program, transform: str, rng) -> list[np.ndarray]:
    """Random values for the arguments ``transform`` adds to ``prog``'s: a sens like its
    outputs (rev), or a tangent per differentiated argument (fwd)."""
    if transform == "rev":
        avals = [o.aval for o in prog.outs]
    else:
        avals = [prog.invars[i].aval for i in _diff_leaves(prog)]
    for a in avals:
        assert a.dtype == np.float64, f"{prog.name}: a float64 program has a {a.dtype} output/argument"
    return [rng.standard_normal(a.shape) for a in avals]


@pytest.mark.parametrize("op,k,mix", CASES)
def test_against_finite_differences_of_lower_order(op, k, mix):
    chain = tuple(reversed(mix.split("-")))  # innermost first
    rng = np.random.default_rng(len(chain))
    shapes, params = OPS[op].samples[k]
    args = inputs(op, shapes, "float64", rng, params)
    for i, t in enumerate(chain[:-1]):
        args += _extra_args(_program(op, k, chain[:i]), t, rng)
    lower = _program(op, k, chain[:-1])
    d_lower = _compiled(op, k, chain[:-1])
    diff = set(_diff_leaves(lower))
    us = [rng.standard_normal(np.shape(a)) if i in diff else None for i, a in enumerate(args)]
    fd = [(p - m) / (2 * H) for p, m in zip(_run(d_lower, along(args, us, H)), _run(d_lower, along(args, us, -H)))]
    top = _compiled(op, k, chain)

    if chain[-1] == "fwd":
        outs = _run(top, args + [u for u in us if u is not None])
        n = len(outs) // 2
        assert n == len(fd)
        for v, ref in zip(outs[:n], _run(d_lower, args)):
            np.testing.assert_allclose(v, ref, rtol=1e-12, atol=1e-12, err_msg=f"{mix}: value")
        for j, (t, num) in enumerate(zip(outs[n:], fd)):
            scale = max(1.0, float(np.max(np.abs(num), initial=0.0)))
            np.testing.assert_allclose(t, num, rtol=RTOL, atol=RTOL * scale, err_msg=f"{mix}: tangent output {j}")
    else:
        sens = _extra_args(lower, "rev", rng)
        grads = _run(top, args + sens)
        assert len(grads) == len(diff)
        for i, g in zip(sorted(diff), grads):
            assert g.shape == np.shape(args[i])
        terms_u = [np.vdot(us[i], g) for i, g in zip(sorted(diff), grads)]
        terms_s = [np.vdot(s, num) for s, num in zip(sens, fd)]
        lhs, rhs = float(sum(terms_u)), float(sum(terms_s))
        scale = max(1.0, float(sum(abs(t) for t in terms_u)), float(sum(abs(t) for t in terms_s)))
        assert abs(lhs - rhs) <= RTOL * scale, f"{mix}: <u, D^T s> = {lhs!r} but <s, FD along u> = {rhs!r}"


def test_every_differentiable_op_is_covered():
    """Each op with samples and a float output is checked at orders 2 and 3."""
    covered = {c.values[0] for c in CASES}
    for op in OPS.values():
        if op.samples and differentiable(op.name, *op.samples[0]):
            assert op.name in covered
    assert {"sin", "matmul", "select", "maximum", "reduce_max", "getitem", "scatter", "cast"} <= covered
