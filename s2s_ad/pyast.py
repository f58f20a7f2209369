"""``ast.parse`` for s2s_ad's threads.

In CPython 3.11 the AST constructor keeps one recursion counter per interpreter, not per
thread; a parse on one thread that lets another run meanwhile (the garbage collector can run
Python code while the syntax tree's objects are made) may end with ``SystemError: AST
constructor recursion depth mismatch`` (CPython gh-106905, fixed in 3.12). s2s_ad parses on
the caller's thread (tracing, code generation) and on its compile worker (translating loop
kernels, :mod:`s2s_ad.llvmloops`), so every parse of its own goes through :func:`parse`,
under one lock.
"""

from __future__ import annotations

import ast
import threading
from typing import Any

__all__ = ["parse"]

_LOCK = threading.Lock()


def parse(source: str, mode: str = "exec") -> Any:
    """``ast.parse(source, mode=mode)`` (an ``ast.Module``, or an ``ast.Expression`` for
    ``mode="eval"``), one at a time among s2s_ad's threads."""
    with _LOCK:
        return ast.parse(source, mode=mode)
