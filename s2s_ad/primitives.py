"""The op table: the one place where each primitive is defined.

Every entry declares its shape/dtype rule, how it prints as numpy source, and how it is
differentiated:

* **elementwise** ops give a scalar SymPy formula; reverse mode (and every higher order) uses
  the partial derivatives SymPy derives from it, so no elementwise derivative is written here;
* **structural** ops (matmul, reductions, reshapes, indexing, ...) give a ``vjp`` rule (reverse
  mode) and a ``jvp`` rule (forward mode) that emit IR, so derivatives of derivatives come for
  free. Most structural ops are linear: their tangent is the op applied to the input's tangent.

The frontend (``ops.primitives``), the AD modes, the SymPy bridge, the printers and the per-op
tests all read :data:`OPS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from .errors import ArgumentError, ShapeError, TensorIndexError
from .ir import OPS as ir_ops
from .ir import Atom, Aval, Builder, Eqn, Lit, Shape

# Printing precedences (higher binds tighter).
ATOM, POW, UNARY, MUL, ADD, CMP = 100, 80, 70, 60, 50, 40


@dataclass
class OpDef:
    name: str
    display: str  # MindSpore-facing name used in error messages
    kind: str  # "elementwise" | "structural"
    nin: int
    abstract: Callable[[list[Aval], dict], list[Aval]]
    # elementwise -----------------------------------------------------------------------
    formula: Callable[..., sp.Expr] | None = None
    # ("call", name) | ("infix", sym, prec) | ("prefix", sym) | ("template", fn) with
    # fn(*args, lit, np) -> (src, prec) | ("shaped_template", fn): the same, plus the output shape
    printer: tuple | None = None
    sympy_head: Any = None  # SymPy class mapped back to this op by the SymPy bridge
    sympy_aliases: tuple = ()  # SymPy's own classes that SymPy may create for this op (also mapped back)
    bool_inputs: tuple[int, ...] = ()  # input positions that take bool tensors (never differentiated)
    derivative_only: bool = False  # made by differentiation only (no user-facing function or primitive)
    # structural ------------------------------------------------------------------------
    emit: Callable[..., Any] | None = None  # (args, eqn, ctx) -> (expr, prec) | list of lines
    statement: bool = False  # emit returns statements assigning to a target
    vjp: Callable[..., list] | None = None
    # (b, eqn, tangents) -> output tangents; ``None`` is a symbolic zero on either side
    jvp: Callable[..., list] | None = None
    # sample arguments for the generated per-op tests: list of (shapes, params)
    samples: list = field(default_factory=list)
    domain: tuple[float, float] = (-2.0, 2.0)
    # the derivative jumps where input values tie (maximum, reduce_max, ...): the generated tests
    # draw input values that are pairwise well apart
    distinct_inputs: bool = False
    # scalar math -------------------------------------------------------------------------
    # ``function``: the scalar function an elementwise op computes, by numpy's name ("arctanh").
    # It prints as ``np.NAME(x)`` in numpy code, ``vm.NAME(x)`` in fused loops and ``dm.NAME(x)``
    # in CUDA kernels (the printer defaults to ``("call", function)``). The loop namespace ``vm``
    # takes cpumath's vectorised kernel of that name where one exists, else numpy's function; the
    # device namespace ``dm`` takes devicemath's helper of that name where one exists, else a
    # device function compiled from ``cuda`` (default: the ``math`` function of the same name).
    function: str | None = None
    cuda: Callable | None = None
    numpy: tuple[str, ...] = ()  # NumPy functions (``np.NAME`` on traced values) that trace to this op
    # properties the passes read -----------------------------------------------------------
    view: bool = False  # numpy's result may share memory with an input (runtime copies such outputs)
    contiguous: bool = False  # numpy's result is C-contiguous (every elementwise result is)
    shape_only: bool = False  # of a constant fill, a fill of the same value (opt.fold_fills)
    # folding it is not IEEE-exact (a sum or mean of n copies of v, a matmul with zeros and an inf):
    # opt.fold_fills folds it in derivative code only, never in the user's own equations
    inexact: bool = False
    pointwise: bool = False  # a structural op that acts index for index: it joins fused loops
    fused_reduction: bool = False  # a reduction that accumulates inside a fused loop
    # how the CUDA printer lowers a structural op outside fused loops: "alias" (the same device
    # array), "fill", "pointwise" (a one-equation loop), "matmul", "reduce", "gather", "scatter";
    # "" for none (the CUDA target reports the op unsupported)
    cuda_kernel: str = ""
    # integer index inputs (never differentiated) -------------------------------------------
    int_inputs: tuple[int, ...] = ()  # input positions that take integer index tensors
    # (shapes, params) -> n: the generated tests draw those indices from [-n, n)
    index_bound: Callable[[list, dict], int] | None = None
    # the generated tests draw the first input (a square matrix) diagonally dominant: invertible
    well_conditioned: bool = False

    def __post_init__(self) -> None:
        if self.function is not None:
            if self.printer is None:
                self.printer = ("call", self.function)
            if self.cuda is None:
                self.cuda = getattr(math, self.function, None)
        if self.kind == "elementwise":
            self.contiguous = self.pointwise = True
            self.cuda_kernel = "pointwise"

    @cached_property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(sp.Symbol(f"a{i}", real=True) for i in range(self.nin))

    @cached_property
    def expr(self) -> sp.Expr:
        assert self.formula is not None
        return self.formula(*self.symbols)

    @cached_property
    def partials(self) -> tuple[sp.Expr, ...]:
        """d(formula)/d(input_i), derived by SymPy. Distributions (the DiracDelta that SymPy
        gives as the derivative of ``sign``) are zero almost everywhere, as in every AD system.
        Powers of one base are combined (``powsimp``): SymPy writes d(x**y)/dx as
        ``x**y*y/x``, which is 0/0 at x = 0; the combined ``y*x**(y - 1)`` is not."""
        return tuple(sp.powsimp(drop_distributions(sp.diff(self.expr, s))) for s in self.symbols)


def drop_distributions(expr: sp.Expr) -> sp.Expr:
    """Replace the distributions SymPy's derivatives can contain (``DiracDelta``, from
    ``sign``) by zero: they vanish almost everywhere, as in every AD system."""
    return expr.replace(sp.DiracDelta, lambda *a: sp.Integer(0)) if expr.has(sp.DiracDelta) else expr


OPS: dict[str, OpDef] = ir_ops  # the IR's registry: binding and checking read the rules here


def get_op(name: str) -> OpDef:
    return OPS[name]


def _register(op: OpDef) -> OpDef:
    assert op.name not in OPS, op.name
    OPS[op.name] = op
    return op


# ----------------------------------------------------------------------------- printing
def numpy_literal(v: Any, dt: np.dtype) -> str:
    """A scalar of dtype ``dt`` as numpy source (``np.float32(0.5)``, ``np.inf``, ``True``)."""
    dt = np.dtype(dt)
    if dt.kind == "b":
        return repr(bool(v))
    if dt.kind == "f":
        x = float(v)
        txt = repr(x) if np.isfinite(x) else "np.nan" if np.isnan(x) else "np.inf" if x > 0 else "-np.inf"
        return txt if dt == np.float64 else f"np.{dt.name}({txt})"
    return repr(int(v)) if dt == np.int64 else f"np.{dt.name}({int(v)!r})"


def wrap(arg: tuple[str, int], need: int) -> str:
    """``arg`` (source, precedence) parenthesised where it binds looser than ``need``."""
    s, p = arg
    return s if p >= need else f"({s})"


def print_elementwise(
    op: OpDef, args: list[tuple[str, int]], lit: Callable[[Any], str], ns: str = "np", shape: tuple = ()
) -> tuple[str, int]:
    """One elementwise op from its table printer: (source, precedence). ``lit`` prints a
    literal of the op's dtype, ``ns`` is the namespace of its functions (``np``, the fused
    loops' ``vm``, or the device-function module on the CUDA target) and ``shape`` its output
    shape."""
    kind = op.printer[0]
    if kind == "infix":
        _, sym, prec = op.printer
        if sym == "**":
            return f"{wrap(args[0], POW + 1)} ** {wrap(args[1], POW)}", POW
        return f"{wrap(args[0], prec)} {sym} {wrap(args[1], prec + 1)}", prec
    if kind == "prefix":
        return f"{op.printer[1]}{wrap(args[0], UNARY + 1)}", UNARY
    if kind == "call":
        return f"{ns}.{op.printer[1]}({', '.join(a for a, _ in args)})", ATOM
    if kind == "template":
        return op.printer[1](*[wrap(a, ATOM) for a in args], lit, ns)
    if kind == "shaped_template":
        return op.printer[1](*[wrap(a, ATOM) for a in args], lit, ns, tuple(shape))
    raise AssertionError(kind)


# ----------------------------------------------------------------------------- shape helpers
def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def broadcast_shapes(display: str, shapes: Sequence[Shape]) -> Shape:
    if any(-1 in s for s in shapes) and all(s == shapes[0] for s in shapes):
        # a run-time dimension (regions.DYN: the stacked values of a while loop) only meets
        # itself: the sum of two cotangents of one stacked value
        return tuple(shapes[0])
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(
            f"{display}: operands could not be broadcast together with shapes "
            + " and ".join(fmt_shape(s) for s in shapes)
        ) from None


def _elementwise_abstract(display: str, float_result: bool):
    def abstract(avals: list[Aval], params: dict) -> list[Aval]:
        shape = broadcast_shapes(display, [a.shape for a in avals])
        dt = np.result_type(*[a.dtype for a in avals])
        if float_result and dt.kind != "f":
            dt = np.dtype(np.float32)
        return [Aval(shape, dt)]

    return abstract


# ----------------------------------------------------------------------------- custom SymPy heads
# Every value the compiled code computes is a real float (nan where a result is undefined), so
# the heads below are extended real whatever their arguments: SymPy can then differentiate
# ``abs`` and ``sign`` of them, and convert them to numbers. SymPy's own ``Abs`` and ``sign``
# differentiate an argument they cannot prove real (``sqrt(x)``, ``x/y``, which may be complex
# or infinite to SymPy) through ``re``, ``im`` and ``arg``, which are no ops: :class:`Abs` and
# :class:`Sign` state the real derivative instead.
class _Real(sp.Function):
    """A head whose values are extended real numbers (or nan)."""

    def _eval_is_extended_real(self) -> bool:
        return True


class Abs(sp.Abs):
    """``|x|`` of a real value: d|x|/dx = sign(x), also where SymPy cannot prove ``x`` real."""

    def _eval_derivative(self, x: sp.Symbol) -> sp.Expr:
        a = self.args[0]
        return Sign(a) * sp.diff(a, x)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return Sign(self.args[0])


class Sign(sp.sign):
    """``sign(x)`` of a real value: real, with derivative 0 (almost everywhere, as in every AD
    system), also where SymPy cannot prove ``x`` real."""

    def _eval_is_extended_real(self) -> bool:
        return True

    def _eval_derivative(self, x: sp.Symbol) -> sp.Expr:
        return sp.Integer(0)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)


class Sigmoid(_Real):
    """Logistic function. Its derivative is stated in terms of itself (``s*(1-s)``), which
    SymPy's chain rule then uses: the expanded form ``exp(-x)/(1+exp(-x))**2`` overflows to
    nan in floating point for large negative x."""

    def _eval_is_extended_nonnegative(self) -> bool:
        return True

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        x = self.args[0]
        return (1 / (1 + sp.exp(-x)))._eval_evalf(prec) if x.is_number else None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        s = Sigmoid(self.args[0])
        return s * (1 - s)


class _Indicator(_Real):
    """A 0/1 head made by differentiation (a comparison's outcome): nonnegative, with
    derivative 0."""

    def _eval_is_extended_nonnegative(self) -> bool:
        return True

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)


class Step(_Indicator):
    """Heaviside step with step(0) = 0 (the derivative of ReLU, as MindSpore defines it) and
    step(nan) = 0 (JAX's derivative of ReLU there)."""

    @classmethod
    def eval(cls, x):
        if x is sp.S.NaN:
            return sp.Integer(0)
        if x.is_number and x.is_extended_real:
            return sp.Integer(1) if x > 0 else sp.Integer(0)
        return None


class AtLeast(_Indicator):
    """``AtLeast(x, y)``: 1 where x >= y, else 0 (also where either is nan: a comparison with
    nan is false). The derivative of max(x, y) in x: ties (also of infinities, where ``y - x``
    is nan) go to x."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if x is sp.S.NaN or y is sp.S.NaN:
            return sp.Integer(0)
        if x == y and x.is_extended_real:
            return sp.Integer(1)
        if x.is_number and y.is_number and x.is_extended_real and y.is_extended_real:
            return sp.Integer(1) if x >= y else sp.Integer(0)
        return None


class _Extremum(_Real):
    """Elementwise max or min of two values. On a tie the derivative goes to ``x``
    (MindSpore's rule)."""

    nargs = 2
    is_max = True

    @classmethod
    def eval(cls, x, y):
        if x == y:
            return x
        if x.is_number and y.is_number and x.is_extended_real and y.is_extended_real:
            return x if (x >= y if cls.is_max else x <= y) else y
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        # 1 for x where x >= y (max) or x <= y (min), 1 for y where y > x (max) or y < x (min);
        # 0 for both where either is nan (as JAX)
        x, y = self.args
        if argindex == 1:
            return AtLeast(x, y) if self.is_max else AtLeast(y, x)
        return Step(y - x) if self.is_max else Step(x - y)


class Maximum(_Extremum):
    """max(x, y): d/dx = 1 where x >= y, d/dy = 1 where x < y."""


class Minimum(_Extremum):
    """min(x, y): d/dx = 1 where x <= y, d/dy = 1 where x > y."""

    is_max = False


class Select(_Real):
    """``Select(c, a, b)``: ``a`` where the (bool) condition ``c`` holds, else ``b``
    (``np.where``). Not differentiable in ``c``; the derivative in ``a`` is ``Select(c, 1, 0)``."""

    nargs = 3

    @classmethod
    def eval(cls, c, a, b):
        if c.is_number:
            return a if c != 0 else b
        if a == b:
            return a
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        c = self.args[0]
        if argindex == 2:
            return Select(c, 1, 0)
        if argindex == 3:
            return Select(c, 0, 1)
        return sp.Integer(0)


class LogOrZero(_Real):
    """``log(x)``, and 0 where ``x`` is 0 (the log of ``x`` with its zeros replaced by ones):
    the factor of d(x**y)/dy, which is then 0 at x = 0 (as in JAX), not 0 * -inf = nan."""

    @classmethod
    def eval(cls, x):
        if x.is_zero:
            return sp.Integer(0)
        if x.is_number:
            return sp.log(x)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return 1 / self.args[0]


class Power(_Real):
    """``x ** y`` with an exponent that is not a number (a number gives SymPy's own power,
    which SymPy simplifies): its derivative in ``y`` is ``x**y * LogOrZero(x)``."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if y.is_number or (x.is_number and not x.is_zero):
            return x**y
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x, y = self.args
        if argindex == 1:
            return y * Power(x, y - 1)
        return self * LogOrZero(x)


class Relu(_Real):
    """max(x, 0)."""

    @classmethod
    def eval(cls, x):
        if x is sp.S.NaN:
            return sp.S.NaN
        if x.is_number and x.is_extended_real:
            return x if x > 0 else sp.Integer(0)
        return None

    def _eval_is_extended_nonnegative(self) -> bool:
        return True

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return Step(self.args[0])


# ----------------------------------------------------------------------------- elementwise ops
def elementwise(
    name: str,
    display: str,
    formula: Callable[..., sp.Expr],
    printer: tuple | None = None,
    *,
    function: str | None = None,
    cuda: Callable | None = None,
    numpy: str = "",
    nin: int = 1,
    sympy_head: Any = None,
    sympy_aliases: tuple = (),
    float_result: bool = False,
    domain: tuple[float, float] = (-2.0, 2.0),
    abstract: Callable[[list[Aval], dict], list[Aval]] | None = None,
    bool_inputs: tuple[int, ...] = (),
    distinct_inputs: bool = False,
    derivative_only: bool = False,
) -> OpDef:
    """Register an elementwise op: ``formula`` is its scalar SymPy formula, ``function`` the
    scalar function it computes by numpy's name (printed ``ns.NAME(x)``, see :class:`OpDef`) or
    ``printer`` how it prints otherwise, ``numpy`` the space-separated NumPy function names that
    trace to it."""
    return _register(
        OpDef(
            name,
            display,
            "elementwise",
            nin,
            abstract or _elementwise_abstract(display, float_result),
            formula=formula,
            printer=printer,
            function=function,
            cuda=cuda,
            numpy=tuple(numpy.split()),
            sympy_head=sympy_head,
            sympy_aliases=sympy_aliases,
            bool_inputs=bool_inputs,
            derivative_only=derivative_only,
            samples=[(s, {}) for s in _broadcast_samples(nin)],
            domain=domain,
            distinct_inputs=distinct_inputs,
        )
    )


def _broadcast_samples(nin: int) -> list[tuple[Shape, ...]]:
    """Sample input shapes of an op that broadcasts its ``nin`` inputs like numpy."""
    shapes = [((3,),) * nin, ((2, 3),) * nin]
    if nin == 1:
        return shapes + [((),)]
    if nin == 2:
        return shapes + [((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3))]
    return shapes + [((2, 3), (3,), (2, 1)), ((2, 1), (1, 3), ()), ((), (2, 3), (3,))]


def _pow_print(a, b, lit, np_):
    # numpy computes an array to the power 0.5 as its square root (-0.0 at -0.0 and nan at
    # -inf, where C's pow gives 0.0 and inf): every backend prints that exponent so
    if b == lit(0.5):
        return f"{np_}.sqrt({a})", ATOM
    return f"{a} ** {b}", POW


def _log_or_zero_print(a, lit, np_, shape):
    if shape == ():
        return f"({np_}.log({a}) if {a} != {lit(0)} else {lit(0)})", ATOM
    return f"{np_}.log({np_}.where({a} == {lit(0)}, {lit(1)}, {a}))", ATOM


def _extremum_print(cmp: str, ufunc: str):
    # numpy's maximum/minimum: nan if either is nan, else the second operand on a tie (0.0 and
    # -0.0). Numba's scalar np.maximum gives the first on a tie, so scalars (in loops, 0-d
    # code and CUDA kernels) are compared as numpy does.
    def print_(a, b, lit, np_, shape):
        if shape == ():
            return f"({a} if ({a} {cmp} {b}) | ({a} != {a}) else {b})", ATOM
        return f"{np_}.{ufunc}({a}, {b})", ATOM

    return print_


def _at_least_print(a, b, lit, np_, shape):
    if shape == ():
        return f"({lit(1)} if {a} >= {b} else {lit(0)})", ATOM
    return f"{np_}.where({a} >= {b}, {lit(1)}, {lit(0)})", ATOM


def _sigmoid_print(a, lit, np_):
    return f"{lit(1)} / ({lit(1)} + {np_}.exp(-{a}))", MUL


def _relu_print(a, lit, np_):
    # (+ 0 makes relu(-0.0) +0.0 in every backend, as numpy's maximum(-0.0, 0) gives)
    return f"{np_}.maximum({a}, {lit(0)}) + {lit(0)}", ADD


def _sign_print(a, lit, np_):
    # (+ 0 makes sign(-0.0) +0.0 in every backend, as numpy gives; Numba's keeps the sign)
    return f"{np_}.sign({a}) + {lit(0)}", ADD


def _step_print(a, lit, np_, shape):
    # 1 where a > 0, else 0 (also at nan, where the derivative of ReLU is 0 as in JAX). Numba's
    # np.where on scalars returns a 0-d array, which other scalar code cannot take.
    if shape == ():
        return f"({lit(1)} if {a} > {lit(0)} else {lit(0)})", ATOM
    return f"{np_}.where({a} > {lit(0)}, {lit(1)}, {lit(0)})", ATOM


elementwise("add", "Add", lambda x, y: x + y, ("infix", "+", ADD), nin=2, numpy="add")
elementwise("sub", "Sub", lambda x, y: x - y, ("infix", "-", ADD), nin=2, numpy="subtract")
elementwise("mul", "Mul", lambda x, y: x * y, ("infix", "*", MUL), nin=2, numpy="multiply")
elementwise(
    "div",
    "Div",
    lambda x, y: x / y,
    ("infix", "/", MUL),
    nin=2,
    numpy="divide true_divide",
    float_result=True,
    domain=(0.5, 2.0),
)
elementwise("pow", "Pow", Power, ("template", _pow_print), nin=2, numpy="power", sympy_head=Power, domain=(0.5, 2.0))
elementwise("neg", "Neg", lambda x: -x, ("prefix", "-"), numpy="negative")
elementwise("square", "Square", lambda x: x**2, function="square", numpy="square")
elementwise("sqrt", "Sqrt", sp.sqrt, function="sqrt", numpy="sqrt", float_result=True, domain=(0.5, 2.0))
elementwise("exp", "Exp", sp.exp, function="exp", numpy="exp", sympy_head=sp.exp, float_result=True)
elementwise("expm1", "Expm1", expm1, function="expm1", numpy="expm1", sympy_head=expm1, float_result=True)
elementwise("log", "Log", sp.log, function="log", numpy="log", sympy_head=sp.log, float_result=True, domain=(0.5, 2.0))
elementwise(
    "log1p",
    "Log1p",
    log1p,
    function="log1p",
    numpy="log1p",
    sympy_head=log1p,
    float_result=True,
    domain=(-0.5, 2.0),
)
elementwise("sin", "Sin", sp.sin, function="sin", numpy="sin", sympy_head=sp.sin, float_result=True)
elementwise("cos", "Cos", sp.cos, function="cos", numpy="cos", sympy_head=sp.cos, float_result=True)
elementwise("tan", "Tan", sp.tan, function="tan", numpy="tan", sympy_head=sp.tan, float_result=True, domain=(-1.0, 1.0))
elementwise("sinh", "Sinh", sp.sinh, function="sinh", numpy="sinh", sympy_head=sp.sinh, float_result=True)
elementwise("cosh", "Cosh", sp.cosh, function="cosh", numpy="cosh", sympy_head=sp.cosh, float_result=True)
elementwise("tanh", "Tanh", sp.tanh, function="tanh", numpy="tanh", sympy_head=sp.tanh, float_result=True)
elementwise(
    "atanh",
    "Atanh",
    sp.atanh,
    function="arctanh",
    cuda=math.atanh,
    numpy="arctanh",
    sympy_head=sp.atanh,
    float_result=True,
    domain=(-0.8, 0.8),
)
elementwise("abs", "Abs", Abs, function="abs", numpy="abs absolute", sympy_head=Abs, sympy_aliases=(sp.Abs,))
elementwise(
    "sign",
    "Sign",
    Sign,
    ("template", _sign_print),
    function="sign",
    numpy="sign",
    sympy_head=Sign,
    sympy_aliases=(sp.sign,),
)
elementwise("sigmoid", "Sigmoid", Sigmoid, ("template", _sigmoid_print), sympy_head=Sigmoid, float_result=True)
elementwise("relu", "ReLU", Relu, ("template", _relu_print), sympy_head=Relu)
elementwise("step", "Step", Step, ("shaped_template", _step_print), sympy_head=Step, derivative_only=True)
elementwise(
    "log_or_zero",
    "LogOrZero",
    LogOrZero,
    ("shaped_template", _log_or_zero_print),
    sympy_head=LogOrZero,
    float_result=True,
    domain=(0.5, 2.0),
    derivative_only=True,
)
elementwise(
    "at_least",
    "AtLeast",
    AtLeast,
    ("shaped_template", _at_least_print),
    nin=2,
    sympy_head=AtLeast,
    distinct_inputs=True,
    derivative_only=True,
)
elementwise(
    "maximum",
    "Maximum",
    Maximum,
    ("shaped_template", _extremum_print(">", "maximum")),
    function="maximum",
    numpy="maximum",
    nin=2,
    sympy_head=Maximum,
    distinct_inputs=True,
)
elementwise(
    "minimum",
    "Minimum",
    Minimum,
    ("shaped_template", _extremum_print("<", "minimum")),
    function="minimum",
    numpy="minimum",
    nin=2,
    sympy_head=Minimum,
    distinct_inputs=True,
)


def _select_abstract(avals: list[Aval], params: dict) -> list[Aval]:
    c, x, y = avals
    if c.dtype.kind != "b":
        raise ArgumentError(f"Select: the condition must be a bool tensor, got dtype {c.dtype}")
    shape = broadcast_shapes("Select", [a.shape for a in avals])
    return [Aval(shape, np.result_type(x.dtype, y.dtype))]  # the dtype comes from the branches


def _select_print(c, a, b, lit, np_, shape):
    # Numba's np.where on scalars returns a 0-d array, which other scalar code cannot take.
    if shape == ():
        return f"({a} if {c} else {b})", ATOM
    return f"{np_}.where({c}, {a}, {b})", ATOM


elementwise(
    "select",
    "Select",
    Select,
    ("shaped_template", _select_print),
    function="where",
    nin=3,
    sympy_head=Select,
    abstract=_select_abstract,
    bool_inputs=(0,),
)


# ----------------------------------------------------------------------------- structural helpers
def sum_to(b: Builder, x: Atom, shape: Shape) -> Atom:
    """Sum ``x`` down to ``shape`` (the adjoint of numpy broadcasting)."""
    if x.shape == tuple(shape):
        return x
    lead = len(x.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and x.shape[lead + i] != 1)
    y = b.bind1("reduce_sum", x, axes=axes, keepdims=False) if axes else x
    if y.shape != tuple(shape):
        y = b.bind1("reshape", y, shape=tuple(shape))
    return y


def broadcast_to(b: Builder, x: Atom, shape: Shape) -> Atom:
    if x.shape == tuple(shape):
        return x
    return b.bind1("broadcast_to", x, shape=tuple(shape))


def cast_to(b: Builder, x: Atom, dtype: np.dtype) -> Atom:
    if x.dtype == dtype:
        return x
    if isinstance(x, Lit):
        return Lit(x.value, dtype)
    return b.bind1("cast", x, dtype=np.dtype(dtype))


def linear_jvp(b: Builder, eqn: Eqn, tangents: list) -> list:
    """Tangent rule of an op that is linear in its single input: apply the op to the tangent."""
    (t,) = tangents
    return [None if t is None else b.bind1(eqn.op, t, **eqn.params)]


def no_jvp(b: Builder, eqn: Eqn, tangents: list) -> list:
    """Tangent rule of an op whose outputs are constant (or not differentiable)."""
    return [None] * len(eqn.outs)


# ----------------------------------------------------------------------------- matmul
def _matmul_abstract(avals: list[Aval], p: dict) -> list[Aval]:
    a, b = avals
    if a.ndim != 2 or b.ndim != 2:
        raise ShapeError(f"MatMul: both operands must be 2-D, got shapes {fmt_shape(a.shape)} and {fmt_shape(b.shape)}")
    m, k1 = a.shape[::-1] if p["transpose_a"] else a.shape
    k2, n = b.shape[::-1] if p["transpose_b"] else b.shape
    if k1 != k2:
        ta = ".T" if p["transpose_a"] else ""
        tb = ".T" if p["transpose_b"] else ""
        raise ShapeError(
            f"MatMul: inner dimensions differ: x{ta} has shape {fmt_shape((m, k1))}, y{tb} has shape "
            f"{fmt_shape((k2, n))} ({k1} != {k2}); inputs are x {fmt_shape(a.shape)} and y {fmt_shape(b.shape)}"
        )
    if a.dtype != b.dtype:
        raise ShapeError(f"MatMul: operands have different dtypes {a.dtype} and {b.dtype}")
    return [Aval((m, n), a.dtype)]


def _atomic(arg) -> str:
    s, prec = arg
    return s if prec >= ATOM else f"({s})"


def _matmul_emit(args, eqn: Eqn, C):
    x, y = (a[0] for a in args)
    x = f"{_atomic(args[0])}.T" if eqn.params["transpose_a"] else x
    y = f"{_atomic(args[1])}.T" if eqn.params["transpose_b"] else y
    return f"{C.np}.dot({x}, {y})", ATOM


def _matmul_vjp(b: Builder, eqn: Eqn, cts, active):
    (ct,) = cts
    x, y = eqn.ins
    ta, tb = eqn.params["transpose_a"], eqn.params["transpose_b"]
    gx = gy = None
    if active[0]:
        gx = (
            b.bind1("matmul", y, ct, transpose_a=tb, transpose_b=True)
            if ta
            else b.bind1("matmul", ct, y, transpose_a=False, transpose_b=not tb)
        )
    if active[1]:
        gy = (
            b.bind1("matmul", ct, x, transpose_a=True, transpose_b=ta)
            if tb
            else b.bind1("matmul", x, ct, transpose_a=not ta, transpose_b=False)
        )
    return [gx, gy]


def _matmul_jvp(b: Builder, eqn: Eqn, tangents):
    x, y = eqn.ins
    tx, ty = tangents
    p = eqn.params
    terms = []
    if tx is not None:
        terms.append(b.bind1("matmul", tx, y, **p))
    if ty is not None:
        terms.append(b.bind1("matmul", x, ty, **p))
    return [terms[0] if len(terms) == 1 else b.bind1("add", *terms)]


_register(
    OpDef(
        "matmul",
        "MatMul",
        "structural",
        2,
        _matmul_abstract,
        emit=_matmul_emit,
        contiguous=True,
        inexact=True,
        cuda_kernel="matmul",
        vjp=_matmul_vjp,
        jvp=_matmul_jvp,
        samples=[
            (((2, 3), (3, 4)), dict(transpose_a=False, transpose_b=False)),
            (((3, 2), (3, 4)), dict(transpose_a=True, transpose_b=False)),
            (((2, 3), (4, 3)), dict(transpose_a=False, transpose_b=True)),
            (((3, 2), (4, 3)), dict(transpose_a=True, transpose_b=True)),
        ],
    )
)


# ----------------------------------------------------------------------------- comparisons
# Comparisons give bool tensors and are not differentiable. They are structural ops, so the
# SymPy cluster pass (which only takes elementwise ops) never puts relations into expressions.
def _compare_abstract(display: str):
    def abstract(avals: list[Aval], params: dict) -> list[Aval]:
        return [Aval(broadcast_shapes(display, [a.shape for a in avals]), np.dtype(np.bool_))]

    return abstract


def _compare_emit(sym: str):
    def emit(args, eqn: Eqn, C):
        x, y = (s if prec > CMP else f"({s})" for s, prec in args)
        return f"{x} {sym} {y}", CMP

    return emit


for _name, _display, _sym in [
    ("greater", "Greater", ">"),
    ("greater_equal", "GreaterEqual", ">="),
    ("less", "Less", "<"),
    ("less_equal", "LessEqual", "<="),
    ("equal", "Equal", "=="),
    ("not_equal", "NotEqual", "!="),
]:
    _register(
        OpDef(
            _name,
            _display,
            "structural",
            2,
            _compare_abstract(_display),
            emit=_compare_emit(_sym),
            pointwise=True,
            cuda_kernel="pointwise",
            vjp=lambda b, eqn, cts, active: [None, None],
            jvp=no_jvp,
            samples=[(s, {}) for s in _broadcast_samples(2)],
        )
    )


# ----------------------------------------------------------------------------- reductions
def normalize_axes(display: str, axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None or axis == ():
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= int(a) < max(ndim, 1):
            raise ShapeError(f"{display}: axis {a} is out of range for a tensor of rank {ndim}")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ShapeError(f"{display}: repeated axis in {axis}")
    return tuple(sorted(out))


def _reduced_shape(shape: Shape, axes: tuple[int, ...], keepdims: bool) -> Shape:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_abstract(avals, p):
    (a,) = avals
    return [Aval(_reduced_shape(a.shape, p["axes"], p["keepdims"]), a.dtype)]


def _reduce_emit(mean: bool):
    # Numba supports np.sum with one integer axis (not np.mean with an axis, nor keepdims):
    # sum one axis at a time, divide for a mean, and reshape for keepdims.
    def emit(args, eqn: Eqn, C):
        ((x, _),) = args
        shape = eqn.ins[0].shape
        axes = eqn.params["axes"]
        out = eqn.outs[0]
        if len(axes) == len(shape):
            expr = f"{C.np}.sum({x})"
        else:
            expr = x
            for ax in sorted(axes, reverse=True):
                expr = f"{C.np}.sum({expr}, axis={ax})"
        if mean:
            n = int(np.prod([shape[a] for a in axes], dtype=np.int64))
            expr = f"{expr} / {C.lit(n, out.dtype)}"
        return C.reshape_from(expr, _reduced_shape(shape, axes, False), out.shape, out.dtype), (MUL if mean else ATOM)

    return emit


def _reduce_sum_vjp(b, eqn, cts, active):
    (ct,) = cts
    x = eqn.ins[0]
    kshape = _reduced_shape(x.shape, eqn.params["axes"], True)
    if ct.shape != kshape:
        ct = b.bind1("reshape", ct, shape=kshape)
    return [broadcast_to(b, ct, x.shape)]


def _reduce_mean_vjp(b, eqn, cts, active):
    (g,) = _reduce_sum_vjp(b, eqn, cts, active)
    x = eqn.ins[0]
    n = int(np.prod([x.shape[a] for a in eqn.params["axes"]], dtype=np.int64))
    return [b.bind1("div", g, Lit(n, x.dtype))]


_reduce_samples = [
    (((2, 3),), dict(axes=(0, 1), keepdims=False)),
    (((2, 3),), dict(axes=(1,), keepdims=False)),
    (((2, 3, 4),), dict(axes=(0, 2), keepdims=True)),
    (((3,),), dict(axes=(0,), keepdims=True)),
]
_register(
    OpDef(
        "reduce_sum",
        "ReduceSum",
        "structural",
        1,
        _reduce_abstract,
        emit=_reduce_emit(False),
        contiguous=True,
        inexact=True,
        fused_reduction=True,
        cuda_kernel="reduce",
        vjp=_reduce_sum_vjp,
        jvp=linear_jvp,
        samples=_reduce_samples,
    )
)
_register(
    OpDef(
        "reduce_mean",
        "ReduceMean",
        "structural",
        1,
        _reduce_abstract,
        emit=_reduce_emit(True),
        contiguous=True,
        shape_only=True,
        inexact=True,
        fused_reduction=True,
        cuda_kernel="reduce",
        vjp=_reduce_mean_vjp,
        jvp=linear_jvp,
        samples=_reduce_samples,
    )
)


def _reduce_extremum_emit(ufunc: str, full: str):
    # Numba's np.max/np.min take no axis. Reduce one axis at a time (the highest first): copy
    # the first slice along it, then fold the others in with the ufunc, in place. Basic
    # slices keep Numba's compile time low (a transposed copy of a 3-D array takes seconds to
    # compile); plain numpy runs the same code.
    def emit(target, args, eqn: Eqn, C):
        ((x, _),) = args
        shape, axes, out = eqn.ins[0].shape, eqn.params["axes"], eqn.outs[0]
        if len(axes) == len(shape):
            expr = f"{C.np}.{full}({x})" if shape else x
            return [f"{target} = {C.reshape_from(expr, (), out.shape, out.dtype)}"]
        lines = []
        cur, cur_shape = x, list(shape)
        if not x.isidentifier():  # an inlined expression: evaluate it once
            cur = C.fresh(f"{target}_in")
            lines.append(f"{cur} = {x}")
        final = _reduced_shape(shape, axes, False)
        for step, ax in enumerate(sorted(axes, reverse=True)):
            last = step == len(axes) - 1
            acc = target if last and out.shape == final else C.fresh(f"{target}_acc")
            k = C.fresh("k")

            def at(i, ax=ax):
                return ", ".join([":"] * ax + [str(i)])

            lines += [
                f"{acc} = {cur}[{at(0)}].copy()",
                f"for {k} in range(1, {cur_shape[ax]}):",
                "    " + C.ufunc_into(ufunc, acc, f"{cur}[{at(k)}]", acc),
            ]
            cur = acc
            del cur_shape[ax]
        if cur != target:
            lines.append(f"{target} = {cur}.reshape({out.shape!r})")
        return lines

    return emit


def _extremum_mask(b: Builder, x: Atom, y: Atom, axes: tuple[int, ...]) -> tuple[Atom, Atom]:
    """Where ``x`` equals its extremum ``y`` over ``axes`` (as x's float dtype), and how many
    positions tie for it (keepdims)."""
    kshape = _reduced_shape(x.shape, axes, True)
    if y.shape != kshape:
        y = b.bind1("reshape", y, shape=kshape)
    mask = b.bind1("cast", b.bind1("equal", x, y), dtype=np.dtype(x.dtype))
    count = b.bind1("reduce_sum", mask, axes=axes, keepdims=True)
    return mask, count


def _reduce_extremum_vjp(b, eqn, cts, active):
    # The cotangent goes to the positions that attain the extremum, split equally among ties.
    (ct,) = cts
    x = eqn.ins[0]
    if x.dtype.kind != "f":
        return [None]
    axes = eqn.params["axes"]
    mask, count = _extremum_mask(b, x, eqn.outs[0], axes)
    if ct.shape != count.shape:
        ct = b.bind1("reshape", ct, shape=count.shape)
    share = b.bind1("div", ct, count)
    return [b.bind1("mul", mask, share)]  # broadcasts back to x's shape


def _reduce_extremum_jvp(b, eqn, tangents):
    # The mean of the tangent over the positions that attain the extremum.
    (t,) = tangents
    x, y = eqn.ins[0], eqn.outs[0]
    if t is None or x.dtype.kind != "f":
        return [None]
    axes = eqn.params["axes"]
    mask, count = _extremum_mask(b, x, y, axes)
    total = b.bind1("reduce_sum", b.bind1("mul", t, mask), axes=axes, keepdims=True)
    res = b.bind1("div", total, count)
    if res.shape != y.shape:
        res = b.bind1("reshape", res, shape=y.shape)
    return [res]


for _name, _display, _ufunc, _full in [
    ("reduce_max", "ReduceMax", "maximum", "max"),
    ("reduce_min", "ReduceMin", "minimum", "min"),
]:
    _register(
        OpDef(
            _name,
            _display,
            "structural",
            1,
            _reduce_abstract,
            emit=_reduce_extremum_emit(_ufunc, _full),
            shape_only=True,
            cuda_kernel="reduce",
            statement=True,
            vjp=_reduce_extremum_vjp,
            jvp=_reduce_extremum_jvp,
            samples=_reduce_samples,
            distinct_inputs=True,
        )
    )


# ----------------------------------------------------------------------------- shape ops
def _reshape_abstract(avals, p):
    (a,) = avals
    shape = tuple(p["shape"])
    if int(np.prod(shape, dtype=np.int64)) != a.size:
        raise ShapeError(f"Reshape: cannot reshape a tensor of shape {fmt_shape(a.shape)} to {fmt_shape(shape)}")
    return [Aval(shape, a.dtype)]


def _reshape_emit(args, eqn, C):
    ((x, _),) = args
    return C.reshape_from(x, eqn.ins[0].shape, eqn.outs[0].shape, eqn.outs[0].dtype, contiguous=False), ATOM


def _reshape_vjp(b, eqn, cts, active):
    return [b.bind1("reshape", cts[0], shape=eqn.ins[0].shape)]


_register(
    OpDef(
        "reshape",
        "Reshape",
        "structural",
        1,
        _reshape_abstract,
        emit=_reshape_emit,
        view=True,
        contiguous=True,  # (of a contiguous copy where the input is not contiguous)
        shape_only=True,
        cuda_kernel="alias",
        vjp=_reshape_vjp,
        jvp=linear_jvp,
        samples=[(((2, 3),), dict(shape=(3, 2))), (((6,),), dict(shape=(2, 1, 3))), (((1,),), dict(shape=()))],
    )
)


def _broadcast_abstract(avals, p):
    (a,) = avals
    shape = tuple(p["shape"])
    if broadcast_shapes("BroadcastTo", [a.shape, shape]) != shape:
        raise ShapeError(f"BroadcastTo: cannot broadcast shape {fmt_shape(a.shape)} to {fmt_shape(shape)}")
    return [Aval(shape, a.dtype)]


def _broadcast_emit(args, eqn, C):
    ((x, _),) = args
    return f"{C.np}.broadcast_to({x}, {eqn.params['shape']!r})", ATOM


def _broadcast_vjp(b, eqn, cts, active):
    return [sum_to(b, cts[0], eqn.ins[0].shape)]


_register(
    OpDef(
        "broadcast_to",
        "BroadcastTo",
        "structural",
        1,
        _broadcast_abstract,
        emit=_broadcast_emit,
        view=True,
        shape_only=True,
        pointwise=True,
        cuda_kernel="pointwise",
        vjp=_broadcast_vjp,
        jvp=linear_jvp,
        samples=[(((3,),), dict(shape=(2, 3))), (((2, 1),), dict(shape=(2, 3))), (((),), dict(shape=(2,)))],
    )
)


def _transpose_abstract(avals, p):
    (a,) = avals
    perm = tuple(p["perm"])
    if sorted(perm) != list(range(a.ndim)):
        raise ShapeError(
            f"Transpose: {perm} is not a permutation of the axes of a tensor of shape {fmt_shape(a.shape)}"
        )
    return [Aval(tuple(a.shape[i] for i in perm), a.dtype)]


def _transpose_emit(args, eqn, C):
    x = _atomic(args[0])
    perm = tuple(eqn.params["perm"])
    if perm == tuple(reversed(range(len(perm)))):
        return f"{x}.T", ATOM
    return f"{C.np}.transpose({x}, {perm!r})", ATOM


def _transpose_vjp(b, eqn, cts, active):
    inv = tuple(int(i) for i in np.argsort(eqn.params["perm"]))
    return [b.bind1("transpose", cts[0], perm=inv)]


_register(
    OpDef(
        "transpose",
        "Transpose",
        "structural",
        1,
        _transpose_abstract,
        emit=_transpose_emit,
        view=True,
        shape_only=True,
        cuda_kernel="gather",
        vjp=_transpose_vjp,
        jvp=linear_jvp,
        samples=[(((2, 3),), dict(perm=(1, 0))), (((2, 3, 4),), dict(perm=(2, 0, 1)))],
    )
)


# ----------------------------------------------------------------------------- indexing
def index_str(index: tuple) -> str:
    def one(i):
        if i is None:
            return "None"
        if i is Ellipsis:
            return "..."
        if isinstance(i, tuple) and i and i[0] == "slice":
            _, s0, s1, s2 = i
            txt = f"{'' if s0 is None else s0}:{'' if s1 is None else s1}"
            return txt + (f":{s2}" if s2 is not None else "")
        return str(i)

    return ", ".join(one(i) for i in index) or "()"


def as_py_index(index: tuple) -> tuple:
    return tuple(slice(*i[1:]) if isinstance(i, tuple) and i and i[0] == "slice" else i for i in index)


def _getitem_abstract(avals, p):
    (a,) = avals
    try:
        shape = np.broadcast_to(np.zeros((), np.int8), a.shape)[as_py_index(p["index"])].shape
    except IndexError as err:
        raise TensorIndexError(
            f"indexing a tensor of shape {fmt_shape(a.shape)} with [{index_str(p['index'])}]: {err}"
        ) from None
    return [Aval(tuple(shape), a.dtype)]


def spelled_out(index: tuple, ndim: int) -> tuple:
    """``index`` on a tensor of ``ndim`` axes with ``...`` replaced by the full slices it
    stands for, and full slices appended for the axes it leaves out: the form Numba compiles
    (it takes no bare ``...``)."""
    full = ("slice", None, None, None)
    used = sum(1 for i in index if i is not None and i is not Ellipsis)
    out: list = []
    for i in index:
        out.extend([full] * (ndim - used) if i is Ellipsis else [i])
    if Ellipsis not in index:
        out.extend([full] * (ndim - used))
    return tuple(out)


def _getitem_emit(args, eqn, C):
    ((x, prec),) = args
    x = x if prec >= ATOM else f"({x})"
    index, a, out = eqn.params["index"], eqn.ins[0], eqn.outs[0]
    # A 0-d value may be a scalar (a literal, a Python or numpy number; in Numba's code every
    # 0-d value), which takes no index: indexing one gives the value itself or an array of
    # ones' shape holding it (its index has only None and ...).
    if a.shape == ():
        return (x, ATOM) if out.shape == () else (f"{C.np}.full({out.shape!r}, {x}, {C.dtype(out.dtype)})", ATOM)
    if not C.numba:
        return f"{x}[{index_str(index)}]", ATOM
    index = spelled_out(index, len(a.shape))
    if all(i == ("slice", None, None, None) for i in index):
        return x, ATOM
    return f"{x}[{index_str(index)}]", ATOM


def _getitem_vjp(b, eqn, cts, active):
    return [b.bind1("scatter", cts[0], index=eqn.params["index"], shape=eqn.ins[0].shape)]


def _scatter_abstract(avals, p):
    (a,) = avals
    return [Aval(tuple(p["shape"]), a.dtype)]


def _scatter_emit(target, args, eqn, C):
    ((x, _),) = args
    out, index = eqn.outs[0], eqn.params["index"]
    if C.numba:
        if out.shape == ():  # a scalar in Numba's code: the one element of x
            return [f"{target} = {C.reshape_from(x, eqn.ins[0].shape, (), out.dtype)}"]
        index = spelled_out(index, len(out.shape))
    return [
        f"{target} = {C.np}.zeros({out.shape!r}, {C.dtype(out.dtype)})",
        f"{target}[{index_str(index)}] += {x}",
    ]


def _scatter_vjp(b, eqn, cts, active):
    return [b.bind1("getitem", cts[0], index=eqn.params["index"])]


_register(
    OpDef(
        "getitem",
        "Getitem",
        "structural",
        1,
        _getitem_abstract,
        emit=_getitem_emit,
        view=True,
        shape_only=True,
        cuda_kernel="gather",
        vjp=_getitem_vjp,
        jvp=linear_jvp,
        samples=[
            (((2, 3),), dict(index=(0,))),
            (((2, 3),), dict(index=(1, 2))),
            (((4, 3),), dict(index=(("slice", 1, None, 2), None))),
        ],
    )
)
_register(
    OpDef(
        "scatter",
        "Scatter",
        "structural",
        1,
        _scatter_abstract,
        emit=_scatter_emit,
        contiguous=True,
        cuda_kernel="scatter",
        statement=True,
        vjp=_scatter_vjp,
        jvp=linear_jvp,
        samples=[(((3,),), dict(index=(0,), shape=(2, 3)))],
    )
)


# ----------------------------------------------------------------------------- misc
def _cast_abstract(avals, p):
    return [Aval(avals[0].shape, np.dtype(p["dtype"]))]


def _cast_emit(args, eqn, C):
    ((x, prec),) = args
    dt = C.dtype(eqn.params["dtype"])
    if eqn.ins[0].shape == ():
        return f"{dt}({x})", ATOM
    x = x if prec >= ATOM else f"({x})"
    return f"{x}.astype({dt})", ATOM


def _cast_vjp(b, eqn, cts, active):
    # int -> float passes the cotangent on, truncated to the int dtype (MindSpore's gradient
    # of an integer input); float -> int/bool is piecewise constant: zero, as in forward mode.
    x = eqn.ins[0]
    if x.dtype.kind == "b" or (x.dtype.kind == "f" and eqn.outs[0].dtype.kind != "f"):
        return [None]
    return [cast_to(b, cts[0], x.dtype)]


def _cast_jvp(b, eqn, tangents):
    (t,) = tangents
    if t is None or eqn.outs[0].dtype.kind != "f":
        return [None]
    return [cast_to(b, t, eqn.outs[0].dtype)]


_register(
    OpDef(
        "cast",
        "Cast",
        "structural",
        1,
        _cast_abstract,
        emit=_cast_emit,
        contiguous=True,
        shape_only=True,
        pointwise=True,
        cuda_kernel="pointwise",
        vjp=_cast_vjp,
        jvp=_cast_jvp,
        samples=[(((2, 3),), dict(dtype=np.dtype(np.float64))), (((),), dict(dtype=np.dtype(np.float32)))],
    )
)


def _identity_abstract(avals, p):
    return [avals[0]]


def _stop_gradient_emit(args, eqn, C):
    return args[0]


_register(
    OpDef(
        "stop_gradient",
        "stop_gradient",
        "structural",
        1,
        _identity_abstract,
        emit=_stop_gradient_emit,
        view=True,
        pointwise=True,
        cuda_kernel="alias",
        vjp=lambda b, eqn, cts, active: [None],
        jvp=no_jvp,
    )
)


def _fill_abstract(avals, p):
    return [Aval(tuple(p["shape"]), np.dtype(p["dtype"]))]


def _fill_emit(args, eqn, C):
    shape, dt, v = eqn.params["shape"], eqn.params["dtype"], eqn.params["value"]
    if shape == ():
        return C.lit(v, dt), ATOM
    if v == 0:
        return f"{C.np}.zeros({shape!r}, {C.dtype(dt)})", ATOM
    if v == 1:
        return f"{C.np}.ones({shape!r}, {C.dtype(dt)})", ATOM
    return f"{C.np}.full({shape!r}, {C.lit(v, dt)})", ATOM


_register(
    OpDef(
        "fill",
        "Fill",
        "structural",
        0,
        _fill_abstract,
        emit=_fill_emit,
        contiguous=True,
        pointwise=True,
        cuda_kernel="fill",
        vjp=lambda b, eqn, cts, active: [],
        jvp=no_jvp,
    )
)


def fill(b: Builder, shape: Shape, value: float, dtype: np.dtype) -> Atom:
    if shape == ():
        return Lit(value, dtype)
    return b.bind1("fill", shape=tuple(shape), value=value, dtype=np.dtype(dtype))


# ---- structural, indexing and linalg ops (issue 15)
# Ops that compose from others (concat, stack, split, tile, pad, squeeze, expand_dims, norm,
# gather_nd, scatter_nd, ...) are lowerings in s2s_ad.trace.lowering, not table entries.
class FloorDiv(_Real):
    """``floor(x / y)`` (Python's ``//``, numpy's ``floor_divide``): piecewise constant, so its
    derivative is 0 (almost everywhere, as in every AD system)."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if x.is_Rational and y.is_Rational and y != 0:
            return sp.floor(x / y)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)


class FloorMod(_Real):
    """``x - y * floor(x / y)`` (Python's ``%``, numpy's ``mod``: the sign of ``y``):
    d/dx = 1, d/dy = -floor(x / y)."""

    nargs = 2

    @classmethod
    def eval(cls, x, y):
        if x.is_Rational and y.is_Rational and y != 0:
            return x - y * sp.floor(x / y)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x, y = self.args
        return sp.Integer(1) if argindex == 1 else -FloorDiv(x, y)


# Python's ``//`` and ``%`` print as themselves: numpy's floor_divide and mod on arrays, and
# Python's float floor division and modulo on the scalars of fused loops and 0-d code (which
# Numba compiles as numpy computes them, special values included).
elementwise("floor_div", "FloorDiv", FloorDiv, ("infix", "//", MUL), numpy="floor_divide", nin=2, sympy_head=FloorDiv)
elementwise("floor_mod", "FloorMod", FloorMod, ("infix", "%", MUL), numpy="mod remainder", nin=2, sympy_head=FloorMod)


def _axis_of(display: str, axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ShapeError(f"{display}: axis {axis} is out of range for a tensor of rank {ndim}")
    return axis % ndim


def _int_tensor(display: str, what: str, a: Aval) -> None:
    if a.dtype.kind not in "iu":
        raise ArgumentError(f"{display}: {what} must be an integer tensor, got dtype {a.dtype}")


def _gather_abstract(avals, p):
    x, idx = avals
    _int_tensor("Gather", "the indices", idx)
    if x.ndim == 0:
        raise ShapeError("Gather: the input must have at least one axis, got a 0-d tensor")
    ax = _axis_of("Gather", p["axis"], x.ndim)
    return [Aval(x.shape[:ax] + idx.shape + x.shape[ax + 1 :], x.dtype)]


def _index_check(idx: str, n: int, scalar: bool, what: str) -> str:
    """A statement raising IndexError where an index in ``idx`` lies outside ``[-n, n)``
    (Numba does not check indices)."""
    cond = f"{idx} < {-n} or {idx} >= {n}" if scalar else f"np.any(({idx} < {-n}) | ({idx} >= {n}))"
    return f'if {cond}: raise IndexError("{what}: an index is out of range for an axis of size {n}")'


def _slot(ax: int, i: str) -> str:
    return ", ".join([":"] * ax + [i])


def _gather_emit(target, args, eqn: Eqn, C):
    (x, x_prec), (idx, _) = args
    a, ia, out = eqn.ins[0], eqn.ins[1], eqn.outs[0]
    ax = eqn.params["axis"] % len(a.shape)
    lines = []
    if not idx.isidentifier():
        lines.append(f"{target}_i = {idx}")
        idx = f"{target}_i"
    lines.append(_index_check(idx, a.shape[ax], ia.shape == (), "Gather"))
    if ia.shape == ():
        return lines + [f"{target} = {_atomic((x, x_prec))}[{_slot(ax, idx)}]"]
    flat = f"{C.reshape_from(idx, ia.shape, (ia.aval.size,), ia.dtype, contiguous=False)}"
    lines.append(f"{target} = {C.np}.ascontiguousarray({_atomic((x, x_prec))}[{_slot(ax, flat)}])")
    lines.append(f"{target} = {target}.reshape({out.shape!r})")
    return lines


def _gather_vjp(b: Builder, eqn: Eqn, cts, active):
    (ct,) = cts
    x, idx = eqn.ins
    return [b.bind1("scatter_add", ct, idx, axis=eqn.params["axis"] % len(x.shape), shape=x.shape), None]


def _first_input_linear_jvp(b: Builder, eqn: Eqn, tangents):
    t = tangents[0]
    return [None if t is None else b.bind1(eqn.op, t, *eqn.ins[1:], **eqn.params)]


def _scatter_add_abstract(avals, p):
    u, idx = avals
    _int_tensor("ScatterAdd", "the indices", idx)
    shape = tuple(p["shape"])
    if not shape:
        raise ShapeError("ScatterAdd: the result must have at least one axis")
    ax = _axis_of("ScatterAdd", p["axis"], len(shape))
    want = shape[:ax] + idx.shape + shape[ax + 1 :]
    if u.shape != want:
        raise ShapeError(
            f"ScatterAdd: updates of shape {fmt_shape(u.shape)} do not fit indices of shape {fmt_shape(idx.shape)} "
            f"into a result of shape {fmt_shape(shape)} along axis {ax} (expected updates of shape {fmt_shape(want)})"
        )
    return [Aval(shape, u.dtype)]


def _scatter_add_emit(target, args, eqn: Eqn, C):
    (u, _), (idx, _) = args
    ua, ia, out = eqn.ins[0], eqn.ins[1], eqn.outs[0]
    ax = eqn.params["axis"] % len(out.shape)
    n = out.shape[ax]
    lines = []
    if not idx.isidentifier():
        lines.append(f"{target}_i = {idx}")
        idx = f"{target}_i"
    lines += [
        _index_check(idx, n, ia.shape == (), "ScatterAdd"),
        f"{target} = {C.np}.zeros({out.shape!r}, {C.dtype(out.dtype)})",
    ]
    if ia.shape == ():
        i = idx if C.numba else f"int({idx})"
        return lines + [f"{target}[{_slot(ax, i)}] += {u}"]
    m = ia.aval.size
    flat_u = C.reshape_from(u, ua.shape, out.shape[:ax] + (m,) + out.shape[ax + 1 :], ua.dtype, contiguous=False)
    flat_i = C.reshape_from(idx, ia.shape, (m,), ia.dtype, contiguous=False)
    fu, fi, k = C.fresh(f"{target}_u"), C.fresh(f"{target}_j"), C.fresh("k")
    return lines + [
        f"{fu} = {flat_u}",
        f"{fi} = {flat_i}",
        f"for {k} in range({m}):",
        f"    {target}[{_slot(ax, f'{fi}[{k}]')}] += {fu}[{_slot(ax, k)}]",
    ]


def _scatter_add_vjp(b: Builder, eqn: Eqn, cts, active):
    (ct,) = cts
    return [b.bind1("gather", ct, eqn.ins[1], axis=eqn.params["axis"]), None]


def _index_bound(which: str):
    def bound(shapes, params) -> int:
        shape = shapes[0] if which == "input" else params["shape"]
        return shape[params["axis"] % len(shape)]

    return bound


_register(
    OpDef(
        "gather",
        "Gather",
        "structural",
        2,
        _gather_abstract,
        emit=_gather_emit,
        statement=True,
        contiguous=True,
        vjp=_gather_vjp,
        jvp=_first_input_linear_jvp,
        int_inputs=(1,),
        index_bound=_index_bound("input"),
        samples=[
            (((4, 3), (5,)), dict(axis=0)),
            (((2, 4, 3), (2, 2)), dict(axis=1)),
            (((4, 3), ()), dict(axis=0)),
            (((4,), ()), dict(axis=0)),
            (((3, 4), (3,)), dict(axis=-1)),
        ],
    )
)
_register(
    OpDef(
        "scatter_add",
        "ScatterAdd",
        "structural",
        2,
        _scatter_add_abstract,
        emit=_scatter_add_emit,
        statement=True,
        contiguous=True,
        vjp=_scatter_add_vjp,
        jvp=_first_input_linear_jvp,
        int_inputs=(1,),
        index_bound=_index_bound("result"),
        samples=[
            (((5, 3), (5,)), dict(axis=0, shape=(4, 3))),
            (((2, 2, 2, 3), (2, 2)), dict(axis=1, shape=(2, 4, 3))),
            (((3,), ()), dict(axis=0, shape=(4, 3))),
            (((), ()), dict(axis=0, shape=(4,))),
        ],
    )
)


def _cumsum_abstract(avals, p):
    (x,) = avals
    if x.ndim == 0:
        raise ShapeError("CumSum: the input must have at least one axis, got a 0-d tensor")
    _axis_of("CumSum", p["axis"], x.ndim)
    return [x]


def _cumsum_emit(target, args, eqn: Eqn, C):
    ((x, prec),) = args
    a = eqn.ins[0]
    ax = eqn.params["axis"] % len(a.shape)
    n = a.shape[ax]
    k = C.fresh("k")
    if eqn.params["reverse"]:
        loop, prev = f"for {k} in range({n - 2}, -1, -1):", f"{k} + 1"
    else:
        loop, prev = f"for {k} in range(1, {n}):", f"{k} - 1"
    copy = f"{x}.copy()" if prec >= ATOM else f"({x}).copy()"
    return [f"{target} = {copy}", loop, f"    {target}[{_slot(ax, k)}] += {target}[{_slot(ax, prev)}]"]


def _cumsum_vjp(b: Builder, eqn: Eqn, cts, active):
    p = eqn.params
    return [b.bind1("cumsum", cts[0], axis=p["axis"], reverse=not p["reverse"])]


_register(
    OpDef(
        "cumsum",
        "CumSum",
        "structural",
        1,
        _cumsum_abstract,
        emit=_cumsum_emit,
        statement=True,
        contiguous=True,
        inexact=True,
        vjp=_cumsum_vjp,
        jvp=linear_jvp,
        samples=[
            (((2, 3),), dict(axis=1, reverse=False)),
            (((4,),), dict(axis=0, reverse=True)),
            (((3, 2, 2),), dict(axis=0, reverse=False)),
            (((2, 3),), dict(axis=-1, reverse=True)),
        ],
    )
)


def _arg_extremum_abstract(display: str):
    def abstract(avals, p):
        (x,) = avals
        if x.ndim == 0:
            raise ShapeError(f"{display}: the input must have at least one axis, got a 0-d tensor")
        ax = _axis_of(display, p["axis"], x.ndim)
        return [Aval(x.shape[:ax] + x.shape[ax + 1 :], np.dtype(np.int64))]

    return abstract


def _arg_extremum_emit(fn: str):
    def emit(args, eqn: Eqn, C):
        x = _atomic(args[0])
        a = eqn.ins[0]
        ax = eqn.params["axis"] % len(a.shape)
        if len(a.shape) == 1:
            return f"{C.np}.int64({C.np}.{fn}({x}))", ATOM
        return f"{C.np}.{fn}({x}, axis={ax}).astype({C.np}.int64)", ATOM

    return emit


for _name, _display, _fn in [("argmax", "Argmax", "argmax"), ("argmin", "Argmin", "argmin")]:
    _register(
        OpDef(
            _name,
            _display,
            "structural",
            1,
            _arg_extremum_abstract(_display),
            emit=_arg_extremum_emit(_fn),
            contiguous=True,
            vjp=lambda b, eqn, cts, active: [None],
            jvp=no_jvp,
            distinct_inputs=True,
            samples=[(((2, 3),), dict(axis=1)), (((4,),), dict(axis=0)), (((2, 3, 2),), dict(axis=0))],
        )
    )


# ------------------------------------------------------------- batched matmul
def _batch_matmul_abstract(avals: list[Aval], p: dict) -> list[Aval]:
    a, b = avals
    if a.ndim < 2 or b.ndim < 2:
        raise ShapeError(
            f"BatchMatMul: both operands must have at least 2 axes, got shapes {fmt_shape(a.shape)} and "
            f"{fmt_shape(b.shape)}"
        )
    m, k1 = a.shape[-2:][::-1] if p["transpose_a"] else a.shape[-2:]
    k2, n = b.shape[-2:][::-1] if p["transpose_b"] else b.shape[-2:]
    if k1 != k2:
        raise ShapeError(
            f"BatchMatMul: inner dimensions differ ({k1} != {k2}) for operands of shapes {fmt_shape(a.shape)} and "
            f"{fmt_shape(b.shape)} (transpose_a={p['transpose_a']}, transpose_b={p['transpose_b']})"
        )
    if a.dtype != b.dtype:
        raise ShapeError(f"BatchMatMul: operands have different dtypes {a.dtype} and {b.dtype}")
    batch = broadcast_shapes("BatchMatMul", [a.shape[:-2], b.shape[:-2]])
    return [Aval(batch + (m, n), a.dtype)]


def _batch_matmul_emit(target, args, eqn: Eqn, C):
    a, b = eqn.ins
    out = eqn.outs[0]
    batch = out.shape[:-2]
    nb = int(np.prod(batch, dtype=np.int64))
    lines, ops = [], []
    for (src, prec), v, t in zip(args, (a, b), (eqn.params["transpose_a"], eqn.params["transpose_b"])):
        name = C.fresh(f"{target}_in")
        full = batch + v.shape[-2:]
        expr = src if prec >= ATOM else f"({src})"
        if v.shape != full:
            expr = f"{C.np}.broadcast_to({expr}, {full!r})"
        lines.append(f"{name} = {C.np}.ascontiguousarray({expr}).reshape({(nb,) + v.shape[-2:]!r})")
        ops.append((name, t))
    k = C.fresh("k")

    def one(name, t):
        return f"{C.np}.ascontiguousarray({name}[{k}].T)" if t else f"{name}[{k}]"

    lines += [
        f"{target} = {C.np}.empty({(nb,) + out.shape[-2:]!r}, {C.dtype(out.dtype)})",
        f"for {k} in range({nb}):",
        f"    {target}[{k}] = {C.np}.dot({one(*ops[0])}, {one(*ops[1])})",
        f"{target} = {target}.reshape({out.shape!r})",
    ]
    return lines


def _batch_matmul_vjp(b: Builder, eqn: Eqn, cts, active):
    (ct,) = cts
    x, y = eqn.ins
    ta, tb = eqn.params["transpose_a"], eqn.params["transpose_b"]
    gx = gy = None
    if active[0]:
        gx = (
            b.bind1("batch_matmul", y, ct, transpose_a=tb, transpose_b=True)
            if ta
            else b.bind1("batch_matmul", ct, y, transpose_a=False, transpose_b=not tb)
        )
        gx = sum_to(b, gx, x.shape)
    if active[1]:
        gy = (
            b.bind1("batch_matmul", ct, x, transpose_a=True, transpose_b=ta)
            if tb
            else b.bind1("batch_matmul", x, ct, transpose_a=not ta, transpose_b=False)
        )
        gy = sum_to(b, gy, y.shape)
    return [gx, gy]


def _batch_matmul_jvp(b: Builder, eqn: Eqn, tangents):
    x, y = eqn.ins
    tx, ty = tangents
    terms = []
    if tx is not None:
        terms.append(b.bind1("batch_matmul", tx, y, **eqn.params))
    if ty is not None:
        terms.append(b.bind1("batch_matmul", x, ty, **eqn.params))
    return [terms[0] if len(terms) == 1 else b.bind1("add", *terms)]


_register(
    OpDef(
        "batch_matmul",
        "BatchMatMul",
        "structural",
        2,
        _batch_matmul_abstract,
        emit=_batch_matmul_emit,
        statement=True,
        contiguous=True,
        inexact=True,
        vjp=_batch_matmul_vjp,
        jvp=_batch_matmul_jvp,
        samples=[
            (((2, 2, 3), (2, 3, 4)), dict(transpose_a=False, transpose_b=False)),
            (((2, 3), (3, 3, 2)), dict(transpose_a=False, transpose_b=False)),
            (((2, 1, 3, 2), (3, 4, 3)), dict(transpose_a=True, transpose_b=True)),
            (((2, 2, 3), (4, 3)), dict(transpose_a=False, transpose_b=True)),
        ],
    )
)


# ------------------------------------------------------------- linear algebra
def _square(display: str, a: Aval) -> int:
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ShapeError(f"{display}: the matrix must be square and 2-D, got shape {fmt_shape(a.shape)}")
    if a.dtype.kind != "f":
        raise ArgumentError(f"{display}: the matrix must be a float tensor, got dtype {a.dtype}")
    return a.shape[0]


def _inv_abstract(avals, p):
    (a,) = avals
    _square("MatrixInverse", a)
    return [a]


def _inv_emit(args, eqn: Eqn, C):
    return f"{C.np}.linalg.inv({args[0][0]})", ATOM


def _mm(b: Builder, x: Atom, y: Atom, ta: bool = False, tb: bool = False) -> Atom:
    return b.bind1("matmul", x, y, transpose_a=ta, transpose_b=tb)


def _inv_vjp(b: Builder, eqn: Eqn, cts, active):
    # d(A^-1) = -A^-1 dA A^-1, so the cotangent of A is -A^-T ct A^-T
    (ct,) = cts
    w = eqn.outs[0]
    return [b.bind1("neg", _mm(b, _mm(b, w, ct, ta=True), w, tb=True))]


def _inv_jvp(b: Builder, eqn: Eqn, tangents):
    (t,) = tangents
    if t is None:
        return [None]
    w = eqn.outs[0]
    return [b.bind1("neg", _mm(b, _mm(b, w, t), w))]


def _det_abstract(avals, p):
    (a,) = avals
    _square("MatrixDeterminant", a)
    return [Aval((), a.dtype)]


def _det_emit(args, eqn: Eqn, C):
    return f"{C.dtype(eqn.outs[0].dtype)}({C.np}.linalg.det({args[0][0]}))", ATOM


def _det_vjp(b: Builder, eqn: Eqn, cts, active):
    # d det(A) = det(A) tr(A^-1 dA): the cotangent of A is ct det(A) A^-T
    (ct,) = cts
    a, d = eqn.ins[0], eqn.outs[0]
    inv_t = b.bind1("transpose", b.bind1("matrix_inverse", a), perm=(1, 0))
    return [b.bind1("mul", inv_t, b.bind1("mul", ct, d))]


def _det_jvp(b: Builder, eqn: Eqn, tangents):
    (t,) = tangents
    if t is None:
        return [None]
    a, d = eqn.ins[0], eqn.outs[0]
    inv_t = b.bind1("transpose", b.bind1("matrix_inverse", a), perm=(1, 0))
    tr = b.bind1("reduce_sum", b.bind1("mul", inv_t, t), axes=(0, 1), keepdims=False)
    return [b.bind1("mul", d, tr)]


def _solve_abstract(avals, p):
    a, rhs = avals
    n = _square("Solve", a)
    if rhs.ndim not in (1, 2) or rhs.shape[0] != n:
        raise ShapeError(
            f"Solve: the right-hand side must have shape ({n},) or ({n}, k) for a matrix of shape "
            f"{fmt_shape(a.shape)}, got {fmt_shape(rhs.shape)}"
        )
    if rhs.dtype != a.dtype:
        raise ShapeError(f"Solve: operands have different dtypes {a.dtype} and {rhs.dtype}")
    return [rhs]


def _solve_emit(args, eqn: Eqn, C):
    return f"{C.np}.linalg.solve({args[0][0]}, {args[1][0]})", ATOM


def _as_matrix(b: Builder, v: Atom) -> Atom:
    return v if len(v.shape) == 2 else b.bind1("reshape", v, shape=(v.shape[0], 1))


def _solve_vjp(b: Builder, eqn: Eqn, cts, active):
    # x = A^-1 r: the cotangent of r is A^-T ct, that of A is -(A^-T ct) x^T
    (ct,) = cts
    a, _ = eqn.ins
    x = eqn.outs[0]
    gr = b.bind1("solve", b.bind1("transpose", a, perm=(1, 0)), ct)
    ga = None
    if active[0]:
        ga = b.bind1("neg", _mm(b, _as_matrix(b, gr), _as_matrix(b, x), tb=True))
    return [ga, gr if active[1] else None]


def _solve_jvp(b: Builder, eqn: Eqn, tangents):
    # dx = A^-1 (dr - dA x)
    ta, tr = tangents
    a, _ = eqn.ins
    x = eqn.outs[0]
    rhs = tr
    if ta is not None:
        ax = _mm(b, ta, _as_matrix(b, x))
        if len(x.shape) == 1:
            ax = b.bind1("reshape", ax, shape=x.shape)
        rhs = b.bind1("neg", ax) if rhs is None else b.bind1("sub", rhs, ax)
    return [None if rhs is None else b.bind1("solve", a, rhs)]


_linalg_samples = [(((3, 3),), {}), (((2, 2),), {}), (((1, 1),), {})]
_register(
    OpDef(
        "matrix_inverse",
        "MatrixInverse",
        "structural",
        1,
        _inv_abstract,
        emit=_inv_emit,
        contiguous=True,
        vjp=_inv_vjp,
        jvp=_inv_jvp,
        numpy=("linalg.inv",),
        domain=(0.5, 2.0),
        well_conditioned=True,
        samples=_linalg_samples,
    )
)
_register(
    OpDef(
        "matrix_determinant",
        "MatrixDeterminant",
        "structural",
        1,
        _det_abstract,
        emit=_det_emit,
        vjp=_det_vjp,
        jvp=_det_jvp,
        numpy=("linalg.det",),
        domain=(0.5, 2.0),
        well_conditioned=True,
        samples=_linalg_samples,
    )
)
_register(
    OpDef(
        "solve",
        "Solve",
        "structural",
        2,
        _solve_abstract,
        emit=_solve_emit,
        contiguous=True,
        vjp=_solve_vjp,
        jvp=_solve_jvp,
        numpy=("linalg.solve",),
        domain=(0.5, 2.0),
        well_conditioned=True,
        samples=[(((3, 3), (3,)), {}), (((2, 2), (2, 3)), {}), (((1, 1), (1,)), {})],
    )
)


ELEMENTWISE = [op for op in OPS.values() if op.kind == "elementwise"]
SYMPY_HEADS = {op.sympy_head: op.name for op in ELEMENTWISE if op.sympy_head is not None}
SYMPY_HEADS.update({alias: op.name for op in ELEMENTWISE for alias in op.sympy_aliases})
