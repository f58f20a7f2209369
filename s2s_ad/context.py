"""Execution context: ``set_context(mode=GRAPH_MODE | PYNATIVE_MODE, device_target=...)``.

GRAPH_MODE runs generated code compiled by Numba; PYNATIVE_MODE runs the same generated
source as plain numpy (quick to start, easy to step through). In GRAPH_MODE,
``device_target="GPU"`` runs generated CUDA kernels (:mod:`s2s_ad.cuda`) where CUDA is usable:
an NVIDIA GPU with the ``numba-cuda`` package, or Numba's simulator (``NUMBA_ENABLE_CUDASIM=1``).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
import weakref
from typing import Any

GRAPH_MODE = 0
PYNATIVE_MODE = 1

_TARGETS = ("CPU", "GPU", "Ascend")
COMPILE_MODES = ("background", "blocking", "numpy")
"""``compile_mode`` values: see :func:`set_context` and :mod:`s2s_ad.tiered`."""


def _compile_mode_from_env() -> str:
    raw = os.environ.get("S2S_AD_COMPILE", "").strip().lower()
    if not raw:
        return "background"
    if raw not in COMPILE_MODES:
        warnings.warn(
            f"S2S_AD_COMPILE={raw!r} is not one of {', '.join(COMPILE_MODES)}; using 'background'",
            RuntimeWarning,
            stacklevel=2,
        )
        return "background"
    return raw


_state: dict[str, Any] = {
    "mode": GRAPH_MODE,
    "device_target": "CPU",
    "device_id": 0,
    "algebraic_simplification": False,
    "verbose": False,
    "compile_mode": _compile_mode_from_env(),
}
_warned_gpu = False
_cuda: tuple[bool, str] | None = None  # (usable, why not), checked on first need


def set_context(**kwargs: Any) -> None:
    """Set ``mode`` and/or ``device_target``; other MindSpore keys are accepted and stored.

    ``algebraic_simplification=True`` (default False) lets SymPy rewrite the user's own
    equations too, with real-number algebra (``x*0`` and ``x - x`` become 0, ``x/x`` 1,
    ``log(exp(x))`` ``x``): programs may get shorter, but their results then differ from
    numpy's at inf, nan and overflow. By default only derivative equations are rewritten.

    ``verbose=True`` (default False; or ``S2S_AD_VERBOSE=1`` in the environment) logs the
    stages of every compile and their times through the ``"s2s_ad"`` logger, printed to stderr
    when logging is not configured (:mod:`s2s_ad.progress`).

    ``compile_mode`` (GRAPH_MODE on the CPU; default ``"background"``, or the environment
    variable ``S2S_AD_COMPILE``) says how a new program gets its machine code:
    ``"background"`` answers its first calls with the generated numpy code while Numba
    compiles it in the background, and switches to the compiled code when it is ready;
    ``"blocking"`` compiles before the first call returns; ``"numpy"`` never compiles (the
    numpy code, as in PYNATIVE_MODE). See :mod:`s2s_ad.tiered`."""
    if "compile_mode" in kwargs and kwargs["compile_mode"] not in COMPILE_MODES:
        raise ValueError(
            f"compile_mode must be one of {', '.join(map(repr, COMPILE_MODES))}, got {kwargs['compile_mode']!r}"
        )
    for flag in ("algebraic_simplification", "verbose"):
        if flag in kwargs and not isinstance(kwargs[flag], bool):
            raise ValueError(f"{flag} must be True or False, got {kwargs[flag]!r}")
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
        if t == "GPU":
            warn_without_cuda("device_target='GPU'")
    _state.update(kwargs)
    _changed()


def get_context(key: str) -> Any:
    if key not in _state:
        raise ValueError(f"unknown context key {key!r}")
    return _state[key]


def compile_options() -> tuple:
    """The context settings, besides the backend, that change the compiled program (part of
    every compile-cache key), and how many times a Cell's training mode changed."""
    return (_state["algebraic_simplification"], _training_changes[0])


_training_changes = [0]


def training_mode_changed() -> None:
    """A Cell's training mode changed (``set_train``): a program traced before is not reused,
    whatever cell or function it was traced for, since it may call that Cell (a
    ``TrainOneStepCell`` or a ``GradOperation`` of a network whose layer switched mode)."""
    _training_changes[0] += 1
    _changed()


_keys: dict[Any, tuple[Any, tuple]] = {}  # target -> (the CUDA status it was made with, backend_key)
# transformed functions holding a fast call (runtime.fast_call): it assumes the context it
# was made in, and is dropped when the context changes
_fast_calls: weakref.WeakSet[Any] = weakref.WeakSet()


def _changed() -> None:
    """The context changed: the keys made before are stale, and so are the fast calls."""
    _keys.clear()
    for t in list(_fast_calls):
        t._drop_fast_call()
    _fast_calls.clear()


def backend_key(target: str | None = None) -> tuple:
    """``(backend(target), *compile_options())`` kept until the context changes: the start of
    every compile-cache key (:func:`s2s_ad.runtime.call_key`), made once, not at every call."""
    got = _keys.get(target)
    if got is None or got[0] is not _cuda:
        key = (backend(target), compile_options())
        got = _keys[target] = (_cuda, key)
    return got[1]


CUDA_INSTALL_HINT = 'pip install "s2s_ad[cuda]"'


def cuda_status() -> tuple[bool, str]:
    """``(usable, why not)``: whether CUDA kernels can run in this process (a GPU with the
    numba-cuda package, or Numba's CUDA simulator). Checked once per process."""
    global _cuda
    if _cuda is None:
        _cuda = _check_cuda()
    return _cuda


def _check_cuda() -> tuple[bool, str]:
    if importlib.util.find_spec("numba_cuda") is None:
        return False, f"the numba-cuda package is not installed ({CUDA_INSTALL_HINT})"
    try:
        # numba.cuda is imported only when a GPU is asked for: it is slow to import
        from numba import cuda
        from numba.core import config

        if config.ENABLE_CUDASIM or cuda.is_available():
            return True, ""
    except Exception as err:  # a broken driver or toolkit install
        return False, f"numba.cuda cannot be used ({type(err).__name__}: {err})"
    return False, "no CUDA GPU was found (no NVIDIA driver, or no device)"


def warn_without_cuda(what: str, stacklevel: int = 2) -> None:
    """Warn (once per process) that ``what`` asks for the GPU but CUDA is not usable here."""
    global _warned_gpu
    usable, why = cuda_status()
    if not usable and not _warned_gpu:
        _warned_gpu = True
        warnings.warn(
            f"{what}: {why}; running on the CPU instead. Install numba-cuda on a machine with an "
            "NVIDIA GPU, or set NUMBA_ENABLE_CUDASIM=1 before importing numba to run the CUDA "
            "kernels in Numba's simulator",
            RuntimeWarning,
            stacklevel=stacklevel + 1,
        )


def backend(target: str | None = None) -> str:
    """The backend that compiled calls use now: ``"python"`` (PYNATIVE_MODE, or
    ``compile_mode="numpy"``), ``"numba"`` (GRAPH_MODE on the CPU) or ``"cuda"`` (GRAPH_MODE with ``device_target="GPU"`` where CUDA is
    usable). ``target`` (``"cpu"`` or ``"cuda"``, from a decorator) overrides the context's
    device for one function; where CUDA is not usable, ``"cuda"`` runs on the CPU."""
    numba = _state["mode"] == GRAPH_MODE and _state["compile_mode"] != "numpy"
    cpu = "numba" if numba else "python"
    if target is None:
        gpu = _state["mode"] == GRAPH_MODE and _state["device_target"] == "GPU"
        return "cuda" if gpu and cuda_status()[0] else cpu
    if target == "cuda":
        return "cuda" if cuda_status()[0] else cpu
    return cpu


def disk_cache_on() -> bool:
    """Whether the disk cache is on: ``S2S_AD_DISK_CACHE`` is not ``0``/``false``/``no``/``off``
    (where it is, nothing compiled is written to disk)."""
    return os.environ.get("S2S_AD_DISK_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")
