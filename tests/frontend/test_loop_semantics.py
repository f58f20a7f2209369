"""Python semantics kept by loops and branches compiled as regions: the loop index and the
Python numbers a loop carries (or an `if` on a tensor joins) are weakly typed, as the Python
numbers they stand for; a `return` under a tensor condition inside a loop; a list a `for` loop
appends to is the loop's stacked values; NumPy reductions of lists holding tensors. Values are
checked against the function run by Python (unrolled), derivatives against finite differences,
in PYNATIVE and GRAPH mode."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, ops
from s2s_ad.api import trace_program
from s2s_ad.ir import subprograms
from s2s_ad.testing import check_grads


def regions_of(prog) -> list[str]:
    """The region ops of a program, nested ones included (depth first)."""
    out = []
    for e in prog.eqns:
        if e.op in ("cond", "loop", "while"):
            out.append(e.op)
            for sub in subprograms(e):
                out.extend(regions_of(sub))
    return out


def _close(got, want, tol=1e-12):
    got = got if isinstance(got, (tuple, list)) else (got,)
    want = want if isinstance(want, (tuple, list)) else (want,)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g = g.asnumpy() if isinstance(g, Tensor) else np.asarray(g)
        w = w.asnumpy() if isinstance(w, Tensor) else np.asarray(w)
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


X64 = np.array([0.3, -0.2, 0.45])


# ----------------------------------------------------------------------------- weak typing
def index_times_float(x):
    for i in range(9):
        x = x + 0.1 * i * ops.sin(x) - i / 7
    return x


def float_counter(x):
    t = 0.0
    k = 0
    for _ in range(7):
        x = x * 0.9 + t
        t = t + 0.25
        k = k + 1
    return x * t, t, k


def float_counter_while(x):
    t = 0.5
    while x.sum() < 6.0:
        x = x * 1.5 + 0.1
        t = t * 1.25
    return x * t, t


def numbers_joined_by_if(x):
    if (x * x).sum() / 3.0 > 0.1:
        b = 3.0
    else:
        b = 4.5
    return x * b, b


@pytest.mark.parametrize("f", [index_times_float, float_counter, float_counter_while, numbers_joined_by_if])
def test_weakly_typed_numbers_keep_the_tensors_dtype(mode, f):
    """float64 inputs stay float64 throughout (no float32 rounding of `0.1 * i`); float32 inputs
    stay float32; a number standing alone is int64 or float64 as Python's numbers."""
    for x in (X64, X64 * 4.0):
        got = s2s_ad.jit(f)(Tensor(x))
        want = f(Tensor(x))  # run by Python: the loop unrolled, the numbers Python numbers
        _close(got, want)
    got32 = s2s_ad.jit(f)(Tensor(X64.astype(np.float32)))
    first = got32[0] if isinstance(got32, tuple) else got32
    assert first.dtype == s2s_ad.float32


def test_loop_index_is_kept_as_a_loop_and_differentiated(mode):
    assert regions_of(trace_program(index_times_float, Tensor(X64), optimized=False)) == ["loop"]
    check_grads(index_times_float, (Tensor(X64),), atol=1e-6, rtol=1e-6)


def test_number_joined_by_if_is_differentiated(mode):
    check_grads(lambda x: numbers_joined_by_if(x)[0], (Tensor(X64),), atol=1e-6, rtol=1e-6)
    check_grads(lambda x: float_counter_while(x)[0], (Tensor(X64),), atol=1e-6, rtol=1e-6)


def counter_then_tensor_break(x, y):
    i = 0
    while i < 10:
        x = x * 1.5 + y
        if (x * y).sum() > 8.0:
            break
        i = i + 1
    return x * i


def test_python_counter_with_a_tensor_break(mode):
    """The counter the `break` flag guards becomes a weakly typed tensor; the `while` on it a
    region from the iteration where its test turns into a tensor."""
    x, y = Tensor(np.array([1.0, 2.0])), Tensor(np.array([0.5, 0.3]))
    _close(s2s_ad.jit(counter_then_tensor_break)(x, y), counter_then_tensor_break(x, y))
    check_grads(counter_then_tensor_break, (x, y), atol=1e-6, rtol=1e-6)


# ----------------------------------------------------------------------------- return in a loop
def return_in_for(x):
    for i in range(10):
        x = x * 1.3
        if x.sum() > 5.0:
            return x * i
    return -x


def return_in_while(x):
    n = 0
    while n < 20:
        x = ops.sin(x) + x
        if x.max() > 3.0:
            return x * n, n
        n = n + 1
    return x, n


def return_in_nested_loops(x):
    for i in range(6):
        for j in range(5):
            x = x * 1.1 + 0.01 * j
            if x.sum() > 4.0 + i:
                return x * i
    return -x


def return_on_compile_time_test(x):
    for i in range(8):
        x = x * 1.2
        if i == 5:
            return x
    return -x


@pytest.mark.parametrize("f", [return_in_for, return_in_while, return_in_nested_loops, return_on_compile_time_test])
def test_return_inside_a_loop(mode, f):
    """A `return` inside a loop becomes a flag and the returned value carried through the loop,
    with a `break`; the function returns the value after the loop where the flag is set."""
    for x in (X64, X64 * 6.0, -X64):
        _close(s2s_ad.jit(f)(Tensor(x)), f(Tensor(x)))
    if f is return_in_while:
        check_grads(lambda x: return_in_while(x)[0], (Tensor(X64),), atol=1e-6, rtol=1e-6)
    elif f is not return_on_compile_time_test:
        check_grads(f, (Tensor(X64 * 2.0),), atol=1e-6, rtol=1e-6)


def test_return_inside_a_loop_keeps_the_loop():
    assert regions_of(trace_program(return_in_for, Tensor(X64), optimized=False))[0] == "loop"
    assert "while" in regions_of(trace_program(return_in_while, Tensor(X64), optimized=False))


# ----------------------------------------------------------------------------- lists appended in a loop
def stacked_states(x):
    ys = []
    h = x
    for i in range(9):
        h = ops.tanh(h * 1.1 + 0.05 * i)
        ys.append(h * h)
    return ops.stack(ys), np.stack(ys, axis=1).sum()


def list_items_used(x):
    ys = []
    for i in range(6):
        ys.append(x * i)
    return ys[1] + ys[-1] * ys[3]


def test_appended_list_is_the_loops_stacked_values(mode):
    for f in (stacked_states, list_items_used):
        assert regions_of(trace_program(f, Tensor(X64), optimized=False)) == ["loop"]
        _close(s2s_ad.jit(f)(Tensor(X64)), f(Tensor(X64)))
    check_grads(lambda x: stacked_states(x)[0], (Tensor(X64),), atol=1e-6, rtol=1e-6)
    # the stacked values are used as they are: no per-item reassembly in the generated code (the
    # loop's small state is scalarised, so its stacked values are put together once per element
    # of an item, never once per item)
    prog = trace_program(stacked_states, Tensor(X64))
    assert len([e for e in prog.eqns if e.op == "scatter"]) <= X64.size


def list_read_in_the_body(x):
    ys = [x]
    for _ in range(6):
        ys.append(ys[-1] * 0.5 + 1.0)
    return ops.stack(ys).sum()


def test_list_read_in_the_body_is_unrolled(mode):
    assert regions_of(trace_program(list_read_in_the_body, Tensor(X64), optimized=False)) == []
    _close(s2s_ad.jit(list_read_in_the_body)(Tensor(X64)), list_read_in_the_body(Tensor(X64)))


# ----------------------------------------------------------------------------- numpy of lists
def sum_of_list(x):
    return np.sum([1.0, x[0] * x[1] * x[2], 3.0]) + np.mean([x[0], x[1] * 2.0])


def test_numpy_reduction_of_a_list_holding_tensors(mode):
    _close(s2s_ad.jit(sum_of_list)(Tensor(X64)), Tensor(np.asarray(sum_of_list(X64))))
    check_grads(sum_of_list, (Tensor(X64),), atol=1e-6, rtol=1e-6)


# ----------------------------------------------------------------------------- widening carries
ZERO_INT = Tensor(np.array(0, np.int32))


def int_zero_accumulates(x, y):
    i = Tensor(np.array(0, np.int32))
    out = ZERO_INT
    while i < 10:
        if out <= 20.0:
            out = x * y + out
        i = i + 1
    return out


def test_int_carry_widened_by_float_values(mode):
    """An integer tensor a loop adds float values to enters the loop as float (as it leaves the
    first iteration in Python); an `if` whose branches give it int and float is float."""
    x, y = Tensor(np.array(1.0, np.float32)), Tensor(np.array(3.0, np.float32))
    got = s2s_ad.jit(int_zero_accumulates)(x, y)
    assert got.dtype == s2s_ad.float32 and float(got.asnumpy()) == 21.0
    gx, gy = ops.grad(int_zero_accumulates, grad_position=(0, 1))(x, y)
    assert float(gx.asnumpy()) == 21.0 and float(gy.asnumpy()) == 7.0
    # integer inputs are differentiated in float and the gradient cast back, as MindSpore does
    xi, yi = Tensor(np.array(1, np.int32)), Tensor(np.array(3, np.int32))
    gx, gy = ops.grad(int_zero_accumulates, grad_position=(0, 1))(xi, yi)
    assert gx.dtype == s2s_ad.int32 and int(gx.asnumpy()) == 21 and int(gy.asnumpy()) == 7
