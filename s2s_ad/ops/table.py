"""The op table: the one place where each primitive is defined.

Every entry declares its shape/dtype rule, how it prints as numpy source, and how it is
differentiated:

* **elementwise** ops give a scalar SymPy formula; reverse mode (and every higher order) uses
  the partial derivatives SymPy derives from it, so no elementwise derivative is written here;
* **structural** ops (matmul, reductions, reshapes, indexing, ...) give a ``vjp`` rule that
  emits IR, so derivatives of derivatives come for free.

The frontend (``ops.primitives``), the AD modes, the SymPy bridge, the printers and the per-op
tests all read :data:`OPS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import sympy as sp

from ..errors import ShapeError
from ..ir import Atom, Aval, Builder, Eqn, Lit, Shape

# Printing precedences (higher binds tighter).
ATOM, POW, UNARY, MUL, ADD = 100, 80, 70, 60, 50


@dataclass
class OpDef:
    name: str
    display: str  # MindSpore-facing name used in error messages
    kind: str  # "elementwise" | "structural"
    nin: int
    abstract: Callable[[list[Aval], dict], list[Aval]]
    # elementwise -----------------------------------------------------------------------
    formula: Callable[..., sp.Expr] | None = None
    printer: tuple | None = None  # ("call", name) | ("infix", sym, prec) | ("prefix", sym) | ("template", fn)
    sympy_head: Any = None  # SymPy class mapped back to this op by the SymPy bridge
    # structural ------------------------------------------------------------------------
    emit: Callable[..., Any] | None = None  # (args, eqn, ctx) -> (expr, prec) | list of lines
    statement: bool = False  # emit returns statements assigning to a target
    vjp: Callable[..., list] | None = None
    # sample arguments for the generated per-op tests: list of (shapes, params)
    samples: list = field(default_factory=list)
    domain: tuple[float, float] = (-2.0, 2.0)

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
        gives as the derivative of ``sign``) are zero almost everywhere, as in every AD system."""
        return tuple(sp.diff(self.expr, s).replace(sp.DiracDelta, lambda *a: sp.Integer(0)) for s in self.symbols)


OPS: dict[str, OpDef] = {}


def get_op(name: str) -> OpDef:
    return OPS[name]


def _register(op: OpDef) -> OpDef:
    assert op.name not in OPS, op.name
    OPS[op.name] = op
    return op


# ----------------------------------------------------------------------------- shape helpers
def fmt_shape(shape: Shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def broadcast_shapes(display: str, shapes: Sequence[Shape]) -> Shape:
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
class Sigmoid(sp.Function):
    """Logistic function. Its derivative is stated in terms of itself (``s*(1-s)``), which
    SymPy's chain rule then uses: the expanded form ``exp(-x)/(1+exp(-x))**2`` overflows to
    nan in floating point for large negative x."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        s = Sigmoid(self.args[0])
        return s * (1 - s)


class Step(sp.Function):
    """Heaviside step with step(0) = 0 (the derivative of ReLU, as MindSpore defines it)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)


class Relu(sp.Function):
    """max(x, 0)."""

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return Step(self.args[0])


# ----------------------------------------------------------------------------- elementwise ops
def elementwise(
    name: str,
    display: str,
    formula: Callable[..., sp.Expr],
    printer: tuple,
    *,
    nin: int = 1,
    sympy_head: Any = None,
    float_result: bool = False,
    domain: tuple[float, float] = (-2.0, 2.0),
) -> OpDef:
    shapes = [((3,),) * nin, ((2, 3),) * nin]
    if nin == 2:
        shapes += [((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3))]
    else:
        shapes += [((),)]
    return _register(
        OpDef(
            name,
            display,
            "elementwise",
            nin,
            _elementwise_abstract(display, float_result),
            formula=formula,
            printer=printer,
            sympy_head=sympy_head,
            samples=[(s, {}) for s in shapes],
            domain=domain,
        )
    )


def _sigmoid_print(a, lit, np_):
    return f"{lit(1)} / ({lit(1)} + {np_}.exp(-{a}))", MUL


def _relu_print(a, lit, np_):
    return f"{np_}.maximum({a}, {lit(0)})", ATOM


def _step_print(a, lit, np_):
    return f"{np_}.sign({np_}.maximum({a}, {lit(0)}))", ATOM


elementwise("add", "Add", lambda x, y: x + y, ("infix", "+", ADD), nin=2)
elementwise("sub", "Sub", lambda x, y: x - y, ("infix", "-", ADD), nin=2)
elementwise("mul", "Mul", lambda x, y: x * y, ("infix", "*", MUL), nin=2)
elementwise("div", "Div", lambda x, y: x / y, ("infix", "/", MUL), nin=2, float_result=True, domain=(0.5, 2.0))
elementwise("pow", "Pow", lambda x, y: x**y, ("infix", "**", POW), nin=2, domain=(0.5, 2.0))
elementwise("neg", "Neg", lambda x: -x, ("prefix", "-"))
elementwise("square", "Square", lambda x: x**2, ("call", "square"))
elementwise("sqrt", "Sqrt", sp.sqrt, ("call", "sqrt"), float_result=True, domain=(0.5, 2.0))
elementwise("exp", "Exp", sp.exp, ("call", "exp"), sympy_head=sp.exp, float_result=True)
elementwise("log", "Log", sp.log, ("call", "log"), sympy_head=sp.log, float_result=True, domain=(0.5, 2.0))
elementwise("sin", "Sin", sp.sin, ("call", "sin"), sympy_head=sp.sin, float_result=True)
elementwise("cos", "Cos", sp.cos, ("call", "cos"), sympy_head=sp.cos, float_result=True)
elementwise("tan", "Tan", sp.tan, ("call", "tan"), sympy_head=sp.tan, float_result=True, domain=(-1.0, 1.0))
elementwise("sinh", "Sinh", sp.sinh, ("call", "sinh"), sympy_head=sp.sinh, float_result=True)
elementwise("cosh", "Cosh", sp.cosh, ("call", "cosh"), sympy_head=sp.cosh, float_result=True)
elementwise("tanh", "Tanh", sp.tanh, ("call", "tanh"), sympy_head=sp.tanh, float_result=True)
elementwise("atanh", "Atanh", sp.atanh, ("call", "arctanh"), sympy_head=sp.atanh, float_result=True, domain=(-0.8, 0.8))
elementwise("abs", "Abs", sp.Abs, ("call", "abs"), sympy_head=sp.Abs)
elementwise("sign", "Sign", sp.sign, ("call", "sign"), sympy_head=sp.sign)
elementwise("sigmoid", "Sigmoid", Sigmoid, ("template", _sigmoid_print), sympy_head=Sigmoid, float_result=True)
elementwise("relu", "ReLU", Relu, ("template", _relu_print), sympy_head=Relu)
elementwise("step", "Step", Step, ("template", _step_print), sympy_head=Step)


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


def _one(aval: Aval, **kw) -> Callable[[list[Aval], dict], list[Aval]]:
    return lambda avals, params: [aval]


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


_register(
    OpDef(
        "matmul",
        "MatMul",
        "structural",
        2,
        _matmul_abstract,
        emit=_matmul_emit,
        vjp=_matmul_vjp,
        samples=[
            (((2, 3), (3, 4)), dict(transpose_a=False, transpose_b=False)),
            (((3, 2), (3, 4)), dict(transpose_a=True, transpose_b=False)),
            (((2, 3), (4, 3)), dict(transpose_a=False, transpose_b=True)),
            (((3, 2), (4, 3)), dict(transpose_a=True, transpose_b=True)),
        ],
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
        vjp=_reduce_sum_vjp,
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
        vjp=_reduce_mean_vjp,
        samples=_reduce_samples,
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
        vjp=_reshape_vjp,
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
        vjp=_broadcast_vjp,
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
        vjp=_transpose_vjp,
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
        raise ShapeError(
            f"indexing a tensor of shape {fmt_shape(a.shape)} with [{index_str(p['index'])}]: {err}"
        ) from None
    return [Aval(tuple(shape), a.dtype)]


def _getitem_emit(args, eqn, C):
    ((x, prec),) = args
    x = x if prec >= ATOM else f"({x})"
    return f"{x}[{index_str(eqn.params['index'])}]", ATOM


def _getitem_vjp(b, eqn, cts, active):
    return [b.bind1("scatter", cts[0], index=eqn.params["index"], shape=eqn.ins[0].shape)]


def _scatter_abstract(avals, p):
    (a,) = avals
    return [Aval(tuple(p["shape"]), a.dtype)]


def _scatter_emit(target, args, eqn, C):
    ((x, _),) = args
    out = eqn.outs[0]
    return [
        f"{target} = {C.np}.zeros({out.shape!r}, {C.dtype(out.dtype)})",
        f"{target}[{index_str(eqn.params['index'])}] += {x}",
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
        vjp=_getitem_vjp,
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
        statement=True,
        vjp=_scatter_vjp,
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
    x = eqn.ins[0]
    if x.dtype.kind == "b":
        return [None]
    return [cast_to(b, cts[0], x.dtype)]


_register(
    OpDef(
        "cast",
        "Cast",
        "structural",
        1,
        _cast_abstract,
        emit=_cast_emit,
        vjp=_cast_vjp,
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
        vjp=lambda b, eqn, cts, active: [None],
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


_register(OpDef("fill", "Fill", "structural", 0, _fill_abstract, emit=_fill_emit, vjp=lambda b, eqn, cts, active: []))


def fill(b: Builder, shape: Shape, value: float, dtype: np.dtype) -> Atom:
    if shape == ():
        return Lit(value, dtype)
    return b.bind1("fill", shape=tuple(shape), value=value, dtype=np.dtype(dtype))


ELEMENTWISE = [op for op in OPS.values() if op.kind == "elementwise"]
SYMPY_HEADS = {op.sympy_head: op.name for op in ELEMENTWISE if op.sympy_head is not None}
