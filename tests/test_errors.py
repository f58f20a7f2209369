"""Bad input raises s2s_ad's own exceptions (subclasses of ``S2SError``), never an internal
KeyError/AttributeError/NameError, and the message names the user's file, line and the
offending construct or op.

The offending lines below carry a marker comment (``# <name>``); tests look the line number
up by that marker instead of hard-coding it.
"""

import linecache
import os
import warnings

import numpy as np
import pytest

import s2s_ad
from s2s_ad import (
    ArgumentError,
    Parameter,
    ParameterTuple,
    S2SError,
    ShapeError,
    SourceUnavailableError,
    Tensor,
    UnsupportedSyntaxError,
    context,
    nn,
    ops,
)

THIS_FILE = os.path.basename(__file__)


@pytest.fixture(autouse=True)
def _pynative():
    old = context.get_context("mode")
    context.set_context(mode=context.PYNATIVE_MODE)
    yield
    context.set_context(mode=old)


def line_of(marker: str) -> int:
    """The line of this file that carries the comment ``# <marker>``."""
    tag = f"# <{marker}>"
    with open(__file__, encoding="utf-8") as fh:
        hits = [i for i, text in enumerate(fh, 1) if tag in text]
    assert len(hits) == 1, f"marker {tag} found on lines {hits}"
    return hits[0]


def assert_points_at(err: BaseException, marker: str, *words: str) -> str:
    """``err`` is an S2SError located at the marked line of this file; its message quotes the
    line and contains every one of ``words``."""
    assert isinstance(err, S2SError), f"{type(err).__name__}: {err}"
    line = line_of(marker)
    msg = str(err)
    assert f"{THIS_FILE}:{line}:" in msg, msg
    assert err.loc is not None
    assert os.path.basename(err.loc.file) == THIS_FILE
    assert err.loc.line == line
    src = linecache.getline(__file__, line).strip()
    assert src in msg, f"source line {src!r} not quoted in:\n{msg}"
    for w in words:
        assert w in msg, f"{w!r} not in:\n{msg}"
    return msg


def f32(*shape: int) -> Tensor:
    n = int(np.prod(shape)) if shape else 1
    return Tensor(np.arange(1, n + 1, dtype=np.float32).reshape(shape))


# --------------------------------------------------------------------------- module-level objects
class Opaque:
    """A class s2s_ad knows nothing about."""

    value = 2.0

    def __call__(self, x):
        return x

    def method(self, x):
        return x


OPAQUE = Opaque()
COUNTER = 0


# --------------------------------------------------------------------------- unsupported syntax: Cells
class TryNet(nn.Cell):
    def construct(self, x):
        try:  # <try-cell>
            y = x * 2
        except ValueError:
            y = x
        return y


class WithNet(nn.Cell):
    def construct(self, x):
        with open(os.devnull):  # <with-cell>
            y = x * 2
        return y


class WhileNet(nn.Cell):
    def construct(self, x):
        i = 0
        while i < 2:  # <while-cell>
            x = x * 2
            i = i + 1
        return x


class LambdaNet(nn.Cell):
    def construct(self, x):
        double = lambda a: a * 2  # <lambda-cell>  # noqa: E731
        return double(x)


class GlobalNet(nn.Cell):
    def construct(self, x):
        global COUNTER  # <global-cell>
        return x * 2


def make_nonlocal_net():
    count = 0

    class NonlocalNet(nn.Cell):
        def construct(self, x):
            nonlocal count  # <nonlocal-cell>
            return x * count

    return NonlocalNet


NonlocalNet = make_nonlocal_net()


class DelNet(nn.Cell):
    def construct(self, x):
        y = x * 2
        del y  # <del-cell>
        return x


class SetItemNet(nn.Cell):
    def construct(self, x):
        x[0] = 1.0  # <setitem-cell>
        return x


class AugItemNet(nn.Cell):
    def construct(self, x):
        x[0] += 1.0  # <augitem-cell>
        return x


class CallObjectNet(nn.Cell):
    def construct(self, x):
        return OPAQUE(x)  # <callobj-cell>


class CallOsNet(nn.Cell):
    def construct(self, x):
        os.getcwd()  # <callos-cell>
        return x


class AttrNet(nn.Cell):
    def construct(self, x):
        return x * OPAQUE.value  # <attr-cell>


class MethodNet(nn.Cell):
    def construct(self, x):
        return OPAQUE.method(x)  # <method-cell>


class IfTensorNet(nn.Cell):
    def construct(self, x):
        if x:  # <if-cell>
            return x
        return -x


class CompareNet(nn.Cell):
    def construct(self, x):
        return 0.0 < x < 1.0  # <compare-cell>


# --------------------------------------------------------------------------- unsupported syntax: helpers
def h_try(x):
    try:  # <try-helper>
        y = x * 2
    except ValueError:
        y = x
    return y


def h_with(x):
    with open(os.devnull):  # <with-helper>
        y = x * 2
    return y


def h_while(x):
    i = 0
    while i < 2:  # <while-helper>
        x = x * 2
        i = i + 1
    return x


def h_lambda(x):
    double = lambda a: a * 2  # <lambda-helper>  # noqa: E731
    return double(x)


def h_global(x):
    global COUNTER  # <global-helper>
    return x * 2


def make_nonlocal_helper():
    count = 0

    def h_nonlocal(x):
        nonlocal count  # <nonlocal-helper>
        return x * count

    return h_nonlocal


h_nonlocal = make_nonlocal_helper()


def h_del(x):
    y = x * 2
    del y  # <del-helper>
    return x


def h_setitem(x):
    x[0] = 1.0  # <setitem-helper>
    return x


def h_augitem(x):
    x[0] += 1.0  # <augitem-helper>
    return x


def h_callobj(x):
    return OPAQUE(x)  # <callobj-helper>


def h_callos(x):
    os.getcwd()  # <callos-helper>
    return x


def h_attr(x):
    return x * OPAQUE.value  # <attr-helper>


def h_method(x):
    return OPAQUE.method(x)  # <method-helper>


def h_if(x):
    if x:  # <if-helper>
        return x
    return -x


def h_compare(x):
    return 0.0 < x < 1.0  # <compare-helper>


class HelperNet(nn.Cell):
    """Calls a module-level helper function from construct."""

    def __init__(self, helper):
        super().__init__()
        self.helper = helper

    def construct(self, x):
        y = x * 1.0
        return self.helper(y)


# name → (Cell class, helper, words the message must contain, statement?)
UNSUPPORTED = {
    "try": (TryNet, h_try, ["`try`"], True),
    "with": (WithNet, h_with, ["`with`"], True),
    "while": (WhileNet, h_while, ["`while`"], True),
    "lambda": (LambdaNet, h_lambda, ["lambda"], False),
    "global": (GlobalNet, h_global, ["`global`"], True),
    "nonlocal": (NonlocalNet, h_nonlocal, ["`nonlocal`"], True),
    "del": (DelNet, h_del, ["`del`"], True),
    "setitem": (SetItemNet, h_setitem, ["in-place", "element"], False),
    "augitem": (AugItemNet, h_augitem, ["in-place"], False),
    "callobj": (CallObjectNet, h_callobj, ["Opaque", "not supported"], False),
    "callos": (CallOsNet, h_callos, ["getcwd", "not supported"], False),
    "attr": (AttrNet, h_attr, ["`value`", "Opaque"], False),
    "method": (MethodNet, h_method, ["`method`", "Opaque"], False),
    "if": (IfTensorNet, h_if, ["`if`", "tensor"], False),
    # a single tensor comparison gives a bool tensor; a chained one is rejected
    "compare": (CompareNet, h_compare, ["chained comparisons", "tensor"], False),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_syntax_in_construct(case):
    cls, _, words, is_stmt = UNSUPPORTED[case]
    with pytest.raises(UnsupportedSyntaxError) as ei:
        cls()(f32(2, 3))
    msg = assert_points_at(ei.value, f"{case}-cell", *words)
    if is_stmt:
        assert f"{cls.__name__}.construct" in msg


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_syntax_in_helper(case):
    _, helper, words, is_stmt = UNSUPPORTED[case]
    with pytest.raises(UnsupportedSyntaxError) as ei:
        HelperNet(helper)(f32(2, 3))
    msg = assert_points_at(ei.value, f"{case}-helper", *words)
    if is_stmt:
        assert helper.__name__ in msg


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_syntax_under_grad_operation(case):
    cls, helper, words, _ = UNSUPPORTED[case]
    with pytest.raises(UnsupportedSyntaxError) as ei:
        ops.GradOperation()(cls())(f32(2, 3))
    assert_points_at(ei.value, f"{case}-cell", *words)
    with pytest.raises(UnsupportedSyntaxError) as ei:
        ops.GradOperation(get_all=True)(helper)(f32(2, 3))
    assert_points_at(ei.value, f"{case}-helper", *words)


@pytest.mark.parametrize("case", ["try", "lambda", "setitem", "if"])
def test_unsupported_syntax_in_graph_mode(case):
    # Errors come from the frontend, before anything is compiled by Numba.
    context.set_context(mode=context.GRAPH_MODE)
    cls, helper, words, _ = UNSUPPORTED[case]
    with pytest.raises(UnsupportedSyntaxError) as ei:
        cls()(f32(2, 3))
    assert_points_at(ei.value, f"{case}-cell", *words)
    with pytest.raises(UnsupportedSyntaxError) as ei:
        HelperNet(helper)(f32(2, 3))
    assert_points_at(ei.value, f"{case}-helper", *words)


def test_error_is_raised_again_on_a_second_call():
    net = TryNet()
    for _ in range(2):
        with pytest.raises(UnsupportedSyntaxError) as ei:
            net(f32(2))
        assert_points_at(ei.value, "try-cell", "`try`")


class UndefinedNameNet(nn.Cell):
    def construct(self, x):
        return not_defined_anywhere(x)  # <undefined-name>  # noqa: F821


class MissingSelfAttrNet(nn.Cell):
    def construct(self, x):
        return self.no_such_op(x)  # <missing-self-attr>


class NestedDefNet(nn.Cell):
    def construct(self, x):
        def inner(a):  # <nested-def>
            return a

        return inner(x)


class ListCompNet(nn.Cell):
    def construct(self, x):
        return [x * i for i in range(2)]  # <listcomp>


class FloorDivNet(nn.Cell):
    def construct(self, x):
        return x // 2  # <floordiv>


class BadSubCell(nn.Cell):
    def construct(self, x):
        try:  # <try-subcell>
            return x
        except ValueError:
            return x


class OuterNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.inner = BadSubCell()

    def construct(self, x):
        return self.inner(x * 2)


@pytest.mark.parametrize(
    "cls, marker, words",
    [
        (UndefinedNameNet, "undefined-name", ["not_defined_anywhere", "not defined"]),
        (MissingSelfAttrNet, "missing-self-attr", ["MissingSelfAttrNet", "no_such_op"]),
        (NestedDefNet, "nested-def", ["nested function"]),
        (ListCompNet, "listcomp", ["list comprehension"]),
        (FloorDivNet, "floordiv", ["`//`"]),
        (OuterNet, "try-subcell", ["`try`", "BadSubCell.construct"]),
    ],
)
def test_other_unsupported_constructs(cls, marker, words):
    with pytest.raises(UnsupportedSyntaxError) as ei:
        cls()(f32(3))
    assert_points_at(ei.value, marker, *words)


# --------------------------------------------------------------------------- shape errors
class MatMulNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.matmul = ops.MatMul()

    def construct(self, x, y):
        return self.matmul(x, y)  # <matmul>


class MatMulOperatorNet(nn.Cell):
    def construct(self, x, y):
        return x @ y  # <matmul-operator>


class AddNet(nn.Cell):
    def construct(self, x, y):
        return x + y  # <add>


class MulNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.mul = ops.Mul()

    def construct(self, x, y):
        return self.mul(x, y)  # <mul>


class MulOperatorNet(nn.Cell):
    def construct(self, x, y):
        return x * y  # <mul-operator>


class MulInlineNet(nn.Cell):
    def construct(self, x, y):
        return ops.Mul()(x, y)  # <mul-inline>


def test_matmul_same_shapes_names_matmul_and_both_shapes():
    with pytest.raises(ShapeError) as ei:
        MatMulNet()(f32(2, 3), f32(2, 3))
    msg = assert_points_at(ei.value, "matmul", "MatMul")
    assert msg.count("(2, 3)") >= 2


@pytest.mark.parametrize("cls, marker", [(MatMulNet, "matmul"), (MatMulOperatorNet, "matmul-operator")])
def test_matmul_inner_dimension_mismatch(cls, marker):
    with pytest.raises(ShapeError) as ei:
        cls()(f32(2, 3), f32(4, 5))
    assert_points_at(ei.value, marker, "MatMul", "(2, 3)", "(4, 5)")


def test_matmul_of_1d_tensor():
    with pytest.raises(ShapeError) as ei:
        MatMulNet()(f32(3), f32(3, 2))
    assert_points_at(ei.value, "matmul", "MatMul", "2-D", "(3,)", "(3, 2)")


def test_matmul_shape_error_under_grad_operation():
    with pytest.raises(ShapeError) as ei:
        ops.GradOperation(get_all=True)(MatMulNet())(f32(2, 3), f32(2, 3))
    assert_points_at(ei.value, "matmul", "MatMul", "(2, 3)")


@pytest.mark.parametrize(
    "cls, marker, op, a, b",
    [
        (AddNet, "add", "Add", (2, 3), (3, 2)),
        (MulNet, "mul", "Mul", (2, 3), (4,)),
        (MulOperatorNet, "mul-operator", "Mul", (2, 2), (3, 1, 3)),
        (MulInlineNet, "mul-inline", "Mul", (3,), (2,)),
    ],
)
def test_broadcast_mismatch(cls, marker, op, a, b):
    fmt = lambda s: "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"  # noqa: E731
    with pytest.raises(ShapeError) as ei:
        cls()(f32(*a), f32(*b))
    assert_points_at(ei.value, marker, op, "broadcast", fmt(a), fmt(b))
    with pytest.raises(ShapeError) as ei:
        ops.GradOperation(get_all=True)(cls())(f32(*a), f32(*b))
    assert_points_at(ei.value, marker, op, fmt(a), fmt(b))


def test_shape_error_is_also_a_value_error():
    with pytest.raises(ValueError):
        AddNet()(f32(2, 3), f32(3, 2))


def test_eager_shape_errors_name_the_op_and_shapes():
    with pytest.raises(ShapeError) as ei:
        ops.MatMul()(f32(2, 3), f32(2, 3))
    assert "MatMul" in str(ei.value) and str(ei.value).count("(2, 3)") >= 2
    with pytest.raises(ShapeError) as ei:
        f32(2, 3) + f32(3, 2)
    assert "Add" in str(ei.value) and "(2, 3)" in str(ei.value) and "(3, 2)" in str(ei.value)


# --------------------------------------------------------------------------- argument errors
def construct_line(cls) -> int:
    import inspect

    return inspect.getsourcelines(cls.construct)[1]


@pytest.mark.parametrize("nargs", [1, 3])
def test_wrong_number_of_arguments_to_cell(nargs):
    with pytest.raises(ArgumentError) as ei:
        MatMulNet()(*[f32(2, 2)] * nargs)
    msg = str(ei.value)
    assert "construct" in msg and "(x, y)" in msg and str(nargs) in msg, msg
    assert f"{THIS_FILE}:{construct_line(MatMulNet)}" in msg, msg


@pytest.mark.parametrize("nargs", [1, 3])
def test_wrong_number_of_arguments_to_gradient_function(nargs):
    grad = ops.GradOperation(get_all=True)(MatMulNet())
    with pytest.raises(ArgumentError) as ei:
        grad(*[f32(2, 2)] * nargs)
    msg = str(ei.value)
    assert "construct" in msg and "(x, y)" in msg and str(nargs) in msg, msg
    assert THIS_FILE in msg


def test_sens_param_gradient_function_missing_an_input():
    # With sens_param=True the last argument is the sens, so one input is missing.
    grad = ops.GradOperation(sens_param=True)(MatMulNet())
    with pytest.raises(ArgumentError) as ei:
        grad(f32(2, 2), f32(2, 2))
    assert "(x, y)" in str(ei.value)


def test_argument_error_is_also_a_type_error():
    with pytest.raises(TypeError):
        MatMulNet()(f32(2, 2))


def test_keyword_arguments_to_cell():
    with pytest.raises(ArgumentError) as ei:
        MatMulNet()(f32(2, 2), y=f32(2, 2))
    assert "MatMulNet" in str(ei.value) and "keyword" in str(ei.value)


def test_non_tensor_input():
    with pytest.raises(ArgumentError) as ei:
        MulOperatorNet()(f32(2), "not a tensor")
    assert_points_at(ei.value, "mul-operator", "str")


class TwoOutputs(nn.Cell):
    def construct(self, x, y):
        return x * y, x + y


def test_sens_of_wrong_shape():
    grad = ops.GradOperation(sens_param=True)(MatMulNet())
    with pytest.raises(ArgumentError) as ei:
        grad(f32(2, 3), f32(3, 3), f32(3, 3))
    msg = str(ei.value)
    assert "sens" in msg and "MatMulNet" in msg and "(3, 3)" in msg and "(2, 3)" in msg, msg


def test_sens_tensor_for_two_output_net():
    grad = ops.GradOperation(sens_param=True)(TwoOutputs())
    with pytest.raises(ArgumentError) as ei:
        grad(f32(2), f32(2), f32(2))
    msg = str(ei.value)
    assert "sens" in msg and "TwoOutputs" in msg and "(Tensor, Tensor)" in msg, msg


def test_sens_tuple_of_wrong_length():
    grad = ops.GradOperation(sens_param=True)(TwoOutputs())
    with pytest.raises(ArgumentError) as ei:
        grad(f32(2), f32(2), (f32(2), f32(2), f32(2)))
    assert "(Tensor, Tensor, Tensor)" in str(ei.value)


def test_sens_tuple_for_single_output_net():
    grad = ops.GradOperation(sens_param=True)(MatMulNet())
    with pytest.raises(ArgumentError) as ei:
        grad(f32(2, 2), f32(2, 2), (f32(2, 2), f32(2, 2)))
    assert "sens" in str(ei.value) and "MatMulNet" in str(ei.value)


def test_sens_tuple_element_of_wrong_shape():
    grad = ops.GradOperation(get_all=True, sens_param=True)(TwoOutputs())
    with pytest.raises(ArgumentError) as ei:
        grad(f32(2, 3), f32(2, 3), (f32(2, 3), f32(3)))
    msg = str(ei.value)
    assert "element 1" in msg and "(3,)" in msg and "(2, 3)" in msg, msg


def test_sens_param_with_no_arguments():
    with pytest.raises(ArgumentError) as ei:
        ops.GradOperation(sens_param=True)(TwoOutputs())()
    assert "sens" in str(ei.value)


class SensWrapper(nn.Cell):
    """The seeds' GradNetWrtX with a fixed sens."""

    def __init__(self, net, sens):
        super().__init__()
        self.net = net
        self.sens = sens
        self.grad_op = ops.GradOperation(sens_param=True)

    def construct(self, x, y):
        gradient_function = self.grad_op(self.net)
        return gradient_function(x, y, self.sens)  # <sens-in-cell>


def test_sens_errors_inside_a_cell_point_at_the_call():
    with pytest.raises(ArgumentError) as ei:
        SensWrapper(TwoOutputs(), f32(2, 3))(f32(2, 3), f32(2, 3))
    assert_points_at(ei.value, "sens-in-cell", "(Tensor, Tensor)")
    with pytest.raises(ArgumentError) as ei:
        SensWrapper(MatMulNet(), f32(3, 3))(f32(2, 3), f32(3, 3))
    assert_points_at(ei.value, "sens-in-cell", "(3, 3)", "(2, 3)")


class WithWeight(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = Parameter(Tensor(np.array([2.0], np.float32)), name="w")

    def construct(self, x):
        return x * self.w


def test_get_by_list_without_weights():
    # as in MindSpore, no weights differentiates no weight: an empty tuple for the weights' part
    x = Tensor(np.array([3.0], np.float32))
    assert ops.GradOperation(get_by_list=True)(WithWeight())(x) == ()
    (gx,), gw = ops.GradOperation(get_all=True, get_by_list=True)(WithWeight(), None)(x)
    assert gw == () and float(gx.asnumpy()[0]) == 2.0
    with pytest.raises(ArgumentError) as ei:  # ForwardValueAndGrad still needs them
        nn.ForwardValueAndGrad(WithWeight(), get_by_list=True)
    assert "get_by_list" in str(ei.value) and "weights" in str(ei.value)


def test_weights_that_are_not_parameters():
    net = WithWeight()
    with pytest.raises(ArgumentError) as ei:
        ops.GradOperation(get_by_list=True)(net, [net.w, f32(1)])
    assert "Parameter" in str(ei.value)
    with pytest.raises(ArgumentError):
        ops.GradOperation(get_by_list=True)(net, "w")
    with pytest.raises(TypeError):
        ParameterTuple([net.w, f32(1)])


def test_grad_operation_flag_and_target_types():
    with pytest.raises(ArgumentError) as ei:
        ops.GradOperation(get_all=1)
    assert "get_all" in str(ei.value)
    with pytest.raises(ArgumentError) as ei:
        ops.GradOperation()(42)
    assert "int" in str(ei.value)


def test_weights_good_path_still_works():
    # Guard: the failing cases above are failing for their own reason.
    net = WithWeight()
    (g,) = ops.GradOperation(get_by_list=True)(net, ParameterTuple(net.trainable_params()))(f32(3))
    np.testing.assert_allclose(g.asnumpy(), [6.0])


# --------------------------------------------------------------------------- context
def test_ascend_target_is_rejected():
    before = context.get_context("device_target")
    with pytest.raises(ValueError, match="Ascend") as ei:
        s2s_ad.set_context(device_target="Ascend")
    assert "CPU" in str(ei.value)
    assert context.get_context("device_target") == before


def test_unknown_target_and_mode_are_rejected():
    with pytest.raises(ValueError, match="TPU"):
        context.set_context(device_target="TPU")
    with pytest.raises(ValueError, match="mode"):
        context.set_context(mode=7)
    with pytest.raises(ValueError, match="no_such_key"):
        context.get_context("no_such_key")


def test_gpu_target_warns_and_runs_on_cpu(monkeypatch):
    # as on a machine without a GPU, numba-cuda or the simulator (tests/cuda covers the GPU)
    monkeypatch.setattr(context, "_cuda", (False, "no CUDA GPU was found"))
    saved = context._warned_gpu
    context._warned_gpu = False
    try:
        with pytest.warns(RuntimeWarning, match="GPU.*no CUDA GPU was found.*running on the CPU"):
            context.set_context(device_target="GPU")
        assert context.get_context("device_target") == "GPU"
        assert context.backend() != "cuda"
        # The warning is given once per process.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            context.set_context(device_target="GPU")
        out = ops.GradOperation()(MulOperatorNet())(f32(2), f32(2))
        np.testing.assert_allclose(out.asnumpy(), [1.0, 2.0])
    finally:
        context.set_context(device_target="CPU")
        context._warned_gpu = saved
    assert context.get_context("device_target") == "CPU"


# --------------------------------------------------------------------------- source unavailable
def _exec_namespace():
    ns = {"nn": nn, "ops": ops}
    exec(
        "def exec_fn(x):\n"
        "    return x * 2\n"
        "class ExecNet(nn.Cell):\n"
        "    def construct(self, x):\n"
        "        return x * 3\n",
        ns,
    )
    return ns


def test_exec_function_under_grad_operation():
    fn = _exec_namespace()["exec_fn"]
    with pytest.raises(SourceUnavailableError) as ei:
        ops.GradOperation()(fn)(f32(2))
    assert "exec_fn" in str(ei.value) and "exec()" in str(ei.value)


def test_exec_cell_class():
    net = _exec_namespace()["ExecNet"]()
    with pytest.raises(SourceUnavailableError) as ei:
        net(f32(2))
    assert "ExecNet.construct" in str(ei.value)


def test_exec_helper_called_from_construct():
    fn = _exec_namespace()["exec_fn"]
    with pytest.raises(SourceUnavailableError) as ei:
        HelperNet(fn)(f32(2))
    assert "exec_fn" in str(ei.value)


def test_error_classes_are_s2s_errors():
    for cls in (UnsupportedSyntaxError, ShapeError, ArgumentError, SourceUnavailableError):
        assert issubclass(cls, S2SError)
    assert s2s_ad.S2SError is S2SError


# ---------------------------------------------------------------------------- regressions
_LAMBDAS = {
    "double": lambda a: a * 2,
}


class _Double(nn.Cell):
    def construct(self, x):
        return x * 2


class _NoConstruct(nn.Cell):
    pass


def test_keyword_arguments_to_a_gradient_function_are_an_argument_error():
    with pytest.raises(ArgumentError, match="positional arguments only"):
        ops.GradOperation()(_Double())(x=Tensor([1.0]))


def test_cell_without_construct_says_so():
    with pytest.raises(ArgumentError, match="_NoConstruct does not define construct"):
        _NoConstruct()(Tensor([1.0]))


def test_lambda_in_a_multiline_literal_is_rejected_clearly():
    with pytest.raises(UnsupportedSyntaxError, match="lambda functions cannot be compiled"):
        ops.GradOperation()(_LAMBDAS["double"])(Tensor([1.0, 2.0]))


def test_object_dtype_input_is_an_argument_error():
    with pytest.raises(ArgumentError, match="dtype object"):
        _Double()(np.ones(2, object))
