"""ForwardValueAndGrad API example (001): WithLossCell + SoftmaxCrossEntropyWithLogits, the
gradients w.r.t. all inputs and the weights.

Expected output:
(Tensor(shape=[1], dtype=Float32, value=[0.00000000e+00]), ((Tensor(shape=[1, 2], dtype=Float32, value=
[[1.00000000e+00, 1.00000000e+00]]), Tensor(shape=[1, 2], dtype=Float32, value=
[[0.00000000e+00, 0.00000000e+00]])), (Tensor(shape=[2, 2], dtype=Float32, value=
[[5.00000000e-01, 5.00000000e-01],
 [5.00000000e-01, 5.00000000e-01]]),)))
"""

import numpy as np

import s2s_ad.nn as nn
import s2s_ad.ops as P
from s2s_ad import Parameter, ParameterTuple, Tensor


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.weight = Parameter(Tensor(np.ones([2, 2]).astype(np.float32)), name="weight")
        self.matmul = P.MatMul()

    def construct(self, x):
        out = self.matmul(x, self.weight)
        return out


net = Net()
criterion = nn.SoftmaxCrossEntropyWithLogits()
net_with_criterion = nn.WithLossCell(net, criterion)
weight = ParameterTuple(net.trainable_params())
train_network = nn.ForwardValueAndGrad(net_with_criterion, weights=weight, get_all=True, get_by_list=True)
inputs = Tensor(np.ones([1, 2]).astype(np.float32))
labels = Tensor(np.zeros([1, 2]).astype(np.float32))
result = train_network(inputs, labels)
print(result)
