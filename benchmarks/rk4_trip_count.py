"""W10 (RK4 Lorenz) against its trip count: generated source lines and the first call in a fresh
process with a cold disk cache, for the value and the gradient, s2s_ad and JAX, then the
steady-state call (the median of repeated calls once s2s_ad's background compile is done).

Each (steps, what, system) runs as ``python -c ...`` in a new process with an empty
``S2S_AD_CACHE_DIR``; the child reports the time of its first call (tracing, compiling and
running), and the parent prints a table. The source line counts come from
:func:`s2s_ad.api.generated_source` (Numba target: the source GRAPH mode compiles).

    python benchmarks/rk4_trip_count.py [--steps 10,100,10000] [--systems s2s_ad,jax]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHILD = """
import json, sys, time
sys.path.insert(0, {here!r})
from workloads import w10_rk4 as w
impl = w.BUILDERS[{system!r}]({steps})
fn = impl.grad if {what!r} == "grad" else impl.forward
t = time.perf_counter()
fn()
first = time.perf_counter() - t
t = time.perf_counter()
fn()
second = time.perf_counter() - t
if {system!r} == "s2s_ad":
    from s2s_ad import tiered
    tiered.wait()  # the machine code from here on
fn()
times = []
start = time.perf_counter()
while len(times) < 5 or (time.perf_counter() - start < 1.0 and len(times) < 2000):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({{"first": first, "second": second, "steady": times[len(times) // 2]}}))
"""


def source_lines(steps: int) -> dict[str, int]:
    """Lines of the generated Numba source of the value and of the gradient."""
    sys.path.insert(0, str(HERE))
    from workloads import w10_rk4

    from s2s_ad import Tensor, ops
    from s2s_ad.api import generated_source

    integrate, loss = w10_rk4._s2s_functions(steps)
    s0, p = (Tensor(a) for a in w10_rk4.inputs())
    return {
        "value": len(generated_source(integrate, s0, p, target="numba").splitlines()),
        "grad": len(generated_source(ops.GradOperation(get_all=True)(loss), s0, p, target="numba").splitlines()),
    }


def first_call(steps: int, what: str, system: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, S2S_AD_CACHE_DIR=cache)
        code = CHILD.format(here=str(HERE), system=system, steps=steps, what=what)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", default="10,100,10000")
    p.add_argument("--systems", default="s2s_ad,jax")
    ns = p.parse_args(argv)
    steps = [int(s) for s in ns.steps.split(",")]
    systems = ns.systems.split(",")
    print("| steps | source lines (value) | source lines (grad) |")
    print("|---|---|---|")
    for n in steps:
        lines = source_lines(n)
        print(f"| {n} | {lines['value']} | {lines['grad']} |")
    print()
    print("| steps | what | system | first call (s) | second call (ms) | steady call (ms) |")
    print("|---|---|---|---|---|---|")
    for n in steps:
        for what in ("value", "grad"):
            for system in systems:
                r = first_call(n, what, system)
                print(
                    f"| {n} | {what} | {system} | {r['first']:.2f} | {r['second'] * 1e3:.3f} | {r['steady'] * 1e3:.3f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
