"""Benchmark workloads W1-W10, each implemented in every system of :data:`SYSTEMS`.

``variants(["W1", "W2"], quick=False)`` lists :class:`Variant` objects; a variant's
``builders[system]()`` sets the case up (imports, compiles nothing yet) and returns an
:class:`Impl` whose ``grad()`` (and, where meaningful, ``forward()``) the runner times.
A builder raises :class:`Skip` when its system is missing or cannot run the workload.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from . import (
    w1_matmul,
    w2_elementwise,
    w3_mlp,
    w4_hessian,
    w5_fourth,
    w6_laplacian,
    w7_pinn,
    w8_potential,
    w9_newton,
    w10_rk4,
    w11_mlp_hessian,
    w12_per_sample,
)
from .common import REFERENCE, SYSTEMS, Impl, Skip, Variant, agree, as_arrays

WORKLOADS: dict[str, tuple[str, Callable[[bool], list[Variant]]]] = {
    "W1": ("seeds' MatMul network sum((x*z) @ y), float32", w1_matmul.variants),
    "W2": ("sum(x*exp(y)*z**2 + sin(x)*cos(y)/(1+z*z)), grad wrt x, y, z", w2_elementwise.variants),
    "W3": ("tanh MLP 784-256-10, batch 64, softmax cross-entropy, grad wrt weights, float32", w3_mlp.variants),
    "W4": ("sum(sin(x)*x**3): Hessian and Hessian-vector product, float64", w4_hessian.variants),
    "W5": ("4th derivative of sin(x)*exp(-x*x)/(1+x*x), float64", w5_fourth.variants),
    "W6": ("PINN Laplacian of a 2-32-32-1 tanh MLP, float64", w6_laplacian.variants),
    "W7": ("Burgers PINN 2-32xL-1 tanh, residual loss gradient wrt weights, float32", w7_pinn.variants),
    "W8": (
        "radial-descriptor neural potential, 48 atoms, force-matching loss gradient wrt weights",
        w8_potential.variants,
    ),
    "W9": ("Newton step of logistic regression n=500 d=30, full Hessian, float64", w9_newton.variants),
    "W10": ("RK4 Lorenz integrator kept as a loop, grad wrt initial state and parameters, float64", w10_rk4.variants),
    "W11": ("Hessian of a 6-layer tanh MLP wrt its input (n=16, 64), float64", w11_mlp_hessian.variants),
    "W12": ("per-sample gradients of a 32-64-64-1 tanh MLP, batch 256, float32", w12_per_sample.variants),
}


def variants(names: Iterable[str] | None = None, quick: bool = False) -> list[Variant]:
    """The variants of the named workloads (all when ``names`` is None), in order."""
    out: list[Variant] = []
    for name in names or WORKLOADS:
        if name not in WORKLOADS:
            raise KeyError(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}")
        out.extend(WORKLOADS[name][1](quick))
    return out


__all__ = ["REFERENCE", "SYSTEMS", "WORKLOADS", "Impl", "Skip", "Variant", "agree", "as_arrays", "variants"]
