"""Argument handling that never returns a wrong or empty answer: integer, bool and float16
inputs, Python numbers and dicts where a derivative is taken, Cells in lists, custom bprop,
NumPy functions on Tensors, unsupported dtypes, big-endian arrays and ``@jit`` on construct."""

from __future__ import annotations

import numpy as np
import pytest

import s2s_ad
from s2s_ad import NotSupportedError, Parameter, ParameterTuple, Tensor, jit, nn, ops, runtime
from s2s_ad.errors import ArgumentError, ArgumentValueError
from s2s_ad.jacobians import hessian, hvp, jacfwd, jacrev
from s2s_ad.ops import GradOperation


def sin_x(x):
    return ops.sin(x) * x


def times6(n):
    return n * 6


def total(x):
    return ops.sum(ops.sin(x) * x)


def d_sin_x(x):
    return np.sin(x) + x * np.cos(x)


# A 2-D integer input (fused loops in GRAPH mode).
INTS = np.array([[1, 3, -2, 5, 0], [4, -1, 2, 7, 6]], np.int32)


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- integer inputs
def test_int_input_float_gradient_cast_once(mode):
    g = GradOperation()(sin_x)(Tensor(np.array([1, 3], np.int32)))
    assert g.dtype == s2s_ad.int32
    assert g.asnumpy().tolist() == [1, -2]  # trunc(1.38), trunc(-2.83); not [0, -2]
    g = GradOperation()(sin_x)(Tensor(INTS))
    assert g.shape == INTS.shape and g.dtype == s2s_ad.int32
    np.testing.assert_array_equal(g.asnumpy(), np.trunc(d_sin_x(INTS.astype(np.float64))).astype(np.int32))


def test_int_only_arithmetic_gets_a_gradient(mode):
    g = GradOperation()(times6)(Tensor(np.array([10], np.int32)))
    assert g.asnumpy().tolist() == [6] and g.dtype == s2s_ad.int32
    value, grad = s2s_ad.value_and_grad(times6)(Tensor(INTS))
    assert value.dtype == s2s_ad.int32  # the value is the function's own integer result
    np.testing.assert_array_equal(value.asnumpy(), INTS * 6)
    np.testing.assert_array_equal(grad.asnumpy(), np.full(INTS.shape, 6))


def test_int_inputs_every_api(mode):
    xi = Tensor(INTS)
    expected = np.trunc(d_sin_x(INTS.astype(np.float64))).astype(np.int32)
    grads = GradOperation(get_all=True)(sin_x)(xi)
    np.testing.assert_array_equal(grads[0].asnumpy(), expected)
    np.testing.assert_array_equal(s2s_ad.grad(sin_x, grad_position=(0,))(xi).asnumpy(), expected)
    out, g = s2s_ad.vjp(sin_x, xi, Tensor(np.ones(INTS.shape, np.float32)))
    close(out, np.sin(INTS) * INTS)
    np.testing.assert_array_equal(g.asnumpy(), expected)
    out, g = nn.Vjp(sin_x)(xi, Tensor(np.ones(INTS.shape, np.float32)))
    np.testing.assert_array_equal(g.asnumpy(), expected)
    value, (g,) = nn.ForwardValueAndGrad(sin_x, get_all=True)(xi)
    np.testing.assert_array_equal(g.asnumpy(), expected)
    # forward mode: a float tangent of an integer input is not truncated
    v = np.full(INTS.shape, 0.5, np.float32)
    out, t = s2s_ad.jvp(sin_x, xi, Tensor(v))
    assert t.dtype == s2s_ad.float32
    close(t, d_sin_x(INTS.astype(np.float64)) * 0.5, 1e-4)
    out, t = nn.Jvp(times6)(Tensor(np.array([10], np.int32)), Tensor(np.array([0.5], np.float32)))
    assert out.asnumpy().tolist() == [60] and t.asnumpy().tolist() == [3]


def test_int_second_order_and_jacobians(mode):
    xi = Tensor(np.array([1, 3], np.int32))
    second = GradOperation()(GradOperation()(sin_x))(xi)
    x = np.array([1.0, 3.0])
    np.testing.assert_array_equal(second.asnumpy(), np.trunc(2 * np.cos(x) - x * np.sin(x)))
    close(jacrev(sin_x)(xi), np.diag(d_sin_x(x)))
    close(jacfwd(sin_x)(xi), np.diag(d_sin_x(x)))
    close(hessian(total)(xi), np.diag(2 * np.cos(x) - x * np.sin(x)), 1e-4)
    assert hvp(total, xi, Tensor([1.0, 1.0])).asnumpy().tolist() == [0, -2]
    # a Jacobian too large to unroll (evaluated in a loop from Python)
    big = Tensor(INTS[:, :3].copy())
    ref = jacrev(sin_times_sum)(Tensor(INTS[:, :3].astype(np.float32)))
    close(jacrev(sin_times_sum)(big), ref, 1e-5)
    close(jacfwd(sin_times_sum)(big), ref, 1e-5)


def sin_times_sum(x):
    return ops.sin(x) * ops.sum(x)


def labels_and_square(n, k):
    return ops.one_hot(k, 3) * n * n


def test_int_input_used_as_indices(mode):
    # sparse labels feed OneHot, which takes integers only: they stay integers, and get zeros
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True)
    logits = Tensor(np.array([[1.0, 2.0, 0.5], [0.1, 0.2, 3.0]], np.float32))
    labels = Tensor(np.array([1, 2], np.int32))
    g_logits, g_labels = GradOperation(get_all=True)(loss)(logits, labels)
    p = np.exp(logits.asnumpy()) / np.exp(logits.asnumpy()).sum(1, keepdims=True)
    close(g_logits, p - np.eye(3)[[1, 2]], 1e-5)  # reduction="none": the sum of the two losses
    assert g_labels.asnumpy().tolist() == [0, 0]
    # ... while another integer input of the same function is still differentiated in float
    gn, gk = GradOperation(get_all=True)(labels_and_square)(Tensor(np.array([[1], [3]], np.int32)), labels)
    assert gn.asnumpy().tolist() == [[2], [6]] and gk.asnumpy().tolist() == [0, 0]


class IntParam(nn.Cell):
    def __init__(self):
        super().__init__()
        self.k = Parameter(Tensor(np.array([1, 3], np.int32)), name="k")

    def construct(self, x):
        return ops.sin(self.k) * self.k * x


def test_int_parameter_gradient(mode):
    net = IntParam()
    (g,) = GradOperation(get_by_list=True)(net, ParameterTuple(net.trainable_params()))(Tensor([1.0, 1.0]))
    assert g.dtype == s2s_ad.int32 and g.asnumpy().tolist() == [1, -2]


def masked_dict(p):
    return ops.sum(ops.select(p["m"], p["x"] * p["x"], p["x"]))


def test_bool_inputs(mode):
    mask = Tensor(np.array([True, False, True]))

    def masked(x, m):
        return ops.sum(ops.select(m, x * x, x))

    with pytest.raises(ArgumentError, match="bool tensor, and bool values are not differentiable"):
        s2s_ad.grad(masked, grad_position=1)(Tensor([1.0, 2.0, 3.0]), mask)
    with pytest.raises(ArgumentError, match="bool"):
        GradOperation()(sin_x)(mask)
    with pytest.raises(ArgumentError, match="bool"):
        jacrev(sin_x)(mask)
    # a mask beside the data in a dict: its gradient is all False
    g = s2s_ad.grad(masked_dict)({"x": Tensor([1.0, 2.0, 3.0]), "m": mask})
    close(g["x"], [2.0, 1.0, 6.0])
    assert g["m"].dtype == s2s_ad.bool_ and not g["m"].asnumpy().any()
    # differentiating all inputs: the bool input's gradient is all False
    gx, gm = GradOperation(get_all=True)(masked)(Tensor([1.0, 2.0, 3.0]), mask)
    close(gx, [2.0, 1.0, 6.0])
    assert gm.dtype == s2s_ad.bool_ and not gm.asnumpy().any()


# ----------------------------------------------------------------------------- Python numbers
def mul(x, y):
    return x * y


def test_python_numbers_are_differentiated(mode):
    g = s2s_ad.grad(sin_x)(2.0)
    assert isinstance(g, Tensor) and g.shape == () and g.dtype == s2s_ad.float32
    close(g, d_sin_x(2.0))
    gx, gy = s2s_ad.grad(mul, grad_position=(0, 1))(2.0, Tensor([3.0, 4.0]))
    assert gx.shape == () and float(gx) == 7.0
    close(gy, [2.0, 2.0])
    value, g = s2s_ad.value_and_grad(mul)(2.0, 3.0)
    assert float(value) == 6.0 and float(g) == 3.0
    out, t = s2s_ad.jvp(sin_x, 2.0, 1.0)
    close(t, d_sin_x(2.0))
    close(jacfwd(sin_x)(2.0), d_sin_x(2.0))
    g = s2s_ad.grad(times6)(3)  # a Python int is an int64 tensor: float gradient, cast once
    assert g.dtype == s2s_ad.int64 and int(g) == 6
    # a non-differentiated number stays a compile-time constant
    assert float(s2s_ad.grad(mul)(Tensor(2.0), 5.0)) == 5.0


def test_python_numbers_compile_once(mode):
    f = s2s_ad.grad(sin_x)
    for v in (1.0, 2.0, 3.0):
        close(f(v), d_sin_x(v))
    # one program for every value: the number is an input, not part of the signature
    assert not any(k[1][0] == "S" for k in f._s2s_calls)


def grad_of_number(x):
    return s2s_ad.grad(mul)(2.0, x)


def test_python_number_inside_compiled_code(mode):
    g = jit(grad_of_number)(Tensor([3.0, 5.0]))
    assert float(g) == 8.0


# ----------------------------------------------------------------------------- dicts
def dict_fn(p):
    return ops.sum(p["a"] * p["b"]["c"]) + ops.sum(p["b"]["d"])


def dict_out(p):
    return {"prod": p["a"] * p["b"]["c"], "a": p["a"]}


def make_tree():
    return {
        "b": {"d": Tensor(np.ones((2, 3), np.float32)), "c": Tensor([[2.0, 3.0, 4.0]])},
        "a": Tensor([1.0, 5.0, 2.0]),
    }


def test_dict_argument_gradient(mode):
    g = s2s_ad.grad(dict_fn)(make_tree())
    assert set(g) == {"a", "b"} and set(g["b"]) == {"c", "d"}
    close(g["a"], [2.0, 3.0, 4.0])
    close(g["b"]["c"], [[1.0, 5.0, 2.0]])
    close(g["b"]["d"], np.ones((2, 3)))
    value, g2 = s2s_ad.value_and_grad(dict_fn)(make_tree())
    close(value, 2 + 15 + 8 + 6)
    close(g2["a"], g["a"])
    # a dict in a list, beside a tensor
    gs = GradOperation(get_all=True)(lambda_free_list)([make_tree()], Tensor(2.0))
    close(gs[0][0]["a"], [4.0, 6.0, 8.0])


def lambda_free_list(trees, s):
    return dict_fn(trees[0]) * s


def sum_items(p):
    total = 0.0
    for _key, v in p.items():
        total = total + ops.sum(v * v)
    return total


def test_dict_methods_in_compiled_code(mode):
    g = s2s_ad.grad(sum_items)({"a": Tensor([1.0, 2.0]), "b": Tensor([3.0])})
    close(g["a"], [2.0, 4.0])
    close(g["b"], [6.0])


def test_dict_key_order_and_structure(mode):
    f = s2s_ad.grad(dict_fn)
    t1 = make_tree()
    t2 = {"a": t1["a"], "b": {"c": t1["b"]["c"], "d": t1["b"]["d"]}}
    close(f(t1)["a"], f(t2)["a"])
    assert runtime.signature(t1) == runtime.signature(t2)  # insertion order does not matter


def test_dict_outputs_sens_and_tangents(mode):
    out = jit(dict_out)(make_tree())
    assert set(out) == {"prod", "a"}
    close(out["prod"], [[2.0, 15.0, 8.0]])
    sens = {"prod": Tensor(np.ones((1, 3), np.float32)), "a": Tensor([0.0, 0.0, 0.0])}
    value, g = s2s_ad.vjp(dict_out, make_tree(), sens)
    close(g["a"], [2.0, 3.0, 4.0])
    close(g["b"]["d"], np.zeros((2, 3)))
    tree = make_tree()
    tangent = {"a": Tensor([1.0, 1.0, 1.0]), "b": {"c": Tensor([[0.0, 0.0, 0.0]]), "d": Tensor(np.zeros((2, 3)))}}
    value, t = s2s_ad.jvp(dict_out, tree, tangent)
    close(t["prod"], [[2.0, 3.0, 4.0]])
    with pytest.raises(ArgumentError, match="structured like"):
        s2s_ad.vjp(dict_out, make_tree(), {"prod": sens["prod"]})


# ----------------------------------------------------------------------------- Cells in lists
class Stack(nn.Cell):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Dense(3, 4, activation="tanh"), nn.Dense(4, 4)]
        self.heads = {"out": nn.Dense(4, 2)}
        self.scales = (Parameter(Tensor([2.0])),)

    def construct(self, x):
        y = self.layers[1](self.layers[0](x))
        for layer in self.layers:
            x = layer(x)
        return ops.sum(self.heads["out"](x + y)) * self.scales[0]


def test_cells_in_containers_are_registered(mode):
    net = Stack()
    names = [n for n, _ in net.parameters_and_names()]
    assert names == [
        "layers.0.weight",
        "layers.0.bias",
        "layers.1.weight",
        "layers.1.bias",
        "heads.out.weight",
        "heads.out.bias",
        "scales.0",
    ]
    assert list(net.name_cells()) == ["layers.0", "layers.1", "heads.out"]
    x = Tensor(np.linspace(-1, 1, 6).reshape(2, 3).astype(np.float32))
    params = net.trainable_params()
    grads = s2s_ad.grad(net, grad_position=None, weights=params)(x)
    assert len(grads) == 7 and [g.shape for g in grads] == [p.shape for p in params]
    assert all(np.abs(g.asnumpy()).sum() > 0 for g in grads)
    # the same network written with plain attributes gives the same gradients
    flat = Flat(net)
    ref = s2s_ad.grad(flat, grad_position=None, weights=params)(x)
    for g, r in zip(grads, ref):
        close(g, r)


class Flat(nn.Cell):
    def __init__(self, stack):
        super().__init__()
        self.l0, self.l1, self.head = stack.layers[0], stack.layers[1], stack.heads["out"]
        self.stack = stack

    def construct(self, x):
        y = self.l1(self.l0(x))
        return ops.sum(self.head(y + y)) * self.stack.scales[0]


def test_cells_appended_later_count():
    net = Stack()
    net.layers.append(nn.Dense(4, 4))
    assert "layers.2.weight" in [n for n, _ in net.parameters_and_names()]


class Trainer(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.network = net
        self.weights = ParameterTuple(net.trainable_params())

    def construct(self, x):
        return self.network(x)


def test_parameter_tuple_attribute_keeps_sub_cell_names():
    net = Stack()
    names = [n for n, _ in Trainer(net).parameters_and_names()]
    assert names == ["network." + n for n, _ in net.parameters_and_names()]


class NoParams(nn.Cell):
    def construct(self, x):
        return x * 2


def test_empty_weights_rejected():
    with pytest.raises(ArgumentValueError, match="no trainable parameters"):
        s2s_ad.grad(NoParams(), grad_position=None, weights=NoParams().trainable_params())
    # GradOperation(get_by_list=True) differentiates no weight for an empty tuple, as MindSpore
    # does (tests/api/test_ports.py)


# ----------------------------------------------------------------------------- custom bprop
class WithBprop(nn.Cell):
    def construct(self, x):
        return x * 2

    def bprop(self, x, out, dout):
        return (Tensor([100.0]),)


class Outer(nn.Cell):
    def __init__(self):
        super().__init__()
        self.inner = WithBprop()

    def construct(self, x):
        return ops.sin(self.inner(x))


def test_bprop_is_used_in_reverse_mode_and_rejected_in_forward_mode(mode):
    x = Tensor([1.0])
    close(WithBprop()(x), [2.0])  # calling it is fine
    close(Outer()(x), [np.sin(2.0)])
    # the rule, not construct's derivative (2): tests/api/test_custom_derivatives.py
    close(s2s_ad.grad(WithBprop())(x), [100.0])
    close(GradOperation()(Outer())(x), [100.0])  # this bprop ignores dout
    for net in (WithBprop(), Outer()):
        for call in (lambda n: s2s_ad.jvp(n, x, x), lambda n: jacfwd(n)(x)):
            with pytest.raises(
                NotSupportedError, match=r"WithBprop has a custom reverse-mode rule \(defined at .*test_inputs.py:\d+\)"
            ):
                call(net)


# ----------------------------------------------------------------------------- @jit construct
class JitConstruct(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor([3.0, 1.0]), name="w")

    @jit
    def construct(self, x):
        return x * self.w

    @jit
    def helper(self, x):
        return x + 1


class UsesJit(nn.Cell):
    def __init__(self):
        super().__init__()
        self.net = JitConstruct()

    def construct(self, x):
        return self.net.helper(self.net(x))


def test_jit_decorated_construct(mode):
    net = JitConstruct()
    x = Tensor([2.0, 5.0])
    close(net(x), [6.0, 5.0])
    close(s2s_ad.grad(net)(x), [3.0, 1.0])
    close(s2s_ad.grad(net, None, net.w)(x), [2.0, 5.0])
    close(nn.Jvp(net)(x, x)[1], [6.0, 5.0])
    close(nn.ForwardValueAndGrad(net)(x)[1], [3.0, 1.0])
    close(jit(net)(x), [6.0, 5.0])
    close(net.helper(x), [3.0, 6.0])
    close(UsesJit()(x), [7.0, 6.0])
    close(s2s_ad.grad(UsesJit())(x), [3.0, 1.0])


# ----------------------------------------------------------------------------- dtypes and layouts
def test_complex_rejected():
    with pytest.raises(ArgumentError, match="complex numbers are not supported"):
        Tensor(np.array([1 + 2j], np.complex64))
    with pytest.raises(ArgumentError, match="complex numbers are not supported"):
        jit(sin_x)(np.array([1 + 2j], np.complex64))


def test_float16_computed_in_float32_both_modes(mode):
    x16 = np.linspace(-1, 1, 12).astype(np.float16).reshape(3, 4)
    out = jit(sin_x)(Tensor(x16))
    assert out.dtype == s2s_ad.float16
    ref = (np.sin(x16.astype(np.float32)) * x16.astype(np.float32)).astype(np.float16)
    np.testing.assert_array_equal(out.asnumpy(), ref)  # one rounding, at the end
    g = s2s_ad.grad(total)(Tensor(x16))
    assert g.dtype == s2s_ad.float16
    close(g, d_sin_x(x16.astype(np.float64)), 2e-3)
    value, g2 = s2s_ad.value_and_grad(total)(x16)
    assert value.dtype == s2s_ad.float16
    close(value, np.sum(np.sin(x16.astype(np.float64)) * x16), 2e-2)
    assert (Tensor(x16) * 2).dtype == s2s_ad.float16


def test_big_endian_arrays(mode):
    xb = np.arange(6, dtype=">f4").reshape(2, 3)
    close(jit(sin_x)(xb), np.sin(xb) * xb)
    close(s2s_ad.grad(total)(xb), d_sin_x(xb.astype(np.float64)))
    t = Tensor(xb)
    assert t.asnumpy().dtype.isnative
    close(jit(sin_x)(t), np.sin(xb) * xb)


# ----------------------------------------------------------------------------- NumPy on Tensors
def test_numpy_functions_on_tensors():
    t = Tensor([[1.0, -2.0], [3.0, 4.0]])
    a = t.asnumpy()
    for f in (np.sum, np.mean, np.max, np.min, np.prod, np.std, np.abs, np.exp, np.amax):
        r = f(t)
        assert isinstance(r, Tensor), f
        close(r, f(a))
    close(np.sum(t, axis=1), a.sum(axis=1))
    close(np.mean(t, 0, keepdims=True), a.mean(0, keepdims=True))
    assert np.sum(t, dtype=np.float64).dtype == s2s_ad.float64
    arr = np.asarray(t)
    assert type(arr) is np.ndarray and arr.dtype == np.float32
    # ufuncs and operators with Tensor and ndarray operands give Tensors
    other = np.array([[1.0, 1.0], [2.0, 2.0]], np.float32)
    for r in (other + t, t + other, np.add(other, t), np.multiply(t, 2), np.maximum(t, 0)):
        assert isinstance(r, Tensor)
    close(np.add(other, t), a + other)
    assert (other < t).dtype == s2s_ad.bool_
    # the functions s2s_ad compiles follow its dtype rules outside compiled code too
    ti = Tensor(np.array([1, 2, 3], np.int32))
    assert np.exp(ti).dtype == ops.exp(ti).dtype == s2s_ad.float32
    assert np.allclose(t, a) and np.shape(t) == (2, 2)
    rows, cols = np.where(t > 0)
    assert rows.asnumpy().tolist() == [0, 1, 1]
    close(np.concatenate([t, other]), np.concatenate([a, other]))
    np.testing.assert_allclose(t, a)
    p = Parameter(Tensor([1.0, 2.0]), name="p")
    close(np.sum(p), 3.0)
    # in place into an ndarray: it stays that ndarray
    acc = np.zeros((2, 2), np.float32)
    acc += t
    assert type(acc) is np.ndarray
    close(acc, a)
    target = Tensor(np.zeros((2, 2), np.float32))
    assert np.add(t, 1.0, out=target) is target
    close(target, a + 1)
