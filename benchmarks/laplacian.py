"""The forward Laplacian (W6's network): ``s2s_ad.vmap(s2s_ad.laplacian(u))`` against folx's
``forward_laplacian``, the trace of JAX's nested ``jax.hessian`` and s2s_ad's nested grads,
for the Laplacian at 1024 points and for the gradient of a loss built on it with respect to
the weights, float64 and float32. One interleaved run (run.py's checks, rounds and paired
medians), one thread.

    python benchmarks/laplacian.py [--quick] [--rounds 5] [--clock wall|cpu] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (sets the thread environment before numpy is imported)
from workloads.w6_laplacian import FORWARD_LAPLACIAN, forward_laplacian_variants  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "laplacian.json"


def cpu_batch_time(fn: Callable[[], Any], number: int) -> float:
    """CPU seconds of this process per call over ``number`` back-to-back calls, the garbage
    collector off (run.py's ``batch_time`` with ``time.process_time``)."""
    gc_on = gc.isenabled()
    gc.disable()
    try:
        t0 = time.process_time()
        for _ in range(number):
            fn()
        return (time.process_time() - t0) / number
    finally:
        if gc_on:
            gc.enable()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="64 points, 2 rounds")
    p.add_argument("--rounds", type=int, help="timing rounds (default 5; 2 with --quick)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--min-time", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--systems", help=f"comma-separated subset of {','.join(FORWARD_LAPLACIAN)}")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time calls by the wall clock (run.py's) or by the process's CPU time (all its threads), "
        "which a machine shared with other jobs disturbs less",
    )
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    ns = p.parse_args(argv)
    if ns.clock == "cpu":
        run.batch_time = cpu_batch_time
    rounds = ns.rounds if ns.rounds is not None else (2 if ns.quick else 5)
    # numpy is the reference only (for the loss gradient it is JAX's nested Hessian in float64)
    systems = run.parse_list(ns.systems or "s2s_ad,jax,folx,s2s_ad_nested", list(FORWARD_LAPLACIAN), "systems")
    print("Versions:", ", ".join(f"{k} {v}" for k, v in run.versions().items() if v))
    print(f"Threads: {run.threads.THREAD_ENV}\n")
    variants = forward_laplacian_variants(ns.quick)
    notes: list[dict] = []
    checks: list[dict] = []
    print("Checking every system against the reference (first call compiles):")
    cases = run.prepare(variants, systems, notes, checks)
    excluded = [c for c in checks if not c["ok"]]
    print(f"\nTiming {len(cases)} cases, {rounds} rounds:")
    run.measure(cases, rounds, ns.repeat, ns.min_time, ns.warmup, ns.seed)
    rows, ratios, _ = run.summarise(cases)
    run.print_tables(rows, [], notes, excluded)
    ns.json.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "meta": {"argv": sys.argv[1:] if argv is None else argv, "rounds": rounds, "quick": ns.quick, "clock": ns.clock}
        | {"threads": run.threads.THREAD_ENV, "versions": run.versions(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
        "cases": [
            {"variant": c.variant.name, "system": c.system, "median_s": c.median(), "samples_s": c.samples}
            for c in cases
        ],
        "table": rows,
        "ratios": ratios,
        "checks": checks,
        "notes": notes,
    }
    ns.json.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {ns.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
