"""``s2s_ad.ops``: MindSpore's primitive classes, functional forms and ``GradOperation``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import staging  # noqa: F401  (registers Tensor and Parameter with the trace layer)
from .functional import (
    COMPARE_FUNCTIONS,
    ELEMENTWISE_FUNCTIONS,
    addn,
    argmax,
    argmin,
    bmm,
    broadcast_to,
    cast,
    cat,
    concat,
    cumsum,
    det,
    expand_dims,
    gather,
    gather_d,
    gather_nd,
    getitem,
    inverse,
    matmul,
    matrix_determinant,
    matrix_inverse,
    norm,
    one_hot,
    ones,
    ones_like,
    pad,
    reduce_max,
    reduce_mean,
    reduce_min,
    reduce_sum,
    reshape,
    scatter_nd,
    select,
    split,
    squeeze,
    stack,
    stop_gradient,
    tensor_scatter_add,
    tensor_scatter_update,
    tile,
    transpose,
    unsqueeze,
    where,
    zeros,
    zeros_like,
)
from .primitives import (
    COMPARE_CLASSES,
    ELEMENTWISE_CLASSES,
    AddN,
    Argmax,
    Argmin,
    BatchMatMul,
    BroadcastTo,
    Cast,
    Concat,
    CumSum,
    ExpandDims,
    Gather,
    GatherD,
    GatherNd,
    MatMul,
    MatrixDeterminant,
    MatrixInverse,
    OneHot,
    OnesLike,
    Pad,
    Primitive,
    ReduceMax,
    ReduceMean,
    ReduceMin,
    ReduceSum,
    Reshape,
    ScatterNd,
    Split,
    Squeeze,
    Stack,
    TensorAdd,
    TensorScatterAdd,
    TensorScatterUpdate,
    Tile,
    Transpose,
    ZerosLike,
)
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
    # structural, indexing and linalg ops (issue 15)
    "AddN",
    "Argmax",
    "Argmin",
    "BatchMatMul",
    "BroadcastTo",
    "Concat",
    "CumSum",
    "ExpandDims",
    "Gather",
    "GatherD",
    "GatherNd",
    "MatrixDeterminant",
    "MatrixInverse",
    "OnesLike",
    "Pad",
    "ScatterNd",
    "Split",
    "Squeeze",
    "Stack",
    "TensorAdd",
    "TensorScatterAdd",
    "TensorScatterUpdate",
    "Tile",
    "ZerosLike",
    "addn",
    "argmax",
    "argmin",
    "bmm",
    "broadcast_to",
    "cat",
    "concat",
    "cumsum",
    "det",
    "expand_dims",
    "gather",
    "gather_d",
    "gather_nd",
    "inverse",
    "matrix_determinant",
    "matrix_inverse",
    "norm",
    "ones",
    "ones_like",
    "pad",
    "scatter_nd",
    "split",
    "squeeze",
    "stack",
    "tensor_scatter_add",
    "tensor_scatter_update",
    "tile",
    "unsqueeze",
    "zeros",
    "zeros_like",
    *ELEMENTWISE_CLASSES,
    *ELEMENTWISE_FUNCTIONS,
    *COMPARE_CLASSES,
    *COMPARE_FUNCTIONS,
]
