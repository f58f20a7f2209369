"""value_and_grad seed (002): nn.Dense + nn.MSELoss through a plain function, three ways:
gradients w.r.t. the inputs, w.r.t. the weights, and both.

Expected output (the data are random; the seed checks shapes):
(16, 1)
(16, 10) (16, 10)
(16, 1)
2 2
(16, 1)
(16, 10) (16, 10)
2 2
"""

import numpy as np

from s2s_ad import Tensor, nn
from s2s_ad.ops import value_and_grad

# For given network to be differentiated with both inputs and weights, there are 3 cases.
net = nn.Dense(10, 1)
loss_fn = nn.MSELoss()


def forward(inputs, labels):
    logits = net(inputs)
    loss = loss_fn(logits, labels)
    return loss, logits


inputs = Tensor(np.random.randn(16, 10).astype(np.float32))
labels = Tensor(np.random.randn(16, 1).astype(np.float32))
weights = net.trainable_params()

# Case 1: gradient with respect to inputs.
# For has_aux is set True, only loss contributes to the gradient.
grad_fn = value_and_grad(forward, grad_position=0, weights=None, has_aux=True)
(loss, logits), inputs_gradient = grad_fn(inputs, labels)
print(logits.shape)
print(inputs.shape, inputs_gradient.shape)

# Case 2: gradient with respect to weights.
# For has_aux is set True, only loss contributes to the gradient.
grad_fn = value_and_grad(forward, grad_position=None, weights=weights, has_aux=True)
(loss, logits), params_gradient = grad_fn(inputs, labels)
print(logits.shape)
print(len(weights), len(params_gradient))

# Case 3: gradient with respect to inputs and weights.
# For has_aux is set False, both loss and logits contribute to the gradient.
grad_fn = value_and_grad(forward, grad_position=0, weights=weights, has_aux=False)
(loss, logits), (inputs_gradient, params_gradient) = grad_fn(inputs, labels)
print(logits.shape)
print(inputs.shape, inputs_gradient.shape)
print(len(weights), len(params_gradient))
