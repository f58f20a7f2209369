"""Jacobians and Hessians: ``jacfwd``, ``jacrev`` and ``hessian`` (JAX's conventions, ``argnums``),
``ops.jacfwd`` and ``ops.jacrev`` (MindSpore's, ``grad_position``) and ``hvp``.

A Jacobian block is one derivative program evaluated over a basis: ``jacfwd`` evaluates the
forward-mode program of one differentiated input on every one-hot tangent (one column of the
Jacobian each), ``jacrev`` the reverse-mode program of one output on every one-hot cotangent
(one row each), and ``hessian`` is ``jacfwd`` of the reverse-mode gradient (forward over
reverse). The evaluations are one: the program is inlined once, batched over its seed, with
the identity matrix as the batch of seeds (:func:`basis_sweep`, :mod:`s2s_ad.batching`); its
primal part stays unbatched and its size does not depend on the size of the Jacobian.

Diagonal structure is found where it exists: when the tangent (or cotangent) flows from the
input to the output only through elementwise operations of one shape, the Jacobian is
diagonal and one evaluation with a tangent of ones gives its diagonal. The Hessian of
``sum(f(x))`` for an elementwise ``f`` is computed that way: one Hessian-vector product.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, overload

import numpy as np

from . import ops
from .ad.forward import jvp_program
from .api import (
    JvpFunction,
    Transformed,
    _aux_of,
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
    trace_abstract,
)
from .derivatives import grad_program
from .errors import ArgumentError, ArgumentValueError
from .ir import Atom, Program, TreeDef, Var, arg_leaf_ranges, tree_str, treedef_leaves, unflatten
from .opt import optimize
from .primitives import get_op, to_batch_dim
from .trace.protocol import register_static
from .trace.tracer import Tracer, inline_program


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


def basis_sweep(fe: Tracer, p: Program, flat: list[Atom], dsts: list[int], last: bool = False) -> list[Atom]:
    """Evaluate ``p`` (arguments ``flat``, then one seed) on every element of the seed's
    standard basis at once: the seed is an identity matrix batched along its first axis
    (``flat`` is not batched), and ``p`` is inlined once, batched (:mod:`s2s_ad.batching`).
    Returns, for each output index in ``dsts``, the results with the basis axis first
    (``(seed size,) + output shape``), or last with ``last``."""
    # imported here: batching is a peer of the AD modes, loaded on first use (as vmap does)
    from .batching import batch_eqns

    seed = p.arg_vars[len(flat)]
    n = seed.aval.size
    basis = fe.atom(np.eye(n, dtype=seed.dtype).reshape((n, *seed.shape)))
    ins = [fe.cast(a, v.dtype) for v, a in zip(p.arg_vars, [*flat, basis])]
    ins += [fe.cast(fe.atom(q), v.dtype) for v, q in zip(p.param_vars, p.parameters)]
    ins += [fe.atom(c) for c in p.consts]
    dims: list[int | None] = [None] * len(p.invars)
    dims[len(flat)] = 0
    outs, out_dims = batch_eqns(fe.builder, p, ins, dims, n)
    res = []
    for d in dsts:
        want = len(p.outs[d].shape) if last else 0
        res.append(to_batch_dim(fe.builder, outs[d], out_dims[d], want, n))
    return res


def _diagonal(fe: Tracer, d: Atom, shape: tuple[int, ...]) -> Atom:
    """The Jacobian ``shape + shape`` whose diagonal is ``d`` (of ``shape``)."""
    eye = fe.atom(np.eye(max(int(np.prod(shape, dtype=np.int64)), 1), dtype=d.dtype).reshape(shape + shape))
    d = fe.bind1("reshape", d, shape=shape + (1,) * len(shape)) if shape else d
    return fe.bind1("mul", d, eye)


def forward_blocks(fe: Tracer, m: Program, flat: list[Atom], wrt: list[int]) -> list[list[Atom]]:
    """The Jacobian blocks ``J[k][t]`` (shape ``out_k.shape + in.shape``) of every output
    ``k`` of ``m`` w.r.t. every argument leaf ``wrt[t]``, forward: one sweep per leaf."""
    n_out = len(m.outs)
    cols: list[list[Atom]] = []
    for j in wrt:
        x = m.arg_vars[j]
        p = optimize(jvp_program(m, [j]), final=False)
        src = p.arg_vars[m.n_args]
        dsts = [n_out + k for k in range(n_out)]
        col: list[Atom] = []
        if all(diagonal_map(p, src, p.outs[d]) for d in dsts):
            outs = inline_program(fe, p, [*flat, fe.fill(x.shape, 1, x.dtype)])
            for k, o in enumerate(m.outs):
                if o.shape != x.shape:
                    col.append(fe.fill(o.shape + x.shape, 0, o.dtype))
                else:
                    col.append(_diagonal(fe, fe.cast(outs[n_out + k], o.dtype), tuple(x.shape)))
        elif x.aval.size == 0:
            col = [fe.fill(o.shape + x.shape, 0, o.dtype) for o in m.outs]
        else:
            for o, s in zip(m.outs, basis_sweep(fe, p, flat, dsts, last=True)):  # (*out, n)
                col.append(fe.bind1("reshape", fe.cast(s, o.dtype), shape=o.shape + x.shape))
        cols.append(col)
    return [[cols[t][k] for t in range(len(wrt))] for k in range(n_out)]


def reverse_blocks(fe: Tracer, m: Program, flat: list[Atom], positions: list[int], wrt: list[int]) -> list[list[Atom]]:
    """As :func:`forward_blocks`, by reverse mode: one sweep per output of ``m``
    (``wrt`` are the leaves of the argument ``positions``)."""
    rows: list[list[Atom]] = []
    for o in m.outs:
        single = m.replace(outs=[o], out_tree=None)
        p = optimize(grad_program(single, positions, [], sens_param=True), final=False)
        src = p.arg_vars[m.n_args]
        xs = [m.arg_vars[j] for j in wrt]
        if all(diagonal_map(p, src, p.outs[t]) for t in range(len(wrt))):
            outs = inline_program(fe, p, [*flat, fe.fill(o.shape, 1, o.dtype)])
            row = [
                _diagonal(fe, fe.cast(g, o.dtype), tuple(x.shape))
                if x.shape == o.shape
                else fe.fill(o.shape + x.shape, 0, o.dtype)
                for x, g in zip(xs, outs)
            ]
        elif o.aval.size == 0:
            row = [fe.fill(o.shape + x.shape, 0, o.dtype) for x in xs]
        else:
            stacked = basis_sweep(fe, p, flat, list(range(len(wrt))))  # (n, *in)
            row = [fe.bind1("reshape", fe.cast(s, o.dtype), shape=o.shape + x.shape) for x, s in zip(xs, stacked)]
        rows.append(row)
    return rows


class JacobianFunction(Transformed):
    """``jacfwd``/``jacrev``/``hessian`` of a function: JAX's conventions (``api="jax"``,
    ``argnums``) or MindSpore's (``api="mindspore"``, ``grad_position``; ``ops.jacfwd``)."""

    def __init__(self, fn: Any, mode: str, argnums: Any, has_aux: bool = False, api: str = "jax"):
        self.mode = mode
        self.prefix = mode
        self.api = api
        self.who = _who(mode, api)
        positions = _check_positions(self.who, argnums, self._positions_name(), allow_none=False)
        assert positions is not None, "allow_none=False: None is an error"
        self.positions: tuple[int, ...] = positions
        self.bare = isinstance(argnums, int)
        self.has_aux = has_aux
        super().__init__(fn)

    def _positions_name(self) -> str:
        return "argnums" if self.api == "jax" else "grad_position"

    def key(self) -> tuple:
        return (self.mode, self.positions, self.bare, self.has_aux, self.api)

    def describe(self) -> str:
        given = self.positions[0] if self.bare else self.positions
        aux = ", has_aux=True" if self.has_aux else ""
        return f"{self.who} of {callable_name(self.fn)} ({self._positions_name()}={given}{aux})."

    def number_positions(self, n: int) -> tuple[int, ...]:
        return self.positions

    def _split_aux(self, fe: Tracer, m: Program) -> tuple[Program, Callable[[list[Any]], Any] | None]:
        """``m`` restricted to the differentiated outputs, and (with ``has_aux``) how to
        pick the auxiliary outputs out of ``m``'s output tree."""
        if not self.has_aux:
            return m, None
        tree = m.out_tree
        name = callable_name(self.fn)
        if self.api == "jax":
            if not (isinstance(tree, tuple) and tree[0] in ("tuple", "list") and len(tree[1]) == 2):
                raise fe.error(
                    f"{self.who}(has_aux=True): {name} must return a pair (output, aux), got {tree_str(tree)}",
                    ArgumentError,
                )
        elif not (isinstance(tree, tuple) and tree[0] in ("tuple", "list") and len(tree[1]) >= 2):
            raise fe.error(
                f"{self.who}(has_aux=True): {name} must return a tuple of at least two outputs (the one "
                f"to differentiate, then auxiliary outputs), got {tree_str(tree)}",
                ArgumentError,
            )
        first = tree[1][0]
        n0 = treedef_leaves(first)
        jax_api = self.api == "jax"

        def aux(values: list[Any]) -> Any:
            out = unflatten(tree, values)
            return out[1] if jax_api else _aux_of(tuple(out))

        return m.replace(outs=m.outs[:n0], out_tree=first), aux

    def __s2s_stage__(self, fe: Tracer, args: list[Any], kwargs: dict) -> Any:
        _no_kwargs(fe, self.__name__, kwargs)
        who, name = self.who, callable_name(self.fn)
        for p in self.positions:
            if p >= len(args):
                raise fe.error(
                    f"{who}: {self._positions_name()} {p} is out of range: {name} was called with {len(args)} input(s)",
                    ArgumentValueError,
                )
        args = [_number_atom(a) if i in self.positions else a for i, a in enumerate(args)]
        inner = trace_abstract(self.fn, list(args))
        # Integer inputs are differentiated as float32 (the Jacobian then has the float dtype
        # of the output); bool inputs are an error.
        m = differentiated_program(fe, who, self.fn, list(args), inner, list(self.positions), [], True)
        m, aux = self._split_aux(fe, m)
        flat: list[Atom] = []
        for a in args:
            flat.extend(_leaf_atoms(fe, a))
        ranges = arg_leaf_ranges(m)
        wrt = [j for p in self.positions for j in range(ranges[p][0], ranges[p][1])]
        for j in wrt:
            x = m.arg_vars[j]
            if x.dtype.kind != "f":
                raise fe.error(
                    f"{who}: Jacobians need float inputs; an input leaf at {self._positions_name()} "
                    f"{self.positions} of {name} is {x.aval}",
                    ArgumentError,
                )
        if self.mode == "hessian" and (len(m.outs) != 1 or m.outs[0].shape != ()):
            self._check_float_outputs(fe, m)
            jac = self._nested_hessian(fe, args, flat, wrt, ranges)
        elif self.mode == "hessian":
            self._check_float_outputs(fe, m)
            g = optimize(grad_program(m, list(self.positions), [], False), final=False)
            blocks = forward_blocks(fe, g, flat, wrt)
            trees = tuple(ranges[p][2] for p in self.positions)
            jac = self._structure(blocks, trees[0] if self.bare else ("tuple", trees), ranges)
        else:
            self._check_float_outputs(fe, m)
            if self.mode == "jacfwd":
                blocks = forward_blocks(fe, m, flat, wrt)
            else:
                blocks = reverse_blocks(fe, m, flat, list(self.positions), wrt)
            jac = self._structure(blocks, m.out_tree, ranges)
        if aux is None:
            return jac
        return jac, aux(inline_program(fe, inner, flat))

    def _nested_hessian(self, fe: Tracer, args: list[Any], flat: list[Atom], wrt: list[int], ranges: list) -> Any:
        """The Hessian of a function with any outputs, JAX's ``jacfwd(jacrev(fn))``: each output
        leaf's block is ``out.shape + in.shape + in.shape``, in the structure of ``jacrev``'s
        result (the output's structure, a tuple per ``argnums`` tuple) with ``argnums``'s
        structure inside each leaf. ``jacrev`` sweeps each output once, batched over its
        elements; ``jacfwd`` of that program sweeps each input once, batched over its elements."""
        given = self.positions[0] if self.bare else self.positions
        rev = JacobianFunction(self.fn, "jacrev", given, self.has_aux, "jax")
        inner = trace_abstract(rev, list(args))
        m = differentiated_program(fe, self.who, rev, list(args), inner, list(self.positions), [], True)
        if self.has_aux:  # (jacobian, aux): the aux part is computed by the caller
            first = m.out_tree[1][0]
            m = m.replace(outs=m.outs[: treedef_leaves(first)], out_tree=first)
        return self._structure(forward_blocks(fe, m, flat, wrt), m.out_tree, ranges)

    def _check_float_outputs(self, fe: Tracer, m: Program) -> None:
        for k, o in enumerate(m.outs):
            if o.dtype.kind != "f":
                which = f"output {k}" if len(m.outs) > 1 else "the output"
                raise fe.error(
                    f"{self.who}: Jacobians need float outputs; {which} of {callable_name(self.fn)} is {o.aval} "
                    "(an integer or bool output has no derivative: return it as an auxiliary output "
                    "with has_aux=True, or leave it out)",
                    ArgumentError,
                )

    def _structure(self, blocks: list[list[Atom]], out_tree: TreeDef, ranges: list) -> Any:
        """``blocks[k][t]`` (output leaf k, input leaf t) arranged by the API's conventions."""
        per_out = []
        for row in blocks:
            per_pos, t = [], 0
            for p in self.positions:
                lo, hi, tree = ranges[p]
                per_pos.append(unflatten(tree, row[t : t + hi - lo]))
                t += hi - lo
            per_out.append(per_pos)
        if self.api == "jax":
            return unflatten(out_tree, [pp[0] if self.bare else tuple(pp) for pp in per_out])
        # MindSpore: one block is bare; one output or one position gives a flat tuple; else
        # a tuple per output of a tuple per position.
        if len(per_out) == 1 and len(self.positions) == 1:
            return per_out[0][0]
        if len(self.positions) == 1:
            return tuple(pp[0] for pp in per_out)
        if len(per_out) == 1:
            return tuple(per_out[0])
        return tuple(tuple(pp) for pp in per_out)


class JacobianTransform(Protocol):
    """The type of ``jacfwd``, ``jacrev`` and ``hessian``: given ``fn``, a
    :class:`JacobianFunction`; without it, a decorator."""

    @overload
    def __call__(
        self,
        fn: Callable[..., Any],
        argnums: int | tuple[int, ...] = 0,
        has_aux: bool = False,
        *,
        grad_position: int | tuple[int, ...] | None = None,
    ) -> JacobianFunction: ...
    @overload
    def __call__(
        self,
        fn: None = None,
        argnums: int | tuple[int, ...] = 0,
        has_aux: bool = False,
        *,
        grad_position: int | tuple[int, ...] | None = None,
    ) -> Callable[[Callable[..., Any]], JacobianFunction]: ...


def _jacobian(mode: str, doc: str) -> JacobianTransform:
    def make(
        fn: Callable[..., Any] | None = None,
        argnums: int | tuple[int, ...] = 0,
        has_aux: bool = False,
        *,
        grad_position: int | tuple[int, ...] | None = None,
    ) -> Any:
        _check_bool(mode, has_aux=has_aux)
        api = "jax"
        if grad_position is not None:  # MindSpore's spelling: MindSpore's conventions
            if argnums != 0:
                raise ArgumentError(f"{mode}: give argnums or grad_position, not both")
            argnums, api = grad_position, "mindspore"
        if fn is None:
            return lambda f: _make_jacobian(mode, f, argnums, has_aux, api)
        return _make_jacobian(mode, fn, argnums, has_aux, api)

    make.__name__ = make.__qualname__ = mode
    make.__doc__ = doc
    register_static(make)  # called while compiling, on compile-time values
    return make


def _who(mode: str, api: str) -> str:
    """The name errors give: ``ops.jacfwd`` for MindSpore's (there is no ``ops.hessian``)."""
    return f"ops.{mode}" if api == "mindspore" and mode != "hessian" else mode


def _make_jacobian(mode: str, fn: Any, positions: Any, has_aux: bool, api: str) -> JacobianFunction:
    who = _who(mode, api)
    _check_callable(who, fn)
    return JacobianFunction(fn, mode, positions, has_aux, api)


jacfwd = _jacobian(
    "jacfwd",
    """``jacfwd(fn, argnums=0, has_aux=False)``: a function returning the Jacobian of ``fn``
    w.r.t. the input(s) at ``argnums`` by forward mode (JAX's conventions), one block
    ``out.shape + in.shape`` per output leaf and input: an int ``argnums`` gives the block
    (a tuple of ``argnums`` a tuple of blocks) for each output, structured like ``fn``'s
    output (a tuple of outputs gives a tuple). With ``has_aux`` ``fn`` returns ``(output, aux)``
    and the result is ``(jacobian, aux)``. A diagonal Jacobian costs one evaluation.
    ``grad_position=`` (MindSpore's spelling) gives MindSpore's conventions, as
    :func:`s2s_ad.ops.jacfwd`.""",
)
jacrev = _jacobian(
    "jacrev",
    """``jacrev(fn, argnums=0, has_aux=False)``: as :func:`jacfwd`, by reverse mode (one
    sweep per output; one evaluation when the Jacobian is diagonal).""",
)
hessian = _jacobian(
    "hessian",
    """``hessian(fn, argnums=0, has_aux=False)``: the Hessian of ``fn``, shaped ``in.shape +
    in.shape`` for a scalar ``fn``, computed forward-over-reverse (``jacfwd(jacrev(fn))``). With
    a tuple of ``argnums`` the result is a tuple of tuples ``H[i][j]``. Any output is allowed,
    as in JAX: each output leaf gives ``out.shape + in.shape + in.shape``, in the output's
    structure. With ``has_aux`` ``fn``
    returns ``(scalar, aux)`` and the result is ``(hessian, aux)``. A diagonal Hessian
    (``sum(f(x))`` for an elementwise ``f``) costs one Hessian-vector product.""",
)


class MindSporeJacobian(Protocol):
    """The type of ``ops.jacfwd`` and ``ops.jacrev``."""

    def __call__(
        self, fn: Callable[..., Any], grad_position: int | tuple[int, ...] = 0, has_aux: bool = False
    ) -> JacobianFunction: ...


def _mindspore_jacobian(mode: str, doc: str) -> MindSporeJacobian:
    def make(fn: Callable[..., Any], grad_position: int | tuple[int, ...] = 0, has_aux: bool = False) -> Any:
        _check_bool(f"ops.{mode}", has_aux=has_aux)
        return _make_jacobian(mode, fn, grad_position, has_aux, "mindspore")

    make.__name__ = make.__qualname__ = mode
    make.__module__ = "s2s_ad.ops"
    make.__doc__ = doc
    register_static(make)
    return make


ops_jacfwd = _mindspore_jacobian(
    "jacfwd",
    """``ops.jacfwd(fn, grad_position=0, has_aux=False)``: MindSpore's forward-mode Jacobian.

    ``fn`` returns a Tensor or a tuple of Tensors. The result is the block ``out.shape +
    in.shape`` when there is one output and one position (an int or a one-element tuple);
    a tuple of blocks, one per output, for one position; one per position for one output;
    else a tuple per output of a tuple per position. With ``has_aux`` only ``fn``'s first
    output is differentiated and the result is ``(jacobian, aux)``, ``aux`` the second
    output (a tuple of the outputs after the first when there are more).""",
)
ops_jacrev = _mindspore_jacobian(
    "jacrev",
    """``ops.jacrev(fn, grad_position=0, has_aux=False)``: MindSpore's reverse-mode Jacobian,
    structured as :func:`s2s_ad.ops.jacfwd`'s.""",
)

# MindSpore spells these ``ops.jacfwd`` and ``ops.jacrev``: installed in the ops package,
# which this module builds on (so ops cannot import it).
ops.jacfwd = ops_jacfwd
ops.jacrev = ops_jacrev


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
