"""Shared pieces of the benchmark workloads: cases, implementations, framework loaders."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SYSTEMS: tuple[str, ...] = ("s2s_ad", "jax", "torch", "tangent", "autograd", "numpy", "numba")
"""Every system a workload may be implemented in; ``numpy`` (hand-written) is the reference."""

REFERENCE = "numpy"


class Skip(Exception):
    """Raised by a builder when a system cannot run a workload; the message says why."""


@dataclass
class Impl:
    """One system's implementation of one case, set up and ready to time.

    ``grad`` computes the derivative from the inputs (the forward pass included); ``forward``,
    when given, computes only the function's value, for gradient/forward ratios.
    """

    grad: Callable[[], Any]
    forward: Callable[[], Any] | None = None


@dataclass(frozen=True)
class Variant:
    """One row group of the results table: a workload at one size, dtype and derivative."""

    workload: str
    name: str
    dtype: np.dtype
    builders: Mapping[str, Callable[[], Impl]]
    notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.workload} {self.name}"

    def rtol(self) -> float:
        """Agreement tolerance relative to the largest magnitude of each reference output."""
        return 1e-3 if self.dtype == np.float32 else 1e-8


def as_arrays(out: Any) -> list[np.ndarray]:
    """Flatten a (nested) tuple of tensors of any framework into a list of numpy arrays."""
    if isinstance(out, (tuple, list)):
        return [a for item in out for a in as_arrays(item)]
    if hasattr(out, "detach"):  # torch
        return [out.detach().cpu().numpy()]
    return [np.asarray(out)]


def agree(result: list[np.ndarray], reference: list[np.ndarray], rtol: float) -> tuple[bool, float]:
    """``(ok, worst error)``: every output within ``rtol * max|reference|`` of the reference;
    the error is relative to that scale."""
    if len(result) != len(reference):
        return False, float("inf")
    worst = 0.0
    for r, ref in zip(result, reference):
        r = np.asarray(r, np.float64)
        ref = np.asarray(ref, np.float64)
        if r.shape != ref.shape and r.size == ref.size:
            r = r.reshape(ref.shape)
        if r.shape != ref.shape:
            return False, float("inf")
        scale = max(float(np.max(np.abs(ref), initial=0.0)), np.finfo(np.float64).tiny)
        err = float(np.max(np.abs(r - ref), initial=0.0)) / scale
        if not np.isfinite(err):
            return False, float("inf")
        worst = max(worst, err)
    return worst <= rtol, worst


# ---------------------------------------------------------------------------- frameworks


def load_s2s_ad() -> Any:
    """``s2s_ad`` in GRAPH_MODE (its default: programs compiled by Numba)."""
    import s2s_ad

    s2s_ad.set_context(mode=s2s_ad.GRAPH_MODE)
    return s2s_ad


@functools.cache
def load_jax() -> tuple[Any, Any]:
    """``(jax, jax.numpy)`` with float64 enabled; :class:`Skip` when JAX is not installed."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError as err:
        raise Skip(f"jax not installed ({err})") from None
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    return jax, jnp


@functools.cache
def load_torch() -> Any:
    """``torch`` on one thread; :class:`Skip` when it is not installed."""
    try:
        import torch
    except ImportError as err:
        raise Skip(f"torch not installed ({err})") from None
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before torch starts parallel work
        pass
    return torch


def load_autograd() -> tuple[Any, Any]:
    """``(autograd, autograd.numpy)``; :class:`Skip` when autograd is not installed."""
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError as err:
        raise Skip(f"autograd not installed ({err})") from None
    return autograd, anp


def load_tangent() -> Any:
    """The ``tangent`` module (package tangent-ad); :class:`Skip` when not installed."""
    try:
        import tangent
    except ImportError as err:
        raise Skip(f"tangent not installed ({err})") from None
    return tangent


def load_numba() -> Any:
    """The ``numba`` module; :class:`Skip` when not installed."""
    try:
        import numba
    except ImportError as err:
        raise Skip(f"numba not installed ({err})") from None
    return numba


def njit(fn: Callable) -> Callable:
    """``numba.njit`` with numpy's error model (no ZeroDivisionError checks)."""
    numba = load_numba()
    return numba.njit(error_model="numpy")(fn)


def jax_ready(out: Any) -> Any:
    """Block until every array in ``out`` (a pytree of JAX arrays) is computed."""
    jax, _ = load_jax()
    return jax.block_until_ready(out)


def torch_leaf(a: np.ndarray, requires_grad: bool = True) -> Any:
    """A torch tensor sharing ``a``'s memory (a copy when ``a`` is not writeable)."""
    torch = load_torch()
    t = torch.from_numpy(np.array(a, copy=True))
    return t.requires_grad_(requires_grad)
