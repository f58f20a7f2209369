"""Layers: ``Dense`` and the activation cells (``ReLU``, ``Tanh``, ``Sigmoid``)."""

from __future__ import annotations

from typing import Any

from .. import dtype as mstype
from .. import ops
from ..common.initializer import initializer
from ..errors import ArgumentError, ArgumentValueError
from ..tensor import Parameter
from .cell import Cell


class ReLU(Cell):
    """max(x, 0) elementwise."""

    def __init__(self):
        super().__init__()
        self.relu = ops.ReLU()

    def construct(self, x):
        return self.relu(x)


class Tanh(Cell):
    """tanh(x) elementwise."""

    def __init__(self):
        super().__init__()
        self.tanh = ops.Tanh()

    def construct(self, x):
        return self.tanh(x)


class Sigmoid(Cell):
    """1 / (1 + exp(-x)) elementwise."""

    def __init__(self):
        super().__init__()
        self.sigmoid = ops.Sigmoid()

    def construct(self, x):
        return self.sigmoid(x)


_ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}


def get_activation(name: Any) -> Any:
    """An activation Cell from its name (``"relu"``, ``"tanh"``, ``"sigmoid"``); a Cell or
    primitive is returned as is; None stays None."""
    if name is None or isinstance(name, Cell) or isinstance(name, ops.Primitive):
        return name
    if isinstance(name, str):
        cls = _ACTIVATIONS.get(name.lower())
        if cls is None:
            raise ArgumentValueError(f"unknown activation {name!r}; known: {', '.join(sorted(_ACTIVATIONS))}")
        return cls()
    raise ArgumentError(f"activation must be a name, a Cell, a primitive or None, got {type(name).__name__}")


class Dense(Cell):
    """``Dense(in_channels, out_channels, weight_init="normal", bias_init="zeros",
    has_bias=True, activation=None)``: ``activation(x @ weight.T + bias)``.

    ``weight`` has shape ``(out_channels, in_channels)``, ``bias`` ``(out_channels,)``, as in
    MindSpore. Inputs of rank > 2 are flattened to 2-D over the leading axes and restored.
    ``weight_init``/``bias_init`` take an initializer name, an Initializer, a number or a
    Tensor of the right shape.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        weight_init: Any = "normal",
        bias_init: Any = "zeros",
        has_bias: bool = True,
        activation: Any = None,
        dtype: Any = mstype.float32,
    ):
        super().__init__()
        for n, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ArgumentValueError(f"Dense: {n} must be a positive int, got {v!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.has_bias = bool(has_bias)
        self.weight = Parameter(initializer(weight_init, (out_channels, in_channels), dtype), name="weight")
        if self.has_bias:
            self.bias = Parameter(initializer(bias_init, (out_channels,), dtype), name="bias")
        self.activation = get_activation(activation)
        self.matmul = ops.MatMul(transpose_b=True)

    def construct(self, x):
        shape = x.shape
        if len(shape) != 2:
            x = x.reshape((-1, shape[-1]))
        x = self.matmul(x, self.weight)
        if self.has_bias:
            x = x + self.bias
        if self.activation is not None:
            x = self.activation(x)
        if len(shape) != 2:
            x = x.reshape(shape[:-1] + (self.out_channels,))
        return x

    def __repr__(self) -> str:
        return (
            f"Dense<input_channels={self.in_channels}, output_channels={self.out_channels}, has_bias={self.has_bias}>"
        )


# ---- activations and shape layers (issue 15)
class GELU(Cell):
    """``GELU(approximate=True)``: with ``approximate=True`` (MindSpore's default) the tanh form
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3)))``, with ``approximate=False`` the exact
    ``x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))``."""

    def __init__(self, approximate: bool = True):
        super().__init__()
        self.approximate = bool(approximate)

    def construct(self, x):
        return ops.gelu(x, approximate="tanh" if self.approximate else "none")


class FastGelu(Cell):
    """``FastGelu()``: MindSpore's ``x / (1 + exp(-1.702 |x|)) * exp(0.851 (x - |x|))``."""

    def construct(self, x):
        return ops.fast_gelu(x)


class SiLU(Cell):
    """``SiLU()``: ``x * sigmoid(x)``."""

    def construct(self, x):
        return ops.silu(x)


class Softplus(Cell):
    """``Softplus()``: ``log(1 + exp(x))``, computed stably."""

    def construct(self, x):
        return ops.softplus(x)


class Mish(Cell):
    """``Mish()``: ``x * tanh(softplus(x))``."""

    def construct(self, x):
        return ops.mish(x)


class Softmax(Cell):
    """``Softmax(axis=-1)``: ``exp(x) / sum(exp(x))`` over ``axis``, computed stably."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def construct(self, x):
        return ops.softmax(x, self.axis)


class LogSoftmax(Cell):
    """``LogSoftmax(axis=-1)``: ``x - logsumexp(x)`` over ``axis``, computed stably."""

    def __init__(self, axis: int = -1):
        super().__init__()
        self.axis = axis

    def construct(self, x):
        return ops.log_softmax(x, self.axis)


class Pad(Cell):
    """``Pad(paddings, mode="CONSTANT")``: ``paddings[i] = (before, after)`` elements around axis
    ``i``: zeros (``"CONSTANT"``), mirrored without the edge (``"REFLECT"``) or with it
    (``"SYMMETRIC"``)."""

    def __init__(self, paddings: Any, mode: str = "CONSTANT"):
        super().__init__()
        if mode not in ("CONSTANT", "REFLECT", "SYMMETRIC"):
            raise ArgumentValueError(f"Pad: mode must be 'CONSTANT', 'REFLECT' or 'SYMMETRIC', got {mode!r}")
        self.paddings = tuple(tuple(int(v) for v in p) for p in paddings)
        self.pad: Any = ops.Pad(self.paddings) if mode == "CONSTANT" else None
        self.mirror: Any = ops.MirrorPad(mode) if mode != "CONSTANT" else None
        self.mode = mode

    def construct(self, x):
        if self.mode == "CONSTANT":
            return self.pad(x)
        return self.mirror(x, self.paddings)


class Flatten(Cell):
    """``Flatten(start_dim=1, end_dim=-1)``: the axes from ``start_dim`` to ``end_dim`` merged into one."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def construct(self, x):
        shape = x.shape
        nd = len(shape)
        a, b = self.start_dim % max(nd, 1), self.end_dim % max(nd, 1)
        n = 1
        for d in shape[a : b + 1]:
            n = n * d
        return x.reshape(shape[:a] + (n,) + shape[b + 1 :])


_ACTIVATIONS.update(
    gelu=GELU, fast_gelu=FastGelu, silu=SiLU, softplus=Softplus, mish=Mish, softmax=Softmax, logsoftmax=LogSoftmax
)


class Dropout(Cell):
    """``Dropout(keep_prob=None, p=None)``: MindSpore's arguments (``p`` is the probability of
    dropping, ``keep_prob = 1 - p``; 0.5 by default). In evaluation mode (``set_train(False)``,
    the default of a new Cell) it is the identity; in training mode (``set_train()``) each
    element is zeroed with probability ``p`` and the others scaled by ``1 / keep_prob``
    (:func:`s2s_ad.ops.dropout`: masks from a counter-based generator, reproducible after
    :func:`s2s_ad.set_seed`, different at every call)."""

    def __init__(self, keep_prob: float | None = None, p: float | None = None, dtype: Any = mstype.float32):
        super().__init__()
        if keep_prob is not None and p is not None:
            raise ArgumentError("Dropout: give keep_prob or p, not both")
        keep = 1.0 - float(p) if p is not None else 0.5 if keep_prob is None else float(keep_prob)
        if not 0.0 < keep <= 1.0:
            raise ArgumentValueError(f"Dropout: keep_prob must be in (0, 1] (p in [0, 1)), got {keep!r}")
        self.keep_prob = keep
        self.p = 1.0 - keep

    def construct(self, x):
        if self.training and self.keep_prob < 1.0:
            return ops.dropout(x, p=self.p)
        return x
