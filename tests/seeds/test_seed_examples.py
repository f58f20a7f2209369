"""Every seed example in examples/ runs and produces the seed document's values.

Values are compared at float32 resolution, printed forms with ``tests/printed.py`` (numbers
within a float tolerance): a few printed values differ from the document in the last bit (BLAS
summation order; Numba's correctly rounded float32 sin; numpy's SIMD paths differ by CPU), see
docs/mindspore_mapping.md.
"""

from __future__ import annotations

import pathlib
import runpy

import numpy as np
import pytest
from printed import printed_equal

from s2s_ad import Tensor, context

pytestmark = pytest.mark.filterwarnings("ignore:device_target=.GPU.:RuntimeWarning")

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"

DX = [[4.51, 2.7, 3.6], [4.51, 2.7, 3.6]]


def run(name: str, capsys) -> dict:
    old = context.get_context("mode")
    try:
        ns = runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    finally:
        context.set_context(mode=old, device_target="CPU")
    capsys.readouterr()
    return ns


def close(t, expected):
    assert isinstance(t, Tensor)
    assert t.dtype == np.float32 or str(t.dtype) == "Float32"
    np.testing.assert_allclose(t.asnumpy(), np.asarray(expected, np.float32), rtol=2e-7 * 4, atol=1e-7)


def test_grad_wrt_x(capsys):
    close(run("grad_wrt_x.py", capsys)["output"], DX)


def test_grad_get_all(capsys):
    out = run("grad_get_all.py", capsys)["output"]
    assert isinstance(out, tuple) and len(out) == 2
    close(out[0], DX)
    close(out[1], [[2.6] * 3, [1.9] * 3, [1.3] * 3])


def test_grad_wrt_weights(capsys):
    out = run("grad_wrt_weights.py", capsys)["output"]
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (1,)
    close(out[0], [21.536])
    # the seed's printed form, its number within float32 last-bit differences
    assert printed_equal(repr(out), "(Tensor(shape=[1], dtype=Float32, value= [ 2.15359993e+01]),)"), repr(out)


def test_grad_sens(capsys):
    close(run("grad_sens.py", capsys)["output"], [[2.211, 0.51, 1.49], [5.588, 2.68, 4.07]])


def test_grad_single_output(capsys):
    close(run("grad_single_output.py", capsys)["output"], [[0.11, 1.1, 1.1], [0.0, 0.0, 0.0]])


def test_stop_gradient(capsys):
    close(run("stop_gradient_with.py", capsys)["output"], DX)
    close(run("stop_gradient_without.py", capsys)["output"], [[9.02, 5.4, 7.2], [9.02, 5.4, 7.2]])


def test_second_order_sin(capsys):
    close(run("second_order_sin.py", capsys)["output"], [-0.841471])


def test_second_order_mul(capsys):
    close(run("second_order_mul.py", capsys)["output"], [2.0, 2.0, 2.0])


def test_second_order_mixed(capsys):
    ns = run("second_order_mixed.py", capsys)
    for name, value in (("dxdx", 10.0), ("dxdy", 8.0), ("dydx", 8.0), ("dydy", 0.0)):
        close(ns[name], [value])


# --------------------------------------------------------------- 000: ForwardValueAndGrad
FORWARD = [[0.968, 3.2, 1.78], [2.838, 8.62, 4.13]]


def test_forward_value_and_grad_wrt_x(capsys):
    value, grad = run("forward_value_and_grad_wrt_x.py", capsys)["output"]
    close(value, FORWARD)
    close(grad, DX)


def test_forward_value_and_grad_wrt_weights(capsys):
    value, grads = run("forward_value_and_grad_wrt_weights.py", capsys)["output"]
    close(value, FORWARD)
    assert isinstance(grads, tuple) and len(grads) == 1
    close(grads[0], [21.536])


def test_forward_value_and_grad_sens(capsys):
    value, grad = run("forward_value_and_grad_sens.py", capsys)["output"]
    close(value, FORWARD)
    close(grad, [[2.211, 0.51, 1.49], [5.588, 2.68, 4.07]])


# --------------------------------------------------------------- 001: WithLossCell + softmax CE
def test_forward_value_and_grad_with_loss_cell(capsys):
    value, ((g_inputs, g_labels), (g_weight,)) = run("forward_value_and_grad_with_loss.py", capsys)["result"]
    close(value, [0.0])
    close(g_inputs, [[1.0, 1.0]])
    close(g_labels, [[0.0, 0.0]])
    close(g_weight, [[0.5, 0.5], [0.5, 0.5]])


# --------------------------------------------------------------- 002: value_and_grad
def test_value_and_grad_cell(capsys):
    ns = run("value_and_grad_cell.py", capsys)
    close(ns["output"], [-0.0, 18.0])
    assert np.signbit(ns["output"].asnumpy()[0]), "-0. as in the seed"
    close(ns["inputs_gradient"], [0.0, 6.0])


def test_value_and_grad_function_has_aux(capsys):
    ns = run("value_and_grad_function.py", capsys)
    out, aux = ns["output"]
    close(out, [75.0, 75.0])
    close(aux, [5.0, 5.0])
    gy, gz = ns["inputs_gradient"]
    close(gy, [75.0, 75.0])
    close(gz, [30.0, 30.0])


def test_value_and_grad_dense(capsys):
    ns = run("value_and_grad_dense.py", capsys)
    assert ns["logits"].shape == (16, 1)
    assert ns["inputs_gradient"].shape == (16, 10)
    assert len(ns["weights"]) == len(ns["params_gradient"]) == 2
    # Case 3 (has_aux=False): both loss and logits are seeded with ones; check against numpy.
    x, y = ns["inputs"].asnumpy().astype(np.float64), ns["labels"].asnumpy().astype(np.float64)
    w, b = (p.asnumpy().astype(np.float64) for p in ns["weights"])
    logits = x @ w.T + b
    dlogits = 2 * (logits - y) / logits.size + 1.0
    np.testing.assert_allclose(ns["inputs_gradient"].asnumpy(), dlogits @ w, rtol=1e-5, atol=1e-6)
    gw, gb = ns["params_gradient"]
    np.testing.assert_allclose(gw.asnumpy(), dlogits.T @ x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gb.asnumpy(), dlogits.sum(0), rtol=1e-5, atol=1e-5)
    close(ns["loss"], np.mean((logits - y) ** 2))


# --------------------------------------------------------------- 003: Jvp, Vjp, functional forms
SIN_COS = [1.48219836, 1.48570347, 1.15400589]


def test_nn_jvp(capsys):
    out, jvp = run("nn_jvp.py", capsys)["output"]
    close(out, SIN_COS)
    close(jvp, [5.24890423e-02, 4.35917288e-01, 6.84546351e-01])


def test_nn_vjp(capsys):
    out, (gx, gy) = run("nn_vjp.py", capsys)["output"]
    close(out, SIN_COS)
    close(gx, [6.96706712e-01, 8.25335622e-01, 9.80066597e-01])
    close(gy, [-6.44217670e-01, -3.89418334e-01, -2.95520216e-01])


def test_functional_grad_position(capsys):
    gy, gz = run("functional_grad_position.py", capsys)["output"]
    close(gy, [[0.0, 6.0], [15.0, -4.0]])
    close(gz, [[-2.0, 6.0], [-3.0, 8.0]])


def test_functional_grad_sens(capsys):
    gy, gz = run("functional_grad_sens.py", capsys)["output"]
    close(gy, [[4.0, 36.0], [26.0, 0.0]])
    close(gz, [[2.0, 36.0], [14.0, 6.0]])


CUBE = [[2.0, 10.0], [30.0, 68.0]]


def test_functional_jvp(capsys):
    out, jvp = run("functional_jvp.py", capsys)["output"]
    close(out, CUBE)
    close(jvp, [[4.0, 13.0], [28.0, 49.0]])


def test_functional_vjp(capsys):
    out, (gx, gy) = run("functional_vjp.py", capsys)["output"]
    close(out, CUBE)
    close(gx, [[3.0, 12.0], [27.0, 48.0]])
    close(gy, [[1.0, 1.0], [1.0, 1.0]])


# Examples that are not seed programs, with the test module that runs them.
TESTED_ELSEWHERE = {"dask_sweep.py": "test_dask.py", "train_digits.py": "api/test_training.py"}


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_is_tested(script):
    if script in TESTED_ELSEWHERE:
        test = pathlib.Path(__file__).resolve().parents[1] / TESTED_ELSEWHERE[script]
        assert f'"{script}"' in test.read_text(), f"{test.name} does not run examples/{script}"
        return
    tested = {n.split('"')[1] for n in pathlib.Path(__file__).read_text().split("run(")[1:] if '"' in n}
    assert script in tested, f"examples/{script} has no test asserting its values"
