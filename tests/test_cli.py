"""The ``s2s-ad`` command line: ``demo``, ``show`` (``--args`` spellings, ``--standalone``)."""

import inspect
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from printed import prints_number

from s2s_ad import cli, context
from s2s_ad.dtype import NP_DTYPES
from s2s_ad.ir import Aval

SEED_X = np.array([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]], np.float32)
SEED_Y = np.array([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]], np.float32)
SEED_Z = np.array([1.0], np.float32)
SEED_DX = np.array([[4.51, 2.7, 3.6], [4.51, 2.7, 3.6]], np.float32)
SEED_DY = np.array([[2.6] * 3, [1.9] * 3, [1.3] * 3], np.float32)
SEED_DZ = np.array([21.536], np.float32)
SEED_ARGS = "float32[2,3], float32[3,3]"

MODULE_SOURCE = """\
import numpy as np
from s2s_ad import nn, ops, Tensor, Parameter


class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.matmul = ops.MatMul()
        self.z = Parameter(Tensor(np.array([1.0], np.float32)), name="z")

    def construct(self, x, y):
        x = x * self.z
        out = self.matmul(x, y)
        return out


net_instance = Net()


class Looping(nn.Cell):
    def construct(self, x, y):
        while True:
            x = x * 2
        return x


class NeedsArgs(nn.Cell):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def construct(self, x):
        return x * self.k


def f(x, y):
    return ops.sin(x) * y


def two(x, y):
    return x * y, ops.sin(x)
"""


@pytest.fixture(autouse=True)
def _pynative():
    old = context.get_context("mode")
    context.set_context(mode=context.PYNATIVE_MODE)
    yield
    context.set_context(mode=old)


@pytest.fixture
def module(tmp_path: Path) -> Path:
    path = tmp_path / "user_nets.py"
    path.write_text(MODULE_SOURCE)
    return path


def run_cli(argv, capsys):
    """Run ``cli.main(argv)`` in-process: (exit code, stdout, stderr), with a ``SystemExit``
    carrying a message folded into stderr and exit code 1."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
        if isinstance(code, str):
            print(code, file=sys.stderr)
            code = 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def show_ok(capsys, target, *options, args=SEED_ARGS):
    code, out, err = run_cli(["show", target, "--args", args, *options], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    return out


def load_generated(source: str, name: str):
    """Compile the printed source and return the function it defines."""
    code = compile(source, "<shown>", "exec")
    ns = {"np": np}
    exec(code, ns)
    return ns[name]


def script_env(**extra):
    env = dict(os.environ)
    env.update(extra)
    return env


# --------------------------------------------------------------------------- demo
def test_demo_in_process(capsys):
    code, out, err = run_cli(["demo"], capsys)
    assert code == 0, err
    # construct's source
    assert "def construct(self, x, y):" in out
    assert "x = x * self.z" in out and "out = self.matmul(x, y)" in out
    # the generated gradient function
    assert "def grad_Net(" in out
    start = out.index("def grad_Net(")
    end = out.index("# gradient w.r.t. x")
    grad_net = load_generated(out[start:end], "grad_Net")
    dx, dy, dz = grad_net(SEED_X, SEED_Y, SEED_Z)
    np.testing.assert_allclose(dx, SEED_DX, rtol=1e-5)
    np.testing.assert_allclose(dy, SEED_DY, rtol=1e-5)
    np.testing.assert_allclose(dz, SEED_DZ, rtol=1e-5)
    # the gradient values as the seed prints them (within float32 last-bit differences)
    assert prints_number(out[end:], 4.5099998) and prints_number(out[end:], 21.536)
    assert "Traceback" not in err


def console_script() -> str:
    candidate = Path(sys.executable).with_name("s2s-ad")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("s2s-ad")
    assert found, "the s2s-ad console script is not installed"
    return found


def test_demo_console_script():
    proc = subprocess.run([console_script(), "demo"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "def grad_Net(" in proc.stdout
    assert prints_number(proc.stdout, 4.5099998) and prints_number(proc.stdout, 21.536)
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- show
def test_show_cell_class_prints_valid_python(module, capsys):
    out = show_ok(capsys, f"{module}:Net")
    assert "def grad_Net(" in out
    grad_net = load_generated(out, "grad_Net")
    assert list(inspect.signature(grad_net).parameters) == ["x", "y", "z"]
    (dx,) = grad_net(SEED_X, SEED_Y, SEED_Z)
    np.testing.assert_allclose(dx, SEED_DX, rtol=1e-5)
    # comments point back at the user's source
    assert "user_nets.py:" in out and "self.matmul(x, y)" in out


def test_show_ir_prints_the_typed_program(module, capsys):
    from s2s_ad.api import GradOperation, trace_program
    from s2s_ad.ir import Aval

    out = show_ok(capsys, f"{module}:Net", "--ir")
    assert out.startswith("{ lambda ") and out.rstrip().endswith("}")
    # the gradient of sum(x @ y) by x is the broadcast of y's row sums (no product with ones)
    assert "f32[2,3]" in out and "f32[3,3]" in out and "reduce_sum" in out and "broadcast_to" in out
    # the program the source is printed from: the same as trace_program's
    net = cli.load_target(f"{module}:Net")
    avals = [Aval((2, 3), np.dtype(np.float32)), Aval((3, 3), np.dtype(np.float32))]
    assert out == trace_program(GradOperation()(net), *avals).pretty() + "\n"
    assert show_ok(capsys, f"{module}:Net", "--ir", "--mode", "jvp").count("matmul") >= 2


def test_show_is_identical_across_runs(module, capsys):
    first = show_ok(capsys, f"{module}:Net", "--get-all", "--get-by-list")
    second = show_ok(capsys, f"{module}:Net", "--get-all", "--get-by-list")
    assert first == second
    compile(first, "<shown>", "exec")


def test_show_is_identical_across_hash_seeds(module, capsys):
    expected = show_ok(capsys, f"{module}:Net", "--get-all", "--get-by-list")
    outs = []
    for seed in ("1", "2"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "s2s_ad.cli",
                "show",
                f"{module}:Net",
                "--args",
                SEED_ARGS,
                "--get-all",
                "--get-by-list",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env=script_env(PYTHONHASHSEED=seed),
        )
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout)
    assert outs[0] == outs[1]
    assert outs[0] == expected


def test_show_get_all(module, capsys):
    out = show_ok(capsys, f"{module}:Net", "--get-all")
    assert "get_all=True" in out
    dx, dy = load_generated(out, "grad_Net")(SEED_X, SEED_Y, SEED_Z)
    np.testing.assert_allclose(dx, SEED_DX, rtol=1e-5)
    np.testing.assert_allclose(dy, SEED_DY, rtol=1e-5)


def test_show_get_by_list(module, capsys):
    out = show_ok(capsys, f"{module}:Net", "--get-by-list")
    assert "get_by_list=True" in out
    (dz,) = load_generated(out, "grad_Net")(SEED_X, SEED_Y, SEED_Z)
    np.testing.assert_allclose(dz, SEED_DZ, rtol=1e-5)


def test_show_get_all_and_get_by_list(module, capsys):
    out = show_ok(capsys, f"{module}:Net", "--get-all", "--get-by-list")
    dx, dy, dz = load_generated(out, "grad_Net")(SEED_X, SEED_Y, SEED_Z * 2)
    np.testing.assert_allclose(dx, SEED_DX * 2, rtol=1e-5)
    np.testing.assert_allclose(dy, SEED_DY * 2, rtol=1e-5)
    np.testing.assert_allclose(dz, SEED_DZ, rtol=1e-5)


def test_show_cell_instance(module, capsys):
    out = show_ok(capsys, f"{module}:net_instance")
    (dx,) = load_generated(out, "grad_Net")(SEED_X, SEED_Y, SEED_Z)
    np.testing.assert_allclose(dx, SEED_DX, rtol=1e-5)


def test_show_forward_mode(module, capsys):
    out = show_ok(capsys, f"{module}:Net", "--mode", "forward")
    assert "def Net(" in out and "def grad_" not in out
    (res,) = load_generated(out, "Net")(SEED_X, SEED_Y, SEED_Z * 3)
    np.testing.assert_allclose(res, (SEED_X * 3) @ SEED_Y, rtol=1e-5)


def test_show_plain_function(module, capsys):
    x = np.array([0.1, 0.5, 2.0], np.float32)
    y = np.array([3.0, -1.0, 0.5], np.float32)
    out = show_ok(capsys, f"{module}:f", args="float32[3], float32[3]")
    assert "def grad_f(" in out
    (dx,) = load_generated(out, "grad_f")(x, y)
    np.testing.assert_allclose(dx, y * np.cos(x), rtol=1e-5)
    out = show_ok(capsys, f"{module}:f", "--get-all", args="float32[3], float32[3]")
    dx, dy = load_generated(out, "grad_f")(x, y)
    np.testing.assert_allclose(dx, y * np.cos(x), rtol=1e-5)
    np.testing.assert_allclose(dy, np.sin(x), rtol=1e-5)


def test_show_plain_function_forward(module, capsys):
    x = np.array([0.1, 0.5], np.float64)
    y = np.array([3.0, -1.0], np.float64)
    out = show_ok(capsys, f"{module}:f", "--mode", "forward", args="float64[2], float64[2]")
    (res,) = load_generated(out, "f")(x, y)
    np.testing.assert_allclose(res, np.sin(x) * y)


def test_show_sens_two_outputs(module, capsys):
    out = show_ok(capsys, f"{module}:two", "--sens", "--get-all", args="float32[2], float32[2]")
    assert "sens_param=True" in out
    fn = load_generated(out, "grad_two")
    assert len(inspect.signature(fn).parameters) == 4  # x, y and one sens per output
    x = np.array([0.3, 1.2], np.float32)
    y = np.array([2.0, -1.0], np.float32)
    s0 = np.array([1.0, 0.5], np.float32)
    s1 = np.array([-2.0, 3.0], np.float32)
    dx, dy = fn(x, y, s0, s1)
    np.testing.assert_allclose(dx, s0 * y + s1 * np.cos(x), rtol=1e-5)
    np.testing.assert_allclose(dy, s0 * x, rtol=1e-5)


# --------------------------------------------------------------------------- errors
def assert_clean_failure(code, err, *words):
    assert code != 0
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.py"
    code, out, err = run_cli(["show", f"{missing}:Net", "--args", SEED_ARGS], capsys)
    assert_clean_failure(code, err, "no such file", "nope.py")
    assert out == ""


def test_missing_name(module, capsys):
    code, out, err = run_cli(["show", f"{module}:NoSuchNet", "--args", SEED_ARGS], capsys)
    assert_clean_failure(code, err, "NoSuchNet")
    assert out == ""


def test_target_without_name(module, capsys):
    code, _, err = run_cli(["show", str(module), "--args", SEED_ARGS], capsys)
    assert_clean_failure(code, err, "FILE.py:NAME")


@pytest.mark.parametrize(
    "spec, word", [("float32[2,3], garbage", "garbage"), ("float32(2,3)", "float32(2,3)"), ("floaty[2]", "floaty")]
)
def test_unparsable_args(module, capsys, spec, word):
    code, out, err = run_cli(["show", f"{module}:Net", "--args", spec], capsys)
    assert_clean_failure(code, err, "--args", word)
    assert out == ""


def test_missing_args_option(module, capsys):
    code, _, err = run_cli(["show", f"{module}:Net"], capsys)
    assert_clean_failure(code, err, "--args")


def test_unsupported_syntax_in_target(module, capsys):
    code, out, err = run_cli(["show", f"{module}:Looping", "--args", SEED_ARGS], capsys)
    assert code == 1
    line = MODULE_SOURCE.splitlines().index("        while True:") + 1
    assert_clean_failure(code, err, f"user_nets.py:{line}", "`while`")
    assert out == ""


def test_shape_mismatch_in_target(module, capsys):
    code, _, err = run_cli(["show", f"{module}:Net", "--args", "float32[2,3], float32[2,3]"], capsys)
    assert code == 1
    assert_clean_failure(code, err, "MatMul", "(2, 3)", "user_nets.py:")


def test_wrong_number_of_args_in_spec(module, capsys):
    code, _, err = run_cli(["show", f"{module}:Net", "--args", "float32[2,3]"], capsys)
    assert_clean_failure(code, err, "(x, y)")


def test_cell_class_needing_constructor_arguments(module, capsys):
    code, _, err = run_cli(["show", f"{module}:NeedsArgs", "--args", "float32[2]"], capsys)
    assert_clean_failure(code, err, "NeedsArgs")


def test_get_by_list_on_a_function(module, capsys):
    code, _, err = run_cli(["show", f"{module}:f", "--args", "float32[2], float32[2]", "--get-by-list"], capsys)
    assert_clean_failure(code, err, "--get-by-list")


def test_console_script_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [console_script(), "show", f"{tmp_path / 'missing.py'}:Net", "--args", SEED_ARGS],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_show_sens_single_output_and_sens_names(tmp_path, capsys):
    f = tmp_path / "one.py"
    f.write_text("from s2s_ad import ops\ndef g(x):\n    return ops.sin(x)\ndef two(x, y):\n    return x * y, x + y\n")
    assert cli.main(["show", f"{f}:g", "--args", "float32[2]", "--sens"]) == 0
    assert "def grad_g(x, sens):" in capsys.readouterr().out
    assert cli.main(["show", f"{f}:two", "--args", "float32[2], float32[2]", "--sens"]) == 0
    assert "def grad_two(x, y, sens_0, sens_1):" in capsys.readouterr().out


def test_show_non_integer_dimension_is_a_clean_error(tmp_path):
    f = tmp_path / "one.py"
    f.write_text("from s2s_ad import ops\ndef g(x):\n    return ops.sin(x)\n")
    with pytest.raises(SystemExit, match="dimensions must be integers"):
        cli.main(["show", f"{f}:g", "--args", "float32[a]"])


def test_show_jvp_mode_is_forward_mode(module, capsys):
    x = np.array([0.1, 0.5, 2.0], np.float64)
    y = np.array([3.0, -1.0, 0.5], np.float64)
    u = np.array([1.0, -2.0, 0.5])
    w = np.array([0.3, 0.2, -1.0])
    out = show_ok(capsys, f"{module}:f", "--mode", "jvp", args="float64[3], float64[3]")
    assert "def jvp_f(" in out and "Forward-mode" in out and "_bar" not in out
    value, tangent = load_generated(out, "jvp_f")(x, y, u, w)
    np.testing.assert_allclose(value, np.sin(x) * y)
    np.testing.assert_allclose(tangent, np.cos(x) * y * u + np.sin(x) * w)


def test_show_jvp_mode_wrong_number_of_inputs_is_a_clean_error(module, capsys):
    code, out, err = run_cli(["show", f"{module}:Net", "--args", "float32[2,3]", "--mode", "jvp"], capsys)
    assert code == 1 and "Traceback" not in err
    assert "takes 2 input(s) (x, y) but 1 were given" in err


def test_show_vjp_mode(module, capsys):
    x = np.array([0.1, 0.5], np.float64)
    y = np.array([3.0, -1.0], np.float64)
    s1, s2 = np.array([1.0, 2.0]), np.array([-1.0, 0.5])
    out = show_ok(capsys, f"{module}:two", "--mode", "vjp", args="float64[2], float64[2]")
    assert "def vjp_two(" in out
    v1, v2, gx, gy = load_generated(out, "vjp_two")(x, y, s1, s2)
    np.testing.assert_allclose(v1, x * y)
    np.testing.assert_allclose(gx, s1 * y + s2 * np.cos(x))
    np.testing.assert_allclose(gy, s1 * x)


HIGHER = """\
from s2s_ad import ops


def g(x):
    return ops.sin(x) * ops.exp(-x * x) / (1 + x * x)
"""


def _g_derivative(n: int, x: float) -> float:
    import sympy as sp

    s = sp.Symbol("x")
    return float(sp.diff(sp.sin(s) * sp.exp(-s * s) / (1 + s * s), s, n).subs(s, x))


@pytest.mark.parametrize("order", [2, 3])
def test_show_order_prints_the_nth_derivative(tmp_path, capsys, order):
    path = tmp_path / "higher.py"
    path.write_text(HIGHER)
    out = show_ok(capsys, f"{path}:g", "--order", str(order), args="float64[]")
    name = "grad_" * order + "g"
    assert f"def {name}(" in out
    (d,) = load_generated(out, name)(np.float64(0.7))
    assert float(d) == pytest.approx(_g_derivative(order, 0.7), rel=1e-12)


def test_show_order_with_jvp_on_top(tmp_path, capsys):
    path = tmp_path / "higher.py"
    path.write_text(HIGHER)
    out = show_ok(capsys, f"{path}:g", "--order", "2", "--mode", "jvp", args="float64[3]")
    x, v = np.array([0.1, 0.7, -1.2]), np.array([1.0, 2.0, -0.5])
    g1, t = load_generated(out, "jvp_grad_g")(x, v)
    np.testing.assert_allclose(t, v * [_g_derivative(2, xi) for xi in x], rtol=1e-12)


@pytest.mark.parametrize("opts", [["--order", "0"], ["--order", "2", "--sens"], ["--order", "2", "--mode", "forward"]])
def test_show_order_bad_combinations(module, capsys, opts):
    code, _, err = run_cli(["show", f"{module}:f", "--args", "float32[3], float32[3]", *opts], capsys)
    assert code == 1 and "s2s-ad:" in err and "Traceback" not in err


# --------------------------------------------------------------------------- --args spellings
@pytest.mark.parametrize("dt", NP_DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(), (4,), (2, 3)])
def test_args_accept_the_spelling_avals_print(dt, shape):
    aval = Aval(shape, dt)
    assert cli.parse_args_spec(str(aval)) == [aval]  # f64[4], i32[2,3], bool[]
    assert cli.parse_args_spec(f"{dt.name}[{', '.join(map(str, shape))}]") == [aval]  # numpy's name


def test_args_spellings_mixed_and_bare_scalars():
    f64, i64, b = np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_)
    assert cli.parse_args_spec("f64[4], float32[2, 3],i64, int32 , bool[3], double") == [
        Aval((4,), f64),
        Aval((2, 3), np.dtype(np.float32)),
        Aval((), i64),
        Aval((), np.dtype(np.int32)),
        Aval((3,), b),
        Aval((), f64),
    ]


def test_args_round_trip_through_the_generated_docstring(module, capsys):
    out = show_ok(capsys, f"{module}:f", args="float64[2,3], float64[2,3]")
    line = next(s.strip() for s in out.splitlines() if s.strip().startswith("x: "))
    assert line == "x: f64[2,3], y: f64[2,3]"
    printed = ", ".join(part.split(": ")[1] for part in line.split(", "))
    assert show_ok(capsys, f"{module}:f", args=printed) == out


@pytest.mark.parametrize(
    "spec, bad", [("b[3]", "'b'"), ("f64[4], float_[2]", "'float_'"), ("complex128[2]", "'complex")]
)
def test_args_bad_dtype_lists_the_accepted_ones(module, capsys, spec, bad):
    code, out, err = run_cli(["show", f"{module}:f", "--args", spec], capsys)
    assert_clean_failure(code, err, "unknown dtype", bad, "accepted:", "f64", "float64", "i32", "int32", "bool")
    assert out == ""


@pytest.mark.parametrize("spec", ["f64[4],", "f64[4],,f32[4]", "f64[4] f32[4]", "f64[-1]"])
def test_args_malformed_lists_are_clean_errors(module, capsys, spec):
    code, out, err = run_cli(["show", f"{module}:f", "--args", spec], capsys)
    assert_clean_failure(code, err, "--args")
    assert out == ""


# --------------------------------------------------------------------------- show --standalone
STANDALONE = """\
from s2s_ad import ops


def h(x, w):
    return (ops.tanh(x * w) + ops.exp(-x) * w).sum() + ops.sin(x).sum()
"""


def test_show_standalone_modules_run_on_their_own(tmp_path, capsys):
    """``show --standalone > m.py`` for numpy and numba; ``import m`` in a fresh process gives
    what s2s_ad computes in PYNATIVE and GRAPH mode (shapes with fused loops)."""
    import s2s_ad

    path = tmp_path / "user_h.py"
    path.write_text(STANDALONE)
    for target in ("numpy", "numba"):
        out = show_ok(
            capsys, f"{path}:h", "--get-all", "--target", target, "--standalone", args="f64[3,4], float64[3,4]"
        )
        (tmp_path / f"m_{target}.py").write_text(out)
    assert "for i0 in range(" in (tmp_path / "m_numba.py").read_text()  # fused loops
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "w.npy", w)
    script = (
        "import numpy as np, numba, m_numpy, m_numba\n"
        "x, w = np.load('x.npy'), np.load('w.npy')\n"
        "assert isinstance(m_numba.grad_h, numba.core.registry.CPUDispatcher)\n"
        "for m in (m_numpy, m_numba):\n"
        "    dx, dw = m.grad_h(x, w)\n"
        "    np.save(m.__name__ + '_dx.npy', dx)\n"
        "    np.save(m.__name__ + '_dw.npy', dw)\n"
    )
    root = str(Path(s2s_ad.__file__).resolve().parents[1])  # the s2s_ad under test
    env = script_env(PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr
    h = cli.load_target(f"{path}:h")
    t = np.tanh(x * w)
    expected_dx = (1 - t * t) * w - np.exp(-x) * w + np.cos(x)
    for mode in (context.PYNATIVE_MODE, context.GRAPH_MODE):
        context.set_context(mode=mode)
        dx, dw = s2s_ad.GradOperation(get_all=True)(h)(x, w)
        np.testing.assert_allclose(dx.asnumpy(), expected_dx, rtol=1e-12)
        for target in ("numpy", "numba"):
            got_dx, got_dw = np.load(tmp_path / f"m_{target}_dx.npy"), np.load(tmp_path / f"m_{target}_dw.npy")
            np.testing.assert_allclose(got_dx, dx.asnumpy(), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(got_dw, dw.asnumpy(), rtol=1e-12, atol=1e-14)


def test_show_standalone_is_the_source_plus_its_imports(module, capsys):
    plain = show_ok(capsys, f"{module}:f", "--target", "numba", args="f32[3], f32[3]")
    out = show_ok(capsys, f"{module}:f", "--target", "numba", "--standalone", args="f32[3], f32[3]")
    assert plain in out and "import numpy as np" in out and "import numba" in out and "vm = loop_namespace()" in out
    assert out.rstrip().endswith('grad_f = numba.njit(grad_f, nogil=True, error_model="numpy")')
    plain = show_ok(capsys, f"{module}:f", args="f32[3], f32[3]")
    out = show_ok(capsys, f"{module}:f", "--standalone", args="f32[3], f32[3]")
    assert out.endswith(plain) and "import numpy as np" in out and "numba" not in out and "vm" not in out


def test_show_standalone_and_ir_together_is_a_clean_error(module, capsys):
    code, out, err = run_cli(["show", f"{module}:f", "--args", "f32[3], f32[3]", "--ir", "--standalone"], capsys)
    assert_clean_failure(code, err, "--standalone", "--ir")
    assert out == ""
