"""The seeds' MatMul network, used by ``s2s-ad demo``."""

from __future__ import annotations

import numpy as np

from . import dtype as mstype
from . import nn, ops
from .tensor import Parameter, Tensor


class Net(nn.Cell):
    """``out = MatMul(x * z, y)`` with a Parameter ``z`` (the GradOperation guide's network)."""

    def __init__(self):
        super().__init__()
        self.matmul = ops.MatMul()
        self.z = Parameter(Tensor(np.array([1.0], np.float32)), name="z")

    def construct(self, x, y):
        x = x * self.z
        out = self.matmul(x, y)
        return out


def inputs() -> tuple[Tensor, Tensor]:
    x = Tensor([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]], dtype=mstype.float32)
    y = Tensor([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]], dtype=mstype.float32)
    return x, y
