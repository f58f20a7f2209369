"""Backends: turn generated source into a callable.

* ``python``: the source run as plain numpy (PYNATIVE mode; the reference in tests);
* ``numba``: the same source compiled with ``numba.njit`` (GRAPH mode, the default).

Compiled functions are cached in memory by source text (the ``S2S_AD_MAX_PROGRAMS`` most
recently used, see :mod:`s2s_ad.lru`), so identical programs compile once per process, and on
disk (:mod:`s2s_ad.diskcache`), so they compile once per machine. The generated source shown
in tracebacks (``linecache``) is kept as long as a function compiled from it lives.
"""

from __future__ import annotations

import linecache
import threading
from collections.abc import Callable

import numpy as np

from .codegen import LOOP_NS, loop_namespace, module_header, register_source
from .diskcache import NJIT_OPTIONS, compile_cached
from .lru import ProgramCache, Users

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
            ns: dict = {"np": np}
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


def _njit(fn: Callable) -> Callable:
    # Numba's optimisation level is its own NUMBA_OPT environment variable (read when numba
    # is imported); lower levels compile faster.
    import numba

    return numba.njit(fn, cache=False, **NJIT_OPTIONS)


def standalone_source(src: str, fname: str, target: str) -> str:
    """``src`` (the generated source of function ``fname``) as a module that runs on its own:
    with the imports it needs (:func:`~s2s_ad.codegen.module_header`) and, for ``target``
    ``"numba"``, compiled as GRAPH_MODE compiles it (``numba.njit`` with the same options).
    The Numba source's fused loops call functions of ``s2s_ad``'s loop namespace, so that
    module imports ``s2s_ad``; the numpy one needs only numpy."""
    if target == "numpy":
        return module_header(False, "the numpy source PYNATIVE_MODE runs") + src
    if target != "numba":
        raise ValueError(f"standalone_source: target must be 'numpy' or 'numba', got {target!r}")
    options = ", ".join(f'{k}="{v}"' if isinstance(v, str) else f"{k}={v!r}" for k, v in NJIT_OPTIONS.items())
    header = module_header(True, "the Numba source GRAPH_MODE compiles", imports=("import numba",))
    return f"{header}{src}\n\n{fname} = numba.njit({fname}, {options})\n"
