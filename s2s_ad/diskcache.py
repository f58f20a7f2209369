"""The disk cache: compiled programs that survive the process.

Each program the Numba backend compiles is written as a module ``<fname>_<hash>.py`` under
the cache directory and compiled with ``numba.njit(cache=True)``, so Numba stores the machine
code next to it (in ``__pycache__``). ``<hash>`` covers everything that determines the
compiled code: the generated source (which spells out shapes and dtypes), the compile
options, and the versions of s2s_ad, Numba, NumPy and Python. A later process that generates
the same source loads the machine code instead of compiling.

* Location: ``S2S_AD_CACHE_DIR`` when set, else the platform's cache directory
  (``$XDG_CACHE_HOME/s2s_ad`` or ``~/.cache/s2s_ad`` on Linux, ``~/Library/Caches/s2s_ad``
  on macOS, ``%LOCALAPPDATA%\\s2s_ad\\Cache`` on Windows). ``S2S_AD_DISK_CACHE=0`` turns it off.
* Ownership: a directory s2s_ad uses is marked with ``CACHEDIR.TAG`` (the Cache Directory
  Tagging spec, so backup tools skip it) and ``S2S_AD_CACHE`` (s2s_ad's own marker). s2s_ad
  takes the configured directory when it is missing, empty, already marked, or holds nothing
  but entries; a directory holding anything else (a project folder) is left alone and the
  entries go in its subfolder ``s2s_ad_cache/``. Only files named like entries
  (``<name>_<20 hex digits>.py``, their temporary files, ``__pycache__/<name>_<hash>.*``, and
  the warm-start records ``<name>_<hash>.warm`` of :mod:`s2s_ad.warmstart`)
  are ever counted or deleted, and ``clear`` refuses (:class:`~s2s_ad.errors.CacheError`) a
  directory that is not an s2s_ad cache.
* Size: at most ``S2S_AD_CACHE_MAX_BYTES`` bytes (default 1 GiB; suffixes K, M, G, T count
  powers of 1024; ``0`` means no limit). The directory is measured when a process writes its
  first new entry and then every ``EVICT_EVERY`` (32) new entries, and the least recently
  used entries are deleted until it fits (use: the access time of the module, which s2s_ad
  sets at every load); entries loaded by the running process are kept.
* Read-only: a directory s2s_ad cannot write to (a read-only file system, another user's
  cache) is not used: one warning, and programs compile in memory. Numba loads machine code
  only through a cache it can write to (else it would write to its own user-wide cache,
  outside this one's limit).
* Writes are atomic (a temporary file renamed into place), so two processes compiling the
  same program at once both succeed, and a reader never sees half a module.
* A corrupt entry (a module whose text is not the source it is named for, or machine code
  Numba cannot load) is rebuilt, with one warning per process, never an error.
* ``s2s-ad cache info`` and ``s2s-ad cache clear`` show and empty the cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import re
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import context
from .codegen import loop_namespace, module_header
from .errors import CacheError
from .lru import Users
from .version import __version__

_VERSION_KEY: str | None = None
_warned: set[str] = set()
_lock = threading.Lock()
NJIT_OPTIONS = {"nogil": True, "error_model": "numpy"}
_HEADER = module_header(True, "disk cache entry")

MARKER = "S2S_AD_CACHE"
TAG = "CACHEDIR.TAG"
SUBFOLDER = "s2s_ad_cache"
DEFAULT_MAX_BYTES = 1 << 30
EVICT_EVERY = 32
_TAG_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by s2s_ad.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)
_MARKER_TEXT = (
    "s2s_ad disk cache, format 1: compiled programs, safe to delete.\n"
    "`s2s-ad cache info` shows it, `s2s-ad cache clear` empties it.\n"
)
# Entry files: the module, its temporary files while being written, and (in __pycache__)
# Numba's index and machine code and Python's bytecode, all named after the module.
_STEM = r"\w+_[0-9a-f]{20}"
_ENTRY = re.compile(rf"({_STEM})\.py")
_TEMP = re.compile(rf"\.({_STEM})\..*\.tmp")
_MACHINE = re.compile(rf"({_STEM})\..+")
# A warm-start record (:mod:`s2s_ad.warmstart`): what a call needs to run an entry untraced.
_RECORD = re.compile(rf"({_STEM})\.warm")

_stores: dict[str, Path] = {}  # cache directory -> its marked entries directory, checked writable
_writes = 0
# s2s_ad_cache.* modules -> number of live compiled functions using them
_MODULES = Users(lambda name: sys.modules.pop(name, None))


def cache_dir() -> Path | None:
    """The configured directory of the disk cache (``S2S_AD_CACHE_DIR`` or the platform's),
    or ``None`` when it is turned off. The entries are in it or, when it holds other files,
    in its subfolder ``s2s_ad_cache`` (see :func:`entries_dir`)."""
    if not context.disk_cache_on():
        return None
    env = os.environ.get("S2S_AD_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "s2s_ad"
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "s2s_ad" / "Cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "s2s_ad"


def max_bytes() -> int | None:
    """The size limit of the disk cache in bytes (``S2S_AD_CACHE_MAX_BYTES``, default 1 GiB),
    ``None`` for no limit."""
    raw = os.environ.get("S2S_AD_CACHE_MAX_BYTES", "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    m = re.fullmatch(r"(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?", raw.lower())
    if m is None:
        _warn_once(
            "max_bytes",
            f"S2S_AD_CACHE_MAX_BYTES={raw!r} is not a size (e.g. 1000000, 500M, 2G); using the default 1 GiB",
        )
        return DEFAULT_MAX_BYTES
    n = int(float(m[1]) * 1024 ** " kmgt".index(m[2] or " "))
    return n if n > 0 else None


def _versions() -> str:
    global _VERSION_KEY
    if _VERSION_KEY is None:
        # numba and cpumath (which compiles with it) load only when an entry is first named
        import numba
        import numpy

        from . import cpumath  # its source is part of the key; importing it compiles with Numba

        # which function each name of the loops' namespace is (the op table chooses)
        loop_functions = sorted(
            f"{k}={v.__module__}.{v.__name__}" for k, v in vars(loop_namespace()).items() if callable(v)
        )

        _VERSION_KEY = "|".join(
            [
                f"s2s_ad {__version__}",
                f"numba {numba.__version__}",
                f"numpy {numpy.__version__}",
                f"python {sys.version}",
                platform.machine(),
                repr(sorted(NJIT_OPTIONS.items())),
                f"NUMBA_OPT {os.environ.get('NUMBA_OPT', '')}",
                # the machine code of an entry includes the cpumath functions it calls (their
                # source is vecmath's)
                hashlib.sha256(Path(cpumath.__file__).read_bytes()).hexdigest(),
                hashlib.sha256(Path(cpumath.__file__).with_name("vecmath.py").read_bytes()).hexdigest(),
                " ".join(loop_functions),
            ]
        )
    return _VERSION_KEY


def entry_name(src: str, fname: str) -> str:
    """The module name of ``src``: the function name and a hash of what determines it."""
    digest = hashlib.sha256((_versions() + "\0" + src).encode()).hexdigest()[:20]
    return f"{fname}_{digest}"


def has_entry(src: str, fname: str) -> bool:
    """Whether the disk cache holds ``src``'s module and Numba's index of its machine code
    (loading it then compiles nothing, unless the index lacks the argument types asked for)."""
    directory = entries_dir()
    if directory is None:
        return False
    stem = entry_name(src, fname)
    try:
        return (directory / f"{stem}.py").is_file() and any((directory / "__pycache__").glob(f"{stem}.*.nbi"))
    except OSError:
        return False


def _warn_once(kind: str, message: str) -> None:
    if kind not in _warned:
        _warned.add(kind)
        warnings.warn(f"s2s_ad disk cache: {message}", RuntimeWarning, stacklevel=4)


def _write_atomic(path: Path, data: str | bytes, prefix: str | None = None) -> None:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` through a temporary file in its
    folder (named ``prefix...tmp``), so a reader never sees a partly written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix or f".{path.stem}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ------------------------------------------------------------------ which directory
def _is_marked(directory: Path) -> bool:
    return (directory / MARKER).is_file()


def _only_entries(directory: Path) -> bool:
    """Whether ``directory`` is missing or holds nothing but s2s_ad entries (empty, or a cache
    written before the marker existed). Raises ``OSError`` when it is not a directory."""
    try:
        items = list(os.scandir(directory))
    except FileNotFoundError:
        return True
    for it in items:
        if it.name == "__pycache__" and it.is_dir(follow_symlinks=False):
            try:
                if not all(_MACHINE.fullmatch(n) for n in os.listdir(it.path)):
                    return False
            except OSError:
                return False
        elif not (
            it.is_file(follow_symlinks=False)
            and (_ENTRY.fullmatch(it.name) or _TEMP.fullmatch(it.name) or _RECORD.fullmatch(it.name))
        ):
            return False
    return True


def _locate(root: Path) -> Path:
    """The directory that holds (or will hold) the entries of cache directory ``root``:
    ``root`` when it is marked or holds nothing else, else its subfolder. Creates nothing."""
    if _is_marked(root) or _only_entries(root):
        return root
    return root / SUBFOLDER


def entries_dir() -> Path | None:
    """The directory of the entries (the cache directory or its ``s2s_ad_cache`` subfolder),
    ``None`` when the cache is off. Creates nothing."""
    root = cache_dir()
    return None if root is None else _locate(root)


def _mark(directory: Path) -> None:
    if directory.exists() and not _only_entries(directory):
        raise CacheError(f"{directory} holds files s2s_ad did not write, so s2s_ad does not use it as its cache")
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / TAG).exists():
        _write_atomic(directory / TAG, _TAG_TEXT)
    _write_atomic(directory / MARKER, _MARKER_TEXT)


def _writable(directory: Path) -> None:
    """Raise ``OSError`` unless files can be created in ``directory`` and its ``__pycache__``
    (the test Numba makes before it writes machine code there)."""
    tempfile.TemporaryFile(dir=directory).close()
    cache = directory / "__pycache__"
    cache.mkdir(exist_ok=True)
    tempfile.TemporaryFile(dir=cache).close()


def _store(root: Path) -> Path | None:
    """The marked, writable entries directory of ``root``, created and marked on first use;
    ``None`` (after one warning) when it cannot be written."""
    store = _stores.get(str(root))
    if store is not None and _is_marked(store):
        return store
    store = _locate(root)
    if not _is_marked(store):
        _mark(store)
    try:
        _writable(store)
    except OSError as e:
        _warn_once(
            "unwritable",
            f"{store} is not writable ({e}); its entries are not used, compiling in memory. "
            "Set S2S_AD_CACHE_DIR to a writable directory, or S2S_AD_DISK_CACHE=0.",
        )
        return None
    _stores[str(root)] = store
    return store


# ------------------------------------------------------------------ compiling through the cache
def _purge_machine_code(stem: str, directory: Path) -> None:
    for p in (directory / "__pycache__").glob(f"{stem}.*"):
        try:
            p.unlink()
        except OSError:
            pass


def _touch(path: Path) -> None:
    """Record a use of an entry: its access time, for eviction (its modification time,
    which Numba may check, is kept)."""
    try:
        st = path.stat()
        os.utime(path, ns=(time.time_ns(), st.st_mtime_ns))
    except OSError:
        pass


def _wrote(directory: Path) -> None:
    global _writes
    _writes += 1
    if _writes % EVICT_EVERY == 1:
        evict(directory=directory)


def compile_cached(src: str, fname: str) -> Callable | None:
    """``numba.njit(cache=True)`` of ``src``'s function ``fname``, through the disk cache;
    ``None`` when the cache is off or its directory cannot be written (the caller then
    compiles in memory)."""
    root = cache_dir()
    if root is None:
        return None
    stem = entry_name(src, fname)
    text = _HEADER + src
    try:
        with _lock:
            directory = _store(root)
            if directory is None:
                return None
            path = directory / f"{stem}.py"
            try:
                existing = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                existing = None
            except (OSError, UnicodeDecodeError):
                existing = ""
            if existing is not None and existing != text:
                _warn_once(
                    "corrupt", f"the entry {path} was corrupt (its text is not the program it is named for); rebuilt it"
                )
                _purge_machine_code(stem, directory)
                existing = None
            if existing is None:
                _write_atomic(path, text)
                _wrote(directory)
            else:
                _touch(path)
            module = _load_module(stem, path)
    except (OSError, CacheError) as e:
        _warn_once(
            "unwritable",
            f"cannot use {root} ({e}); compiling in memory. Set S2S_AD_CACHE_DIR to a writable directory, or S2S_AD_DISK_CACHE=0.",
        )
        return None
    try:
        fn = FirstCall(getattr(module, fname), stem, directory)
    except BaseException as e:
        _MODULES.release(module.__name__)
        if isinstance(e, RuntimeError) and "cannot cache" in str(e):  # Numba found no writable place
            _warn_once("unwritable", f"Numba cannot cache in {directory} ({e}); compiling in memory")
            return None
        raise
    weakref.finalize(fn, _MODULES.release, module.__name__)  # the loader's hold, now fn's
    return fn


def _store_file(relative: str, data: bytes, prefix: str | None = None) -> bool:
    """Write the file ``relative`` of the entries directory (atomically; a temporary file
    named ``prefix...``); ``False`` when the cache is off or cannot be written."""
    root = cache_dir()
    if root is None:
        return False
    try:
        with _lock:
            directory = _store(root)
            if directory is None:
                return False
            _write_atomic(directory / relative, data, prefix=prefix)
            _wrote(directory)
    except (OSError, CacheError):
        return False
    return True


def write_record(name: str, data: bytes) -> bool:
    """Store the warm-start record ``name`` (``<name>_<20 hex digits>``); ``False`` when the
    cache is off or cannot be written."""
    return _store_file(f"{name}.warm", data)


def write_machine_code(stem: str, data: bytes) -> bool:
    """Store machine code that is not Numba's (``__pycache__/<stem>.llo``: an object file of
    :mod:`s2s_ad.llvmloops`); ``False`` when the cache is off or cannot be written. Its
    temporary file is named like the entry's machine code, as Numba's are."""
    return _store_file(f"__pycache__/{stem}.llo", data, prefix=f"{stem}.llo.")


def read_machine_code(stem: str) -> bytes | None:
    """The machine code :func:`write_machine_code` stored as ``stem`` (its use recorded, for
    eviction), or ``None``."""
    try:
        directory = entries_dir()
        if directory is None:
            return None
        path = directory / "__pycache__" / f"{stem}.llo"
        data = path.read_bytes()
        os.utime(path)  # machine code without a module is used as of its modification time
        return data
    except OSError:
        return None


def read_record(name: str) -> bytes | None:
    """The warm-start record ``name``, or ``None`` when there is none (or no cache)."""
    try:
        directory = entries_dir()
        return None if directory is None else (directory / f"{name}.warm").read_bytes()
    except OSError:  # no cache yet, or a configured path that is no directory
        return None


def load_entry(stem: str, src: str, fname: str) -> Callable | None:
    """The compiled function ``fname`` of the existing entry ``stem`` of source ``src`` (its
    machine code loaded on the first call, as :func:`compile_cached` gives it), without
    computing the entry's name; ``None`` when the entry is gone (evicted), is not that source
    (corrupt: :func:`compile_cached` rebuilds it) or the cache cannot be used."""
    root = cache_dir()
    if root is None:
        return None
    try:
        with _lock:
            directory = _store(root)
            if directory is None:
                return None
            path = directory / f"{stem}.py"
            try:
                if path.read_text(encoding="utf-8") != _HEADER + src:
                    return None
            except (OSError, UnicodeDecodeError):
                return None
            _touch(path)
            module = _load_module(stem, path)
    except (OSError, CacheError):
        return None
    try:
        fn = FirstCall(getattr(module, fname), stem, directory)
    except BaseException:
        _MODULES.release(module.__name__)
        return None
    weakref.finalize(fn, _MODULES.release, module.__name__)
    return fn


def _load_module(stem: str, path: Path) -> Any:
    """The module of entry ``stem``, registered in ``sys.modules`` (Numba's cached machine code
    refers to its module by name: it must be importable) with one more user; the caller
    releases it with ``_MODULES.release``."""
    name = f"s2s_ad_cache.{stem}"
    with _MODULES.lock:
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        _MODULES.hold(name)
    return module


class FirstCall:
    """The compiled function, checked on its first call: machine code Numba cannot load from
    the cache (a truncated or damaged file) is deleted and compiled afresh."""

    def __init__(self, py_func: Callable, stem: str, directory: Path):
        import numba

        self.py_func = py_func
        self.stem = stem
        self.directory = directory
        self.dispatcher = numba.njit(py_func, cache=True, **NJIT_OPTIONS)

    def __call__(self, *args: Any) -> Any:
        try:
            return self.dispatcher(*args)
        except Exception as e:
            if not _raised_by_cache(e):
                raise
        self._rebuild()
        return self.dispatcher(*args)

    def compile(self, sig: tuple) -> None:
        """Compile (or load from the cache) the machine code for argument types ``sig``
        without calling it (:mod:`s2s_ad.tiered` compiles in the background this way)."""
        try:
            self.dispatcher.compile(sig)
            return
        except Exception as e:
            if not _raised_by_cache(e):
                raise
        self._rebuild()
        self.dispatcher.compile(sig)

    def _rebuild(self) -> None:
        import numba

        _warn_once(
            "corrupt", f"the compiled code of {self.stem} could not be loaded (corrupt cache file); recompiled it"
        )
        _purge_machine_code(self.stem, self.directory)
        self.dispatcher = numba.njit(self.py_func, cache=True, **NJIT_OPTIONS)


def _raised_by_cache(e: BaseException) -> bool:
    tb = e.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.replace("\\", "/").endswith("numba/core/caching.py"):
            return True
        tb = tb.tb_next
    return False


# ------------------------------------------------------------------ size, info, clear
class _Entry:
    __slots__ = ("files", "size", "used", "module")

    def __init__(self) -> None:
        self.files: list[Path] = []
        self.size = 0
        self.used = 0.0
        self.module = False


def _scan(directory: Path) -> dict[str, _Entry]:
    """The entries in ``directory`` by name, with their files (the module first), total size
    and last use (the module's access or modification time; for machine code left without
    its module, the newest modification time)."""
    out: dict[str, _Entry] = {}
    listings = []
    for d, patterns in ((directory, (_ENTRY, _TEMP, _RECORD)), (directory / "__pycache__", (_MACHINE,))):
        try:
            listings.append((os.scandir(d), patterns))
        except OSError:
            pass
    for it_listing, patterns in listings:
        with it_listing as items:
            for it in items:
                m = next((m for p in patterns if (m := p.fullmatch(it.name))), None)
                if m is None or not it.is_file(follow_symlinks=False):
                    continue
                try:
                    st = it.stat(follow_symlinks=False)
                except OSError:
                    continue
                e = out.setdefault(m[1], _Entry())
                e.size += st.st_size
                if m.re is _ENTRY:
                    e.files.insert(0, Path(it.path))
                    e.module = True
                    e.used = max(st.st_atime, st.st_mtime)
                else:
                    e.files.append(Path(it.path))
                    if not e.module:
                        e.used = max(e.used, st.st_mtime)
    return out


def evict(limit: int | None = None, directory: Path | None = None) -> int:
    """Delete least recently used entries until the cache holds at most ``limit`` bytes
    (default :func:`max_bytes`); returns the number of entries deleted. Entries loaded by
    this process are kept; a directory without s2s_ad's marker is not touched."""
    if directory is None:
        directory = entries_dir()
    limit = max_bytes() if limit is None else limit
    if directory is None or limit is None or not _is_marked(directory):
        return 0
    entries = _scan(directory)
    total = sum(e.size for e in entries.values())
    removed = 0
    loaded = {name.partition(".")[2] for name in _MODULES.names()}
    for stem, e in sorted(entries.items(), key=lambda kv: kv[1].used):
        if total <= limit:
            break
        if stem in loaded:
            continue
        for p in e.files:  # the module first: a process loading it meanwhile writes it anew
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                break
        else:
            total -= e.size
            removed += 1
    return removed


def info() -> dict[str, Any]:
    """The disk cache: ``directory`` (configured), ``entries_dir`` (where the entries are),
    ``enabled``, ``marked`` (whether ``entries_dir`` bears s2s_ad's marker), ``entries``
    (programs), ``bytes`` (of the entries' files) and ``max_bytes`` (the limit, ``None`` for
    none). Only files named like entries are counted."""
    root = cache_dir()
    out: dict[str, Any] = {
        "directory": str(root) if root else None,
        "enabled": root is not None,
        "entries_dir": None,
        "marked": False,
        "entries": 0,
        "bytes": 0,
        "max_bytes": max_bytes(),
    }
    if root is None:
        return out
    try:
        directory = _locate(root)
    except OSError:
        return out
    entries = _scan(directory)
    out.update(
        entries_dir=str(directory),
        marked=_is_marked(directory),
        entries=sum(e.module for e in entries.values()),
        bytes=sum(e.size for e in entries.values()),
    )
    return out


def clear() -> int:
    """Delete every cached program (modules and machine code) and return the number of files
    deleted. Only files named like entries are deleted; a directory that holds other files
    and no s2s_ad cache is refused with :class:`~s2s_ad.errors.CacheError`."""
    root = cache_dir()
    if root is None or not root.exists():
        return 0
    try:
        directory = _locate(root)
    except OSError as e:
        raise CacheError(f"cannot clear the disk cache {root}: {e}") from None
    if directory != root and not _is_marked(directory):
        raise CacheError(
            f"{root} is not an s2s_ad cache: it holds files s2s_ad did not write and no s2s_ad cache "
            f"(an {SUBFOLDER}/ subfolder with the {MARKER} marker file); nothing was removed. "
            "S2S_AD_CACHE_DIR names the cache directory."
        )
    n = 0
    for e in _scan(directory).values():
        for p in e.files:
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
    return n


__all__ = [
    "cache_dir",
    "clear",
    "compile_cached",
    "entries_dir",
    "entry_name",
    "has_entry",
    "evict",
    "info",
    "load_entry",
    "max_bytes",
    "read_record",
    "write_record",
]
