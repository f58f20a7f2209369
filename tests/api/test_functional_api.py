"""The functional differentiation API (``ops.value_and_grad``, ``ops.grad``, ``ops.jvp``,
``ops.vjp``, ``s2s_ad.jit`` and the decorators) and the ``nn`` wrappers: values against numpy
and central finite differences, and MindSpore's documented result structure."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import s2s_ad
from s2s_ad import ArgumentError, ArgumentValueError, Parameter, ParameterTuple, Tensor, nn, ops
from s2s_ad import dtype as mstype

# Plain numpy unless a test asks for both backends (the ``mode`` fixture applies after this).
pytestmark = pytest.mark.usefixtures("pynative")


# ---------------------------------------------------------------------------- helpers


def t64(a) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float64))


def t32(a) -> Tensor:
    return Tensor(np.asarray(a, dtype=np.float32))


def arr(x) -> np.ndarray:
    return x.asnumpy() if isinstance(x, Tensor) else np.asarray(x)


def fd_grad(f, args, i, eps=1e-6) -> np.ndarray:
    """Central-difference gradient of ``sum(f(*args))`` w.r.t. ``args[i]`` (numpy, float64)."""
    args = [np.array(a, dtype=np.float64) for a in args]
    g = np.zeros_like(args[i])
    for k in np.ndindex(args[i].shape):
        hi = [a.copy() for a in args]
        lo = [a.copy() for a in args]
        hi[i][k] += eps
        lo[i][k] -= eps
        g[k] = (_total(f(*hi)) - _total(f(*lo))) / (2 * eps)
    return g


def fd_jvp(f, args, tangents, eps=1e-6):
    """Central-difference directional derivative of ``f`` (numpy) along ``tangents``."""
    hi = [np.asarray(a, np.float64) + eps * np.asarray(t, np.float64) for a, t in zip(args, tangents)]
    lo = [np.asarray(a, np.float64) - eps * np.asarray(t, np.float64) for a, t in zip(args, tangents)]
    return _tree_map(lambda u, v: (u - v) / (2 * eps), f(*hi), f(*lo))


def _total(out) -> float:
    if isinstance(out, tuple):
        return sum(_total(o) for o in out)
    return float(np.sum(out))


def _tree_map(fn, a, b):
    if isinstance(a, tuple):
        return tuple(_tree_map(fn, u, v) for u, v in zip(a, b))
    return fn(a, b)


def close(actual, expected, rtol=1e-7, atol=1e-9):
    """``actual`` (Tensors, nested tuples) equals ``expected`` with the same nesting; every
    leaf of ``actual`` is a Tensor."""
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple), f"expected a tuple, got {type(actual).__name__}"
        assert len(actual) == len(expected), f"expected {len(expected)} elements, got {len(actual)}"
        for a, e in zip(actual, expected):
            close(a, e, rtol, atol)
        return
    assert isinstance(actual, Tensor), f"expected a Tensor, got {type(actual).__name__}"
    e = np.asarray(expected)
    assert actual.shape == e.shape, f"shape {actual.shape} != {e.shape}"
    np.testing.assert_allclose(actual.asnumpy(), e, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------- functions under test


def mul3(x, y, z):
    return x * y * z


def exp_pow(x, y, z):
    res = x * ops.exp(y) * ops.pow(z, 2)
    return res, z


def smooth(x, y):
    return ops.sin(x) * y + x * x * ops.exp(y * 0.5)


def np_smooth(x, y):
    return np.sin(x) * y + x * x * np.exp(y * 0.5)


def loss_and_aux(x, y):
    # The aux outputs depend on x too: they must not contribute to the gradient.
    return (x * y).sum(), ops.exp(x) * 100.0, x * x


def two_outputs(x, y, z):
    return x**2 + y**2 + z**2, x * y * z


def single_output(x, y):
    return x * y


class Scale(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(t64([0.5, -1.5]), name="w")
        self.b = Parameter(t64([0.25]), name="b")

    def construct(self, x, y):
        return ops.tanh(x * self.w) * y + self.b


SCALE = Scale()
SX, SY = t64([0.3, -0.8]), t64([1.2, 0.7])


def scale_refs():
    x, y, w = SX.asnumpy(), SY.asnumpy(), SCALE.w.asnumpy()
    sech2 = 1 - np.tanh(x * w) ** 2
    return {
        "out": np.tanh(x * w) * y + 0.25,
        "dx": sech2 * w * y,
        "dy": np.tanh(x * w),
        "dw": sech2 * x * y,
        "db": np.array([2.0]),  # the bias broadcasts over two outputs
    }


X3, Y3, Z3 = t64([[1, 2], [3, 4]]), t64([[-2, 3], [-1, 2]]), t64([[0, 3], [5, -1]])


# ---------------------------------------------------------------------------- 1. value_and_grad


def test_value_and_grad_int_position_gives_bare_tensor():
    x, y, z = t32([1, 2]), t32([-2, 3]), t32([0, 3])
    out, g = ops.value_and_grad(mul3, grad_position=1)(x, y, z)
    close(out, np.array([-0.0, 18.0], np.float32))
    close(g, np.array([0.0, 6.0], np.float32))
    assert g.dtype == mstype.float32


def test_value_and_grad_default_position_is_zero():
    out, g = ops.value_and_grad(smooth)(SX, SY)
    close(out, np_smooth(SX.asnumpy(), SY.asnumpy()))
    close(g, fd_grad(np_smooth, [SX.asnumpy(), SY.asnumpy()], 0), rtol=1e-6)


def test_value_and_grad_tuple_positions_give_tuple():
    out, g = ops.value_and_grad(mul3, grad_position=(0, 2))(X3, Y3, Z3)
    x, y, z = X3.asnumpy(), Y3.asnumpy(), Z3.asnumpy()
    close(out, x * y * z)
    close(g, (y * z, x * y))


def test_value_and_grad_one_element_tuple_gives_bare_tensor():
    _, g = ops.value_and_grad(mul3, grad_position=(2,))(X3, Y3, Z3)
    close(g, X3.asnumpy() * Y3.asnumpy())


def test_value_and_grad_has_aux_seed_example():
    x, y, z = t32([3, 3]), t32([0, 0]), t32([5, 5])
    out, g = ops.value_and_grad(exp_pow, grad_position=(1, 2), weights=None, has_aux=True)(x, y, z)
    close(out, (np.array([75.0, 75.0]), np.array([5.0, 5.0])))
    close(g, (np.array([75.0, 75.0]), np.array([30.0, 30.0])), rtol=1e-6)


def test_value_and_grad_has_aux_differentiates_only_the_first_output():
    x, y = t64([0.5, -1.0, 2.0]), t64([3.0, 4.0, -5.0])
    out, (gx, gy) = ops.value_and_grad(loss_and_aux, grad_position=(0, 1), has_aux=True)(x, y)
    # The value is the whole output tuple.
    close(out, (np.sum(arr(x) * arr(y)), np.exp(arr(x)) * 100.0, arr(x) ** 2))
    close(gx, arr(y))
    close(gy, arr(x))


def test_value_and_grad_weights_only():
    refs = scale_refs()
    params = ParameterTuple(SCALE.trainable_params())
    out, g = ops.value_and_grad(SCALE, grad_position=None, weights=params)(SX, SY)
    close(out, refs["out"])
    close(g, (refs["dw"], refs["db"]))
    # A list of Parameters (net.trainable_params() itself) also gives a tuple.
    _, g = ops.value_and_grad(SCALE, None, SCALE.trainable_params())(SX, SY)
    close(g, (refs["dw"], refs["db"]))
    # A single Parameter gives a bare Tensor; a one-element list a one-tuple.
    _, g = ops.value_and_grad(SCALE, None, SCALE.w)(SX, SY)
    close(g, refs["dw"])
    _, g = ops.value_and_grad(SCALE, None, [SCALE.b])(SX, SY)
    close(g, (refs["db"],))


def test_value_and_grad_inputs_and_weights():
    refs = scale_refs()
    params = SCALE.trainable_params()
    _, g = ops.value_and_grad(SCALE, 0, params)(SX, SY)
    close(g, (refs["dx"], (refs["dw"], refs["db"])))
    _, g = ops.value_and_grad(SCALE, (0, 1), params)(SX, SY)
    close(g, ((refs["dx"], refs["dy"]), (refs["dw"], refs["db"])))
    _, g = ops.value_and_grad(SCALE, (1,), SCALE.b)(SX, SY)
    close(g, (refs["dy"], refs["db"]))


def test_value_and_grad_has_aux_with_a_single_output_is_an_argument_error():
    with pytest.raises(ArgumentError, match="has_aux=True.*at least two outputs"):
        ops.value_and_grad(single_output, has_aux=True)(SX, SY)


def test_value_and_grad_needs_positions_or_weights():
    with pytest.raises(ValueError, match="grad_position and weights cannot both be None"):
        ops.value_and_grad(smooth, grad_position=None, weights=None)
    with pytest.raises(ArgumentValueError):
        ops.value_and_grad(smooth, None)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fn": 3}, "expected a Cell or a function"),
        ({"fn": "smooth"}, "expected a Cell or a function"),
        ({"grad_position": 1.5}, "grad_position must be"),
        ({"grad_position": "0"}, "grad_position must be"),
        ({"grad_position": [0]}, "grad_position must be"),
        ({"grad_position": True}, "grad_position must be"),
        ({"grad_position": (0, 1.0)}, "grad_position must contain ints"),
        ({"grad_position": (0, False)}, "grad_position must contain ints"),
        ({"weights": 3}, "weights must be"),
        ({"weights": SX}, "weights must be"),
        ({"weights": [SCALE.w, SX]}, "weights must be Parameters"),
        ({"has_aux": 1}, "has_aux must be a bool"),
        ({"has_aux": None}, "has_aux must be a bool"),
    ],
)
def test_value_and_grad_argument_types(kwargs, match):
    kwargs = {"fn": smooth, **kwargs}
    with pytest.raises(TypeError, match=match) as ei:
        ops.value_and_grad(**kwargs)
    assert isinstance(ei.value, ArgumentError)


@pytest.mark.parametrize("api", [ops.value_and_grad, ops.grad])
def test_position_out_of_range_at_call_time(api):
    f = api(smooth, grad_position=(0, 2))  # fine until called with two inputs
    with pytest.raises(ValueError, match="grad_position 2 is out of range.*2 input") as ei:
        f(SX, SY)
    assert isinstance(ei.value, ArgumentValueError)


@pytest.mark.parametrize("gp", [-1, (), (0, 0)])
def test_grad_position_bad_values(gp):
    with pytest.raises(ArgumentValueError):
        ops.value_and_grad(smooth, gp)


# ---------------------------------------------------------------------------- 2. grad and aliases


def test_top_level_aliases_are_the_ops_objects():
    for name in ("grad", "value_and_grad", "jvp", "vjp"):
        assert getattr(s2s_ad, name) is getattr(ops, name), name
    assert s2s_ad.GradOperation is ops.GradOperation


def test_grad_positions_seed_example():
    g = ops.grad(mul3, grad_position=(1, 2))(X3, Y3, Z3)
    close(g, (np.array([[0.0, 6.0], [15.0, -4.0]]), np.array([[-2.0, 6.0], [-3.0, 8.0]])))
    g = s2s_ad.grad(mul3, 1)(X3, Y3, Z3)
    close(g, np.array([[0.0, 6.0], [15.0, -4.0]]))


def test_grad_weights():
    refs = scale_refs()
    close(ops.grad(SCALE, None, SCALE.trainable_params())(SX, SY), (refs["dw"], refs["db"]))
    close(ops.grad(SCALE, None, SCALE.w)(SX, SY), refs["dw"])
    close(ops.grad(SCALE, 1, SCALE.trainable_params())(SX, SY), (refs["dy"], (refs["dw"], refs["db"])))


def test_grad_has_aux_returns_grads_and_aux_tuple():
    x, y = t64([0.5, -1.0, 2.0]), t64([3.0, 4.0, -5.0])
    g, aux = ops.grad(loss_and_aux, has_aux=True)(x, y)
    close(g, arr(y))
    close(aux, (np.exp(arr(x)) * 100.0, arr(x) ** 2))
    g, aux = ops.grad(exp_pow, grad_position=(1, 2), has_aux=True)(t32([3, 3]), t32([0, 0]), t32([5, 5]))
    close(g, (np.array([75.0, 75.0]), np.array([30.0, 30.0])), rtol=1e-6)
    close(aux, (np.array([5.0, 5.0]),))


def test_grad_sens_param_tuple_sens_for_two_outputs_seed_example():
    v = t64([[-1, 3], [2, 1]])
    g = ops.grad(two_outputs, grad_position=(1, 2), sens_param=True)(X3, Y3, Z3, (v, v))
    close(g, (np.array([[4.0, 36.0], [26.0, 0.0]]), np.array([[2.0, 36.0], [14.0, 6.0]])))


def test_grad_sens_param_distinct_sens_per_output():
    s1, s2 = t64([[1.0, 0.5], [-2.0, 3.0]]), t64([[0.1, 0.2], [0.3, 0.4]])
    gx = ops.grad(two_outputs, sens_param=True)(X3, Y3, Z3, (s1, s2))
    x, y, z = X3.asnumpy(), Y3.asnumpy(), Z3.asnumpy()
    close(gx, 2 * x * s1.asnumpy() + y * z * s2.asnumpy())


def test_grad_sens_param_with_has_aux_sens_is_for_the_first_output():
    s = t64([2.0, -1.0, 0.5])
    x, y = t64([0.5, -1.0, 2.0]), t64([3.0, 4.0, -5.0])
    # The first output is a scalar here, so its sens is a scalar tensor.
    g, aux = ops.grad(loss_and_aux, has_aux=True, sens_param=True)(x, y, t64(2.0))
    close(g, 2.0 * arr(y))
    with pytest.raises(ArgumentError, match=r"sens has shape \(3,\).*has shape \(\)"):
        ops.grad(loss_and_aux, has_aux=True, sens_param=True)(x, y, s)


@pytest.mark.parametrize(
    "sens, match",
    [
        (
            t64(np.ones((2, 3))),
            r"sens must be structured like the output of two_outputs: expected \(Tensor, Tensor\), got Tensor",
        ),
        ((t64(np.ones((2, 2))),), r"expected \(Tensor, Tensor\), got \(Tensor,\)"),
        ((t64(np.ones((2, 2))),) * 3, r"expected \(Tensor, Tensor\), got \(Tensor, Tensor, Tensor\)"),
        ((t64(np.ones((2, 2))), (t64(np.ones((2, 2))),)), r"got \(Tensor, \(Tensor,\)\)"),
        ((t64(np.ones((2, 2))), t64(np.ones((2, 3)))), r"sens \(element 1\) has shape \(2, 3\).*has shape \(2, 2\)"),
        ((t64(np.ones((2, 2))), 1.0), r"shape \(2, 2\), got the number 1.0"),
    ],
)
def test_grad_bad_sens_is_an_argument_error(sens, match):
    with pytest.raises(ArgumentError, match=match):
        ops.grad(two_outputs, sens_param=True)(X3, Y3, Z3, sens)


def test_grad_bad_sens_single_output():
    with pytest.raises(ArgumentError, match=r"sens has shape \(3,\) but the output of single_output has shape \(2,\)"):
        ops.grad(single_output, sens_param=True)(SX, SY, t64([1.0, 2.0, 3.0]))
    with pytest.raises(ArgumentError, match="expected Tensor, got"):
        ops.grad(single_output, sens_param=True)(SX, SY, (SX,))


def test_grad_flag_types():
    with pytest.raises(ArgumentError, match="sens_param must be a bool"):
        ops.grad(smooth, sens_param="yes")
    with pytest.raises(ArgumentError, match="has_aux must be a bool"):
        ops.grad(smooth, has_aux=0)


# ---------------------------------------------------------------------------- 3. integer inputs


def int_times_float(x, y):
    return x * y + 0.5 * x


def ignores_second(x, k):
    return x * 2.0


def int_scale(k):
    return k * 0.5


INTS = Tensor(np.array([1, 2, 3, 4], np.int32))
FLOATS = t32([0.7, 1.5, -2.5, -1.3])


def test_int_input_gradient_is_truncated_toward_zero():
    gx, gy = ops.grad(int_times_float, (0, 1))(INTS, FLOATS)
    # d/dx = y + 0.5 = [1.2, 2.0, -2.0, -0.8]: cast to int32, truncated toward zero.
    assert gx.dtype == mstype.int32
    np.testing.assert_array_equal(gx.asnumpy(), [1, 2, -2, 0])
    assert gy.dtype == mstype.float32
    np.testing.assert_array_equal(gy.asnumpy(), INTS.asnumpy().astype(np.float32))


def test_int_times_float_promotes_to_float32():
    out = s2s_ad.jit(int_times_float)(INTS, FLOATS)
    assert out.dtype == mstype.float32
    np.testing.assert_allclose(out.asnumpy(), [1.2, 4.0, -6.0, -3.2], rtol=1e-6)
    half = s2s_ad.jit(int_scale)(INTS)
    assert half.dtype == mstype.float32
    np.testing.assert_array_equal(half.asnumpy(), [0.5, 1.0, 1.5, 2.0])
    g = ops.grad(int_scale)(INTS)  # 0.5 truncated
    assert g.dtype == mstype.int32 and not g.asnumpy().any()


def test_unreached_inputs_get_zeros_of_their_own_dtype():
    gx, gk = ops.grad(ignores_second, (0, 1))(FLOATS, INTS)
    np.testing.assert_array_equal(gx.asnumpy(), [2.0] * 4)
    assert gk.dtype == mstype.int32 and gk.shape == (4,) and not gk.asnumpy().any()
    # Gradients come in grad_position's order: here the float64 input first, then the int one.
    g1, g0 = ops.grad(ignores_second, (1, 0))(INTS, t64([1.0, 2.0]))
    assert g1.dtype == mstype.float64 and g1.shape == (2,) and not g1.asnumpy().any()
    assert g0.dtype == mstype.int32 and np.array_equal(g0.asnumpy(), [2, 2, 2, 2])


# ---------------------------------------------------------------------------- 4. plain functions

CONST = t64([2.0, -3.0, 0.5])


def poly_helper(a, b):
    return a * a * b + ops.cos(a)


def calls_helper(x, y):
    return poly_helper(x, y) + poly_helper(y, x) * 0.5


def with_defaults(x, y, scale=3.0, shift=None):
    out = x * y * scale
    if shift is not None:
        out = out + shift * x
    return out


def test_module_level_function_against_finite_differences():
    x, y = t64([0.3, -1.1, 2.0]), t64([0.5, 0.25, -0.7])
    gx, gy = ops.grad(smooth, (0, 1))(x, y)
    xy = [arr(x), arr(y)]
    close(gx, fd_grad(np_smooth, xy, 0), rtol=1e-6)
    close(gy, fd_grad(np_smooth, xy, 1), rtol=1e-6)


def test_nested_function_and_closures():
    def make(c, k):
        def inner(x):
            return ops.sin(x * c) + k * x * x

        return inner

    def local(x, y):
        return ops.exp(x) * y

    x = t64([0.1, -0.4, 1.3])
    c = CONST.asnumpy()
    close(ops.grad(make(CONST, 0.25))(x), np.cos(arr(x) * c) * c + 0.5 * arr(x))  # Tensor + float closure
    close(ops.grad(make(1.5, -2.0))(x), np.cos(arr(x) * 1.5) * 1.5 - 4.0 * arr(x))  # two float closures
    close(ops.grad(local, (0, 1))(x, CONST), (np.exp(arr(x)) * c, np.exp(arr(x))))


def test_function_calling_a_helper_function():
    x, y = t64([0.2, -0.6]), t64([1.5, 0.4])

    def np_calls_helper(a, b):
        return a * a * b + np.cos(a) + (b * b * a + np.cos(b)) * 0.5

    gx, gy = ops.grad(calls_helper, (0, 1))(x, y)
    close(gx, fd_grad(np_calls_helper, [arr(x), arr(y)], 0), rtol=1e-6)
    close(gy, fd_grad(np_calls_helper, [arr(x), arr(y)], 1), rtol=1e-6)


def test_keyword_defaults():
    x, y = t64([0.2, -0.6]), t64([1.5, 0.4])
    close(ops.grad(with_defaults)(x, y), 3.0 * arr(y))
    close(ops.grad(with_defaults)(x, y, 2.0), 2.0 * arr(y))
    close(ops.grad(with_defaults)(x, y, 2.0, 10.0), 2.0 * arr(y) + 10.0)
    close(s2s_ad.jit(with_defaults)(x, y, shift=1.0), 3.0 * arr(x) * arr(y) + arr(x))


def square_or_identity(x, y):
    return ops.select(x > 0.0, y**2, y)


def test_grad_of_a_square_inside_select_is_finite_at_zero():
    x, y = t64([1.0, -2.0]), t64([0.0, 0.0])
    _, t = ops.jvp(square_or_identity, (x, y), (t64([0.0, 0.0]), t64([1.0, 1.0])))
    np.testing.assert_array_equal(t.asnumpy(), [0.0, 1.0])  # forward mode passes
    with np.errstate(invalid="ignore", divide="ignore"):
        g = ops.grad(square_or_identity, 1)(x, y)
    np.testing.assert_array_equal(g.asnumpy(), [0.0, 1.0])


# The seed's pattern: a function using a Cell and a loss Cell held in module globals.
s2s_ad.set_seed(1234)
dense_net = nn.Dense(4, 1)
mse_loss = nn.MSELoss()


def forward(inputs, labels):
    logits = dense_net(inputs)
    loss = mse_loss(logits, labels)
    return loss, logits


def _forward_refs(x, labels, aux_seeded):
    w, b = (p.asnumpy().astype(np.float64) for p in dense_net.trainable_params())
    x, labels = x.asnumpy().astype(np.float64), labels.asnumpy().astype(np.float64)
    logits = x @ w.T + b
    dlogits = 2 * (logits - labels) / logits.size + (1.0 if aux_seeded else 0.0)
    return np.mean((logits - labels) ** 2), logits, dlogits @ w, dlogits.T @ x, dlogits.sum(0)


def test_function_using_global_cells_seed_pattern():
    rng = np.random.default_rng(0)
    x = t32(rng.standard_normal((5, 4)))
    labels = t32(rng.standard_normal((5, 1)))
    weights = dense_net.trainable_params()
    assert len(weights) == 2
    loss, logits, dx, dw, db = _forward_refs(x, labels, aux_seeded=False)
    # Case 1: inputs, has_aux.
    (l1, lg1), gx = ops.value_and_grad(forward, 0, None, has_aux=True)(x, labels)
    close(l1, loss, rtol=1e-5)
    close(lg1, logits, rtol=1e-5, atol=1e-6)
    close(gx, dx, rtol=1e-4, atol=1e-6)
    # Case 2: weights, has_aux.
    (l2, _), gp = ops.value_and_grad(forward, None, weights, has_aux=True)(x, labels)
    close(l2, loss, rtol=1e-5)
    close(gp, (dw, db), rtol=1e-4, atol=1e-6)
    # Case 3: both, no aux: the logits are differentiated too (seeded with ones).
    _, _, dx3, dw3, db3 = _forward_refs(x, labels, aux_seeded=True)
    (l3, lg3), (gx3, gp3) = ops.value_and_grad(forward, 0, weights, has_aux=False)(x, labels)
    close(gx3, dx3, rtol=1e-4, atol=1e-5)
    close(gp3, (dw3, db3), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- 5. decorators


@s2s_ad.jit
def jitted(x, y):
    return ops.tanh(x) * y + x.sum()


@s2s_ad.jit
def jitted_kw(x, y=2.0, *, z=1.0):
    return x * y + z


@s2s_ad.grad
def d_sin(x):
    return ops.sin(x)


@s2s_ad.grad(grad_position=(0, 1))
def d_mul(x, y):
    return x * y * y


@s2s_ad.value_and_grad
def vg_square(x):
    return x * x


@s2s_ad.value_and_grad(grad_position=1, has_aux=True)
def vg_aux(x, y):
    return x * ops.exp(y), y


def calls_d_sin(x):
    return d_sin(x) * 1.0


def calls_jitted(x, y):
    return jitted(x, y) * 2.0


def test_jit_matches_eager_numpy_and_caches(monkeypatch):
    import s2s_ad.runtime as rt

    assert jitted.__name__ == "jitted" and jitted.__wrapped__.__name__ == "jitted"
    x, y = t64([0.5, -1.0]), t64([2.0, 3.0])
    expected = np.tanh(arr(x)) * arr(y) + arr(x).sum()
    close(jitted(x, y), expected)

    def programs():  # compiled programs of every transform of the function
        return sum(len(calls) for calls in rt.cache_for(jitted.fn).values())

    n = programs()
    traced = []
    real_trace = rt.trace
    monkeypatch.setattr(rt, "trace", lambda *a, **k: traced.append(1) or real_trace(*a, **k))
    for _ in range(3):
        close(jitted(x, y), expected)
    assert traced == [] and programs() == n
    # A new signature traces once more.
    close(jitted(t32([0.5]), t32([1.0])), [np.tanh(0.5) + 0.5], rtol=1e-6)
    assert traced == [1] and programs() == n + 1


def test_jit_with_keyword_arguments():
    x = t64([1.0, -2.0])
    close(jitted_kw(x), arr(x) * 2.0 + 1.0)
    close(jitted_kw(x, y=3.0), arr(x) * 3.0 + 1.0)
    close(jitted_kw(y=3.0, x=x), arr(x) * 3.0 + 1.0)
    # Keyword-only arguments are passed through (not silently dropped).
    close(jitted_kw(x, z=10.0), arr(x) * 2.0 + 10.0)
    close(jitted_kw(x, 0.5, z=x), arr(x) * 0.5 + arr(x))
    with pytest.raises(ArgumentError, match="unexpected keyword argument 'w'"):
        jitted_kw(x, w=1.0)


class KwCell(nn.Cell):
    def construct(self, x, y=2.0, *, z=1.0):
        return x * y + z


def test_jit_of_a_cell_with_keyword_arguments():
    x = t64([1.0, -2.0])
    j = s2s_ad.jit(KwCell())
    close(j(x), arr(x) * 2.0 + 1.0)
    close(j(x, y=3.0), arr(x) * 3.0 + 1.0)
    close(j(x, z=x), arr(x) * 2.0 + arr(x))
    with pytest.raises(ArgumentError, match="unexpected keyword argument 'w'"):
        j(x, w=1.0)


def test_grad_decorators():
    x = t64([0.3, -1.2, 2.5])
    close(d_sin(x), np.cos(arr(x)))
    y = t64([1.0, 2.0, -0.5])
    close(d_mul(x, y), (arr(y) ** 2, 2 * arr(x) * arr(y)))


def test_value_and_grad_decorators():
    x, y = t64([0.3, -1.2]), t64([1.0, 2.0])
    close(vg_square(x), (arr(x) ** 2, 2 * arr(x)))
    out, g = vg_aux(x, y)
    close(out, (arr(x) * np.exp(arr(y)), arr(y)))
    close(g, arr(x) * np.exp(arr(y)))  # the aux output y does not add to dy


def test_decorated_grad_inside_grad_is_the_second_derivative(mode):
    x = t64([0.3, -1.2, 2.5])
    close(ops.grad(calls_d_sin)(x), -np.sin(arr(x)), rtol=1e-12)
    close(ops.grad(d_sin)(x), -np.sin(arr(x)), rtol=1e-12)


def test_jitted_function_inside_grad():
    x, y = t64([0.5, -1.0]), t64([2.0, 3.0])
    gx, gy = ops.grad(calls_jitted, (0, 1))(x, y)
    # Every output element is seeded with one: x.sum() adds len(x) to each dx.
    close(gx, 2 * ((1 - np.tanh(arr(x)) ** 2) * arr(y) + 2.0))
    close(gy, 2 * np.tanh(arr(x)))


# ---------------------------------------------------------------------------- 6. jvp and vjp


class Cube(nn.Cell):
    def construct(self, x, y):
        return x**3 + y


class SinCos(nn.Cell):
    def construct(self, x, y):
        return ops.sin(x) + ops.cos(y)


class JvpInside(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.jvp = nn.Jvp(net)

    def construct(self, x, y, v):
        out, t = self.jvp(x, y, (v, v))
        out2, t2 = ops.jvp(self.net, (x, y), (v, v * 2.0))
        return out, t, t2


class VjpInside(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.vjp = nn.Vjp(net)

    def construct(self, x, y, v):
        return self.vjp(x, y, v)


def sin_only(x):
    return ops.sin(x) * x


def np_sin_only(x):
    return np.sin(x) * x


def multi_out(x, y):
    return x * y, ops.exp(x) - y


def np_multi_out(x, y):
    return x * y, np.exp(x) - y


CX, CY = t32([[1, 2], [3, 4]]), t32([[1, 2], [3, 4]])
CV = t32([[1, 1], [1, 1]])


def test_jvp_seed_example():
    out, t = ops.jvp(Cube(), (CX, CY), (CV, CV))
    close(out, np.array([[2.0, 10.0], [30.0, 68.0]]))
    close(t, np.array([[4.0, 13.0], [28.0, 49.0]]))
    out2, t2 = nn.Jvp(Cube())(CX, CY, (CV, CV))
    close(out2, out.asnumpy())
    close(t2, t.asnumpy())


def test_vjp_seed_example():
    out, g = ops.vjp(Cube(), (CX, CY), CV)
    close(out, np.array([[2.0, 10.0], [30.0, 68.0]]))
    close(g, (np.array([[3.0, 12.0], [27.0, 48.0]]), np.ones((2, 2))))
    out2, g2 = nn.Vjp(Cube())(CX, CY, CV)
    close(g2, (g[0].asnumpy(), g[1].asnumpy()))


def test_jvp_one_input_bare_tangent_against_finite_differences():
    x, v = t64([0.3, -1.2, 2.5]), t64([1.0, -0.5, 2.0])
    out, t = ops.jvp(sin_only, x, v)
    close(out, np_sin_only(arr(x)))
    close(t, fd_jvp(np_sin_only, [arr(x)], [arr(v)]), rtol=1e-7)
    # A one-input function also takes its input and tangent as one-tuples.
    _, t1 = ops.jvp(sin_only, (x,), (v,))
    close(t1, t.asnumpy())


def test_jvp_several_inputs_and_outputs_against_finite_differences():
    x, y = t64([0.3, -1.2]), t64([2.0, 0.5])
    u, w = t64([1.0, 0.25]), t64([-0.5, 2.0])
    out, t = ops.jvp(multi_out, (x, y), (u, w))
    close(out, np_multi_out(arr(x), arr(y)))
    close(t, fd_jvp(np_multi_out, [arr(x), arr(y)], [arr(u), arr(w)]), rtol=1e-7)
    out2, t2 = s2s_ad.jvp(smooth, [x, y], [u, w])  # lists work like tuples
    close(t2, fd_jvp(np_smooth, [arr(x), arr(y)], [arr(u), arr(w)]), rtol=1e-7)


@pytest.mark.parametrize(
    "inputs, v, match",
    [
        ((SX, SY), SX, r"tangent v must be structured like the inputs: expected \(Tensor, Tensor\), got Tensor"),
        ((SX, SY), (SX,), r"expected \(Tensor, Tensor\), got \(Tensor,\)"),
        ((SX, SY), (SX, SY, SY), r"got \(Tensor, Tensor, Tensor\)"),
        ((SX, SY), ((SX,), SY), r"got \(\(Tensor,\), Tensor\)"),
        ((SX, SY), (SX, t64([1.0, 2.0, 3.0])), r"has shape \(3,\) but its input has shape \(2,\)"),
        (SX, t64(np.ones((2, 2))), r"has shape \(2, 2\) but its input has shape \(2,\)"),
        (SX, (SX, SX), r"expected \(Tensor,\), got \(Tensor, Tensor\)"),
    ],
)
def test_jvp_bad_tangent_is_an_argument_error(inputs, v, match):
    fn = smooth if isinstance(inputs, tuple) else sin_only
    with pytest.raises(ArgumentError, match=match):
        ops.jvp(fn, inputs, v)


def test_nn_jvp_bad_tangent():
    with pytest.raises(ArgumentError, match=r"expected \(Tensor, Tensor\), got Tensor"):
        nn.Jvp(Cube())(CX, CY, CV)
    with pytest.raises(ArgumentError, match="expected a Cell or a function"):
        nn.Jvp(3)
    with pytest.raises(ArgumentError, match="expected a Cell or a function"):
        ops.jvp("f", SX, SX)


def test_jvp_and_vjp_inside_construct(mode):
    x, y, v = t32([0.8, 0.6, 0.2]), t32([0.7, 0.4, 0.3]), t32([1, 1, 1])
    out, t, t2 = JvpInside(SinCos())(x, y, v)
    xs, ys = arr(x).astype(np.float64), arr(y).astype(np.float64)
    close(out, np.sin(xs) + np.cos(ys), rtol=1e-6)
    close(t, [5.24890423e-02, 4.35917288e-01, 6.84546351e-01], rtol=1e-5)
    close(t2, np.cos(xs) - 2 * np.sin(ys), rtol=1e-5)
    out, (gx, gy) = VjpInside(SinCos())(x, y, v)
    close(gx, np.cos(xs), rtol=1e-6)
    close(gy, -np.sin(ys), rtol=1e-6)


def test_vjp_one_input_gives_bare_gradient():
    x, v = t64([0.3, -1.2, 2.5]), t64([1.0, -0.5, 2.0])
    out, g = ops.vjp(sin_only, x, v)
    close(out, np_sin_only(arr(x)))
    close(g, (np.cos(arr(x)) * arr(x) + np.sin(arr(x))) * arr(v))
    _, g1 = nn.Vjp(sin_only)(x, v)
    close(g1, g.asnumpy())


def test_vjp_multi_output_tuple_v():
    x, y = t64([0.3, -1.2]), t64([2.0, 0.5])
    s1, s2 = t64([1.0, 2.0]), t64([-1.0, 0.5])
    out, (gx, gy) = ops.vjp(multi_out, (x, y), (s1, s2))
    close(out, np_multi_out(arr(x), arr(y)))
    close(gx, arr(s1) * arr(y) + arr(s2) * np.exp(arr(x)))
    close(gy, arr(s1) * arr(x) - arr(s2))


@pytest.mark.parametrize(
    "v, match",
    [
        (SX, r"v must be structured like the output of multi_out: expected \(Tensor, Tensor\), got Tensor"),
        ((SX,), r"expected \(Tensor, Tensor\), got \(Tensor,\)"),
        ((SX, SX, SX), r"got \(Tensor, Tensor, Tensor\)"),
        ((SX, t64([1.0, 2.0, 3.0])), r"v \(element 1\) has shape \(3,\) but the output of multi_out has shape \(2,\)"),
    ],
)
def test_vjp_bad_v_is_an_argument_error(v, match):
    with pytest.raises(ArgumentError, match=match):
        ops.vjp(multi_out, (SX, SY), v)


def test_nn_vjp_bad_v():
    with pytest.raises(ArgumentError, match=r"v has shape \(3,\) but the output of sin_only has shape \(2,\)"):
        nn.Vjp(sin_only)(SX, t64([1.0, 2.0, 3.0]))


# ---------------------------------------------------------------------------- 7. nn wrappers


@pytest.mark.parametrize("get_all, get_by_list, sens_param", list(itertools.product([False, True], repeat=3)))
def test_forward_value_and_grad_flags(get_all, get_by_list, sens_param):
    refs = scale_refs()
    s = t64([1.0, -3.0])
    weights = ParameterTuple(SCALE.trainable_params()) if get_by_list else None
    fvg = nn.ForwardValueAndGrad(SCALE, weights, get_all=get_all, get_by_list=get_by_list, sens_param=sens_param)
    out, grads = fvg(SX, SY, s) if sens_param else fvg(SX, SY)
    close(out, refs["out"])
    k = arr(s) if sens_param else 1.0
    dx, dy = refs["dx"] * k, refs["dy"] * k
    dw, db = refs["dw"] * k, np.array([np.sum(k * np.ones(2))])
    if get_all and get_by_list:
        expected = ((dx, dy), (dw, db))
    elif get_by_list:
        expected = (dw, db)
    elif get_all:
        expected = (dx, dy)
    else:
        expected = dx
    close(grads, expected)


def test_forward_value_and_grad_argument_checks():
    with pytest.raises(ArgumentError, match="needs weights"):
        nn.ForwardValueAndGrad(SCALE, get_by_list=True)
    with pytest.raises(ArgumentError, match="get_all must be a bool"):
        nn.ForwardValueAndGrad(SCALE, get_all=1)
    with pytest.raises(ArgumentError, match="expected a Cell or a function"):
        nn.ForwardValueAndGrad(None)
    with pytest.raises(ArgumentError, match="sens"):
        nn.ForwardValueAndGrad(SCALE, sens_param=True)(SX, SY, (SX, SY))


def _act(name, z):
    return {"relu": np.maximum(z, 0.0), "tanh": np.tanh(z), None: z}[name]


def _np_dense_loss(act, reduction, has_bias):
    def f(x, w, b, labels):
        z = x.reshape(-1, x.shape[-1]) @ w.T
        if has_bias:
            z = z + b
        out = _act(act, z).reshape(x.shape[:-1] + (w.shape[0],))
        sq = (out - labels) ** 2
        return {"mean": np.mean(sq), "sum": np.sum(sq), "none": sq}[reduction]

    return f


@pytest.mark.parametrize(
    "weight_init, activation, has_bias, reduction, rank",
    [
        ("tensor", None, True, "mean", 2),
        ("tensor", "relu", True, "sum", 2),
        ("tensor", "tanh", False, "none", 3),
        ("normal", "tanh", True, "mean", 3),
        ("normal", "relu", False, "mean", 2),
        ("zeros", "tanh", True, "sum", 2),
    ],
)
def test_with_loss_cell_dense_mse_gradients(weight_init, activation, has_bias, reduction, rank):
    rng = np.random.default_rng(7)
    s2s_ad.set_seed(3)
    init = t64(rng.standard_normal((3, 4))) if weight_init == "tensor" else weight_init
    dense = nn.Dense(
        4, 3, weight_init=init, bias_init=0.1, has_bias=has_bias, activation=activation, dtype=mstype.float64
    )
    w = dense.weight.asnumpy()
    assert w.shape == (3, 4) and w.dtype == np.float64
    if weight_init == "tensor":
        np.testing.assert_array_equal(w, init.asnumpy())
    elif weight_init == "zeros":
        assert not w.any()
    else:
        assert 0 < w.std() < 0.1  # MindSpore's Normal(sigma=0.01)
    assert [p.name for p in dense.trainable_params()] == (["weight", "bias"] if has_bias else ["weight"])
    shape = (2, 3, 4) if rank == 3 else (5, 4)
    x = t64(rng.standard_normal(shape))
    labels = t64(rng.standard_normal(shape[:-1] + (3,)))
    net = nn.WithLossCell(dense, nn.MSELoss(reduction))
    assert net.backbone_network is dense
    b = dense.bias.asnumpy() if has_bias else np.zeros(3)
    f = _np_dense_loss(activation, reduction, has_bias)
    close(net(x, labels), f(arr(x), w, b, arr(labels)), rtol=1e-12)
    weights = dense.trainable_params()
    gx, gw = ops.grad(net, 0, weights)(x, labels)
    args = [arr(x), w, b, arr(labels)]
    close(gx, fd_grad(f, args, 0), rtol=1e-6, atol=1e-8)
    close(gw[0], fd_grad(f, args, 1), rtol=1e-6, atol=1e-8)
    if has_bias:
        assert len(gw) == 2
        close(gw[1], fd_grad(f, args, 2), rtol=1e-6, atol=1e-8)
    else:
        assert len(gw) == 1


def test_dense_float32_default_against_numpy(mode):
    w = np.arange(6, dtype=np.float32).reshape(2, 3) / 10
    dense = nn.Dense(3, 2, weight_init=Tensor(w), activation="relu")
    assert dense.weight.dtype == mstype.float32 and dense.bias.dtype == mstype.float32
    x = t32([[1.0, -2.0, 0.5], [0.3, 0.2, 0.1]])
    labels = t32([[0.0, 1.0], [1.0, 0.0]])
    gx, (gw, gb) = ops.grad(nn.WithLossCell(dense, nn.MSELoss()), 0, dense.trainable_params())(x, labels)
    z = arr(x) @ w.T
    out = np.maximum(z, 0)
    dz = 2 * (out - arr(labels)) / out.size * (z > 0)
    assert gx.dtype == mstype.float32 and gw.dtype == mstype.float32
    close(gx, dz @ w, rtol=1e-6, atol=1e-7)
    close(gw, dz.T @ arr(x), rtol=1e-6, atol=1e-7)
    close(gb, dz.sum(0), rtol=1e-6, atol=1e-7)


def test_dense_and_loss_argument_checks():
    with pytest.raises(ArgumentValueError, match="shape"):
        nn.Dense(3, 2, weight_init=t64(np.ones((3, 2))))
    with pytest.raises(ArgumentValueError, match="unknown activation"):
        nn.Dense(3, 2, activation="swish")
    with pytest.raises(ArgumentValueError, match="in_channels"):
        nn.Dense(0, 2)
    with pytest.raises(ArgumentValueError, match="reduction"):
        nn.MSELoss("avg")
