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
from ..errors import ArgumentError, Loc, S2SError, SourceUnavailableError, UnsupportedSyntaxError
from ..ir import Atom, Aval, Lit, Program, Var, dict_keys, flatten
from ..primitives import fmt_shape
from .lowering import TENSOR_METHODS, TensorMethod, lower_matmul
from .protocol import describe, find_stager, has_traced, is_static, is_tensor_value, leaf_of, name_of
from .sources import source_lines
from .tracer import Tracer

_UNSUPPORTED_STMTS = {
    ast.Try: "`try` statements",
    ast.With: "`with` statements",
    ast.AsyncWith: "`async with` statements",
    ast.While: "`while` loops (use `for i in range(N)` with a constant N)",
    ast.Global: "`global` declarations",
    ast.Nonlocal: "`nonlocal` declarations",
    ast.Delete: "`del` statements",
    ast.FunctionDef: "nested function definitions (define helpers at module level)",
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
    ast.Lambda: "lambda expressions",
    ast.Yield: "`yield`",
    ast.YieldFrom: "`yield from`",
    ast.Await: "`await`",
    ast.ListComp: "list comprehensions",
    ast.SetComp: "set comprehensions",
    ast.DictComp: "dict comprehensions",
    ast.GeneratorExp: "generator expressions",
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
        raise UnsupportedSyntaxError(
            "lambda functions cannot be compiled or differentiated: define the function with `def`", Loc(file, first)
        )
    try:
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except SyntaxError:
        raise UnsupportedSyntaxError(f"cannot parse the source of `{name}` on its own", Loc(file, first)) from None
    node = tree.body[0]
    if not isinstance(node, ast.FunctionDef):
        raise UnsupportedSyntaxError(f"`{name}` is not a `def` function", Loc(file, first))
    _check_source_is_current(node, code, name, Loc(file, first))
    got = Parsed(node, file, first - 1, name)
    _PARSED[key] = got
    return got


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


class Scope:
    """The names of one function being interpreted: its locals, closure and globals."""

    def __init__(self, func: types.FunctionType, parsed: Parsed):
        self.locals: dict[str, Any] = {}
        self.globals = func.__globals__
        self.closure: dict[str, Any] = {}
        if func.__closure__:
            for n, c in zip(func.__code__.co_freevars, func.__closure__):
                try:
                    self.closure[n] = c.cell_contents
                except ValueError:
                    pass
        self.parsed = parsed

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


class Interpreter:
    """Evaluates Python functions on traced values, staging what they compute into its
    :class:`Tracer`. ``Interpreter().call(f, args)`` stages a call."""

    MAX_INLINE_DEPTH = 64

    def __init__(self) -> None:
        self.tracer = Tracer(self)
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
            if has_traced(list(args)):
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
        if has_traced(list(args)):
            raise self.error(f"`{name}()` of a tensor is not supported inside compiled code", UnsupportedSyntaxError)
        return f(*args, **kwargs)

    def inline(self, func: types.FunctionType, args: list[Any], kwargs: dict[str, Any], owner: Any = None) -> Any:
        """Interpret ``func`` on ``args`` (``owner``: the object whose method it is, for messages)."""
        tr = self.tracer
        parsed = parse_function(func)
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
        for s in stmts:
            self.exec_stmt(s, scope)

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
        self.exec_block(s.body if self.const_truth(test, "if") else s.orelse, scope)

    def exec_For(self, s: ast.For, scope: Scope) -> None:
        tr = self.tracer
        it = self.eval(s.iter, scope)
        if is_tensor_value(it):
            a = tr.atom(it)
            if not a.shape:
                raise self.error("iteration over a 0-d tensor")
            items = [tr.bind1("getitem", a, index=(i,)) for i in range(a.shape[0])]
        elif isinstance(it, (range, tuple, list, zip, enumerate, reversed)) or hasattr(it, "__iter__"):
            items = list(it)
        else:
            raise self.error(f"cannot iterate over {describe(it)}")
        for item in items:
            tr.loc = scope.loc(s)
            self.assign(s.target, item, scope)
            try:
                self.exec_block(s.body, scope)
            except _Break:
                return
            except _Continue:
                continue
        self.exec_block(s.orelse, scope)

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
        if not self.const_truth(test, "assert"):
            msg = self.eval(s.msg, scope) if s.msg is not None else "assertion failed"
            raise self.error(f"assertion failed while compiling: {msg}")

    def const_truth(self, v: Any, what: str) -> bool:
        if is_tensor_value(v):
            raise self.error(
                f"`{what}` on a tensor value is not supported: conditions must be known while compiling "
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
            return not self.const_truth(v, "not")
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
        is_and = isinstance(n.op, ast.And)
        v = None
        for x in n.values:
            v = self.eval(x, scope)
            if self.const_truth(v, "and" if is_and else "or") != is_and:
                return v
        return v

    def eval_IfExp(self, n: ast.IfExp, scope: Scope) -> Any:
        return self.eval(n.body if self.const_truth(self.eval(n.test, scope), "if") else n.orelse, scope)

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
        if name in scope.locals:
            return scope.locals[name]
        for d in (scope.closure, scope.globals):
            if name in d:
                return self.named(d[name], name)
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
        if not (isinstance(base, (types.ModuleType, type)) or is_static(base)):
            raise self.error(
                f"attribute `{attr}` of {describe(base)} cannot be used in compiled code", UnsupportedSyntaxError
            )
        try:
            return self.named(getattr(base, attr), attr)
        except AttributeError:
            owner = (
                type(base).__name__
                if not isinstance(base, (type, types.ModuleType))
                else getattr(base, "__name__", "?")
            )
            raise self.error(f"`{owner}` has no attribute `{attr}`", UnsupportedSyntaxError) from None

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
