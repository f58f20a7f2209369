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
from .ir import Atom, Aval, Builder, Eqn, Program, Var
from .primitives import OpDef, _register, fmt_shape

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
