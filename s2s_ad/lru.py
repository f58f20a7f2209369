"""Bounded caches of compiled programs.

Every cache of compiled programs keyed by argument signature is a :class:`ProgramCache`: at
most ``S2S_AD_MAX_PROGRAMS`` entries (default 64; eager operations eight times that), the
least recently used evicted first, so a function called with ever new shapes does not hold
ever more compiled code.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
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
    """Compiled programs by key, least recently used first. A lookup that hits calls
    :meth:`used` (``move_to_end``); :meth:`put` evicts the least recently used entries beyond
    ``max_programs() * scale``."""

    def __init__(self, scale: int = 1):
        super().__init__()
        self.scale = scale

    def used(self, key: Any) -> None:
        try:
            self.move_to_end(key)
        except KeyError:  # evicted meanwhile by another thread
            pass

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


__all__ = ["DEFAULT_MAX_PROGRAMS", "ProgramCache", "max_programs"]
