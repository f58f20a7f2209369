"""Optimizers: ``SGD``, ``Momentum``, ``Adam``, ``AdamWeightDecay``, with MindSpore's arguments.

An optimizer is a Cell: ``optimizer(gradients)`` updates its Parameters with ``ops.assign``.
Called from a compiled ``construct`` (:class:`~s2s_ad.nn.TrainOneStepCell`'s), the update is
part of the same compiled program as the forward pass and the gradient; called on its own, it
is a compiled program of its own. The state (moments, step counts, the learning rate) is held
in Parameters (not trainable), so that it is updated in place as the weights are.

``params`` is a list of Parameters, or of parameter groups: dicts with ``"params"`` and
optionally ``"lr"`` and ``"weight_decay"`` (which replace the optimizer's arguments for that
group), and one optional ``{"order_params": [...]}`` giving the order of the Parameters.
Weight decay (L2, added to the gradient as ``weight_decay * param``) applies, without groups,
to Parameters whose names contain neither ``beta`` nor ``gamma`` (MindSpore's default
filter); in a group, to every Parameter of the group. ``loss_scale`` divides the gradients.
``learning_rate`` is a number, a 0-d Tensor, a list or 1-D Tensor of per-step values (the last
one is kept after the end), or a Cell mapping the step (an int32 Tensor) to a rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..errors import ArgumentError, ArgumentValueError
from ..tensor import Parameter, ParameterTuple, Tensor
from .cell import Cell


def _number(who: str, name: str, v: Any, low: float = 0.0, high: float | None = None, open_low: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ArgumentError(f"{who}: {name} must be a number, got {type(v).__name__}")
    v = float(v)
    if v < low or (open_low and v == low) or (high is not None and v >= high):
        bounds = f"{'(' if open_low else '['}{low}, {high if high is not None else 'inf'})"
        raise ArgumentValueError(f"{who}: {name} must be in {bounds}, got {v}")
    return v


def _default_decay_filter(p: Parameter) -> bool:
    return "beta" not in p.name and "gamma" not in p.name


class Optimizer(Cell):
    """Base class of optimizers: parameter groups, learning rate, weight decay and loss scale.

    Subclasses define ``construct(gradients)`` using :meth:`prepare` (the gradients after
    weight decay and loss scale), :meth:`get_lr` (the learning rate of each Parameter; it
    advances ``global_step``) and ``ops.assign``."""

    def __init__(self, learning_rate: Any, parameters: Any, weight_decay: float = 0.0, loss_scale: float = 1.0):
        super().__init__(auto_prefix=False)
        who = type(self).__name__
        items = list(parameters) if parameters is not None else []
        if not items:
            raise ArgumentValueError(f"{who}: the optimizer got an empty parameter list")
        self.loss_scale = _number(who, "loss_scale", loss_scale, 0.0, open_low=True)
        weight_decay = _number(who, "weight_decay", weight_decay)
        self.is_group = isinstance(items[0], dict)
        params: list[Parameter] = []
        lrs: list[Any] = []
        wds: list[float] = []
        order = None
        if self.is_group:
            for g in items:
                if not isinstance(g, dict):
                    raise ArgumentError(f"{who}: parameter groups must all be dicts, got {type(g).__name__}")
                if "order_params" in g:
                    order = list(g["order_params"])
                    continue
                unknown = set(g) - {"params", "lr", "weight_decay", "grad_centralization"}
                if "params" not in g or unknown:
                    raise ArgumentValueError(
                        f"{who}: a parameter group is a dict with 'params' and optionally 'lr', 'weight_decay'; "
                        f"got keys {sorted(g)}"
                    )
                group = list(g["params"])
                lr = g.get("lr", learning_rate)
                wd = _number(who, "weight_decay", g.get("weight_decay", weight_decay))
                for p in group:
                    params.append(p)
                    lrs.append(lr)
                    wds.append(wd)
        else:
            params = items
            lrs = [learning_rate] * len(params)
            wds = [weight_decay if _default_decay_filter(p) else 0.0 for p in params]
        for p in params:
            if not isinstance(p, Parameter):
                raise ArgumentError(f"{who}: expected Parameters, got {type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ArgumentValueError(f"{who}: a Parameter appears in more than one parameter group")
        if order is not None:
            where = {id(p): k for k, p in enumerate(params)}
            missing = [p.name for p in order if id(p) not in where]
            if missing or len(order) != len(params):
                raise ArgumentValueError(
                    f"{who}: order_params must list exactly the grouped Parameters (not grouped: {missing})"
                )
            perm = [where[id(p)] for p in order]
            params, lrs, wds = [params[k] for k in perm], [lrs[k] for k in perm], [wds[k] for k in perm]
        self._parameters = ParameterTuple(params)
        self.weight_decay_values = tuple(wds)
        self.global_step = Parameter(Tensor(np.zeros((), np.int32)), name="global_step", requires_grad=False)
        # one learning-rate holder per distinct value, shared by the Parameters that use it
        made: dict[int, Any] = {}
        holders = []
        for lr in lrs:
            if id(lr) not in made:
                made[id(lr)] = self._learning_rate(who, lr, f"learning_rate_{len(made)}" if self.is_group else "")
            holders.append(made[id(lr)])
        self.lrs = tuple(holders)
        self.learning_rate = holders[0]

    def _learning_rate(self, who: str, lr: Any, suffix: str) -> Any:
        name = f"learning_rate{'.' + suffix if suffix else ''}"
        if isinstance(lr, Cell):
            return lr
        if isinstance(lr, (list, tuple)) or (isinstance(lr, (Tensor, np.ndarray)) and np.ndim(np.asarray(lr)) == 1):
            values = np.asarray(lr.asnumpy() if isinstance(lr, Tensor) else lr, dtype=np.float32)
            if values.ndim != 1 or values.size == 0:
                raise ArgumentValueError(f"{who}: a dynamic learning rate must be a non-empty 1-D list")
            return Parameter(Tensor(values), name=name, requires_grad=False)
        if isinstance(lr, (Tensor, np.ndarray)):
            value = float(np.asarray(lr.asnumpy() if isinstance(lr, Tensor) else lr))
        else:
            value = _number(who, "learning_rate", lr)
        if value < 0:
            raise ArgumentValueError(f"{who}: learning_rate must be >= 0, got {value}")
        return Parameter(Tensor(np.asarray(value, np.float32)), name=name, requires_grad=False)

    @property
    def parameters(self) -> ParameterTuple:
        """The Parameters the optimizer updates, in order."""
        return self._parameters

    def clone_state(self, prefix: str, init: float = 0.0) -> ParameterTuple:
        """One Parameter per optimized Parameter, filled with ``init`` (moments, accumulators),
        named ``prefix.<name>`` and not trainable."""
        return ParameterTuple(
            Parameter(
                Tensor(np.full(p.shape, init, dtype=p.asnumpy().dtype)), name=f"{prefix}.{p.name}", requires_grad=False
            )
            for p in self._parameters
        )

    def get_lr(self) -> Any:
        """The learning rate of each Parameter at the current step (a tuple); advances
        ``global_step``. Inside ``construct`` only."""
        step = self.global_step
        out = ()
        for lr in self.lrs:
            if isinstance(lr, Cell):
                out = out + (lr(step),)
            elif len(lr.shape) == 1:
                last = lr.shape[0] - 1
                index = ops.minimum(step, last)
                out = out + ((lr * ops.one_hot(index, lr.shape[0], 1.0, 0.0)).sum(),)
            else:
                out = out + (lr,)
        ops.assign_add(self.global_step, 1)
        return out

    def prepare(self, gradients: Any) -> Any:
        """The gradients divided by the loss scale, plus ``weight_decay * param`` (L2)."""
        out = ()
        for p, g, wd in zip(self._parameters, gradients, self.weight_decay_values):
            if self.loss_scale != 1.0:
                g = g / self.loss_scale
            if wd != 0.0:
                g = g + wd * p
            out = out + (g,)
        return out

    def __s2s_stage__(self, tr: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """``construct(gradients)`` inlined, after checking the number of gradients."""
        if len(args) != 1 or not isinstance(args[0], (tuple, list)) or len(args[0]) != len(self._parameters):
            got = f"{len(args[0])} gradients" if len(args) == 1 and isinstance(args[0], (tuple, list)) else "other"
            raise tr.error(
                f"{type(self).__name__}: expected one tuple of {len(self._parameters)} gradients (one per "
                f"Parameter), got {got}",
                ArgumentValueError,
            )
        return super().__s2s_stage__(tr, args, kwargs)


class SGD(Optimizer):
    """``SGD(params, learning_rate=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0,
    nesterov=False, loss_scale=1.0)``: stochastic gradient descent with momentum.

    ``accum = grad`` at the first step, then ``accum = momentum * accum + (1 - dampening) * grad``;
    ``param -= lr * (grad + momentum * accum)`` with Nesterov, else ``param -= lr * accum``."""

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 0.1,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        loss_scale: float = 1.0,
    ):
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        self.momentum = _number("SGD", "momentum", momentum)
        self.dampening = _number("SGD", "dampening", dampening)
        if not isinstance(nesterov, bool):
            raise ArgumentError(f"SGD: nesterov must be a bool, got {type(nesterov).__name__}")
        if nesterov and (self.momentum <= 0.0 or self.dampening != 0.0):
            raise ArgumentValueError("SGD: nesterov requires momentum > 0 and dampening = 0")
        self.nesterov = nesterov
        self.accum = self.clone_state("accum")
        self.stat = Parameter(Tensor(np.ones((), np.float32)), name="stat", requires_grad=False)

    def construct(self, gradients):
        gradients = self.prepare(gradients)
        lrs = self.get_lr()
        first = self.stat
        for p, g, acc, lr in zip(self._parameters, gradients, self.accum, lrs):
            if self.momentum == 0.0:
                ops.assign(p, p - lr * g)
            else:
                a = first * g + (1.0 - first) * (self.momentum * acc + (1.0 - self.dampening) * g)
                ops.assign(acc, a)
                if self.nesterov:
                    ops.assign(p, p - lr * (g + self.momentum * a))
                else:
                    ops.assign(p, p - lr * a)
        ops.assign(self.stat, 0.0)
        return self._parameters


class Momentum(Optimizer):
    """``Momentum(params, learning_rate, momentum, weight_decay=0.0, loss_scale=1.0,
    use_nesterov=False)``: ``accum = momentum * accum + grad``; ``param -= lr * accum``, or with
    Nesterov ``param -= lr * (grad + momentum * accum)``."""

    def __init__(
        self,
        params: Any,
        learning_rate: Any,
        momentum: float,
        weight_decay: float = 0.0,
        loss_scale: float = 1.0,
        use_nesterov: bool = False,
    ):
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        self.momentum = _number("Momentum", "momentum", momentum)
        if not isinstance(use_nesterov, bool):
            raise ArgumentError(f"Momentum: use_nesterov must be a bool, got {type(use_nesterov).__name__}")
        self.use_nesterov = use_nesterov
        self.moments = self.clone_state("moments")

    def construct(self, gradients):
        gradients = self.prepare(gradients)
        lrs = self.get_lr()
        for p, g, acc, lr in zip(self._parameters, gradients, self.moments, lrs):
            a = self.momentum * acc + g
            ops.assign(acc, a)
            if self.use_nesterov:
                ops.assign(p, p - lr * (g + self.momentum * a))
            else:
                ops.assign(p, p - lr * a)
        return self._parameters


class Adam(Optimizer):
    """``Adam(params, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, use_locking=False,
    use_nesterov=False, weight_decay=0.0, loss_scale=1.0)``: Adam with bias correction
    (``lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)``, ``param -= lr_t * m / (sqrt(v) + eps)``);
    ``weight_decay`` is L2 on the gradient (see :class:`AdamWeightDecay` for the decoupled form)."""

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        use_locking: bool = False,
        use_nesterov: bool = False,
        weight_decay: float = 0.0,
        loss_scale: float = 1.0,
    ):
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        self.beta1 = _number("Adam", "beta1", beta1, 0.0, 1.0, open_low=True)
        self.beta2 = _number("Adam", "beta2", beta2, 0.0, 1.0, open_low=True)
        self.eps = _number("Adam", "eps", eps, 0.0, open_low=True)
        if not isinstance(use_nesterov, bool):
            raise ArgumentError(f"Adam: use_nesterov must be a bool, got {type(use_nesterov).__name__}")
        self.use_nesterov = use_nesterov
        self.moment1 = self.clone_state("moment1")
        self.moment2 = self.clone_state("moment2")
        self.beta1_power = Parameter(Tensor(np.ones((), np.float32)), name="beta1_power", requires_grad=False)
        self.beta2_power = Parameter(Tensor(np.ones((), np.float32)), name="beta2_power", requires_grad=False)

    def construct(self, gradients):
        gradients = self.prepare(gradients)
        lrs = self.get_lr()
        b1p = ops.assign(self.beta1_power, self.beta1_power * self.beta1)
        b2p = ops.assign(self.beta2_power, self.beta2_power * self.beta2)
        for p, g, m, v, lr in zip(self._parameters, gradients, self.moment1, self.moment2, lrs):
            lr_t = lr * ops.sqrt(1.0 - b2p) / (1.0 - b1p)
            m_new = ops.assign(m, self.beta1 * m + (1.0 - self.beta1) * g)
            v_new = ops.assign(v, self.beta2 * v + (1.0 - self.beta2) * ops.square(g))
            if self.use_nesterov:
                step = (self.beta1 * m_new + (1.0 - self.beta1) * g) / (ops.sqrt(v_new) + self.eps)
            else:
                step = m_new / (ops.sqrt(v_new) + self.eps)
            ops.assign(p, p - lr_t * step)
        return self._parameters


class AdamWeightDecay(Optimizer):
    """``AdamWeightDecay(params, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-6,
    weight_decay=0.0)``: Adam with decoupled weight decay and, as MindSpore's, no bias
    correction: ``update = m / (sqrt(v) + eps) + weight_decay * param``; ``param -= lr * update``."""

    def __init__(
        self,
        params: Any,
        learning_rate: Any = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ):
        super().__init__(learning_rate, params, weight_decay, 1.0)
        self.beta1 = _number("AdamWeightDecay", "beta1", beta1, 0.0, 1.0, open_low=True)
        self.beta2 = _number("AdamWeightDecay", "beta2", beta2, 0.0, 1.0, open_low=True)
        self.eps = _number("AdamWeightDecay", "eps", eps, 0.0, open_low=True)
        self.moments1 = self.clone_state("adam_m")
        self.moments2 = self.clone_state("adam_v")

    def construct(self, gradients):
        lrs = self.get_lr()
        for p, g, m, v, lr, wd in zip(
            self._parameters, gradients, self.moments1, self.moments2, lrs, self.weight_decay_values
        ):
            m_new = ops.assign(m, self.beta1 * m + (1.0 - self.beta1) * g)
            v_new = ops.assign(v, self.beta2 * v + (1.0 - self.beta2) * ops.square(g))
            update = m_new / (ops.sqrt(v_new) + self.eps)
            if wd != 0.0:
                update = update + wd * p
            ops.assign(p, p - lr * update)
        return self._parameters
