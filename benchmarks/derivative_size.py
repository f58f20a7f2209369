"""Size of the generated n-th derivative of g(x) = sin(x)*exp(-x*x)/(1+x*x), n = 1..6.

Counts the equations (one operation each) of s2s_ad's optimised program and, when JAX is
installed (the ``bench`` extra), of ``jax.make_jaxpr`` of nested ``jax.grad``; also the time
s2s_ad takes to build each program (trace, differentiate, simplify).

    python benchmarks/derivative_size.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import s2s_ad
from s2s_ad import ops
from s2s_ad.api import trace_program
from s2s_ad.ir import Aval


def g(x):
    return ops.sin(x) * ops.exp(-x * x) / (1 + x * x)


def s2s_sizes(n_max: int) -> list[tuple[int, float]]:
    spec = Aval((), np.dtype(np.float64))
    f, out = g, []
    for _ in range(n_max):
        f = s2s_ad.grad(f)
        t0 = time.perf_counter()
        prog = trace_program(f, spec)
        out.append((len(prog.eqns), time.perf_counter() - t0))
    return out


def jax_sizes(n_max: int) -> list[int] | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None

    def gj(x):
        return jnp.sin(x) * jnp.exp(-x * x) / (1 + x * x)

    f, out = gj, []
    for _ in range(n_max):
        f = jax.grad(f)
        jaxpr = jax.make_jaxpr(f)(0.5)
        out.append(_count(jaxpr.jaxpr))
    return out


def _count(jaxpr) -> int:
    """Equations, counting those inside nested jaxprs (pjit, custom_jvp_call) too."""
    n = 0
    for eqn in jaxpr.eqns:
        subs = [v for v in eqn.params.values() if hasattr(v, "jaxpr") or hasattr(v, "eqns")]
        if subs:
            for s in subs:
                n += _count(s.jaxpr if hasattr(s, "jaxpr") else s)
        else:
            n += 1
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=6)
    p.add_argument("--json", help="also write the table as JSON to this file")
    ns = p.parse_args()
    ours = s2s_sizes(ns.n)
    theirs = jax_sizes(ns.n)
    print("| n | s2s_ad equations | build time | JAX jaxpr equations | ratio |")
    print("| --- | --- | --- | --- | --- |")
    rows = []
    for k, (eqns, secs) in enumerate(ours, 1):
        j = theirs[k - 1] if theirs else None
        ratio = f"{eqns / j:.3f}" if j else "n/a"
        print(f"| {k} | {eqns} | {secs * 1e3:.0f} ms | {j if j else 'JAX not installed'} | {ratio} |")
        rows.append({"n": k, "s2s_ad": eqns, "build_s": secs, "jax": j})
    if ns.json:
        with open(ns.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
