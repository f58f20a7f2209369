"""IR → readable, deterministic Python source.

Single-use elementwise temporaries are inlined into their consumer, so each fused elementwise
cluster prints as one numpy expression (which Numba turns into one loop). Names are stable:
arguments keep the user's parameter names, values the user named keep their names, adjoints
are ``<name>_bar``, other temporaries are ``t0, t1, ...`` (a variable's name is
``Program.name_of``: the program's names table, else the variable's hint). A comment before
each group of statements quotes the user line it comes from; before the statements of an
adjoint sweep it reads ``# adjoint of file:line: ...``.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import keyword
import linecache
import os
import re
from collections import Counter
from collections.abc import Callable
from types import ModuleType

import numpy as np

from . import buffers
from .fusion import Loop, schedule
from .ir import Atom, Eqn, Lit, Program, Var, treedef_leaves
from .primitives import ATOM, ELEMENTWISE, MUL, POW, SPECIAL_NS, UNARY, get_op, numpy_literal, print_elementwise
from .primitives import wrap as _wrap
from .pyast import parse as parse_source
from .regions import loop_layout, while_layout


class _Ctx:
    np = "np"

    def __init__(self, names: _Names | None = None, numba: bool = False, split: bool = False) -> None:
        self.contig: set[str] = set()
        self.fortran: set[str] = set()  # names of Fortran-ordered arrays (the .T of a C-contiguous one)
        self.names = names or _Names()
        self.numba = numba  # the source is compiled by Numba (not run by numpy)
        self.split = split  # only its loop kernels are: the statements between them run in numpy
        self.avals: dict[str, tuple] = {}  # (shape, dtype) of the names assigned in statements

    @property
    def numba_statements(self) -> bool:
        """Whether the statements outside fused loops are compiled by Numba (not those of a
        split program, which run in numpy)."""
        return self.numba and not self.split

    def ufunc_into(self, ufunc: str, a: str, b: str, out: str) -> str:
        """``ufunc(a, b)`` written into ``out``: Numba takes the output only positionally,
        numpy (2.4 on) only as ``out=`` for maximum/minimum."""
        if self.numba_statements:
            return f"{self.np}.{ufunc}({a}, {b}, {out})"
        return f"{self.np}.{ufunc}({a}, {b}, out={out})"

    def blas_operand(self, expr: str) -> str:
        """``expr`` as an operand of a BLAS product in Numba code: an array that Numba types
        as of any layout ('A': a slice, a general transpose) is passed as a C-contiguous one
        (a view where it is contiguous at run time; Numba would copy it anyway, and warn).
        Known C- or Fortran-ordered arrays, and every operand in numpy code, are left as they are."""
        if not self.numba:
            return expr
        base = expr[:-2] if expr.endswith(".T") else expr
        if base in self.contig or base in self.fortran or base.startswith(f"{self.np}."):
            return expr
        if base.startswith(f"{self.np}.ascontiguousarray("):
            return expr
        wrapped = f"{self.np}.ascontiguousarray({base})"
        return wrapped + ".T" if expr.endswith(".T") else wrapped

    def fresh(self, hint: str | None) -> str:
        """A new variable name (for the helper variables of statement emitters)."""
        return self.names.fresh(hint)

    @staticmethod
    def dtype(dt: np.dtype) -> str:
        return f"np.{np.dtype(dt).name}"

    lit = staticmethod(numpy_literal)

    def reshape_from(
        self, expr: str, in_shape: tuple, out_shape: tuple, dtype: np.dtype, contiguous: bool = True
    ) -> str:
        if tuple(in_shape) == tuple(out_shape):
            return expr
        if in_shape == ():
            return f"np.full({tuple(out_shape)!r}, {expr}, {self.dtype(dtype)})"
        if not isinstance(parse_source(expr, mode="eval").body, (ast.Call, ast.Name, ast.Attribute, ast.Subscript)):
            expr = f"({expr})"
        if out_shape == ():
            return f"{expr}[{', '.join('0' * len(in_shape))}]"
        if not contiguous and expr not in self.contig and not expr.startswith("np."):
            expr = f"np.ascontiguousarray({expr})"
        return f"{expr}.reshape({tuple(out_shape)!r})"


class _Names:
    def __init__(self) -> None:
        self.used = {"np", "math", SPECIAL_NS}
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


def _print_elementwise(op, args, dt, C: _Ctx, shape: tuple = (), ns: str | None = None) -> tuple[str, int]:
    if ns is None and op.special and C.numba_statements:
        ns = LOOP_NS  # Numba cannot compile scipy.special: the loop namespace's kernel
    return print_elementwise(op, args, lambda v: C.lit(v, dt), ns or C.np, shape)


# The name of the namespace of functions inside fused loops (see :func:`loop_namespace`).
LOOP_NS = "vm"


def location_comment(e: Eqn) -> str:
    """The comment before the statements of equation ``e`` (which has a ``loc``): the user's
    file:line and source line, ``# adjoint of file:line: ...`` for an adjoint sweep's."""
    assert e.loc is not None
    src = e.loc.source_line()
    what = "adjoint of " if e.adjoint else ""
    return f"# {what}{os.path.basename(e.loc.file)}:{e.loc.line}" + (f": {src}" if src else "")


@functools.cache
def loop_namespace() -> ModuleType:
    """The namespace ``vm`` of the fused loops' functions, built from the op table: for the
    function each elementwise op computes (its ``function``), :mod:`s2s_ad.cpumath`'s
    vectorised kernel of that name where one exists, else numpy's function (numpy's scalar
    functions are calls of the C library, one element at a time); and cpumath's ``sum_add``."""
    from . import cpumath  # imports Numba, which only the Numba backend needs

    ns = ModuleType(f"s2s_ad.{LOOP_NS}", "The functions of the fused loops (s2s_ad.codegen.loop_namespace).")
    for op in ELEMENTWISE:
        if op.function is not None:
            setattr(ns, op.function, cpumath.KERNELS.get(op.function) or op.host_function())
    ns.sum_add = cpumath.sum_add
    return ns


def uses_special(src: str) -> bool:
    """Whether generated numpy source calls scipy.special's functions (``sc.erf(x)``): its module
    imports scipy.special as ``sc``."""
    return re.search(rf"\b{SPECIAL_NS}\.\w+\(", src) is not None


def module_header(fused: bool, what: str, imports: tuple[str, ...] = ()) -> str:
    """The lines that make generated source a module of its own: a docstring saying what it is
    (``what``), and the imports its function needs: numpy as ``np`` and, with ``fused`` (the
    source for Numba), the loop namespace ``vm`` (:func:`loop_namespace`); ``imports``: more
    import lines. The disk cache writes its entries with it, ``s2s-ad show --standalone``
    prints it (:func:`s2s_ad.backend.standalone_source`)."""
    third_party = sorted(("import numpy as np", *imports))
    text = f'"""A program generated by s2s_ad ({what})."""\n\n' + "".join(line + "\n" for line in third_party) + "\n"
    if fused:
        text += (
            "from s2s_ad.codegen import loop_namespace\n\n"
            f"{LOOP_NS} = loop_namespace()  # the functions of fused loops, from the op table\n\n"
        )
    return text + "\n"


def function_names(ns: str) -> list[str]:
    """The ``ns.NAME`` functions that the op table's elementwise printers call, with ``ns`` as
    their namespace (every one must be defined in the module printed as ``ns``)."""
    found: set[str] = set()
    for op in ELEMENTWISE:
        args = [(f"a{i}", ATOM) for i in range(op.nin)]
        shapes = [(), (2,)] if op.printer[0] == "shaped_template" else [()]  # the text may depend on it
        for shape in shapes:
            text = print_elementwise(op, args, repr, ns, shape)[0]
            found.update(re.findall(rf"\b{ns}\.(\w+)\(", text))
    return sorted(found)


def generate(
    prog: Program, fname: str, doc: str | None = None, fuse: bool = False, kernels: dict[str, str] | None = None
) -> str:
    """Python source of a function ``fname`` computing ``prog`` (returns a flat tuple).

    With ``fuse`` (the source for Numba), elementwise code is scheduled into fused loops (:mod:`s2s_ad.fusion`) and
    printed as explicit ``for`` loops over scalars, the form Numba compiles best: one pass
    over the data per loop, no temporary arrays for values used only inside it.

    With ``kernels`` (a dict, filled here), each fused loop becomes a function of its own,
    named by its content (:func:`loop_kernel`), and ``fname`` calls it: only those kernels
    need Numba, ``fname`` itself runs as Python (its matrix products and reductions are
    numpy's), and identical loops of different programs are one kernel."""
    names = _Names()
    C = _Ctx(names, numba=fuse, split=kernels is not None)
    expr: dict[Var, tuple[str, int]] = {}

    name_of = prog.name_of  # the names table over the variables' hints

    def arg_name(v: Var, fallback: str) -> str:
        n = names.fresh(name_of(v) or fallback)
        expr[v] = (n, ATOM)
        C.contig.add(n)
        return n

    params = []
    leaf_names = _leaf_names(prog)
    for v, hint in zip(prog.arg_vars, leaf_names):
        params.append(arg_name(v, hint))
    for v, p in zip(prog.param_vars, prog.parameters):
        params.append(arg_name(v, getattr(p, "name", None) or "param"))
    for k, v in enumerate(prog.const_vars):
        params.append(arg_name(v, f"const{k}"))

    lines = _Body(C, expr, fuse, name_of, kernels).emit(prog)

    def atom(a: Atom) -> tuple[str, int]:
        if isinstance(a, Lit):
            return C.lit(a.value, a.dtype), ATOM
        return expr[a]

    rets = [atom(a)[0] for a in prog.outs]
    module: list[str] = []
    if kernels is not None:  # the main function of a split program: its temporaries in a workspace
        module, prologue, lines = buffers.plan(lines, rets, C.avals, names.fresh)
        lines = prologue + lines
    lines.append(f"return ({', '.join(rets)}{',' if len(rets) == 1 else ''})")
    sig_doc = ", ".join(f"{n}: {v.aval}" for n, v in zip(params, prog.invars))
    head = [*module, *([""] * 2 * bool(module)), f"def {fname}({', '.join(params)}):"]
    body = [f'"""{doc}' + (f"\n\n{sig_doc}" if sig_doc else "") + '\n"""'] if doc else []
    src = "\n".join(head + ["    " + ln if ln else ln for ln in "\n".join(body + lines).split("\n")])
    return src + "\n"


class _Body:
    """Prints the equations of a program (or of a region's sub-program) as statements. ``expr``
    maps every variable printed so far to its source text and precedence; a region's
    sub-programs are printed inline, their inputs bound to the region's values."""

    def __init__(
        self,
        C: _Ctx,
        expr: dict,
        fuse: bool,
        name_of: Callable[[Var], str | None],
        kernels: dict[str, str] | None = None,
    ) -> None:
        self.C, self.expr, self.fuse, self.name_of = C, expr, fuse, name_of
        self.kernels = kernels  # fused loops become kernel functions (see generate)
        self.last_loc: tuple | None = None

    def atom(self, a: Atom) -> tuple[str, int]:
        if isinstance(a, Lit):
            s = self.C.lit(a.value, a.dtype)
            return s, (UNARY if s.startswith("-") else ATOM)
        return self.expr[a]

    def emit(self, prog: Program) -> list[str]:
        """The statements computing ``prog``'s equations (its inputs already in ``expr``)."""
        C, expr, name_of, atom = self.C, self.expr, self.name_of, self.atom
        names = C.names
        steps = schedule(prog, self.kernels is not None) if self.fuse else list(prog.eqns)
        uses: dict[Var, int] = {}
        in_loops: set[Var] = set()  # values read inside fused loops are never inlined into them
        for st in steps:
            for e in st.eqns + st.reductions if isinstance(st, Loop) else [st]:
                for a in e.ins:
                    if isinstance(a, Var):
                        uses[a] = uses.get(a, 0) + 1
                        if isinstance(st, Loop):
                            in_loops.add(a)
        out_vars = {a for a in prog.outs if isinstance(a, Var)}

        lines: list[str] = []
        pending: list[str] = []

        def emit(*stmts: str) -> None:
            lines.extend(pending)
            pending.clear()
            lines.extend(stmts)

        def locate(e: Eqn) -> None:
            if e.loc is not None and (e.loc, e.adjoint) != self.last_loc:
                pending[:] = [location_comment(e)]
                self.last_loc = (e.loc, e.adjoint)

        for st in steps:
            if isinstance(st, Loop):
                for e in st.eqns:
                    locate(e)
                loop_lines = _print_loop(st, C, expr, atom, uses, out_vars, name_of)
                if self.kernels is not None:
                    made = [expr[v][0] for v in (*st.stored, *(r.outs[0] for r in st.reductions)) if v in expr]
                    loop_lines = loop_kernel(loop_lines, made, self.kernels)
                emit(*loop_lines)
                continue
            e = st
            op = get_op(e.op)
            args = [atom(a) for a in e.ins]
            out = e.outs[0] if e.outs else None
            if e.op == "stop_gradient":
                expr[out] = args[0]
                continue
            locate(e)
            if op.kind == "region":
                emit(*self.region(e))
                self.last_loc = None  # the statements after a region say again where they come from
                continue
            if op.statement:
                target = names.fresh(name_of(out))
                emit(*op.emit(target, args, e, C))
                expr[out] = (target, ATOM)
                C.contig.add(target)
                continue
            if (
                e.op == "pow"
                and C.numba
                and out.shape == ()
                and e.ins[0].dtype.kind == "f"
                and (k := _small_int(e.ins[1])) is not None
            ):
                s, prec = _int_power(args[0], k, out.dtype, C)  # multiplied, as in a loop
            elif op.kind == "elementwise":
                s, prec = _print_elementwise(op, args, out.dtype, C, out.shape)
                # a printer that repeats an operand (numpy's scalar maximum: `a if a > b ...`)
                # would compute an inlined expression again each time: name it first
                repeated = [k for k, (t, _) in enumerate(args) if any(c in t for c in "+*/%([ ") and s.count(t) > 1]
                for k in repeated:
                    name = names.fresh(None)
                    emit(f"{name} = {args[k][0]}")
                    args[k] = (name, ATOM)
                if repeated:
                    s, prec = _print_elementwise(op, args, out.dtype, C, out.shape)
            else:
                s, prec = op.emit(args, e, C)
            inline = (
                op.kind == "elementwise"
                and name_of(out) is None
                and uses.get(out, 0) == 1
                and out not in out_vars
                and out not in in_loops
            )
            if inline:
                expr[out] = (s, prec)
                continue
            target = names.fresh(name_of(out))
            emit(f"{target} = {s}")
            expr[out] = (target, ATOM)
            C.avals[target] = (out.shape, out.dtype)
            if op.contiguous:
                C.contig.add(target)
            elif s.endswith(".T") and s[:-2] in C.contig:
                C.fortran.add(target)
            elif s.endswith(".T") and s[:-2] in C.fortran:
                C.contig.add(target)  # the transpose of a transpose of a C-contiguous array
        return lines

    # ------------------------------------------------------------------ regions
    def named(self, a: Atom, hint: str | None, pre: list[str]) -> str:
        """``a`` as a name (an expression is assigned to a new variable first, so that a
        region does not evaluate it again on each iteration)."""
        s, _ = self.atom(a)
        if s.isidentifier():
            return s
        name = self.C.fresh(hint or (self.name_of(a) if isinstance(a, Var) else None))
        pre.append(f"{name} = {s}")
        return name

    def bind(self, v: Var, text: str) -> None:
        self.expr[v] = (text, ATOM)

    def carried(
        self, inits: list[Atom], body_vars: list[Var], outs: list[Var], pre: list[str], floats: bool = False
    ) -> list[str]:
        """New variables for the carried values of a loop, set to their initial values (as
        Python floats with ``floats``)."""
        names = []
        for a, v, o in zip(inits, body_vars, outs):
            name = self.C.fresh(self.name_of(o) or self.name_of(v))
            value = self.atom(a)[0]
            pre.append(f"{name} = float({value})" if floats and not isinstance(a, Lit) else f"{name} = {value}")
            self.bind(v, name)
            names.append(name)
        return names

    def sub(self, prog: Program) -> tuple[list[str], list[str]]:
        """The statements of a sub-program (its inputs bound) and its outputs' source text."""
        lines = _Body(self.C, self.expr, self.fuse, prog.name_of, self.kernels).emit(prog)
        return lines, [self.atom(o)[0] for o in prog.outs]

    def region(self, e: Eqn) -> list[str]:
        return {"cond": self.cond, "loop": self.loop, "while": self.while_}[e.op](e)

    @staticmethod
    def indent(lines: list[str]) -> list[str]:
        return ["    " + ln if ln else ln for ln in lines] or ["    pass"]

    def assign(self, targets: list[str], values: list[str]) -> list[str]:
        pairs = [(t, v) for t, v in zip(targets, values) if t != v]
        if not pairs:
            return []
        lhs, rhs = ", ".join(t for t, _ in pairs), ", ".join(v for _, v in pairs)
        return [f"{lhs} = {rhs}"]

    def results(self, outs: list[Var]) -> list[str]:
        names = []
        for o in outs:
            n = self.C.fresh(self.name_of(o))
            self.bind(o, n)
            names.append(n)
        return names

    def cond(self, e: Eqn) -> list[str]:
        pre: list[str] = []
        pred = self.atom(e.ins[0])[0]
        operands = [self.named(a, None, pre) for a in e.ins[1:]]
        targets = [self.C.fresh(self.name_of(o)) for o in e.outs]
        blocks = []
        for br in reversed(e.params["branches"]):  # the true branch first
            for v, text in zip(br.invars, operands):
                self.bind(v, text)
            lines, outs = self.sub(br)
            blocks.append(lines + self.assign(targets, outs))
        for o, t in zip(e.outs, targets):
            self.bind(o, t)
        if not any(blocks[1]):
            return pre + [f"if {pred}:"] + self.indent(blocks[0])
        return pre + [f"if {pred}:"] + self.indent(blocks[0]) + ["else:"] + self.indent(blocks[1])

    def loop(self, e: Eqn) -> list[str]:
        p = e.params
        body: Program = p["body"]
        lead, nc, nx, ncarry = loop_layout(p)
        pre: list[str] = []
        length = str(p["length"]) if not lead else self.named(e.ins[0], "n", pre)
        consts = e.ins[lead : lead + nc]
        xs = [self.named(a, None, pre) for a in e.ins[lead + nc : lead + nc + nx]]
        inits = e.ins[lead + nc + nx :]
        bvars = body.invars
        floats = not self.C.numba and python_float_body(body)
        for v, a in zip(bvars[1 : 1 + nc], consts):
            name = self.named(a, self.name_of(v), pre)
            if floats:
                name, value = self.C.fresh(self.name_of(v) or name), name
                pre.append(f"{name} = float({value})")
            self.bind(v, name)
        carry = self.carried(inits, bvars[1 + nc + nx :], e.outs[:ncarry], pre, floats)
        ys = []
        for y, o in zip(body.outs[ncarry:], e.outs[ncarry:]):
            name = self.C.fresh(self.name_of(o) or "ys")
            shape = ", ".join([length, *map(str, y.shape)])
            pre.append(f"{name} = np.empty(({shape}{',' if not y.shape else ''}), {self.C.dtype(y.dtype)})")
            ys.append(name)
        start, step = p["start"], p["step"]
        ivar = bvars[0]
        plain = start == 0 and step == 1
        k = self.C.fresh(self.name_of(ivar) if plain else "k")
        rng = f"range({length} - 1, -1, -1)" if p["reverse"] else f"range({length})"
        head = [f"for {k} in {rng}:"]
        inner: list[str] = []
        if plain:
            self.bind(ivar, k)
        else:
            i = self.C.fresh(self.name_of(ivar) or "i")
            offset = f"{start} + " if start else ""
            inner.append(f"{i} = {offset}{k}" + (f" * {step}" if step != 1 else ""))
            self.bind(ivar, i)
        for v, x in zip(bvars[1 + nc : 1 + nc + nx], xs):
            name = self.C.fresh(f"{self.name_of(v) or 'x'}")
            inner.append(f"{name} = float({x}[{k}])" if floats else f"{name} = {x}[{k}]")
            self.bind(v, name)
        lines, outs = self.sub(body)
        inner += lines
        inner += [f"{y}[{k}] = {val}" for y, val in zip(ys, outs[ncarry:])]
        inner += self.assign(carry, outs[:ncarry])
        for o, name in zip(e.outs, carry + ys):
            self.bind(o, name)
        # the carries leave the loop as numpy scalars again (the code after it keeps numpy's semantics)
        post = [f"{', '.join(carry)} = {', '.join(f'np.float64({c})' for c in carry)}"] if floats and carry else []
        return pre + head + self.indent(inner) + post

    def while_(self, e: Eqn) -> list[str]:
        p = e.params
        cond: Program = p["cond"]
        body: Program = p["body"]
        nc, ncarry = while_layout(p)
        pre: list[str] = []
        consts = [self.named(a, None, pre) for a in e.ins[:nc]]
        for prog in (cond, body):
            for v, text in zip(prog.invars[:nc], consts):
                self.bind(v, text)
        carry = self.carried(e.ins[nc:], body.invars[nc:], e.outs[:ncarry], pre)
        for v, name in zip(cond.invars[nc:], carry):
            self.bind(v, name)
        trips = self.C.fresh(self.name_of(e.outs[ncarry]) or "trips")
        pre.append(f"{trips} = 0")
        ys = []
        for y, o in zip(body.outs[ncarry:], e.outs[ncarry + 1 :]):
            name = self.C.fresh(self.name_of(o) or "tape")
            shape = ", ".join(["16", *map(str, y.shape)])
            pre.append(f"{name} = np.empty(({shape}{',' if not y.shape else ''}), {self.C.dtype(y.dtype)})")
            ys.append(name)
        test_lines, (test,) = self.sub(cond)
        inner = test_lines + [f"if not {test}:", "    break"]
        lines, outs = self.sub(body)
        inner += lines
        for y, val in zip(ys, outs[ncarry:]):
            inner += [
                f"if {trips} == {y}.shape[0]:  # the tape is full: twice the room",
                f"    {y} = np.concatenate(({y}, np.empty_like({y})))",
                f"{y}[{trips}] = {val}",
            ]
        inner += self.assign(carry, outs[:ncarry])
        inner.append(f"{trips} += 1")
        post = [f"{y} = {y}[:{trips}]" for y in ys]
        for o, name in zip(e.outs, [*carry, trips, *ys]):
            self.bind(o, name)
        return pre + ["while True:"] + self.indent(inner) + post


#: the ops whose Python-float arithmetic is numpy float64 arithmetic, bit for bit (IEEE double
#: operations rounded to nearest; no exception on overflow, inf or nan)
_FLOAT_SAFE = frozenset({"add", "sub", "mul", "neg"})


def python_float_body(body: Program) -> bool:
    """Whether a loop body (numpy code) may compute on Python floats instead of numpy float64
    scalars (about three times faster an operation, the same results): every value it reads but
    the loop index, and every value it computes, is a float64 scalar, computed only by ``+``,
    ``-``, ``*`` and negation (where Python's float and numpy's float64 agree bit for bit and
    neither raises); the index is not read (``float(i)`` is numpy's ``np.float64(i)``, but keep
    it simple)."""
    f64 = np.dtype(np.float64)
    ivar, *vals = body.invars
    if not body.eqns or any(v.shape != () or v.dtype != f64 for v in vals):
        return False
    for q in body.eqns:
        if q.op not in _FLOAT_SAFE:
            return False
        for a in [*q.ins, *q.outs]:
            if a is ivar or a.shape != () or a.dtype != f64:
                return False
            if isinstance(a, Lit) and type(a.value) not in (float, int, np.float64):
                return False
    return all(o is not ivar and o.shape == () and o.dtype == f64 for o in body.outs)


_KERNEL_GLOBALS = frozenset({"np", "math", LOOP_NS, "range", "min", "max", "abs", "len", "float", "int", "bool"})


def loop_kernel(lines: list[str], made: list[str], kernels: dict[str, str]) -> list[str]:
    """The statements ``lines`` of one fused loop as a call of a kernel function, whose source
    goes into ``kernels`` under its name: its arguments are the names the loop reads from
    outside, its results those of ``made`` (the loop's stored arrays and reductions) that it
    assigns. Variables are renamed canonically (``a0..`` arguments, ``v0..`` the rest), and the
    kernel is named by a hash of its text, so the same loop in any program is the same kernel."""
    tree = parse_source("\n".join(lines))
    # The arrays the loop fills are allocated by the caller and passed in: a kernel that
    # allocates and returns arrays takes Numba longer to compile, and its call boxes them.
    stores = Counter(n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    # (and so are the flat views of arrays the kernel does not assign, which it runs over)
    hoisted: list[ast.stmt] = []
    passed: set[str] = set()
    for st in tree.body:
        base = _flat_view(st)
        hoist = _allocation(st) or (base is not None and (stores[base] == 0 or base in passed))
        if hoist and stores[st.targets[0].id] == 1:  # (both name a single variable)
            hoisted.append(st)
            passed.add(st.targets[0].id)
    # What the loop's results become after it, computed from the passed arrays alone (a
    # finished reduction: ``total = acc``, ``acc.astype(np.float32)``), is numpy's after the call
    last = max((k for k, st in enumerate(tree.body) if isinstance(st, (ast.For, ast.If))), default=len(tree.body))
    aliases = []
    for st in tree.body[last + 1 :]:
        reads = {n.id for n in ast.walk(st.value) if isinstance(n, ast.Name)} if isinstance(st, ast.Assign) else set()
        if (
            len(getattr(st, "targets", ())) == 1
            and isinstance(st.targets[0], ast.Name)
            and stores[st.targets[0].id] == 1
            and reads & passed
            and reads <= passed | {"np"}
        ):
            aliases.append(st)
            passed.add(st.targets[0].id)
    tree.body = [st for st in tree.body if st not in hoisted and st not in aliases]
    outside = [ast.unparse(st) for st in hoisted]
    after = [ast.unparse(st) for st in aliases]
    names = sorted(
        (n for n in ast.walk(tree) if isinstance(n, ast.Name)), key=lambda n: (n.lineno, n.col_offset, n.end_col_offset)
    )
    stored = {n.id for n in names if isinstance(n.ctx, ast.Store)}
    params: list[str] = []
    for n in names:
        if n.id not in stored and n.id not in _KERNEL_GLOBALS and n.id not in params:
            params.append(n.id)
    rets = [m for m in made if m in stored]
    canon = {p: f"a{k}" for k, p in enumerate(params)}
    for n in names:
        if n.id in stored and n.id not in canon:
            canon[n.id] = f"v{len(canon) - len(params)}"
    for n in names:
        n.id = canon.get(n.id, n.id)
    body = ast.unparse(tree)
    head = f"({', '.join(canon[p] for p in params)}):\n"
    tail = f"    return ({', '.join(canon[r] for r in rets)},)\n" if rets else ""
    text = head + "".join(f"    {ln}\n" for ln in body.split("\n")) + tail
    kname = "loop_" + hashlib.sha256(text.encode()).hexdigest()[:16]
    kernels[kname] = f"def {kname}{text}"
    call = f"{kname}({', '.join(params)})"
    return [*outside, f"{', '.join(rets)}, = {call}" if rets else call, *after]


def _flat_view(st: ast.stmt) -> str | None:
    """The array ``st`` takes the flat view of (``v = x.ravel()``), else ``None``."""
    if not (isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name)):
        return None
    call = st.value
    if (
        isinstance(call, ast.Call)
        and not call.args
        and not call.keywords
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "ravel"
        and isinstance(call.func.value, ast.Name)
    ):
        return call.func.value.id
    return None


def _allocation(st: ast.stmt) -> bool:
    """Whether ``st`` allocates an array with constant arguments (``v = np.empty((48, 48),
    np.float64)``, an accumulator's ``np.zeros``)."""
    if not (isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name)):
        return False
    call = st.value
    return (
        isinstance(call, ast.Call)
        and ast.unparse(call.func) in ("np.empty", "np.zeros")
        and not call.keywords
        and all(n.id == "np" for n in ast.walk(call) if isinstance(n, ast.Name))
    )


# printers of the functions that cpumath computes only on a range (nan beyond it; see its
# docstring): their values in a loop are checked, and the loop rerun with numpy's functions
_LIMITED = {("call", "sin"), ("call", "cos")}


def _small_int(a: Atom) -> int | None:
    """The value of a literal exponent that is a whole number from -16 to 16 (not 0)."""
    if isinstance(a, Lit) and np.ndim(a.value) == 0:
        v = float(a.value)
        if v.is_integer() and 0 < abs(v) <= 16:
            return int(v)
    return None


def _int_power(base: tuple[str, int], k: int, dt: np.dtype, C: _Ctx) -> tuple[str, int]:
    """``base ** k`` inside a loop, with an integer exponent: Numba multiplies (a float
    exponent is a call of the C library's ``pow``, which also keeps LLVM from vectorising the
    loop); a negative one as ``1 / base ** -k``, since only positive ones are multiplied."""
    power = f"{_wrap(base, POW + 1)} ** {abs(k)}"
    if k > 0:
        return power, POW
    return f"{C.lit(1, dt)} / {power}", MUL


def _print_loop(
    loop: Loop,
    C: _Ctx,
    expr: dict,
    atom,
    uses: dict[Var, int],
    out_vars: set[Var],
    name_of: Callable[[Var], str | None],
) -> list[str]:
    """A fused loop as statements: stored arrays and accumulators allocated, one loop nest
    over ``loop.shape`` computing every member on scalars, then the reductions finished
    (``name_of`` gives the variables' names)."""
    shape = loop.shape
    stored = set(loop.stored)
    pre: list[str] = []
    body: list[str] = []
    post: list[str] = []
    local: dict[Var, tuple[str, int]] = {}  # member values inside the loop
    # A kernel's loop over every element of C-contiguous arrays (no broadcast operand, no
    # partial reduction) runs over their flat views, which its caller passes: one index and one
    # loop (less code for Numba to compile, and a long loop for LLVM to vectorise rather than
    # a short inner one)
    flat = C.split and len(shape) > 1 and _flattens(loop, atom, C.contig)
    idx = [C.fresh("i")] if flat else [C.fresh(f"i{k}") for k in range(len(shape))]
    views: dict[str, str] = {}

    def element(arr: str, index: str) -> str:
        if not flat:
            return f"{arr}[{index}]"
        if arr not in views:
            views[arr] = C.fresh(f"{arr}_flat")
            pre.append(f"{views[arr]} = {arr}.ravel()")
        return f"{views[arr]}[{idx[0]}]"

    loads: list[str] = []

    def read(a: Atom) -> tuple[str, int]:
        if isinstance(a, Var) and a in local:
            return local[a]
        if isinstance(a, Lit) or a.shape == ():
            return atom(a)
        # Each input element is loaded once, into a local: the loop's stores could alias the
        # inputs as far as LLVM knows, so repeated ``x[i]`` reads would be reloaded.
        arr = atom(a)[0]
        name = C.fresh(f"{arr}_i")
        loads.append(f"{name} = {element(arr, '' if flat else _index(a.shape, shape, idx))}")
        local[a] = (name, ATOM)
        return local[a]

    member_uses = loop.reads()
    limited: list[str] = []  # values of vm.sin/vm.cos: nan where the argument was out of their range
    init: list[str] = []  # the reductions' accumulators, set to zero before the loop

    for e in loop.eqns:
        out = e.outs[0]
        op = get_op(e.op)
        if e.op in ("stop_gradient", "broadcast_to"):
            local[out] = read(e.ins[0])
            s, prec = local[out]
        elif e.op == "fill":
            s, prec = C.lit(e.params["value"], out.dtype), ATOM
        elif e.op == "cast":
            s, prec = f"{C.dtype(out.dtype)}({read(e.ins[0])[0]})", ATOM
        elif e.op == "pow" and (k := _small_int(e.ins[1])) is not None:
            s, prec = _int_power(read(e.ins[0]), k, out.dtype, C)
        elif op.kind == "elementwise":
            s, prec = _print_elementwise(op, [read(a) for a in e.ins], out.dtype, C, (), LOOP_NS)
        else:  # comparisons
            s, prec = op.emit([read(a) for a in e.ins], e, C)
        checked = op.printer is not None and op.printer[:2] in _LIMITED and out.dtype.kind == "f"
        hint = name_of(out)
        if out in stored:
            arr = C.fresh(hint)
            pre.append(f"{arr} = np.empty({tuple(shape)!r}, {C.dtype(out.dtype)})")
            C.contig.add(arr)
            expr[out] = (arr, ATOM)
            if member_uses[out] == 0 and not checked:
                body.append(f"{element(arr, ', '.join(idx))} = {s}")
                continue
            name = C.fresh(f"{hint}_i" if hint else None)
            body += [f"{name} = {s}", f"{element(arr, ', '.join(idx))} = {name}"]
        elif not checked and (e.op in ("stop_gradient", "broadcast_to") or (hint is None and member_uses[out] <= 1)):
            local[out] = (s, prec)
            continue
        else:
            name = C.fresh(hint)
            body.append(f"{name} = {s}")
        local[out] = (name, ATOM)
        if checked:  # named, so that the loop can test it for nan
            limited.append(name)

    for e in loop.reductions:
        out = e.outs[0]
        axes = e.params["axes"]
        n = int(np.prod([shape[a] for a in axes], dtype=np.int64))
        value = read(e.ins[0])[0]
        acc_dt = np.dtype(np.float64) if out.dtype.kind == "f" else np.dtype(np.int64)
        hint = name_of(out)
        acc = C.fresh(f"{hint}_acc" if hint else "acc")
        target = C.fresh(hint)
        kept = [k for k in range(len(shape)) if k not in axes]
        total = acc if e.op == "reduce_sum" else f"{acc} / {C.lit(n, acc_dt)}"
        if not kept:
            init.append(f"{acc} = {C.lit(0, acc_dt)}")
            # a float sum as an addition LLVM may reassociate, so that the loop vectorises
            body.append(f"{acc} = {LOOP_NS}.sum_add({acc}, {value})" if acc_dt.kind == "f" else f"{acc} += {value}")
            result = total if out.dtype == acc_dt else f"{C.dtype(out.dtype)}({total})"
            if out.shape != ():
                result = f"np.full({tuple(out.shape)!r}, {result}, {C.dtype(out.dtype)})"
        else:
            init.append(f"{acc} = np.zeros({tuple(shape[k] for k in kept)!r}, {C.dtype(acc_dt)})")
            body.append(f"{acc}[{', '.join(idx[k] for k in kept)}] += {value}")
            result = total if out.dtype == acc_dt else f"({total}).astype({C.dtype(out.dtype)})"
            if out.shape != tuple(shape[k] for k in kept):
                result = f"({result}).reshape({tuple(out.shape)!r})"
        post.append(f"{target} = {result}")
        expr[out] = (target, ATOM)
        if out.shape != ():
            C.contig.add(target)

    nest = []
    for depth, (i, d) in enumerate(zip(idx, [int(np.prod(shape, dtype=np.int64))] if flat else shape)):
        nest.append("    " * depth + f"for {i} in range({d}):")
    pad = "    " * len(idx)
    fast = nest + [pad + ln for ln in loads + body]
    if not limited:
        return pre + init + fast + post
    # vm.sin and vm.cos are nan where |argument| is beyond their range (or inf, or nan): if any
    # value is, the loop runs again with numpy's functions (rarely; the fast loop vectorises)
    bad = C.fresh("out_of_range")
    checks = [f"{bad} |= {v} != {v}" for v in limited]
    slow = fast
    for _, fn in _LIMITED:
        slow = [ln.replace(f"{LOOP_NS}.{fn}(", f"np.{fn}(") for ln in slow]
    again = [f"if {bad}:  # sin/cos of an argument beyond 2**20 pi/2, inf or nan: numpy's functions"]
    again += ["    " + ln for ln in init + slow]
    return pre + init + [f"{bad} = False"] + fast + [pad + ln for ln in checks] + again + post


def _flattens(loop: Loop, atom: Callable[[Atom], tuple[str, int]], contig: set[str]) -> bool:
    """Whether ``loop`` reads and writes every array it touches element for element, over
    the loop's whole shape, with every array it reads C-contiguous (so that its flat view is
    a view): then it can run over the arrays' flat views with one index."""
    if any(set(e.params["axes"]) != set(range(len(loop.shape))) for e in loop.reductions):
        return False
    made = {e.outs[0] for e in loop.eqns}
    for e in loop.eqns + loop.reductions:
        for a in e.ins:
            if isinstance(a, Var) and a not in made and a.shape != ():
                if a.shape != loop.shape or atom(a)[0] not in contig:
                    return False
    return True


def _index(in_shape: tuple, loop_shape: tuple, idx: list[str]) -> str:
    """The index of an input of ``in_shape`` broadcast against a loop over ``loop_shape``."""
    lead = len(loop_shape) - len(in_shape)
    return ", ".join("0" if d == 1 else idx[lead + k] for k, d in enumerate(in_shape))


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
