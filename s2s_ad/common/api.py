"""``s2s_ad.common.api``: ``jit`` (and its older name ``ms_function``), as ``mindspore.common.api``."""

from ..api import jit

ms_function = jit

__all__ = ["jit", "ms_function"]
