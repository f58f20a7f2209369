"""``s2s_ad.nn``: ``Cell``, derivative wrappers and building blocks."""

from .cell import Cell
from .container import CellList, SequentialCell
from .conv import AvgPool2d, Conv2d, MaxPool2d
from .layers import Dense, ReLU, Sigmoid, Tanh, get_activation
from .loss import MSELoss, SoftmaxCrossEntropyWithLogits
from .wrap import ForwardValueAndGrad, Jvp, Vjp, WithLossCell

__all__ = [
    "Cell",
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
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "SequentialCell",
    "CellList",
]
