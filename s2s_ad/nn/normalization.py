"""Normalisation layers: ``LayerNorm``, ``BatchNorm1d``, ``BatchNorm2d``."""

from __future__ import annotations

from typing import Any

from .. import dtype as mstype
from .. import ops
from ..common.initializer import initializer
from ..errors import ArgumentValueError, ShapeError
from ..primitives import fmt_shape
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


class _BatchNorm(Cell):
    """MindSpore's ``BatchNorm1d``/``BatchNorm2d``: ``(x - mean) / sqrt(var + eps) * gamma + beta``
    over every axis but the channel axis 1. In training mode (``set_train()``) the mean and
    (biased) variance are the batch's, and the moving statistics are updated (``ops.assign``,
    not differentiated): ``moving = momentum * moving + (1 - momentum) * batch``, with the
    unbiased batch variance for ``moving_variance``. In evaluation mode the moving statistics
    are used. ``use_batch_statistics`` True/False forces one of the two."""

    ranks: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.9,
        affine: bool = True,
        gamma_init: Any = "ones",
        beta_init: Any = "zeros",
        moving_mean_init: Any = "zeros",
        moving_var_init: Any = "ones",
        use_batch_statistics: bool | None = None,
        data_format: str = "NCHW",
        dtype: Any = mstype.float32,
    ):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features <= 0:
            raise ArgumentValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        if not 0.0 <= momentum <= 1.0:
            raise ArgumentValueError(f"{name}: momentum must be in [0, 1], got {momentum!r}")
        if data_format != "NCHW":
            raise ArgumentValueError(f"{name}: only data_format='NCHW' is supported, got {data_format!r}")
        self.num_features, self.eps, self.momentum = num_features, float(eps), float(momentum)
        self.use_batch_statistics = use_batch_statistics
        shape = (num_features,)
        self.gamma = Parameter(initializer(gamma_init, shape, dtype), name="gamma", requires_grad=affine)
        self.beta = Parameter(initializer(beta_init, shape, dtype), name="beta", requires_grad=affine)
        self.moving_mean = Parameter(initializer(moving_mean_init, shape, dtype), name="mean", requires_grad=False)
        self.moving_variance = Parameter(
            initializer(moving_var_init, shape, dtype), name="variance", requires_grad=False
        )

    def __s2s_stage__(self, tr: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        shape = tr.atom(args[0]).shape if len(args) == 1 and not kwargs else None
        if shape is not None and (len(shape) not in self.ranks or shape[1] != self.num_features):
            raise tr.error(
                f"{type(self).__name__}({self.num_features}): expected an input of rank "
                f"{' or '.join(map(str, self.ranks))} with {self.num_features} channels on axis 1, got shape "
                f"{fmt_shape(shape)}",
                ShapeError,
            )
        return super().__s2s_stage__(tr, args, kwargs)

    def construct(self, x):
        nd = len(x.shape)
        axes = (0,) + tuple(range(2, nd))
        shape = (1, self.num_features) + (1,) * (nd - 2)
        batch = self.training if self.use_batch_statistics is None else self.use_batch_statistics
        if batch:
            mean = x.mean(axes, True)
            centered = x - mean
            var = (centered * centered).mean(axes, True)
            n = x.size // self.num_features
            m = self.momentum
            new_mean = ops.stop_gradient(mean.reshape((self.num_features,)))
            new_var = ops.stop_gradient(var.reshape((self.num_features,))) * (n / max(n - 1, 1))
            ops.assign(self.moving_mean, self.moving_mean * m + new_mean * (1.0 - m))
            ops.assign(self.moving_variance, self.moving_variance * m + new_var * (1.0 - m))
        else:
            centered = x - self.moving_mean.reshape(shape)
            var = self.moving_variance.reshape(shape)
        return centered / ops.sqrt(var + self.eps) * self.gamma.reshape(shape) + self.beta.reshape(shape)


class BatchNorm1d(_BatchNorm):
    """``BatchNorm1d(num_features, eps=1e-5, momentum=0.9, affine=True, ...)`` of an ``(N, C)``
    or ``(N, C, L)`` input (see :class:`_BatchNorm`)."""

    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """``BatchNorm2d(num_features, eps=1e-5, momentum=0.9, affine=True, ...)`` of an
    ``(N, C, H, W)`` input (see :class:`_BatchNorm`)."""

    ranks = (4,)
