"""The CUDA target through the API: device_target='GPU', the ``target`` keyword of the
decorators, forward and reverse mode, higher order, and the fallback to the CPU where CUDA is
not usable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("numba_cuda", reason="the CUDA target needs numba-cuda")

import s2s_ad  # noqa: E402
import s2s_ad.nn as nn  # noqa: E402
import s2s_ad.ops as ops  # noqa: E402
from s2s_ad import Parameter, Tensor, context  # noqa: E402
from s2s_ad import dtype as mstype  # noqa: E402
from s2s_ad.errors import ArgumentValueError  # noqa: E402


class Net(nn.Cell):
    """The MatMul network of the GradOperation seed."""

    def __init__(self):
        super().__init__()
        self.matmul = ops.MatMul()
        self.z = Parameter(Tensor(np.array([1.0], np.float32)), name="z")

    def construct(self, x, y):
        x = x * self.z
        return self.matmul(x, y)


X = Tensor([[0.8, 0.6, 0.2], [1.8, 1.3, 1.1]], dtype=mstype.float32)
Y = Tensor([[0.11, 3.3, 1.1], [1.1, 0.2, 1.4], [1.1, 2.2, 0.3]], dtype=mstype.float32)


def f(x, y):
    return np.sum(np.sin(x) * y, axis=1) + np.tanh(x[:, 0])


def g(x):
    return np.exp(-x * x) * np.cos(3.0 * x)


def test_grad_operation_of_the_seed_network(gpu, built):
    net = Net()
    dx = ops.GradOperation()(net)(X, Y)
    np.testing.assert_allclose(dx.asnumpy(), [[4.51, 2.7, 3.6], [4.51, 2.7, 3.6]], rtol=1e-6)
    assert dx.dtype == mstype.float32
    (gx, gy), (gz,) = ops.GradOperation(get_all=True, get_by_list=True)(net, s2s_ad.ParameterTuple([net.z]))(X, Y)
    np.testing.assert_allclose(gz.asnumpy(), [21.536], rtol=1e-6)
    np.testing.assert_allclose(gy.asnumpy(), [[2.6] * 3, [1.9] * 3, [1.3] * 3], rtol=1e-6)
    assert built == ["grad_Net", "grad_Net"]


def _pynative(fn, *args):
    old = context.get_context("mode")
    context.set_context(mode=context.PYNATIVE_MODE)
    try:
        return fn(*args)
    finally:
        context.set_context(mode=old)


def _close(a, b, rtol=1e-5):
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _close(u, v, rtol)
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=rtol, atol=rtol / 10)


def test_jvp_and_vjp(gpu, built):
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    y = np.linspace(0.5, 2, 6, dtype=np.float32).reshape(2, 3)
    v = (np.ones((2, 3), np.float32), np.full((2, 3), 0.5, np.float32))
    w = np.array([1.0, -2.0], np.float32)
    _close(s2s_ad.jvp(f, (x, y), v), _pynative(s2s_ad.jvp, f, (x, y), v))
    _close(s2s_ad.vjp(f, (x, y), w), _pynative(s2s_ad.vjp, f, (x, y), w))
    assert built == ["jvp_f", "vjp_f"]


def test_second_and_third_order(gpu, built):
    x = np.linspace(-1, 1, 5)
    d2 = s2s_ad.grad(s2s_ad.grad(g))
    d3 = s2s_ad.grad(d2)
    _close(d2(x), _pynative(d2, x), rtol=1e-12)
    _close(d3(x), _pynative(d3, x), rtol=1e-12)
    assert len(built) == 2


def test_target_keyword_overrides_the_context(cuda_usable, built):
    x = np.linspace(-1, 1, 4, dtype=np.float32)
    on_gpu = s2s_ad.jit(g, target="cuda")
    on_cpu = s2s_ad.jit(g, target="cpu")
    _close(on_gpu(x), on_cpu(x))
    assert built == ["jit_g"]
    vg = s2s_ad.value_and_grad(g, target="cuda")
    _close(vg(x[0]), s2s_ad.value_and_grad(g)(x[0]))
    assert built == ["jit_g", "grad_g"]

    @s2s_ad.grad(target="cuda")
    def h(x):
        return np.sum(g(x))

    _close(h(x), s2s_ad.grad(_sum_g)(x))
    assert len(built) == 3
    # target="cpu" wins over device_target="GPU"
    old = context.get_context("device_target")
    context.set_context(device_target="GPU")
    try:
        s2s_ad.jit(g, target="cpu")(x[:3])
    finally:
        context.set_context(device_target=old)
    assert len(built) == 3


def _sum_g(x):
    return np.sum(g(x))


def test_target_must_be_cpu_or_cuda():
    with pytest.raises(ArgumentValueError, match="target must be 'cpu', 'cuda' or None, got 'gpu'"):
        s2s_ad.jit(g, target="gpu")
    with pytest.raises(ArgumentValueError, match="target"):
        s2s_ad.grad(g, target="tpu")


# ---------------------------------------------------------------------------- no CUDA here
@pytest.fixture
def no_cuda(monkeypatch):
    """As on a machine without a GPU, numba-cuda or the simulator."""
    monkeypatch.setattr(context, "_cuda", (False, "no CUDA GPU was found (no NVIDIA driver, or no device)"))
    monkeypatch.setattr(context, "_warned_gpu", False)
    old = context.get_context("device_target")
    yield
    context.set_context(device_target=old)


def test_gpu_without_cuda_warns_once_and_runs_on_the_cpu(no_cuda, built):
    with pytest.warns(RuntimeWarning, match=r"device_target='GPU': no CUDA GPU was found.*running on the CPU"):
        context.set_context(mode=context.GRAPH_MODE, device_target="GPU")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        context.set_context(device_target="GPU")
        jitted = s2s_ad.jit(g, target="cuda")  # already warned
    assert context.backend() == "numba" and context.backend("cuda") == "numba"
    np.testing.assert_allclose(jitted(np.float32(0.5)).asnumpy(), np.exp(-0.25) * np.cos(1.5), rtol=1e-6)
    assert built == []


def test_target_cuda_without_cuda_warns(no_cuda):
    with pytest.warns(RuntimeWarning, match=r"jit\(target='cuda'\): no CUDA GPU.*running on the CPU"):
        s2s_ad.jit(g, target="cuda")


def test_missing_numba_cuda_is_explained(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba_cuda" else real(name, *a))
    usable, why = context._check_cuda()
    assert not usable and 'pip install "s2s_ad[cuda]"' in why


@pytest.mark.skipif(os.path.exists("/dev/nvidia0") or bool(shutil.which("nvidia-smi")), reason="this machine has a GPU")
def test_gpu_fallback_in_a_process_without_the_simulator():
    code = (
        "import warnings\n"
        "warnings.simplefilter('always')\n"
        "from s2s_ad import context\n"
        "context.set_context(device_target='GPU')\n"
        "context.set_context(device_target='GPU')\n"
        "print(context.backend())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "numba"
    assert r.stderr.count("RuntimeWarning") == 1, r.stderr
    assert "running on the CPU" in r.stderr and "NUMBA_ENABLE_CUDASIM=1" in r.stderr
