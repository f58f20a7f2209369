"""``s2s_ad.ops.operations``: the module MindSpore programs import as
``from mindspore.ops import operations as P`` (``P.MatMul()``, ``P.Assign()``, ...).

Every name of :mod:`s2s_ad.ops` is available here, so a program ported by changing its
imports finds the primitive classes (``P.Sin()``, ``P.ReduceSum(keep_dims=True)``) it uses."""

from __future__ import annotations

import sys
from typing import Any


def __getattr__(name: str) -> Any:
    """A name of :mod:`s2s_ad.ops` (loaded before this module: it is the package)."""
    try:
        return getattr(sys.modules["s2s_ad.ops"], name)
    except AttributeError:
        raise AttributeError(
            f"module 's2s_ad.ops.operations' has no attribute {name!r} (s2s_ad.ops has none)"
        ) from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(dir(sys.modules["s2s_ad.ops"])))
