"""Optimisation passes on IR programs: dead-code elimination, common-subexpression
elimination, and SymPy simplification of elementwise clusters (which also propagates zeros
and ones and folds constants).

The clusters are the convex ones of :mod:`s2s_ad.clusters`: each can be replaced by its
simplified equations as one unit, and the units are re-ordered topologically.

A pass never renames a variable: a name it gives (a merged duplicate's, or a replaced
variable's) goes into the new program's ``names`` table (:attr:`s2s_ad.ir.Program.names`), so
a variable the pass's input shares with other programs keeps its name there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from dataclasses import replace

import numpy as np

from . import context
from .ad.custom import expand
from .clusters import MAX_TREE, cluster_expressions, cluster_index, expression_size, order_eqns, resolve, toposort
from .fusion import use_counts
from .ir import Atom, Builder, Eqn, Lit, Program, Var, check_program, name_of, subprograms
from .lazy import lazy_module
from .primitives import IDENTITY, broadcast_to, cast_to, fill, get_op
from .progress import stage
from .scalarise import hoist_invariants, prune_regions, scalarise
from .symbolic import to_ir

sp = lazy_module("sympy")  # imported when a formula is first differentiated or simplified

# ``S2S_AD_CHECK_IR=1`` (set by the test suite) runs :func:`~s2s_ad.ir.check_program` before
# and after every pass of :func:`optimize`.
CHECK_IR = os.environ.get("S2S_AD_CHECK_IR", "").strip().lower() in ("1", "true", "yes", "on")


def _sub(env: dict[Var, Atom], a: Atom) -> Atom:
    if isinstance(a, Var):
        while a in env:
            a = env[a]  # type: ignore[assignment]
    return a


def _rewrite(prog: Program, eqns: list[Eqn], env: dict[Var, Atom]) -> Program:
    new = [replace(e, ins=[_sub(env, a) for a in e.ins]) for e in eqns]
    return prog.replace(eqns=new, outs=[_sub(env, a) for a in prog.outs])


def dce(prog: Program) -> Program:
    live = {a for a in prog.outs if isinstance(a, Var)}
    kept = []
    for e in reversed(prog.eqns):
        if any(o in live for o in e.outs):
            kept.append(e)
            live.update(a for a in e.ins if isinstance(a, Var))
    return prog.replace(eqns=kept[::-1])


def _key(a: Atom):
    return a.key() if isinstance(a, Lit) else a


def cse(prog: Program) -> Program:
    env: dict[Var, Atom] = {}
    names = dict(prog.names)
    seen: dict[tuple, Eqn] = {}
    kept = []
    for e in prog.eqns:
        ins = [_sub(env, a) for a in e.ins]
        k = (e.op, e.params_key(), tuple(_key(a) for a in ins))
        if k in seen:
            seen[k].primal |= e.primal  # a user's equation stays as written
            for o, n in zip(e.outs, seen[k].outs):
                env[o] = n
                if name_of(names, n) is None and name_of(names, o) is not None:
                    names[n] = name_of(names, o)
            continue
        ne = replace(e, ins=ins)
        seen[k] = ne
        kept.append(ne)
    return _rewrite(prog, kept, env).replace(names=names)


def strip_identities(prog: Program) -> Program:
    """Drop ``stop_gradient`` (identity once no more derivatives are taken) and no-op casts."""
    env: dict[Var, Atom] = {}
    kept = []
    for e in prog.eqns:
        if e.op == "stop_gradient" or (e.op == "cast" and e.ins[0].dtype == e.outs[0].dtype):
            env[e.outs[0]] = _sub(env, e.ins[0])
            continue
        kept.append(e)
    return _rewrite(prog, kept, env)


@stage("SymPy")
def simplify_clusters(prog: Program, keep_primal: bool = True) -> Program:
    """Each cluster of elementwise equations (:mod:`s2s_ad.clusters`) simplified by SymPy.
    With ``keep_primal`` (the default) the user's own equations are kept as written (see
    :func:`_simplify_cluster`); without it (``set_context(algebraic_simplification=True)``)
    they are rewritten too. A cluster output's name (the user's, or an adjoint's ``x_bar``)
    passes to the variable that replaces it."""
    eqns = prog.eqns
    ok, unit_of, members = cluster_index(eqns)
    producer = {o: i for i, e in enumerate(eqns) for o in e.outs}
    clusters = {u: idx for u, idx in members.items() if ok[idx[0]]}

    # Uses outside each equation's cluster.
    used_outside: set[Var] = {a for a in prog.outs if isinstance(a, Var)}
    for i, e in enumerate(eqns):
        for a in e.ins:
            if isinstance(a, Var) and a in producer and unit_of[producer[a]] != unit_of[i]:
                used_outside.add(a)

    # Constant fills feed clusters as numbers (their shape is restored on the cluster's outputs).
    consts = {e.outs[0]: e.params["value"] for e in eqns if e.op == "fill" and e.outs[0].dtype.kind == "f"}
    env: dict[Var, Atom] = {}
    names = dict(prog.names)
    units: dict[Hashable, list[Eqn]] = {}
    for root, idx in clusters.items():
        cluster = [eqns[i] for i in idx]
        outs = [o for e in cluster for o in e.outs if o in used_outside]
        if expression_size(cluster, outs) > MAX_TREE:
            units[root] = cluster
        else:
            units[root] = _simplify_cluster(cluster, used_outside, env, consts, keep_primal)
    for i, e in enumerate(eqns):
        if not ok[i]:
            units[("s", i)] = [e]

    # A named variable's name passes to the variable that replaces it (in this program's table:
    # the replacement may be a variable shared with other programs), unless that is an input,
    # whose name is the argument's.
    invars = set(prog.invars)
    for o in env:
        target = resolve(env, o)
        if (
            isinstance(target, Var)
            and target not in invars
            and name_of(names, target) is None
            and name_of(names, o) is not None
        ):
            names[target] = name_of(names, o)
    first = {u: idx[0] for u, idx in members.items()}
    new = [replace(e, ins=[resolve(env, a) for a in e.ins]) for unit in toposort(units, first, env) for e in unit]
    return prog.replace(eqns=new, outs=[resolve(env, a) for a in prog.outs], names=names)


def _simplify_cluster(
    members: list[Eqn],
    used_outside: set[Var],
    env: dict[Var, Atom],
    consts: dict[Var, float],
    keep_primal: bool = True,
) -> list[Eqn]:
    """The equations of a cluster with its derivative equations simplified as SymPy
    expressions. The user's own equations (``Eqn.primal``) are kept as written: SymPy would
    re-express them with real-number algebra (``x*0`` and ``x - x`` fold to 0 at construction,
    ``log(exp(x))`` to ``x``), which changes their IEEE results at inf, nan and overflow. Their
    results enter the derivative expressions as symbols. Replaced variables are entered in
    ``env``."""
    kept = [e for e in members if e.primal and keep_primal]
    derived = [e for e in members if not (e.primal and keep_primal)]
    if not derived:
        return members
    produced = {o for e in derived for o in e.outs}
    # Derived values that a kept equation of the cluster reads are outputs of the SymPy part.
    needed = set(used_outside) | {a for e in kept for a in e.ins if isinstance(a, Var) and a in produced}
    ce = cluster_expressions(derived, consts)
    outputs = [o for e in derived for o in e.outs if o in needed]
    if not outputs:
        return kept
    dtype = outputs[0].dtype
    repl, reduced = sp.cse([ce.expr_of[o] for o in outputs], symbols=sp.numbered_symbols("c"), order="canonical")
    # The equations emitted for an output carry the source line and the adjoint flag of the
    # equation that computed it; a shared subexpression those of the first output using it.
    producer = {o: e for e in derived for o in e.outs}
    first_user: dict[sp.Symbol, Eqn] = {}
    repl_of = dict(repl)
    for o, r in zip(outputs, reduced):
        todo = list(r.free_symbols)
        while todo:
            s = todo.pop()
            if s in repl_of and s not in first_user:
                first_user[s] = producer[o]
                todo.extend(repl_of[s].free_symbols)
    b = Builder()

    def stamp(e: Eqn) -> None:
        b.loc, b.adjoint = e.loc or derived[0].loc, e.adjoint

    sym_env: dict[sp.Symbol, Atom] = dict(zip(ce.symbols, ce.inputs))
    for s, rexpr in repl:
        stamp(first_user.get(s, derived[0]))
        (sym_env[s],) = to_ir(b, [rexpr], sym_env, dtype)
    for o, r in zip(outputs, reduced):
        stamp(producer[o])
        (a,) = to_ir(b, [r], sym_env, dtype)
        if isinstance(a, Lit):
            a = fill(b, o.shape, a.value, o.dtype)
        if a.shape != o.shape:
            a = broadcast_to(b, a, o.shape)
        env[o] = cast_to(b, a, o.dtype)
    return order_eqns(kept + b.eqns, env) if kept else b.eqns


def fold_fills(prog: Program, keep_primal: bool = True) -> Program:
    """Propagate constants through structural ops: a reshape, broadcast, transpose, slice,
    cast or max/min/mean of a constant fill is a fill; a sum of one is a scaled fill; a matmul
    with a zero fill is a zero fill. (Zero and one seeds then fold in the SymPy clusters.)"""
    value: dict[Var, float] = {}
    env: dict[Var, Atom] = {}
    names = dict(prog.names)
    kept = []
    for e in prog.eqns:
        ins = [_sub(env, a) for a in e.ins]

        def const(a: Atom) -> float | None:
            if isinstance(a, Lit):
                return float(a.value)
            return value.get(a)

        out = e.outs[0] if len(e.outs) == 1 else None
        v = None
        if e.op == "fill":
            value[e.outs[0]] = float(e.params["value"])
        elif keep_primal and e.primal and get_op(e.op).inexact:
            pass  # the user's sum, mean or matmul keeps numpy's rounding, overflow and 0*inf
        elif out is not None and get_op(e.op).shape_only and const(ins[0]) is not None:
            v = const(ins[0])
            if e.op == "cast":
                v = float(np.asarray(v).astype(out.dtype))
        elif out is not None and e.op == "reduce_sum" and const(ins[0]) is not None:
            v = const(ins[0]) * (ins[0].aval.size // max(out.aval.size, 1))
        elif e.op == "matmul" and any(const(a) == 0 for a in ins):
            v = 0.0
        if v is not None and out.dtype.kind in "fiub":
            b = Builder()
            b.loc = e.loc
            new = fill(b, out.shape, v, out.dtype)
            if isinstance(new, Var):
                if name_of(names, out) is not None:
                    names[new] = name_of(names, out)
                value[new] = v
                kept.extend(b.eqns)
            env[out] = new
            continue
        kept.append(replace(e, ins=ins))
    return _rewrite(prog, kept, env).replace(names=names)


def optimize_regions(prog: Program, final: bool = True, simplify: bool = True) -> Program:
    """Each control-flow region's sub-programs (:mod:`s2s_ad.regions`) optimised on their own
    (their inputs and outputs stay as they are)."""
    if not any(subprograms(e) for e in prog.eqns):
        return prog

    def sub(v: object) -> object:
        if isinstance(v, Program):
            return optimize(v, final, simplify, nested=True)
        if isinstance(v, tuple) and v and all(isinstance(x, Program) for x in v):
            return tuple(optimize(x, final, simplify, nested=True) for x in v)
        return v

    eqns = [replace(e, params={k: sub(v) for k, v in e.params.items()}) if subprograms(e) else e for e in prog.eqns]
    return prog.replace(eqns=eqns)


def expand_customs(prog: Program) -> Program:
    """Replace each custom-derivative equation by a copy of its primal program (done once no
    more derivatives are taken: the generated code computes the function itself)."""
    if not any(e.op == "custom" for e in prog.eqns):
        return prog
    eqns, sub = expand(prog.eqns)
    return prog.replace(eqns=eqns, outs=[_sub(sub, a) for a in prog.outs])


def _identity_size(c: object) -> int | None:
    """``n`` when the constant ``c``'s elements in row-major order are those of ``eye(n)``."""
    a = np.asarray(c)
    n = int(round(np.sqrt(a.size)))
    if a.size == 0 or n * n != a.size or a.dtype.kind not in "fiu":
        return None
    a = a.reshape(n, n)
    return n if np.count_nonzero(a) == n and bool(np.all(np.diagonal(a) == 1)) else None


def lean_products(prog: Program, keep_primal: bool = True) -> Program:
    """Rewrite derivative equations by their op's ``rewrite`` rule in the op table (a matmul
    with a fill or a one-row/one-column scatter becomes a reduction, a selection or an outer
    product, a product with an identity constant the other factor; a scatter that fills its
    output a reshape). The user's own equations are kept
    (their results stay numpy's, bit for bit) unless ``keep_primal`` is False."""
    made: dict[Var, Eqn] = {}
    for v, c in zip(prog.const_vars, prog.consts):
        n = _identity_size(c)
        if n is not None:  # a marker the rules read (primitives.identity_size), never emitted
            made[v] = Eqn(IDENTITY, [], [v], {"n": n})
    env: dict[Var, Atom] = {}
    names = dict(prog.names)
    kept: list[Eqn] = []
    for e in prog.eqns:
        ne = replace(e, ins=[_sub(env, a) for a in e.ins])
        rule = get_op(e.op).rewrite
        if rule is not None and len(e.outs) == 1 and not (keep_primal and e.primal):
            b = Builder()
            b.loc, b.adjoint = e.loc, e.adjoint
            new = rule(b, ne, made)
            if new is not None:
                out = e.outs[0]
                new = cast_to(b, new, out.dtype)
                if isinstance(new, Var) and name_of(names, out) is not None:
                    names[new] = name_of(names, out)
                for be in b.eqns:
                    made.update((o, be) for o in be.outs)
                kept.extend(b.eqns)
                env[out] = new
                continue
        made.update((o, ne) for o in ne.outs)
        kept.append(ne)
    return _rewrite(prog, kept, env).replace(names=names)


_SUMS = {"add": 1, "sub": -1}  # the sign of a sum equation's second term


def factor_products(prog: Program, keep_primal: bool = True) -> Program:
    """Sums of products that share a factor written as one product of a sum: ``x1 @ w + x2 @ w
    - x3 @ w`` becomes ``(x1 + x2 - x3) @ w`` (any op the op table marks ``bilinear``, with the
    same params, the shared input on the same side). Reverse mode makes such sums wherever a
    weight is read more than once (the weight gradient of a network applied to several
    tangents sums one product per use): each product saved is a matrix product's work for an
    elementwise add. A sum is the tree of ``add``/``sub`` equations of one shape whose inner
    results are read once; a product joins only when the sum is its one reader. Derivative
    code only, unless ``keep_primal`` is False (the rounding of the sum changes)."""
    uses = use_counts(prog)
    made = {o: e for e in prog.eqns for o in e.outs}
    readers = {a: e for e in prog.eqns for a in e.ins if isinstance(a, Var)}  # (a value read once: its reader)

    def own(e: Eqn) -> bool:
        return not (keep_primal and e.primal)

    def summing(e: Eqn | None) -> bool:
        return (
            e is not None
            and e.op in _SUMS
            and own(e)
            and all(isinstance(a, Var) and a.aval == e.outs[0].aval for a in e.ins)
        )

    # the inner sums of a tree: read once, by a sum (of the same shape, as a sum's inputs are)
    inner = {e.outs[0] for e in prog.eqns if summing(e) and uses[e.outs[0]] == 1 and summing(readers.get(e.outs[0]))}
    env: dict[Var, Atom] = {}
    names = dict(prog.names)
    kept: list[Eqn] = []
    for e in prog.eqns:
        new = _factored(e, made, uses, inner, own) if summing(e) and e.outs[0] not in inner else None
        if new is None:
            kept.append(e)
            continue
        b, atom = new
        out = e.outs[0]
        kept.extend(b.eqns)
        env[out] = atom
        if isinstance(atom, Var) and name_of(names, out) is not None:
            names[atom] = name_of(names, out)
    if not env:
        return prog
    return dce(_rewrite(prog, kept, env).replace(names=names))


def _factored(root: Eqn, made: dict, uses: dict, inner: set, own: Callable[[Eqn], bool]):
    """``(builder, atom)``: the sum ``root`` computes with its products that share a factor
    merged (:func:`factor_products`), or ``None`` where none do."""
    terms: list[tuple[int, Atom]] = []
    stack: list[tuple[int, Atom]] = [(_SUMS[root.op], root.ins[1]), (1, root.ins[0])]
    while stack:  # the tree's leaves, left to right
        sign, a = stack.pop()
        e = made.get(a)
        if a in inner and e is not None:
            stack += [(sign * _SUMS[e.op], e.ins[1]), (sign, e.ins[0])]
        else:
            terms.append((sign, a))
    groups: dict[tuple, list[int]] = {}
    for k, (_, a) in enumerate(terms):
        p = made.get(a)
        if p is None or not get_op(p.op).bilinear or uses[a] != 1 or not own(p):
            continue
        for side in (0, 1):  # (the other inputs, summed, must be of one shape and dtype)
            key = (p.op, p.params_key(), side, _key(p.ins[side]), p.ins[1 - side].aval)
            groups.setdefault(key, []).append(k)
    taken: set[int] = set()
    merged: dict[int, tuple[tuple, list[int]]] = {}  # a group's first term -> (its key, its terms)
    for key in sorted(groups, key=lambda g: -len(groups[g])):  # (stable: the first such group)
        ks = [k for k in groups[key] if k not in taken]
        if len(ks) >= 2:
            taken.update(ks)
            merged[ks[0]] = (key, ks)
    if not merged:
        return None
    b = Builder()
    b.loc, b.adjoint = root.loc, root.adjoint
    out: list[tuple[int, Atom]] = []
    for k, (sign, a) in enumerate(terms):
        if k in merged:
            (op, _, side, _, _), ks = merged[k]
            p = made[a]
            others = [(terms[j][0], made[terms[j][1]].ins[1 - side]) for j in ks]
            s, total = _signed_sum(b, others)
            ins = [p.ins[0], p.ins[1]]
            ins[1 - side] = total
            out.append((s, b.bind1(op, *ins, **p.params)))
        elif k not in taken:
            out.append((sign, a))
    s, total = _signed_sum(b, out)
    return b, (total if s > 0 else b.bind1("neg", total))


def _signed_sum(b: Builder, terms: list[tuple[int, Atom]]) -> tuple[int, Atom]:
    """``(s, t)`` with ``s * t`` the sum of ``sign * a`` over ``terms``: added left to right,
    starting from the first positive term (``s`` is -1 only when every term is negative)."""
    first = next((k for k, (sign, _) in enumerate(terms) if sign > 0), None)
    s = 1 if first is not None else -1
    first = first or 0
    total = terms[first][1]
    for k, (sign, a) in enumerate(terms):
        if k != first:
            total = b.bind1("add" if sign * s > 0 else "sub", total, a)
    return s, total


@stage("optimize")
def optimize(prog: Program, final: bool = True, simplify: bool = True, nested: bool = False) -> Program:
    """The standard pipeline. ``final`` also drops identities that only matter while more
    derivatives may still be taken (``stop_gradient``), and rewrites loops for speed
    (:mod:`s2s_ad.scalarise`: small values of loop bodies element by element, loop-invariant
    equations out of loops, unread region outputs dropped; ``S2S_AD_SCALARISE=0`` turns the
    first off); these run on the whole program, not again on each region's sub-programs
    (``nested``). The user's own equations are rewritten only in IEEE-exact ways (dce, cse,
    shape-only constant folds) unless the context's ``algebraic_simplification`` is on."""
    keep_primal = not context.get_context("algebraic_simplification")
    passes: list[tuple[str, Callable[[Program], Program]]] = [("expand_customs", expand_customs)] if final else []
    if final and not nested:
        if os.environ.get("S2S_AD_SCALARISE", "1").strip().lower() not in ("0", "false", "no", "off"):
            passes.append(("scalarise", scalarise))
        passes += [("prune_regions", prune_regions), ("hoist_invariants", hoist_invariants)]
    passes += [
        ("regions", lambda p: optimize_regions(p, final, simplify)),
        ("dce", dce),
        ("fold_fills", lambda p: fold_fills(p, keep_primal)),
        ("lean_products", lambda p: lean_products(p, keep_primal)),
        ("fold_fills", lambda p: fold_fills(p, keep_primal)),
        ("cse", cse),
        ("factor_products", lambda p: factor_products(p, keep_primal)),
    ]
    if final:
        passes.append(("strip_identities", strip_identities))
    if simplify:
        passes += [("simplify_clusters", lambda p: simplify_clusters(p, keep_primal)), ("cse", cse)]
    passes.append(("dce", dce))
    check = CHECK_IR
    if check:
        check_program(prog, "before optimize")
    for name, run in passes:
        prog = run(prog)
        if check:
            check_program(prog, f"after {name}")
    return prog
