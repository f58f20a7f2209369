"""Parameter initializers with MindSpore's names: ``initializer(init, shape, dtype)`` and the
classes ``Normal``, ``Uniform``, ``TruncatedNormal``, ``XavierUniform``, ``HeUniform``,
``HeNormal``, ``Zero``, ``One``, ``Constant``.

Random initializers draw from one generator, reseeded by :func:`s2s_ad.set_seed`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import dtype as mstype
from ..errors import ArgumentError, ArgumentValueError
from ..primitives import mix64
from ..tensor import Parameter, Tensor

_RNG = np.random.default_rng()

# The key of the random ops in compiled code (Dropout's masks): a Parameter, so a compiled
# program reads it as an input and writes it back advanced by one per random op it runs (an
# ``ops.assign``). Without set_seed it starts at a value drawn from the operating system.
RANDOM_KEY = Parameter(
    np.array(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> np.uint64(1), np.int64),
    name="random_key",
    requires_grad=False,
)


def set_seed(seed: int) -> None:
    """Seed the generator used by random initializers (reproducible ``nn.Dense`` weights) and
    reset the key of the random ops in compiled code (reproducible Dropout masks)."""
    global _RNG
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ArgumentError(f"set_seed: seed must be a non-negative int, got {seed!r}")
    _RNG = np.random.default_rng(seed)
    RANDOM_KEY.set_data(np.array(mix64(seed) >> 1, np.int64))


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    receptive = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


class Initializer:
    """Base class: ``init(shape) -> float64 array``."""

    def sample(self, shape: tuple[int, ...]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Normal(Initializer):
    """N(mean, sigma²); MindSpore's default ``sigma=0.01``."""

    def __init__(self, sigma: float = 0.01, mean: float = 0.0):
        self.sigma, self.mean = sigma, mean

    def sample(self, shape):
        return _RNG.normal(self.mean, self.sigma, shape)


class TruncatedNormal(Initializer):
    """N(0, sigma²) redrawn outside two standard deviations."""

    def __init__(self, sigma: float = 0.01):
        self.sigma = sigma

    def sample(self, shape):
        x = _RNG.standard_normal(shape)
        bad = np.abs(x) > 2
        while bad.any():
            x[bad] = _RNG.standard_normal(int(bad.sum()))
            bad = np.abs(x) > 2
        return x * self.sigma


class Uniform(Initializer):
    """U(-scale, scale); MindSpore's default ``scale=0.07``."""

    def __init__(self, scale: float = 0.07):
        self.scale = scale

    def sample(self, shape):
        return _RNG.uniform(-self.scale, self.scale, shape)


class XavierUniform(Initializer):
    """U(-b, b) with b = gain·sqrt(6 / (fan_in + fan_out))."""

    def __init__(self, gain: float = 1.0):
        self.gain = gain

    def sample(self, shape):
        fan_in, fan_out = _fans(shape)
        b = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
        return _RNG.uniform(-b, b, shape)


def _gain(nonlinearity: str, a: float) -> float:
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a * a))
    if nonlinearity in ("linear", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    raise ArgumentValueError(f"unknown nonlinearity {nonlinearity!r}")


class HeUniform(Initializer):
    """Kaiming uniform: U(-b, b), b = gain·sqrt(3 / fan)."""

    def __init__(self, negative_slope: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
        self.negative_slope, self.mode, self.nonlinearity = negative_slope, mode, nonlinearity

    def sample(self, shape):
        fan_in, fan_out = _fans(shape)
        fan = fan_in if self.mode == "fan_in" else fan_out
        b = _gain(self.nonlinearity, self.negative_slope) * math.sqrt(3.0 / fan)
        return _RNG.uniform(-b, b, shape)


class HeNormal(Initializer):
    """Kaiming normal: N(0, (gain / sqrt(fan))²)."""

    def __init__(self, negative_slope: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"):
        self.negative_slope, self.mode, self.nonlinearity = negative_slope, mode, nonlinearity

    def sample(self, shape):
        fan_in, fan_out = _fans(shape)
        fan = fan_in if self.mode == "fan_in" else fan_out
        return _RNG.normal(0.0, _gain(self.nonlinearity, self.negative_slope) / math.sqrt(fan), shape)


class Constant(Initializer):
    def __init__(self, value: float):
        self.value = value

    def sample(self, shape):
        return np.full(shape, self.value, np.float64)


class Zero(Constant):
    def __init__(self):
        super().__init__(0.0)


class One(Constant):
    def __init__(self):
        super().__init__(1.0)


_NAMED = {
    "normal": Normal,
    "truncatednormal": TruncatedNormal,
    "uniform": Uniform,
    "xavier_uniform": XavierUniform,
    "xavieruniform": XavierUniform,
    "he_uniform": HeUniform,
    "heuniform": HeUniform,
    "he_normal": HeNormal,
    "henormal": HeNormal,
    "zeros": Zero,
    "zero": Zero,
    "ones": One,
    "one": One,
}


def initializer(init: Any, shape: Any, dtype: Any = mstype.float32) -> Tensor:
    """A Tensor of ``shape`` initialised by ``init``: a name (``"normal"``, ``"zeros"``,
    ``"xavier_uniform"``, ...), an :class:`Initializer`, a number, or a Tensor/array of
    exactly that shape."""
    shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
    np_dtype = mstype.to_np(dtype)
    if isinstance(init, (Tensor, np.ndarray)):
        arr = init.asnumpy() if isinstance(init, Tensor) else np.asarray(init)
        if arr.shape != shape:
            raise ArgumentValueError(
                f"initializer: the given tensor has shape {arr.shape} but the parameter needs shape {shape}"
            )
        return Tensor(arr.astype(np_dtype, copy=True))
    if isinstance(init, str):
        cls = _NAMED.get(init.lower())
        if cls is None:
            raise ArgumentValueError(f"initializer: unknown initializer {init!r}; known: {', '.join(sorted(_NAMED))}")
        init = cls()
    elif isinstance(init, (int, float)) and not isinstance(init, bool):
        init = Constant(float(init))
    if not isinstance(init, Initializer):
        raise ArgumentError(
            f"initializer: expected a name, an Initializer, a number or a Tensor, got {type(init).__name__}"
        )
    return Tensor(np.asarray(init.sample(shape), dtype=np_dtype))
