"""Functional vjp seed (003): reverse mode, MindSpore r1.6 form (out, grads).

Expected output:
(Tensor(shape=[2, 2], dtype=Float32, value=
[[ 2.00000000e+00, 1.00000000e+01],
[ 3.00000000e+01, 6.80000000e+01]]), (Tensor(shape=[2, 2], dtype=Float32, value=
[[ 3.00000000e+00, 1.20000000e+01],
[ 2.70000000e+01, 4.80000000e+01]]), Tensor(shape=[2, 2], dtype=Float32, value=
[[ 1.00000000e+00, 1.00000000e+00],
[ 1.00000000e+00, 1.00000000e+00]])))
"""

import numpy as np

import s2s_ad.context as context
import s2s_ad.nn as nn
from s2s_ad import Tensor
from s2s_ad.ops import vjp

context.set_context(mode=context.GRAPH_MODE)


class Net(nn.Cell):
    def construct(self, x, y):
        return x**3 + y


x = Tensor(np.array([[1, 2], [3, 4]]).astype(np.float32))
y = Tensor(np.array([[1, 2], [3, 4]]).astype(np.float32))
v = Tensor(np.array([[1, 1], [1, 1]]).astype(np.float32))
output = vjp(Net(), (x, y), v)
print(output)
