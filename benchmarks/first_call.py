"""First call of the W1 gradient in a fresh process: import, transform, compile and call.

Each run is ``python -c ...`` in a new process. Two variants:

- cold: ``S2S_AD_CACHE_DIR`` is a fresh, empty directory for every run;
- warm: one directory shared by all runs, primed by one run first.

The child reports the time of ``import s2s_ad`` and of building and calling
``GradOperation()(Net())`` (the seeds' MatMul network, gradient w.r.t. x); the parent
measures the whole process, interpreter start included.

    python benchmarks/first_call.py [--runs 7] [--json benchmarks/results/first_call.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import threads  # noqa: E402

DEFAULT_JSON = HERE / "results" / "first_call.json"

CHILD = f"""
import json, time
t0 = time.perf_counter()
import numpy as np
import s2s_ad
t1 = time.perf_counter()
import sys
sys.path.insert(0, {str(HERE)!r})
from workloads.w1_matmul import numpy_grad, s2s_ad_impl, X, Y, Z
t2 = time.perf_counter()
out = s2s_ad_impl("x").grad()
t3 = time.perf_counter()
ok = bool(np.allclose(np.asarray(out), numpy_grad("x", X, Y, Z), rtol=1e-5))
print(json.dumps({{"import_s": t1 - t0, "transform_compile_call_s": t3 - t2, "in_process_s": t3 - t0 - (t2 - t1),
                  "ok": ok}}))
"""


def run_once(cache_dir: str) -> dict[str, Any]:
    """One fresh process with ``S2S_AD_CACHE_DIR=cache_dir``; its timings and wall time."""
    env = threads.single_threaded_env()
    env["S2S_AD_CACHE_DIR"] = cache_dir
    env.pop("S2S_AD_DISK_CACHE", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"child failed (exit {proc.returncode}):\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["ok"]:
        raise RuntimeError("the child's gradient disagrees with the hand-written one")
    return result | {"process_s": wall}


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    keys = ("process_s", "import_s", "transform_compile_call_s", "in_process_s")
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7, help="processes per variant (default 7)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    ns = p.parse_args(argv)

    results: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    with tempfile.TemporaryDirectory(prefix="s2s_ad_first_call_") as root:
        for i in range(ns.runs):
            results["cold"].append(run_once(str(Path(root) / f"cold{i}")))
            print(f"  cold run {i + 1}/{ns.runs}: {fmt(results['cold'][-1]['process_s'])}", flush=True)
        warm_dir = str(Path(root) / "warm")
        priming = run_once(warm_dir)
        print(f"  priming run: {fmt(priming['process_s'])}", flush=True)
        for i in range(ns.runs):
            results["warm"].append(run_once(warm_dir))
            print(f"  warm run {i + 1}/{ns.runs}: {fmt(results['warm'][-1]['process_s'])}", flush=True)

    medians = {k: summary(v) for k, v in results.items()}
    print(f"\nFirst call of W1 (GradOperation()(Net())(x, y)) in a fresh process, median of {ns.runs}:\n")
    print("| disk cache | whole process | import s2s_ad | transform + compile + call | import + first call |")
    print("| --- | --- | --- | --- | --- |")
    for k, m in medians.items():
        print(
            f"| {k} | {fmt(m['process_s'])} | {fmt(m['import_s'])} | {fmt(m['transform_compile_call_s'])} "
            f"| {fmt(m['in_process_s'])} |"
        )
    ratio = medians["warm"]["process_s"] / medians["cold"]["process_s"]
    print(f"\nwarm / cold (whole process): {ratio:.3f}")

    out = {
        "meta": {"runs": ns.runs, "python": sys.version, "threads": threads.THREAD_ENV},
        "median": medians,
        "warm_over_cold": ratio,
        "runs": results,
        "priming_run": priming,
    }
    ns.json.parent.mkdir(parents=True, exist_ok=True)
    ns.json.write_text(json.dumps(out, indent=1))
    print(f"Saved {ns.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
