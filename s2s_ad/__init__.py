"""s2s_ad: a source-to-source symbolic automatic-differentiation compiler for Python.

Write MindSpore-style ``nn.Cell`` networks or plain functions; ask for derivatives through
MindSpore's API (``ops.GradOperation``, ...). s2s_ad reads the Python source, differentiates
it into new Python source, simplifies it with SymPy and compiles it with Numba.
"""

from __future__ import annotations

from . import context, dtype, nn, ops
from .api import grad, jit, jvp, value_and_grad, vjp, vmap
from .checkpointing import checkpoint
from .common.initializer import set_seed
from .context import GRAPH_MODE, PYNATIVE_MODE, get_context, set_context
from .custom import custom_jvp, custom_vjp
from .dtype import bool_, float16, float32, float64, int8, int16, int32, int64, uint8
from .errors import (
    ArgumentError,
    ArgumentValueError,
    CacheError,
    NotSupportedError,
    S2SError,
    ShapeError,
    SourceUnavailableError,
    TensorIndexError,
    UnsupportedSyntaxError,
)
from .jacobians import hessian, hvp, jacfwd, jacrev
from .laplacian import laplacian, value_grad_and_laplacian
from .ops import GradOperation, stop_gradient
from .ops import primitive as _primitive  # noqa: F401  (installs ops.Custom, ops.PrimitiveWithInfer, ...)
from .tensor import Parameter, ParameterTuple, Tensor
from .testing import explain
from .version import __version__

ms_function = jit  # MindSpore's older name of jit

__all__ = [
    "context",
    "dtype",
    "nn",
    "ops",
    "GRAPH_MODE",
    "PYNATIVE_MODE",
    "get_context",
    "set_context",
    "bool_",
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "grad",
    "value_and_grad",
    "jvp",
    "vjp",
    "vmap",
    "jit",
    "set_seed",
    "jacfwd",
    "jacrev",
    "hessian",
    "hvp",
    "laplacian",
    "value_grad_and_laplacian",
    "explain",
    "ArgumentError",
    "ArgumentValueError",
    "CacheError",
    "NotSupportedError",
    "S2SError",
    "ShapeError",
    "SourceUnavailableError",
    "TensorIndexError",
    "UnsupportedSyntaxError",
    "GradOperation",
    "stop_gradient",
    "Parameter",
    "ParameterTuple",
    "Tensor",
    "__version__",
    "ms_function",
    "custom_vjp",
    "custom_jvp",
    "checkpoint",
]
