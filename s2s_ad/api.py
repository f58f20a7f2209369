"""The differentiation API facade: ``GradOperation``. No AD logic lives here: a call maps to
a cache key and dispatches to compiled code; inside another compiled function the gradient
program is inlined instead."""

from __future__ import annotations

import inspect
from typing import Any

from . import context
from .ad.reverse import grad_program
from .errors import ArgumentError
from .frontend import Frontend, abstractify, inline_program, trace
from .ir import Aval, Lit, Var, flatten, tree_str, unflatten
from .ops.table import cast_to, fmt_shape
from .opt import optimize
from .runtime import cache_for, run_staged
from .tensor import Parameter, ParameterTuple


def callable_name(fn: Any) -> str:
    from .nn.cell import Cell

    if isinstance(fn, Cell):
        return type(fn).__name__
    if isinstance(fn, GradFunction):
        return f"grad_{callable_name(fn.fn)}"
    return getattr(fn, "__name__", type(fn).__name__)


def arg_names_of(fn: Any, n: int) -> list[str]:
    """Parameter names of ``fn`` (a Cell's construct or a function) for ``n`` arguments."""
    from .nn.cell import Cell

    target = type(fn).construct if isinstance(fn, Cell) else fn
    names: list[str] = []
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        params = []
    if isinstance(fn, Cell) and params:
        params = params[1:]
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            break
        names.append(p.name)
    if isinstance(fn, GradFunction):
        sens = 1 if (fn.op.sens_param and n > 0) else 0
        return arg_names_of(fn.fn, n - sens) + ["sens"] * sens
    names = names[:n]
    return names + [f"arg{i}" for i in range(len(names), n)]


def normalize_weights(weights: Any, who: str) -> tuple[Parameter, ...] | None:
    if weights is None:
        return None
    if isinstance(weights, Parameter):
        return (weights,)
    if isinstance(weights, (ParameterTuple, list, tuple)):
        for w in weights:
            if not isinstance(w, Parameter):
                raise ArgumentError(f"{who}: weights must be Parameters, got an element of type {type(w).__name__}")
        return tuple(weights)
    raise ArgumentError(
        f"{who}: weights must be a ParameterTuple, a list of Parameters or a Parameter, got {type(weights).__name__}"
    )


def trace_abstract(fn: Any, args: list[Any]) -> Any:
    """Trace ``fn`` applied to the abstract versions of staged values (Vars → Avals)."""

    def abstract(v: Any) -> Any:
        if isinstance(v, (Var, Lit)):
            return v.aval
        if isinstance(v, (tuple, list)):
            return type(v)(abstract(x) for x in v)
        return abstractify(v)

    return trace(
        lambda fe, vals: fe.call(fn, vals), [abstract(a) for a in args], callable_name(fn), arg_names_of(fn, len(args))
    )


def _leaf_atoms(fe: Frontend, v: Any) -> list:
    leaves, _ = flatten(v)
    from .frontend import is_tensor_value

    return [fe.atom(x) for x in leaves if isinstance(x, (Var, Lit)) or is_tensor_value(x)]


class GradOperation:
    """``GradOperation(get_all=False, get_by_list=False, sens_param=False)``.

    ``GradOperation(...)(net, weights=None)`` returns a function computing, per the flags:
    the gradient of the first input (default); a tuple over all inputs (``get_all``); a tuple
    over ``weights`` (``get_by_list``); both as ``((inputs...), (weights...))``. With
    ``sens_param`` the last argument is the output cotangent (a tuple for a multi-output net);
    without it every output is seeded with ones.
    """

    _s2s_static = True
    _s2s_constructible = True

    def __init__(self, get_all: bool = False, get_by_list: bool = False, sens_param: bool = False):
        for n, v in (("get_all", get_all), ("get_by_list", get_by_list), ("sens_param", sens_param)):
            if not isinstance(v, bool):
                raise ArgumentError(f"GradOperation: {n} must be a bool, got {type(v).__name__}")
        self.get_all = get_all
        self.get_by_list = get_by_list
        self.sens_param = sens_param

    def __call__(self, fn: Any, weights: Any = None) -> GradFunction:
        if not callable(fn):
            raise ArgumentError(f"GradOperation: expected a Cell or a function, got {type(fn).__name__}")
        w = normalize_weights(weights, "GradOperation")
        if self.get_by_list and w is None:
            raise ArgumentError(
                "GradOperation(get_by_list=True) needs weights: call it as "
                "grad_op(net, ParameterTuple(net.trainable_params()))"
            )
        return GradFunction(self, fn, w)

    def __repr__(self) -> str:
        return f"GradOperation(get_all={self.get_all}, get_by_list={self.get_by_list}, sens_param={self.sens_param})"


class GradFunction:
    """The gradient function of a Cell or function (made by :class:`GradOperation`)."""

    _s2s_static = False

    def __init__(self, op: GradOperation, fn: Any, weights: tuple[Parameter, ...] | None):
        self.op = op
        self.fn = fn
        self.weights = weights

    def _key(self) -> tuple:
        op = self.op
        return (
            "grad",
            op.get_all,
            op.get_by_list,
            op.sens_param,
            tuple(id(w) for w in self.weights) if (self.weights and op.get_by_list) else (),
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            raise ArgumentError(
                f"the gradient function of {callable_name(self.fn)} takes positional arguments only, "
                f"got keyword argument(s) {', '.join(kwargs)}"
            )
        return run_staged(
            cache_for(self.fn),
            self._key(),
            lambda: (
                callable_name(self),
                arg_names_of(self, len(args)),
                f"Reverse-mode derivative of {callable_name(self.fn)} ({self.op!r}).",
            ),
            lambda fe, vals: self._s2s_lower(fe, vals, {}),
            list(args),
            context.backend(),
        )

    def _s2s_lower(self, fe: Frontend, args: list[Any], kwargs: dict) -> Any:
        op = self.op
        if kwargs:
            raise fe.error("gradient functions take positional arguments only", ArgumentError)
        args = list(args)
        sens = None
        if op.sens_param:
            if not args:
                raise fe.error(
                    "GradOperation(sens_param=True): the last argument must be the sens "
                    "(output cotangent), but no arguments were given",
                    ArgumentError,
                )
            sens = args.pop()
        if not op.get_all and not op.get_by_list and not args:
            raise fe.error(f"GradOperation: {callable_name(self.fn)} takes no inputs to differentiate", ArgumentError)
        inner = trace_abstract(self.fn, args)
        wrt = list(range(len(args))) if op.get_all else ([0] if not op.get_by_list else [])
        weights = list(self.weights) if (op.get_by_list and self.weights) else []
        gp = optimize(grad_program(inner, wrt, weights, op.sens_param), final=False)
        flat = []
        for a in args:
            flat.extend(_leaf_atoms(fe, a))
        if sens is not None:
            flat.extend(self._check_sens(fe, inner, sens))
        outs = inline_program(fe, gp, flat)
        _, arg_grads, param_grads = unflatten(gp.out_tree, outs)
        if op.get_all and op.get_by_list:
            return (tuple(arg_grads), tuple(param_grads))
        if op.get_by_list:
            return tuple(param_grads)
        if op.get_all:
            return tuple(arg_grads)
        return arg_grads[0]

    def _check_sens(self, fe: Frontend, inner: Any, sens: Any) -> list:
        leaves, tree = flatten(sens)
        if tree != inner.out_tree:
            raise fe.error(
                f"sens must be structured like the output of {callable_name(self.fn)}: expected "
                f"{tree_str(inner.out_tree)}, got {tree_str(tree)}",
                ArgumentError,
            )
        atoms = []
        for i, (s, o) in enumerate(zip(leaves, inner.outs)):
            a = fe.atom(s, like=o.dtype)
            if a.shape != o.shape:
                where = f" (element {i})" if tree is not None else ""
                raise fe.error(
                    f"sens{where} has shape {fmt_shape(a.shape)} but the output of {callable_name(self.fn)} "
                    f"has shape {fmt_shape(o.shape)}",
                    ArgumentError,
                )
            atoms.append(cast_to(fe.b, a, o.dtype))
        return atoms


__all__ = ["GradOperation", "GradFunction", "generated_source", "trace_program", "output_avals"]


def _staged_body(fn: Any):
    if isinstance(fn, GradFunction):
        return lambda fe, vals: fn._s2s_lower(fe, vals, {})
    return lambda fe, vals: fe.call(fn, vals)


def _abstract_args(args: tuple) -> list[Any]:
    def conv(a: Any) -> Any:
        if isinstance(a, Aval):
            return a
        if isinstance(a, (tuple, list)):
            return type(a)(conv(x) for x in a)
        return abstractify(a)

    return [conv(a) for a in args]


def trace_program(fn: Any, *args: Any) -> Any:
    """The optimised IR program s2s_ad compiles for ``fn(*args)``. Arguments may be Tensors,
    arrays or :class:`~s2s_ad.ir.Aval` shape/dtype specs."""
    from .runtime import Compiled

    prog = trace(_staged_body(fn), _abstract_args(args), callable_name(fn), arg_names_of(fn, len(args)))
    return Compiled(prog, "python").program


def generated_source(fn: Any, *args: Any) -> str:
    """The Python source s2s_ad generates for ``fn(*args)`` (a Cell, function or gradient
    function). Arguments may be Tensors, arrays or :class:`~s2s_ad.ir.Aval` specs."""
    from .runtime import Compiled

    prog = trace(_staged_body(fn), _abstract_args(args), callable_name(fn), arg_names_of(fn, len(args)))
    doc = (
        f"Reverse-mode derivative of {callable_name(fn.fn)} ({fn.op!r})."
        if isinstance(fn, GradFunction)
        else f"{callable_name(fn)}, compiled."
    )
    return Compiled(prog, "python", doc=doc).source


def output_avals(fn: Any, *args: Any) -> Any:
    """Shapes and dtypes of ``fn(*args)``'s output, as Avals in the output's structure."""
    prog = trace(_staged_body(fn), _abstract_args(args), callable_name(fn), arg_names_of(fn, len(args)))
    return unflatten(prog.out_tree, [o.aval for o in prog.outs])
