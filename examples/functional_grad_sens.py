"""Functional grad seed (003): sens_param=True scales each output.

Expected output:
(Tensor(shape=[2, 2], dtype=Float32, value=
[[ 4.00000000e+00,  3.60000000e+01],
 [ 2.60000000e+01,  0.00000000e+00]]), Tensor(shape=[2, 2], dtype=Float32, value=
[[ 2.00000000e+00,  3.60000000e+01],
 [ 1.40000000e+01,  6.00000000e+00]]))
"""

import numpy as np

import s2s_ad.context as context
import s2s_ad.nn as nn
from s2s_ad import Tensor
from s2s_ad.ops import grad

context.set_context(mode=context.GRAPH_MODE)


class Net(nn.Cell):
    def construct(self, x, y, z):
        return x**2 + y**2 + z**2, x * y * z


x = Tensor(np.array([[1, 2], [3, 4]]).astype(np.float32))
y = Tensor(np.array([[-2, 3], [-1, 2]]).astype(np.float32))
z = Tensor(np.array([[0, 3], [5, -1]]).astype(np.float32))
v = Tensor(np.array([[-1, 3], [2, 1]]).astype(np.float32))
net = Net()
output = grad(net, grad_position=(1, 2), sens_param=True)(x, y, z, (v, v))
print(output)
