"""The CUDA target: generated ``numba.cuda`` kernels and the host code that launches them.

``build(program, fname, doc)`` returns the generated source and the host function, which takes
the program's inputs as numpy arrays (numpy scalars for shape ``()``) and returns its outputs
as host numpy values. :mod:`s2s_ad.cuda.printer` writes the source, :mod:`s2s_ad.cuda.devicemath`
holds the scalar device functions the kernels call.

It needs the ``numba-cuda`` package (``pip install "s2s_ad[cuda]"``) and an NVIDIA GPU, or
Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` in the environment before numba is
imported), which runs the same kernels in Python: slowly, but on any machine.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable

from ..codegen import register_source
from ..context import CUDA_INSTALL_HINT as INSTALL_HINT
from ..context import cuda_status as status
from ..errors import S2SError
from ..ir import Program
from .printer import (
    GPU_LAUNCH,
    SIM_LAUNCH,
    Launch,
    device_function_names,
    device_namespace,
    generate,
    launch_config,
    simulated,
)

__all__ = [
    "GPU_LAUNCH",
    "SIM_LAUNCH",
    "Launch",
    "build",
    "device_function_names",
    "device_namespace",
    "generate",
    "launch_config",
    "simulated",
    "status",
]

_CACHE: dict[str, Callable] = {}
_LOCK = threading.Lock()


def build(program: Program, fname: str, doc: str | None = None) -> tuple[str, Callable]:
    """The CUDA source of ``program`` and its host function ``fname(*inputs) -> outputs``."""
    src = generate(program, fname, doc)
    fn = _CACHE.get(src)
    if fn is not None:
        return src, fn
    if importlib.util.find_spec("numba_cuda") is None:
        raise S2SError(f"the CUDA target needs the numba-cuda package ({INSTALL_HINT})")
    dm = device_namespace()
    missing = [n for n in device_function_names() if not hasattr(dm, n)]
    if missing:  # a printer calls a function that no elementwise op of the table computes
        raise S2SError(f"the CUDA target has no device function for {', '.join(missing)} (no op table `function`)")
    with _LOCK:
        fn = _CACHE.get(src)
        if fn is None:
            ns: dict = {"__name__": f"s2s_ad_cuda_{fname}"}
            exec(compile(src, register_source(src, fname), "exec"), ns)
            fn = _CACHE[src] = ns[fname]
    return src, fn
