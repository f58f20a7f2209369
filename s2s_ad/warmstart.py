"""Warm starts: a compiled program found on disk by what the call is, before any tracing.

A process whose disk cache (:mod:`s2s_ad.diskcache`) holds a program runs it without SymPy,
the frontend, AD or codegen. The *front key* of a call is a digest of

* the object called (a Cell, a transformed function: :func:`describe` walks it) and what it
  holds: the user function's source file and position, its closure constants and defaults,
  a Cell's attributes and sub-Cells, the transforms and their options. Numbers, strings,
  arrays and tuples count by value; Parameters by name, shape and dtype (never their values);
  modules and library functions by name; classes by name, source file and data attributes;
* the call's signature (:func:`~s2s_ad.runtime.call_key`: backend, compile options,
  argument shapes, dtypes and static values);
* the versions of s2s_ad (and the size and time of its source files), NumPy, Numba (for the
  Numba backend) and Python.

The record stored under it (``<name>_<hash>.warm`` in the cache directory) also lists what
the trace read beyond that (:mod:`s2s_ad.trace.reads`): the source files of every function it
inlined, by content, and the globals and module attributes it looked up, by value. A later
call whose front key matches checks them; any difference means the program is traced again
(and the record rewritten). A trace that reads what cannot be described (an object with no
attributes to compare, a closure of a function the key does not cover) stores no record: that
call is traced in every process, as before.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import platform
import sys
import sysconfig
import types
from pathlib import Path
from typing import Any

import numpy as np

from . import diskcache
from .backend import split_lines
from .tensor import Parameter, Tensor
from .trace.reads import Reads
from .version import __version__

FORMAT = 2  # of the records: a record of another format is not read


class Unkeyable(Exception):
    """The value cannot be described without its identity: no warm start for this call."""


_PACKAGE = Path(__file__).resolve().parent
_LIBRARY_DIRS = tuple(
    {os.path.realpath(p) + os.sep for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"])}
)
_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256 of the file


def file_digest(path: str) -> str:
    """The sha256 of file ``path``'s bytes (kept per process while its size and time stay)."""
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    d = _digests.get(key)
    if d is None:
        d = _digests[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return d


def _library_file(path: str | None) -> bool:
    """Whether ``path`` belongs to Python's standard library, an installed package or s2s_ad
    (code that changes only with a version, which the key holds)."""
    if not path:
        return False
    p = os.path.realpath(path)
    return p.startswith(_LIBRARY_DIRS) or p.startswith(str(_PACKAGE) + os.sep)


def _module_file(module_name: str | None) -> str | None:
    return getattr(sys.modules.get(module_name or ""), "__file__", None)


class Walk:
    """One description of several values: Parameters met are listed in walk order (a program's
    parameters are found again by their place in it), shared objects described once."""

    def __init__(self) -> None:
        self.parameters: list[Parameter] = []
        self.arrays: list[Any] = []  # the Tensors and arrays met, in walk order
        self.functions: set[int] = set()  # ids of the functions whose closures were described
        self._seen: dict[int, int] = {}
        self._alive: list[Any] = []

    def state(self) -> tuple:
        """Where the walk is: :meth:`restore` goes back there (a record that does not hold
        must leave the walk as the key left it, for the record written in its place)."""
        return (dict(self._seen), len(self._alive), len(self.parameters), len(self.arrays), set(self.functions))

    def restore(self, state: tuple) -> None:
        seen, alive, parameters, arrays, functions = state
        self._seen = dict(seen)
        del self._alive[alive:], self.parameters[parameters:], self.arrays[arrays:]
        self.functions = set(functions)

    def describe(self, v: Any) -> Any:
        """A nested tuple of plain values that is equal across processes exactly when ``v``
        would trace the same; raises :class:`Unkeyable`."""
        t = type(v)
        if v is None or t in (bool, int, float, complex, str, bytes):
            return (t.__name__, repr(v))
        if t is np.dtype or isinstance(v, np.dtype):
            return ("dtype", v.str)
        if isinstance(v, (np.ndarray, np.generic)):
            self.arrays.append(v)
            a = np.ascontiguousarray(v)
            return ("array", a.dtype.str, a.shape, hashlib.sha256(a.tobytes()).hexdigest())
        ref = self._seen.get(id(v))
        if ref is not None:
            return ("ref", ref)
        self._seen[id(v)] = len(self._seen)
        self._alive.append(v)  # ids stay unique while the walk lives
        if isinstance(v, Parameter):
            self.parameters.append(v)
            d = v._data
            return ("parameter", v.name, d.shape, d.dtype.str, bool(v.requires_grad))
        if isinstance(v, Tensor):
            self.arrays.append(v)
            return ("tensor", self.describe(v.asnumpy()))
        if isinstance(v, (tuple, list)):
            return (_qualname(t), tuple(self.describe(x) for x in v))
        if isinstance(v, dict):
            return (_qualname(t), tuple((self.describe(k), self.describe(x)) for k, x in v.items()))
        if isinstance(v, (set, frozenset)):
            return (_qualname(t), tuple(sorted(repr(self.describe(x)) for x in v)))
        if isinstance(v, types.ModuleType):
            file = getattr(v, "__file__", None)
            return ("module", v.__name__, None if _library_file(file) or not file else file_digest(file))
        if isinstance(v, types.FunctionType):
            return self._function(v)
        if isinstance(v, types.MethodType):
            return ("method", self.describe(v.__self__), self.describe(v.__func__))
        if isinstance(v, (types.BuiltinFunctionType, np.ufunc)):
            return ("builtin", getattr(v, "__module__", None), getattr(v, "__qualname__", v.__name__))
        if isinstance(v, type):
            return self._class(v)
        return self._object(v)

    def _function(self, f: types.FunctionType) -> Any:
        code = f.__code__
        if _library_file(code.co_filename):
            source = None  # changes only with a version
        else:
            try:
                source = file_digest(code.co_filename)
            except OSError:
                raise Unkeyable(f"the source file of {f.__qualname__} cannot be read") from None
        self.functions.add(id(f))
        cells = []
        for name, c in zip(code.co_freevars, f.__closure__ or ()):
            try:
                cells.append((name, self.describe(c.cell_contents)))
            except ValueError:  # an empty cell
                cells.append((name, None))
        return (
            "function",
            f.__module__,
            f.__qualname__,
            code.co_filename,
            code.co_firstlineno,
            source,
            self.describe(f.__defaults__),
            self.describe(f.__kwdefaults__),
            tuple(cells),
        )

    def _class(self, c: type) -> Any:
        file = _module_file(c.__module__)
        if _library_file(file) or not file:
            return ("class", c.__module__, c.__qualname__)
        data = tuple(
            (k, self.describe(x))
            for k, x in vars(c).items()
            if type(x) in (bool, int, float, complex, str, bytes, tuple) or isinstance(x, (np.ndarray, np.generic))
        )
        return (
            "class",
            c.__module__,
            c.__qualname__,
            file_digest(file),
            data,
            self._closures(c),
            tuple(self._class(b) for b in c.__bases__),
        )

    def _closures(self, c: type) -> tuple:
        """The closures of the methods of class ``c`` (a class defined in a function: its
        ``construct`` may call the enclosing function's local functions, which a trace
        inlines). A closure that cannot be described is marked so; a trace that inlines that
        method stores no record (:func:`_dependencies`)."""
        out = []
        for k, x in vars(c).items():
            if isinstance(x, (staticmethod, classmethod)):
                x = x.__func__
            if not isinstance(x, types.FunctionType) or not x.__closure__:
                continue
            try:
                out.append((k, self.describe(x)))
            except Unkeyable:
                self.functions.discard(id(x))
                out.append((k, "unkeyable"))
        return tuple(out)

    def _object(self, v: Any) -> Any:
        # only instances of classes written in Python, whose state is all in their __dict__
        t = type(v)
        state = getattr(v, "__dict__", None)
        if (
            state is None
            or any(c is not object and not c.__flags__ & _HEAPTYPE for c in t.__mro__)
            or any(s not in ("__dict__", "__weakref__") for s in _slots(t))
        ):
            raise Unkeyable(f"{_qualname(t)} objects hold state s2s_ad cannot compare across processes")
        transient = getattr(t, "_TRANSIENT", ())
        items = tuple((k, self.describe(x)) for k, x in state.items() if k not in transient)
        return ("object", self._class(t), items)


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class defined by a class statement


def _slots(t: type) -> list[str]:
    out: list[str] = []
    for c in t.__mro__:
        s = c.__dict__.get("__slots__", ())
        out.extend([s] if isinstance(s, str) else s)
    return out


def _qualname(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


_VERSIONS: dict[str, str] = {}


def _numba_version() -> str:
    """Numba's version without importing it (a warm start in background mode runs numpy code
    first: importing Numba would double its time): the digest of its version file (or, where
    there is none, the place and time of its package)."""
    spec = importlib.util.find_spec("numba")
    if spec is None or not spec.origin:
        return "no numba"
    package = Path(spec.origin).parent
    try:
        return file_digest(str(package / "_version.py"))
    except OSError:
        st = os.stat(spec.origin)
        return f"{spec.origin}:{st.st_size}:{st.st_mtime_ns}"


def versions(backend: str) -> str:
    """The versions a program depends on: s2s_ad's (with the size and time of its source
    files), NumPy's, Python's and, for the Numba backend, Numba's (read without importing it)."""
    v = _VERSIONS.get(backend)
    if v is None:
        stats = []
        for p in sorted(_PACKAGE.rglob("*.py")):
            st = p.stat()
            stats.append(f"{p.relative_to(_PACKAGE)}:{st.st_size}:{st.st_mtime_ns}")
        parts = [
            f"format {FORMAT}",
            f"s2s_ad {__version__}",
            hashlib.sha256("\n".join(stats).encode()).hexdigest(),
            f"numpy {np.__version__}",
            f"python {sys.version}",
            platform.machine(),
        ]
        if backend == "numba":
            parts += [f"numba {_numba_version()}", f"NUMBA_OPT {os.environ.get('NUMBA_OPT', '')}"]
        v = _VERSIONS[backend] = "|".join(parts)
    return v


def front_key(origin: Any, key: tuple, backend: str) -> tuple[str, Walk] | None:
    """The record name of a call of ``origin`` with cache key ``key`` (the call's signature),
    and the walk that described it; ``None`` when the call cannot be keyed."""
    if backend not in ("python", "numba") or diskcache.cache_dir() is None:
        return None
    walk = Walk()
    try:
        described = walk.describe(origin)
        # the code a program compiles to also depends on whether long programs are split
        text = repr((versions(backend), split_lines() if backend == "numba" else 0, key, described))
    except (Unkeyable, RecursionError, OSError):
        return None
    return "front_" + hashlib.sha256(text.encode()).hexdigest()[:20], walk


def _read_values(reads: list[tuple[str, str]]) -> list[Any]:
    out = []
    for module, name in reads:
        m = sys.modules.get(module)
        if m is None or not hasattr(m, name):
            raise Unkeyable(f"{module}.{name} is gone")
        out.append(getattr(m, name))
    return out


def _dependencies(walk: Walk, reads: Reads) -> dict[str, Any]:
    """What a record checks: the trace's files by content, its reads by description."""
    if reads.unkeyable:
        raise Unkeyable(reads.unkeyable)
    names = sorted(reads.values)
    described = repr(tuple(walk.describe(v) for v in _read_values(names)))
    if any(fid not in walk.functions for fid in reads.closures):
        raise Unkeyable("the trace read the closure of a function the key does not describe")
    files = {}
    for f in sorted(reads.files):
        if not _library_file(f):
            files[f] = file_digest(f)
    return {"files": files, "reads": names, "described": hashlib.sha256(described.encode()).hexdigest()}


def store(name: str, walk: Walk, reads: Reads, record: dict[str, Any], parameters: list[Any]) -> bool:
    """Write ``record`` (what :mod:`s2s_ad.runtime` needs to rebuild the compiled call) under
    ``name`` with the trace's dependencies; the program's ``parameters``, and its constants
    that the walk met, are stored as their places in the walk (a later process reads its own
    objects, as the compiled call does). ``False`` when the trace cannot be keyed."""
    try:
        deps = _dependencies(walk, reads)
        where = {id(p): i for i, p in enumerate(walk.parameters)}
        if any(id(p) not in where for p in parameters):
            raise Unkeyable("a parameter the key does not reach")
        arrays: dict[int, int] = {}
        for i, a in enumerate(walk.arrays):
            arrays.setdefault(id(a), i)
        consts = [("walk", arrays[id(c)]) if id(c) in arrays else ("value", c) for c in record["consts"]]
        data = {
            "format": FORMAT,
            "deps": deps,
            "parameters": [where[id(p)] for p in parameters],
            **record,
            "consts": consts,
        }
        return diskcache.write_record(name, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    except (Unkeyable, RecursionError, OSError, pickle.PicklingError, TypeError, AttributeError):
        return False


def load(name: str, walk: Walk) -> tuple[dict[str, Any], list[Parameter]] | None:
    """The record ``name`` and the program's Parameters (found in ``walk``), when it exists and
    everything it depends on is as it was; else ``None``."""
    raw = diskcache.read_record(name)
    if raw is None:
        return None
    state = walk.state()
    found = _check(raw, walk)
    if found is None:
        walk.restore(state)
    return found


def _check(raw: bytes, walk: Walk) -> tuple[dict[str, Any], list[Parameter]] | None:
    try:
        data = pickle.loads(raw)  # noqa: S301 - written by s2s_ad into its own cache directory
        if data.get("format") != FORMAT:
            return None
        deps = data["deps"]
        for f, digest in deps["files"].items():
            if file_digest(f) != digest:
                return None
        described = repr(tuple(walk.describe(v) for v in _read_values(deps["reads"])))
        if hashlib.sha256(described.encode()).hexdigest() != deps["described"]:
            return None
        parameters = [walk.parameters[i] for i in data["parameters"]]
        data["consts"] = [walk.arrays[v] if how == "walk" else v for how, v in data["consts"]]
    except (
        Unkeyable,
        RecursionError,
        OSError,
        IndexError,
        KeyError,
        TypeError,
        ValueError,
        pickle.UnpicklingError,
        EOFError,
    ):
        return None
    return data, parameters


__all__ = ["Unkeyable", "Walk", "file_digest", "front_key", "load", "store", "versions"]
