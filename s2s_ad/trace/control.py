"""Helpers of the interpreter for control flow on tensor values: closing a traced branch or loop
body into a sub-program, joining the values two branches (or a loop body and its entry) give a
name, and what the syntax tree of a block assigns or contains.

A branch or body is traced into a builder of its own (:meth:`Tracer.sub_builder`); the values
it reads from outside are found afterwards (:func:`free_vars`) and become the region's inputs
(:func:`close`): sub-programs are closed, they read nothing but their inputs.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..errors import Loc, S2SError, UnsupportedSyntaxError
from ..ir import Atom, Eqn, Program, Var
from ..primitives import fmt_shape
from ..regions import subprogram

#: A Python ``int``/``float`` carried through a loop whose body gives it a tensor value (or a
#: value that depends on the iteration) becomes a tensor of this dtype before the loop.
NUMBER_TYPES = (bool, int, float)


class Undefined:
    """The value of a name that has none after a region: assigned in one branch only, given
    values that cannot be merged, or made inside a loop kept as a loop. Reading it is an error
    with this message."""

    def __init__(self, message: str, loc: Loc | None, cls: type[S2SError] = UnsupportedSyntaxError):
        self.message = message
        self.loc = loc
        self.cls = cls

    def __repr__(self) -> str:
        return f"<undefined: {self.message}>"


class Mismatch(Exception):
    """Two values of a name that cannot be joined (the message says why)."""


@dataclass(frozen=True)
class Slot:
    """Where the ``k``-th output of a region goes in a joined value."""

    k: int


# ----------------------------------------------------------------------------- the syntax tree
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_LOOPS = (ast.For, ast.While, ast.AsyncFor)


def _walk(nodes: Sequence[ast.AST], skip: tuple[type, ...]) -> list[ast.AST]:
    """Every node under ``nodes``, not descending into nodes of the classes ``skip``."""
    out: list[ast.AST] = []
    todo = list(nodes)
    while todo:
        n = todo.pop()
        out.append(n)
        for child in ast.iter_child_nodes(n):
            if not isinstance(child, skip):
                todo.append(child)
    return out


def assigned_names(stmts: Sequence[ast.stmt]) -> list[str]:
    """The names a block assigns (``x = ``, ``x += ``, ``x[i] = ``, ``for x in``), not counting
    those of nested functions and comprehensions (their own scopes)."""
    seen: dict[str, None] = {}
    for n in _walk(stmts, _SCOPES + (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            seen[n.id] = None
        elif isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Store):
            base = n.value  # `x[i] = v` (a functional update) assigns a new value to `x`
            while isinstance(base, ast.Subscript):
                base = base.value
            if isinstance(base, ast.Name):
                seen[base.id] = None
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            seen[n.name] = None
    return sorted(seen)


def has_return(stmts: Sequence[ast.stmt]) -> bool:
    """Whether a block contains a ``return`` (outside nested functions)."""
    return any(isinstance(n, ast.Return) for n in _walk(stmts, _SCOPES))


def has_jump(stmts: Sequence[ast.stmt]) -> bool:
    """Whether a block contains a ``break`` or ``continue`` of an enclosing loop (one not
    inside a loop of its own)."""
    return any(isinstance(n, (ast.Break, ast.Continue)) for n in _walk(stmts, _SCOPES + _LOOPS))


# ----------------------------------------------------------------------------- sub-programs
def free_vars(eqns: Sequence[Eqn], outs: Sequence[Atom], bound: Sequence[Var] = ()) -> list[Var]:
    """The variables ``eqns`` and ``outs`` read that neither ``bound`` nor ``eqns`` define, in
    the order of first use."""
    defined = set(bound)
    free: dict[Var, None] = {}
    for e in eqns:
        for a in e.ins:
            if isinstance(a, Var) and a not in defined:
                free[a] = None
        defined.update(e.outs)
    for a in outs:
        if isinstance(a, Var) and a not in defined:
            free[a] = None
    return list(free)


def close(
    name: str,
    lead: Sequence[Var],
    free: Sequence[Var],
    trail: Sequence[Var],
    eqns: Sequence[Eqn],
    outs: Sequence[Atom],
    names: dict | None = None,
) -> Program:
    """The closed sub-program with inputs ``(*lead, *free', *trail)`` computing ``outs`` by
    ``eqns``, where ``free'`` are new variables standing for the outside values ``free``."""
    env: dict[Var, Var] = {v: Var(v.aval, v.hint) for v in free}

    def sub(a: Atom) -> Atom:
        return env.get(a, a) if isinstance(a, Var) else a

    new_eqns = [replace(e, ins=[sub(a) for a in e.ins]) if any(a in env for a in e.ins) else e for e in eqns]
    invars = [*lead, *(env[v] for v in free), *trail]
    return subprogram(name, invars, new_eqns, [sub(a) for a in outs], names)


# ----------------------------------------------------------------------------- values
def copy_containers(v: Any) -> Any:
    """``v`` with its lists and dicts copied (tuples rebuilt around them), so that a branch or
    loop body traced on it cannot change the caller's containers."""
    if isinstance(v, list):
        return [copy_containers(x) for x in v]
    if isinstance(v, dict) and type(v) is dict:
        return {k: copy_containers(x) for k, x in v.items()}
    if isinstance(v, tuple) and type(v) is tuple:
        return tuple(copy_containers(x) for x in v)
    return v


def same_static(a: Any, b: Any) -> bool:
    """Whether two compile-time values are the same (numbers, strings and None by value,
    anything else by identity)."""
    if a is b:
        return True
    if type(a) is type(b) and isinstance(a, (bool, int, float, str, type(None))):
        return bool(a == b)
    return False


def describe_value(v: Any) -> str:
    """A value in a message: a tensor by its shape and dtype, else its repr (shortened)."""
    aval = getattr(v, "aval", None)
    if aval is not None:
        return f"a tensor of shape {fmt_shape(aval.shape)} and dtype {aval.dtype.name}"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def rebuild(template: Any, outs: Sequence[Atom]) -> Any:
    """A joined value: its :class:`Slot` leaves replaced by the region's outputs."""
    if isinstance(template, Slot):
        return outs[template.k]
    if isinstance(template, list):
        return [rebuild(x, outs) for x in template]
    if isinstance(template, tuple) and type(template) is tuple:
        return tuple(rebuild(x, outs) for x in template)
    if isinstance(template, dict) and type(template) is dict:
        return {k: rebuild(x, outs) for k, x in template.items()}
    return template


__all__ = [
    "FLAG_PREFIX",
    "Mismatch",
    "Slot",
    "Undefined",
    "assigned_names",
    "close",
    "copy_containers",
    "describe_value",
    "free_vars",
    "has_jump",
    "has_return",
    "PENDING",
    "lower_jumps",
    "lower_returns",
    "rebuild",
    "same_static",
]


# ----------------------------------------------------------------------------- break and continue
#: The names of the flags that stand for ``break`` and ``continue`` in a lowered loop start so.
FLAG_PREFIX = "_s2s_"


def _name(name: str, store: bool = False) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Store() if store else ast.Load())


def _set(name: str, value: bool, at: ast.AST) -> ast.stmt:
    return ast.copy_location(ast.Assign(targets=[_name(name, True)], value=ast.Constant(value)), at)


def _unless(flags: list[str], body: list[ast.stmt], at: ast.AST) -> ast.stmt:
    """``if not (flag or ...): body``."""
    test: ast.expr = _name(flags[0]) if len(flags) == 1 else ast.BoolOp(op=ast.Or(), values=[_name(f) for f in flags])
    node = ast.If(test=ast.UnaryOp(op=ast.Not(), operand=test), body=body, orelse=[])
    ast.fix_missing_locations(ast.copy_location(node, at))
    return node


def _lower(stmts: Sequence[ast.stmt], brk: str, cont: str, flags: list[str]) -> list[ast.stmt]:
    """``stmts`` with ``break`` as ``brk = True``, ``continue`` as ``cont = True``, and what
    follows an ``if`` that may jump guarded by the flags."""
    out: list[ast.stmt] = []
    for k, s in enumerate(stmts):
        if isinstance(s, ast.Break):
            out.append(_set(brk, True, s))
            return out
        if isinstance(s, ast.Continue):
            out.append(_set(cont, True, s))
            return out
        if isinstance(s, ast.If) and has_jump([s]):
            lowered = ast.If(
                test=s.test,
                body=_lower(s.body, brk, cont, flags) or [ast.copy_location(ast.Pass(), s)],
                orelse=_lower(s.orelse, brk, cont, flags),
            )
            out.append(ast.copy_location(lowered, s))
            rest = _lower(stmts[k + 1 :], brk, cont, flags)
            if rest:
                out.append(_unless(flags, rest, stmts[k + 1]))
            return out
        out.append(s)
    return out


def lower_jumps(loop: ast.For | ast.While) -> tuple[ast.For | ast.While, str]:
    """The loop with its ``break``/``continue`` turned into flags (``_s2s_break<line>_<col>``,
    ``_s2s_continue...``): a ``break`` under a tensor condition then carries a bool through the
    loop, and the rest of the iteration and the loop run only while it is False. Returns the
    new loop and the name of its ``break`` flag (False before the loop)."""
    tag = f"{loop.lineno}_{loop.col_offset}"
    brk, cont = f"{FLAG_PREFIX}break{tag}", f"{FLAG_PREFIX}continue{tag}"
    walked = _walk(loop.body, _SCOPES + _LOOPS)
    uses_cont = any(isinstance(n, ast.Continue) for n in walked)
    flags = [brk, cont] if uses_cont else [brk]
    body = _lower(loop.body, brk, cont, flags)
    first = [_set(cont, False, loop)] if uses_cont else []
    orelse = [_unless([brk], list(loop.orelse), loop)] if loop.orelse else []
    if isinstance(loop, ast.While):
        test = ast.BoolOp(op=ast.And(), values=[ast.UnaryOp(op=ast.Not(), operand=_name(brk)), loop.test])
        new: ast.For | ast.While = ast.While(test=test, body=first + body, orelse=orelse)
    else:
        new = ast.For(target=loop.target, iter=loop.iter, body=first + [_unless([brk], body, loop)], orelse=orelse)
    ast.fix_missing_locations(ast.copy_location(new, loop))
    return new, brk


# ----------------------------------------------------------------------------- return inside a loop
class _Pending:
    """The value of a loop's returned value before a ``return`` inside the loop sets it: it
    takes the shape and dtype of that value where the two meet (zeros; never used, since the
    loop's ``return`` flag is False wherever it is still pending)."""

    def __repr__(self) -> str:
        return "no value yet"


PENDING = _Pending()


def _assign(name: str, value: ast.expr, at: ast.AST) -> ast.stmt:
    return ast.copy_location(ast.Assign(targets=[_name(name, True)], value=value), at)


def _returns_as_breaks(stmts: Sequence[ast.stmt], ret: str, val: str) -> list[ast.stmt]:
    """``stmts`` (inside a loop) with ``return v`` as ``val = v; ret = True; break``, and after
    a nested loop that returns, ``if ret: break``."""
    out: list[ast.stmt] = []
    for s in stmts:
        if isinstance(s, ast.Return):
            value = s.value if s.value is not None else ast.copy_location(ast.Constant(None), s)
            out += [_assign(val, value, s), _set(ret, True, s), ast.copy_location(ast.Break(), s)]
            return out  # what follows a `return` never runs
        if not has_return([s]):
            out.append(s)
            continue
        if isinstance(s, ast.If):
            node: ast.stmt = ast.If(
                test=s.test,
                body=_returns_as_breaks(s.body, ret, val) or [ast.copy_location(ast.Pass(), s)],
                orelse=_returns_as_breaks(s.orelse, ret, val),
            )
            out.append(ast.copy_location(node, s))
        elif isinstance(s, (ast.For, ast.While)):
            # the `else` clause of a nested loop is in the enclosing loop: its `break` leaves that one
            node = ast.copy_location(type(s)(**{f: getattr(s, f) for f in s._fields}), s)
            node.body = _returns_as_breaks(s.body, ret, val)
            node.orelse = _returns_as_breaks(s.orelse, ret, val)
            out.append(node)
            if has_return(s.body):
                out.append(ast.copy_location(ast.If(test=_name(ret), body=[ast.Break()], orelse=[]), s))
        elif isinstance(s, ast.With):
            node = ast.copy_location(ast.With(items=s.items, body=_returns_as_breaks(s.body, ret, val)), s)
            out.append(node)
        else:
            out.append(s)  # a statement kind that is not supported anyway says so when it runs
    return out


def lower_returns(loop: ast.For | ast.While) -> tuple[list[ast.stmt], str, str]:
    """A loop whose body returns as the same loop with each ``return v`` turned into
    ``_s2s_value<tag> = v; _s2s_return<tag> = True; break``, followed by
    ``if _s2s_return<tag>: return _s2s_value<tag>``: a ``return`` under a tensor condition then
    carries a flag and the value through the loop (the value takes the returned value's shape
    and dtype; before the loop it is :data:`PENDING`). Returns the statements and the names of
    the flag (False before the loop) and of the value."""
    tag = f"{loop.lineno}_{loop.col_offset}"
    ret, val = f"{FLAG_PREFIX}return{tag}", f"{FLAG_PREFIX}value{tag}"
    new = ast.copy_location(type(loop)(**{f: getattr(loop, f) for f in loop._fields}), loop)
    new.body = _returns_as_breaks(loop.body, ret, val)
    after = ast.If(test=_name(ret), body=[ast.copy_location(ast.Return(value=_name(val)), loop)], orelse=[])
    out = [new, ast.copy_location(after, loop)]
    for node in out:
        ast.fix_missing_locations(node)
    return out, ret, val
