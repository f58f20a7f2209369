"""Execution context: ``set_context(mode=GRAPH_MODE | PYNATIVE_MODE, device_target=...)``.

GRAPH_MODE runs generated code compiled by Numba; PYNATIVE_MODE runs the same generated
source as plain numpy (quick to start, easy to step through).
"""

from __future__ import annotations

import warnings
from typing import Any

GRAPH_MODE = 0
PYNATIVE_MODE = 1

_TARGETS = ("CPU", "GPU", "Ascend")
_state: dict[str, Any] = {"mode": GRAPH_MODE, "device_target": "CPU", "device_id": 0}
_warned_gpu = False


def set_context(**kwargs: Any) -> None:
    """Set ``mode`` and/or ``device_target``; other MindSpore keys are accepted and stored."""
    global _warned_gpu
    if "mode" in kwargs:
        mode = kwargs["mode"]
        if mode not in (GRAPH_MODE, PYNATIVE_MODE):
            raise ValueError(f"mode must be context.GRAPH_MODE or context.PYNATIVE_MODE, got {mode!r}")
    if "device_target" in kwargs:
        t = kwargs["device_target"]
        if t not in _TARGETS:
            raise ValueError(f"device_target must be one of {', '.join(_TARGETS)}, got {t!r}")
        if t == "Ascend":
            raise ValueError(
                "device_target='Ascend' is not supported by s2s_ad: it generates code for CPUs "
                "(Numba) and NVIDIA GPUs; use 'CPU' or 'GPU'"
            )
        if t == "GPU" and not _warned_gpu:
            _warned_gpu = True
            warnings.warn(
                "device_target='GPU': s2s_ad's CUDA target is not available yet; running on the CPU",
                RuntimeWarning,
                stacklevel=2,
            )
    _state.update(kwargs)


def get_context(key: str) -> Any:
    if key not in _state:
        raise ValueError(f"unknown context key {key!r}")
    return _state[key]


def backend() -> str:
    """The backend that compiled calls use now."""
    return "numba" if _state["mode"] == GRAPH_MODE else "python"
