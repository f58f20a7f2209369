"""Reverse mode through a ``while``-loop solver, with and without checkpointing: time and peak
memory of one gradient.

The solver integrates ``x' = a * sin(x) - b * x**3`` by explicit Euler steps ``while t < T``
(a ``while`` region: the trip count is known at run time only) on a state of ``--n`` float64
values; the gradient of ``sum(x(T))`` with respect to ``x0``, ``a`` and ``b`` runs the adjoint
loop backwards over the tape. ``checkpoint=k`` stores the state every ``k`` steps instead of
every step (the adjoint recomputes each segment). Each configuration runs in its own process;
peak memory is measured as in ``memory.py`` (``VmHWM - VmRSS`` around one call with a fixed
mmap threshold; tracemalloc where ``clear_refs`` cannot be written, numpy backend only).

    python benchmarks/while_checkpoint.py [--n 20000] [--steps 1000] [--every 0,10,32,100]
        [--backends python,numba] [--reps 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import threads  # noqa: E402
from memory import MALLOC_ENV, clear_refs_writable, fmt_bytes, reset_peak, status_kib  # noqa: E402

DEFAULT_JSON = HERE / "results" / "while_checkpoint.json"


def solver_gradient(n: int, steps: int, every: int):
    """The gradient program of the solver (an IR program built with the region builders)."""
    import numpy as np

    from s2s_ad import regions
    from s2s_ad.derivatives import grad_program
    from s2s_ad.ir import Aval, Builder, Lit, Program, Var

    f8 = np.dtype(np.float64)
    dt = 1.0 / steps

    def vec(h):
        return Var(Aval((n,), f8), h)

    def scalar(h):
        return Var(Aval((), f8), h)

    cb = Builder()
    c_in = [vec("a"), vec("b"), scalar("t"), vec("x")]
    cond = regions.subprogram("cond", c_in, cb.eqns, [cb.bind1("less", c_in[2], Lit(1.0 - dt / 2, f8))])
    bb = Builder()
    a, b_, t, x = [vec("a"), vec("b"), scalar("t"), vec("x")]
    rate = bb.bind1(
        "sub", bb.bind1("mul", a, bb.bind1("sin", x)), bb.bind1("mul", b_, bb.bind1("mul", x, bb.bind1("square", x)))
    )
    new_x = bb.bind1("add", x, bb.bind1("mul", Lit(dt, f8), rate))
    body = regions.subprogram("euler", [a, b_, t, x], bb.eqns, [bb.bind1("add", t, Lit(dt, f8)), new_x])
    pb = Builder()
    A, B, X0 = vec("A"), vec("B"), vec("x0")
    extra = {"checkpoint": every} if every else {}
    outs = pb.bind("while", [A, B, Lit(0.0, f8), X0], cond=cond, body=body, n_consts=2, n_ys=0, **extra)
    loss = pb.bind1("reduce_sum", outs[1], axes=(0,), keepdims=False)
    prog = Program(
        "solve", [X0, A, B], 3, ("tuple", (None,) * 3), [], [], pb.eqns, [loss], ("tuple", (None,)), ["x0", "A", "B"]
    )
    return grad_program(prog, [0, 1, 2], [], sens_param=False)


def child(backend: str, n: int, steps: int, every: int, reps: int, method: str) -> dict[str, Any]:
    threads.apply()
    import numpy as np

    from s2s_ad.ir import flatten
    from s2s_ad.runtime import Compiled

    prog = solver_gradient(n, steps, every)
    fn = Compiled(prog, backend)
    rng = np.random.default_rng(0)
    args = [rng.uniform(-1, 1, n), rng.uniform(0.5, 1.5, n), rng.uniform(0.1, 0.5, n)]
    out = fn(args)  # compiles
    checksum = float(sum(np.sum(g.asnumpy()) for g in flatten(out)[0]))
    del out
    times, peaks = [], []
    for _ in range(reps):
        gc.collect()
        if method == "rss":
            reset_peak()
            before = status_kib("VmRSS")
            t0 = time.perf_counter()
            out = fn(args)
            times.append(time.perf_counter() - t0)
            peaks.append((status_kib("VmHWM") - before) * 1024)
        else:
            import tracemalloc

            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            t0 = time.perf_counter()
            out = fn(args)
            times.append(time.perf_counter() - t0)
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
            tracemalloc.stop()
        del out
    return {"backend": backend, "every": every, "times_s": times, "peaks_bytes": peaks, "checksum": checksum}


def measure(backend: str, n: int, steps: int, every: int, reps: int, method: str) -> dict[str, Any]:
    env = threads.single_threaded_env()
    env.update(MALLOC_ENV)
    cmd = [sys.executable, __file__, "--child", backend, "--n", str(n), "--steps", str(steps)]
    cmd += ["--every", str(every), "--reps", str(reps), "--method", method]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"backend": backend, "every": every, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="state size (default 20000)")
    p.add_argument("--steps", type=int, default=1000, help="Euler steps (default 1000)")
    p.add_argument("--every", default="0,10,32,100", help="checkpoint intervals, 0 = none (default 0,10,32,100)")
    p.add_argument("--backends", default="python,numba", help="python (PYNATIVE) and/or numba (GRAPH)")
    p.add_argument("--reps", type=int, default=5, help="measured calls per configuration (default 5)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--method", default="rss", help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.child:
        print(json.dumps(child(ns.child, ns.n, ns.steps, int(ns.every), ns.reps, ns.method)))
        return 0
    method = "rss" if clear_refs_writable() else "tracemalloc"
    backends = [b for b in ns.backends.split(",") if b]
    if method == "tracemalloc":
        backends = [b for b in backends if b == "python"]
    everys = [int(k) for k in ns.every.split(",")]
    tape = ns.n * 8 * ns.steps
    print(f"Gradient through a while-loop Euler solver: n={ns.n}, {ns.steps} steps (full tape {fmt_bytes(tape)})")
    print(f"peak memory by {method}; median of {ns.reps} calls\n")
    print(f"{'backend':8} {'checkpoint':>10} {'time':>10} {'peak memory':>13}  {'time ratio':>10} {'memory ratio':>12}")
    rows = []
    for be in backends:
        base = None
        for k in everys:
            r = measure(be, ns.n, ns.steps, k, ns.reps, method)
            r["method"] = method
            rows.append(r)
            if "error" in r:
                print(f"{be:8} {k or '-':>10}  error: {r['error']}")
                continue
            t, m = statistics.median(r["times_s"]), statistics.median(r["peaks_bytes"])
            base = base or (t, m)
            label = f"every {k}" if k else "none"
            print(
                f"{be:8} {label:>10} {t * 1e3:8.1f}ms {fmt_bytes(m):>13}  {t / base[0]:10.2f} {m / max(base[1], 1):12.3f}"
            )
    sums = {round(r["checksum"], 6) for r in rows if "checksum" in r}
    print(f"\ngradients agree across configurations: {len(sums) <= 1}")
    ns.json.parent.mkdir(parents=True, exist_ok=True)
    ns.json.write_text(json.dumps({"n": ns.n, "steps": ns.steps, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
