"""Losses: ``MSELoss``, ``SoftmaxCrossEntropyWithLogits``."""

from __future__ import annotations

from .. import ops
from ..errors import ArgumentError, ArgumentValueError
from .cell import Cell

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(who: str, reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ArgumentValueError(f"{who}: reduction must be one of {', '.join(_REDUCTIONS)}, got {reduction!r}")
    return reduction


def _reduce(x, reduction):
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


class MSELoss(Cell):
    """``MSELoss(reduction="mean")(logits, labels)``: the mean (or sum, or elementwise
    ``"none"``) of ``(logits - labels)**2``."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = _check_reduction("MSELoss", reduction)

    def construct(self, logits, labels):
        return _reduce(ops.square(logits - labels), self.reduction)


class SoftmaxCrossEntropyWithLogits(Cell):
    """``SoftmaxCrossEntropyWithLogits(sparse=False, reduction="none")(logits, labels)``:
    ``-sum(labels * log_softmax(logits), axis=-1)`` per example (then reduced).

    With ``sparse=True`` the labels are integer class indices (one-hot encoded). As in MindSpore, the labels receive a
    zero gradient and the gradient w.r.t. the logits is ``softmax(logits) - labels``: the
    labels are treated as a distribution (for labels that do not sum to one this differs
    from the derivative of the printed formula). The log-softmax is computed stably, shifted
    by the row maximum.
    """

    def __init__(self, sparse: bool = False, reduction: str = "none"):
        super().__init__()
        if not isinstance(sparse, bool):
            raise ArgumentError(f"SoftmaxCrossEntropyWithLogits: sparse must be a bool, got {type(sparse).__name__}")
        self.sparse = sparse
        self.reduction = _check_reduction("SoftmaxCrossEntropyWithLogits", reduction)

    def construct(self, logits, labels):
        if self.sparse:
            labels = ops.one_hot(labels, logits.shape[-1], 1.0, 0.0)
        labels = ops.stop_gradient(labels)
        shifted = logits - ops.stop_gradient(logits.max(-1, True))
        lse = ops.log(ops.exp(shifted).sum(-1))
        mass = labels.sum(-1)
        # Value: mass * lse - sum(labels * shifted); gradient: softmax - labels.
        loss = lse + (mass - 1.0) * ops.stop_gradient(lse) - (labels * shifted).sum(-1)
        return _reduce(loss, self.reduction)
