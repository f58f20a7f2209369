"""``s2s_ad.common``: parameter initializers and the module names MindSpore programs import
from ``mindspore.common`` (``dtype``, ``tensor``, ``parameter``, ``api``, ``initializer``)."""

import sys

from .. import dtype
from ..tensor import Parameter, ParameterTuple, Tensor
from . import initializer, parameter, tensor
from .initializer import set_seed

# ``import mindspore.common.dtype as mstype`` and ``from mindspore.common import dtype``: the
# package's dtype module under this name too
sys.modules[__name__ + ".dtype"] = dtype

__all__ = ["dtype", "initializer", "parameter", "tensor", "Parameter", "ParameterTuple", "Tensor", "set_seed"]
