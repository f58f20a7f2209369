"""``s2s_ad.common.tensor``: ``Tensor``, as ``mindspore.common.tensor``."""

from ..tensor import Tensor

__all__ = ["Tensor"]
