"""Structured control flow in the IR: ``cond``, ``loop`` and ``while`` regions.

A region is one equation whose parameters hold *closed* sub-programs (:class:`~s2s_ad.ir.Program`
values that read nothing but their own inputs). Every pass sees a region as one equation with
inputs and outputs; passes that look inside (the checker, the printer, the optimiser, the AD
modes, codegen) recurse into :func:`~s2s_ad.ir.subprograms`.

``cond``
    ``outs = cond(pred, *operands; branches=(if_false, if_true))``: ``pred`` is a 0-d bool;
    both branches take the operands and give outputs of the same shapes and dtypes.

``loop`` (a counted loop, kept as a loop)
    ``*carry_out, *ys = loop([length,] *consts, *xs, *carry; body, ...)`` runs ``body`` for
    iterations ``k = 0 .. length-1`` (``k = length-1 .. 0`` with ``reverse``). The body takes
    ``(i, *consts, *x_k, *carry)``, where ``i = start + k * step`` is a 0-d int64 (the loop
    variable of ``for i in range(start, stop, step)``) and ``x_k = xs[k]``; it returns
    ``(*carry, *y_k)``, and ``ys[k] = y_k``. ``length`` is static (the ``length`` parameter) or,
    with ``length=None``, a 0-d int64 first input; the ``xs`` and ``ys`` of a loop with a dynamic
    length have a dynamic leading dimension (:data:`DYN`).

``while``
    ``*carry_out, trips, *ys = while(*consts, *carry; cond, body, ...)``: while
    ``cond(*consts, *carry)`` (a 0-d bool) holds, ``carry, y = body(*consts, *carry)``; ``trips``
    (0-d int64) counts the iterations and ``ys`` stacks the ``y`` of each (leading dimension
    :data:`DYN`). The ``ys`` are the tape of reverse mode (the carry at the start of each
    iteration); user loops have none.

A loop-carried value keeps its shape and dtype: the shape rules here reject a body that changes
them (the frontend reports that earlier, naming the user's variable and both shapes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import ShapeError
from .ir import Atom, Aval, Builder, Eqn, Lit, Program, Var
from .primitives import OpDef, _register, batch_front, fmt_shape, to_batch_dim

#: The size of a dimension known only at run time: the leading dimension of the stacked
#: per-iteration values of a ``while`` loop (and of a loop whose length is an input).
DYN = -1

INT = np.dtype(np.int64)
BOOL = np.dtype(np.bool_)

REGIONS = ("cond", "loop", "while")


def subprogram(name: str, invars: Sequence[Var], eqns: list[Eqn], outs: Sequence[Atom], names=None) -> Program:
    """A closed sub-program: ``outs`` computed by ``eqns`` from ``invars`` alone."""
    n = len(invars)
    return Program(
        name=name,
        invars=list(invars),
        n_args=n,
        in_tree=("tuple", (None,) * n),
        parameters=[],
        consts=[],
        eqns=list(eqns),
        outs=list(outs),
        out_tree=("tuple", (None,) * len(outs)),
        arg_names=[v.hint or f"a{k}" for k, v in enumerate(invars)],
        names=dict(names or {}),
    )


def in_avals(prog: Program) -> list[Aval]:
    return [v.aval for v in prog.invars]


def out_avals(prog: Program) -> list[Aval]:
    return [a.aval for a in prog.outs]


def _same(what: str, got: Sequence[Aval], want: Sequence[Aval]) -> None:
    if len(got) != len(want):
        raise ShapeError(f"{what}: {len(got)} values where {len(want)} are expected")
    for k, (g, w) in enumerate(zip(got, want)):
        if g != w:
            raise ShapeError(f"{what}: value {k} is {g} where {w} is expected")


def _scalar(what: str, a: Aval, dtype: np.dtype) -> None:
    if a.shape != () or a.dtype != dtype:
        raise ShapeError(f"{what} must be a 0-d {dtype.name}, not {a}")


def stacked(a: Aval, length: int | None) -> Aval:
    """The aval of ``length`` values of aval ``a`` stacked (``None``: a dynamic length)."""
    return Aval((DYN if length is None else length, *a.shape), a.dtype)


def unstacked(a: Aval, what: str) -> Aval:
    if not a.shape:
        raise ShapeError(f"{what}: a 0-d value cannot be iterated over")
    return Aval(a.shape[1:], a.dtype)


# ----------------------------------------------------------------------------- cond
def _cond_abstract(avals: list[Aval], p: dict) -> list[Aval]:
    _scalar("the condition of `if`", avals[0], BOOL)
    branches = p["branches"]
    if len(branches) != 2:
        raise ShapeError(f"cond takes two branches, not {len(branches)}")
    outs = out_avals(branches[1])
    for br in branches:
        _same("a branch of `if` takes", in_avals(br), avals[1:])
        _same("the branches of `if` give", out_avals(br), outs)
    return outs


# ----------------------------------------------------------------------------- loop
def loop_layout(p: dict) -> tuple[int, int, int, int]:
    """(inputs before the consts, consts, xs, carry) counts of a ``loop``'s inputs."""
    lead = 1 if p["length"] is None else 0
    n_carry = len(p["body"].invars) - 1 - p["n_consts"] - p["n_xs"]
    return lead, p["n_consts"], p["n_xs"], n_carry


def _loop_abstract(avals: list[Aval], p: dict) -> list[Aval]:
    body: Program = p["body"]
    lead, nc, nx, ncarry = loop_layout(p)
    length = p["length"]
    if lead:
        _scalar("the trip count of a loop", avals[0], INT)
    elif length < 0:
        raise ShapeError(f"a loop of negative length {length}")
    if len(avals) != lead + nc + nx + ncarry:
        raise ShapeError(f"a loop whose body takes {len(body.invars)} values is given {len(avals) - lead} inputs")
    consts = avals[lead : lead + nc]
    xs = avals[lead + nc : lead + nc + nx]
    carry = avals[lead + nc + nx :]
    n = DYN if lead else length
    for k, x in enumerate(xs):
        if not x.shape or x.shape[0] != n:
            raise ShapeError(f"a loop of length {n} iterates over input {k} of shape {fmt_shape(x.shape)}")
    want = [Aval((), INT), *consts, *(unstacked(x, "loop") for x in xs), *carry]
    _same("the body of a loop takes", in_avals(body), want)
    outs = out_avals(body)
    if len(outs) != ncarry + p["n_ys"]:
        raise ShapeError(f"the body of a loop gives {len(outs)} values for {ncarry} carried and {p['n_ys']} stacked")
    _same("the body of a loop gives back its carried values as", outs[:ncarry], carry)
    return [*carry, *(stacked(y, None if lead else length) for y in outs[ncarry:])]


# ----------------------------------------------------------------------------- while
def while_layout(p: dict) -> tuple[int, int]:
    """(consts, carry) counts of a ``while``'s inputs."""
    return p["n_consts"], len(p["body"].invars) - p["n_consts"]


def _while_abstract(avals: list[Aval], p: dict) -> list[Aval]:
    cond: Program = p["cond"]
    body: Program = p["body"]
    nc, ncarry = while_layout(p)
    _same("the condition of a `while` loop takes", in_avals(cond), avals)
    _same("the body of a `while` loop takes", in_avals(body), avals)
    (pred,) = out_avals(cond) if len(cond.outs) == 1 else (None,)
    if pred is None:
        raise ShapeError("the condition of a `while` loop gives one value")
    _scalar("the condition of a `while` loop", pred, BOOL)
    outs = out_avals(body)
    if len(outs) != ncarry + p["n_ys"]:
        raise ShapeError(f"the body of a `while` loop gives {len(outs)} values for {ncarry} carried")
    carry = avals[nc:]
    _same("the body of a `while` loop gives back its carried values as", outs[:ncarry], carry)
    return [*carry, Aval((), INT), *(stacked(y, None) for y in outs[ncarry:])]


def _region(name: str, display: str, abstract) -> OpDef:
    return _register(OpDef(name, display, "region", 0, abstract))


COND = _region("cond", "`if` on a tensor", _cond_abstract)
LOOP = _region("loop", "a `for` loop", _loop_abstract)
WHILE = _region("while", "a `while` loop", _while_abstract)


# ----------------------------------------------------------------------------- builders
def bind_cond(b: Builder, pred: Atom, operands: Sequence[Atom], if_true: Program, if_false: Program) -> list[Var]:
    """``if_true(*operands) if pred else if_false(*operands)``."""
    return b.bind("cond", [pred, *operands], branches=(if_false, if_true))


def bind_loop(
    b: Builder,
    body: Program,
    consts: Sequence[Atom],
    xs: Sequence[Atom],
    carry: Sequence[Atom],
    length: int | Atom,
    n_ys: int = 0,
    start: int = 0,
    step: int = 1,
    reverse: bool = False,
    **extra: Any,
) -> list[Var]:
    """A counted loop (see the module docstring); ``length`` an int or a 0-d int64 atom.
    ``extra``: more parameters (the checkpointing options of reverse mode)."""
    lead = [] if isinstance(length, int) else [length]
    return b.bind(
        "loop",
        [*lead, *consts, *xs, *carry],
        body=body,
        n_consts=len(consts),
        n_xs=len(xs),
        n_ys=n_ys,
        length=length if isinstance(length, int) else None,
        start=start,
        step=step,
        reverse=reverse,
        **extra,
    )


def bind_while(
    b: Builder,
    cond: Program,
    body: Program,
    consts: Sequence[Atom],
    carry: Sequence[Atom],
    n_ys: int = 0,
    **extra: Any,
) -> list[Var]:
    """A ``while`` loop (see the module docstring): its outputs are the final carry, the
    number of iterations and the ``n_ys`` stacked per-iteration values. ``extra``: more
    parameters (the checkpointing option of reverse mode)."""
    return b.bind("while", [*consts, *carry], cond=cond, body=body, n_consts=len(consts), n_ys=n_ys, **extra)


def is_region(e: Eqn) -> bool:
    return e.op in REGIONS


def trip_count(start: int, stop: int, step: int) -> int:
    """``len(range(start, stop, step))``."""
    return len(range(start, stop, step))


# ----------------------------------------------------------------------------- batching
# The batching rules of the regions (see :mod:`s2s_ad.batching`). ``b`` is the batching
# builder, which batches sub-programs (``b.batch_subprogram``) and inlines batched copies of
# them (``b.batch_inline``). A loop-carried value that the body makes batched from a batched
# input is batched from the start (broadcast): the carried dimensions are found by iterating
# to a fixed point.
def _size(args: Sequence[Atom], dims: Sequence[int | None]) -> int:
    return next(int(a.shape[d]) for a, d in zip(args, dims) if d is not None)


def _lane_mask(b: Builder, mask: Atom, rank: int) -> Atom:
    """A per-lane bool ``mask`` (B,) shaped to select between values of per-example rank ``rank``."""
    return mask if rank == 0 else b.bind1("reshape", mask, shape=(mask.shape[0], *([1] * rank)))


def _select_lanes(b: Builder, mask: Atom, new: Atom, old: Atom) -> Atom:
    """Per lane: ``new`` where ``mask`` holds, else ``old`` (both batched at axis 0)."""
    return b.bind1("select", _lane_mask(b, mask, len(new.shape) - 1), new, old)


def _cond_batch(b, eqn: Eqn, args, dims):
    size = _size(args, dims)
    pred, ops = args[0], list(args[1:])
    odims = list(dims[1:])
    if_false, if_true = eqn.params["branches"]
    if dims[0] is None:  # one branch for the whole batch: the branches batched
        natural = [b.batch_subprogram(br, odims, size)[1] for br in (if_false, if_true)]
        want = [None if f is None and t is None else 0 for f, t in zip(*natural)]
        bf = b.batch_subprogram(if_false, odims, size, want)[0]
        bt = b.batch_subprogram(if_true, odims, size, want)[0]
        return bind_cond(b, pred, ops, bt, bf), want
    # a predicate per lane: both branches computed for the whole batch, selected per lane
    mask = batch_front(b, pred, dims[0])
    t_outs, t_dims = b.batch_inline(if_true, ops, odims, size)
    f_outs, f_dims = b.batch_inline(if_false, ops, odims, size)
    outs = []
    for t, td, f, fd in zip(t_outs, t_dims, f_outs, f_dims):
        t, f = to_batch_dim(b, t, td, 0, size), to_batch_dim(b, f, fd, 0, size)
        outs.append(_select_lanes(b, mask, t, f))
    return outs, [0] * len(outs)


def _carried_dims(b, body: Program, fixed: list, carry: list[bool], size: int) -> list[bool]:
    """Which carried values are batched: those batched on entry (``carry``), and those the
    body makes batched (iterated to a fixed point). ``fixed``: the batch dimensions of the
    body's inputs before the carried ones."""
    while True:
        in_dims = [*fixed, *(0 if c else None for c in carry)]
        _, od = b.batch_subprogram(body, in_dims, size)
        new = [c or od[k] is not None for k, c in enumerate(carry)]
        if new == carry:
            return carry
        carry = new


def _loop_batch(b, eqn: Eqn, args, dims):
    p = eqn.params
    body: Program = p["body"]
    size = _size(args, dims)
    lead, nc, nx, ncarry = loop_layout(p)
    consts, xs, carry = args[lead : lead + nc], args[lead + nc : lead + nc + nx], args[lead + nc + nx :]
    cdims, xdims, kdims = dims[lead : lead + nc], dims[lead + nc : lead + nc + nx], dims[lead + nc + nx :]
    # a batched xs is scanned over its axis 0: its batch axis goes after that one
    xs = [x if d is None else to_batch_dim(b, x, d, max(d, 1), size) for x, d in zip(xs, xdims)]
    xk_dims = [None if d is None else max(d, 1) - 1 for d in xdims]
    per_lane = bool(lead) and dims[0] is not None
    carried = [d is not None or per_lane for d in kdims]
    fixed = [None, *cdims, *xk_dims]
    carried = _carried_dims(b, body, fixed, carried, size)
    carry = [to_batch_dim(b, a, d, 0, size) if c else a for a, d, c in zip(carry, kdims, carried)]
    in_dims = [*fixed, *(0 if c else None for c in carried)]
    ys_natural = b.batch_subprogram(body, in_dims, size)[1][ncarry:]
    want = [*(0 if c else None for c in carried), *(None if d is None else 0 for d in ys_natural)]
    out_dims = [*want[:ncarry], *(None if d is None else 1 for d in want[ncarry:])]
    if not per_lane:
        new_body = b.batch_subprogram(body, in_dims, size, want)[0]
        outs = b.bind("loop", [*args[:lead], *consts, *xs, *carry], **dict(p, body=new_body))
        return outs, out_dims
    # a trip count per lane: run the longest, each lane's carry frozen after its own count
    lengths = batch_front(b, args[0], dims[0])
    longest = b.bind1("reduce_max", lengths, axes=(0,), keepdims=False)
    sb = b.child()
    i = Var(Aval((), INT), "i")
    n_var = Var(lengths.aval, "trips")
    c_vars = [Var(a.aval, body.name_of(v)) for a, v in zip(consts, body.invars[1 : 1 + nc])]
    x_vars = [Var(Aval(x.shape[1:], x.dtype), body.name_of(v)) for x, v in zip(xs, body.invars[1 + nc : 1 + nc + nx])]
    k_vars = [Var(a.aval, body.name_of(v)) for a, v in zip(carry, body.invars[1 + nc + nx :])]
    outs, odims = sb.batch_inline(body, [i, *c_vars, *x_vars, *k_vars], in_dims, size)
    k = i
    if p["start"] != 0:
        k = sb.bind1("sub", k, Lit(p["start"], INT))
    if p["step"] != 1:
        k = sb.bind1("floor_div", k, Lit(p["step"], INT))
    active = sb.bind1("less", k, n_var)
    new = []
    for j, (o, d) in enumerate(zip(outs, odims)):
        o = to_batch_dim(sb, o, d, 0, size) if want[j] == 0 else o
        if j < ncarry:
            o = _select_lanes(sb, active, o, k_vars[j]) if carried[j] else o
        elif want[j] == 0:
            o = _select_lanes(sb, active, o, sb.bind1("fill", shape=o.shape, value=0, dtype=o.dtype))
        new.append(o)
    new_body = subprogram(body.name, [i, n_var, *c_vars, *x_vars, *k_vars], sb.eqns, new, sb.names)
    extra = {
        k2: v
        for k2, v in p.items()
        if k2 not in ("body", "n_consts", "n_xs", "n_ys", "length", "start", "step", "reverse")
    }
    outs = bind_loop(
        b, new_body, [lengths, *consts], xs, carry, longest, p["n_ys"], p["start"], p["step"], p["reverse"], **extra
    )
    return outs, out_dims


def _any_lane(b: Builder, mask: Atom) -> Atom:
    n = b.bind1("reduce_sum", b.bind1("cast", mask, dtype=INT), axes=(0,), keepdims=False)
    return b.bind1("greater", n, Lit(0, INT))


def _while_batch(b, eqn: Eqn, args, dims):
    p = eqn.params
    cond: Program = p["cond"]
    body: Program = p["body"]
    size = _size(args, dims)
    nc, ncarry = while_layout(p)
    consts, carry = list(args[:nc]), list(args[nc:])
    cdims, kdims = list(dims[:nc]), list(dims[nc:])
    carried = [d is not None for d in kdims]
    while True:
        in_dims = [*cdims, *(0 if c else None for c in carried)]
        (pd,) = b.batch_subprogram(cond, in_dims, size)[1]
        od = b.batch_subprogram(body, in_dims, size)[1]
        grown = [c or od[k] is not None for k, c in enumerate(carried)]
        if pd is not None:  # lanes stop at different times: whatever the body changes is batched
            grown = [c or body.outs[k] is not body.invars[nc + k] for k, c in enumerate(grown)]
        if grown == carried:
            break
        carried = grown
    carry = [to_batch_dim(b, a, d, 0, size) if c else a for a, d, c in zip(carry, kdims, carried)]
    ys_natural = od[ncarry:]
    want = [*(0 if c else None for c in carried), *(None if d is None else 0 for d in ys_natural)]
    ys_dims = [None if d is None else 1 for d in want[ncarry:]]
    extra = {k: v for k, v in p.items() if k not in ("cond", "body", "n_consts", "n_ys")}
    if pd is None:
        new_cond = b.batch_subprogram(cond, in_dims, size, [None])[0]
        new_body = b.batch_subprogram(body, in_dims, size, want)[0]
        outs = bind_while(b, new_cond, new_body, consts, carry, p["n_ys"], **extra)
        return outs, [*want[:ncarry], None, *ys_dims]
    # a predicate per lane: iterate while any lane is active. The active lanes are carried (the
    # predicate is computed once per iteration, after the update); a lane's carry is frozen
    # once its predicate fails, and its trip count is counted apart (reverse mode's adjoint
    # loop runs each lane's own count)
    (p0,), (p0d,) = b.batch_inline(cond, [*consts, *carry], in_dims, size)
    active0 = batch_front(b, p0, p0d)
    c_vars = [Var(a.aval, body.name_of(v)) for a, v in zip(consts, body.invars[:nc])]
    k_vars = [Var(a.aval, body.name_of(v)) for a, v in zip(carry, body.invars[nc:])]
    n_var, a_var = Var(Aval((size,), INT), "trips"), Var(active0.aval, "active")
    cb = b.child()
    new_cond = subprogram(cond.name, [*c_vars, *k_vars, n_var, a_var], cb.eqns, [_any_lane(cb, a_var)], cb.names)
    c2 = [Var(v.aval, v.hint) for v in c_vars]
    k2 = [Var(v.aval, v.hint) for v in k_vars]
    n2, a2 = Var(n_var.aval, "trips"), Var(a_var.aval, "active")
    bb = b.child()
    outs, odims = bb.batch_inline(body, [*c2, *k2], in_dims, size)
    new = []
    for j, (o, d) in enumerate(zip(outs, odims)):
        o = o if want[j] is None else to_batch_dim(bb, o, d, 0, size)
        if j < ncarry and carried[j]:
            o = _select_lanes(bb, a2, o, k2[j])
        new.append(o)
    count = bb.bind1("add", n2, bb.bind1("cast", a2, dtype=INT))
    (pn,), (pnd,) = bb.batch_inline(cond, [*c2, *new[:ncarry]], in_dims, size)
    # (a finished lane's carry is frozen where the predicate failed: it stays finished)
    still = batch_front(bb, pn, pnd)
    new_body = subprogram(
        body.name, [*c2, *k2, n2, a2], bb.eqns, [*new[:ncarry], count, still, *new[ncarry:]], bb.names
    )
    zeros = b.bind1("fill", shape=(size,), value=0, dtype=INT)
    outs = bind_while(b, new_cond, new_body, consts, [*carry, zeros, active0], p["n_ys"], **extra)
    # (the while's own count, the longest lane's, is not an output of the batched loop)
    return [*outs[:ncarry], outs[ncarry], *outs[ncarry + 3 :]], [*want[:ncarry], 0, *ys_dims]


COND.batch = _cond_batch
LOOP.batch = _loop_batch
WHILE.batch = _while_batch


__all__ = [
    "DYN",
    "REGIONS",
    "bind_cond",
    "bind_loop",
    "bind_while",
    "is_region",
    "loop_layout",
    "stacked",
    "subprogram",
    "trip_count",
    "while_layout",
]
