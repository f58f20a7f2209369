"""Exceptions raised by s2s_ad.

Every error a user can trigger is an :class:`S2SError`; where it comes from a line of user
code, the message starts with ``file:line`` and quotes that line.
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """A position in user source code."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def source_line(self) -> str:
        return linecache.getline(self.file, self.line).strip()


class S2SError(Exception):
    """Base class of every error s2s_ad raises on purpose."""

    def __init__(self, message: str, loc: Loc | None = None):
        self.loc = loc
        self.bare_message = message
        if loc is not None:
            src = loc.source_line()
            message = f"{loc}: {message}" + (f"\n    {src}" if src else "")
        super().__init__(message)


class UnsupportedSyntaxError(S2SError):
    """A Python construct that cannot be compiled (try/except, lambda, while, ...)."""


class ShapeError(S2SError, ValueError):
    """Operands whose shapes do not fit the operation."""


class TensorIndexError(ShapeError, IndexError):
    """An index out of range for the tensor it indexes (known while compiling)."""


class ArgumentError(S2SError, TypeError):
    """Wrong number, type or structure of arguments (inputs, sens, weights)."""


class ArgumentValueError(S2SError, ValueError):
    """An argument of the right type with an invalid value (e.g. both ``grad_position`` and
    ``weights`` None, or a position out of range)."""


class CacheError(S2SError):
    """A disk cache operation s2s_ad refuses, e.g. clearing a directory that is not its cache."""


class SourceUnavailableError(S2SError):
    """The Python source of a function or Cell cannot be read."""


class NotSupportedError(S2SError, NotImplementedError):
    """A MindSpore feature s2s_ad does not provide, used where it would change a result (a
    Cell's custom ``bprop`` rule in a differentiated network)."""
