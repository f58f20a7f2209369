"""s2s_ad.testing: check_grads passes on correct derivatives and reports wrong ones; explain."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Tensor, nn, ops
from s2s_ad.ir import Lit
from s2s_ad.primitives import OPS
from s2s_ad.testing import GradCheckError, GradCheckReport, check_grads, explain


def elementwise(x, y):
    return ops.sin(x) * y + ops.exp(0.5 * x), ops.tanh(y)


def matmul_sum(a, b):
    return ops.sum(ops.matmul(a, b) ** 2, axis=1)


def reductions(x):
    return ops.mean(x * x, axis=0), ops.sum(ops.log(x)), ops.amax(x, axis=1)


X = np.linspace(0.3, 1.4, 12).reshape(3, 4)


def test_elementwise_order_2(mode):
    y = Tensor(np.linspace(-1.0, 1.0, 12).reshape(3, 4).astype(np.float32))
    report = check_grads(elementwise, (X, y), order=2)
    assert isinstance(report, GradCheckReport)
    text = str(report)
    assert "order 2, rev: vjp of jvp(elementwise)" in text and "order 2, fwd: jvp of vjp(elementwise)" in text
    assert "inputs cast to float64 for the check: y (float32)" in text


def test_matmul_and_reductions(mode):
    check_grads(matmul_sum, (X, np.arange(8.0).reshape(4, 2) / 8), order=1)
    # order 2 in PYNATIVE_MODE only: GRAPH_MODE compiles each derivative of a derivative with Numba
    check_grads(reductions, (X,), order=2 if mode == "python" else 1, modes="rev")
    check_grads(reductions, (X,), order=1, modes=("fwd",))


def test_large_input_uses_a_directional_check(pynative):
    report = check_grads(elementwise, (np.linspace(0.1, 2.0, 100), np.linspace(-1.0, 1.0, 100)), modes="rev")
    assert "rev" in str(report)


class TwoLayers(nn.Cell):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Dense(4, 3, activation="tanh")
        self.out = nn.Dense(3, 2)
        self.scale = s2s_ad.Parameter(Tensor(np.float32(0.5)), name="scale")

    def construct(self, x):
        return self.out(self.hidden(x)) * self.scale


def test_cell_with_parameters(mode):
    s2s_ad.set_seed(1)
    net = TwoLayers()
    before = [p.asnumpy().copy() for p in net.trainable_params()]
    report = check_grads(net, (Tensor(X.astype(np.float32)),), order=2 if mode == "python" else 1)
    assert "Parameters cast to float64" in str(report) and "with respect to its Parameters" in str(report)
    after = net.trainable_params()
    assert all(p.dtype == s2s_ad.float32 for p in after)  # the Parameters are restored
    assert all(np.array_equal(b, a.asnumpy()) for b, a in zip(before, after))


class Projection(nn.Cell):
    def __init__(self):
        super().__init__()
        self.weight = s2s_ad.Parameter(Tensor(np.linspace(-1.0, 1.0, 8).reshape(4, 2)), name="weight")

    def construct(self, x):
        return ops.matmul(x, self.weight)


def test_a_wrong_parameter_gradient_is_reported(monkeypatch, pynative):
    # matmul's reverse rule with the gradient of its second operand (Dense's weight) doubled
    right = OPS["matmul"].vjp

    def wrong(b, eqn, cts, active):
        gx, gy = right(b, eqn, cts, active)
        return [gx, None if gy is None else b.bind1("mul", gy, Lit(2.0, gy.dtype))]

    monkeypatch.setattr(OPS["matmul"], "vjp", wrong)
    net = Projection()  # a Cell of this test only: nothing compiled with the wrong rule is reused
    with pytest.raises(GradCheckError, match="input:  Parameter weight") as info:
        check_grads(net, (Tensor(X),), modes="rev")
    assert info.value.got == pytest.approx(2 * info.value.expected, rel=1e-6)


def wrong_rule(x):
    return ops.mean(ops.sin(x), axis=1)


def test_a_wrong_vjp_rule_is_reported(monkeypatch, pynative):
    # reduce_mean's reverse rule without its 1/n (the forward rule stays right)
    monkeypatch.setattr(OPS["reduce_mean"], "vjp", OPS["reduce_sum"].vjp)
    with pytest.raises(GradCheckError) as info:
        check_grads(wrong_rule, (X,), modes=("fwd", "rev"))
    err = info.value
    assert isinstance(err, AssertionError)
    assert err.mode == "rev" and err.order == 1 and err.input == "x" and err.function == "wrong_rule"
    assert err.abs_err > 0.1 and err.index is not None
    assert err.got == pytest.approx(4 * err.expected, rel=1e-6)  # 4 = the reduced axis' length
    msg = str(err)
    assert "rev derivative of wrong_rule (order 1) is wrong" in msg
    assert "input:  x" in msg and "largest absolute error" in msg and f"at index {list(err.index)}" in msg


def two_outputs(a, b):
    return ops.sum(a), ops.matmul(a, b)


def test_a_wrong_jvp_rule_is_reported_with_the_output_path(monkeypatch, mode):
    # matmul's forward rule without the term of its first operand
    def wrong(b, eqn, tangents):
        return [b.bind1("matmul", eqn.ins[0], tangents[1], **eqn.params)]

    monkeypatch.setattr(OPS["matmul"], "jvp", wrong)
    with pytest.raises(GradCheckError, match=r"fwd derivative of two_outputs \(order 1\)") as info:
        check_grads(two_outputs, (X, X.T), modes="fwd")
    err = info.value
    assert (err.mode, err.input, err.output) == ("fwd", "a", "out[1]")
    assert err.got == 0.0 and abs(err.expected) > 0.01 and len(err.index) == 2
    assert "output: out[1]" in str(err)


def sum_sin(x):
    return ops.sum(ops.sin(x))


def test_order_2_catches_a_wrong_rule_of_the_derivative_code(monkeypatch, pynative):
    """broadcast_to appears only in sum_sin's derivative (the adjoint of the sum): a wrong
    reverse rule for it passes at order 1 and fails at order 2, in the vjp of vjp(sum_sin)."""
    right = OPS["broadcast_to"].vjp

    def doubled(b, eqn, cts, active):
        return [None if r is None else b.bind1("mul", r, Lit(2.0, r.dtype)) for r in right(b, eqn, cts, active)]

    monkeypatch.setattr(OPS["broadcast_to"], "vjp", doubled)
    check_grads(sum_sin, (X,), order=1)
    with pytest.raises(GradCheckError, match=r"rev derivative of vjp\(sum_sin\) \(order 2\)") as info:
        check_grads(sum_sin, (X,), order=2, modes="rev")
    assert info.value.order == 2 and info.value.input == "sens"  # the cotangent argument of vjp(sum_sin)


def test_bad_arguments():
    with pytest.raises(s2s_ad.ArgumentError, match="modes"):
        check_grads(elementwise, (X, X), modes=("backward",))
    with pytest.raises(s2s_ad.ArgumentError, match="order"):
        check_grads(elementwise, (X, X), order=0)
    with pytest.raises(s2s_ad.ArgumentError, match="int64"):
        check_grads(reductions, (np.arange(3),))


def partly(x, y, z):
    a = ops.sin(x) * y
    b = ops.stop_gradient(x) * z
    return a, b, ops.exp(z)


def test_explain(pynative):
    x, y, z = np.linspace(0.1, 1.0, 3), np.linspace(1.0, 2.0, 3), np.linspace(-1.0, 1.0, 3)
    report = explain(partly, x, y, z)
    text = str(report)
    assert s2s_ad.explain is explain
    assert "def partly(x, y, z):" in text and "test_testing.py:" in text  # the source and where
    assert "def vjp_partly(" in text and "# adjoint of test_testing.py:" in text  # derivative, mapped
    assert "FAILED: check_grads: fwd derivative of partly" in text  # stop_gradient differs from FD
    deps = {out: (dep, stopped, never) for out, dep, stopped, never in report.dependencies}
    assert deps["out[0]"] == (["x", "y"], [], ["z"])
    assert deps["out[1]"] == (["z"], ["x"], ["y"])
    assert deps["out[2]"] == (["z"], [], ["x", "y"])
    assert "never affected by: x, y" in text and "through stop_gradient" in text


def test_explain_cell(pynative):
    net = nn.Dense(4, 2)
    text = str(explain(net, Tensor(X.astype(np.float32))))
    assert "def construct(self, x):" in text and "def vjp_Dense(" in text
    assert (
        "4 checks passed" in text
        and "with respect to its Parameters" in text
        and "out depends on: x, weight, bias" in text
    )


def with_tuple_and_integer_output(x, t):
    return x * t[0] + t[1], ops.cast(x * 3, s2s_ad.int32)


def test_tuple_inputs_and_integer_outputs(pynative):
    args = (np.linspace(0.0, 1.0, 4), (np.ones(4), 3.0))
    assert "9 checks passed" in str(check_grads(with_tuple_and_integer_output, args, order=2))
    report = explain(with_tuple_and_integer_output, *args)
    deps = {o: (d, s, n) for o, d, s, n in report.dependencies}
    assert deps["out[0]"] == (["x", "t[0]"], [], [])
    assert deps["out[1]"] == ([], ["x"], ["t[0]"])  # an integer output has no derivative
    # a Python number is a constant of the traced program (check_grads differentiates it as a 0-d array)
    assert "constants of the compiled program (Python numbers, not differentiated): t[1]" in str(report)
