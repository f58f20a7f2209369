"""What the generated per-op tests (``test_op_table.py``, ``test_higher_order_ops.py``) share:
the program of one op applied to sample shapes, and inputs drawn per the op's table entry.

What the harness needs to know about an op comes from its table entry: ``domain`` (where inputs
are drawn), ``bool_inputs`` (inputs drawn as random bool tensors and never differentiated),
``distinct_inputs`` (the derivative jumps where values tie, so values are drawn well apart),
``int_inputs`` and ``index_bound`` (integer index inputs, drawn in range, negative ones included,
never differentiated), ``well_conditioned`` (a square matrix drawn diagonally dominant) and
the op's shape/dtype rule (an op whose output is not a float tensor, a comparison, has no
derivative)."""

from __future__ import annotations

import numpy as np

from s2s_ad.derivatives import grad_program
from s2s_ad.ir import Aval, Program, arg_leaf_ranges
from s2s_ad.primitives import ELEMENTWISE, OPS
from s2s_ad.trace import trace


def input_dtype(op: str, i: int, dtype) -> np.dtype:
    """The dtype of the op's input ``i`` in a test of float dtype ``dtype``."""
    if i in OPS[op].bool_inputs:
        return np.dtype(np.bool_)
    if i in OPS[op].int_inputs:
        return np.dtype(np.int64)
    return np.dtype(dtype)


def avals(op: str, shapes, dtype) -> list[Aval]:
    return [Aval(tuple(s), input_dtype(op, i, dtype)) for i, s in enumerate(shapes)]


def differentiable(op: str, shapes, params) -> bool:
    """Whether the op's output (by its shape/dtype rule) is a float tensor."""
    (out,) = OPS[op].abstract(avals(op, shapes, "float64"), params)
    return out.dtype.kind == "f"


def float_inputs(op: str, shapes) -> list[int]:
    return [i for i in range(len(shapes)) if i not in OPS[op].bool_inputs and i not in OPS[op].int_inputs]


def trace_op(op: str, shapes, params, dtype):
    names = [f"x{i}" for i in range(len(shapes))]
    return trace(lambda fe, vals: fe.bind1(op, *vals, **params), avals(op, shapes, dtype), f"op_{op}", names)


def inputs(op: str, shapes, dtype, rng, params: dict):
    opdef = OPS[op]
    lo, hi = opdef.domain
    floats = float_inputs(op, shapes)
    xs: list = [None] * len(shapes)
    if opdef.distinct_inputs:
        # The derivative jumps where values tie (max/min): all float input values, within and
        # across inputs, are drawn from a shuffled grid, so any two differ by >= (hi-lo)/(2n).
        sizes = [int(np.prod(shapes[i], dtype=np.int64)) for i in floats]
        n = sum(sizes)
        vals = lo + (hi - lo) * (rng.permutation(n) + 0.5 + rng.uniform(-0.25, 0.25, n)) / n
        for i, part in zip(floats, np.split(vals, np.cumsum(sizes)[:-1])):
            xs[i] = np.asarray(part.reshape(shapes[i]), dtype=dtype)
    else:
        for i in floats:
            x = rng.uniform(lo, hi, size=shapes[i])
            # keep away from kinks (relu/abs/sign/step at 0)
            x = np.where(np.abs(x) < 0.1, 0.3, x)
            xs[i] = np.asarray(x, dtype=dtype)
    for i in opdef.bool_inputs:
        xs[i] = np.asarray(rng.random(shapes[i]) < 0.5)
    if opdef.int_inputs:
        n = opdef.index_bound(shapes, params)
        for i in opdef.int_inputs:
            xs[i] = np.asarray(rng.integers(-n, n, size=shapes[i]), dtype=np.int64)
    if opdef.well_conditioned:
        n = xs[0].shape[-1]  # a matrix, or a batch of them in the last two axes
        xs[0] = xs[0] + np.asarray(2 * n * np.eye(n), dtype=dtype)
    return xs


def tangents(xs, rng):
    """A random direction for each float input (bool inputs have none)."""
    return [rng.standard_normal(x.shape) if x.dtype.kind == "f" else None for x in xs]


def along(xs, us, h):
    return [x if u is None else x + h * u for x, u in zip(xs, us)]


def _cases(which: int):
    """(op, shapes): every elementwise op on one sample of its table entry. ``which`` 0: a 2-D
    input for a unary op, (2, 3) with (3,) for a binary one; 1: a 0-d input, or (2, 1) with
    (1, 3) (the ternary select: the samples after those)."""
    for op in ELEMENTWISE:
        samples = op.samples[1:3] if op.nin == 1 else op.samples[2:4]
        yield op, samples[which][0]


def all_elementwise(dtype: str, which: int = 0) -> tuple[Program, list[np.ndarray], list[str]]:
    """One program applying every elementwise op of the table to inputs of its own (drawn from
    the op's domain), the inputs, and an output label per op."""
    avals, labels, xs = [], [], []
    rng = np.random.default_rng(0)
    spans = []
    for op, shapes in _cases(which):
        start = len(avals)
        for i, s in enumerate(shapes):
            avals.append(Aval(tuple(s), np.dtype(np.bool_ if i in op.bool_inputs else dtype)))
        xs += inputs(op.name, shapes, dtype, rng, {})
        spans.append((op, start, len(avals)))
        labels.append(f"{op.name}{list(shapes)}")

    def body(fe, vals):
        return tuple(fe.bind1(op.name, *vals[a:b]) for op, a, b in spans)

    prog = trace(body, avals, f"elementwise_{dtype}", [f"x{i}" for i in range(len(avals))])
    return prog, xs, labels


def vjp_of(prog: Program) -> Program:
    """The reverse-mode program of ``prog`` w.r.t. its float arguments (those whose leaves are
    all floats), with one cotangent per output."""
    wrt = [
        pos
        for pos, (lo, hi, _) in enumerate(arg_leaf_ranges(prog))
        if all(v.dtype.kind == "f" for v in prog.invars[lo:hi])
    ]
    return grad_program(prog, wrt, [], sens_param=True)
