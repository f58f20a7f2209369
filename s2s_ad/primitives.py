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

from .errors import ArgumentError, ShapeError, TensorIndexError
from .ir import OPS as ir_ops
from .ir import Atom, Aval, Builder, Eqn, Lit, Shape, Var
from .lazy import DeferredNames, lazy_module, resolve

# SymPy is imported when a formula is first differentiated or simplified, not with the table:
# entries name SymPy's functions (``sym.exp``), its C functions (``cfn.expm1``) and the custom
# heads of :mod:`s2s_ad.symbolic_heads` (``heads.Sigmoid``) as :class:`~s2s_ad.lazy.Deferred`
# references; code that runs at differentiation time uses ``sp``, imported on first use.
sp = lazy_module("sympy")
sym = DeferredNames("sympy")
cfn = DeferredNames("sympy.codegen.cfunctions")
heads = DeferredNames("s2s_ad.symbolic_heads")

# The namespace of scipy.special's functions in generated numpy code (``sc.erf(x)``).
SPECIAL_NS = "sc"

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
    # ``function`` is scipy.special's (numpy has none: ``erf``): numpy code calls it as
    # ``sc.NAME`` (:data:`SPECIAL_NS`, scipy.special), Numba code as ``vm.NAME`` (cpumath's kernel)
    special: bool = False
    numpy: tuple[str, ...] = ()  # NumPy functions (``np.NAME`` on traced values) that trace to this op
    # properties the passes read -----------------------------------------------------------
    view: bool = False  # numpy's result may share memory with an input (runtime copies such outputs)
    contiguous: bool = False  # numpy's result is C-contiguous (every elementwise result is)
    shape_only: bool = False  # of a constant fill, a fill of the same value (opt.fold_fills)
    # folding it is not IEEE-exact (a sum or mean of n copies of v, a matmul with zeros and an inf):
    # opt.fold_fills folds it in derivative code only, never in the user's own equations
    inexact: bool = False
    # (b, eqn, made) -> Atom | None: a cheaper equivalent of a derivative equation, bound in
    # ``b``, given ``made`` (variable -> the equation that made it); applied by opt.lean_products
    rewrite: Callable[..., Any] | None = None
    # a product of its two inputs, linear in each with the other fixed (its params too):
    # opt.factor_products writes a sum of such products that share an input as one product
    bilinear: bool = False
    # (b, eqn, elems) -> list of element arrays | None: the op on arrays of few elements,
    # computed element by element on 0-d values (s2s_ad.scalarise, which documents the form);
    # elementwise ops take :func:`elementwise_scalar` unless they give their own
    scalar: Callable[..., Any] | None = None
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
    # batching (vmap, :mod:`s2s_ad.batching`) ----------------------------------------------
    # (b, eqn, args, dims) -> (outs, out_dims) | None: ``eqn`` with its inputs ``args`` batched
    # along ``dims`` (an axis, or None for a value shared by the batch); ``None`` (or no rule)
    # maps the equation over the batch with a loop instead
    batch: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if self.function is not None:
            if self.printer is None:
                self.printer = ("call", self.function)
            if self.cuda is None:
                self.cuda = getattr(math, self.function, None)
        if self.kind == "elementwise":
            self.contiguous = self.pointwise = True
            self.cuda_kernel = "pointwise"
            if self.scalar is None:
                self.scalar = elementwise_scalar

    def host_function(self) -> Callable:
        """The function ``function`` names, as numpy code calls it: numpy's, or scipy.special's
        for a ``special`` op."""
        assert self.function is not None
        if self.special:
            import scipy.special  # only programs that use a special function need scipy

            return getattr(scipy.special, self.function)
        return getattr(np, self.function)

    @cached_property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(sp.Symbol(f"a{i}", real=True) for i in range(self.nin))

    @cached_property
    def expr(self) -> sp.Expr:
        assert self.formula is not None
        return resolve(self.formula)(*self.symbols)

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
        if op.special and ns == "np":
            ns = SPECIAL_NS  # numpy has no such function: scipy.special's
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


# ----------------------------------------------------------------------------- batching helpers
# The batching rules (``OpDef.batch``) of the ops below. A rule gets the builder, the original
# equation, the batched inputs and their batch dimensions, and returns the outputs and theirs.
def move_batch_axis(b: Builder, x: Atom, src: int, dst: int) -> Atom:
    """``x`` with its axis ``src`` moved to position ``dst`` (a transpose; nothing when equal)."""
    if src == dst:
        return x
    perm = [i for i in range(len(x.shape)) if i != src]
    perm.insert(dst, src)
    return b.bind1("transpose", x, perm=tuple(perm))


def broadcast_batched(b: Builder, x: Atom, size: int) -> Atom:
    """An unbatched ``x`` repeated ``size`` times along a new leading batch axis."""
    if isinstance(x, Lit):
        return fill(b, (size,), x.value, x.dtype)
    return b.bind1("broadcast_to", x, shape=(size, *x.shape))


def to_batch_dim(b: Builder, x: Atom, d: int | None, want: int, size: int) -> Atom:
    """``x`` (batch dimension ``d``, ``None`` for unbatched) with its batch axis at ``want``:
    moved there, or, unbatched, broadcast over a new axis of length ``size`` there."""
    if d is None:
        x, d = broadcast_batched(b, x, size), 0
    return move_batch_axis(b, x, d, want)


def batch_front(b: Builder, x: Atom, d: int | None, rank: int | None = None) -> Atom:
    """A batched ``x`` with its batch axis first, and, given ``rank`` (a per-example rank),
    axes of length 1 after it so that its per-example part has that rank (numpy broadcasting
    then lines up with unbatched operands of rank up to ``rank``). An unbatched ``x`` as is."""
    if d is None:
        return x
    x = move_batch_axis(b, x, d, 0)
    if rank is not None and len(x.shape) - 1 < rank:
        x = b.bind1("reshape", x, shape=(x.shape[0], *([1] * (rank - len(x.shape) + 1)), *x.shape[1:]))
    return x


def batch_broadcasting(b: Builder, eqn: Eqn, args: list, dims: list) -> tuple[list, list]:
    """Batching rule of an op that broadcasts its inputs like numpy (elementwise ops,
    comparisons): the batched inputs get their batch axis first and are padded to the
    output's rank; unbatched inputs broadcast against them unchanged."""
    rank = len(eqn.outs[0].shape)
    ins = [batch_front(b, a, d, rank) for a, d in zip(args, dims)]
    return b.bind(eqn.op, ins, **eqn.params), [0] * len(eqn.outs)


def batch_same_dim(b: Builder, eqn: Eqn, args: list, dims: list) -> tuple[list, list]:
    """Batching rule of a one-input op that acts on each element alone (cast, stop_gradient):
    the op on the batched input, batch dimension unchanged."""
    return b.bind(eqn.op, args, **eqn.params), list(dims)


def batch_axis_param(key: str):
    """Batching rule of a one-input op with an axis parameter ``key`` (cumsum, argmax): the
    batch axis first, the op's axis one further on."""

    def rule(b: Builder, eqn: Eqn, args: list, dims: list) -> tuple[list, list]:
        (x,), (d,) = args, dims
        nd = len(eqn.ins[0].shape)
        p = dict(eqn.params)
        p[key] = p[key] % nd + 1
        return b.bind(eqn.op, [batch_front(b, x, d)], **p), [0]

    return rule


def batch_leading_n(positions: tuple[int, ...]):
    """Batching rule of an NCHW op whose inputs at ``positions`` carry the examples axis N
    (pooling, a convolution batched in its input): the batch axis is merged into N, and split
    off the output's N again. ``None`` (the loop) where another input is batched."""

    def rule(b: Builder, eqn: Eqn, args: list, dims: list):
        if any(d is not None for k, d in enumerate(dims) if k not in positions):
            return None
        size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
        ins = []
        for k, (a, d) in enumerate(zip(args, dims)):
            if k in positions:
                a = broadcast_batched(b, a, size) if d is None else batch_front(b, a, d)
                a = b.bind1("reshape", a, shape=(size * a.shape[1], *a.shape[2:]))
            ins.append(a)
        p = dict(eqn.params)
        out = b.bind1(eqn.op, *ins, **p)
        o = eqn.outs[0].shape
        return [b.bind1("reshape", out, shape=(size, *o))], [0]

    return rule


# ----------------------------------------------------------------------------- elementwise ops
# ----------------------------------------------------------------------------- scalar rules
# The ``scalar`` rules of the table (see s2s_ad.scalarise): each takes the builder, the equation
# and, per input, an object array of the input's shape holding 0-d atoms (its elements), and gives
# such an array per output, binding 0-d equations in ``b``; ``None`` where it does not apply.
def as_elements(x: Any) -> np.ndarray:
    """``x`` (an atom or an object array of atoms) as an object array."""
    if isinstance(x, np.ndarray):
        return x
    out = np.empty((), object)
    out[()] = x
    return out


def _is_zero(a: Atom) -> bool:
    return isinstance(a, Lit) and a.value == 0


def elementwise_scalar(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray]:
    """An elementwise op (or a comparison) applied to each element, with numpy broadcasting.
    An ``add`` of a literal zero is the other operand (the additions of the ``zeros`` a
    ``scatter`` writes first; numpy's ``0.0 + -0.0`` is ``0.0``, the only difference)."""
    out = eqn.outs[0]
    parts = np.broadcast_arrays(*xs) if len(xs) > 1 else xs
    res = np.empty(out.shape, object)
    for idx in np.ndindex(*out.shape):
        ins = [p[idx] for p in parts]
        res[idx] = _fold_zero(b, eqn, ins) or b.bind1(eqn.op, *ins, **eqn.params)
    return [res]


def _fold_zero(b: Builder, eqn: Eqn, ins: list[Atom]) -> Atom | None:
    """The result of ``eqn`` on the 0-d ``ins`` where a literal zero decides it: ``0 + x`` is
    ``x`` (numpy's ``0.0 + -0.0`` is ``0.0``, the only difference); in derivative code (not
    the user's own equations, which keep numpy's IEEE results) also ``0 * x``, ``x - 0``,
    ``0 - x``, ``0 / x`` and ``-0`` (SymPy folds those in derivative code too)."""
    out = eqn.outs[0]
    zero = [_is_zero(a) for a in ins]
    if not any(zero) or out.dtype.kind not in "fiu":
        return None
    op = eqn.op
    other = [a for a, z in zip(ins, zero) if not z]
    if op == "add":
        if not other:
            return Lit(0, out.dtype)
        if len(other) == 1 and other[0].dtype == out.dtype:
            return other[0]
        return None
    if eqn.primal:
        return None
    if op == "mul" or (op in ("div", "neg") and zero[0]):
        return Lit(0, out.dtype)
    if op == "sub":
        if zero[1] and ins[0].dtype == out.dtype:
            return ins[0]
        if zero[0] and not zero[1] and ins[1].dtype == out.dtype:
            return b.bind1("neg", ins[1])
        if all(zero):
            return Lit(0, out.dtype)
    return None


def _matmul_scalar(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray]:
    x, y = xs
    x = x.T if eqn.params["transpose_a"] else x
    y = y.T if eqn.params["transpose_b"] else y
    out = eqn.outs[0]
    res = np.empty(out.shape, object)
    for i, j in np.ndindex(*out.shape):
        acc: Atom | None = None
        for k in range(x.shape[1]):
            t = b.bind1("mul", x[i, k], y[k, j])
            acc = t if acc is None else b.bind1("add", acc, t)
        res[i, j] = Lit(0, out.dtype) if acc is None else acc
    return [res]


def _reduce_scalar(combine: str, mean: bool = False):
    """Reductions as chains of ``combine`` (``add``, ``maximum``, ``minimum``) in index order;
    a mean divides the sum by the count."""

    def rule(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray] | None:
        (x,) = xs
        out = eqn.outs[0]
        axes = eqn.params["axes"]
        n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
        if (mean and out.dtype.kind != "f") or (n == 0 and combine != "add"):
            return None
        kept = [a for a in range(x.ndim) if a not in axes]
        moved = np.transpose(x, kept + list(axes)).reshape(tuple(x.shape[a] for a in kept) + (n,))
        res = np.empty(moved.shape[:-1], object)
        for idx in np.ndindex(*res.shape):
            acc: Atom | None = None
            for a in moved[idx]:
                acc = a if acc is None else b.bind1(combine, acc, a)
            if acc is None:
                acc = Lit(0, out.dtype)
            if mean:
                acc = b.bind1("div", acc, Lit(n, out.dtype))
            res[idx] = acc
        return [res.reshape(out.shape)]

    return rule


def _reshape_scalar(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [xs[0].reshape(eqn.outs[0].shape)]


def _broadcast_scalar(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [np.broadcast_to(xs[0], eqn.outs[0].shape)]


def _transpose_scalar(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [xs[0].transpose(tuple(eqn.params["perm"]))]


def _view_index(index: tuple) -> tuple:
    """``index`` as numpy's index that always gives a view (an array, 0-d for an element)."""
    py = as_py_index(index)
    return py if Ellipsis in py else (*py, Ellipsis)


def _getitem_scalar(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [xs[0][_view_index(eqn.params["index"])]]


def _scatter_scalar(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray]:
    out = eqn.outs[0]
    res = np.full(out.shape, Lit(0, out.dtype), object)
    res[_view_index(eqn.params["index"])][...] = xs[0]  # basic indexing: no position written twice
    return [res]


def _cast_scalar(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray]:
    res = np.empty(xs[0].shape, object)
    for idx in np.ndindex(*res.shape):
        res[idx] = cast_to(b, xs[0][idx], eqn.params["dtype"])
    return [res]


def _identity_scalar(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray]:
    return [xs[0]]


def _fill_scalar(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray]:
    p = eqn.params
    return [np.full(tuple(p["shape"]), Lit(p["value"], p["dtype"]), object)]


def elementwise(
    name: str,
    display: str,
    formula: Callable[..., sp.Expr],
    printer: tuple | None = None,
    *,
    function: str | None = None,
    cuda: Callable | None = None,
    special: bool = False,
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
            special=special,
            numpy=tuple(numpy.split()),
            sympy_head=sympy_head,
            sympy_aliases=sympy_aliases,
            bool_inputs=bool_inputs,
            derivative_only=derivative_only,
            samples=[(s, {}) for s in _broadcast_samples(nin)],
            domain=domain,
            distinct_inputs=distinct_inputs,
            batch=batch_broadcasting,
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
elementwise(
    "pow", "Pow", heads.Power, ("template", _pow_print), nin=2, numpy="power", sympy_head=heads.Power, domain=(0.5, 2.0)
)
elementwise("neg", "Neg", lambda x: -x, ("prefix", "-"), numpy="negative")
elementwise("square", "Square", lambda x: x**2, function="square", numpy="square")
elementwise("sqrt", "Sqrt", sym.sqrt, function="sqrt", numpy="sqrt", float_result=True, domain=(0.5, 2.0))
elementwise("exp", "Exp", sym.exp, function="exp", numpy="exp", sympy_head=sym.exp, float_result=True)
elementwise("expm1", "Expm1", cfn.expm1, function="expm1", numpy="expm1", sympy_head=cfn.expm1, float_result=True)
elementwise(
    "log", "Log", sym.log, function="log", numpy="log", sympy_head=sym.log, float_result=True, domain=(0.5, 2.0)
)
elementwise(
    "log1p",
    "Log1p",
    cfn.log1p,
    function="log1p",
    numpy="log1p",
    sympy_head=cfn.log1p,
    float_result=True,
    domain=(-0.5, 2.0),
)
elementwise("sin", "Sin", sym.sin, function="sin", numpy="sin", sympy_head=sym.sin, float_result=True)
elementwise("cos", "Cos", sym.cos, function="cos", numpy="cos", sympy_head=sym.cos, float_result=True)
elementwise(
    "tan", "Tan", sym.tan, function="tan", numpy="tan", sympy_head=sym.tan, float_result=True, domain=(-1.0, 1.0)
)
elementwise("sinh", "Sinh", sym.sinh, function="sinh", numpy="sinh", sympy_head=sym.sinh, float_result=True)
elementwise("cosh", "Cosh", sym.cosh, function="cosh", numpy="cosh", sympy_head=sym.cosh, float_result=True)
elementwise("tanh", "Tanh", sym.tanh, function="tanh", numpy="tanh", sympy_head=sym.tanh, float_result=True)
elementwise(
    "atanh",
    "Atanh",
    sym.atanh,
    function="arctanh",
    cuda=math.atanh,
    numpy="arctanh",
    sympy_head=sym.atanh,
    float_result=True,
    domain=(-0.8, 0.8),
)
elementwise(
    "abs", "Abs", heads.Abs, function="abs", numpy="abs absolute", sympy_head=heads.Abs, sympy_aliases=(sym.Abs,)
)
elementwise(
    "sign",
    "Sign",
    heads.Sign,
    ("template", _sign_print),
    function="sign",
    numpy="sign",
    sympy_head=heads.Sign,
    sympy_aliases=(sym.sign,),
)
elementwise(
    "sigmoid", "Sigmoid", heads.Sigmoid, ("template", _sigmoid_print), sympy_head=heads.Sigmoid, float_result=True
)
elementwise("relu", "ReLU", heads.Relu, ("template", _relu_print), sympy_head=heads.Relu)
elementwise("step", "Step", heads.Step, ("shaped_template", _step_print), sympy_head=heads.Step, derivative_only=True)
elementwise(
    "log_or_zero",
    "LogOrZero",
    heads.LogOrZero,
    ("shaped_template", _log_or_zero_print),
    sympy_head=heads.LogOrZero,
    float_result=True,
    domain=(0.5, 2.0),
    derivative_only=True,
)
elementwise(
    "at_least",
    "AtLeast",
    heads.AtLeast,
    ("shaped_template", _at_least_print),
    nin=2,
    sympy_head=heads.AtLeast,
    distinct_inputs=True,
    derivative_only=True,
)
elementwise(
    "maximum",
    "Maximum",
    heads.Maximum,
    ("shaped_template", _extremum_print(">", "maximum")),
    function="maximum",
    numpy="maximum",
    nin=2,
    sympy_head=heads.Maximum,
    distinct_inputs=True,
)
elementwise(
    "minimum",
    "Minimum",
    heads.Minimum,
    ("shaped_template", _extremum_print("<", "minimum")),
    function="minimum",
    numpy="minimum",
    nin=2,
    sympy_head=heads.Minimum,
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
    heads.Select,
    ("shaped_template", _select_print),
    function="where",
    nin=3,
    sympy_head=heads.Select,
    abstract=_select_abstract,
    bool_inputs=(0,),
)


# ---- elementwise ops (issue 15)
def _softplus_src(a: str, lit, np_) -> str:
    # log(1 + exp(x)) as log1p(exp(-|x|)) + max(x, 0): exact for large |x| (no overflow)
    return f"{np_}.log1p({np_}.exp(-{np_}.abs({a}))) + {np_}.maximum({a}, {lit(0)})"


def _softplus_formula(x):
    return heads.Softplus(x)


def _softplus_print(a, lit, np_):
    return _softplus_src(a, lit, np_), ADD


def _silu_print(a, lit, np_):
    return f"{a} / ({lit(1)} + {np_}.exp(-{a}))", MUL


def _mish_print(a, lit, np_):
    return f"{a} * {np_}.tanh({_softplus_src(a, lit, np_)})", MUL


def _fast_gelu_print(a, lit, np_):
    # MindSpore's FastGeLU: x / (1 + exp(-1.702 |x|)) * exp(0.851 (x - |x|))
    return (
        f"{a} / ({lit(1)} + {np_}.exp({lit(-1.702)} * {np_}.abs({a}))) * {np_}.exp({lit(0.851)} * ({a} - {np_}.abs({a})))",
        MUL,
    )


for _name, _display, _formula, _fn, _cuda, _domain in [
    ("atan", "Atan", sym.atan, "arctan", math.atan, (-2.0, 2.0)),
    ("asin", "Asin", sym.asin, "arcsin", math.asin, (-0.8, 0.8)),
    ("acos", "ACos", sym.acos, "arccos", math.acos, (-0.8, 0.8)),
    ("asinh", "Asinh", sym.asinh, "arcsinh", math.asinh, (-2.0, 2.0)),
    ("acosh", "Acosh", sym.acosh, "arccosh", math.acosh, (1.2, 3.0)),
]:
    elementwise(
        _name,
        _display,
        _formula,
        function=_fn,
        cuda=_cuda,
        numpy=_fn,
        sympy_head=_formula,
        float_result=True,
        domain=_domain,
    )
for _name, _display, _head in [("erf", "Erf", sym.erf), ("erfc", "Erfc", sym.erfc)]:
    # numpy has no erf: numpy code calls scipy.special's, Numba and CUDA code math.erf/erfc
    elementwise(_name, _display, _head, function=_name, special=True, sympy_head=_head, float_result=True)
elementwise(
    "atan2",
    "Atan2",
    sym.atan2,
    function="arctan2",
    cuda=math.atan2,
    numpy="arctan2",
    nin=2,
    sympy_head=sym.atan2,
    float_result=True,
)
elementwise(
    "logaddexp",
    "LogAddExp",
    heads.LogAddExp,
    function="logaddexp",
    numpy="logaddexp",
    nin=2,
    sympy_head=heads.LogAddExp,
    float_result=True,
)
elementwise(
    "softplus",
    "Softplus",
    _softplus_formula,
    ("template", _softplus_print),
    sympy_head=heads.Softplus,
    float_result=True,
)
elementwise("silu", "SiLU", lambda x: x * heads.Sigmoid(x), ("template", _silu_print), float_result=True)
elementwise("mish", "Mish", lambda x: x * sp.tanh(_softplus_formula(x)), ("template", _mish_print), float_result=True)
elementwise(
    "fast_gelu",
    "FastGeLU",
    lambda x: (
        x / (1 + sp.exp(-sp.Rational(1702, 1000) * heads.Abs(x))) * sp.exp(sp.Rational(851, 1000) * (x - heads.Abs(x)))
    ),
    ("template", _fast_gelu_print),
    float_result=True,
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
    return f"{C.np}.dot({C.blas_operand(x)}, {C.blas_operand(y)})", ATOM


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


_FULL = ("slice", None, None, None)


def _matmul_batch(b: Builder, eqn: Eqn, args, dims):
    # One operand batched: one product with the batch folded into its rows (x) or columns
    # (y). Both batched: outer products and matrix-vector products are elementwise products
    # (and a sum); other products one batch_matmul.
    (x, y), (dx, dy), p = args, dims, eqn.params
    (m, n), k = eqn.outs[0].shape, eqn.ins[0].shape[0 if p["transpose_a"] else 1]
    if dy is None:  # x[i] @ y for each i: the rows of all x[i] in one matrix
        x = batch_front(b, x, dx)
        if p["transpose_a"]:
            x = b.bind1("transpose", x, perm=(0, 2, 1))
        size = x.shape[0]
        x = b.bind1("reshape", x, shape=(size * m, k))
        out = b.bind1("matmul", x, y, transpose_a=False, transpose_b=p["transpose_b"])
        return [b.bind1("reshape", out, shape=(size, m, n))], [0]
    if dx is None:  # x @ y[i] for each i: the columns of all y[i] in one matrix
        y = batch_front(b, y, dy)
        size = y.shape[0]
        if n == 1 and not p["transpose_b"]:  # matrix-vector products: the vectors as columns
            y = b.bind1("transpose", b.bind1("reshape", y, shape=(size, k)), perm=(1, 0))
            out = b.bind1("matmul", x, y, **p)
            return [b.bind1("reshape", b.bind1("transpose", out, perm=(1, 0)), shape=(size, m, 1))], [0]
        if p["transpose_b"]:  # y[i] is (n, k): stack the rows
            y = b.bind1("reshape", y, shape=(size * n, k))
        else:  # y[i] is (k, n): the batch between k and n
            y = b.bind1("reshape", b.bind1("transpose", y, perm=(1, 0, 2)), shape=(k, size * n))
        out = b.bind1("matmul", x, y, **p)
        return [b.bind1("reshape", out, shape=(m, size, n))], [1]
    x, y = batch_front(b, x, dx), batch_front(b, y, dy)
    size = x.shape[0]
    if k == 1:  # outer products: one broadcasting multiplication
        col = b.bind1("reshape", x, shape=(size, m, 1))
        row = b.bind1("reshape", y, shape=(size, 1, n))
        return [b.bind1("mul", col, row)], [0]
    if m == 1 or n == 1:  # vector-matrix or matrix-vector products: multiply and sum over k
        if m == 1:  # out[i, 0, :] = sum_k x[i, k] op(y)[i, k, :]
            vec = b.bind1("reshape", x, shape=(size, k, 1))
            mat = b.bind1("transpose", y, perm=(0, 2, 1)) if p["transpose_b"] else y  # (size, k, n)
            prod = b.bind1("reduce_sum", b.bind1("mul", vec, mat), axes=(1,), keepdims=False)
            return [b.bind1("reshape", prod, shape=(size, 1, n))], [0]
        vec = b.bind1("reshape", y, shape=(size, 1, k))
        mat = b.bind1("transpose", x, perm=(0, 2, 1)) if p["transpose_a"] else x  # (size, m, k)
        prod = b.bind1("reduce_sum", b.bind1("mul", mat, vec), axes=(2,), keepdims=False)
        return [b.bind1("reshape", prod, shape=(size, m, 1))], [0]
    return [b.bind1("batch_matmul", x, y, **p)], [0]


def _line(made: dict, a: Atom) -> tuple[str, int, Atom] | None:
    """``("row", j, v)`` when 2-D ``a`` is zero but for its row ``j``, which is ``v`` (any
    shape of that row's size), ``("col", j, v)`` for a column; else ``None``. Sees scatters
    into one row or column, and reshapes of a vector zero but for one element."""
    e = made.get(a) if isinstance(a, Var) else None
    if e is None or len(a.shape) != 2:
        return None
    if e.op == "scatter":
        index = e.params["index"]
        if len(index) in (1, 2) and isinstance(index[0], int) and (len(index) == 1 or index[1] == _FULL):
            return ("row", index[0] % a.shape[0], e.ins[0])
        if len(index) == 2 and index[0] == _FULL and isinstance(index[1], int):
            return ("col", index[1] % a.shape[1], e.ins[0])
    elif e.op == "reshape" and 1 in a.shape:
        inner = made.get(e.ins[0]) if isinstance(e.ins[0], Var) else None
        if inner is not None and inner.op == "scatter" and len(e.ins[0].shape) == 1:
            index = inner.params["index"]
            if len(index) == 1 and isinstance(index[0], int):
                j = index[0] % e.ins[0].shape[0]
                return ("row" if a.shape[1] == 1 else "col", j, inner.ins[0])
    return None


# the marker :func:`s2s_ad.opt.lean_products` gives, in ``made``, a constant whose elements in
# row-major order are those of an identity matrix (``params["n"]`` its size): the basis of a
# batched Jacobian sweep
IDENTITY = "identity"


def identity_size(made: dict, a: Atom) -> int | None:
    """``n`` when ``a``'s elements in row-major order are those of ``eye(n)``: an identity
    constant (:data:`IDENTITY`), a reshape of one, or the transpose of a square one."""
    e = made.get(a) if isinstance(a, Var) else None
    if e is None:
        return None
    if e.op == IDENTITY:
        return e.params["n"]
    if e.op == "reshape":
        return identity_size(made, e.ins[0])
    if e.op == "transpose" and len(a.shape) == 2 and a.shape[0] == a.shape[1]:
        return identity_size(made, e.ins[0])
    return None


def _is_eye(made: dict, a: Atom) -> bool:
    """Whether ``a`` is a square 2-D identity matrix."""
    return len(a.shape) == 2 and a.shape[0] == a.shape[1] and identity_size(made, a) == a.shape[0]


def _transposed(b: Builder, a: Atom, t: bool) -> Atom:
    """``a`` with its last two axes swapped when ``t``."""
    if not t:
        return a
    perm = tuple(range(len(a.shape) - 2)) + (len(a.shape) - 1, len(a.shape) - 2)
    return b.bind1("transpose", a, perm=perm)


def _identity_product(b: Builder, eqn: Eqn, made: dict) -> Atom | None:
    """A matrix product (``matmul``, ``batch_matmul``) with a 2-D identity factor as the other
    factor (transposed as the product reads it, broadcast to the product's shape)."""
    x, y = eqn.ins
    out = eqn.outs[0]
    for eye, other, t in ((x, y, eqn.params["transpose_b"]), (y, x, eqn.params["transpose_a"])):
        if _is_eye(made, eye):
            r = _transposed(b, other, t)
            return r if r.shape == out.shape else broadcast_to(b, r, out.shape)
    return None


def _vector(b: Builder, v: Atom, shape: Shape) -> Atom:
    if isinstance(v, Lit):
        return fill(b, shape, float(v.value), v.dtype) if shape != () else v
    return v if v.shape == tuple(shape) else b.bind1("reshape", v, shape=tuple(shape))


def _matmul_rewrite(b: Builder, eqn: Eqn, made: dict) -> Atom | None:
    """A product with a constant fill or with a matrix that is zero but for one row or column
    (the one-hot seeds and scatters of derivative code) as a reduction, a row or column
    selection, an outer product or a vector product: ``ones((n, m)) @ B`` is the broadcast of
    B's column sums, ``A @ e_j`` column j of A, a one-column ``v e_j^T @ B`` the outer product
    ``v B[j]``, a one-row ``e_j v^T @ B`` the row ``v @ B`` put into row j; a product with an
    identity matrix (the basis of a Jacobian sweep) the other factor."""
    eye = _identity_product(b, eqn, made)
    if eye is not None:
        return eye
    x, y = eqn.ins
    ta, tb = eqn.params["transpose_a"], eqn.params["transpose_b"]
    (n, p), dt = eqn.outs[0].shape, eqn.outs[0].dtype

    def const(a: Atom) -> float | None:
        e = made.get(a) if isinstance(a, Var) else None
        return float(e.params["value"]) if e is not None and e.op == "fill" else None

    def scaled(v: Atom, c: float) -> Atom:
        return v if c == 1.0 else b.bind1("mul", v, Lit(c, dt))

    def row_of_b(j: int) -> Atom:  # op(y)[j, :], shape (p,)
        return b.bind1("getitem", y, index=(_FULL, j) if tb else (j,))

    def col_of_a(j: int) -> Atom:  # op(x)[:, j], shape (n,)
        return b.bind1("getitem", x, index=(j,) if ta else (_FULL, j))

    def outer(u: Atom, v: Atom) -> Atom:
        return b.bind1("mul", _vector(b, u, (n, 1)), _vector(b, v, (1, p)))

    swap = {"row": "col", "col": "row"}
    c = const(x)
    if c is not None:
        s = b.bind1("reduce_sum", y, axes=(1,) if tb else (0,), keepdims=False)
        return broadcast_to(b, scaled(s, c), (n, p))
    c = const(y)
    if c is not None:
        s = b.bind1("reduce_sum", x, axes=(0,) if ta else (1,), keepdims=True if not ta else False)
        return broadcast_to(b, _vector(b, scaled(s, c), (n, 1)), (n, p))
    line = _line(made, x)
    if line is not None:
        kind, j, v = line
        kind = swap[kind] if ta else kind
        m = x.shape[0] if ta else x.shape[1]
        if kind == "col":  # op(x) = v e_j^T
            return outer(v, row_of_b(j))
        r = b.bind1("matmul", _vector(b, v, (1, m)), y, transpose_a=False, transpose_b=tb)  # op(x) = e_j v^T
        return b.bind1("scatter", _vector(b, r, (p,)), index=(j,), shape=(n, p))
    line = _line(made, y)
    if line is not None:
        kind, j, v = line
        kind = swap[kind] if tb else kind
        m = y.shape[1] if tb else y.shape[0]
        if kind == "row":  # op(y) = e_j v^T
            return outer(col_of_a(j), v)
        r = b.bind1("matmul", x, _vector(b, v, (m, 1)), transpose_a=ta, transpose_b=False)  # op(y) = v e_j^T
        return b.bind1("scatter", _vector(b, r, (n,)), index=(_FULL, j), shape=(n, p))
    return None


_register(
    OpDef(
        "matmul",
        "MatMul",
        "structural",
        2,
        _matmul_abstract,
        emit=_matmul_emit,
        scalar=_matmul_scalar,
        contiguous=True,
        inexact=True,
        cuda_kernel="matmul",
        rewrite=_matmul_rewrite,
        bilinear=True,
        vjp=_matmul_vjp,
        jvp=_matmul_jvp,
        batch=_matmul_batch,
        samples=[
            (((2, 3), (3, 4)), dict(transpose_a=False, transpose_b=False)),
            (((3, 2), (3, 4)), dict(transpose_a=True, transpose_b=False)),
            (((2, 3), (4, 3)), dict(transpose_a=False, transpose_b=True)),
            (((3, 2), (4, 3)), dict(transpose_a=True, transpose_b=True)),
            # (an outer product, a vector-matrix and a matrix-vector product)
            (((3, 1), (1, 4)), dict(transpose_a=False, transpose_b=False)),
            (((3, 1), (3, 4)), dict(transpose_a=True, transpose_b=False)),
            (((2, 3), (1, 3)), dict(transpose_a=False, transpose_b=True)),
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
            scalar=elementwise_scalar,
            pointwise=True,
            cuda_kernel="pointwise",
            vjp=lambda b, eqn, cts, active: [None, None],
            jvp=no_jvp,
            batch=batch_broadcasting,
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


def _reduce_batch(b: Builder, eqn: Eqn, args, dims):
    p = dict(eqn.params, axes=tuple(a + 1 for a in eqn.params["axes"]))
    return [b.bind1(eqn.op, batch_front(b, args[0], dims[0]), **p)], [0]


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
        scalar=_reduce_scalar("add"),
        contiguous=True,
        inexact=True,
        fused_reduction=True,
        cuda_kernel="reduce",
        vjp=_reduce_sum_vjp,
        jvp=linear_jvp,
        batch=_reduce_batch,
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
        scalar=_reduce_scalar("add", mean=True),
        contiguous=True,
        shape_only=True,
        inexact=True,
        fused_reduction=True,
        cuda_kernel="reduce",
        vjp=_reduce_mean_vjp,
        jvp=linear_jvp,
        batch=_reduce_batch,
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
            scalar=_reduce_scalar(_ufunc),
            shape_only=True,
            cuda_kernel="reduce",
            statement=True,
            vjp=_reduce_extremum_vjp,
            jvp=_reduce_extremum_jvp,
            batch=_reduce_batch,
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


def _reshape_batch(b: Builder, eqn: Eqn, args, dims):
    x = batch_front(b, args[0], dims[0])
    return [b.bind1("reshape", x, shape=(x.shape[0], *eqn.params["shape"]))], [0]


_register(
    OpDef(
        "reshape",
        "Reshape",
        "structural",
        1,
        _reshape_abstract,
        emit=_reshape_emit,
        scalar=_reshape_scalar,
        view=True,
        contiguous=True,  # (of a contiguous copy where the input is not contiguous)
        shape_only=True,
        cuda_kernel="alias",
        vjp=_reshape_vjp,
        jvp=linear_jvp,
        batch=_reshape_batch,
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


def _broadcast_batch(b: Builder, eqn: Eqn, args, dims):
    shape = tuple(eqn.params["shape"])
    x = batch_front(b, args[0], dims[0], len(shape))
    return [b.bind1("broadcast_to", x, shape=(x.shape[0], *shape))], [0]


_register(
    OpDef(
        "broadcast_to",
        "BroadcastTo",
        "structural",
        1,
        _broadcast_abstract,
        emit=_broadcast_emit,
        scalar=_broadcast_scalar,
        view=True,
        shape_only=True,
        pointwise=True,
        cuda_kernel="pointwise",
        vjp=_broadcast_vjp,
        jvp=linear_jvp,
        batch=_broadcast_batch,
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


def _transpose_batch(b: Builder, eqn: Eqn, args, dims):
    perm = (0, *(int(i) + 1 for i in eqn.params["perm"]))
    return [b.bind1("transpose", batch_front(b, args[0], dims[0]), perm=perm)], [0]


_register(
    OpDef(
        "transpose",
        "Transpose",
        "structural",
        1,
        _transpose_abstract,
        emit=_transpose_emit,
        scalar=_transpose_scalar,
        view=True,
        shape_only=True,
        cuda_kernel="gather",
        vjp=_transpose_vjp,
        jvp=linear_jvp,
        batch=_transpose_batch,
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


def _scatter_rewrite(b: Builder, eqn: Eqn, made: dict) -> Atom | None:
    """A scatter that fills its whole output (full slices, and integers on axes of length 1)
    is a reshape: no zeros to write first."""
    (x,) = eqn.ins
    out = eqn.outs[0]
    if isinstance(x, Lit) or x.aval.size != out.aval.size or out.shape == ():
        return None
    index = spelled_out(eqn.params["index"], len(out.shape))
    if len(index) != len(out.shape):
        return None
    for i, d in zip(index, out.shape):
        if not (i == _FULL or (isinstance(i, int) and d == 1)):
            return None
    return b.bind1("reshape", x, shape=out.shape)


def _scatter_vjp(b, eqn, cts, active):
    return [b.bind1("getitem", cts[0], index=eqn.params["index"])]


def _getitem_batch(b: Builder, eqn: Eqn, args, dims):
    index = (_FULL, *eqn.params["index"])
    return [b.bind1("getitem", batch_front(b, args[0], dims[0]), index=index)], [0]


def _scatter_batch(b: Builder, eqn: Eqn, args, dims):
    x = batch_front(b, args[0], dims[0])
    p = eqn.params
    return [b.bind1("scatter", x, index=(_FULL, *p["index"]), shape=(x.shape[0], *p["shape"]))], [0]


_register(
    OpDef(
        "getitem",
        "Getitem",
        "structural",
        1,
        _getitem_abstract,
        emit=_getitem_emit,
        scalar=_getitem_scalar,
        view=True,
        shape_only=True,
        cuda_kernel="gather",
        vjp=_getitem_vjp,
        jvp=linear_jvp,
        batch=_getitem_batch,
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
        scalar=_scatter_scalar,
        contiguous=True,
        cuda_kernel="scatter",
        statement=True,
        rewrite=_scatter_rewrite,
        vjp=_scatter_vjp,
        jvp=linear_jvp,
        batch=_scatter_batch,
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
        scalar=_cast_scalar,
        contiguous=True,
        shape_only=True,
        pointwise=True,
        cuda_kernel="pointwise",
        vjp=_cast_vjp,
        jvp=_cast_jvp,
        batch=batch_same_dim,
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
        scalar=_identity_scalar,
        view=True,
        pointwise=True,
        cuda_kernel="alias",
        vjp=lambda b, eqn, cts, active: [None],
        jvp=no_jvp,
        batch=batch_same_dim,
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
        scalar=_fill_scalar,
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


# ----------------------------------------------------------------------------- pack
# ``pack(*xs; shape)``: an array of the 0-d values ``xs`` (C order): numpy's ``np.array([...])``
# of scalars. The scalarised loops (s2s_ad.scalarise) build their small arrays with it after a
# loop, one allocation where a stack of scatters took one per element.
def _pack_abstract(avals, p):
    shape = tuple(p["shape"])
    n = int(np.prod(shape, dtype=np.int64))
    if len(avals) != n or any(a.shape != () for a in avals):
        got = ", ".join(str(a) for a in avals)
        raise ShapeError(f"Pack: an array of shape {fmt_shape(shape)} takes {n} 0-d values, got ({got})")
    if n == 0 or len({a.dtype for a in avals}) != 1:
        raise ShapeError(f"Pack: takes one or more 0-d values of one dtype, got {[str(a) for a in avals]}")
    return [Aval(shape, avals[0].dtype)]


def _pack_emit(args, eqn, C):
    out = eqn.outs[0]
    items = ", ".join(a for a, _ in args)
    arr = f"{C.np}.array([{items}], {C.dtype(out.dtype)})"
    return C.reshape_from(arr, (len(args),), out.shape, out.dtype), ATOM


def _pack_vjp(b, eqn, cts, active):
    (ct,) = cts
    shape = eqn.outs[0].shape
    return [b.bind1("getitem", ct, index=tuple(int(i) for i in idx)) for idx in np.ndindex(*shape)]


def _pack_jvp(b, eqn, tangents):
    if all(t is None for t in tangents):
        return [None]
    dt = eqn.outs[0].dtype
    return [b.bind1("pack", *(Lit(0, dt) if t is None else t for t in tangents), **eqn.params)]


def _pack_scalar(b: Builder, eqn: Eqn, xs: list[np.ndarray]) -> list[np.ndarray]:
    res = np.empty(len(xs), object)
    for k, x in enumerate(xs):
        res[k] = x[()]
    return [res.reshape(eqn.outs[0].shape)]


def _pack_batch(b: Builder, eqn: Eqn, args, dims):
    # A batch of packs: each 0-d value becomes a column of a (size, n) array, reshaped to
    # (size, *shape).
    size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
    dt, n = eqn.outs[0].dtype, len(args)
    out = None
    for j, (a, d) in enumerate(zip(args, dims)):
        col = broadcast_to(b, a, (size,)) if d is None else a
        col = b.bind1("scatter", col, index=(_FULL, j), shape=(size, n))
        out = col if out is None else b.bind1("add", out, col)
    assert out is not None and out.dtype == dt
    return [b.bind1("reshape", out, shape=(size, *eqn.outs[0].shape))], [0]


_register(
    OpDef(
        "pack",
        "Pack",
        "structural",
        -1,  # any number of inputs
        _pack_abstract,
        emit=_pack_emit,
        contiguous=True,
        scalar=_pack_scalar,
        batch=_pack_batch,
        vjp=_pack_vjp,
        jvp=_pack_jvp,
        samples=[(((), (), ()), dict(shape=(3,))), (((), (), (), ()), dict(shape=(2, 2)))],
    )
)


# ---- convolution and pooling (issue 15)
# NCHW tensors. Every op below relates an output position (p, q) of a window op to the input
# position (p * stride - pad_before + i * dilation, ...) of the window offset (i, j); positions
# in the padding take no part. Conv2D is bilinear in (x, w): its two adjoints (the gradients with
# respect to x and w) are ops of their own, and the three ops' derivatives are each other, so
# every order is IR. Max pooling is ``max_pool(x, v)``: the value of ``v`` where ``x`` attains
# the maximum of each window (MaxPool of x is max_pool(x, x)), linear in ``v`` and piecewise
# constant in ``x``; its adjoint in ``v`` scatters into those positions. Average pooling and its
# adjoint are linear. Numba compiles the emitted explicit loops; plain numpy runs one vectorised
# step per window offset.
def window_out_size(display: str, size: int, k: int, stride: int, lo: int, hi: int, dilation: int = 1) -> int:
    """The output length of a window op along one axis (floor division, as MindSpore)."""
    span = dilation * (k - 1) + 1
    n = (size + lo + hi - span) // stride + 1
    if n < 1:
        raise ShapeError(
            f"{display}: the window (kernel {k}, dilation {dilation}, span {span}) is larger than the input "
            f"length {size} with padding ({lo}, {hi})"
        )
    return n


def same_padding(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """MindSpore's ``pad_mode="same"`` padding (before, after) of one axis: the output has
    ``ceil(size / stride)`` positions, the extra row goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (k - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _check4(display: str, what: str, a: Aval) -> None:
    if a.ndim != 4:
        raise ShapeError(f"{display}: {what} must be a 4-D NCHW tensor, got shape {fmt_shape(a.shape)}")
    if a.dtype.kind != "f":
        raise ShapeError(f"{display}: {what} must be a float tensor, got dtype {a.dtype}")


def _conv_out_hw(display: str, hw: Shape, khw: Shape, p: dict) -> Shape:
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = p["stride"], p["pad"], p["dilation"]
    return (
        window_out_size(display, hw[0], khw[0], sh, pt, pb, dh),
        window_out_size(display, hw[1], khw[1], sw, pl, pr, dw),
    )


def _same_dtype(display: str, a: Aval, b: Aval) -> None:
    if a.dtype != b.dtype:
        raise ShapeError(f"{display}: operands have different dtypes {a.dtype} and {b.dtype}")


def _conv2d_abstract(avals, p):
    x, w = avals
    _check4("Conv2D", "the input", x)
    _check4("Conv2D", "the weight", w)
    _same_dtype("Conv2D", x, w)
    if x.shape[1] != w.shape[1]:
        raise ShapeError(
            f"Conv2D: the input has {x.shape[1]} channels, the weight {fmt_shape(w.shape)} expects {w.shape[1]} "
            f"(input shape {fmt_shape(x.shape)})"
        )
    oh, ow = _conv_out_hw("Conv2D", x.shape[2:], w.shape[2:], p)
    return [Aval((x.shape[0], w.shape[0], oh, ow), x.dtype)]


def _conv2d_input_abstract(avals, p):
    g, w = avals
    _check4("Conv2DBackpropInput", "the gradient", g)
    _check4("Conv2DBackpropInput", "the weight", w)
    _same_dtype("Conv2DBackpropInput", g, w)
    if g.shape[1] != w.shape[0] or tuple(g.shape[2:]) != _conv_out_hw(
        "Conv2DBackpropInput", p["in_hw"], w.shape[2:], p
    ):
        raise ShapeError(
            f"Conv2DBackpropInput: gradient {fmt_shape(g.shape)} does not fit weight {fmt_shape(w.shape)} "
            f"and input size {tuple(p['in_hw'])}"
        )
    return [Aval((g.shape[0], w.shape[1], *p["in_hw"]), g.dtype)]


def _conv2d_filter_abstract(avals, p):
    x, g = avals
    _check4("Conv2DBackpropFilter", "the input", x)
    _check4("Conv2DBackpropFilter", "the gradient", g)
    _same_dtype("Conv2DBackpropFilter", x, g)
    if g.shape[0] != x.shape[0] or tuple(g.shape[2:]) != _conv_out_hw(
        "Conv2DBackpropFilter", x.shape[2:], p["kernel"], p
    ):
        raise ShapeError(
            f"Conv2DBackpropFilter: gradient {fmt_shape(g.shape)} does not fit input {fmt_shape(x.shape)} "
            f"and kernel {tuple(p['kernel'])}"
        )
    return [Aval((g.shape[1], x.shape[1], *p["kernel"]), x.dtype)]


def _named(args, C, lines: list[str], hint: str) -> list[str]:
    """The arguments as names: an inlined expression is evaluated once into a variable."""
    out = []
    for s, _prec in args:
        if not s.isidentifier():
            n = C.fresh(hint)
            lines.append(f"{n} = {s}")
            s = n
        out.append(s)
    return out


def _axis_range(size: int, out: int, stride: int, shift: int) -> tuple[int, int, int]:
    """The output positions ``p`` in ``[lo, hi)`` whose input position ``p * stride + shift``
    lies in ``[0, size)``, and the input position of ``lo``."""
    lo = 0 if shift >= 0 else (-shift + stride - 1) // stride
    hi = min(out, max(0, (size - shift + stride - 1) // stride))
    return lo, hi, lo * stride + shift


def _offsets(in_hw: Shape, out_hw: Shape, kernel: Shape, p: dict) -> list[tuple[int, int, str, str]]:
    """numpy code of a window op, one step per window offset (i, j) that meets the input: the
    output positions it reaches and the input positions they read, as slice sources
    (``lo:hi`` of (p, q), and ``start:stop:step`` of (h, v)); positions in the padding take
    no part."""
    (sh, sw), (pt, _, pl, _) = p["stride"], p["pad"]
    dh, dw = p.get("dilation", (1, 1))
    out = []
    for i in range(kernel[0]):
        plo, phi, h0 = _axis_range(in_hw[0], out_hw[0], sh, i * dh - pt)
        for j in range(kernel[1]):
            qlo, qhi, v0 = _axis_range(in_hw[1], out_hw[1], sw, j * dw - pl)
            if plo < phi and qlo < qhi:
                o = f"{plo}:{phi}, {qlo}:{qhi}"
                inp = f"{h0}:{h0 + sh * (phi - plo - 1) + 1}:{sh}, {v0}:{v0 + sw * (qhi - qlo - 1) + 1}:{sw}"
                out.append((i, j, o, inp))
    return out


def _conv_emit(role: str):
    """Emitter of the conv op whose output is ``role``: "y" (Conv2D), "x" (its adjoint in the
    input) or "w" (its adjoint in the weight)."""

    def emit(target, args, eqn: Eqn, C):
        p = eqn.params
        lines: list[str] = []
        a, b = _named(args, C, lines, f"{target}_in")
        if role == "y":
            xs, ws, ys = eqn.ins[0].shape, eqn.ins[1].shape, eqn.outs[0].shape
            X, W, Y = a, b, target
        elif role == "x":
            ys, ws, xs = eqn.ins[0].shape, eqn.ins[1].shape, eqn.outs[0].shape
            Y, W, X = a, b, target
        else:
            xs, ys, ws = eqn.ins[0].shape, eqn.ins[1].shape, eqn.outs[0].shape
            X, Y, W = a, b, target
        dt = C.dtype(eqn.outs[0].dtype)
        (n_, c_, h_, w_), (o_, _, kh, kw), (_, _, oh, ow) = xs, ws, ys
        (sh, sw), (pt, _, pl, _), (dh, dw) = p["stride"], p["pad"], p["dilation"]
        if C.numba:
            n, o, c, i, j, q, r, h, v, s = (C.fresh(k) for k in ("n", "o", "c", "i", "j", "p", "q", "h", "v", "s"))
            lines.append(f"{target} = {C.np}.zeros({eqn.outs[0].shape!r}, {dt})")
            body = [
                f"for {n} in range({n_}):",
                f" for {o} in range({o_}):",
                f"  for {c} in range({c_}):",
                f"   for {i} in range({kh}):",
                f"    for {j} in range({kw}):",
            ]
            ind = "     "
            if role == "w":
                body.append(f"{ind}{s} = {C.lit(0, eqn.outs[0].dtype)}")
            body += [
                f"{ind}for {q} in range({oh}):",
                f"{ind} {h} = {q} * {sh} + ({i} * {dh} - {pt})",
                f"{ind} if 0 <= {h} < {h_}:",
                f"{ind}  for {r} in range({ow}):",
                f"{ind}   {v} = {r} * {sw} + ({j} * {dw} - {pl})",
                f"{ind}   if 0 <= {v} < {w_}:",
            ]
            xi, wi, yi = f"{X}[{n}, {c}, {h}, {v}]", f"{W}[{o}, {c}, {i}, {j}]", f"{Y}[{n}, {o}, {q}, {r}]"
            inner = {"y": f"{yi} += {xi} * {wi}", "x": f"{xi} += {yi} * {wi}", "w": f"{s} += {xi} * {yi}"}[role]
            body.append(f"{ind}    {inner}")
            if role == "w":
                body.append(f"{ind}{wi} += {s}")
            return lines + body
        steps = _offsets((h_, w_), (oh, ow), (kh, kw), p)
        if role == "y":
            acc = C.fresh("acc")
            lines.append(f"{acc} = {C.np}.zeros(({n_}, {oh}, {ow}, {o_}), {dt})")
            for i, j, o, inp in steps:
                tdot = f"{C.np}.tensordot({X}[:, :, {inp}], {W}[:, :, {i}, {j}], axes=([1], [1]))"
                lines.append(f"{acc}[:, {o}, :] += {tdot}")
            return lines + [f"{target} = {C.np}.ascontiguousarray({acc}.transpose(0, 3, 1, 2))"]
        if role == "x":
            gt = C.fresh("gt")
            lines += [f"{target} = {C.np}.zeros({eqn.outs[0].shape!r}, {dt})", f"{gt} = {Y}.transpose(0, 2, 3, 1)"]
            for i, j, o, inp in steps:
                tdot = f"{C.np}.tensordot({gt}[:, {o}, :], {W}[:, :, {i}, {j}], axes=([3], [0]))"
                lines.append(f"{target}[:, :, {inp}] += {tdot}.transpose(0, 3, 1, 2)")
            return lines
        lines.append(f"{target} = {C.np}.zeros({eqn.outs[0].shape!r}, {dt})")
        for i, j, o, inp in steps:
            tdot = f"{C.np}.tensordot({Y}[:, :, {o}], {X}[:, :, {inp}], axes=([0, 2, 3], [0, 2, 3]))"
            lines.append(f"{target}[:, :, {i}, {j}] = {tdot}")
        return lines

    return emit


def _conv_params(p: dict) -> dict:
    return {k: p[k] for k in ("stride", "pad", "dilation")}


def _conv2d_vjp(b, eqn, cts, active):
    (ct,) = cts
    x, w = eqn.ins
    p = _conv_params(eqn.params)
    gx = b.bind1("conv2d_backprop_input", ct, w, in_hw=tuple(x.shape[2:]), **p) if active[0] else None
    gw = b.bind1("conv2d_backprop_filter", x, ct, kernel=tuple(w.shape[2:]), **p) if active[1] else None
    return [gx, gw]


def _conv2d_input_vjp(b, eqn, cts, active):
    # y = A_w^T g (A_w x = conv2d(x, w)): the adjoint in g is conv2d, in w the filter gradient of (ct, g)
    (ct,) = cts
    g, w = eqn.ins
    p = _conv_params(eqn.params)
    gg = b.bind1("conv2d", ct, w, **p) if active[0] else None
    gw = b.bind1("conv2d_backprop_filter", ct, g, kernel=tuple(w.shape[2:]), **p) if active[1] else None
    return [gg, gw]


def _conv2d_filter_vjp(b, eqn, cts, active):
    # <c, F(x, g)> = <g, conv2d(x, c)>: the adjoint in g is conv2d(x, ct), in x the input gradient of (g, ct)
    (ct,) = cts
    x, g = eqn.ins
    p = _conv_params(eqn.params)
    gx = b.bind1("conv2d_backprop_input", g, ct, in_hw=tuple(x.shape[2:]), **p) if active[0] else None
    gg = b.bind1("conv2d", x, ct, **p) if active[1] else None
    return [gx, gg]


def bilinear_jvp(b: Builder, eqn: Eqn, tangents: list) -> list:
    """Tangent rule of an op that is linear in each of its two inputs: f(ta, b) + f(a, tb)."""
    ta, tb = tangents
    a, c = eqn.ins
    terms = []
    if ta is not None:
        terms.append(b.bind1(eqn.op, ta, c, **eqn.params))
    if tb is not None:
        terms.append(b.bind1(eqn.op, a, tb, **eqn.params))
    if not terms:
        return [None]
    return [terms[0] if len(terms) == 1 else b.bind1("add", *terms)]


_conv_p = dict(stride=(1, 1), pad=(0, 0, 0, 0), dilation=(1, 1))
_conv_p2 = dict(stride=(2, 1), pad=(1, 0, 2, 1), dilation=(1, 2))
for _name, _display, _abstract, _role, _vjp, _samples in [
    (
        "conv2d",
        "Conv2D",
        _conv2d_abstract,
        "y",
        _conv2d_vjp,
        [(((2, 2, 4, 5), (3, 2, 2, 3)), _conv_p), (((1, 2, 5, 5), (2, 2, 3, 2)), _conv_p2)],
    ),
    (
        "conv2d_backprop_input",
        "Conv2DBackpropInput",
        _conv2d_input_abstract,
        "x",
        _conv2d_input_vjp,
        [
            (((2, 3, 3, 3), (3, 2, 2, 3)), dict(_conv_p, in_hw=(4, 5))),
            (((1, 2, 2, 6), (2, 2, 3, 2)), dict(_conv_p2, in_hw=(5, 5))),
        ],
    ),
    (
        "conv2d_backprop_filter",
        "Conv2DBackpropFilter",
        _conv2d_filter_abstract,
        "w",
        _conv2d_filter_vjp,
        [
            (((2, 2, 4, 5), (2, 3, 3, 3)), dict(_conv_p, kernel=(2, 3))),
            (((1, 2, 5, 5), (1, 2, 2, 6)), dict(_conv_p2, kernel=(3, 2))),
        ],
    ),
]:
    _register(
        OpDef(
            _name,
            _display,
            "structural",
            2,
            _abstract,
            emit=_conv_emit(_role),
            statement=True,
            contiguous=True,
            inexact=True,
            vjp=_vjp,
            jvp=bilinear_jvp,
            # the input's examples axis takes the batch (a batched weight, or the filter
            # gradient, which sums over the examples, is mapped by a loop)
            batch=None if _name == "conv2d_backprop_filter" else batch_leading_n((0,)),
            samples=_samples,
        )
    )


def _pool_out_hw(display: str, hw: Shape, p: dict) -> Shape:
    (kh, kw), (sh, sw), (pt, pb, pl, pr) = p["kernel"], p["stride"], p["pad"]
    return window_out_size(display, hw[0], kh, sh, pt, pb), window_out_size(display, hw[1], kw, sw, pl, pr)


def _pool_check_pad(display: str, p: dict) -> None:
    (kh, kw), (pt, pb, pl, pr) = p["kernel"], p["pad"]
    if max(pt, pb) >= kh or max(pl, pr) >= kw:
        raise ShapeError(f"{display}: padding {tuple(p['pad'])} must be smaller than the kernel {(kh, kw)}")


def _max_pool_abstract(avals, p):
    x, v = avals
    _check4("MaxPool", "the input", x)
    _pool_check_pad("MaxPool", p)
    if x.shape != v.shape:
        raise ShapeError(f"MaxPool: the values {fmt_shape(v.shape)} must have the input's shape {fmt_shape(x.shape)}")
    return [Aval((*x.shape[:2], *_pool_out_hw("MaxPool", x.shape[2:], p)), v.dtype)]


def _max_pool_grad_abstract(avals, p):
    x, g = avals
    _check4("MaxPoolGrad", "the input", x)
    if tuple(g.shape) != (*x.shape[:2], *_pool_out_hw("MaxPoolGrad", x.shape[2:], p)):
        raise ShapeError(f"MaxPoolGrad: gradient {fmt_shape(g.shape)} does not fit input {fmt_shape(x.shape)}")
    return [Aval(x.shape, g.dtype)]


def _avg_pool_abstract(avals, p):
    (x,) = avals
    _check4("AvgPool", "the input", x)
    _pool_check_pad("AvgPool", p)
    return [Aval((*x.shape[:2], *_pool_out_hw("AvgPool", x.shape[2:], p)), x.dtype)]


def _avg_pool_grad_abstract(avals, p):
    (g,) = avals
    _check4("AvgPoolGrad", "the gradient", g)
    if tuple(g.shape[2:]) != _pool_out_hw("AvgPoolGrad", p["in_hw"], p):
        raise ShapeError(f"AvgPoolGrad: gradient {fmt_shape(g.shape)} does not fit input size {tuple(p['in_hw'])}")
    return [Aval((*g.shape[:2], *p["in_hw"]), g.dtype)]


def _pool_loops(C, in_hw: Shape, out_shape: Shape, p: dict, body_pq: Callable, body_win: Callable) -> list[str]:
    """Numba loops over n, c, the output positions (p, q) and the valid window positions (h, v):
    ``body_pq(n, c, q, r)`` gives (lines before, lines after) the window loop, ``body_win(n, c, q, r, h, v)``
    the lines inside it."""
    (kh, kw), (sh, sw), (pt, _, pl, _) = p["kernel"], p["stride"], p["pad"]
    n, c, q, r, i, j, h, v = (C.fresh(k) for k in ("n", "c", "p", "q", "i", "j", "h", "v"))
    before, after = body_pq(n, c, q, r)
    ind = "    "
    lines = [
        f"for {n} in range({out_shape[0]}):",
        f" for {c} in range({out_shape[1]}):",
        f"  for {q} in range({out_shape[2]}):",
        f"   for {r} in range({out_shape[3]}):",
        *(f"{ind}{ln}" for ln in before),
        f"{ind}for {i} in range({kh}):",
        f"{ind} {h} = {q} * {sh} + ({i} - {pt})",
        f"{ind} if 0 <= {h} < {in_hw[0]}:",
        f"{ind}  for {j} in range({kw}):",
        f"{ind}   {v} = {r} * {sw} + ({j} - {pl})",
        f"{ind}   if 0 <= {v} < {in_hw[1]}:",
        *(f"{ind}    {ln}" for ln in body_win(n, c, q, r, h, v)),
        *(f"{ind}{ln}" for ln in after),
    ]
    return lines


def _argmax_numpy(C, lines: list[str], X: str, steps: list, out_shape: Shape) -> str:
    """numpy: the window offset k = i * kw + j where each window of ``X`` first attains its
    maximum (nan wins), by name."""
    best, arg, found, s, m = (C.fresh(k) for k in ("best", "arg", "found", "s", "m"))
    lines += [
        f"{best} = {C.np}.zeros({out_shape!r}, {X}.dtype)",
        f"{arg} = {C.np}.zeros({out_shape!r}, {C.np}.int64)",
        f"{found} = {C.np}.zeros({out_shape!r}, {C.np}.bool_)",
    ]
    kw = max(j for _, j, _, _ in steps) + 1
    for i, j, o, inp in steps:
        b, f = f"{best}[:, :, {o}]", f"{found}[:, :, {o}]"
        lines += [
            f"{s} = {X}[:, :, {inp}]",
            f"{m} = ~{f} | ({s} > {b}) | (({s} != {s}) & ({b} == {b}))",
            f"{b} = {C.np}.where({m}, {s}, {b})",
            f"{arg}[:, :, {o}] = {C.np}.where({m}, {i * kw + j}, {arg}[:, :, {o}])",
            f"{f} = True",
        ]
    return arg


def _max_pool_emit(scatter: bool):
    def emit(target, args, eqn: Eqn, C):
        p = eqn.params
        lines: list[str] = []
        X, V = _named(args, C, lines, f"{target}_in")
        x = eqn.ins[0]
        in_hw = x.shape[2:]
        g_shape = eqn.ins[1].shape if scatter else eqn.outs[0].shape
        dt = C.dtype(eqn.outs[0].dtype)
        kh, kw = p["kernel"]
        if C.numba:
            best, bh, bv, found, xv = (C.fresh(k) for k in ("best", "bh", "bv", "found", "xv"))

            def before(n, c, q, r):
                return [f"{best} = {X}[{n}, {c}, 0, 0]", f"{bh} = 0", f"{bv} = 0", f"{found} = False"]

            def win(n, c, q, r, h, v):
                return [
                    f"{xv} = {X}[{n}, {c}, {h}, {v}]",
                    f"if not {found} or {xv} > {best} or ({xv} != {xv} and {best} == {best}):",
                    f"    {best} = {xv}",
                    f"    {bh} = {h}",
                    f"    {bv} = {v}",
                    f"    {found} = True",
                ]

            def after_gather(n, c, q, r):
                return before(n, c, q, r), [f"{target}[{n}, {c}, {q}, {r}] = {V}[{n}, {c}, {bh}, {bv}]"]

            def after_scatter(n, c, q, r):
                return before(n, c, q, r), [f"{target}[{n}, {c}, {bh}, {bv}] += {V}[{n}, {c}, {q}, {r}]"]

            init = "zeros" if scatter else "empty"
            lines.append(f"{target} = {C.np}.{init}({eqn.outs[0].shape!r}, {dt})")
            return lines + _pool_loops(C, in_hw, g_shape, p, after_scatter if scatter else after_gather, win)
        steps = _offsets(in_hw, g_shape[2:], (kh, kw), p)
        arg = _argmax_numpy(C, lines, X, steps, tuple(g_shape))
        lines.append(f"{target} = {C.np}.zeros({eqn.outs[0].shape!r}, {dt})")
        zero = C.lit(0, eqn.outs[0].dtype)
        for i, j, o, inp in steps:
            hit = f"{arg}[:, :, {o}] == {i * kw + j}"
            if scatter:
                lines.append(f"{target}[:, :, {inp}] += {C.np}.where({hit}, {V}[:, :, {o}], {zero})")
            else:
                lines.append(f"{target}[:, :, {o}] = {C.np}.where({hit}, {V}[:, :, {inp}], {target}[:, :, {o}])")
        return lines

    return emit


def _max_pool_vjp(b, eqn, cts, active):
    x = eqn.ins[0]
    p = dict(eqn.params)
    return [None, b.bind1("max_pool_grad", x, cts[0], **p) if active[1] else None]


def _max_pool_grad_vjp(b, eqn, cts, active):
    x = eqn.ins[0]
    return [None, b.bind1("max_pool", x, cts[0], **eqn.params) if active[1] else None]


def _second_linear_jvp(b, eqn, tangents):
    """Tangent rule of an op linear in its second input and piecewise constant in its first."""
    t = tangents[1]
    return [None if t is None else b.bind1(eqn.op, eqn.ins[0], t, **eqn.params)]


def _avg_pool_emit(adjoint: bool):
    def emit(target, args, eqn: Eqn, C):
        p = eqn.params
        lines: list[str] = []
        (X,) = _named(args, C, lines, f"{target}_in")
        in_hw = p["in_hw"] if adjoint else eqn.ins[0].shape[2:]
        g_shape = eqn.ins[0].shape if adjoint else eqn.outs[0].shape
        out_dt = eqn.outs[0].dtype
        dt = C.dtype(out_dt)
        kh, kw = p["kernel"]
        if C.numba:
            acc, cnt = C.fresh("acc"), C.fresh("cnt")
            full = C.lit(kh * kw, out_dt)

            def around(n, c, q, r):
                if adjoint:
                    # the count of the window first, then the share of each position
                    return [f"{cnt} = {full}"] if p["count_pad"] else [], []
                return [f"{acc} = {C.lit(0, out_dt)}", f"{cnt} = {C.lit(0, out_dt)}"], [
                    f"{target}[{n}, {c}, {q}, {r}] = {acc} / {full if p['count_pad'] else cnt}"
                ]

            def win(n, c, q, r, h, v):
                if adjoint:
                    return [f"{target}[{n}, {c}, {h}, {v}] += {X}[{n}, {c}, {q}, {r}] / {cnt}"]
                return [f"{acc} += {X}[{n}, {c}, {h}, {v}]", f"{cnt} += {C.lit(1, out_dt)}"]

            lines.append(f"{target} = {C.np}.zeros({eqn.outs[0].shape!r}, {dt})")
            if adjoint and not p["count_pad"]:
                # two passes over each window: count its input positions, then share
                def count_win(n, c, q, r, h, v):
                    return [f"{cnt} += {C.lit(1, out_dt)}"]

                cnt_arr = C.fresh("cnts")
                lines.append(f"{cnt_arr} = {C.np}.zeros({tuple(g_shape[2:])!r}, {dt})")
                lines += _pool_loops(
                    C,
                    in_hw,
                    (1, 1, *g_shape[2:]),
                    p,
                    lambda n, c, q, r: ([f"{cnt} = {C.lit(0, out_dt)}"], [f"{cnt_arr}[{q}, {r}] = {cnt}"]),
                    count_win,
                )
                return lines + _pool_loops(
                    C, in_hw, g_shape, p, lambda n, c, q, r: ([f"{cnt} = {cnt_arr}[{q}, {r}]"], []), win
                )
            return lines + _pool_loops(C, in_hw, g_shape, p, around, win)
        steps = _offsets(in_hw, g_shape[2:], (kh, kw), p)
        cnt = C.fresh("cnt")
        if p["count_pad"]:
            lines.append(f"{cnt} = {C.lit(kh * kw, out_dt)}")
        else:
            lines.append(f"{cnt} = {C.np}.zeros({tuple(g_shape[2:])!r}, {dt})")
            lines += [f"{cnt}[{o}] += {C.lit(1, out_dt)}" for _, _, o, _ in steps]
        lines.append(f"{target} = {C.np}.zeros({eqn.outs[0].shape!r}, {dt})")
        if adjoint:
            share = C.fresh("share")
            lines.append(f"{share} = {X} / {cnt}")
            return lines + [f"{target}[:, :, {inp}] += {share}[:, :, {o}]" for _, _, o, inp in steps]
        return lines + [f"{target}[:, :, {o}] += {X}[:, :, {inp}]" for _, _, o, inp in steps] + [f"{target} /= {cnt}"]

    return emit


def _pool_params(p: dict) -> dict:
    return {k: p[k] for k in ("kernel", "stride", "pad", "count_pad")}


_pool_p = dict(kernel=(2, 2), stride=(2, 2), pad=(0, 0, 0, 0))
_pool_p2 = dict(kernel=(3, 2), stride=(1, 2), pad=(1, 1, 0, 1))
_register(
    OpDef(
        "max_pool",
        "MaxPool",
        "structural",
        2,
        _max_pool_abstract,
        emit=_max_pool_emit(False),
        statement=True,
        contiguous=True,
        vjp=_max_pool_vjp,
        jvp=_second_linear_jvp,
        batch=batch_leading_n((0, 1)),
        samples=[(((2, 2, 4, 4), (2, 2, 4, 4)), _pool_p), (((1, 2, 5, 4), (1, 2, 5, 4)), _pool_p2)],
        distinct_inputs=True,
    )
)
_register(
    OpDef(
        "max_pool_grad",
        "MaxPoolGrad",
        "structural",
        2,
        _max_pool_grad_abstract,
        emit=_max_pool_emit(True),
        statement=True,
        contiguous=True,
        vjp=_max_pool_grad_vjp,
        jvp=_second_linear_jvp,
        batch=batch_leading_n((0, 1)),
        samples=[(((2, 2, 4, 4), (2, 2, 2, 2)), _pool_p), (((1, 2, 5, 4), (1, 2, 5, 2)), _pool_p2)],
        distinct_inputs=True,
    )
)
_register(
    OpDef(
        "avg_pool",
        "AvgPool",
        "structural",
        1,
        _avg_pool_abstract,
        emit=_avg_pool_emit(False),
        statement=True,
        contiguous=True,
        inexact=True,
        vjp=lambda b, eqn, cts, active: [
            b.bind1("avg_pool_grad", cts[0], in_hw=tuple(eqn.ins[0].shape[2:]), **_pool_params(eqn.params))
        ],
        jvp=linear_jvp,
        batch=batch_leading_n((0,)),
        samples=[
            (((2, 2, 4, 4),), dict(_pool_p, count_pad=False)),
            (((1, 2, 5, 4),), dict(_pool_p2, count_pad=False)),
            (((1, 2, 5, 4),), dict(_pool_p2, count_pad=True)),
        ],
    )
)
_register(
    OpDef(
        "avg_pool_grad",
        "AvgPoolGrad",
        "structural",
        1,
        _avg_pool_grad_abstract,
        emit=_avg_pool_emit(True),
        statement=True,
        contiguous=True,
        inexact=True,
        vjp=lambda b, eqn, cts, active: [b.bind1("avg_pool", cts[0], **_pool_params(eqn.params))],
        jvp=linear_jvp,
        batch=batch_leading_n((0,)),
        samples=[
            (((2, 2, 2, 2),), dict(_pool_p, count_pad=False, in_hw=(4, 4))),
            (((1, 2, 5, 2),), dict(_pool_p2, count_pad=False, in_hw=(5, 4))),
            (((1, 2, 5, 2),), dict(_pool_p2, count_pad=True, in_hw=(5, 4))),
        ],
    )
)


# ---- structural, indexing and linalg ops (issue 15)
# Ops that compose from others (concat, stack, split, tile, pad, squeeze, expand_dims, norm,
# gather_nd, scatter_nd, ...) are lowerings in s2s_ad.trace.lowering, not table entries.
# Python's ``//`` and ``%`` print as themselves: numpy's floor_divide and mod on arrays, and
# Python's float floor division and modulo on the scalars of fused loops and 0-d code (which
# Numba compiles as numpy computes them, special values included).
elementwise(
    "floor_div",
    "FloorDiv",
    heads.FloorDiv,
    ("infix", "//", MUL),
    numpy="floor_divide",
    nin=2,
    sympy_head=heads.FloorDiv,
)
elementwise(
    "floor_mod",
    "FloorMod",
    heads.FloorMod,
    ("infix", "%", MUL),
    numpy="mod remainder",
    nin=2,
    sympy_head=heads.FloorMod,
)


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
        picked = f"{_atomic((x, x_prec))}[{_slot(ax, idx)}]"
        if ax > 0 and out.shape != ():
            picked = f"{C.np}.ascontiguousarray({picked})"  # a slice along a later axis is strided
        return lines + [f"{target} = {picked}"]
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


def _gather_batch(b: Builder, eqn: Eqn, args, dims):
    (x, idx), (dx, di) = args, dims
    ax = eqn.params["axis"] % len(eqn.ins[0].shape)
    if di is None:  # the same indices into every example
        return [b.bind1("gather", batch_front(b, x, dx), idx, axis=ax + 1)], [0]
    if dx is None:  # a batch of indices into one tensor: the batch axis lands among the indices' axes
        return [b.bind1("gather", x, idx, axis=ax)], [ax + di]
    return None  # both batched: a loop


def _scatter_add_batch(b: Builder, eqn: Eqn, args, dims):
    (u, idx), (du, di) = args, dims
    if di is not None:
        return None  # batched indices: a loop
    p = eqn.params
    u = batch_front(b, u, du)
    ax = p["axis"] % len(p["shape"])
    return [b.bind1("scatter_add", u, idx, axis=ax + 1, shape=(u.shape[0], *p["shape"]))], [0]


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
        batch=_gather_batch,
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
        batch=_scatter_add_batch,
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
        batch=batch_axis_param("axis"),
        samples=[
            (((2, 3),), dict(axis=1, reverse=False)),
            (((4,),), dict(axis=0, reverse=True)),
            (((3, 2, 2),), dict(axis=0, reverse=False)),
            (((2, 3),), dict(axis=-1, reverse=True)),
        ],
    )
)


# ---- cumulative product (issue 15)
def _cumprod_abstract(avals, p):
    (x,) = avals
    if x.ndim == 0:
        raise ShapeError("CumProd: the input must have at least one axis, got a 0-d tensor")
    _axis_of("CumProd", p["axis"], x.ndim)
    return [x]


def _cumprod_emit(target, args, eqn: Eqn, C):
    ((x, prec),) = args
    a = eqn.ins[0]
    ax = eqn.params["axis"] % len(a.shape)
    n = a.shape[ax]
    k = C.fresh("k")
    src = x if prec >= ATOM else f"({x})"
    step = -1 if eqn.params["reverse"] else 1
    prev = f"{k} + 1" if step < 0 else f"{k} - 1"
    loop = f"for {k} in range({n - 2}, -1, -1):" if step < 0 else f"for {k} in range(1, {n}):"
    if eqn.params["exclusive"]:
        # element k: the product of the elements before it (after it, in reverse); 1 for the first
        return [
            f"{target} = {C.np}.ones_like({src})",
            loop,
            f"    {target}[{_slot(ax, k)}] = {target}[{_slot(ax, prev)}] * {src}[{_slot(ax, prev)}]",
        ]
    return [f"{target} = {src}.copy()", loop, f"    {target}[{_slot(ax, k)}] *= {target}[{_slot(ax, prev)}]"]


def _cumprod_parts(b: Builder, eqn: Eqn) -> tuple[Atom, Atom, int]:
    """For y = cumprod(x) along axis ``a`` (n elements): ``A`` with a new axis ``i`` at ``a`` (the
    original axis ``k`` at ``a + 1``), ``A[i, k] = prod of x_j over j in S(k), j != i`` (S(k): the
    positions that y_k multiplies), computed as the cumprod of x with x_i replaced by 1 in row
    i, so no division by x (exact where x has zeros); and the bool mask ``M[i, k] = i in S(k)``."""
    (x,) = eqn.ins
    p = eqn.params
    ax = p["axis"] % len(x.shape)
    n = x.shape[ax]
    iota = b.bind1("cumsum", fill(b, (n,), 1, np.dtype(np.int64)), axis=0, reverse=False)
    rows = b.bind1("reshape", iota, shape=(n, 1))
    cols = b.bind1("reshape", iota, shape=(1, n))
    around = (1,) * ax, (1,) * (len(x.shape) - ax - 1)

    def spread(m: Atom) -> Atom:
        return b.bind1("reshape", m, shape=around[0] + (n, n) + around[1])

    eye = spread(b.bind1("equal", rows, cols))
    cmp = {(False, False): "less_equal", (False, True): "less", (True, False): "greater_equal", (True, True): "greater"}
    mask = spread(b.bind1(cmp[(bool(p["reverse"]), bool(p["exclusive"]))], rows, cols))
    xs = b.bind1("reshape", x, shape=x.shape[:ax] + (1,) + x.shape[ax:])
    big = x.shape[:ax] + (n, n) + x.shape[ax + 1 :]
    masked = b.bind1("select", eye, Lit(1, x.dtype), broadcast_to(b, xs, big))
    A = b.bind1("cumprod", masked, axis=ax + 1, reverse=p["reverse"], exclusive=p["exclusive"])
    return b.bind1("select", mask, A, Lit(0, x.dtype)), ax, n


def _cumprod_vjp(b: Builder, eqn: Eqn, cts, active):
    # dx_i = sum over k of [i in S(k)] g_k A[i, k]
    (g,) = cts
    A, ax, n = _cumprod_parts(b, eqn)
    x = eqn.ins[0]
    gk = b.bind1("reshape", g, shape=x.shape[:ax] + (1,) + x.shape[ax:])
    return [b.bind1("reduce_sum", b.bind1("mul", A, gk), axes=(ax + 1,), keepdims=False)]


def _cumprod_jvp(b: Builder, eqn: Eqn, tangents):
    # dy_k = sum over i of [i in S(k)] t_i A[i, k]
    (t,) = tangents
    if t is None:
        return [None]
    A, ax, n = _cumprod_parts(b, eqn)
    x = eqn.ins[0]
    ti = b.bind1("reshape", t, shape=x.shape[: ax + 1] + (1,) + x.shape[ax + 1 :])
    return [b.bind1("reduce_sum", b.bind1("mul", A, ti), axes=(ax,), keepdims=False)]


_register(
    OpDef(
        "cumprod",
        "CumProd",
        "structural",
        1,
        _cumprod_abstract,
        emit=_cumprod_emit,
        statement=True,
        contiguous=True,
        inexact=True,
        vjp=_cumprod_vjp,
        jvp=_cumprod_jvp,
        batch=batch_axis_param("axis"),
        samples=[
            (((2, 3),), dict(axis=1, reverse=False, exclusive=False)),
            (((4,),), dict(axis=0, reverse=True, exclusive=False)),
            (((3, 2, 2),), dict(axis=0, reverse=False, exclusive=True)),
            (((2, 3),), dict(axis=-1, reverse=True, exclusive=True)),
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
            batch=batch_axis_param("axis"),
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


# Numba code multiplies batches of matrices no larger than this (m * k * n) with scalar loops,
# larger ones with one BLAS product per matrix: a call to BLAS costs more than a small product.
_SMALL_BATCH_PRODUCT = 512


def _batch_matmul_emit(target, args, eqn: Eqn, C):
    a, b = eqn.ins
    ta, tb = eqn.params["transpose_a"], eqn.params["transpose_b"]
    out = eqn.outs[0]
    if not C.numba:  # numpy multiplies stacks of matrices (broadcasting their batch axes) itself
        x, y = (_atomic(arg) for arg in args)
        x = f"{C.np}.swapaxes({x}, -1, -2)" if ta else x
        y = f"{C.np}.swapaxes({y}, -1, -2)" if tb else y
        return [f"{target} = {C.np}.matmul({x}, {y})"]
    batch = out.shape[:-2]
    nb = int(np.prod(batch, dtype=np.int64))
    (m, n), k_len = out.shape[-2:], a.shape[-2 if ta else -1]
    lines, ops = [], []
    for (src, prec), v, t in zip(args, (a, b), (ta, tb)):
        name = C.fresh(f"{target}_in")
        full = batch + v.shape[-2:]
        expr = src if prec >= ATOM else f"({src})"
        if v.shape != full:
            expr = f"{C.np}.broadcast_to({expr}, {full!r})"
        lines.append(f"{name} = {C.np}.ascontiguousarray({expr}).reshape({(nb,) + v.shape[-2:]!r})")
        ops.append((name, t))
    k = C.fresh("k")
    if m * k_len * n <= _SMALL_BATCH_PRODUCT:
        i, j, r, ail = C.fresh("i"), C.fresh("j"), C.fresh("r"), C.fresh("ail")
        (xa, _), (yb, _) = ops
        x_il = f"{xa}[{k}, {r}, {i}]" if ta else f"{xa}[{k}, {i}, {r}]"
        y_lj = f"{yb}[{k}, {j}, {r}]" if tb else f"{yb}[{k}, {r}, {j}]"
        return lines + [
            f"{target} = {C.np}.zeros({(nb,) + out.shape[-2:]!r}, {C.dtype(out.dtype)})",
            f"for {k} in range({nb}):",
            f"    for {i} in range({m}):",
            f"        for {r} in range({k_len}):",
            f"            {ail} = {x_il}",
            f"            for {j} in range({n}):",
            f"                {target}[{k}, {i}, {j}] += {ail} * {y_lj}",
            f"{target} = {target}.reshape({out.shape!r})",
        ]

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


def _batch_matmul_batch(b: Builder, eqn: Eqn, args, dims):
    # the vmapped batch becomes one more leading batch axis (the operands' own batch axes are
    # padded to the output's, so that broadcasting lines them up)
    rank = len(eqn.outs[0].shape)
    x, y = (batch_front(b, a, d, rank) for a, d in zip(args, dims))
    return [b.bind1("batch_matmul", x, y, **eqn.params)], [0]


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
        rewrite=_identity_product,
        bilinear=True,
        vjp=_batch_matmul_vjp,
        jvp=_batch_matmul_jvp,
        batch=_batch_matmul_batch,
        samples=[
            (((2, 2, 3), (2, 3, 4)), dict(transpose_a=False, transpose_b=False)),
            (((2, 3), (3, 3, 2)), dict(transpose_a=False, transpose_b=False)),
            (((2, 1, 3, 2), (3, 4, 3)), dict(transpose_a=True, transpose_b=True)),
            (((2, 2, 3), (4, 3)), dict(transpose_a=False, transpose_b=True)),
        ],
    )
)


# ------------------------------------------------------------- linear algebra
def _square(display: str, a: Aval, batched: bool = False) -> int:
    if (a.ndim != 2 and not (batched and a.ndim > 2)) or a.shape[-1] != a.shape[-2]:
        what = "square in its last two axes" if batched else "square and 2-D"
        raise ShapeError(f"{display}: the matrix must be {what}, got shape {fmt_shape(a.shape)}")
    if a.dtype.kind != "f":
        raise ArgumentError(f"{display}: the matrix must be a float tensor, got dtype {a.dtype}")
    return a.shape[-1]


def _inv_abstract(avals, p):
    (a,) = avals
    _square("MatrixInverse", a, batched=True)
    return [a]


def _batched_linalg(fn: str, target: str, x: str, a: Aval, out_shape: Shape, C) -> list[str]:
    # Numba's np.linalg functions take one matrix: a loop over the (merged) leading axes
    n, nb = a.shape[-1], int(np.prod(a.shape[:-2], dtype=np.int64))
    k, xs = C.fresh("k"), C.fresh("mats")
    item = (nb,) if out_shape == a.shape[:-2] else (nb, n, n)
    return [
        f"{xs} = {C.np}.ascontiguousarray({x}).reshape({(nb, n, n)!r})",
        f"{target} = {C.np}.empty({item!r}, {C.dtype(a.dtype)})",
        f"for {k} in range({nb}):",
        f"    {target}[{k}] = {C.np}.linalg.{fn}({xs}[{k}])",
        f"{target} = {target}.reshape({tuple(out_shape)!r})",
    ]


def _inv_emit(target, args, eqn: Eqn, C):
    a = eqn.ins[0]
    if len(a.shape) == 2:
        return [f"{target} = {C.np}.linalg.inv({args[0][0]})"]
    return _batched_linalg("inv", target, _atomic(args[0]), a, a.shape, C)


def _mm(b: Builder, x: Atom, y: Atom, ta: bool = False, tb: bool = False) -> Atom:
    if len(x.shape) == 2 and len(y.shape) == 2:
        return b.bind1("matmul", x, y, transpose_a=ta, transpose_b=tb)
    return b.bind1("batch_matmul", x, y, transpose_a=ta, transpose_b=tb)


def _mT(b: Builder, a: Atom) -> Atom:
    """``a`` with its last two axes swapped."""
    nd = len(a.shape)
    return b.bind1("transpose", a, perm=tuple(range(nd - 2)) + (nd - 1, nd - 2))


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
    _square("MatrixDeterminant", a, batched=True)
    return [Aval(a.shape[:-2], a.dtype)]


def _det_emit(target, args, eqn: Eqn, C):
    a = eqn.ins[0]
    if len(a.shape) == 2:
        return [f"{target} = {C.dtype(eqn.outs[0].dtype)}({C.np}.linalg.det({args[0][0]}))"]
    return _batched_linalg("det", target, _atomic(args[0]), a, a.shape[:-2], C)


def _per_matrix(b: Builder, v: Atom, a: Atom) -> Atom:
    """A value per matrix (shape ``a.shape[:-2]``) as ``(..., 1, 1)``, to scale each matrix."""
    return v if len(a.shape) == 2 else b.bind1("reshape", v, shape=tuple(v.shape) + (1, 1))


def _det_vjp(b: Builder, eqn: Eqn, cts, active):
    # d det(A) = det(A) tr(A^-1 dA): the cotangent of A is ct det(A) A^-T
    (ct,) = cts
    a, d = eqn.ins[0], eqn.outs[0]
    inv_t = _mT(b, b.bind1("matrix_inverse", a))
    return [b.bind1("mul", inv_t, _per_matrix(b, b.bind1("mul", ct, d), a))]


def _det_jvp(b: Builder, eqn: Eqn, tangents):
    (t,) = tangents
    if t is None:
        return [None]
    a, d = eqn.ins[0], eqn.outs[0]
    inv_t = _mT(b, b.bind1("matrix_inverse", a))
    nd = len(a.shape)
    tr = b.bind1("reduce_sum", b.bind1("mul", inv_t, t), axes=(nd - 2, nd - 1), keepdims=False)
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


_linalg_samples = [(((3, 3),), {}), (((2, 2),), {}), (((1, 1),), {}), (((2, 3, 3),), {}), (((2, 1, 2, 2),), {})]
_register(
    OpDef(
        "matrix_inverse",
        "MatrixInverse",
        "structural",
        1,
        _inv_abstract,
        emit=_inv_emit,
        statement=True,
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
        statement=True,
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


# ------------------------------------------------------------- counter-based random numbers
_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment
_MIX = (30, 0xBF58476D1CE4E5B9, 27, 0x94D049BB133111EB, 31)
_U64 = (1 << 64) - 1


def mix64(z: int) -> int:
    """SplitMix64's finaliser of the 64-bit integer ``z`` (what the generated code computes)."""
    s1, m1, s2, m2, s3 = _MIX
    z &= _U64
    z = ((z ^ (z >> s1)) * m1) & _U64
    z = ((z ^ (z >> s2)) * m2) & _U64
    return z ^ (z >> s3)


def _random_uniform_abstract(avals: list[Aval], p: dict) -> list[Aval]:
    (key,) = avals
    if key.shape != () or key.dtype.kind not in "iu":
        raise ArgumentError(
            f"RandomUniform: the key must be a 0-d integer tensor, got shape {fmt_shape(key.shape)} dtype {key.dtype}"
        )
    dt = np.dtype(p["dtype"])
    if dt.kind != "f":
        raise ArgumentError(f"RandomUniform: the dtype must be a float type, got {dt}")
    return [Aval(tuple(p["shape"]), dt)]


def _random_uniform_emit(target, args, eqn: Eqn, C):
    # Counter-based: element i of the key's stream is SplitMix64's output i from the state
    # mix64(key * golden + mix64(seed)), so every element is computed on its own, in any order,
    # and the same key gives the same numbers in every backend. Arrays of uint64 wrap silently
    # (numpy warns on scalar overflow only).
    (key, _), p = args[0], eqn.params
    shape, dt = tuple(p["shape"]), np.dtype(p["dtype"])
    n = int(np.prod(shape, dtype=np.int64))
    k, z = C.fresh("key"), C.fresh("bits")
    s1, m1, s2, m2, s3 = _MIX

    def u64(v: int) -> str:
        return f"{C.np}.uint64({v})"

    def mix(v: str) -> list[str]:
        return [
            f"{v} = ({v} ^ ({v} >> {u64(s1)})) * {u64(m1)}",
            f"{v} = ({v} ^ ({v} >> {u64(s2)})) * {u64(m2)}",
            f"{v} = {v} ^ ({v} >> {u64(s3)})",
        ]

    bits = 53 if dt == np.float64 else 24  # the float's significand: values in [0, 1), 1 excluded
    return [
        f"{k} = {C.np}.full(1, {key}, {C.np}.int64).astype({C.np}.uint64) * {u64(_GOLDEN)} + {u64(mix64(p['seed']))}",
        *mix(k),
        f"{z} = {C.np}.arange(1, {n + 1}).astype({C.np}.uint64) * {u64(_GOLDEN)} + {k}",
        *mix(z),
        f"{target} = (({z} >> {u64(64 - bits)}).astype({C.np}.float64) * {float(2.0**-bits)!r})"
        f".astype({C.dtype(dt)}).reshape({shape!r})",
    ]


_register(
    OpDef(
        "random_uniform",
        "RandomUniform",
        "structural",
        1,
        _random_uniform_abstract,
        emit=_random_uniform_emit,
        statement=True,
        contiguous=True,
        # the numbers do not depend on any differentiable value: no derivative flows through them
        vjp=lambda b, eqn, cts, active: [None],
        jvp=no_jvp,
        int_inputs=(0,),
        index_bound=lambda shapes, params: 1000,
        samples=[
            (((),), dict(seed=0, shape=(2, 3), dtype=np.dtype(np.float64))),
            (((),), dict(seed=7, shape=(), dtype=np.dtype(np.float32))),
        ],
    )
)


ELEMENTWISE = [op for op in OPS.values() if op.kind == "elementwise"]
_SYMPY_HEADS: dict[Any, str] = {}


def sympy_heads() -> dict[Any, str]:
    """The SymPy classes that map back to table ops (each op's ``sympy_head`` and
    ``sympy_aliases``), by class; built (and SymPy imported) on the first call."""
    if not _SYMPY_HEADS:
        _SYMPY_HEADS.update({resolve(op.sympy_head): op.name for op in ELEMENTWISE if op.sympy_head is not None})
        _SYMPY_HEADS.update({resolve(alias): op.name for op in ELEMENTWISE for alias in op.sympy_aliases})
    return _SYMPY_HEADS


def __getattr__(name: str) -> Any:
    # the custom SymPy heads live in s2s_ad.symbolic_heads; ``primitives.Sigmoid`` still finds them
    if not name.startswith("_") and name[:1].isupper() and name != "SYMPY_HEADS":
        from . import symbolic_heads  # imported on first use: it imports SymPy

        if name in symbolic_heads.__all__:
            return getattr(symbolic_heads, name)
    if name == "SYMPY_HEADS":
        return sympy_heads()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
