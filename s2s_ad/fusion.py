"""Loop fusion: schedule an optimised program as plain equations and fused loops.

A :class:`Loop` is a set of elementwise-like equations with one output shape (the loop's
iteration space), computed together in one pass over that space: values used only inside
the loop never become arrays, and reductions of loop values (``reduce_sum``/``reduce_mean``)
accumulate in the same pass. The Numba printer turns each loop into one nest of ``for``
loops; the CUDA printer turns it into one grid-stride kernel.

The schedule is built greedily in program order, with one open loop per shape:

* an elementwise-like equation of shape ``S`` joins the open loop of shape ``S``, unless one
  of its inputs is only available after that loop (a reduction result of the loop), in which
  case the loop is closed first and a new one opened;
* an input that belongs to another open loop closes that loop first (it must be stored);
* any other equation that reads a value of an open loop closes that loop first; an equation
  that reads none is emitted at once (moving ahead of the open loops is safe: it does not
  depend on them).

Each loop's external inputs are therefore available where it is emitted, and every value it
produces is emitted before its first reader, so the schedule is a valid order.

A cheap value (a few additions or multiplications, see :func:`candidates`) read only by
elementwise equations of its own shape is not stored when it can be computed from values
that are arrays anyway: each later loop that reads it computes it again from those arrays
(:meth:`Loop.set_stored`). A loop is bound by memory traffic long before arithmetic, so
storing ``1 - h*h`` in the forward pass and loading it back in the backward pass costs more
than computing it twice from ``h``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Container
from dataclasses import dataclass, field

from .ir import Eqn, Program, Var
from .primitives import get_op


@dataclass
class Loop:
    """Equations computed in one pass over ``shape``.

    ``eqns`` are the members in order (elementwise ops, comparisons, casts, fills,
    ``stop_gradient`` and ``broadcast_to`` of values from outside the loop);
    ``reductions`` are ``reduce_sum``/``reduce_mean`` equations whose input is a member;
    ``stored`` are the member outputs needed after the loop (they become arrays)."""

    shape: tuple[int, ...]
    eqns: list[Eqn] = field(default_factory=list)
    reductions: list[Eqn] = field(default_factory=list)
    stored: list[Var] = field(default_factory=list)

    def reads(self) -> Counter[Var]:
        """How often each value is read inside the loop."""
        return Counter(a for e in self.eqns + self.reductions for a in e.ins if isinstance(a, Var))

    def set_stored(self, uses: Counter[Var], cheap: Container[Var] = (), again: dict[Var, Eqn] | None = None) -> None:
        """Store the members that are read more often in the program (``uses``, see
        :func:`use_counts`) than inside the loop, but for the ``cheap`` ones (see
        :func:`candidates`) that can be computed from values that are arrays after the loop:
        those are added to ``again`` (the values loops compute again where they read them),
        and dropped from this loop when it does not read them."""
        inside = self.reads()
        members = {e.outs[0] for e in self.eqns}
        again = {} if again is None else again
        stored = {e.outs[0] for e in self.eqns if e.outs[0] not in cheap and uses[e.outs[0]] > inside[e.outs[0]]}
        cost: dict[Var, tuple[int, frozenset[Var]]] = {}  # operations, arrays of the loop's shape read
        for e in self.eqns:
            v = e.outs[0]
            if v not in cheap:
                continue
            ops, arrays = 1, frozenset[Var]()
            for a in e.ins:
                if not isinstance(a, Var) or a.shape != v.shape:
                    continue  # a number, or a broadcast value (of another shape: an array)
                if a in cost:
                    ops, arrays = ops + cost[a][0], arrays | cost[a][1]
                elif a in stored or a not in members:
                    arrays |= {a}
                else:
                    break  # a member that is not stored
            else:
                if ops <= RECOMPUTE_OPS and len(arrays) <= RECOMPUTE_ARRAYS:
                    cost[v], again[v] = (ops, arrays), e
                    continue
            if uses[v] > inside[v]:
                stored.add(v)
        self.stored = [e.outs[0] for e in self.eqns if e.outs[0] in stored]
        kept: list[Eqn] = []
        for e in reversed(self.eqns):
            if e.outs[0] not in stored and inside[e.outs[0]] == 0:
                inside.subtract(a for a in e.ins if isinstance(a, Var))
            else:
                kept.append(e)
        self.eqns = kept[::-1]

    @property
    def computes(self) -> bool:
        """Whether the loop does arithmetic (otherwise its equations print as statements)."""
        return bool(self.reductions) or any(e.op not in _STRUCTURAL for e in self.eqns)

    @property
    def one_operator(self) -> bool:
        """Whether the loop computes one arithmetic operator (``a + b``, ``-a``) on operands of
        its own shape (or scalars) and nothing else: numpy's single pass over contiguous data
        does that as well as a compiled loop (a broadcast, such as an outer product, it does
        several times slower)."""
        if self.reductions or len(self.eqns) != 1:
            return False
        e = self.eqns[0]
        printer = get_op(e.op).printer
        return (
            printer is not None
            and printer[0] in ("infix", "prefix")
            and all(a.shape in ((), self.shape) for a in e.ins if isinstance(a, Var))
        )


_STRUCTURAL = ("broadcast_to", "fill", "stop_gradient")


Step = Eqn | Loop


def _fusible(e: Eqn) -> bool:
    # elementwise ops and the structural ops that act index for index (the table's ``pointwise``)
    if len(e.outs) != 1 or e.outs[0].shape == () or -1 in e.outs[0].shape:
        return False  # a 0-d value, or one whose size is known at run time only (regions.DYN)
    return get_op(e.op).pointwise


def use_counts(prog: Program) -> Counter[Var]:
    """How often each value is read by ``prog``'s equations, plus once if it is an
    output of ``prog``."""
    uses = Counter(a for e in prog.eqns for a in e.ins if isinstance(a, Var))
    uses.update(a for a in prog.outs if isinstance(a, Var))
    return uses


# Ops a loop computes again rather than store and load (one instruction each); a value is
# computed again from at most RECOMPUTE_ARRAYS arrays of its shape, in at most RECOMPUTE_OPS
# operations.
_CHEAP = frozenset(("add", "sub", "mul", "neg", "square", "fill", "broadcast_to", "cast", "stop_gradient"))
RECOMPUTE_OPS = 6
RECOMPUTE_ARRAYS = 2


def candidates(prog: Program) -> set[Var]:
    """The values of ``prog`` that a loop may compute again where they are read rather than
    store: cheap elementwise values, not outputs of ``prog``, read only by elementwise
    equations of their own shape (so every reader is in a loop of that shape). Whether one
    is, is decided when the loop computing it closes (:meth:`Loop.set_stored`)."""
    readers: defaultdict[Var, list[Eqn]] = defaultdict(list)
    for e in prog.eqns:
        for a in e.ins:
            if isinstance(a, Var):
                readers[a].append(e)
    outs = {a for a in prog.outs if isinstance(a, Var)}
    return {
        e.outs[0]
        for e in prog.eqns
        if e.op in _CHEAP
        and _fusible(e)
        and e.outs[0] not in outs
        and all(_fusible(r) and r.outs[0].shape == e.outs[0].shape for r in readers[e.outs[0]])
    }


def schedule(prog: Program, kernels: bool = False) -> list[Step]:
    """``prog``'s equations as a valid order of plain equations and fused loops. With
    ``kernels`` (each loop becomes a compiled function, see :func:`s2s_ad.backend.split_program`),
    a loop of one operator stays numpy statements: compiling it would gain nothing."""
    steps: list[Step] = []
    open_loops: dict[tuple[int, ...], Loop] = {}
    member_of: dict[Var, Loop] = {}  # output -> open loop computing it
    pending: dict[Var, Loop] = {}  # reduction output -> open loop accumulating it
    uses = use_counts(prog)
    cheap = candidates(prog)
    again: dict[Var, Eqn] = {}  # values no loop stored, by their equations

    def close(loop: Loop) -> None:
        del open_loops[loop.shape]
        for e in loop.eqns:
            member_of.pop(e.outs[0], None)
        for e in loop.reductions:
            pending.pop(e.outs[0], None)
        loop.set_stored(uses, cheap, again)
        if loop.computes and not (kernels and loop.one_operator):
            steps.append(loop)
        else:
            steps.extend(loop.eqns)

    def copies(e: Eqn, loop: Loop | None) -> list[Eqn]:
        """The equations of the values ``e`` reads that ``loop`` computes again (not its
        members yet), in order."""
        out: list[Eqn] = []
        seen: set[Var] = set()

        def visit(x: Eqn) -> None:
            for a in x.ins:
                if (
                    isinstance(a, Var)
                    and a in again
                    and a not in seen
                    and (loop is None or member_of.get(a) is not loop)
                ):
                    seen.add(a)
                    visit(again[a])
                    out.append(again[a])

        visit(e)
        return out

    def ready(e: Eqn, loop: Loop | None) -> None:
        """Close every open loop (other than ``loop``) that ``e`` reads from."""
        for a in e.ins:
            if not isinstance(a, Var):
                continue
            other = member_of.get(a) or pending.get(a)
            if other is not None and other is not loop:
                close(other)

    for e in prog.eqns:
        if _fusible(e):
            shape = e.outs[0].shape
            loop = open_loops.get(shape)
            joined = [*copies(e, loop), e]
            if loop is not None and any(isinstance(a, Var) and pending.get(a) is loop for x in joined for a in x.ins):
                close(loop)
                loop = None
                joined = [*copies(e, loop), e]
            for x in joined:
                ready(x, loop)
            loop = open_loops.get(shape)
            if loop is None:
                loop = open_loops[shape] = Loop(shape)
            for x in joined:
                loop.eqns.append(x)
                member_of[x.outs[0]] = loop
            continue
        if get_op(e.op).fused_reduction and isinstance(e.ins[0], Var):
            loop = member_of.get(e.ins[0])
            if loop is not None and loop.shape == e.ins[0].shape:
                loop.reductions.append(e)
                pending[e.outs[0]] = loop
                continue
        ready(e, None)
        steps.append(e)
    for loop in list(open_loops.values()):
        close(loop)
    return steps


__all__ = ["Loop", "Step", "candidates", "schedule", "use_counts"]
