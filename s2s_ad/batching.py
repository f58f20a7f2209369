"""Batching (``vmap``) as a transform of the typed IR.

A program written for one example is turned into one that computes it for a batch of
examples at once. Every value carries a *batch dimension*: the axis of its array that indexes
the examples, or ``None`` for a value that is the same for every example (unbatched). The
transform walks the equations in order; an equation whose inputs are all unbatched is copied
as it is, any other is rewritten by its op's batching rule (``OpDef.batch`` in the op table,
:mod:`s2s_ad.primitives` and :mod:`s2s_ad.regions`)::

    rule(b, eqn, args, dims) -> (outs, out_dims) | None

``b`` is the :class:`BatchBuilder` receiving the batched equations, ``eqn`` the original
equation (its op, parameters and per-example output shapes), ``args`` the batched inputs and
``dims`` their batch dimensions (at least one is not ``None``). A rule returns the batched
outputs and their batch dimensions, or ``None`` where it has no vectorised form for these
inputs; then (and for an op without a rule) the generic fallback maps the equation over the
batch with a ``loop`` region (:func:`loop_fallback`): always correct, slower.

Entry points:

* :func:`batch_eqns` inlines a batched copy of a program into a :class:`~s2s_ad.ir.Builder`
  (what a transform tracing a larger program uses: jacobians inline a batched derivative);
* :func:`batch_program` makes a batched program of its own (arguments batched at ``in_dims``,
  results moved to ``out_dims``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import ArgumentValueError
from .ir import Atom, Aval, Builder, Eqn, Lit, Program, Var, name_of
from .primitives import OPS, move_batch_axis, to_batch_dim
from .regions import INT, bind_loop, subprogram

Dim = int | None

__all__ = ["BatchBuilder", "batch_eqns", "batch_program", "batch_subprogram", "fallback_ops", "loop_fallback"]


class BatchBuilder(Builder):
    """The builder a batching rule receives: a :class:`~s2s_ad.ir.Builder` (sharing the
    equation list and the names table of the builder it wraps) that also batches sub-programs,
    for the rules of the region ops (:meth:`batch_subprogram`)."""

    def __init__(self, base: Builder) -> None:
        super().__init__(base.primal)
        self.eqns = base.eqns
        self.names = base.names
        self.loc = base.loc
        self.adjoint = base.adjoint
        self._made: dict[Var, Eqn] = {}  # the reshapes and transposes bound here, by output

    def bind(self, op: str, ins: Sequence[Atom], hint: str | None = None, **params: Any) -> list[Var]:
        """:meth:`Builder.bind`, folding the axis bookkeeping of the rules as it goes: a reshape
        of a reshape is one reshape, a transpose of a transpose one transpose, and a reshape
        or transpose that changes nothing is its input."""
        if op in ("reshape", "transpose") and len(ins) == 1 and isinstance(ins[0], Var):
            x = ins[0]
            inner = self._made.get(x)
            if inner is not None and inner.op == op and isinstance(inner.ins[0], Var):
                x = inner.ins[0]
                if op == "transpose":
                    params = {"perm": tuple(inner.params["perm"][i] for i in params["perm"])}
            if op == "reshape" and tuple(params["shape"]) == tuple(x.shape):
                return [x]
            if op == "transpose" and tuple(params["perm"]) == tuple(range(len(x.shape))):
                return [x]
            ins = [x]
        outs = super().bind(op, ins, hint, **params)
        if op in ("reshape", "transpose"):
            self._made[outs[0]] = self.eqns[-1]
        return outs

    def batch_subprogram(
        self, prog: Program, in_dims: Sequence[Dim], size: int, out_dims: Sequence[Dim] | None = None
    ) -> tuple[Program, list[Dim]]:
        """See :func:`batch_subprogram`."""
        return batch_subprogram(prog, in_dims, size, out_dims)

    def batch_inline(
        self, prog: Program, args: Sequence[Atom], dims: Sequence[Dim], size: int
    ) -> tuple[list[Atom], list[Dim]]:
        """See :func:`batch_eqns`: a batched copy of ``prog`` appended here."""
        return batch_eqns(self, prog, args, dims, size)

    def child(self) -> BatchBuilder:
        """A batching builder for a new sub-program (a region body a rule makes)."""
        return BatchBuilder(Builder(self.primal))


def batch_eqns(
    b: Builder,
    prog: Program,
    args: Sequence[Atom],
    dims: Sequence[Dim],
    size: int | None = None,
) -> tuple[list[Atom], list[Dim]]:
    """Append to ``b`` a batched copy of ``prog``'s equations.

    ``args`` are the atoms standing for ``prog.invars`` (all of them: arguments, Parameters,
    constants), ``dims`` their batch dimensions (``None``: the same for every example).
    ``size`` is the batch size (checked against the batched arguments; needed only when no
    argument is batched). Returns the atoms of ``prog.outs`` and their batch dimensions (an
    output that does not depend on a batched input stays unbatched, ``None``)."""
    if len(args) != len(prog.invars) or len(dims) != len(prog.invars):
        raise ValueError(f"batch_eqns: {prog.name} takes {len(prog.invars)} inputs, got {len(args)} and {len(dims)}")
    size = _batch_size(args, dims, size, prog.name)
    env: dict[Var, Atom] = {}
    denv: dict[Var, Dim] = {}
    for v, a, d in zip(prog.invars, args, dims):
        env[v] = a
        denv[v] = None if d is None else _normalize_dim(d, len(a.shape), f"input {prog.name_of(v) or repr(v)}")
    bb = b if isinstance(b, BatchBuilder) else BatchBuilder(b)
    saved = (bb.loc, bb.primal, bb.adjoint)
    try:
        for e in prog.eqns:
            ins = [a if isinstance(a, Lit) else env[a] for a in e.ins]
            in_dims = [None if isinstance(a, Lit) else denv[a] for a in e.ins]
            bb.loc, bb.primal, bb.adjoint = e.loc, e.primal, e.adjoint
            outs: list[Atom]
            if all(d is None for d in in_dims):
                copies = [Var(o.aval, name_of(prog.names, o)) for o in e.outs]
                bb.eqns.append(Eqn(e.op, ins, copies, e.params, e.loc, e.primal, e.adjoint))
                outs = list(copies)
                out_dims: list[Dim] = [None] * len(outs)
            else:
                outs, out_dims = batch_eqn(bb, e, ins, in_dims, size)
                for o, new in zip(e.outs, outs):
                    nm = name_of(prog.names, o)
                    if isinstance(new, Var) and nm and not bb.name_of(new):
                        bb.names[new] = nm
            env.update(zip(e.outs, outs))
            denv.update(zip(e.outs, out_dims))
    finally:
        bb.loc, bb.primal, bb.adjoint = saved
    results = [a if isinstance(a, Lit) else env[a] for a in prog.outs]
    return results, [None if isinstance(a, Lit) else denv[a] for a in prog.outs]


def batch_eqn(b: BatchBuilder, e: Eqn, args: list[Atom], dims: list[Dim], size: int) -> tuple[list[Atom], list[Dim]]:
    """One equation with batched inputs: by its op's rule, else by :func:`loop_fallback`."""
    rule = OPS[e.op].batch
    res = rule(b, e, args, dims) if rule is not None else None
    if res is None:
        return loop_fallback(b, e, args, dims, size)
    outs, out_dims = res
    for o, new, d in zip(e.outs, outs, out_dims):
        want = o.shape if d is None else (*o.shape[:d], size, *o.shape[d:])
        assert tuple(new.shape) == tuple(want), (e.op, new.shape, want, d)
    return list(outs), list(out_dims)


def loop_fallback(b: Builder, e: Eqn, args: list[Atom], dims: list[Dim], size: int) -> tuple[list[Atom], list[Dim]]:
    """``e`` mapped over the batch by a counted ``loop``: the batched inputs are scanned over
    their batch axis (moved to the front), the unbatched ones are the loop's constants, and the
    outputs are stacked along axis 0. The generic batching rule of an op without a vectorised
    one (custom ops, linear algebra, index-dependent gathers)."""
    consts = [(k, a) for k, (a, d) in enumerate(zip(args, dims)) if d is None]
    xs = [(k, move_batch_axis(b, a, d, 0)) for k, (a, d) in enumerate(zip(args, dims)) if d is not None]
    i_var = Var(Aval((), INT), "i")
    c_vars = [Var(a.aval, None) for _, a in consts]
    x_vars = [Var(Aval(a.shape[1:], a.dtype), None) for _, a in xs]
    by_pos: dict[int, Atom] = {}
    by_pos.update((k, v) for (k, _), v in zip(consts, c_vars))
    by_pos.update((k, v) for (k, _), v in zip(xs, x_vars))
    outs = [Var(o.aval, o.hint) for o in e.outs]
    inner = Eqn(e.op, [by_pos[k] for k in range(len(args))], outs, e.params, e.loc, e.primal, e.adjoint)
    body = subprogram(f"{e.op}_lane", [i_var, *c_vars, *x_vars], [inner], outs)
    res = bind_loop(b, body, [a for _, a in consts], [a for _, a in xs], [], size, n_ys=len(outs))
    return list(res), [0] * len(res)


def fallback_ops() -> list[str]:
    """The ops of the table without a batching rule: :func:`loop_fallback` maps them over the
    batch with a loop."""
    return sorted(name for name, op in OPS.items() if op.batch is None and op.nin != 0)


def batch_subprogram(
    prog: Program, in_dims: Sequence[Dim], size: int, out_dims: Sequence[Dim] | None = None
) -> tuple[Program, list[Dim]]:
    """A closed sub-program (a region body) batched: its inputs are batched at ``in_dims``;
    with ``out_dims`` its outputs are moved (or broadcast) there, else each keeps the batch
    dimension the rules gave it. Returns the program and its outputs' batch dimensions."""
    invars = []
    for v, d in zip(prog.invars, in_dims):
        shape = v.shape if d is None else (*v.shape[:d], size, *v.shape[d:])
        invars.append(Var(Aval(shape, v.dtype), prog.name_of(v)))
    b = Builder(primal=any(e.primal for e in prog.eqns))
    outs, dims = batch_eqns(b, prog, invars, list(in_dims), size)
    if out_dims is not None:
        outs = [_to_dim(b, o, d, want, size) for o, d, want in zip(outs, dims, out_dims)]
        dims = list(out_dims)
    return subprogram(prog.name, invars, b.eqns, outs, b.names), dims


def batch_program(
    prog: Program, in_dims: Sequence[Dim], size: int | None = None, out_dims: Dim | Sequence[Dim] = 0
) -> Program:
    """``prog`` batched: its argument ``k`` (``prog.arg_vars[k]``) gains a batch axis at
    ``in_dims[k]`` (``None``: shared by every example); Parameters and constants stay shared.
    Output ``j`` has its batch axis at ``out_dims[j]`` (one int for all; negative counts from
    the end of the batched output); an output that is the same for every example is
    broadcast there. ``out_dims[j] = None`` asks for an unbatched output and is an error
    where the output varies over the batch. ``size`` is needed only when no argument is
    batched. The result has ``prog``'s trees, names, Parameters and constants."""
    if len(in_dims) != prog.n_args:
        raise ValueError(f"batch_program: {prog.name} takes {prog.n_args} arguments, got {len(in_dims)} in_dims")
    n_out = len(prog.outs)
    if isinstance(out_dims, int) or out_dims is None:
        out_dims = [out_dims] * n_out
    out_dims = list(out_dims)
    invars: list[Var] = []
    all_dims: list[Dim] = [*in_dims, *([None] * (len(prog.invars) - prog.n_args))]
    if size is None:
        raise ValueError("batch_program: the batch size is needed")
    dims: list[Dim] = []
    for v, d in zip(prog.invars, all_dims):
        if d is not None:
            d = _normalize_dim(d, len(v.shape) + 1, f"argument {prog.name_of(v) or repr(v)}")
        dims.append(d)
        invars.append(Var(v.aval if d is None else Aval((*v.shape[:d], size, *v.shape[d:]), v.dtype), prog.name_of(v)))
    b = Builder(primal=True)
    outs, got = batch_eqns(b, prog, invars, dims, size)
    new_outs = []
    for j, (o, d, want) in enumerate(zip(outs, got, out_dims)):
        if want is None and d is not None:
            raise ArgumentValueError(
                f"vmap: out_axes is None for output {j} of {prog.name}, but that output varies over the batch "
                f"(its per-example shape is {tuple(prog.outs[j].shape)})"
            )
        if want is not None:
            want = _normalize_dim(want, len(o.shape) + (1 if d is None else 0), f"output {j}")
        new_outs.append(_to_dim(b, o, d, want, size))
    return prog.replace(invars=invars, eqns=b.eqns, outs=new_outs, names=dict(b.names))


# ----------------------------------------------------------------------------- helpers


def _normalize_dim(d: int, ndim: int, what: str) -> int:
    if isinstance(d, bool) or not isinstance(d, int):
        raise ArgumentValueError(f"vmap: a batch axis must be an int or None, got {d!r} for {what}")
    if not -ndim <= d < ndim:
        raise ArgumentValueError(f"vmap: batch axis {d} is out of range for {what} of rank {ndim}")
    return d % ndim


def _batch_size(args: Sequence[Atom], dims: Sequence[Dim], size: int | None, name: str) -> int:
    sizes = {int(a.shape[d]) for a, d in zip(args, dims) if d is not None}
    if size is not None:
        sizes.add(int(size))
    if len(sizes) > 1:
        raise ArgumentValueError(f"vmap: {name}: the batched inputs have different batch sizes {sorted(sizes)}")
    if not sizes:
        raise ArgumentValueError(f"vmap: {name}: no input is batched and no batch size is given")
    return sizes.pop()


def _to_dim(b: Builder, x: Atom, d: Dim, want: Dim, size: int) -> Atom:
    """``x`` (batch dimension ``d``) with its batch axis at ``want`` (broadcast when unbatched)."""
    return x if want is None else to_batch_dim(b, x, d, want, size)
