"""IR → readable, deterministic Python source.

Single-use elementwise temporaries are inlined into their consumer, so each fused elementwise
cluster prints as one numpy expression (which Numba turns into one loop). Names are stable:
arguments keep the user's parameter names, values the user named keep their names, adjoints
are ``<name>_bar``, other temporaries are ``t0, t1, ...``. A comment before each group of
statements quotes the user line it comes from.
"""

from __future__ import annotations

import ast
import keyword
import linecache
import os
import re

import numpy as np

from .ir import Atom, Lit, Program, Var, treedef_leaves
from .ops.table import ATOM, POW, UNARY, get_op

# Ops whose numpy result is a fresh C-contiguous array.
_FRESH = {"matmul", "reduce_sum", "reduce_mean", "fill", "scatter", "cast", "reshape"}


class _Ctx:
    np = "np"

    def __init__(self, names: _Names | None = None) -> None:
        self.contig: set[str] = set()
        self.names = names or _Names()

    def fresh(self, hint: str | None) -> str:
        """A new variable name (for the helper variables of statement emitters)."""
        return self.names.fresh(hint)

    @staticmethod
    def dtype(dt: np.dtype) -> str:
        return f"np.{np.dtype(dt).name}"

    @staticmethod
    def lit(v, dt: np.dtype) -> str:
        dt = np.dtype(dt)
        if dt.kind == "b":
            return repr(bool(v))
        if dt == np.float64:
            return repr(float(v))
        if dt == np.int64:
            return repr(int(v))
        return f"np.{dt.name}({float(v)!r})" if dt.kind == "f" else f"np.{dt.name}({int(v)!r})"

    def reshape_from(
        self, expr: str, in_shape: tuple, out_shape: tuple, dtype: np.dtype, contiguous: bool = True
    ) -> str:
        if tuple(in_shape) == tuple(out_shape):
            return expr
        if in_shape == ():
            return f"np.full({tuple(out_shape)!r}, {expr}, {self.dtype(dtype)})"
        if not isinstance(ast.parse(expr, mode="eval").body, (ast.Call, ast.Name, ast.Attribute, ast.Subscript)):
            expr = f"({expr})"
        if out_shape == ():
            return f"{expr}[{', '.join('0' * len(in_shape))}]"
        if not contiguous and expr not in self.contig and not expr.startswith("np."):
            expr = f"np.ascontiguousarray({expr})"
        return f"{expr}.reshape({tuple(out_shape)!r})"


class _Names:
    def __init__(self) -> None:
        self.used = {"np", "math"}
        self.temps = 0

    def fresh(self, hint: str | None) -> str:
        if hint is None:
            while f"t{self.temps}" in self.used:
                self.temps += 1
            name = f"t{self.temps}"
            self.temps += 1
        else:
            base = re.sub(r"\W", "_", hint)
            if not base or base[0].isdigit() or keyword.iskeyword(base):
                base = "v_" + base
            name, k = base, 1
            while name in self.used:
                name = f"{base}_{k}"
                k += 1
        self.used.add(name)
        return name


def _wrap(arg: tuple[str, int], need: int) -> str:
    s, p = arg
    return s if p >= need else f"({s})"


def _print_elementwise(op, args, dt, C: _Ctx, shape: tuple = ()) -> tuple[str, int]:
    kind = op.printer[0]
    if kind == "infix":
        _, sym, prec = op.printer
        if sym == "**":
            return f"{_wrap(args[0], POW + 1)} ** {_wrap(args[1], POW)}", POW
        return f"{_wrap(args[0], prec)} {sym} {_wrap(args[1], prec + 1)}", prec
    if kind == "prefix":
        return f"{op.printer[1]}{_wrap(args[0], UNARY + 1)}", UNARY
    if kind == "call":
        return f"np.{op.printer[1]}({', '.join(a for a, _ in args)})", ATOM
    if kind == "template":
        return op.printer[1](*[_wrap(a, ATOM) for a in args], lambda v: C.lit(v, dt), C.np)
    if kind == "shaped_template":
        return op.printer[1](*[_wrap(a, ATOM) for a in args], lambda v: C.lit(v, dt), C.np, tuple(shape))
    raise AssertionError(kind)


def generate(prog: Program, fname: str, doc: str | None = None) -> str:
    """Python source of a function ``fname`` computing ``prog`` (returns a flat tuple)."""
    names = _Names()
    C = _Ctx(names)
    expr: dict[int, tuple[str, int]] = {}

    def arg_name(v: Var, fallback: str) -> str:
        n = names.fresh(v.hint or fallback)
        expr[id(v)] = (n, ATOM)
        C.contig.add(n)
        return n

    params = []
    leaf_names = _leaf_names(prog)
    for v, hint in zip(prog.arg_vars, leaf_names):
        params.append(arg_name(v, hint))
    for v, p in zip(prog.param_vars, prog.params):
        params.append(arg_name(v, getattr(p, "name", None) or "param"))
    for k, v in enumerate(prog.const_vars):
        params.append(arg_name(v, f"const{k}"))

    uses: dict[int, int] = {}
    for e in prog.eqns:
        for a in e.ins:
            if isinstance(a, Var):
                uses[id(a)] = uses.get(id(a), 0) + 1
    out_ids = {id(a) for a in prog.outs if isinstance(a, Var)}

    def atom(a: Atom) -> tuple[str, int]:
        if isinstance(a, Lit):
            s = C.lit(a.value, a.dtype)
            return s, (UNARY if s.startswith("-") else ATOM)
        return expr[id(a)]

    lines: list[str] = []
    last_loc = None
    pending: list[str] = []

    def emit(*stmts: str) -> None:
        lines.extend(pending)
        pending.clear()
        lines.extend(stmts)

    for e in prog.eqns:
        op = get_op(e.op)
        args = [atom(a) for a in e.ins]
        out = e.outs[0]
        if e.op == "stop_gradient":
            expr[id(out)] = args[0]
            continue
        if e.loc is not None and e.loc != last_loc:
            src = e.loc.source_line()
            pending[:] = [f"# {os.path.basename(e.loc.file)}:{e.loc.line}" + (f": {src}" if src else "")]
            last_loc = e.loc
        if op.statement:
            target = names.fresh(out.hint)
            emit(*op.emit(target, args, e, C))
            expr[id(out)] = (target, ATOM)
            C.contig.add(target)
            continue
        if op.kind == "elementwise":
            s, prec = _print_elementwise(op, args, out.dtype, C, out.shape)
        else:
            s, prec = op.emit(args, e, C)
        inline = op.kind == "elementwise" and out.hint is None and uses.get(id(out), 0) == 1 and id(out) not in out_ids
        if inline:
            expr[id(out)] = (s, prec)
            continue
        target = names.fresh(out.hint)
        emit(f"{target} = {s}")
        expr[id(out)] = (target, ATOM)
        if op.kind == "elementwise" or e.op in _FRESH:
            C.contig.add(target)

    rets = [atom(a)[0] for a in prog.outs]
    lines.append(f"return ({', '.join(rets)}{',' if len(rets) == 1 else ''})")
    sig_doc = ", ".join(f"{n}: {v.aval}" for n, v in zip(params, prog.invars))
    head = [f"def {fname}({', '.join(params)}):"]
    body = [f'"""{doc}' + (f"\n\n{sig_doc}" if sig_doc else "") + '\n"""'] if doc else []
    src = "\n".join(head + ["    " + ln if ln else ln for ln in "\n".join(body + lines).split("\n")])
    return src + "\n"


def _leaf_names(prog: Program) -> list[str]:
    """A name per flattened argument leaf: the parameter name, suffixed for tuple args."""
    out = []
    children = prog.in_tree[1] if prog.in_tree else ()
    for k, child in enumerate(children):
        base = prog.arg_names[k] if k < len(prog.arg_names) else f"arg{k}"
        n = treedef_leaves(child)
        out.extend([base] if child is None else [f"{base}_{i}" for i in range(n)])
    return out


def register_source(src: str, fname: str) -> str:
    """Put generated source into ``linecache`` so tracebacks and ``inspect`` can show it."""
    import hashlib

    digest = hashlib.sha1(src.encode()).hexdigest()[:10]
    filename = f"<s2s_ad:{fname}:{digest}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    return filename


__all__ = ["generate", "register_source"]
