"""``s2s_ad.nn``: ``Cell``, derivative wrappers and building blocks."""

from .cell import Cell
from .embedding import Embedding
from .layers import Dense, ReLU, Sigmoid, Tanh, get_activation
from .loss import MSELoss, SoftmaxCrossEntropyWithLogits
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
]
