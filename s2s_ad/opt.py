"""Optimisation passes on IR programs: dead-code elimination, common-subexpression
elimination, and SymPy simplification of elementwise clusters (which also propagates zeros
and ones and folds constants).

Clusters are connected elementwise equations at the same *structural depth* (the number of
structural ops on the longest path from the inputs). That makes every cluster convex: no path
leaves a cluster through a structural op and comes back, so each cluster can be replaced by
its simplified equations as one unit, and the units are re-ordered topologically.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Callable

import numpy as np
import sympy as sp

from .ir import Atom, Builder, Eqn, Lit, Program, Var, check_program
from .ops.table import broadcast_to, cast_to, fill, get_op
from .symbolic import eqn_to_sympy, lit_to_sympy, to_ir

# ``S2S_AD_CHECK_IR=1`` (set by the test suite) runs :func:`~s2s_ad.ir.check_program` before
# and after every pass of :func:`optimize`.
CHECK_IR = os.environ.get("S2S_AD_CHECK_IR", "").strip().lower() in ("1", "true", "yes", "on")


def _sub(env: dict[int, Atom], a: Atom) -> Atom:
    if isinstance(a, Var):
        while id(a) in env:
            a = env[id(a)]  # type: ignore[assignment]
    return a


def _rewrite(prog: Program, eqns: list[Eqn], env: dict[int, Atom]) -> Program:
    new = [Eqn(e.op, [_sub(env, a) for a in e.ins], e.outs, e.params, e.loc, e.primal) for e in eqns]
    return prog.replace(eqns=new, outs=[_sub(env, a) for a in prog.outs])


def dce(prog: Program) -> Program:
    live = {id(a) for a in prog.outs if isinstance(a, Var)}
    kept = []
    for e in reversed(prog.eqns):
        if any(id(o) in live for o in e.outs):
            kept.append(e)
            live.update(id(a) for a in e.ins if isinstance(a, Var))
    return prog.replace(eqns=kept[::-1])


def _key(a: Atom):
    return a.key() if isinstance(a, Lit) else id(a)


def cse(prog: Program) -> Program:
    env: dict[int, Atom] = {}
    seen: dict[tuple, Eqn] = {}
    kept = []
    for e in prog.eqns:
        ins = [_sub(env, a) for a in e.ins]
        k = (e.op, e.params_key(), tuple(_key(a) for a in ins))
        if k in seen:
            seen[k].primal |= e.primal  # a user's equation stays as written
            for o, n in zip(e.outs, seen[k].outs):
                env[id(o)] = n
                if n.hint is None:
                    n.hint = o.hint
            continue
        ne = Eqn(e.op, ins, e.outs, e.params, e.loc, e.primal)
        seen[k] = ne
        kept.append(ne)
    return _rewrite(prog, kept, env)


def strip_identities(prog: Program) -> Program:
    """Drop ``stop_gradient`` (identity once no more derivatives are taken) and no-op casts."""
    env: dict[int, Atom] = {}
    kept = []
    for e in prog.eqns:
        if e.op == "stop_gradient" or (e.op == "cast" and e.ins[0].dtype == e.outs[0].dtype):
            env[id(e.outs[0])] = _sub(env, e.ins[0])
            continue
        kept.append(e)
    return _rewrite(prog, kept, env)


def _sympyable(e: Eqn) -> bool:
    op = get_op(e.op)
    if op.kind != "elementwise":
        return False
    dt = e.outs[0].dtype
    # A bool input (the condition of a select) enters the cluster as a plain symbol.
    return dt.kind == "f" and all(
        a.dtype == dt or (i in op.bool_inputs and a.dtype.kind == "b") for i, a in enumerate(e.ins)
    )


class _UnionFind:
    def __init__(self, n: int):
        self.p = list(range(n))

    def find(self, i: int) -> int:
        while self.p[i] != i:
            self.p[i] = self.p[self.p[i]]
            i = self.p[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.p[max(a, b)] = min(a, b)


def _cluster_index(eqns: list[Eqn]) -> tuple[list[bool], list[object], dict[object, list[int]]]:
    """Group ``eqns`` into convex elementwise clusters: (sympyable flags, the unit of each
    equation, the members of each unit). A structural equation is a unit of its own."""
    producer: dict[int, int] = {}
    depth_of_var: dict[int, int] = {}
    depth = []
    ok = [_sympyable(e) for e in eqns]
    uf = _UnionFind(len(eqns))
    for i, e in enumerate(eqns):
        d = max((depth_of_var.get(id(a), 0) for a in e.ins if isinstance(a, Var)), default=0)
        d += 0 if ok[i] else 1
        depth.append(d)
        for a in e.ins:
            if ok[i] and isinstance(a, Var) and id(a) in producer:
                j = producer[id(a)]
                if ok[j] and depth[j] == d and eqns[j].outs[0].dtype == e.outs[0].dtype:
                    uf.union(i, j)
        for o in e.outs:
            producer[id(o)] = i
            depth_of_var[id(o)] = d

    unit_of: list[object] = [uf.find(i) if ok[i] else ("s", i) for i in range(len(eqns))]
    members: dict[object, list[int]] = {}
    for i, u in enumerate(unit_of):
        members.setdefault(u, []).append(i)
    return ok, unit_of, members


# A cluster is simplified or differentiated as one SymPy expression only while its expression *tree* (shared
# subexpressions counted once per use) stays below this size: SymPy's differentiation walks the
# tree, so a deep chain that reuses values (x = f(x, x) repeated) would cost exponential time.
# Larger clusters are left as they are (simplification) or use the per-equation chain rule
# (differentiation), which is linear in the program.
MAX_TREE = 5000


def expression_size(members: list[Eqn], outs: list[Var]) -> int:
    """Tree size of the expressions of ``outs`` in a cluster (inputs and literals count 1)."""
    size: dict[int, int] = {}
    for e in members:
        n = 1 + sum(size.get(id(a), 1) if isinstance(a, Var) else 1 for a in e.ins)
        for o in e.outs:
            size[id(o)] = n
    return sum(size[id(o)] for o in outs)


def elementwise_units(eqns: list[Eqn]) -> list[list[Eqn]]:
    """``eqns`` as units in a topological order: each unit a convex cluster of elementwise
    equations (SymPy can treat it as one expression) or a single structural equation."""
    _, unit_of, members = _cluster_index(eqns)
    units = {u: [eqns[i] for i in idx] for u, idx in members.items()}
    first = {u: idx[0] for u, idx in members.items()}
    return _toposort(units, first, {})


def simplify_clusters(prog: Program, keep_primal: bool = True) -> Program:
    """Each cluster of elementwise equations simplified by SymPy. With ``keep_primal`` (the
    default) the user's own equations are kept as written (see :func:`_simplify_cluster`);
    without it (``set_context(algebraic_simplification=True)``) they are rewritten too."""
    eqns = prog.eqns
    ok, unit_of, members = _cluster_index(eqns)
    producer = {id(o): i for i, e in enumerate(eqns) for o in e.outs}
    clusters = {u: idx for u, idx in members.items() if ok[idx[0]]}

    # Uses outside each equation's cluster.
    used_outside: set[int] = {id(a) for a in prog.outs if isinstance(a, Var)}
    for i, e in enumerate(eqns):
        for a in e.ins:
            if isinstance(a, Var) and id(a) in producer and unit_of[producer[id(a)]] != unit_of[i]:
                used_outside.add(id(a))

    # Constant fills feed clusters as numbers (their shape is restored on the cluster's outputs).
    consts = {id(e.outs[0]): e.params["value"] for e in eqns if e.op == "fill" and e.outs[0].dtype.kind == "f"}
    env: dict[int, Atom] = {}
    units: dict[object, list[Eqn]] = {}
    for root, idx in clusters.items():
        cluster = [eqns[i] for i in idx]
        outs = [o for e in cluster for o in e.outs if id(o) in used_outside]
        if expression_size(cluster, outs) > MAX_TREE:
            units[root] = cluster
        else:
            units[root] = _simplify_cluster(cluster, used_outside, env, consts, keep_primal)
    for i, e in enumerate(eqns):
        if not ok[i]:
            units[("s", i)] = [e]

    first = {u: idx[0] for u, idx in members.items()}
    return _rewrite(prog, [e for unit in _toposort(units, first, env) for e in unit], env)


def _simplify_cluster(
    members: list[Eqn], used_outside: set[int], env: dict[int, Atom], consts: dict[int, float], keep_primal: bool = True
) -> list[Eqn]:
    """The equations of a cluster with its derivative equations simplified as SymPy
    expressions. The user's own equations (``Eqn.primal``) are kept as written: SymPy would
    re-express them with real-number algebra (``x*0`` and ``x - x`` fold to 0 at construction,
    ``log(exp(x))`` to ``x``), which changes their IEEE results at inf, nan and overflow. Their
    results enter the derivative expressions as symbols."""
    kept = [e for e in members if e.primal and keep_primal]
    derived = [e for e in members if not (e.primal and keep_primal)]
    if not derived:
        return members
    produced = {id(o) for e in derived for o in e.outs}
    # Derived values that a kept equation of the cluster reads are outputs of the SymPy part.
    needed = set(used_outside) | {id(a) for e in kept for a in e.ins if isinstance(a, Var) and id(a) in produced}
    inputs: list[Var] = []
    seen: set[int] = set()
    for e in derived:
        for a in e.ins:
            if isinstance(a, Var) and id(a) not in produced and id(a) not in seen and id(a) not in consts:
                seen.add(id(a))
                inputs.append(a)
    syms = [sp.Symbol(f"s{k}", real=True) for k in range(len(inputs))]
    expr_of: dict[int, sp.Expr] = {id(v): s for v, s in zip(inputs, syms)}
    for e in derived:
        for a in e.ins:
            if isinstance(a, Var) and id(a) in consts:
                expr_of[id(a)] = lit_to_sympy(Lit(consts[id(a)], a.dtype))
    for e in derived:
        args = [lit_to_sympy(a) if isinstance(a, Lit) else expr_of[id(a)] for a in e.ins]
        expr_of[id(e.outs[0])] = eqn_to_sympy(e.op, args)
    outputs = [o for e in derived for o in e.outs if id(o) in needed]
    if not outputs:
        return kept
    dtype = outputs[0].dtype
    repl, reduced = sp.cse([expr_of[id(o)] for o in outputs], symbols=sp.numbered_symbols("c"), order="canonical")
    b = Builder()
    sym_env: dict[sp.Symbol, Atom] = dict(zip(syms, inputs))
    for s, rexpr in repl:
        (sym_env[s],) = to_ir(b, [rexpr], sym_env, dtype)
    atoms = to_ir(b, list(reduced), sym_env, dtype)
    for o, a in zip(outputs, atoms):
        b.loc = derived[-1].loc
        if isinstance(a, Lit):
            a = fill(b, o.shape, a.value, o.dtype)
        if a.shape != o.shape:
            a = broadcast_to(b, a, o.shape)
        a = cast_to(b, a, o.dtype)
        if isinstance(a, Var) and a.hint is None and not any(a is x for x in inputs):
            a.hint = o.hint
        env[id(o)] = a
    # Keep the user's source positions: equations emitted for an output carry its line.
    loc = derived[0].loc
    for e in b.eqns:
        e.loc = e.loc or loc
    return _order(kept + b.eqns, env) if kept else b.eqns


def _order(eqns: list[Eqn], env: dict[int, Atom]) -> list[Eqn]:
    """``eqns`` in a dependency order (reading inputs through ``env``), otherwise as given."""
    producer = {id(o): i for i, e in enumerate(eqns) for o in e.outs}
    deps = [
        {producer[id(a)] for a in (_sub(env, x) for x in e.ins) if isinstance(a, Var) and id(a) in producer}
        for e in eqns
    ]
    users: list[list[int]] = [[] for _ in eqns]
    for i, d in enumerate(deps):
        for j in d:
            users[j].append(i)
    heap = [i for i, d in enumerate(deps) if not d]
    heapq.heapify(heap)
    out = []
    while heap:
        i = heapq.heappop(heap)
        out.append(eqns[i])
        for w in users[i]:
            deps[w].discard(i)
            if not deps[w]:
                heapq.heappush(heap, w)
    assert len(out) == len(eqns), "a cycle in a simplified cluster"
    return out


def _toposort(units: dict[object, list[Eqn]], first: dict[object, int], env: dict[int, Atom]) -> list[list[Eqn]]:
    producer_unit: dict[int, object] = {}
    for u, es in units.items():
        for e in es:
            for o in e.outs:
                producer_unit[id(o)] = u
    deps: dict[object, set] = {u: set() for u in units}
    users: dict[object, set] = {u: set() for u in units}
    for u, es in units.items():
        for e in es:
            for a in e.ins:
                a = _sub(env, a)
                if isinstance(a, Var) and id(a) in producer_unit and producer_unit[id(a)] != u:
                    deps[u].add(producer_unit[id(a)])
                    users[producer_unit[id(a)]].add(u)
    heap = [(first[u], k, u) for k, u in enumerate(units) if not deps[u]]
    order_key = {u: k for k, u in enumerate(units)}
    heapq.heapify(heap)
    out: list[list[Eqn]] = []
    while heap:
        _, _, u = heapq.heappop(heap)
        out.append(units[u])
        for w in users[u]:
            deps[w].discard(u)
            if not deps[w]:
                heapq.heappush(heap, (first[w], order_key[w], w))
    return out


def fold_fills(prog: Program, keep_primal: bool = True) -> Program:
    """Propagate constants through structural ops: a reshape, broadcast, transpose, slice,
    cast or max/min/mean of a constant fill is a fill; a sum of one is a scaled fill; a matmul
    with a zero fill is a zero fill. (Zero and one seeds then fold in the SymPy clusters.)"""
    value: dict[int, float] = {}
    env: dict[int, Atom] = {}
    kept = []
    for e in prog.eqns:
        ins = [_sub(env, a) for a in e.ins]

        def const(a: Atom) -> float | None:
            if isinstance(a, Lit):
                return float(a.value)
            return value.get(id(a))

        out = e.outs[0] if len(e.outs) == 1 else None
        v = None
        if e.op == "fill":
            value[id(e.outs[0])] = float(e.params["value"])
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
                new.hint = out.hint
                value[id(new)] = v
                kept.extend(b.eqns)
            env[id(out)] = new
            continue
        kept.append(Eqn(e.op, ins, e.outs, e.params, e.loc, e.primal))
    return _rewrite(prog, kept, env)


def optimize(prog: Program, final: bool = True, simplify: bool = True) -> Program:
    """The standard pipeline. ``final`` also drops identities that only matter while more
    derivatives may still be taken (``stop_gradient``). The user's own equations are rewritten
    only in IEEE-exact ways (dce, cse, shape-only constant folds) unless the context's
    ``algebraic_simplification`` is on."""
    from . import context

    keep_primal = not context.get_context("algebraic_simplification")
    passes: list[tuple[str, Callable[[Program], Program]]] = [
        ("dce", dce),
        ("fold_fills", lambda p: fold_fills(p, keep_primal)),
        ("cse", cse),
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
