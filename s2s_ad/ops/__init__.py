"""``s2s_ad.ops``: MindSpore's primitive classes, functional forms and ``GradOperation``."""

from __future__ import annotations

from .functional import (
    ELEMENTWISE_FUNCTIONS,
    cast,
    getitem,
    matmul,
    reduce_mean,
    reduce_sum,
    reshape,
    stop_gradient,
    transpose,
)
from .primitives import ELEMENTWISE_CLASSES, Cast, MatMul, Primitive, ReduceMean, ReduceSum, Reshape, Transpose

globals().update(ELEMENTWISE_CLASSES)
globals().update(ELEMENTWISE_FUNCTIONS)
sum = reduce_sum  # noqa: A001
mean = reduce_mean
mul = ELEMENTWISE_FUNCTIONS["mul"]

from ..api import GradOperation  # noqa: E402

__all__ = [
    "GradOperation",
    "Primitive",
    "MatMul",
    "ReduceSum",
    "ReduceMean",
    "Cast",
    "Reshape",
    "Transpose",
    "cast",
    "matmul",
    "reduce_sum",
    "reduce_mean",
    "reshape",
    "transpose",
    "stop_gradient",
    "getitem",
    "sum",
    "mean",
    *ELEMENTWISE_CLASSES,
    *ELEMENTWISE_FUNCTIONS,
]
