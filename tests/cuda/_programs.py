"""Programs and inputs shared by the CUDA tests."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from s2s_ad.derivatives import grad_program
from s2s_ad.ir import Aval, Program
from s2s_ad.ops.table import ELEMENTWISE
from s2s_ad.trace import trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from _harness import inputs  # noqa: E402


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
        xs += inputs(op.name, shapes, dtype, rng)
        spans.append((op, start, len(avals)))
        labels.append(f"{op.name}{list(shapes)}")

    def body(fe, vals):
        return tuple(fe.bind1(op.name, *vals[a:b]) for op, a, b in spans)

    prog = trace(body, avals, f"elementwise_{dtype}", [f"x{i}" for i in range(len(avals))])
    return prog, xs, labels


def vjp_of(prog: Program) -> Program:
    """The reverse-mode program of ``prog`` w.r.t. its float inputs, with one cotangent per output."""
    wrt = [i for i, v in enumerate(prog.arg_vars) if v.dtype.kind == "f"]
    return grad_program(prog, wrt, [], sens_param=True)
