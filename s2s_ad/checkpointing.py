"""``s2s_ad.checkpoint``: trade memory for recomputation in reverse mode."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .errors import ArgumentError
from .trace.checkpoint import loop_policy, stage_recomputed


class Checkpointed:
    """A function whose reverse-mode residuals are recomputed rather than kept (see
    :func:`checkpoint`). Called outside compiled code it is the function itself."""

    def __init__(self, fn: Callable[..., Any], every: int | None) -> None:
        self.fn = fn
        self.every = every
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __s2s_stage__(self, tr: Any, args: list, kwargs: dict) -> Any:
        if self.every is not None:
            with loop_policy(checkpoint=self.every):
                return tr.call(self.fn, list(args), kwargs)
        return stage_recomputed(tr, self.fn, list(args), kwargs, getattr(self.fn, "__name__", "checkpointed"))


def checkpoint(fn: Callable[..., Any] | None = None, *, every: int | None = None) -> Any:
    """Trade memory for recomputation in reverse mode, as a wrapper or decorator.

    * ``checkpoint(fn)``: a call of ``fn`` inside compiled code keeps only its inputs for the
      adjoint sweep, which recomputes ``fn``'s forward values (``jax.checkpoint``'s semantics).
    * ``checkpoint(fn, every=k)``: the counted loops ``fn`` runs store their carried values
      every ``k`` iterations instead of every iteration; the adjoint sweep recomputes the
      ``k`` iterations of a segment from its stored start (memory ``n/k + k`` carries for
      ``n`` iterations instead of ``n``; each iteration's forward runs twice).

    Both leave values and derivatives unchanged (to rounding)."""
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ArgumentError(f"checkpoint(every=...) takes a positive int, got {every!r}")
    if fn is None:
        return lambda f: Checkpointed(f, every)
    if not callable(fn):
        raise ArgumentError(f"checkpoint takes a function, got {type(fn).__name__}")
    return Checkpointed(fn, every)
