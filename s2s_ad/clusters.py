"""Clusters of elementwise equations and their SymPy expressions.

A *cluster* is a set of connected elementwise equations at the same *structural depth* (the
number of structural ops on the longest path from the inputs). That makes every cluster
convex: no path leaves a cluster through a structural op and comes back, so a cluster can be
treated as one expression (differentiated or simplified as a whole) and replaced as one unit,
the units re-ordered topologically.

This module finds the clusters (:func:`cluster_index`, :func:`elementwise_units`), builds
their SymPy expressions (:func:`cluster_expressions`, the one builder that reverse mode,
forward mode and the optimiser use) and forms the adjoint of a cluster (:func:`cluster_vjp`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

from .ir import Atom, Builder, Eqn, Lit, Var
from .lazy import lazy_module
from .primitives import drop_distributions, fill, get_op
from .symbolic import eqn_to_sympy, lit_to_sympy, to_ir

sp = lazy_module("sympy")  # imported when a formula is first differentiated or simplified

# A cluster is simplified or differentiated as one SymPy expression only while its expression
# *tree* (shared subexpressions counted once per use) stays below this size: SymPy's
# differentiation walks the tree, so a deep chain that reuses values (x = f(x, x) repeated)
# would cost exponential time. Larger clusters are left as they are (simplification) or use the
# per-equation chain rule (differentiation), which is linear in the program.
MAX_TREE = 5000


def sympyable(e: Eqn) -> bool:
    """Whether ``e`` can be part of a cluster: an elementwise op on floats of one dtype (a bool
    input, the condition of a select, enters the cluster as a plain symbol)."""
    op = get_op(e.op)
    if op.kind != "elementwise":
        return False
    dt = e.outs[0].dtype
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


def cluster_index(eqns: Sequence[Eqn]) -> tuple[list[bool], list[Hashable], dict[Hashable, list[int]]]:
    """Group ``eqns`` into convex elementwise clusters: (whether each equation is
    :func:`sympyable`, the unit of each equation, the equation indices of each unit in program
    order). A structural equation is a unit of its own, ``("s", index)``."""
    producer: dict[Var, int] = {}
    depth_of_var: dict[Var, int] = {}
    depth: list[int] = []
    ok = [sympyable(e) for e in eqns]
    uf = _UnionFind(len(eqns))
    for i, e in enumerate(eqns):
        d = max((depth_of_var.get(a, 0) for a in e.ins if isinstance(a, Var)), default=0)
        d += 0 if ok[i] else 1
        depth.append(d)
        for a in e.ins:
            if ok[i] and isinstance(a, Var) and a in producer:
                j = producer[a]
                if ok[j] and depth[j] == d and eqns[j].outs[0].dtype == e.outs[0].dtype:
                    uf.union(i, j)
        for o in e.outs:
            producer[o] = i
            depth_of_var[o] = d

    unit_of: list[Hashable] = [uf.find(i) if ok[i] else ("s", i) for i in range(len(eqns))]
    members: dict[Hashable, list[int]] = {}
    for i, u in enumerate(unit_of):
        members.setdefault(u, []).append(i)
    return ok, unit_of, members


def expression_size(members: Sequence[Eqn], outs: Sequence[Var]) -> int:
    """Tree size of the expressions of ``outs`` in a cluster (inputs and literals count 1)."""
    size: dict[Var, int] = {}
    for e in members:
        n = 1 + sum(size.get(a, 1) if isinstance(a, Var) else 1 for a in e.ins)
        for o in e.outs:
            size[o] = n
    return sum(size[o] for o in outs)


def resolve(env: Mapping[Var, Atom], a: Atom) -> Atom:
    """``a`` read through the replacements ``env`` (followed transitively)."""
    while isinstance(a, Var) and a in env:
        a = env[a]
    return a


def toposort(
    units: Mapping[Hashable, list[Eqn]], first: Mapping[Hashable, int], env: Mapping[Var, Atom]
) -> list[list[Eqn]]:
    """``units`` (lists of equations) in a dependency order, reading inputs through ``env``;
    among ready units the one with the smallest ``first`` (original position) comes first."""
    producer_unit: dict[Var, Hashable] = {}
    for u, es in units.items():
        for e in es:
            for o in e.outs:
                producer_unit[o] = u
    deps: dict[Hashable, set] = {u: set() for u in units}
    users: dict[Hashable, set] = {u: set() for u in units}
    for u, es in units.items():
        for e in es:
            for a in e.ins:
                a = resolve(env, a)
                if isinstance(a, Var) and a in producer_unit and producer_unit[a] != u:
                    deps[u].add(producer_unit[a])
                    users[producer_unit[a]].add(u)
    order_key = {u: k for k, u in enumerate(units)}
    heap = [(first[u], order_key[u], u) for u in units if not deps[u]]
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


def order_eqns(eqns: Sequence[Eqn], env: Mapping[Var, Atom]) -> list[Eqn]:
    """``eqns`` in a dependency order (reading inputs through ``env``), otherwise as given."""
    producer = {o: i for i, e in enumerate(eqns) for o in e.outs}
    deps = [
        {producer[a] for a in (resolve(env, x) for x in e.ins) if isinstance(a, Var) and a in producer} for e in eqns
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
    assert len(out) == len(eqns), "a cycle in a cluster's equations"
    return out


def elementwise_units(eqns: Sequence[Eqn]) -> list[list[Eqn]]:
    """``eqns`` as units in a topological order: each unit a convex cluster of elementwise
    equations (SymPy can treat it as one expression) or a single structural equation."""
    _, _, members = cluster_index(eqns)
    units = {u: [eqns[i] for i in idx] for u, idx in members.items()}
    first = {u: idx[0] for u, idx in members.items()}
    return toposort(units, first, {})


@dataclass
class ClusterExpressions:
    """The SymPy expressions of a cluster: ``expr_of`` maps each variable the cluster
    computes (and each input) to its expression in the input symbols; ``inputs`` are the
    variables the cluster reads but does not compute, ``symbols`` their symbols ``s0, s1, ...``."""

    expr_of: dict[Var, sp.Expr]
    inputs: list[Var]
    symbols: list[sp.Symbol]


def cluster_expressions(members: Sequence[Eqn], consts: Mapping[Var, float] | None = None) -> ClusterExpressions:
    """The SymPy expressions of the variables of ``members`` (elementwise equations in program
    order). A variable they read but do not compute is an input symbol, except one in
    ``consts`` (a constant fill), which enters as its number."""
    consts = consts or {}
    produced = {o for e in members for o in e.outs}
    inputs: list[Var] = []
    seen: set[Var] = set()
    for e in members:
        for a in e.ins:
            if isinstance(a, Var) and a not in produced and a not in seen and a not in consts:
                seen.add(a)
                inputs.append(a)
    syms = [sp.Symbol(f"s{k}", real=True) for k in range(len(inputs))]
    expr_of: dict[Var, sp.Expr] = dict(zip(inputs, syms))
    for e in members:
        args = []
        for a in e.ins:
            if isinstance(a, Lit):
                args.append(lit_to_sympy(a))
            elif a in expr_of:
                args.append(expr_of[a])
            else:
                args.append(lit_to_sympy(Lit(consts[a], a.dtype)))
        expr_of[e.outs[0]] = eqn_to_sympy(e.op, args)
    return ClusterExpressions(expr_of, inputs, syms)


def cluster_vjp(
    b: Builder, members: Sequence[Eqn], cotangent: Callable[[Var], Atom | None], active: Callable[[Var], bool]
) -> list[tuple[Var, Atom]]:
    """The adjoint of a convex cluster of elementwise equations as one SymPy expression: each
    active input's cotangent is ``Σ_o ct_o · ∂E_o/∂input`` with ``E_o`` the expression of a
    cluster variable ``o`` that has a cotangent from outside the cluster (``cotangent(o)``).
    SymPy differentiates the whole expression at once, which keeps derivatives of derivatives
    compact. Returns (input, term) pairs for the active float inputs, one term per output shape:
    each term is of that shape, to be summed to the input's shape by the caller."""
    outs = [(o, ct) for e in members for o in e.outs if (ct := cotangent(o)) is not None]
    if not outs:
        return []
    ce = cluster_expressions(members)
    wrt = [(v, s) for v, s in zip(ce.inputs, ce.symbols) if active(v) and v.dtype.kind == "f"]
    if not wrt:
        return []
    ct_syms = [sp.Symbol(f"ct{k}", real=True) for k in range(len(outs))]
    # Terms are summed per output shape: each group is reduced to the input's shape on its own
    # (a term of a smaller, broadcast output must not be counted once per broadcast copy).
    groups: dict[tuple, list[int]] = {}
    for k, (o, _) in enumerate(outs):
        groups.setdefault(tuple(o.shape), []).append(k)
    keys, exprs = [], []
    for v, s in wrt:
        for shape, ks in groups.items():
            g = sum((ct_syms[k] * sp.diff(ce.expr_of[outs[k][0]], s) for k in ks), sp.Integer(0))
            keys.append((v, shape))
            exprs.append(drop_distributions(g))
    env: dict[sp.Symbol, Atom] = dict(zip(ce.symbols, ce.inputs))
    env.update(zip(ct_syms, (ct for _, ct in outs)))
    b.loc = members[-1].loc
    dtype = outs[0][0].dtype
    res: list[tuple[Var, Atom]] = []
    for (v, shape), g in zip(keys, to_ir(b, exprs, env, dtype)):
        if isinstance(g, Lit):
            if g.value == 0:
                continue
            g = fill(b, shape, g.value, dtype)
        res.append((v, g))  # summed to v's shape where it accumulates (reverse mode's ``backward``)
    return res
