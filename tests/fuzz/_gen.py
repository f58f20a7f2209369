"""A seeded generator of random differentiable programs over the op table, and the checks that
run one through s2s_ad's public API.

A program is Python source: a function ``f`` written with ``s2s_ad.ops`` (elementwise unary and
binary ops with broadcasting and Python-number operands, reductions with axes and keepdims,
matmul, reshape, transpose, indexing, stop_gradient, where over comparisons), the functions
built on it (``loss``, its gradient's dot product ``grad_dot`` for second order, an ``nn.Cell``
``Net``), and ``f_ref``: the same program on numpy through a reference namespace ``R``. The
source is written to a real file and imported, since s2s_ad reads the source of what it
compiles.

Programs are valid by construction: shapes are chosen to broadcast, and the argument of log,
sqrt, a division or a power with a float exponent is kept positive (value intervals are
tracked; an argument that may reach zero is made positive first). Inputs are drawn away from
kinks and singularities: the reference namespace measures, at the drawn inputs, how close every
kink is (abs/relu/sign at 0, maximum/minimum/max/min ties, the comparisons that feed where) and
the inputs are drawn again (then the program generated again) until every margin is wide and
every value moderate.

``check(program, mode)`` runs the program under PYNATIVE or GRAPH mode and checks, in float64:
``jit`` against the reference; ``vjp`` against central finite differences of the reference;
``jvp`` against finite differences and against ``vjp`` (the dot-product test
⟨J v, w⟩ = ⟨v, Jᵀ w⟩); ``value_and_grad`` and ``ops.GradOperation`` on the Cell against ``vjp``;
second order (reverse over reverse, and forward over reverse) against finite differences of the
first-order gradient; and (optional) JAX's derivatives of the reference program where JAX is
installed. A GRAPH run also compares with the PYNATIVE results.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import re
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------- the reference namespace
MARGIN = 1e-3  # the closest a kink (or a domain edge) may be to a value at the drawn inputs
MAGNITUDE = 1e4  # the largest value a program may compute at the drawn inputs
#: ``for`` bodies also compute with the loop index (``0.1 * i``), unrolled or kept as a loop
#: region (where the index is weakly typed, as the Python int it stands for);
#: ``run.py --no-loop-index`` turns it off
LOOP_INDEX = True
CONTROL_MARGIN = 0.05  # the closest the test of an if/while may be to switching at the drawn inputs


class Reject(Exception):
    """The drawn inputs are too close to a kink or a singularity, or make values too large."""


class Ref:
    """The numpy reference of the ops (``R`` in ``f_ref``). With ``check``, it measures the
    margins of the kinks and domains at the evaluated point; ``frozen`` replays the values of
    stop_gradient from the base point (finite differences do not differentiate through it)."""

    def __init__(self, check: bool = False, frozen: list | None = None) -> None:
        self.check = check
        self.frozen = frozen
        self.stopped: list = []

    def _margin(self, gap: Any) -> None:
        if self.check and np.size(gap) and float(np.min(gap)) < MARGIN:
            raise Reject(f"margin {float(np.min(gap)):.3g}")

    def v(self, x: Any) -> Any:
        """Every value the program computes passes here (magnitude check)."""
        if self.check and (not np.all(np.isfinite(x)) or np.max(np.abs(x), initial=0.0) > MAGNITUDE):
            raise Reject("magnitude")
        return x

    # elementwise
    def square(self, a):
        return np.square(a)

    def sqrt(self, a):
        self._margin(a)
        return np.sqrt(a)

    def exp(self, a):
        return np.exp(a)

    def log(self, a):
        self._margin(a)
        return np.log(a)

    def expm1(self, a):
        return np.expm1(a)

    def log1p(self, a):
        self._margin(np.add(a, 1.0))
        return np.log1p(a)

    def sin(self, a):
        return np.sin(a)

    def cos(self, a):
        return np.cos(a)

    def tan(self, a):
        self._margin(np.pi / 2 - np.abs(a))
        return np.tan(a)

    def sinh(self, a):
        return np.sinh(a)

    def cosh(self, a):
        return np.cosh(a)

    def tanh(self, a):
        return np.tanh(a)

    def atanh(self, a):
        self._margin(1 - np.abs(a))
        return np.arctanh(a)

    def sigmoid(self, a):
        return 1.0 / (1.0 + np.exp(-a))

    def relu(self, a):
        self._margin(np.abs(a))
        return np.maximum(a, 0.0)

    def abs(self, a):
        self._margin(np.abs(a))
        return np.abs(a)

    def sign(self, a):
        self._margin(np.abs(a))
        return np.sign(a)

    def div(self, a, b):
        self._margin(np.abs(b))
        return a / b

    def pow(self, a, b):
        self._margin(a)
        return np.power(a, b)

    def maximum(self, a, b):
        self._margin(np.abs(np.subtract(a, b)))
        return np.maximum(a, b)

    def minimum(self, a, b):
        self._margin(np.abs(np.subtract(a, b)))
        return np.minimum(a, b)

    def greater(self, a, b):
        self._margin(np.abs(np.subtract(a, b)))
        return np.greater(a, b)

    def less(self, a, b):
        self._margin(np.abs(np.subtract(a, b)))
        return np.less(a, b)

    def where(self, c, a, b):
        return np.where(c, a, b)

    # the tests of control flow (if/while on a 0-d tensor): the branch taken, with a margin
    # wide enough that finite differences (and second differences) take the same branches
    def gt(self, a, b):
        self._margin(np.abs(np.subtract(a, b)) * (MARGIN / CONTROL_MARGIN))
        return bool(np.greater(a, b))

    def lt(self, a, b):
        self._margin(np.abs(np.subtract(a, b)) * (MARGIN / CONTROL_MARGIN))
        return bool(np.less(a, b))

    # structural
    def sum(self, a, axis, keepdims):
        return np.sum(a, axis=axis, keepdims=keepdims)

    def mean(self, a, axis, keepdims):
        return np.mean(a, axis=axis, keepdims=keepdims)

    def _extremum_gap(self, a, axis):
        a = np.asarray(a)
        axes = tuple(range(a.ndim)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        axes = tuple(k % a.ndim for k in axes) if a.ndim else ()
        if not axes:
            return
        kept = [k for k in range(a.ndim) if k not in axes]
        flat = np.transpose(a, kept + list(axes)).reshape([a.shape[k] for k in kept] + [-1])
        if flat.shape[-1] > 1:
            s = np.sort(flat, axis=-1)
            self._margin(s[..., -1] - s[..., -2])
            self._margin(s[..., 1] - s[..., 0])

    def max(self, a, axis, keepdims):
        self._extremum_gap(a, axis)
        return np.max(a, axis=axis, keepdims=keepdims)

    def min(self, a, axis, keepdims):
        self._extremum_gap(a, axis)
        return np.min(a, axis=axis, keepdims=keepdims)

    def matmul(self, a, b):
        return np.matmul(a, b)

    def reshape(self, a, shape):
        return np.reshape(a, shape)

    def transpose(self, a, perm):
        return np.transpose(a, perm)

    def stop_gradient(self, a):
        if self.frozen is not None:
            k = len(self.stopped)
            self.stopped.append(None)
            return self.frozen[k]
        self.stopped.append(np.array(a))
        return a


# ----------------------------------------------------------------------------- generation
@dataclass
class Value:
    name: str
    shape: tuple
    lo: float  # bounds of the value over the drawn inputs (conservative)
    hi: float
    op: str  # the op that made it ("input" for an argument)


@dataclass
class Program:
    """One generated program: its source, argument shapes and the draw that made it."""

    seed: int
    source: str
    shapes: list[tuple]
    out_shape: tuple
    ops: list[str]
    input_range: list[tuple[float, float]]
    module: Any = None
    path: str | None = None
    control: bool = False  # drawn with control flow (if/for/while in ``f``)

    def describe(self) -> str:
        shapes = ", ".join(f"x{k}: float64{list(s)}" for k, s in enumerate(self.shapes))
        return f"fuzz program (seed {self.seed}; {shapes}; output {list(self.out_shape)}):\n{self.source}"


def _broadcasts_to(a: tuple, shape: tuple) -> bool:
    """Whether ``a`` broadcasts against ``shape`` without growing it."""
    if len(a) > len(shape):
        return False
    return all(x in (1, y) for x, y in zip(reversed(a), reversed(shape)))


def _interval_mul(a, b):
    ps = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    return min(ps), max(ps)


def _fmt_index(index: tuple) -> str:
    def one(i):
        if i is None:
            return "None"
        if i is Ellipsis:
            return "..."
        if isinstance(i, slice):
            s = f"{'' if i.start is None else i.start}:{'' if i.stop is None else i.stop}"
            return s + (f":{i.step}" if i.step is not None else "")
        return str(i)

    if len(index) == 1:
        return one(index[0])
    return ", ".join(one(i) for i in index)


class Generator:
    """Makes one program from a seed (``random.Random``), statement by statement."""

    UNARY = ["neg", "square", "sqrt", "exp", "log", "sin", "cos", "tanh", "sigmoid", "relu", "abs", "sinh", "cosh"]
    UNARY_RARE = ["tan", "atanh", "sign", "expm1", "log1p"]
    BINARY = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]

    def __init__(self, seed: int, max_stmts: int = 7, control: bool = False) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.max_stmts = max_stmts
        self.control = control
        # where control flow is drawn: a stream of its own (without ``control`` it is never
        # read, so the straight-line programs of every seed are those of earlier versions)
        self.crng = random.Random(seed * 7919 + 104729)
        self.ind = ""  # the indentation of the statements being drawn (inside regions)
        self.values: list[Value] = []
        self.inputs: list[Value] = []
        self.s_lines: list[str] = []  # the s2s_ad program
        self.r_lines: list[str] = []  # the numpy reference
        self.ops: list[str] = []
        self.ranges: list[tuple[float, float]] = []
        self.temps = 0
        self.used: set[str] = set()  # the values that some statement reads

    # -- shapes
    def rand_shape(self, max_rank: int = 3) -> tuple:
        r = self.rng.choice([0, 1, 1, 2, 2, 2, 3][: max(1, 2 * max_rank + 1)])
        r = min(r, max_rank)
        return tuple(self.rng.choice([1, 2, 3, 4]) for _ in range(r))

    def broadcast_partner(self, shape: tuple) -> tuple:
        """A shape that broadcasts with ``shape`` to ``shape`` or a larger shape."""
        kind = self.rng.random()
        if kind < 0.3:
            return shape
        if kind < 0.5:  # a suffix
            return shape[self.rng.randint(0, len(shape)) :]
        if kind < 0.75:  # some axes of size 1
            return tuple(1 if self.rng.random() < 0.5 else d for d in shape)
        if kind < 0.9 and len(shape) < 3:  # an extra leading axis
            return (self.rng.choice([2, 3]),) + tuple(1 if self.rng.random() < 0.3 else d for d in shape)
        return ()

    # -- values
    def new_input(self, shape: tuple, positive: bool = False) -> Value:
        k = len(self.inputs)
        lo, hi = (0.5, 1.5) if positive or self.rng.random() < 0.4 else (-1.5, 1.5)
        v = Value(f"x{k}", shape, lo, hi, "input")
        self.inputs.append(v)
        self.ranges.append((lo, hi))
        self.values.append(v)
        return v

    def pick(self, pred=lambda v: True) -> Value | None:
        cands = [v for v in self.values if pred(v)]
        if not cands:
            return None
        # mostly recent and unused values, so that the program is a chain more than a fan
        weights = [1.0 + 3.0 * (k == len(cands) - 1) + 2.0 * (v.name not in self.used) for k, v in enumerate(cands)]
        return self.rng.choices(cands, weights)[0]

    def emit(self, s_expr: str, r_expr: str, shape: tuple, lo: float, hi: float, op: str) -> Value:
        name = f"t{self.temps}"
        self.temps += 1
        self.used.update(re.findall(r"\b[xt]\d+\b", s_expr))
        self.s_lines.append(f"{self.ind}{name} = {s_expr}")
        self.r_lines.append(f"{self.ind}{name} = R.v({r_expr})")
        lo, hi = max(lo, -1e300), min(hi, 1e300)
        v = Value(name, shape, lo, hi, op)
        self.values.append(v)
        self.ops.append(op)
        return v

    def positive(self, a: Value) -> Value:
        """``a`` itself where its interval is safely positive, else a positive value made from it."""
        if a.lo >= 0.2:
            return a
        if self.rng.random() < 0.5:
            return self.emit(f"ops.sigmoid({a.name}) + 0.5", f"R.sigmoid({a.name}) + 0.5", a.shape, 0.5, 1.5, "sigmoid")
        hi = max(a.lo**2, a.hi**2) + 0.5
        return self.emit(f"{a.name} * {a.name} + 0.5", f"{a.name} * {a.name} + 0.5", a.shape, 0.5, hi, "mul")

    # -- statements
    def unary(self, a: Value) -> Value:
        names = self.UNARY + (self.UNARY_RARE if self.rng.random() < 0.3 else [])
        op = self.rng.choice(names)
        lo, hi = a.lo, a.hi
        if op in ("sqrt", "log", "log1p"):
            a = self.positive(a)
            f = {"sqrt": math.sqrt, "log": math.log, "log1p": math.log1p}[op]
            return self.emit(f"ops.{op}({a.name})", f"R.{op}({a.name})", a.shape, f(a.lo), f(a.hi), op)
        if op in ("exp", "expm1") and a.hi > 4:
            op = "tanh"
        if op in ("sinh", "cosh") and max(abs(lo), abs(hi)) > 4:
            op = "sin"
        if op == "tan" and max(abs(lo), abs(hi)) > 1.2:
            op = "cos"
        if op == "atanh" and max(abs(lo), abs(hi)) > 0.9:
            op = "sigmoid"
        if op == "neg":
            return self.emit(f"-{a.name}", f"-{a.name}", a.shape, -hi, -lo, op)
        m = max(abs(lo), abs(hi))
        bounds = {
            "square": lambda: (0.0 if lo <= 0 <= hi else min(lo * lo, hi * hi), m * m),
            "exp": lambda: (math.exp(lo), math.exp(hi)),
            "expm1": lambda: (math.expm1(lo), math.expm1(hi)),
            "sin": lambda: (-1.0, 1.0),
            "cos": lambda: (-1.0, 1.0),
            "tanh": lambda: (math.tanh(lo), math.tanh(hi)),
            "sigmoid": lambda: (1 / (1 + math.exp(-lo)), 1 / (1 + math.exp(-hi))),
            "relu": lambda: (max(lo, 0.0), max(hi, 0.0)),
            "abs": lambda: (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi)), m),
            "sinh": lambda: (math.sinh(lo), math.sinh(hi)),
            "cosh": lambda: (1.0, math.cosh(m)),
            "tan": lambda: (math.tan(lo), math.tan(hi)),
            "atanh": lambda: (math.atanh(lo), math.atanh(hi)),
            "sign": lambda: (-1.0, 1.0),
        }[op]()
        return self.emit(f"ops.{op}({a.name})", f"R.{op}({a.name})", a.shape, *bounds, op)

    def operand_like(self, shape: tuple) -> tuple[str, tuple, float, float, str]:
        """A second operand for a binary op with ``shape``: (name or literal, shape, lo, hi, op)."""
        r = self.rng.random()
        if r < 0.2:
            c = round(self.rng.uniform(0.5, 2.0) * self.rng.choice([1, -1]), 2)
            return repr(c), (), c, c, "literal"
        want = self.broadcast_partner(shape)
        if r < 0.6:
            ok = self.pick(lambda v: v.shape == want or _broadcasts_to(v.shape, shape))
            if ok is not None:
                return ok.name, ok.shape, ok.lo, ok.hi, ok.op
        v = self.new_input(want)
        return v.name, v.shape, v.lo, v.hi, v.op

    def binary(self, a: Value) -> Value:
        op = self.rng.choice(self.BINARY)
        bname, bshape, blo, bhi, bop = self.operand_like(a.shape)
        shape = tuple(np.broadcast_shapes(a.shape, bshape))
        swap = self.rng.random() < 0.3
        if op in ("add", "sub", "mul"):
            sym = {"add": "+", "sub": "-", "mul": "*"}[op]
            x, y = (
                ((bname, (blo, bhi)), (a.name, (a.lo, a.hi))) if swap else ((a.name, (a.lo, a.hi)), (bname, (blo, bhi)))
            )
            if op == "add":
                lo, hi = x[1][0] + y[1][0], x[1][1] + y[1][1]
            elif op == "sub":
                lo, hi = x[1][0] - y[1][1], x[1][1] - y[1][0]
            else:
                lo, hi = _interval_mul(x[1], y[1])
            return self.emit(f"{x[0]} {sym} {y[0]}", f"{x[0]} {sym} {y[0]}", shape, lo, hi, op)
        if op == "div":
            if bop == "literal":
                c = float(bname)
                lo, hi = sorted((a.lo / c, a.hi / c))
                return self.emit(f"{a.name} / {bname}", f"R.div({a.name}, {bname})", shape, lo, hi, op)
            den = (
                self.positive(Value(bname, bshape, blo, bhi, bop)) if blo < 0.2 else Value(bname, bshape, blo, bhi, bop)
            )
            lo, hi = _interval_mul((a.lo, a.hi), (1 / den.hi, 1 / den.lo))
            shape = tuple(np.broadcast_shapes(a.shape, den.shape))
            return self.emit(f"{a.name} / {den.name}", f"R.div({a.name}, {den.name})", shape, lo, hi, op)
        if op == "pow":
            base = self.positive(a)
            if self.rng.random() < 0.7 or bop == "literal":
                k = self.rng.choice([2, 3, 0.5, -1, 1.5, -0.5, 2.5])
                lo, hi = sorted((base.lo**k, base.hi**k))
                return self.emit(f"{base.name} ** {k!r}", f"R.pow({base.name}, {k!r})", base.shape, lo, hi, op)
            # a tensor exponent: kept small (the base is in [0.2, ...])
            e = self.emit(f"ops.tanh({bname})", f"R.tanh({bname})", bshape, -1.0, 1.0, "tanh")
            shape = tuple(np.broadcast_shapes(base.shape, e.shape))
            lo = min(base.lo, 1 / base.hi) if base.lo < 1 else 1 / base.hi
            hi = max(base.hi, 1 / base.lo)
            return self.emit(f"ops.pow({base.name}, {e.name})", f"R.pow({base.name}, {e.name})", shape, lo, hi, op)
        # maximum / minimum
        f = "maximum" if op == "maximum" else "minimum"
        lo = max(a.lo, blo) if f == "maximum" else min(a.lo, blo)
        hi = max(a.hi, bhi) if f == "maximum" else min(a.hi, bhi)
        return self.emit(f"ops.{f}({a.name}, {bname})", f"R.{f}({a.name}, {bname})", shape, lo, hi, op)

    def reduction(self, a: Value) -> Value:
        op = self.rng.choice(["sum", "mean", "max", "min"])
        r = len(a.shape)
        if r == 0 or self.rng.random() < 0.25:
            axis = None
        elif self.rng.random() < 0.6:
            axis = self.rng.randrange(-r, r)
        else:
            k = self.rng.randint(1, r)
            axis = tuple(sorted(self.rng.sample(range(r), k)))
            if self.rng.random() < 0.3:
                axis = tuple(ax - r for ax in axis)
        keep = self.rng.random() < 0.4
        out = np.sum(np.zeros(a.shape), axis=axis, keepdims=keep).shape
        n = max(1, int(np.prod(a.shape)) // max(1, int(np.prod(out))))
        lo, hi = (a.lo * n, a.hi * n) if op == "sum" else (a.lo, a.hi)
        s_fn = {"sum": "reduce_sum", "mean": "reduce_mean", "max": "reduce_max", "min": "reduce_min"}[op]
        if self.rng.random() < 0.5 and axis is not None:
            s_expr = f"ops.{s_fn}({a.name}, {axis!r}, {keep!r})"
        else:
            s_expr = f"ops.{s_fn}({a.name}, axis={axis!r}, keepdims={keep!r})"
        return self.emit(s_expr, f"R.{op}({a.name}, {axis!r}, {keep!r})", tuple(out), lo, hi, f"reduce_{op}")

    def matmul(self, a: Value) -> Value | None:
        if len(a.shape) != 2:
            return None
        m, k = a.shape
        b = self.pick(lambda v: len(v.shape) == 2 and v.shape[0] == k and v is not a)
        if b is None or self.rng.random() < 0.4:
            b = self.new_input((k, self.rng.choice([1, 2, 3])))
        lo, hi = _interval_mul((a.lo, a.hi), (b.lo, b.hi))
        return self.emit(
            f"ops.matmul({a.name}, {b.name})",
            f"R.matmul({a.name}, {b.name})",
            (m, b.shape[1]),
            k * lo,
            k * hi,
            "matmul",
        )

    def reshape(self, a: Value) -> Value:
        size = int(np.prod(a.shape))
        factors = [p for p in (2, 3, 5, 7) for _ in range(20) if size % p ** (_ + 1) == 0]
        dims: list[int] = []
        for p in factors:
            if dims and self.rng.random() < 0.5:
                dims[self.rng.randrange(len(dims))] *= p
            else:
                dims.append(p)
        while self.rng.random() < 0.25 and len(dims) < 3:
            dims.insert(self.rng.randint(0, len(dims)), 1)
        self.rng.shuffle(dims)
        shape = tuple(dims)
        if shape == a.shape and len(shape) < 3:
            shape = (1,) + shape
        spec = shape
        if shape and self.rng.random() < 0.3:  # a -1
            k = self.rng.randrange(len(shape))
            spec = shape[:k] + (-1,) + shape[k + 1 :]
        return self.emit(
            f"ops.reshape({a.name}, {spec!r})", f"R.reshape({a.name}, {spec!r})", shape, a.lo, a.hi, "reshape"
        )

    def transpose(self, a: Value) -> Value | None:
        r = len(a.shape)
        if r < 2:
            return None
        perm = list(range(r))
        while perm == list(range(r)):
            self.rng.shuffle(perm)
        perm = tuple(perm)
        if self.rng.random() < 0.3 and perm == tuple(reversed(range(r))):
            return self.emit(f"{a.name}.T", f"{a.name}.T", tuple(a.shape[p] for p in perm), a.lo, a.hi, "transpose")
        return self.emit(
            f"ops.transpose({a.name}, {perm!r})",
            f"R.transpose({a.name}, {perm!r})",
            tuple(a.shape[p] for p in perm),
            a.lo,
            a.hi,
            "transpose",
        )

    def index(self, a: Value) -> Value:
        for _ in range(20):
            items: list = []
            for d in a.shape:
                r = self.rng.random()
                if r < 0.3:
                    items.append(self.rng.randrange(-d, d))
                elif r < 0.7:
                    start = self.rng.choice([None, self.rng.randrange(-d, d)])
                    stop = self.rng.choice([None, self.rng.randrange(-d, d + 1)])
                    step = self.rng.choice([None, None, 1, 2, -1])
                    items.append(slice(start, stop, step))
                else:
                    items.append(slice(None))
                if self.rng.random() < 0.15:
                    items.append(None)
            if self.rng.random() < 0.2:
                items.insert(self.rng.randint(0, len(items)), None)
            if self.rng.random() < 0.3 and items:  # drop trailing full slices or replace a run by ...
                k = self.rng.randint(0, len(items))
                j = self.rng.randint(k, len(items))
                if all(i == slice(None) or i is None for i in items[k:j]) or self.rng.random() < 0.5:
                    items = items[:k] + [Ellipsis] + [i for i in items[j:]]
                    # ... must stand for full slices only
                    dims_used = sum(1 for i in items if i is not None and i is not Ellipsis)
                    if dims_used > len(a.shape):
                        continue
            index = tuple(items)
            try:
                out = np.empty(a.shape)[index].shape
            except (IndexError, TypeError):
                continue
            if int(np.prod(out)) == 0:
                continue
            text = _fmt_index(index) if index else "..."
            return self.emit(f"{a.name}[{text}]", f"{a.name}[{text}]", out, a.lo, a.hi, "getitem")
        return self.emit(f"{a.name}[...]", f"{a.name}[...]", a.shape, a.lo, a.hi, "getitem")

    def where(self, a: Value) -> Value:
        bname, bshape, blo, bhi, _ = self.operand_like(a.shape)
        cmp = self.rng.choice(["greater", "less"])
        c_s = (
            self.rng.choice([f"{a.name} > {bname}", f"ops.greater({a.name}, {bname})"])
            if cmp == "greater"
            else (self.rng.choice([f"{a.name} < {bname}", f"ops.less({a.name}, {bname})"]))
        )
        c_r = f"R.{cmp}({a.name}, {bname})"
        cshape = tuple(np.broadcast_shapes(a.shape, bshape))
        # the branches: a and another value (or a literal) broadcasting with the condition
        yname, yshape, ylo, yhi, _ = self.operand_like(cshape)
        shape = tuple(np.broadcast_shapes(cshape, a.shape, yshape))
        x, y = (a.name, yname) if self.rng.random() < 0.5 else (yname, a.name)
        fn = self.rng.choice(["where", "select"])
        return self.emit(
            f"ops.{fn}({c_s}, {x}, {y})", f"R.where({c_r}, {x}, {y})", shape, min(a.lo, ylo), max(a.hi, yhi), "where"
        )

    def stop(self, a: Value) -> Value:
        return self.emit(f"ops.stop_gradient({a.name})", f"R.stop_gradient({a.name})", a.shape, a.lo, a.hi, "stop")

    # -- control flow (``control``): regions as users write them
    def fresh(self) -> str:
        name = f"t{self.temps}"
        self.temps += 1
        return name

    def line(self, s_text: str, r_text: str) -> None:
        """One line of both programs at the current indentation."""
        self.used.update(re.findall(r"\b[xt]\d+\b", s_text))
        self.s_lines.append(f"{self.ind}{s_text}")
        self.r_lines.append(f"{self.ind}{r_text}")

    def assign(self, name: str, s_expr: str, r_expr: str) -> None:
        self.line(f"{name} = {s_expr}", f"{name} = R.v({r_expr})")

    def test(self, a: Value) -> tuple[str, str]:
        """A 0-d tensor test on ``a`` (s2s_ad text, reference text), its threshold inside the
        value's interval so that both outcomes occur over the draws."""
        n = max(1, int(np.prod(a.shape)))
        lo, hi = max(a.lo, -3.0), min(a.hi, 3.0)
        if hi <= lo:
            lo, hi = -1.0, 1.0
        form = self.rng.choice(["sum", "method", "mean", "mean"] if a.shape else ["scalar"])
        if form in ("sum", "method"):
            lo, hi = lo * n, hi * n
        thr = round(self.rng.uniform(lo + 0.25 * (hi - lo), hi - 0.25 * (hi - lo)), 2)
        gt = self.rng.random() < 0.5
        sym, rfn = (">", "R.gt") if gt else ("<", "R.lt")
        s_val, r_val = {
            "sum": (f"ops.reduce_sum({a.name})", f"R.sum({a.name}, None, False)"),
            "method": (f"{a.name}.sum()", f"R.sum({a.name}, None, False)"),
            "mean": (f"ops.reduce_mean({a.name})", f"R.mean({a.name}, None, False)"),
            "scalar": (a.name, a.name),
        }[form]
        self.used.add(a.name)
        return f"{s_val} {sym} {thr!r}", f"{rfn}({r_val}, {thr!r})"

    def region_body(self, depth: int, k: int) -> list[Value]:
        """``k`` statements one level deeper; the values made there are dropped from the
        scope afterwards (a name bound in one branch only is not read after the region)."""
        mark = list(self.values)
        self.ind += "    "
        for _ in range(k):
            self.statement(depth + 1)
        self.ind = self.ind[:-4]
        inner = [v for v in self.values if v not in mark]
        self.values = mark + [v for v in inner if v.op == "input"]
        return inner

    def fit(self, last: Value | None, a: Value) -> tuple[str, str, float, float]:
        """An expression of ``a``'s shape made from ``last`` (a branch's result)."""
        if last is None or last is a:
            c = round(self.rng.uniform(0.5, 1.5) * self.rng.choice([1, -1]), 2)
            lo, hi = sorted((a.lo * c, a.hi * c))
            return f"{a.name} * {c!r}", f"{a.name} * {c!r}", lo, hi
        if last.shape == a.shape:
            return last.name, last.name, last.lo, last.hi
        if _broadcasts_to(last.shape, a.shape):
            return f"{a.name} + {last.name}", f"{a.name} + {last.name}", a.lo + last.lo, a.hi + last.hi
        return (
            f"{a.name} * 0.5 + ops.reduce_mean({last.name})",
            f"{a.name} * 0.5 + R.mean({last.name}, None, False)",
            0.5 * a.lo + last.lo,
            0.5 * a.hi + last.hi,
        )

    def if_stmt(self, a: Value, depth: int, target: str | None = None) -> Value:
        """``if <test>: ... else: ...`` binding one name (``target``, else a new one) in both."""
        s_test, r_test = self.test(a)
        name = target or self.fresh()
        los, his = [], []
        for k in range(2):
            self.s_lines.append(f"{self.ind}if {s_test}:" if k == 0 else f"{self.ind}else:")
            self.r_lines.append(f"{self.ind}if {r_test}:" if k == 0 else f"{self.ind}else:")
            inner = self.region_body(depth, self.rng.choice([0, 1, 1, 2]))
            made = [v for v in inner if v.op != "input"]
            s_expr, r_expr, lo, hi = self.fit(made[-1] if made else None, a)
            self.ind += "    "
            self.assign(name, s_expr, r_expr)
            self.ind = self.ind[:-4]
            los.append(lo)
            his.append(hi)
        self.ops.append("cond")
        return self._bind(name, a.shape, min(los), max(his), "cond")

    def _bind(self, name: str, shape: tuple, lo: float, hi: float, op: str) -> Value:
        v = Value(name, shape, max(lo, -1e300), min(hi, 1e300), op)
        self.values.append(v)
        return v

    SQUASH = [("ops.tanh", "R.tanh"), ("ops.sin", "R.sin"), ("ops.sigmoid", "R.sigmoid"), ("ops.cos", "R.cos")]

    def ternary(self, a: Value) -> Value:
        s_test, r_test = self.test(a)
        (f1, r1), (f2, r2) = self.rng.sample(self.SQUASH, 2)
        c = round(self.rng.uniform(0.5, 2.0), 2)
        name = self.fresh()
        self.assign(
            name,
            f"{f1}({a.name}) if {s_test} else {a.name} * {c!r}",
            f"{r1}({a.name}) if {r_test} else {a.name} * {c!r}",
        )
        if self.rng.random() < 0.3:  # both arms through ops
            self.s_lines[-1] = self.s_lines[-1].replace(f"{a.name} * {c!r}", f"{f2}({a.name})")
            self.r_lines[-1] = self.r_lines[-1].replace(f"{a.name} * {c!r}", f"{r2}({a.name})")
        self.ops.append("cond")
        return self._bind(name, a.shape, min(-1.0, a.lo * c), max(1.0, a.hi * c), "cond")

    def step(self, c: str, shape: tuple, counter: str | None) -> tuple[str, str]:
        """A damped update of the carried ``c`` (bounded over any trip count)."""
        f, r = self.rng.choice(self.SQUASH)
        b = self.pick(lambda v: _broadcasts_to(v.shape, shape) and v.name != c and abs(v.hi) < 10 and abs(v.lo) < 10)
        other = b.name if b is not None and self.rng.random() < 0.6 else repr(round(self.rng.uniform(0.3, 1.5), 2))
        inner = self.rng.choice([f"{c} * {other}", f"{c} + {other}", f"{c} - {other}"])
        if counter is not None and self.rng.random() < 0.4 and (LOOP_INDEX or not counter.startswith("i")):
            inner += f" + 0.1 * {counter}"
        k = round(self.rng.uniform(0.3, 0.8), 2)
        return f"{c} * {k!r} + {f}({inner})", f"{c} * {k!r} + {r}({inner})"

    def carry(self, a: Value) -> str:
        """A new name bound to ``a`` (the carried value of a loop)."""
        name = self.fresh()
        self.assign(name, f"{a.name} * 1.0", f"{a.name} * 1.0")
        return name

    def for_stmt(self, a: Value, depth: int) -> Value:
        """``for i in range(...)`` carrying one or two tensors: short loops (unrolled) and
        longer ones (kept as a loop region), a nested ``if`` in some bodies."""
        n = self.rng.choice([2, 3, 5, 6, 8])
        i = f"i{depth}"
        form = self.rng.choice([f"range({n})", f"range({n})", f"range(1, {n + 1})", f"range(0, {2 * n}, 2)"])
        c = self.carry(a)
        acc = None
        if self.rng.random() < 0.4:
            acc = self.fresh()
            self.assign(acc, f"{a.name} * 0.0", f"{a.name} * 0.0")
        self.line(f"for {i} in {form}:", f"for {i} in {form}:")
        self.ind += "    "
        cv = self._bind(c, a.shape, min(a.lo, -1.0), max(a.hi, 1.0), "loop")
        s_up, r_up = self.step(c, a.shape, i)
        self.assign(c, s_up, r_up)
        if depth < 1 and self.rng.random() < 0.35:  # a nested region
            self.if_stmt(cv, depth + 1, target=c)
            s_up, r_up = self.step(c, a.shape, None)
            self.assign(c, s_up, r_up)
        if acc is not None:
            f, r = self.rng.choice(self.SQUASH)
            self.assign(acc, f"{acc} + {f}({c})", f"{acc} + {r}({c})")
        self.ind = self.ind[:-4]
        self.values = [v for v in self.values if v.name not in (c, acc)]
        self.ops.append("loop")
        lo, hi = min(a.lo, -1.0) - 3.0, max(a.hi, 1.0) + 3.0
        if acc is not None:
            self._bind(c, a.shape, lo, hi, "loop")
            self.used.add(c)
            f = "ops.reduce_mean" if self.rng.random() < 0.5 else None
            name = self.fresh()
            extra = f"ops.reduce_mean({c})" if f else c
            extra_r = f"R.mean({c}, None, False)" if f else c
            self.assign(name, f"{acc} + {extra}", f"{acc} + {extra_r}")
            return self._bind(name, a.shape, -n - hi, n + hi, "add")
        return self._bind(c, a.shape, lo, hi, "loop")

    def while_stmt(self, a: Value, depth: int) -> Value:
        """``while`` with a tensor test and a bounded trip count (a counter carried)."""
        n = self.rng.choice([1, 2, 3, 5, 7])
        s = self.fresh()
        self.assign(s, f"ops.reduce_sum({a.name}) * 0.0", f"R.sum({a.name}, None, False) * 0.0")
        c = self.carry(a)
        cv = Value(c, a.shape, min(a.lo, -1.0), max(a.hi, 1.0), "while")
        lim = f"{n}.5"
        kind = self.rng.choice(["both", "both", "counter", "both_rev"])
        if kind == "counter":
            s_t, r_t = f"{s} < {lim}", f"R.lt({s}, {lim})"
        else:
            ts, tr = self.test(cv)
            if kind == "both":
                s_t, r_t = f"({s} < {lim}) and ({ts})", f"R.lt({s}, {lim}) and {tr}"
            else:
                s_t, r_t = f"{ts} and {s} < {lim}", f"{tr} and R.lt({s}, {lim})"
        self.line(f"while {s_t}:", f"while {r_t}:")
        self.ind += "    "
        s_up, r_up = self.step(c, a.shape, s if self.rng.random() < 0.3 else None)
        self.assign(c, s_up, r_up)
        self.assign(s, f"{s} + 1.0", f"{s} + 1.0")
        self.ind = self.ind[:-4]
        self.ops.append("while")
        self.used.add(s)
        lo, hi = min(a.lo, -1.0) - 3.0, max(a.hi, 1.0) + 3.0
        return self._bind(c, a.shape, lo, hi, "while")

    def control_stmt(self, depth: int) -> None:
        a = self.pick(lambda v: abs(v.lo) < 1e3 and abs(v.hi) < 1e3) or self.pick()
        kind = self.crng.choice(["if", "if", "ternary", "for", "for", "while", "while"])
        if kind == "if":
            self.if_stmt(a, depth)
        elif kind == "ternary":
            self.ternary(a)
        elif kind == "for":
            self.for_stmt(a, depth)
        else:
            self.while_stmt(a, depth)

    def early_return(self, out: Value) -> Value:
        """``if <test>: return ...`` before the end of ``f`` (both results of ``out``'s shape)."""
        s_test, r_test = self.test(out)
        (f1, r1), (f2, r2) = self.rng.sample(self.SQUASH, 2)
        self.line(f"if {s_test}:", f"if {r_test}:")
        self.line(f"    return {f1}({out.name}) * 2.0", f"    return {r1}({out.name}) * 2.0")
        self.ops.append("return")
        name = self.fresh()
        self.assign(name, f"{out.name} * 0.5 + {f2}({out.name})", f"{out.name} * 0.5 + {r2}({out.name})")
        return self._bind(name, out.shape, -1e300, 1e300, "add")

    def statement(self, depth: int = 0) -> None:
        if self.control and depth < 2 and self.crng.random() < (0.35 if depth == 0 else 0.15):
            self.control_stmt(depth)
            return
        a = self.pick()
        kinds = ["unary"] * 5 + ["binary"] * 5 + ["reduction"] * 2 + ["matmul", "reshape", "transpose", "index"]
        kinds += ["index", "where", "stop"] if self.rng.random() < 0.5 else ["where"]
        kind = self.rng.choice(kinds)
        v = getattr(self, kind)(a)
        if v is None:
            self.unary(a)

    def generate(self) -> Program:
        self.new_input(self.rand_shape())
        if self.rng.random() < 0.4:
            self.new_input(self.rand_shape())
        n = self.rng.randint(2, self.max_stmts)
        while len(self.s_lines) < n:
            self.statement()
        if self.control and not {"cond", "loop", "while"} & set(self.ops):  # at least one region
            self.control_stmt(0)
        out = self.values[-1]
        if out.op == "input":
            out = self.unary(out)
        # every value flows into the output: the unused ones are added to it (summed to a
        # scalar first where their shape does not broadcast to the output's)
        for v in list(self.values):
            if v.op == "input" or v.name in self.used or v is out:
                continue
            if not _broadcasts_to(v.shape, out.shape):
                v = self.emit(
                    f"ops.reduce_sum({v.name})", f"R.sum({v.name}, None, False)", (), -1e300, 1e300, "reduce_sum"
                )
            c = round(self.rng.uniform(0.2, 1.0), 2)
            out = self.emit(
                f"{out.name} + {c!r} * {v.name}", f"{out.name} + {c!r} * {v.name}", out.shape, -1e300, 1e300, "add"
            )
        if self.control and self.crng.random() < 0.25:
            out = self.early_return(out)
        args = ", ".join(v.name for v in self.inputs)
        head = "from s2s_ad import grad, nn, ops\n\n\n"
        body = "\n".join(f"    {ln}" for ln in self.s_lines)
        ref = "\n".join(f"    {ln}" for ln in self.r_lines)
        ins = [v.name for v in self.inputs]
        us = [f"u{k}" for k in range(len(ins))]
        if len(ins) == 1:
            grads = "    g0 = grad(loss)(x0, w)\n"
        else:
            grads = f"    {', '.join(f'g{k}' for k in range(len(ins)))} = grad(loss, grad_position={tuple(range(len(ins)))!r})({args}, w)\n"
        dot = " + ".join(f"ops.reduce_sum(g{k} * {u})" for k, u in enumerate(us))
        src = (
            head
            + f"def f({args}):\n{body}\n    return {out.name}\n\n\n"
            + f"def loss({args}, w):\n    return ops.reduce_sum(f({args}) * w)\n\n\n"
            + f"def grad_dot({args}, w, {', '.join(us)}):\n{grads}    return {dot}\n\n\n"
            + f"class Net(nn.Cell):\n    def construct(self, {args}):\n        return f({args})\n\n\n"
            + f"def f_ref(R, {args}):\n{ref}\n    return {out.name}\n"
        )
        shapes = [v.shape for v in self.inputs]
        return Program(self.seed, src, shapes, out.shape, self.ops, self.ranges, control=self.control)


# ----------------------------------------------------------------------------- loading and inputs
_DIR: str | None = None


def load(prog: Program) -> Program:
    """Write the program's source to a file of its own and import it."""
    global _DIR
    if _DIR is None:
        _DIR = tempfile.mkdtemp(prefix="s2s_ad_fuzz_")
    name = f"fuzz_prog_{'c' if prog.control else ''}{prog.seed}"
    path = os.path.join(_DIR, name + ".py")
    with open(path, "w") as fh:
        fh.write(prog.source)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    prog.module, prog.path = mod, path
    return prog


def draw_inputs(prog: Program, rng: np.random.Generator) -> list[np.ndarray]:
    """Inputs in each argument's range, distinct values (no ties) within and across arguments."""
    sizes = [int(np.prod(s)) for s in prog.shapes]
    xs = []
    for shape, size, (lo, hi) in zip(prog.shapes, sizes, prog.input_range):
        grid = lo + (hi - lo) * (rng.permutation(size) + 0.5 + rng.uniform(-0.3, 0.3, size)) / size
        x = grid.reshape(shape)
        if lo < 0:  # away from 0 (relu/abs/sign of an input)
            x = np.where(np.abs(x) < 0.05, x + 0.1 * np.sign(x + 1e-12), x)
        xs.append(np.asarray(x, np.float64))
    return xs


def make(seed: int, tries: int = 6, control: bool = False) -> tuple[Program, list[np.ndarray]]:
    """The program of ``seed`` with inputs away from its kinks: inputs are drawn ``tries``
    times, then the program is generated again from a derived seed. With ``control`` the
    program also has control flow (``if``/``for``/``while`` on tensors, an early ``return``):
    other programs than the straight-line ones of the same seed."""
    for attempt in range(50):
        sub = seed if attempt == 0 else seed * 1000003 + attempt
        prog = Generator(sub, control=control).generate()
        prog.seed = seed
        ns: dict = {}
        exec(
            compile(
                prog.source.split("from s2s_ad")[0] + prog.source[prog.source.index("def f_ref") :], "<ref>", "exec"
            ),
            ns,
        )
        rng = np.random.default_rng(sub)
        for _ in range(tries):
            xs = draw_inputs(prog, rng)
            try:
                with np.errstate(all="raise"):
                    ns["f_ref"](Ref(check=True), *xs)
            except (Reject, FloatingPointError):
                continue
            return prog, xs
    raise RuntimeError(f"no valid program for seed {seed}")
