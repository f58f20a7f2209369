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

from collections.abc import Callable
from typing import Any, Protocol, overload

import numpy as np

from . import context, progress
from .api import (
    JvpFunction,
    Transformed,
    _check_bool,
    _check_callable,
    _check_positions,
    _Direct,
    _leaf_atoms,
    _no_kwargs,
    _number_atom,
    callable_name,
    differentiated_program,
    flags_function,
    number_input,
    trace_abstract,
)
from .derivatives import grad_program, jvp_args_program
from .errors import ArgumentError, ArgumentValueError, NotSupportedError
from .ir import Atom, Lit, Program, Var, arg_leaf_ranges
from .opt import optimize
from .primitives import fmt_shape, get_op
from .runtime import Compiled, call_key, calls_cache, load_warm
from .tensor import Tensor
from .trace.protocol import register_static
from .trace.tracer import Tracer, inline_program

# Inside compiled code a Jacobian is unrolled into the program, up to this many evaluations
# (called from Python, a large one loops over one compiled evaluation instead).
MAX_UNROLL = 256


def diagonal_map(prog: Program, src: Var, dst: Atom) -> bool:
    """Whether the linear map from ``src`` to ``dst`` in ``prog`` (a tangent or cotangent
    path) only goes through elementwise operations that keep ``src``'s shape: then it is
    diagonal, and its value on ones is its diagonal."""
    touched: set[Var] = {src}
    for e in prog.eqns:
        t_in = [a for a in e.ins if isinstance(a, Var) and a in touched]
        if not t_in:
            continue
        kind = get_op(e.op).kind
        if not (kind == "elementwise" or e.op in ("cast", "stop_gradient")):
            return False
        if any(a.shape != src.shape for a in t_in) or e.outs[0].shape != src.shape:
            return False
        touched.update(e.outs)
    return not isinstance(dst, Var) or dst not in touched or dst.shape == src.shape


def _one_hot(fe: Tracer, shape: tuple[int, ...], i: int, dtype: np.dtype) -> Atom:
    index = tuple(int(k) for k in np.unravel_index(i, shape)) if shape else ()
    return fe.bind1("scatter", Lit(1, dtype), index=index, shape=shape)


def _place(fe: Tracer, block: Atom, lead: tuple[int, ...], shape: tuple[int, ...], i: int, rows: bool) -> Atom:
    """Zeros of ``lead + shape`` (rows) or ``shape + lead`` (columns) with ``block`` at the
    ``i``-th element of ``shape``."""
    at = tuple(int(k) for k in np.unravel_index(i, shape)) if shape else ()
    full = (("slice", None, None, None),) * len(lead)
    index = at + full if rows else full + at
    return fe.bind1("scatter", block, index=index, shape=(shape + lead) if rows else (lead + shape))


def derivative_program(m: Program, k: int, j: int, forward: bool) -> tuple[Program, int, int, tuple[int, ...]]:
    """The program one Jacobian evaluation runs: ``m``'s arguments plus a seed (a tangent of
    argument leaf ``j`` forward, a cotangent of output ``k`` in reverse); returns it with the
    index of the derivative among its outputs, the number of evaluations and the shape of
    one evaluation's result. Each differentiated position is one tensor (checked by the
    callers), so the seed is the program's only extra input."""
    x, out = m.arg_vars[j], m.outs[k]
    if forward:
        p = optimize(jvp_args_program(m, [_position_of_leaf(m, j)]), final=False)
        return p, len(m.outs) + k, x.aval.size, tuple(out.shape)
    single = m.replace(outs=[out], out_tree=None)
    p = optimize(grad_program(single, [_position_of_leaf(m, j)], [], sens_param=True), final=False)
    return p, 0, out.aval.size, tuple(x.shape)


def jacobian_of(fe: Tracer, m: Program, flat: list[Atom], k: int, j: int, forward: bool, who: str) -> Atom:
    """The Jacobian of output leaf ``k`` of program ``m`` w.r.t. argument leaf ``j``, shaped
    ``out.shape + in.shape``; ``flat`` are the atoms of ``m``'s arguments."""
    x = m.arg_vars[j]
    out = m.outs[k]
    if x.dtype.kind != "f" or out.dtype.kind != "f":
        raise fe.error(f"{who}: Jacobians need float inputs and outputs, got {x.aval} and {out.aval}", ArgumentError)
    in_shape, out_shape = tuple(x.shape), tuple(out.shape)
    dtype = out.dtype
    p, dst_index, n, lead = derivative_program(m, k, j, forward)
    src, dst = p.arg_vars[m.n_args], p.outs[dst_index]

    def run(seed: Atom) -> Atom:
        return inline_program(fe, p, [*flat, seed])[dst_index]

    if diagonal_map(p, src, dst):
        if in_shape != out_shape:
            return fe.fill(out_shape + in_shape, 0, dtype)
        d = run(fe.fill(src.shape, 1, src.dtype))
        eye = fe.atom(np.eye(max(x.aval.size, 1), dtype=dtype).reshape(in_shape + in_shape))
        d = fe.bind1("reshape", d, shape=in_shape + (1,) * len(in_shape)) if in_shape else d
        return fe.bind1("mul", d, eye)
    if n > MAX_UNROLL:
        raise fe.error(
            f"{who}: this Jacobian needs {n} {'forward' if forward else 'reverse'}-mode evaluations "
            f"(more than {MAX_UNROLL}); its input {fmt_shape(in_shape)} and output {fmt_shape(out_shape)} are too large "
            "to unroll inside compiled code. Call the Jacobian from Python (it then loops over one "
            "compiled evaluation), or use jvp/vjp/hvp products.",
            ArgumentValueError,
        )
    total: Atom | None = None
    seed_shape = in_shape if forward else out_shape
    for i in range(n):
        piece = run(_one_hot(fe, seed_shape, i, src.dtype))
        piece = fe.cast(piece, dtype)
        placed = _place(fe, piece, lead, seed_shape, i, rows=not forward)
        total = placed if total is None else fe.bind1("add", total, placed)
    assert total is not None
    return total


def _position_of_leaf(m: Program, j: int) -> int:
    return next(p for p, (lo, hi, _) in enumerate(arg_leaf_ranges(m)) if lo <= j < hi)


class JacobianFunction(Transformed):
    """``jacfwd``/``jacrev``/``hessian`` of a function with one tensor output."""

    def __init__(self, fn: Any, mode: str, argnums: Any):
        self.mode = mode
        self.prefix = mode
        positions = _check_positions(mode, argnums, "argnums", allow_none=False)
        assert positions is not None, "allow_none=False: None is an error"
        self.positions: tuple[int, ...] = positions
        self.bare = isinstance(argnums, int)
        super().__init__(fn)

    def key(self) -> tuple:
        return (self.mode, self.positions, self.bare)

    def describe(self) -> str:
        argnums = self.positions[0] if self.bare else self.positions
        return f"{self.mode} of {callable_name(self.fn)} (argnums={argnums})."

    def _blocks(self, fe: Tracer, args: list[Any]) -> tuple[list[list[tuple[Program, int, int]]], bool]:
        """Check the call and return the Jacobian blocks ``(program, output k, argument leaf
        j)``, one row per output (one row for jacfwd/jacrev, one per position for hessian),
        and whether the blocks are evaluated forward."""
        who = self.mode
        for p in self.positions:
            if p >= len(args):
                raise fe.error(
                    f"{who}: argnums {p} is out of range: {callable_name(self.fn)} was called with {len(args)} input(s)",
                    ArgumentValueError,
                )
        args = [_number_atom(a) if i in self.positions else a for i, a in enumerate(args)]
        inner = trace_abstract(self.fn, list(args))
        # Integer inputs are differentiated as float32 (the Jacobian then has the float dtype
        # of the output); bool inputs are an error.
        inner = differentiated_program(fe, who, self.fn, list(args), inner, list(self.positions), [], True)
        if inner.out_tree is not None or len(inner.outs) != 1:
            raise fe.error(
                f"{who}: {callable_name(self.fn)} must return one tensor, got {len(inner.outs)} outputs", ArgumentError
            )
        ranges = arg_leaf_ranges(inner)
        leaves = []
        for p in self.positions:
            lo, hi, _ = ranges[p]
            if hi - lo != 1:
                raise fe.error(f"{who}: argument {p} must be one tensor (not a tuple)", ArgumentError)
            leaves.append(lo)
        if self.mode != "hessian":
            return [[(inner, 0, j) for j in leaves]], self.mode == "jacfwd"
        if inner.outs[0].shape != ():
            raise fe.error(
                f"hessian: {callable_name(self.fn)} must return a scalar, got shape {fmt_shape(inner.outs[0].shape)}",
                ArgumentError,
            )
        g = optimize(grad_program(inner, list(self.positions), [], False), final=False)
        return [[(g, k, j) for j in leaves] for k in range(len(self.positions))], True

    def _shape(self, rows: list[list[Any]]) -> Any:
        if self.mode == "hessian":
            return rows[0][0] if self.bare else tuple(tuple(r) for r in rows)
        return rows[0][0] if self.bare else tuple(rows[0])

    def number_positions(self, n: int) -> tuple[int, ...]:
        return self.positions

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        _no_kwargs(fe, self.__name__, kwargs)
        blocks, forward = self._blocks(fe, list(args))
        flat: list[Atom] = []
        for i, a in enumerate(args):
            flat.extend(_leaf_atoms(fe, _number_atom(a) if i in self.positions else a))
        return self._shape([[jacobian_of(fe, m, flat, k, j, forward, self.mode) for m, k, j in row] for row in blocks])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Called from Python, a Jacobian that is not diagonal runs its one-evaluation program
        in a loop (compiled once) instead of compiling one unrolled program: the unrolled form
        is what nesting inside other transforms needs, but it compiles slowly."""
        if kwargs:
            return super().__call__(*args, **kwargs)
        args = tuple(number_input(a) if i in self.positions else a for i, a in enumerate(args))
        backend = context.backend()
        plans = calls_cache(self.fn, (self.key(), "plan"))
        plan = plans.lookup(call_key(backend, args), self._plan, list(args), backend)
        if plan is _STAGED:
            return super().__call__(*args)
        return self._shape([[run(list(args)) for run in row] for row in plan])

    def _plan(self, args: list[Any], backend: str) -> Any:
        # A warm-start record of the unrolled program means an earlier process chose it: load
        # it (into the cache the unrolled call looks in) instead of tracing to plan again.
        key = call_key(backend, args)
        warm = load_warm(self, key, backend)
        if warm is not None:
            calls_cache(*self.cache_root()).put(key, warm)
            return _STAGED
        with progress.compiling(self.__name__, backend):
            return self._build_plan(args, backend)

    def _build_plan(self, args: list[Any], backend: str) -> Any:
        fe = Tracer()
        with progress.timed("trace"):
            blocks, forward = self._blocks(fe, args)
        plan, evaluations, diagonal = [], 0, True
        for row in blocks:
            runs = []
            for m, k, j in row:
                p, dst_index, n, lead = derivative_program(m, k, j, forward)
                diagonal = diagonal and diagonal_map(p, p.arg_vars[m.n_args], p.outs[dst_index])
                evaluations += n
                one = p.replace(outs=[p.outs[dst_index]], out_tree=None, name=f"{self.mode}_{p.name}")
                seed = tuple(m.arg_vars[j].shape) if forward else tuple(m.outs[k].shape)
                runs.append(_LoopJacobian(Compiled(one, backend), seed, lead, forward, m.outs[k].dtype))
            plan.append(runs)
        return _STAGED if diagonal or evaluations <= _LOOP_FROM else plan


# At or below this many evaluations the unrolled program is used at the top level too.
_LOOP_FROM = 4
_STAGED = object()


class _LoopJacobian:
    """One Jacobian block: the one-evaluation program called once per one-hot seed."""

    def __init__(self, compiled: Any, seed_shape: tuple[int, ...], lead: tuple[int, ...], forward: bool, dtype: Any):
        self.compiled, self.seed_shape, self.lead, self.forward, self.dtype = (
            compiled,
            seed_shape,
            lead,
            forward,
            np.dtype(dtype),
        )

    def __call__(self, args: list[Any]) -> Any:
        n = int(np.prod(self.seed_shape, dtype=np.int64))
        m = int(np.prod(self.lead, dtype=np.int64))
        out = np.zeros((m, n) if self.forward else (n, m), self.dtype)
        seed = np.zeros(n, self.dtype)
        for i in range(n):
            seed[i] = 1
            r = self.compiled([*args, seed.reshape(self.seed_shape)]).asnumpy().reshape(-1)
            seed[i] = 0
            if self.forward:
                out[:, i] = r
            else:
                out[i, :] = r
        shape = self.lead + self.seed_shape if self.forward else self.seed_shape + self.lead
        return Tensor._wrap(out.reshape(shape))


class JacobianTransform(Protocol):
    """The type of ``jacfwd``, ``jacrev`` and ``hessian``: given ``fn``, a
    :class:`JacobianFunction`; without it, a decorator."""

    @overload
    def __call__(
        self,
        fn: Callable[..., Any],
        argnums: int | tuple[int, ...] = 0,
        *,
        grad_position: int | tuple[int, ...] | None = None,
        has_aux: bool = False,
    ) -> JacobianFunction: ...
    @overload
    def __call__(
        self,
        fn: None = None,
        argnums: int | tuple[int, ...] = 0,
        *,
        grad_position: int | tuple[int, ...] | None = None,
        has_aux: bool = False,
    ) -> Callable[[Callable[..., Any]], JacobianFunction]: ...


def _jacobian(mode: str, doc: str) -> JacobianTransform:
    def make(
        fn: Callable[..., Any] | None = None,
        argnums: int | tuple[int, ...] = 0,
        *,
        grad_position: int | tuple[int, ...] | None = None,
        has_aux: bool = False,
    ) -> Any:
        if grad_position is not None:  # MindSpore's name for argnums
            if argnums != 0:
                raise ArgumentError(f"{mode}: give argnums or grad_position, not both")
            argnums = grad_position
        if has_aux is not False:
            _check_bool(mode, has_aux=has_aux)
            raise NotSupportedError(
                f"{mode}(has_aux=True) is not supported: return only the differentiated output, and "
                "compute the auxiliary values in a separate call"
            )
        if fn is None:
            return lambda f: make(f, argnums)
        _check_callable(mode, fn)
        return JacobianFunction(fn, mode, argnums)

    make.__name__ = make.__qualname__ = mode
    make.__doc__ = doc
    register_static(make)  # called while compiling, on compile-time values
    return make


jacfwd = _jacobian(
    "jacfwd",
    """``jacfwd(fn, argnums=0)`` (or MindSpore's ``grad_position=``): a function returning the Jacobian of ``fn``'s (one tensor)
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


class HvpFunction(Transformed):
    """Forward-over-reverse: ``jvp`` of the gradient of all inputs."""

    prefix = "hvp"

    def key(self) -> tuple:
        return ("hvp",)

    def describe(self) -> str:
        return f"Hessian-vector product of {callable_name(self.fn)} (forward over reverse)."

    def extra_args(self, n: int) -> list[str]:
        return ["v"] if n > 0 else []

    def number_positions(self, n: int) -> range:
        return range(max(n - 1, 0))

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        args = [_number_atom(a) for a in args[:-1]] + list(args[-1:])
        primals = list(args[:-1])
        out = trace_abstract(self.fn, primals)
        if out.out_tree is not None or out.outs[0].shape != ():
            raise fe.error(f"hvp: {callable_name(self.fn)} must return a scalar", ArgumentError)
        grad_all = flags_function(self.fn, None, True, False, False, "hvp")
        _, tangent = JvpFunction(grad_all, "hvp").__s2s_stage__(fe, list(args), {})
        return tangent[0] if len(primals) == 1 else tangent


hvp = _Direct(
    HvpFunction,
    "hvp",
    """``hvp(fn, primals, tangents)``: the Hessian-vector product ``H·v`` of a scalar ``fn`` at
    ``primals`` (a Tensor or a tuple), for ``tangents`` structured like ``primals``; computed
    forward-over-reverse, the Hessian never formed. Returns a Tensor for one primal, else a
    tuple (``Σ_j H_ij v_j`` for each input ``i``).""",
    __name__,
)

__all__ = ["jacfwd", "jacrev", "hessian", "hvp", "JacobianFunction", "HvpFunction", "diagonal_map"]
