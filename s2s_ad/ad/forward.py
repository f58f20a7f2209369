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

import sympy as sp

from ..clusters import MAX_TREE, cluster_expressions, elementwise_units, expression_size
from ..errors import S2SError
from ..ir import Atom, Builder, Eqn, Lit, Program, Var, fresh_inputs, substitute
from ..primitives import broadcast_to, cast_to, drop_distributions, fill, get_op
from ..regions import bind_loop, is_region, loop_layout, while_layout
from ..symbolic import to_ir
from .common import active_carry, dependent_outputs, derived_program, is_float, partials_at, rearranged


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
        if len(unit) == 1 and is_region(unit[0]):
            _forward_region(b, unit[0], env, tangents, names)
            continue
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


def _forward_region(
    b: Builder, e: Eqn, env: dict[Var, Atom], tangents: dict[Var, Atom], names: Mapping[Var, str]
) -> None:
    """A region, copied: one region computing its values and (where an input has one) the
    tangents of its outputs."""
    ins = [substitute(env, a) for a in e.ins]
    ts = [tangents.get(a) if isinstance(a, Var) else None for a in ins]
    b.loc = e.loc
    if all(t is None for t in ts):
        new_outs = [Var(o.aval, names.get(o) or o.hint) for o in e.outs]
        b.eqns.append(replace(e, ins=ins, outs=new_outs))
        env.update(zip(e.outs, new_outs))
        b.loc = None
        return
    adjoint = b.adjoint
    b.adjoint = adjoint or e.adjoint
    vals, tans = region_jvp(b, replace(e, ins=ins), ts)
    b.eqns[-1].primal = e.primal
    for o, v, t in zip(e.outs, vals, tans):
        env[o] = v
        name = names.get(o) or o.hint
        if name is not None:
            b.names[v] = name
        if t is not None:
            tangents[v] = t
            if name is not None and isinstance(t, Var):
                b.names[t] = f"{name}_dot"
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


# ----------------------------------------------------------------------------- regions
# A region is differentiated as a whole: ONE region of the same kind computes the values and
# the tangents, its sub-programs replaced by their forward-mode programs (jvp_program of each:
# the values and tangents of the sub-program's inputs in, of its outputs out). Tangents are
# carried values of loops; integer and bool values (a loop variable, a trip count) have none.


def _sub_jvp(prog: Program, active: list[int], tan_out: list[int]) -> tuple[Program, list[Var], list[Atom]]:
    """The forward-mode program of the sub-program ``prog`` with respect to its inputs at
    positions ``active``: (that program, the tangent input of each active position, the
    tangent output of each position in ``tan_out``); its inputs begin with ``prog``'s own
    (renamed) and its outputs with ``prog``'s."""
    p = jvp_program(prog, active, name=prog.name)
    n_in, n_out = len(prog.invars), len(prog.outs)
    return p, p.invars[n_in:], [p.outs[n_out + j] for j in tan_out]


def _pieces(seq: Sequence, sizes: Sequence[int]) -> list[list]:
    out, k = [], 0
    for n in sizes:
        out.append(list(seq[k : k + n]))
        k += n
    return out


def _region_extra(e: Eqn, standard: tuple[str, ...]) -> dict:
    return {k: v for k, v in e.params.items() if k not in standard}


def region_jvp(b: Builder, e: Eqn, ts: list[Atom | None]) -> tuple[list[Var], list[Atom | None]]:
    """Bind the forward-mode region of region ``e`` (its inputs in ``b``'s namespace; ``ts``
    their tangents): return its value outputs (one per output of ``e``) and the tangent of
    each (``None``: a symbolic zero)."""
    ts = [t if t is not None and is_float(a) else None for a, t in zip(e.ins, ts)]
    return {"cond": _cond_jvp, "loop": _loop_jvp, "while": _while_jvp}[e.op](b, e, ts)


def _cond_jvp(b: Builder, e: Eqn, ts: list[Atom | None]) -> tuple[list[Var], list[Atom | None]]:
    pred, ops = e.ins[0], e.ins[1:]
    active = [k for k, t in enumerate(ts[1:]) if t is not None]
    branches = e.params["branches"]
    dep: set[int] = set()
    for br in branches:
        dep |= dependent_outputs(br, set(active))
    tan_out = [j for j in sorted(dep) if is_float(branches[0].outs[j])]
    new = []
    for br in branches:
        p, tin, tout = _sub_jvp(br, active, tan_out)
        new.append(rearranged(p, p.invars, p.outs[: len(br.outs)] + tout))
    outs = b.bind("cond", [pred, *ops, *(ts[1 + k] for k in active)], branches=tuple(new))
    n = len(e.outs)
    tans: list[Atom | None] = [None] * n
    for j, t in zip(tan_out, outs[n:]):
        tans[j] = t
    return outs[:n], tans


def _loop_jvp(b: Builder, e: Eqn, ts: list[Atom | None]) -> tuple[list[Var], list[Atom | None]]:
    p = e.params
    body: Program = p["body"]
    lead, nc, nx, ncarry = loop_layout(p)
    n_ys = p["n_ys"]
    consts, xs, carry = _pieces(e.ins[lead:], (nc, nx, ncarry))
    tc, tx, tcarry = _pieces(ts[lead:], (nc, nx, ncarry))
    act_c = [k for k in range(nc) if tc[k] is not None]
    act_x = [k for k in range(nx) if tx[k] is not None]
    fixed = {1 + k for k in act_c} | {1 + nc + k for k in act_x}
    first = 1 + nc + nx
    act_carry = sorted(active_carry(body, first, fixed, {k for k in range(ncarry) if tcarry[k] is not None}, ncarry))
    dep = dependent_outputs(body, fixed | {first + k for k in act_carry})
    act_y = [j for j in range(n_ys) if ncarry + j in dep and is_float(body.outs[ncarry + j])]
    active = [1 + k for k in act_c] + [1 + nc + k for k in act_x] + [first + k for k in act_carry]
    jb, tin, tout = _sub_jvp(body, active, act_carry + [ncarry + j for j in act_y])
    t_c, t_x, t_carry = _pieces(tin, (len(act_c), len(act_x), len(act_carry)))
    bi = jb.invars
    invars = [bi[0], *bi[1 : 1 + nc], *t_c, *bi[1 + nc : first], *t_x, *bi[first : first + ncarry], *t_carry]
    outs = [*jb.outs[:ncarry], *tout[: len(act_carry)], *jb.outs[ncarry : ncarry + n_ys], *tout[len(act_carry) :]]
    new_body = rearranged(jb, invars, outs)
    carry_t = [tcarry[k] if tcarry[k] is not None else fill(b, carry[k].shape, 0, carry[k].dtype) for k in act_carry]
    extra = _region_extra(e, ("body", "n_consts", "n_xs", "n_ys", "length", "start", "step", "reverse"))
    res = bind_loop(
        b,
        new_body,
        [*consts, *(tc[k] for k in act_c)],
        [*xs, *(tx[k] for k in act_x)],
        [*carry, *carry_t],
        e.ins[0] if lead else p["length"],
        n_ys=n_ys + len(act_y),
        start=p["start"],
        step=p["step"],
        reverse=p["reverse"],
        **extra,
    )
    na = len(act_carry)
    vals = res[:ncarry] + res[ncarry + na : ncarry + na + n_ys]
    tans: list[Atom | None] = [None] * len(e.outs)
    for k, t in zip(act_carry, res[ncarry : ncarry + na]):
        tans[k] = t
    for j, t in zip(act_y, res[ncarry + na + n_ys :]):
        tans[ncarry + j] = t
    return vals, tans


def _while_jvp(b: Builder, e: Eqn, ts: list[Atom | None]) -> tuple[list[Var], list[Atom | None]]:
    p = e.params
    cond: Program = p["cond"]
    body: Program = p["body"]
    nc, ncarry = while_layout(p)
    n_ys = p["n_ys"]
    consts, carry = _pieces(e.ins, (nc, ncarry))
    tc, tcarry = _pieces(ts, (nc, ncarry))
    act_c = [k for k in range(nc) if tc[k] is not None]
    fixed = set(act_c)
    act_carry = sorted(active_carry(body, nc, fixed, {k for k in range(ncarry) if tcarry[k] is not None}, ncarry))
    dep = dependent_outputs(body, fixed | {nc + k for k in act_carry})
    act_y = [j for j in range(n_ys) if ncarry + j in dep and is_float(body.outs[ncarry + j])]
    active = act_c + [nc + k for k in act_carry]
    jb, tin, tout = _sub_jvp(body, active, act_carry + [ncarry + j for j in act_y])
    t_c, t_carry = _pieces(tin, (len(act_c), len(act_carry)))
    bi = jb.invars
    new_body = rearranged(
        jb,
        [*bi[:nc], *t_c, *bi[nc : nc + ncarry], *t_carry],
        [*jb.outs[:ncarry], *tout[: len(act_carry)], *jb.outs[ncarry : ncarry + n_ys], *tout[len(act_carry) :]],
    )
    # the condition sees the values only: it takes the tangents and ignores them
    ci = cond.invars
    ignored_c = [Var(ci[k].aval, "_") for k in act_c]
    ignored_carry = [Var(ci[nc + k].aval, "_") for k in act_carry]
    new_cond = rearranged(cond, [*ci[:nc], *ignored_c, *ci[nc:], *ignored_carry], cond.outs)
    carry_t = [tcarry[k] if tcarry[k] is not None else fill(b, carry[k].shape, 0, carry[k].dtype) for k in act_carry]
    extra = _region_extra(e, ("cond", "body", "n_consts", "n_ys"))
    res = b.bind(
        "while",
        [*consts, *(tc[k] for k in act_c), *carry, *carry_t],
        cond=new_cond,
        body=new_body,
        n_consts=nc + len(act_c),
        n_ys=n_ys + len(act_y),
        **extra,
    )
    na = len(act_carry)
    vals = res[:ncarry] + res[ncarry + na : ncarry + na + 1 + n_ys]
    tans: list[Atom | None] = [None] * len(e.outs)
    for k, t in zip(act_carry, res[ncarry : ncarry + na]):
        tans[k] = t
    for j, t in zip(act_y, res[ncarry + na + 1 + n_ys :]):
        tans[ncarry + 1 + j] = t
    return vals, tans
