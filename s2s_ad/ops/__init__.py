"""``s2s_ad.ops``: MindSpore's primitive classes, functional forms and ``GradOperation``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import staging  # noqa: F401  (registers Tensor and Parameter with the trace layer)
from .functional import (
    COMPARE_FUNCTIONS,
    ELEMENTWISE_FUNCTIONS,
    argmax,
    argmin,
    avg_pool2d,
    cast,
    clamp,
    clip,
    clip_by_value,
    conv2d,
    getitem,
    log_softmax,
    matmul,
    max_pool2d,
    one_hot,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_sum,
    reshape,
    select,
    softmax,
    stop_gradient,
    transpose,
    where,
)
from .primitives import (
    COMPARE_CLASSES,
    ELEMENTWISE_CLASSES,
    AvgPool,
    Cast,
    Conv2D,
    LogSoftmax,
    MatMul,
    MaxPool,
    OneHot,
    Primitive,
    ReduceMax,
    ReduceMean,
    ReduceMin,
    ReduceSum,
    Reshape,
    Softmax,
    Transpose,
)
from .state import Assign, AssignAdd, AssignSub, Depend, assign, assign_add, assign_sub, depend
from .tensor_methods import install as _install_tensor_methods

_install_tensor_methods()

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

# GradOperation, grad, value_and_grad, jvp and vjp (MindSpore's ``ops.GradOperation``, ...)
# are set here by s2s_ad.api, which builds on this package.

if TYPE_CHECKING:
    # What type checkers see of the names set at run time: the API's (set by s2s_ad.api) with
    # their own types; the elementwise and comparison classes and functions built from the op
    # table (``ops.sin``, ``ops.Exp``, ...) as Any.
    from typing import Any

    from ..api import GradOperation, grad, jvp, value_and_grad, vjp

    def __getattr__(name: str) -> Any: ...


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
    "Assign",
    "AssignAdd",
    "AssignSub",
    "Depend",
    "assign",
    "assign_add",
    "assign_sub",
    "depend",
    "Conv2D",
    "MaxPool",
    "AvgPool",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "Softmax",
    "LogSoftmax",
    "softmax",
    "log_softmax",
    "argmax",
    "argmin",
    "clip_by_value",
    "clamp",
    "clip",
    *ELEMENTWISE_CLASSES,
    *ELEMENTWISE_FUNCTIONS,
    *COMPARE_CLASSES,
    *COMPARE_FUNCTIONS,
]
