"""Control flow on tensor values in compiled code: ``if``/``elif``/``else`` and conditional
expressions on a tensor test become ``cond`` regions, ``while`` on a tensor test a ``while``
region, ``for`` over ``range``/a tensor/``zip``/``enumerate`` a ``loop`` region (short loops
unrolled); ``return`` under a tensor condition duplicates the rest of the function into the
branches. Each program's compiled value (PYNATIVE and GRAPH mode, shapes that make fused loops)
is checked against the same function run eagerly by Python, and the regions it compiles to are
checked in the traced program. Every error of the frontend of control flow is checked too."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import ShapeError, Tensor, UnsupportedSyntaxError, nn, ops
from s2s_ad.api import generated_source, trace_program
from s2s_ad.errors import NotSupportedError, S2SError
from s2s_ad.ir import subprograms
from s2s_ad.trace.interpreter import Interpreter


def regions_of(prog) -> list[str]:
    """The region ops of a program, nested ones included (depth first)."""
    out = []
    for e in prog.eqns:
        if e.op in ("cond", "loop", "while"):
            out.append(e.op)
            for sub in subprograms(e):
                out.extend(regions_of(sub))
    return out


# ----------------------------------------------------------------------------- programs
def if_else(x):
    if x.sum() > 0:
        y = x * 2.0
    else:
        y = x - 1.0
    return y + 1.0


def if_elif_else(x):
    s = x.sum()
    if s > 2.0:
        y = ops.sin(x)
        z = y * 2.0
    elif s > -2.0:
        y = ops.cos(x)
        z = y
    else:
        y = x
        z = x * x
    return y + z


def if_without_else(x):
    y = x * 3.0
    if x[0] < 0:
        y = -y
    return y


def if_python_number_meets_tensor(x):
    y = 0.0
    if x.mean() > 0:
        y = x * x
    return y + x


def if_tuple_and_one_element_test(x):
    pair = (x, x * 2.0)
    if x.sum(keepdims=True):  # one element, not bool: a test != 0
        pair = (x + 1.0, x)
    return pair[0] * pair[1]


def and_or_not(x):
    s = x.sum()
    if (s > 0 and s < 5.0) or not x[0] > -10.0:
        return x * 2.0
    return x * -1.0


def conditional_expression(x):
    y = ops.exp(x) if x[1] > 0 else x * x
    return y + (1.0 if x[0] > 0 else 2.0)


def early_return(x):
    if x.sum() > 0:
        return ops.sin(x)
    z = x * 3.0
    if x.sum() < -5.0:
        return z
    return z + 1.0


def nested_if_return(x):
    a = x.sum()
    if a > 0:
        if x[0] > 0:
            return x * 1.0, a
        b = a * 2.0
    else:
        b = -a
    return x * b, b


def for_range(x):
    acc = x
    for i in range(2, 20, 3):
        acc = acc * 0.5 + i
    return acc


def for_rows(x):
    s = x[0] * 0.0
    for row in x:
        s = s + ops.sin(row)
    return s


def for_zip_enumerate(x, y):
    acc = x[0] * 0.0
    for k, (a, b) in enumerate(zip(x, y)):
        acc = acc + a * b * k
    return acc


def for_with_counter(x):
    n = 0
    total = 0.0
    for row in x:
        n = n + 1
        total = total + row.sum()
    return total / n


def for_nested_if(x):
    acc = x[0]
    for row in x:
        if row.sum() > 0:
            acc = acc + row
        else:
            acc = acc * 0.5
    return acc


def nested_loops(x):
    acc = x * 0.0
    for i in range(6):
        for j in range(5):
            acc = acc + x * (i - j)
    return acc


def short_loop_unrolled(x):
    for i in range(3):
        x = x * 2.0 + i
    return x


def loop_building_a_list(x):
    ys = []
    for i in range(6):
        ys.append(x * i)
    return ys[1] + ys[-1] * ys[3]


def while_tensor(x):
    n = 0
    while x.sum() < 100.0:
        x = x * 2.0
        n = n + 1
    return x, n


def while_newton_sqrt(a):
    y = a
    while ops.abs(y * y - a).max() > 1e-10:
        y = 0.5 * (y + a / y)
    return y


def break_in_while(x):
    while x.sum() < 100.0:
        x = x * 2.0
        if x[0] > 3.0:
            break
        x = x + 0.5
    return x


def break_and_else_in_for(x):
    for _ in range(10):
        if x.sum() > 20.0:
            break
        x = x * 1.5
    else:
        x = x * 0.0
    return x


def continue_in_for(x):
    acc = x * 0.0
    for row in x:
        if row > 0:
            continue
        acc = acc + row
    return acc


def compile_time_break(x):
    for i in range(10):
        if i == 6:
            break
        x = x + i
    return x


def while_in_if(x):
    if x.sum() > 0:
        while x.max() < 50.0:
            x = x * 3.0
    return x


def while_python(x):
    t = 0.0
    while t < 1.0:
        x = x * 2.0
        t = t + 0.25
    return x


def comprehensions(x):
    parts = [x * k for k in range(1, 4) if k != 2]
    total = sum(p.sum() for p in parts)
    scales = {name: w for name, w in zip(("a", "b"), (2.0, 3.0))}
    return total * scales["a"] + parts[-1] * scales["b"]


def nested_def_and_lambda(x):
    scale = 3.0

    def inner(y, k=2.0):
        return y * k + scale

    square = lambda z: z * z  # noqa: E731
    return square(inner(x)) + inner(x, k=-1.0)


class LoopCell(nn.Cell):
    """A Cell whose construct keeps a loop over a weight and uses a tensor `if`."""

    def __init__(self):
        super().__init__()
        self.w = s2s_ad.Parameter(Tensor(np.linspace(0.5, 1.0, 4)), name="w")

    def construct(self, x):
        h = x
        for _ in range(8):
            h = ops.tanh(h * self.w + 0.1)
            if h.sum() > 100.0:
                h = h * 0.0
        return h


X = np.array([1.0, -2.0, 3.0, 0.5])
V = np.array([1.0, -2.0, 3.0, -0.5, -1.0, 2.0])
M = np.arange(12.0).reshape(6, 2) / 7.0 - 0.6
CASES = {
    # name: (function, inputs, regions in the traced program)
    "if_else": (if_else, [[X], [-X]], ["cond"]),
    "if_elif_else": (if_elif_else, [[X], [-X], [X * 0.1]], ["cond", "cond"]),
    "if_without_else": (if_without_else, [[X], [-X]], ["cond"]),
    "if_python_number_meets_tensor": (if_python_number_meets_tensor, [[X], [-X]], ["cond"]),
    "if_tuple_and_one_element_test": (if_tuple_and_one_element_test, [[X], [X - X.mean()]], ["cond"]),
    "and_or_not": (and_or_not, [[X], [-X], [X * 5.0]], ["cond"]),
    "conditional_expression": (conditional_expression, [[X], [-X]], ["cond", "cond"]),
    "early_return": (early_return, [[X], [-X], [-3.0 * X]], ["cond", "cond"]),
    "nested_if_return": (nested_if_return, [[X], [-X], [X - [4.0, 0, 0, 0]]], ["cond", "cond"]),
    "for_range": (for_range, [[X]], ["loop"]),
    "for_rows": (for_rows, [[M]], ["loop"]),
    "for_zip_enumerate": (for_zip_enumerate, [[M, M[::-1] * 2.0]], ["loop"]),
    "for_with_counter": (for_with_counter, [[M]], ["loop"]),
    "for_nested_if": (for_nested_if, [[M], [-M]], ["loop", "cond"]),
    "nested_loops": (nested_loops, [[X]], ["loop", "loop"]),
    "short_loop_unrolled": (short_loop_unrolled, [[X]], []),
    # the list is the loop's stacked values (one item appended per iteration)
    "loop_building_a_list": (loop_building_a_list, [[X]], ["loop"]),
    "while_tensor": (while_tensor, [[X]], ["while"]),
    "while_newton_sqrt": (while_newton_sqrt, [[np.array([2.0, 9.0, 0.25, 5.0])]], ["while"]),
    "break_in_while": (break_in_while, [[X], [X * 0.1]], ["while", "cond", "cond"]),
    # the `for` guards its body and its `else` by the `break` flag
    "break_and_else_in_for": (break_and_else_in_for, [[X * 4.0], [-X]], ["loop", "cond", "cond", "cond", "cond"]),
    "continue_in_for": (continue_in_for, [[V], [-V]], ["loop", "cond", "cond"]),
    # inside the loop `i` is a tensor: `i == 6` is a tensor test
    "compile_time_break": (compile_time_break, [[X]], ["loop", "cond", "cond", "cond"]),
    "while_in_if": (while_in_if, [[X], [-X]], ["cond", "while"]),
    "while_python": (while_python, [[X]], []),
    "comprehensions": (comprehensions, [[X]], []),
    "nested_def_and_lambda": (nested_def_and_lambda, [[X]], []),
}


def _close(got, want):
    got_leaves = got if isinstance(got, (tuple, list)) else (got,)
    want_leaves = want if isinstance(want, (tuple, list)) else (want,)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves):
        w = w.asnumpy() if isinstance(w, Tensor) else np.asarray(w)
        g = g.asnumpy() if isinstance(g, Tensor) else np.asarray(g)
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_match_python(mode, name):
    """The compiled program gives what Python gives running the function on Tensors."""
    f, inputs, _ = CASES[name]
    compiled = s2s_ad.jit(f)
    for args in inputs:
        tensors = [Tensor(np.asarray(a, np.float64)) for a in args]
        _close(compiled(*tensors), f(*tensors))


@pytest.mark.parametrize("name", sorted(CASES))
def test_regions_are_kept(name):
    """Tensor tests and long loops become regions (nested ones inside their parents'
    sub-programs); short loops, loops building lists and compile-time `while`s are unrolled."""
    f, inputs, regions = CASES[name]
    avals = [Tensor(np.asarray(a, np.float64)) for a in inputs[0]]
    assert regions_of(trace_program(f, *avals, optimized=False)) == regions


def test_cell_with_a_loop_and_parameters(mode):
    net = LoopCell()
    x = Tensor(np.array([0.3, -0.2, 0.8, 1.5]))
    want = x.asnumpy()
    for _ in range(8):
        want = np.tanh(want * np.linspace(0.5, 1.0, 4) + 0.1)
    np.testing.assert_allclose(net(x).asnumpy(), want, rtol=1e-12)
    assert regions_of(trace_program(net, x, optimized=False)) == ["loop", "cond"]


def test_generated_code_of_a_loop_is_independent_of_the_trip_count():
    def integrate(n):
        def f(x):
            for _ in range(n):
                x = x + 0.01 * ops.sin(x)
            return x

        return f

    x = Tensor(np.ones(3))
    sources = [generated_source(integrate(n), x, target=t) for n in (10, 10_000) for t in ("numpy", "numba")]
    assert len(sources[0].splitlines()) == len(sources[2].splitlines())
    assert len(sources[1].splitlines()) == len(sources[3].splitlines())
    assert "for i in range(10000):" in sources[2]


def test_nested_def_sees_later_assignments_of_its_enclosing_scope(mode):
    def f(x):
        def g():
            return x * k

        k = 2.0
        first = g()
        k = 5.0
        return first + g()

    x = Tensor(X)
    np.testing.assert_allclose(s2s_ad.jit(f)(x).asnumpy(), 7.0 * X)


def test_lambda_as_the_function_differentiated():
    g = s2s_ad.grad(lambda t: (t * t).sum())(Tensor(X))
    np.testing.assert_allclose(g.asnumpy(), 2.0 * X)


# ----------------------------------------------------------------------------- errors
def branch_shapes_differ(x):
    if x.sum() > 0:
        y = x
    else:
        y = x[:2]
    return y


def branch_static_differs(x):
    if x.sum() > 0:
        n = "one"
    else:
        n = "two"
    return x * len(n)


def one_branch_only(x):
    if x.sum() > 0:
        y = x * 2.0
    return y


def returns_differ(x):
    if x.sum() > 0:
        return x, x
    return x


def carry_changes_shape(x):
    while x.sum() < 10.0:
        x = x[1:] * 2.0
    return x


def tensor_test_of_many_elements(x):
    if x > 0:
        return x
    return -x


def compile_time_while_forever(x):
    n = 0
    while n < 10:
        x = x * 2.0
    return x


def list_grows_in_while(x):
    ys = []
    while x.sum() < 10.0:
        x = x * 2.0
        ys.append(x)
    return x


def loop_variable_after_loop(x):
    for i in range(10):  # noqa: B007
        x = x * 2.0
    return x * i


def temporary_after_loop(x):
    for _ in range(10):
        t = x * 2.0
        x = t + 1.0
    return t


ERRORS = {
    "branch_shapes_differ": (branch_shapes_differ, ShapeError, ["`y`", "(4,)", "(2,)", "same shape"]),
    "branch_static_differs": (branch_static_differs, ShapeError, ["`n`", "compile-time values", "one", "two"]),
    "one_branch_only": (one_branch_only, UnsupportedSyntaxError, ["`y`", "only one branch"]),
    "returns_differ": (returns_differ, ShapeError, ["returned value"]),
    "carry_changes_shape": (carry_changes_shape, ShapeError, ["`x`", "(4,)", "(3,)", "keeps its shape"]),
    "tensor_test_of_many_elements": (tensor_test_of_many_elements, ShapeError, ["(4,)", "exactly one element"]),
    "list_grows_in_while": (list_grows_in_while, S2SError, ["`ys`", "`while` loop"]),
    "loop_variable_after_loop": (loop_variable_after_loop, UnsupportedSyntaxError, ["`i`", "kept as a loop"]),
    "temporary_after_loop": (temporary_after_loop, UnsupportedSyntaxError, ["`t`", "before the loop"]),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_name_the_line_and_the_variable(name):
    f, cls, words = ERRORS[name]
    with pytest.raises(cls) as ei:
        s2s_ad.jit(f)(Tensor(X))
    msg = str(ei.value)
    assert msg.startswith(__file__), msg
    for w in words:
        assert w in msg, (w, msg)


def test_compile_time_while_has_a_cap(monkeypatch):
    monkeypatch.setattr(Interpreter, "WHILE_MAX", 50)
    with pytest.raises(UnsupportedSyntaxError, match="ran 50 iterations while compiling"):
        s2s_ad.jit(compile_time_while_forever)(Tensor(X))


def test_cuda_target_rejects_regions_clearly():
    with pytest.raises(NotSupportedError, match="does not compile control flow on tensors: a `for` loop"):
        generated_source(for_range, Tensor(X), target="cuda")


# ----------------------------------------------------------------------------- indexing with the loop variable
def running_sum(x):
    out = x * 0.0
    acc = x[0] * 0.0
    for i in range(x.shape[0]):
        acc = acc + x[i]
        out[i] = acc  # a functional update: `out` is carried through the loop
    return out


def test_loop_indexing_with_its_variable_is_kept_as_a_loop(mode):
    x = np.arange(1.0, 7.0)
    np.testing.assert_allclose(s2s_ad.jit(running_sum)(Tensor(x)).asnumpy(), np.cumsum(x))
    assert regions_of(trace_program(running_sum, Tensor(x), optimized=False)) == ["loop"]
    # the adjoint gathers from a computed value (printed in parentheses before its index)
    g = s2s_ad.grad(lambda t: (running_sum(t) ** 2).sum())(Tensor(x))
    c = np.cumsum(x)
    np.testing.assert_allclose(g.asnumpy(), np.cumsum((2 * c)[::-1])[::-1], rtol=1e-12)
