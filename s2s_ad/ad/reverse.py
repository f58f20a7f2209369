"""Reverse (adjoint) mode: a program ``f`` becomes a program computing ``f``'s value and the
vector-Jacobian product for chosen inputs and parameters.

Cotangents are accumulated per variable over fan-out; an absent cotangent is a symbolic zero
and is never materialised. Elementwise rules come from SymPy partial derivatives of each op's
scalar formula; structural ops use the ``vjp`` rule of their op-table entry.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from ..errors import S2SError
from ..ir import Atom, Builder, Eqn, Lit, Program, Var, treedef_leaves
from ..ops.table import broadcast_shapes, broadcast_to, cast_to, drop_distributions, fill, get_op, sum_to
from ..opt import MAX_TREE, elementwise_units, expression_size
from ..symbolic import cluster_expressions, lit_to_sympy, to_ir

_CT = sp.Symbol("ct", real=True)


def partials_at(eqn: Eqn) -> tuple[sp.Expr, ...]:
    """The op's SymPy partial derivatives with literal inputs substituted, so that SymPy
    simplifies them for the case at hand (``x**2`` gives ``2*x``, not ``x**2*2/x``)."""
    op = get_op(eqn.op)
    lits = {s: lit_to_sympy(a) for s, a in zip(op.symbols, eqn.ins) if isinstance(a, Lit)}
    return tuple(p.subs(lits) for p in op.partials) if lits else op.partials


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
        if isinstance(g, Lit):
            g = fill(b, x.shape, g.value, out.dtype)
        elif g.shape != x.shape:
            g = sum_to(b, broadcast_to(b, g, broadcast_shapes(op.display, [g.shape, x.shape])), x.shape)
        res.append(cast_to(b, g, x.dtype))
    return res


def cluster_vjp(b: Builder, members: list[Eqn], cts: dict[int, Atom], active: set[int]) -> list[tuple[Var, Atom]]:
    """The adjoint of a convex cluster of elementwise equations as one SymPy expression: each
    active input's cotangent is ``Σ_o ct_o · ∂E_o/∂input`` with ``E_o`` the expression of a
    cluster variable ``o`` that has a cotangent from outside the cluster. SymPy differentiates
    the whole expression at once, which keeps derivatives of derivatives compact."""
    outs = [o for e in members for o in e.outs if id(o) in cts]
    if not outs:
        return []
    expr_of, inputs, syms = cluster_expressions(members)
    wrt = [(v, s) for v, s in zip(inputs, syms) if id(v) in active and v.dtype.kind == "f"]
    if not wrt:
        return []
    ct_syms = [sp.Symbol(f"ct{k}", real=True) for k in range(len(outs))]
    # Terms are summed per output shape: each group is reduced to the input's shape on its own
    # (a term of a smaller, broadcast output must not be counted once per broadcast copy).
    groups: dict[tuple, list[int]] = {}
    for k, o in enumerate(outs):
        groups.setdefault(tuple(o.shape), []).append(k)
    keys, exprs = [], []
    for v, s in wrt:
        for shape, ks in groups.items():
            g = sum((ct_syms[k] * sp.diff(expr_of[id(outs[k])], s) for k in ks), sp.Integer(0))
            keys.append((v, shape))
            exprs.append(drop_distributions(g))
    env: dict[sp.Symbol, Atom] = dict(zip(syms, inputs))
    env.update(zip(ct_syms, (cts[id(o)] for o in outs)))
    b.loc = members[-1].loc
    dtype = outs[0].dtype
    total: dict[int, tuple[Var, Atom]] = {}
    for (v, shape), g in zip(keys, to_ir(b, exprs, env, dtype)):
        if isinstance(g, Lit):
            if g.value == 0:
                continue
            g = fill(b, shape, g.value, dtype)
        if g.shape != v.shape:
            g = sum_to(b, broadcast_to(b, g, broadcast_shapes("elementwise", [g.shape, v.shape])), v.shape)
        g = cast_to(b, g, v.dtype)
        total[id(v)] = (v, b.bind1("add", total[id(v)][1], g) if id(v) in total else g)
    return list(total.values())


def vjp_rule(op_name: str):
    op = get_op(op_name)
    if op.kind == "elementwise":
        return elementwise_vjp
    if op.vjp is None:
        raise S2SError(f"{op.display} has no reverse-mode rule")
    return op.vjp


def copy_eqns(b: Builder, eqns: list[Eqn], env: dict[int, Atom]) -> None:
    """Append renamed copies of ``eqns`` to ``b``; ``env`` maps old var ids to new atoms."""
    for e in eqns:
        outs = [Var(o.aval, o.hint) for o in e.outs]
        b.eqns.append(Eqn(e.op, [_sub(env, a) for a in e.ins], outs, e.params, e.loc, e.primal))
        for o, n in zip(e.outs, outs):
            env[id(o)] = n


def _sub(env: dict[int, Atom], a: Atom) -> Atom:
    return a if isinstance(a, Lit) else env[id(a)]


def backward(
    b: Builder,
    eqns: list[Eqn],
    outs: list[Atom],
    seeds: list[Atom | None],
    wrt: list[Var],
) -> list[Atom]:
    """Emit the adjoint sweep of ``eqns`` (already in ``b``'s namespace) seeded with
    ``seeds`` for ``outs``; return the cotangent of each ``wrt`` variable (zeros where the
    variable does not reach an output)."""
    active = {id(v) for v in wrt}
    for e in eqns:
        if e.op != "stop_gradient" and any(isinstance(a, Var) and id(a) in active for a in e.ins):
            active.update(id(o) for o in e.outs)

    cts: dict[int, Atom] = {}

    def accumulate(v: Var, g: Atom) -> None:
        if isinstance(g, Var) and g.hint is None and v.hint is not None and not v.hint.endswith("_bar"):
            g.hint = f"{v.hint}_bar"
        if id(v) in cts:
            cts[id(v)] = b.bind1("add", cts[id(v)], g)
        else:
            cts[id(v)] = g

    for o, s in zip(outs, seeds):
        if s is not None and isinstance(o, Var) and id(o) in active:
            accumulate(o, s)

    for unit in reversed(elementwise_units(eqns)):
        if len(unit) > 1 and expression_size(unit, [o for e in unit for o in e.outs if id(o) in cts]) <= MAX_TREE:
            for v, g in cluster_vjp(b, unit, cts, active):
                accumulate(v, g)
            continue
        for e in reversed(unit):
            if not any(id(o) in cts for o in e.outs):
                continue
            ins_active = [isinstance(a, Var) and id(a) in active for a in e.ins]
            if not any(ins_active):
                continue
            b.loc = e.loc
            outct = [cts.get(id(o)) for o in e.outs]
            grads = vjp_rule(e.op)(b, e, outct, ins_active)
            for a, g, act in zip(e.ins, grads, ins_active):
                if act and g is not None:
                    accumulate(a, g)
    b.loc = None
    res = []
    for w in wrt:
        g = cts.get(id(w))
        res.append(fill(b, w.shape, 0, w.dtype) if g is None else cast_to(b, g, w.dtype))
    return res


def fresh_inputs(prog: Program) -> tuple[list[Var], dict[int, Atom]]:
    """New variables for ``prog``'s inputs, and the map from the old ones' ids to them."""
    new_in = [Var(v.aval, v.hint) for v in prog.invars]
    return new_in, {id(o): n for o, n in zip(prog.invars, new_in)}


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
    parameters and constants (``new_in`` from :func:`fresh_inputs`)."""
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
    )


def arg_leaf_ranges(prog: Program) -> list[tuple[int, int, Any]]:
    """For each argument position of ``prog``: (first leaf, end leaf, treedef)."""
    out = []
    start = 0
    for child in prog.in_tree[1]:
        n = treedef_leaves(child)
        out.append((start, start + n, child))
        start += n
    return out


def grad_program(
    prog: Program,
    wrt_args: list[int],
    wrt_params: list[Any],
    sens_param: bool,
    with_value: bool = False,
    name: str | None = None,
    has_aux: bool = False,
) -> Program:
    """The reverse-mode program of ``prog``.

    Outputs, as a tree: ``(value, (grad of each arg in wrt_args...), (grad of each param...))``
    where ``value`` is the forward output (only when ``with_value``; else ``()``), each arg
    gradient has the structure of that argument, and a parameter that ``prog`` does not use
    gets zeros. With ``sens_param`` the program takes one more argument, the output
    cotangent, structured like ``prog``'s output. With ``has_aux`` (``prog`` returns a tuple)
    only the first element of the output is differentiated, and the sens is structured like it.
    """
    b = Builder()
    new_in, env = fresh_inputs(prog)
    n_args = prog.n_args
    args = new_in[:n_args]
    arg_names = list(prog.arg_names)
    in_tree = prog.in_tree
    diff_tree = prog.out_tree[1][0] if has_aux else prog.out_tree
    n_diff = treedef_leaves(diff_tree)
    sens_vars: list[Var] = []
    if sens_param:
        sens_vars = [Var(o.aval, "sens") for o in prog.outs[:n_diff]]
        in_tree = ("tuple", tuple(in_tree[1]) + (diff_tree,))
        arg_names.append("sens")
    copy_eqns(b, prog.eqns, env)
    outs = [_sub(env, o) for o in prog.outs]

    ranges = arg_leaf_ranges(prog)

    wrt_vars: list[Var] = []
    for pos in wrt_args:
        lo, hi, _ = ranges[pos]
        wrt_vars.extend(args[lo:hi])
    param_vars = []
    for p in wrt_params:
        idx = next((i for i, q in enumerate(prog.parameters) if q is p), None)
        param_vars.append(None if idx is None else new_in[n_args + idx])
    wrt_all = wrt_vars + [v for v in param_vars if v is not None]

    if sens_param:
        seeds: list[Atom | None] = list(sens_vars)
    else:
        seeds = [fill(b, o.shape, 1, o.dtype) if o.dtype.kind == "f" else None for o in outs[:n_diff]]
    grads = backward(b, b.eqns[:], outs, seeds, wrt_all)

    arg_grads, k = [], 0
    for pos in wrt_args:
        lo, hi, child = ranges[pos]
        arg_grads.extend(grads[k : k + hi - lo])
        k += hi - lo
    param_grads: list[Atom] = []
    for p, v in zip(wrt_params, param_vars):
        if v is None:
            param_grads.append(fill(b, tuple(p.shape), 0, p.asnumpy().dtype))
        else:
            param_grads.append(grads[k])
            k += 1

    value_tree = prog.out_tree if with_value else ("tuple", ())
    out_tree = (
        "tuple",
        (
            value_tree,
            ("tuple", tuple(ranges[p][2] for p in wrt_args)),
            ("tuple", (None,) * len(wrt_params)),
        ),
    )
    return derived_program(
        prog,
        b,
        name or f"grad_{prog.name}",
        args + sens_vars,
        new_in,
        in_tree,
        (outs if with_value else []) + arg_grads + param_grads,
        out_tree,
        arg_names,
    )
