"""From a staged callable to a cached, compiled call.

``run_staged`` maps arguments to a cache key (the argument tree with shapes and dtypes, and
static values), and on a miss traces, optimises, generates source and compiles it. A repeated
call with the same signature does no analysis and no compilation.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from .backend import compile_source
from .codegen import generate
from .diskcache import FirstCall
from .frontend import Frontend, abstractify, trace
from .ir import Program, unflatten
from .opt import optimize
from .tensor import Parameter, Tensor

_CACHES: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()
_GLOBAL_CACHES: dict[Any, dict] = {}


def cache_for(obj: Any) -> dict:
    """A compile cache that lives as long as ``obj`` (a Cell or function)."""
    try:
        c = _CACHES.get(obj)
        if c is None:
            c = _CACHES[obj] = {}
        return c
    except TypeError:
        return _GLOBAL_CACHES.setdefault(id(obj), {})


def signature(x: Any) -> Any:
    """What of an argument a compiled program depends on: the shape and dtype of arrays, the
    structure of tuples and lists, the value of anything else."""
    t = type(x)
    if t is Tensor or t is Parameter:
        a = x._data
        return (a.shape, a.dtype)
    if t is np.ndarray or isinstance(x, (np.ndarray, np.generic)):
        return (x.shape, x.dtype)
    if isinstance(x, Tensor):
        a = x.asnumpy()
        return (a.shape, a.dtype)
    if isinstance(x, (tuple, list)):
        return (type(x).__name__, tuple(signature(v) for v in x))
    try:
        hash(x)
        return ("S", type(x).__name__, x)
    except TypeError:
        return ("S", type(x).__name__, repr(x))


def tensor_leaves(x: Any, out: list) -> list:
    if isinstance(x, (Tensor, np.ndarray, np.generic)):
        out.append(x)
    elif isinstance(x, (tuple, list)):
        for v in x:
            tensor_leaves(v, out)
    return out


def _identifier(name: str) -> str:
    s = re.sub(r"\W", "_", name)
    return s if s and not s[0].isdigit() else "f_" + s


class Compiled:
    """A compiled program and the generated source it came from."""

    def __init__(self, prog: Program, backend: str, final: bool = True, doc: str | None = None):
        self.program = optimize(prog, final=final)
        self.fname = _identifier(prog.name)
        self.backend = backend
        if backend == "cuda":
            from .cuda import build

            self.source, self.fn = build(self.program, self.fname, doc)
        else:
            self.source = generate(self.program, self.fname, doc, fuse=backend == "numba")
            self.fn = compile_source(self.source, self.fname, backend)
        self.out_avals = [o.aval for o in self.program.outs]

        # Dispatch plan, fixed per program so that a call does no analysis: which outputs
        # are fresh arrays (returned as they are), scalars, or possibly views of inputs
        # (copied), and how the flat outputs are put back into their structure.
        self._flat_args = all(c is None for c in (prog.in_tree[1] if prog.in_tree else ()))
        self._out_kinds = _output_kinds(self.program)
        self._out_dtypes = [av.dtype for av in self.out_avals]
        tree = self.program.out_tree
        if tree is None:
            self._unflatten = _first
        elif tree[0] == "tuple" and all(c is None for c in tree[1]):
            self._unflatten = tuple
        else:
            self._unflatten = lambda outs: unflatten(tree, outs)

    def __call__(self, args: list[Any] | tuple) -> Any:
        prog = self.program
        leaves = args if self._flat_args else tensor_leaves(list(args), [])
        arrays = [_input(x) for x in leaves]
        if prog.params:
            arrays += [_input(p) for p in prog.params]
        if prog.consts:
            arrays += [_input(c) for c in prog.consts]
        fn = self.fn
        results = fn(*arrays)
        if type(fn) is FirstCall:  # the first call checked the disk cache's machine code
            self.fn = fn.dispatcher
        outs = []
        for r, kind, dt in zip(results, self._out_kinds, self._out_dtypes):
            if kind == _FRESH_ARRAY and type(r) is np.ndarray and r.dtype == dt:
                outs.append(Tensor._wrap(r))
            elif kind == _SCALAR:
                outs.append(Tensor._wrap(np.asarray(r, dtype=dt)))
            else:
                outs.append(Tensor._wrap(_output(r, dt, arrays)))
        return self._unflatten(outs)


_FRESH_ARRAY, _SCALAR, _MAYBE_VIEW = 0, 1, 2
# Ops whose result may share memory with an input (numpy views, or the input itself).
_VIEW_OPS = frozenset({"reshape", "transpose", "getitem", "broadcast_to", "stop_gradient"})


def _output_kinds(prog: Program) -> list[int]:
    producer = {id(o): e.op for e in prog.eqns for o in e.outs}
    kinds = []
    for a in prog.outs:
        if a.shape == ():
            kinds.append(_SCALAR)
        elif id(a) not in producer or producer[id(a)] in _VIEW_OPS:
            kinds.append(_MAYBE_VIEW)
        else:
            kinds.append(_FRESH_ARRAY)
    return kinds


def _first(outs: list) -> Any:
    return outs[0]


def _input(x: Any) -> Any:
    t = type(x)
    if t is Tensor or t is Parameter:
        a = x._data  # C-contiguous by construction
    else:
        a = x.asnumpy() if isinstance(x, Tensor) else np.asarray(x)
        if not a.flags.c_contiguous:
            a = np.ascontiguousarray(a)
    return a[()] if a.ndim == 0 else a


def _output(r: Any, dtype: np.dtype, inputs: list) -> np.ndarray:
    a = np.asarray(r)
    if a.dtype != dtype:
        a = a.astype(dtype)
    if (
        not a.flags.writeable
        or not a.flags.c_contiguous
        or any(a is x or np.shares_memory(a, x) for x in inputs if isinstance(x, np.ndarray))
    ):
        a = np.array(a, copy=True)
    return a


def calls_cache(obj: Any, key: Any) -> dict:
    """The compiled programs of transform ``key`` of ``obj``, by backend and argument
    signature (shared by every transformed function with the same ``obj`` and ``key``)."""
    cache = cache_for(obj)
    sub = cache.get(key)
    if sub is None:
        sub = cache[key] = {}
    return sub


def build_staged(
    calls: dict,
    sig: tuple,
    describe: Callable[[], tuple[str, list[str], str | None]],
    body: Callable[[Frontend, list[Any]], Any],
    args: list[Any] | tuple,
) -> Compiled:
    """Trace, optimise and compile the program for ``args`` (a miss of ``calls[sig]``;
    ``sig[0]`` is the backend). ``describe()`` gives (program name, argument names,
    docstring)."""
    name, arg_names, doc = describe()
    prog = trace(body, [abstractify(a) for a in args], name, arg_names)
    c = calls[sig] = Compiled(prog, sig[0], doc=doc)
    return c


def run_staged(
    cache: dict,
    key: Any,
    describe: Callable[[], tuple[str, list[str], str | None]],
    body: Callable[[Frontend, list[Any]], Any],
    args: list[Any],
    backend: str,
) -> Any:
    """Call the compiled program for ``args``' signature, building it on a miss.
    ``describe()`` is only called on a miss, so a hit does no analysis at all."""
    calls = cache.get(key)
    if calls is None:
        calls = cache[key] = {}
    sig = (backend, *[signature(a) for a in args])
    c = calls.get(sig)
    if c is None:
        c = build_staged(calls, sig, describe, body, args)
    return c(args)


# ---------------------------------------------------------------------- eager ops
_EAGER: dict[Any, Compiled] = {}


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
    sig = (key, kw, tuple(signature(a) for a in conv))
    c = _EAGER.get(sig)
    if c is None:
        names = [f"x{i}" for i in range(len(conv))]
        prog = trace(lambda fe, vals: lower(fe, vals, kwargs), [abstractify(a) for a in conv], f"eager_{key}", names)
        c = Compiled(prog, "python")
        _EAGER[sig] = c
    return c(conv)
