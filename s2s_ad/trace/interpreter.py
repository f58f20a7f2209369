"""The interpreter: Python source → IR, by abstract evaluation of the syntax tree.

The AST of ``construct`` (or of a plain function) is evaluated abstractly: tensor values are
IR atoms, everything else is an ordinary Python value known while compiling. That is what
resolves ``self.x`` to a primitive, a ``Parameter`` or a sub-Cell, inlines sub-cells and helper
functions, decides ``if`` on constants and unrolls ``for`` over ``range(N)`` or tuples. What
cannot be compiled is rejected with the user's file and line.

Statements and expressions are dispatched by node class (``exec_<Node>`` and ``eval_<Node>``
methods, looked up once per class); calls go through the staging protocol of
:mod:`s2s_ad.trace.protocol`; tensor values are built through the :class:`Tracer`.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import operator
import os
import textwrap
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import dtype as mstype
from ..errors import ArgumentError, Loc, S2SError, ShapeError, SourceUnavailableError, UnsupportedSyntaxError
from ..ir import Atom, Aval, Builder, Lit, Program, Var, dict_keys, flatten
from ..primitives import fmt_shape
from ..pyast import parse as parse_source
from ..regions import bind_cond, bind_loop, bind_while
from .checkpoint import loop_options
from .control import (
    FLAG_PREFIX,
    NUMBER_TYPES,
    PENDING,
    Mismatch,
    Slot,
    Undefined,
    assigned_names,
    close,
    copy_containers,
    describe_value,
    free_vars,
    has_jump,
    has_return,
    lower_jumps,
    lower_returns,
    rebuild,
    same_static,
)
from .lowering import TENSOR_METHODS, TensorMethod, lower_matmul
from .protocol import (
    describe,
    find_stager,
    has_traced,
    is_computed_instance,
    is_static,
    is_tensor_value,
    leaf_of,
    name_of,
)
from .reads import note_function, note_global, note_module_attribute
from .sources import source_lines
from .tracer import Tracer

_UNSUPPORTED_STMTS = {
    ast.Try: "`try` statements",
    ast.With: "`with` statements",
    ast.AsyncWith: "`async with` statements",
    ast.Global: "`global` declarations",
    ast.Nonlocal: "`nonlocal` declarations",
    ast.Delete: "`del` statements",
    ast.AsyncFunctionDef: "nested function definitions",
    ast.ClassDef: "class definitions",
    ast.Import: "`import` statements",
    ast.ImportFrom: "`import` statements",
    ast.Raise: "`raise` statements",
    ast.AsyncFor: "`async for` loops",
}
if hasattr(ast, "TryStar"):
    _UNSUPPORTED_STMTS[ast.TryStar] = "`try` statements"

_UNSUPPORTED_EXPRS = {
    ast.Yield: "`yield`",
    ast.YieldFrom: "`yield from`",
    ast.Await: "`await`",
    ast.SetComp: "set comprehensions",
    ast.DictComp: "dict comprehensions",
    ast.NamedExpr: "assignment expressions (`:=`)",
    ast.JoinedStr: "f-strings",
    ast.Set: "set displays",
}

_BINOPS = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "div",
    ast.Pow: "pow",
    ast.FloorDiv: "floor_div",
    ast.Mod: "floor_mod",
}
_PY_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.MatMult: operator.matmul,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
    ast.BitXor: operator.xor,
}
_PY_CMPS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_TENSOR_CMPS = {
    ast.Gt: "greater",
    ast.GtE: "greater_equal",
    ast.Lt: "less",
    ast.LtE: "less_equal",
    ast.Eq: "equal",
    ast.NotEq: "not_equal",
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}


def _cmp_symbol(op: ast.cmpop) -> str:
    return {ast.In: "in", ast.NotIn: "not in"}.get(type(op), type(op).__name__)


def _op_symbol(op: ast.operator) -> str:
    return {
        ast.FloorDiv: "//",
        ast.Mod: "%",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.BitAnd: "&",
        ast.BitOr: "|",
        ast.BitXor: "^",
        ast.MatMult: "@",
    }.get(type(op), type(op).__name__)


_SAFE_BUILTINS = {
    "len",
    "range",
    "tuple",
    "list",
    "isinstance",
    "int",
    "float",
    "bool",
    "min",
    "max",
    "enumerate",
    "zip",
    "reversed",
    "abs",
    "str",
    "type",
    "dict",
    "slice",
    "sum",
    "print",
    "super",
    "getattr",
    "hasattr",
}
# Builtin types called on compile-time values (``int(n)``, ``tuple(shape)``, ``range(3)``).
_BUILTIN_TYPES = (int, float, bool, tuple, list, range, slice, dict, enumerate, zip, reversed, str)


class _Return(Exception):
    def __init__(self, value: Any):
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@dataclass
class Parsed:
    """The syntax tree of a function and where its source is."""

    node: ast.FunctionDef
    file: str
    offset: int
    qualname: str


_PARSED: dict[Any, Parsed] = {}


def parse_function(func: types.FunctionType) -> Parsed:
    """The parsed ``def`` of ``func`` (cached per code object)."""
    code = func.__code__
    # code objects compare by value, without their file: equal functions in two files are two
    key = (code.co_filename, code)
    got = _PARSED.get(key)
    if got is not None:
        return got
    name = func.__qualname__
    try:
        lines, first, file = source_lines(func)
    except (OSError, TypeError):
        raise SourceUnavailableError(
            f"s2s_ad needs the Python source of `{name}` but cannot read it (functions typed at the "
            "interactive prompt or created by exec() have none). Define it in a .py file, or put its "
            "source into linecache under its code's filename."
        ) from None
    if func.__name__ == "<lambda>":
        node = _lambda_node(lines, code, Loc(file, first))
        got = Parsed(node, file, first - 1, name)
        _PARSED[key] = got
        return got
    try:
        tree = parse_source(textwrap.dedent("".join(lines)))
    except SyntaxError:
        raise UnsupportedSyntaxError(f"cannot parse the source of `{name}` on its own", Loc(file, first)) from None
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef):
        raise UnsupportedSyntaxError(f"`{name}` is not a `def` function", Loc(file, first))
    _check_source_is_current(node, code, name, Loc(file, first))
    got = Parsed(node, file, first - 1, name)
    _PARSED[key] = got
    return got


def _lambda_node(lines: list[str], code: types.CodeType, loc: Loc) -> ast.FunctionDef:
    """The ``lambda`` of ``code`` in its source ``lines`` (the statement that holds it), as a
    ``def`` returning its body. The lambdas there are told apart by their parameters and, where
    those agree, by the column the code starts at."""
    text = textwrap.dedent("".join(lines))
    tree = None
    # the statement that holds the lambda, or (a lambda inside a bracket split over lines, a
    # dict entry) each `lambda ...` in it cut where it parses on its own
    candidates = [text, f"(\n{text}\n)"]
    for k in range(len(text)):
        if text.startswith("lambda", k):
            candidates += [text[k:end] for end in range(len(text), k, -1)]
    for candidate in candidates:
        try:
            tree = parse_source(candidate)
            break
        except SyntaxError:
            continue
    if tree is None:
        raise UnsupportedSyntaxError("cannot parse the source of a lambda on its own", loc)
    params = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
    found = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Lambda)
        and [a.arg for a in [*n.args.posonlyargs, *n.args.args, *n.args.kwonlyargs]] == params
    ]
    if len(found) > 1:
        positions = [p for p in code.co_positions() if p[0] is not None and p[2] is not None]
        if positions:
            line, col = positions[-1][0] - code.co_firstlineno, positions[-1][2]
            found = [n for n in found if (n.body.lineno - 1, n.body.col_offset) <= (line, col)]
            found = found[-1:] if found else found
    if len(found) != 1:
        raise UnsupportedSyntaxError(
            "cannot tell which lambda on this line is being compiled: write it with `def`"
            if found
            else "cannot find the source of this lambda: write it with `def`",
            loc,
        )
    lam = found[0]
    node = ast.FunctionDef(name="<lambda>", args=lam.args, body=[ast.Return(lam.body)], decorator_list=[], returns=None)
    ast.copy_location(node, lam)
    ast.copy_location(node.body[0], lam)
    return node


def _check_source_is_current(node: ast.FunctionDef, code: types.CodeType, name: str, loc: Loc) -> None:
    """The ``def`` read from the file must be the one the running function was compiled from:
    a file edited after it was imported holds other text at the function's line, and compiling
    that would silently differentiate another function."""
    args = node.args
    params = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
    expected = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
    if node.name != code.co_name or params != expected:
        raise SourceUnavailableError(
            f"the source of `{name}` changed after it was imported: its line now holds "
            f"`def {node.name}({', '.join(params)})`, not `def {code.co_name}({', '.join(expected)})`. "
            "Restart the process (or reload the module) to compile the current source",
            loc,
        )


class _ContainerMethod:
    """``d.items()``, ``d.keys()``, ``d.values()`` of a dict while compiling: called at once."""

    def __init__(self, method: Any):
        self.method = method
        self.__name__ = getattr(method, "__name__", "method")

    def __s2s_stage__(self, tr: Tracer, args: list, kwargs: dict) -> Any:
        if has_traced([list(args), list(kwargs.values())]):
            raise tr.error(f"`{self.__name__}` must be called with compile-time constants here")
        return list(self.method(*args, **kwargs))


class _ListMethod:
    """``ys.append(y)`` and the other methods of a Python list while compiling: called at once."""

    METHODS = frozenset({"append", "extend", "insert", "pop", "index", "count", "reverse", "copy"})

    def __init__(self, method: Any):
        self.method = method

    def __s2s_stage__(self, tr: Tracer, args: list, kwargs: dict) -> Any:
        return self.method(*args, **kwargs)


class Scope:
    """The names of one function being interpreted: its locals, closure and globals, and the
    scope it is nested in (a nested ``def``, a lambda or a comprehension)."""

    def __init__(self, func: types.FunctionType | None, parsed: Parsed, parent: Scope | None = None):
        self.locals: dict[str, Any] = {}
        self.parent = parent
        self.globals = func.__globals__ if func is not None else parent.globals  # type: ignore[union-attr]
        self.closure: dict[str, Any] = {}
        if func is not None and func.__closure__:
            for n, c in zip(func.__code__.co_freevars, func.__closure__):
                try:
                    self.closure[n] = c.cell_contents
                except ValueError:
                    pass
        elif parent is not None:
            self.closure = parent.closure
        self.parsed = parsed
        # the statements after the one being executed, per enclosing block (for the tail
        # duplication of a `return` under a tensor condition), and the loops being executed
        self.tails: list[list[ast.stmt]] = []
        self.in_loop = 0

    def child(self) -> Scope:
        """A scope nested in this one (a comprehension, a nested function's call)."""
        return Scope(None, self.parsed, self)

    def fork(self) -> Scope:
        """A copy to trace a branch or a loop body in: the same names, containers copied."""
        other = Scope.__new__(Scope)
        other.parent, other.globals, other.closure, other.parsed = self.parent, self.globals, self.closure, self.parsed
        other.tails, other.in_loop = [], self.in_loop
        other.locals = {k: copy_containers(v) for k, v in self.locals.items()}
        return other

    def continuation(self) -> list[ast.stmt] | None:
        """The statements that run after the current one up to the end of the function, or
        None inside a loop (where what follows is the next iteration)."""
        if self.in_loop:
            return None
        out: list[ast.stmt] = []
        for rest in reversed(self.tails):
            out.extend(rest)
        return out

    def loc(self, node: ast.AST) -> Loc:
        return Loc(self.parsed.file, getattr(node, "lineno", 1) + self.parsed.offset)


def _dispatch_table(cls: type, prefix: str) -> dict[type, Callable[..., Any]]:
    """``{ast.Assign: cls.exec_Assign, ...}``: the handler of each AST node class."""
    table = {}
    for name in dir(cls):
        if name.startswith(prefix):
            node_cls = getattr(ast, name[len(prefix) :], None)
            if isinstance(node_cls, type):
                table[node_cls] = getattr(cls, name)
    return table


_MISSING = object()


class _Unroll(Exception):
    """A ``for`` loop that cannot be kept as a loop: it is unrolled instead."""


class _Promote(Exception):
    """A Python number carried through a loop varies: it becomes a tensor of ``dtype`` (weakly
    typed, as the number it stands for, with ``weak``). With ``zeros`` (a :func:`_zeros_spec`),
    a :data:`PENDING` value an iteration sets: it enters the loop as zeros of that form."""

    def __init__(self, message: str, dtype: np.dtype | None, weak: bool = False, zeros: Any = None):
        super().__init__(message)
        self.dtype = dtype
        self.weak = weak
        self.zeros = zeros


class _ZeroLeaf:
    """A tensor leaf of a :func:`_zeros_spec`."""

    def __init__(self, aval: Aval, weak: bool):
        self.aval, self.weak = aval, weak


def _zeros_spec(tr: Tracer, v: Any) -> Any:
    """The form of ``v`` (its tensors' avals; its other leaves as they are) for :func:`_zeros_of`."""
    if is_tensor_value(v):
        a = tr.atom(v)
        return _ZeroLeaf(a.aval, tr.is_weak(a))
    if type(v) in (list, tuple):
        parts = [_zeros_spec(tr, x) for x in v]
        return parts if isinstance(v, list) else tuple(parts)
    if type(v) is dict:
        return {k: _zeros_spec(tr, x) for k, x in v.items()}
    return v


def _weaken(tr: Tracer, v: Any) -> Any:
    """``v`` with the Python numbers in it as weakly typed 0-d tensors (int64 or float64)."""
    if isinstance(v, NUMBER_TYPES) and not isinstance(v, bool):
        return tr.mark_weak(Lit(v, np.dtype(np.float64 if isinstance(v, float) else np.int64)))
    if type(v) in (list, tuple):
        parts = [_weaken(tr, x) for x in v]
        return parts if isinstance(v, list) else tuple(parts)
    if type(v) is dict:
        return {k: _weaken(tr, x) for k, x in v.items()}
    return v


def _widens(narrow: np.dtype, wide: np.dtype) -> bool:
    """Whether a value of dtype ``narrow`` becomes ``wide`` in arithmetic with a ``wide`` one
    (MindSpore's promotion: an integer meeting a float, a float meeting a wider float)."""
    return (narrow.kind in "iu" and wide.kind == "f") or (narrow.kind == wide.kind and wide.itemsize > narrow.itemsize)


def _widest(dtypes: list[np.dtype]) -> np.dtype | None:
    """The dtype all of ``dtypes`` widen to, where they differ and one is; else None."""
    if len(set(dtypes)) < 2:
        return None
    for d in dtypes:
        if all(e == d or _widens(e, d) for e in dtypes):
            return d
    return None


def _only_appended(body: list[ast.stmt], name: str) -> bool:
    """Whether the only use of ``name`` in ``body`` is ``name.append(value)`` statements."""
    appends: set[int] = set()
    nodes = [n for s in body for n in ast.walk(s)]
    for n in nodes:
        if (
            isinstance(n, ast.Expr)
            and isinstance(n.value, ast.Call)
            and isinstance(n.value.func, ast.Attribute)
            and n.value.func.attr == "append"
            and isinstance(n.value.func.value, ast.Name)
            and n.value.func.value.id == name
            and len(n.value.args) == 1
            and not n.value.keywords
        ):
            appends.add(id(n.value.func.value))
    uses = [n for n in nodes if isinstance(n, ast.Name) and n.id == name]
    return len(appends) == 1 and all(id(n) in appends for n in uses)


def _zeros_of(tr: Tracer, spec: Any) -> Any:
    """A value of the form ``spec`` with zero tensors (what a :data:`PENDING` value is where it
    meets the value that replaces it)."""
    if isinstance(spec, _ZeroLeaf):
        z = tr.fill(spec.aval.shape, 0, spec.aval.dtype)
        return tr.mark_weak(z) if spec.weak else z
    if type(spec) in (list, tuple):
        parts = [_zeros_of(tr, x) for x in spec]
        return parts if isinstance(spec, list) else tuple(parts)
    if type(spec) is dict:
        return {k: _zeros_of(tr, x) for k, x in spec.items()}
    return spec


class _Closure:
    """A nested ``def`` or a ``lambda`` while compiling: called by interpreting its syntax tree
    in a scope nested in the one that defined it."""

    def __init__(
        self, interp: Interpreter, node: Any, name: str, scope: Scope, defaults: list, kw_defaults: dict
    ) -> None:
        self.interp, self.node, self.name, self.scope = interp, node, name, scope
        args = node.args
        params = []
        positional = [*args.posonlyargs, *args.args]
        first_default = len(positional) - len(defaults)
        for k, a in enumerate(positional):
            kind = (
                inspect.Parameter.POSITIONAL_ONLY
                if k < len(args.posonlyargs)
                else inspect.Parameter.POSITIONAL_OR_KEYWORD
            )
            default = defaults[k - first_default] if k >= first_default else inspect.Parameter.empty
            params.append(inspect.Parameter(a.arg, kind, default=default))
        if args.vararg:
            params.append(inspect.Parameter(args.vararg.arg, inspect.Parameter.VAR_POSITIONAL))
        for a in args.kwonlyargs:
            params.append(
                inspect.Parameter(
                    a.arg, inspect.Parameter.KEYWORD_ONLY, default=kw_defaults.get(a.arg, inspect.Parameter.empty)
                )
            )
        if args.kwarg:
            params.append(inspect.Parameter(args.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
        self.signature = inspect.Signature(params)
        self.__name__ = name

    def __s2s_stage__(self, tr: Tracer, args: list, kwargs: dict) -> Any:
        return self.interp.call_closure(self, list(args), dict(kwargs))


class _Iter:
    """What a ``for`` loop iterates over: ``range`` (value: the range), ``tensor`` (value: the
    atom; its first axis), ``zip``/``enumerate`` (value: the start of enumerate; parts: the
    iterables) or ``items`` (value: the list of compile-time items)."""

    def __init__(self, kind: str, value: Any, parts: list[_Iter] | None = None):
        self.kind, self.value, self.parts = kind, value, parts or []

    def length(self) -> int:
        if self.kind in ("range", "items"):
            return len(self.value)
        if self.kind == "tensor":
            return int(self.value.shape[0])
        lengths = [p.length() for p in self.parts]
        return min(lengths) if lengths else 0

    def loopable(self) -> bool:
        return self.kind in ("range", "tensor") or (
            self.kind in ("zip", "enumerate") and bool(self.parts) and all(p.loopable() for p in self.parts)
        )

    def tensors(self) -> list[Atom]:
        if self.kind == "tensor":
            return [self.value]
        return [x for p in self.parts for x in p.tensors()]

    def item(self, interp: Interpreter, k: int) -> Any:
        """The ``k``-th item (the loop unrolled)."""
        if self.kind in ("range", "items"):
            return self.value[k]
        if self.kind == "tensor":
            return interp.tracer.bind1("getitem", self.value, index=(k,))
        if self.kind == "zip":
            return tuple(p.item(interp, k) for p in self.parts)
        return (self.value + k, self.parts[0].item(interp, k))

    def region_item(self, interp: Interpreter, i: Var, xs: Any, top: bool = False) -> Any:
        """The item of the iteration whose loop variable is ``i`` (``xs``: the per-iteration
        slices of the iterated tensors, in order). A top-level range's loop variable is ``i``
        itself (the loop runs ``range``'s start and step); elsewhere ``i`` counts from 0."""
        tr = interp.tracer
        if self.kind == "range":
            if top:
                return i
            r = self.value
            v: Any = i if r.step == 1 else tr.elementwise("mul", [i, r.step])
            return v if r.start == 0 else tr.elementwise("add", [v, r.start])
        if self.kind == "tensor":
            return next(xs)
        if self.kind == "zip":
            return tuple(p.region_item(interp, i, xs) for p in self.parts)
        count = i if self.value == 0 else tr.elementwise("add", [i, self.value])
        return (count, self.parts[0].region_item(interp, i, xs))


class _Finish:
    """Binds the names a loop carried to the region's outputs once it is emitted; the names
    its body made anew have no value after a loop kept as a loop (compile-time values that do
    not depend on the iteration keep theirs)."""

    def __init__(self, scope: Scope, templates: dict, new_names: list[str], fork: Scope, loc: Loc):
        self.scope, self.templates, self.new_names, self.fork, self.loc = scope, templates, new_names, fork, loc
        self.body_eqns: list = []
        self.body_outs: list[Atom] = []
        self.body_names: dict = {}
        self.weak_outs: list[bool] = []
        self.weak_carry: list[bool] = []
        self.appended: list[str] = []  # the lists a `for` region appends one tensor to per iteration
        self.n_carry = 0
        self.tracer: Tracer | None = None

    def __call__(self, outs: list[Var]) -> None:
        hints = _hints(self.templates, len(outs))
        for v, h in zip(outs, hints):
            if h is not None:
                v.hint = h
        if self.tracer is not None:
            for v, w in zip(outs, self.weak_outs):
                if w:
                    self.tracer.mark_weak(v)
        for name, t in self.templates.items():
            self.scope.locals[name] = rebuild(t, outs)
        for name in self.new_names:
            v = self.fork.locals[name]
            if has_traced([v]) or isinstance(v, Undefined):
                v = Undefined(
                    f"`{name}` is assigned inside the loop at {self.loc}, which is kept as a loop: give it a value "
                    "before the loop to use it after",
                    self.loc,
                )
            self.scope.locals[name] = v


def _target_names(t: ast.expr) -> list[str]:
    return [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]


def _split(tr: Tracer, v: Any, leaves: list[Atom]) -> Any:
    """``v`` with its tensor leaves replaced by :class:`Slot` s (the atoms appended to ``leaves``)."""
    if is_tensor_value(v):
        leaves.append(tr.atom(v))
        return Slot(len(leaves) - 1)
    if type(v) in (list, tuple):
        parts = [_split(tr, x, leaves) for x in v]
        return parts if isinstance(v, list) else tuple(parts)
    if type(v) is dict:
        return {k: _split(tr, x, leaves) for k, x in v.items()}
    return v


def _hints(templates: dict[str, Any], n: int) -> list[str | None]:
    """The name of each carried value (the variable it is, where it is one)."""
    out: list[str | None] = [None] * n
    for name, t in templates.items():
        if isinstance(t, Slot):
            out[t.k] = name
    return out


def _same_tree(a: Any, b: Any) -> bool:
    """Whether a container was left as it was (same items, by identity)."""
    if type(a) in (list, tuple) and type(b) is type(a):
        return len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b))
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(_same_tree(a[k], b[k]) for k in a)
    return a is b or same_static(a, b)


def _match(
    tr: Tracer,
    name: str,
    t: Any,
    new: Any,
    carry: list[Var],
    outs: list[Atom],
    kind: str,
    promoted: bool = False,
    top: bool = True,
) -> None:
    """Check the value ``new`` a loop body leaves in a carried name against the template ``t``
    it entered with, appending its tensor leaves to ``outs``."""
    if isinstance(t, Slot):
        want = carry[t.k].aval
        if isinstance(new, NUMBER_TYPES) and not isinstance(new, bool):
            outs.append(tr.fill(want.shape, new, want.dtype))
            return
        if not is_tensor_value(new):
            raise Mismatch(f"`{name}` enters the loop as a tensor and an iteration leaves {describe_value(new)} in it")
        a = tr.atom(new, want.dtype)
        weak_in = tr.is_weak(carry[t.k])
        # a tensor an iteration widens (an int32 zero that float values are added to): it enters
        # the loop as the wider dtype, as it would leave the first iteration of the Python loop
        widened = top and _widens(want.dtype, a.dtype)
        if a.aval != want or (weak_in and not tr.is_weak(a)):
            if (promoted or weak_in or widened) and a.shape == want.shape:
                raise _Promote(
                    f"`{name}` changes dtype from {want.dtype} to {a.dtype} in the loop", a.dtype, tr.is_weak(a)
                )
            raise Mismatch(
                f"`{name}` enters the loop with shape {fmt_shape(want.shape)} and dtype {want.dtype.name}, and an "
                f"iteration leaves it with shape {fmt_shape(a.shape)} and dtype {a.dtype.name}: a value carried "
                "through a loop keeps its shape and dtype"
            )
        outs.append(a)
        return
    if t is PENDING and new is not PENDING:
        raise _Promote(f"`{name}` is set in the loop", None, zeros=_zeros_spec(tr, new))
    if is_tensor_value(new) or (
        isinstance(t, NUMBER_TYPES) and isinstance(new, NUMBER_TYPES) and not same_static(t, new)
    ):
        if isinstance(t, NUMBER_TYPES):
            if is_tensor_value(new):
                dt, weak = tr.atom(new).dtype, tr.is_weak(new)
            elif isinstance(t, bool) and isinstance(new, bool):
                dt, weak = np.dtype(np.bool_), False
            else:
                # a number that varies: typed as the Python number it is (weakly typed)
                floats = isinstance(new, float) or isinstance(t, float)
                dt, weak = np.dtype(np.float64 if floats else np.int64), True
            raise _Promote(f"`{name}` varies in the loop", np.dtype(dt), weak)
        raise Mismatch(f"`{name}` enters the loop as {describe_value(t)} and an iteration leaves a tensor in it")
    if type(t) in (list, tuple) and type(new) is type(t) and len(new) == len(t):
        for j, (x, y) in enumerate(zip(t, new)):
            _match(tr, f"{name}[{j}]", x, y, carry, outs, kind, top=False)
        return
    if type(t) is dict and type(new) is dict and t.keys() == new.keys():
        for key in t:
            _match(tr, f"{name}[{key!r}]", t[key], new[key], carry, outs, kind, top=False)
        return
    if not _same_tree(t, new):
        raise Mismatch(
            f"`{name}` enters the loop as {describe_value(t)} and an iteration leaves {describe_value(new)} in it: "
            "a compile-time value may not change inside a loop kept as a loop"
        )


class Interpreter:
    """Evaluates Python functions on traced values, staging what they compute into its
    :class:`Tracer`. ``Interpreter().call(f, args)`` stages a call."""

    MAX_INLINE_DEPTH = 64
    #: ``for`` loops of at most this many iterations are unrolled; longer ones are kept as loops
    #: (unless their body cannot be: see :meth:`for_region`)
    UNROLL_MAX = 4
    #: iterations a ``while`` loop on a compile-time condition may run while compiling
    WHILE_MAX = 100_000

    def __init__(self) -> None:
        self.tracer = Tracer(self)
        self.param_names: dict[str, Any] = {}  # see param_name
        self.depth = 0

    # ------------------------------------------------------------------ position and errors
    def error(self, msg: str, cls: type[S2SError] = S2SError) -> S2SError:
        return self.tracer.error(msg, cls)

    # ------------------------------------------------------------------ calls
    def call(self, f: Any, args: list[Any], kwargs: dict[str, Any] | None = None) -> Any:
        """Stage ``f(*args, **kwargs)``: by the staging protocol (``__s2s_stage__``, then the
        registered stagers), a Python function by interpreting its source, a builtin by the
        builtin rules; anything else is an error."""
        kwargs = kwargs or {}
        stage = find_stager(f)
        if stage is not None:
            return stage(f, self.tracer, list(args), kwargs)
        if isinstance(f, types.FunctionType):
            return self.inline(f, list(args), kwargs)
        if (
            isinstance(f, types.BuiltinFunctionType)
            and f.__name__ in _SAFE_BUILTINS
            and getattr(builtins, f.__name__, None) is f
        ):
            return self.call_builtin(f, args, kwargs)
        if isinstance(f, type) and f in _BUILTIN_TYPES:
            # containers of traced values may be zipped, enumerated, reversed and copied (the
            # gradients beside the Parameters in an optimizer); a tensor itself is not iterated
            containers = f in (tuple, list, zip, enumerate, reversed)
            if any(is_tensor_value(a) for a in args) if containers else has_traced(list(args)):
                raise self.error(f"`{f.__name__}()` of a tensor is not supported inside compiled code")
            return f(*args, **kwargs)
        if isinstance(f, type) and issubclass(f, mstype.Type):
            return f(*args, **kwargs)
        raise self.error(
            f"call to `{name_of(f)}` ({describe(f)}) is not supported inside compiled code: call s2s_ad ops "
            "(e.g. ops.Sin()), Cells, gradient functions, or Python functions whose source is available",
            UnsupportedSyntaxError,
        )

    def call_builtin(self, f: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        tr = self.tracer
        name = f.__name__
        if name == "len":
            (x,) = args
            if is_tensor_value(x):
                a = tr.atom(x)
                if not a.shape:
                    raise self.error("len() of a 0-d tensor")
                return a.shape[0]
            return len(x)
        if name == "print":
            raise self.error("print() is not supported inside compiled code", UnsupportedSyntaxError)
        if name in ("abs",) and is_tensor_value(args[0]):
            return tr.elementwise("abs", [args[0]])
        if name == "super":
            raise self.error("super() calls are not supported inside compiled code", UnsupportedSyntaxError)
        if name == "sum" and not kwargs and has_traced(list(args)):
            total = args[1] if len(args) > 1 else 0
            for x in args[0]:
                total = self.binop(ast.Add(), total, x)
            return total
        if name == "isinstance" and len(args) == 2 and not kwargs and isinstance(args[0], (Var, Lit)):
            # a value computed in the function is a Tensor (not a Parameter, a number or a container)
            return is_computed_instance(args[1] if isinstance(args[1], tuple) else (args[1],))
        if has_traced(list(args)):
            raise self.error(f"`{name}()` of a tensor is not supported inside compiled code", UnsupportedSyntaxError)
        return f(*args, **kwargs)

    def inline(self, func: types.FunctionType, args: list[Any], kwargs: dict[str, Any], owner: Any = None) -> Any:
        """Interpret ``func`` on ``args`` (``owner``: the object whose method it is, for messages)."""
        tr = self.tracer
        parsed = parse_function(func)
        note_function(func, parsed.file)
        if self.depth >= self.MAX_INLINE_DEPTH:
            raise self.error(f"inlining `{parsed.qualname}` recursed more than {self.MAX_INLINE_DEPTH} levels")
        scope = Scope(func, parsed)
        sig = inspect.signature(func)
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as err:
            shown = parsed.qualname
            params = [p for p in sig.parameters if p != "self"]
            given = len(args) - (1 if owner is not None else 0) + len(kwargs)
            raise ArgumentError(
                f"{shown}() takes {len(params)} input(s) ({', '.join(params)}) but {given} were given: {err}",
                tr.loc or Loc(parsed.file, parsed.offset + 1),
            ) from None
        bound.apply_defaults()
        for k, v in bound.arguments.items():
            kind = sig.parameters[k].kind
            if kind == inspect.Parameter.VAR_POSITIONAL:
                v = tuple(v)
            scope.locals[k] = v
        saved = tr.loc
        self.depth += 1
        try:
            self.exec_block(parsed.node.body, scope)
            result = None
        except _Return as r:
            result = r.value
        except S2SError as err:
            if err.loc is None and tr.loc is not None:
                # raised without a position (a helper shared with the eager API): the statement
                # being compiled is where it happened
                err = type(err)(err.bare_message, tr.loc)
                if not _in_package(err.loc.file) or saved is None or _in_package(saved.file):
                    raise err from None
            # An error inside one of s2s_ad's own Cells (nn.Dense, a loss) is reported at the
            # user's line that called it.
            if err.loc is None or not _in_package(err.loc.file) or saved is None or _in_package(saved.file):
                raise
            raise type(err)(f"{err.bare_message} (inside {parsed.qualname})", saved) from None
        finally:
            self.depth -= 1
            tr.loc = saved
        return result

    # ------------------------------------------------------------------ statements
    def exec_block(self, stmts: list[ast.stmt], scope: Scope) -> None:
        tails = scope.tails
        for k, s in enumerate(stmts):
            tails.append(stmts[k + 1 :])
            try:
                self.exec_stmt(s, scope)
            finally:
                tails.pop()

    def exec_stmt(self, s: ast.stmt, scope: Scope) -> None:
        self.tracer.loc = scope.loc(s)
        handler = _STMT_HANDLERS.get(type(s))
        if handler is not None:
            handler(self, s, scope)
        elif type(s) in _UNSUPPORTED_STMTS:
            raise self.error(
                f"{_UNSUPPORTED_STMTS[type(s)]} are not supported in compiled code (in `{scope.parsed.qualname}`)",
                UnsupportedSyntaxError,
            )
        else:
            raise self.error(
                f"`{type(s).__name__}` statements are not supported in compiled code", UnsupportedSyntaxError
            )

    def exec_Assign(self, s: ast.Assign, scope: Scope) -> None:
        v = self.eval(s.value, scope)
        for t in s.targets:
            self.assign(t, v, scope)

    def exec_AnnAssign(self, s: ast.AnnAssign, scope: Scope) -> None:
        if s.value is not None:
            self.assign(s.target, self.eval(s.value, scope), scope)

    def exec_AugAssign(self, s: ast.AugAssign, scope: Scope) -> None:
        if isinstance(s.target, ast.Subscript):
            # x[i] += v: x[i] = x[i] + v, a functional update of x (the index is evaluated once)
            base = self.eval(s.target.value, scope)
            idx = self.eval(s.target.slice, scope)
            self.tracer.loc = scope.loc(s)
            cur = self.tracer.subscript(base, idx)
            new = self.binop(s.op, cur, self.eval(s.value, scope))
            self.tracer.loc = scope.loc(s)
            self.store_item(s.target, base, idx, new, scope)
            return
        if not isinstance(s.target, ast.Name):
            raise self.error(
                "in-place update of an attribute is not supported in compiled code (build a new value instead)",
                UnsupportedSyntaxError,
            )
        cur = self.eval(s.target, scope)
        self.assign(s.target, self.binop(s.op, cur, self.eval(s.value, scope)), scope)

    def store_item(self, t: ast.Subscript, base: Any, idx: Any, v: Any, scope: Scope) -> None:
        """``base[idx] = v`` for the target ``t``: a tensor ``base`` is not changed; the name (or
        element) it came from is rebound to the updated tensor, as in MindSpore's graph mode.
        A Python list or dict is updated in place."""
        if is_tensor_value(base):
            self.assign(t.value, self.tracer.setitem(base, idx, v), scope)
        elif isinstance(base, (list, dict)):
            if isinstance(idx, (Var, Lit)):
                raise self.error("indexing a Python container with a tensor is not supported", UnsupportedSyntaxError)
            try:
                base[idx] = v
            except (IndexError, KeyError, TypeError) as err:
                raise self.error(f"cannot assign to {describe(base)}[{idx!r}]: {err}") from None
        else:
            raise self.error(f"cannot assign to an element of {describe(base)}", UnsupportedSyntaxError)

    def exec_Return(self, s: ast.Return, scope: Scope) -> None:
        raise _Return(None if s.value is None else self.eval(s.value, scope))

    def exec_If(self, s: ast.If, scope: Scope) -> None:
        test = self.eval(s.test, scope)
        if not is_tensor_value(test):
            self.exec_block(s.body if bool(test) else s.orelse, scope)
            return
        self.tensor_if(s, self.predicate(test, "if"), scope)

    def lowered(self, s: ast.For | ast.While, scope: Scope) -> ast.For | ast.While | None:
        """A loop whose body has ``break``/``continue`` as the same loop with flags instead
        (:func:`~s2s_ad.trace.control.lower_jumps`; its ``break`` flag set False here), or None."""
        if getattr(s, "_s2s_break", None) is not None or not has_jump(s.body):
            return None
        got = getattr(s, "_s2s_lowered", None)
        if got is None:
            new, brk = lower_jumps(s)
            new._s2s_break = brk  # type: ignore[union-attr]
            s._s2s_lowered = got = new  # type: ignore[union-attr]
        scope.locals[got._s2s_break] = False
        return got

    def exec_returning_loop(self, s: ast.For | ast.While, scope: Scope) -> None:
        """A loop whose body returns, as the loop with its returns turned into a flag, the
        value and a ``break``, and ``if flag: return value`` after it
        (:func:`~s2s_ad.trace.control.lower_returns`)."""
        got = getattr(s, "_s2s_returns", None)
        if got is None:
            got = s._s2s_returns = lower_returns(s)  # type: ignore[union-attr]
        stmts, ret, val = got
        scope.locals[ret] = False
        scope.locals[val] = PENDING
        self.exec_block(stmts, scope)

    def exec_For(self, s: ast.For, scope: Scope) -> None:
        if has_return(s.body):
            self.exec_returning_loop(s, scope)
            return
        tr = self.tracer
        lowered = self.lowered(s, scope)
        if lowered is not None:
            self.exec_For(lowered, scope)  # type: ignore[arg-type]
            return
        brk = getattr(s, "_s2s_break", None)
        it = self.iteration(s.iter, scope)
        n = it.length()
        if n > self.UNROLL_MAX and it.loopable() and not has_return(s.body) and self.for_region(s, it, scope):
            return
        scope.in_loop += 1
        try:
            for k in range(n):
                tr.loc = scope.loc(s)
                self.assign(s.target, it.item(self, k), scope)
                try:
                    self.exec_block(s.body, scope)
                except _Break:
                    return
                except _Continue:
                    continue
                if brk is not None and scope.locals.get(brk) is True:
                    break  # a `break` on a compile-time condition (the `else` is guarded by the flag)
        finally:
            scope.in_loop -= 1
        self.exec_block(s.orelse, scope)

    def exec_While(self, s: ast.While, scope: Scope) -> None:
        if has_return(s.body):
            self.exec_returning_loop(s, scope)
            return
        tr = self.tracer
        lowered = self.lowered(s, scope)
        if lowered is not None:
            self.exec_While(lowered, scope)  # type: ignore[arg-type]
            return
        trips = 0
        scope.in_loop += 1
        try:
            while True:
                tr.loc = scope.loc(s)
                with tr.sub_builder() as probe:  # a tensor test is traced again into the region
                    test = self.eval(s.test, scope)
                if is_tensor_value(test):
                    self.while_region(s, scope)
                    break
                if probe.eqns:
                    tr.builder.eqns.extend(probe.eqns)
                if not test:
                    break
                trips += 1
                if trips > self.WHILE_MAX:
                    raise self.error(
                        f"this `while` loop on a compile-time condition ran {self.WHILE_MAX} iterations while "
                        "compiling: its condition does not change (or make it depend on a tensor to keep the loop "
                        "in the compiled code)",
                        UnsupportedSyntaxError,
                    )
                try:
                    self.exec_block(s.body, scope)
                except _Break:
                    return
                except _Continue:
                    continue
        finally:
            scope.in_loop -= 1
        self.exec_block(s.orelse, scope)

    def exec_FunctionDef(self, s: ast.FunctionDef, scope: Scope) -> None:
        if s.decorator_list:
            raise self.error(
                "decorators on nested functions are not supported in compiled code", UnsupportedSyntaxError
            )
        scope.locals[s.name] = self.closure_of(s, s.name, scope)

    def closure_of(self, node: ast.FunctionDef | ast.Lambda, name: str, scope: Scope) -> _Closure:
        """A nested ``def`` or a lambda: its parameters' defaults evaluated now."""
        args = node.args
        defaults = [self.eval(d, scope) for d in args.defaults]
        kw_defaults = {a.arg: self.eval(d, scope) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None}
        return _Closure(self, node, name, scope, defaults, kw_defaults)

    def call_closure(self, f: _Closure, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Interpret a nested function: a scope of its own, nested in the one it was defined in."""
        scope = f.scope.child()
        try:
            bound = f.signature.bind(*args, **kwargs)
        except TypeError as err:
            raise self.error(f"{f.name}(): {err}", ArgumentError) from None
        bound.apply_defaults()
        for k, v in bound.arguments.items():
            scope.locals[k] = tuple(v) if f.signature.parameters[k].kind == inspect.Parameter.VAR_POSITIONAL else v
        if self.depth >= self.MAX_INLINE_DEPTH:
            raise self.error(f"calling `{f.name}` recursed more than {self.MAX_INLINE_DEPTH} levels")
        saved = self.tracer.loc
        self.depth += 1
        try:
            if isinstance(f.node, ast.Lambda):
                return self.eval(f.node.body, scope)
            self.exec_block(f.node.body, scope)
            return None
        except _Return as r:
            return r.value
        finally:
            self.depth -= 1
            self.tracer.loc = saved

    def exec_Expr(self, s: ast.Expr, scope: Scope) -> None:
        if not isinstance(s.value, ast.Constant):  # a docstring or a bare constant does nothing
            self.eval(s.value, scope)

    def exec_Pass(self, s: ast.Pass, scope: Scope) -> None:
        pass

    def exec_Break(self, s: ast.Break, scope: Scope) -> None:
        raise _Break()

    def exec_Continue(self, s: ast.Continue, scope: Scope) -> None:
        raise _Continue()

    def exec_Assert(self, s: ast.Assert, scope: Scope) -> None:
        test = self.eval(s.test, scope)
        if not self.const_truth(test, "`assert`"):
            msg = self.eval(s.msg, scope) if s.msg is not None else "assertion failed"
            raise self.error(f"assertion failed while compiling: {msg}")

    def const_truth(self, v: Any, what: str) -> bool:
        if is_tensor_value(v):
            raise self.error(
                f"{what} on a tensor value is not supported: conditions here must be known while compiling "
                "(Python constants, shapes, attributes)",
                UnsupportedSyntaxError,
            )
        return bool(v)

    def assign(self, t: ast.expr, v: Any, scope: Scope) -> None:
        if isinstance(t, ast.Name):
            if isinstance(v, Var) and v.hint is None:
                v.hint = t.id
            scope.locals[t.id] = v
        elif isinstance(t, (ast.Tuple, ast.List)):
            if is_tensor_value(v):
                tr = self.tracer
                a = tr.atom(v)
                if not a.shape or a.shape[0] != len(t.elts):
                    raise self.error(f"cannot unpack a tensor of shape {fmt_shape(a.shape)} into {len(t.elts)} names")
                v = [tr.bind1("getitem", a, index=(i,)) for i in range(a.shape[0])]
            vals = list(v)
            if len(vals) != len(t.elts):
                raise self.error(f"cannot unpack {len(vals)} values into {len(t.elts)} names", ArgumentError)
            for sub, x in zip(t.elts, vals):
                self.assign(sub, x, scope)
        elif isinstance(t, ast.Subscript):
            base = self.eval(t.value, scope)
            idx = self.eval(t.slice, scope)
            self.tracer.loc = scope.loc(t)
            self.store_item(t, base, idx, v, scope)
        elif isinstance(t, ast.Attribute):
            raise self.error("assigning attributes inside compiled code is not supported", UnsupportedSyntaxError)
        else:
            raise self.error(f"unsupported assignment target `{ast.unparse(t)}`", UnsupportedSyntaxError)

    # ------------------------------------------------------------------ control flow on tensors
    def predicate(self, v: Any, what: str) -> Atom:
        """The test ``v`` (a tensor of one element) as a 0-d bool: a non-bool test is ``v != 0``."""
        tr = self.tracer
        a = tr.atom(v)
        if a.aval.size != 1:
            raise self.error(
                f"the test of `{what}` is a tensor of shape {fmt_shape(a.shape)}: a tensor test must have exactly "
                "one element (reduce it first, e.g. with .all() or .any())",
                ShapeError,
            )
        if a.shape:
            a = tr.bind1("reshape", a, shape=())
        if a.dtype.kind != "b":
            a = tr.bind1("not_equal", a, Lit(0, a.dtype))
        return a

    def logical_not(self, p: Atom) -> Atom:
        return self.tracer.bind1("equal", p, Lit(False, np.bool_))

    def logical(self, p: Atom, q: Atom, is_and: bool) -> Atom:
        """``p and q`` / ``p or q`` of 0-d bools, as comparisons of bools (False < True):
        ``p and q`` is ``p > not q``, ``p or q`` is ``p >= not q``."""
        return self.tracer.bind1("greater" if is_and else "greater_equal", p, self.logical_not(q))

    # Parameter assignments (``ops.assign``) inside a region: a Parameter's value is a name of
    # the region (carried by a loop, an output of a ``cond``), under a name no Python code uses
    PARAM_NAME = FLAG_PREFIX + "param_"

    def params_assigned_since(self, before: dict[int, tuple[Any, Atom]]) -> dict[int, tuple[Any, Atom]]:
        """The Parameters assigned (their latest values) since the tracer's assignments were ``before``."""
        return {k: v for k, v in self.tracer.assigned.items() if before.get(k) is not v}

    def param_name(self, param: Any) -> str:
        """The region name standing for ``param``'s value (registered for :meth:`param_of`)."""
        name = f"{self.PARAM_NAME}{len(self.param_names)}"
        for k, p in self.param_names.items():
            if p is param:
                return k
        self.param_names[name] = param
        return name

    def settle_params(self, scope: Scope) -> None:
        """The values a region left under Parameter names become those Parameters' assigned values."""
        for name in [k for k in scope.locals if k.startswith(self.PARAM_NAME)]:
            param, value = self.param_names[name], scope.locals.pop(name)
            self.tracer.assign(param, value)

    def tensor_if(self, s: ast.If, pred: Atom, scope: Scope) -> None:
        """An ``if`` on a tensor: a ``cond`` region. Each branch is traced into a sub-program;
        the names they assign are its outputs. A branch that returns takes the rest of the
        function with it (tail duplication), and the region's value is returned."""
        tr = self.tracer
        loc = scope.loc(s)
        returns = has_return(s.body) or has_return(s.orelse)
        tail: list[ast.stmt] = []
        if returns:
            got = scope.continuation()
            if got is None:
                raise self.error(
                    "`return` under a tensor condition inside a loop is not supported: compute the value in the "
                    "loop and return after it",
                    UnsupportedSyntaxError,
                )
            tail = got
        sides: list[tuple[Builder, Any]] = []
        forks = []
        before = dict(tr.assigned)
        params: dict[str, Any] = {}  # the Parameters either branch assigns, by region name
        for block in (s.body, s.orelse):
            fork = scope.fork()
            with tr.sub_builder() as b:
                try:
                    self.exec_block(list(block) + tail, fork)
                    value = None
                except _Return as r:
                    if not returns:  # a `return` the syntax check did not see (cannot happen)
                        raise
                    value = r.value
                except (_Break, _Continue) as jump:
                    word = "break" if isinstance(jump, _Break) else "continue"
                    raise S2SError(
                        f"`{word}` under a tensor condition (the `if` at {loc}) is not supported: use a `while` loop "
                        "whose test includes the condition",
                        tr.loc,
                    ) from None
                finally:
                    changed = self.params_assigned_since(before)
                    tr.assigned.clear()
                    tr.assigned.update(before)
                for param, value_k in changed.values():
                    params[self.param_name(param)] = param
                    fork.locals[self.param_name(param)] = value_k
            sides.append((b, value))
            forks.append(fork)
        tr.loc = loc
        if params and returns:
            raise UnsupportedSyntaxError(
                f"a Parameter is assigned under the tensor condition of the `if` at {loc}, which also returns: "
                "assign it outside the `if`",
                loc,
            )
        for fork in forks:  # a Parameter that one branch leaves as it was
            for name, param in params.items():
                fork.locals.setdefault(name, tr.atom(param))
        if returns:
            raise _Return(self.cond_value(pred, sides, "the returned value", loc))
        # the names either branch assigned, merged
        builders = [b for b, _ in sides]
        outs: list[list[Atom]] = [[], []]
        templates: dict[str, Any] = {}
        for name in dict.fromkeys([*forks[0].locals, *forks[1].locals]):
            vals = [f.locals.get(name, _MISSING) for f in forks]
            if same_static(vals[0], vals[1]):
                templates[name] = vals[0]
                continue
            if _MISSING in vals or any(isinstance(v, Undefined) for v in vals):
                templates[name] = Undefined(
                    f"`{name}` is assigned in only one branch of the `if` on a tensor at {loc}: give it a value in "
                    "both (or before the `if`)",
                    loc,
                )
                continue
            mark = [len(o) for o in outs]
            try:
                # the flags of a lowered `break`/`continue` become bool tensors
                templates[name] = self.join(builders, name, vals, outs, numbers=name.startswith(FLAG_PREFIX))
            except Mismatch as m:
                for o, k in zip(outs, mark):
                    del o[k:]
                templates[name] = Undefined(f"after the `if` on a tensor at {loc}: {m}", loc, ShapeError)
        results = self.emit_cond(pred, sides, outs, templates)
        for name, t in templates.items():
            scope.locals[name] = rebuild(t, results)
        self.settle_params(scope)

    def cond_value(
        self, pred: Atom, sides: list[tuple[Builder, Any]], what: str, loc: Loc, numbers: bool = False
    ) -> Any:
        """The value of a ``cond`` whose branches were traced into ``sides`` (their builders and
        values); values that cannot be joined are an error. With ``numbers``, Python numbers
        that differ become 0-d tensors."""
        outs: list[list[Atom]] = [[], []]
        try:
            template = self.join([b for b, _ in sides], what, [v for _, v in sides], outs, numbers)
        except Mismatch as m:
            raise ShapeError(f"the `if` on a tensor: {m}", loc) from None
        return rebuild(template, self.emit_cond(pred, sides, outs, {what: template}))

    def join(
        self, builders: list[Builder], what: str, vals: list[Any], outs: list[list[Atom]], numbers: bool = False
    ) -> Any:
        """The value that is ``vals[k]`` on side ``k`` of a ``cond``: compile-time values that
        agree stay as they are, tensors (and Python numbers meeting a tensor, which take its
        shape and dtype) become :class:`Slot` s of the region's outputs ``outs``."""
        tr = self.tracer
        if any(v is PENDING for v in vals) and not all(v is PENDING for v in vals):
            # a loop's returned value that one branch sets: zeros of its form in the other
            spec = _zeros_spec(tr, next(v for v in vals if v is not PENDING))
            vals = list(vals)
            for j, (b, v) in enumerate(zip(builders, vals)):
                if v is PENDING:
                    with tr.use_builder(b):
                        vals[j] = _zeros_of(tr, spec)
        first = vals[0]
        if all(same_static(v, first) for v in vals[1:]):
            return first
        tensors = [is_tensor_value(v) for v in vals]
        if all(isinstance(v, NUMBER_TYPES) for v in vals) and (numbers or all(not isinstance(v, bool) for v in vals)):
            # numbers that differ between the branches (`b = 3.0` / `b = 4.0`, the value of
            # `a if c else b`): a 0-d tensor, weakly typed as the Python numbers it stands for
            if all(isinstance(v, bool) for v in vals):
                dt = np.dtype(np.bool_)
            elif any(isinstance(v, float) for v in vals):
                dt = np.dtype(np.float64)
            else:
                dt = np.dtype(np.int64)
            k = len(outs[0])
            for o, v in zip(outs, vals):
                o.append(tr.mark_weak(Lit(v, dt)))
            return Slot(k)
        if any(tensors):
            atoms: list[Atom | None] = []
            for b, v, t in zip(builders, vals, tensors):
                if t:
                    with tr.use_builder(b):
                        atoms.append(tr.atom(v))
                elif isinstance(v, NUMBER_TYPES):
                    atoms.append(None)
                else:
                    ref = next(a for a in atoms if a is not None) if any(atoms) else vals[tensors.index(True)]
                    raise Mismatch(
                        f"`{what}` is {describe_value(ref)} in one branch and {describe_value(v)} in the other"
                    )
            known = [a for a in atoms if a is not None]
            strong = [a for a in known if not tr.is_weak(a)]
            if strong and len(strong) < len(known):
                # a weakly typed value meeting a tensor in the other branch takes its dtype
                for j, (b, a) in enumerate(zip(builders, atoms)):
                    if a is not None and tr.is_weak(a) and a.shape == strong[0].shape:
                        with tr.use_builder(b):
                            atoms[j] = tr.cast(a, strong[0].dtype)
                known = [a for a in atoms if a is not None]
            wide = _widest([a.dtype for a in known])
            if wide is not None and len({a.shape for a in known}) == 1:
                # an integer tensor in one branch, a float one in the other (`out = x * y + out`
                # where `out` was an int zero): the value after the `if` is the wider dtype
                for j, (b, a) in enumerate(zip(builders, atoms)):
                    if a is not None and a.dtype != wide:
                        with tr.use_builder(b):
                            atoms[j] = tr.cast(a, wide)
                known = [a for a in atoms if a is not None]
            ref = known[0]
            for a in known[1:]:
                if a.aval != ref.aval:
                    raise Mismatch(
                        f"`{what}` is {describe_value(ref)} in one branch and {describe_value(a)} in the other: both "
                        "branches must give it the same shape and dtype"
                    )
            k = len(outs[0])
            weak = all(tr.is_weak(a) for a in known)
            for side, (b, v, a) in enumerate(zip(builders, vals, atoms)):
                if a is None:
                    with tr.use_builder(b):
                        a = tr.fill(ref.shape, v, ref.dtype)
                    if weak and not ref.shape:
                        tr.mark_weak(a)
                outs[side].append(a)
            return Slot(k)
        if (
            all(type(v) is type(first) for v in vals)
            and isinstance(first, (list, tuple))
            and type(first) in (list, tuple)
        ):
            if any(len(v) != len(first) for v in vals):
                raise Mismatch(f"`{what}` holds {len(vals[0])} items in one branch and {len(vals[1])} in the other")
            parts = [
                self.join(builders, f"{what}[{j}]", [v[j] for v in vals], outs, numbers) for j in range(len(first))
            ]
            return parts if isinstance(first, list) else tuple(parts)
        if all(type(v) is dict for v in vals) and all(v.keys() == first.keys() for v in vals):
            return {
                key: self.join(builders, f"{what}[{key!r}]", [v[key] for v in vals], outs, numbers) for key in first
            }
        raise Mismatch(
            f"`{what}` has different compile-time values in the two branches ({describe_value(vals[0])} and "
            f"{describe_value(vals[1])}); only tensors may differ between the branches of an `if` on a tensor"
        )

    def emit_cond(
        self, pred: Atom, sides: list[tuple[Builder, Any]], outs: list[list[Atom]], templates: dict[str, Any]
    ) -> list[Var]:
        """Bind the ``cond`` region (branches: ``sides[0]`` if ``pred`` holds, ``sides[1]`` if
        not) with outputs ``outs``; its outputs are named after the names they are joined into."""
        if not outs[0]:
            return []  # the branches compute nothing that is used after them
        (b_true, _), (b_false, _) = sides
        operands = list(dict.fromkeys([*free_vars(b_true.eqns, outs[0]), *free_vars(b_false.eqns, outs[1])]))
        if_true = close("if_true", [], operands, [], b_true.eqns, outs[0], b_true.names)
        if_false = close("if_false", [], operands, [], b_false.eqns, outs[1], b_false.names)
        results = bind_cond(self.tracer.builder, pred, operands, if_true, if_false)
        for k, r in enumerate(results):
            if all(self.tracer.is_weak(o[k]) for o in outs):
                self.tracer.mark_weak(r)
        for name, t in templates.items():
            if isinstance(t, Slot) and name.isidentifier():
                results[t.k].hint = name
        return results

    # ---- loops
    def iteration(self, node: ast.expr, scope: Scope) -> _Iter:
        """What a ``for`` iterates over: ``range``, a tensor's first axis, ``zip``/``enumerate``
        of those (kept as a loop), or the items of a compile-time iterable (unrolled)."""
        if isinstance(node, ast.Call) and not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args):
            f = self.eval(node.func, scope)
            if f is builtins.zip or f is builtins.enumerate:
                parts = [self.iteration(a, scope) for a in node.args]
                self.tracer.loc = scope.loc(node)
                if f is builtins.zip:
                    return _Iter("zip", None, parts)
                if not 1 <= len(parts) <= 2 or (len(parts) == 2 and parts[1].kind != "items"):
                    raise self.error("enumerate() takes an iterable and a constant start", ArgumentError)
                start = self.eval(node.args[1], scope) if len(parts) == 2 else 0
                return _Iter("enumerate", start, parts[:1])
        return self.iter_of(self.eval(node, scope))

    def iter_of(self, v: Any) -> _Iter:
        if isinstance(v, range):
            return _Iter("range", v)
        if is_tensor_value(v):
            a = self.tracer.atom(v)
            if not a.shape:
                raise self.error("iteration over a 0-d tensor")
            return _Iter("tensor", a)
        if isinstance(v, (tuple, list, zip, enumerate, reversed, dict)) or hasattr(v, "__iter__"):
            return _Iter("items", list(v))
        raise self.error(f"cannot iterate over {describe(v)}")

    def for_region(self, s: ast.For, it: _Iter, scope: Scope) -> bool:
        """Stage ``for`` as a ``loop`` region; False where the loop must be unrolled instead:
        a body that cannot be traced once for every iteration (it indexes a Python container
        with the loop variable, changes a value's type or shape, builds a Python list, breaks
        on a compile-time condition, ...)."""
        tr = self.tracer
        loc = scope.loc(s)
        n = it.length()
        start, step = (it.value.start, it.value.step) if it.kind == "range" else (0, 1)
        xs = [x if x.shape[0] == n else tr.bind1("getitem", x, index=(("slice", 0, n, None),)) for x in it.tensors()]
        target = _target_names(s.target)
        carried = [k for k in assigned_names(s.body) if k in scope.locals and k not in target]
        carried = [k for k in carried if not isinstance(scope.locals[k], Undefined)]
        saved_params = (list(tr.params), dict(tr.param_vars), list(tr.consts), dict(tr.const_vars))

        def bind_target(fork: Scope, i: Var, x_vars: list[Var]) -> None:
            item = it.region_item(self, i, iter(x_vars), top=True)
            self.assign(s.target, item, fork)

        try:
            got = self.trace_loop(s, scope, carried, bind_target, loc, loop_xs=xs, counted=True)
        except (S2SError, _Unroll, _Break):
            # the body cannot be kept as a loop: unroll it (whatever error it has shows there)
            tr.params[:], tr.consts[:] = saved_params[0], saved_params[2]
            tr.param_vars.clear(), tr.param_vars.update(saved_params[1])
            tr.const_vars.clear(), tr.const_vars.update(saved_params[3])
            return False
        init, body, lead, trail, consts, finish = got
        tr.loc = loc
        # the checkpointing policy in force (s2s_ad.checkpoint(fn, every=k)) is a loop parameter
        n_ys = len(finish.appended)
        outs = bind_loop(tr.builder, body, consts, xs, init, n, n_ys=n_ys, start=start, step=step, **loop_options())
        finish(outs[: len(outs) - n_ys])
        self.settle_params(scope)
        for name, ys in zip(finish.appended, outs[len(outs) - n_ys :]):
            # the list gets the loop's stacked values, one item per iteration (the Python list
            # object itself, as appending to it in Python would)
            lst = scope.locals[name]
            fresh = not lst
            lst.extend(tr.bind1("getitem", ys, index=(k,)) for k in range(n))
            if fresh:
                tr.stacked[id(lst)] = (ys, tuple(lst), lst)
        for name in target:
            scope.locals[name] = Undefined(
                f"`{name}`, the variable of the loop at {loc}, has no value after it in compiled code (the loop is "
                "kept as a loop)",
                loc,
            )
        self.exec_block(s.orelse, scope)
        return True

    def while_region(self, s: ast.While, scope: Scope) -> None:
        """Stage a ``while`` on a tensor test as a ``while`` region: the names its body assigns
        that have values before it are carried."""
        tr = self.tracer
        loc = scope.loc(s)
        if has_return(s.body):
            raise self.error(
                "`return` inside a `while` loop on a tensor condition is not supported", UnsupportedSyntaxError
            )
        carried = [k for k in assigned_names(s.body) if k in scope.locals]
        carried = [k for k in carried if not isinstance(scope.locals[k], Undefined)]
        before = dict(tr.assigned)
        init, body, lead, trail, consts, finish = self.trace_loop(
            s, scope, carried, None, loc, loop_xs=[], counted=False
        )
        # the test, traced on the carried values as the region's condition
        fork = scope.fork()
        cond_vars = [Var(a.aval, a.hint if isinstance(a, Var) else None) for a in init]
        for v, w in zip(cond_vars, finish.weak_carry):
            if w:
                tr.mark_weak(v)
        for name, t in finish.templates.items():
            fork.locals[name] = rebuild(t, cond_vars)
        for name in finish.templates:
            if name.startswith(self.PARAM_NAME):  # the test reads a carried Parameter's value
                param = self.param_names[name]
                tr.assigned[id(param)] = (param, tr.atom(fork.locals[name]))
        with tr.sub_builder() as cb:
            test = self.eval(s.test, fork)
            if not is_tensor_value(test):
                raise S2SError(
                    "the test of this `while` loop is a tensor before the loop but a compile-time value inside it",
                    loc,
                )
            pred = self.predicate(test, "while")
        tr.assigned.clear()
        tr.assigned.update(before)
        all_consts = list(dict.fromkeys([*consts, *free_vars(cb.eqns, [pred], cond_vars)]))
        cond = close("while_cond", [], all_consts, cond_vars, cb.eqns, [pred], cb.names)
        body = close("while_body", [], all_consts, trail, finish.body_eqns, finish.body_outs, finish.body_names)
        tr.loc = loc
        outs = bind_while(tr.builder, cond, body, all_consts, init, **loop_options())
        finish(outs[: len(init)])
        self.settle_params(scope)
        self.exec_block(s.orelse, scope)

    def trace_loop(
        self,
        s: ast.For | ast.While,
        scope: Scope,
        carried: list[str],
        bind_target: Callable[[Scope, Var, list[Var]], None] | None,
        loc: Loc,
        loop_xs: list[Atom],
        counted: bool,
    ) -> tuple:
        """Trace a loop body once on fresh variables for the carried names (retraced where a
        Python number it carries turns out to vary: it becomes a tensor before the loop, or
        where it assigns a Parameter: the Parameter's value is carried)."""
        tr = self.tracer
        before = dict(tr.assigned)
        try:
            return self._trace_loop(s, scope, list(carried), bind_target, loc, loop_xs, counted, before)
        except BaseException:
            for name in [k for k in scope.locals if k.startswith(self.PARAM_NAME)]:
                del scope.locals[name]
            raise
        finally:
            tr.assigned.clear()
            tr.assigned.update(before)

    def _trace_loop(
        self,
        s: ast.For | ast.While,
        scope: Scope,
        carried: list[str],
        bind_target: Callable[[Scope, Var, list[Var]], None] | None,
        loc: Loc,
        loop_xs: list[Atom],
        counted: bool,
        assigned_before: dict[int, tuple[Any, Atom]],
    ) -> tuple:
        tr = self.tracer
        kind = "`for`" if counted else "`while`"
        promote: dict[str, tuple] = {}
        for _attempt in range(len(carried) + 4):  # + 1: the attempt that finds the assigned Parameters
            # the values entering the loop: their tensor leaves are the carry
            init: list[Atom] = []
            templates: dict[str, Any] = {}
            for name in carried:
                v = scope.locals[name]
                if name in promote and promote[name] == ("zeros", "weaken"):
                    v = _weaken(tr, v)
                elif name in promote and promote[name][0] == "zeros":
                    v = _zeros_of(tr, promote[name][1])
                elif name in promote:
                    dt, weak = promote[name]
                    v = Lit(v, dt) if isinstance(v, NUMBER_TYPES) else tr.cast(tr.atom(v), dt)
                templates[name] = _split(tr, copy_containers(v), init)
            weak_init = [tr.is_weak(a) for a in init]
            for name, (dt, weak) in promote.items():
                if isinstance(templates.get(name), Slot) and not isinstance(dt, str):
                    weak_init[templates[name].k] = weak
            fork = scope.fork()
            carry_vars = [Var(a.aval, name_hint) for a, name_hint in zip(init, _hints(templates, len(init)))]
            for w, cv in zip(weak_init, carry_vars):
                if w:
                    tr.mark_weak(cv)
            for name, t in templates.items():
                fork.locals[name] = rebuild(t, carry_vars)
            # the loop index is weakly typed: `0.1 * i` is computed as Python would, then takes the
            # dtype of the tensors it meets (as the unrolled loop's Python int would)
            i_var = tr.mark_weak(Var(Aval((), np.dtype(np.int64)), "i"))
            x_vars = [Var(Aval(x.shape[1:], x.dtype)) for x in loop_xs]  # named by the loop's target
            fork.in_loop += 1
            with tr.sub_builder() as b:
                if bind_target is not None:
                    bind_target(fork, i_var, x_vars)
                tr.assigned.clear()
                tr.assigned.update(assigned_before)
                for name in templates:
                    if name.startswith(self.PARAM_NAME):  # a carried Parameter: its value entering an iteration
                        param = self.param_names[name]
                        tr.assigned[id(param)] = (param, tr.atom(fork.locals[name]))
                start = dict(tr.assigned)
                try:
                    self.exec_block(s.body, fork)
                except _Continue:
                    pass  # a `continue` on a compile-time condition: the rest of the body is never run
                except _Break:
                    if counted:
                        raise
                    raise S2SError(
                        "`break` on a compile-time condition inside a `while` loop on a tensor: the loop would end "
                        "after its first iteration; write that without the loop",
                        tr.loc,
                    ) from None
                found = False  # Parameters the body assigns that are not carried yet
                for param, value in self.params_assigned_since(start).values():
                    name = self.param_name(param)
                    fork.locals[name] = value
                    if name not in templates:
                        found = True
                        carried.append(name)
                        outer = assigned_before.get(id(param))
                        scope.locals[name] = outer[1] if outer is not None else tr.param_vars.get(id(param))
                tr.assigned.clear()
                tr.assigned.update(assigned_before)
                if found:
                    continue
                # the values leaving an iteration, checked against those entering it
                body_outs: list[Atom] = []
                retry = False
                for name, t in templates.items():
                    new = fork.locals.get(name)
                    try:
                        _match(tr, name, t, new, carry_vars, body_outs, kind, name in promote)
                    except _Promote as p:
                        before = scope.locals[name]
                        if before is PENDING:
                            # a loop's returned value: zeros of the form an iteration leaves
                            p.zeros = _zeros_spec(tr, new)
                        elif p.zeros is None and not isinstance(before, NUMBER_TYPES) and not is_tensor_value(before):
                            # a number inside a container varies: its numbers become tensors
                            p.zeros = "weaken"
                        entry = ("zeros", p.zeros) if p.zeros is not None else (p.dtype, p.weak)
                        if name in promote and promote[name] == entry and p.zeros is None:
                            raise S2SError(str(p), loc) from None
                        promote[name] = entry
                        retry = True
                    except Mismatch as m:
                        if counted:
                            raise _Unroll() from None
                        raise ShapeError(f"{kind} loop: {m}", loc) from None
                # lists built in the body (appended to, not assigned): in a `for` loop, a list
                # that one tensor is appended to per iteration (and that the body does not
                # otherwise use) is the loop's stacked per-iteration values (its ys)
                appended: list[tuple[str, Atom]] = []
                for name, v in scope.locals.items():
                    if isinstance(v, Undefined):
                        continue  # no value before the loop (a name a loop kept as a loop left): set afresh
                    if name not in templates and not _same_tree(fork.locals.get(name), v):
                        new = fork.locals.get(name)
                        if (
                            counted
                            and type(v) is list
                            and type(new) is list
                            and len(new) == len(v) + 1
                            and _same_tree(new[:-1], v)
                            and is_tensor_value(new[-1])
                            and _only_appended(s.body, name)
                        ):
                            appended.append((name, tr.atom(new[-1])))
                            continue
                        if counted:
                            raise _Unroll()
                        raise S2SError(
                            f"the Python container `{name}` is changed inside a `while` loop on a tensor condition: "
                            "its size would depend on the number of iterations",
                            loc,
                        )
            if retry:
                continue
            lead = [i_var] if counted else []
            trail = [*x_vars, *carry_vars] if counted else list(carry_vars)
            n_carry = len(body_outs)
            body_outs += [a for _, a in appended]
            consts = free_vars(b.eqns, body_outs, [*lead, *trail])
            body = close("loop_body", lead, consts, trail, b.eqns, body_outs, b.names) if counted else None
            new_names = [
                k
                for k in fork.locals
                if k not in scope.locals
                or (isinstance(scope.locals[k], Undefined) and fork.locals[k] is not scope.locals[k])
            ]
            finish = _Finish(scope, templates, new_names, fork, loc)
            finish.body_eqns, finish.body_outs, finish.body_names = b.eqns, body_outs, b.names
            finish.tracer = tr
            finish.appended = [name for name, _ in appended]
            finish.n_carry = n_carry
            finish.weak_carry = [tr.is_weak(c) for c in carry_vars]
            finish.weak_outs = [tr.is_weak(c) and tr.is_weak(o) for c, o in zip(carry_vars, body_outs)]
            return init, body, lead, trail, consts, finish
        raise S2SError(f"the values carried through this {kind} loop do not settle on types", loc)

    # ------------------------------------------------------------------ expressions
    def eval(self, n: ast.expr, scope: Scope) -> Any:
        if hasattr(n, "lineno"):
            self.tracer.loc = scope.loc(n)
        handler = _EXPR_HANDLERS.get(type(n))
        if handler is not None:
            return handler(self, n, scope)
        if type(n) in _UNSUPPORTED_EXPRS:
            raise self.error(
                f"{_UNSUPPORTED_EXPRS[type(n)]} are not supported in compiled code", UnsupportedSyntaxError
            )
        raise self.error(f"`{type(n).__name__}` expressions are not supported in compiled code", UnsupportedSyntaxError)

    def eval_Constant(self, n: ast.Constant, scope: Scope) -> Any:
        return n.value

    def eval_Name(self, n: ast.Name, scope: Scope) -> Any:
        return self.lookup(n.id, scope)

    def eval_Attribute(self, n: ast.Attribute, scope: Scope) -> Any:
        return self.attribute(self.eval(n.value, scope), n.attr)

    def eval_BinOp(self, n: ast.BinOp, scope: Scope) -> Any:
        lhs, rhs = self.eval(n.left, scope), self.eval(n.right, scope)
        self.tracer.loc = scope.loc(n)
        return self.binop(n.op, lhs, rhs)

    def eval_UnaryOp(self, n: ast.UnaryOp, scope: Scope) -> Any:
        v = self.eval(n.operand, scope)
        if isinstance(n.op, ast.Not):
            if is_tensor_value(v):
                return self.logical_not(self.predicate(v, "not"))
            return not v
        if is_tensor_value(v):
            return v if isinstance(n.op, ast.UAdd) else self.tracer.elementwise("neg", [v])
        return _UNARY[type(n.op)](v)

    def eval_Compare(self, n: ast.Compare, scope: Scope) -> Any:
        left = self.eval(n.left, scope)
        for op, right_n in zip(n.ops, n.comparators):
            right = self.eval(right_n, scope)
            if any(is_tensor_value(x) for x in (left, right)) and not isinstance(op, (ast.Is, ast.IsNot)):
                # A tensor comparison: a bool tensor (not differentiable).
                if len(n.ops) > 1:
                    raise self.error(
                        "chained comparisons of tensors (`a < x < b`) are not supported in compiled code: "
                        "write one comparison per expression",
                        UnsupportedSyntaxError,
                    )
                if type(op) not in _TENSOR_CMPS:
                    raise self.error(
                        f"the operator `{_cmp_symbol(op)}` is not supported on tensors", UnsupportedSyntaxError
                    )
                self.tracer.loc = scope.loc(n)
                return self.tracer.bind(_TENSOR_CMPS[type(op)], [left, right])
            if not _PY_CMPS[type(op)](left, right):
                return False
            left = right
        return True

    def eval_BoolOp(self, n: ast.BoolOp, scope: Scope) -> Any:
        """``and``/``or``: Python's short circuit while the operands are compile-time values; from
        the first tensor operand on, the logical and/or of the tests (a 0-d bool tensor)."""
        is_and = isinstance(n.op, ast.And)
        word = "and" if is_and else "or"
        acc: Atom | None = None
        v = None
        for x in n.values:
            v = self.eval(x, scope)
            if acc is None:
                if is_tensor_value(v):
                    acc = self.predicate(v, word)
                elif bool(v) != is_and:
                    return v
                continue
            p = self.predicate(v, word) if is_tensor_value(v) else Lit(bool(v), np.bool_)
            acc = self.logical(acc, p, is_and)
        return acc if acc is not None else v

    def eval_IfExp(self, n: ast.IfExp, scope: Scope) -> Any:
        test = self.eval(n.test, scope)
        if not is_tensor_value(test):
            return self.eval(n.body if test else n.orelse, scope)
        pred = self.predicate(test, "if")
        loc = scope.loc(n)
        tr = self.tracer
        sides = []
        for branch in (n.body, n.orelse):
            with tr.sub_builder() as b:
                sides.append((b, self.eval(branch, scope)))
        tr.loc = loc
        return self.cond_value(pred, sides, "the value of the conditional expression", loc, numbers=True)

    def eval_Lambda(self, n: ast.Lambda, scope: Scope) -> Any:
        return self.closure_of(n, "<lambda>", scope)

    def comprehension(self, n: ast.ListComp | ast.GeneratorExp | ast.DictComp, scope: Scope) -> list:
        """The values of a comprehension over compile-time iterables (or the first axis of a
        tensor), each element evaluated in a scope of the comprehension's own."""
        inner = scope.child()
        out: list[Any] = []

        def run(k: int) -> None:
            if k == len(n.generators):
                if isinstance(n, ast.DictComp):
                    out.append((self.eval(n.key, inner), self.eval(n.value, inner)))
                else:
                    out.append(self.eval(n.elt, inner))
                return
            g = n.generators[k]
            it = self.iteration(g.iter, inner if k else scope)
            for j in range(it.length()):
                self.assign(g.target, it.item(self, j), inner)
                if all(self.const_truth(self.eval(c, inner), "the `if` of a comprehension") for c in g.ifs):
                    run(k + 1)

        run(0)
        return out

    def eval_ListComp(self, n: ast.ListComp, scope: Scope) -> Any:
        return self.comprehension(n, scope)

    def eval_GeneratorExp(self, n: ast.GeneratorExp, scope: Scope) -> Any:
        return self.comprehension(n, scope)  # evaluated at once: a list

    def eval_DictComp(self, n: ast.DictComp, scope: Scope) -> Any:
        return dict(self.comprehension(n, scope))

    def eval_Call(self, n: ast.Call, scope: Scope) -> Any:
        f = self.eval(n.func, scope)
        args: list[Any] = []
        for a in n.args:
            if isinstance(a, ast.Starred):
                args.extend(self.eval(a.value, scope))
            else:
                args.append(self.eval(a, scope))
        kwargs: dict[str, Any] = {}
        for k in n.keywords:
            if k.arg is None:
                kwargs.update(self.eval(k.value, scope))
            else:
                kwargs[k.arg] = self.eval(k.value, scope)
        self.tracer.loc = scope.loc(n)
        return self.call(f, args, kwargs)

    def eval_Tuple(self, n: ast.Tuple | ast.List, scope: Scope) -> Any:
        vals = []
        for e in n.elts:
            if isinstance(e, ast.Starred):
                vals.extend(self.eval(e.value, scope))
            else:
                vals.append(self.eval(e, scope))
        return tuple(vals) if isinstance(n, ast.Tuple) else vals

    eval_List = eval_Tuple

    def eval_Dict(self, n: ast.Dict, scope: Scope) -> Any:
        return {self.eval(k, scope): self.eval(v, scope) for k, v in zip(n.keys, n.values)}

    def eval_Subscript(self, n: ast.Subscript, scope: Scope) -> Any:
        base = self.eval(n.value, scope)
        idx = self.eval(n.slice, scope)
        self.tracer.loc = scope.loc(n)
        return self.tracer.subscript(base, idx)

    def eval_Slice(self, n: ast.Slice, scope: Scope) -> Any:
        return slice(*(None if x is None else self.eval(x, scope) for x in (n.lower, n.upper, n.step)))

    # ------------------------------------------------------------------ names and attributes
    def lookup(self, name: str, scope: Scope) -> Any:
        s: Scope | None = scope
        while s is not None:
            if name in s.locals:
                v = s.locals[name]
                if isinstance(v, Undefined):
                    raise self.error(v.message, v.cls)
                return v
            s = s.parent
        if name in scope.closure:
            return self.named(scope.closure[name], name)
        if name in scope.globals:
            v = scope.globals[name]
            note_global(scope.globals, name, v)
            return self.named(v, name)
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise self.error(f"name `{name}` is not defined", UnsupportedSyntaxError)

    def named(self, v: Any, name: str) -> Any:
        """Captured constant tensors are named after the attribute or global they come from."""
        leaf = leaf_of(v)
        if leaf is not None and not leaf.parameter and not _is_scalar(v) and id(v) not in self.tracer.const_vars:
            self.tracer.atom(v).hint = name
        return v

    def attribute(self, base: Any, attr: str) -> Any:
        tr = self.tracer
        if isinstance(base, (Var, Lit)) or (is_tensor_value(base) and not _is_scalar(base)):
            a = tr.atom(base)
            if attr == "shape":
                return tuple(a.shape)
            if attr == "dtype":
                return mstype.from_np(a.dtype)
            if attr == "ndim":
                return len(a.shape)
            if attr == "size":
                return a.aval.size
            if attr == "T":
                return tr.bind1("transpose", a, perm=tuple(reversed(range(len(a.shape)))))
            if attr in TENSOR_METHODS:
                return TensorMethod(a, attr)
            raise self.error(
                f"tensors have no attribute `{attr}` in compiled code "
                f"(supported: shape, dtype, ndim, size, T, {', '.join(sorted(TENSOR_METHODS))})"
            )
        if isinstance(base, dict) and attr in ("items", "keys", "values"):
            return _ContainerMethod(getattr(base, attr))  # a dict argument: p.items(), ...
        if isinstance(base, list) and attr in _ListMethod.METHODS:
            return _ListMethod(getattr(base, attr))  # ys.append(y): a list built while compiling
        if not (isinstance(base, (types.ModuleType, type)) or is_static(base)):
            raise self.error(
                f"attribute `{attr}` of {describe(base)} cannot be used in compiled code", UnsupportedSyntaxError
            )
        try:
            v = getattr(base, attr)
        except AttributeError:
            owner = (
                type(base).__name__
                if not isinstance(base, (type, types.ModuleType))
                else getattr(base, "__name__", "?")
            )
            raise self.error(f"`{owner}` has no attribute `{attr}`", UnsupportedSyntaxError) from None
        if isinstance(base, types.ModuleType):
            note_module_attribute(base, attr, v)
        return self.named(v, attr)

    def binop(self, op: ast.operator, lhs: Any, rhs: Any) -> Any:
        if not any(is_tensor_value(x) for x in (lhs, rhs)):
            return _PY_BINOPS[type(op)](lhs, rhs)
        if isinstance(op, ast.MatMult):
            return lower_matmul(self.tracer, lhs, rhs, "MatMul (`@`)")
        if type(op) not in _BINOPS:
            raise self.error(f"the operator `{_op_symbol(op)}` is not supported on tensors", UnsupportedSyntaxError)
        return self.tracer.elementwise(_BINOPS[type(op)], [lhs, rhs])


_STMT_HANDLERS = _dispatch_table(Interpreter, "exec_")
_EXPR_HANDLERS = _dispatch_table(Interpreter, "eval_")


def _is_scalar(v: Any) -> bool:
    """NumPy scalars are constants, but have no tensor attributes in compiled code."""
    return isinstance(v, np.generic)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _in_package(file: str) -> bool:
    return os.path.abspath(file).startswith(_PACKAGE_DIR)


# ---------------------------------------------------------------------- tracing entry point
def trace(
    body: Callable[[Tracer, list[Any]], Any],
    abstract_args: list[Any],
    name: str,
    arg_names: list[str],
    float_params: frozenset[int] = frozenset(),
) -> Program:
    """Stage ``body(tracer, args)`` on abstract arguments (Avals and static Python values).
    Parameters whose ids are in ``float_params`` (integer ones being differentiated) are
    used as float32 values: cast once where they are first used."""
    tr = Interpreter().tracer
    tr.float_params = float_params
    invars: list[Var] = []
    children = []

    def make(a: Any, hint: str) -> tuple[Any, Any]:
        if isinstance(a, Aval):
            v = Var(a, hint)
            invars.append(v)
            return v, None
        if isinstance(a, (tuple, list)):
            pairs = [make(x, f"{hint}_{i}") for i, x in enumerate(a)]
            vals = [p[0] for p in pairs]
            return (type(a)(vals), ("list" if isinstance(a, list) else "tuple", tuple(p[1] for p in pairs)))
        if isinstance(a, dict):
            keys = dict_keys(a)
            pairs = [make(a[k], f"{hint}_{k}" if str(k).isidentifier() else hint) for k in keys]
            return dict(zip(keys, (p[0] for p in pairs))), ("dict", tuple(p[1] for p in pairs), tuple(keys))
        return a, ("static", ())

    vals = []
    for a, n in zip(abstract_args, arg_names):
        v, d = make(a, n)
        vals.append(v)
        children.append(d)
    out = body(tr, vals)
    leaves, out_tree = flatten(out)
    outs: list[Atom] = []
    for leaf in leaves:
        if leaf is None:
            raise S2SError(f"{name} returned None where a tensor was expected")
        outs.append(tr.atom(leaf))
    return tr.program(name, invars, ("tuple", tuple(children)), outs, out_tree, arg_names)
