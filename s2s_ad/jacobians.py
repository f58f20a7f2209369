"""Jacobians and Hessians with JAX's semantics: ``jacfwd``, ``jacrev``, ``hessian``, ``hvp``.

A Jacobian is assembled from derivative programs: ``jacfwd`` evaluates the forward-mode
program once per input element (a one-hot tangent gives a column), ``jacrev`` the reverse-mode
program once per output element (a one-hot cotangent gives a row), and ``hessian`` is
``jacfwd`` of the reverse-mode gradient (forward-over-reverse). Identical primal work in the
copies is shared by common-subexpression elimination.

Diagonal structure is found where it exists: when the tangent (or cotangent) flows from the
input to the output only through elementwise operations of one shape, the Jacobian is
diagonal and one evaluation with a tangent of ones gives its diagonal. The Hessian of
``sum(f(x))`` for an elementwise ``f`` is computed that way: one Hessian-vector product, not n.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ad.forward import jvp_program
from .ad.reverse import grad_program
from .api import (
    JvpFunction,
    Transformed,
    _check_callable,
    _leaf_atoms,
    _no_kwargs,
    callable_name,
    flags_function,
    trace_abstract,
)
from .errors import ArgumentError, ArgumentValueError
from .frontend import Frontend, inline_program
from .ir import Atom, Lit, Program, Var
from .ops.table import cast_to, fill, fmt_shape, get_op
from .opt import optimize

# Above this many evaluations a Jacobian is not unrolled into one program.
MAX_UNROLL = 256


def _argnums(who: str, argnums: Any) -> tuple[tuple[int, ...], bool]:
    if isinstance(argnums, bool) or not isinstance(argnums, (int, tuple)):
        raise ArgumentError(f"{who}: argnums must be an int or a tuple of ints, got {argnums!r}")
    pos = (argnums,) if isinstance(argnums, int) else argnums
    if not pos or any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in pos):
        raise ArgumentValueError(f"{who}: argnums must be non-negative ints, got {argnums!r}")
    if len(set(pos)) != len(pos):
        raise ArgumentValueError(f"{who}: argnums {argnums} repeats a position")
    return pos, isinstance(argnums, int)


def diagonal_map(prog: Program, src: Var, dst: Atom) -> bool:
    """Whether the linear map from ``src`` to ``dst`` in ``prog`` (a tangent or cotangent
    path) only goes through elementwise operations that keep ``src``'s shape: then it is
    diagonal, and its value on ones is its diagonal."""
    touched = {id(src)}
    for e in prog.eqns:
        t_in = [a for a in e.ins if isinstance(a, Var) and id(a) in touched]
        if not t_in:
            continue
        kind = get_op(e.op).kind
        if not (kind == "elementwise" or e.op in ("cast", "stop_gradient")):
            return False
        if any(a.shape != src.shape for a in t_in) or e.outs[0].shape != src.shape:
            return False
        touched.update(id(o) for o in e.outs)
    return not isinstance(dst, Var) or id(dst) not in touched or dst.shape == src.shape


def _one_hot(fe: Frontend, shape: tuple[int, ...], i: int, dtype: np.dtype) -> Atom:
    index = tuple(int(k) for k in np.unravel_index(i, shape)) if shape else ()
    return fe.b.bind1("scatter", Lit(1, dtype), index=index, shape=shape)


def _place(fe: Frontend, block: Atom, lead: tuple[int, ...], shape: tuple[int, ...], i: int, rows: bool) -> Atom:
    """Zeros of ``lead + shape`` (rows) or ``shape + lead`` (columns) with ``block`` at the
    ``i``-th element of ``shape``."""
    at = tuple(int(k) for k in np.unravel_index(i, shape)) if shape else ()
    full = (("slice", None, None, None),) * len(lead)
    index = at + full if rows else full + at
    return fe.b.bind1("scatter", block, index=index, shape=(shape + lead) if rows else (lead + shape))


def jacobian_of(fe: Frontend, m: Program, flat: list[Atom], k: int, j: int, forward: bool, who: str) -> Atom:
    """The Jacobian of output leaf ``k`` of program ``m`` w.r.t. argument leaf ``j``, shaped
    ``out.shape + in.shape``; ``flat`` are the atoms of ``m``'s arguments."""
    x = m.arg_vars[j]
    out = m.outs[k]
    if x.dtype.kind != "f" or out.dtype.kind != "f":
        raise fe.error(f"{who}: Jacobians need float inputs and outputs, got {x.aval} and {out.aval}", ArgumentError)
    in_shape, out_shape = tuple(x.shape), tuple(out.shape)
    dtype = out.dtype
    # Each differentiated position is one tensor (checked by the caller): its tangent, or the
    # program's one gradient, is the derivative program's only extra input or output.
    if forward:
        p = optimize(jvp_program(m, [_position_of_leaf(m, j)]), final=False)
        dst_index = len(m.outs) + k
        n, lead = x.aval.size, out_shape
    else:
        single = m.replace(outs=[out], out_tree=None)
        p = optimize(grad_program(single, [_position_of_leaf(m, j)], [], sens_param=True), final=False)
        dst_index = 0
        n, lead = out.aval.size, in_shape
    src, dst = p.arg_vars[m.n_args], p.outs[dst_index]

    def run(seed: Atom) -> Atom:
        return inline_program(fe, p, [*flat, seed])[dst_index]

    if diagonal_map(p, src, dst):
        if in_shape != out_shape:
            return fill(fe.b, out_shape + in_shape, 0, dtype)
        d = run(fill(fe.b, src.shape, 1, src.dtype))
        eye = fe.atom(np.eye(max(x.aval.size, 1), dtype=dtype).reshape(in_shape + in_shape))
        d = fe.b.bind1("reshape", d, shape=in_shape + (1,) * len(in_shape)) if in_shape else d
        return fe.b.bind1("mul", d, eye)
    if n > MAX_UNROLL:
        raise fe.error(
            f"{who}: this Jacobian needs {n} {'forward' if forward else 'reverse'}-mode evaluations "
            f"(more than {MAX_UNROLL}); its input {fmt_shape(in_shape)} and output {fmt_shape(out_shape)} are too large "
            "for one unrolled program. Use jvp/vjp products instead.",
            ArgumentValueError,
        )
    total: Atom | None = None
    seed_shape = in_shape if forward else out_shape
    for i in range(n):
        piece = run(_one_hot(fe, seed_shape, i, src.dtype))
        piece = cast_to(fe.b, piece, dtype)
        placed = _place(fe, piece, lead, seed_shape, i, rows=not forward)
        total = placed if total is None else fe.b.bind1("add", total, placed)
    assert total is not None
    return total


def _position_of_leaf(m: Program, j: int) -> int:
    from .ad.reverse import arg_leaf_ranges

    return next(p for p, (lo, hi, _) in enumerate(arg_leaf_ranges(m)) if lo <= j < hi)


class JacobianFunction(Transformed):
    """``jacfwd``/``jacrev``/``hessian`` of a function with one tensor output."""

    def __init__(self, fn: Any, mode: str, argnums: Any):
        self.mode = mode
        self.prefix = mode
        self.positions, self.bare = _argnums(mode, argnums)
        super().__init__(fn)

    def key(self) -> tuple:
        return (self.mode, self.positions, self.bare)

    def describe(self) -> str:
        argnums = self.positions[0] if self.bare else self.positions
        return f"{self.mode} of {callable_name(self.fn)} (argnums={argnums})."

    def _s2s_lower(self, fe: Frontend, args: list[Any], kwargs: dict) -> Any:
        _no_kwargs(fe, self.__name__, kwargs)
        who = self.mode
        for p in self.positions:
            if p >= len(args):
                raise fe.error(
                    f"{who}: argnums {p} is out of range: {callable_name(self.fn)} was called with {len(args)} input(s)",
                    ArgumentValueError,
                )
        inner = trace_abstract(self.fn, list(args))
        if inner.out_tree is not None or len(inner.outs) != 1:
            raise fe.error(
                f"{who}: {callable_name(self.fn)} must return one tensor, got {len(inner.outs)} outputs", ArgumentError
            )
        flat: list[Atom] = []
        for a in args:
            flat.extend(_leaf_atoms(fe, a))
        from .ad.reverse import arg_leaf_ranges

        ranges = arg_leaf_ranges(inner)
        leaves = []
        for p in self.positions:
            lo, hi, _ = ranges[p]
            if hi - lo != 1:
                raise fe.error(f"{who}: argument {p} must be one tensor (not a tuple)", ArgumentError)
            leaves.append(lo)
        if self.mode == "hessian":
            if inner.outs[0].shape != ():
                raise fe.error(
                    f"hessian: {callable_name(self.fn)} must return a scalar, got shape {fmt_shape(inner.outs[0].shape)}",
                    ArgumentError,
                )
            g = optimize(grad_program(inner, list(self.positions), [], False), final=False)
            rows = []
            for k in range(len(self.positions)):
                rows.append(tuple(jacobian_of(fe, g, flat, k, j, True, who) for j in leaves))
            return rows[0][0] if self.bare else tuple(rows)
        jac = tuple(jacobian_of(fe, inner, flat, 0, j, self.mode == "jacfwd", who) for j in leaves)
        return jac[0] if self.bare else jac


def _jacobian(mode: str, doc: str):
    def make(fn: Any = None, argnums: int | tuple[int, ...] = 0) -> Any:
        if fn is None:
            return lambda f: make(f, argnums)
        _check_callable(mode, fn)
        return JacobianFunction(fn, mode, argnums)

    make.__name__ = make.__qualname__ = mode
    make.__doc__ = doc
    make._s2s_static = True  # type: ignore[attr-defined]
    return make


jacfwd = _jacobian(
    "jacfwd",
    """``jacfwd(fn, argnums=0)``: a function returning the Jacobian of ``fn``'s (one tensor)
    output w.r.t. the input(s) at ``argnums``, shaped ``out.shape + in.shape``, by forward mode
    (one column per input element; one evaluation when the Jacobian is diagonal). A tuple of
    ``argnums`` gives a tuple of Jacobians.""",
)
jacrev = _jacobian(
    "jacrev",
    """``jacrev(fn, argnums=0)``: as :func:`jacfwd`, by reverse mode (one row per output
    element; one evaluation when the Jacobian is diagonal).""",
)
hessian = _jacobian(
    "hessian",
    """``hessian(fn, argnums=0)``: the Hessian of a scalar ``fn``, shaped ``in.shape +
    in.shape``, computed forward-over-reverse (``jacfwd(jacrev(fn))``). With a tuple of
    ``argnums`` the result is a tuple of tuples ``H[i][j]``. A diagonal Hessian (``sum(f(x))``
    for an elementwise ``f``) costs one Hessian-vector product.""",
)


class _Hvp:
    """``hvp(fn, primals, tangents)``: the Hessian-vector product of a scalar ``fn``."""

    __name__ = __qualname__ = "hvp"

    def __call__(self, fn: Any, primals: Any, tangents: Any) -> Any:
        _check_callable("hvp", fn)
        primals = tuple(primals) if isinstance(primals, (tuple, list)) else (primals,)
        return _hvp_function(fn, len(primals))(*primals, tangents)

    def _s2s_lower(self, fe: Frontend, args: list[Any], kwargs: dict) -> Any:
        if kwargs or len(args) != 3:
            raise fe.error("hvp(fn, primals, tangents) takes three positional arguments", ArgumentError)
        fn, primals, tangents = args
        primals = tuple(primals) if isinstance(primals, (tuple, list)) else (primals,)
        return _hvp_function(fn, len(primals))._s2s_lower(fe, [*primals, tangents], {})

    def __repr__(self) -> str:
        return "<s2s_ad.hvp>"


class HvpFunction(Transformed):
    """Forward-over-reverse: ``jvp`` of the gradient of all inputs."""

    prefix = "hvp"

    def __init__(self, fn: Any, n: int):
        self.n = n
        super().__init__(fn)

    def key(self) -> tuple:
        return ("hvp", self.n)

    def describe(self) -> str:
        return f"Hessian-vector product of {callable_name(self.fn)} (forward over reverse)."

    def extra_args(self, n: int) -> list[str]:
        return ["v"] if n > 0 else []

    def _s2s_lower(self, fe: Frontend, args: list[Any], kwargs: dict) -> Any:
        primals = list(args[:-1])
        out = trace_abstract(self.fn, primals)
        if out.out_tree is not None or out.outs[0].shape != ():
            raise fe.error(f"hvp: {callable_name(self.fn)} must return a scalar", ArgumentError)
        grad_all = flags_function(self.fn, None, True, False, False, "hvp")
        _, tangent = JvpFunction(grad_all, "hvp")._s2s_lower(fe, list(args), {})
        return tangent[0] if self.n == 1 else tangent


def _hvp_function(fn: Any, n: int) -> HvpFunction:
    return HvpFunction(fn, n)


hvp = _Hvp()
hvp.__doc__ = """``hvp(fn, primals, tangents)``: the Hessian-vector product ``H·v`` of a scalar ``fn``
at ``primals`` (a Tensor or a tuple), for ``tangents`` structured like ``primals``; computed
forward-over-reverse, the Hessian never formed. Returns a Tensor for one primal, else a tuple
(``Σ_j H_ij v_j`` for each input ``i``)."""

__all__ = ["jacfwd", "jacrev", "hessian", "hvp", "JacobianFunction", "HvpFunction", "diagonal_map"]
