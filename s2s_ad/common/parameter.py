"""``s2s_ad.common.parameter``: ``Parameter`` and ``ParameterTuple``, as ``mindspore.common.parameter``."""

from ..tensor import Parameter, ParameterTuple

__all__ = ["Parameter", "ParameterTuple"]
