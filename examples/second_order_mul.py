"""GradOperation seed (003), higher order: single input, x * x, second derivative.

Expected output:
[2. 2. 2.]
"""

import s2s_ad.context as context
import s2s_ad.nn as nn
import s2s_ad.ops as ops
from s2s_ad import Tensor
from s2s_ad import dtype as mstype

context.set_context(mode=context.GRAPH_MODE, device_target="GPU")


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.mul = ops.Mul()

    def construct(self, x):
        out = self.mul(x, x)
        return out


class Grad(nn.Cell):
    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation(sens_param=False)
        self.network = network

    def construct(self, x):
        gout = self.grad(self.network)(x)
        return gout


class GradSec(nn.Cell):
    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation(sens_param=False)
        self.network = network

    def construct(self, x):
        gout = self.grad(self.network)(x)
        return gout


net = Net()
firstgrad = Grad(net)  # first order
secondgrad = GradSec(firstgrad)  # second order
x = Tensor([0.1, 0.2, 0.3], dtype=mstype.float32)
output = secondgrad(x)
print(output)
