"""GradOperation seed (003), higher order: the second derivative of Sin by nesting.

Expected output:
[-0.841471]
"""

import numpy as np

import s2s_ad.context as context
import s2s_ad.nn as nn
import s2s_ad.ops as ops
from s2s_ad import Tensor

context.set_context(mode=context.GRAPH_MODE, device_target="GPU")


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.sin = ops.Sin()

    def construct(self, x):
        out = self.sin(x)
        return out


class Grad(nn.Cell):
    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation()
        self.network = network

    def construct(self, x):
        gout = self.grad(self.network)(x)
        return gout


class GradSec(nn.Cell):
    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation()
        self.network = network

    def construct(self, x):
        gout = self.grad(self.network)(x)
        return gout


net = Net()
firstgrad = Grad(net)  # first order
secondgrad = GradSec(firstgrad)  # second order
x_train = Tensor(np.array([1.0], dtype=np.float32))
output = secondgrad(x_train)
print(output)
