"""The forward Laplacian: a program ``f`` becomes a program computing ``f``'s value, its
derivatives along ``k`` directions and the sum of its second derivatives along them, in one
forward sweep.

Every value ``v`` that depends on the differentiated input ``x`` carries, beside itself,

* ``J_v`` of shape ``(k, *v.shape)``: its derivative along each direction ``d_i`` stacked on a
  leading axis (``J_x`` is the directions themselves), and
* ``L_v`` of ``v``'s shape: ``Σ_i D²v[d_i, d_i]``, the sum of its second directional
  derivatives (``L_x = 0``).

With the ``k = x.size`` unit directions, ``L`` of an output is its Laplacian ``Σ_i ∂²f/∂x_i²``
and ``J`` its Jacobian. The rules:

* an elementwise cluster ``o = E(s_1..s_m)`` (SymPy's expression of the whole cluster, as in
  forward and reverse mode): ``J_o = Σ_a ∂E/∂s_a J_a`` and
  ``L_o = Σ_a ∂E/∂s_a L_a + Σ_{a,b} ∂²E/∂s_a∂s_b G_ab`` with the Gram terms
  ``G_ab = Σ_i J_a,i J_b,i``; SymPy forms and shares the per-element expressions;
* an op ``A`` linear in its one input (reshape, transpose, broadcast, sums, indexing...):
  ``J_o = A(J)`` applied to each direction (the op's batching rule, :mod:`s2s_ad.batching`,
  over the direction axis) and ``L_o = A(L)``;
* a bilinear op ``o = a·b`` (``matmul``, ``batch_matmul``) whose two operands depend on ``x``:
  ``L_o = L_a·b + a·L_b + 2 Σ_i J_a,i·J_b,i``;
* any other op (conv, reductions to an extremum, linear algebra, control-flow regions...):
  that one equation's first and second directional derivatives by forward mode and forward
  over forward mode (:mod:`s2s_ad.ad.forward`), that derivative program batched over the
  directions, the second derivatives summed.

Absent ``J`` and ``L`` are symbolic zeros, never materialised.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..batching import BatchBuilder, batch_eqn, batch_eqns
from ..clusters import MAX_TREE, cluster_expressions, elementwise_units, expression_size
from ..ir import Atom, Aval, Builder, Eqn, Lit, Program, Var, fresh_inputs, substitute
from ..lazy import lazy_module
from ..primitives import broadcast_to, cast_to, drop_distributions, fill, get_op, linear_jvp, move_batch_axis
from ..symbolic import to_ir
from .common import derived_program, is_float
from .forward import jvp_program

sp = lazy_module("sympy")  # imported when a formula is first differentiated or simplified


class _State:
    """The direction count and the ``J``/``L`` of each variable (absent: zero)."""

    def __init__(self, k: int):
        self.k = k
        self.J: dict[Var, Atom] = {}
        self.L: dict[Var, Atom] = {}

    def j(self, a: Atom) -> Atom | None:
        return self.J.get(a) if isinstance(a, Var) else None

    def lap(self, a: Atom) -> Atom | None:
        return self.L.get(a) if isinstance(a, Var) else None


# ----------------------------------------------------------------------------- helpers
def _lead(b: Builder, jv: Atom, rank: int) -> Atom:
    """``J`` of shape ``(k, *s)`` reshaped to ``(k, 1, ..., *s)`` with ``rank`` axes after the
    direction axis, so that it broadcasts against values of rank ``rank``."""
    shape = jv.shape[1:]
    if len(shape) == rank:
        return jv
    return b.bind1("reshape", jv, shape=(jv.shape[0], *(1,) * (rank - len(shape)), *shape))


def _add(b: Builder, terms: list[Atom]) -> Atom | None:
    out = None
    for t in terms:
        out = t if out is None else b.bind1("add", out, t)
    return out


# ----------------------------------------------------------------------------- elementwise
def _cluster(b: Builder, members: list[Eqn], needed: list[Var], st: _State) -> None:
    """``J`` and ``L`` of the ``needed`` outputs of a convex elementwise cluster."""
    ce = cluster_expressions(members)
    active = [(v, s) for v, s in zip(ce.inputs, ce.symbols) if v in st.J]
    if not active or not needed:
        return
    dt = needed[0].dtype
    env: dict = dict(zip(ce.symbols, ce.inputs))
    # the Gram terms G_ab = Σ_i J_a,i J_b,i, formed where a second partial needs them
    gram_sym: dict[tuple[int, int], sp.Symbol] = {}
    gram_val: dict[tuple[int, int], Atom] = {}
    second: dict[Var, list[tuple[int, int, sp.Expr]]] = {}
    for o in needed:
        terms = []
        for x in range(len(active)):
            for y in range(x, len(active)):
                d2 = drop_distributions(sp.diff(ce.expr_of[o], active[x][1], active[y][1]))
                if d2 != 0:
                    terms.append((x, y, d2 if x == y else 2 * d2))
        second[o] = terms
    b.loc = members[-1].loc
    for o in needed:
        for x, y, _ in second[o]:
            if (x, y) in gram_val:
                continue
            ja, jb = st.J[active[x][0]], st.J[active[y][0]]
            rank = max(len(ja.shape) - 1, len(jb.shape) - 1)
            prod = b.bind1("mul", _lead(b, ja, rank), _lead(b, jb, rank))
            gram_val[(x, y)] = b.bind1("reduce_sum", prod, axes=(0,), keepdims=False)
            gram_sym[(x, y)] = sp.Symbol(f"g{x}_{y}", real=True)
            env[gram_sym[(x, y)]] = gram_val[(x, y)]
    t_syms, l_syms = {}, {}
    exprs, kinds = [], []
    for o in needed:
        rank = len(o.shape)
        jexpr = sp.Integer(0)
        lexpr = sp.Integer(0)
        for x, (v, s) in enumerate(active):
            d1 = drop_distributions(sp.diff(ce.expr_of[o], s))
            if d1 == 0:
                continue
            key = (x, rank)
            if key not in t_syms:
                t_syms[key] = sp.Symbol(f"t{x}_{rank}", real=True)
                env[t_syms[key]] = _lead(b, st.J[v], rank)
            jexpr += d1 * t_syms[key]
            if v in st.L:
                if x not in l_syms:
                    l_syms[x] = sp.Symbol(f"l{x}", real=True)
                    env[l_syms[x]] = st.L[v]
                lexpr += d1 * l_syms[x]
        for x, y, d2 in second[o]:
            lexpr += d2 * gram_sym[(x, y)]
        exprs += [jexpr, lexpr]
        kinds.append(o)
    atoms = to_ir(b, exprs, env, dt)
    for n, o in enumerate(kinds):
        jv, lv = atoms[2 * n], atoms[2 * n + 1]
        full = (st.k, *o.shape)
        if isinstance(jv, Lit):
            if jv.value != 0:
                st.J[o] = fill(b, full, jv.value, o.dtype)
        else:
            jv = cast_to(b, jv, o.dtype)
            if jv.shape != full:
                jv = broadcast_to(b, _lead(b, jv, len(o.shape)) if len(jv.shape) == len(o.shape) + 1 else jv, full)
            st.J[o] = jv
        if isinstance(lv, Lit):
            if lv.value != 0:
                st.L[o] = fill(b, o.shape, lv.value, o.dtype)
        else:
            st.L[o] = broadcast_to(b, cast_to(b, lv, o.dtype), o.shape)


# ----------------------------------------------------------------------------- structural
def _linear(b: Builder, e: Eqn, st: _State) -> None:
    """An op linear in its one input (``OpDef.jvp`` is :func:`linear_jvp`): ``J`` through the
    op's batching rule over the direction axis, ``L`` through the op itself."""
    (a,) = e.ins
    (o,) = e.outs
    (jo,), (dim,) = batch_eqn(BatchBuilder(b), e, [st.J[a]], [0], st.k)
    st.J[o] = move_batch_axis(b, jo, dim, 0)
    la = st.lap(a)
    if la is not None:
        st.L[o] = b.bind1(e.op, la, **e.params)


def _mm_left(b: Builder, ja: Atom, y: Atom, tb: bool) -> Atom:
    """``J_a,i · op(y)`` for every direction: one matrix product of the stacked rows."""
    k, n, m = ja.shape
    r = b.bind1("matmul", b.bind1("reshape", ja, shape=(k * n, m)), y, transpose_a=False, transpose_b=tb)
    return b.bind1("reshape", r, shape=(k, n, r.shape[1]))


def _mm_right(b: Builder, x: Atom, jb: Atom, ta: bool) -> Atom:
    """``op(x) · J_b,i`` for every direction."""
    k, m, p = jb.shape
    cols = b.bind1("reshape", b.bind1("transpose", jb, perm=(1, 0, 2)), shape=(m, k * p))
    r = b.bind1("matmul", x, cols, transpose_a=ta, transpose_b=False)
    return b.bind1("transpose", b.bind1("reshape", r, shape=(r.shape[0], k, p)), perm=(1, 0, 2))


def _matmul(b: Builder, e: Eqn, st: _State) -> None:
    x, y = e.ins
    (o,) = e.outs
    ta, tb = e.params["transpose_a"], e.params["transpose_b"]
    jx, jy = st.j(x), st.j(y)
    # the directions of op(x) and op(y), transposed where the product transposes its operand
    if jx is not None and ta:
        jx = b.bind1("transpose", jx, perm=(0, 2, 1))
    if jy is not None and tb:
        jy = b.bind1("transpose", jy, perm=(0, 2, 1))
    jterms, lterms = [], []
    if jx is not None:
        jterms.append(_mm_left(b, jx, y, tb))
    if jy is not None:
        jterms.append(_mm_right(b, x, jy, ta))
    if st.lap(x) is not None:
        lterms.append(b.bind1("matmul", st.lap(x), y, transpose_a=ta, transpose_b=tb))
    if st.lap(y) is not None:
        lterms.append(b.bind1("matmul", x, st.lap(y), transpose_a=ta, transpose_b=tb))
    if jx is not None and jy is not None:
        k, n, m = jx.shape
        rows = b.bind1("reshape", b.bind1("transpose", jx, perm=(1, 0, 2)), shape=(n, k * m))
        cols = b.bind1("reshape", jy, shape=(k * m, jy.shape[2]))
        cross = b.bind1("matmul", rows, cols, transpose_a=False, transpose_b=False)
        lterms.append(b.bind1("mul", cross, Lit(2, o.dtype)))
    _set(st, o, _add(b, jterms), _add(b, lterms))


def _batch_matmul(b: Builder, e: Eqn, st: _State) -> None:
    x, y = e.ins
    (o,) = e.outs
    p = e.params
    jx, jy = st.j(x), st.j(y)
    rank = max(len(x.shape), len(y.shape))
    jterms, lterms = [], []
    if jx is not None:
        jterms.append(b.bind1("batch_matmul", _lead(b, jx, rank), y, **p))
    if jy is not None:
        jterms.append(b.bind1("batch_matmul", x, _lead(b, jy, rank), **p))
    if st.lap(x) is not None:
        lterms.append(b.bind1("batch_matmul", st.lap(x), y, **p))
    if st.lap(y) is not None:
        lterms.append(b.bind1("batch_matmul", x, st.lap(y), **p))
    if jx is not None and jy is not None:
        prod = b.bind1("batch_matmul", _lead(b, jx, rank), _lead(b, jy, rank), **p)
        cross = b.bind1("reduce_sum", prod, axes=(0,), keepdims=False)
        lterms.append(b.bind1("mul", cross, Lit(2, o.dtype)))
    jo = _add(b, jterms)
    if jo is not None and jo.shape != (st.k, *o.shape):
        jo = broadcast_to(b, jo, (st.k, *o.shape))
    lo = _add(b, lterms)
    if lo is not None and lo.shape != o.shape:
        lo = broadcast_to(b, lo, o.shape)
    _set(st, o, jo, lo)


def _set(st: _State, o: Var, jo: Atom | None, lo: Atom | None) -> None:
    if jo is not None:
        st.J[o] = jo
    if lo is not None:
        st.L[o] = lo


def _one_eqn_program(e: Eqn) -> Program:
    """The equation ``e`` as a closed program of its variable inputs."""
    ins = [a for a in dict.fromkeys(a for a in e.ins if isinstance(a, Var))]
    fresh = {a: Var(a.aval, a.hint) for a in ins}
    outs = [Var(o.aval, o.hint) for o in e.outs]
    copy = replace(e, ins=[substitute(fresh, a) if isinstance(a, Var) else a for a in e.ins], outs=outs)
    return Program(
        name=e.op,
        invars=[fresh[a] for a in ins],
        n_args=len(ins),
        in_tree=("tuple", (None,) * len(ins)),
        parameters=[],
        consts=[],
        eqns=[copy],
        outs=list(outs),
        out_tree=("tuple", (None,) * len(outs)),
        arg_names=[f"a{i}" for i in range(len(ins))],
    )


def _inline(b: Builder, prog: Program, args: list[Atom]) -> list[Atom]:
    env: dict[Var, Atom] = dict(zip(prog.invars, args))
    for e in prog.eqns:
        outs = [Var(o.aval, o.hint) for o in e.outs]
        b.eqns.append(replace(e, ins=[substitute(env, a) for a in e.ins], outs=outs, loc=e.loc or b.loc))
        env.update(zip(e.outs, outs))
    return [substitute(env, o) for o in prog.outs]


def _generic(b: Builder, e: Eqn, st: _State) -> None:
    """Any op: its directional derivatives by forward mode (``J_o = Dop[J]``, ``Dop[L]``) and
    its second ones by forward over forward mode (``D²op[J_i, J_i]``), the derivative program
    batched over the directions (:mod:`s2s_ad.batching`) and the second derivatives summed."""
    p = _one_eqn_program(e)
    ins = list(dict.fromkeys(a for a in e.ins if isinstance(a, Var)))
    active = [n for n, a in enumerate(ins) if a in st.J and is_float(a)]
    outs = list(e.outs)
    float_outs = [n for n, o in enumerate(outs) if is_float(o)]
    if not active or not float_outs:
        return
    nout = len(outs)
    p2 = jvp_program(jvp_program(p, active, name=f"{e.op}_jvp"), active, name=f"{e.op}_jvp_jvp")
    dirs = [st.J[ins[n]] for n in active]
    # the directions are both the first- and the second-level tangents: D²op[J_i, J_i]
    res, dims = batch_eqns(
        BatchBuilder(b), p2, [*ins, *dirs, *dirs], [*(None,) * len(ins), *(0,) * (2 * len(active))], st.k
    )
    first_l: list[Atom | None] = [None] * nout
    if any(ins[n] in st.L for n in active):
        t = [st.L.get(ins[n]) or fill(b, ins[n].shape, 0, ins[n].dtype) for n in active]
        first_l = list(_inline(b, jvp_program(p, active, name=f"{e.op}_jvp"), [*ins, *t])[nout:])
    for n in float_outs:
        o = outs[n]
        jo, dj = res[nout + n], dims[nout + n]
        so, ds = res[3 * nout + n], dims[3 * nout + n]
        if dj is None:  # the same for every direction: a derivative that does not depend on it
            continue
        st.J[o] = cast_to(b, move_batch_axis(b, jo, dj, 0), o.dtype)
        terms = []
        if ds is not None:
            terms.append(cast_to(b, b.bind1("reduce_sum", so, axes=(ds,), keepdims=False), o.dtype))
        if first_l[n] is not None:
            terms.append(broadcast_to(b, cast_to(b, first_l[n], o.dtype), o.shape))
        lo = _add(b, terms)
        if lo is not None:
            st.L[o] = lo


_STRUCTURAL = {"matmul": _matmul, "batch_matmul": _batch_matmul}


# ----------------------------------------------------------------------------- the sweep
def propagate(b: Builder, eqns: list[Eqn], env: dict[Var, Atom], st: _State, names: Mapping[Var, str]) -> None:
    """Append copies of ``eqns`` to ``b`` (``env`` maps old variables to new atoms), each
    unit followed by the equations of its outputs' ``J`` and ``L`` (``st``, keyed by the new
    variables, is extended)."""
    units = elementwise_units(eqns)
    for unit in units:
        copies = []
        for e in unit:
            ins = [substitute(env, a) for a in e.ins]
            new_outs = [Var(o.aval, names.get(o) or o.hint) for o in e.outs]
            copies.append(replace(e, ins=ins, outs=new_outs))
            env.update(zip(e.outs, new_outs))
        b.eqns.extend(copies)
        if not any(st.j(a) is not None for c in copies for a in c.ins):
            continue
        b.loc = unit[0].loc
        if get_op(unit[0].op).kind == "elementwise":
            outs = [o for c in copies for o in c.outs]
            if len(copies) > 1 and expression_size(copies, outs) > MAX_TREE:
                for c in copies:
                    if any(st.j(a) is not None for a in c.ins):
                        _cluster(b, [c], list(c.outs), st)
            else:
                _cluster(b, copies, outs, st)
        else:
            (c,) = copies
            rule = _STRUCTURAL.get(c.op)
            if rule is not None:
                rule(b, c, st)
            elif get_op(c.op).jvp is linear_jvp and len(c.ins) == 1:
                _linear(b, c, st)
            else:
                _generic(b, c, st)
        for c in copies:
            for o in c.outs:
                name = b.name_of(o)
                if name is None:
                    continue
                for table, suffix in ((st.J, "_jac"), (st.L, "_lap")):
                    t = table.get(o)
                    if isinstance(t, Var) and b.name_of(t) is None:
                        b.names[t] = f"{name}{suffix}"
    b.loc = None


def laplacian_program(prog: Program, wrt: int, k: int, name: str | None = None) -> Program:
    """The forward-Laplacian program of ``prog`` along ``k`` directions in its input leaf
    ``wrt`` (a position in ``prog.invars``).

    It takes ``prog``'s arguments followed by the directions (one argument of shape
    ``(k, *x.shape)``), then ``prog``'s parameters and constants; it returns
    ``(value, J, L)``, each structured like ``prog``'s output: ``J`` of each output has shape
    ``(k, *out.shape)`` (its derivatives along the directions), ``L`` the output's shape (the
    sum of its second derivatives along them).
    """
    b = Builder()
    new_in, env = fresh_inputs(prog)
    x = new_in[wrt]
    dirs = Var(Aval((k, *x.shape), x.dtype), f"{x.hint or 'x'}_dirs")
    st = _State(k)
    st.J[x] = dirs
    propagate(b, prog.eqns, env, st, prog.names)
    outs = [substitute(env, o) for o in prog.outs[: prog.n_results]]
    jouts, louts = [], []
    for o in outs:
        jv = st.j(o) if is_float(o) else None
        lv = st.lap(o) if is_float(o) else None
        dt = o.dtype if is_float(o) else x.dtype
        jouts.append(fill(b, (k, *o.shape), 0, dt) if jv is None else jv)
        louts.append(fill(b, o.shape, 0, dt) if lv is None else lv)
    args = new_in[: prog.n_args]
    arg_names = [*prog.arg_names, dirs.hint]
    in_tree = ("tuple", (*prog.in_tree[1], None))
    out_tree = ("tuple", (prog.out_tree, prog.out_tree, prog.out_tree))
    return derived_program(
        prog,
        b,
        name or f"laplacian_{prog.name}",
        [*args, dirs],
        new_in,
        in_tree,
        outs + jouts + louts,
        out_tree,
        arg_names,
    )
