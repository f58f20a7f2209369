"""Normalisation layers: ``LayerNorm``."""

from __future__ import annotations

from typing import Any

from .. import dtype as mstype
from .. import ops
from ..common.initializer import initializer
from ..errors import ArgumentValueError
from ..tensor import Parameter
from .cell import Cell


class LayerNorm(Cell):
    """``LayerNorm(normalized_shape, begin_norm_axis=-1, begin_params_axis=-1, gamma_init="ones",
    beta_init="zeros", epsilon=1e-7)``: ``(x - mean) / sqrt(var + epsilon) * gamma + beta``, the
    mean and (biased) variance over the axes from ``begin_norm_axis`` on, as MindSpore's
    ``nn.LayerNorm``; ``gamma`` and ``beta`` have shape ``normalized_shape``."""

    def __init__(
        self,
        normalized_shape: Any,
        begin_norm_axis: int = -1,
        begin_params_axis: int = -1,
        gamma_init: Any = "ones",
        beta_init: Any = "zeros",
        epsilon: float = 1e-7,
        dtype: Any = mstype.float32,
    ):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ArgumentValueError(f"LayerNorm: normalized_shape must be positive ints, got {normalized_shape!r}")
        self.normalized_shape = shape
        self.begin_norm_axis, self.begin_params_axis, self.epsilon = begin_norm_axis, begin_params_axis, epsilon
        self.gamma = Parameter(initializer(gamma_init, shape, dtype), name="gamma")
        self.beta = Parameter(initializer(beta_init, shape, dtype), name="beta")

    def construct(self, x):
        nd = len(x.shape)
        axes = tuple(range(self.begin_norm_axis % nd, nd))
        mean = x.mean(axes, True)
        centered = x - mean
        var = (centered * centered).mean(axes, True)
        return centered / ops.sqrt(var + self.epsilon) * self.gamma + self.beta
