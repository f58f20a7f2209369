"""Forward (tangent) mode: a program ``f`` becomes a program computing ``f``'s value and the
Jacobian-vector product ``J·v`` in one sweep, primal and tangent equations interleaved.

The contract mirrors reverse mode's: a program, the input leaves to differentiate and their
tangents (inputs of the derived program), nothing else; how an API structures them is decided
above this module (:mod:`s2s_ad.derivatives`).

Tangents are propagated per variable; an absent tangent is a symbolic zero and is never
materialised. Elementwise rules are ``sum_i (d op / d x_i) · t_i`` with the partial derivatives
SymPy derives from each op's scalar formula (the same partials reverse mode uses); structural
ops use the ``jvp`` rule of their op-table entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..clusters import MAX_TREE, cluster_expressions, elementwise_units, expression_size
from ..errors import S2SError
from ..ir import Atom, Builder, Eqn, Lit, Program, Var, fresh_inputs, substitute
from ..lazy import lazy_module
from ..primitives import broadcast_to, cast_to, drop_distributions, fill, get_op
from ..symbolic import to_ir
from .common import derived_program, partials_at

sp = lazy_module("sympy")  # imported when a formula is first differentiated or simplified


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
    env: dict[Var, Atom],
    tangents: dict[Var, Atom],
    outs: list[Atom] | None = None,
    names: Mapping[Var, str] | None = None,
) -> None:
    """Append copies of ``eqns`` to ``b`` (``env`` maps old variables to new atoms), each unit
    followed by its tangent equations; ``tangents`` maps new variables to their tangents and is
    extended. A convex cluster of elementwise equations is one unit: SymPy differentiates its
    expression as a whole (tangents are made for the variables used outside it, or in
    ``outs``). Copies are named like their originals (by ``names``, the source program's
    table, else their hints); the tangent equations of an adjoint equation are adjoint ones."""
    names = names or {}
    adjoint = b.adjoint
    units = elementwise_units(eqns)
    used_outside = {a for a in outs or [] if isinstance(a, Var)}
    producer = {o: k for k, unit in enumerate(units) for e in unit for o in e.outs}
    for k, unit in enumerate(units):
        for e in unit:
            used_outside.update(a for a in e.ins if isinstance(a, Var) and producer.get(a, k) != k)
    for unit in units:
        copies = []
        for e in unit:
            ins = [substitute(env, a) for a in e.ins]
            new_outs = [Var(o.aval, names.get(o) or o.hint) for o in e.outs]
            copies.append(replace(e, ins=ins, outs=new_outs))
            env.update(zip(e.outs, new_outs))
        b.eqns.extend(copies)
        # the tangents of an adjoint sweep's equations (a derivative of a gradient) belong to it
        b.adjoint = adjoint or any(e.adjoint for e in unit)
        needed = [env[o] for e in unit for o in e.outs if o in used_outside]
        if len(unit) > 1 and expression_size(copies, needed) <= MAX_TREE:
            results = cluster_jvp(b, copies, needed, tangents)
        else:
            results = []
            for ne in copies:
                ts = [tangents.get(a) if isinstance(a, Var) else None for a in ne.ins]
                if all(t is None for t in ts):
                    continue
                b.loc = ne.loc
                for o, t in zip(ne.outs, jvp_rule(ne.op)(b, ne, ts)):
                    if t is not None:
                        # each equation's tangent feeds the next one in the unit
                        t = cast_to(b, t, o.dtype)
                        tangents[o] = t
                    results.append((o, t))
        for o, t in results:
            if t is None:
                continue
            t = cast_to(b, t, o.dtype)
            name = b.name_of(o)
            if isinstance(t, Var) and b.name_of(t) is None and name is not None:
                b.names[t] = f"{name}_dot"
            tangents[o] = t
    b.loc = None
    b.adjoint = adjoint


def cluster_jvp(
    b: Builder, members: list[Eqn], needed: list[Var], tangents: dict[Var, Atom]
) -> list[tuple[Var, Atom | None]]:
    """Tangents of the ``needed`` variables of a convex elementwise cluster: ``Σ_i ∂E/∂s_i · t_i``
    over the cluster inputs ``s_i`` that have a tangent, differentiated by SymPy as a whole."""
    if not needed:
        return []
    ce = cluster_expressions(members)
    expr_of, inputs, syms = ce.expr_of, ce.inputs, ce.symbols
    with_t = [(v, s) for v, s in zip(inputs, syms) if v in tangents]
    if not with_t:
        return []
    t_syms = _tangent_symbols(len(with_t))
    exprs = []
    for o in needed:
        t = sum((sp.diff(expr_of[o], s) * ts for (_, s), ts in zip(with_t, t_syms)), sp.Integer(0))
        exprs.append(drop_distributions(t))
    env: dict[sp.Symbol, Atom] = dict(zip(syms, inputs))
    env.update(zip(t_syms, (tangents[v] for v, _ in with_t)))
    b.loc = members[-1].loc
    res: list[tuple[Var, Atom | None]] = []
    for o, t in zip(needed, to_ir(b, exprs, env, needed[0].dtype)):
        if isinstance(t, Lit):
            res.append((o, None if t.value == 0 else fill(b, o.shape, t.value, o.dtype)))
            continue
        res.append((o, broadcast_to(b, cast_to(b, t, o.dtype), o.shape)))
    return res


def jvp_program(prog: Program, wrt: Sequence[int], name: str | None = None) -> Program:
    """The forward-mode program of ``prog``: the Jacobian-vector product with respect to the
    input leaves ``wrt`` (positions in ``prog.invars``: argument leaves, then parameters, then
    constants).

    It takes ``prog``'s arguments followed by one tangent per ``wrt`` leaf (each an argument
    of its own, named after the input with ``_dot``), then ``prog``'s parameters and
    constants; it returns ``(value, tangent)``, each structured like ``prog``'s output. Inputs
    outside ``wrt`` have zero tangent.
    """
    b = Builder()
    new_in, env = fresh_inputs(prog)
    tangents: dict[Var, Atom] = {}
    tan_vars: list[Var] = []
    for i in wrt:
        a = new_in[i]
        t = Var(a.aval, f"{a.hint}_dot" if a.hint else None)
        tan_vars.append(t)
        tangents[a] = t
    forward(b, prog.eqns, env, tangents, prog.outs, prog.names)

    outs = [substitute(env, o) for o in prog.outs]
    touts = []
    for o in outs:
        t = tangents.get(o) if isinstance(o, Var) else None
        touts.append(fill(b, o.shape, 0, o.dtype) if t is None else t)
    arg_names = [*prog.arg_names, *(t.hint or f"t{k}" for k, t in enumerate(tan_vars))]
    in_tree = ("tuple", (*prog.in_tree[1], *(None,) * len(tan_vars)))
    out_tree = ("tuple", (prog.out_tree, prog.out_tree))
    args = new_in[: prog.n_args]
    return derived_program(
        prog, b, name or f"jvp_{prog.name}", args + tan_vars, new_in, in_tree, outs + touts, out_tree, arg_names
    )
