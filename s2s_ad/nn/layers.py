"""Layers: ``Dense`` and the activation cells (``ReLU``, ``Tanh``, ``Sigmoid``)."""

from __future__ import annotations

from typing import Any

from .. import dtype as mstype
from .. import ops
from ..common.initializer import initializer
from ..errors import ArgumentError, ArgumentValueError
from ..tensor import Parameter
from .cell import Cell


class ReLU(Cell):
    """max(x, 0) elementwise."""

    def __init__(self):
        super().__init__()
        self.relu = ops.ReLU()

    def construct(self, x):
        return self.relu(x)


class Tanh(Cell):
    """tanh(x) elementwise."""

    def __init__(self):
        super().__init__()
        self.tanh = ops.Tanh()

    def construct(self, x):
        return self.tanh(x)


class Sigmoid(Cell):
    """1 / (1 + exp(-x)) elementwise."""

    def __init__(self):
        super().__init__()
        self.sigmoid = ops.Sigmoid()

    def construct(self, x):
        return self.sigmoid(x)


_ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def get_activation(name: Any) -> Any:
    """An activation Cell from its name (``"relu"``, ``"tanh"``, ``"sigmoid"``); a Cell or
    primitive is returned as is; None stays None."""
    if name is None or isinstance(name, Cell) or isinstance(name, ops.Primitive):
        return name
    if isinstance(name, str):
        cls = _ACTIVATIONS.get(name.lower())
        if cls is None:
            raise ArgumentValueError(f"unknown activation {name!r}; known: {', '.join(sorted(_ACTIVATIONS))}")
        return cls()
    raise ArgumentError(f"activation must be a name, a Cell, a primitive or None, got {type(name).__name__}")


class Dense(Cell):
    """``Dense(in_channels, out_channels, weight_init="normal", bias_init="zeros",
    has_bias=True, activation=None)``: ``activation(x @ weight.T + bias)``.

    ``weight`` has shape ``(out_channels, in_channels)``, ``bias`` ``(out_channels,)``, as in
    MindSpore. Inputs of rank > 2 are flattened to 2-D over the leading axes and restored.
    ``weight_init``/``bias_init`` take an initializer name, an Initializer, a number or a
    Tensor of the right shape.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        weight_init: Any = "normal",
        bias_init: Any = "zeros",
        has_bias: bool = True,
        activation: Any = None,
        dtype: Any = mstype.float32,
    ):
        super().__init__()
        for n, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ArgumentValueError(f"Dense: {n} must be a positive int, got {v!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.has_bias = bool(has_bias)
        self.weight = Parameter(initializer(weight_init, (out_channels, in_channels), dtype), name="weight")
        if self.has_bias:
            self.bias = Parameter(initializer(bias_init, (out_channels,), dtype), name="bias")
        self.activation = get_activation(activation)
        self.matmul = ops.MatMul(transpose_b=True)

    def construct(self, x):
        shape = x.shape
        if len(shape) != 2:
            x = x.reshape((-1, shape[-1]))
        x = self.matmul(x, self.weight)
        if self.has_bias:
            x = x + self.bias
        if self.activation is not None:
            x = self.activation(x)
        if len(shape) != 2:
            x = x.reshape(shape[:-1] + (self.out_channels,))
        return x

    def __repr__(self) -> str:
        return (
            f"Dense<input_channels={self.in_channels}, output_channels={self.out_channels}, has_bias={self.has_bias}>"
        )
