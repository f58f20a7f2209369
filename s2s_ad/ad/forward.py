"""Forward (tangent) mode: a program ``f`` becomes a program computing ``f``'s value and the
Jacobian-vector product ``J·v`` in one sweep, primal and tangent equations interleaved.

Tangents are propagated per variable; an absent tangent is a symbolic zero and is never
materialised. Elementwise rules are ``sum_i (d op / d x_i) · t_i`` with the partial derivatives
SymPy derives from each op's scalar formula (the same partials reverse mode uses); structural
ops use the ``jvp`` rule of their op-table entry.
"""

from __future__ import annotations

import sympy as sp

from ..errors import S2SError
from ..ir import Atom, Builder, Eqn, Lit, Program, Var
from ..ops.table import broadcast_to, cast_to, fill, get_op
from ..symbolic import to_ir
from .reverse import arg_leaf_ranges, derived_program, fresh_inputs, partials_at


def _tangent_symbols(n: int) -> tuple[sp.Symbol, ...]:
    return tuple(sp.Symbol(f"t{i}", real=True) for i in range(n))


def elementwise_jvp(b: Builder, eqn: Eqn, tangents: list[Atom | None]) -> list[Atom | None]:
    op = get_op(eqn.op)
    out = eqn.outs[0]
    tsyms = _tangent_symbols(op.nin)
    env: dict[sp.Symbol, Atom] = dict(zip(op.symbols, eqn.ins))
    partials = partials_at(eqn)
    expr = sp.Integer(0)
    for i, t in enumerate(tangents):
        if t is not None and partials[i] != 0:
            env[tsyms[i]] = t
            expr += partials[i] * tsyms[i]
    if expr == 0:
        return [None]
    (t,) = to_ir(b, [expr], env, out.dtype)
    if isinstance(t, Lit):
        return [fill(b, out.shape, t.value, out.dtype)]
    return [broadcast_to(b, cast_to(b, t, out.dtype), out.shape)]


def jvp_rule(op_name: str):
    op = get_op(op_name)
    if op.kind == "elementwise":
        return elementwise_jvp
    if op.jvp is None:
        raise S2SError(f"{op.display} has no forward-mode rule")
    return op.jvp


def forward(b: Builder, eqns: list[Eqn], env: dict[int, Atom], tangents: dict[int, Atom]) -> None:
    """Append copies of ``eqns`` to ``b`` (``env`` maps old var ids to new atoms), each followed
    by its tangent equations; ``tangents`` maps new var ids to their tangents and is extended."""
    for e in eqns:
        ins = [a if isinstance(a, Lit) else env[id(a)] for a in e.ins]
        outs = [Var(o.aval, o.hint) for o in e.outs]
        ne = Eqn(e.op, ins, outs, e.params, e.loc)
        b.eqns.append(ne)
        for o, n in zip(e.outs, outs):
            env[id(o)] = n
        ts = [tangents.get(id(a)) if isinstance(a, Var) else None for a in ins]
        if all(t is None for t in ts):
            continue
        b.loc = e.loc
        for o, t in zip(outs, jvp_rule(e.op)(b, ne, ts)):
            if t is None:
                continue
            t = cast_to(b, t, o.dtype)
            if isinstance(t, Var) and t.hint is None and o.hint is not None:
                t.hint = f"{o.hint}_dot"
            tangents[id(o)] = t
    b.loc = None


def jvp_program(prog: Program, wrt_args: list[int], name: str | None = None) -> Program:
    """The forward-mode program of ``prog``.

    It takes ``prog``'s arguments followed by one tangent per argument position in
    ``wrt_args`` (structured like that argument), and returns ``(value, tangent)``, each
    structured like ``prog``'s output. Arguments outside ``wrt_args`` have zero tangent.
    """
    b = Builder()
    new_in, env = fresh_inputs(prog)
    n_args = prog.n_args
    args = new_in[:n_args]
    ranges = arg_leaf_ranges(prog)
    tangents: dict[int, Atom] = {}
    tan_vars: list[Var] = []
    for pos in wrt_args:
        lo, hi, _ = ranges[pos]
        for a in args[lo:hi]:
            t = Var(a.aval, f"{a.hint}_dot" if a.hint else None)
            tan_vars.append(t)
            tangents[id(a)] = t
    forward(b, prog.eqns, env, tangents)

    outs = [o if isinstance(o, Lit) else env[id(o)] for o in prog.outs]
    touts = []
    for o in outs:
        t = tangents.get(id(o)) if isinstance(o, Var) else None
        touts.append(fill(b, o.shape, 0, o.dtype) if t is None else t)
    arg_names = list(prog.arg_names) + [f"{prog.arg_names[p]}_dot" for p in wrt_args]
    in_tree = ("tuple", tuple(prog.in_tree[1]) + tuple(ranges[p][2] for p in wrt_args))
    out_tree = ("tuple", (prog.out_tree, prog.out_tree))
    return derived_program(
        prog, b, name or f"jvp_{prog.name}", args + tan_vars, new_in, in_tree, outs + touts, out_tree, arg_names
    )
