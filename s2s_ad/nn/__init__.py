"""``s2s_ad.nn``: ``Cell``, derivative wrappers and building blocks."""

from .cell import Cell
from .container import CellList, SequentialCell
from .conv import AvgPool2d, Conv2d, MaxPool2d
from .embedding import Embedding
from .layers import (
    GELU,
    Dense,
    Dropout,
    FastGelu,
    Flatten,
    LogSoftmax,
    Mish,
    Pad,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
    get_activation,
)
from .loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    SmoothL1Loss,
    SoftmaxCrossEntropyWithLogits,
)
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .optim import SGD, Adam, AdamWeightDecay, Momentum, Optimizer
from .train import TrainOneStepCell, WithGradCell
from .wrap import ForwardValueAndGrad, Jvp, Vjp, WithLossCell

__all__ = [
    "Cell",
    "Embedding",
    "Dense",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "get_activation",
    "MSELoss",
    "SoftmaxCrossEntropyWithLogits",
    "ForwardValueAndGrad",
    "Jvp",
    "Vjp",
    "WithLossCell",
    "Optimizer",
    "SGD",
    "Momentum",
    "Adam",
    "AdamWeightDecay",
    "TrainOneStepCell",
    "WithGradCell",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "SequentialCell",
    "CellList",
    "GELU",
    "FastGelu",
    "SiLU",
    "Softplus",
    "Mish",
    "Softmax",
    "LogSoftmax",
    "Flatten",
    "Pad",
    "LayerNorm",
    "BatchNorm1d",
    "BatchNorm2d",
    "Dropout",
    "L1Loss",
    "SmoothL1Loss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
]
