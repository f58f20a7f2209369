"""Per-op tests generated from the op table: every entry, every sample shape, float64 and
float32, reverse mode checked against central finite differences and by the dot-product test
(<J u, w> from a finite-difference directional derivative vs <u, J^T w> from the vjp), and the
Numba backend checked against the numpy backend."""

from __future__ import annotations

import numpy as np
import pytest

from s2s_ad.ad.reverse import grad_program
from s2s_ad.frontend import trace
from s2s_ad.ir import Aval
from s2s_ad.ops.table import OPS
from s2s_ad.runtime import Compiled

CASES = []
for _op in OPS.values():
    for _k, (_shapes, _params) in enumerate(_op.samples):
        for _dt in ("float64", "float32"):
            CASES.append(pytest.param(_op.name, _shapes, _params, _dt, id=f"{_op.name}-{_k}-{_dt}"))


def _programs(op: str, shapes, params, dtype, backend="python"):
    avals = [Aval(tuple(s), np.dtype(dtype)) for s in shapes]
    names = [f"x{i}" for i in range(len(shapes))]
    prog = trace(lambda fe, vals: fe.b.bind1(op, *vals, **params), avals, f"op_{op}", names)
    fwd = Compiled(prog, backend)
    vjp = Compiled(grad_program(prog, list(range(len(shapes))), [], sens_param=True), backend)
    return prog, fwd, vjp


def _inputs(op: str, shapes, dtype, rng):
    lo, hi = OPS[op].domain
    xs = []
    for s in shapes:
        x = rng.uniform(lo, hi, size=s)
        # keep away from kinks (relu/abs/sign/step at 0)
        x = np.where(np.abs(x) < 0.1, 0.3, x)
        xs.append(np.asarray(x, dtype=dtype))
    return xs


def _f(fwd, xs):
    return np.asarray(fwd(list(xs)).asnumpy(), dtype=np.float64)


def _vjp(vjp, xs, w):
    _, grads, _ = vjp(list(xs) + [w])
    return [g.asnumpy() for g in grads]


@pytest.mark.parametrize("op,shapes,params,dtype", CASES)
def test_vjp_against_finite_differences(op, shapes, params, dtype):
    rng = np.random.default_rng(0)
    prog, fwd, vjp = _programs(op, shapes, params, dtype)
    xs = _inputs(op, shapes, dtype, rng)
    out_aval = prog.outs[0].aval
    w = np.asarray(rng.standard_normal(out_aval.shape), dtype=out_aval.dtype)
    grads = _vjp(vjp, xs, w)
    for x, g in zip(xs, grads):
        assert g.shape == x.shape
        assert g.dtype == x.dtype, "gradient dtype must match the input dtype (float32 stays float32)"

    if dtype == "float32":
        # float32 results agree with the float64 computation
        _, _, vjp64 = _programs(op, shapes, params, "float64")
        g64 = _vjp(vjp64, [x.astype(np.float64) for x in xs], w.astype(np.float64))
        for g, r in zip(grads, g64):
            np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-5)
        return

    # An op whose output is float32 (a cast) limits finite differences to float32 precision.
    low = out_aval.dtype == np.float32
    h, rtol = (1e-3, 1e-3) if low else (1e-6, 1e-5)
    xs64 = [x.astype(np.float64) for x in xs]
    for i, x in enumerate(xs64):
        num = np.zeros_like(x)
        for j in np.ndindex(x.shape):
            xp = [v.copy() for v in xs64]
            xm = [v.copy() for v in xs64]
            xp[i][j] += h
            xm[i][j] -= h
            num[j] = np.sum(w * (_f(fwd, xp) - _f(fwd, xm))) / (2 * h)
        np.testing.assert_allclose(grads[i], num, rtol=rtol, atol=rtol / 10, err_msg=f"{op} input {i}")


@pytest.mark.parametrize("op,shapes,params,dtype", [c for c in CASES if c.values[3] == "float64"])
def test_dot_product(op, shapes, params, dtype):
    """<J u, w> (finite differences along u) equals <u, J^T w> (reverse mode)."""
    rng = np.random.default_rng(1)
    prog, fwd, vjp = _programs(op, shapes, params, dtype)
    xs = _inputs(op, shapes, dtype, rng)
    us = [rng.standard_normal(x.shape) for x in xs]
    out_aval = prog.outs[0].aval
    w = rng.standard_normal(out_aval.shape)
    h, rel = (1e-3, 1e-3) if out_aval.dtype == np.float32 else (1e-6, 1e-6)
    jvp = (_f(fwd, [x + h * u for x, u in zip(xs, us)]) - _f(fwd, [x - h * u for x, u in zip(xs, us)])) / (2 * h)
    lhs = float(np.sum(jvp * w))
    rhs = sum(float(np.sum(u * g)) for u, g in zip(us, _vjp(vjp, xs, w)))
    assert lhs == pytest.approx(rhs, rel=rel, abs=rel / 10)


NUMBA_CASES = []
for _op in OPS.values():
    if _op.samples:
        for _k, (_shapes, _params) in enumerate(_op.samples[:2] if _op.kind == "structural" else _op.samples[2:4]):
            NUMBA_CASES.append(pytest.param(_op.name, _shapes, _params, id=f"{_op.name}-{_k}"))


@pytest.mark.parametrize("op,shapes,params", NUMBA_CASES)
def test_numba_matches_numpy(op, shapes, params):
    """The generated source compiles under Numba and agrees with plain numpy, in float32."""
    rng = np.random.default_rng(2)
    dtype = "float32"
    prog, fwd_py, vjp_py = _programs(op, shapes, params, dtype, "python")
    _, fwd_nb, vjp_nb = _programs(op, shapes, params, dtype, "numba")
    xs = _inputs(op, shapes, dtype, rng)
    w = np.asarray(rng.standard_normal(prog.outs[0].shape), dtype=prog.outs[0].dtype)
    a = fwd_py(list(xs))
    b = fwd_nb(list(xs))
    assert a.asnumpy().dtype == b.asnumpy().dtype
    np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6, atol=1e-6)
    for g1, g2 in zip(_vjp(vjp_py, xs, w), _vjp(vjp_nb, xs, w)):
        assert g1.dtype == g2.dtype == np.float32
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6)


def test_every_op_has_samples_and_a_rule():
    for op in OPS.values():
        if op.name in ("fill", "stop_gradient"):
            continue
        assert op.samples, f"{op.name} has no test samples"
        assert op.kind == "elementwise" or op.vjp is not None


def test_elementwise_partials_come_from_sympy():
    import sympy as sp

    sin = OPS["sin"]
    assert sin.partials == (sp.cos(sin.symbols[0]),)
    div = OPS["div"]
    x, y = div.symbols
    assert sp.simplify(div.partials[1] + x / y**2) == 0
