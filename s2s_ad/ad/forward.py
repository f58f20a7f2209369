"""Forward (tangent) mode: a program ``f`` becomes a program computing ``f``'s value and the
Jacobian-vector product ``J·v`` in one sweep, primal and tangent equations interleaved.

Tangents are propagated per variable; an absent tangent is a symbolic zero and is never
materialised. Elementwise rules are ``sum_i (d op / d x_i) · t_i`` with the partial derivatives
SymPy derives from each op's scalar formula (the same partials reverse mode uses); structural
ops use the ``jvp`` rule of their op-table entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import sympy as sp

from ..clusters import MAX_TREE, cluster_expressions, elementwise_units, expression_size
from ..errors import S2SError
from ..ir import Atom, Builder, Eqn, Lit, Program, Var
from ..ops.table import broadcast_to, cast_to, drop_distributions, fill, get_op
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


def forward(
    b: Builder,
    eqns: list[Eqn],
    env: dict[int, Atom],
    tangents: dict[int, Atom],
    outs: list[Atom] | None = None,
    names: Mapping[Var, str] | None = None,
) -> None:
    """Append copies of ``eqns`` to ``b`` (``env`` maps old var ids to new atoms), each unit
    followed by its tangent equations; ``tangents`` maps new var ids to their tangents and is
    extended. A convex cluster of elementwise equations is one unit: SymPy differentiates its
    expression as a whole (tangents are made for the variables used outside it, or in
    ``outs``). Copies are named like their originals (by ``names``, the source program's
    table, else their hints); the tangent equations of an adjoint equation are adjoint ones."""
    names = names or {}
    adjoint = b.adjoint
    units = elementwise_units(eqns)
    unit_of = {id(e): k for k, unit in enumerate(units) for e in unit}
    used_outside = {id(a) for a in outs or [] if isinstance(a, Var)}
    producer = {id(o): unit_of[id(e)] for e in eqns for o in e.outs}
    for e in eqns:
        for a in e.ins:
            if isinstance(a, Var) and producer.get(id(a), unit_of[id(e)]) != unit_of[id(e)]:
                used_outside.add(id(a))
    for unit in units:
        copies = []
        for e in unit:
            ins = [a if isinstance(a, Lit) else env[id(a)] for a in e.ins]
            new_outs = [Var(o.aval, names.get(o) or o.hint) for o in e.outs]
            copies.append(replace(e, ins=ins, outs=new_outs))
            for o, n in zip(e.outs, new_outs):
                env[id(o)] = n
        b.eqns.extend(copies)
        # the tangents of an adjoint sweep's equations (a derivative of a gradient) belong to it
        b.adjoint = adjoint or any(e.adjoint for e in unit)
        needed = [env[id(o)] for e in unit for o in e.outs if id(o) in used_outside]
        if len(unit) > 1 and expression_size(copies, needed) <= MAX_TREE:
            results = cluster_jvp(b, copies, needed, tangents)
        else:
            results = []
            for ne in copies:
                ts = [tangents.get(id(a)) if isinstance(a, Var) else None for a in ne.ins]
                if all(t is None for t in ts):
                    continue
                b.loc = ne.loc
                for o, t in zip(ne.outs, jvp_rule(ne.op)(b, ne, ts)):
                    if t is not None:
                        # each equation's tangent feeds the next one in the unit
                        t = cast_to(b, t, o.dtype)
                        tangents[id(o)] = t
                    results.append((o, t))
        for o, t in results:
            if t is None:
                continue
            t = cast_to(b, t, o.dtype)
            name = b.name_of(o)
            if isinstance(t, Var) and b.name_of(t) is None and name is not None:
                b.names[t] = f"{name}_dot"
            tangents[id(o)] = t
    b.loc = None
    b.adjoint = adjoint


def cluster_jvp(
    b: Builder, members: list[Eqn], needed: list[Var], tangents: dict[int, Atom]
) -> list[tuple[Var, Atom | None]]:
    """Tangents of the ``needed`` variables of a convex elementwise cluster: ``Σ_i ∂E/∂s_i · t_i``
    over the cluster inputs ``s_i`` that have a tangent, differentiated by SymPy as a whole."""
    if not needed:
        return []
    ce = cluster_expressions(members)
    expr_of, inputs, syms = ce.expr_of, ce.inputs, ce.symbols
    with_t = [(v, s) for v, s in zip(inputs, syms) if id(v) in tangents]
    if not with_t:
        return []
    t_syms = _tangent_symbols(len(with_t))
    exprs = []
    for o in needed:
        t = sum((sp.diff(expr_of[o], s) * ts for (_, s), ts in zip(with_t, t_syms)), sp.Integer(0))
        exprs.append(drop_distributions(t))
    env: dict[sp.Symbol, Atom] = dict(zip(syms, inputs))
    env.update(zip(t_syms, (tangents[id(v)] for v, _ in with_t)))
    b.loc = members[-1].loc
    res: list[tuple[Var, Atom | None]] = []
    for o, t in zip(needed, to_ir(b, exprs, env, needed[0].dtype)):
        if isinstance(t, Lit):
            res.append((o, None if t.value == 0 else fill(b, o.shape, t.value, o.dtype)))
            continue
        res.append((o, broadcast_to(b, cast_to(b, t, o.dtype), o.shape)))
    return res


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
    forward(b, prog.eqns, env, tangents, prog.outs, prog.names)

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
