"""Every seed example in examples/ runs and produces the seed document's values.

Values are compared at float32 resolution: a few printed values differ from the document in
the last bit (BLAS summation order; Numba's correctly rounded float32 sin), see
docs/mindspore_mapping.md.
"""

from __future__ import annotations

import pathlib
import runpy

import numpy as np
import pytest

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
    assert repr(out) == "(Tensor(shape=[1], dtype=Float32, value= [ 2.15359993e+01]),)"


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


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_is_tested(script):
    tested = {n.split('"')[1] for n in pathlib.Path(__file__).read_text().split("run(")[1:] if '"' in n}
    assert script in tested, f"examples/{script} has no test asserting its values"
