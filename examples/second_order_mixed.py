"""GradOperation seed (003), higher order: mixed partials of x*x*y through sens tuples.

Expected output:
[10] [8.] [8.] [0.]
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
        self.mul = ops.Mul()

    def construct(self, x, y):
        x_square = self.mul(x, x)
        x_square_y = self.mul(x_square, y)
        return x_square_y


class Grad(nn.Cell):
    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation(get_all=True, sens_param=False)
        self.network = network

    def construct(self, x, y):
        gout = self.grad(self.network)(x, y)  # return dx, dy
        return gout


class GradSec(nn.Cell):
    def __init__(self, network):
        super().__init__()
        self.grad = ops.GradOperation(get_all=True, sens_param=True)
        self.network = network
        self.sens1 = Tensor(np.array([1]).astype("float32"))
        self.sens2 = Tensor(np.array([0]).astype("float32"))

    def construct(self, x, y):
        dxdx, dxdy = self.grad(self.network)(x, y, (self.sens1, self.sens2))
        dydx, dydy = self.grad(self.network)(x, y, (self.sens2, self.sens1))
        return dxdx, dxdy, dydx, dydy


net = Net()
firstgrad = Grad(net)  # first order
secondgrad = GradSec(firstgrad)  # second order
x_train = Tensor(np.array([4], dtype=np.float32))
y_train = Tensor(np.array([5], dtype=np.float32))
dxdx, dxdy, dydx, dydy = secondgrad(x_train, y_train)
print(dxdx, dxdy, dydx, dydy)
