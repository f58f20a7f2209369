"""How Tensors, Parameters and ParameterTuples take part in tracing (the staging protocol of
:mod:`s2s_ad.trace`): Tensors are constants of a program, Parameters its inputs; ``Tensor(x)``
of a traced value is that value (cast to the dtype given); ``Tensor``, ``Parameter`` and
``ParameterTuple`` of compile-time constants are constructed while compiling."""

from __future__ import annotations

from typing import Any

from ..ir import Lit, Var
from ..tensor import Parameter, ParameterTuple, Tensor
from ..trace.protocol import Leaf, construct_static, register_call, register_constructor, register_leaf
from ..trace.tracer import Tracer


def _stage_tensor(cls: type, tr: Tracer, args: list, kwargs: dict) -> Any:
    if args and isinstance(args[0], (Var, Lit)):
        # Tensor(t) of a value computed while compiling (np.float32(2.0), np.ones(3)):
        # that value, cast to the dtype given
        return tr.tensor_of(args[0], *args[1:], **kwargs)
    return construct_static(cls, tr, args, kwargs)


register_leaf(Tensor, Leaf(Tensor.asnumpy))
register_leaf(Parameter, Leaf(Parameter.asnumpy, parameter=True, name=lambda p: p.name))
register_call(Tensor, _stage_tensor)
register_constructor(Tensor)
register_constructor(ParameterTuple)
