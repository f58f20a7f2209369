"""Modules imported on first use, so that ``import s2s_ad`` stays quick.

SymPy (about half a second to import) is needed only to differentiate and simplify, Numba
only to compile: a process that runs programs from the disk cache needs neither.

* :func:`lazy_module` stands for a module in a module's namespace (``sp = lazy_module("sympy")``):
  the first attribute read imports it; each name read is then kept on the stand-in, so later
  reads are plain attribute reads.
* :class:`Deferred` names an attribute of a module without importing it (the op table's
  SymPy formulas and heads, ``sym.exp``): calling it, or :func:`resolve`, imports the module.
"""

from __future__ import annotations

import importlib
from typing import Any


class _LazyModule:
    """A stand-in for module ``name``, imported on the first attribute read."""

    def __init__(self, name: str):
        self.__dict__["_lazy_name"] = name

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        value = getattr(importlib.import_module(self._lazy_name), attr)
        self.__dict__[attr] = value  # the next read finds it without this call
        return value

    def __repr__(self) -> str:
        return f"<module {self._lazy_name!r}, imported on first use>"


def lazy_module(name: str) -> Any:
    """A stand-in for module ``name`` that imports it when an attribute is first read."""
    return _LazyModule(name)


class Deferred:
    """``module.attr``, imported when first called or resolved (:func:`resolve`)."""

    __slots__ = ("module", "attr", "_value")

    def __init__(self, module: str, attr: str):
        self.module, self.attr = module, attr
        self._value: Any = None

    def resolve(self) -> Any:
        """The named object (its module is imported on the first call)."""
        if self._value is None:
            self._value = getattr(importlib.import_module(self.module), self.attr)
        return self._value

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{self.module}.{self.attr}"


class DeferredNames:
    """``names.attr`` is ``Deferred(module, attr)``: names of a module that is not imported yet."""

    def __init__(self, module: str):
        self._module = module

    def __getattr__(self, attr: str) -> Deferred:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Deferred(self._module, attr)


def resolve(x: Any) -> Any:
    """``x`` itself, or the object a :class:`Deferred` names."""
    return x.resolve() if type(x) is Deferred else x


__all__ = ["Deferred", "DeferredNames", "lazy_module", "resolve"]
