"""The kernels compile for a real GPU (PTX for compute capability 8.0), in a process without
the simulator; skipped where no CUDA compiler (NVVM, NVRTC) is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba_cuda", reason="the CUDA target needs numba-cuda")


def test_kernels_compile_to_ptx_without_float64():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    script = Path(__file__).with_name("_ptx_check.py")
    r = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    if r.returncode == 77:
        pytest.skip(f"{r.stdout.strip()} (install a CUDA toolkit, or the nvidia-nvvm and nvidia-cuda-nvrtc wheels)")
    assert r.returncode == 0, r.stdout + r.stderr
