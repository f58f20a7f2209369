"""Cells that wrap a network with a derivative: ``ForwardValueAndGrad``, ``Jvp``, ``Vjp``,
``WithLossCell``. Each is a Cell whose ``construct`` calls a transformed function, so it can be
called directly or from another Cell's ``construct`` (where it is inlined)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..api import JvpFunction, _check_bool, _check_callable, flags_function, vjp_function
from .cell import Cell


class _Wrapper(Cell):
    """Calls go straight to the transformed function, so compiled code is named after the
    wrapped network and its arguments."""

    _fn: Callable[..., Any]

    def _set_fn(self, fn: Any) -> None:
        object.__setattr__(self, "_fn", fn)

    def construct(self, *inputs: Any) -> Any:
        return self._fn(*inputs)

    def __call__(self, *inputs: Any) -> Any:
        return self._fn(*inputs)


class ForwardValueAndGrad(_Wrapper):
    """``ForwardValueAndGrad(network, weights=None, get_all=False, get_by_list=False,
    sens_param=False)``: called with the network's inputs (and a sens last, with
    ``sens_param``), returns ``(forward value, gradients)``, the gradients structured as
    :class:`~s2s_ad.ops.GradOperation`'s for the same flags."""

    def __init__(
        self,
        network: Any,
        weights: Any = None,
        get_all: bool = False,
        get_by_list: bool = False,
        sens_param: bool = False,
    ):
        super().__init__(auto_prefix=False)
        _check_callable("ForwardValueAndGrad", network)
        _check_bool("ForwardValueAndGrad", get_all=get_all, get_by_list=get_by_list, sens_param=sens_param)
        self.network = network
        self.get_all, self.get_by_list, self.sens_param = get_all, get_by_list, sens_param
        self._set_fn(
            flags_function(network, weights, get_all, get_by_list, sens_param, "ForwardValueAndGrad", with_value=True)
        )


class Jvp(_Wrapper):
    """``Jvp(network)(*inputs, v) -> (output, J·v)``: forward mode. ``v`` holds one tangent
    per input (a Tensor for a one-input network, else a tuple)."""

    def __init__(self, network: Any):
        super().__init__(auto_prefix=False)
        _check_callable("Jvp", network)
        self.network = network
        self._set_fn(JvpFunction(network, "nn.Jvp"))


class Vjp(_Wrapper):
    """``Vjp(network)(*inputs, v) -> (output, v·J)``: reverse mode; ``v`` is structured like
    the output. The gradients are a bare Tensor for a one-input network, else a tuple."""

    def __init__(self, network: Any):
        super().__init__(auto_prefix=False)
        _check_callable("Vjp", network)
        self.network = network
        self._set_fn(vjp_function(network, "nn.Vjp"))


class WithLossCell(Cell):
    """``WithLossCell(backbone, loss_fn)(data, label) = loss_fn(backbone(data), label)``."""

    def __init__(self, backbone: Any, loss_fn: Any):
        super().__init__(auto_prefix=False)  # the backbone keeps its Parameters' names, as in MindSpore
        _check_callable("WithLossCell", backbone)
        _check_callable("WithLossCell", loss_fn)
        self._backbone = backbone
        self._loss_fn = loss_fn

    def construct(self, data: Any, label: Any) -> Any:
        out = self._backbone(data)
        return self._loss_fn(out, label)

    @property
    def backbone_network(self) -> Any:
        return self._backbone
