"""Per-op tests generated from the op table: every entry, every sample shape, float64 and
float32, reverse mode checked against central finite differences and by the dot-product test
(<J u, w> from a finite-difference directional derivative vs <u, J^T w> from the vjp), forward
mode checked against central finite differences and against reverse mode (<J u, w> from the
jvp vs <u, J^T w> from the vjp), and the Numba backend checked against the numpy backend.

What the harness (``_harness.py``, shared with ``test_higher_order_ops.py``) needs to know
about an op comes from its table entry: ``domain`` (where inputs are drawn), ``bool_inputs``
(inputs drawn as random bool tensors and never differentiated), ``distinct_inputs`` (the
derivative jumps where values tie, so values are drawn well apart) and the op's shape/dtype
rule (an op whose output is not a float tensor, a comparison, has no derivative: its gradients
and tangents must be zero)."""

from __future__ import annotations

import numpy as np
import pytest
from _harness import along, differentiable, float_inputs, inputs, tangents, trace_op

from s2s_ad.ad.forward import jvp_program
from s2s_ad.derivatives import grad_program
from s2s_ad.primitives import OPS
from s2s_ad.runtime import Compiled

CASES = []
for _op in OPS.values():
    for _k, (_shapes, _params) in enumerate(_op.samples):
        for _dt in ("float64", "float32"):
            CASES.append(pytest.param(_op.name, _shapes, _params, _dt, id=f"{_op.name}-{_k}-{_dt}"))


def _programs(op: str, shapes, params, dtype, backend="python"):
    prog = trace_op(op, shapes, params, dtype)
    fwd = Compiled(prog, backend)
    vjp = Compiled(grad_program(prog, list(range(len(shapes))), [], sens_param=True), backend)
    return prog, fwd, vjp


def _jvp_program(op: str, shapes, params, dtype, backend="python"):
    """Forward mode with respect to every float input: (x..., u...) -> (f(x), J u)."""
    prog = trace_op(op, shapes, params, dtype)
    return prog, Compiled(jvp_program(prog, float_inputs(op, shapes)), backend)


def _cotangent(aval, rng):
    return np.asarray(rng.standard_normal(aval.shape), dtype=aval.dtype)


def _f(fwd, xs):
    return np.asarray(fwd(list(xs)).asnumpy(), dtype=np.float64)


def _vjp(vjp, xs, w):
    _, grads, _ = vjp(list(xs) + [w])
    return [g.asnumpy() for g in grads]


@pytest.mark.parametrize("op,shapes,params,dtype", CASES)
def test_vjp_against_finite_differences(op, shapes, params, dtype):
    rng = np.random.default_rng(0)
    prog, fwd, vjp = _programs(op, shapes, params, dtype)
    xs = inputs(op, shapes, dtype, rng, params)
    out_aval = prog.outs[0].aval
    w = np.asarray(rng.standard_normal(out_aval.shape), dtype=out_aval.dtype)
    grads = _vjp(vjp, xs, w)
    for x, g in zip(xs, grads):
        assert g.shape == x.shape
        assert g.dtype == x.dtype, "gradient dtype must match the input dtype (float32 stays float32)"
    for i in OPS[op].bool_inputs:
        assert not np.any(grads[i]), "a bool input is never differentiated"
    if out_aval.dtype.kind != "f":
        # No derivative (a comparison): every gradient is zero.
        for g in grads:
            assert not np.any(g)
        return

    if dtype == "float32":
        # float32 results agree with the float64 computation
        _, _, vjp64 = _programs(op, shapes, params, "float64")
        g64 = _vjp(vjp64, [x.astype(np.float64) if x.dtype.kind == "f" else x for x in xs], w.astype(np.float64))
        for g, r in zip(grads, g64):
            np.testing.assert_allclose(g, r, rtol=2e-4, atol=2e-5)
        return

    # An op whose output is float32 (a cast) limits finite differences to float32 precision.
    low = out_aval.dtype == np.float32
    h, rtol = (1e-3, 1e-3) if low else (1e-6, 1e-5)
    xs64 = [x.astype(np.float64) if x.dtype.kind == "f" else x for x in xs]
    for i in float_inputs(op, shapes):
        x = xs64[i]
        num = np.zeros_like(x)
        for j in np.ndindex(x.shape):
            xp = [v.copy() for v in xs64]
            xm = [v.copy() for v in xs64]
            xp[i][j] += h
            xm[i][j] -= h
            num[j] = np.sum(w * (_f(fwd, xp) - _f(fwd, xm))) / (2 * h)
        np.testing.assert_allclose(grads[i], num, rtol=rtol, atol=rtol / 10, err_msg=f"{op} input {i}")


CASES_F64 = [c for c in CASES if c.values[3] == "float64"]
# Cases with a derivative to check (a comparison's output is a bool tensor: none).
DIFF_CASES_F64 = [c for c in CASES_F64 if differentiable(*c.values[:3])]


@pytest.mark.parametrize("op,shapes,params,dtype", DIFF_CASES_F64)
def test_dot_product(op, shapes, params, dtype):
    """<J u, w> (finite differences along u) equals <u, J^T w> (reverse mode)."""
    rng = np.random.default_rng(1)
    prog, fwd, vjp = _programs(op, shapes, params, dtype)
    xs = inputs(op, shapes, dtype, rng, params)
    us = tangents(xs, rng)
    out_aval = prog.outs[0].aval
    w = rng.standard_normal(out_aval.shape)
    h, rel = (1e-3, 1e-3) if out_aval.dtype == np.float32 else (1e-6, 1e-6)
    jvp = (_f(fwd, along(xs, us, h)) - _f(fwd, along(xs, us, -h))) / (2 * h)
    lhs = float(np.sum(jvp * w))
    rhs = sum(float(np.sum(u * g)) for u, g in zip(us, _vjp(vjp, xs, w)) if u is not None)
    assert lhs == pytest.approx(rhs, rel=rel, abs=rel / 10)


def _jvp(jvp, xs, us):
    value, tangent = jvp(list(xs) + [u for u in us if u is not None])
    return value.asnumpy(), tangent.asnumpy()


@pytest.mark.parametrize("op,shapes,params,dtype", CASES_F64)
def test_jvp_against_finite_differences(op, shapes, params, dtype):
    """Forward mode: the tangent J u equals central finite differences along u."""
    rng = np.random.default_rng(3)
    prog, jvp = _jvp_program(op, shapes, params, dtype)
    fwd = Compiled(prog, "python")
    xs = inputs(op, shapes, dtype, rng, params)
    us = tangents(xs, rng)
    value, tangent = _jvp(jvp, xs, us)
    out_aval = prog.outs[0].aval
    # two programs computing the value: equal up to the last bits of float sums
    np.testing.assert_allclose(value, fwd(list(xs)).asnumpy(), rtol=1e-13, atol=1e-300)
    assert tangent.shape == out_aval.shape and tangent.dtype == out_aval.dtype
    if out_aval.dtype.kind != "f":
        assert not np.any(tangent), "an op without a derivative has a zero tangent"
        return
    low = out_aval.dtype == np.float32
    h, rtol = (1e-3, 1e-3) if low else (1e-6, 1e-6)
    num = (_f(fwd, along(xs, us, h)) - _f(fwd, along(xs, us, -h))) / (2 * h)
    np.testing.assert_allclose(tangent, num, rtol=rtol, atol=rtol / 10)


@pytest.mark.parametrize("op,shapes,params,dtype", DIFF_CASES_F64)
def test_forward_matches_reverse(op, shapes, params, dtype):
    """<J u, w> from forward mode equals <u, J^T w> from reverse mode to rounding error."""
    rng = np.random.default_rng(4)
    prog, jvp = _jvp_program(op, shapes, params, dtype)
    _, _, vjp = _programs(op, shapes, params, dtype)
    xs = inputs(op, shapes, dtype, rng, params)
    us = tangents(xs, rng)
    out_aval = prog.outs[0].aval
    w = _cotangent(out_aval, rng)
    _, tangent = _jvp(jvp, xs, us)
    lhs = float(np.sum(tangent.astype(np.float64) * w))
    rhs = sum(float(np.sum(u * g)) for u, g in zip(us, _vjp(vjp, xs, w)) if u is not None)
    # a float32 output (a cast) rounds the tangent to float32
    rel = 1e-10 if out_aval.dtype == np.float64 else 1e-6
    assert lhs == pytest.approx(rhs, rel=rel, abs=rel)


def _numba_samples(op) -> list:
    """The samples the Numba backend is checked on: an elementwise op at a shape that makes a
    fused loop (2-D, or a broadcast pair) and at 0-d (scalar code) or a two-way broadcast."""
    if op.kind == "structural":
        return op.samples[:2]
    return op.samples[1:3] if op.nin == 1 else op.samples[2:4]


NUMBA_CASES = []
for _op in OPS.values():
    for _k, (_shapes, _params) in enumerate(_numba_samples(_op)):
        NUMBA_CASES.append(pytest.param(_op.name, _shapes, _params, id=f"{_op.name}-{_k}"))


@pytest.mark.parametrize("op,shapes,params", NUMBA_CASES)
def test_numba_matches_numpy(op, shapes, params):
    """The generated source compiles under Numba and agrees with plain numpy, in float32."""
    rng = np.random.default_rng(2)
    dtype = "float32"
    prog, fwd_py, vjp_py = _programs(op, shapes, params, dtype, "python")
    _, fwd_nb, vjp_nb = _programs(op, shapes, params, dtype, "numba")
    xs = inputs(op, shapes, dtype, rng, params)
    w = _cotangent(prog.outs[0].aval, rng)
    a = fwd_py(list(xs))
    b = fwd_nb(list(xs))
    assert a.asnumpy().dtype == b.asnumpy().dtype == prog.outs[0].dtype
    np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-6, atol=1e-6)
    for x, g1, g2 in zip(xs, _vjp(vjp_py, xs, w), _vjp(vjp_nb, xs, w)):
        assert g1.dtype == g2.dtype == x.dtype
        np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op,shapes,params", NUMBA_CASES)
def test_numba_matches_numpy_forward_mode(op, shapes, params):
    """The forward-mode program compiles under Numba and agrees with plain numpy, in float32."""
    rng = np.random.default_rng(5)
    prog, jvp_py = _jvp_program(op, shapes, params, "float32", "python")
    _, jvp_nb = _jvp_program(op, shapes, params, "float32", "numba")
    xs = inputs(op, shapes, "float32", rng, params)
    us = [None if u is None else u.astype(np.float32) for u in tangents(xs, rng)]
    for a, b in zip(_jvp(jvp_py, xs, us), _jvp(jvp_nb, xs, us)):
        assert a.dtype == b.dtype == prog.outs[0].dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_every_op_has_samples_and_a_rule():
    for op in OPS.values():
        if op.name in ("fill", "stop_gradient", "custom") or op.kind == "region":
            continue  # regions: tests/regions/; custom: tests/api/test_custom_derivatives.py
        assert op.samples, f"{op.name} has no test samples"
        assert op.kind == "elementwise" or (op.vjp is not None and op.jvp is not None)


def test_elementwise_partials_come_from_sympy():
    import sympy as sp

    sin = OPS["sin"]
    assert sin.partials == (sp.cos(sin.symbols[0]),)
    div = OPS["div"]
    x, y = div.symbols
    assert sp.simplify(div.partials[1] + x / y**2) == 0


BILINEAR_CASES = [c for c in CASES_F64 if OPS[c.values[0]].bilinear]


@pytest.mark.parametrize("op,shapes,params,dtype", BILINEAR_CASES)
def test_bilinear_ops_are_linear_in_each_input(op, shapes, params, dtype):
    """An op marked ``bilinear`` (opt.factor_products writes sums of its products as one
    product of a sum) is linear in each input with the other fixed."""
    rng = np.random.default_rng(5)
    _, fwd, _ = _programs(op, shapes, params, dtype)
    xs = inputs(op, shapes, dtype, rng, params)
    for side in (0, 1):
        other = inputs(op, shapes, dtype, rng, params)[side]
        a, b, both = list(xs), list(xs), list(xs)
        b[side] = other
        both[side] = xs[side] + 2.5 * other
        np.testing.assert_allclose(_f(fwd, both), _f(fwd, a) + 2.5 * _f(fwd, b), rtol=1e-12, atol=1e-12)
