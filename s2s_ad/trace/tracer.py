"""The staging API: what a primitive, a transform or the interpreter uses to build a program.

A :class:`Tracer` holds the program being built (its equations, parameters and constants) and
turns values into atoms: IR variables and literals stay as they are, registered leaves
(Tensors, Parameters, arrays) become inputs or constants of the program, Python numbers
become literals typed after the tensors they meet. Calls of other callables are staged by
the interpreter the tracer belongs to (:meth:`Tracer.call`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from .. import dtype as mstype
from ..errors import ArgumentError, Loc, S2SError, ShapeError, TensorIndexError, UnsupportedSyntaxError
from ..ir import Atom, Aval, Builder, Lit, Program, Var, copy_eqns
from ..primitives import as_py_index, broadcast_shapes, cast_to, fill, fmt_shape, get_op
from .protocol import describe, is_tensor_value, leaf_of


class CallStager(Protocol):
    """What stages calls for a tracer (the :class:`~s2s_ad.trace.interpreter.Interpreter`)."""

    def call(self, f: Any, args: list[Any], kwargs: dict[str, Any] | None = None) -> Any: ...

    def inline(self, func: Any, args: list[Any], kwargs: dict[str, Any], owner: Any = None) -> Any: ...


class Tracer:
    """Builds one program. Tensor values are atoms (``Var``/``Lit``); ``call`` stages a call
    through the interpreter this tracer belongs to."""

    def __init__(self, stager: CallStager | None = None) -> None:
        self._b = Builder(primal=True)
        self._stager = stager
        self.params: list[Any] = []
        self.param_vars: dict[int, Var] = {}  # id(parameter object) -> its input variable
        self.consts: list[Any] = []
        self.const_vars: dict[int, Var] = {}  # id(constant object) -> its variable
        self.promoted: dict[tuple[Atom, np.dtype], Atom] = {}
        self.float_params: frozenset[int] = frozenset()
        # Parameters assigned while tracing (``ops.assign``): id -> (the Parameter, its new value).
        # Later reads of the Parameter see the new value; the program returns it (Program.updates).
        self.assigned: dict[int, tuple[Any, Atom]] = {}
        # Values typed like Python numbers ("weakly typed"): the index of a loop kept as a loop, a
        # number carried through a loop or joined after an `if` on a tensor, and what is computed
        # from those and Python numbers alone. They are int64 or float64 on their own and take the
        # dtype of the tensors they meet, as the Python numbers they stand for would.
        self.weak: set[Atom] = set()
        # Python lists a `for` loop kept as a loop appended one tensor to per iteration: id ->
        # (the loop's stacked values, the list's items then, the list); stacking the list again
        # gives the stacked values as they are.
        self.stacked: dict[int, tuple[Atom, tuple, list]] = {}

    # ------------------------------------------------------------------ position and errors
    @property
    def loc(self) -> Loc | None:
        """The source position of what is being staged (recorded on every equation)."""
        return self._b.loc

    @loc.setter
    def loc(self, loc: Loc | None) -> None:
        self._b.loc = loc

    def error(self, msg: str, cls: type[S2SError] = S2SError) -> S2SError:
        """An error of class ``cls`` at the current source position (to be raised)."""
        return cls(msg, self.loc)

    # ------------------------------------------------------------------ building
    @property
    def builder(self) -> Builder:
        """The builder of the program, for IR helpers that take one (the op table's ``fill``, ...)."""
        return self._b

    @contextmanager
    def sub_builder(self) -> Iterator[Builder]:
        """Stage into a new builder (a branch or loop body being traced into a sub-program).
        Casts cached while it is in use (:attr:`promoted`) are forgotten afterwards: a value
        defined inside a sub-program never leaks out of it."""
        b = Builder(primal=True)
        b.loc = self._b.loc
        with self.use_builder(b):
            yield b

    @contextmanager
    def use_builder(self, b: Builder) -> Iterator[Builder]:
        """Stage into ``b`` (a sub-program's builder) for a while."""
        outer, promoted, loc = self._b, self.promoted, self._b.loc
        self._b, self.promoted = b, dict(promoted)
        try:
            yield b
        finally:
            self._b, self.promoted = outer, promoted
            outer.loc = loc

    def bind1(self, op: str, *ins: Atom, hint: str | None = None, **params: Any) -> Var:
        """Emit ``op`` on atoms as they are (no conversion or promotion); its one output."""
        return self._b.bind1(op, *ins, hint=hint, **params)

    def cast(self, a: Atom, dtype: np.dtype) -> Atom:
        """``a`` as ``dtype`` (``a`` itself when it already is)."""
        return cast_to(self._b, a, dtype)

    def fill(self, shape: tuple[int, ...], value: Any, dtype: np.dtype) -> Atom:
        """A tensor of ``shape`` filled with ``value``."""
        return fill(self._b, shape, value, dtype)

    def lit(self, value: Any, dtype: Any) -> Lit:
        """A literal of ``dtype``."""
        return Lit(value, np.dtype(dtype))

    # ------------------------------------------------------------------ values
    def atom(self, v: Any, like: np.dtype | None = None) -> Atom:
        """A tensor value as an atom. Python numbers become literals typed ``like`` (weak
        typing, as MindSpore and numpy treat Python scalars)."""
        if isinstance(v, (Var, Lit)):
            return v
        leaf = leaf_of(v)
        if leaf is not None and leaf.parameter:
            if id(v) in self.assigned:
                return self.assigned[id(v)][1]
            var = self.param_vars.get(id(v))
            if var is None:
                arr = leaf.array(v)
                var = Var(Aval(tuple(arr.shape), arr.dtype), leaf.name(v) if leaf.name else None)
                self.param_vars[id(v)] = var
                self.params.append(v)
            if id(v) in self.float_params:
                key = (var, np.dtype(np.float32))
                if key not in self.promoted:
                    self.promoted[key] = cast_to(self._b, var, np.dtype(np.float32))
                return self.promoted[key]
            return var
        if leaf is not None:
            var = self.const_vars.get(id(v))
            if var is None:
                arr = np.asarray(leaf.array(v))
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
        raise self.error(f"expected a tensor, got {describe(v)}", ArgumentError)

    def is_weak(self, v: Any) -> bool:
        """Whether ``v`` is a weakly typed value (:attr:`weak`)."""
        return isinstance(v, (Var, Lit)) and v in self.weak

    def mark_weak(self, a: Atom) -> Atom:
        """Record ``a`` (an int or float value standing for a Python number) as weakly typed."""
        if a.dtype.kind in "iuf":
            self.weak.add(a)
        return a

    def _adopt(self, a: Atom, like: np.dtype) -> Atom:
        """The weakly typed ``a`` as the tensors of dtype ``like`` it meets take it (as a Python
        number of its kind would be): their dtype, float32 for a float meeting integers."""
        if like.kind not in "iuf":
            return a
        target = np.dtype(np.float32) if a.dtype.kind == "f" and like.kind != "f" else like
        key = (a, target)
        if key not in self.promoted:
            self.promoted[key] = cast_to(self._b, a, target)
        return self.promoted[key]

    def stacked_list(self, xs: Any) -> Atom | None:
        """The stacked values of a list a loop built (:attr:`stacked`), while it holds what the
        loop appended and nothing else; else None."""
        got = self.stacked.get(id(xs))
        if got is None or got[2] is not xs or len(xs) != len(got[1]):
            return None
        return got[0] if all(a is b for a, b in zip(xs, got[1])) else None

    def atoms(self, vals: list[Any]) -> list[Atom]:
        """Convert values, typing Python scalars (and weakly typed values) after the tensors
        among them; among Python numbers and weakly typed values alone, int64 or float64."""
        strong = [self.atom(v).dtype for v in vals if is_tensor_value(v) and not self.is_weak(v)]
        if strong:
            like = np.result_type(*strong)
            return [self._adopt(v, like) if self.is_weak(v) else self.atom(v, like) for v in vals]
        weak = [v for v in vals if self.is_weak(v)]
        if not weak:
            return [self.atom(v) for v in vals]
        floats = any(w.dtype.kind == "f" for w in weak) or any(isinstance(v, float) for v in vals)
        like = np.dtype(np.float64 if floats else np.int64)
        return [self._adopt(v, like) if self.is_weak(v) else self.atom(v, like) for v in vals]

    def bind(self, op: str, ins: list[Any], hint: str | None = None, **params: Any) -> Var:
        """Emit ``op`` on values (converted by :meth:`atoms`); its one output."""
        return self._b.bind1(op, *self.atoms(ins), hint=hint, **params)

    def elementwise(self, op: str, args: list[Any]) -> Any:
        """The elementwise table op ``op`` of values, with MindSpore's type promotion."""
        opdef = get_op(op)
        if len(args) != opdef.nin:
            raise self.error(f"{opdef.display} takes {opdef.nin} tensor input(s), got {len(args)}", ArgumentError)
        if not any(is_tensor_value(a) for a in args):
            for a in args:
                if not isinstance(a, (int, float, bool)):
                    raise self.error(f"{opdef.display} expects tensors or numbers, got {describe(a)}", ArgumentError)
        out = self._b.bind1(op, *self.promote(self.atoms(args)))
        if any(self.is_weak(a) for a in args) and all(self.is_weak(a) or not is_tensor_value(a) for a in args):
            self.mark_weak(out)
        return out

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
                key = (a, target)
                if key not in self.promoted:
                    self.promoted[key] = cast_to(self._b, a, target)
                a = self.promoted[key]
            out.append(a)
        return out

    def assign(self, param: Any, value: Any, who: str = "Assign") -> Atom:
        """``param``'s value becomes ``value`` (cast to its dtype, broadcast to its shape): later
        reads see it, and the compiled call writes it into the Parameter. Returns the new value."""
        leaf = leaf_of(param)
        if leaf is None or not leaf.parameter:
            raise self.error(
                f"{who}: the variable to assign must be a Parameter (a Cell attribute holding one), got "
                f"{describe(param)}",
                ArgumentError,
            )
        self.atom(param)  # the Parameter is an input of the program, also when it is only written
        var = self.param_vars[id(param)]
        new = self.atom(value, var.dtype)
        if new.shape != var.shape:
            try:
                shape = np.broadcast_shapes(new.shape, var.shape)
            except ValueError:
                shape = None
            if shape != var.shape:
                raise self.error(
                    f"{who}: cannot assign a value of shape {new.shape} to Parameter {getattr(param, 'name', '?')} "
                    f"of shape {var.shape}",
                    ShapeError,
                )
            new = self._b.bind1("broadcast_to", self.cast(new, var.dtype), shape=var.shape)
        new = self.cast(new, var.dtype)
        self.assigned.pop(id(param), None)  # keep the order of the last assignments
        self.assigned[id(param)] = (param, new)
        return new

    def tensor_of(self, data: Atom, dtype: Any = None) -> Atom:
        """``Tensor(data, dtype)`` of a traced value ``data``."""
        a = self.atom(data)
        if dtype is None:
            return a
        try:
            dt = mstype.to_np(dtype)
        except TypeError:
            raise self.error(f"Cast: {dtype!r} is not a dtype", ArgumentError) from None
        return a if a.dtype == dt else self._b.bind1("cast", a, dtype=dt)

    def subscript(self, base: Any, idx: Any) -> Any:
        """``base[idx]``: a ``getitem`` of a tensor (a ``gather`` along each axis that an integer
        tensor indexes), or the element of a Python container."""
        if is_tensor_value(base):
            a = self.atom(base)
            static, dynamic = split_index(self, idx, len(a.shape))
            full = ("slice", None, None, None)
            r = a if dynamic and all(i == full for i in static) else self._b.bind1("getitem", a, index=static)
            if len(dynamic) > 1 and any(i.shape for _, i in dynamic):
                raise self.error(
                    "indexing with several integer tensors is supported only where they are 0-d (one element "
                    "each); index one axis at a time",
                    UnsupportedSyntaxError,
                )
            for ax, i in sorted(dynamic, key=lambda d: -d[0]):
                r = self._b.bind1("gather", r, i, axis=ax)
            return r
        if isinstance(idx, (Var, Lit)):
            raise self.error("indexing a Python container with a tensor is not supported", UnsupportedSyntaxError)
        try:
            return base[idx]
        except (IndexError, KeyError, TypeError) as err:
            raise self.error(f"cannot index {describe(base)} with {idx!r}: {err}") from None

    def setitem(self, base: Any, idx: Any, value: Any) -> Any:
        """``base[idx] = value`` as a functional update: a new tensor, ``base`` with the
        elements ``base[idx]`` names replaced by ``value`` (broadcast to them, cast to
        ``base``'s dtype); ``base`` itself is unchanged (MindSpore's graph mode)."""
        a = self.atom(base)
        sel = self.subscript(a, idx)
        v = self.atom(value, a.dtype)
        if v.shape != sel.shape:
            v = self._b.bind1("broadcast_to", v, shape=broadcast_shapes("setitem", [v.shape, sel.shape]))
            if v.shape != sel.shape:
                raise self.error(
                    f"cannot assign a value of shape {fmt_shape(self.atom(value).shape)} to "
                    f"elements of shape {fmt_shape(sel.shape)}",
                    ShapeError,
                )
        v = self.cast(v, a.dtype)
        static, dynamic = split_index(self, idx, len(a.shape))
        if not dynamic:
            # the positions are known while compiling: a constant mask
            mask = np.zeros(a.shape, np.bool_)
            mask[as_py_index(static)] = True
            new = self._b.bind1("scatter", v, index=static, shape=a.shape)
        else:
            # the flat positions of the elements, from the same indexing of arange(size)
            size = int(np.prod(a.shape, dtype=np.int64))
            pos = self.subscript(np.arange(size, dtype=np.int64).reshape(a.shape), idx)
            m = int(np.prod(pos.shape, dtype=np.int64))
            flat_pos = self._b.bind1("reshape", pos, shape=(m,)) if pos.shape != (m,) else pos
            flat_v = self._b.bind1("reshape", v, shape=(m,)) if v.shape != (m,) else v
            if any(t.shape != () for _, t in dynamic) and m > 1:
                # an index array may name a position twice: numpy's rule is that the last
                # assignment wins, so an element counts only where no later one has its position
                flat_v = self._last_assignment_wins(flat_pos, flat_v, m)
            new = self._b.bind1("scatter_add", flat_v, flat_pos, axis=0, shape=(size,))
            ones = self.fill((m,), 1, np.dtype(np.int32))
            hits = self._b.bind1("scatter_add", ones, flat_pos, axis=0, shape=(size,))
            mask = self._b.bind1("greater", hits, Lit(0, np.dtype(np.int32)))
            if a.shape != (size,):
                new = self._b.bind1("reshape", new, shape=a.shape)
                mask = self._b.bind1("reshape", mask, shape=a.shape)
        return self._b.bind1("select", self.atom(mask), new, a)

    def _last_assignment_wins(self, pos: Atom, v: Atom, m: int) -> Atom:
        """``v`` with zeros where a later element of the flat positions ``pos`` (m of them)
        names the same position (m x m comparisons: index arrays of assignments are short)."""
        b, i32 = self._b, np.dtype(np.int32)
        same = b.bind1("equal", b.bind1("reshape", pos, shape=(m, 1)), b.bind1("reshape", pos, shape=(1, m)))
        later = self.atom(np.triu(np.ones((m, m), np.int32), 1))  # k > j
        overwritten = b.bind1(
            "reduce_sum", b.bind1("mul", b.bind1("cast", same, dtype=i32), later), axes=(1,), keepdims=False
        )
        keep = b.bind1("equal", overwritten, Lit(0, i32))
        return b.bind1("select", keep, v, Lit(0, v.dtype))

    # ------------------------------------------------------------------ calls
    def call(self, f: Any, args: list[Any], kwargs: dict[str, Any] | None = None) -> Any:
        """Stage ``f(*args, **kwargs)`` (see :func:`s2s_ad.trace.protocol.find_stager`)."""
        if self._stager is None:
            raise self.error(f"cannot stage a call of `{getattr(f, '__name__', f)}` without an interpreter")
        return self._stager.call(f, args, kwargs)

    def inline(self, func: Any, args: list[Any], kwargs: dict[str, Any], owner: Any = None) -> Any:
        """Interpret the Python function ``func`` on ``args`` (``owner``: the object whose
        method it is, for messages)."""
        if self._stager is None:
            raise self.error(f"cannot inline `{getattr(func, '__name__', func)}` without an interpreter")
        return self._stager.inline(func, args, kwargs, owner)

    # ------------------------------------------------------------------ result
    def program(
        self,
        name: str,
        invars: list[Var],
        in_tree: Any,
        outs: list[Atom],
        out_tree: Any,
        arg_names: list[str],
    ) -> Program:
        """The program built: ``invars`` (the arguments) then the parameters and constants used;
        ``outs`` then the new values of the Parameters assigned (:attr:`Program.updates`)."""
        position = {id(p): i for i, p in enumerate(self.params)}
        updates = [(position[k], a) for k, (_, a) in self.assigned.items()]
        return Program(
            name=name,
            invars=invars
            + [self.param_vars[id(p)] for p in self.params]
            + [self.const_vars[id(c)] for c in self.consts],
            n_args=len(invars),
            in_tree=in_tree,
            parameters=list(self.params),
            consts=list(self.consts),
            eqns=self._b.eqns,
            outs=list(outs) + [a for _, a in updates],
            out_tree=out_tree,
            arg_names=list(arg_names),
            updates=[i for i, _ in updates],
        )


def normalize_index(tr: Tracer, idx: Any) -> tuple:
    """A tensor index (ints, slices, None, ``...``) as ``getitem``'s ``index`` parameter."""
    items = idx if isinstance(idx, tuple) else (idx,)
    out: list[Any] = []
    for i in items:
        if isinstance(i, slice):
            for x in (i.start, i.stop, i.step):
                if x is not None and not isinstance(x, (int, np.integer)):
                    raise tr.error(f"slice bounds must be constant integers, got {describe(x)}", UnsupportedSyntaxError)
            out.append(("slice", i.start, i.stop, i.step))
        elif isinstance(i, (bool, np.bool_)):
            raise tr.error("boolean indices are not supported", UnsupportedSyntaxError)
        elif isinstance(i, (int, np.integer)):
            out.append(int(i))
        elif i is None or i is Ellipsis:
            out.append(i)
        else:
            raise tr.error(
                f"tensor indices must be constant ints, slices, None or ..., got {describe(i)}", UnsupportedSyntaxError
            )
    return tuple(out)


def split_index(tr: Tracer, idx: Any, ndim: int) -> tuple[tuple, list[tuple[int, Atom]]]:
    """A tensor index as its static part (``getitem``'s ``index``, with a full slice where an
    integer tensor indexes an axis) and the integer tensors, each with the axis of the static
    part's result it indexes."""
    items = idx if isinstance(idx, tuple) else (idx,)
    static_items: list[Any] = []
    tensors: dict[int, Atom] = {}
    for k, i in enumerate(items):
        if isinstance(i, list) and i and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in i):
            i = np.asarray(i, dtype=np.int64)  # a list of ints: a constant integer index tensor
        if isinstance(i, Lit) and i.dtype.kind in "iu" and not isinstance(i.value, np.ndarray):
            i = int(i.value)
        if isinstance(i, (Var, Lit, np.ndarray)) or is_tensor_value(i):
            t = tr.atom(i)
            if t.dtype.kind not in "iu":
                kind = "boolean" if t.dtype.kind == "b" else f"{t.dtype}"
                raise tr.error(
                    f"tensor indices must be integer tensors, got a {kind} tensor of shape {fmt_shape(t.shape)}",
                    UnsupportedSyntaxError,
                )
            tensors[k] = t
            static_items.append(slice(None))
        else:
            static_items.append(i)
    static = normalize_index(tr, tuple(static_items))
    if not tensors:
        return static, []
    # the axis of the static result each tensor indexes: count the result axes before it
    used = sum(1 for i in static if i is not None and i is not Ellipsis)
    dynamic, out_axis = [], 0
    for k, i in enumerate(static):
        if k in tensors:
            dynamic.append((out_axis, tensors[k]))
            out_axis += 1
        elif i is Ellipsis:
            out_axis += ndim - used
        elif i is None or (isinstance(i, tuple) and i[0] == "slice"):
            out_axis += 1
    if used > ndim:
        raise tr.error(f"too many indices for a tensor of rank {ndim}", TensorIndexError)
    return static, dynamic


def inline_program(tr: Tracer, prog: Program, args: list[Atom]) -> list[Atom]:
    """Copy ``prog``'s equations into ``tr`` with its arguments bound to ``args``; its
    parameters and constants become ``tr``'s own (the same Parameter maps to the same
    variable, so nested derivatives see one weight)."""
    env: dict[Var, Atom] = {}
    for v, a in zip(prog.arg_vars, args):
        env[v] = tr.cast(a, v.dtype)
    for v, p in zip(prog.param_vars, prog.parameters):
        env[v] = tr.cast(tr.atom(p), v.dtype)  # an integer Parameter tr uses as float
    for v, c in zip(prog.const_vars, prog.consts):
        env[v] = tr.atom(c)
    copy_eqns(tr.builder, prog.eqns, env, prog.names)
    outs = [o if isinstance(o, Lit) else env[o] for o in prog.outs]
    for i, new in zip(prog.updates, outs[prog.n_results :]):
        tr.assign(prog.parameters[i], new)
    return outs[: prog.n_results]


def abstractify(x: Any) -> Any:
    """Tensor leaves → Aval; everything else is a static value."""
    if isinstance(x, (tuple, list)):
        return type(x)(abstractify(v) for v in x)
    if isinstance(x, dict):
        return {k: abstractify(v) for k, v in x.items()}
    leaf = leaf_of(x)
    if leaf is not None:
        a = leaf.array(x)
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
