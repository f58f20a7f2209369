"""What forward and reverse mode share: an equation's partial derivatives at its literal
inputs, and the assembly of a derived program around a copy of its source program."""

from __future__ import annotations

from typing import Any

from ..ir import Atom, Builder, Eqn, Lit, Program, Var
from ..lazy import lazy_module
from ..primitives import get_op
from ..symbolic import lit_to_sympy

sp = lazy_module("sympy")  # imported when a formula is first differentiated or simplified


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
