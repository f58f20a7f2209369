"""value_and_grad seed (002): a Cell, gradient w.r.t. the input at grad_position=1.

Expected output:
[-0. 18.]
[0. 6.]
"""

import s2s_ad
from s2s_ad import Tensor, nn
from s2s_ad.ops import value_and_grad


# Cell object to be differentiated
class Net(nn.Cell):
    def construct(self, x, y, z):
        return x * y * z


x = Tensor([1, 2], s2s_ad.float32)
y = Tensor([-2, 3], s2s_ad.float32)
z = Tensor([0, 3], s2s_ad.float32)
net = Net()
grad_fn = value_and_grad(net, grad_position=1)
output, inputs_gradient = grad_fn(x, y, z)
print(output)
print(inputs_gradient)
