"""What a trace read from outside its arguments: the record that keys warm starts.

While :func:`recording` is active, the interpreter notes the source files of the functions it
inlines, the globals it looks up (by module and name), the attributes it reads from modules,
and the functions with closures it inlines. :mod:`s2s_ad.warmstart` stores this beside a
compiled program and checks it in a later process before it reuses the program without
tracing: a changed file or global value means the program is traced again.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()


class Reads:
    """The outside reads of one trace. ``unkeyable`` says why the trace cannot be keyed
    (``None`` when it can): a global looked up in a namespace that is no importable module's."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        # (module name, attribute path) -> the value read: a global is ("mod", ("name",)),
        # a module's attribute read as ``mod.attr`` is ("mod", ("attr",)) too
        self.values: dict[tuple[str, str], Any] = {}
        self.closures: dict[int, types.FunctionType] = {}
        self.unkeyable: str | None = None


def current() -> Reads | None:
    """The record of the trace running in this thread, or ``None`` when none is recorded."""
    return getattr(_local, "reads", None)


@contextmanager
def recording() -> Iterator[Reads]:
    """Record the outside reads of the traces run inside the ``with`` block."""
    saved = current()
    _local.reads = r = Reads()
    try:
        yield r
    finally:
        _local.reads = saved
        if saved is not None:  # a program staged while another is traced: the outer one read it all too
            saved.files |= r.files
            saved.values.update(r.values)
            saved.closures.update(r.closures)
            saved.unkeyable = saved.unkeyable or r.unkeyable


def note_function(func: types.FunctionType, file: str) -> None:
    """``func``, read from ``file``, is being inlined."""
    r = current()
    if r is not None:
        r.files.add(file)
        if func.__closure__:
            r.closures[id(func)] = func


def note_global(namespace: dict, name: str, value: Any) -> None:
    """A function looked up global ``name`` in ``namespace`` (its module's dictionary)."""
    r = current()
    if r is not None:
        module = namespace.get("__name__")
        if not isinstance(module, str) or getattr(sys.modules.get(module), "__dict__", None) is not namespace:
            r.unkeyable = f"a global of a namespace that is no imported module ({module!r})"
            return
        r.values[(module, name)] = value


def note_module_attribute(module: types.ModuleType, attr: str, value: Any) -> None:
    """``module.attr`` was read."""
    r = current()
    if r is not None:
        name = module.__name__
        if sys.modules.get(name) is not module:
            r.unkeyable = f"an attribute of module {name!r}, which is not the one imported under that name"
            return
        r.values[(name, attr)] = value


__all__ = ["Reads", "current", "note_function", "note_global", "note_module_attribute", "recording"]
