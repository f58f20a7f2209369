"""Bounded caches of compiled programs.

Every cache of compiled programs keyed by argument signature is a :class:`ProgramCache`: at
most ``S2S_AD_MAX_PROGRAMS`` entries (default 64; eager operations eight times that), the
least recently used evicted first, so a function called with ever new shapes does not hold
ever more compiled code.
"""

from __future__ import annotations

import os
import threading
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

DEFAULT_MAX_PROGRAMS = 64
_warned_max = False


def max_programs() -> int:
    """How many compiled programs (argument signatures) one function keeps per transform:
    ``S2S_AD_MAX_PROGRAMS``, default 64."""
    global _warned_max
    raw = os.environ.get("S2S_AD_MAX_PROGRAMS", "").strip()
    if not raw:
        return DEFAULT_MAX_PROGRAMS
    try:
        n = int(raw)
        if n >= 1:
            return n
    except ValueError:
        pass
    if not _warned_max:
        _warned_max = True
        warnings.warn(
            f"S2S_AD_MAX_PROGRAMS={raw!r} is not a positive whole number; using {DEFAULT_MAX_PROGRAMS}",
            RuntimeWarning,
            stacklevel=3,
        )
    return DEFAULT_MAX_PROGRAMS


class ProgramCache(OrderedDict):
    """Compiled programs by key, least recently used first. :meth:`lookup` returns an entry,
    building it on a miss; a hit calls :meth:`used` (``move_to_end``); :meth:`put` evicts the
    least recently used entries beyond ``max_programs() * scale``."""

    def __init__(self, scale: int = 1):
        super().__init__()
        self.scale = scale

    def used(self, key: Any) -> None:
        try:
            self.move_to_end(key)
        except KeyError:  # evicted meanwhile by another thread
            pass

    def lookup(self, key: Any, build: Callable[..., Any], *build_args: Any) -> Any:
        """The entry for ``key``, now the most recently used; on a miss
        ``build(*build_args)``'s result, stored (nothing is stored when ``build`` raises)."""
        value = self.get(key)
        if value is None:
            return self.put(key, build(*build_args))
        self.used(key)
        return value

    def put(self, key: Any, value: Any) -> Any:
        self[key] = value
        self.used(key)
        limit = max_programs() * self.scale
        while len(self) > limit:
            try:
                self.popitem(last=False)
            except KeyError:
                break
        return value


class Users:
    """How many live objects use each named resource (a generated module, a source text); the
    last one's release calls ``drop(name)``, so evicted programs free what they held."""

    def __init__(self, drop: Callable[[str], Any]):
        self.drop = drop
        self.count: dict[str, int] = {}
        self.lock = threading.RLock()

    def hold(self, name: str, user: Any = None) -> None:
        """One more user of ``name``; with ``user``, released when that object is collected."""
        with self.lock:
            self.count[name] = self.count.get(name, 0) + 1
        if user is not None:
            weakref.finalize(user, self.release, name)

    def release(self, name: str) -> None:
        with self.lock:
            n = self.count.get(name, 0) - 1
            if n > 0:
                self.count[name] = n
            else:
                self.count.pop(name, None)
                self.drop(name)

    def names(self) -> set[str]:
        with self.lock:
            return set(self.count)


__all__ = ["DEFAULT_MAX_PROGRAMS", "ProgramCache", "Users", "max_programs"]
