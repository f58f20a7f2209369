"""The source of user functions, for pickles that carry functions by value.

s2s_ad compiles a function from its Python source. A function pickled by reference (defined
in an importable module) finds its source on the other side by importing; one pickled by
value (cloudpickle, for functions of ``__main__`` and closures) arrives without a file: its
code is named ``<dynamic-code>``. So a pickle of a transformed function or Cell carries, beside
such functions, the lines of their ``def`` (:func:`carried_sources`), and unpickling gives them
back to the parser (:func:`remember`), keyed by the unpickled code object.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from typing import Any

# code object -> (the lines of its ``def``, the first one's number, the file it was read from)
_GIVEN: dict[types.CodeType, tuple[list[str], int, str]] = {}


def source_lines(func: types.FunctionType) -> tuple[list[str], int, str]:
    """``(lines, first line number, file)`` of ``func``'s ``def``: given by an unpickled
    pickle, else read by :mod:`inspect`; ``OSError`` or ``TypeError`` when there is none."""
    given = _GIVEN.get(func.__code__)
    if given is not None:
        return given
    lines, first = inspect.getsourcelines(func)
    return lines, first, inspect.getsourcefile(func) or func.__code__.co_filename


def module_reference(obj: Any, module: Any, qualname: Any) -> tuple[str, str] | None:
    """``(module, qualname)`` when following ``qualname`` in the (imported) ``module`` gives
    ``obj`` itself, so a pickle can refer to it; else None. ``__main__`` is never referred to:
    another process has a ``__main__`` of its own."""
    if not isinstance(module, str) or not isinstance(qualname, str) or module == "__main__" or "<" in qualname:
        return None
    target = sys.modules.get(module)
    try:
        for part in qualname.split("."):
            target = getattr(target, part)
    except AttributeError:
        return None
    return (module, qualname) if target is obj else None


def from_module(module: str, qualname: str) -> Any:
    """What :func:`module_reference` refers to: import ``module`` and follow ``qualname``."""
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _by_value(obj: Any) -> bool:
    return module_reference(obj, getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)) is None


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _code_names(c)
    return names


def carried_sources(*roots: Any) -> list[tuple[types.FunctionType, list[str], int, str]]:
    """``(function, lines, first line, file)`` for the functions a pickle of ``roots`` holds by
    value (not importable by name): the roots themselves, the methods of Cell classes defined
    in ``__main__`` or a function, and what they reach through globals, closures, attributes
    of wrappers (``__wrapped__``, ``fn``) and bound methods. Functions without a source are
    left out (compiling them reports that)."""
    out: list[tuple[types.FunctionType, list[str], int, str]] = []
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (int, float, str, bytes, bool, types.ModuleType)):
            continue
        seen.add(id(obj))
        if isinstance(obj, types.FunctionType):
            if not _by_value(obj):
                continue
            try:
                out.append((obj, *source_lines(obj)))
            except (OSError, TypeError):
                pass
            g = obj.__globals__
            stack.extend(g[n] for n in _code_names(obj.__code__) if n in g)
            stack.extend(c.cell_contents for c in obj.__closure__ or () if _filled(c))
        elif isinstance(obj, types.MethodType):
            stack += [obj.__func__, obj.__self__]
        elif isinstance(obj, type):
            if obj.__module__ != "builtins" and _by_value(obj):
                stack.extend(vars(obj).values())
                stack.extend(obj.__bases__)
        elif isinstance(obj, (staticmethod, classmethod)):
            stack.append(obj.__func__)
        elif isinstance(obj, property):
            stack += [obj.fget, obj.fset]
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif not hasattr(obj, "__array__"):  # data (arrays, Tensors) holds no functions
            d = getattr(obj, "__dict__", None)
            if isinstance(d, dict):  # a transformed function, a Cell, a wrapper: what it holds
                stack.extend(d.values())
            stack.append(type(obj))
    return out


_EMPTY = object()


def _filled(cell: Any) -> bool:
    try:
        return cell.cell_contents is not _EMPTY
    except ValueError:
        return False


def remember(carried: list[tuple[types.FunctionType, list[str], int, str]]) -> None:
    """Give the parser the sources an unpickled pickle carried (see :func:`carried_sources`)."""
    for func, lines, first, file in carried:
        _GIVEN[func.__code__] = (lines, first, file)


__all__ = ["carried_sources", "from_module", "module_reference", "remember", "source_lines"]


_SOURCES_KEY = "__s2s_sources__"


def state_with_sources(state: dict[str, Any], *roots: Any) -> dict[str, Any]:
    """A pickled object's ``state`` plus the sources of the functions ``roots`` hold that are
    pickled by value (:func:`carried_sources`), for :func:`state_without_sources` to restore."""
    carried = carried_sources(*roots)
    return {**state, _SOURCES_KEY: carried} if carried else state


def state_without_sources(state: dict[str, Any]) -> dict[str, Any]:
    """An unpickled ``state`` with its carried sources taken out and remembered."""
    state = dict(state)
    remember(state.pop(_SOURCES_KEY, []))
    return state
