"""Backends: turn generated source into a callable.

* ``python``: the source run as plain numpy (PYNATIVE mode; the reference in tests);
* ``numba``: the same source compiled with ``numba.njit`` (GRAPH mode, the default).

Compiled functions are cached in memory by source text (the ``S2S_AD_MAX_PROGRAMS`` most
recently used, see :mod:`s2s_ad.lru`), so identical programs compile once per process, and on
disk (:mod:`s2s_ad.diskcache`), so they compile once per machine. The generated source shown
in tracebacks (``linecache``) is kept as long as a function compiled from it lives.
"""

from __future__ import annotations

import functools
import linecache
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .buffers import Workspaces
from .codegen import LOOP_NS, generate, loop_namespace, module_header, register_source, uses_special
from .diskcache import NJIT_OPTIONS, FirstCall, compile_cached
from .ir import Program, subprograms
from .lru import ProgramCache, Users
from .primitives import SPECIAL_NS, get_op

if TYPE_CHECKING:
    from .llvmloops import Kernel

_CACHE = ProgramCache()  # (source, backend) -> compiled function, recently used ones
_LOCK = threading.Lock()
# generated source file names -> live compiled functions showing them in tracebacks
_SOURCES = Users(lambda filename: linecache.cache.pop(filename, None))


def compile_source(src: str, fname: str, backend: str) -> Callable:
    key = (src, backend)
    with _LOCK:
        fn = _CACHE.get(key)
        if fn is not None:
            _CACHE.used(key)
            return fn
        fn = compile_cached(src, fname) if backend == "numba" else None
        if fn is None:
            filename = register_source(src, fname)
            ns: dict = {"np": np, "Workspaces": Workspaces}
            if uses_special(src):
                import scipy.special  # only programs that call a special function (erf) need it

                ns[SPECIAL_NS] = scipy.special
            if backend == "numba":
                ns[LOOP_NS] = loop_namespace()
            exec(compile(src, filename, "exec"), ns)
            fn = ns[fname]
            if backend == "numba":
                fn = _njit(fn)
            elif backend != "python":
                raise ValueError(f"unknown backend {backend!r}")
            _SOURCES.hold(filename, fn)  # in linecache while fn lives
        return _CACHE.put(key, fn)


def split_lines() -> int:
    """Generated Numba sources longer than this many lines (``S2S_AD_SPLIT_LINES``, default
    ``SPLIT_LINES``; 0: never) are split into loop kernels (:func:`split_program`)."""
    raw = os.environ.get("S2S_AD_SPLIT_LINES", "").strip()
    try:
        return int(raw) if raw else SPLIT_LINES
    except ValueError:
        return SPLIT_LINES


SPLIT_LINES = 150


def split_program(prog: Program, fname: str, doc: str | None, whole: str) -> tuple[str, dict[str, str]] | None:
    """``(main source, {kernel name: kernel source})`` of ``prog`` split into loop kernels
    when its whole Numba source ``whole`` is long (:func:`split_lines`), else ``None``.

    Numba compiles a long function in time that grows with its length (type inference and
    LLVM over every statement, the matrix products' wrappers included); split, it compiles
    only the fused loops, each a short function, while the matrix products and reductions
    between them run as numpy calls from Python (a few microseconds per statement). A long
    program without loops (matrix products, reductions, indexing) gets no kernels: Numba
    would only wrap its numpy calls, so it is not compiled at all. A short program is split
    too when its time goes to library calls (:func:`library_bound`)."""
    limit = split_lines()
    if limit <= 0 or any(subprograms(e) for e in prog.eqns):
        # a program with control flow stays whole: its loops must run as machine code
        return None
    if whole.count("\n") <= limit and not library_bound(prog):
        return None
    kernels: dict[str, str] = {}
    main = generate(prog, fname, doc, fuse=True, kernels=kernels)
    return main, kernels  # no kernels: numpy calls only, nothing for Numba to compile


# ops that are library calls (BLAS, LAPACK) in numpy and in Numba alike, and whose Numba
# wrappers take long to compile (each operand layout anew). Not ``batch_matmul`` or the
# convolutions: Numba code computes small ones as loops, faster than numpy's calls.
_LIBRARY_OPS = frozenset({"matmul", "solve", "matrix_inverse"})
LIBRARY_FLOPS_PER_EQUATION = 10_000


def library_bound(prog: Program) -> bool:
    """Whether ``prog``'s time goes mostly to library calls: its matrix products (and
    solves, inverses) multiply-add at least ``LIBRARY_FLOPS_PER_EQUATION`` times per
    equation of the program, and ten times per element its elementwise code computes. Such a
    program is split even when it is short: Numba would only wrap those calls, at a compile
    cost of about half a second each, while running the statements between them from Python
    costs microseconds per call (about 8% of the W9 Newton step's 100 µs)."""
    flops = 0.0
    elements = 0.0  # computed by elementwise code, which Numba's fused loops do best
    for e in prog.eqns:
        if e.op in _LIBRARY_OPS:
            # m·k·n of a product (m×k)(k×n) is the square root of its three sizes' product;
            # n³ of an n×n inverse, the 3/4 power of its two sizes' product
            sizes = [float(np.prod(a.shape)) for a in (*e.ins[:2], e.outs[0])]
            flops += float(np.prod(sizes)) ** (0.75 if len(sizes) < 3 else 0.5)
        elif get_op(e.op).pointwise and e.outs:
            elements += float(np.prod(e.outs[0].shape))
    return flops >= LIBRARY_FLOPS_PER_EQUATION * len(prog.eqns) and flops >= 10 * elements


def compile_split(src: str, fname: str, kernels: dict[str, str], only: set[str] | None = None) -> Callable:
    """A program split into loop kernels (:func:`~s2s_ad.codegen.generate` with ``kernels``):
    ``fname`` runs as Python and calls the kernels, each compiled by Numba on its first call
    (through both caches, by its own source: a kernel shared by several programs compiles
    once). With ``only``, the kernels not in it that return nothing are skipped (their arrays
    stay unfilled; a compiling process uses that to compile its share of the kernels)."""
    from . import llvmloops  # the kernel compiler: only split programs need it, not `import s2s_ad`

    main = compile_source(src, fname, "python")
    g = main.__globals__  # type: ignore[attr-defined]
    here = only is None and llvmloops.enabled()
    for k, ks in kernels.items():
        if here:
            numba = functools.partial(compile_source, ks, k, "numba")
            g[k] = _compiled_here(g, k, llvmloops.kernel(ks, k, numba))
            continue
        fn = compile_source(ks, k, "numba") if only is None or k in only or "return" in ks else _skip
        g[k] = _checked_once(g, k, fn) if type(fn) is FirstCall else fn
    return main


def _compiled_here(g: dict, name: str, kernel: Kernel) -> Callable:
    """Kernel ``name`` of a split program whose globals are ``g``, compiled by
    :mod:`s2s_ad.llvmloops` on its first call for the types it meets: from then on the
    program calls the compiled function itself."""

    def first(*args: Any) -> Any:
        fn = kernel.function(args)
        g[name] = fn = _checked_once(g, name, fn) if type(fn) is FirstCall else fn
        return fn(*args)

    return first


def _checked_once(g: dict, name: str, first: FirstCall) -> Callable:
    """``first`` (machine code from the disk cache, checked on its first call) as kernel
    ``name`` of a split program whose globals are ``g``: once its first call has run, the
    program calls the Numba dispatcher itself (a Python frame less on every later call).
    ``first`` stays in ``g`` (``_entries``): it holds the cache entry's module, which the
    dispatcher needs importable as long as it may load or compile machine code."""
    g.setdefault("_entries", {})[name] = first

    def call(*args: Any) -> Any:
        out = first(*args)
        g[name] = first.dispatcher
        return out

    return call


def _skip(*args: object) -> None:
    """A kernel left out of :func:`compile_split` (see its ``only``)."""


def _njit(fn: Callable) -> Callable:
    # Numba's optimisation level is its own NUMBA_OPT environment variable (read when numba
    # is imported); lower levels compile faster.
    import numba

    return numba.njit(fn, cache=False, **NJIT_OPTIONS)


def direct_entry(fn: Callable) -> Callable:
    """The machine-code entry of a Numba dispatcher ``fn`` compiled for one signature of
    scalars only (numbers and booleans), else ``fn``. Calling the entry skips the dispatcher's
    typing of the arguments and its search of the compiled signatures (about 0.1 µs of a
    scalar program's call); a caller passes it only arguments of that signature (the generated
    dispatchers do: their signature lookup or checks ran first). A scalar converts exactly as
    the dispatcher would convert it; an array argument is never passed this way, since its
    layout would go unchecked."""
    overloads = getattr(fn, "overloads", None)
    if not overloads or len(overloads) != 1:
        return fn
    from numba.core import types

    ((sig, cres),) = overloads.items()
    if all(isinstance(t, (types.Number, types.Boolean)) for t in sig):
        return cres.entry_point
    return fn


def standalone_source(src: str, fname: str, target: str) -> str:
    """``src`` (the generated source of function ``fname``) as a module that runs on its own:
    with the imports it needs (:func:`~s2s_ad.codegen.module_header`) and, for ``target``
    ``"numba"``, compiled as GRAPH_MODE compiles it (``numba.njit`` with the same options).
    The Numba source's fused loops call functions of ``s2s_ad``'s loop namespace, so that
    module imports ``s2s_ad``; the numpy one needs only numpy."""
    if target == "numpy":
        special = (f"import scipy.special as {SPECIAL_NS}",) if uses_special(src) else ()
        return module_header(False, "the numpy source PYNATIVE_MODE runs", imports=special) + src
    if target != "numba":
        raise ValueError(f"standalone_source: target must be 'numpy' or 'numba', got {target!r}")
    options = ", ".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={v!r}" for k, v in NJIT_OPTIONS.items())
    header = module_header(True, "the Numba source GRAPH_MODE compiles", imports=("import numba",))
    return f"{header}{src}\n\n{fname} = numba.njit({fname}, {options})\n"
