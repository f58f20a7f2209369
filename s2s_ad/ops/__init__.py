"""``s2s_ad.ops``: MindSpore's primitive classes, functional forms and ``GradOperation``."""

from __future__ import annotations

from . import staging  # noqa: F401  (registers Tensor and Parameter with the trace layer)
from .functional import (
    COMPARE_FUNCTIONS,
    ELEMENTWISE_FUNCTIONS,
    cast,
    getitem,
    matmul,
    one_hot,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_sum,
    reshape,
    select,
    stop_gradient,
    transpose,
    where,
)
from .primitives import (
    COMPARE_CLASSES,
    ELEMENTWISE_CLASSES,
    Cast,
    MatMul,
    OneHot,
    Primitive,
    ReduceMax,
    ReduceMean,
    ReduceMin,
    ReduceSum,
    Reshape,
    Transpose,
)

globals().update(ELEMENTWISE_CLASSES)
globals().update(ELEMENTWISE_FUNCTIONS)
globals().update(COMPARE_CLASSES)
globals().update(COMPARE_FUNCTIONS)
sum = reduce_sum  # noqa: A001
mean = reduce_mean
amax = reduce_max
amin = reduce_min
mul = ELEMENTWISE_FUNCTIONS["mul"]
# MindSpore's short names of the comparisons
gt, ge, lt, le, eq, ne = (
    COMPARE_FUNCTIONS[n] for n in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal")
)

_API = ("GradOperation", "grad", "value_and_grad", "jvp", "vjp")


def __getattr__(name: str):
    # The differentiation API lives in s2s_ad.api, which imports the op table (this package):
    # resolve it lazily so either package can be imported first.
    if name in _API:
        from .. import api

        return getattr(api, name)
    raise AttributeError(f"module 's2s_ad.ops' has no attribute '{name}'")


__all__ = [
    "GradOperation",
    "grad",
    "value_and_grad",
    "jvp",
    "vjp",
    "Primitive",
    "MatMul",
    "OneHot",
    "one_hot",
    "ReduceSum",
    "ReduceMean",
    "ReduceMax",
    "ReduceMin",
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
    "reduce_max",
    "reduce_min",
    "amax",
    "amin",
    "select",
    "where",
    "gt",
    "ge",
    "lt",
    "le",
    "eq",
    "ne",
    *ELEMENTWISE_CLASSES,
    *ELEMENTWISE_FUNCTIONS,
    *COMPARE_CLASSES,
    *COMPARE_FUNCTIONS,
]
