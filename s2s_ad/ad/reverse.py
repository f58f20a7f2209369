"""Reverse (adjoint) mode: a program ``f`` becomes a program computing ``f``'s value and the
vector-Jacobian product ``wᵀ·J`` for chosen input leaves, given the output cotangents ``w``.

The contract is JAX's ``backward_pass``: a program, the variables to differentiate and the
seeds (output cotangents), nothing else. :func:`backward` works on equations already in a
builder; :func:`vjp_program` is the same on a whole program, with the seeds as inputs. How an
API seeds the outputs (ones, a user's sens, only the first output with ``has_aux``) and which
inputs are Parameters is decided above this module (:mod:`s2s_ad.derivatives`).

Cotangents are accumulated per variable over fan-out, summed back to the variable's shape and
dtype in one place (``accumulate``); an absent cotangent is a symbolic zero and is never
materialised. Elementwise rules come from SymPy partial derivatives of each op's scalar
formula; structural ops use the ``vjp`` rule of their op-table entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import sympy as sp

from ..clusters import MAX_TREE, cluster_vjp, elementwise_units, expression_size
from ..errors import S2SError
from ..ir import Atom, Aval, Builder, Eqn, Lit, Program, Var, copy_eqns, copy_program, substitute
from ..primitives import broadcast_shapes, broadcast_to, cast_to, fill, get_op, sum_to
from ..regions import INT, bind_loop, bind_while, loop_layout, subprogram, while_layout
from ..symbolic import to_ir
from .common import active_carry, derived_program, is_float, partials_at, rearranged

_CT = sp.Symbol("ct", real=True)


def elementwise_vjp(b: Builder, eqn: Eqn, cts: list[Atom | None], active: list[bool]) -> list[Atom | None]:
    op = get_op(eqn.op)
    (ct,) = cts
    out = eqn.outs[0]
    env: dict[sp.Symbol, Atom] = dict(zip(op.symbols, eqn.ins))
    env[_CT] = ct
    partials = partials_at(eqn)
    res: list[Atom | None] = []
    for i, x in enumerate(eqn.ins):
        p = partials[i]
        if not active[i] or p == 0 or x.dtype.kind == "b":
            res.append(None)
            continue
        (g,) = to_ir(b, [_CT * p], env, out.dtype)
        res.append(fill(b, x.shape, g.value, out.dtype) if isinstance(g, Lit) else g)
    return res


def vjp_rule(op_name: str):
    op = get_op(op_name)
    if op.kind == "elementwise":
        return elementwise_vjp
    if op.vjp is None:
        raise S2SError(f"{op.display} has no reverse-mode rule")
    return op.vjp


def backward(
    b: Builder,
    eqns: list[Eqn],
    outs: list[Atom],
    seeds: list[Atom | None],
    wrt: list[Var],
) -> list[Atom]:
    """Emit the adjoint sweep of ``eqns`` (already in ``b``'s namespace) seeded with
    ``seeds`` for ``outs`` (``None``: no cotangent for that output); return the cotangent of
    each ``wrt`` variable (zeros where the variable does not reach a seeded output).

    A rule may return a cotangent of an input's broadcast shape (an elementwise op's operand
    is broadcast to its output's shape): it is summed back to the input's shape, and cast to
    its dtype, where cotangents accumulate, and nowhere else."""
    eqns = expand_checkpoints(b, eqns)
    active = set(wrt)
    for e in eqns:
        if e.op != "stop_gradient" and any(isinstance(a, Var) and a in active for a in e.ins):
            active.update(e.outs)

    cts: dict[Var, Atom] = {}
    named: set[Var] = set()  # the cotangents this sweep named ``v_bar``

    def accumulate(v: Var, g: Atom) -> None:
        if g.shape != v.shape:
            g = sum_to(b, broadcast_to(b, g, broadcast_shapes("elementwise", [g.shape, v.shape])), v.shape)
        g = cast_to(b, g, v.dtype)
        prev = cts.get(v)
        if prev is not None:
            g = b.bind1("add", prev, g)
            if prev in named:  # the name moves to the sum: ``v_bar`` is v's whole cotangent
                named.discard(prev)
                del b.names[prev]
        cts[v] = g
        name = b.name_of(v)
        if isinstance(g, Var) and b.name_of(g) is None and name is not None and not name.endswith("_bar"):
            b.names[g] = f"{name}_bar"
            named.add(g)

    for o, s in zip(outs, seeds):
        if s is not None and isinstance(o, Var) and o in active:
            accumulate(o, s)

    # loops and while loops that derivatives flow through keep a tape of their carry (the
    # same equation, with more outputs); one whose adjoint is not needed is put back after
    tapes: dict[int, tuple[int, Eqn, list[Var]]] = {}
    where = {id(e): k for k, e in enumerate(b.eqns)}
    for e in eqns:
        if e.op in ("loop", "while") and any(isinstance(a, Var) and a in active for a in e.ins):
            taped, tape = tape_region(e)
            b.eqns[where[id(e)]] = taped
            tapes[id(e)] = (where[id(e)], e, tape)

    # The adjoint equations carry the line of the equation they are the adjoint of.
    adjoint, b.adjoint = b.adjoint, True
    for unit in reversed(elementwise_units(eqns)):
        if len(unit) > 1 and expression_size(unit, [o for e in unit for o in e.outs if o in cts]) <= MAX_TREE:
            for v, g in cluster_vjp(b, unit, cts.get, active.__contains__):
                accumulate(v, g)
            continue
        for e in reversed(unit):
            if not any(o in cts for o in e.outs):
                continue
            ins_active = [isinstance(a, Var) and a in active for a in e.ins]
            if not any(ins_active):
                continue
            b.loc = e.loc
            outct = [cts.get(o) for o in e.outs]
            if e.op == "cond":
                grads = _cond_vjp(b, e, outct, ins_active)
            elif id(e) in tapes:
                pos, _, tape = tapes.pop(id(e))
                grads = _loop_like_vjp(b, e, outct, ins_active, tape)
            else:
                grads = vjp_rule(e.op)(b, e, outct, ins_active)
            for a, g, act in zip(e.ins, grads, ins_active):
                if act and g is not None:
                    accumulate(a, g)
    for pos, e, _ in tapes.values():
        b.eqns[pos] = e
    b.loc = None
    b.adjoint = adjoint
    res = []
    for w in wrt:
        g = cts.get(w)
        res.append(fill(b, w.shape, 0, w.dtype) if g is None else cast_to(b, g, w.dtype))
    return res


def vjp_program(
    prog: Program, wrt: Sequence[int], seeded: Sequence[int] | None = None, name: str | None = None
) -> Program:
    """The reverse-mode program of ``prog``: the vector-Jacobian product with respect to the
    input leaves ``wrt`` (positions in ``prog.invars``: argument leaves, then parameters, then
    constants) for the output cotangents of the output leaves ``seeded`` (positions in
    ``prog.outs``; default all of them).

    It takes ``prog``'s arguments followed by one cotangent per seeded output (structured
    like ``prog``'s output when every output is seeded, else a flat tuple), then ``prog``'s
    parameters and constants; it returns ``(value, (cotangent of each wrt leaf, ...))``. An
    output that is not seeded has zero cotangent; a ``wrt`` leaf that reaches no seeded
    output gets zeros.
    """
    b = Builder()
    new_in, outs = copy_program(b, prog)
    seeded = range(len(outs)) if seeded is None else list(seeded)
    cts = [Var(outs[k].aval, "ct") for k in seeded]
    grads = backward(b, b.eqns[:], [outs[k] for k in seeded], list(cts), [new_in[i] for i in wrt])
    every = len(cts) == len(outs)
    ct_tree = prog.out_tree if every else ("tuple", (None,) * len(cts))
    in_tree = ("tuple", (*prog.in_tree[1], ct_tree))
    out_tree = ("tuple", (prog.out_tree, ("tuple", (None,) * len(grads))))
    args = new_in[: prog.n_args]
    names = [*prog.arg_names, "ct"]
    return derived_program(
        prog, b, name or f"vjp_{prog.name}", args + cts, new_in, in_tree, outs + grads, out_tree, names
    )


# ----------------------------------------------------------------------------- regions
# cond: the adjoint is a cond on the same predicate whose branches are the vjp programs of the
# branches (each recomputes its branch's forward values inside: simple, and nothing is kept).
# loop / while: before the adjoint sweep the region is replaced by one that also stacks the
# carried values at the start of each iteration (the tape: extra ys, preallocated for a loop,
# growing for a while); the adjoint is a loop running the other way over the tape, whose body
# is the vjp program of the body at the taped carry, seeded with the carry's cotangent and the
# iteration's ys cotangent; it carries the carry's cotangent and the consts' accumulated one,
# and stacks the cotangents of the xs. The adjoint of a while is a loop whose length is the
# while's trip count (a dynamic length): data-dependent trip counts are differentiated exactly.


def _sub_vjp(prog: Program, wrt: list[int], seeded: list[int]) -> tuple[Program, list[Var]]:
    """The reverse-mode program of the sub-program ``prog``: it takes ``prog``'s inputs, then a
    cotangent per output position in ``seeded``, and gives the cotangent of each input position
    in ``wrt``; also returns the cotangent inputs."""
    p = vjp_program(prog, wrt, seeded, name=prog.name)
    cts = p.invars[len(prog.invars) :]
    return rearranged(p, p.invars, p.outs[len(prog.outs) :]), cts


def _split(seq: Sequence, sizes: Sequence[int]) -> list[list]:
    out, k = [], 0
    for n in sizes:
        out.append(list(seq[k : k + n]))
        k += n
    return out


def tape_region(e: Eqn) -> tuple[Eqn, list[Var]]:
    """Loop or while ``e`` as one that also stacks its carry at the start of each iteration:
    the new equation (``e``'s outputs, then the tape) and the tape variables."""
    p = dict(e.params)
    body: Program = p["body"]
    if e.op == "loop":
        lead, nc, nx, ncarry = loop_layout(p)
        carry_in = body.invars[1 + nc + nx :]
    else:
        nc, ncarry = while_layout(p)
        carry_in = body.invars[nc:]
    p["body"] = rearranged(body, body.invars, [*body.outs, *carry_in])
    p["n_ys"] = p["n_ys"] + ncarry
    avals = get_op(e.op).abstract([a.aval for a in e.ins], p)
    tape = [Var(a, "tape") for a in avals[len(e.outs) :]]
    return Eqn(e.op, list(e.ins), [*e.outs, *tape], p, e.loc, e.primal, e.adjoint), tape


def _loop_like_vjp(
    b: Builder, e: Eqn, cts: list[Atom | None], active: list[bool], tape: list[Var]
) -> list[Atom | None]:
    """The adjoint of a loop or a while (see above)."""
    p = e.params
    body: Program = p["body"]
    n_ys = p["n_ys"]
    if e.op == "loop":
        lead, nc, nx, ncarry = loop_layout(p)
        first, y0 = 1 + nc + nx, ncarry
        length: Atom | int = e.ins[0] if lead else p["length"]
        start, step, rev = p["start"], p["step"], not p["reverse"]
    else:
        (nc, ncarry), lead, nx = while_layout(p), 0, 0
        first, y0 = nc, ncarry + 1
        length, start, step, rev = e.outs[ncarry], 0, 1, True
    c0 = 1 if e.op == "loop" else 0  # the first const among the body's inputs
    consts, xs, carry = _split(e.ins[lead:], (nc, nx, ncarry))
    act_c = [k for k in range(nc) if active[lead + k] and is_float(consts[k])]
    act_x = [k for k in range(nx) if active[lead + nc + k] and is_float(xs[k])]
    fixed = {c0 + k for k in act_c} | {c0 + nc + k for k in act_x}
    init = {k for k in range(ncarry) if active[lead + nc + nx + k]}
    act_carry = sorted(active_carry(body, first, fixed, init, ncarry))
    seeded_y = [j for j in range(n_ys) if cts[y0 + j] is not None and is_float(e.outs[y0 + j])]
    wrt = [c0 + k for k in act_c] + [c0 + nc + k for k in act_x] + [first + k for k in act_carry]
    vb, ct_in = _sub_vjp(body, wrt, act_carry + [ncarry + j for j in seeded_y])
    g_c, g_x, g_carry = _split(vb.outs, (len(act_c), len(act_x), len(act_carry)))

    # the adjoint body: (k, *consts, *tape_k, *x_k, *ct_y_k, *ct_carry, *acc) -> (*ct_carry, *acc, *ct_x_k)
    ab = Builder()
    ab.adjoint = True
    k_var = Var(Aval((), INT), "i")
    c_vars = [Var(v.aval, vb.name_of(v)) for v in vb.invars[c0 : c0 + nc]]
    t_vars = [Var(v.aval, vb.name_of(v)) for v in vb.invars[first : first + ncarry]]
    x_vars = [Var(v.aval, vb.name_of(v)) for v in vb.invars[c0 + nc : first]]
    cty_vars = [Var(v.aval, "ct_y") for v in ct_in[len(act_carry) :]]
    ctc_vars = [Var(v.aval, "ct_carry") for v in ct_in[: len(act_carry)]]
    acc_vars = [Var(consts[k].aval, "ct_const") for k in act_c]
    env: dict[Var, Atom] = dict(zip(vb.invars[first : first + ncarry], t_vars))
    env.update(zip(vb.invars[c0 : c0 + nc], c_vars))
    env.update(zip(vb.invars[c0 + nc : first], x_vars))
    env.update(zip(ct_in, [*ctc_vars, *cty_vars]))
    if e.op == "loop":
        env[vb.invars[0]] = k_var
    copy_eqns(ab, vb.eqns, env, vb.names)
    new_acc = [ab.bind1("add", a, substitute(env, g)) for a, g in zip(acc_vars, g_c)]
    adj_outs = [*(substitute(env, g) for g in g_carry), *new_acc, *(substitute(env, g) for g in g_x)]
    adj_body = subprogram(
        f"{body.name}_adjoint",
        [k_var, *c_vars, *t_vars, *x_vars, *cty_vars, *ctc_vars, *acc_vars],
        ab.eqns,
        adj_outs,
        ab.names,
    )
    ct_carry0 = [cts[k] if cts[k] is not None else fill(b, carry[k].shape, 0, carry[k].dtype) for k in act_carry]
    acc0 = [fill(b, consts[k].shape, 0, consts[k].dtype) for k in act_c]
    outs = bind_loop(
        b,
        adj_body,
        consts,
        [*tape, *xs, *(cts[y0 + j] for j in seeded_y)],
        [*ct_carry0, *acc0],
        length,
        n_ys=len(act_x),
        start=start,
        step=step,
        reverse=rev,
    )
    grads: list[Atom | None] = [None] * len(e.ins)
    na = len(act_carry)
    for k, g in zip(act_carry, outs[:na]):
        grads[lead + nc + nx + k] = g
    for k, g in zip(act_c, outs[na : na + len(act_c)]):
        grads[lead + k] = g
    for k, g in zip(act_x, outs[na + len(act_c) :]):
        grads[lead + nc + k] = g
    return grads


def _cond_vjp(b: Builder, e: Eqn, cts: list[Atom | None], active: list[bool]) -> list[Atom | None]:
    pred, ops = e.ins[0], e.ins[1:]
    wrt = [k for k, a in enumerate(ops) if active[1 + k] and is_float(a)]
    seeded = [j for j, c in enumerate(cts) if c is not None and is_float(e.outs[j])]
    if not wrt or not seeded:
        return [None] * len(e.ins)
    branches = tuple(_sub_vjp(br, wrt, seeded)[0] for br in e.params["branches"])
    outs = b.bind("cond", [pred, *ops, *(cts[j] for j in seeded)], branches=branches)
    grads: list[Atom | None] = [None] * len(e.ins)
    for k, g in zip(wrt, outs):
        grads[1 + k] = g
    return grads


# ----------------------------------------------------------------------------- checkpointing
def segmented(e: Eqn) -> list[Eqn] | None:
    """The equations of a loop with ``checkpoint=k`` (store every ``k``-th carry) written as a
    loop over segments of ``k`` iterations (each an inner loop) plus a loop over the remaining
    ``length % k`` iterations; ``e``'s outputs are theirs. Reverse mode then tapes the outer
    loop (the carry at the start of each segment: ``length // k`` values) and, inside the
    adjoint of a segment, the inner loop (``k`` values): each segment's forward is recomputed
    in the adjoint sweep. ``None`` where the loop is not checkpointed (or is a reverse or
    dynamic-length loop, which keep a full tape)."""
    p = e.params
    k = p.get("checkpoint")
    n = p["length"]
    if not k or n is None or p["reverse"] or k >= n:
        return None
    body: Program = p["body"]
    _, nc, nx, ncarry = loop_layout(p)
    n_ys, start, step = p["n_ys"], p["start"], p["step"]
    q, r = divmod(n, k)
    consts, xs, carry = _split(e.ins, (nc, nx, ncarry))
    sb = Builder()
    sb.loc, sb.primal = e.loc, e.primal

    # the inner loop's body: the original body at i = base + j * step
    j, base = Var(Aval((), INT), "j"), Var(Aval((), INT), "base")
    ib = Builder()
    inner_in = [Var(v.aval, body.name_of(v)) for v in body.invars[1:]]
    env: dict[Var, Atom] = dict(zip(body.invars[1:], inner_in))
    env[body.invars[0]] = ib.bind1("add", base, j)
    copy_eqns(ib, body.eqns, env, body.names)
    inner = subprogram(body.name, [j, base, *inner_in], ib.eqns, [substitute(env, o) for o in body.outs], ib.names)
    # the outer loop's body: one segment, an inner loop of k iterations
    ob = Builder()
    s_i = Var(Aval((), INT), "i")
    oc = [Var(a.aval, "c") for a in consts]
    ox = [Var(Aval((k, *a.shape[1:]), a.dtype), "xs") for a in xs]
    ocarry = [Var(a.aval, body.name_of(v)) for a, v in zip(carry, body.invars[1 + nc + nx :])]
    seg = bind_loop(ob, inner, [s_i, *oc], ox, ocarry, k, n_ys=n_ys, start=0, step=step)
    outer = subprogram(f"{body.name}_segment", [s_i, *oc, *ox, *ocarry], ob.eqns, seg)

    def rows(a: Atom, lo: int, hi: int) -> Atom:
        return sb.bind1("getitem", a, index=(("slice", lo, hi, None),))

    xs_main = [sb.bind1("reshape", rows(a, 0, q * k), shape=(q, k, *a.shape[1:])) for a in xs]
    main = bind_loop(sb, outer, consts, xs_main, carry, q, n_ys=n_ys, start=start, step=k * step)
    carry_out, ys = main[:ncarry], [sb.bind1("reshape", y, shape=(q * k, *y.shape[2:])) for y in main[ncarry:]]
    if r:
        xs_tail = [rows(a, q * k, n) for a in xs]
        tail = bind_loop(sb, body, consts, xs_tail, carry_out, r, n_ys=n_ys, start=start + q * k * step, step=step)
        carry_out = tail[:ncarry]
        ys = [
            sb.bind1(
                "add",
                sb.bind1("scatter", y, index=(("slice", 0, q * k, None),), shape=(n, *y.shape[1:])),
                sb.bind1("scatter", t, index=(("slice", q * k, n, None),), shape=(n, *y.shape[1:])),
            )
            for y, t in zip(ys, tail[ncarry:])
        ]
    # the equations that made the loop's results now make e's own output variables
    final = dict(zip([*carry_out, *ys], e.outs))
    return [replace(x, outs=[final.get(o, o) for o in x.outs]) for x in sb.eqns]


def segmented_while(e: Eqn) -> list[Eqn] | None:
    """A ``while`` with ``checkpoint=k`` as a while over segments of at most ``k`` iterations
    (each an inner while that also stops after ``k``): reverse mode tapes the carry at the
    start of each segment, and the adjoint of a segment recomputes (and tapes) its at most
    ``k`` iterations. ``None`` where the loop is not checkpointed or stacks values of its own."""
    p = e.params
    k = p.get("checkpoint")
    if not k or p["n_ys"]:
        return None
    cond: Program = p["cond"]
    body: Program = p["body"]
    nc, ncarry = while_layout(p)

    def fresh(vs: Sequence[Var]) -> list[Var]:
        return [Var(v.aval, v.hint) for v in vs]

    # the inner loop: (j, carry) while j < k and cond(carry): carry = body(carry); j += 1
    cb = Builder()
    cc, cj, ccarry = fresh(cond.invars[:nc]), Var(Aval((), INT), "j"), fresh(cond.invars[nc:])
    env: dict[Var, Atom] = dict(zip(cond.invars, [*cc, *ccarry]))
    copy_eqns(cb, cond.eqns, env, cond.names)
    go = [cb.bind1("cast", x, dtype=INT) for x in (substitute(env, cond.outs[0]), cb.bind1("less", cj, Lit(k, INT)))]
    both = cb.bind1("greater", cb.bind1("mul", *go), Lit(0, INT))
    inner_cond = subprogram(cond.name, [*cc, cj, *ccarry], cb.eqns, [both], cb.names)
    bb = Builder()
    bc, bj, bcarry = fresh(body.invars[:nc]), Var(Aval((), INT), "j"), fresh(body.invars[nc:])
    env = dict(zip(body.invars, [*bc, *bcarry]))
    copy_eqns(bb, body.eqns, env, body.names)
    j1 = bb.bind1("add", bj, Lit(1, INT))
    inner_body = subprogram(
        body.name, [*bc, bj, *bcarry], bb.eqns, [j1, *(substitute(env, o) for o in body.outs)], bb.names
    )
    # the outer loop: one segment per iteration, counting the iterations in ``total``
    ob = Builder()
    oc, total, ocarry = fresh(body.invars[:nc]), Var(Aval((), INT), "total"), fresh(body.invars[nc:])
    seg = bind_while(ob, inner_cond, inner_body, oc, [Lit(0, INT), *ocarry])
    new_total = ob.bind1("add", total, seg[0])
    outer_body = subprogram(f"{body.name}_segment", [*oc, total, *ocarry], ob.eqns, [new_total, *seg[1 : 1 + ncarry]])
    ignored = Var(Aval((), INT), "total")
    outer_cond = rearranged(cond, [*cond.invars[:nc], ignored, *cond.invars[nc:]], cond.outs)
    sb = Builder()
    sb.loc, sb.primal = e.loc, e.primal
    outs = bind_while(sb, outer_cond, outer_body, e.ins[:nc], [Lit(0, INT), *e.ins[nc:]])
    final = dict(zip([*outs[1 : 1 + ncarry], outs[0]], e.outs[: ncarry + 1]))
    return [replace(x, outs=[final.get(o, o) for o in x.outs]) for x in sb.eqns]


def expand_checkpoints(b: Builder, eqns: list[Eqn]) -> list[Eqn]:
    """``eqns`` (in ``b``) with each checkpointed loop replaced by its :func:`segmented` form
    (in ``b`` too); the new list."""
    groups = {}
    for e in eqns:
        g = segmented(e) if e.op == "loop" else segmented_while(e) if e.op == "while" else None
        if g is not None:
            groups[id(e)] = g
    if not groups:
        return eqns
    b.eqns[:] = [x for e in b.eqns for x in groups.get(id(e), [e])]
    return [x for e in eqns for x in groups.get(id(e), [e])]
