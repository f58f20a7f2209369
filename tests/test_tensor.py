"""The Tensor / Parameter / dtype API and eager primitive calls outside construct."""

import numpy as np
import pytest

import s2s_ad
from s2s_ad import Parameter, ParameterTuple, Tensor, context, nn, ops
from s2s_ad import dtype as mstype


@pytest.fixture(autouse=True)
def _pynative():
    old = context.get_context("mode")
    context.set_context(mode=context.PYNATIVE_MODE)
    yield
    context.set_context(mode=old)


# --------------------------------------------------------------------------- construction
def test_python_floats_default_to_float32():
    t = Tensor([[0.8, 0.6], [1.8, 1.3]])
    assert t.asnumpy().dtype == np.float32
    assert t.dtype == mstype.float32
    assert t.shape == (2, 2)
    np.testing.assert_array_equal(t.asnumpy(), np.array([[0.8, 0.6], [1.8, 1.3]], np.float32))


def test_python_ints_default_to_int64():
    t = Tensor([1, 2, 3])
    assert t.asnumpy().dtype == np.int64
    assert t.dtype == mstype.int64
    assert str(t.dtype) == "Int64"


def test_python_bools_are_bool():
    t = Tensor([True, False])
    assert t.dtype == mstype.bool_
    assert t.asnumpy().dtype == np.bool_


def test_python_scalar():
    t = Tensor(3.0)
    assert t.shape == ()
    assert t.dtype == mstype.float32


@pytest.mark.parametrize("np_dtype", [np.float16, np.float32, np.float64, np.int32, np.int64])
def test_numpy_array_keeps_dtype(np_dtype):
    a = np.array([[1, 2, 3]], dtype=np_dtype)
    t = Tensor(a)
    assert t.asnumpy().dtype == np_dtype
    assert t.dtype == mstype.from_np(np.dtype(np_dtype))
    assert t.shape == (1, 3)
    np.testing.assert_array_equal(t.asnumpy(), a)


def test_tensor_copies_its_numpy_input():
    a = np.array([1.0, 2.0], np.float32)
    t = Tensor(a)
    a[0] = 9.0
    np.testing.assert_array_equal(t.asnumpy(), [1.0, 2.0])


def test_dtype_argument_casts():
    t = Tensor([[1, 2], [3, 4]], dtype=mstype.float32)
    assert t.asnumpy().dtype == np.float32
    t64 = Tensor(np.array([1.5], np.float32), dtype=mstype.float64)
    assert t64.asnumpy().dtype == np.float64
    ti = Tensor([1.7, -2.2], dtype=mstype.int32)
    assert ti.asnumpy().dtype == np.int32
    np.testing.assert_array_equal(ti.asnumpy(), [1, -2])
    assert Tensor([1.0], s2s_ad.float64).dtype == mstype.float64


def test_tensor_from_tensor():
    a = Tensor([1.0, 2.0])
    b = Tensor(a, dtype=mstype.float64)
    assert b.dtype == mstype.float64 and a.dtype == mstype.float32


def test_shape_dtype_asnumpy():
    t = Tensor(np.zeros((2, 3, 4), np.float32))
    assert t.shape == (2, 3, 4)
    assert t.ndim == 3 and t.size == 24 and len(t) == 2
    assert isinstance(t.asnumpy(), np.ndarray)
    assert str(t.dtype) == "Float32" and repr(t.dtype) == "Float32"


def test_invalid_input_data():
    with pytest.raises(TypeError):
        Tensor()
    with pytest.raises(TypeError):
        Tensor(np.array([object()]))


# --------------------------------------------------------------------------- dtypes
def test_mstype_names_and_aliases():
    names = {
        "float16": "Float16",
        "float32": "Float32",
        "float64": "Float64",
        "int32": "Int32",
        "int64": "Int64",
        "bool_": "Bool",
    }
    for attr, printed in names.items():
        t = getattr(mstype, attr)
        assert str(t) == printed
        assert getattr(s2s_ad, attr) is t
    assert mstype.float32.np_dtype == np.float32
    assert mstype.bool_.np_dtype == np.bool_
    assert mstype.float32 == np.float32 and mstype.float32 != mstype.float64
    assert mstype.float32 != "not a dtype"
    assert mstype.from_np(np.dtype(np.int32)) is mstype.int32


# --------------------------------------------------------------------------- arithmetic
def test_arithmetic_between_tensors():
    a = Tensor([[1.0, 2.0], [3.0, 4.0]])
    b = Tensor([[0.5, -1.0], [2.0, 0.25]])
    an, bn = a.asnumpy(), b.asnumpy()
    for got, want in [(a + b, an + bn), (a - b, an - bn), (a * b, an * bn), (a / b, an / bn), (a**b, an**bn)]:
        assert isinstance(got, Tensor)
        assert got.dtype == mstype.float32
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-6)


def test_arithmetic_with_python_scalars_keeps_float32():
    a = Tensor([1.0, 2.0])
    an = a.asnumpy()
    cases = [
        (a + 1.5, an + 1.5),
        (1.5 + a, 1.5 + an),
        (a - 0.5, an - 0.5),
        (2.5 - a, 2.5 - an),
        (a * 2.5, an * 2.5),
        (2.5 * a, 2.5 * an),
        (a / 4.0, an / 4.0),
        (4.0 / a, 4.0 / an),
        (a**2.0, an**2.0),
        (2.0**a, 2.0**an),
        (a * 3, an * 3),
    ]
    for got, want in cases:
        assert got.dtype == mstype.float32, got
        np.testing.assert_allclose(got.asnumpy(), want, rtol=1e-6)


def test_float64_tensor_with_python_float_stays_float64():
    a = Tensor(np.array([1.0, 2.0], np.float64))
    assert (a * 0.1).dtype == mstype.float64
    np.testing.assert_array_equal((a * 0.1).asnumpy(), np.array([1.0, 2.0]) * 0.1)


def test_int_tensor_arithmetic():
    a = Tensor(np.array([1, 2], np.int32))
    assert (a * 2).dtype == mstype.int32
    np.testing.assert_array_equal((a * 2).asnumpy(), [2, 4])


def test_arithmetic_with_numpy_array():
    a = Tensor([1.0, 2.0])
    got = a + np.array([10.0, 20.0], np.float32)
    assert isinstance(got, Tensor)
    np.testing.assert_allclose(got.asnumpy(), [11.0, 22.0])


def test_broadcasting():
    a = Tensor(np.ones((2, 3), np.float32))
    b = Tensor(np.array([1.0, 2.0, 3.0], np.float32))
    got = a * b
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got.asnumpy(), np.ones((2, 3)) * [1, 2, 3])


def test_unary_minus_and_abs():
    a = Tensor([1.0, -2.0])
    assert (-a).dtype == mstype.float32
    np.testing.assert_array_equal((-a).asnumpy(), [-1.0, 2.0])
    np.testing.assert_array_equal(abs(a).asnumpy(), [1.0, 2.0])
    assert (+a) is a


def test_matmul_operator():
    a = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    b = Tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    got = a @ b
    assert got.shape == (2, 4) and got.dtype == mstype.float32
    np.testing.assert_allclose(got.asnumpy(), a.asnumpy() @ b.asnumpy())
    np.testing.assert_allclose((a @ a.T).asnumpy(), a.asnumpy() @ a.asnumpy().T)


def test_comparisons_return_bool_tensors():
    a = Tensor([1.0, 2.0, 3.0])
    b = Tensor([3.0, 2.0, 1.0])
    an, bn = a.asnumpy(), b.asnumpy()
    for got, want in [
        (a < b, an < bn),
        (a <= b, an <= bn),
        (a > b, an > bn),
        (a >= b, an >= bn),
        (a == b, an == bn),
        (a != b, an != bn),
        (a > 1.5, an > 1.5),
    ]:
        assert isinstance(got, Tensor)
        assert got.dtype == mstype.bool_
        np.testing.assert_array_equal(got.asnumpy(), want)


def test_integer_indexing_out_0_0():
    out = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    first = out[0][0]
    assert isinstance(first, Tensor) and first.shape == () and first.dtype == mstype.float32
    assert float(first.asnumpy()) == 0.0
    np.testing.assert_array_equal(out[1].asnumpy(), [3.0, 4.0, 5.0])
    assert float(out[1][-1].asnumpy()) == 5.0
    assert float(Tensor([[1, 2], [3, 4]])[1][0].asnumpy()) == 3


def test_tuple_and_slice_indexing():
    a = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    an = a.asnumpy()
    assert a[0, 1].shape == ()
    assert float(a[1, 2].asnumpy()) == 5.0
    np.testing.assert_array_equal(a[0:1].asnumpy(), an[0:1])
    np.testing.assert_array_equal(a[:, 1].asnumpy(), an[:, 1])
    np.testing.assert_array_equal(a[..., ::2].asnumpy(), an[..., ::2])


class FirstElement(nn.Cell):
    def __init__(self):
        super().__init__()
        self.matmul = ops.MatMul()

    def construct(self, x, y):
        out = self.matmul(x, y)
        return out[0][0]


def test_indexing_out_0_0_in_construct_and_its_gradient():
    # The GradOperation guide's network that returns out[0][0].
    x = Tensor([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]], dtype=mstype.float32)
    y = Tensor([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]], dtype=mstype.float32)
    out = FirstElement()(x, y)
    assert out.shape == ()
    np.testing.assert_allclose(out.asnumpy(), 0.8 * 0.11 + 0.6 * 1.1 + 0.2 * 1.1, rtol=1e-6)
    g = ops.GradOperation()(FirstElement())(x, y)
    np.testing.assert_allclose(g.asnumpy(), [[0.11, 1.1, 1.1], [0.0, 0.0, 0.0]], rtol=1e-6)


def test_tensor_methods():
    a = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    an = a.asnumpy()
    np.testing.assert_allclose(a.sum().asnumpy(), an.sum())
    np.testing.assert_allclose(a.mean(axis=1).asnumpy(), an.mean(axis=1))
    assert a.reshape(3, 2).shape == (3, 2)
    assert a.reshape((6,)).shape == (6,)
    assert a.T.shape == (3, 2)
    assert a.astype(mstype.float64).dtype == mstype.float64


# --------------------------------------------------------------------------- printing
def test_repr_1d_matches_mindspore():
    t = Tensor(np.array([21.536], np.float32))
    assert repr(t) == "Tensor(shape=[1], dtype=Float32, value= [ 2.15359993e+01])"


def test_repr_2d_matches_mindspore():
    t = Tensor(np.array([[0, 6], [15, -4]], np.float32))
    assert repr(t) == (
        "Tensor(shape=[2, 2], dtype=Float32, value=\n[[ 0.00000000e+00,  6.00000000e+00],\n [ 1.50000000e+01, -4.00000000e+00]])"
    )


def test_repr_1d_several_values_and_ints():
    t = Tensor([1.0, -2.0])
    assert repr(t) == "Tensor(shape=[2], dtype=Float32, value= [ 1.00000000e+00, -2.00000000e+00])"
    assert repr(Tensor([1, 2])) == "Tensor(shape=[2], dtype=Int64, value= [1, 2])"
    assert repr(Tensor([1.0], mstype.float64)).startswith("Tensor(shape=[1], dtype=Float64, value=")


def test_print_tuple_of_tensors(capsys):
    print((Tensor(np.array([21.536], np.float32)),))
    assert capsys.readouterr().out == "(Tensor(shape=[1], dtype=Float32, value= [ 2.15359993e+01]),)\n"
    a = Tensor(np.array([[0, 6], [15, -4]], np.float32))
    b = Tensor(np.array([[-2, 6], [-3, 8]], np.float32))
    print((a, b))
    assert capsys.readouterr().out == (
        "(Tensor(shape=[2, 2], dtype=Float32, value=\n"
        "[[ 0.00000000e+00,  6.00000000e+00],\n"
        " [ 1.50000000e+01, -4.00000000e+00]]), Tensor(shape=[2, 2], dtype=Float32, value=\n"
        "[[-2.00000000e+00,  6.00000000e+00],\n"
        " [-3.00000000e+00,  8.00000000e+00]]))\n"
    )


def test_print_tensor_prints_values_like_numpy(capsys):
    t = Tensor([[4.5099998, 2.7, 3.6000001], [4.5099998, 2.7, 3.6000001]])
    print(t)
    out = capsys.readouterr().out
    assert out == str(t.asnumpy()) + "\n"
    assert "4.5099998" in out and "Tensor" not in out


# --------------------------------------------------------------------------- Parameter, ParameterTuple, Cell
def test_parameter():
    p = Parameter(Tensor(np.array([1.0], np.float32)), name="z")
    assert isinstance(p, Tensor)
    assert p.name == "z" and p.requires_grad
    assert p.shape == (1,) and p.dtype == mstype.float32
    np.testing.assert_array_equal(p.asnumpy(), [1.0])
    assert "z" in repr(p) and "Float32" in repr(p)
    q = Parameter(Tensor([1.0]), name="frozen", requires_grad=False)
    assert not q.requires_grad


def test_parameter_set_data():
    p = Parameter(Tensor([1.0, 2.0]), name="w")
    p.set_data(Tensor([3.0, 4.0]))
    np.testing.assert_array_equal(p.asnumpy(), [3.0, 4.0])
    with pytest.raises(ValueError):
        p.set_data(Tensor([1.0]))


def test_parameter_tuple():
    a = Parameter(Tensor([1.0]), name="a")
    b = Parameter(Tensor([2.0]), name="b")
    pt = ParameterTuple([a, b])
    assert isinstance(pt, tuple) and len(pt) == 2
    assert pt[0] is a and pt[1] is b
    with pytest.raises(TypeError):
        ParameterTuple([a, Tensor([1.0])])


def test_unnamed_parameter_takes_attribute_name():
    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.weight = Parameter(Tensor([1.0]))
            self.bias = Parameter(Tensor([0.0]), name="explicit")

    net = Net()
    assert net.weight.name == "weight"
    assert net.bias.name == "explicit"


class Inner(nn.Cell):
    def __init__(self, shared):
        super().__init__()
        self.b = Parameter(Tensor([3.0]), name="b")
        self.shared = shared
        self.frozen = Parameter(Tensor([0.0]), name="frozen", requires_grad=False)


class Outer(nn.Cell):
    def __init__(self):
        super().__init__()
        shared = Parameter(Tensor([2.0]), name="shared")
        self.inner = Inner(shared)  # sub-cell assigned before the own parameters
        self.a = Parameter(Tensor([1.0]), name="a")
        self.s = shared
        self.c = Parameter(Tensor([4.0]), name="c")


def test_trainable_params_order_own_first_then_subcells_no_duplicates():
    net = Outer()
    params = net.trainable_params()
    # a sub-cell's Parameters are named by its attribute, as in MindSpore (the shared one too)
    assert [p.name for p in params] == ["a", "inner.shared", "c", "inner.b"]
    assert params[1] is net.s is net.inner.shared
    assert len({id(p) for p in params}) == len(params)
    assert [p.name for p in net.untrainable_params()] == ["inner.frozen"]
    assert [p.name for p in net.inner.trainable_params()] == ["inner.b", "inner.shared"]


def test_trainable_params_without_recursion():
    net = Outer()
    assert [p.name for p in net.trainable_params(recurse=False)] == ["a", "inner.shared", "c"]


def test_reassigning_attribute_replaces_parameter():
    net = Outer()
    net.a = Tensor([1.0])  # no longer a Parameter
    assert [p.name for p in net.trainable_params()] == ["inner.shared", "c", "inner.b"]


# --------------------------------------------------------------------------- eager primitives
def _x():
    return Tensor(np.array([[0.5, 1.0, 2.0], [-1.5, 0.25, 3.0]], np.float32))


@pytest.mark.parametrize(
    "prim, ref",
    [
        (ops.Sin(), np.sin),
        (ops.Cos(), np.cos),
        (ops.Exp(), np.exp),
        (ops.Neg(), np.negative),
        (ops.Square(), np.square),
        (ops.Tanh(), np.tanh),
        (ops.Abs(), np.abs),
    ],
)
def test_eager_unary_primitives(prim, ref):
    x = _x()
    got = prim(x)
    assert isinstance(got, Tensor) and got.dtype == mstype.float32
    np.testing.assert_allclose(got.asnumpy(), ref(x.asnumpy()), rtol=1e-6)


def test_eager_functional_forms():
    x = _x()
    np.testing.assert_allclose(ops.sin(x).asnumpy(), np.sin(x.asnumpy()), rtol=1e-6)
    np.testing.assert_allclose(ops.mul(x, x).asnumpy(), x.asnumpy() ** 2, rtol=1e-6)


def test_eager_binary_primitives():
    x = _x()
    y = Tensor(np.array([[2.0, 3.0, 4.0], [5.0, 6.0, 7.0]], np.float32))
    xn, yn = x.asnumpy(), y.asnumpy()
    np.testing.assert_allclose(ops.Mul()(x, y).asnumpy(), xn * yn, rtol=1e-6)
    np.testing.assert_allclose(ops.Add()(x, y).asnumpy(), xn + yn, rtol=1e-6)
    np.testing.assert_allclose(ops.Sub()(x, y).asnumpy(), xn - yn, rtol=1e-6)
    np.testing.assert_allclose(ops.Div()(x, y).asnumpy(), xn / yn, rtol=1e-6)
    np.testing.assert_allclose(ops.Mul()(x, 2.0).asnumpy(), xn * 2.0, rtol=1e-6)


def test_eager_matmul():
    a = Tensor(np.array([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]], np.float32))
    b = Tensor(np.array([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]], np.float32))
    got = ops.MatMul()(a, b)
    assert got.shape == (2, 3) and got.dtype == mstype.float32
    np.testing.assert_allclose(got.asnumpy(), a.asnumpy() @ b.asnumpy(), rtol=1e-6)
    gt = ops.MatMul(transpose_b=True)(a, a)
    np.testing.assert_allclose(gt.asnumpy(), a.asnumpy() @ a.asnumpy().T, rtol=1e-6)
    ga = ops.MatMul(transpose_a=True)(a, a)
    np.testing.assert_allclose(ga.asnumpy(), a.asnumpy().T @ a.asnumpy(), rtol=1e-6)
    np.testing.assert_allclose(ops.matmul(a, b).asnumpy(), a.asnumpy() @ b.asnumpy(), rtol=1e-6)


def test_eager_reductions():
    x = _x()
    xn = x.asnumpy()
    keep = ops.ReduceSum(keep_dims=True)(x, 1)
    assert keep.shape == (2, 1)
    np.testing.assert_allclose(keep.asnumpy(), xn.sum(axis=1, keepdims=True), rtol=1e-6)
    drop = ops.ReduceSum()(x, 1)
    assert drop.shape == (2,)
    np.testing.assert_allclose(drop.asnumpy(), xn.sum(axis=1), rtol=1e-6)
    total = ops.ReduceSum()(x)
    assert total.shape == ()
    np.testing.assert_allclose(total.asnumpy(), xn.sum(), rtol=1e-6)
    mean = ops.ReduceMean(keep_dims=True)(x, 0)
    assert mean.shape == (1, 3)
    np.testing.assert_allclose(mean.asnumpy(), xn.mean(axis=0, keepdims=True), rtol=1e-6)


def test_eager_cast():
    x = _x()
    got = ops.cast(x, mstype.float64)
    assert got.dtype == mstype.float64 and got.asnumpy().dtype == np.float64
    np.testing.assert_array_equal(got.asnumpy(), x.asnumpy().astype(np.float64))
    gi = ops.Cast()(x, mstype.int32)
    assert gi.dtype == mstype.int32
    np.testing.assert_array_equal(gi.asnumpy(), x.asnumpy().astype(np.int32))


def test_eager_reshape_and_transpose():
    x = _x()
    assert ops.Reshape()(x, (3, 2)).shape == (3, 2)
    np.testing.assert_array_equal(ops.Reshape()(x, (3, -1)).asnumpy(), x.asnumpy().reshape(3, 2))
    np.testing.assert_array_equal(ops.Transpose()(x, (1, 0)).asnumpy(), x.asnumpy().T)


def test_eager_ops_accept_parameters():
    p = Parameter(Tensor(np.array([0.5, 1.0], np.float32)), name="p")
    np.testing.assert_allclose(ops.Sin()(p).asnumpy(), np.sin([0.5, 1.0]), rtol=1e-6)
    got = p * 2.0
    assert type(got) is Tensor
    np.testing.assert_allclose(got.asnumpy(), [1.0, 2.0])


def test_eager_ops_do_not_modify_inputs():
    x = _x()
    before = x.asnumpy().copy()
    ops.Neg()(x)
    _ = x * 2.0
    np.testing.assert_array_equal(x.asnumpy(), before)
