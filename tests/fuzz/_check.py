"""Running a generated program (``_gen.py``) through s2s_ad's public API and checking every
result in float64: against the numpy reference, central finite differences, each other (the
dot-product test), the PYNATIVE results (for a GRAPH run) and JAX (where installed)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field

import numpy as np

import s2s_ad
from s2s_ad import Tensor, context, ops

try:  # noqa: SIM105
    from _gen import Program, Ref
except ImportError:  # imported as tests.fuzz._check
    from ._gen import Program, Ref

H = 1e-5  # central finite-difference step (inputs and directions are O(1))
H2 = 1e-4  # the step of the mixed second differences
RTOL = 1e-5  # derivatives against finite differences
RTOL_EXACT = 1e-9  # results that should agree up to rounding (values, dot-product test, modes)


class Mismatch(AssertionError):
    """A result differs from its reference beyond the tolerance."""


@dataclass
class Outcome:
    """How one program fared in one mode: ``failure`` (None when every check passed),
    ``results`` for the comparison across modes."""

    seed: int
    mode: str
    failure: str | None = None
    kind: str | None = None  # "mismatch" or the exception's class
    results: dict = field(default_factory=dict)


def _richardson(fun) -> tuple:
    """The derivative at 0 of ``fun(h)`` from central differences with steps H and 2 H,
    extrapolated (error O(H**4)), and a bound of its error (the two differences' gap)."""
    d1 = (np.asarray(fun(H)) - np.asarray(fun(-H))) / (2 * H)
    d2 = (np.asarray(fun(2 * H)) - np.asarray(fun(-2 * H))) / (4 * H)
    return (4 * d1 - d2) / 3, np.abs(d1 - d2)


def _close(got, want, what: str, rtol: float = RTOL_EXACT, scale: float | None = None, atol=0.0) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        raise Mismatch(f"{what}: shape {got.shape}, expected {want.shape}")
    s = float(np.max(np.abs(want), initial=0.0)) if scale is None else scale
    tol = rtol * (np.abs(want) + s + 1e-12) + atol
    bad = ~(np.abs(got - want) <= tol)
    if np.any(bad):
        k = np.unravel_index(int(np.argmax(bad)), got.shape) if got.ndim else ()
        raise Mismatch(
            f"{what}: {int(bad.sum())} of {got.size} elements differ, e.g. at {k}: {got[k]!r} vs expected {want[k]!r}"
        )


def _np(t) -> np.ndarray:
    assert isinstance(t, Tensor), f"expected a Tensor, got {type(t).__name__}"
    a = t.asnumpy()
    assert a.dtype == np.float64, f"expected float64, got {a.dtype}"
    return a


def _tuple(g, n: int) -> tuple:
    if n == 1:
        assert isinstance(g, Tensor), f"one input: a bare Tensor, got {type(g).__name__}"
        return (g,)
    assert isinstance(g, tuple) and len(g) == n, f"{n} inputs: a tuple of {n}, got {g!r}"
    return g


def _dot(a, b) -> float:
    return float(sum(np.sum(np.asarray(x) * np.asarray(y)) for x, y in zip(a, b)))


def checks(prog: Program, xs: list[np.ndarray], mode: str, full: bool = True) -> dict:
    """Run the checks of ``prog`` at ``xs`` in ``mode`` ("pynative" or "graph"); raises
    :class:`Mismatch` (or the exception s2s_ad raised); returns the results. Without ``full``
    only vjp and jvp run (two compilations: the quick GRAPH batch)."""
    m = prog.module
    n = len(xs)
    rng = np.random.default_rng(prog.seed + 12345)
    y, frozen = _reference(m, xs)

    def ref(zs):
        return np.asarray(m.f_ref(Ref(frozen=frozen), *zs), np.float64)

    w = rng.standard_normal(y.shape)
    vs = [rng.standard_normal(x.shape) for x in xs]
    us = [rng.standard_normal(x.shape) for x in xs]
    T = [Tensor(x) for x in xs]
    pos = 0 if n == 1 else tuple(range(n))
    res: dict = {}

    if full:  # the value
        out = _np(s2s_ad.jit(m.f)(*T))
        _close(out, y, "jit(f) value")
        res["value"] = out

    # reverse mode: vjp against finite differences of <f_ref, w> along v
    out2, g = s2s_ad.vjp(m.f, tuple(T) if n > 1 else T[0], Tensor(w))
    _close(_np(out2), y, "vjp value")
    g = [_np(t) for t in _tuple(g, n)]
    res["vjp"] = g

    def along(zs, dirs, h):
        return [z + h * d for z, d in zip(zs, dirs)]

    fd, fd_err = _richardson(lambda h: np.sum(ref(along(xs, vs, h)) * w))
    ad = _dot(g, vs)
    scale = float(np.sum(np.abs(y * w))) * 1e-9 / H + abs(fd) + _dot([np.abs(a) for a in g], [np.abs(v) for v in vs])
    _close(ad, fd, "vjp: <v, J^T w> against finite differences", RTOL, scale, fd_err)

    # forward mode: jvp against finite differences along v, and against vjp (dot-product test)
    out3, jv = s2s_ad.jvp(m.f, tuple(T) if n > 1 else T[0], tuple(Tensor(v) for v in vs) if n > 1 else Tensor(vs[0]))
    _close(_np(out3), y, "jvp value")
    jv = _np(jv)
    res["jvp"] = jv
    fdv, fdv_err = _richardson(lambda h: ref(along(xs, vs, h)))
    scale = float(np.max(np.abs(fdv), initial=0.0)) + 1e-3
    _close(jv, fdv, "jvp: J v against finite differences", RTOL, scale, fdv_err)
    terms = float(np.sum(np.abs(jv * w))) + _dot([np.abs(a) for a in g], [np.abs(v) for v in vs]) + 1e-5
    _close(float(np.sum(jv * w)), ad, "dot-product test <J v, w> = <v, J^T w>", RTOL_EXACT, terms)

    if full:
        _more(m, prog, T, w, y, g, us, vs, pos, n, res)
    _jax_check(prog, xs, w, vs, y, g, jv)
    return res


def _reference(m, xs) -> tuple[np.ndarray, list]:
    """The reference value at ``xs`` and the values of its stop_gradients there."""
    base = Ref()
    y = np.asarray(m.f_ref(base, *xs), np.float64)
    return y, base.stopped


def _more(m, prog, T, w, y, g, us, vs, pos, n, res) -> None:
    """value_and_grad, GradOperation on a Cell and second order."""
    xs = [t.asnumpy() for t in T]
    _, frozen = _reference(m, xs)

    def along(zs, dirs, h):
        return [z + h * d for z, d in zip(zs, dirs)]

    # value_and_grad of the scalar loss, GradOperation on the Cell: the same gradient
    val, gl = s2s_ad.value_and_grad(m.loss, grad_position=pos)(*T, Tensor(w))
    _close(_np(val), np.sum(y * w), "value_and_grad(loss) value", RTOL_EXACT, float(np.sum(np.abs(y * w))))
    gscale = max(float(np.max(np.abs(a), initial=0.0)) for a in g)
    for k, (a, b) in enumerate(zip(_tuple(gl, n), g)):
        # two AD paths; a gradient that is exactly zero (|x|/x) is a sum of terms that cancel, so
        # each path may leave a rounding residue: an absolute floor like the JAX comparison's
        _close(_np(a), b, f"value_and_grad(loss) gradient {k} against vjp", RTOL_EXACT, gscale, atol=1e-12)
    go = ops.GradOperation(get_all=True, sens_param=True)(m.Net())(*T, Tensor(w))
    assert isinstance(go, tuple) and len(go) == n, f"GradOperation(get_all=True): a tuple of {n}, got {go!r}"
    for k, (a, b) in enumerate(zip(go, g)):
        _close(
            _np(a),
            b,
            f"GradOperation(get_all, sens_param) on the Cell: gradient {k} against vjp",
            RTOL_EXACT,
            gscale,
            atol=1e-12,
        )

    # reverse over reverse: H u = grad of <grad loss, u>; against finite differences of the
    # first-order gradient along u, dotted with v
    hu = [_np(t) for t in _tuple(s2s_ad.grad(m.grad_dot, grad_position=pos)(*T, Tensor(w), *map(Tensor, us)), n)]
    res["hvp"] = hu

    # the reference: mixed central differences of <f_ref, w> along u and v (stop_gradient's
    # values frozen at x: it stops every order of derivative)
    def loss_ref(a, b):
        return float(np.sum(m.f_ref(Ref(frozen=frozen), *along(along(xs, us, a), vs, b)) * w))

    def mixed(h):
        return (loss_ref(h, h) - loss_ref(h, -h) - loss_ref(-h, h) + loss_ref(-h, -h)) / (4 * h * h)

    d1, d2 = mixed(H2), mixed(2 * H2)
    fd2, fd2_err = (4 * d1 - d2) / 3, abs(d1 - d2)
    scale2 = (
        abs(fd2) + _dot([np.abs(a) for a in hu], [np.abs(v) for v in vs]) + float(np.sum(np.abs(y * w))) * 1e-11 / H2**2
    )
    _close(_dot(hu, vs), fd2, "second order (grad of grad): <H u, v> against finite differences", 1e-4, scale2, fd2_err)
    # forward over reverse: the tangent of the gradient along u
    gfn = s2s_ad.grad(m.loss, grad_position=pos)
    tangent_in = tuple(map(Tensor, us)) + (Tensor(np.zeros_like(w)),)
    _, hu2 = s2s_ad.jvp(gfn, (*T, Tensor(w)), tangent_in)
    hscale = max(float(np.max(np.abs(a), initial=0.0)) for a in hu) + 1e-6
    for k, (a, b) in enumerate(zip(_tuple(hu2, n), hu)):
        _close(_np(a), b, f"second order: jvp of grad (forward over reverse) {k} against grad of grad", 1e-8, hscale)


def _jax_check(prog: Program, xs, w, vs, y, g, jv) -> None:
    """The value, J v and J^T w against JAX's derivatives of the reference program (float64),
    where JAX is installed. Not for programs with control flow: their reference decides its
    branches with Python ``if``/``while`` on values, which JAX's tracing does not allow."""
    if prog.control:
        return
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return
    jax.config.update("jax_enable_x64", True)

    class JRef(Ref):
        pass

    for name in (
        "square",
        "sqrt",
        "exp",
        "log",
        "expm1",
        "log1p",
        "sin",
        "cos",
        "tan",
        "sinh",
        "cosh",
        "tanh",
        "sign",
        "abs",
    ):
        setattr(JRef, name, staticmethod(getattr(jnp, name)))
    JRef.atanh = staticmethod(jnp.arctanh)
    JRef.sigmoid = staticmethod(jax.nn.sigmoid)
    JRef.relu = staticmethod(jax.nn.relu)
    JRef.div = staticmethod(lambda a, b: a / b)
    JRef.pow = staticmethod(jnp.power)
    JRef.maximum = staticmethod(jnp.maximum)
    JRef.minimum = staticmethod(jnp.minimum)
    JRef.greater = staticmethod(jnp.greater)
    JRef.less = staticmethod(jnp.less)
    JRef.where = staticmethod(jnp.where)
    JRef.sum = staticmethod(lambda a, axis, keepdims: jnp.sum(a, axis=axis, keepdims=keepdims))
    JRef.mean = staticmethod(lambda a, axis, keepdims: jnp.mean(a, axis=axis, keepdims=keepdims))
    JRef.max = staticmethod(lambda a, axis, keepdims: jnp.max(a, axis=axis, keepdims=keepdims))
    JRef.min = staticmethod(lambda a, axis, keepdims: jnp.min(a, axis=axis, keepdims=keepdims))
    JRef.matmul = staticmethod(jnp.matmul)
    JRef.reshape = staticmethod(jnp.reshape)
    JRef.transpose = staticmethod(jnp.transpose)
    JRef.stop_gradient = staticmethod(jax.lax.stop_gradient)
    JRef.v = staticmethod(lambda a: a)

    def fj(*zs):
        return prog.module.f_ref(JRef(), *zs)

    # JAX's derivatives of the same formula may round differently where terms cancel exactly
    # (d(x/x)/dx: 1/x - x/x**2 is +-2e-16 in JAX, 0 here): an absolute floor of 1e-12.
    primal, vjp_fn = jax.vjp(fj, *map(jnp.asarray, xs))
    _close(np.asarray(primal), y, "JAX: value")
    for k, (a, b) in enumerate(zip(vjp_fn(jnp.asarray(w)), g)):
        _close(b, np.asarray(a), f"JAX: gradient {k}", 1e-8, atol=1e-12)
    _, t = jax.jvp(fj, tuple(map(jnp.asarray, xs)), tuple(map(jnp.asarray, vs)))
    _close(jv, np.asarray(t), "JAX: J v", 1e-8, atol=1e-12)


def run(prog: Program, xs: list[np.ndarray], mode: str, base: Outcome | None = None, full: bool = True) -> Outcome:
    """``checks`` in ``mode`` with the failure classified; a GRAPH run also compares its results
    with the PYNATIVE ``base``."""
    out = Outcome(prog.seed, mode)
    old = context.get_context("mode")
    context.set_context(mode=context.GRAPH_MODE if mode == "graph" else context.PYNATIVE_MODE)
    try:
        out.results = checks(prog, xs, mode, full)
        if base is not None and base.failure is None:
            for key, val in base.results.items():
                if key not in out.results:
                    continue
                got = out.results[key]
                vals = val if isinstance(val, list) else [val]
                gots = got if isinstance(got, list) else [got]
                scale = max(float(np.max(np.abs(b), initial=0.0)) for b in vals)
                for k, (a, b) in enumerate(zip(gots, vals)):
                    _close(a, b, f"{mode} against pynative: {key} {k}", 1e-9, scale)
    except Mismatch as err:
        out.failure, out.kind = f"{err}", "mismatch"
    except Exception as err:  # noqa: BLE001 - any exception on a valid program is a failure
        text = "".join(traceback.format_exception(err))
        out.failure, out.kind = f"{type(err).__name__}: {err}\n{text}", type(err).__name__
    finally:
        context.set_context(mode=old)
    return out
