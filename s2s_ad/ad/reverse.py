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

from ..clusters import MAX_TREE, cluster_vjp, elementwise_units, expression_size
from ..errors import S2SError
from ..ir import Atom, Builder, Eqn, Lit, Program, Var, copy_program
from ..lazy import lazy_module
from ..primitives import broadcast_shapes, broadcast_to, cast_to, fill, get_op, sum_to
from ..symbolic import to_ir
from .common import derived_program, partials_at

sp = lazy_module("sympy")  # imported when a formula is first differentiated or simplified


def _ct_symbol() -> sp.Symbol:
    """The symbol standing for an equation's cotangent in its SymPy adjoint."""
    return sp.Symbol("ct", real=True)  # SymPy interns symbols: every call gives the same one


def elementwise_vjp(b: Builder, eqn: Eqn, cts: list[Atom | None], active: list[bool]) -> list[Atom | None]:
    op = get_op(eqn.op)
    (ct,) = cts
    out = eqn.outs[0]
    env: dict[sp.Symbol, Atom] = dict(zip(op.symbols, eqn.ins))
    env[_ct_symbol()] = ct
    partials = partials_at(eqn)
    res: list[Atom | None] = []
    for i, x in enumerate(eqn.ins):
        p = partials[i]
        if not active[i] or p == 0 or x.dtype.kind == "b":
            res.append(None)
            continue
        (g,) = to_ir(b, [_ct_symbol() * p], env, out.dtype)
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
            grads = vjp_rule(e.op)(b, e, outct, ins_active)
            for a, g, act in zip(e.ins, grads, ins_active):
                if act and g is not None:
                    accumulate(a, g)
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
