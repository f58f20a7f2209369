"""What forward and reverse mode share: an equation's partial derivatives at its literal
inputs, and the assembly of a derived program around a copy of its source program."""

from __future__ import annotations

from typing import Any

import sympy as sp

from ..ir import Atom, Builder, Eqn, Lit, Program, Var
from ..primitives import get_op
from ..symbolic import lit_to_sympy


def partials_at(eqn: Eqn) -> tuple[sp.Expr, ...]:
    """The op's SymPy partial derivatives with literal inputs substituted, so that SymPy
    simplifies them for the case at hand (``x**2`` gives ``2*x``, not ``x**2*2/x``)."""
    op = get_op(eqn.op)
    lits = {s: lit_to_sympy(a) for s, a in zip(op.symbols, eqn.ins) if isinstance(a, Lit)}
    return tuple(p.subs(lits) for p in op.partials) if lits else op.partials


def derived_program(
    prog: Program,
    b: Builder,
    name: str,
    arg_vars: list[Var],
    new_in: list[Var],
    in_tree: Any,
    outs: list[Atom],
    out_tree: Any,
    arg_names: list[str],
) -> Program:
    """A program built in ``b`` from ``prog``: new argument variables, then ``prog``'s
    parameters and constants (``new_in`` are the copies of ``prog``'s inputs, from
    :func:`s2s_ad.ir.copy_program`)."""
    return Program(
        name=name,
        invars=arg_vars + new_in[prog.n_args :],
        n_args=len(arg_vars),
        in_tree=in_tree,
        parameters=list(prog.parameters),
        consts=list(prog.consts),
        eqns=b.eqns,
        outs=outs,
        out_tree=out_tree,
        arg_names=arg_names,
        names=dict(b.names),
    )


# ----------------------------------------------------------------------------- regions
def is_float(a: Atom) -> bool:
    """Whether ``a`` can carry a derivative (integer and bool values have none)."""
    return a.dtype.kind == "f"


def rearranged(prog: Program, invars: list[Var], outs: list[Atom]) -> Program:
    """``prog`` (a closed sub-program of a region) with its inputs and outputs listed anew:
    ``invars`` a permutation of (or superset of) its inputs, ``outs`` some of its values."""
    return prog.replace(
        invars=list(invars),
        n_args=len(invars),
        in_tree=("tuple", (None,) * len(invars)),
        arg_names=[prog.name_of(v) or f"a{k}" for k, v in enumerate(invars)],
        outs=list(outs),
        out_tree=("tuple", (None,) * len(outs)),
    )


def dependent_outputs(prog: Program, active: set[int]) -> set[int]:
    """The positions of ``prog``'s outputs that depend on its inputs at positions ``active``
    (through any equation but ``stop_gradient``; a nested region's outputs all depend on
    each of its inputs)."""
    live = {prog.invars[k] for k in active}
    for e in prog.eqns:
        if e.op != "stop_gradient" and any(isinstance(a, Var) and a in live for a in e.ins):
            live.update(e.outs)
    return {k for k, o in enumerate(prog.outs) if isinstance(o, Var) and o in live}


def active_carry(body: Program, first: int, active_in: set[int], carry_init: set[int], n_carry: int) -> set[int]:
    """The loop-carried values (indices into the carry) that carry a derivative: those whose
    initial value does, and those that come to depend on a derivative-carrying input of the body
    (``active_in``: body input positions; the carry is at body inputs ``first...`` and body
    outputs ``0..n_carry-1``), to a fixed point. Integer and bool values never do."""
    carry = {k for k in carry_init if is_float(body.invars[first + k])}
    while True:
        dep = dependent_outputs(body, active_in | {first + k for k in carry})
        more = carry | {k for k in range(n_carry) if k in dep and is_float(body.outs[k])}
        if more == carry:
            return carry
        carry = more
