"""value_and_grad seed (002): a function with auxiliary output (has_aux=True), gradients
w.r.t. the inputs at positions (1, 2).

Expected output:
(Tensor(shape=[2], dtype=Float32, value= [ 7.50000000e+01,  7.50000000e+01]),
 Tensor(shape=[2], dtype=Float32, value= [ 5.00000000e+00,  5.00000000e+00]))
(Tensor(shape=[2], dtype=Float32, value= [ 7.50000000e+01,  7.50000000e+01]),
 Tensor(shape=[2], dtype=Float32, value= [ 3.00000000e+01,  3.00000000e+01]))
"""

import numpy as np

from s2s_ad import Tensor, ops
from s2s_ad.ops import value_and_grad


# Function object to be differentiated
def fn(x, y, z):
    res = x * ops.exp(y) * ops.pow(z, 2)
    return res, z


x = Tensor(np.array([3, 3]).astype(np.float32))
y = Tensor(np.array([0, 0]).astype(np.float32))
z = Tensor(np.array([5, 5]).astype(np.float32))
output, inputs_gradient = value_and_grad(fn, grad_position=(1, 2), weights=None, has_aux=True)(x, y, z)
print(output)
print(inputs_gradient)
