"""The typed intermediate representation: variables with static shapes and dtypes, equations
``outs = op(ins, params)`` in SSA order, and programs.

A :class:`Builder` appends equations, running each op's shape/dtype rule from the op table so
that a mismatch is reported where it is written (with the user's source position).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from .dtype import short_name as short_dtype
from .errors import Loc, S2SError

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Aval:
    """Abstract value: static shape and numpy dtype."""

    shape: Shape
    dtype: np.dtype

    def __str__(self) -> str:
        return f"{short_dtype(self.dtype)}[{','.join(map(str, self.shape))}]"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


class Var:
    """An SSA variable. ``hint`` is its name, when it has one: the user's (given by the tracer
    where the user's code names the value) or the name of the variable a pass copied it from.
    A pass never changes the hint of an existing variable (variables are shared between a
    program and the programs derived from it): names it gives go into the program's
    ``names`` table (:attr:`Program.names`, :func:`name_of`)."""

    __slots__ = ("aval", "hint")

    def __init__(self, aval: Aval, hint: str | None = None):
        self.aval = aval
        self.hint = hint

    @property
    def shape(self) -> Shape:
        return self.aval.shape

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype

    def __repr__(self) -> str:
        return f"Var({self.hint or '_'}:{self.aval})"


class Lit:
    """A scalar literal of a fixed dtype (Python numbers in user code become weakly typed
    literals that take the dtype of the tensor they meet)."""

    __slots__ = ("value", "aval")

    def __init__(self, value: float | int | bool, dtype: np.dtype):
        dtype = np.dtype(dtype)
        self.value = dtype.type(value).item()
        self.aval = Aval((), dtype)

    @property
    def shape(self) -> Shape:
        return ()

    @property
    def dtype(self) -> np.dtype:
        return self.aval.dtype

    def __repr__(self) -> str:
        return f"Lit({self.value}:{short_dtype(self.dtype)})"

    def key(self) -> tuple:
        return ("lit", self.value, self.dtype.str)


Atom = Var | Lit


@dataclass
class Eqn:
    """One equation ``outs = op(ins)``; ``params`` are the op's attributes (axes, a shape, a
    dtype...), not the Parameters a program reads (those are :attr:`Program.parameters`)."""

    op: str
    ins: list[Atom]
    outs: list[Var]
    params: dict[str, Any] = field(default_factory=dict)
    loc: Loc | None = None
    # An equation of the user's traced program (not one made by differentiation): the
    # optimiser keeps it as written, so the user's outputs keep numpy's IEEE results.
    primal: bool = False
    # An equation of a reverse-mode adjoint sweep: ``loc`` is then the user line whose
    # adjoint it computes (the generated code says "adjoint of file:line").
    adjoint: bool = False

    def params_key(self) -> tuple:
        return tuple(sorted((k, _hashable(v)) for k, v in self.params.items()))


def _hashable(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, np.dtype):
        return v.str
    if isinstance(v, slice):
        return ("slice", v.start, v.stop, v.step)
    if isinstance(v, Program):  # a region's sub-program: equal when it is the same program
        return ("program", id(v))
    return v


def subprograms(e: Eqn) -> list[Program]:
    """The sub-programs an equation holds in its parameters (the branches and bodies of a
    control-flow region, :mod:`s2s_ad.regions`), in parameter-name order."""
    found: list[Program] = []
    for k in sorted(e.params):
        v = e.params[k]
        if isinstance(v, Program):
            found.append(v)
        elif isinstance(v, tuple) and v and all(isinstance(x, Program) for x in v):
            found.extend(v)
    return found


# ----------------------------------------------------------------------------- pytrees
# A tree definition is None (a leaf), ("tuple" | "list", (child defs...)) or, for a dict,
# ("dict", (child defs...), (keys...)) with the keys sorted (as JAX does), so that two dicts
# with the same keys flatten alike whatever their insertion order.
TreeDef = Any


def dict_keys(d: dict) -> list[Any]:
    """The keys of a dict argument or output in tree order (sorted; by ``repr`` when the keys
    are of kinds that do not compare)."""
    try:
        return sorted(d)
    except TypeError:
        return sorted(d, key=repr)


def flatten(obj: Any, is_leaf=None) -> tuple[list[Any], TreeDef]:
    """Flatten nested tuples, lists and dicts into leaves and a tree definition."""
    if isinstance(obj, (tuple, list, dict)) and not (is_leaf and is_leaf(obj)):
        keys = dict_keys(obj) if isinstance(obj, dict) else None
        leaves: list[Any] = []
        defs = []
        for x in obj if keys is None else (obj[k] for k in keys):
            lv, d = flatten(x, is_leaf)
            leaves.extend(lv)
            defs.append(d)
        if keys is not None:
            return leaves, ("dict", tuple(defs), tuple(keys))
        return leaves, ("list" if isinstance(obj, list) else "tuple", tuple(defs))
    return [obj], None


def unflatten(treedef: TreeDef, leaves: Sequence[Any]) -> Any:
    it = iter(leaves)
    out = _unflatten(treedef, it)
    return out


def _unflatten(treedef: TreeDef, it) -> Any:
    if treedef is None:
        return next(it)
    kind, children = treedef[0], treedef[1]
    vals = [_unflatten(c, it) for c in children]
    if kind == "dict":
        return dict(zip(treedef[2], vals))
    return vals if kind == "list" else tuple(vals)


def treedef_leaves(treedef: TreeDef) -> int:
    """The number of leaves of a tree definition."""
    if treedef is None:
        return 1
    return sum(treedef_leaves(c) for c in treedef[1])


def tree_str(treedef: TreeDef) -> str:
    """A human description of a tree structure, for error messages."""
    if treedef is None:
        return "Tensor"
    kind, children = treedef[0], treedef[1]
    if kind == "dict":
        return "{" + ", ".join(f"{k!r}: {tree_str(c)}" for k, c in zip(treedef[2], children)) + "}"
    inner = ", ".join(tree_str(c) for c in children)
    return f"[{inner}]" if kind == "list" else f"({inner}{',' if len(children) == 1 else ''})"


# ----------------------------------------------------------------------------- programs
@dataclass
class Program:
    """A closed program. ``invars`` holds the flattened user arguments first (``n_args`` of
    them), then one variable per :class:`Parameter` in ``parameters`` (the Parameter objects the
    program reads; not to be confused with an equation's op attributes, :attr:`Eqn.params`), then
    one per captured constant tensor in ``consts``. ``outs`` is flattened by ``out_tree``."""

    name: str
    invars: list[Var]
    n_args: int
    in_tree: TreeDef
    parameters: list[Any]
    consts: list[Any]
    eqns: list[Eqn]
    outs: list[Atom]
    out_tree: TreeDef
    arg_names: list[str] = field(default_factory=list)
    # Names that passes gave to this program's variables (an adjoint ``x_bar``, the name of a
    # variable a pass replaced), over the variables' own hints: the side table codegen reads
    # (:meth:`name_of`). A pass makes a new table for its result; it never changes this one.
    names: dict[Var, str] = field(default_factory=dict)
    # Parameters the program assigns (``ops.assign``): their positions in ``parameters``. Their
    # new values are the last ``len(updates)`` entries of ``outs``, after the leaves of
    # ``out_tree``; the runtime writes them into the Parameter objects after each call.
    updates: list[int] = field(default_factory=list)

    @property
    def n_results(self) -> int:
        """The number of outputs that are results (the leaves of ``out_tree``), before the
        new values of assigned Parameters."""
        return len(self.outs) - len(self.updates)

    @property
    def arg_vars(self) -> list[Var]:
        return self.invars[: self.n_args]

    @property
    def param_vars(self) -> list[Var]:
        return self.invars[self.n_args : self.n_args + len(self.parameters)]

    @property
    def const_vars(self) -> list[Var]:
        return self.invars[self.n_args + len(self.parameters) :]

    def name_of(self, v: Var) -> str | None:
        """The name codegen gives ``v``: the one in :attr:`names`, else its hint."""
        return name_of(self.names, v)

    def replace(self, **kw: Any) -> Program:
        d = dict(self.__dict__)
        d.update(kw)
        return Program(**d)

    def pretty(self) -> str:
        return pretty(self)


def name_of(names: dict[Var, str], v: Var) -> str | None:
    """``v``'s name in the side table ``names``, else its own hint."""
    return names.get(v) or v.hint


def pretty(prog: Program) -> str:
    """A deterministic jaxpr-like text form of a program, for golden tests and debugging."""
    names: dict[Var, str] = {}

    def nm(a: Atom) -> str:
        if isinstance(a, Lit):
            return f"{a.value!r}:{short_dtype(a.dtype)}"
        if a not in names:
            names[a] = _letters(len(names))
        return names[a]

    def decl(v: Var) -> str:
        return f"{nm(v)}:{v.aval}"

    def block(p: Program, indent: str) -> list[str]:
        args = " ".join(decl(v) for v in p.arg_vars)
        rest = " ".join(decl(v) for v in p.invars[p.n_args :])
        lines = [f"{{ lambda {args} ; {rest} ."]
        for e in p.eqns:
            subs = {k: v for k, v in e.params.items() if _is_subprogram_param(v)}
            ps = " ".join(f"{k}={_fmt_param(v)}" for k, v in sorted(e.params.items()) if k not in subs)
            ins = " ".join(nm(a) for a in e.ins)
            outs = " ".join(decl(v) for v in e.outs)
            lines.append(f"  {outs} = {e.op}{'[' + ps + ']' if ps else ''} {ins}".rstrip())
            for k in sorted(subs):
                for j, sub in enumerate(subs[k] if isinstance(subs[k], tuple) else (subs[k],)):
                    label = f"{k}[{j}]" if isinstance(subs[k], tuple) else k
                    inner = block(sub, indent + "    ")
                    lines.append(f"    {label}: {inner[0]}")
                    lines.extend("    " + ln for ln in inner[1:])
        res = ", ".join(nm(a) for a in p.outs[: p.n_results])
        ups = "".join(f" {nm(p.param_vars[i])}:={nm(a)}" for i, a in zip(p.updates, p.outs[p.n_results :]))
        lines.append(f"  in ({res}){' assign' + ups if ups else ''} }}")
        return lines

    return "\n".join(block(prog, ""))


def _is_subprogram_param(v: Any) -> bool:
    return isinstance(v, Program) or (isinstance(v, tuple) and bool(v) and all(isinstance(x, Program) for x in v))


def _fmt_param(v: Any) -> str:
    if isinstance(v, np.dtype):
        return short_dtype(v)
    return repr(_hashable(v)).replace(" ", "")


def _letters(i: int) -> str:
    s = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        s = chr(97 + r) + s
    return s


# ----------------------------------------------------------------------------- op registry
#: The primitives by name. The op table (:mod:`s2s_ad.primitives`, the layer above the IR)
#: registers every entry here; the IR reads only an entry's ``abstract(avals, params)`` rule
#: (the shapes and dtypes of its outputs), when binding and when checking a program.
OPS: dict[str, Any] = {}


def get_op(name: str) -> Any:
    """The op table's entry for ``name``."""
    return OPS[name]


# ----------------------------------------------------------------------------- builder
class Builder:
    """Appends equations; shape/dtype rules come from the op table (:data:`OPS`)."""

    def __init__(self, primal: bool = False) -> None:
        self.eqns: list[Eqn] = []
        self.loc: Loc | None = None
        self.primal = primal  # whether the equations it binds are the user's (see Eqn.primal)
        self.adjoint = False  # whether they belong to an adjoint sweep (see Eqn.adjoint)
        # names given to variables after they were made (see Program.names)
        self.names: dict[Var, str] = {}

    def name_of(self, v: Var) -> str | None:
        """``v``'s name: the one this builder gave it (:attr:`names`), else its hint."""
        return name_of(self.names, v)

    def bind(self, op: str, ins: Sequence[Atom], hint: str | None = None, **params: Any) -> list[Var]:
        opdef = OPS[op]
        try:
            avals = opdef.abstract([a.aval for a in ins], params)
        except S2SError as err:
            if err.loc is None:
                raise type(err)(err.bare_message, self.loc) from None
            raise
        outs = [Var(av, hint) for av in avals]
        self.eqns.append(Eqn(op, list(ins), outs, params, self.loc, self.primal, self.adjoint))
        return outs

    def bind1(self, op: str, *ins: Atom, hint: str | None = None, **params: Any) -> Var:
        return self.bind(op, ins, hint, **params)[0]


# ----------------------------------------------------------------------------- checker
class IRError(AssertionError):
    """A program breaks an invariant of the IR: a bug in the pass that made it."""


def check_program(prog: Program, where: str = "") -> None:
    """Check the invariants of ``prog``: the input layout and tree sizes; every equation's op
    is in the table, its inputs are defined before it (SSA: each variable defined once) and its
    outputs have the shapes and dtypes its rule gives; the outputs are defined. Raises
    :class:`IRError` naming the pass (``where``), the equation and the problem."""

    def fail(msg: str) -> None:
        raise IRError(f"{where + ': ' if where else ''}{prog.name}: {msg}")

    n_in = prog.n_args + len(prog.parameters) + len(prog.consts)
    if len(prog.invars) != n_in:
        fail(
            f"{len(prog.invars)} input variables for {prog.n_args} arguments, {len(prog.parameters)} parameters "
            f"and {len(prog.consts)} constants"
        )
    if prog.in_tree is not None and treedef_leaves(prog.in_tree) != prog.n_args:
        fail(f"the input tree has {treedef_leaves(prog.in_tree)} leaves for {prog.n_args} arguments")
    if treedef_leaves(prog.out_tree) != prog.n_results:
        fail(f"the output tree has {treedef_leaves(prog.out_tree)} leaves for {prog.n_results} outputs")
    for i, a in zip(prog.updates, prog.outs[prog.n_results :]):
        if not 0 <= i < len(prog.parameters):
            fail(f"assigns parameter {i} of {len(prog.parameters)}")
        elif a.aval != prog.param_vars[i].aval:
            fail(f"assigns {a.aval} to parameter {i} of {prog.param_vars[i].aval}")
    defined: set[Var] = set()

    def define(v: Any, what: str) -> None:
        if not isinstance(v, Var):
            fail(f"{what} is {v!r}, not a variable")
        if v in defined:
            fail(f"{what} {v!r} is defined twice")
        defined.add(v)

    def use(a: Any, what: str) -> None:
        if isinstance(a, Lit):
            return
        if not isinstance(a, Var):
            fail(f"{what} is {a!r}, not a variable or literal")
        if a not in defined:
            fail(f"{what} {a!r} is used before it is defined")

    for v in prog.invars:
        define(v, "input")
    for k, e in enumerate(prog.eqns):
        what = f"equation {k} ({e.op})"
        try:
            op = OPS[e.op]
        except KeyError:
            fail(f"{what}: no such op in the table")
        for a in e.ins:
            use(a, f"{what}: input")
        try:
            avals = op.abstract([a.aval for a in e.ins], e.params)
        except S2SError as err:
            fail(f"{what}: its shape rule rejects the inputs {[str(a.aval) for a in e.ins]}: {err}")
        if len(avals) != len(e.outs):
            fail(f"{what}: {len(e.outs)} outputs where the op gives {len(avals)}")
        for o, av in zip(e.outs, avals):
            if o.aval != av:
                fail(f"{what}: output {o!r} is {o.aval} where the op gives {av}")
            define(o, f"{what}: output")
        for sub in subprograms(e):
            check_program(sub, f"{where + ': ' if where else ''}{prog.name}: {what}")
    for a in prog.outs:
        use(a, "program output")


# ----------------------------------------------------------------------------- float16
HALF, SINGLE = np.dtype(np.float16), np.dtype(np.float32)


def _has_half(prog: Program) -> bool:
    return (
        any(v.dtype == HALF for v in prog.invars)
        or any(a.dtype == HALF for e in prog.eqns for a in [*e.ins, *e.outs])
        or any(isinstance(p, np.dtype) and p == HALF for e in prog.eqns for p in e.params.values())
        or any(_has_half(sub) for e in prog.eqns for sub in subprograms(e))
    )


def widen_half(prog: Program) -> Program:
    """``prog`` with every float16 value held as float32 (variables, literals and dtype
    parameters): compiled code computes float16 in float32 (Numba has no float16 arithmetic on
    the CPU, and numpy computes most float16 operations through float32 anyway). The caller
    converts float16 inputs to float32 and rounds results back to float16, so PYNATIVE and
    GRAPH mode give the same float16 results. ``prog`` itself is returned when it has none."""

    def has_half(a: Any) -> bool:
        return a.dtype == HALF

    if not _has_half(prog):
        return prog
    env: dict[Var, Var] = {}

    def var(v: Var) -> Var:
        if v not in env:
            env[v] = Var(Aval(v.shape, SINGLE), prog.name_of(v)) if has_half(v) else v
        return env[v]

    def atom(a: Atom) -> Atom:
        if isinstance(a, Lit):
            return Lit(a.value, SINGLE) if has_half(a) else a
        return var(a)

    def param(p: Any) -> Any:
        if isinstance(p, Program):
            return widen_half(p)
        if _is_subprogram_param(p):
            return tuple(widen_half(x) for x in p)
        return SINGLE if isinstance(p, np.dtype) and p == HALF else p

    eqns = [
        replace(
            e,
            ins=[atom(a) for a in e.ins],
            outs=[var(o) for o in e.outs],
            params={k: param(p) for k, p in e.params.items()},
        )
        for e in prog.eqns
    ]
    return prog.replace(invars=[var(v) for v in prog.invars], eqns=eqns, outs=[atom(o) for o in prog.outs])


# ----------------------------------------------------------------------------- copying programs
def substitute(env: dict[Var, Atom], a: Atom) -> Atom:
    """``a`` renamed by ``env`` (a literal stays itself)."""
    return a if isinstance(a, Lit) else env[a]


def copy_eqns(b: Builder, eqns: list[Eqn], env: dict[Var, Atom], names: Mapping[Var, str] | None = None) -> None:
    """Append renamed copies of ``eqns`` to ``b``; ``env`` maps old variables to new atoms and
    is extended with the copies' outputs. A copy is named like its original (its name in the
    source program's ``names`` table, else its hint) and keeps its flags and location."""
    names = names or {}
    for e in eqns:
        outs = [Var(o.aval, names.get(o) or o.hint) for o in e.outs]
        b.eqns.append(replace(e, ins=[substitute(env, a) for a in e.ins], outs=outs))
        env.update(zip(e.outs, outs))


def fresh_inputs(prog: Program) -> tuple[list[Var], dict[Var, Atom]]:
    """New variables for ``prog``'s inputs (named as in ``prog``), and the map from the old
    ones to them."""
    new_in = [Var(v.aval, prog.name_of(v)) for v in prog.invars]
    return new_in, dict(zip(prog.invars, new_in))


def arg_leaf_ranges(prog: Program) -> list[tuple[int, int, TreeDef]]:
    """For each argument position of ``prog``: (first leaf, end leaf, treedef)."""
    out = []
    start = 0
    for child in prog.in_tree[1]:
        n = treedef_leaves(child)
        out.append((start, start + n, child))
        start += n
    return out


def copy_program(b: Builder, prog: Program) -> tuple[list[Var], list[Atom]]:
    """Append a copy of ``prog``'s equations to ``b`` on fresh input variables; return those
    inputs (in ``prog.invars`` order) and the copy's outputs."""
    new_in, env = fresh_inputs(prog)
    copy_eqns(b, prog.eqns, env, prog.names)
    return new_in, [substitute(env, o) for o in prog.outs]
