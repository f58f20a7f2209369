"""Loop bodies on small arrays computed element by element (scalarisation).

A loop body that works on arrays of a few elements (an ODE state of shape (3,), a 2x2 matrix)
allocates each of them on every iteration; numpy pays a call per operation on them. This pass
rewrites the bodies of ``loop`` and ``while`` regions (and the ``cond`` regions inside them,
at any depth) so that each value of a static shape with at most :data:`LIMIT` elements becomes
that many 0-d values: the generated code is then plain scalar arithmetic (no allocation in
Numba's loop; Python arithmetic on numpy scalars in the numpy code, which answers first calls
while Numba compiles).

* Each op computes elements by its ``scalar`` rule in the op table
  (:attr:`s2s_ad.primitives.OpDef.scalar`): elementwise ops element by element with
  broadcasting, indexing with static indices picks elements, ``scatter`` (the lowering of
  ``stack``) places them, reshapes, transposes and broadcasts permute them, reductions and
  small matmuls are chains of adds and products, fills are literals.
* An op without a rule (or a value above the limit) keeps its array form: its small inputs are
  packed into arrays before it and its small outputs picked apart after it. The result is the
  same program, never a different one.
* A region's small carried values, consts and branch operands become one input per element
  (picked before the region, literal elements substituted), small per-iteration outputs (the
  ``ys``) one stacked output per element (a column), reassembled after the loop only where an
  array is read (a later loop that iterates over them takes the columns). The stacked outputs
  of a ``while`` or of a loop of dynamic length (the tape of reverse mode) are columns only
  where later loops alone read them.

``LIMIT`` is 16 elements: a 4x4 matrix, or a state of up to 16 components. Above it the element
count (and, for a matmul, the product count) of the scalar code grows faster than what an
array operation costs.

:func:`hoist_invariants` moves the equations of a loop body that read only the loop's consts out
of the loop (loop-invariant code motion), and :func:`prune_regions` drops the outputs of regions
that nothing reads (with the carried values only they need and the work feeding them).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .ir import Atom, Aval, Builder, Eqn, Lit, Program, Var, name_of, subprograms
from .primitives import as_elements, fill, get_op
from .regions import is_region, loop_layout, subprogram, while_layout

#: The most elements a value may have to be computed element by element.
LIMIT = 16

FULL = ("slice", None, None, None)


def small(a: Aval) -> bool:
    """A static shape of at most :data:`LIMIT` elements (0-d included)."""
    return all(d >= 0 for d in a.shape) and a.size <= LIMIT


def _worth(prog: Program) -> bool:
    """Whether ``prog`` (or a region in it) has a small value that is not 0-d."""
    for v in prog.invars:
        if v.shape and small(v.aval):
            return True
    for e in prog.eqns:
        if any(o.shape and small(o.aval) for o in e.outs):
            return True
        if any(_worth(p) for p in subprograms(e)):
            return True
    return False


def _flat(x: np.ndarray) -> list[Atom]:
    return list(x.reshape(-1))


class _Scope:
    """One program being rewritten: each of its variables has an array form (an atom of the
    new program), an element form (an object array of 0-d atoms), or a column form (the
    stacked per-iteration outputs of a loop, one per element), made from one another on use."""

    def __init__(self, names: dict[Var, str], scalar: bool) -> None:
        self.b = Builder()
        self.names = names
        self.scalar = scalar
        self.arr: dict[Var, Atom] = {}
        self.el: dict[Var, np.ndarray] = {}
        self.cols: dict[Var, list[Atom]] = {}
        self.only_xs: set[Var] = set()

    # ------------------------------------------------------------------ forms
    def array(self, a: Atom) -> Atom:
        if isinstance(a, Lit):
            return a
        if a not in self.arr:
            self.arr[a] = self._pack_cols(a) if a in self.cols else self._pack(a.aval, self.el[a])
            self._name(self.arr[a], a)
        return self.arr[a]

    def elems(self, a: Atom) -> np.ndarray:
        if isinstance(a, Lit):
            return as_elements(a)
        if a not in self.el:
            x = self.array(a)
            if x.shape == ():
                e = as_elements(x)
            else:
                e = np.empty(x.shape, object)
                for idx in np.ndindex(*x.shape):
                    e[idx] = self.b.bind1("getitem", x, index=tuple(int(i) for i in idx))
                    self._name(e[idx], a, idx)
            self.el[a] = e
        return self.el[a]

    def _pack(self, aval: Aval, e: np.ndarray) -> Atom:
        """An array of the elements ``e`` (one ``pack``)."""
        if aval.shape == ():
            return e[()]
        if aval.size == 0:
            return fill(self.b, aval.shape, 0, aval.dtype)
        return self.b.bind1("pack", *_flat(e), shape=aval.shape)

    def _pack_cols(self, a: Var) -> Atom:
        """The stacked values ``a`` (shape ``(n, *s)``) from their columns (each ``(n,)``):
        each column placed by a ``scatter`` and the parts added."""
        b = self.b
        cols = self.cols[a]
        n, k = a.shape[0], len(cols)
        acc: Atom | None = None
        for j, c in enumerate(cols):
            one = b.bind1("reshape", c, shape=(n, 1))
            part = b.bind1("scatter", one, index=(FULL, ("slice", j, j + 1, None)), shape=(n, k))
            acc = part if acc is None else b.bind1("add", acc, part)
        assert acc is not None  # columns are made for stacks of one or more elements (see _region)
        return acc if a.shape == (n, k) else b.bind1("reshape", acc, shape=a.shape)

    def _name(self, new: Atom, old: Var, idx: tuple | None = None) -> None:
        nm = name_of(self.names, old)
        if isinstance(new, Var) and nm is not None and name_of(self.names, new) is None:
            self.names[new] = nm if not idx else f"{nm}_{'_'.join(map(str, idx))}"

    # ------------------------------------------------------------------ equations
    def run(self, eqns: list[Eqn], outs: list[Atom]) -> None:
        # The values read only as the iterated inputs of loops (never as arrays): the stacked
        # outputs of a loop of dynamic length or of a ``while`` are split into columns only
        # where they are these (an array of a dynamic length is not assembled from columns).
        xs_use: set[Var] = set()
        other: set[Var] = {a for a in outs if isinstance(a, Var)}
        for e in eqns:
            lo = hi = 0
            if e.op == "loop":
                lead, nc, nx, _ = loop_layout(e.params)
                lo, hi = lead + nc, lead + nc + nx
            for k, a in enumerate(e.ins):
                if isinstance(a, Var):
                    (xs_use if lo <= k < hi else other).add(a)
        self.only_xs = xs_use - other
        for e in eqns:
            self.eqn(e)

    def eqn(self, e: Eqn) -> None:
        b = self.b
        b.loc, b.primal, b.adjoint = e.loc, e.primal, e.adjoint
        if is_region(e):
            self._region(e)
            return
        rule = get_op(e.op).scalar
        if (
            self.scalar
            and rule is not None
            and all(small(a.aval) for a in e.ins)
            and all(small(o.aval) for o in e.outs)
        ):
            start = len(b.eqns)
            res = rule(b, e, [self.elems(a) for a in e.ins])
            if res is not None:
                made = {o for x in b.eqns[start:] for o in x.outs}
                for o, r in zip(e.outs, res):
                    r = as_elements(r)
                    for idx in np.ndindex(*r.shape):
                        if r[idx] in made:
                            self._name(r[idx], o, idx)
                    self.el[o] = r
                return
        b.eqns.append(replace(e, ins=[self.array(a) for a in e.ins]))
        for o in e.outs:
            self.arr[o] = o

    # ------------------------------------------------------------------ regions
    def _inputs(
        self, sub: _Scope, invars: list[Var], atoms: list[Atom], split: bool, literals: bool
    ) -> tuple[list[Var], list[Atom]]:
        """The new inputs of a sub-program for ``invars`` given ``atoms`` here: one per
        element where ``split`` (a literal element is substituted where ``literals``)."""
        new_in: list[Var] = []
        new_at: list[Atom] = []
        for v, a in zip(invars, atoms):
            if split and small(v.aval):
                src = self.elems(a)
                indices = list(np.ndindex(*v.shape))
                _per_element(sub, v, indices, [src[idx] for idx in indices], literals, new_in, new_at)
            else:
                new_in.append(v)
                new_at.append(self.array(a))
                sub.arr[v] = v
        return new_in, new_at

    def _xs(self, sub: _Scope, invars: list[Var], atoms: list[Atom], split: bool) -> tuple[list[Var], list[Atom]]:
        """A loop's iterated inputs: columns where the stack was made by a loop here."""
        new_in: list[Var] = []
        new_at: list[Atom] = []
        for v, a in zip(invars, atoms):
            if split and isinstance(a, Var) and a in self.cols and a not in self.arr:
                _per_element(sub, v, list(np.ndindex(*v.shape)), self.cols[a], False, new_in, new_at)
            else:
                new_in.append(v)
                new_at.append(self.array(a))
                sub.arr[v] = v
        return new_in, new_at

    def _outs(self, sub: _Scope, outs: list[Atom], split: list[bool]) -> list[Atom]:
        res: list[Atom] = []
        for a, s in zip(outs, split):
            res.extend(_flat(sub.elems(a)) if s else [sub.array(a)])
        return res

    def _sub(self, prog: Program, split: bool) -> _Scope:
        return _Scope(dict(prog.names), split)

    def _close(self, prog: Program, sub: _Scope, invars: list[Var], outs: list[Atom]) -> Program:
        return subprogram(prog.name, invars, sub.b.eqns, outs, names=sub.names)

    def _region(self, e: Eqn) -> None:
        b = self.b
        p = e.params
        outs_el: list[tuple[Var, int, bool]] = []  # (original output, count, split)
        if e.op == "loop":
            body: Program = p["body"]
            split = self.scalar or _worth(body)
            lead, nc, nx, ncarry = loop_layout(p)
            bi = body.invars
            sub = self._sub(body, split)
            sub.arr[bi[0]] = bi[0]
            ins: list[Atom] = [self.array(a) for a in e.ins[:lead]]
            c_in, c_at = self._inputs(sub, bi[1 : 1 + nc], e.ins[lead : lead + nc], split, True)
            x_in, x_at = self._xs(sub, bi[1 + nc : 1 + nc + nx], e.ins[lead + nc : lead + nc + nx], split)
            k_in, k_at = self._inputs(sub, bi[1 + nc + nx :], e.ins[lead + nc + nx :], split, False)
            sub.run(body.eqns, body.outs)
            carry_split = [split and small(v.aval) for v in bi[1 + nc + nx :]]
            ys = body.outs[ncarry:]
            ys_split = [self._columns(split, y, o, lead == 0) for y, o in zip(ys, e.outs[ncarry:])]
            new_outs = self._outs(sub, body.outs, carry_split + ys_split)
            new_body = self._close(body, sub, [bi[0], *c_in, *x_in, *k_in], new_outs)
            n_ys = sum(y.aval.size if s else 1 for y, s in zip(ys, ys_split))
            params = dict(p, body=new_body, n_consts=len(c_in), n_xs=len(x_in), n_ys=n_ys)
            res = b.bind("loop", [*ins, *c_at, *x_at, *k_at], **params)
            for o, v, s in zip(e.outs[:ncarry], bi[1 + nc + nx :], carry_split):
                outs_el.append((o, v.aval.size if s else 1, s))
            for o, y, s in zip(e.outs[ncarry:], ys, ys_split):
                outs_el.append((o, y.aval.size if s else 1, s))
            self._bind_outs(res, outs_el, columns_from=ncarry)
        elif e.op == "while":
            cond: Program = p["cond"]
            body = p["body"]
            split = self.scalar or _worth(body) or _worth(cond)
            nc, ncarry = while_layout(p)
            progs = []
            for prog in (cond, body):
                sub = self._sub(prog, split)
                c_in, c_at = self._inputs(sub, prog.invars[:nc], e.ins[:nc], split, True)
                k_in, k_at = self._inputs(sub, prog.invars[nc:], e.ins[nc:], split, False)
                sub.run(prog.eqns, prog.outs)
                progs.append((prog, sub, [*c_in, *k_in]))
            (cp, csub, cin), (bp, bsub, bin_) = progs
            new_cond = self._close(cp, csub, cin, [csub.array(cp.outs[0])])
            carry_split = [split and small(v.aval) for v in body.invars[nc:]]
            ys = body.outs[ncarry:]
            ys_split = [self._columns(split, y, o, False) for y, o in zip(ys, e.outs[ncarry + 1 :])]
            new_outs = self._outs(bsub, body.outs, carry_split + ys_split)
            new_body = self._close(bp, bsub, bin_, new_outs)
            n_ys = sum(y.aval.size if s else 1 for y, s in zip(ys, ys_split))
            params = dict(p, cond=new_cond, body=new_body, n_consts=len(c_in), n_ys=n_ys)
            res = b.bind("while", [*c_at, *k_at], **params)
            for o, v, s in zip(e.outs[:ncarry], body.invars[nc:], carry_split):
                outs_el.append((o, v.aval.size if s else 1, s))
            outs_el.append((e.outs[ncarry], 1, False))
            for o, y, s in zip(e.outs[ncarry + 1 :], ys, ys_split):
                outs_el.append((o, y.aval.size if s else 1, s))
            self._bind_outs(res, outs_el, columns_from=ncarry + 1)
        else:  # cond
            if_false, if_true = p["branches"]
            split = self.scalar
            pred = self.array(e.ins[0])
            out_split = [split and small(o.aval) for o in e.outs]
            new_branches = []
            operands: list[Atom] = []
            for prog in (if_false, if_true):
                sub = self._sub(prog, split)
                o_in, o_at = self._inputs(sub, prog.invars, e.ins[1:], split, True)
                sub.run(prog.eqns, prog.outs)
                new_branches.append(self._close(prog, sub, o_in, self._outs(sub, prog.outs, out_split)))
                operands = o_at  # the same atoms for both branches
            res = b.bind("cond", [pred, *operands], **dict(p, branches=tuple(new_branches)))
            outs_el = [(o, o.aval.size if s else 1, s) for o, s in zip(e.outs, out_split)]
            self._bind_outs(res, outs_el)

    def _columns(self, split: bool, y: Atom, out: Var, static: bool) -> bool:
        """Whether the stacked output ``out`` (of per-iteration value ``y``) is made one
        column per element: of a loop of static length, or read only by later loops."""
        if not (split and small(y.aval) and y.aval.size > 0):
            return False
        return static or (bool(y.shape) and out in self.only_xs)

    def _bind_outs(self, res: list[Var], outs: list[tuple[Var, int, bool]], columns_from: int | None = None) -> None:
        k = 0
        for pos, (o, n, s) in enumerate(outs):
            got = res[k : k + n]
            k += n
            if not s:
                self.arr[o] = got[0]
                self._name(got[0], o)
            elif columns_from is not None and pos >= columns_from:
                self.cols[o] = list(got)
                for c in got:
                    self._name(c, o)
            else:
                self.el[o] = np.array(got, dtype=object).reshape(o.shape) if o.shape else as_elements(got[0])
                for idx, c in zip(np.ndindex(*o.shape), got):
                    self._name(c, o, idx)


def scalarise(prog: Program) -> Program:
    """``prog`` with the small values of its loop bodies computed element by element (see the
    module docstring); the program itself keeps its arrays."""
    if not any(is_region(e) for e in prog.eqns):
        return prog
    top = _Scope(dict(prog.names), False)
    for v in prog.invars:
        top.arr[v] = v
    top.run(prog.eqns, prog.outs)
    outs = [top.array(a) for a in prog.outs]
    return prog.replace(eqns=top.b.eqns, outs=outs, names=top.names)


# ----------------------------------------------------------------------------- loop-invariant code motion
#: Structural ops a loop body may compute before the loop (as well as every elementwise op):
#: ones that cannot fail on values of their static shapes, so that computing them where the
#: loop runs no iteration changes nothing.
HOISTABLE = frozenset(
    {
        "getitem",
        "reshape",
        "broadcast_to",
        "transpose",
        "cast",
        "fill",
        "scatter",
        "reduce_sum",
        "reduce_mean",
        "reduce_max",
        "reduce_min",
        "matmul",
        "stop_gradient",
        "greater",
        "greater_equal",
        "less",
        "less_equal",
        "equal",
        "not_equal",
    }
)


def _hoistable(e: Eqn) -> bool:
    return not is_region(e) and (e.op in HOISTABLE or get_op(e.op).kind == "elementwise")


def _with_subprograms(e: Eqn, fn) -> Eqn:
    if not subprograms(e):
        return e

    def sub(v: object) -> object:
        if isinstance(v, Program):
            return fn(v)
        if isinstance(v, tuple) and v and all(isinstance(x, Program) for x in v):
            return tuple(fn(x) for x in v)
        return v

    return replace(e, params={k: sub(v) for k, v in e.params.items()})


def _split_invariant(body: Program, consts: list[Var], outer: list[Atom], names: dict[Var, str]):
    """The equations of ``body`` that read only ``consts`` (bound to ``outer``), copied to the
    enclosing program; gives (those copies, the body's variables they define, their outer
    counterparts, the body's other equations)."""
    env: dict[Var, Atom] = dict(zip(consts, outer))
    hoisted: list[Eqn] = []
    inner: list[Var] = []
    made: list[Var] = []
    rest: list[Eqn] = []
    for e in body.eqns:
        if _hoistable(e) and all(isinstance(a, Lit) or a in env for a in e.ins):
            outs = [Var(o.aval, o.hint) for o in e.outs]
            hoisted.append(replace(e, ins=[a if isinstance(a, Lit) else env[a] for a in e.ins], outs=outs))
            for o, n in zip(e.outs, outs):
                env[o] = n
                nm = name_of(body.names, o)
                if nm is not None:
                    names[n] = nm
                inner.append(o)
                made.append(n)
        else:
            rest.append(e)
    return hoisted, inner, made, rest


def hoist_invariants(prog: Program) -> Program:
    """Loop-invariant code motion: the equations of a ``loop`` or ``while`` body that depend
    only on the loop's consts (not on the index, the iterated values or the carried values)
    are computed once before the loop and passed in as consts (only ops in
    :data:`HOISTABLE` and elementwise ones, which cannot fail)."""
    names = dict(prog.names)
    new: list[Eqn] = []
    changed = False
    for e in prog.eqns:
        e2 = _with_subprograms(e, hoist_invariants)
        changed |= e2 is not e
        e = e2
        if e.op == "loop":
            p = e.params
            body: Program = p["body"]
            lead, nc, nx, ncarry = loop_layout(p)
            consts = body.invars[1 : 1 + nc]
            hoisted, inner, made, rest = _split_invariant(body, consts, e.ins[lead : lead + nc], names)
            if hoisted:
                bi = body.invars
                new_body = subprogram(
                    body.name, [bi[0], *consts, *inner, *bi[1 + nc :]], rest, body.outs, names=body.names
                )
                ins = [*e.ins[: lead + nc], *made, *e.ins[lead + nc :]]
                e = replace(e, ins=ins, params=dict(p, body=new_body, n_consts=nc + len(inner)))
                new.extend(hoisted)
                changed = True
        elif e.op == "while":
            p = e.params
            cond: Program = p["cond"]
            body = p["body"]
            nc, ncarry = while_layout(p)
            consts = body.invars[:nc]
            hoisted, inner, made, rest = _split_invariant(body, consts, e.ins[:nc], names)
            if hoisted:
                new_body = subprogram(
                    body.name, [*consts, *inner, *body.invars[nc:]], rest, body.outs, names=body.names
                )
                extra = [Var(v.aval, v.hint) for v in inner]  # the condition takes them too, unread
                new_cond = subprogram(
                    cond.name, [*cond.invars[:nc], *extra, *cond.invars[nc:]], cond.eqns, cond.outs, names=cond.names
                )
                ins = [*e.ins[:nc], *made, *e.ins[nc:]]
                e = replace(e, ins=ins, params=dict(p, cond=new_cond, body=new_body, n_consts=nc + len(inner)))
                new.extend(hoisted)
                changed = True
        new.append(e)
    return prog.replace(eqns=new, names=names) if changed else prog


# ----------------------------------------------------------------------------- region outputs
def _read(prog: Program) -> set[Var]:
    """The variables ``prog``'s equations and outputs read."""
    used = {a for a in prog.outs if isinstance(a, Var)}
    for e in prog.eqns:
        used.update(a for a in e.ins if isinstance(a, Var))
    return used


def _keep(xs: list, flags: list[bool]) -> list:
    return [x for x, f in zip(xs, flags) if f]


def _prune_loop(e: Eqn, live: list[bool]) -> Eqn:
    p = e.params
    body: Program = p["body"]
    lead, nc, nx, ncarry = loop_layout(p)
    bi = body.invars
    need = live[:ncarry]
    ys_live = live[ncarry:]
    while True:
        pb = prune_regions(body.replace(outs=_keep(body.outs, need + ys_live)))
        used = _read(pb)
        grown = [n or (v in used) for n, v in zip(need, bi[1 + nc + nx :])]
        if grown == need:
            break
        need = grown
    used = _read(pb)
    keep_in = [True] + [v in used for v in bi[1 : 1 + nc + nx]] + need
    new_body = subprogram(body.name, _keep(bi, keep_in), pb.eqns, pb.outs, names=body.names)
    ins = [*e.ins[:lead], *_keep(e.ins[lead:], keep_in[1:])]
    params = dict(
        p,
        body=new_body,
        n_consts=sum(keep_in[1 : 1 + nc]),
        n_xs=sum(keep_in[1 + nc : 1 + nc + nx]),
        n_ys=sum(ys_live),
    )
    return replace(e, ins=ins, outs=_keep(e.outs, need + ys_live), params=params)


def _prune_while(e: Eqn, live: list[bool]) -> Eqn:
    p = e.params
    cond: Program = p["cond"]
    body: Program = p["body"]
    nc, ncarry = while_layout(p)
    cond = prune_regions(cond)
    cused = _read(cond)
    need = [lv or (v in cused) for lv, v in zip(live[:ncarry], cond.invars[nc:])]
    ys_live = live[ncarry + 1 :]
    while True:
        pb = prune_regions(body.replace(outs=_keep(body.outs, need + ys_live)))
        used = _read(pb)
        grown = [n or (v in used) for n, v in zip(need, body.invars[nc:])]
        if grown == need:
            break
        need = grown
    used = _read(pb)
    keep_c = [v in used or w in cused for v, w in zip(body.invars[:nc], cond.invars[:nc])]
    keep_in = keep_c + need
    new_body = subprogram(body.name, _keep(body.invars, keep_in), pb.eqns, pb.outs, names=body.names)
    new_cond = subprogram(cond.name, _keep(cond.invars, keep_in), cond.eqns, cond.outs, names=cond.names)
    outs = [*_keep(e.outs[:ncarry], need), e.outs[ncarry], *_keep(e.outs[ncarry + 1 :], ys_live)]
    params = dict(p, cond=new_cond, body=new_body, n_consts=sum(keep_c), n_ys=sum(ys_live))
    return replace(e, ins=_keep(e.ins, keep_in), outs=outs, params=params)


def _prune_cond(e: Eqn, live: list[bool]) -> Eqn:
    branches = [prune_regions(br.replace(outs=_keep(br.outs, live))) for br in e.params["branches"]]
    used = set().union(*(_read(br) for br in branches))
    keep_in = [any(br.invars[k] in used for br in branches) for k in range(len(e.ins) - 1)]
    new = tuple(subprogram(br.name, _keep(br.invars, keep_in), br.eqns, br.outs, names=br.names) for br in branches)
    return replace(
        e, ins=[e.ins[0], *_keep(e.ins[1:], keep_in)], outs=_keep(e.outs, live), params=dict(e.params, branches=new)
    )


def prune_regions(prog: Program) -> Program:
    """Dead-code elimination that looks into regions: equations whose outputs nothing reads are
    dropped, and so are the outputs of a ``cond``, ``loop`` or ``while`` that nothing reads
    (a loop's carried value stays where a carried value that is read depends on it; a
    ``while`` keeps those its condition reads), with the inputs and the work only they needed."""
    live = {a for a in prog.outs if isinstance(a, Var)}
    kept: list[Eqn] = []
    for e in reversed(prog.eqns):
        flags = [o in live for o in e.outs]
        if not any(flags):
            continue
        if e.op == "loop":
            e = _prune_loop(e, flags)
        elif e.op == "while":
            e = _prune_while(e, flags)
        elif e.op == "cond":
            e = _prune_cond(e, flags)
        kept.append(e)
        live.update(a for a in e.ins if isinstance(a, Var))
    return prog.replace(eqns=kept[::-1])


def _per_element(
    sub: _Scope,
    v: Var,
    indices: list[tuple[int, ...]],
    atoms: list[Atom],
    literals: bool,
    new_in: list[Var],
    new_at: list[Atom],
) -> None:
    """Input ``v`` of sub-program scope ``sub`` as one 0-d input per element (at ``indices``),
    bound to ``atoms`` here (appended to ``new_in``/``new_at``); a literal element is
    substituted instead where ``literals``."""
    mine = np.empty(v.shape, object)
    for idx, x in zip(indices, atoms):
        if literals and isinstance(x, Lit):
            mine[idx] = x
            continue
        nv = Var(Aval((), v.dtype), v.hint)
        sub._name(nv, v, idx)
        mine[idx] = nv
        new_in.append(nv)
        new_at.append(x)
    sub.el[v] = mine
