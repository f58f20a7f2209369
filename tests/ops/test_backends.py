"""Every op of the table in every backend: the namespaces of functions that the printers call are
complete (numpy code, the Numba backend's fused loops, the CUDA kernels), and every elementwise
op computes its value, first and second derivative in the Numba backend as in numpy, at a shape
that makes a fused loop (a 2-D input, a broadcast pair) and at 0-d (scalar code). The CUDA
target runs the same programs in ``tests/cuda/test_elementwise.py``; the per-op tests
(``test_op_table.py``) check numpy's derivatives against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from _harness import all_elementwise, vjp_of

from s2s_ad import cpumath
from s2s_ad.codegen import LOOP_NS, function_names, generate, loop_namespace
from s2s_ad.ir import Program
from s2s_ad.opt import optimize
from s2s_ad.primitives import ELEMENTWISE
from s2s_ad.runtime import Compiled


def test_every_function_of_the_table_is_in_every_namespace():
    """A function that an op computes, or that a printer calls, is defined in numpy (PYNATIVE
    code), in the fused loops' namespace and in the CUDA kernels' namespace."""
    functions = {op.function for op in ELEMENTWISE if op.function is not None}
    assert {"exp", "expm1", "log1p", "arctanh", "maximum", "where"} <= functions
    vm = loop_namespace()
    assert not [n for n in function_names("np") if not callable(getattr(np, n, None))]
    assert not [n for n in set(function_names(LOOP_NS)) | functions if not callable(getattr(vm, n, None))]
    assert callable(vm.sum_add)
    pytest.importorskip("numba_cuda", reason="the CUDA target needs numba-cuda")
    from s2s_ad.cuda import device_function_names, device_namespace

    dm = device_namespace()
    assert not [n for n in set(device_function_names()) | functions if not callable(getattr(dm, n, None))]


def test_the_loop_namespace_takes_cpumath_kernels_else_numpy():
    vm = loop_namespace()
    for name, kernel in cpumath.KERNELS.items():
        assert getattr(vm, name) is kernel
    assert vm.expm1 is np.expm1 and vm.arctanh is np.arctanh and vm.sum_add is cpumath.sum_add


def _leaves(x) -> list[np.ndarray]:
    if isinstance(x, (tuple, list)):
        return [leaf for v in x for leaf in _leaves(v)]
    return [x.asnumpy()]


def test_every_elementwise_op_runs_in_a_fused_loop():
    """At the shapes of :func:`all_elementwise` (``which`` 0), the Numba backend computes every
    op in a fused loop (which call the loop namespace's functions): the per-op tests
    (``test_op_table.py``) and the second derivatives below run these shapes."""
    prog, _, _ = all_elementwise("float64", 0)
    src = generate(optimize(prog), "f", fuse=True)
    called = {f"{LOOP_NS}.{op.function}(" for op in ELEMENTWISE if op.printer[0] == "call"}
    assert not [c for c in called if c not in src]
    assert "for i0 in range(" in src


def second_order(dtype: str, which: int) -> tuple[Program, list[np.ndarray]]:
    """The program of second derivatives (reverse over reverse mode) of every elementwise op
    applied to its own inputs (``which`` as in :func:`all_elementwise`: 0 for 2-D inputs and
    broadcast pairs, which make fused loops), and its arguments."""
    prog, xs, _ = all_elementwise(dtype, which)
    first = vjp_of(prog)
    rng = np.random.default_rng(1)
    ws = [np.asarray(rng.standard_normal(o.shape), o.dtype) for p in (prog, first) for o in p.outs]
    return vjp_of(first), xs + ws


def test_second_derivatives_of_every_elementwise_op_in_fused_loops_match_numpy():
    """The second derivatives of every elementwise op in the Numba backend's fused loops agree
    with numpy's (float64; ``test_op_table.py`` compares each op's value and first derivatives
    in float32, in fused loops and at 0-d, and ``test_higher_order_ops.py`` numpy's higher
    derivatives with finite differences)."""
    program, args = second_order("float64", 0)
    got = _leaves(Compiled(program, "numba")(args))
    want = _leaves(Compiled(program, "python")(args))
    assert len(got) == len(want) == len(program.outs)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, f"output {k}"
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13, err_msg=f"output {k}")
