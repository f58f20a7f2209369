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
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from . import context, tiered
from .backend import compile_source, compile_split, split_program
from .codegen import generate
from .diskcache import FirstCall
from .dtype import native, native_array
from .ir import HALF, Program, dict_keys, unflatten, widen_half
from .lru import ProgramCache
from .opt import optimize
from .primitives import get_op
from .tensor import Parameter, Tensor
from .trace.interpreter import trace
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


class Compiled:
    """A compiled program and the generated source it came from."""

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
        if backend == "cuda":
            # imported on the first CUDA compile only (importing the printer adds 5% to `import s2s_ad`)
            from .cuda import build

            self.source, self.fn = build(self.program, self.fname, doc)
        else:
            self.source = generate(self.program, self.fname, doc, fuse=backend == "numba")
            kernels = split_program(self.program, self.fname, doc, self.source) if backend == "numba" else None
            if kernels is not None:
                self.main_source, self.kernels = kernels
                self.source = "\n\n".join([*self.kernels.values(), self.main_source])
            if backend == "numba" and tiered.background() and (kernels is None or kernels[1]):
                # numpy code now, Numba's machine code from the worker when ready (s2s_ad.tiered)
                self.tier = tiered.Tier(self.source, self.fname, kernels)
                self.fn = compile_source(generate(self.program, self.fname, doc), self.fname, "python")
            elif kernels is not None:
                self.fn = compile_split(self.main_source, self.fname, self.kernels)
            else:
                self.fn = compile_source(self.source, self.fname, backend)
        self.out_avals = [o.aval for o in optimized.outs]

        # The first call runs the generic path (which also checks machine code loaded from
        # the disk cache); later calls run ``call``, a dispatcher generated for this program.
        self.call: Callable[[Any], Any] = self._first_call

    def __call__(self, args: list[Any] | tuple) -> Any:
        return self.call(args)

    def _first_call(self, args: list[Any] | tuple) -> Any:
        prog = self.program
        arrays = [_input(x) for x in tensor_leaves(list(args), [])]
        arrays += [_input(p) for p in prog.parameters]
        arrays += [_input(c) for c in prog.consts]
        for i in self.half_inputs:
            arrays[i] = np.float32(arrays[i]) if np.ndim(arrays[i]) == 0 else arrays[i].astype(np.float32)
        if self.tier is not None:
            self.tier.start(self, arrays)
        results = self.fn(*arrays)
        if type(self.fn) is FirstCall:
            # call Numba's dispatcher directly from now on; the entry (which holds the
            # generated module) lives as long as this program
            self.entry = self.fn
            self.fn = self.fn.dispatcher
        kinds = _output_kinds(prog)
        outs = [
            Tensor._wrap(np.asarray(r, dtype=av.dtype) if k == _SCALAR else _output(r, av.dtype, arrays))
            for r, k, av in zip(results, kinds, self.out_avals)
        ]
        self.call = _dispatcher(self)
        if self.tier is not None:
            self.tier.attach(self.call)
        return unflatten(prog.out_tree, outs)


def _dispatcher(c: Compiled) -> Callable[[Any], Any]:
    """A call function generated for one program: argument conversion, the compiled call
    and output wrapping, spelled out for its arguments and outputs, with no loops and no
    analysis (shapes and dtypes were checked by the signature lookup)."""
    prog = c.program
    flat = all(ch is None for ch in (prog.in_tree[1] if prog.in_tree else ()))
    lines = ["def call(args):"]
    if not flat:
        lines.append("    args = tensor_leaves(list(args), [])")
    names = []
    for i in range(len(prog.arg_vars)):
        lines.append(f"    a{i} = args[{i}]")
        lines.append(f"    a{i} = a{i}._data if type(a{i}) in TENSORS else array(a{i})")
        names.append(f"a{i}")
    for i in range(len(prog.parameters)):
        lines.append(f"    p{i} = params[{i}]._data")
        names.append(f"p{i}")
    for i in range(len(prog.consts)):
        lines.append(f"    k{i} = consts[{i}]")
        lines.append(f"    k{i} = k{i}._data if type(k{i}) in TENSORS else array(k{i})")
        names.append(f"k{i}")
    for i in c.half_inputs:
        lines.append(f"    {names[i]} = {names[i]}.astype(float32)")
    passed = [f"{n}[()]" if v.shape == () else n for n, v in zip(names, prog.invars)]
    lines.append(f"    r = fn({', '.join(passed)})")
    arrays = "(" + "".join(f"{n}, " for n, v in zip(names, prog.invars) if v.shape != ()) + ")"
    outs = []
    for k, kind in enumerate(_output_kinds(prog)):
        lines.append(f"    o{k} = r[{k}]")
        if kind == _SCALAR:
            lines.append(f"    o{k} = wrap(asarray(o{k}, dtype=dt{k}))")
        elif kind == _FRESH_ARRAY:
            lines.append(
                f"    o{k} = wrap(o{k} if type(o{k}) is ndarray and o{k}.dtype == dt{k} else output(o{k}, dt{k}, {arrays}))"
            )
        else:
            lines.append(f"    o{k} = wrap(output(o{k}, dt{k}, {arrays}))")
        outs.append(f"o{k}")
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
        "fn": c.fn,
        "wrap": Tensor._wrap,
        "asarray": np.asarray,
        "float32": np.float32,
        "ndarray": np.ndarray,
        "output": _output,
        "unflatten": unflatten,
        "tree": tree,
        **{f"dt{k}": av.dtype for k, av in enumerate(c.out_avals)},
    }
    exec(compile("\n".join(lines) + "\n", f"<s2s_ad dispatch {c.fname}>", "exec"), ns)
    return ns["call"]


_FRESH_ARRAY, _SCALAR, _MAYBE_VIEW = 0, 1, 2


def _output_kinds(prog: Program) -> list[int]:
    # an output made by an op whose result may share memory with an input (the table's ``view``:
    # numpy views, or the input itself), or an input itself, may be a view
    producer = {o: e.op for e in prog.eqns for o in e.outs}
    kinds = []
    for a in prog.outs:
        if a.shape == ():
            kinds.append(_SCALAR)
        elif a not in producer or get_op(producer[a]).view:
            kinds.append(_MAYBE_VIEW)
        else:
            kinds.append(_FRESH_ARRAY)
    return kinds


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
        a = np.array(a, copy=True)
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


def stage(describe: Describe, body: Body, args: list[Any] | tuple, backend: str) -> Compiled:
    """Trace ``body`` on abstract ``args``, optimise, generate source and compile it for
    ``backend``. ``describe()`` names the program and its arguments."""
    name, arg_names, doc = describe()
    prog = trace(body, [abstractify(a) for a in args], name, arg_names)
    return Compiled(prog, backend, doc=doc)


def staged(
    calls: ProgramCache, backend: str, args: list[Any] | tuple, describe: Describe, body: Body, prefix: tuple = ()
) -> Any:
    """The compiled program of ``calls`` for ``args`` (key :func:`call_key`), staged by
    :func:`stage` and stored on a miss; a hit does no analysis and becomes the most recently
    used. Call it with ``args`` (``.call(args)``)."""
    return calls.lookup(call_key(backend, args, prefix), stage, describe, body, args, backend)


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
