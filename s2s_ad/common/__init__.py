"""``s2s_ad.common``: parameter initializers (as ``mindspore.common``)."""

from . import initializer

__all__ = ["initializer"]
