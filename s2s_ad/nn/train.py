"""Training cells: ``TrainOneStepCell`` (forward, gradient and optimizer update as one compiled
program) and ``WithGradCell``."""

from __future__ import annotations

from typing import Any

from .. import ops
from ..api import GradOperation, value_and_grad
from ..errors import ArgumentError
from ..tensor import ParameterTuple
from .cell import Cell
from .optim import Optimizer
from .wrap import WithLossCell


class TrainOneStepCell(Cell):
    """``TrainOneStepCell(network, optimizer, sens=1.0, return_grad=False)``: one training step.

    ``network`` returns the loss (a :class:`WithLossCell`, say); called with its inputs, the
    cell computes the loss, the gradients of ``sens * loss`` with respect to the optimizer's
    Parameters and the optimizer's update, all in one compiled program, and returns the loss
    (with ``return_grad``: ``(loss, gradients)``). The Parameters are updated in place."""

    def __init__(self, network: Any, optimizer: Any, sens: float | None = None, return_grad: bool = False):
        super().__init__(auto_prefix=False)  # the network keeps its Parameters' names, as in MindSpore
        if not isinstance(network, Cell):
            raise ArgumentError(f"TrainOneStepCell: network must be a Cell, got {type(network).__name__}")
        if not isinstance(optimizer, Optimizer):
            raise ArgumentError(f"TrainOneStepCell: optimizer must be an nn optimizer, got {type(optimizer).__name__}")
        self.network = network
        self.network.set_grad()
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = GradOperation(get_by_list=True)
        # the loss and the gradients from one forward pass: a network that assigns Parameters as
        # it runs (BatchNorm's moving statistics, Dropout's random key) does so once per step
        self.loss_and_grads = value_and_grad(self.network, None, self.weights)
        self.sens = 1.0 if sens is None else float(sens)
        self.return_grad = bool(return_grad)

    def construct(self, *inputs):
        loss, grads = self.loss_and_grads(*inputs)
        if self.sens != 1.0:
            scaled = ()
            for g in grads:
                scaled = scaled + (g * self.sens,)
            grads = scaled
        loss = ops.depend(loss, self.optimizer(grads))
        if self.return_grad:
            return loss, grads
        return loss


class WithGradCell(Cell):
    """``WithGradCell(network, loss_fn=None, sens=None)``: called with the network's inputs
    (and the label, with ``loss_fn``), returns the gradients of the loss with respect to the
    network's trainable Parameters (a tuple). Without ``loss_fn`` the network returns the loss."""

    def __init__(self, network: Any, loss_fn: Any = None, sens: Any = None):
        super().__init__(auto_prefix=False)
        self.network = network
        self.loss_fn = loss_fn
        self.network_with_loss = network if loss_fn is None else WithLossCell(network, loss_fn)
        self.weights = ParameterTuple(network.trainable_params())
        self.sens = sens
        self.grad = GradOperation(get_by_list=True, sens_param=sens is not None)

    def construct(self, *inputs):
        if self.sens is None:
            return self.grad(self.network_with_loss, self.weights)(*inputs)
        return self.grad(self.network_with_loss, self.weights)(*inputs, self.sens)
