"""What a compile is doing, and how long each stage took, through :mod:`logging`.

Every compile of a program (a Cell's call, a transformed function, a Jacobian's plan) is a
:func:`compiling` session; its stages (``trace``, ``AD``, ``SymPy``, ``optimize``,
``codegen``, ``Numba``) are timed by :func:`timed`, each stage's time its own (a stage that
runs inside another, as AD inside the trace, is not counted twice). The logger ``"s2s_ad"``
says, at level INFO:

* for a compile that has run 1 s (:data:`SLOW`) or more: each stage as it starts (once per
  stage), with the time so far, and at the end the total and the time of each stage;
* with the verbose setting (``S2S_AD_VERBOSE=1`` in the environment, or
  ``set_context(verbose=True)``): the total and stage times of every compile, and the programs
  loaded from the disk cache without tracing; the logger then prints to stderr when no
  handler is configured.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from . import context

logger = logging.getLogger("s2s_ad")
SLOW = 1.0  # seconds: a compile at least this long reports its stages
_local = threading.local()
_handler: logging.Handler | None = None


def verbose() -> bool:
    """Whether every compile reports its stages (``S2S_AD_VERBOSE`` or the context's ``verbose``)."""
    env = os.environ.get("S2S_AD_VERBOSE", "").strip().lower()
    return env not in ("", "0", "false", "no", "off") or bool(context.get_context("verbose"))


def _log(message: str) -> None:
    global _handler
    if verbose() and _handler is None and not logger.handlers and not logging.getLogger().handlers:
        # verbose without a logging configuration: print to stderr
        _handler = logging.StreamHandler(sys.stderr)
        _handler.setFormatter(logging.Formatter("s2s_ad: %(message)s"))
        logger.addHandler(_handler)
    if verbose() and logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.info(message)


class Session:
    """One compile: its name, backend, stages and their times. It ends when its build and
    every first call attached to it (:meth:`attach`, Numba compiling there) are done."""

    def __init__(self, name: str, backend: str):
        self.name, self.backend = name, backend
        self.start = time.perf_counter()
        self.spent = 0.0  # seconds in the build and the attached first calls
        self.stages: dict[str, float] = {}
        self.pending = 1
        self.failed = False
        self.announced: set[str] = set()
        self.stack: list[list] = []  # [stage, start, time of the stages inside it]

    def elapsed(self) -> float:
        return self.spent + (time.perf_counter() - self.start if self.pending and self.start else 0.0)

    @contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        """Time ``stage`` (its own time: stages inside it are taken out)."""
        if stage not in self.announced and self.elapsed() >= SLOW:
            self.announced.add(stage)
            _log(f"{self.name}: {stage}... ({self.elapsed():.1f} s so far)")
        self.stages.setdefault(stage, 0.0)
        frame = [stage, time.perf_counter(), 0.0]
        self.stack.append(frame)
        try:
            yield
        finally:
            self.stack.pop()
            total = time.perf_counter() - frame[1]
            self.stages[stage] = self.stages.get(stage, 0.0) + total - frame[2]
            if self.stack:
                self.stack[-1][2] += total

    def attach(self) -> None:
        """One more first call (where Numba compiles) belongs to this compile."""
        self.pending += 1

    def resume(self) -> None:
        self.start = time.perf_counter()

    def done(self) -> None:
        """The build, or one attached first call, is done; the last one reports."""
        self.spent += time.perf_counter() - self.start
        self.start = 0.0
        self.pending -= 1
        if self.pending == 0 and not self.failed and (verbose() or self.spent >= SLOW):
            parts = ", ".join(f"{k} {v:.2f} s" for k, v in self.stages.items())
            _log(f"compiled {self.name} ({self.backend}) in {self.spent:.2f} s: {parts}")


def current() -> Session | None:
    """The compile running in this thread, if any."""
    stack = getattr(_local, "sessions", None)
    return stack[-1] if stack else None


@contextmanager
def compiling(name: str, backend: str) -> Iterator[Session]:
    """A compile of program ``name`` for ``backend``: stages timed inside belong to it."""
    s = Session(name, backend)
    stack = _local.__dict__.setdefault("sessions", [])
    stack.append(s)
    try:
        yield s
    except BaseException:
        s.failed = True  # the error says what happened: no summary
        raise
    finally:
        stack.pop()
        s.done()


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Time ``stage`` of the compile running in this thread (nothing when none is)."""
    s = current()
    if s is None:
        yield
        return
    with s.timing(stage):
        yield


F = TypeVar("F", bound=Callable[..., Any])


def stage(name: str) -> Callable[[F], F]:
    """Decorator: each call of the function is stage ``name`` of the running compile."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def timed_call(*args: Any, **kwargs: Any) -> Any:
            s = current()
            if s is None:
                return fn(*args, **kwargs)
            with s.timing(name):
                return fn(*args, **kwargs)

        return timed_call  # type: ignore[return-value]

    return wrap


def loaded(name: str, seconds: float) -> None:
    """Program ``name`` was loaded from the disk cache without tracing (said when verbose)."""
    if verbose():
        _log(f"{name}: loaded from the disk cache in {seconds * 1e3:.0f} ms (no trace, AD or codegen)")


__all__ = ["SLOW", "Session", "compiling", "current", "loaded", "logger", "stage", "timed", "verbose"]
