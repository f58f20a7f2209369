"""Golden snapshots of the IR and generated source for the seeds' MatMul network.

Generated code must be identical from run to run and process to process. To accept an
intended change, run ``S2S_AD_UPDATE_GOLDEN=1 pytest tests/golden`` and review the diff.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from s2s_ad import ParameterTuple, ops
from s2s_ad.api import generated_source, trace_program
from s2s_ad.demo import Net, inputs

HERE = pathlib.Path(__file__).parent


def _grad():
    net = Net()
    return ops.GradOperation(get_all=True, get_by_list=True)(net, ParameterTuple(net.trainable_params()))


def snapshots() -> dict[str, str]:
    x, y = inputs()
    return {
        "seed_net_grad.py.txt": generated_source(_grad(), x, y),
        "seed_net_grad.ir.txt": trace_program(_grad(), x, y).pretty() + "\n",
        "seed_net_forward.py.txt": generated_source(Net(), x, y),
    }


@pytest.mark.parametrize("name", sorted(snapshots()))
def test_snapshot(name):
    got = snapshots()[name]
    path = HERE / name
    if os.environ.get("S2S_AD_UPDATE_GOLDEN"):
        path.write_text(got)
    assert got == path.read_text(), f"{name} changed; rerun with S2S_AD_UPDATE_GOLDEN=1 if intended"


def test_generated_source_is_valid_python_and_runs():
    import numpy as np

    x, y = inputs()
    src = snapshots()["seed_net_grad.py.txt"]
    ns = {"np": np}
    exec(compile(src, "<golden>", "exec"), ns)
    dx, dy, dz = ns["grad_Net"](x.asnumpy(), y.asnumpy(), np.array([1.0], np.float32))
    np.testing.assert_allclose(dx, np.ones((2, 3), np.float32) @ y.asnumpy().T, rtol=1e-6)
    assert dz.shape == (1,)


def test_same_source_in_fresh_processes_with_different_hash_seeds():
    code = (
        "from s2s_ad import ParameterTuple, ops\n"
        "from s2s_ad.api import generated_source\n"
        "from s2s_ad.demo import Net, inputs\n"
        "net = Net(); x, y = inputs()\n"
        "print(generated_source(ops.GradOperation(get_all=True, get_by_list=True)(net, "
        "ParameterTuple(net.trainable_params())), x, y))\n"
    )
    outs = []
    for seed in ("0", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.append(
            subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
        )
    assert outs[0] == outs[1]
    assert "def grad_Net(x, y, z):" in outs[0]
