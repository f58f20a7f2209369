"""Every elementwise op of the op table runs on the CUDA target, value, first and second
derivative, in float32 and float64, and agrees with the Numba backend (the second derivative
with numpy); its device functions come from the op table."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="the CUDA target needs numba-cuda")

from _programs import all_elementwise, vjp_of  # noqa: E402

from s2s_ad.cuda import device_function_names, device_namespace, devicemath  # noqa: E402
from s2s_ad.primitives import ELEMENTWISE  # noqa: E402
from s2s_ad.runtime import Compiled  # noqa: E402

TOL = {"float32": dict(rtol=2e-5, atol=2e-6), "float64": dict(rtol=1e-12, atol=1e-13)}


def test_device_functions_come_from_the_op_table():
    names = device_function_names()
    # the call printers, and the functions the templates use (sigmoid: exp, relu: maximum, ...)
    assert {op.printer[1] for op in ELEMENTWISE if op.printer[0] == "call"} <= set(names)
    assert {"exp", "maximum", "sign", "where"} <= set(names)
    dm = device_namespace()
    missing = [n for n in names if not callable(getattr(dm, n, None))]
    assert not missing, f"the device namespace lacks {missing}"
    # devicemath's own helpers where it has one, else a device function of the op's lowering
    assert dm.square is devicemath.square and dm.where is devicemath.where
    assert dm.expm1(np.float32(1e-10)) == np.expm1(np.float32(1e-10))  # numpy's in the simulator


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_elementwise_op_and_its_derivative_match_numba(dtype, cuda_usable):
    _check(dtype, 0, "numba")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_elementwise_op_on_scalars_and_broadcasts(dtype, cuda_usable):
    # 0-d inputs (single-thread kernels) and broadcasting (2, 1) with (1, 3) inputs, whose
    # gradients reduce in both directions; numpy is the reference (the Numba backend is
    # checked against it in tests/ops)
    _check(dtype, 1, "python")


def _check(dtype: str, which: int, reference: str) -> None:
    prog, xs, labels = all_elementwise(dtype, which)
    assert len(labels) == len(ELEMENTWISE)
    rng = np.random.default_rng(1)
    ws = [np.asarray(rng.standard_normal(o.shape), o.dtype) for o in prog.outs]
    first = vjp_of(prog)
    ws2 = [np.asarray(rng.standard_normal(o.shape), o.dtype) for o in first.outs]
    # value, first and second derivatives (the second against numpy: one Numba compile less)
    for program, args, ref in (
        (prog, xs, reference),
        (first, xs + ws, reference),
        (vjp_of(first), xs + ws + ws2, "python"),
    ):
        got = _leaves(Compiled(program, "cuda")(args))
        want = _leaves(Compiled(program, ref)(args))
        assert len(got) == len(want)
        for k, (g, w) in enumerate(zip(got, want)):
            what = labels[k] if program is prog else f"{'first' if program is first else 'second'} derivative {k}"
            assert g.dtype == w.dtype, what
            assert g.shape == w.shape, what
            if g.dtype.kind == "f":
                np.testing.assert_allclose(g, w, **TOL[dtype], err_msg=what)
            else:
                np.testing.assert_array_equal(g, w, err_msg=what)


def _leaves(x) -> list[np.ndarray]:
    if isinstance(x, (tuple, list)):
        return [leaf for v in x for leaf in _leaves(v)]
    return [x.asnumpy()]
