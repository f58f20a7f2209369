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
    if isinstance(x, Tensor):
        a = x.asnumpy()
        return ("T", a.shape, a.dtype.str)
    if isinstance(x, (np.ndarray, np.generic)):
        return ("T", x.shape, x.dtype.str)
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

    def __call__(self, args: list[Any]) -> Any:
        leaves = tensor_leaves(list(args), [])
        prog = self.program
        arrays = [_input(x) for x in leaves]
        arrays += [_input(p) for p in prog.params]
        arrays += [_input(c) for c in prog.consts]
        results = self.fn(*arrays)
        outs = [Tensor._wrap(_output(r, av.dtype, arrays)) for r, av in zip(results, self.out_avals)]
        return unflatten(prog.out_tree, outs)


def _input(x: Any) -> Any:
    a = x.asnumpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.ndim == 0:
        return a[()]
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _output(r: Any, dtype: np.dtype, inputs: list) -> np.ndarray:
    a = np.asarray(r)
    if a.dtype != dtype:
        a = a.astype(dtype)
    if not a.flags.writeable or not a.flags.c_contiguous or any(a is x for x in inputs):
        a = np.array(a, copy=True)
    return a


def run_staged(
    cache: dict,
    key: Any,
    describe: Callable[[], tuple[str, list[str], str | None]],
    body: Callable[[Frontend, list[Any]], Any],
    args: list[Any],
    backend: str,
) -> Any:
    """Call the compiled program for ``args``' signature, building it on a miss.
    ``describe()`` gives (program name, argument names, docstring); it is only called on a
    miss, so a hit does no analysis at all."""
    sig = (key, backend, tuple(signature(a) for a in args))
    c = cache.get(sig)
    if c is None:
        name, arg_names, doc = describe()
        prog = trace(body, [abstractify(a) for a in args], name, arg_names)
        c = Compiled(prog, backend, doc=doc)
        cache[sig] = c
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
