"""Frontend: Python source → IR.

The AST of ``construct`` (or of a plain function) is evaluated abstractly: tensor values are
IR variables, everything else is an ordinary Python value known while compiling. That is what
resolves ``self.x`` to a primitive, a ``Parameter`` or a sub-Cell, inlines sub-cells and helper
functions, decides ``if`` on constants and unrolls ``for`` over ``range(N)`` or tuples. What
cannot be compiled is rejected with the user's file and line.
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

from . import dtype as mstype
from .errors import ArgumentError, Loc, S2SError, SourceUnavailableError, UnsupportedSyntaxError
from .ir import Atom, Aval, Builder, Lit, Program, Var, copy_eqns, dict_keys, flatten
from .ops.table import cast_to, fmt_shape, get_op

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

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
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


def _cmp_symbol(op: ast.cmpop) -> str:
    return {ast.In: "in", ast.NotIn: "not in"}.get(type(op), type(op).__name__)


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


class _Return(Exception):
    def __init__(self, value: Any):
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@dataclass
class _Parsed:
    node: ast.FunctionDef
    file: str
    offset: int
    qualname: str


_PARSED: dict[Any, _Parsed] = {}


def parse_function(func: types.FunctionType) -> _Parsed:
    code = func.__code__
    got = _PARSED.get(code)
    if got is not None:
        return got
    name = func.__qualname__
    try:
        lines, first = inspect.getsourcelines(func)
        file = inspect.getsourcefile(func) or code.co_filename
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
    got = _Parsed(node, file, first - 1, name)
    _PARSED[code] = got
    return got


class TensorMethod:
    """A method of a tensor value used inside compiled code (``x.reshape(...)``, ``x.sum()``)."""

    def __init__(self, value: Atom, name: str):
        self.value = value
        self.name = name


class _ContainerMethod:
    """``d.items()``, ``d.keys()``, ``d.values()`` of a dict while compiling: called at once."""

    _s2s_static = True

    def __init__(self, method: Any):
        self.method = method
        self.__name__ = getattr(method, "__name__", "method")

    def __call__(self) -> Any:
        return list(self.method())


class Scope:
    def __init__(self, func: types.FunctionType, parsed: _Parsed):
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


def is_tensor_value(v: Any) -> bool:
    from .tensor import Tensor

    return isinstance(v, (Var, Lit, Tensor, np.ndarray, np.generic))


class Frontend:
    """Builds one program. ``fe.call(f, args)`` stages a call; tensor values are ``Var``s."""

    MAX_INLINE_DEPTH = 64

    def __init__(self) -> None:
        self.b = Builder(primal=True)
        self.params: list[Any] = []
        self.param_vars: dict[int, Var] = {}
        self.consts: list[Any] = []
        self.const_vars: dict[int, Var] = {}
        self.promoted: dict[tuple, Atom] = {}
        self.float_params: frozenset[int] = frozenset()
        self.bprop_cells: list[tuple[str, Loc]] = []
        self.depth = 0

    # ------------------------------------------------------------------ values
    @property
    def loc(self) -> Loc | None:
        return self.b.loc

    def error(self, msg: str, cls: type[S2SError] = S2SError) -> S2SError:
        return cls(msg, self.loc)

    def atom(self, v: Any, like: np.dtype | None = None) -> Atom:
        """A tensor value as an atom. Python numbers become literals typed ``like`` (weak
        typing, as MindSpore and numpy treat Python scalars)."""
        from .tensor import Parameter, Tensor

        if isinstance(v, (Var, Lit)):
            return v
        if isinstance(v, Parameter):
            var = self.param_vars.get(id(v))
            if var is None:
                var = Var(Aval(tuple(v.shape), v.asnumpy().dtype), v.name)
                self.param_vars[id(v)] = var
                self.params.append(v)
            if id(v) in self.float_params:
                key = (id(var), np.dtype(np.float32))
                if key not in self.promoted:
                    self.promoted[key] = cast_to(self.b, var, np.dtype(np.float32))
                return self.promoted[key]
            return var
        if isinstance(v, (Tensor, np.ndarray, np.generic)):
            var = self.const_vars.get(id(v))
            if var is None:
                arr = v.asnumpy() if isinstance(v, Tensor) else np.asarray(v)
                var = Var(Aval(arr.shape, arr.dtype), None)
                self.const_vars[id(v)] = var
                self.consts.append(v)
            return var
        if isinstance(v, (bool, int, float, np.number)):
            if like is None:
                like = np.dtype(np.float32) if isinstance(v, float) else np.dtype(np.int64)
            if isinstance(v, float) and like.kind != "f":
                like = np.dtype(np.float32)
            return Lit(v, like)
        raise self.error(f"expected a tensor, got {_describe(v)}", ArgumentError)

    def atoms(self, vals: list[Any]) -> list[Atom]:
        """Convert values, typing Python scalars after the tensors among them."""
        tensor_dts = [self.atom(v).dtype for v in vals if is_tensor_value(v)]
        like = np.result_type(*tensor_dts) if tensor_dts else None
        return [self.atom(v, like) for v in vals]

    def bind(self, op: str, ins: list[Any], hint: str | None = None, **params: Any) -> Var:
        return self.b.bind1(op, *self.atoms(ins), hint=hint, **params)

    def elementwise(self, op: str, args: list[Any]) -> Any:
        opdef = get_op(op)
        if len(args) != opdef.nin:
            raise self.error(f"{opdef.display} takes {opdef.nin} tensor input(s), got {len(args)}", ArgumentError)
        if not any(is_tensor_value(a) for a in args):
            for a in args:
                if not isinstance(a, (int, float, bool)):
                    raise self.error(f"{opdef.display} expects tensors or numbers, got {_describe(a)}", ArgumentError)
        return self.b.bind1(op, *self.promote(self.atoms(args)))

    def promote(self, atoms: list[Atom]) -> list[Atom]:
        """MindSpore's promotion for mixed integer and float operands: the integer ones become
        the float type (numpy would widen int32 * float32 to float64). Bool operands (e.g. a
        select condition) are left alone."""
        floats = [a.dtype for a in atoms if a.dtype.kind == "f"]
        if not floats or all(a.dtype.kind not in "iu" for a in atoms):
            return atoms
        target = np.result_type(*floats)
        out = []
        for a in atoms:
            if isinstance(a, Lit) and a.dtype.kind in "iu":
                a = Lit(a.value, target)
            elif a.dtype.kind in "iu":
                # One cast per (variable, dtype): the gradient of an integer input is then
                # accumulated in float and truncated once.
                key = (id(a), target)
                if key not in self.promoted:
                    self.promoted[key] = cast_to(self.b, a, target)
                a = self.promoted[key]
            out.append(a)
        return out

    # ------------------------------------------------------------------ calls
    def tensor_of(self, data: Atom, dtype: Any = None) -> Atom:
        """``Tensor(data, dtype)`` of a traced value ``data``."""
        from .ops.primitives import lower_cast

        return self.atom(data) if dtype is None else lower_cast(self, data, dtype)

    def call(self, f: Any, args: list[Any], kwargs: dict[str, Any] | None = None) -> Any:
        from .nn.cell import Cell

        kwargs = kwargs or {}
        if isinstance(f, type) and getattr(f, "_s2s_constructible", False):
            # Creating a primitive, a GradOperation or a constant Tensor while compiling.
            traced = any(isinstance(a, (Var, Lit)) for a in flatten(list(args) + list(kwargs.values()))[0])
            if traced and f is _tensor_class() and args and isinstance(args[0], (Var, Lit)):
                # Tensor(t) of a value computed while compiling (np.float32(2.0), np.ones(3)):
                # that value, cast to the dtype given
                return self.tensor_of(args[0], *args[1:], **kwargs)
            if traced:
                raise self.error(
                    f"`{f.__name__}(...)` must be created from compile-time constants here", UnsupportedSyntaxError
                )
            return f(*args, **kwargs)
        if isinstance(f, types.MethodType) and isinstance(f.__self__, Cell):
            if f.__name__ == "construct":
                self.note_bprop(f.__self__)
            return self.inline(unwrap_jit(f.__func__), [f.__self__, *args], kwargs, owner=f.__self__)
        lower = getattr(f, "_s2s_lower", None)
        if lower is not None:
            return lower(self, list(args), kwargs)
        from .ops.numpy_api import is_numpy_callable, lower_numpy_call

        if is_numpy_callable(f):
            # np.sin(x), np.sum(x, axis=1), ...: the same primitives (or a clear error)
            return lower_numpy_call(self, f, list(args), kwargs)
        if isinstance(f, Cell):
            if type(f).construct is Cell.construct:
                raise self.error(f"{type(f).__name__} does not define construct()", ArgumentError)
            self.note_bprop(f)
            return self.inline(construct_function(f), [f, *args], kwargs, owner=f)
        if isinstance(f, TensorMethod):
            from .ops.primitives import tensor_method

            return tensor_method(self, f, list(args), kwargs)
        if isinstance(f, types.FunctionType):
            if getattr(f, "_s2s_static", False):
                return f(*args, **kwargs)
            return self.inline(f, list(args), kwargs)
        if getattr(f, "_s2s_static", False):
            traced = any(isinstance(a, (Var, Lit)) for a in flatten(list(args) + list(kwargs.values()))[0])
            if traced and f is _tensor_class() and args and isinstance(args[0], (Var, Lit)):
                # Tensor(t) of a value computed while compiling (np.float32(2.0), np.ones(3)):
                # that value, cast to the dtype given
                return self.tensor_of(args[0], *args[1:], **kwargs)
            if traced:
                raise self.error(f"`{_name_of(f)}` must be called with compile-time constants here")
            return f(*args, **kwargs)
        if (
            isinstance(f, types.BuiltinFunctionType)
            and f.__name__ in _SAFE_BUILTINS
            and getattr(builtins, f.__name__, None) is f
        ):
            return self.call_builtin(f, args, kwargs)
        if isinstance(f, type) and f in (
            int,
            float,
            bool,
            tuple,
            list,
            range,
            slice,
            dict,
            enumerate,
            zip,
            reversed,
            str,
        ):
            if any(isinstance(a, (Var, Lit)) for a in flatten(list(args))[0]):
                raise self.error(f"`{f.__name__}()` of a tensor is not supported inside compiled code")
            return f(*args, **kwargs)
        if isinstance(f, type) and issubclass(f, mstype.Type):
            return f(*args, **kwargs)
        raise self.error(
            f"call to `{_name_of(f)}` ({_describe(f)}) is not supported inside compiled code: call s2s_ad ops "
            "(e.g. ops.Sin()), Cells, gradient functions, or Python functions whose source is available",
            UnsupportedSyntaxError,
        )

    def note_bprop(self, cell: Any) -> None:
        """Record a Cell that defines a custom ``bprop`` (see :attr:`Program.bprop_cells`)."""
        bprop = getattr(type(cell), "bprop", None)
        if bprop is None:
            return
        fn = unwrap_jit(bprop)
        try:
            file = inspect.getsourcefile(fn) or fn.__code__.co_filename
            line = inspect.getsourcelines(fn)[1]
        except (OSError, TypeError, AttributeError):
            file, line = getattr(getattr(fn, "__code__", None), "co_filename", "?"), 0
        entry = (type(cell).__name__, Loc(file, line))
        if entry not in self.bprop_cells:
            self.bprop_cells.append(entry)

    def call_builtin(self, f: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        name = f.__name__
        if name == "len":
            (x,) = args
            if isinstance(x, (Var, Lit)) or is_tensor_value(x):
                a = self.atom(x)
                if not a.shape:
                    raise self.error("len() of a 0-d tensor")
                return a.shape[0]
            return len(x)
        if name == "print":
            raise self.error("print() is not supported inside compiled code", UnsupportedSyntaxError)
        if name in ("abs",) and is_tensor_value(args[0]):
            return self.elementwise("abs", [args[0]])
        if name == "super":
            raise self.error("super() calls are not supported inside compiled code", UnsupportedSyntaxError)
        if any(isinstance(a, (Var, Lit)) for a in flatten(list(args))[0]):
            raise self.error(f"`{name}()` of a tensor is not supported inside compiled code", UnsupportedSyntaxError)
        return f(*args, **kwargs)

    def inline(self, func: types.FunctionType, args: list[Any], kwargs: dict[str, Any], owner: Any = None) -> Any:
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
                self.loc or Loc(parsed.file, parsed.offset + 1),
            ) from None
        bound.apply_defaults()
        for k, v in bound.arguments.items():
            kind = sig.parameters[k].kind
            if kind == inspect.Parameter.VAR_POSITIONAL:
                v = tuple(v)
            scope.locals[k] = v
        saved = self.b.loc
        self.depth += 1
        try:
            self.exec_block(parsed.node.body, scope)
            result = None
        except _Return as r:
            result = r.value
        except S2SError as err:
            if err.loc is None and self.b.loc is not None:
                # raised without a position (a helper shared with the eager API): the statement
                # being compiled is where it happened
                err = type(err)(err.bare_message, self.b.loc)
                if not _in_package(err.loc.file) or saved is None or _in_package(saved.file):
                    raise err from None
            # An error inside one of s2s_ad's own Cells (nn.Dense, a loss) is reported at the
            # user's line that called it.
            if err.loc is None or not _in_package(err.loc.file) or saved is None or _in_package(saved.file):
                raise
            raise type(err)(f"{err.bare_message} (inside {parsed.qualname})", saved) from None
        finally:
            self.depth -= 1
            self.b.loc = saved
        return result

    # ------------------------------------------------------------------ statements
    def exec_block(self, stmts: list[ast.stmt], scope: Scope) -> None:
        for s in stmts:
            self.exec_stmt(s, scope)

    def exec_stmt(self, s: ast.stmt, scope: Scope) -> None:
        self.b.loc = scope.loc(s)
        if type(s) in _UNSUPPORTED_STMTS:
            raise self.error(
                f"{_UNSUPPORTED_STMTS[type(s)]} are not supported in compiled code (in `{scope.parsed.qualname}`)",
                UnsupportedSyntaxError,
            )
        if isinstance(s, ast.Assign):
            v = self.eval(s.value, scope)
            for t in s.targets:
                self.assign(t, v, scope)
        elif isinstance(s, ast.AnnAssign):
            if s.value is not None:
                self.assign(s.target, self.eval(s.value, scope), scope)
        elif isinstance(s, ast.AugAssign):
            if not isinstance(s.target, ast.Name):
                raise self.error(
                    "in-place update of a tensor element or attribute is not supported "
                    "(tensors are immutable in compiled code; build a new value instead)",
                    UnsupportedSyntaxError,
                )
            cur = self.eval(s.target, scope)
            self.assign(s.target, self.binop(s.op, cur, self.eval(s.value, scope)), scope)
        elif isinstance(s, ast.Return):
            raise _Return(None if s.value is None else self.eval(s.value, scope))
        elif isinstance(s, ast.If):
            test = self.eval(s.test, scope)
            self.exec_block(s.body if self.const_truth(test, "if") else s.orelse, scope)
        elif isinstance(s, ast.For):
            self.exec_for(s, scope)
        elif isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant):
                return
            self.eval(s.value, scope)
        elif isinstance(s, ast.Pass):
            return
        elif isinstance(s, ast.Break):
            raise _Break()
        elif isinstance(s, ast.Continue):
            raise _Continue()
        elif isinstance(s, ast.Assert):
            test = self.eval(s.test, scope)
            if not self.const_truth(test, "assert"):
                msg = self.eval(s.msg, scope) if s.msg is not None else "assertion failed"
                raise self.error(f"assertion failed while compiling: {msg}")
        else:
            raise self.error(
                f"`{type(s).__name__}` statements are not supported in compiled code", UnsupportedSyntaxError
            )

    def const_truth(self, v: Any, what: str) -> bool:
        if isinstance(v, (Var, Lit)) or is_tensor_value(v):
            raise self.error(
                f"`{what}` on a tensor value is not supported: conditions must be known while compiling "
                "(Python constants, shapes, attributes)",
                UnsupportedSyntaxError,
            )
        return bool(v)

    def exec_for(self, s: ast.For, scope: Scope) -> None:
        it = self.eval(s.iter, scope)
        if isinstance(it, (Var, Lit)) or is_tensor_value(it):
            a = self.atom(it)
            if not a.shape:
                raise self.error("iteration over a 0-d tensor")
            items = [self.b.bind1("getitem", a, index=(i,)) for i in range(a.shape[0])]
        elif isinstance(it, (range, tuple, list, zip, enumerate, reversed)) or hasattr(it, "__iter__"):
            items = list(it)
        else:
            raise self.error(f"cannot iterate over {_describe(it)}")
        for item in items:
            self.b.loc = scope.loc(s)
            self.assign(s.target, item, scope)
            try:
                self.exec_block(s.body, scope)
            except _Break:
                return
            except _Continue:
                continue
        self.exec_block(s.orelse, scope)

    def assign(self, t: ast.expr, v: Any, scope: Scope) -> None:
        if isinstance(t, ast.Name):
            if isinstance(v, Var) and v.hint is None:
                v.hint = t.id
            scope.locals[t.id] = v
        elif isinstance(t, (ast.Tuple, ast.List)):
            if isinstance(v, (Var, Lit)) or is_tensor_value(v):
                a = self.atom(v)
                if not a.shape or a.shape[0] != len(t.elts):
                    raise self.error(f"cannot unpack a tensor of shape {fmt_shape(a.shape)} into {len(t.elts)} names")
                v = [self.b.bind1("getitem", a, index=(i,)) for i in range(a.shape[0])]
            vals = list(v)
            if len(vals) != len(t.elts):
                raise self.error(f"cannot unpack {len(vals)} values into {len(t.elts)} names", ArgumentError)
            for sub, x in zip(t.elts, vals):
                self.assign(sub, x, scope)
        elif isinstance(t, ast.Subscript):
            raise self.error(
                "in-place assignment to a tensor element is not supported (tensors are immutable "
                "in compiled code; build a new value instead)",
                UnsupportedSyntaxError,
            )
        elif isinstance(t, ast.Attribute):
            raise self.error("assigning attributes inside compiled code is not supported", UnsupportedSyntaxError)
        else:
            raise self.error(f"unsupported assignment target `{ast.unparse(t)}`", UnsupportedSyntaxError)

    # ------------------------------------------------------------------ expressions
    def eval(self, n: ast.expr, scope: Scope) -> Any:
        if hasattr(n, "lineno"):
            self.b.loc = scope.loc(n)
        if type(n) in _UNSUPPORTED_EXPRS:
            raise self.error(
                f"{_UNSUPPORTED_EXPRS[type(n)]} are not supported in compiled code", UnsupportedSyntaxError
            )
        if isinstance(n, ast.Constant):
            return n.value
        if isinstance(n, ast.Name):
            return self.lookup(n.id, scope)
        if isinstance(n, ast.Attribute):
            return self.attribute(self.eval(n.value, scope), n.attr)
        if isinstance(n, ast.BinOp):
            lhs, rhs = self.eval(n.left, scope), self.eval(n.right, scope)
            self.b.loc = scope.loc(n)
            return self.binop(n.op, lhs, rhs)
        if isinstance(n, ast.UnaryOp):
            v = self.eval(n.operand, scope)
            if isinstance(n.op, ast.Not):
                return not self.const_truth(v, "not")
            if isinstance(v, (Var, Lit)) or is_tensor_value(v):
                return v if isinstance(n.op, ast.UAdd) else self.elementwise("neg", [v])
            return {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}[type(n.op)](v)
        if isinstance(n, ast.Compare):
            left = self.eval(n.left, scope)
            for op, right_n in zip(n.ops, n.comparators):
                right = self.eval(right_n, scope)
                if any(isinstance(x, (Var, Lit)) or is_tensor_value(x) for x in (left, right)) and not isinstance(
                    op, (ast.Is, ast.IsNot)
                ):
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
                    self.b.loc = scope.loc(n)
                    return self.bind(_TENSOR_CMPS[type(op)], [left, right])
                if not _PY_CMPS[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(n, ast.BoolOp):
            is_and = isinstance(n.op, ast.And)
            v = None
            for x in n.values:
                v = self.eval(x, scope)
                if self.const_truth(v, "and" if is_and else "or") != is_and:
                    return v
            return v
        if isinstance(n, ast.IfExp):
            return self.eval(n.body if self.const_truth(self.eval(n.test, scope), "if") else n.orelse, scope)
        if isinstance(n, ast.Call):
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
            self.b.loc = scope.loc(n)
            return self.call(f, args, kwargs)
        if isinstance(n, (ast.Tuple, ast.List)):
            vals = []
            for e in n.elts:
                if isinstance(e, ast.Starred):
                    vals.extend(self.eval(e.value, scope))
                else:
                    vals.append(self.eval(e, scope))
            return tuple(vals) if isinstance(n, ast.Tuple) else vals
        if isinstance(n, ast.Dict):
            return {self.eval(k, scope): self.eval(v, scope) for k, v in zip(n.keys, n.values)}
        if isinstance(n, ast.Subscript):
            base = self.eval(n.value, scope)
            idx = self.eval(n.slice, scope)
            self.b.loc = scope.loc(n)
            return self.subscript(base, idx)
        if isinstance(n, ast.Slice):
            return slice(*(None if x is None else self.eval(x, scope) for x in (n.lower, n.upper, n.step)))
        raise self.error(f"`{type(n).__name__}` expressions are not supported in compiled code", UnsupportedSyntaxError)

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
        from .tensor import Parameter, Tensor

        if isinstance(v, (Tensor, np.ndarray)) and not isinstance(v, Parameter) and id(v) not in self.const_vars:
            self.atom(v).hint = name
        return v

    def attribute(self, base: Any, attr: str) -> Any:
        from .nn.cell import Cell
        from .tensor import Tensor

        if isinstance(base, (Var, Lit)) or isinstance(base, (Tensor, np.ndarray)):
            a = self.atom(base)
            if attr == "shape":
                return tuple(a.shape)
            if attr == "dtype":
                return mstype.from_np(a.dtype)
            if attr == "ndim":
                return len(a.shape)
            if attr == "size":
                return a.aval.size
            if attr == "T":
                return self.b.bind1("transpose", a, perm=tuple(reversed(range(len(a.shape)))))
            from .ops.primitives import TENSOR_METHODS

            if attr in TENSOR_METHODS:
                return TensorMethod(a, attr)
            raise self.error(
                f"tensors have no attribute `{attr}` in compiled code "
                f"(supported: shape, dtype, ndim, size, T, {', '.join(sorted(TENSOR_METHODS))})"
            )
        if isinstance(base, dict) and attr in ("items", "keys", "values"):
            return _ContainerMethod(getattr(base, attr))  # a dict argument: p.items(), ...
        ok = (
            isinstance(base, (types.ModuleType, Cell, type))
            or getattr(base, "_s2s_static", False)
            or getattr(type(base), "_s2s_attr_ok", False)
        )
        if not ok:
            raise self.error(
                f"attribute `{attr}` of {_describe(base)} cannot be used in compiled code", UnsupportedSyntaxError
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
        if not any(isinstance(x, (Var, Lit)) or is_tensor_value(x) for x in (lhs, rhs)):
            return _PY_BINOPS[type(op)](lhs, rhs)
        if isinstance(op, ast.MatMult):
            return self.bind("matmul", [lhs, rhs], transpose_a=False, transpose_b=False)
        if type(op) not in _BINOPS:
            raise self.error(f"the operator `{_op_symbol(op)}` is not supported on tensors", UnsupportedSyntaxError)
        return self.elementwise(_BINOPS[type(op)], [lhs, rhs])

    def subscript(self, base: Any, idx: Any) -> Any:
        if isinstance(base, (Var, Lit)) or is_tensor_value(base):
            a = self.atom(base)
            return self.b.bind1("getitem", a, index=normalize_index(self, idx))
        if isinstance(idx, (Var, Lit)):
            raise self.error("indexing a Python container with a tensor is not supported", UnsupportedSyntaxError)
        try:
            return base[idx]
        except (IndexError, KeyError, TypeError) as err:
            raise self.error(f"cannot index {_describe(base)} with {idx!r}: {err}") from None


def normalize_index(fe: Frontend, idx: Any) -> tuple:
    items = idx if isinstance(idx, tuple) else (idx,)
    out = []
    for i in items:
        if isinstance(i, slice):
            for x in (i.start, i.stop, i.step):
                if x is not None and not isinstance(x, (int, np.integer)):
                    raise fe.error(
                        f"slice bounds must be constant integers, got {_describe(x)}", UnsupportedSyntaxError
                    )
            out.append(("slice", i.start, i.stop, i.step))
        elif isinstance(i, (bool, np.bool_)):
            raise fe.error("boolean indices are not supported", UnsupportedSyntaxError)
        elif isinstance(i, (int, np.integer)):
            out.append(int(i))
        elif i is None or i is Ellipsis:
            out.append(i)
        else:
            raise fe.error(
                f"tensor indices must be constant ints, slices, None or ..., got {_describe(i)}", UnsupportedSyntaxError
            )
    return tuple(out)


def unwrap_jit(func: Any) -> Any:
    """The plain function under ``@jit`` (``@s2s_ad.jit def construct(self, x)``, MindSpore's
    idiom): inside compiled code the decorator changes nothing."""
    from .api import JitFunction

    while isinstance(func, JitFunction):
        func = func.fn
    return func


def construct_function(cell: Any) -> Any:
    """The function a Cell's ``construct`` runs (unwrapped from ``@jit``)."""
    return unwrap_jit(type(cell).construct)


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


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _in_package(file: str) -> bool:
    return os.path.abspath(file).startswith(_PACKAGE_DIR)


def _name_of(f: Any) -> str:
    return getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or type(f).__name__


def _describe(v: Any) -> str:
    if isinstance(v, (Var, Lit)):
        return f"a tensor {v.aval}"
    if isinstance(v, type):
        return f"the class {v.__name__}"
    return f"an object of type {type(v).__module__}.{type(v).__qualname__}"


# ---------------------------------------------------------------------- tracing entry point
def _tensor_class() -> type:
    from .tensor import Tensor

    return Tensor


def abstractify(x: Any) -> Any:
    """Tensor leaves → Aval; everything else is a static value."""
    from .tensor import Tensor

    if isinstance(x, (tuple, list)):
        return type(x)(abstractify(v) for v in x)
    if isinstance(x, dict):
        return {k: abstractify(v) for k, v in x.items()}
    if isinstance(x, (Tensor, np.ndarray, np.generic)):
        a = x.asnumpy() if isinstance(x, Tensor) else x
        return Aval(tuple(a.shape), input_dtype(a.dtype))
    return x


def input_dtype(dt: np.dtype) -> np.dtype:
    """The dtype a compiled program sees for an input of dtype ``dt``: native byte order
    (big-endian arrays are converted at the call); anything that is not a supported
    tensor dtype (complex, strings, objects, ...) is rejected with the list of those that are."""
    dt = mstype.native(np.dtype(dt))
    if dt not in mstype.NP_DTYPES:
        raise ArgumentError(
            f"inputs must be tensors of a supported dtype, got dtype {dt}"
            + (" (complex numbers are not supported)" if dt.kind == "c" else "")
            + "; supported: "
            + ", ".join(str(d) for d in mstype.NP_DTYPES)
        )
    return dt


def trace(
    body: Callable[[Frontend, list[Any]], Any],
    abstract_args: list[Any],
    name: str,
    arg_names: list[str],
    float_params: frozenset[int] = frozenset(),
) -> Program:
    """Stage ``body(fe, args)`` on abstract arguments (Avals and static Python values).
    Parameters whose ids are in ``float_params`` (integer ones being differentiated) are
    used as float32 values: cast once where they are first used."""
    fe = Frontend()
    fe.float_params = float_params
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
    out = body(fe, vals)
    leaves, out_tree = flatten(out)
    outs = []
    for leaf in leaves:
        if leaf is None:
            raise S2SError(f"{name} returned None where a tensor was expected")
        outs.append(fe.atom(leaf))
    return Program(
        name=name,
        invars=invars + [fe.param_vars[id(p)] for p in fe.params] + [fe.const_vars[id(c)] for c in fe.consts],
        n_args=len(invars),
        in_tree=("tuple", tuple(children)),
        parameters=list(fe.params),
        consts=list(fe.consts),
        eqns=fe.b.eqns,
        outs=outs,
        out_tree=out_tree,
        arg_names=list(arg_names),
        bprop_cells=list(fe.bprop_cells),
    )


def inline_program(fe: Frontend, prog: Program, args: list[Atom]) -> list[Atom]:
    """Copy ``prog``'s equations into ``fe`` with its arguments bound to ``args``; its
    parameters and constants become ``fe``'s own (the same Parameter maps to the same
    variable, so nested derivatives see one weight)."""
    from .ops.table import cast_to

    env: dict[Var, Atom] = {}
    for entry in prog.bprop_cells:
        if entry not in fe.bprop_cells:
            fe.bprop_cells.append(entry)
    for v, a in zip(prog.arg_vars, args):
        env[v] = cast_to(fe.b, a, v.dtype)
    for v, p in zip(prog.param_vars, prog.parameters):
        env[v] = cast_to(fe.b, fe.atom(p), v.dtype)  # an integer Parameter fe uses as float
    for v, c in zip(prog.const_vars, prog.consts):
        env[v] = fe.atom(c)
    copy_eqns(fe.b, prog.eqns, env, prog.names)
    return [o if isinstance(o, Lit) else env[o] for o in prog.outs]
