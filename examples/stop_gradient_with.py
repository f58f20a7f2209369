"""GradOperation seed (003): stop_gradient — with `out2 = stop_gradient(out2)`.

Expected output:
    [[4.5, 2.7, 3.6],
     [4.5, 2.7, 3.6]]   (exactly 4.51, 2.7, 3.6)
"""

import s2s_ad.nn as nn
import s2s_ad.ops as ops
from s2s_ad import Tensor
from s2s_ad import dtype as mstype
from s2s_ad.ops import stop_gradient


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.matmul = ops.MatMul()

    def construct(self, x, y):
        out1 = self.matmul(x, y)
        out2 = self.matmul(x, y)
        out2 = stop_gradient(out2)
        out = out1 + out2
        return out


class GradNetWrtX(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.grad_op = ops.GradOperation()

    def construct(self, x, y):
        gradient_function = self.grad_op(self.net)
        return gradient_function(x, y)


x = Tensor([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]], dtype=mstype.float32)
y = Tensor([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]], dtype=mstype.float32)
output = GradNetWrtX(Net())(x, y)
print(output)
