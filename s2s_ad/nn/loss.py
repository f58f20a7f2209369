"""Losses: ``MSELoss``, ``SoftmaxCrossEntropyWithLogits``, ``L1Loss``, ``SmoothL1Loss``, ``BCELoss``,
``BCEWithLogitsLoss``, ``CrossEntropyLoss``."""

from __future__ import annotations

from typing import Any

from .. import dtype as mstype
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


# ---- more losses (issue 15)
def _weighted(loss, weight):
    return loss if weight is None else loss * weight


class L1Loss(Cell):
    """``L1Loss(reduction="mean")(logits, labels)``: ``|logits - labels|``, reduced."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = _check_reduction("L1Loss", reduction)

    def construct(self, logits, labels):
        return _reduce(ops.abs(logits - labels), self.reduction)


class SmoothL1Loss(Cell):
    """``SmoothL1Loss(beta=1.0, reduction="none")(logits, labels)``: ``0.5 d**2 / beta`` where
    ``|d| < beta``, else ``|d| - 0.5 beta`` (``d = logits - labels``), reduced."""

    def __init__(self, beta: float = 1.0, reduction: str = "none"):
        super().__init__()
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or beta <= 0:
            raise ArgumentValueError(f"SmoothL1Loss: beta must be a positive number, got {beta!r}")
        self.beta = float(beta)
        self.reduction = _check_reduction("SmoothL1Loss", reduction)

    def construct(self, logits, labels):
        d = ops.abs(logits - labels)
        loss = ops.select(d < self.beta, 0.5 * d * d / self.beta, d - 0.5 * self.beta)
        return _reduce(loss, self.reduction)


class BCELoss(Cell):
    """``BCELoss(weight=None, reduction="mean")(logits, labels)``: ``-w (y log(x) + (1 - y)
    log(1 - x))`` of probabilities ``x``, reduced."""

    def __init__(self, weight: Any = None, reduction: str = "mean"):
        super().__init__()
        self.weight = weight
        self.reduction = _check_reduction("BCELoss", reduction)

    def construct(self, logits, labels):
        loss = -(labels * ops.log(logits) + (1.0 - labels) * ops.log(1.0 - logits))
        return _reduce(_weighted(loss, self.weight), self.reduction)


class BCEWithLogitsLoss(Cell):
    """``BCEWithLogitsLoss(reduction="mean", weight=None, pos_weight=None)(logits, labels)``:
    binary cross entropy of ``sigmoid(logits)``, computed stably as
    ``(1 - y) x + (1 + (p - 1) y) softplus(-x)`` (``p``: ``pos_weight``, 1 by default), reduced."""

    def __init__(self, reduction: str = "mean", weight: Any = None, pos_weight: Any = None):
        super().__init__()
        self.weight, self.pos_weight = weight, pos_weight
        self.reduction = _check_reduction("BCEWithLogitsLoss", reduction)

    def construct(self, logits, labels):
        if self.pos_weight is None:
            loss = ops.softplus(logits) - logits * labels
        else:
            loss = (1.0 - labels) * logits + (1.0 + (self.pos_weight - 1.0) * labels) * ops.softplus(-logits)
        return _reduce(_weighted(loss, self.weight), self.reduction)


class CrossEntropyLoss(Cell):
    """``CrossEntropyLoss(weight=None, ignore_index=-100, reduction="mean",
    label_smoothing=0.0)(logits, labels)``: the cross entropy of ``softmax(logits)`` (logits of
    shape (N, C)) and the labels: class indices (an int tensor of shape (N,); ``ignore_index``
    rows count for nothing) or class probabilities (a float tensor of shape (N, C)). With class
    indices and ``weight`` (one per class), ``"mean"`` divides by the summed weights of the
    counted rows, as MindSpore and PyTorch do."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean", label_smoothing=0.0):
        super().__init__()
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ArgumentValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing!r}")
        self.weight, self.ignore_index = weight, int(ignore_index)
        self.label_smoothing = float(label_smoothing)
        self.reduction = _check_reduction("CrossEntropyLoss", reduction)

    def construct(self, logits, labels):
        logp = ops.log_softmax(logits, -1)
        n_classes = logits.shape[-1]
        if labels.dtype in (mstype.float16, mstype.float32, mstype.float64):
            target = labels
            counted = None
        else:
            valid = ops.cast(labels != self.ignore_index, logits.dtype)
            target = ops.cast(ops.one_hot(labels, n_classes, 1.0, 0.0), logits.dtype)
            counted = valid if self.weight is None else (target * self.weight).sum(-1)
        if self.label_smoothing > 0.0:
            smooth = self.label_smoothing / n_classes
            target = target * (1.0 - self.label_smoothing) + smooth
            if counted is not None:
                target = target * valid.reshape(valid.shape + (1,))  # ignored rows stay zero
        weighted = target if self.weight is None else target * self.weight
        loss = -(weighted * logp).sum(-1)
        if self.reduction == "mean" and counted is not None:
            return loss.sum() / counted.sum()
        return _reduce(loss, self.reduction)
