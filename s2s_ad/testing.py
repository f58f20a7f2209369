"""Checking derivatives: :func:`check_grads` and :func:`explain`.

``check_grads(fn, args, order=1, modes=("fwd", "rev"))`` compares s2s_ad's forward-mode
(``jvp``) and reverse-mode (``vjp``) derivatives of ``fn`` with central finite differences in
float64, and the two modes with each other (the dot-product test ``<J u, w> == <u, Jᵀ w>``), to
any order: order 2 checks the ``jvp`` and ``vjp`` functions of ``fn`` the same way, and so on.
A failure raises :class:`GradCheckError` naming the mode, order, input, output and the error.

``explain(fn, *args)`` reports what s2s_ad makes of ``fn``: its source, the derivative source
it generates (with the user lines each statement comes from), a finite-difference check and
which inputs each output depends on.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .api import (
    GradOperation,
    JvpFunction,
    Transformed,
    arg_names_of,
    callable_name,
    generated_source,
    output_avals,
    trace_program,
    vjp_function,
)
from .errors import ArgumentError, S2SError
from .ir import Program, Var, flatten, unflatten
from .tensor import ParameterTuple, Tensor

__all__ = ["GradCheckError", "GradCheckReport", "Explanation", "check_grads", "explain"]

# Inputs with at most this many elements get an element-by-element finite-difference gradient
# in reverse mode (so a failure names the element); larger ones a random directional check.
_ELEMENTWISE_FD_MAX = 64


class GradCheckError(AssertionError):
    """A derivative check failed. Attributes: ``mode`` ("fwd", "rev" or "fwd/rev"), ``order``,
    ``function``, ``input`` and ``output`` (tree paths), ``abs_err``, ``rel_err``, ``index``
    (of the largest absolute error, in ``output`` for "fwd", in ``input`` for "rev", ``None``
    for a directional check), ``expected`` and ``got`` (the values there)."""

    def __init__(self, message: str, **info: Any):
        super().__init__(message)
        self.mode: str = info.get("mode", "")
        self.order: int = info.get("order", 1)
        self.function: str = info.get("function", "")
        self.input: str = info.get("input", "")
        self.output: str = info.get("output", "")
        self.abs_err: float = info.get("abs_err", 0.0)
        self.rel_err: float = info.get("rel_err", 0.0)
        self.index: tuple[int, ...] | None = info.get("index")
        self.expected: float = info.get("expected", 0.0)
        self.got: float = info.get("got", 0.0)


@dataclass
class GradCheckReport:
    """What :func:`check_grads` checked (returned when every check passed)."""

    function: str
    checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"check_grads({self.function}): {len(self.checks)} checks passed"]
        lines += [f"  {c}" for c in self.checks]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- trees


def _path(prefix: str, treedef: Any, static: bool = False) -> list[str]:
    """Tree paths (``x``, ``x[0]``, ``x['a']``) of the leaves of ``treedef`` under ``prefix``
    (with ``static``, of its static values instead: the Python numbers a trace holds constant)."""
    if treedef is None:
        return [] if static else [prefix]
    kind, children = treedef[0], treedef[1]
    if kind == "static":
        return [prefix] if static else []
    keys = treedef[2] if kind == "dict" else range(len(children))
    out: list[str] = []
    for k, c in zip(keys, children):
        out += _path(f"{prefix}[{k!r}]", c, static)
    return out


def _array(v: Any) -> np.ndarray:
    return v.asnumpy() if isinstance(v, Tensor) else np.asarray(v)


def _is_leaf(v: Any) -> bool:
    return isinstance(v, Tensor)


def _inexact(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.inexact)


class _Fn:
    """``fn`` with its arguments as float64 leaves: evaluation and the jvp/vjp functions."""

    def __init__(self, fn: Any, args: tuple, label: str):
        self.fn, self.label = fn, label
        leaves, self.in_tree = flatten(tuple(args), _is_leaf)
        arrays = [_array(x) for x in leaves]
        names = arg_names_of(fn, len(args))
        self.in_paths = [p for name, (_, t) in zip(names, _children(self.in_tree)) for p in _path(name, t)]
        self.cast: list[str] = []
        self.x: list[np.ndarray] = []
        for path, a, leaf in zip(self.in_paths, arrays, leaves):
            number = isinstance(leaf, (int, float)) and not isinstance(leaf, bool)
            if not (_inexact(a) or number):
                raise ArgumentError(
                    f"check_grads({label}): input {path} is {a.dtype}; every input is differentiated, "
                    f"so each must be a float Tensor, array or a number"
                )
            if a.dtype != np.float64:
                self.cast.append(f"{path} ({a.dtype})")
            self.x.append(np.array(a, dtype=np.float64))
        out = self(self.x)
        out_leaves, self.out_tree = flatten(out, _is_leaf)
        self.out_paths = _path("out", self.out_tree)
        self.out_float = [_inexact(_array(o)) for o in out_leaves]

    def args(self, leaves: list[np.ndarray]) -> tuple:
        return unflatten(self.in_tree, leaves)

    def __call__(self, leaves: list[np.ndarray]) -> Any:
        return self.fn(*self.args(leaves))

    def outputs(self, leaves: list[np.ndarray]) -> list[np.ndarray]:
        return [_array(o).astype(np.float64) for o in flatten(self(leaves), _is_leaf)[0]]


def _children(treedef: Any) -> list[tuple[int, Any]]:
    return list(enumerate(treedef[1]))


def _vector_arg(tree: Any, leaves: list[np.ndarray], n: int) -> Any:
    """The tangent or cotangent argument of the jvp/vjp functions: bare for one input."""
    v = unflatten(tree, leaves)
    return v[0] if n == 1 and isinstance(v, tuple) else v


# ----------------------------------------------------------------------------- comparison


def _compare(
    expected: np.ndarray, got: np.ndarray, atol: float, rtol: float
) -> tuple[bool, float, float, tuple[int, ...] | None, float, float]:
    expected = np.asarray(expected, np.float64)
    got = np.broadcast_to(np.asarray(got, np.float64), expected.shape)
    err = np.abs(got - expected)
    bad = ~(err <= atol + rtol * np.abs(expected))
    rel = err / np.maximum(np.abs(expected), np.finfo(np.float64).tiny)
    if err.size == 0:
        return True, 0.0, 0.0, None, 0.0, 0.0
    at = np.unravel_index(int(np.nanargmax(np.where(np.isnan(err), np.inf, err))), err.shape) if err.size else ()
    return (
        not bool(bad.any()),
        float(err[at]),
        float(np.nanmax(rel)) if not np.isnan(rel).all() else float("nan"),
        tuple(int(i) for i in at),
        float(expected[at]),
        float(got[at]),
    )


def _fail(fn: _Fn, mode: str, order: int, what: str, inp: str, out: str, res: tuple, atol: float, rtol: float):
    _, abs_err, rel_err, index, expected, got = res
    where = f" at index {list(index)}" if index else ""
    msg = (
        f"check_grads: {mode} derivative of {fn.label} (order {order}) is wrong\n"
        f"  input:  {inp}\n  output: {out}\n  check:  {what}\n"
        f"  largest absolute error {abs_err:.3g}{where}: expected {expected:.10g}, got {got:.10g}\n"
        f"  largest relative error {rel_err:.3g} (tolerance atol={atol:g}, rtol={rtol:g})"
    )
    if fn.cast:
        msg += f"\n  (inputs cast to float64 for the check: {', '.join(fn.cast)})"
    raise GradCheckError(
        msg,
        mode=mode,
        order=order,
        function=fn.label,
        input=inp,
        output=out,
        abs_err=abs_err,
        rel_err=rel_err,
        index=index,
        expected=expected,
        got=got,
    )


# ----------------------------------------------------------------------------- check_grads


def check_grads(
    fn: Any,
    args: tuple | list,
    order: int = 1,
    modes: tuple[str, ...] | list[str] | str = ("fwd", "rev"),
    *,
    eps: float | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    seed: int = 0,
) -> GradCheckReport:
    """Check s2s_ad's derivatives of ``fn(*args)`` (a function or Cell) against central finite
    differences, as JAX's ``check_grads`` does.

    The inputs (Tensors, arrays, numbers, or tuples/lists/dicts of them; every leaf is
    differentiated) are cast to float64 for the check (the report's notes list the cast ones).
    ``modes``: ``"fwd"`` checks ``jvp`` (``J u`` for a random ``u`` per input, against the
    finite difference along ``u``); ``"rev"`` checks ``vjp`` (``Jᵀ w`` for a random ``w``,
    against the finite-difference gradient of ``<w, fn>``, element by element for inputs of
    up to 64 elements); with both, also ``<J u, w> == <u, Jᵀ w>``. ``order=2`` also checks the
    jvp and vjp functions of ``fn`` the same way (derivatives of derivatives), and so on.
    ``eps`` is the finite-difference step (1e-5 by default); a value passes when
    ``|got - expected| <= atol + rtol * |expected|``. A Cell's float Parameters are cast to
    float64 during the check (restored after it); in reverse mode the gradients with respect to
    its trainable Parameters are checked too (order 1).

    Raises :class:`GradCheckError` (an ``AssertionError``) naming the mode, order, input,
    output, the largest absolute and relative errors and where; returns a
    :class:`GradCheckReport` when every check passes."""
    if isinstance(modes, str):
        modes = (modes,)
    modes = tuple(modes)
    bad = [m for m in modes if m not in ("fwd", "rev")]
    if bad or not modes:
        raise ArgumentError(f"check_grads: modes must be a non-empty subset of ('fwd', 'rev'), got {modes!r}")
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise ArgumentError(f"check_grads: order must be an int >= 1, got {order!r}")
    if not isinstance(args, (tuple, list)):
        raise ArgumentError(f"check_grads: args must be a tuple of the inputs, got {type(args).__name__}")
    report = GradCheckReport(callable_name(fn))
    rng = np.random.default_rng(seed)
    with _float64_parameters(fn) as cast:
        if cast:
            report.notes.append(f"Parameters cast to float64 for the check (restored after it): {', '.join(cast)}")
        _check(fn, tuple(args), order, 1, modes, 1e-5 if eps is None else float(eps), atol, rtol, rng, report)
    return report


@contextlib.contextmanager
def _float64_parameters(fn: Any) -> Iterator[list[str]]:
    """Within the block, the float Parameters of the Cell ``fn`` hold float64 copies of their
    values (an op of float64 inputs and float32 weights is a dtype error); restored after."""
    target = fn.fn if isinstance(fn, Transformed) else fn
    params = list(target.parameters_and_names()) if hasattr(target, "parameters_and_names") else []
    saved = []
    try:
        for name, p in params:
            data = p.asnumpy()
            if _inexact(data) and data.dtype != np.float64:
                saved.append((name, p, p._data))
                p._data = np.array(data, dtype=np.float64)
        yield [f"{name} ({old.dtype})" for name, _, old in saved]
    finally:
        for _, p, old in saved:
            p._data = old


def _check(
    fn: Any,
    args: tuple,
    order: int,
    level: int,
    modes: tuple,
    eps: float,
    atol: float,
    rtol: float,
    rng: np.random.Generator,
    report: GradCheckReport,
) -> None:
    f = _Fn(fn, args, _label(fn))
    if f.cast and level == 1:
        report.notes.append(f"inputs cast to float64 for the check: {', '.join(f.cast)}")
    x, n_args = f.x, len(args)
    outs = f.outputs(x)
    u_all = [rng.standard_normal(a.shape) for a in x]
    w = [rng.standard_normal(o.shape) if fl else np.zeros(o.shape) for o, fl in zip(outs, f.out_float)]

    def fd(direction: list[np.ndarray]) -> list[np.ndarray]:
        plus = f.outputs([a + eps * d for a, d in zip(x, direction)])
        minus = f.outputs([a - eps * d for a, d in zip(x, direction)])
        return [(p - m) / (2 * eps) for p, m in zip(plus, minus)]

    jvp_fn = JvpFunction(fn)
    vjp_fn = vjp_function(fn)
    tangents: list[list[np.ndarray]] = []
    if "fwd" in modes:
        for k, path in enumerate(f.in_paths):
            u = [u_all[i] if i == k else np.zeros_like(a) for i, a in enumerate(x)]
            _, tan = jvp_fn(*f.args(x), _vector_arg(f.in_tree, u, n_args))
            got = [_array(t) for t in flatten(tan, _is_leaf)[0]]
            tangents.append(got)
            expected = fd(u)
            for j, opath in enumerate(f.out_paths):
                if not f.out_float[j]:
                    continue
                res = _compare(expected[j], got[j], atol, rtol)
                if not res[0]:
                    _fail(
                        f,
                        "fwd",
                        level,
                        f"jvp along a random u on {path} vs central difference",
                        path,
                        opath,
                        res,
                        atol,
                        rtol,
                    )
        report.checks.append(f"order {level}, fwd: jvp of {f.label} vs finite differences")
    if "rev" in modes:
        w_arg = w[0] if f.out_tree is None else unflatten(f.out_tree, w)
        _, grads = vjp_fn(*f.args(x), w_arg)
        g_leaves = [_array(g) for g in flatten(grads if n_args > 1 else (grads,), _is_leaf)[0]]
        for k, path in enumerate(f.in_paths):
            out_desc = ", ".join(p for p, fl in zip(f.out_paths, f.out_float) if fl)
            if x[k].size <= _ELEMENTWISE_FD_MAX:
                expected_g = np.zeros(x[k].shape)
                for idx in np.ndindex(*x[k].shape):
                    e = [np.zeros_like(a) for a in x]
                    e[k][idx] = 1.0
                    expected_g[idx] = sum(float(np.sum(wj * dj)) for wj, dj in zip(w, fd(e)))
                res = _compare(expected_g, g_leaves[k], atol, rtol)
                what = "vjp with a random w vs the central-difference gradient of <w, out>"
            else:
                u = [u_all[i] if i == k else np.zeros_like(a) for i, a in enumerate(x)]
                expected_s = sum(float(np.sum(wj * dj)) for wj, dj in zip(w, fd(u)))
                res = _compare(np.array(expected_s), np.array(float(np.sum(g_leaves[k] * u_all[k]))), atol, rtol)
                res = (*res[:3], None, *res[4:])
                what = "<vjp(w), u> vs the central difference of <w, out> along u (random u, w)"
            if not res[0]:
                _fail(f, "rev", level, what, path, out_desc, res, atol, rtol)
        report.checks.append(f"order {level}, rev: vjp of {f.label} vs finite differences")
        if "fwd" in modes:
            for k, path in enumerate(f.in_paths):
                lhs = sum(float(np.sum(t * wj)) for t, wj in zip(tangents[k], w))
                rhs = float(np.sum(u_all[k] * g_leaves[k]))
                res = _compare(np.array(rhs), np.array(lhs), atol, rtol)
                if not res[0]:
                    res = (*res[:3], None, *res[4:])
                    _fail(
                        f,
                        "fwd/rev",
                        level,
                        "dot-product test <J u, w> (jvp) vs <u, Jᵀ w> (vjp)",
                        path,
                        "out",
                        res,
                        atol,
                        rtol,
                    )
            report.checks.append(f"order {level}, fwd/rev: dot-product test <J u, w> == <u, Jᵀ w> for {f.label}")
    if "rev" in modes and level == 1:
        _check_parameters(f, w, eps, atol, rtol, rng, report)
    if order > level:
        if "fwd" in modes:
            v = _vector_arg(f.in_tree, [rng.standard_normal(a.shape) for a in x], n_args)
            _check(jvp_fn, (*f.args(x), v), order, level + 1, modes, eps, atol, rtol, rng, report)
        if "rev" in modes:
            w_arg = w[0] if f.out_tree is None else unflatten(f.out_tree, w)
            _check(vjp_fn, (*f.args(x), w_arg), order, level + 1, modes, eps, atol, rtol, rng, report)


def _check_parameters(
    f: _Fn, w: list[np.ndarray], eps: float, atol: float, rtol: float, rng: np.random.Generator, report: GradCheckReport
) -> None:
    """Reverse mode with respect to the trainable Parameters of the Cell ``f.fn``
    (``GradOperation(get_by_list=True, sens_param=True)``) against finite differences."""
    cell = f.fn
    if isinstance(cell, Transformed) or not hasattr(cell, "trainable_params"):
        return
    named = [(n, p) for n, p in cell.parameters_and_names() if p.requires_grad and _inexact(p.asnumpy())]
    if not named:
        return
    w_arg = w[0] if f.out_tree is None else unflatten(f.out_tree, w)
    grads = GradOperation(get_by_list=True, sens_param=True)(cell, ParameterTuple(p for _, p in named))
    got = [_array(g) for g in grads(*f.args(f.x), w_arg)]

    def phi() -> float:
        return sum(float(np.sum(wj * o)) for wj, o in zip(w, f.outputs(f.x)))

    def central(p: Any, step: np.ndarray) -> float:
        old = p._data
        try:
            p._data = old + eps * step
            plus = phi()
            p._data = old - eps * step
            minus = phi()
        finally:
            p._data = old
        return (plus - minus) / (2 * eps)

    out_desc = ", ".join(q for q, fl in zip(f.out_paths, f.out_float) if fl)
    for (name, p), g in zip(named, got):
        data = p.asnumpy()
        if data.size <= _ELEMENTWISE_FD_MAX:
            expected = np.zeros(data.shape)
            for idx in np.ndindex(*data.shape):
                e = np.zeros(data.shape)
                e[idx] = 1.0
                expected[idx] = central(p, e)
            res = _compare(expected, g, atol, rtol)
            what = (
                "GradOperation(get_by_list=True) with a random sens vs the central-difference gradient of <sens, out>"
            )
        else:
            u = rng.standard_normal(data.shape)
            res = _compare(np.array(central(p, u)), np.array(float(np.sum(g * u))), atol, rtol)
            res = (*res[:3], None, *res[4:])
            what = "<gradient, u> vs the central difference of <sens, out> along u (random u, sens)"
        if not res[0]:
            _fail(f, "rev", 1, what, f"Parameter {name}", out_desc, res, atol, rtol)
    report.checks.append(f"order 1, rev: gradients of {f.label} with respect to its Parameters vs finite differences")


def _label(fn: Any) -> str:
    if isinstance(fn, JvpFunction):
        return f"jvp({_label(fn.fn)})"
    if isinstance(fn, Transformed) and fn.prefix == "vjp":
        return f"vjp({_label(fn.fn)})"
    return callable_name(fn)


# ----------------------------------------------------------------------------- explain


@dataclass
class Explanation:
    """The report :func:`explain` returns; ``str()`` (or printing it) gives the text."""

    function: str
    source: str
    derivative: str
    check: str
    dependencies: list[tuple[str, list[str], list[str], list[str]]]  # output, depends, stopped, never
    static: list[str] = field(default_factory=list)  # arguments traced as constants (Python numbers)

    def dependency_table(self) -> str:
        lines = []
        for out, dep, stopped, never in self.dependencies:
            lines.append(f"  {out} depends on: {', '.join(dep) if dep else 'no input'}")
            if stopped:
                lines.append(
                    f"    through stop_gradient (or a non-float value) only, not differentiated: {', '.join(stopped)}"
                )
            if never:
                lines.append(f"    never affected by: {', '.join(never)} (its derivative there is zero)")
        if self.static:
            lines.append(
                f"  constants of the compiled program (Python numbers, not differentiated): {', '.join(self.static)}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        bar = "=" * 72
        return "\n".join(
            [
                f"explain({self.function})",
                bar,
                "Source",
                self.source.rstrip(),
                bar,
                "Derivative (reverse mode, as generated; '# file:line' comments map statements to the source)",
                self.derivative.rstrip(),
                bar,
                "Finite-difference check (float64)",
                self.check,
                bar,
                "Dependencies (from the traced program)",
                self.dependency_table(),
            ]
        )

    __repr__ = __str__


def _user_source(fn: Any) -> str:
    target = fn.fn if isinstance(fn, Transformed) else fn
    method = getattr(type(target), "_s2s_function", None)
    code = type(target).construct if method is not None else target
    try:
        lines, start = inspect.getsourcelines(code)
        path = inspect.getsourcefile(code) or "<unknown>"
    except (OSError, TypeError) as err:
        return f"(source unavailable: {err})"
    head = f"# {path}:{start}"
    return head + "\n" + "".join(lines)


def dependencies(prog: Program, in_names: list[str]) -> list[tuple[str, list[str], list[str], list[str]]]:
    """For each output leaf of ``prog``: the input leaves whose derivative reaches it, those
    that reach its value only through ``stop_gradient`` or a non-float value, and those that
    never affect it. ``in_names`` names ``prog.invars`` (arguments, then Parameters)."""
    value: dict[Var, frozenset[int]] = {}
    diff: dict[Var, frozenset[int]] = {}
    for i, v in enumerate(prog.invars[: len(in_names)]):
        value[v] = diff[v] = frozenset([i])
    for eqn in prog.eqns:
        vd: frozenset[int] = frozenset()
        dd: frozenset[int] = frozenset()
        for a in eqn.ins:
            if isinstance(a, Var):
                vd |= value.get(a, frozenset())
                dd |= diff.get(a, frozenset())
        if eqn.op == "stop_gradient":
            dd = frozenset()
        for o in eqn.outs:
            value[o] = vd
            diff[o] = dd if np.issubdtype(o.dtype, np.inexact) else frozenset()
    out_paths = _path("out", prog.out_tree)
    table = []
    for path, out in zip(out_paths, prog.outs):
        vd = value.get(out, frozenset()) if isinstance(out, Var) else frozenset()
        dd = diff.get(out, frozenset()) if isinstance(out, Var) else frozenset()
        if isinstance(out, Var) and not np.issubdtype(out.dtype, np.inexact):
            dd = frozenset()
        table.append(
            (
                path,
                [in_names[i] for i in sorted(dd)],
                [in_names[i] for i in sorted(vd - dd)],
                [in_names[i] for i in range(len(in_names)) if i not in vd],
            )
        )
    return table


def explain(fn: Any, *args: Any) -> Explanation:
    """What s2s_ad makes of ``fn(*args)`` (a function or Cell): its source, the reverse-mode
    derivative source s2s_ad generates (each statement commented with the user line it
    computes, or whose adjoint it computes), a float64 finite-difference check
    (:func:`check_grads`) and, for each output, the inputs (arguments and Parameters) it depends
    on and those that never affect it. Print the result for the text."""
    label = callable_name(fn)
    try:
        derivative = generated_source(vjp_function(fn), *args, output_avals(fn, *args))
    except S2SError as err:
        derivative = f"(no derivative: {type(err).__name__}: {err})"
    try:
        check = str(check_grads(fn, args))
    except GradCheckError as err:
        check = f"FAILED: {err}"
    except S2SError as err:
        check = f"(not checked: {type(err).__name__}: {err})"
    prog = trace_program(fn, *args, optimized=False)  # stop_gradient is still there
    names = arg_names_of(fn, len(args))
    # the program's own argument tree: Python numbers and other static values are no leaves
    in_names = [p for name, (_, t) in zip(names, _children(prog.in_tree)) for p in _path(name, t)]
    static = [p for name, (_, t) in zip(names, _children(prog.in_tree)) for p in _path(name, t, static=True)]
    in_names += [getattr(p, "name", f"parameter{i}") for i, p in enumerate(prog.parameters)]
    return Explanation(label, _user_source(fn), derivative, check, dependencies(prog, in_names), static)
