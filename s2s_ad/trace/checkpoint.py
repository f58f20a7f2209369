"""Checkpointing while staging: the loop policy in force (``checkpoint=k`` on the loops a
checkpointed function stages) and a function's body staged as a region whose forward values
reverse mode recomputes instead of keeping (``s2s_ad.checkpoint``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ..errors import ArgumentError
from ..ir import Atom, Builder, Var, flatten, unflatten
from ..regions import bind_loop, subprogram
from .protocol import is_tensor_value
from .tracer import Tracer

_LOOP_OPTIONS: ContextVar[dict[str, Any]] = ContextVar("s2s_ad_loop_options", default={})  # noqa: B039


def loop_options() -> dict[str, Any]:
    """The extra parameters of the loops staged now (``{"checkpoint": k}`` inside a function
    wrapped by ``s2s_ad.checkpoint(fn, every=k)``): the frontend passes them to
    :func:`s2s_ad.regions.bind_loop` as ``**loop_options()``."""
    return dict(_LOOP_OPTIONS.get())


@contextmanager
def loop_policy(**options: Any) -> Iterator[None]:
    """Loops staged inside the block get ``options`` as parameters."""
    token = _LOOP_OPTIONS.set({**_LOOP_OPTIONS.get(), **options})
    try:
        yield
    finally:
        _LOOP_OPTIONS.reset(token)


def stage_recomputed(tr: Tracer, fn: Any, args: list, kwargs: dict, name: str) -> Any:
    """Stage ``fn(*args, **kwargs)`` as a loop of one iteration whose body is ``fn``'s staged
    body, a closed sub-program (the values it reads from outside, weights included, become
    inputs): reverse mode keeps only its inputs and recomputes its forward in the adjoint
    sweep (see :mod:`s2s_ad.ad.reverse`)."""
    leaves, tree = flatten(list(args))
    atoms = [tr.atom(x) if is_tensor_value(x) else None for x in leaves]
    fresh = [None if a is None else Var(a.aval, getattr(a, "hint", None)) for a in atoms]
    inner_args = unflatten(tree, [x if v is None else v for x, v in zip(leaves, fresh)])
    outer, promoted = tr._b, tr.promoted
    tr._b, tr.promoted = Builder(primal=True), {}
    tr._b.loc = outer.loc
    try:
        result = tr.call(fn, inner_args, kwargs)
    finally:
        inner, tr._b, tr.promoted = tr._b, outer, promoted
    out_leaves, out_tree = flatten(result)
    if not all(is_tensor_value(x) for x in out_leaves):
        raise tr.error(
            f"a checkpointed function (`{name}`) must return tensors (or tuples/lists of them)", ArgumentError
        )
    outs: list[Atom] = [tr.atom(x) for x in out_leaves]
    ins = [v for v in fresh if v is not None]
    defined = set(ins) | {o for e in inner.eqns for o in e.outs}
    free: list[Var] = []
    for e in inner.eqns:
        for a in e.ins:
            if isinstance(a, Var) and a not in defined and a not in free:
                free.append(a)
    for a in outs:
        if isinstance(a, Var) and a not in defined and a not in free:
            free.append(a)
    inner_free = [Var(v.aval, v.hint) for v in free]
    env = dict(zip(free, inner_free))
    eqns = [e.__class__(**{**e.__dict__, "ins": [env.get(a, a) for a in e.ins]}) for e in inner.eqns]
    i = Var(tr.lit(0, "int64").aval, "i")
    body = subprogram(name, [i, *ins, *inner_free], eqns, [env.get(a, a) for a in outs], inner.names)
    consts = [a for a in atoms if a is not None] + free
    ys = bind_loop(tr.builder, body, consts, [], [], 1, n_ys=len(outs), checkpoint_function=name)
    return unflatten(out_tree, [tr.bind1("getitem", y, index=(0,)) for y in ys])
