"""Custom derivatives: ``s2s_ad.custom_vjp``/``custom_jvp`` for functions (JAX's API), a Cell's
``bprop(self, *inputs, out, dout)`` and ``ops.Custom(func, bprop=...)`` (MindSpore's).

Each call traces the function and its rule into one ``custom`` equation (see
:mod:`s2s_ad.ad.custom`): derivatives use the rule, at every order where the rule is itself
differentiable; the generated code computes the function itself.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from .ad.custom import CustomRule
from .api import JitFunction, callable_name
from .errors import ArgumentError, Loc, NotSupportedError, S2SError, ShapeError
from .ir import Atom, flatten, tree_str, unflatten
from .primitives import broadcast_to, cast_to, fill
from .trace.interpreter import trace
from .trace.protocol import describe, is_tensor_value, register_static, unwrap_function
from .trace.tracer import Tracer

Stage = Callable[[Tracer, list[Any]], Any]


def definition_loc(fn: Any) -> Loc | None:
    """Where ``fn`` (a function or method) is defined, for messages."""
    f = unwrap_function(getattr(fn, "__func__", fn))
    code = getattr(f, "__code__", None)
    if code is None:
        return None
    try:
        return Loc(inspect.getsourcefile(f) or code.co_filename, inspect.getsourcelines(f)[1])
    except (OSError, TypeError):
        return Loc(code.co_filename, code.co_firstlineno)


def _arg_atoms(tr: Tracer, who: str, args: list[Any]) -> list[Atom]:
    atoms = []
    for k, a in enumerate(args):
        if not (is_tensor_value(a) or isinstance(a, (int, float))) or isinstance(a, bool):
            raise tr.error(
                f"{who}: argument {k} is {describe(a)}; a function with a custom derivative takes tensors (or "
                "numbers) only",
                ArgumentError,
            )
        atoms.append(tr.atom(a))
    return tr.promote(atoms) if atoms else atoms


def _check_grads(fe: Tracer, who: str, loc: Loc | None, grads: Any, args: list[Atom]) -> list[Atom]:
    """The argument cotangents a rule returned, one per argument (a bare tensor for one
    argument; None or 0 for a zero cotangent), each of its argument's shape and dtype."""
    n = len(args)
    if n == 1 and not isinstance(grads, (tuple, list)):
        grads = (grads,)
    where = f" (defined at {loc})" if loc else ""
    if not isinstance(grads, (tuple, list)) or len(grads) != n:
        got = f"{len(grads)} values" if isinstance(grads, (tuple, list)) else describe(grads)
        raise fe.error(
            f"{who}: the custom derivative rule{where} must return one gradient per input ({n}), got {got}",
            ArgumentError,
        )
    out = []
    for k, (g, a) in enumerate(zip(grads, args)):
        if g is None or (isinstance(g, (int, float)) and not isinstance(g, bool) and g == 0):
            out.append(fill(fe.builder, a.shape, 0, a.dtype))
            continue
        ga = fe.atom(g, a.dtype)
        if ga.shape != a.shape:
            try:
                ga = broadcast_to(fe.builder, ga, a.shape)
            except S2SError:
                raise fe.error(
                    f"{who}: the gradient of input {k} returned by the custom rule{where} has shape {ga.shape}, "
                    f"but the input has shape {a.shape}",
                    ShapeError,
                ) from None
        out.append(cast_to(fe.builder, ga, a.dtype))
    return out


def stage_custom(
    tr: Tracer,
    kind: str,
    who: str,
    loc: Loc | None,
    primal: Stage,
    rule: Callable[[Tracer, list[Any], list[Any], Any], Any],
    args: list[Any],
) -> Any:
    """Stage a call of a function with a custom rule: ``primal(fe, args)`` stages the function;
    ``rule(fe, args, outs_or_tangents, tree)`` stages the rule, given the arguments and (kind
    ``"vjp"``) the outputs and their cotangents, or (kind ``"jvp"``) the tangents."""
    atoms = _arg_atoms(tr, who, args)
    avals = [a.aval for a in atoms]
    names = [f"x{k}" for k in range(len(atoms))]
    prim = trace(primal, avals, who, names)
    if prim.updates:
        raise tr.error(f"{who}: a function with a custom derivative cannot assign Parameters", NotSupportedError)
    out_avals = [o.aval for o in prim.outs]
    n = len(atoms)

    def body(fe: Tracer, vals: list[Any]) -> Any:
        xs = vals[:n]
        if kind == "vjp":
            outs = unflatten(prim.out_tree, vals[n : n + len(out_avals)])
            cts = unflatten(prim.out_tree, vals[n + len(out_avals) :])
            return tuple(_check_grads(fe, who, loc, rule(fe, xs, [outs, cts], prim.out_tree), xs))
        tangents = vals[n:]
        value, tangent = rule(fe, xs, tangents, prim.out_tree)
        leaves, tree = flatten(tangent)
        if tree != prim.out_tree:
            raise fe.error(
                f"{who}: the custom jvp rule{' (defined at ' + str(loc) + ')' if loc else ''} returned tangents "
                f"structured {tree_str(tree)} for outputs structured {tree_str(prim.out_tree)}",
                ArgumentError,
            )
        vleaves = flatten(value)[0]
        ts = [cast_to(fe.builder, fe.atom(t, o.dtype), o.dtype) for t, o in zip(leaves, out_avals)]
        return (*vleaves, *ts)

    if kind == "vjp":
        rule_avals = [*avals, *out_avals, *out_avals]
    else:
        rule_avals = [*avals, *avals]
    rule_prog = trace(body, rule_avals, f"{who}_{kind}_rule", [f"v{k}" for k in range(len(rule_avals))])
    extras = [tr.atom(p) for p in prim.parameters] + [tr.atom(c) for c in prim.consts]
    extras += [tr.atom(p) for p in rule_prog.parameters] + [tr.atom(c) for c in rule_prog.consts]
    outs = tr.builder.bind("custom", [*atoms, *extras], rule=CustomRule(kind, who, loc, prim, rule_prog))
    return unflatten(prim.out_tree, outs)


# ----------------------------------------------------------------------------- JAX's API
class _CustomFunction:
    """Shared by :class:`custom_vjp` and :class:`custom_jvp`: called from Python, the function
    is compiled (as ``jit`` compiles it); inside compiled code it is one custom equation."""

    kind = ""
    _tracing_rule = False

    def __init__(self, fun: Callable[..., Any]):
        if not callable(fun):
            raise ArgumentError(f"custom_{self.kind}: expected a function, got {type(fun).__name__}")
        self.fun = fun
        functools.update_wrapper(self, fun)
        self._jit = JitFunction(self)

    def _rule_defined(self) -> bool:
        raise NotImplementedError

    def __call__(self, *args: Any) -> Any:
        return self._jit(*args)

    def __s2s_stage__(self, tr: Tracer, args: list[Any], kwargs: dict) -> Any:
        who = callable_name(self.fun)
        if kwargs:
            raise tr.error(f"{who}: keyword arguments are not supported; pass inputs positionally", ArgumentError)
        if self._tracing_rule:
            raise tr.error(
                f"{who} calls itself inside its own derivative rule; compute the output in the rule directly",
                NotSupportedError,
            )
        if not self._rule_defined():
            raise tr.error(
                f"{who}: no derivative rule was defined (call {who}.def{self.kind}(...) first)", ArgumentError
            )

        def rule(fe: Tracer, xs: list[Any], extra: Any, out_tree: Any) -> Any:
            self._tracing_rule = True
            try:
                return self._stage_rule(fe, xs, extra, out_tree)
            finally:
                self._tracing_rule = False

        return stage_custom(tr, self.kind, who, self._loc(), lambda fe, vals: fe.call(self.fun, vals), rule, list(args))

    def _loc(self) -> Loc | None:
        raise NotImplementedError

    def _stage_rule(self, fe: Tracer, xs: list[Any], extra: Any, out_tree: Any) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<custom_{self.kind} {callable_name(self.fun)}>"


class custom_vjp(_CustomFunction):  # noqa: N801 - JAX's name
    """``@s2s_ad.custom_vjp`` then ``f.defvjp(fwd, bwd)``: ``f`` with a reverse-mode rule, as in JAX.

    ``fwd(*args) -> (output, residuals)``; ``bwd(residuals, cotangent) -> (one gradient per
    argument)`` (``None`` for a zero gradient). Reverse mode uses the rule at every order where
    ``fwd`` and ``bwd`` are differentiable; forward mode through ``f`` is an error."""

    kind = "vjp"

    def __init__(self, fun: Callable[..., Any]):
        super().__init__(fun)
        self.fwd: Callable[..., Any] | None = None
        self.bwd: Callable[..., Any] | None = None

    def defvjp(self, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> None:
        """Set the rule: ``fwd(*args) -> (out, residuals)``, ``bwd(residuals, g) -> grads``."""
        if not callable(fwd) or not callable(bwd):
            raise ArgumentError("custom_vjp.defvjp(fwd, bwd): fwd and bwd must be functions")
        self.fwd, self.bwd = fwd, bwd

    def _rule_defined(self) -> bool:
        return self.bwd is not None

    def _loc(self) -> Loc | None:
        return definition_loc(self.bwd)

    def _stage_rule(self, fe: Tracer, xs: list[Any], extra: Any, out_tree: Any) -> Any:
        _outs, cts = extra
        res = fe.call(self.fwd, list(xs))
        if not isinstance(res, tuple) or len(res) != 2:
            raise fe.error(
                f"{callable_name(self.fun)}: fwd must return (output, residuals), got {describe(res)}", ArgumentError
            )
        return fe.call(self.bwd, [res[1], cts])


class custom_jvp(_CustomFunction):  # noqa: N801 - JAX's name
    """``@s2s_ad.custom_jvp`` then ``f.defjvp(rule)``: ``f`` with a forward-mode rule, as in JAX.

    ``rule(primals, tangents) -> (output, output tangent)`` with ``primals`` and ``tangents``
    tuples of the arguments. Forward mode uses the rule; reverse mode transposes it (it must be
    linear in the tangents, as a jvp is); both work at every order where the rule is
    differentiable."""

    kind = "jvp"

    def __init__(self, fun: Callable[..., Any]):
        super().__init__(fun)
        self.jvp: Callable[..., Any] | None = None

    def defjvp(self, jvp: Callable[..., Any]) -> Callable[..., Any]:
        """Set the rule ``jvp(primals, tangents) -> (out, tangent_out)``; returns it (usable as a decorator)."""
        if not callable(jvp):
            raise ArgumentError("custom_jvp.defjvp(jvp): jvp must be a function")
        self.jvp = jvp
        return jvp

    def _rule_defined(self) -> bool:
        return self.jvp is not None

    def _loc(self) -> Loc | None:
        return definition_loc(self.jvp)

    def _stage_rule(self, fe: Tracer, xs: list[Any], extra: Any, out_tree: Any) -> Any:
        res = fe.call(self.jvp, [tuple(xs), tuple(extra)])
        if not isinstance(res, tuple) or len(res) != 2:
            raise fe.error(
                f"{callable_name(self.fun)}: the jvp rule must return (output, output tangent), got {describe(res)}",
                ArgumentError,
            )
        return res


register_static(_CustomFunction)


# ----------------------------------------------------------------------------- MindSpore's bprop
def stage_with_bprop(tr: Tracer, who: str, bprop: Any, primal: Stage, args: list[Any]) -> Any:
    """A call of a Cell or primitive whose ``bprop(*inputs, out, dout)`` (a bound method or a
    function) gives the gradients of its inputs (MindSpore's rule)."""

    def rule(fe: Tracer, xs: list[Any], extra: Any, out_tree: Any) -> Any:
        out, dout = extra
        return fe.call(bprop, [*xs, out, dout])

    return stage_custom(tr, "vjp", who, definition_loc(bprop), primal, rule, list(args))


__all__ = ["custom_vjp", "custom_jvp", "stage_custom", "stage_with_bprop", "definition_loc"]
