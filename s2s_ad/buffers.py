"""The arrays of a split program's main function, planned and kept between calls.

A split program's main function (:func:`s2s_ad.backend.split_program`) runs as Python: it
allocates each loop kernel's outputs with ``np.empty`` and each matrix product's result in
``np.dot``, and holds every one of them until it returns. For a program over thousands of
points these are hundreds of arrays of hundreds of kilobytes: glibc serves each from pages the
kernel hands out zeroed on first touch, and gives them back when they are freed, so every call
paid a page fault per 4 KiB of every temporary (the 4-layer PINN gradient: 5,500 faults, two
thirds of its time, where JAX's compiled program takes none).

:func:`plan` rewrites the main function so that its temporaries live in a workspace: a tuple
of arrays made on the first call and kept for the next one. Each temporary that does not
leave the function (no result is it, or a view of it) gets a slot; a slot is shared by
temporaries of the same shape and dtype whose lives do not overlap (a value's life ends with
the last statement that reads it or a view of it). A product writes into its slot through
``np.dot(..., out=...)``. Calls from several threads each take a workspace of their own.

Kept workspaces hold memory while their program lives: one program's is kept only up to
:data:`KEEP_BYTES`, and all programs' together up to :func:`budget` (``S2S_AD_WORKSPACE_MB``,
default 256; 0 keeps none). A workspace over either is made anew on each call (its slots
still shared within the call) and freed when the call returns, as numpy's own temporaries
would be.
"""

from __future__ import annotations

import ast
import math
import os
import threading
from collections.abc import Callable

import numpy as np

from .pyast import parse

__all__ = ["KEEP_BYTES", "Workspaces", "budget", "kept_bytes", "plan"]

KEEP_BYTES = 64 << 20  # the largest workspace kept between calls (per program)
DEFAULT_BUDGET_MB = 256


def budget() -> int:
    """Bytes all programs' kept workspaces may hold together: ``S2S_AD_WORKSPACE_MB``
    (default :data:`DEFAULT_BUDGET_MB`; 0 keeps none)."""
    raw = os.environ.get("S2S_AD_WORKSPACE_MB", "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_BUDGET_MB
    except ValueError:
        mb = DEFAULT_BUDGET_MB
    return int(max(mb, 0.0) * (1 << 20))


_LOCK = threading.Lock()
_kept = 0  # bytes held by kept workspaces, all programs together


def kept_bytes() -> int:
    """Bytes the kept workspaces of all programs hold now."""
    return _kept


class Workspaces:
    """The workspaces a program's calls have given back, for its next calls: :meth:`take` one
    (``None`` when there is none), :meth:`give` it back when the call returns (it is kept
    while the process's :func:`budget` allows). The generated main function holds one of
    these as ``kept_workspaces``."""

    __slots__ = ("free", "nbytes")

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.free: list[tuple] = []

    def take(self) -> tuple | None:
        global _kept
        try:
            ws = self.free.pop()
        except IndexError:
            return None
        with _LOCK:
            _kept -= self.nbytes
        return ws

    def give(self, ws: tuple) -> None:
        global _kept
        with _LOCK:
            if _kept + self.nbytes > budget():
                return
            _kept += self.nbytes
        self.free.append(ws)

    def __del__(self) -> None:
        global _kept
        if self.free:
            with _LOCK:
                _kept -= self.nbytes * len(self.free)


# calls whose result is a new array, never a view of an argument: numpy's products and
# reductions and ``astype`` (a copy); a call of a plain name is a loop kernel or a builtin
_FRESH_FUNCS = frozenset({"np.dot", "np.sum", "np.zeros", "np.empty", "np.full"})


def plan(
    lines: list[str], returned: list[str], shapes: dict[str, tuple], fresh: Callable[[str], str]
) -> tuple[list[str], list[str], list[str]]:
    """``(module, prologue, body)``: the statements ``lines`` of a main function that returns
    the expressions ``returned``, with its temporaries in a workspace (see the module's
    docstring). ``shapes`` gives ``(shape, dtype)`` of the names assigned from products;
    ``fresh(hint)`` makes a new variable name. ``module`` goes before the function (the kept
    workspaces), ``prologue`` first in its body (it takes a workspace); ``body`` gives it
    back at its end. Nothing changes where no temporary can have a slot."""
    text = "\n".join(lines)
    rows = text.split("\n")
    tree = parse(text)
    body = tree.body
    if not body or any(not isinstance(st, (ast.Assign, ast.AugAssign, ast.Expr)) for st in body):
        return [], [], lines  # control flow or unusual statements: left as they are
    made: dict[str, tuple[int, tuple, str]] = {}  # array made here -> (statement, spec, how)
    owner: dict[str, str] = {}  # a name -> the made array it is, or is a view of
    end: dict[str, int] = {}  # made array -> the last statement reading it or a view of it
    kept_apart: set[str] = set()  # made arrays never given a slot
    for i, st in enumerate(body):
        reads = [n.id for n in ast.walk(st) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
        for r in reads:
            if r in owner:
                end[owner[r]] = i
        spec = _made(st, shapes)
        if spec is not None:
            target = st.targets[0].id  # type: ignore[attr-defined]
            if target not in owner:
                made[target] = (i, *spec)
                owner[target] = target
                end[target] = i
                continue
        if isinstance(st, ast.Assign) and not _fresh(st.value):
            bases = {owner[r] for r in reads if r in owner}
            stored = [n.id for t in st.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            for n in stored:
                if len(bases) == 1:
                    owner[n] = next(iter(bases))
                else:  # a view of one of several arrays: none of them has a slot
                    kept_apart |= bases
    out_names = {n.id for r in returned for n in ast.walk(parse(r, "eval")) if isinstance(n, ast.Name)}
    kept_apart |= {owner[r] for r in out_names if r in owner}  # the results, and what they view
    slots: list[tuple] = []  # the spec of each slot
    busy: list[int] = []  # the last statement of each slot's present array
    slot_of: dict[str, int] = {}
    for name, (i, spec, _) in made.items():  # in statement order
        if name in kept_apart:
            continue
        # the free slot whose array died last: its memory is the likeliest still in cache
        free = [k for k, s in enumerate(slots) if s == spec and busy[k] < i]
        k = max(free, key=lambda k: busy[k]) if free else None
        if k is None:
            k = len(slots)
            slots.append(spec)
            busy.append(-1)
        busy[k] = end[name]
        slot_of[name] = k
    if not slot_of:
        return [], [], lines
    # slots of one shape and dtype numbered together (in the order the shapes first appear)
    first = {spec: k for k, spec in reversed(list(enumerate(slots)))}
    order = sorted(range(len(slots)), key=lambda k: (first[slots[k]], k))
    number = {k: n for n, k in enumerate(order)}
    slot_of = {name: number[k] for name, k in slot_of.items()}
    slots = [slots[k] for k in order]
    ws = fresh("workspace")
    for name, k in slot_of.items():
        i, _, how = made[name]
        st = body[i]
        row = st.lineno - 1
        if how == "empty":
            rows[row] = f"{rows[row][: st.col_offset]}{name} = {ws}[{k}]"
        else:  # a product: into its slot
            rows[row] = f"{rows[row][: st.end_col_offset - 1]}, out={ws}[{k}])"
    groups = [(spec, slots.count(spec)) for spec in dict.fromkeys(slots)]
    new = "(" + ", ".join(_arrays(shape, dt, n) for (shape, dt), n in groups) + ",)"
    nbytes = sum(math.prod(shape) * np.dtype(dt).itemsize for shape, dt in slots)
    what = f"{len(slots)} arrays, {_size(nbytes)}"
    if nbytes > KEEP_BYTES:
        return [], [f"{ws} = {new}  # its temporaries ({what}): too large to keep between calls"], rows
    kept = fresh("kept_workspaces")
    module = [f"{kept} = Workspaces({nbytes})  # the workspaces of calls that have returned ({what} each)"]
    prologue = [f"{ws} = {kept}.take() or {new}  # its temporaries"]
    return module, prologue, [*rows, f"{kept}.give({ws})"]


def _arrays(shape: tuple, dt: str, n: int) -> str:
    """Source of ``n`` new arrays, as items of a tuple display."""
    one = f"np.empty({shape!r}, np.{dt})"
    return one if n == 1 else f"*[{one} for _ in range({n})]"


def _size(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.1f} MiB" if nbytes >= 1 << 20 else f"{nbytes / 1024:.0f} KiB"


def _made(st: ast.stmt, shapes: dict[str, tuple]) -> tuple[tuple, str] | None:
    """``(spec, how)`` of an array ``st`` makes that a slot can hold: ``v = np.empty(shape,
    np.dtype)`` (how ``"empty"``) or ``v = np.dot(a, b)`` whose shape is known (``"dot"``)."""
    if not (isinstance(st, ast.Assign) and len(st.targets) == 1 and isinstance(st.targets[0], ast.Name)):
        return None
    call = st.value
    if not isinstance(call, ast.Call) or call.keywords:
        return None
    func = ast.unparse(call.func)
    if func == "np.empty" and len(call.args) == 2:
        try:
            shape = ast.literal_eval(call.args[0])
        except ValueError:
            return None
        dt = call.args[1]
        if isinstance(dt, ast.Attribute) and ast.unparse(dt.value) == "np" and isinstance(shape, tuple):
            return (tuple(shape), np.dtype(dt.attr).name), "empty"
        return None
    name = st.targets[0].id
    if func == "np.dot" and len(call.args) == 2 and name in shapes:
        shape, dt = shapes[name]
        return (tuple(shape), np.dtype(dt).name), "dot"
    return None


def _fresh(value: ast.expr) -> bool:
    """Whether ``value`` is a new array (or scalars), never a view of the arrays it reads."""
    if isinstance(value, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.Constant)):
        return True
    if not isinstance(value, ast.Call) or any(k.arg == "out" for k in value.keywords):
        return False  # (a call with ``out=`` returns that array)
    if isinstance(value.func, ast.Name):  # a loop kernel (its results are scalars) or a builtin
        return True
    if ast.unparse(value.func) in _FRESH_FUNCS:
        return True
    return isinstance(value.func, ast.Attribute) and value.func.attr == "astype" and not value.keywords
