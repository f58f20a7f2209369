"""``laplacian`` and ``value_grad_and_laplacian``: the Laplacian ``Σ_i ∂²f/∂x_i²`` of a
function with respect to one tensor argument, in one forward sweep (the forward Laplacian,
:mod:`s2s_ad.ad.laplacian`), with the value and the Jacobian on request.

The transform makes an ordinary program: called from Python it compiles once per argument
signature; inside another transform (``grad`` of a loss built on it, ``jit``) it is inlined,
so derivatives with respect to the weights of a network go through it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ad.laplacian import laplacian_program
from .api import (
    Transformed,
    _check_callable,
    _check_positions,
    _leaf_atoms,
    _no_kwargs,
    _number_atom,
    callable_name,
    differentiated_program,
    trace_abstract,
)
from .errors import ArgumentError, ArgumentValueError
from .ir import Atom, arg_leaf_ranges, unflatten
from .opt import optimize
from .trace.protocol import register_static
from .trace.tracer import Tracer, inline_program

# The identity directions of each (shape, dtype), kept alive: a traced constant is known by
# its object, so one array per signature lets programs share it.
_EYES: dict[tuple[tuple[int, ...], str], np.ndarray] = {}


def _eye(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    key = (shape, np.dtype(dtype).str)
    e = _EYES.get(key)
    if e is None:
        n = int(np.prod(shape, dtype=np.int64))
        e = _EYES[key] = np.eye(n, dtype=dtype).reshape((n, *shape))
        e.flags.writeable = False
    return e


class LaplacianFunction(Transformed):
    """The forward Laplacian of ``fn`` with respect to argument ``argnums``."""

    prefix = "laplacian"

    def __init__(self, fn: Any, argnums: int, with_value_and_grad: bool):
        _check_callable("laplacian", fn)
        if isinstance(argnums, bool) or not isinstance(argnums, int):
            raise ArgumentError(f"laplacian: argnums must be an int (one tensor argument), got {argnums!r}")
        positions = _check_positions("laplacian", argnums, "argnums", allow_none=False)
        assert positions is not None, "allow_none=False: None is an error"
        self.argnums = argnums
        self.with_value_and_grad = with_value_and_grad
        super().__init__(fn)

    def key(self) -> tuple:
        return ("laplacian", self.argnums, self.with_value_and_grad)

    def describe(self) -> str:
        what = "value, Jacobian and Laplacian" if self.with_value_and_grad else "Laplacian"
        return f"Forward {what} of {callable_name(self.fn)} (argnums={self.argnums})."

    def number_positions(self, n: int) -> tuple[int, ...]:
        return (self.argnums,)

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        who = "laplacian"
        _no_kwargs(fe, self.__name__, kwargs)
        pos = self.argnums
        if pos >= len(args):
            raise fe.error(
                f"{who}: argnums {pos} is out of range: {callable_name(self.fn)} was called with {len(args)} input(s)",
                ArgumentValueError,
            )
        args = [_number_atom(a) if i == pos else a for i, a in enumerate(args)]
        inner = trace_abstract(self.fn, list(args))
        diff = differentiated_program(fe, who, self.fn, list(args), inner, [pos], [], True)
        lo, hi, _ = arg_leaf_ranges(diff)[pos]
        if hi - lo != 1:
            raise fe.error(
                f"{who}: argument {pos} of {callable_name(self.fn)} must be one tensor (not a tuple)", ArgumentError
            )
        x = diff.arg_vars[lo]
        k = int(np.prod(x.shape, dtype=np.int64))
        prog = optimize(laplacian_program(diff, lo, k), final=False)
        flat: list[Atom] = []
        for a in args:
            flat.extend(_leaf_atoms(fe, a))
        outs = inline_program(fe, prog, [*flat, fe.atom(_eye(tuple(x.shape), x.dtype))])
        n = len(diff.outs)
        values, jacs, laps = outs[:n], outs[n : 2 * n], outs[2 * n :]
        if diff is not inner:  # an integer argument differentiated in float: the value is the function's own
            values = inline_program(fe, inner, flat)
        tree = inner.out_tree
        lap = unflatten(tree, laps)
        if not self.with_value_and_grad:
            return lap
        grads = []
        for j in jacs:  # (k, *out) -> (*out, *x): the Jacobian, the gradient for a scalar output
            r = len(j.shape) - 1
            if r:
                j = fe.bind1("transpose", j, perm=(*range(1, r + 1), 0))
            grads.append(fe.bind1("reshape", j, shape=(*j.shape[:r], *x.shape)))
        return unflatten(tree, values), unflatten(tree, grads), lap


def laplacian(fn: Any, argnums: int = 0) -> LaplacianFunction:
    """``laplacian(fn, argnums=0)``: a function computing ``Σ_i ∂²fn/∂x_i²`` over the elements
    ``x_i`` of argument ``argnums`` (one tensor), structured and shaped like ``fn``'s output,
    each output element differentiated on its own.

    Computed in one forward sweep that carries, with every value, its derivatives along the
    ``x.size`` coordinate directions and the sum of its second derivatives (the forward
    Laplacian); no Hessian is formed. The result is an ordinary program: ``grad``, ``jit``
    and the other transforms apply to functions that call it."""
    return LaplacianFunction(fn, argnums, False)


def value_grad_and_laplacian(fn: Any, argnums: int = 0) -> LaplacianFunction:
    """``value_grad_and_laplacian(fn, argnums=0)``: like :func:`laplacian`, returning
    ``(value, grad, laplacian)`` from the same sweep; ``grad`` of each output has shape
    ``out.shape + x.shape`` (the Jacobian; the gradient for a scalar output)."""
    return LaplacianFunction(fn, argnums, True)


# inside compiled code these build the transformed function from compile-time values
register_static(laplacian)
register_static(value_grad_and_laplacian)

__all__ = ["laplacian", "value_grad_and_laplacian", "LaplacianFunction"]
