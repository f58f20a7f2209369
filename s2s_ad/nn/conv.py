"""Convolution and pooling layers: ``Conv2d``, ``MaxPool2d``, ``AvgPool2d`` (NCHW)."""

from __future__ import annotations

import math
from typing import Any

from .. import dtype as mstype
from .. import ops
from ..common.initializer import HeUniform, Uniform, initializer
from ..errors import ArgumentValueError, NotSupportedError
from ..tensor import Parameter
from .cell import Cell


def _positive_pair(who: str, name: str, v: Any) -> tuple[int, int]:
    vals = (
        (v, v) if isinstance(v, int) and not isinstance(v, bool) else tuple(v) if isinstance(v, (tuple, list)) else ()
    )
    if len(vals) == 4:
        vals = vals[2:]
    if len(vals) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) and a > 0 for a in vals):
        raise ArgumentValueError(f"{who}: {name} must be a positive int or a pair of them, got {v!r}")
    return (int(vals[0]), int(vals[1]))


class Conv2d(Cell):
    """``Conv2d(in_channels, out_channels, kernel_size, stride=1, pad_mode="same", padding=0,
    dilation=1, group=1, has_bias=False, weight_init=None, bias_init=None, data_format="NCHW")``:
    2-D convolution of an NCHW input, as MindSpore's ``nn.Conv2d``.

    ``weight`` has shape ``(out_channels, in_channels, kh, kw)``, ``bias`` ``(out_channels,)``.
    The default initialisation is MindSpore's: He-uniform weights (negative slope sqrt(5)) and
    a bias uniform in ``±1/sqrt(fan_in)``. ``padding`` (an int or (top, bottom, left, right))
    needs ``pad_mode="pad"``. Only ``group=1``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        pad_mode: str = "same",
        padding: Any = 0,
        dilation: Any = 1,
        group: int = 1,
        has_bias: bool = False,
        weight_init: Any = None,
        bias_init: Any = None,
        data_format: str = "NCHW",
        dtype: Any = mstype.float32,
    ):
        super().__init__()
        for n, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ArgumentValueError(f"Conv2d: {n} must be a positive int, got {v!r}")
        if group != 1:
            raise NotSupportedError(f"Conv2d: group={group} (grouped convolution) is not supported; only group=1")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _positive_pair("Conv2d", "kernel_size", kernel_size)
        self.stride = _positive_pair("Conv2d", "stride", stride)
        self.dilation = _positive_pair("Conv2d", "dilation", dilation)
        self.pad_mode, self.padding, self.has_bias = pad_mode, padding, bool(has_bias)
        shape = (out_channels, in_channels, *self.kernel_size)
        self.weight = Parameter(
            initializer(HeUniform(math.sqrt(5)) if weight_init is None else weight_init, shape, dtype), name="weight"
        )
        if self.has_bias:
            fan_in = in_channels * self.kernel_size[0] * self.kernel_size[1]
            init = Uniform(1 / math.sqrt(fan_in)) if bias_init is None else bias_init
            self.bias = Parameter(initializer(init, (out_channels,), dtype), name="bias")
        self.conv2d = ops.Conv2D(
            out_channels,
            self.kernel_size,
            pad_mode=pad_mode,
            pad=padding,
            stride=self.stride,
            dilation=self.dilation,
            data_format=data_format,
        )

    def construct(self, x):
        y = self.conv2d(x, self.weight)
        if self.has_bias:
            y = y + self.bias.reshape((1, -1, 1, 1))
        return y

    def __repr__(self) -> str:
        return (
            f"Conv2d<input_channels={self.in_channels}, output_channels={self.out_channels}, "
            f"kernel_size={self.kernel_size}, stride={self.stride}, pad_mode={self.pad_mode}, "
            f"padding={self.padding}, dilation={self.dilation}, has_bias={self.has_bias}>"
        )


class _Pool2d(Cell):
    kind = "max"
    display = "MaxPool2d"

    def __init__(
        self,
        kernel_size: Any = 1,
        stride: Any = 1,
        pad_mode: str = "valid",
        padding: Any = 0,
        data_format: str = "NCHW",
        count_include_pad: bool = True,
    ):
        super().__init__()
        if data_format != "NCHW":
            raise NotSupportedError(f"{self.display}: data_format {data_format!r} is not supported; only 'NCHW'")
        self.kernel_size = _positive_pair(self.display, "kernel_size", kernel_size)
        self.stride = _positive_pair(self.display, "stride", stride)
        self.pad_mode = str(pad_mode).lower()
        if self.pad_mode not in ("valid", "same", "pad"):
            raise ArgumentValueError(f"{self.display}: pad_mode must be 'valid', 'same' or 'pad', got {pad_mode!r}")
        self.padding = padding
        self.count_include_pad = bool(count_include_pad)
        # "valid" and "same" are the primitive's; explicit padding is the functional form's
        prim = ops.MaxPool if self.kind == "max" else ops.AvgPool
        self.pool = None if self.pad_mode == "pad" else prim(self.kernel_size, self.stride, self.pad_mode)

    def construct(self, x):
        if self.pool is not None:
            return self.pool(x)
        if self.kind == "max":
            return ops.max_pool2d(x, self.kernel_size, self.stride, self.padding)
        return ops.avg_pool2d(x, self.kernel_size, self.stride, self.padding, False, self.count_include_pad)

    def __repr__(self) -> str:
        return f"{self.display}<kernel_size={self.kernel_size}, stride={self.stride}, pad_mode={self.pad_mode}>"


class MaxPool2d(_Pool2d):
    """``MaxPool2d(kernel_size=1, stride=1, pad_mode="valid", padding=0, data_format="NCHW")``:
    the maximum of each window of an NCHW input. ``pad_mode``: "valid", "same", or "pad" with
    ``padding`` (an int or (ph, pw), on both sides; padding positions never win)."""

    kind = "max"
    display = "MaxPool2d"


class AvgPool2d(_Pool2d):
    """``AvgPool2d(kernel_size=1, stride=1, pad_mode="valid", padding=0, data_format="NCHW",
    count_include_pad=True)``: the mean of each window of an NCHW input. With "same" padding
    the mean is over the window's input positions; with pad_mode="pad", ``count_include_pad``
    decides whether padding positions count."""

    kind = "avg"
    display = "AvgPool2d"
