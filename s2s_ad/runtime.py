"""From a staged callable to a cached, compiled call.

Every compiled call from Python (a Cell, a transformed function, a Jacobian's plan, an eager
operation) takes one path: :func:`staged` maps the arguments to a cache key (:func:`call_key`:
the backend, the context's compile options, the argument tree with shapes and dtypes, and
static values), and on a miss traces, optimises, generates source and compiles
(:func:`stage`). A repeated call with the same signature does no analysis and no compilation.

The compiled programs of one function and transform are kept in a :class:`ProgramCache`, a
least-recently-used cache of at most ``S2S_AD_MAX_PROGRAMS`` (default 64) argument signatures;
eager operations keep at most eight times that many. An evicted program is freed (with its
generated module), and compiled again, from the disk cache where there is one, when its
signature comes back.
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import context, progress, tiered, warmstart
from .backend import compile_source, compile_split, direct_entry, split_program
from .codegen import generate
from .diskcache import FirstCall
from .dtype import native, native_array
from .ir import HALF, Aval, Program, dict_keys, unflatten, widen_half
from .lru import ProgramCache
from .opt import optimize
from .primitives import get_op
from .tensor import Parameter, Tensor
from .trace.interpreter import trace
from .trace.reads import recording
from .trace.tracer import Tracer, abstractify


def signature(x: Any) -> Any:
    """What of an argument a compiled program depends on: the shape and dtype of arrays, the
    structure of tuples and lists, the value of anything else."""
    t = type(x)
    if t is Tensor or t is Parameter:
        a = x._data
        return (a.shape, a.dtype)
    if isinstance(x, (np.ndarray, np.generic)):
        return (x.shape, native(x.dtype))
    if isinstance(x, Tensor):
        a = x.asnumpy()
        return (a.shape, a.dtype)
    if isinstance(x, (tuple, list)):
        return (type(x).__name__, tuple(signature(v) for v in x))
    if isinstance(x, dict):
        return ("dict", tuple((k, signature(x[k])) for k in dict_keys(x)))
    try:
        hash(x)
        return ("S", type(x).__name__, x)
    except TypeError:
        return ("S", type(x).__name__, repr(x))


def tensor_leaves(x: Any, out: list) -> list:
    """The tensors of an argument tree, in the order :func:`~s2s_ad.ir.flatten` gives them."""
    if isinstance(x, (Tensor, np.ndarray, np.generic)):
        out.append(x)
    elif isinstance(x, (tuple, list)):
        for v in x:
            tensor_leaves(v, out)
    elif isinstance(x, dict):
        for k in dict_keys(x):
            tensor_leaves(x[k], out)
    return out


def identifier(name: str) -> str:
    """A Python identifier for the generated function of program ``name``."""
    s = re.sub(r"\W", "_", name)
    return s if s and not s[0].isdigit() else "f_" + s


@dataclass
class Interface:
    """What calling a compiled program needs of it: its inputs (``n_args`` arguments by
    ``in_tree``, then ``parameters``, then ``consts``), with their avals in ``invars``, and its
    outputs' tree. A program loaded for a warm start (:mod:`s2s_ad.warmstart`) has this only."""

    name: str
    invars: list[Aval]
    n_args: int
    in_tree: Any
    parameters: list[Any]
    consts: list[Any]
    out_tree: Any
    # the Parameters the program assigns: their new values are its last len(updates) outputs
    updates: list[int]
    n_outs: int

    @property
    def arg_vars(self) -> list[Aval]:
        return self.invars[: self.n_args]

    @property
    def n_results(self) -> int:
        """The outputs that are results (the rest are new values of assigned Parameters)."""
        return self.n_outs - len(self.updates)

    @staticmethod
    def of(prog: Program) -> Interface:
        return Interface(
            prog.name,
            [v.aval for v in prog.invars],
            prog.n_args,
            prog.in_tree,
            prog.parameters,
            prog.consts,
            prog.out_tree,
            list(prog.updates),
            len(prog.outs),
        )


class Compiled:
    """A compiled program and the generated source it came from. ``program`` is ``None`` for
    a program loaded by a warm start (:meth:`warm`): calls read :attr:`iface`."""

    def __init__(self, prog: Program, backend: str, final: bool = True, doc: str | None = None):
        optimized = optimize(prog, final=final)
        # float16 is computed in float32: inputs are widened at the call, results rounded back
        # (out_avals keep the program's own dtypes).
        self.program = widen_half(optimized)
        self.half_inputs = [i for i, v in enumerate(optimized.invars) if v.dtype == HALF]
        self.fname = identifier(prog.name)
        self.backend = backend
        self.entry: FirstCall | None = None
        self.tier: tiered.Tier | None = None
        self.doc = doc
        self.py_source: str | None = None  # the numpy code of a Numba program, where generated
        self.split: tuple[str, dict[str, str]] | None = None
        if backend == "cuda":
            # imported on the first CUDA compile only (importing the printer adds 5% to `import s2s_ad`)
            from .cuda import build

            self.source, self.fn = build(self.program, self.fname, doc)
        else:
            with progress.timed("codegen"):
                self.source = generate(self.program, self.fname, doc, fuse=backend == "numba")
            kernels = split_program(self.program, self.fname, doc, self.source) if backend == "numba" else None
            if kernels is not None:
                self.split = kernels
                self.main_source, self.kernels = kernels
                self.source = "\n\n".join([*self.kernels.values(), self.main_source])
            if backend == "numba" and tiered.background() and (kernels is None or kernels[1]):
                # numpy code now, Numba's machine code from the worker when ready (s2s_ad.tiered)
                self.tier = tiered.Tier(self.source, self.fname, kernels)
                self.py_source = generate(self.program, self.fname, doc)
                self.fn = compile_source(self.py_source, self.fname, "python")
            elif kernels is not None:
                self.fn = compile_split(self.main_source, self.fname, self.kernels)
            else:
                self.fn = compile_source(self.source, self.fname, backend)
        self.out_avals = [o.aval for o in optimized.outs]
        self.iface = Interface.of(self.program)
        self.kinds = _output_kinds(self.program)
        # Numba compiles at the first call: that call's time belongs to the running compile
        self.session = progress.current() if backend != "python" else None
        if self.session is not None:
            self.session.attach()

        # The first call runs the generic path (which also checks machine code loaded from
        # the disk cache); later calls run ``call``, a dispatcher generated for this program.
        self.call: Callable[[Any], Any] = self._first_call
        self.ready = False  # whether ``call`` is the generated dispatcher (:func:`cached` calls only those)
        self.fast: dict[tuple, Callable] = {}  # fast_call's functions, by the calls they take

    @classmethod
    def warm(
        cls, record: dict[str, Any], parameters: list[Any], fn: Callable, tier: tiered.Tier | None = None
    ) -> Compiled:
        """The compiled call of a warm-start ``record`` (:func:`warm_record` wrote it) running
        ``fn`` (with ``tier``: the numpy code, until ``tier`` has loaded the machine code),
        reading ``parameters``."""
        c = cls.__new__(cls)
        c.program = None
        c.iface = Interface(
            record["name"],
            record["invars"],
            record["n_args"],
            record["in_tree"],
            parameters,
            record["consts"],
            record["out_tree"],
            record["updates"],
            len(record["out_avals"]),
        )
        c.kinds, c.out_avals, c.half_inputs = record["kinds"], record["out_avals"], record["half_inputs"]
        c.fname, c.backend, c.source, c.fn, c.entry = record["fname"], record["backend"], record["source"], fn, None
        c.py_source, c.split, c.doc = record["py_source"], record["split"], None
        c.call, c.session, c.ready, c.tier, c.fast = c._first_call, None, False, tier, {}
        return c

    def warm_record(self) -> dict[str, Any] | None:
        """What :meth:`warm` needs to rebuild this call in another process (the parameters
        apart): the generated source (for the Numba backend also its numpy code, which a warm
        start in background mode runs while the machine code loads), or ``None`` for a backend
        without warm starts."""
        if self.backend not in ("numba", "python"):
            return None
        if self.backend == "numba" and self.py_source is None and self.program is not None:
            self.py_source = generate(self.program, self.fname, self.doc)
        i = self.iface
        return {
            "name": i.name,
            "invars": i.invars,
            "n_args": i.n_args,
            "in_tree": i.in_tree,
            "consts": i.consts,
            "out_tree": i.out_tree,
            "updates": i.updates,
            "kinds": self.kinds,
            "out_avals": self.out_avals,
            "half_inputs": self.half_inputs,
            "fname": self.fname,
            "backend": self.backend,
            "source": self.source,
            "py_source": self.py_source,
            "split": self.split,
        }

    def __call__(self, args: list[Any] | tuple) -> Any:
        return self.call(args)

    def machine_code_ready(self) -> None:
        """A background compile has switched this program to machine code (its tier calls
        this, with ``fn`` and the dispatchers' ``fn`` set): its fast calls are made again."""
        refresh_fast_calls(self)

    def _first_call(self, args: list[Any] | tuple) -> Any:
        prog = self.iface
        arrays = [_input(x) for x in tensor_leaves(list(args), [])]
        arrays += [_input(p) for p in prog.parameters]
        arrays += [_input(c) for c in prog.consts]
        for i in self.half_inputs:
            arrays[i] = np.float32(arrays[i]) if np.ndim(arrays[i]) == 0 else arrays[i].astype(np.float32)
        tier = self.tier
        if tier is not None and not tier.warm:
            tier.start(self, arrays)  # the compiling process starts before the numpy call
        results = _run_first_call(self, arrays)
        if tier is not None:
            tier.answered.set()
        if type(self.fn) is FirstCall:
            # call Numba's dispatcher directly from now on; the entry (which holds the
            # generated module) lives as long as this program
            self.entry = self.fn
            self.fn = self.fn.dispatcher
        kinds = self.kinds
        outs = [
            np.asarray(r, dtype=av.dtype) if k == _SCALAR else _output(r, av.dtype, arrays)
            for r, k, av in zip(results, kinds, self.out_avals)
        ]
        n = prog.n_results
        for i, a in zip(prog.updates, outs[n:]):
            prog.parameters[i]._data = a
        self.call = _dispatcher(self)
        self.ready = True
        if tier is not None:
            tier.attach(self.call)
            if tier.warm:
                # loading machine code takes the GIL (Numba's import): once the first result is ready
                tier.start(self, arrays)
        return unflatten(prog.out_tree, [Tensor._wrap(a) for a in outs[:n]])


def _run_first_call(c: Compiled, arrays: list[Any]) -> Any:
    """The first call of ``c``'s function: where Numba compiles (or loads machine code), timed
    as the ``Numba`` stage of the compile that made ``c``."""
    session, c.session = c.session, None
    if session is None:
        return c.fn(*arrays)
    session.resume()
    try:
        with session.timing("Numba"):
            return c.fn(*arrays)
    finally:
        session.done()


def _dispatcher(c: Compiled) -> Callable[[Any], Any]:
    """A call function generated for one program: argument conversion, the compiled call
    and output wrapping, spelled out for its arguments and outputs, with no loops and no
    analysis (shapes and dtypes were checked by the signature lookup)."""
    prog = c.iface
    flat = all(ch is None for ch in (prog.in_tree[1] if prog.in_tree else ()))
    lines = ["def call(args):"]
    if not flat:
        lines.append("    args = tensor_leaves(list(args), [])")
    names = []
    scalars: dict[str, Any] = {}
    scalar_args: set[str] = set()
    for i, v in enumerate(prog.arg_vars):
        lines.append(f"    a{i} = args[{i}]")
        if v.shape == ():
            # a 0-d input is passed as a scalar: a Python number becomes one of the program's
            # dtype directly, not a Tensor or an array first
            scalars[f"sc{i}"] = np.dtype(v.dtype).type
            scalar_args.add(f"a{i}")
            lines.append(f"    a{i} = a{i}._data[()] if type(a{i}) in TENSORS else sc{i}(a{i})")
        else:
            lines.append(f"    a{i} = a{i}._data if type(a{i}) in TENSORS else array(a{i})")
        names.append(f"a{i}")
    start = len(lines)  # the rest is the same for every way the arguments come in (see fast_call)
    for i in range(len(prog.parameters)):
        lines.append(f"    p{i} = params[{i}]._data")
        names.append(f"p{i}")
    for i in range(len(prog.consts)):
        lines.append(f"    k{i} = consts[{i}]")
        lines.append(f"    k{i} = k{i}._data if type(k{i}) in TENSORS else array(k{i})")
        names.append(f"k{i}")
    for i in c.half_inputs:
        lines.append(f"    {names[i]} = {names[i]}.astype(float32)")
    # 0-d parameters and constants are 0-d arrays until here; 0-d arguments are scalars already
    passed = [f"{n}[()]" if v.shape == () and n not in scalar_args else n for n, v in zip(names, prog.invars)]
    lines.append(f"    r = fn({', '.join(passed)})")
    arrays = "(" + "".join(f"{n}, " for n, v in zip(names, prog.invars) if v.shape != ()) + ")"
    outs = []
    n = prog.n_results
    for k, kind in enumerate(c.kinds):
        # a result is wrapped as a Tensor; the new value of an assigned Parameter is written into it
        wrap = "wrap" if k < n else ""
        if kind == _SCALAR and wrap:
            lines.append(f"    o{k} = new(TENSOR)")
            lines.append(f"    o{k}._data = {_scalar_array(k)}")
            if k < n:
                outs.append(f"o{k}")
            continue
        lines.append(f"    o{k} = r[{k}]")
        if kind == _SCALAR:
            lines.append(f"    o{k} = asarray(o{k}, dt{k})")
        elif kind == _FRESH_VIEW:
            lines.append(
                f"    o{k} = {wrap}(o{k} if type(o{k}) is ndarray and o{k}.dtype == dt{k} and o{k}.flags.c_contiguous "
                f"and o{k}.flags.writeable else array_copy(o{k}, dt{k}))"
            )
        elif kind == _FRESH_ARRAY:
            lines.append(
                f"    o{k} = {wrap}(o{k} if type(o{k}) is ndarray and o{k}.dtype == dt{k} "
                f"else output(o{k}, dt{k}, {arrays}))"
            )
        else:
            lines.append(f"    o{k} = {wrap}(output(o{k}, dt{k}, {arrays}))")
        if k < n:
            outs.append(f"o{k}")
        else:
            lines.append(f"    params[{prog.updates[k - n]}]._data = o{k}")
    tree = prog.out_tree
    if tree is None:
        lines.append("    return o0")
    elif tree[0] == "tuple" and all(ch is None for ch in tree[1]):
        lines.append(f"    return ({', '.join(outs)}{',' if len(outs) == 1 else ''})")
    else:
        lines.append(f"    return unflatten(tree, [{', '.join(outs)}])")
    ns: dict[str, Any] = {
        "TENSORS": (Tensor, Parameter),
        "array": _array,
        "tensor_leaves": tensor_leaves,
        "params": prog.parameters,
        "consts": prog.consts,
        "fn": direct_entry(c.fn),
        "wrap": Tensor._wrap,
        "new": Tensor.__new__,
        "TENSOR": Tensor,
        "asarray": np.asarray,
        "array_copy": _array_copy,
        "float32": np.float32,
        "ndarray": np.ndarray,
        "output": _output,
        "unflatten": unflatten,
        "tree": tree,
        **{f"dt{k}": av.dtype for k, av in enumerate(c.out_avals)},
        **scalars,
    }
    exec(compile("\n".join(lines) + "\n", f"<s2s_ad dispatch {c.fname}>", "exec"), ns)
    # fast_call generates more call functions into the same namespace (whose ``fn`` a
    # background compile replaces for all of them)
    c.dispatch = (ns, lines[start:] if flat else None, names[: len(prog.arg_vars)], scalar_args)
    return ns["call"]


NOARG = object()  # a fast call's default for an argument not given (another number of arguments)


def fast_call(c: Compiled, args: tuple, calls: ProgramCache) -> Callable[..., Any] | None:
    """A call function for program ``c`` of ``calls``, to be bound to a transformed function
    as its ``__call__``: it checks itself that a call is one like ``args`` (whose signature
    :func:`cached` found ``c`` for: Tensors, arrays, Python floats at differentiated
    positions, no keywords) and calls the program, with no key built and no dict lookup; a
    call that is not like ``args`` goes to the function's ``_call`` (the lookup). It assumes
    the context it was made in: a change of context drops it from the functions holding it
    (``context._fast_calls``). Its ``key`` is ``c``'s in ``calls`` (``_call`` marks it used,
    which keeps the least-recently-used order of ``calls`` as if every call had looked its
    program up). ``None`` when ``c`` has no such path (arguments in containers)."""
    dispatch = getattr(c, "dispatch", None)
    key = next((k for k, v in calls.items() if v is c), None)
    if dispatch is None or dispatch[1] is None or key is None:
        return None
    spec = tuple(_arg_spec(a) for a in args)
    fast = c.fast.get(spec)
    if fast is not None and fast.key == key:
        return fast
    return _fast_function(c, spec, key)


def refresh_fast_calls(c: Compiled) -> None:
    """Make the fast calls of ``c`` again now that it runs machine code (which converts its
    results more cheaply, :func:`_exact_scalars`), and put them in the classes of the
    functions holding the old ones (:func:`s2s_ad.api._fast_class`)."""
    for spec, old in list(c.fast.items()):
        new = _fast_function(c, spec, old.key)  # type: ignore[attr-defined]
        if new is None:
            continue
        new.classes = classes = old.__dict__.get("classes", {})  # type: ignore[attr-defined]
        for cls in list(classes.values()):
            cls.__call__ = cls._s2s_fast = new


def _fast_function(c: Compiled, spec: tuple, key: Any) -> Callable[..., Any] | None:
    ns, body, names, scalar_args = c.dispatch
    if len(spec) != len(names):
        return None
    given = [f"x{n[1:]}" for n in names]
    # The arguments are positional only, with a default that tells a shorter call; a longer
    # one fills ``more``, and keywords ``kwargs``: all go to the lookup, with the arguments
    # given (one left out is at the end).
    miss = f"        return self._call((*(x for x in ({''.join(x + ', ' for x in given)}) if x is not NOARG), *more), kwargs)"
    test = "more or kwargs" + (f" or {given[-1]} is NOARG" if given else "")
    lines = [
        f"def fast_{len(c.fast)}(self, {''.join(x + '=NOARG, ' for x in given)}/, *more, **kwargs):",
        f"    if {test}:",
        miss,
    ]
    g: dict[str, Any] = {}
    for i, (n, x, (kind, shape, dtype)) in enumerate(zip(names, given, spec, strict=True)):
        if kind == "float":
            lines += [f"    if type({x}) is not float:", miss]
            if n not in scalar_args:
                return None
            lines.append(f"    {n} = sc{i}({x})")
            continue
        test = f"type({x}) is not {kind.title()}" if kind in ("tensor", "parameter") else f"type({x}) is not ndarray"
        lines += [f"    if {test}:", miss]
        if kind != "array" and n in scalar_args:
            # a Tensor's 0-d data of the signature's dtype, and only that, gives a numpy
            # scalar of the dtype's own type (other shapes give an array, others dtypes
            # another scalar type): one test for shape and dtype
            g[f"T{i}"] = np.dtype(dtype).type
            lines += [f"    {n} = {x}._data[()]", f"    if type({n}) is not T{i}:", miss]
            continue
        lines.append(f"    {n} = array({x})" if kind == "array" else f"    {n} = {x}._data")
        g[f"S{i}"], g[f"D{i}"] = shape, dtype
        # (an array's dtype is most often the very object the signature holds: ``is`` first)
        lines += [f"    if {n}.shape != S{i} or ({n}.dtype is not D{i} and {n}.dtype != D{i}):", miss]
        if n in scalar_args:
            lines.append(f"    {n} = {n}[()]")
    for k in _exact_scalars(c):
        # (a Python float is exactly a float64 and a complex a complex128: no dtype to convert to)
        body = [ln.replace(_scalar_array(k), _scalar_array(k, exact=True)) for ln in body]
    ns.update(g)
    ns.update(NOARG=NOARG, Tensor=Tensor, Parameter=Parameter)
    code = "\n".join(lines + body) + "\n"
    name = lines[0][4 : lines[0].index("(")]
    exec(compile(code, f"<s2s_ad fast call {c.fname}>", "exec"), ns)
    fast = c.fast[spec] = ns[name]
    fast.key = key  # type: ignore[attr-defined]
    return fast


def _scalar_array(k: int, exact: bool = False) -> str:
    """The generated dispatchers' 0-d array of result ``k`` (``r[k]``): of output ``k``'s
    dtype, or (``exact``: a Python float or complex that is a value of that dtype) as it is."""
    return f"asarray(r[{k}])" if exact else f"asarray(r[{k}], dt{k})"


def _exact_scalars(c: Compiled) -> list[int]:
    """The 0-d float64 (complex128) outputs of ``c`` that its machine code returns as Python
    floats (complexes) of that type; none while ``c`` runs its numpy code."""
    overloads = getattr(c.fn, "overloads", None)
    if not overloads or len(overloads) != 1:
        return []
    from numba.core import types

    (sig,) = overloads
    ret = overloads[sig].signature.return_type
    if not isinstance(ret, types.BaseTuple) or len(ret) != len(c.out_avals):
        return []
    exact = {np.dtype(np.float64): types.float64, np.dtype(np.complex128): types.complex128}
    return [
        k for k, (t, av) in enumerate(zip(ret, c.out_avals)) if av.shape == () and exact.get(np.dtype(av.dtype)) == t
    ]


def _arg_spec(a: Any) -> tuple:
    t = type(a)
    if t is Tensor or t is Parameter:
        return ("tensor" if t is Tensor else "parameter", a._data.shape, a._data.dtype)
    if t is np.ndarray:
        return ("array", a.shape, native(a.dtype))
    return ("float", None, None)


_FRESH_ARRAY, _SCALAR, _MAYBE_VIEW, _FRESH_VIEW = 0, 1, 2, 3


def _output_kinds(prog: Program) -> list[int]:
    """How each output is handed out. A result of an op whose result may share memory with its
    input (the table's ``view``: numpy views, or the input itself) is followed back through
    such ops: where that reaches a program input, the output may share the caller's memory
    (``_MAYBE_VIEW``, checked at every call); where it reaches memory the program made, it is
    a view of fresh memory (``_FRESH_VIEW``: only its layout is checked)."""
    producer = {o: e for e in prog.eqns for o in e.outs}

    def reaches_input(a: Any) -> bool:
        e = producer.get(a)
        if e is None:
            return True  # an input, or a literal
        return get_op(e.op).view and any(reaches_input(x) for x in e.ins if hasattr(x, "aval"))

    kinds = []
    for a in prog.outs:
        if a.shape == ():
            kinds.append(_SCALAR)
        elif reaches_input(a):
            kinds.append(_MAYBE_VIEW)
        elif get_op(producer[a].op).view:
            kinds.append(_FRESH_VIEW)
        else:
            kinds.append(_FRESH_ARRAY)
    return kinds


def _array_copy(r: Any, dtype: np.dtype) -> np.ndarray:
    return np.array(r, dtype=dtype, order="C", copy=True)


def _array(x: Any) -> np.ndarray:
    a = native_array(x.asnumpy() if isinstance(x, Tensor) else np.asarray(x))
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _input(x: Any) -> Any:
    t = type(x)
    a = x._data if t is Tensor or t is Parameter else _array(x)  # a Tensor's data is C-contiguous
    return a[()] if a.ndim == 0 else a


def _output(r: Any, dtype: np.dtype, inputs: list) -> np.ndarray:
    a = np.asarray(r)
    if a.dtype != dtype:
        a = a.astype(dtype)
    if (
        not a.flags.writeable
        or not a.flags.c_contiguous
        or any(np.may_share_memory(a, x) for x in inputs if isinstance(x, np.ndarray))
    ):
        a = np.array(a, copy=True, order="C")  # a Tensor's data is C-contiguous (a transpose's copy is not by default)
    return a


# ---------------------------------------------------------------------- the staged call
#
# Every compiled call from Python finds its program here: a Cell's call, a transformed
# function's (grad, jit, jvp, ...), a Jacobian's evaluation plan and an eager operation.
# ``calls_cache(owner, key)`` is where the programs live, ``call_key`` the key of one call,
# ``ProgramCache.lookup`` the hit (no analysis) or the build on a miss, and ``stage`` the
# build (a Jacobian's plan has a build of its own).

Describe = Callable[[], tuple[str, list[str], str | None]]  # () -> (program name, argument names, doc)
Body = Callable[[Tracer, list[Any]], Any]  # stages the call on traced values

_CACHES: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()
# Objects that cannot be weakly referenced (or hashed) are kept alive with their cache: a key
# of ``id(obj)`` alone would hand a dead object's programs to a new one that reuses its id.
_GLOBAL_CACHES: dict[int, tuple[Any, dict]] = {}


def cache_for(obj: Any) -> dict:
    """A compile cache that lives as long as ``obj`` (a Cell or function)."""
    try:
        c = _CACHES.get(obj)
        if c is None:
            c = _CACHES[obj] = {}
        return c
    except TypeError:
        return _GLOBAL_CACHES.setdefault(id(obj), (obj, {}))[1]


def calls_cache(obj: Any, key: Any) -> ProgramCache:
    """The compiled programs of transform ``key`` of ``obj``, by :func:`call_key` (shared by
    every transformed function with the same ``obj`` and ``key``); at most
    :func:`~s2s_ad.lru.max_programs`, least recently used evicted first."""
    cache = cache_for(obj)
    calls = cache.get(key)
    if calls is None:
        calls = cache[key] = ProgramCache()
    return calls


def call_key(backend: str, args: list[Any] | tuple, prefix: tuple = ()) -> tuple:
    """The cache key of a call: ``(*prefix, backend, context.compile_options(), *signatures
    of args)``."""
    return (*prefix, backend, context.compile_options(), *[signature(a) for a in args])


_NUMBER_SIGNATURE = ((), np.dtype(np.float32))  # a Python float where a derivative is taken (api.number_input)


def cached(calls: ProgramCache, target: str | None, args: tuple, owner: Any) -> Compiled | None:
    """The compiled program of ``calls`` for ``args``, found with one dict lookup, when every
    argument is a Tensor, an array or (at ``owner.number_positions``) a Python float and the
    program has run before; else ``None`` (then :func:`staged` takes the call). Its key is
    :func:`call_key`'s, made without the general :func:`signature`."""
    key = context.backend_key(target)
    numbers = None
    i = -1
    for a in args:
        i += 1
        t = type(a)
        if t is Tensor or t is Parameter:
            d = a._data
            key += ((d.shape, d.dtype),)
        elif t is float:
            if numbers is None:
                numbers = owner.number_positions(len(args))
            if i not in numbers:
                return None
            key += (_NUMBER_SIGNATURE,)
        elif t is np.ndarray:
            key += ((a.shape, native(a.dtype)),)
        else:
            return None
    c = calls.get(key)
    if not getattr(c, "ready", False):  # not compiled, not run yet, or an API's marker object
        return None
    calls.move_to_end(key)
    return c


def stage(describe: Describe, body: Body, args: list[Any] | tuple, backend: str) -> Compiled:
    """Trace ``body`` on abstract ``args``, optimise, generate source and compile it for
    ``backend``. ``describe()`` names the program and its arguments."""
    name, arg_names, doc = describe()
    if backend == "numba":
        tiered.prestart()  # a compiling process starts up while this one traces
    with progress.compiling(name, backend):
        with progress.timed("trace"):
            prog = trace(body, [abstractify(a) for a in args], name, arg_names)
        return Compiled(prog, backend, doc=doc)


def staged(
    calls: ProgramCache,
    backend: str,
    args: list[Any] | tuple,
    describe: Describe,
    body: Body,
    prefix: tuple = (),
    origin: Any = None,
) -> Any:
    """The compiled program of ``calls`` for ``args`` (key :func:`call_key`), staged by
    :func:`stage` and stored on a miss; a hit does no analysis and becomes the most recently
    used. Call it with ``args`` (``.call(args)``). ``origin``: the object called (a Cell, a
    transformed function), whose description keys warm starts (:func:`stage_or_load`)."""
    key = call_key(backend, args, prefix)
    return calls.lookup(key, stage_or_load, key, origin, describe, body, args, backend)


def stage_or_load(
    key: tuple, origin: Any, describe: Describe, body: Body, args: list[Any] | tuple, backend: str
) -> Any:
    """:func:`stage` the call, or load it from the disk cache without tracing where a warm-start
    record of ``origin`` and ``key`` (:mod:`s2s_ad.warmstart`) is there and still holds; a
    staged call leaves such a record for the next process."""
    front = warmstart.front_key(origin, key, backend) if origin is not None else None
    if front is None:
        return stage(describe, body, args, backend)
    name, walk = front
    c = _load_warm(name, walk, backend)
    if c is not None:
        return c
    with recording() as reads:
        c = stage(describe, body, args, backend)
    record = c.warm_record()
    if record is not None:
        warmstart.store(name, walk, reads, record, c.iface.parameters)
    return c


def load_warm(origin: Any, key: tuple, backend: str) -> Compiled | None:
    """The program of a call of ``origin`` with cache key ``key``, loaded from the disk cache
    by its warm-start record (see :func:`stage_or_load`) without tracing; ``None`` when there is
    none or it no longer holds."""
    front = warmstart.front_key(origin, key, backend)
    return None if front is None else _load_warm(*front, backend)


def _load_warm(name: str, walk: warmstart.Walk, backend: str) -> Compiled | None:
    start = time.perf_counter()
    found = warmstart.load(name, walk)
    if found is None:
        return None
    record, parameters = found
    if record["backend"] != backend:
        return None
    fname, split, tier = record["fname"], record["split"], None
    if backend != "numba":
        fn = compile_source(record["source"], fname, backend)
    elif split is not None and not split[1]:
        fn = compile_split(split[0], fname, {})  # numpy calls only: nothing for Numba
    elif tiered.background():
        # the numpy code answers at once; a worker loads the machine code (importing Numba
        # takes a second, loading its cached code another) and switches the calls to it
        fn = compile_source(record["py_source"], fname, "python")
        tier = tiered.Tier(record["source"], fname, split, warm=True)
    elif split is not None:
        fn = compile_split(split[0], fname, split[1])
    else:
        fn = compile_source(record["source"], fname, "numba")
    progress.loaded(record["name"], time.perf_counter() - start)
    return Compiled.warm(record, parameters, fn, tier)


# ---------------------------------------------------------------------- eager ops
_EAGER = ProgramCache(scale=8)


def eager(key: Any, lower: Callable[..., Any], args: tuple, kwargs: dict, weak_scalars: bool = False) -> Any:
    """Run an op outside compiled code through the same generated numpy code. With
    ``weak_scalars`` (elementwise ops), Python numbers become inputs typed like the tensors
    they meet instead of compile-time constants."""
    dts = [
        np.asarray(a.asnumpy() if isinstance(a, Tensor) else a).dtype
        for a in args
        if isinstance(a, (Tensor, np.ndarray, np.generic))
    ]
    like = np.result_type(*dts) if dts else None
    conv = []
    for a in args:
        if isinstance(a, Parameter):
            a = Tensor._wrap(a.asnumpy())
        if isinstance(a, np.generic):
            a = np.asarray(a)
        if weak_scalars and isinstance(a, (int, float)) and not isinstance(a, bool) and like is not None:
            dt = like if not (isinstance(a, float) and like.kind != "f") else np.dtype(np.float32)
            a = np.asarray(a, dtype=dt)
        conv.append(a)
    kw = tuple(sorted((k, signature(v)) for k, v in kwargs.items()))
    c = staged(
        _EAGER,
        "python",
        conv,
        lambda: (f"eager_{key}", [f"x{i}" for i in range(len(conv))], None),
        lambda fe, vals: lower(fe, vals, kwargs),
        prefix=(key, kw),
    )
    return c.call(conv)
