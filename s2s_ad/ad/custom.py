"""Custom derivative rules: the ``custom`` call equation.

A function with a rule of its own (``s2s_ad.custom_vjp``/``custom_jvp``, a Cell's ``bprop``, a
user primitive's ``bprop``) is traced into one equation ``outs = custom[rule](args..., extras...)``.
Its :class:`CustomRule` holds two traced sub-programs: ``primal`` (the function itself) and
``rule``:

* kind ``"vjp"``: ``rule(args..., outs..., cotangents...) -> (argument cotangents...)``;
* kind ``"jvp"``: ``rule(args..., tangents...) -> (outs..., output tangents...)``.

The ``extras`` are the Parameters and constants the two sub-programs read, in that order.

Differentiating the equation inlines the rule: reverse mode copies a vjp rule's equations (a
jvp rule is transposed: the reverse sweep of its equations with respect to its tangent inputs,
which it is linear in); forward mode copies a jvp rule's equations. Those equations are table
ops (and more custom equations), so the derivative can be differentiated again, as far as the
rule itself is differentiable. Forward mode of a vjp rule is an error naming where the rule is
defined, as is a derivative with respect to a Parameter the rule gives none for. The final
optimisation (:func:`s2s_ad.opt.expand_customs`) replaces each remaining equation by a copy of
its primal program, so the generated code is the function's own.

The op is registered here rather than in :mod:`s2s_ad.primitives` because its rules run the AD
sweeps themselves (the transposition of a jvp rule).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import Loc, NotSupportedError, ShapeError
from ..ir import Atom, Aval, Builder, Eqn, Lit, Program, Var, copy_eqns, substitute
from ..primitives import OPS, OpDef, fill
from .reverse import backward


@dataclass(eq=False)
class CustomRule:
    """A function with its own derivative rule (see the module docstring)."""

    kind: str  # "vjp" | "jvp"
    name: str  # the function, Cell or primitive, for messages
    loc: Loc | None  # where the rule is defined
    primal: Program
    rule: Program

    @property
    def n_args(self) -> int:
        return self.primal.n_args

    @property
    def n_primal_extras(self) -> int:
        return len(self.primal.invars) - self.primal.n_args

    def where(self) -> str:
        return f" (defined at {self.loc})" if self.loc is not None else ""

    def __repr__(self) -> str:
        return f"<{self.kind} rule of {self.name}>"


def _rule(eqn: Eqn) -> CustomRule:
    return eqn.params["rule"]


def _abstract(avals: list[Aval], params: dict) -> list[Aval]:
    r: CustomRule = params["rule"]
    want = [v.aval for v in r.primal.invars] + [v.aval for v in r.rule.invars[r.rule.n_args :]]
    if len(avals) != len(want) or any(a.shape != w.shape for a, w in zip(avals, want)):
        raise ShapeError(
            f"{r.name}: called with inputs {[str(a) for a in avals[: r.n_args]]}, traced for "
            f"{[str(w) for w in want[: r.n_args]]}"
        )
    return [o.aval for o in r.primal.outs]


def _emit(args, eqn, ctx):  # pragma: no cover - expand_customs removes every custom equation first
    raise AssertionError("a custom equation reached code generation: s2s_ad.opt.expand_customs did not run")


def _inline(b: Builder, prog: Program, inputs: list[Atom], extras: list[Atom]) -> list[Atom]:
    """Copy ``prog``'s equations into ``b`` with its arguments bound to ``inputs`` and its
    Parameters and constants to ``extras``; its outputs."""
    env: dict[Var, Atom] = dict(zip(prog.invars, [*inputs, *extras]))
    copy_eqns(b, prog.eqns, env, prog.names)
    return [substitute(env, o) for o in prog.outs]


def _rule_extras(eqn: Eqn) -> list[Atom]:
    r = _rule(eqn)
    return eqn.ins[r.n_args + r.n_primal_extras :]


def _check_extras_inactive(eqn: Eqn, active: list[bool]) -> None:
    r = _rule(eqn)
    if any(active[r.n_args :]):
        names = [p.name for p in r.primal.parameters]
        raise NotSupportedError(
            f"{r.name}: its custom derivative rule{r.where()} gives gradients for its inputs only, but a "
            f"derivative with respect to the Parameter(s) it reads ({', '.join(names) or 'its constants'}) was "
            "asked for; pass them as inputs, or differentiate without the custom rule",
            eqn.loc,
        )


def _zeros(b: Builder, like: list[Atom]) -> list[Atom]:
    return [fill(b, a.shape, 0, a.dtype) for a in like]


def _vjp(b: Builder, eqn: Eqn, cts: list[Atom | None], active: list[bool]) -> list[Atom | None]:
    r = _rule(eqn)
    _check_extras_inactive(eqn, active)
    n = r.n_args
    seeds = [fill(b, o.shape, 0, o.dtype) if c is None else c for o, c in zip(eqn.outs, cts)]
    if r.kind == "vjp":
        grads = _inline(b, r.rule, [*eqn.ins[:n], *eqn.outs, *seeds], _rule_extras(eqn))
    else:
        grads = _transpose_jvp(b, eqn, seeds)
    return [*grads, *([None] * (len(eqn.ins) - n))]


def _transpose_jvp(b: Builder, eqn: Eqn, seeds: list[Atom]) -> list[Atom]:
    """The vjp of a jvp rule: the rule is linear in its tangents, so the reverse sweep of its
    equations with respect to the tangents (at zero tangents) is the transposed map."""
    r = _rule(eqn)
    n = r.n_args
    zeros = _zeros(b, eqn.ins[:n])
    tangent_vars = [z if isinstance(z, Var) else b.bind1("broadcast_to", z, shape=z.shape) for z in zeros]
    start = len(b.eqns)
    outs = _inline(b, r.rule, [*eqn.ins[:n], *tangent_vars], _rule_extras(eqn))
    n_out = len(eqn.outs)
    return backward(b, b.eqns[start:], outs[n_out:], list(seeds), tangent_vars)


def _jvp(b: Builder, eqn: Eqn, tangents: list[Atom | None]) -> list[Atom | None]:
    r = _rule(eqn)
    n = r.n_args
    if r.kind == "vjp":
        raise NotSupportedError(
            f"{r.name} has a custom reverse-mode rule{r.where()}, which forward mode cannot use: use reverse mode "
            "(grad, GradOperation, vjp), or give it a forward-mode rule (s2s_ad.custom_jvp)",
            eqn.loc,
        )
    if any(t is not None for t in tangents[n:]):
        _check_extras_inactive(eqn, [False] * n + [t is not None for t in tangents[n:]])
    ts = [fill(b, a.shape, 0, a.dtype) if t is None else t for a, t in zip(eqn.ins[:n], tangents[:n])]
    outs = _inline(b, r.rule, [*eqn.ins[:n], *ts], _rule_extras(eqn))
    return outs[len(eqn.outs) :]


CUSTOM = OPS["custom"] = OpDef(
    "custom", "custom derivative", "structural", -1, _abstract, emit=_emit, vjp=_vjp, jvp=_jvp
)


def expand(eqns: list[Eqn]) -> tuple[list[Eqn], dict[Var, Atom]]:
    """``eqns`` with every custom equation replaced by a copy of its primal program (nested ones
    too); the map from the replaced equations' outputs to the copies' outputs."""
    b = Builder()
    sub: dict[Var, Atom] = {}

    def s(a: Atom) -> Atom:
        return a if isinstance(a, Lit) else sub.get(a, a)

    pending = list(eqns)
    while pending:
        e = pending.pop(0)
        ins = [s(a) for a in e.ins]
        if e.op != "custom":
            b.eqns.append(Eqn(e.op, ins, e.outs, e.params, e.loc, e.primal, e.adjoint))
            continue
        r = _rule(e)
        k = len(r.primal.invars)
        inner = Builder()
        outs = _inline(inner, r.primal, ins[: r.n_args], ins[r.n_args : k])
        for e2 in inner.eqns:
            e2.loc = e2.loc or e.loc
        pending[:0] = inner.eqns  # nested custom equations are expanded in turn
        sub.update(zip(e.outs, outs))
    # outputs of copied equations may themselves be substituted later: resolve chains
    for v in list(sub):
        a = sub[v]
        while isinstance(a, Var) and a in sub:
            a = sub[a]
        sub[v] = a
    for e in b.eqns:
        e.ins = [s(a) for a in e.ins]
    return b.eqns, sub
