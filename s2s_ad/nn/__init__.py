"""``s2s_ad.nn``: ``Cell`` and building blocks."""

from .cell import Cell

__all__ = ["Cell"]
